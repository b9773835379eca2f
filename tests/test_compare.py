"""`imbalance compare`: distances recomputed by hand, self-comparison is zero, CLI outputs."""

import gzip
import json

import numpy as np
import pytest
from conftest import COCO_TRAIN, COCO_VAL
from typer.testing import CliRunner

from imbalance_cli.cli import app
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.stats.compare import compare_datasets, js_divergence, tv_distance, wasserstein_hist

runner = CliRunner()


def test_distances_by_hand():
    assert tv_distance([1, 1, 2], [2, 0, 2]) == pytest.approx(0.5 * (0.25 + 0.25 + 0))
    p, q = np.array([0.25, 0.25, 0.5]), np.array([0.5, 0.0, 0.5])
    m = (p + q) / 2
    kl = lambda a, b: sum(x * np.log(x / y) for x, y in zip(a, b) if x > 0)  # noqa: E731
    assert js_divergence([1, 1, 2], [2, 0, 2]) == pytest.approx(0.5 * kl(p, m) + 0.5 * kl(q, m))
    # all mass in bin 0 vs all in bin 3 of 4 bins of width 0.25: centres 0.125 -> 0.875, W1 = 0.75
    assert wasserstein_hist([5, 0, 0, 0], [0, 0, 0, 2], [0, 0.25, 0.5, 0.75, 1.0]) == pytest.approx(0.75)
    # half the mass moves one bin: W1 = 0.5 * 0.25
    assert wasserstein_hist([2, 0], [1, 1], [0, 0.25, 0.5]) == pytest.approx(0.125)
    assert tv_distance([0, 0], [1, 2]) is None


def _ds(boxes, cats, ids=(1, 2)):
    return Dataset(
        image_ids=[1],
        widths=[100],
        heights=[100],
        boxes=boxes,
        box_image=[0] * len(boxes),
        box_category=cats,
        category_ids=list(ids),
        category_names=[f"c{i}" for i in ids],
    )


def test_two_tiny_datasets():
    a = _ds([[0, 0, 10, 10], [0, 0, 10, 10]], [0, 0])  # 2 x class 1, relative area 0.1, centre (0.05, 0.05)
    b = _ds([[50, 50, 100, 100], [0, 0, 10, 10]], [1, 0])  # class 2 (area 0.5) + class 1
    rep = compare_datasets(a, b, scale_bins=10, location_bins=2)
    assert rep["classes"]["tv"] == pytest.approx(0.5)
    assert rep["classes"]["only_in_b"] == [2] and rep["classes"]["only_in_a"] == []
    # relative area: a = {0.1, 0.1} (bin 1), b = {0.5, 0.1} (bins 5, 1): half the mass moves 4 bins of 0.1
    assert rep["scale"]["relative_area"]["wasserstein"] == pytest.approx(0.5 * 0.4)
    # centres: a both top-left; b one top-left, one bottom-right (0.75, 0.75)
    assert rep["location"]["tv"] == pytest.approx(0.5)
    assert np.asarray(rep["location"]["counts_b"])[1, 1] == 1


@pytest.mark.slow
def test_real_subsets_self_zero_and_cli(tmp_path):
    res = runner.invoke(app, ["compare", str(COCO_VAL), str(COCO_VAL), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["schema"] == "imbalance.compare/1"
    assert rep["classes"]["tv"] == 0 and rep["location"]["tv"] == 0
    assert all(s["wasserstein"] == 0 for s in rep["scale"].values())

    res = runner.invoke(app, ["compare", str(COCO_TRAIN), str(COCO_VAL), "--json", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    raw = {}
    for k, path in (("a", COCO_TRAIN), ("b", COCO_VAL)):
        d = json.loads(gzip.decompress(path.read_bytes()))
        c = {}
        for an in d["annotations"]:
            if not an.get("iscrowd") and an["bbox"][2] > 0 and an["bbox"][3] > 0:
                c[an["category_id"]] = c.get(an["category_id"], 0) + 1
        raw[k] = c
    ids = sorted(set(raw["a"]) | set(raw["b"]))
    pa = np.array([raw["a"].get(i, 0) for i in ids], float)
    pb = np.array([raw["b"].get(i, 0) for i in ids], float)
    assert rep["classes"]["tv"] == pytest.approx(0.5 * np.abs(pa / pa.sum() - pb / pb.sum()).sum())
    for name in (
        "compare.json",
        "compare_classes.csv",
        "compare_classes.png",
        "compare_scale.png",
        "compare_location.png",
    ):
        assert (tmp_path / name).stat().st_size > 0
    assert runner.invoke(app, ["compare", str(COCO_VAL), str(tmp_path / "none.json")]).exit_code == 2
    assert runner.invoke(app, ["compare", str(COCO_VAL), str(COCO_VAL), "--scale-bins", "0"]).exit_code == 2
