"""Matcher semantics (torchvision / mmdet / ssd), the dense vs culled engines, and torchvision agreement.

The oracles below are straightforward re-implementations of the documented rules, written here
independently of the product: torchvision ``Matcher`` (+ ``set_low_quality_matches_``),
mmdetection ``MaxIoUAssigner`` (``gt_max_assign_all=True``, ``min_pos_iou=0``, a Python loop
over boxes) and torchvision ``SSDMatcher``; plus torchvision's ``AnchorGenerator`` and
``DefaultBoxGenerator`` arithmetic in plain torch.
"""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imbalance_cli.anchors.culled import culled_match_dataset
from imbalance_cli.anchors.dense import dense_match_dataset
from imbalance_cli.anchors.generator import grid_anchors, padded_size, scale_boxes
from imbalance_cli.anchors.matcher import match
from imbalance_cli.anchors.presets import AnchorPreset, ResizePolicy, get_preset


# ------------------------------------------------------------------------------------------------
# oracles
# ------------------------------------------------------------------------------------------------
def ref_iou(boxes, anchors):
    """Pairwise IoU (M, A) in float32, written out."""
    area_b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area_a = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    x1 = torch.max(boxes[:, None, 0], anchors[None, :, 0])
    y1 = torch.max(boxes[:, None, 1], anchors[None, :, 1])
    x2 = torch.min(boxes[:, None, 2], anchors[None, :, 2])
    y2 = torch.min(boxes[:, None, 3], anchors[None, :, 3])
    inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    return inter / (area_b[:, None] + area_a[None, :] - inter)


def first_argmax(v):
    m = v.max()
    return int(torch.nonzero(v == m)[0])


def ref_torchvision(iou, hi, lo, allow_low_quality=True):
    M, A = iou.shape
    out = torch.empty(A, dtype=torch.int64)
    best = torch.empty(A, dtype=torch.int64)
    for a in range(A):
        col = iou[:, a]
        best[a] = first_argmax(col)
        v = col.max()
        out[a] = best[a] if v >= hi else (-2 if v >= lo else -1)
    if allow_low_quality:
        for g in range(M):
            tied = torch.nonzero(iou[g] == iou[g].max()).flatten()
            out[tied] = best[tied]
    return out


def ref_mmdet(iou, hi, lo):
    M, A = iou.shape
    vals, arg = iou.max(dim=0)
    assigned = torch.full((A,), -2, dtype=torch.int64)  # mmdet -1 (ignore) -> our -2
    assigned[vals < lo] = -1
    assigned[vals >= hi] = arg[vals >= hi]
    for g in range(M):  # gt_max_assign_all, min_pos_iou = 0: later boxes override
        assigned[iou[g] == iou[g].max()] = g
    return assigned


def ref_ssd(iou, t):
    M, A = iou.shape
    out = ref_torchvision(iou, t, t, allow_low_quality=False)
    for g in range(M):
        out[first_argmax(iou[g])] = g
    return out


def ref_anchor_generator(sizes, ratios, strides, ph, pw):
    """torchvision AnchorGenerator arithmetic with fixed strides."""
    out = []
    for size, ratio, s in zip(sizes, ratios, strides):
        scales = torch.as_tensor(size, dtype=torch.float32)
        ar = torch.as_tensor(ratio, dtype=torch.float32)
        h_r = torch.sqrt(ar)
        w_r = 1 / h_r
        ws = (w_r[:, None] * scales[None, :]).view(-1)
        hs = (h_r[:, None] * scales[None, :]).view(-1)
        base = (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()
        gh, gw = math.ceil(ph / s), math.ceil(pw / s)
        sx = torch.arange(0, gw, dtype=torch.int32) * s
        sy = torch.arange(0, gh, dtype=torch.int32) * s
        yy, xx = torch.meshgrid(sy, sx, indexing="ij")
        xx, yy = xx.reshape(-1), yy.reshape(-1)
        shifts = torch.stack((xx, yy, xx, yy), dim=1)
        out.append((shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4))
    return torch.cat(out)


def ref_ssd_boxes():
    """torchvision DefaultBoxGenerator for ssd300_vgg16, written out."""
    ars = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
    scales = [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05]
    steps = [8, 16, 32, 64, 100, 300]
    fmaps = [38, 19, 10, 5, 3, 1]
    out = []
    for k, f in enumerate(fmaps):
        s_k, s_p = scales[k], math.sqrt(scales[k] * scales[k + 1])
        wh = [[s_k, s_k], [s_p, s_p]]
        for ar in ars[k]:
            wh += [[s_k * math.sqrt(ar), s_k / math.sqrt(ar)], [s_k / math.sqrt(ar), s_k * math.sqrt(ar)]]
        wh = torch.as_tensor(wh, dtype=torch.float32).clamp(0, 1)
        xf = 300 / steps[k]
        c = ((torch.arange(0, f) + 0.5) / xf).to(torch.float32)
        cy, cx = torch.meshgrid(c, c, indexing="ij")
        centres = torch.stack((cx.reshape(-1), cy.reshape(-1)) * len(wh), dim=-1).reshape(-1, 2)
        d = torch.cat((centres, wh.repeat(f * f, 1)), dim=1)
        size = torch.tensor([300, 300])
        out.append(torch.cat([(d[:, :2] - 0.5 * d[:, 2:]) * size, (d[:, :2] + 0.5 * d[:, 2:]) * size], -1))
    return torch.cat(out)


# ------------------------------------------------------------------------------------------------
# hand-computed cases
# ------------------------------------------------------------------------------------------------
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


def _tiny_match(boxes, semantics="torchvision", allow=True, engine="dense"):
    anchors, _ = grid_anchors(TINY, 32, 32)
    b = torch.tensor(boxes, dtype=torch.float32)
    return match(anchors, b, 0.5, 0.4, allow, semantics, engine, layout=(TINY, 32, 32))


def test_hand_anchors():
    anchors, _ = grid_anchors(TINY, 32, 32)
    # 2 x 2 grid, centres (0,0), (16,0), (0,16), (16,16), base [-8, -8, 8, 8]
    assert anchors.tolist() == [[-8, -8, 8, 8], [8, -8, 24, 8], [-8, 8, 8, 24], [8, 8, 24, 24]]


@pytest.mark.parametrize("engine", ["dense", "culled"])
def test_hand_one_box_exact_anchor(engine):
    r = _tiny_match([[8, 8, 24, 24]], engine=engine)
    assert r.matched.tolist() == [-1, -1, -1, 0]
    assert r.box_max_iou.tolist() == [1.0]


@pytest.mark.parametrize("engine", ["dense", "culled"])
def test_hand_ignored_band_and_low_quality(engine):
    # box inside anchor 3: IoU = 16*7 / 256 = 0.4375 in [0.4, 0.5): ignored, unless low-quality
    r = _tiny_match([[8, 8, 24, 15]], allow=False, engine=engine)
    assert r.matched.tolist() == [-1, -1, -1, -2]
    r = _tiny_match([[8, 8, 24, 15]], allow=True, engine=engine)
    assert r.matched.tolist() == [-1, -1, -1, 0]
    assert r.box_max_iou.item() == pytest.approx(0.4375)


@pytest.mark.parametrize("engine", ["dense", "culled"])
def test_hand_four_way_tie_low_quality(engine):
    # box [0,0,16,16] overlaps each anchor by 8x8: IoU 64 / 448 = 1/7 for all four -> all tie
    r = _tiny_match([[0, 0, 16, 16]], engine=engine)
    assert r.matched.tolist() == [0, 0, 0, 0]
    assert r.box_max_iou.item() == pytest.approx(1 / 7)
    r = _tiny_match([[0, 0, 16, 16]], allow=False, engine=engine)
    assert r.matched.tolist() == [-1, -1, -1, -1]


@pytest.mark.parametrize("engine", ["dense", "culled"])
def test_tie_rule_torchvision_vs_mmdet_vs_ssd(engine):
    # box A has IoU 1 with anchor 3; box B's best anchor is also anchor 3 (IoU 256/352)
    boxes = [[8, 8, 24, 24], [8, 8, 24, 30]]
    assert _tiny_match(boxes, "torchvision", engine=engine).matched.tolist() == [-1, -1, -1, 0]  # own best box
    assert _tiny_match(boxes, "mmdet", engine=engine).matched.tolist() == [-1, -1, -1, 1]  # later box overrides
    assert _tiny_match(boxes, "ssd", engine=engine).matched.tolist() == [-1, -1, -1, 1]  # forced, later wins
    r = _tiny_match(boxes, "mmdet", engine=engine)
    assert r.iou[3].item() == pytest.approx(256 / 352)  # IoU with the matched box


def test_torchvision_low_quality_takes_anchor_own_best_box():
    # tiny box B inside anchor 3 with a low best IoU; anchor 3 is better for A (IoU 0.3 < 0.4):
    # torchvision makes anchor 3 positive for A, mmdet for B
    anchors, _ = grid_anchors(TINY, 32, 32)
    boxes = torch.tensor([[8, 8, 24, 12.8], [10, 10, 12, 12]], dtype=torch.float32)
    iou = ref_iou(boxes, anchors)
    assert iou[0, 3] > iou[1, 3] and iou[0].max() < 0.4
    for engine in ("dense", "culled"):
        tv = match(anchors, boxes, 0.5, 0.4, True, "torchvision", engine, layout=(TINY, 32, 32)).matched
        mm = match(anchors, boxes, 0.5, 0.4, True, "mmdet", engine, layout=(TINY, 32, 32)).matched
        assert tv.tolist() == ref_torchvision(iou, 0.5, 0.4).tolist() == [-1, -1, -1, 0]
        assert mm.tolist() == ref_mmdet(iou, 0.5, 0.4).tolist() == [-1, -1, -1, 1]


def test_no_boxes_all_background():
    anchors, _ = grid_anchors(TINY, 32, 32)
    for engine in ("dense", "culled"):
        r = match(anchors, torch.zeros((0, 4)), 0.5, 0.4, True, "torchvision", engine, layout=(TINY, 32, 32))
        assert r.matched.tolist() == [-1, -1, -1, -1]


def test_dense_chunking_does_not_change_result():
    p = get_preset("retinanet")
    anchors, _ = grid_anchors(p, 128, 160)
    g = torch.tensor([[10, 10, 60, 50], [12, 8, 62, 52], [100, 20, 101, 21], [0, 0, 160, 128]], dtype=torch.float32)
    for sem in ("torchvision", "mmdet", "ssd"):
        a = match(anchors, g, 0.5, 0.4, True, sem, "dense")
        b = match(anchors, g, 0.5, 0.4, True, sem, "dense", max_elements=1000)
        assert torch.equal(a.matched, b.matched) and torch.equal(a.box_max_iou, b.box_max_iou)


# ------------------------------------------------------------------------------------------------
# property test: culled == dense == oracle
# ------------------------------------------------------------------------------------------------
SMALL = AnchorPreset(
    name="small",
    sizes=((16.0, 24.0), (48.0,)),
    aspect_ratios=((0.5, 1.0, 2.0), (1.0, 3.0)),
    strides=(8, 32),
    level_names=("A", "B"),
    resize=ResizePolicy(None, None, (96, 128), 32),
    pos_iou=0.5,
    neg_iou=0.4,
)
RETINA_SMALL = AnchorPreset(**{**get_preset("retinanet").__dict__, "resize": ResizePolicy(None, None, (128, 192), 32)})


def draw_boxes(draw, n, h=128, w=192):
    """``n`` boxes [x1, y1, x2, y2] of every kind (tiny, huge, thin, partly outside, on the grid, duplicated) for an
    image of padded size ``h`` x ``w`` (also used by ``test_anchors_kernel.py``)."""
    boxes = []
    for _ in range(n):
        kind = draw(st.sampled_from(["any", "tiny", "huge", "thin", "outside", "grid", "dup"]))
        if kind == "dup" and boxes:
            boxes.append(list(boxes[draw(st.integers(0, len(boxes) - 1))]))
            continue
        x = draw(st.floats(-20, w, allow_nan=False))
        y = draw(st.floats(-20, h, allow_nan=False))
        if kind == "tiny":
            bw, bh = draw(st.floats(0.05, 3)), draw(st.floats(0.05, 3))
        elif kind == "huge":
            bw, bh = draw(st.floats(150, 900)), draw(st.floats(150, 900))
            x, y = x - bw / 2, y - bh / 2
        elif kind == "thin":
            bw, bh = draw(st.floats(0.5, 4)), draw(st.floats(40, 200))
            if draw(st.booleans()):
                bw, bh = bh, bw
        elif kind == "outside":
            bw, bh = draw(st.floats(10, 100)), draw(st.floats(10, 100))
            x, y = -bw / 2, h - bh / 2
        elif kind == "grid":  # on the anchor grid: exact ties
            s = draw(st.sampled_from([8, 16]))
            x, y = s * draw(st.integers(0, 12)), s * draw(st.integers(0, 10))
            bw, bh = s * draw(st.integers(1, 6)), s * draw(st.integers(1, 6))
        else:
            bw, bh = draw(st.floats(1, 150)), draw(st.floats(1, 150))
        boxes.append([x, y, x + bw, y + bh])
    return boxes


@st.composite
def box_sets(draw):
    return torch.tensor(draw_boxes(draw, draw(st.integers(1, 7))), dtype=torch.float32)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    boxes=box_sets(),
    preset=st.sampled_from([SMALL, RETINA_SMALL]),
    semantics=st.sampled_from(["torchvision", "mmdet", "ssd"]),
    allow=st.booleans(),
)
@pytest.mark.slow
def test_property_culled_equals_dense_equals_oracle(boxes, preset, semantics, allow):
    ph, pw = preset.resize.fixed
    anchors, _ = grid_anchors(preset, ph, pw)
    d = match(anchors, boxes, 0.5, 0.4, allow, semantics, "dense")
    c = match(anchors, boxes, 0.5, 0.4, allow, semantics, "culled", layout=(preset, ph, pw))
    assert torch.equal(d.matched, c.matched)
    assert torch.equal(d.box_max_iou, c.box_max_iou)
    known = ~torch.isnan(c.iou)
    assert torch.equal(c.iou[known], d.iou[known])
    assert known[d.matched >= 0].all()
    iou = ref_iou(boxes, anchors)
    assert torch.equal(d.box_max_iou, iou.max(dim=1).values)
    if semantics == "torchvision":
        expected = ref_torchvision(iou, 0.5, 0.4, allow)
    elif semantics == "mmdet":
        expected = ref_mmdet(iou, 0.5, 0.4) if allow else ref_torchvision(iou, 0.5, 0.4, False)
    else:
        expected = ref_ssd(iou, 0.5)
    assert d.matched.tolist() == expected.tolist()


@pytest.mark.slow
def test_dataset_engines_agree_on_many_images():
    rng = np.random.default_rng(3)
    p = get_preset("retinanet")
    n_img = 6
    H = rng.integers(100, 700, n_img).astype(float)
    W = rng.integers(100, 700, n_img).astype(float)
    per = [0, 3, 1, 12, 5, 2]
    box_image = np.repeat(np.arange(n_img), per)
    x = rng.uniform(0, 1, len(box_image)) * W[box_image]
    y = rng.uniform(0, 1, len(box_image)) * H[box_image]
    bw = np.exp(rng.uniform(0, 6, len(box_image)))
    bh = bw * np.exp(rng.uniform(-1.5, 1.5, len(box_image)))
    raw = np.stack([x, y, x + bw, y + bh], 1)
    raw[5] = raw[4]  # duplicate
    ph, pw = (np.array(v) for v in zip(*[padded_size(h, w, p) for h, w in zip(H, W)]))
    sb = scale_boxes(raw, H[box_image], W[box_image], p)
    for sem in ("torchvision", "mmdet", "ssd"):
        c = culled_match_dataset(p, sb, box_image, ph, pw, semantics=sem, chunk_boxes=7, threads=2)
        d, _, _ = dense_match_dataset(p, sb, box_image, ph, pw, semantics=sem, max_elements=1 << 21)
        oc = np.lexsort((c.pos_anchor, c.pos_image))
        od = np.lexsort((d.pos_anchor, d.pos_image))
        for f in ("pos_image", "pos_anchor", "pos_level", "pos_box", "pos_iou"):
            assert np.array_equal(getattr(c, f)[oc], getattr(d, f)[od]), (sem, f)
        for f in ("ignored_per_image", "box_max_iou", "box_best_anchor", "box_best_level", "box_ignored"):
            assert np.array_equal(getattr(c, f), getattr(d, f)), (sem, f)


# ------------------------------------------------------------------------------------------------
# agreement with torchvision's arithmetic (oracle re-implementation here; torchvision itself if installed)
# ------------------------------------------------------------------------------------------------
def test_grid_anchors_equal_anchor_generator_arithmetic():
    p = replace(get_preset("retinanet"), stride_rule="fixed")  # the reference lays nominal strides
    for ph, pw in ((768, 1024), (800, 1088), (256, 384)):
        ours, _ = grid_anchors(p, ph, pw)
        ref = ref_anchor_generator(p.sizes, p.aspect_ratios, p.strides, ph, pw)
        assert torch.equal(ours, ref)


def test_ssd300_default_boxes_equal_default_box_generator_arithmetic():
    ours, _ = grid_anchors(get_preset("ssd300"), 300, 300)
    ref = ref_ssd_boxes()
    assert ours.shape == (8732, 4)
    assert torch.equal(ours, ref)


# (torchvision itself: tests/test_anchors_torchvision_oracle.py holds the project to its oracle files)


def test_box_touching_no_anchor_follows_torchvision_degenerate_rule():
    # best IoU 0: every anchor ties it, so torchvision's low-quality rule makes all anchors positive
    # (matched to their own best box); the culled engine falls back to the dense one for that image
    anchors, _ = grid_anchors(TINY, 32, 32)
    boxes = torch.tensor([[100, 100, 110, 110]], dtype=torch.float32)
    iou = ref_iou(boxes, anchors)
    for engine in ("dense", "culled"):
        r = match(anchors, boxes, 0.5, 0.4, True, "torchvision", engine, layout=(TINY, 32, 32))
        assert r.matched.tolist() == ref_torchvision(iou, 0.5, 0.4).tolist() == [0, 0, 0, 0]
        assert r.box_max_iou.tolist() == [0.0]
