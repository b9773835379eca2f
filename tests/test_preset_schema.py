"""Preset TOML files: read within bounds, every field checked for its exact type and range where it enters.

Expected values: the error messages name the file and the field (the developers' guide's one-line rule); the
labels at the limits are held to a second, plain implementation of torchvision's matcher over float32 IoUs
(``ref_iou`` / ``ref_torchvision`` of ``test_anchors_matcher.py``) and to the dense engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import ROOT
from test_anchors_matcher import ref_iou, ref_torchvision
from typer.testing import CliRunner

from imbalance_cli.anchors.generator import grid_anchors, padded_size
from imbalance_cli.anchors.matcher import match
from imbalance_cli.anchors.presets import MIN_ANCHOR_SIDE, AnchorPreset, ResizePolicy, get_preset, preset_from_dict
from imbalance_cli.anchors.tomlfile import MAX_PRESET_BYTES, MAX_TOML_DEPTH, nesting_depth, read_toml
from imbalance_cli.cli import app
from imbalance_cli.errors import InputError

runner = CliRunner()
GRID = "strides = [8]\nsizes = [[32]]\n"


def _coco(tmp_path, boxes, width=640, height=480):
    d = {
        "images": [{"id": 1, "width": width, "height": height, "file_name": "a.jpg"}],
        "annotations": [
            {"id": i + 1, "image_id": 1, "category_id": 1, "bbox": b, "area": 100.0, "iscrowd": 0}
            for i, b in enumerate(boxes)
        ],
        "categories": [{"id": 1, "name": "a"}],
    }
    p = tmp_path / "d.json"
    p.write_text(json.dumps(d))
    return p


def _one_line_exit_2(r, *needles):
    err = r.stderr.strip()
    assert r.exit_code == 2, r.output
    assert "\n" not in err and "Traceback" not in r.output
    for n in needles:
        assert n in err, err


# ---------------------------------------------------------------------------------------------- exact types
@pytest.mark.parametrize(
    "line, field",
    [
        ('allow_low_quality = "false"', "allow_low_quality"),  # a string is never a boolean
        ("allow_low_quality = 0", "allow_low_quality"),
        ('clip = "no"', "clip"),
        ('pos_iou = "0.5"', "pos_iou"),  # a string is never a number
        ("pos_iou = true", "pos_iou"),
        ("pos_iou = nan", "pos_iou"),
        ("neg_iou = -0.1", "neg_iou"),
        ("topk = 9.5", "topk"),
        ('matcher = "TorchVision"', "matcher"),
        ("center_offset = inf", "center_offset"),
        ("center_radius = 1e308", "center_radius"),
        ("level_names = [1]", "level_names[0]"),
        ("name = 5", "name"),
        ("kind = 1", "kind"),
        ('stride_rule = ["fixed"]', "stride_rule"),
    ],
)
def test_grid_preset_field_of_wrong_type_or_range_is_one_line(tmp_path, line, field):
    f = tmp_path / "p.toml"
    f.write_text(GRID + line + "\n")
    r = runner.invoke(app, ["stats", str(_coco(tmp_path, [[10, 10, 50, 40]])), "--anchors", str(f), "--no-cache"])
    _one_line_exit_2(r, "p.toml", f"field {field!r}")


@pytest.mark.parametrize(
    "text, field",
    [
        ("strides = [8.7]\nsizes = [[32]]\n", "strides[0]"),  # a fractional stride is refused, never truncated to 8
        ("strides = [8.0]\nsizes = [[32]]\n", "strides[0]"),
        ('strides = ["8"]\nsizes = [[32]]\n', "strides[0]"),
        ("strides = 8\nsizes = [[32]]\n", "strides"),
        ('strides = [8]\nsizes = [["32"]]\n', "sizes[0][0]"),
        ("strides = [8]\nsizes = [[32]]\naspect_ratios = [0.5, true]\n", "aspect_ratios[0][1]"),
        ("strides = [8]\nsizes = [[32]]\n[resize]\nmin_size = 800.5\n", "resize.min_size"),
        ("strides = [8]\nsizes = [[32]]\n[resize]\nfixed = [128]\n", "resize.fixed"),
        ('strides = [8]\nsizes = [[32]]\n[resize]\nrule = "round"\n', "resize.rule"),
        ("strides = [8]\nsizes = [[32]]\nresize = 3\n", "resize"),
        ('kind = "ssd"\nstrides = [8]\nscales = [0.1, "0.2"]\n[resize]\nfixed = [300, 300]\n', "scales[1]"),
        ('kind = "point"\nstrides = [8]\nregress_ranges = [[-1, nan]]\n', "regress_ranges[0][1]"),
        ('kind = "point"\nstrides = [8]\nregress_ranges = [[64, 8]]\n', "regress_ranges[0][1]"),
    ],
)
def test_structured_fields_checked_with_their_index(tmp_path, text, field):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(InputError) as e:
        get_preset(str(f))
    msg = str(e.value)
    assert msg.startswith(str(f)) and f"field {field!r}" in msg and "\n" not in msg


def test_a_real_false_is_read_as_false(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text(GRID + "allow_low_quality = false\npos_iou = 1\n")
    p = get_preset(str(f))
    assert p.allow_low_quality is False and p.pos_iou == 1.0 and isinstance(p.pos_iou, float)


def test_api_objects_are_checked_like_files():
    base = get_preset("retinanet")
    for change, field in (
        (dict(allow_low_quality="false"), "allow_low_quality"),
        (dict(strides=(8.5,) * 5), "strides[0]"),
        (dict(pos_iou=float("nan")), "pos_iou"),
        (dict(resize=ResizePolicy(800.0, 1333)), "resize.min_size"),
    ):
        with pytest.raises(InputError, match=f"field '{field}'".replace("[", r"\[").replace("]", r"\]")):
            get_preset(replace(base, **change))
    with pytest.raises(InputError, match="field 'name'"):
        preset_from_dict({"strides": [8], "sizes": [[32]], "name": None})


# ---------------------------------------------------------------------------------------------- the reader
def _run_cli(args, timeout=60):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "imbalance_cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.slow
def test_fifo_and_devices_as_preset_refused_without_reading(tmp_path):
    data = _coco(tmp_path, [[10, 10, 50, 40]])
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.toml"
    zero.symlink_to("/dev/zero")
    for path in (fifo, zero):
        r = _run_cli(["stats", str(data), "--anchors", str(path), "--no-cache", "-q"])  # would block / never end
        assert r.returncode == 2 and "not a regular file" in r.stderr and str(path) in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_huge_sparse_and_non_utf8_files_refused(tmp_path):
    big = tmp_path / "big.toml"
    with open(big, "wb") as f:
        f.truncate(3 * 1024**3)  # sparse: 3 GiB of zero bytes, nothing on disk
    with pytest.raises(InputError, match=f"at most {MAX_PRESET_BYTES:,} are read"):
        read_toml(big)
    latin = tmp_path / "latin.toml"
    latin.write_bytes(GRID.encode() + b'name = "caf\xe9"\n')
    with pytest.raises(InputError) as e:
        get_preset(str(latin))
    assert "not UTF-8" in str(e.value) and f"byte offset {len(GRID) + 11}" in str(e.value)


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "{b = " * 20000 + "1" + "}" * 20000 + "\n",  # 20,000-deep inline tables
        "strides = [8]\nsizes = " + "[" * 50000 + "32" + "]" * 50000 + "\n",  # 50,000-deep sizes
    ],
)
def test_deep_nesting_refused_before_parsing(tmp_path, text):
    f = tmp_path / "deep.toml"
    f.write_text(text)
    with pytest.raises(InputError) as e:
        get_preset(str(f))
    assert f"more than {MAX_TOML_DEPTH} deep" in str(e.value) and "deep.toml" in str(e.value)


def test_nesting_scan_skips_strings_and_comments(tmp_path):
    assert nesting_depth('a = "[[[[" # [[[[\nb = [[1]]\nc = \'\'\'{{{\'\'\'\nd = """]]]"""\n')[0] == 2
    assert nesting_depth("[t]\n[[u]]\nx = [{a = [1]}]\n")[0] == 3
    f = tmp_path / "ok.toml"
    f.write_bytes(b"\xef\xbb\xbf" + (GRID + 'name = "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["  # a bracket\n').encode())
    assert get_preset(str(f)).name == "[" * 39  # a BOM is skipped; brackets in strings are not nesting


# ---------------------------------------------------------------------------------------------- engine at the limits
def _labels_agree(preset, ph, pw, boxes):
    """culled == dense == a plain torchvision Matcher over float32 IoUs, for every anchor."""
    anchors, _ = grid_anchors(preset, ph, pw)
    b = torch.tensor(boxes, dtype=torch.float32)
    expected = ref_torchvision(ref_iou(b, anchors), preset.pos_iou, preset.neg_iou)
    for engine in ("dense", "culled"):
        got = match(anchors, b, preset.pos_iou, preset.neg_iou, True, "torchvision", engine, layout=(preset, ph, pw))
        assert got.matched.tolist() == expected.tolist(), engine
    return expected


def test_tiny_sizes_and_extreme_ratios_refused_as_zero_width_anchors(tmp_path):
    for extra, shape in (("sizes = [[1e-300]]", "0 x 0"), ("sizes = [[32]]\naspect_ratios = [1e-4, 1e4]", "3200 x 0")):
        f = tmp_path / "t.toml"
        f.write_text("strides = [8]\n" + extra + "\n")
        with pytest.raises(InputError) as e:
            get_preset(str(f))
        assert "field 'sizes[0]'" in str(e.value) and shape in str(e.value) and "t.toml" in str(e.value)


def test_minimum_anchor_side_boundary_in_each_rule(tmp_path):
    # torchvision rounds base anchors to whole pixels (round half to even): size 1 -> [-0, -0, 0, 0], size 1.01 -> 2 px
    for size, rule, ok in (
        (1.0, "torchvision", False),
        (1.01, "torchvision", True),
        (1.0, "mmdet", True),
        (0.999, "mmdet", False),
        (1.0, "detectron2", True),
        (0.999, "detectron2", False),
    ):
        f = tmp_path / "s.toml"
        f.write_text(f'strides = [8]\nsizes = [[{size}]]\naspect_ratios = [1.0]\nanchor_rule = "{rule}"\n')
        if ok:
            assert get_preset(str(f)).sizes == ((size,),)
        else:
            with pytest.raises(InputError, match=f"at least {MIN_ANCHOR_SIDE:g} pixel"):
                get_preset(str(f))


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["torchvision", "mmdet", "detectron2"])
def test_labels_exact_at_the_smallest_and_most_elongated_anchors(rule):
    # ratios exactly at the stated limits 1e-4 and 1e4 with sizes that keep every side >= 1 pixel, and the
    # smallest accepted anchor, on a 1024 x 1024 image with boxes of every scale (tiny, thin, huge, border)
    rng = np.random.default_rng(0)
    boxes = [[10, 10, 11, 11], [0, 0, 1024, 3], [500.5, 0, 501.5, 1024], [0, 0, 1024, 1024], [1000, 1000, 1030, 1500]]
    for _ in range(20):
        x, y = rng.uniform(0, 1000, 2)
        w, h = np.exp(rng.uniform(-1, 7, 2))
        boxes.append([x, y, x + w, y + h])
    small = 1.01 if rule == "torchvision" else 1.0
    preset = AnchorPreset(
        name="limits",
        sizes=((small, 300.0), (10000.0,)),
        aspect_ratios=((1.0,), (1e-4, 1.0, 1e4)),
        strides=(8, 64),
        level_names=("A", "B"),
        resize=ResizePolicy(None, None, (1024, 1024), 32),
        anchor_rule=rule,
    )
    preset = get_preset(preset)
    ph, pw = padded_size(1024, 1024, preset)
    labels = _labels_agree(preset, ph, pw, boxes)
    assert (labels >= 0).any()


def test_box_of_1e308_under_default_anchors(tmp_path):
    # float32 makes the box inf: its area is inf, its IoU 0 with every anchor, so torchvision's low-quality rule
    # (every anchor attaining the box's best IoU, 0) makes every anchor of the image positive
    path = _coco(tmp_path, [[0, 0, 1e308, 1e308]])
    out = {}
    for engine in ("culled", "dense"):
        r = runner.invoke(app, ["stats", str(path), "--engine", engine, "--device", "cpu", "--json", "--no-cache"])
        assert r.exit_code == 0 and r.stderr == "", r.output
        out[engine] = json.loads(r.stdout)["anchors"]
    # 640 x 480 -> 1066 x 800 (scale 800 / 480), padded 1088 x 800; strides 8..128, 9 anchors per position
    per_image = sum(-(-800 // s) * -(-1088 // s) * 9 for s in (8, 16, 32, 64, 128))
    for a in out.values():
        assert a["anchors"] == a["foreground"] == per_image and a["background"] == a["ignored"] == 0
    assert out["culled"]["levels"] == out["dense"]["levels"]


def test_box_of_1e308_under_yolov5_matches_nothing_and_warns_nothing(tmp_path):
    # YOLOv5's float32 label arithmetic makes the box inf/NaN: no width/height ratio test passes, so it takes no
    # anchor and the other box's assignment is what it is without it
    normal = [10, 20, 90, 100]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    r_both = runner.invoke(
        app,
        [
            "stats",
            str(_coco(tmp_path / "a", [[0, 0, 1e308, 1e308], normal])),
            "--anchors",
            "yolov5",
            "--json",
            "--no-cache",
        ],
    )
    r_one = runner.invoke(
        app, ["stats", str(_coco(tmp_path / "b", [normal])), "--anchors", "yolov5", "--json", "--no-cache"]
    )
    assert r_both.exit_code == r_one.exit_code == 0 and r_both.stderr == "", r_both.output
    both, one = json.loads(r_both.stdout)["anchors"], json.loads(r_one.stdout)["anchors"]
    assert both["foreground"] == one["foreground"] > 0
    assert both["boxes_without_positive"] == one["boxes_without_positive"] + 1


@pytest.mark.slow
def test_fit_with_a_1e308_box_names_no_nan(tmp_path):
    # k-means needs at least levels x scales x ratios = 45 boxes; the 1e308 box has no finite shape
    boxes = [[0, 0, 1e308, 1e308]] + [[10 + i, 10, 30 + 3 * i, 20 + 2 * i] for i in range(60)]
    r = runner.invoke(app, ["anchors", str(_coco(tmp_path, boxes)), "--iterations", "0", "--sample", "all", "--json"])
    assert r.exit_code == 0, r.output
    fitted = json.loads(r.stdout)
    assert all(np.isfinite(v) for v in np.ravel(fitted["fitted"]["aspect_ratios"]))
    kmeans = fitted["search"]["starts"]["kmeans"]  # a valid start (it had a NaN ratio and no score)
    assert kmeans["score"] is not None and all(np.isfinite(kmeans["params"]["ratios"]))


# ---------------------------------------------------------------------------------------------- yolov5 presets
def _fitted_toml(tmp_path, **edits):
    """A yolov5 ``fitted.toml`` as ``imbalance anchors`` writes it, then hand-edited: ``key=line`` replaced."""
    from imbalance_cli.anchors.tomlwriter import yolov5_toml
    from imbalance_cli.anchors.yolov5 import YOLOV5

    lines = yolov5_toml(YOLOV5).splitlines()
    for key, value in edits.items():
        lines = [ln for ln in lines if not ln.startswith(f"{key} =")] + (
            [f"{key} = {value}"] if value is not None else []
        )
    f = tmp_path / "fitted.toml"
    f.write_text("\n".join(lines) + "\n")
    return f


@pytest.mark.parametrize(
    "key, value, field",
    [
        ("img_size", "1000000000", "img_size"),
        ("img_size", "0", "img_size"),
        ("img_size", "-640", "img_size"),
        ("img_size", "650", "img_size"),
        ("img_size", '"640"', "img_size"),
        ("img_size", "640.0", "img_size"),
        ("anchors", "[[[nan, 13]], [[30, 61]], [[116, 90]]]", "anchors[0][0][0]"),
        ("anchors", "[[[10, inf]], [[30, 61]], [[116, 90]]]", "anchors[0][0][1]"),
        ("anchors", "[[[10, 13]], [[1e308, 61]], [[116, 90]]]", "anchors[1][0][0]"),
        ("anchors", "[[[10, 13]], [[30]], [[116, 90]]]", "anchors[1][0]"),
        ("anchors", "[[[10, 13]], [], [[116, 90]]]", "anchors[1]"),
        ("anchors", "[[[0.5, 13]], [[30, 61]], [[116, 90]]]", "anchors[0][0][0]"),
        ("offset_g", "100", "offset_g"),
        ("offset_g", "nan", "offset_g"),
        ("anchor_t", "inf", "anchor_t"),
        ("anchor_t", "1", "anchor_t"),
        ("anchor_t", '"4.0"', "anchor_t"),
        ("pad_stride", "0", "pad_stride"),
        ("pad_stride", "-32", "pad_stride"),
        ("strides", "[8.7, 16, 32]", "strides[0]"),
        ("strides", "[0, 16, 32]", "strides[0]"),
        ("strides", "[8, 24, 32]", "strides[1]"),
        ("strides", "[8, 16]", "anchors"),
        ("level_names", "[3, 4, 5]", "level_names[0]"),
        ("name", "true", "name"),
        ("kind", None, "kind"),
    ],
)
@pytest.mark.slow
def test_hand_edited_yolov5_preset_one_line_naming_file_and_field(tmp_path, key, value, field):
    f = _fitted_toml(tmp_path, **{key: value})
    data = _coco(tmp_path, [[10, 10, 50, 40]])
    for args in (["stats", str(data), "--anchors", str(f), "--no-cache"], ["anchors", str(data), "--preset", str(f)]):
        r = runner.invoke(app, args)
        _one_line_exit_2(r, "fitted.toml", f"field {field!r}")


def test_yolov5_preset_levels_and_anchor_budget(tmp_path):
    levels = 1000  # more levels than an int8 level index holds: refused by the schema, no overflow
    f = tmp_path / "many.toml"
    f.write_text(
        'kind = "yolov5"\nanchors = ['
        + ", ".join(["[[10, 13]]"] * levels)
        + "]\nstrides = ["
        + ", ".join(["8"] * levels)
        + "]\n"
    )
    from imbalance_cli.anchors.yolov5 import preset_from_toml

    with pytest.raises(InputError, match="field 'anchors': must have 1 to 16 items, got 1000"):
        preset_from_toml(f)
    # stride 1 at img_size 99968, 3 anchors per level: 3 (99968^2 + 6248^2 + 3124^2) anchors on one letterboxed image
    g = _fitted_toml(tmp_path, strides="[1, 16, 32]", img_size="99968")
    worst = 3 * (99968**2 + 6248**2 + 3124**2)
    with pytest.raises(InputError, match=f"field 'strides'.* {worst:,} anchors"):
        preset_from_toml(g)
    assert preset_from_toml(_fitted_toml(tmp_path, strides="[1, 16, 32]")).strides == (1, 16, 32)  # 640: 1,232,896


@pytest.mark.parametrize(
    "width, height, img_size, ok, needle",
    [
        (100_000, 100, 640, True, None),  # exactly the image-side limit
        (150_000, 100, 640, False, "beyond the limit"),  # the yolov5 path checks the limit too
        (150_000_000, 100, 640, False, "at most 1,000,000 pixels"),  # the loaders' own limit
        (100_000, 1, 640, False, "letterboxes to a side of 0"),  # round(1 x 640 / 100,000) = 0
        (16_000, 16_000, 16_000, True, None),  # P3 grid 2000 x 2000 = exactly 4,000,000 cells
        (16_032, 16_032, 16_032, False, "cells per level"),  # 2004 x 2004
    ],
)
def test_yolov5_path_holds_the_image_side_and_grid_limits(tmp_path, width, height, img_size, ok, needle):
    f = _fitted_toml(tmp_path, img_size=str(img_size), anchors="[[[10, 13]], [[30, 61]], [[116, 90]]]")
    data = _coco(tmp_path, [[10, 10, 50, 40]], width=width, height=height)
    for args in (
        ["stats", str(data), "--anchors", str(f), "--no-cache", "--json"],
        ["anchors", str(data), "--preset", str(f), "--iterations", "0", "--json"],
    ):
        r = runner.invoke(app, args)
        if ok:
            assert r.exit_code == 0, r.output
        else:
            _one_line_exit_2(r, "d.json", "id 1", needle)


@pytest.mark.parametrize("command", ["margins", "train"])
def test_commands_that_cannot_use_a_yolov5_preset_say_so(tmp_path, command):
    data = _coco(tmp_path, [[10, 10, 50, 40]])
    for preset in ("yolov5", str(_fitted_toml(tmp_path))):
        args = (
            [command, str(data), "--anchors", preset]
            if command == "margins"
            else ["train", "--anchors", preset, "--out", str(tmp_path / "run")]
        )
        r = runner.invoke(app, args)
        _one_line_exit_2(r, f"imbalance {command} does not take yolov5 presets")
        assert not (tmp_path / "run").exists()
    # and a yolov5 file where only grid presets are read (the library's get_preset)
    with pytest.raises(InputError, match="is a yolov5 preset"):
        get_preset(str(_fitted_toml(tmp_path)))


def test_fifo_yolov5_preset_refused(tmp_path):
    fifo = tmp_path / "fitted.toml"
    os.mkfifo(fifo)
    r = _run_cli(["stats", str(_coco(tmp_path, [[10, 10, 50, 40]])), "--anchors", str(fifo), "--no-cache", "-q"])
    assert r.returncode == 2 and "not a regular file" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["mmdet", "detectron2", "torchvision"])
def test_labels_exact_at_the_image_side_limit(rule):
    # unrounded anchors far from the origin: float32 puts their edges up to 0.004 px off the exact values; the
    # culled engine's bounds once assumed 1e-6 px and missed pairs (10-30 labels per image differed from dense)
    rng = np.random.default_rng(7)
    sizes = ((2.0, 37.3, 211.9), (97.1, 433.7, 600.0))
    preset = get_preset(
        AnchorPreset(
            name="far",
            sizes=sizes,
            aspect_ratios=((0.37, 1.0, 2.0),) * 2,
            strides=(64, 128),
            level_names=("A", "B"),
            resize=ResizePolicy(None, None, None, 32),
            anchor_rule=rule,
            center_offset=0.5 if rule == "detectron2" else 0.0,
        )
    )
    ph, pw = padded_size(128, 100_000, preset)  # no resize: the stated 100,000-pixel side
    boxes = []
    for _ in range(60):
        x, y = rng.uniform(97_000, 100_000), rng.uniform(0, 120)
        w, h = np.exp(rng.uniform(0, 6.5, 2))
        boxes.append([x, y, min(x + w, 100_000.0), y + h])
    assert (_labels_agree(preset, ph, pw, boxes) >= 0).sum() > 50
