"""anchor_statistics: hand-made datasets, real COCO data against a straightforward per-image method,
JSON names of issue 3, figures and terminal tables."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from brute_force import brute_force_match

from imbalance_cli.anchors.generator import grid_anchors, padded_size, scale_boxes
from imbalance_cli.anchors.presets import AnchorPreset, ResizePolicy, get_preset
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError
from imbalance_cli.stats.anchors import anchor_statistics

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"

TINY = AnchorPreset(
    name="tiny",
    sizes=((16.0,),),
    aspect_ratios=((1.0,),),
    strides=(16,),
    level_names=("P",),
    resize=ResizePolicy(None, None, (32, 32), 32),
    pos_iou=0.5,
    neg_iou=0.4,
)


def test_hand_dataset_totals():
    # image 0 (32x32 fixed): box = anchor 3 exactly (1 positive, 3 negatives); image 1: no box (4 negatives);
    # image 2: the four-way tie box [0,0,16,16] (all 4 anchors low-quality positives); a crowd box ignored
    ds = Dataset(
        image_ids=[1, 2, 3],
        widths=[32, 32, 32],
        heights=[32, 32, 32],
        boxes=[[8, 8, 24, 24], [0, 0, 16, 16], [0, 0, 30, 30]],
        box_image=[0, 2, 0],
        box_category=[0, 1, 1],
        category_ids=[5, 7],
        category_names=["a", "b"],
        crowd=[False, False, True],
    )
    s = anchor_statistics(ds, TINY, device="cpu", negative_iou_sample="all")
    assert (s["images"], s["anchors"], s["foreground"], s["ignored"], s["background"]) == (3, 12, 5, 0, 7)
    assert s["per_class_positive"] == {"5": 1, "7": 4}
    assert s["per_image"]["foreground"] == pytest.approx(5 / 3)
    assert s["pos_neg_ratio"] == pytest.approx(5 / 7)
    # C = 2 sigmoid classifiers: negative tasks = 5 * (2 - 1) + 7 * 2 (RS-loss supp. Table S7)
    assert s["task_pos_neg_ratio"] == pytest.approx(5 / (5 * 1 + 7 * 2))
    # the tie box: best IoU 1/7, below the positive IoU, yet trained by its 4 low-quality positives (the two
    # meanings of "no positive", named apart in imbalance_cli.vocabulary)
    assert s["boxes_without_positive"] == 0 and s["boxes_below_positive_iou"] == 1
    assert s["boxes_below_negative"] == 1
    assert s["coverage"]["by_size"]["small"] == {
        "boxes": 2,
        "without_positive": 0,
        "ignored_only": 0,
        "below_positive_iou": 1,
        "below_negative": 1,
    }
    assert s["positive_iou"]["low_quality"] == 4
    assert sum(s["positive_iou"]["counts"]) == 5 and s["positive_iou"]["counts"][-1] == 1  # IoU 1.0 in last bin
    assert s["positive_iou"]["counts"][int((1 / 7) / 0.05)] == 4
    assert s["levels"] == [{"name": "P", "stride": 16, "anchors": 12, "foreground": 5, "best_level_boxes": 2}]
    # negatives' best IoU: image 0 anchors 0..2 have IoU 0 with [8,8,24,24]; image 1 all zero
    assert s["negative_iou"]["zero"] == 7 and sum(s["negative_iou"]["counts"]) == 0 and s["negative_iou"]["exact"]
    # Fig. 14: anchor 3 of image 0 has its corner at the box corner (0, 0); the tie box's anchors at -0.5 / +0.5
    sp = np.array(s["spatial"]["counts"])
    edges = np.array(s["spatial"]["edges"])

    def cell(v):
        return int(np.searchsorted(edges, v, side="right") - 1)

    assert sp.sum() == 5 and sp[cell(0.0), cell(0.0)] == 1 and sp[cell(-0.5), cell(-0.5)] == 1
    assert sp[cell(0.5), cell(0.5)] == 1 and sp[cell(-0.5), cell(0.5)] == 1
    json.dumps(s)


def test_anchor_statistics_json_names():
    ds = Dataset(
        image_ids=[1],
        widths=[64],
        heights=[48],
        boxes=[[4, 4, 40, 30]],
        box_image=[0],
        box_category=[0],
        category_ids=[1],
        category_names=["x"],
    )
    s = anchor_statistics(ds, "retinanet", device="cpu")
    for k in (
        "preset",
        "matcher",
        "device",
        "images",
        "anchors",
        "foreground",
        "background",
        "ignored",
        "per_image",
        "per_class_positive",
        "pos_neg_ratio",
        "task_pos_neg_ratio",
        "levels",
        "positive_iou",
        "negative_iou",
        "boxes_without_positive",
        "boxes_below_negative",
    ):
        assert k in s
    assert set(s["per_image"]) == {"anchors", "foreground", "background", "ignored"}
    assert set(s["levels"][0]) >= {"name", "stride", "anchors", "foreground", "best_level_boxes"}
    assert set(s["negative_iou"]) >= {"edges", "counts", "zero"} and set(s["positive_iou"]) >= {"edges", "counts"}
    assert s["positive_iou"]["edges"][1] == pytest.approx(0.05) and len(s["positive_iou"]["counts"]) == 20
    ph, pw = padded_size(48, 64, get_preset("retinanet"))
    assert s["anchors"] == len(grid_anchors(get_preset("retinanet"), ph, pw)[0])


@pytest.mark.slow
def test_real_coco_subset_matches_straightforward_method():
    import imbalance_cli

    ds = imbalance_cli.load(str(DATA / "coco-mini_instances_val2017.json.gz"))
    ds = ds.subset_images(np.arange(6))
    p = get_preset("retinanet")
    s = anchor_statistics(ds, "retinanet", device="cpu", negative_iou_sample="all")
    valid = ds.valid_mask()
    fg = ign = bg = total = no_pos = below_pos = below = 0
    per_class = np.zeros(ds.num_categories, np.int64)
    zero = 0
    for im in range(ds.num_images):
        H, W = ds.heights[im], ds.widths[im]
        ph, pw = padded_size(H, W, p)
        anchors, _ = grid_anchors(p, ph, pw)
        total += len(anchors)
        sel = np.flatnonzero((ds.box_image == im) & valid)
        if len(sel) == 0:
            bg += len(anchors)
            zero += len(anchors)
            continue
        b = torch.from_numpy(scale_boxes(ds.boxes[sel], np.full(len(sel), H), np.full(len(sel), W), p))
        m, iou, best = brute_force_match(anchors, b)
        fg += int((m >= 0).sum())
        ign += int((m == -2).sum())
        bg += int((m == -1).sum())
        np.add.at(per_class, ds.box_category[sel][m[m >= 0].numpy()], 1)
        no_pos += len(sel) - len(set(m[m >= 0].tolist()))  # boxes no anchor is matched to (low-quality counted)
        below_pos += int((best < 0.5).sum())  # boxes whose best IoU misses the positive threshold
        below += int((best < 0.4).sum())
        zero += int(((m == -1) & (iou.max(dim=0).values == 0)).sum())
    assert (s["anchors"], s["foreground"], s["ignored"], s["background"]) == (total, fg, ign, bg)
    assert s["per_class_positive"] == {str(int(c)): int(v) for c, v in zip(ds.category_ids, per_class)}
    assert (s["boxes_without_positive"], s["boxes_below_positive_iou"], s["boxes_below_negative"]) == (
        no_pos,
        below_pos,
        below,
    )
    assert below_pos > no_pos  # low-quality matching trains boxes below the positive IoU
    assert s["negative_iou"]["zero"] == zero
    assert fg > 0 and bg > 100 * fg  # the survey's foreground-background imbalance


@pytest.mark.slow
def test_dense_engine_gives_same_statistics():
    ds = Dataset(
        image_ids=[1, 2],
        widths=[200, 90],
        heights=[150, 120],
        boxes=[[10, 10, 80, 60], [12, 12, 82, 64], [0, 0, 3, 2], [30, 40, 90, 119]],
        box_image=[0, 0, 0, 1],
        box_category=[0, 1, 0, 1],
        category_ids=[1, 2],
        category_names=["a", "b"],
    )
    for preset in ("retinanet", "ssd300"):
        for matcher in ("torchvision", "mmdet"):
            a = anchor_statistics(ds, preset, matcher=matcher, device="cpu", negative_iou_sample="all")
            b = anchor_statistics(ds, preset, matcher=matcher, device="cpu", negative_iou_sample="all", engine="dense")
            diff = [k for k in a if k not in ("engine", "seconds") and a[k] != b[k]]
            assert diff == [], (preset, matcher, diff)


def test_options_and_errors():
    ds = Dataset(
        image_ids=[1],
        widths=[64],
        heights=[48],
        boxes=[[4, 4, 40, 30]],
        box_image=[0],
        box_category=[0],
        category_ids=[1],
        category_names=["x"],
    )
    s = anchor_statistics(ds, "ssd300", device="cpu")
    assert s["matcher"] == "ssd" and s["anchors"] == 8732  # torchvision's matcher for SSD is SSDMatcher
    s = anchor_statistics(ds, "rpn", device="cpu", pos_iou=0.6, neg_iou=0.2)
    assert s["thresholds"]["pos_iou"] == 0.6 and s["thresholds"]["neg_iou"] == 0.2
    assert s["negative_iou"]["edges"][-1] == pytest.approx(0.2)
    with pytest.raises(InputError, match="--matcher"):
        anchor_statistics(ds, matcher="yolo", device="cpu")
    with pytest.raises(InputError, match="--device"):
        anchor_statistics(ds, device="tpu")
    with pytest.raises(InputError, match="negative-iou-sample"):
        anchor_statistics(ds, device="cpu", negative_iou_sample="some")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA"):
            anchor_statistics(ds, device="cuda")
    bad = Dataset(
        image_ids=[1],
        widths=[float("nan")],
        heights=[48],
        boxes=np.zeros((0, 4)),
        box_image=[],
        box_category=[],
        category_ids=[1],
        category_names=["x"],
    )
    with pytest.raises(InputError, match="no usable size"):
        anchor_statistics(bad, device="cpu")


def test_negative_sample_is_seeded_and_stated():
    ds = Dataset(
        image_ids=list(range(1, 6)),
        widths=[100] * 5,
        heights=[80] * 5,
        boxes=[[10, 10, 50, 40]] * 5,
        box_image=list(range(5)),
        box_category=[0] * 5,
        category_ids=[1],
        category_names=["x"],
    )
    a = anchor_statistics(ds, device="cpu", negative_iou_sample=2, seed=1)
    b = anchor_statistics(ds, device="cpu", negative_iou_sample=2, seed=1)
    full = anchor_statistics(ds, device="cpu", negative_iou_sample="all")
    assert a["negative_iou"] == b["negative_iou"] and a["negative_iou"]["sample_images"] == 2
    assert not a["negative_iou"]["exact"] and full["negative_iou"]["exact"]
    # identical images: the sample's histogram is 2/5 of the full one
    assert [5 * v for v in a["negative_iou"]["counts"]] == [2 * v for v in full["negative_iou"]["counts"]]


@pytest.mark.slow
def test_figures_and_tables_render():
    from rich.console import Console

    from imbalance_cli.report import anchor_figures, anchor_tables

    ds = Dataset(
        image_ids=[1, 2],
        widths=[200, 90],
        heights=[150, 120],
        boxes=[[10, 10, 80, 60], [0, 0, 3, 2], [30, 40, 90, 119]],
        box_image=[0, 0, 1],
        box_category=[0, 0, 1],
        category_ids=[1, 2],
        category_names=["a", "b"],
    )
    s = anchor_statistics(ds, device="cpu")
    figs = anchor_figures.figures(s)
    names = [f[0] for f in figs]
    assert names == [
        "fig4a_foreground_background.png",
        "fig4b_positives_per_class.png",
        "fig12a_anchor_iou.png",
        "fig14_positive_spatial.png",
        "anchor_coverage.png",
    ]
    for _, title, fig, caption in figs:
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        assert buf.getvalue()[:4] == b"\x89PNG" and title and caption
    console = Console(file=io.StringIO(), width=120)
    anchor_tables.render(s, console)
    out = console.file.getvalue()
    assert "P3" in out and "foreground" in out and f"{s['foreground']:,}" in out
