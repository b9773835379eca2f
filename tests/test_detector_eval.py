"""Evaluation wrapper vs pycocotools / lvis run directly on the same detections."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest

from imbalance_cli.detector.evaluate import ap_bins, coco_eval, evaluate, lvis_eval, numpy_float_alias


def _gt_and_dets(seed=0):
    rng = np.random.default_rng(seed)
    cats = [
        {"id": 1, "name": "a", "frequency": "f"},
        {"id": 2, "name": "b", "frequency": "c"},
        {"id": 3, "name": "c", "frequency": "r"},
    ]
    images, anns, dets = [], [], []
    for i in range(1, 9):
        present = set()
        for _ in range(rng.integers(1, 4)):
            c = int(rng.integers(1, 4))
            x, y = rng.uniform(0, 60, 2)
            w, h = rng.uniform(8, 40, 2)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": c,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
            present.add(c)
            if rng.random() < 0.8:  # a jittered true positive
                j = rng.normal(0, 3, 4)
                dets.append(
                    {
                        "image_id": i,
                        "category_id": c,
                        "score": float(rng.uniform(0.3, 1)),
                        "bbox": [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])],
                    }
                )
        for _ in range(2):  # false positives
            dets.append(
                {
                    "image_id": i,
                    "category_id": int(rng.integers(1, 4)),
                    "score": float(rng.uniform(0, 0.6)),
                    "bbox": [float(v) for v in rng.uniform(0, 60, 2)] + [20.0, 20.0],
                }
            )
        images.append(
            {
                "id": i,
                "width": 100,
                "height": 100,
                "not_exhaustive_category_ids": [],
                "neg_category_ids": [c for c in (1, 2, 3) if c not in present],
            }
        )
    return {"images": images, "annotations": anns, "categories": cats}, dets


def test_coco_metrics_equal_pycocotools():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, dets = _gt_and_dets()
    stats, per = coco_eval(gt, dets)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(dets)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    for k, v in zip(("AP", "AP50", "AP75", "APs", "APm", "APl"), ev.stats[:6]):
        if v == -1:  # undefined in pycocotools
            assert stats[k] != stats[k]
        else:
            assert stats[k] == pytest.approx(v, abs=1e-12)
    assert stats["APl"] != stats["APl"]  # no box is large (> 96^2) in this ground truth
    # per-class AP: precision over IoU thresholds and recall points, area all, 100 dets
    for k in range(3):
        p = ev.eval["precision"][:, :, k, 0, 2]
        assert per[k] == pytest.approx(p[p > -1].mean())
    # the overall AP is the mean of the per-class APs
    assert stats["AP"] == pytest.approx(np.nanmean(per))


def test_lvis_metrics_equal_lvis_eval_and_alias_removed(tmp_path):
    from lvis import LVIS, LVISEval, LVISResults

    gt, dets = _gt_and_dets(1)
    ours = lvis_eval(gt, dets)
    assert "float" not in np.__dict__  # the alias is gone again
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    np.float = float  # the test provides the alias itself for the direct call
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            lgt = LVIS(str(path))
            ev = LVISEval(lgt, LVISResults(lgt, copy.deepcopy(dets)), iou_type="bbox")
            ev.run()
        res = ev.get_results()
    finally:
        del np.float
    for k in ("APr", "APc", "APf"):
        assert ours[k] == pytest.approx(res[k], abs=1e-12)


def test_numpy_float_alias_restores_on_error():
    with pytest.raises(RuntimeError):
        with numpy_float_alias():
            assert np.float is float
            raise RuntimeError("boom")
    assert "float" not in np.__dict__


def test_ap_bins_mean_per_bag_bin():
    per = np.array([0.1, 0.5, np.nan, 0.9, 0.3])
    inst = [5, 9, 50, 500, 2000]
    bins = ap_bins(per, inst)
    assert [b["classes"] for b in bins] == [2, 1, 1, 1]
    assert bins[0]["AP"] == pytest.approx(0.3)
    assert bins[1]["AP"] is None  # its only class has no held-out ground truth
    assert bins[2]["AP"] == pytest.approx(0.9)
    assert bins[3]["AP"] == pytest.approx(0.3)


def test_evaluate_keys_and_empty_detections():
    gt, dets = _gt_and_dets(2)
    m = evaluate(gt, dets, [500, 50, 5])
    for k in ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf", "AP_bins", "AP_per_class"):
        assert k in m
    empty = evaluate(gt, [], [500, 50, 5])
    assert empty["AP"] == 0.0 and empty["APr"] == 0.0
