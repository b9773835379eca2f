"""Anchor presets, TOML user presets and the generator's geometry (resize, grid, base anchors)."""

import math

import numpy as np
import pytest

from imbalance_cli.anchors.generator import (
    base_anchors,
    grid_anchors_numpy,
    level_layout,
    num_anchors,
    padded_size,
    padded_sizes,
    resized_size,
    scale_boxes,
)
from imbalance_cli.anchors.presets import PRESETS, AnchorPreset, ResizePolicy, get_preset
from imbalance_cli.errors import InputError


def test_retinanet_preset_matches_torchvision_config():
    p = get_preset("retinanet")
    # torchvision: tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in [32, 64, 128, 256, 512])
    assert p.sizes[0] == (32, 40, 50) and p.sizes[4] == (512, 645, 812)
    assert p.strides == (8, 16, 32, 64, 128)
    assert p.aspect_ratios == ((0.5, 1.0, 2.0),) * 5
    assert (p.pos_iou, p.neg_iou, p.allow_low_quality) == (0.5, 0.4, True)
    assert p.resize == ResizePolicy(800, 1333, None, 32)


def test_rpn_and_ssd_presets():
    r = get_preset("rpn")
    assert r.strides == (4, 8, 16, 32, 64) and r.sizes == ((32,), (64,), (128,), (256,), (512,))
    assert (r.pos_iou, r.neg_iou) == (0.7, 0.3)
    s = get_preset("ssd300")
    # SSD300 has 8732 default boxes: 38^2*4 + 19^2*6 + 10^2*6 + 5^2*6 + 3^2*4 + 1*4
    assert int(num_anchors(s, 300, 300)) == 38 * 38 * 4 + 19 * 19 * 6 + 10 * 10 * 6 + 5 * 5 * 6 + 9 * 4 + 4 == 8732
    assert [lay.grid_h for lay in level_layout(s, 300, 300)] == [38, 19, 10, 5, 3, 1]
    assert padded_size(480, 640, s) == (300, 300)


def _torchvision_resized(h: int, w: int, min_size: float = 800.0, max_size: float = 1333.0) -> tuple[int, int]:
    """torchvision's GeneralizedRCNNTransform arithmetic in eager mode, re-enacted: the scale from Python
    ints in double precision (``min(min_size / min(H, W), max_size / max(H, W))``), and
    ``interpolate(recompute_scale_factor=True)`` floors ``size * scale``."""
    scale = min(min_size / min(h, w), max_size / max(h, w))
    return math.floor(float(h) * scale), math.floor(float(w) * scale)


def test_resize_and_padding_like_generalized_rcnn_transform():
    p = get_preset("retinanet")
    # 480 x 640: s = min(800/480, 1333/640) -> floor(480 s) = 800, floor(640 s) = 1066
    assert _torchvision_resized(480, 640) == (800, 1066)
    assert resized_size(480, 640, p) == (800, 1066)
    assert padded_size(480, 640, p) == (800, 1088)
    # very wide: the max side binds: s = 1333/2000
    assert resized_size(300, 2000, p) == _torchvision_resized(300, 2000)
    h, w = padded_sizes(np.array([480, 300]), np.array([640, 2000]), p)
    th, tw = _torchvision_resized(300, 2000)
    assert h.tolist() == [800, math.ceil(th / 32) * 32] and w.tolist() == [1088, math.ceil(tw / 32) * 32]


def test_resize_agrees_with_torchvision_arithmetic_on_many_sizes():
    p = get_preset("retinanet")
    rng = np.random.default_rng(0)
    sizes = np.concatenate(
        [rng.integers(1, 4000, size=(300, 2)), [[480, 640], [427, 640], [1, 11], [333, 500], [3402, 2548], [375, 500]]]
    )
    # 375 x 500: torchvision 0.28 gives 800 x 1066 (an older float32 scale gave 799)
    assert resized_size(375, 500, p) == (800, 1066)
    h, w = padded_sizes(sizes[:, 0], sizes[:, 1], p)
    for (H, W), ph, pw in zip(sizes.tolist(), h.tolist(), w.tolist()):
        rh, rw = _torchvision_resized(H, W)
        assert resized_size(H, W, p) == (rh, rw), (H, W)
        assert (ph, pw) == (math.ceil(rh / 32) * 32, math.ceil(rw / 32) * 32), (H, W)


def test_box_scaling_per_axis_in_float32():
    p = get_preset("retinanet")
    b = scale_boxes(np.array([[10.0, 20.0, 110.0, 70.0]]), np.array([480.0]), np.array([640.0]), p)
    rh = np.float32(800) / np.float32(480)  # torchvision: float32(resized) / float32(original)
    rw = np.float32(1066) / np.float32(640)
    assert b.dtype == np.float32
    assert b[0].tolist() == [np.float32(10) * rw, np.float32(20) * rh, np.float32(110) * rw, np.float32(70) * rh]


def test_base_anchors_rounded_ratio_major():
    p = get_preset("retinanet")
    base = base_anchors(p, 0)
    expected = []
    for r in (0.5, 1.0, 2.0):  # ratio-major: for each ratio h/w, every size
        for size in (32, 40, 50):
            h, w = size * math.sqrt(r), size / math.sqrt(r)
            expected.append([round(-w / 2), round(-h / 2), round(w / 2), round(h / 2)])
    assert base.tolist() == expected
    assert base[0].tolist() == [-23, -11, 23, 11]


def test_grid_order_and_centres():
    p = get_preset("retinanet")
    anchors, level = grid_anchors_numpy(p, 64, 96)
    lay = level_layout(p, 64, 96)
    assert [(lv.grid_h, lv.grid_w) for lv in lay] == [(8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]
    assert len(anchors) == sum(lv.count for lv in lay) == int(num_anchors(p, 64, 96))
    # anchor (level 0, row 1, column 2, base 4) = base + (2*8, 1*8)
    idx = (1 * 12 + 2) * 9 + 4
    assert anchors[idx].tolist() == (base_anchors(p, 0)[4] + np.array([16, 8, 16, 8])).tolist()
    assert level[lay[1].offset] == 1 and level[lay[1].offset - 1] == 0


def test_toml_user_preset(tmp_path):
    f = tmp_path / "small.toml"
    f.write_text(
        'name = "small"\nstrides = [8, 16]\nsizes = [[16, 24], [32]]\naspect_ratios = [1.0, 2.0]\n'
        "pos_iou = 0.6\nneg_iou = 0.3\n[resize]\nfixed = [128, 160]\nsize_divisible = 16\n"
    )
    p = get_preset(str(f))
    assert isinstance(p, AnchorPreset)
    assert p.name == "small" and p.aspect_ratios == ((1.0, 2.0), (1.0, 2.0)) and p.sizes == ((16.0, 24.0), (32.0,))
    assert p.resize.fixed == (128, 160) and padded_size(1000, 1000, p) == (128, 160)
    assert (p.pos_iou, p.neg_iou) == (0.6, 0.3)
    assert int(num_anchors(p, 128, 160)) == 16 * 20 * 4 + 8 * 10 * 2
    q = get_preset(str(f), pos_iou=0.7, neg_iou=0.5)
    assert (q.pos_iou, q.neg_iou) == (0.7, 0.5)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("strides = [8]\nsizes = [[16], [32]]\n", "sizes has 2 levels"),
        ("strides = [8]\nsizes = [[16]]\npos_iou = 0.3\nneg_iou = 0.5\n", "neg_iou <= pos_iou"),
        ("strides = [8]\nsizes = [[16]]\ncolour = 1\n", "unknown key"),
        ("strides = [8\n", "invalid TOML"),
        ("sizes = [[16]]\n", "needs 'strides'"),
    ],
)
def test_bad_toml_raises_input_error(tmp_path, text, fragment):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(InputError) as e:
        get_preset(str(f))
    assert fragment in str(e.value) and "bad.toml" in str(e.value)


def test_unknown_preset_and_bad_override():
    with pytest.raises(InputError, match="unknown anchor preset"):
        get_preset("yolo")
    with pytest.raises(InputError, match="must not exceed"):
        get_preset("retinanet", neg_iou=0.6)
    assert set(PRESETS) == {"retinanet", "rpn", "ssd300", "mmdet-retinanet", "detectron2-retinanet", "atss", "fcos"}
