"""`imbalance check` points at boxes: every finding names the annotation ids, image ids and file names involved
(all in JSON, the first few with a count elsewhere), in text, JSON, JUnit, GitHub commands and the Markdown step
summary; the structural walk lives in the data layer; no torch unless anchor rules run."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from conftest import COCO_VAL, ROOT, VOC_XML
from typer.testing import CliRunner

from imbalance_cli.check import run_check
from imbalance_cli.cli import app
from imbalance_cli.data import load
from imbalance_cli.data.validate import load_with_problems

runner = CliRunner()


def _base():
    """3 images (file names a.jpg, b.jpg, c.jpg), 2 classes, 6 valid boxes."""
    images = [
        {"id": i, "width": 100, "height": 100, "file_name": f"{n}.jpg"} for i, n in ((1, "a"), (2, "b"), (3, "c"))
    ]
    cats = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    anns = []
    for k, (img, cat, bbox) in enumerate(
        [
            (1, 1, [10, 10, 21, 21]),
            (1, 2, [50, 50, 31, 31]),
            (2, 1, [5, 5, 22, 18]),
            (2, 2, [40, 40, 25, 35]),
            (3, 1, [0, 0, 18, 24]),
            (3, 2, [60, 10, 28, 33]),
        ]
    ):
        anns.append({"id": k + 1, "image_id": img, "category_id": cat, "bbox": bbox, "iscrowd": 0})
    return {"images": images, "annotations": anns, "categories": cats}


def _broken():
    d = _base()
    d["annotations"] += [
        {"id": 7, "image_id": 1, "category_id": 99, "bbox": [1, 1, 5, 5]},  # undefined category, image a.jpg
        {"id": 8, "image_id": 42, "category_id": 1, "bbox": [1, 1, 5, 5]},  # undefined image 42
        {"id": 9, "image_id": 2, "category_id": 1, "bbox": [1, 1, -5, 5]},  # negative width, image b.jpg
        {"id": 10, "image_id": 2, "category_id": 2, "bbox": [500, 1, 5, 5]},  # outside image b.jpg
        {"id": 11, "image_id": 3, "category_id": 2},  # missing bbox, image c.jpg
        {"id": 3, "image_id": 3, "category_id": 2, "bbox": [1, 1, 5, 5]},  # duplicate id 3, image c.jpg
    ]
    return d


def _write(tmp_path, d, name="ann.json"):
    p = tmp_path / name
    p.write_text(json.dumps(d))
    return p


def _by_rule(findings):
    out = {}
    for f in findings:
        out.setdefault(f["rule"], []).append(f)
    return out


def test_json_names_every_box_and_image_of_each_finding(tmp_path):
    res = runner.invoke(app, ["check", str(_write(tmp_path, _broken())), "--report-format", "json"])
    assert res.exit_code == 1
    f = _by_rule(json.loads(res.stdout)["findings"])
    expect = {  # rule: (annotation ids, image ids, file names), read off _broken() by hand
        "undefined_category": ([7], [1], ["a.jpg"]),
        "undefined_image": ([8], [42], [""]),
        "missing_field": ([11], [3], ["c.jpg"]),
        "duplicate_id": ([3], [3], ["c.jpg"]),
    }
    for rule, (ann, img, names) in expect.items():
        (x,) = f[rule]
        assert (x["annotation_ids"], x["image_ids"], x["file_names"]) == (ann, img, names), rule
        assert len(x["records"]) == 1 and x["records"][0].startswith("annotations[")
    boxes = {tuple(x["annotation_ids"]): (x["image_ids"], x["file_names"]) for x in f["invalid_box"]}
    assert boxes == {(9,): ([2], ["b.jpg"]), (10,): ([2], ["b.jpg"])}


def test_distribution_findings_name_classes_and_boxes(tmp_path):
    d = _base()
    d["categories"].append({"id": 4, "name": "single"})
    d["images"].append({"id": 4, "width": 100, "height": 100, "file_name": "empty.jpg"})
    d["annotations"].append({"id": 20, "image_id": 1, "category_id": 4, "bbox": [1, 1, 4, 4], "iscrowd": 0})
    for k in range(60):
        d["annotations"].append({"id": 100 + k, "image_id": 2, "category_id": 1, "bbox": [1, 1, 10, 10], "iscrowd": 0})
    d["annotations"].append({"id": 999, "image_id": 3, "category_id": 1, "bbox": [0, 0, 99, 99], "iscrowd": 0})
    res = run_check(_write(tmp_path, d))
    few = [f for f in res.findings if f.rule == "few_instances"]
    assert [(f.category, f.annotation_ids, f.image_ids, f.file_names) for f in few] == [
        ("single", [20], [1], ["a.jpg"])
    ]
    assert "'single'" in few[0].message and "id 4" not in few[0].message
    # the one 'cat' box of 99 x 99 among 63 boxes of <= 22 px is the width/height/area outlier
    out = [f for f in res.findings if f.rule == "size_outlier" and f.category == "cat"]
    assert out and all(f.annotation_ids == [999] and f.image_ids == [3] and f.file_names == ["c.jpg"] for f in out)
    (empty,) = [f for f in res.findings if f.rule == "images_without_boxes"]
    assert empty.image_ids == [4] and empty.file_names == ["empty.jpg"] and not empty.annotation_ids


def test_text_junit_github_show_first_ids_with_count(tmp_path):
    d = _base()
    bad_ids = list(range(50, 57))  # seven boxes of zero width in image 3 (c.jpg)
    d["annotations"] += [{"id": i, "image_id": 3, "category_id": 1, "bbox": [5, 5, 0, 5]} for i in bad_ids]
    p = _write(tmp_path, d)
    text = runner.invoke(app, ["check", str(p)])
    assert text.exit_code == 1
    assert "boxes (annotation ids): 50, 51, 52, 53, 54, ... (7 in all)" in text.stdout
    assert "images: 3 (c.jpg)" in text.stdout
    js = json.loads(runner.invoke(app, ["check", str(p), "-r", "json"]).stdout)
    (inv,) = _by_rule(js["findings"])["invalid_box"]
    assert inv["annotation_ids"] == bad_ids  # all of them in JSON
    gh = runner.invoke(app, ["check", str(p), "--report-format", "github"]).stdout
    (line,) = [ln for ln in gh.splitlines() if "title=imbalance invalid_box" in ln]
    assert line.startswith("::error file=") and "50, 51, 52, 53, 54, ... (7 in all)" in line and "%0A" in line
    out = tmp_path / "out"
    assert runner.invoke(app, ["check", str(p), "-o", str(out)]).exit_code == 1
    assert sorted(x.name for x in out.iterdir()) == [
        ".imbalance-manifest.json",
        "check.github.txt",
        "check.json",
        "check.md",
        "check.txt",
        "check.xml",
    ]
    case = [c for c in ET.parse(out / "check.xml").getroot().iter("testcase") if c.get("name") == "invalid_box"][0]
    assert "50, 51, 52, 53, 54, 55, 56" in case.find("failure").text
    assert json.loads((out / "check.json").read_text())["findings"][0]["annotation_ids"] == bad_ids


def test_markdown_step_summary_from_env_and_option(tmp_path, monkeypatch):
    p = _write(tmp_path, _broken())
    summary = tmp_path / "step_summary.md"
    summary.write_text("previous step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert runner.invoke(app, ["check", str(p)]).exit_code == 1
    md = summary.read_text()
    assert md.startswith("previous step\n")  # appended, as GitHub expects
    assert "imbalance check: FAILED" in md and "| severity | rule | class | finding |" in md
    row = [ln for ln in md.splitlines() if "`undefined_category`" in ln][0]
    assert "| 7 |" in row and "1 (a.jpg)" in row
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    other = tmp_path / "other.md"
    assert runner.invoke(app, ["check", str(p), "--summary", str(other)]).exit_code == 1
    assert "`invalid_box`" in other.read_text()
    md_out = runner.invoke(app, ["check", str(p), "--report-format", "markdown"])
    assert "| error | `duplicate_id` |" in md_out.stdout


def test_format_is_the_annotation_format(tmp_path):
    assert runner.invoke(app, ["check", str(VOC_XML), "--format", "voc"]).exit_code == 0
    r = runner.invoke(app, ["check", str(VOC_XML), "--format", "junit"])
    assert r.exit_code == 2  # a report format is not an annotation format
    assert runner.invoke(app, ["check", str(VOC_XML), "--data-format", "voc"]).exit_code == 0  # old name still works
    assert runner.invoke(app, ["check", str(COCO_VAL), "-o", str(tmp_path / "o"), "-r", "json"]).exit_code == 0


def test_structural_walk_agrees_with_the_loader(tmp_path):
    good = _write(tmp_path, _base(), "good.json")
    ds, problems = load_with_problems(good)
    ref = load(good)
    assert problems == [] and (ds.box_ids == ref.box_ids).all() and (ds.boxes == ref.boxes).all()
    ds, problems = load_with_problems(_write(tmp_path, _broken(), "bad.json"))
    assert sorted(p.kind for p in problems) == [
        "duplicate_id",
        "missing_field",
        "undefined_category",
        "undefined_image",
    ]
    assert sorted(int(i) for i in ds.box_ids) == [1, 2, 3, 4, 5, 6, 9, 10]  # the well-formed rest, invalid boxes kept


def _modules_after_check(tmp_path, *extra, pre: str = ""):
    p = _write(tmp_path, _base())
    code = (
        f"import sys\n{pre}\nfrom imbalance_cli.cli import app\n"
        f"try:\n    app([{', '.join(repr(a) for a in ['check', str(p), *extra])}])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'rich', 'pandas') if m in sys.modules))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("GITHUB_STEP_SUMMARY", None)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_check_never_imports_torch_without_anchor_rules(tmp_path):
    assert _modules_after_check(tmp_path, "--report-format", "markdown") == "[]"
    # the control: the probe sees torch when it is loaded (so the test above can fail). Anchor rules themselves
    # load it only where a GPU driver exists: the CPU engine needs no torch (specs.resolve_device says "cpu"
    # without importing it)
    assert "torch" in _modules_after_check(tmp_path, "--anchors", "retinanet", pre="import torch")


def test_pre_commit_hook_at_repository_root():
    import yaml

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (hook,) = [h for h in hooks if h["id"] == "imbalance-check"]
    assert hook["entry"].split()[:2] == ["imbalance", "check"] and hook["language"] == "python"
    assert hook["pass_filenames"] is not False and hook.get("require_serial") is True
    import re

    pattern = re.compile(hook["files"])
    for name in ("data/train.json", "annotations/instances_val2017.json.gz", "labels.csv", "VOC/Annotations/1.xml"):
        assert pattern.search(name), name
    assert not pattern.search("README.md") and not pattern.search("src/model.py")


def test_examples_ci_use_existing_check_options():
    """Every option the CI examples pass to `imbalance check` exists (catches renamed options such as --format)."""
    import shlex

    import typer.main
    import yaml

    cmd = typer.main.get_command(app).commands["check"]
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    texts = [
        (ROOT / "examples" / "ci" / n).read_text() for n in ("imbalance-check.yml", "pre-commit-config.example.yaml")
    ]
    texts.append((ROOT / ".pre-commit-hooks.yaml").read_text())
    used = []
    for text in texts:
        yaml.safe_load(text)  # valid YAML
        for chunk in text.replace("\\\n", " ").split("imbalance check")[1:]:
            used += [t for t in shlex.split(chunk.splitlines()[0], comments=True) if t.startswith("-")]
    assert "--report-format" in used and "--out" in used
    assert set(used) <= known, set(used) - known
