"""`imbalance check`: findings, exit codes 0/1/2, JUnit XML, GitHub commands, rules file, drift."""

import gzip
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from conftest import COCO_TRAIN, COCO_VAL
from typer.testing import CliRunner

from imbalance_cli.check import load_rules, run_check
from imbalance_cli.cli import app

runner = CliRunner()


def _clean():
    """3 images, 2 classes, 6 valid boxes; every distribution rule quiet except none."""
    images = [{"id": i, "width": 100, "height": 100, "file_name": f"{i}.jpg"} for i in (1, 2, 3)]
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
        anns.append(
            {"id": k + 1, "image_id": img, "category_id": cat, "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0}
        )
    return {"images": images, "annotations": anns, "categories": cats}


def _write(tmp_path, d, name="ann.json"):
    p = tmp_path / name
    p.write_text(json.dumps(d))
    return p


def test_clean_dataset_passes_exit_0(tmp_path):
    res = runner.invoke(app, ["check", str(_write(tmp_path, _clean())), "--fail-on", "warning"])
    assert res.exit_code == 0, res.output
    assert "PASSED" in res.output


def _broken():
    d = _clean()
    d["annotations"].append({"id": 7, "image_id": 1, "category_id": 99, "bbox": [1, 1, 5, 5]})  # undefined category
    d["annotations"].append({"id": 8, "image_id": 42, "category_id": 1, "bbox": [1, 1, 5, 5]})  # undefined image
    d["annotations"].append({"id": 9, "image_id": 2, "category_id": 1, "bbox": [1, 1, -5, 5]})  # negative width
    d["annotations"].append({"id": 10, "image_id": 2, "category_id": 2, "bbox": [500, 1, 5, 5]})  # outside image
    d["annotations"].append({"id": 11, "image_id": 3, "category_id": 2})  # missing bbox
    d["annotations"].append({"id": 3, "image_id": 3, "category_id": 2, "bbox": [1, 1, 5, 5]})  # duplicate id
    return d


def test_broken_dataset_fails_exit_1_with_readable_junit(tmp_path):
    res = runner.invoke(
        app, ["check", str(_write(tmp_path, _broken())), "--report-format", "junit", "--out", str(tmp_path / "out")]
    )
    out = tmp_path / "out" / "check.xml"
    assert res.exit_code == 1, res.output
    assert "FAILED" in res.output
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    cases = {c.get("name"): c for c in root.iter("testcase")}
    failed = {name for name, c in cases.items() if c.find("failure") is not None}
    assert failed == {"undefined_category", "undefined_image", "invalid_box", "missing_field", "duplicate_id"}
    assert "category_id 99" in cases["undefined_category"].find("failure").text
    assert "image_id 42" in cases["undefined_image"].find("failure").text
    box_text = cases["invalid_box"].find("failure").text
    assert "non positive size" in box_text and "outside image" in box_text and "9" in box_text
    suite = root.find("testsuite")
    assert int(suite.get("failures")) == 5 and int(suite.get("tests")) == len(cases)


def test_json_schema_and_counts(tmp_path):
    res = runner.invoke(app, ["check", str(_write(tmp_path, _broken())), "--report-format", "json"])
    assert res.exit_code == 1
    rep = json.loads(res.stdout)
    assert rep["schema"] == "imbalance.check/1" and rep["passed"] is False and rep["fail_on"] == "error"
    by_rule = {}
    for f in rep["findings"]:
        by_rule.setdefault(f["rule"], []).append(f)
        assert f["severity"] in ("error", "warning", "info") and f["message"]
    assert by_rule["undefined_category"][0]["value"] == 1
    assert sum(f["value"] for f in by_rule["invalid_box"]) == 2


def test_github_format(tmp_path):
    res = runner.invoke(app, ["check", str(_write(tmp_path, _broken())), "--report-format", "github"])
    assert res.exit_code == 1
    lines = [line for line in res.stdout.splitlines() if line.startswith("::")]
    assert any(line.startswith("::error file=") and "title=imbalance undefined_category::" in line for line in lines)


def test_distribution_warnings_by_hand(tmp_path):
    d = _clean()
    d["categories"].append({"id": 3, "name": "unused"})
    d["categories"].append({"id": 4, "name": "single"})
    d["images"].append({"id": 4, "width": 100, "height": 100})  # image without boxes
    d["annotations"].append({"id": 20, "image_id": 1, "category_id": 4, "bbox": [1, 1, 4, 4], "iscrowd": 0})
    # 60 more cats -> imbalance ratio (3 + 60) / 1 = 63 >= 50; one huge cat -> beyond 5 sigma
    for k in range(60):
        d["annotations"].append({"id": 100 + k, "image_id": 2, "category_id": 1, "bbox": [1, 1, 10, 10], "iscrowd": 0})
    d["annotations"].append({"id": 999, "image_id": 3, "category_id": 1, "bbox": [0, 0, 99, 99], "iscrowd": 0})
    p = _write(tmp_path, d)
    res = run_check(p)
    assert res.passed  # warnings only, fail on error
    rules = {f.rule: f for f in res.findings}
    assert rules["unused_class"].category_id == 3
    assert rules["few_instances"].category_id == 4 and rules["few_instances"].value == 1
    assert rules["imbalance_ratio"].value == pytest.approx(64 / 1)  # cat has 3 + 60 + 1 = 64 boxes, single has 1
    assert rules["images_without_boxes"].value == pytest.approx(1 / 4)
    # independent 5-sigma check of the 'cat' widths
    w = np.array([21, 22, 18] + [10] * 60 + [99], dtype=float)
    n_out = int((np.abs(w - w.mean()) > 5 * w.std()).sum())
    outl = [f for f in res.findings if f.rule == "size_outlier" and f.category_id == 1 and "width" in f.message]
    assert n_out == 1 and outl and outl[0].value == 1
    # 61 of 64 widths in [10, 18.9): the top bin holds >= 80% -> skewed
    assert any(f.rule == "skewed_distribution" and f.category_id == 1 for f in res.findings)
    assert runner.invoke(app, ["check", str(p), "--fail-on", "warning"]).exit_code == 1
    # a rules file can raise thresholds and switch rules off
    rules_toml = tmp_path / "rules.toml"
    rules_toml.write_text(
        'fail_on = "warning"\n[rules.imbalance_ratio]\nthreshold = 100\n'
        '[rules.few_instances]\nseverity = "off"\n[rules.unused_class]\nseverity = "info"\n'
        '[rules.images_without_boxes]\nmax_share = 0.5\n[rules.size_outlier]\nseverity = "off"\n'
        '[rules.skewed_distribution]\nseverity = "off"\n'
    )
    res2 = run_check(p, load_rules(rules_toml))
    assert {f.rule for f in res2.findings} == {"unused_class"} and res2.passed
    assert runner.invoke(app, ["check", str(p), "--rules", str(rules_toml)]).exit_code == 0


def test_drift_against_baseline(tmp_path):
    p = _write(tmp_path, _clean())
    edges = np.linspace(0, 1, 11).tolist()
    # baseline: class 1 only (+ class 5 no longer used), all relative areas in the last bin
    baseline = {
        "schema": "imbalance.stats/1",
        "classes": [{"id": 1, "name": "cat", "instances": 3}, {"id": 5, "name": "gone", "instances": 3}],
        "scale": {"relative_area": {"edges": edges, "counts": [0] * 9 + [6]}},
    }
    b = _write(tmp_path, baseline, "stats.json")
    res = runner.invoke(app, ["check", str(p), "--baseline", str(b), "--report-format", "json"])
    assert res.exit_code == 0  # drift rules are warnings by default
    rep = json.loads(res.stdout)
    f = {x["rule"]: x for x in rep["findings"]}
    # current: cat 3, dog 3, gone 0 -> p = (1/2, 1/2, 0); baseline (1/2, 0, 1/2) -> TV = 1/2
    assert f["drift_class_tv"]["value"] == pytest.approx(0.5)
    assert f["drift_new_class"]["category_id"] == 2 and f["drift_missing_class"]["category_id"] == 5
    # relative areas sqrt(wh)/100 of the six boxes (none on a bin edge), W1 against all mass at bin centre 0.95
    ra = np.sqrt([21 * 21, 31 * 31, 22 * 18, 25 * 35, 18 * 24, 28 * 33]) / 100
    centres = (np.array(edges[:-1]) + np.array(edges[1:])) / 2
    cur = centres[np.minimum((ra * 10).astype(int), 9)]
    assert f["drift_scale_wasserstein"]["value"] == pytest.approx(np.mean(0.95 - cur))


def test_real_coco_subset_passes_and_bad_input_exit_2(tmp_path):
    assert runner.invoke(app, ["check", str(COCO_VAL)]).exit_code == 0
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"images": [')
    assert runner.invoke(app, ["check", str(bad_json)]).exit_code == 2
    assert runner.invoke(app, ["check", str(tmp_path / "missing.json")]).exit_code == 2
    assert runner.invoke(app, ["check", str(COCO_VAL), "--report-format", "xml"]).exit_code == 2
    assert runner.invoke(app, ["check", str(COCO_VAL), "--fail-on", "info"]).exit_code == 2
    rules = tmp_path / "r.toml"
    rules.write_text("[rules.no_such_rule]\nthreshold = 1\n")
    r = runner.invoke(app, ["check", str(COCO_VAL), "--rules", str(rules)])
    assert r.exit_code == 2 and "no_such_rule" in r.output
    rules.write_text("[rules.imbalance_ratio\n")
    assert runner.invoke(app, ["check", str(COCO_VAL), "--rules", str(rules)]).exit_code == 2
    notstats = _write(tmp_path, {"schema": "other"}, "b.json")
    assert runner.invoke(app, ["check", str(COCO_VAL), "--baseline", str(notstats)]).exit_code == 2


def test_train_vs_val_drift_uses_class_tv(tmp_path):
    """Baseline built from the real COCO train subset's raw JSON; the TV is recomputed here."""

    def counts(path):
        d = json.loads(gzip.decompress(path.read_bytes()))
        c = {}
        for a in d["annotations"]:
            if not a.get("iscrowd") and a["bbox"][2] > 0 and a["bbox"][3] > 0:
                c[a["category_id"]] = c.get(a["category_id"], 0) + 1
        return c, sorted(x["id"] for x in d["categories"])

    ct, ids = counts(COCO_TRAIN)
    cv, _ = counts(COCO_VAL)
    pt = np.array([ct.get(i, 0) for i in ids], float)
    pv = np.array([cv.get(i, 0) for i in ids], float)
    tv = 0.5 * np.abs(pt / pt.sum() - pv / pv.sum()).sum()
    base = _write(
        tmp_path,
        {"schema": "imbalance.stats/1", "classes": [{"id": i, "instances": ct.get(i, 0)} for i in ids]},
        "stats.json",
    )
    rep = run_check(COCO_VAL, load_rules(None), json.loads(base.read_text()))
    f = [x for x in rep.findings if x.rule == "drift_class_tv"]
    assert f and f[0].value == pytest.approx(tv)


def test_anchor_rules_from_rules_file(tmp_path):
    from imbalance_cli.stats.batches import anchor_counts

    p = _write(tmp_path, _clean())
    rules = tmp_path / "rules.toml"
    rules.write_text('[anchors]\npreset = "retinanet"\n[rules.anchor_neg_pos_ratio]\nthreshold = 10\n')
    res = run_check(p, load_rules(rules))
    assert "anchor_neg_pos_ratio" in res.rules_run
    from imbalance_cli.check import load_for_check

    ac = anchor_counts(load_for_check(p)[0], "retinanet")
    f = [x for x in res.findings if x.rule == "anchor_neg_pos_ratio"]
    assert f and f[0].value == pytest.approx(ac["background_total"] / ac["foreground_total"])
    rules.write_text('[anchors]\npreset = "retinanet"\ncolour = "red"\n')
    assert runner.invoke(app, ["check", str(p), "--rules", str(rules)]).exit_code == 2


def test_example_rules_file_and_several_files(tmp_path):
    from conftest import ROOT

    r = load_rules(ROOT / "examples" / "ci" / "rules.toml")
    assert r.anchors == "retinanet" and r.get("drift_class_tv", "severity") == "error"
    assert r.get("images_without_boxes", "max_share") == 0.05
    good, bad = _write(tmp_path, _clean(), "good.json"), _write(tmp_path, _broken(), "bad.json")
    res = runner.invoke(app, ["check", str(good), str(bad), "--report-format", "json"])
    assert res.exit_code == 1
    rep = json.loads(res.stdout)
    assert [f["passed"] for f in rep["files"]] == [True, False] and rep["passed"] is False
    assert runner.invoke(app, ["check", str(good), str(good)]).exit_code == 0
