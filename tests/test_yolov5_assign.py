"""YOLOv5 assignment (utils/loss.py build_targets), letterbox geometry and AutoAnchor's metric().

Expected values come from hand computation and from a slow per-box re-implementation written
from YOLOv5's build_targets semantics (not from the vectorised code under test).
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from conftest import COCO_TRAIN, REAL

from imbalance_cli.anchors.kinds import KINDS, kind_of, resolve
from imbalance_cli.anchors.yolov5 import (
    YOLOV5,
    assign_yolov5,
    autoanchor_metric,
    letterbox_boxes,
    letterbox_geometry,
    num_anchors,
)

F = np.float32
ANCHORS = [[(10, 13), (16, 30), (33, 23)], [(30, 61), (62, 45), (59, 119)], [(116, 90), (156, 198), (373, 326)]]
STRIDES = [8, 16, 32]


def slow_build_targets(boxes, box_image, ph, pw, anchor_t=4.0, g=0.5):
    """One (image, level, anchor, gj, gi, box) tuple per build_targets entry, by looping over boxes.

    Per box and level: target in grid units t = xywh / (W, H) * (nx, ny) (float32); anchor a is
    kept when max(w/aw, aw/w, h/ah, ah/h) < anchor_t; the cells are the centre, and the left / up /
    right / down neighbour when the fractional part of x (y, nx - x, ny - y) is below g and the
    value above 1; indices truncated and clamped to the grid.
    """
    out = []
    for n, (b, im) in enumerate(zip(boxes, box_image)):
        x1, y1, x2, y2 = (F(v) for v in b)
        W, H = F(pw[im]), F(ph[im])
        cxn, cyn = ((x1 + x2) / F(2)) / W, ((y1 + y2) / F(2)) / H
        wn, hn = (x2 - x1) / W, (y2 - y1) / H
        for lv, s in enumerate(STRIDES):
            nx, ny = pw[im] // s, ph[im] // s
            gx, gy, w, h = cxn * F(nx), cyn * F(ny), wn * F(nx), hn * F(ny)
            for a, (aw, ah) in enumerate(ANCHORS[lv]):
                aw, ah = F(aw) / F(s), F(ah) / F(s)
                rw, rh = w / aw, h / ah
                if not max(rw, F(1) / rw, rh, F(1) / rh) < F(anchor_t):
                    continue
                cells = [(0.0, 0.0)]
                if gx % F(1) < F(g) and gx > 1:
                    cells.append((g, 0.0))
                if gy % F(1) < F(g) and gy > 1:
                    cells.append((0.0, g))
                if (F(nx) - gx) % F(1) < F(g) and F(nx) - gx > 1:
                    cells.append((-g, 0.0))
                if (F(ny) - gy) % F(1) < F(g) and F(ny) - gy > 1:
                    cells.append((0.0, -g))
                for ox, oy in cells:
                    gi = min(max(int(gx - F(ox)), 0), nx - 1)
                    gj = min(max(int(gy - F(oy)), 0), ny - 1)
                    out.append((int(im), lv, a, gj, gi, n))
    return sorted(out)


def decode(res, ph, pw):
    """MatchOutput positives -> sorted (image, level, anchor, gj, gi, box) using an independent layout."""
    out = []
    for im, anc, lv, box in zip(res.pos_image, res.pos_anchor, res.pos_level, res.pos_box):
        im, lv = int(im), int(lv)
        off = sum((ph[im] // s) * (pw[im] // s) * 3 for s in STRIDES[:lv])
        cell, a = divmod(int(anc) - off, 3)
        gj, gi = divmod(cell, pw[im] // STRIDES[lv])
        out.append((im, lv, a, gj, gi, int(box)))
    return sorted(out)


def test_registry():
    assert KINDS["yolov5"].assigner is assign_yolov5 and KINDS["yolov5"].presets == {"yolov5": YOLOV5}
    assert kind_of(" YOLOv5") is KINDS["yolov5"] and resolve("yolov5") is YOLOV5 and resolve(YOLOV5) is YOLOV5
    assert kind_of("retinanet") is None and resolve("retinanet") is None and resolve(None) is None
    assert [list(map(tuple, lv)) for lv in YOLOV5.anchors] == ANCHORS and list(YOLOV5.strides) == STRIDES


def test_hand_case_one_box():
    # 20x20 box centred at (101, 101) in a 640x640 input.
    # P3 (grid 80): gx = 12.625 -> centre cell 12, frac .625 (no left); 80 - 12.625 = 67.375, frac .375 -> right;
    #   same in y -> down. Anchors 10x13 (ratios 2, 1.54), 16x30 (1.25, 1.5), 33x23 (1.65, 1.15) all < 4: 3 x 3 = 9.
    # P4 (grid 40): gx = 6.3125 -> frac .3125 -> left (cell 5); right side frac .6875 no; same in y -> up.
    #   30x61 (1.5, 3.05) ok, 62x45 (3.1, 2.25) ok, 59x119 (h ratio 5.95) no: 2 x 3 = 6.
    # P5: 116x90 (5.8), 156x198, 373x326 all fail. Total 15 entries.
    ph, pw = np.array([640]), np.array([640])
    res = assign_yolov5(YOLOV5, np.array([[91.0, 91.0, 111.0, 111.0]]), np.array([0]), ph, pw)
    got = decode(res, ph, pw)
    exp = sorted(
        [(0, 0, a, gj, gi, 0) for a in range(3) for gj, gi in ((12, 12), (12, 13), (13, 12))]
        + [(0, 1, a, gj, gi, 0) for a in range(2) for gj, gi in ((6, 6), (6, 5), (5, 6))]
    )
    assert got == exp
    # best ratio metric: 16x30 gives min(16/20, 20/30) = 2/3 on P3 (the box's best anchor, centre cell 12, 12)
    assert res.box_max_iou[0] == pytest.approx(2 / 3, rel=1e-6)
    assert int(res.box_best_level[0]) == 0 and int(res.box_best_anchor[0]) == (12 * 80 + 12) * 3 + 1
    # pos_iou holds each entry's ratio metric, e.g. 10x13 -> min(10/20, 13/20) = 0.5
    p3_a0 = [x for x, lv, anc in zip(res.pos_iou, res.pos_level, res.pos_anchor) if lv == 0 and anc % 3 == 0]
    assert np.allclose(p3_a0, 0.5)
    assert res.ignored_per_image.tolist() == [0]


def test_hand_case_edges_and_no_match():
    # a box centred in cell (0, 0) of P3 (gx = 0.25 < 1: no left neighbour although frac < .5);
    # a 2x2 box matches nothing (smallest anchor 10x13: ratio 5 > 4).
    ph, pw = np.array([64]), np.array([64])
    boxes = np.array(
        [
            [-3.0, -3.0, 7.0, 7.0],  # 10x10 centred at (2, 2): gx = 0.25
            [30.0, 30.0, 32.0, 32.0],
        ]
    )
    res = assign_yolov5(YOLOV5, boxes, np.array([0, 0]), ph, pw)
    got = decode(res, ph, pw)
    assert all(e[5] == 0 for e in got)
    # P3 anchors 10x13 and 16x30 (ratio 3 < 4) and 33x23 (3.3): centre (0,0) only
    assert [e[:5] for e in got if e[1] == 0] == [(0, 0, 0, 0, 0), (0, 0, 1, 0, 0), (0, 0, 2, 0, 0)]
    assert res.box_max_iou[1] < 0.25


def test_matches_slow_reimplementation_on_random_boxes():
    rng = np.random.default_rng(3)
    n_img = 12
    ph = (rng.integers(4, 21, n_img) * 32).astype(np.int64)
    pw = (rng.integers(4, 21, n_img) * 32).astype(np.int64)
    N = 600
    bi = rng.integers(0, n_img, N)
    w = np.exp(rng.uniform(np.log(2), np.log(500), N))
    h = w * np.exp(rng.uniform(-1.5, 1.5, N))
    cx, cy = rng.uniform(0, 1, N) * pw[bi], rng.uniform(0, 1, N) * ph[bi]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    res = assign_yolov5(YOLOV5, boxes, bi, ph, pw)
    assert decode(res, ph, pw) == slow_build_targets(boxes, bi, ph, pw)
    assert len(res.pos_box) > N  # several entries per box on average
    # images= restricts to those images' boxes
    sub = assign_yolov5(YOLOV5, boxes, bi, ph, pw, images=[0, 1])
    assert decode(sub, ph, pw) == [e for e in slow_build_targets(boxes, bi, ph, pw) if e[0] in (0, 1)]


def test_letterbox_geometry_by_hand():
    # (w, h) = (640, 427): r = 1, 427 -> pad (640 - 427) % 32 = 21 -> 448, dh/2 = 10.5
    # (500, 375): r = 1.28 -> 640 x 480, no pad; (333, 500): r = 1.28, round(426.24) = 426 -> +22 = 448, dw/2 = 11
    r, ph, pw, px, py = letterbox_geometry(np.array([427, 375, 500]), np.array([640, 500, 333]))
    assert ph.tolist() == [448, 480, 640] and pw.tolist() == [640, 640, 448]
    assert px.tolist() == [0.0, 0.0, 11.0] and py.tolist() == [10.5, 0.0, 0.0]
    assert r.tolist() == pytest.approx([1.0, 1.28, 1.28])
    b = letterbox_boxes(np.array([[10.0, 20.0, 30.0, 40.0]]), np.array([500]), np.array([333]))
    np.testing.assert_allclose(b, [[10 * 1.28 + 11, 20 * 1.28, 30 * 1.28 + 11, 40 * 1.28]], rtol=1e-6)
    assert num_anchors(YOLOV5, np.array([640]), np.array([640])).tolist() == [3 * (80 * 80 + 40 * 40 + 20 * 20)]


def test_autoanchor_metric_by_hand():
    # 20x20 label: x per anchor = min(min(r, 1/r)): 10x13 .5, 16x30 .667, 33x23 .606, 30x61 .328, 62x45 .323,
    # 59x119 .168, 116x90 .172, 156x198 .128, 373x326 .054 -> best .667 > .25; 5 anchors above 1/4.
    # 3x3 label: best is 10x13 with min(3/10, 3/13) = .23 < .25 -> not recalled, no anchor above.
    m = autoanchor_metric(np.array([[20.0, 20.0], [3.0, 3.0]]), np.array(ANCHORS, float).reshape(-1, 2), 4.0)
    assert m["bpr"] == pytest.approx(0.5) and m["aat"] == pytest.approx((5 + 0) / 2) and m["labels"] == 2


def test_autoanchor_bpr_of_sample_from_coco_original():
    """BPR / aat of the bundled YOLO sample's train split from the COCO json, computed here independently."""
    from imbalance_cli import load
    from imbalance_cli.data.yolo import split_datasets
    from imbalance_cli.stats.yolov5 import yolov5_statistics

    d = json.loads(gzip.decompress(COCO_TRAIN.read_bytes()))
    size = {im["id"]: (im["width"], im["height"]) for im in d["images"]}
    anchors = np.array(ANCHORS, float).reshape(-1, 2)
    best, above = [], []
    for a in d["annotations"]:
        if a["iscrowd"]:
            continue
        W, H = size[a["image_id"]]
        s = 640 / max(W, H)
        w, h = a["bbox"][2] * s, a["bbox"][3] * s
        xs = [min(w / aw, aw / w, h / ah, ah / h) for aw, ah in anchors]
        best.append(max(xs))
        above.append(sum(x > 0.25 for x in xs))
    train = split_datasets(load(REAL / "yolo-coco-mini" / "data.yaml"))["train"]
    st = yolov5_statistics(train)
    aa = st["autoanchor"]
    assert aa["labels"] == len(best) == 731
    assert aa["bpr"] == pytest.approx(np.mean(np.array(best) > 0.25))
    assert aa["aat"] == pytest.approx(np.mean(above), abs=1e-6)
    # every box whose best metric passes gets at least its centre cell; the others get none
    assert st["boxes_without_positive"] == int(np.sum(np.array(best) <= 0.25))
    assert (
        sum(st["per_class_positive"].values())
        == st["foreground_entries"]
        == sum(lv["foreground"] for lv in st["levels"])
    )
    assert st["foreground"] + st["background"] == st["anchors"]
    assert st["foreground"] <= st["foreground_entries"]


def test_matches_slow_reimplementation_on_grid_aligned_and_border_boxes():
    # centres exactly on cell borders and half-cells (fractions 0 and .5 on every level), on the image border
    # (cx = W: gx = nx, clamped), and sizes exactly at the ratio limit 4 (10x13 anchor: w = 40 fails, 39.9 passes)
    ph, pw = np.array([96, 64]), np.array([128, 160])
    rows, bi = [], []
    for im in range(2):
        for cx in (0.0, 4.0, 8.0, 12.0, 16.0, 32.0, float(pw[im]) - 4.0, float(pw[im])):
            for cy in (0.0, 8.0, 24.0, float(ph[im])):
                for w, h in ((2.5, 3.25), (40.0, 52.0), (39.9, 51.9), (64.0, 64.0), (300.0, 80.0)):
                    rows.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
                    bi.append(im)
    boxes, bi = np.array(rows), np.array(bi)
    res = assign_yolov5(YOLOV5, boxes, bi, ph, pw)
    assert decode(res, ph, pw) == slow_build_targets(boxes, bi, ph, pw)


def test_positives_per_box_equal_yolov5_build_targets_on_the_sample():
    """Every box of the bundled sample's train split gets exactly the (level, anchor, gj, gi) entries YOLOv5's own
    ``ComputeLoss.build_targets`` gives it, through YOLOv5's own letterbox / xywhn2xyxy / xyxy2xywhn(clip, eps)
    (tests/data/yolo-variants/yolov5-build-targets.json, recorded by tools/yolo_fixtures.py with yolov5 7.0.14)."""
    from pathlib import Path

    from conftest import FIXTURES

    from imbalance_cli import load
    from imbalance_cli.data.yolo import split_datasets

    rec = json.loads((FIXTURES / "yolo-variants" / "yolov5-build-targets.json").read_text())["images"]
    train = split_datasets(load(REAL / "yolo-coco-mini" / "data.yaml"))["train"]
    H, W = train.heights, train.widths
    order = np.arange(train.num_boxes)  # the sample has only valid boxes, in label-file order per image
    assert train.valid_mask().all()
    bimg = train.box_image
    r, ph, pw, _px, _py = letterbox_geometry(H, W)
    lb = letterbox_boxes(train.boxes[order], H[bimg], W[bimg])
    res = assign_yolov5(YOLOV5, lb, bimg, ph, pw)
    got: dict[int, list] = {}
    for im, anc, lv, box in zip(res.pos_image, res.pos_anchor, res.pos_level, res.pos_box):
        im, lv = int(im), int(lv)
        off = sum((ph[im] // s) * (pw[im] // s) * 3 for s in STRIDES[:lv])
        cell, a = divmod(int(anc) - off, 3)
        gj, gi = divmod(cell, pw[im] // STRIDES[lv])
        got.setdefault(int(box), []).append([lv, a, gj, gi])
    checked = 0
    for row, name in enumerate(train.file_names):
        e = rec.get(Path(name).name)
        boxes = np.flatnonzero(bimg == row)
        if e is None:
            assert len(boxes) == 0
            continue
        assert e["padded_hw"] == [int(ph[row]), int(pw[row])]
        assert len(e["entries"]) == len(boxes)
        for k, b in enumerate(boxes):
            assert sorted(got.get(int(b), [])) == e["entries"][k], (name, k)
            checked += 1
    assert checked == train.num_boxes == 731
