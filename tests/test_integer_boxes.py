"""detectron2's integer boxes: the loader's per-annotation flag, the cache, and the truncating resize.

detectron2 keeps a COCO bbox whose four JSON numbers are integers as an int64 array through
``ResizeTransform.apply_coords``, which writes the scaled coordinates back into it (truncating them);
the end-to-end counts are held to detectron2's own output in ``tests/test_anchors_framework_oracle.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from imbalance_cli.anchors.generator import box_keep, resized_sizes, scale_boxes
from imbalance_cli.anchors.presets import get_preset
from imbalance_cli.data import load
from imbalance_cli.data.coco import from_dict

BOXES = [
    [201, 1123, 45, 755],
    [201.0, 1123, 45, 755],
    [10, 20, 30, 40.5],
    [0, 0, 567, 1234],
    [3, 4, 5, None],
    [7, 8, 9, 10],
    [1.5, 2, 3, 4],
]


def _doc(boxes=BOXES, crowd=None):
    crowd = crowd or [0] * len(boxes)
    return {
        "images": [{"id": 1, "width": 567, "height": 1234}],
        "annotations": [
            {"id": k + 1, "image_id": 1, "category_id": 1, "bbox": b, "iscrowd": c}
            for k, (b, c) in enumerate(zip(boxes, crowd))
        ],
        "categories": [{"id": 1, "name": "a"}],
    }


EXPECTED = [True, False, False, True, False, True, False]


def test_loader_flags_bboxes_written_as_four_json_integers(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(json.dumps(_doc(crowd=[0, 0, 0, 0, 0, 1, 0])))
    ds = load(str(p), cache=False)
    assert ds.integer_boxes.tolist() == EXPECTED
    assert from_dict(_doc(), str(p)).integer_boxes.tolist() == EXPECTED
    assert ds.subset_images(np.array([0])).integer_boxes.tolist() == EXPECTED


def test_flag_survives_the_cache_and_workers(tmp_path, monkeypatch):
    monkeypatch.setenv("IMBALANCE_CACHE", str(tmp_path / "cache"))
    p = tmp_path / "b.json"
    many = (BOXES * 400)[:2500]
    p.write_text(json.dumps(_doc(many)))
    first = load(str(p))
    second = load(str(p))  # from the cache
    expected = (EXPECTED * 400)[:2500]
    assert first.integer_boxes.tolist() == expected and second.integer_boxes.tolist() == expected
    assert load(str(p), cache=False, workers=2).integer_boxes.tolist() == expected


def test_huge_integer_literal_is_an_invalid_box_not_a_crash(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps(_doc([[1, 2, 3, 4]])).replace("[1, 2, 3, 4]", "[1, 2, " + "9" * 400 + ", 4]"))
    ds = load(str(p), cache=False)
    assert not np.isfinite(ds.boxes[0, 2]) and not ds.valid_mask()[0]


def _detectron2_int_resize(xywh, h, w, preset):
    """detectron2's steps for an integer bbox, written out: int64 array, x2 = x + w, coords scaled in place."""
    nh, nw = (int(v[0]) for v in resized_sizes(np.array([h]), np.array([w]), preset))
    arr = np.array([[xywh[0], xywh[1], xywh[0] + xywh[2], xywh[1] + xywh[3]]], dtype=np.int64)
    coords = arr.reshape(-1, 2).copy()
    coords[:, 0] = coords[:, 0] * (nw * 1.0 / w)  # ResizeTransform.apply_coords on an int64 array
    coords[:, 1] = coords[:, 1] * (nh * 1.0 / h)
    box = coords.reshape(-1, 4)[0].clip(min=0)
    return np.minimum(box, [nw, nh, nw, nh]).astype(np.float32)


@pytest.mark.parametrize("xywh", [[201, 1123, 45, 755], [0, 0, 567, 1234], [13, 17, 3, 2], [566, 1233, 1, 1]])
def test_scale_boxes_truncates_integer_boxes_as_detectron2(xywh):
    p = get_preset("detectron2-retinanet")
    x, y, w, h = xywh
    b = np.array([[x, y, x + w, y + h]], dtype=np.float64)
    H, W = np.array([1234.0]), np.array([567.0])
    got = scale_boxes(b, H, W, p, integer=np.array([True]))
    np.testing.assert_array_equal(got[0], _detectron2_int_resize(xywh, 1234, 567, p))
    if xywh == [201, 1123, 45, 755]:  # the box: the float path keeps fractions (1213.08 ...)
        assert not np.array_equal(got, scale_boxes(b, H, W, p))


def test_integer_box_truncated_to_nothing_is_dropped_like_filter_empty_instances():
    p = get_preset("detectron2-retinanet")
    b = np.array([[100.0, 100.0, 101.0, 101.0]])  # 1 x 1 px in a 4000 x 3000 image: 0.27 px after the resize
    H, W = np.array([3000.0]), np.array([4000.0])
    assert box_keep(p, b, H, W, integer=np.array([False]))[0]
    assert not box_keep(p, b, H, W, integer=np.array([True]))[0]
    # other presets ignore the flag
    assert np.array_equal(
        scale_boxes(b, H, W, get_preset("mmdet-retinanet"), integer=np.array([True])),
        scale_boxes(b, H, W, get_preset("mmdet-retinanet")),
    )
