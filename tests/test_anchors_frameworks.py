"""mmdetection, detectron2, ATSS and FCOS presets: hand-computed cases and re-implementations written here
from each framework's code (mmcv ``rescale_size``, detectron2 ``ResizeShortestEdge.get_output_shape``,
mmdetection ``AnchorGenerator`` / ``ATSSAssigner`` / ``FCOSHead._get_targets_single``, detectron2
``DefaultAnchorGenerator``), never from the code under test."""

import json
import math
import statistics
from dataclasses import replace

import numpy as np
import pytest
import torch

from imbalance_cli.anchors.assigners import ASSIGNERS, atss_assign_image, fcos_assign_image
from imbalance_cli.anchors.culled import culled_match_dataset
from imbalance_cli.anchors.dense import dense_match_dataset
from imbalance_cli.anchors.generator import (
    anchor_coords,
    base_anchors,
    box_keep,
    grid_anchors_numpy,
    level_layout,
    padded_sizes,
    resized_sizes,
    scale_boxes,
)
from imbalance_cli.anchors.presets import FCOS_INF, PRESETS, AnchorPreset, ResizePolicy, get_preset
from imbalance_cli.data import load
from imbalance_cli.errors import InputError
from imbalance_cli.stats.anchors import label_anchors


# ---------------------------------------------------------------------------------------------- resize
def ref_mmcv(h, w, long_edge=1333, short_edge=800):
    """mmcv.rescale_size + _scale_size (keep_ratio), written out."""
    scale = min(long_edge / max(h, w), short_edge / min(h, w))
    return int(h * float(scale) + 0.5), int(w * float(scale) + 0.5)


def ref_detectron2(h, w, short=800, max_size=1333):
    """detectron2 ResizeShortestEdge.get_output_shape, written out."""
    size = short * 1.0
    scale = size / min(h, w)
    if h < w:
        newh, neww = size, scale * w
    else:
        newh, neww = scale * h, size
    if max(newh, neww) > max_size:
        scale = max_size * 1.0 / max(newh, neww)
        newh, neww = newh * scale, neww * scale
    return int(newh + 0.5), int(neww + 0.5)


def test_resize_hand_cases():
    # 480 x 640: torchvision floors 640 * 5/3 = 1066.67, mmcv and detectron2 round it
    assert tuple(int(v[0]) for v in resized_sizes([480], [640], PRESETS["retinanet"])) == (800, 1066)
    assert tuple(int(v[0]) for v in resized_sizes([480], [640], PRESETS["mmdet-retinanet"])) == (800, 1067)
    assert tuple(int(v[0]) for v in resized_sizes([480], [640], PRESETS["detectron2-retinanet"])) == (800, 1067)
    # the long side binds: 300 x 2000 -> 1333 wide
    assert tuple(int(v[0]) for v in resized_sizes([300], [2000], PRESETS["detectron2-retinanet"])) == (200, 1333)
    ph, pw = padded_sizes([480], [640], PRESETS["mmdet-retinanet"])
    assert (int(ph[0]), int(pw[0])) == (800, 1088)


def test_resize_equals_framework_code_on_many_sizes():
    rng = np.random.default_rng(1)
    sizes = np.concatenate([rng.integers(1, 4000, size=(2000, 2)), [[480, 640], [427, 640], [333, 500], [1, 1]]])
    H, W = sizes[:, 0], sizes[:, 1]
    for name, ref in (("mmdet-retinanet", ref_mmcv), ("detectron2-retinanet", ref_detectron2)):
        h, w = resized_sizes(H, W, PRESETS[name])
        expected = np.array([ref(int(a), int(b)) for a, b in sizes])
        assert np.array_equal(np.stack([h, w], 1), expected), name


# ---------------------------------------------------------------------------------------------- anchors
def ref_mmdet_base(stride, octave_base_scale, scales_per_octave, ratios):
    """mmdetection AnchorGenerator.gen_single_level_base_anchors (center_offset 0, scale_major)."""
    scales = torch.Tensor(
        np.array([2 ** (i / scales_per_octave) for i in range(scales_per_octave)]) * octave_base_scale
    )
    ratios = torch.Tensor(ratios)
    w = h = stride
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1 / h_ratios
    ws = (w * w_ratios[:, None] * scales[None, :]).view(-1)
    hs = (h * h_ratios[:, None] * scales[None, :]).view(-1)
    return torch.stack([0.0 - 0.5 * ws, 0.0 - 0.5 * hs, 0.0 + 0.5 * ws, 0.0 + 0.5 * hs], dim=-1)


def ref_d2_cell(sizes, ratios):
    """detectron2 DefaultAnchorGenerator.generate_cell_anchors."""
    out = []
    for size in sizes:
        area = size**2.0
        for r in ratios:
            w = math.sqrt(area / r)
            h = r * w
            out.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
    return torch.tensor(out)


def test_mmdet_base_anchors_equal_anchor_generator():
    p = PRESETS["mmdet-retinanet"]
    for lvl, s in enumerate(p.strides):
        ref = ref_mmdet_base(s, 4, 3, [0.5, 1.0, 2.0]).numpy()
        assert np.array_equal(base_anchors(p, lvl), ref), lvl
    # hand: stride 8, scale 4, ratio 1 -> a 32 x 32 square centred on the grid point, unrounded
    assert base_anchors(p, 0)[3].tolist() == [-16.0, -16.0, 16.0, 16.0]
    assert base_anchors(p, 0)[4, 2] != round(float(base_anchors(p, 0)[4, 2]))  # 40.3 wide: not rounded
    a = PRESETS["atss"]
    assert base_anchors(a, 2).tolist() == [[-128.0, -128.0, 128.0, 128.0]]  # octave base scale 8 x stride 32


def test_detectron2_cell_anchors_size_major_and_grid():
    p = PRESETS["detectron2-retinanet"]
    for lvl in range(5):
        assert np.array_equal(base_anchors(p, lvl), ref_d2_cell(p.sizes[lvl], [0.5, 1.0, 2.0]).numpy())
    # size-major: the second cell anchor is size 32, ratio 1
    assert base_anchors(p, 0)[1].tolist() == [-16.0, -16.0, 16.0, 16.0]
    # grid: shifts arange(0, W * s, s) in float32 added to the cell anchors, row-major, then cell anchor
    a, lv = grid_anchors_numpy(p, 64, 96)
    base = ref_d2_cell(p.sizes[0], [0.5, 1.0, 2.0])
    sx = torch.arange(0.0, 12 * 8, step=8, dtype=torch.float32)
    sy = torch.arange(0.0, 8 * 8, step=8, dtype=torch.float32)
    yy, xx = torch.meshgrid(sy, sx, indexing="ij")
    shifts = torch.stack((xx.reshape(-1), yy.reshape(-1), xx.reshape(-1), yy.reshape(-1)), dim=1)
    ref = (shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4)
    assert np.array_equal(a[: len(ref)], ref.numpy())


def test_model_stride_rule_on_level_boundaries():
    p = PRESETS["retinanet"]
    lay = level_layout(p, 800, 1216)
    # grids ceil(800 / s) x ceil(1216 / s); steps padded // grid (torchvision AnchorGenerator.forward)
    assert [(lv.grid_h, lv.grid_w) for lv in lay] == [(100, 152), (50, 76), (25, 38), (13, 19), (7, 10)]
    assert [(lv.stride_y, lv.stride_x) for lv in lay] == [(8, 8), (16, 16), (32, 32), (61, 64), (114, 121)]
    # anchor (P7, row 1, column 1, base 0) = (121, 114) + rounded base anchor
    c = anchor_coords(p, 4, [0], [1], [1], 800, 1216)[0]
    assert c.tolist() == (base_anchors(p, 4)[0] + np.array([121, 114, 121, 114])).tolist()
    fixed = replace(p, stride_rule="fixed")
    assert [(lv.stride_y, lv.stride_x) for lv in level_layout(fixed, 800, 1216)][3:] == [(64, 64), (128, 128)]
    # a padded size that is a multiple of 128 gives the nominal strides under both rules
    assert [(lv.stride_y, lv.stride_x) for lv in level_layout(p, 768, 1024)] == [(s, s) for s in p.strides]


# ---------------------------------------------------------------------------------------------- boxes
def test_mmdet_box_transform_and_filtering():
    p = PRESETS["mmdet-retinanet"]
    # 480 x 640 -> 800 x 1067: scale factors new / old in double, applied in float32, clipped to the image
    b = np.array([[10.0, 20.0, 110.0, 70.0], [600.0, 400.0, 660.0, 490.0]])
    out = scale_boxes(b, np.array([480, 480]), np.array([640, 640]), p)
    sx, sy = np.float32(1067 / 640), np.float32(800 / 480)
    assert out[0].tolist() == [np.float32(10) * sx, np.float32(20) * sy, np.float32(110) * sx, np.float32(70) * sy]
    assert out[1, 2] == np.float32(1067) and out[1, 3] == np.float32(800)  # clipped
    # CocoDataset.parse_data_info: w < 1, h < 1, area <= 0 or no overlap with the image are dropped
    raw = np.array([[0, 0, 0.5, 10], [0, 0, 10, 0.99], [0, 0, 1, 1], [0, 0, 5, 5], [700, 0, 710, 10]], float)
    keep = box_keep(p, raw, np.full(5, 480), np.full(5, 640), np.array([1.0, 1.0, 1.0, 0.0, 100.0]))
    assert keep.tolist() == [False, False, True, False, False]
    assert box_keep(PRESETS["retinanet"], raw, np.full(5, 480), np.full(5, 640)).all()


def test_detectron2_box_transform_clipping_and_empty_filter():
    p = PRESETS["detectron2-retinanet"]
    # x2 = float32(x) + float32(w); scaled in double by new / old; clipped to [0, size]; float32 at the end
    b = np.array([[-5.0, 10.0, 100.0, 600.0], [639.999999, 0.0, 650.0, 10.0]])
    out = scale_boxes(b, np.array([480, 480]), np.array([640, 640]), p)
    s = 1067 / 640
    assert out[0].tolist() == [
        0.0,
        np.float32(10 * (800 / 480)),
        np.float32(np.float64(np.float32(100.0)) * s),
        np.float32(800.0),
    ]
    keep = box_keep(p, b, np.array([480, 480]), np.array([640, 640]))
    assert keep.tolist() == [True, False]  # the second is clipped to a width below 1e-5


# ---------------------------------------------------------------------------------------------- ATSS
ONE_LEVEL = AnchorPreset(
    name="one",
    sizes=((16.0,),),
    aspect_ratios=((1.0,),),
    strides=(8,),
    level_names=("P3",),
    resize=ResizePolicy(None, None, (32, 32), 32),
    anchor_rule="mmdet",
    box_rule="mmdet",
    matcher="mmdet",
    assigner="atss",
    topk=9,
)


def test_atss_hand_case():
    anchors, lv = grid_anchors_numpy(ONE_LEVEL, 32, 32)  # 4 x 4 anchors of 16 x 16 centred on (8j, 8i)
    box = np.array([[8.0, 8.0, 24.0, 24.0]], np.float32)  # exactly the anchor at (16, 16)
    matched, iou, bmax, best = atss_assign_image(ONE_LEVEL, anchors, lv, [16], box)
    # candidates: the anchor itself (IoU 1), 4 edge neighbours (IoU 128 / 384), 4 diagonal (64 / 448)
    vals = [1.0] + [128 / 384] * 4 + [64 / 448] * 4
    thr = statistics.mean(vals) + statistics.stdev(vals)
    assert 128 / 384 < thr < 1.0
    centre = 2 * 4 + 2
    assert np.flatnonzero(matched >= 0).tolist() == [centre]
    assert bmax[0] == 1.0 and best[0] == centre


def ref_atss(anchors, counts, boxes, topk=9):
    """mmdetection ATSSAssigner.assign, written out with torch (returns assigned box per anchor, -1 none)."""
    a = torch.from_numpy(anchors)
    g = torch.from_numpy(boxes)
    lt = torch.max(a[:, None, :2], g[None, :, :2])
    rb = torch.min(a[:, None, 2:], g[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area1 = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area2 = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1])
    overlaps = inter / torch.max(area1[:, None] + area2[None, :] - inter, torch.tensor(1e-6))
    gcx, gcy = (g[:, 0] + g[:, 2]) / 2.0, (g[:, 1] + g[:, 3]) / 2.0
    acx, acy = (a[:, 0] + a[:, 2]) / 2.0, (a[:, 1] + a[:, 3]) / 2.0
    dist = ((torch.stack((acx, acy), 1)[:, None, :] - torch.stack((gcx, gcy), 1)[None, :, :]) ** 2).sum(-1).sqrt()
    cand, s = [], 0
    for n in counts:
        k = min(topk, n)
        _, idx = dist[s : s + n].topk(k, dim=0, largest=False)
        cand.append(idx + s)
        s += n
    cand = torch.cat(cand, 0)
    M = g.shape[0]
    cov = overlaps[cand, torch.arange(M)]
    thr = cov.mean(0) + cov.std(0)
    pos = cov >= thr[None, :]
    cx, cy = acx[cand], acy[cand]
    inside = torch.stack([cx - g[:, 0], cy - g[:, 1], g[:, 2] - cx, g[:, 3] - cy], 1).min(dim=1)[0] > 0.01
    pos &= inside
    inf = torch.full_like(overlaps, -float("inf"))
    for c in range(cand.shape[0]):
        for m in range(M):
            if pos[c, m]:
                inf[cand[c, m], m] = overlaps[cand[c, m], m]
    mx, arg = inf.max(dim=1)
    return torch.where(mx != -float("inf"), arg, torch.full_like(arg, -1)).numpy()


@pytest.mark.slow
def test_atss_equals_reimplementation_on_random_boxes():
    p = PRESETS["atss"]
    rng = np.random.default_rng(5)
    ph, pw = 320, 416
    anchors, lv = grid_anchors_numpy(p, ph, pw)
    counts = [lv.count for lv in level_layout(p, ph, pw)]
    for _ in range(15):
        n = int(rng.integers(1, 8))
        xy = rng.uniform(-10, 380, (n, 2))
        wh = np.exp(rng.uniform(1, 5.5, (n, 2)))
        boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        matched, *_ = atss_assign_image(p, anchors, lv, counts, boxes)
        assert np.array_equal(matched, ref_atss(anchors, counts, boxes))


# ---------------------------------------------------------------------------------------------- FCOS
TWO = AnchorPreset(
    name="two",
    sizes=(),
    aspect_ratios=((1.0,), (1.0,)),
    strides=(8, 16),
    level_names=("P3", "P4"),
    resize=ResizePolicy(None, None, (256, 256), 32),
    kind="point",
    center_offset=0.5,
    assigner="fcos",
    center_radius=0.0,
    regress_ranges=((-1.0, 64.0), (64.0, 128.0)),
    anchor_rule="mmdet",
    box_rule="mmdet",
    matcher="mmdet",
)


def _fcos(preset, boxes):
    pts, lv = grid_anchors_numpy(preset, 256, 256)
    return pts, lv, fcos_assign_image(preset, pts, lv, None, np.asarray(boxes, np.float32))[0]


def _index(preset, level, x, y):
    lay = level_layout(preset, 256, 256)[level]
    s = preset.strides[level]
    return lay.offset + int(y // s) * lay.grid_w + int(x // s)


def test_fcos_regression_range_ends_are_inclusive():
    pts, lv, m = _fcos(TWO, [[4, 4, 132, 132]])
    # P3 point (68, 68): l = t = r = b = 64 -> max 64 lies in (-1, 64] -> positive on P3
    assert m[_index(TWO, 0, 68, 68)] == 0
    pts, lv, m = _fcos(TWO, [[8, 8, 136, 136]])
    # P4 point (72, 72): max distance 64 lies in [64, 128] -> positive on P4; P3 point (76, 76): 68 > 64 -> not
    assert m[_index(TWO, 1, 72, 72)] == 0 and m[_index(TWO, 0, 76, 76)] == -1
    assert pts[_index(TWO, 1, 72, 72)].tolist() == [72.0, 72.0, 72.0, 72.0]


def test_fcos_ambiguous_point_takes_smallest_box_first_on_ties():
    big, small = [0, 0, 100, 100], [20, 20, 60, 90]
    pts, lv, m = _fcos(TWO, [big, small])
    i = _index(TWO, 0, 44, 44)  # inside both; max distance 56 (big) and 46 (small), both on P3
    assert m[i] == 1
    pts, lv, m = _fcos(TWO, [small, [20, 20, 60, 90]])  # equal areas: the first box
    assert m[i] == 0


def test_fcos_centre_sampling_radius():
    p = replace(TWO, center_radius=1.5)
    box = [20, 20, 100, 100]  # centre (60, 60); P3 radius 1.5 * 8 = 12 -> centre region [48, 72]
    pts, lv, m = _fcos(p, [box])
    assert m[_index(p, 0, 52, 52)] == 0 and m[_index(p, 0, 68, 68)] == 0
    assert m[_index(p, 0, 44, 60)] == -1  # 16 from the centre: inside the box, outside the centre region
    pts, lv, m = _fcos(TWO, [box])  # radius 0: the whole box
    assert m[_index(TWO, 0, 44, 60)] == 0


def ref_fcos(points, levels, strides, ranges, radius, boxes):
    """mmdetection FCOSHead._get_targets_single (centre sampling), written out with torch."""
    pts = torch.from_numpy(points[:, :2])
    g = torch.from_numpy(boxes)
    P, M = pts.shape[0], g.shape[0]
    areas = ((g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1]))[None].repeat(P, 1)
    rr = torch.tensor(ranges, dtype=torch.float32)[torch.from_numpy(levels)][:, None, :].expand(P, M, 2)
    gb = g[None].expand(P, M, 4)
    xs, ys = pts[:, 0][:, None].expand(P, M), pts[:, 1][:, None].expand(P, M)
    bt = torch.stack((xs - gb[..., 0], ys - gb[..., 1], gb[..., 2] - xs, gb[..., 3] - ys), -1)
    cx, cy = (gb[..., 0] + gb[..., 2]) / 2, (gb[..., 1] + gb[..., 3]) / 2
    st = (torch.tensor(strides, dtype=torch.float32)[torch.from_numpy(levels)] * radius)[:, None].expand(P, M)
    x0, y0, x1, y1 = cx - st, cy - st, cx + st, cy + st
    c0 = torch.where(x0 > gb[..., 0], x0, gb[..., 0])
    c1 = torch.where(y0 > gb[..., 1], y0, gb[..., 1])
    c2 = torch.where(x1 > gb[..., 2], gb[..., 2], x1)
    c3 = torch.where(y1 > gb[..., 3], gb[..., 3], y1)
    inside = torch.stack((xs - c0, ys - c1, c2 - xs, c3 - ys), -1).min(-1)[0] > 0
    mx = bt.max(-1)[0]
    in_range = (mx >= rr[..., 0]) & (mx <= rr[..., 1])
    areas[inside == 0] = FCOS_INF
    areas[in_range == 0] = FCOS_INF
    amin, arg = areas.min(dim=1)
    return torch.where(amin == FCOS_INF, torch.full_like(arg, -1), arg).numpy()


@pytest.mark.slow
def test_fcos_equals_reimplementation_on_random_boxes():
    p = PRESETS["fcos"]
    rng = np.random.default_rng(7)
    pts, lv = grid_anchors_numpy(p, 512, 640)
    for _ in range(15):
        n = int(rng.integers(1, 9))
        xy = rng.uniform(-10, 600, (n, 2))
        wh = np.exp(rng.uniform(1, 6.5, (n, 2)))
        boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        m = fcos_assign_image(p, pts, lv, None, boxes)[0]
        assert np.array_equal(m, ref_fcos(pts, lv, p.strides, p.regress_ranges, 1.5, boxes))


# ---------------------------------------------------------------------------------------------- engines
@pytest.mark.slow
@pytest.mark.parametrize("name", ["retinanet", "rpn", "mmdet-retinanet", "detectron2-retinanet"])
@pytest.mark.parametrize("rule", ["fixed", "model"])
def test_culled_equals_dense_for_every_max_iou_preset(name, rule):
    p = replace(PRESETS[name], stride_rule=rule)
    rng = np.random.default_rng(11)
    n_img = 5
    H = rng.integers(100, 900, n_img).astype(float)
    W = rng.integers(100, 900, n_img).astype(float)
    per = [2, 0, 6, 3, 9]
    box_image = np.repeat(np.arange(n_img), per)
    x = rng.uniform(0, 1, len(box_image)) * W[box_image]
    y = rng.uniform(0, 1, len(box_image)) * H[box_image]
    bw = np.exp(rng.uniform(0, 6, len(box_image)))
    bh = bw * np.exp(rng.uniform(-1.5, 1.5, len(box_image)))
    raw = np.stack([x, y, x + bw, y + bh], 1)
    raw[3] = raw[2]
    ph, pw = padded_sizes(H, W, p)
    sb = scale_boxes(raw, H[box_image], W[box_image], p)
    for sem in ("torchvision", "mmdet"):
        c = culled_match_dataset(p, sb, box_image, ph, pw, semantics=sem, chunk_boxes=5, threads=2)
        d, _, _ = dense_match_dataset(p, sb, box_image, ph, pw, semantics=sem)
        oc = np.lexsort((c.pos_anchor, c.pos_image))
        od = np.lexsort((d.pos_anchor, d.pos_image))
        for f in ("pos_image", "pos_anchor", "pos_box", "pos_iou"):
            assert np.array_equal(getattr(c, f)[oc], getattr(d, f)[od]), (sem, f)
        for f in ("ignored_per_image", "box_max_iou", "box_best_anchor", "box_ignored"):
            assert np.array_equal(getattr(c, f), getattr(d, f)), (sem, f)


# ---------------------------------------------------------------------------------------------- end to end
def _coco(tmp_path, images, anns):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"}]}))
    return load(str(f))


def test_image_resized_to_an_empty_side_is_refused(tmp_path):
    ds = _coco(
        tmp_path,
        [
            {"id": 1, "width": 640, "height": 480, "file_name": "a"},
            {"id": 7, "width": 1334, "height": 1, "file_name": "b"},
        ],
        [{"id": 1, "image_id": 1, "bbox": [1, 1, 50, 50], "area": 2500, "iscrowd": 0, "category_id": 1}],
    )
    with pytest.raises(InputError) as e:
        label_anchors(ds, "retinanet", device="cpu")
    assert "image 7" in str(e.value) and "\n" not in str(e.value)
    # mmcv rounds 1 * 1333/1334 up to 1 pixel: mmdetection accepts the image
    lab = label_anchors(ds, "mmdet-retinanet", device="cpu")
    assert lab.padded_h.tolist() == [800, 32]


def test_assigner_presets_label_and_refuse_a_matcher(tmp_path):
    ds = _coco(
        tmp_path,
        [{"id": 1, "width": 640, "height": 480, "file_name": "a"}],
        [{"id": 1, "image_id": 1, "bbox": [100, 100, 120, 90], "area": 10800, "iscrowd": 0, "category_id": 1}],
    )
    for name in ("atss", "fcos"):
        lab = label_anchors(ds, name, device="cpu")
        assert len(lab.result.pos_box) > 0 and lab.result.ignored_per_image.tolist() == [0]
        with pytest.raises(InputError, match="does not apply"):
            label_anchors(ds, name, matcher="mmdet", device="cpu")
    assert set(ASSIGNERS) == {"atss", "fcos"}


# ---------------------------------------------------------------------------------------------- limits
@pytest.mark.parametrize(
    "text, fragment",
    [
        ("strides = [inf]\nsizes = [[32]]\n", "strides"),
        ("strides = [8]\nsizes = [[32]]\n[resize]\nmin_size = inf\n", "resize.min_size"),
        ("strides = [8]\nsizes = [[32]]\n[resize]\nsize_divisible = 1e9\n", "size_divisible"),
        ("strides = [1]\nsizes = [[32]]\n[resize]\nmin_size = 100000000\nmax_size = 100000000\n", "min_size"),
        ("strides = [1]\nsizes = [[32]]\n[resize]\nmin_size = 100000\nmax_size = 100000\n", "anchors on one"),
        ("strides = [8]\nsizes = [[32]]\n[resize]\nfixed = [1000000000, 1000000000]\n", "fixed"),
        (
            "strides = [8]\nsizes = [[%s]]\n" % ", ".join(str(16 + i) for i in range(5000)),
            "field 'sizes[0]': must have 1 to 1000 items",
        ),
        ("strides = [8]\nsizes = [[1e308]]\n", "field 'sizes[0][0]'"),
        ('strides = [8]\nsizes = [[32]]\nstride_rule = "odd"\n', "stride_rule"),
        ('strides = [8]\nsizes = [[32]]\nassigner = "simota"\n', "assigner"),
        ('kind = "point"\nstrides = [8]\nassigner = "fcos"\n', "regress_ranges"),
    ],
)
def test_preset_limits_refused_with_one_line(tmp_path, text, fragment):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(InputError) as e:
        get_preset(str(f))
    msg = str(e.value)
    assert fragment in msg and "bad.toml" in msg and "\n" not in msg


def test_framework_presets_from_toml(tmp_path):
    f = tmp_path / "d2.toml"
    f.write_text(
        'name = "d2"\nstrides = [8, 16]\nsizes = [[32, 40.31747359663594], [64]]\nanchor_rule = "detectron2"\n'
        'box_rule = "detectron2"\nstride_rule = "fixed"\ncenter_offset = 0.5\n[resize]\nrule = "detectron2"\n'
        "min_size = 800\nmax_size = 1333\n"
    )
    p = get_preset(str(f))
    assert (p.anchor_rule, p.box_rule, p.resize.rule, p.center_offset) == (
        "detectron2",
        "detectron2",
        "detectron2",
        0.5,
    )
    # offset 0.5: the first cell anchor of size 32, ratio 0.5 centred on (4, 4)
    c = anchor_coords(p, 0, [0], [0], [0], 64, 64)[0]
    assert np.allclose((c[0] + c[2]) / 2, 4.0) and np.allclose((c[1] + c[3]) / 2, 4.0)
    g = tmp_path / "fcos.toml"
    g.write_text('kind = "point"\nstrides = [8, 16]\nregress_ranges = [[-1, 64], [64, inf]]\ncenter_offset = 0.5\n')
    q = get_preset(str(g))
    assert q.assigner == "fcos" and q.regress_ranges[1] == (64.0, math.inf)
