"""The per-box table (issue 23): ``boxes.parquet`` / ``Report.boxes``, one row per analysed box.

Expected values come from outside the code under test: a plain matcher written here (every anchor against every
box, torchvision's ``Matcher`` and mmdetection's ``MaxIoUAssigner`` rules) for the per-box ignored and positive
counts, torchvision's own per-image output (``tests/data/torchvision-oracle``) for the sums per image and class,
the annotation file read with the ``json`` module for the rows and ids, the YOLO label files themselves for the
label file and line, and a hand-made image for the ``ignored-only`` status.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from brute_force import pairwise_iou
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from imbalance_cli import analyze, load
from imbalance_cli.anchors.culled import culled_match_dataset
from imbalance_cli.anchors.dense import dense_match_dataset
from imbalance_cli.anchors.generator import grid_anchors
from imbalance_cli.anchors.presets import AnchorPreset, ResizePolicy, get_preset
from imbalance_cli.cli import app
from imbalance_cli.data.dataset import Dataset

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"
COCO_VAL = DATA / "coco-mini_instances_val2017.json.gz"
YOLO = DATA / "yolo-coco-mini" / "data.yaml"
ORACLE = ROOT / "tests" / "data" / "torchvision-oracle"
runner = CliRunner()


# ------------------------------------------------------------------------------------------------ a plain matcher
def plain_labels(boxes: torch.Tensor, anchors: torch.Tensor, hi: float, lo: float, semantics: str, low_quality: bool):
    """(labels per anchor: box index, -1 negative, -2 ignored; each anchor's own best box), every pair compared."""
    iou = pairwise_iou(boxes, anchors)
    M, A = iou.shape
    own = torch.tensor([int(torch.nonzero(iou[:, a] == iou[:, a].max())[0]) for a in range(A)])  # first box on ties
    best = iou.max(dim=0).values
    lab = torch.where(best >= hi, own, torch.where(best >= lo, torch.tensor(-2), torch.tensor(-1)))
    if low_quality:
        for g in range(M):
            tied = torch.nonzero(iou[g] == iou[g].max()).flatten()
            lab[tied] = own[tied] if semantics == "torchvision" else g  # mmdet: later boxes override
    return lab, own


def plain_counts(boxes, anchors, semantics, low_quality):
    lab, own = plain_labels(boxes, anchors, 0.5, 0.4, semantics, low_quality)
    M = len(boxes)
    pos = np.bincount(lab[lab >= 0].numpy(), minlength=M)
    ign = np.bincount(own[lab == -2].numpy(), minlength=M)
    return pos, ign


SMALL = AnchorPreset(
    name="small",
    sizes=((16.0, 24.0), (64.0,)),
    aspect_ratios=((0.5, 1.0, 2.0), (1.0,)),
    strides=(8, 32),
    level_names=("A", "B"),
    resize=ResizePolicy(None, None, (96, 128), 32),
    pos_iou=0.5,
    neg_iou=0.4,
)


@st.composite
def box_sets(draw):
    n = draw(st.integers(1, 8))
    out = []
    for _ in range(n):
        if out and draw(st.integers(0, 5)) == 0:  # a duplicate: exact ties between boxes
            out.append(list(out[draw(st.integers(0, len(out) - 1))]))
            continue
        x, y = draw(st.floats(-10, 120)), draw(st.floats(-10, 90))
        w, h = draw(st.floats(2, 90)), draw(st.floats(2, 90))
        out.append([x, y, x + w, y + h])
    return np.array(out, np.float32)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(boxes=box_sets(), semantics=st.sampled_from(["torchvision", "mmdet"]), low_quality=st.booleans())
def test_per_box_positive_and_ignored_counts_equal_a_plain_matcher(boxes, semantics, low_quality):
    ph, pw = SMALL.resize.fixed
    anchors, _ = grid_anchors(SMALL, ph, pw)
    pos, ign = plain_counts(torch.from_numpy(boxes), anchors, semantics, low_quality)
    img = np.zeros(len(boxes), np.int64)
    kw = dict(semantics=semantics, allow_low_quality=low_quality)
    c = culled_match_dataset(SMALL, boxes, img, [ph], [pw], **kw)
    d, _, _ = dense_match_dataset(SMALL, boxes, img, [ph], [pw], **kw)
    for res in (c, d):
        assert np.bincount(res.pos_box, minlength=len(boxes)).tolist() == pos.tolist()
        assert res.box_ignored.tolist() == ign.tolist()
        assert int(res.box_ignored.sum()) == int(res.ignored_per_image.sum())


# ------------------------------------------------------------------------------------------------ torchvision
def test_table_sums_per_image_and_class_equal_torchvision():
    """Per image, the rows' positive and ignored anchors add up to torchvision's own labels of that image."""
    oracle = json.loads((ORACLE / "anchors_coco-mini_instances_val2017.json").read_text())
    ds = load(str(COCO_VAL))
    df = analyze(ds, anchors="retinanet", matcher="torchvision", device="cpu").boxes
    assert df is not None and len(df) == sum(r["boxes"] for r in oracle["images"])
    by_image = df.groupby("image_id", observed=True)
    pos, ign = by_image["positive_anchors"].sum(), by_image["ignored_anchors"].sum()
    for rec in oracle["images"]:
        exp = rec["model"]  # retinanet's default stride rule
        if rec["boxes"] == 0:
            assert rec["image_id"] not in pos.index and exp["foreground"] == 0
            continue
        assert (int(pos[rec["image_id"]]), int(ign[rec["image_id"]])) == (exp["foreground"], exp["ignored"])
        rows = df[df.image_id == rec["image_id"]]
        per_class = rows.groupby("category_id")["positive_anchors"].sum()
        assert {str(k): int(v) for k, v in per_class.items() if v} == exp["per_class_positive"]


# ------------------------------------------------------------------------------------------------ the CLI's file
@pytest.fixture(scope="module")
def coco_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("boxes") / "report"
    res = runner.invoke(app, ["stats", str(COCO_VAL), "--out", str(out), "--no-advice", "-q"])
    assert res.exit_code == 0, res.output
    return pd.read_parquet(out / "boxes.parquet"), json.loads((out / "stats.json").read_text())


@pytest.mark.slow
def test_parquet_has_one_row_per_valid_box_with_the_file_ids(coco_report):
    df, _ = coco_report
    raw = json.loads(gzip.decompress(COCO_VAL.read_bytes()))
    names = {im["id"]: im["file_name"] for im in raw["images"]}
    cats = {c["id"]: c["name"] for c in raw["categories"]}
    valid = [a for a in raw["annotations"] if not a.get("iscrowd") and a["bbox"][2] > 0 and a["bbox"][3] > 0]
    assert sorted(df.annotation_id) == sorted(a["id"] for a in valid)
    row = {a["id"]: a for a in valid}
    for r in df.itertuples():
        a = row[r.annotation_id]
        assert (r.image_id, r.file_name, r.category_id, r.category) == (
            a["image_id"],
            names[a["image_id"]],
            a["category_id"],
            cats[a["category_id"]],
        )
        area = a["bbox"][2] * a["bbox"][3]  # COCO's thresholds on the box's own w*h
        assert r.size_group == ("small" if area < 32**2 else "medium" if area < 96**2 else "large")
    assert list(df.image_id) == sorted(df.image_id, key=[im["id"] for im in raw["images"]].index)  # image order
    assert set(df.status.cat.categories) == {"positive", "ignored-only", "none"}


@pytest.mark.slow
def test_parquet_status_counts_agree_with_stats_json_per_class_and_size_group(coco_report):
    df, rep = coco_report
    a = rep["anchors"]
    no_pos = df.status.isin(["none", "ignored-only"])
    assert (no_pos == (df.positive_anchors == 0)).all()
    assert int((df.status == "none").sum()) == a["boxes_without_positive"] - a["boxes_ignored_only"]
    assert int((df.status == "ignored-only").sum()) == a["boxes_ignored_only"]
    assert int(df.positive_anchors.sum()) == a["foreground"] and int(df.ignored_anchors.sum()) == a["ignored"]
    for key, col in (("by_class", "category_id"), ("by_size", "size_group")):
        for group, row in a["coverage"][key].items():
            sel = df[df[col].astype(str) == group]
            assert len(sel) == row["boxes"], (key, group)
            assert int((sel.status == "none").sum()) == row["without_positive"] - row["ignored_only"], (key, group)
            assert int((sel.status == "ignored-only").sum()) == row["ignored_only"], (key, group)
            assert int((sel.best_iou < a["thresholds"]["pos_iou"]).sum()) == row["below_positive_iou"], (key, group)
    per_class = df.groupby("category_id")["positive_anchors"].sum()
    assert {str(k): int(v) for k, v in per_class.items()} == {
        k: v for k, v in a["per_class_positive"].items() if k in a["coverage"]["by_class"]
    }
    levels = df.best_level.value_counts()
    assert {lv["name"]: lv["best_level_boxes"] for lv in a["levels"]} == {k: int(v) for k, v in levels.items()}


@pytest.mark.slow
def test_resized_sides_follow_torchvision_resize(coco_report):
    # torchvision GeneralizedRCNNTransform: s = min(800 / min(H, W), 1333 / max(H, W)); boxes times
    # float32(new) / float32(old) per axis, where new = floor(side * s)
    df, _ = coco_report
    raw = json.loads(gzip.decompress(COCO_VAL.read_bytes()))
    size = {im["id"]: (im["height"], im["width"]) for im in raw["images"]}
    bbox = {a["id"]: a["bbox"] for a in raw["annotations"]}
    for r in df.itertuples():
        H, W = size[r.image_id]
        s = min(800 / min(H, W), 1333 / max(H, W))
        fx, fy = np.float32(int(W * s)) / np.float32(W), np.float32(int(H * s)) / np.float32(H)
        x, y, w, h = (np.float32(v) for v in bbox[r.annotation_id])
        assert r.resized_width == pytest.approx(float((x + w) * fx - x * fx), abs=1e-3)
        assert r.resized_height == pytest.approx(float((y + h) * fy - y * fy), abs=1e-3)


@pytest.mark.slow
def test_definitions_travel_with_the_file(coco_report, tmp_path):
    import pyarrow.parquet as pq

    from imbalance_cli import vocabulary

    res = runner.invoke(app, ["stats", str(COCO_VAL), "--out", str(tmp_path / "r"), "--no-advice", "-q"])
    assert res.exit_code == 0, res.output
    meta = json.loads(pq.read_schema(tmp_path / "r" / "boxes.parquet").metadata[b"imbalance"])
    assert meta["preset"] == "retinanet" and meta["statuses"] == ["positive", "ignored-only", "none"]
    for col in coco_report[0].columns:
        assert meta["definitions"][col]["meaning"] == vocabulary.meaning(col)


@pytest.mark.slow
def test_no_table_without_anchors(tmp_path):
    res = runner.invoke(app, ["stats", str(COCO_VAL), "--anchors", "none", "--out", str(tmp_path / "r"), "-q"])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "r" / "boxes.parquet").exists()
    assert analyze(load(str(COCO_VAL))).boxes is None


# ------------------------------------------------------------------------------------------------ YOLO
@pytest.mark.slow
def test_yolo_rows_name_their_label_file_and_line(tmp_path):
    res = runner.invoke(app, ["stats", str(YOLO), "--split", "val", "--out", str(tmp_path / "r"), "--no-advice", "-q"])
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(tmp_path / "r" / "boxes.parquet")
    rep = json.loads((tmp_path / "r" / "stats.json").read_text())
    assert (
        len(df) == rep["anchors"]["boxes"]
        and int((df.positive_anchors == 0).sum()) == rep["anchors"]["boxes_without_positive"]
    )
    assert (df.ignored_anchors == 0).all() and set(df.status) <= {"positive", "none"}  # YOLOv5 ignores nothing
    lines = {}
    for r in df.itertuples():
        if r.label_file not in lines:
            lines[r.label_file] = Path(r.label_file).read_text().splitlines()
        cls, cx, cy, w, h = lines[r.label_file][r.label_line - 1].split()
        assert int(cls) == r.category_id
        assert Path(r.label_file).stem == Path(r.file_name).stem
        # YOLOv5's letterbox to 640: r = 640 / max(H, W); the label's normalised width times W times r
        from PIL import Image

        W, H = Image.open(r.file_name).size
        scale = 640 / max(H, W)
        assert r.resized_width == pytest.approx(float(w) * W * scale, abs=0.05)
        assert r.resized_height == pytest.approx(float(h) * H * scale, abs=0.05)


# ------------------------------------------------------------------------------------------------ by hand
def test_ignored_only_and_none_by_hand():
    """One 32 x 32 image; torchvision lays four 16 x 16 anchors centred on the stride-16 grid points:
    a0 = [-8, -8, 8, 8], a1 = [8, -8, 24, 8], a2 = [-8, 8, 8, 24], a3 = [8, 8, 24, 24]; low-quality matching off.

    A = [8, 8, 24, 20]: IoU with a3 = 16 * 12 / 256 = 0.75, positive. B = [-8, -8, 8, 2]: with a0 = 160 / 256 =
    0.625, positive. C = [9, 0, 24, 8]: with a1 = 15 * 8 / 256 = 0.469, in [0.4, 0.5): a1 is ignored and C has no
    positive -> ignored-only. D = [20, 20, 26, 26]: with a3 = 16 / (256 + 36 - 16) = 0.058 (a3's best box is A)
    -> none.
    """
    preset = AnchorPreset(
        name="tiny",
        sizes=((16.0,),),
        aspect_ratios=((1.0,),),
        strides=(16,),
        level_names=("P",),
        resize=ResizePolicy(None, None, (32, 32), 32),
        pos_iou=0.5,
        neg_iou=0.4,
        allow_low_quality=False,
    )
    ds = Dataset(
        image_ids=[1],
        widths=[32],
        heights=[32],
        boxes=[[8, 8, 24, 20], [-8, -8, 8, 2], [9, 0, 24, 8], [20, 20, 26, 26]],
        box_image=[0] * 4,
        box_category=[0, 0, 1, 1],
        category_ids=[1, 2],
        category_names=["a", "b"],
    )
    rep = analyze(ds, anchors=preset, device="cpu")
    df = rep.boxes
    assert list(df.status) == ["positive", "positive", "ignored-only", "none"]
    assert list(df.positive_anchors) == [1, 1, 0, 0] and list(df.ignored_anchors) == [0, 0, 1, 0]
    assert df.best_iou.tolist() == pytest.approx([0.75, 0.625, 120 / 256, 16 / 276])
    a = rep["anchors"]
    assert (a["boxes_without_positive"], a["boxes_ignored_only"], a["ignored"]) == (2, 1, 1)
    assert a["coverage"]["by_class"]["2"]["ignored_only"] == 1


@pytest.mark.slow
def test_dense_and_culled_tables_are_equal():
    ds = load(str(COCO_VAL)).subset_images(np.arange(20))
    kw = dict(anchors=replace(get_preset("retinanet"), stride_rule="model"), device="cpu", matcher="mmdet")
    a = analyze(ds, **kw).boxes
    from imbalance_cli.stats.anchors import anchor_statistics

    arrays: dict = {}
    anchor_statistics(ds, kw["anchors"], device="cpu", matcher="mmdet", engine="dense", box_arrays=arrays)
    assert a.positive_anchors.tolist() == arrays["positives"].tolist()
    assert a.ignored_anchors.tolist() == arrays["ignored"].tolist()
    assert a.best_iou.tolist() == arrays["max_iou"].tolist()


@pytest.mark.slow
def test_two_process_table_equals_one_process(tmp_path):
    """Under torchrun (2 CPU ranks, gloo, chunks dealt round-robin) the table is gathered in image order: the same
    Parquet rows as one process; rank 0 alone writes the report (gallery included)."""
    import subprocess
    import sys

    from test_distributed import _env, _torchrun

    one = subprocess.run(
        [
            sys.executable,
            "-m",
            "imbalance_cli",
            "stats",
            str(COCO_VAL),
            "--out",
            str(tmp_path / "one"),
            "--gallery",
            "2",
            "-q",
        ],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=240,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = _torchrun(
        [
            "-m",
            "imbalance_cli",
            "stats",
            str(COCO_VAL),
            "--out",
            str(tmp_path / "two"),
            "--gallery",
            "2",
            "--chunk-size",
            "7",
            "--workers",
            "1",
            "-q",
        ],
        tmp_path,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = (pd.read_parquet(tmp_path / d / "boxes.parquet") for d in ("one", "two"))
    pd.testing.assert_frame_equal(a, b)
    ga, gb = (json.loads((tmp_path / d / "stats.json").read_text())["gallery"] for d in ("one", "two"))
    assert ga == gb and ga["images"] == 2
