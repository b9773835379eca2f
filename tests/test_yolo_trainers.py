"""The YOLO loader held to what Ultralytics 8.4 and YOLOv5 7.0 themselves report on the same folders.

Expected values: ``tests/data/yolo-variants/record-ultralytics.json`` and ``record-yolov5.json``,
written by ``tools/yolo_fixtures.py`` running each framework's own dataset code (``YOLODataset`` /
``LoadImagesAndLabels``) on a copy of the fixtures (versions in the records and the folder's README).
Per split: which images are kept and which are corrupt, each kept image's shape and label rows
(float32), the found / missing / empty / corrupt counters, duplicates removed, boxes and instances
per class. The records were made with the working directory at the fixtures' parent folder (a
list file's lines without ``./`` are relative to it): the tests run from ``tests/data`` too.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pytest
from conftest import FIXTURES

from imbalance_cli.data import yolo

VARIANTS = FIXTURES / "yolo-variants"


def _record(name: str) -> dict:
    return json.loads((VARIANTS / f"record-{name}.json").read_text())


def _norm(p: str) -> str:
    return str(p).replace(str(VARIANTS.resolve()), "<root>")


def _corrupt_in(messages: list[str]) -> set[str]:
    out = set()
    for m in messages:
        if "ignoring corrupt image/label" in m:
            path = m.split(": ", 1)[1] if m.startswith(("train: ", "val: ")) else m
            path = path.replace("WARNING ⚠️ ", "").split(": ignoring corrupt")[0]
            out.add(path)
    return out


def _dups_in(messages: list[str]) -> dict[str, int]:
    out = {}
    for m in messages:
        g = re.search(r"(\S+): (\d+) duplicate labels removed", m)
        if g:
            out[g.group(1)] = int(g.group(2))
    return out


def _ours(monkeypatch, version: int, yaml_name: str = "data.yaml"):
    monkeypatch.chdir(FIXTURES)
    return yolo.load(f"yolo-variants/{yaml_name}", version=version, cache=False)


@pytest.mark.parametrize(
    "framework,version,yaml_name",
    [("ultralytics", 8, "data.yaml"), ("ultralytics", 8, "data-cwd.yaml"), ("yolov5", 5, "data.yaml")],
)
def test_counts_as_the_trainer(monkeypatch, framework, version, yaml_name):
    rec = _record(framework)["datasets"][yaml_name]
    ds = _ours(monkeypatch, version, yaml_name)
    assert list(ds.category_names) == rec["names"]
    parts = yolo.split_datasets(ds)
    for split, theirs in rec["splits"].items():
        part = parts[split]
        counts = ds.info["split_counts"][split]
        # images kept, with their (EXIF-oriented) shapes
        kept = {_norm(f): (int(h), int(w)) for f, w, h in zip(part.file_names, part.widths, part.heights)}
        assert kept == {f: tuple(v["shape_hw"]) for f, v in theirs["labels"].items()}, split
        # corrupt images (image or label), listed with their reasons
        ours_corrupt = {_norm(f) for f in ds.info["corrupt_files"] if _norm(f) in _split_files(split, theirs, ds)}
        assert ours_corrupt == _corrupt_in(theirs["messages"]), split
        assert counts["corrupt_images"] == theirs["corrupt"]
        assert counts["images_listed"] == theirs["listed"]
        assert counts["images"] == theirs["images"]
        assert counts["label_files_found"] == theirs["found"]
        assert counts["label_files_missing"] == theirs["missing"]
        assert counts["label_files_empty"] == theirs["empty"]
        # label rows per image (float32 values, any order: the trainers reorder rows when removing duplicates)
        row_of = {_norm(f): r for r, f in enumerate(part.file_names)}
        cls_all = []
        for f, v in theirs["labels"].items():
            r = row_of[f]
            sel = part.box_image == r
            if framework == "yolov5" and any(c >= len(rec["names"]) for c in v["cls"]):
                continue  # class >= nc: YOLOv5 keeps the row, its train.py stops (our info["fatal"], below)
            exp = sorted(map(tuple, _pixels(v, clip=version == 8)))
            got = sorted(map(tuple, np.column_stack([part.box_category[sel], part.boxes[sel]]).tolist()))
            assert len(got) == len(exp), f
            np.testing.assert_allclose(np.array(got).reshape(-1, 5), np.array(exp).reshape(-1, 5), atol=1e-9, err_msg=f)
            cls_all += [int(c) for c in np.trunc(v["cls"])]
        # duplicates removed per image
        ours_dups = Counter(
            _norm(yolo.label2img_stem(d.split(":")[0]))
            for d in ds.info["duplicates"]
            if _norm(d).startswith(f"<root>/labels/{'train' if split == 'train' else 'listed'}")
        )
        theirs_dups = {f.rsplit(".", 1)[0]: n for f, n in _dups_in(theirs["messages"]).items()}
        if split == "train":
            assert dict(ours_dups) == theirs_dups
        inst = {str(k): int(v) for k, v in Counter(part.box_category.tolist()).items()}
        exp_inst = {k: v for k, v in theirs["instances"].items() if int(k) < len(rec["names"])}
        assert inst == exp_inst
        assert part.num_boxes == sum(exp_inst.values())


def _split_files(split, theirs, ds) -> set[str]:
    """Every file the trainer listed for ``split`` (kept or corrupt), normalised."""
    out = set(theirs["labels"]) | _corrupt_in(theirs["messages"])
    return out


def _pixels(v: dict, clip: bool) -> list:
    """The trainer's float32 rows as (class, x1, y1, x2, y2) pixels of its shape; clipped to the image as
    Ultralytics' transforms clip (``Instances.clip``) when ``clip``."""
    H, W = v["shape_hw"]
    a = np.array(v["xywhn"], np.float32).astype(np.float64).reshape(-1, 4)
    xyxy = np.column_stack(
        [
            (a[:, 0] - a[:, 2] / 2) * W,
            (a[:, 1] - a[:, 3] / 2) * H,
            (a[:, 0] + a[:, 2] / 2) * W,
            (a[:, 1] + a[:, 3] / 2) * H,
        ]
    )
    if clip:
        xyxy = np.clip(xyxy, 0, [W, H, W, H])
    return np.column_stack([np.trunc(v["cls"]), xyxy]).tolist()


def test_tolerance_rows_are_clipped_to_the_image(monkeypatch):
    """tol_over: cx 1.005 (w 0.01) and w 1.009 are accepted by Ultralytics and clipped by its
    transforms (xyxy to the image)."""
    ds = _ours(monkeypatch, 8)
    r = [i for i, f in enumerate(ds.file_names) if f.endswith("tol_over.png")][0]
    b = ds.boxes[ds.box_image == r]
    W = 40.0
    # (1.005 - 0.005) * 40 = 40 -> clipped at 40 on both sides: a zero-width box at the right edge
    assert b[:, 0].min() >= 0 and b[:, 2].max() <= W
    full = b[np.argmax(b[:, 2] - b[:, 0])]
    np.testing.assert_allclose(full[[0, 2]], [0.0, W])


def test_yolov5_fatal_class_and_bom(monkeypatch):
    ds = _ours(monkeypatch, 5)
    fatal = [_norm(f) for f in ds.info["fatal"]]
    assert fatal == [
        "<root>/labels/train/cls_equal_nc.txt:1: class 3 exceeds nc=3 (YOLOv5's train.py stops: "
        "'Label class exceeds nc')",
        "<root>/labels/train/cls_out_of_range.txt:2: class 999 exceeds nc=3 (YOLOv5's train.py stops: "
        "'Label class exceeds nc')",
    ]
    assert any(_norm(c).startswith("<root>/labels/train/bom.txt:1: ") for c in ds.info["corrupt"])


def test_corrupt_entries_name_file_and_line(monkeypatch):
    ds = _ours(monkeypatch, 8)
    entries = {_norm(c) for c in ds.info["corrupt"]}
    assert "<root>/labels/train/cls_out_of_range.txt:2: class 999 is not below nc=3 (classes 0..2)" in entries
    assert (
        "<root>/labels/train/mixed.txt:2: a box row in a file of segment rows (Ultralytics: 'labels mix "
        "segment and detection rows')" in entries
    )
    assert any(e.startswith("<root>/images/train/img_jpeg_half.jpg: ") for e in entries)
    theirs = _record("ultralytics")["datasets"]["data.yaml"]["splits"]
    assert (
        ds.info["bad_line_count"] + ds.info["unreadable_images"]
        == ds.info["corrupt_image_count"]
        == theirs["train"]["corrupt"] + theirs["val"]["corrupt"]
    )


# ---- imbalance check on YOLO data: findings with file and line, exit 1 -----------------------------------------------
def test_check_fails_naming_file_and_line(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from imbalance_cli.cli import app

    monkeypatch.chdir(FIXTURES)
    runner = CliRunner()
    r = runner.invoke(app, ["check", "yolo-variants/data.yaml", "--report-format", "json", "-q"])
    assert r.exit_code == 1, r.output
    rep = json.loads(r.stdout)
    # one result per split (data.yaml[train], data.yaml[val]), each with that split's own findings
    assert [_norm(f["path"]).rsplit("/", 1)[-1] for f in rep["files"]] == ["data.yaml[train]", "data.yaml[val]"]
    by_rule = {}
    for f in (f for file in rep["files"] for f in file["findings"]):
        agg = by_rule.setdefault(f["rule"], {"severity": f["severity"], "value": 0, "locations": []})
        agg["value"] += f["value"]
        agg["locations"] += f.get("locations", [])
    assert by_rule["corrupt_label"]["severity"] == "error"
    locs = {(_norm(x["file"]), x.get("line")) for x in by_rule["corrupt_label"]["locations"]}
    assert ("<root>/labels/train/cls_out_of_range.txt", 2) in locs and ("<root>/labels/train/mixed.txt", 2) in locs
    # every corrupt image the trainer skips is a finding (label or image), each with its file
    theirs = _record("ultralytics")["datasets"]["data.yaml"]["splits"]
    n = sum(s["corrupt"] for s in theirs.values())
    assert by_rule["corrupt_label"]["value"] + by_rule["corrupt_image"]["value"] == n
    assert by_rule["missing_label"]["value"] == 1 and by_rule["duplicate_label"]["value"] == 3
    assert ("<root>/labels/train/dup_exact.txt", 2) in {
        (_norm(x["file"]), x.get("line")) for x in by_rule["duplicate_label"]["locations"]
    }
    # GitHub annotations point at each label file and line
    r = runner.invoke(app, ["check", "yolo-variants/data.yaml", "--report-format", "github", "-q"])
    assert r.exit_code == 1
    assert any(ln.startswith("::error file=") and "cls_out_of_range.txt,line=2," in ln for ln in r.stdout.splitlines())
    # severities are configurable in the rules file
    rules = tmp_path / "rules.toml"
    rules.write_text(
        "[rules.corrupt_label]\nseverity = 'warning'\n[rules.corrupt_image]\nseverity = 'off'\n"
        "[rules.missing_label]\nseverity = 'info'\n[rules.duplicate_label]\nseverity = 'off'\n"
        "[rules.invalid_box]\nseverity = 'warning'\n"
    )  # zero-size and clipped-away boxes
    r = runner.invoke(app, ["check", "yolo-variants/data.yaml", "--rules", str(rules), "-q"])
    assert r.exit_code == 0, r.output
    assert "PASSED" in r.output


def test_check_a_single_class_out_of_range_exits_1(tmp_path):
    """The issue's case: one label line '999 0.5 0.5 0.1 0.1' must fail the gate with the file and line."""
    from PIL import Image
    from typer.testing import CliRunner

    from imbalance_cli.cli import app

    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "labels" / split).mkdir(parents=True)
        for k in range(2):
            Image.new("RGB", (64, 48)).save(tmp_path / "images" / split / f"{k}.png")
            (tmp_path / "labels" / split / f"{k}.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.2 0.2\n")
    (tmp_path / "labels" / "train" / "1.txt").write_text("0 0.5 0.5 0.2 0.2\n999 0.5 0.5 0.1 0.1\n")
    (tmp_path / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a, b]\n")
    r = CliRunner().invoke(app, ["check", str(tmp_path / "data.yaml"), "-q"])
    assert r.exit_code == 1
    assert f"{tmp_path / 'labels' / 'train' / '1.txt'}:2: class 999 is not below nc=2" in r.output
    assert "Traceback" not in r.output


# ---- the yolov5 preset in batches, compare and check; compare by name ----------------------------------------------
def test_yolov5_preset_in_batches_compare_and_check_equals_stats():
    from conftest import REAL
    from typer.testing import CliRunner

    from imbalance_cli import load
    from imbalance_cli.cli import app
    from imbalance_cli.stats.batches import anchor_counts
    from imbalance_cli.stats.yolov5 import yolov5_statistics

    sample = REAL / "yolo-coco-mini" / "data.yaml"
    train = yolo.split_datasets(load(sample))["train"]
    st = yolov5_statistics(train)
    ac = anchor_counts(train, "yolov5")
    # the same assignment as `stats --anchors yolov5`: distinct foreground anchors, entries per class, boxes without
    assert ac["foreground_total"] == st["foreground"] and ac["background_total"] == st["background"]
    assert {str(k): int(v) for k, v in enumerate(ac["per_class_positive"])} == st["per_class_positive"]
    assert ac["boxes_without_positive"] == st["boxes_without_positive"]
    runner = CliRunner()
    r = runner.invoke(app, ["batches", str(sample), "--anchors", "yolov5", "--json", "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["foreground_share"]["preset"] == "yolov5"
    r = runner.invoke(
        app, ["check", str(sample), "--split", "train", "--anchors", "yolov5", "--report-format", "json", "-q"]
    )
    assert r.exit_code in (0, 1) and "anchor_no_positive" in json.loads(r.stdout)["rules_run"]


def test_compare_pairs_classes_by_name_when_both_name_them(tmp_path):
    """A YOLO dataset (class 0 = person) against its COCO original (person = id 1): paired by name, TV 0."""
    from conftest import COCO_VAL, REAL
    from typer.testing import CliRunner

    from imbalance_cli.cli import app

    y = tmp_path / "val.yaml"
    names = (REAL / "yolo-coco-mini" / "data.yaml").read_text().split("names:", 1)[1]
    y.write_text(f"path: {REAL / 'yolo-coco-mini'}\ntrain: images/val2017\nval: images/val2017\nnames:{names}")
    r = CliRunner().invoke(app, ["compare", str(y), str(COCO_VAL), "--split", "val", "--json", "-q"])
    assert r.exit_code == 0, r.output
    c = json.loads(r.stdout)["classes"]
    assert c["paired_by"] == "name"
    person = [x for x in c["per_class"] if x["name"] == "person"][0]
    assert (person["id_a"], person["id_b"]) == (0, 1)
    # the val split (the same 79 images) against their COCO file: every class equal
    assert c["tv"] == pytest.approx(0.0, abs=1e-12)
    assert all(x["instances_a"] == x["instances_b"] for x in c["per_class"])
    # 'nc' alone names nothing: paired by id, and said
    y.write_text(f"path: {REAL / 'yolo-coco-mini'}\ntrain: images/val2017\nval: images/val2017\nnc: 80\n")
    r = CliRunner().invoke(app, ["compare", str(y), str(COCO_VAL), "--split", "val", "--json", "-q"])
    assert json.loads(r.stdout)["classes"]["paired_by"] == "id"


# ---- the fast paths agree with the exact ones ---------------------------------------------------------------------
def test_image_fast_path_agrees_with_pillow_on_every_fixture_and_mutation(monkeypatch):
    """Plain PNG/JPEG files are read without Pillow; on every fixture image, and on byte-flipped and truncated copies
    of a PNG and a JPEG, the verdict equals Pillow's open + verify path (the trainers' own check)."""
    import random

    from conftest import REAL

    from imbalance_cli.data import yolo_images as Y

    files = (
        sorted(str(p) for p in (VARIANTS / "images").rglob("*.*"))
        + sorted(str(p) for p in (REAL / "yolo-coco-mini" / "images").rglob("*.png"))[:20]
    )

    def exact(path, version):
        with monkeypatch.context() as m:
            m.setattr(Y, "_fast", lambda *a: None)
            return Y.verify_image(path, version)

    answered = 0
    for f in files:
        for v in (8, 5):
            assert Y.verify_image(f, v) == exact(f, v), (f, v)
        answered += Y._fast(f, 8, Y.FORMATS[8]) is not None
    assert answered >= 20  # the fast path does answer for plain files
    rng = random.Random(0)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for src in ("img_jpeg_ok.jpg", "ok.png"):
            data = (VARIANTS / "images" / "train" / src).read_bytes()
            for k in range(150):
                b = bytearray(data)
                if k % 3 == 0:
                    b = b[: rng.randrange(1, len(b))]
                else:
                    for _ in range(rng.randint(1, 3)):
                        b[rng.randrange(len(b))] = rng.randrange(256)
                p = f"{d}/m{k}{src[-4:]}"
                with open(p, "wb") as fh:
                    fh.write(bytes(b))
                assert Y.verify_image(p) == exact(p, 8), (src, k)


def test_label_batch_parser_agrees_with_the_file_parser():
    """parse_labels (plain files parsed together) gives what parse_label gives file by file, on every fixture label and
    on generated plain, duplicated, out-of-range and malformed files."""
    from imbalance_cli.data.yolo_rules import parse_label, parse_labels

    datas = [p.read_bytes() for p in sorted((VARIANTS / "labels").rglob("*.txt"))]
    rng = np.random.default_rng(1)
    for k in range(300):
        n = int(rng.integers(1, 9))
        rows = [
            f"{int(rng.integers(-1, 5))} {rng.uniform(-0.02, 1.02):.6f} {rng.uniform(0, 1):.4f} "
            f"{rng.uniform(-0.01, 1):.5f} {rng.uniform(0, 1):.3f}"
            for _ in range(n)
        ]
        if k % 7 == 0:
            rows.append(rows[0])
        if k % 11 == 0:
            rows.insert(0, "  ")
        datas.append(("\r\n" if k % 5 == 0 else "\n").join(rows).encode() + (b"\n" if k % 2 else b""))
    for version in (8, 5):
        for nc in (3, None):
            batch = parse_labels(datas, nc, version)
            for d, got in zip(datas, batch):
                exp = parse_label(d, nc, version)
                assert (got.bad, got.empty, got.fatal, got.duplicates) == (
                    exp.bad,
                    exp.empty,
                    exp.fatal,
                    exp.duplicates,
                ), d
                assert np.array_equal(got.cls, exp.cls) and np.array_equal(got.xywhn, exp.xywhn), d
                assert np.array_equal(got.lines, exp.lines), d


def test_yolov5_version_stats_stops_on_a_class_over_nc_as_train_py(monkeypatch):
    from typer.testing import CliRunner

    from imbalance_cli.cli import app

    monkeypatch.chdir(FIXTURES)
    r = CliRunner().invoke(app, ["stats", "yolo-variants/data.yaml", "--yolo-version", "5", "--anchors", "none", "-q"])
    assert r.exit_code == 2 and "class 3 exceeds nc=3" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["stats", "yolo-variants/data.yaml", "--yolo-version", "7", "--anchors", "none"])
    assert r.exit_code == 2 and "--yolo-version must be 8" in r.output
    r = CliRunner().invoke(
        app,
        [
            "stats",
            str(FIXTURES.parent.parent / "examples" / "data" / "coco-mini_instances_val2017.json.gz"),
            "--yolo-version",
            "5",
        ],
    )
    assert r.exit_code == 2 and "--yolo-version applies to YOLO datasets" in r.output
