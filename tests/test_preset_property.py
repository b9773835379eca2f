"""Property tests: mutated preset TOML files (grid, ssd, point, atss and yolov5, as a user or an attacker edits
them) are either read as a sane preset or refused with one line naming the file; never a traceback, and the
read stays small (tracemalloc peak).

"Sane" is checked independently of the validation code: every base anchor of the accepted preset is finite and
at least a pixel wide and high as the generator lays it, anchors per image at the largest padded size stay within
the stated 50 million, thresholds lie in [0, 1] with neg <= pos; for yolov5, anchors finite and >= 1 pixel,
strides dividing pad_stride, img_size a multiple of it.
"""

from __future__ import annotations

import json
import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from imbalance_cli.anchors.generator import level_shape_params, num_anchors
from imbalance_cli.anchors.presets import get_preset
from imbalance_cli.anchors.yolov5 import preset_from_toml
from imbalance_cli.cli import app
from imbalance_cli.errors import InputError

BASES = {
    "grid": {
        "name": "small",
        "strides": [8, 16, 32],
        "sizes": [[32, 40, 50], [64], [128]],
        "aspect_ratios": [0.5, 1.0, 2.0],
        "pos_iou": 0.5,
        "neg_iou": 0.4,
        "allow_low_quality": True,
        "stride_rule": "fixed",
        "anchor_rule": "torchvision",
        "box_rule": "torchvision",
        "center_offset": 0.0,
        "resize": {"min_size": 800, "max_size": 1333, "size_divisible": 32, "rule": "torchvision"},
    },
    "ssd": {
        "kind": "ssd",
        "strides": [8, 16],
        "scales": [0.1, 0.3, 0.6],
        "aspect_ratios": [[2.0], [2.0, 3.0]],
        "clip": False,
        "resize": {"fixed": [300, 300]},
    },
    "point": {
        "kind": "point",
        "strides": [8, 16],
        "regress_ranges": [[-1, 64], [64, 1e8]],
        "center_radius": 1.5,
        "center_offset": 0.5,
        "anchor_rule": "mmdet",
        "box_rule": "mmdet",
    },
    "atss": {
        "strides": [8, 16],
        "sizes": [[64], [128]],
        "aspect_ratios": [1.0],
        "assigner": "atss",
        "topk": 9,
        "anchor_rule": "mmdet",
        "resize": {"rule": "mmcv"},
    },
    "yolov5": {
        "kind": "yolov5",
        "name": "fitted",
        "anchors": [[[10, 13], [16, 30]], [[30, 61]], [[116, 90]]],
        "strides": [8, 16, 32],
        "level_names": ["P3", "P4", "P5"],
        "img_size": 640,
        "pad_stride": 32,
        "anchor_t": 4.0,
        "offset_g": 0.5,
    },
}

VALUES = st.one_of(
    st.sampled_from(["x", "0.5", "false", "true", "", "yolov5", "grid", "ssd", "point", "mmdet", "detectron2"]),
    st.booleans(),
    st.sampled_from([0, -1, 1, 2, 7, 8, 64, 4096, 4097, 10**9, 2**62]),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, 1e-300, 0.5, 8.7, 1e4, 1e-4, 1.0001e4, 0.99, 1.01]),
    st.sampled_from([[], [1], [[1]], [[[1]]], [0.5, 2], [[1, 2], [3]], {}, {"a": 1}]),
)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return "[" + ", ".join(_toml_value(x) for x in v) + "]"


def to_toml(d: dict) -> str:
    """A small TOML writer: scalars and arrays first, then each table (``[resize]``) with its keys."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"[{k}]")
            lines += [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _mutate(obj, path, op, value):
    if not path:
        return obj
    head, rest = path[0], path[1:]
    out = dict(obj) if isinstance(obj, dict) else list(obj)
    if rest:
        out[head] = _mutate(obj[head], rest, op, value)
    elif op == "delete":
        del out[head]
    elif op == "duplicate" and isinstance(out, list):
        out.insert(head, obj[head])
    elif op == "extra" and isinstance(out, dict):
        out["colour"] = value
    elif op == "jitter":  # a plausible edit: the number scaled, its type kept (often still valid)
        x = obj[head]
        if isinstance(x, (int, float)) and not isinstance(x, bool):
            out[head] = type(x)(x * value) if isinstance(x, float) else max(1, int(round(x * value)))
    else:
        out[head] = value
    return out


@st.composite
def mutated(draw):
    kind = draw(st.sampled_from(sorted(BASES)))
    d = BASES[kind]
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(d))[1:]
        op = draw(st.sampled_from(["set", "delete", "duplicate", "extra", "jitter", "jitter", "jitter", "jitter"]))
        value = draw(st.sampled_from([0.5, 0.9, 1.1, 2.0, 4.0]) if op == "jitter" else VALUES)
        d = _mutate(d, draw(st.sampled_from(paths)), op, value)
    return kind, d


def _sane_grid(p) -> None:
    assert 0.0 <= p.neg_iou <= p.pos_iou <= 1.0
    if p.kind == "point":
        return
    side = p.resize.fixed[0] if p.resize.fixed else (p.resize.max_size or 1333) + 1
    side = (
        -(-max(side, p.resize.fixed[1] if p.resize.fixed else 0) // p.resize.size_divisible) * p.resize.size_divisible
    )
    assert int(num_anchors(p, side, side)) <= 50_000_000
    for lvl in range(p.num_levels):
        _, _, wa, ha, sx, sy = level_shape_params(p, lvl, side, side)
        assert np.isfinite(wa).all() and np.isfinite(ha).all() and (wa >= 1).all() and (ha >= 1).all()
        assert math.isfinite(sx) and math.isfinite(sy) and sx > 0 and sy > 0


def _sane_yolo(p) -> None:
    a = p.anchor_array()
    assert np.isfinite(a).all() and (a >= 1).all() and p.anchor_t > 1 and 0 <= p.offset_g <= 1
    assert all(p.pad_stride % s == 0 for s in p.strides) and p.img_size % p.pad_stride == 0
    assert len(p.anchors) == len(p.strides) == len(p.level_names) <= 16


def _read(kind, path):
    return preset_from_toml(path) if kind == "yolov5" else get_preset(str(path))


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mutated())
def test_mutated_presets_sane_or_one_line(tmp_path, case):
    kind, d = case
    path = tmp_path / "mutated.toml"
    path.write_text(to_toml(d))
    tracemalloc.start()
    try:
        p = _read(kind, path)
    except InputError as e:
        msg = str(e)
        assert msg.startswith(str(path)) and "\n" not in msg, msg
        assert any(s in msg for s in ("field '", "unknown key", "invalid TOML", "yolov5 preset")), msg
    else:
        (_sane_yolo if kind == "yolov5" else _sane_grid)(p)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 32 * 1024**2


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mutated())
def test_mutated_presets_through_stats(tmp_path, case):
    """The whole command: exit 0 with a report whose anchor counts add up, or exit 2 with one line."""
    kind, d = case
    preset = tmp_path / "mutated.toml"
    preset.write_text(to_toml(d))
    data = tmp_path / "d.json"
    data.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "width": 64, "height": 48, "file_name": "a.jpg"}],
                "annotations": [
                    {"id": 1, "image_id": 1, "category_id": 1, "bbox": [8, 8, 20, 16], "area": 320, "iscrowd": 0}
                ],
                "categories": [{"id": 1, "name": "a"}],
            }
        )
    )
    r = CliRunner().invoke(
        app, ["stats", str(data), "--anchors", str(preset), "--json", "--no-cache", "--workers", "1"]
    )
    assert "Traceback" not in r.output
    if r.exit_code == 0:
        a = json.loads(r.stdout)["anchors"]
        assert a["foreground"] + a["background"] + a["ignored"] == a["anchors"] and a["anchors"] >= 0
    else:
        err = r.stderr.strip()
        assert r.exit_code == 2 and "\n" not in err and "mutated.toml" in err, r.output


def test_preset_that_resizes_an_image_to_nothing_is_named(tmp_path):
    """A TOML preset whose max_size shrinks a 64 x 48 image to 1 x 0 (torchvision's scale = min(800 / 48, 1 / 64)):
    one line naming both the data file's image and the preset file that caused it."""
    d = dict(BASES["grid"], resize=dict(BASES["grid"]["resize"], max_size=1))
    preset = tmp_path / "shrinks.toml"
    preset.write_text(to_toml(d))
    data = tmp_path / "d.json"
    data.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "width": 64, "height": 48, "file_name": "a.jpg"}],
                "annotations": [
                    {"id": 1, "image_id": 1, "category_id": 1, "bbox": [8, 8, 20, 16], "area": 320, "iscrowd": 0}
                ],
                "categories": [{"id": 1, "name": "a"}],
            }
        )
    )
    r = CliRunner().invoke(
        app, ["stats", str(data), "--anchors", str(preset), "--json", "--no-cache", "--workers", "1"]
    )
    err = r.stderr.strip()
    assert r.exit_code == 2 and "\n" not in err, r.output
    assert "d.json" in err and "shrinks.toml" in err and "1 x 0" in err, err
