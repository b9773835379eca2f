"""The ``retinanet`` preset held to torchvision 0.28.0's own modules, row for row.

Expected values are the oracle files in ``tests/data/torchvision-oracle/`` (made by torchvision's
``GeneralizedRCNNTransform``, ``AnchorGenerator``, ``box_iou`` and ``Matcher``; see the README there).
"""

import csv
import gzip
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from imbalance_cli.anchors.generator import padded_sizes, resize_boxes, resize_errors, resized_sizes
from imbalance_cli.anchors.presets import get_preset
from imbalance_cli.data import load
from imbalance_cli.stats.anchors import label_anchors

ORACLE = Path(__file__).parent / "data" / "torchvision-oracle"
EXAMPLES = Path(__file__).parent.parent / "examples" / "data"


def _rows(name):
    with gzip.open(ORACLE / name, "rt") as f:
        return list(csv.DictReader(f))


def test_resize_and_padding_every_row():
    p = get_preset("retinanet")
    rows = _rows("resize.csv.gz")
    assert len(rows) == 13521
    H = np.array([int(r["height"]) for r in rows])
    W = np.array([int(r["width"]) for r in rows])
    err = np.array([r["resized_height"] == "error" for r in rows])
    assert err.sum() == 19
    assert np.array_equal(resize_errors(H, W, p), err)
    rh, rw = resized_sizes(H, W, p)
    ph, pw = padded_sizes(H, W, p)
    ok = ~err
    for col, ours in (("resized_height", rh), ("resized_width", rw), ("padded_height", ph), ("padded_width", pw)):
        expected = np.array([int(r[col]) for r, o in zip(rows, ok) if o])
        assert np.array_equal(ours[ok], expected), col


def test_resize_boxes_every_row_as_float32():
    p = get_preset("retinanet")
    rows = _rows("boxes.csv.gz")
    assert len(rows) == 3000
    b = np.array([[float(r[k]) for k in ("x1", "y1", "x2", "y2")] for r in rows], dtype=np.float32)
    H = np.array([int(r["height"]) for r in rows])
    W = np.array([int(r["width"]) for r in rows])
    expected = np.array([[float(r[k]) for k in ("rx1", "ry1", "rx2", "ry2")] for r in rows], dtype=np.float32)
    ours = resize_boxes(b, H, W, p)
    assert ours.dtype == np.float32
    assert np.array_equal(ours, expected)


_DATASETS = {}


def _dataset(name):
    if name not in _DATASETS:
        _DATASETS[name] = load(str(EXAMPLES / f"coco-mini_instances_{name}2017.json.gz"))
    return _DATASETS[name]


@pytest.mark.slow
@pytest.mark.parametrize("subset", ["val", "train"])
@pytest.mark.parametrize("rule", ["fixed", "model"])
@pytest.mark.parametrize("engine", ["culled", "dense"])
def test_per_image_labels_equal_torchvision(subset, rule, engine):
    oracle = json.loads((ORACLE / f"anchors_coco-mini_instances_{subset}2017.json").read_text())
    ds = _dataset(subset)
    preset = replace(get_preset("retinanet"), stride_rule=rule)
    lab = label_anchors(ds, preset, matcher="torchvision", device="cpu", engine=engine)
    per = lab.per_image(ds.num_images)
    row_of = {int(i): k for k, i in enumerate(ds.image_ids)}
    cat_of_box = ds.box_category[lab.order]
    pos_cat = np.asarray(ds.category_ids)[cat_of_box[lab.result.pos_box]]
    nbox = np.bincount(lab.box_image, minlength=ds.num_images)
    assert len(oracle["images"]) == ds.num_images
    for rec in oracle["images"]:
        k = row_of[rec["image_id"]]
        exp = rec[rule]
        assert (int(lab.padded_h[k]), int(lab.padded_w[k])) == tuple(rec["padded"])
        assert int(nbox[k]) == rec["boxes"], rec["image_id"]
        got = {f: int(per[f][k]) for f in ("anchors", "foreground", "ignored", "background")}
        assert got == {f: exp[f] for f in got}, (rec["image_id"], got, exp)
        cats, cnt = np.unique(pos_cat[lab.result.pos_image == k], return_counts=True)
        assert {str(int(c)): int(n) for c, n in zip(cats, cnt)} == exp["per_class_positive"], rec["image_id"]
    tot = oracle[f"totals_{rule}"]
    assert int(per["foreground"].sum()) == tot["foreground"] and int(per["ignored"].sum()) == tot["ignored"]


def test_oracle_totals_of_the_coco_mini_subset():
    val = json.loads((ORACLE / "anchors_coco-mini_instances_val2017.json").read_text())
    assert val["totals_model"]["foreground"] == 14574 and val["totals_fixed"]["foreground"] == 14189
    assert get_preset("retinanet").stride_rule == "model"


@pytest.mark.slow
@pytest.mark.parametrize("subset", ["val", "train"])
def test_statistics_set_up_in_small_blocks_equal_torchvision(subset, monkeypatch):
    # the whole-dataset set-up (validity, scaling, size groups) runs block by block at full size;
    # blocks of 5 boxes and chunks of 7 images must still give torchvision's totals
    import imbalance_cli.stats.anchors as A

    monkeypatch.setattr(A, "SETUP_BLOCK", 5)
    oracle = json.loads((ORACLE / f"anchors_coco-mini_instances_{subset}2017.json").read_text())
    ds = _dataset(subset)
    preset = replace(get_preset("retinanet"), stride_rule="model")
    res = A.anchor_statistics(ds, preset, matcher="torchvision", device="cpu", chunk_images=7, workers=1)
    exp = [rec["model"] for rec in oracle["images"]]
    assert res["anchors"] == sum(e["anchors"] for e in exp)
    assert res["foreground"] == oracle["totals_model"]["foreground"]
    assert res["ignored"] == oracle["totals_model"]["ignored"]
    per_class = {}
    for e in exp:
        for c, n in e["per_class_positive"].items():
            per_class[c] = per_class.get(c, 0) + n
    assert {c: n for c, n in res["per_class_positive"].items() if n} == per_class


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mmdet-retinanet", "detectron2-retinanet"])
def test_framework_box_filters_do_not_depend_on_the_set_up_block(name, monkeypatch):
    # mmdetection and detectron2 drop some boxes (box_keep); filtering 3 boxes at a time keeps the same ones
    import imbalance_cli.stats.anchors as A

    ds = _dataset("val")
    whole = A.anchor_statistics(ds, name, device="cpu", workers=1)
    monkeypatch.setattr(A, "SETUP_BLOCK", 3)
    blocked = A.anchor_statistics(ds, name, device="cpu", workers=1)
    for key in ("boxes", "anchors", "foreground", "ignored", "per_class_positive", "coverage", "box_max_iou"):
        assert blocked[key] == whole[key], key
