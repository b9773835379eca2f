"""`imbalance batches`: samplers and batch-level statistics (survey §4.2.2, §4.4.3) checked by hand."""

import json
import math

import numpy as np
import pytest
from conftest import LVIS_V05
from typer.testing import CliRunner

from imbalance_cli.cli import app
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.stats.batches import batch_statistics, epoch_order

runner = CliRunner()


def _ds():
    """10 images: class 1 (id 1) in images 0-8 (one box each), class 2 (id 2) in image 9 (3 boxes)."""
    boxes = [[0, 0, 10, 10]] * 12
    box_image = list(range(9)) + [9, 9, 9]
    box_cat = [0] * 9 + [1] * 3
    return Dataset(
        image_ids=list(range(1, 11)),
        widths=[100] * 10,
        heights=[100] * 10,
        boxes=boxes,
        box_image=box_image,
        box_category=box_cat,
        category_ids=[1, 2],
        category_names=["a", "b"],
    )


def test_one_batch_of_everything_matches_dataset():
    rep = batch_statistics(_ds(), batch_size=10, sampler="uniform", epochs=1)
    assert rep["batches"] == 1 and rep["divergence"]["mean"] == pytest.approx(0.0, abs=1e-12)
    assert rep["coverage"]["mean"] == 2 and rep["instances_per_batch"]["mean"] == 12


def test_batch_size_one_statistics_by_hand():
    rep = batch_statistics(_ds(), batch_size=1, sampler="uniform", epochs=2, seed=3)
    assert rep["batches"] == 20 and rep["coverage"]["mean"] == 1
    # dataset q = (9/12, 3/12); a class-1 image gives TV 1/4, the class-2 image TV 3/4
    assert rep["divergence"]["mean"] == pytest.approx((18 * 0.25 + 2 * 0.75) / 20)
    assert rep["divergence"]["max"] == pytest.approx(0.75)
    # frequency groups from image counts: both classes rare (<= 10 images); BAGS: 9 -> group 1, 3 -> group 1
    assert rep["group_absence"]["frequency"] == {"r": 0.0, "c": None, "f": None}
    assert rep["group_absence"]["bags"]["1"] == 0.0


def test_repeat_factor_epoch_length_and_rounding():
    # t = 0.4: f(1) = 0.9 -> r = 1; f(2) = 0.1 -> r = 2 exactly -> image 9 appears exactly twice per epoch
    order = epoch_order("repeat-factor", np.random.default_rng(0), 10, image_factors=np.array([1.0] * 9 + [2.0]))
    assert sorted(order.tolist()) == list(range(9)) + [9, 9]
    rep = batch_statistics(_ds(), batch_size=1, sampler="repeat-factor", epochs=3, repeat_threshold=0.4)
    assert rep["samples_per_epoch"] == 11
    # non-integer factor sqrt(0.5 / 0.1) = sqrt(5): stochastic rounding keeps the expectation 9 + sqrt(5)
    rep = batch_statistics(_ds(), batch_size=1, sampler="repeat-factor", epochs=4000, repeat_threshold=0.5, seed=1)
    assert rep["samples_per_epoch"] == pytest.approx(9 + math.sqrt(5), abs=0.03)


def test_class_aware_picks_classes_uniformly():
    rep = batch_statistics(_ds(), batch_size=1, sampler="class-aware", epochs=2000, seed=0, keep_per_batch=True)
    # class 2's only image holds 3 instances; it should make about half the batches
    share_b = np.mean(np.asarray(rep["per_batch"]["instances"]) == 3)
    assert share_b == pytest.approx(0.5, abs=0.02)
    assert rep["coverage"]["classes_never_sampled"] == 0


@pytest.mark.slow
def test_seeded_and_cli(tmp_path):
    a = batch_statistics(_ds(), batch_size=3, sampler="uniform", epochs=5, seed=7)
    b = batch_statistics(_ds(), batch_size=3, sampler="uniform", epochs=5, seed=7)
    assert a == b
    res = runner.invoke(
        app,
        [
            "batches",
            str(LVIS_V05),
            "--batch-size",
            "4",
            "--sampler",
            "repeat-factor",
            "--epochs",
            "2",
            "--json",
            "--out",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    # the last, partial batch is kept (PyTorch's drop_last=False) and counted
    assert rep["schema"] == "imbalance.batches/1" and rep["batches"] == -(-rep["samples"] // 4)
    assert rep["last_batch_size"] == (rep["samples"] % 4 or 4) and rep["dropped_samples"] == 0
    # LVIS val carries the train frequencies: the file's own letters define the groups
    assert rep["group_absence"]["frequency_source"] == "file"
    assert set(rep["group_absence"]["frequency"]) == {"r", "c", "f"}
    assert 0 <= rep["divergence"]["mean"] <= rep["divergence"]["max"] <= 1
    lines = (tmp_path / "per_batch.csv").read_text().splitlines()
    assert len(lines) == rep["batches"] + 1 and (tmp_path / "batches.png").stat().st_size > 0
    for args in (
        ["--sampler", "nope"],
        ["--batch-size", "0"],
        ["--epochs", "0"],
        ["--batch-size", "100000", "--drop-last"],
    ):
        r = runner.invoke(app, ["batches", str(LVIS_V05), *args])
        assert r.exit_code == 2, (args, r.output)


def test_foreground_share_per_batch_aggregates_anchor_counts():
    from imbalance_cli.stats.batches import anchor_counts

    ds = Dataset(
        image_ids=[1, 2],
        widths=[800, 640],
        heights=[800, 480],
        boxes=[[384, 384, 416, 416], [10, 10, 200, 300], [300, 100, 340, 200]],
        box_image=[0, 1, 1],
        box_category=[0, 0, 1],
        category_ids=[1, 2],
        category_names=["a", "b"],
    )
    ac = anchor_counts(ds, "retinanet")
    assert (ac["foreground"] >= 1).all() and ac["boxes_without_positive"] == 0
    assert ac["per_class_positive"].sum() == ac["foreground"].sum()
    one = batch_statistics(ds, batch_size=2, anchors="retinanet")
    assert one["foreground_share"]["mean"] == pytest.approx(ac["foreground"].sum() / ac["anchors"].sum())
    per = batch_statistics(ds, batch_size=1, anchors="retinanet", keep_per_batch=True)
    assert sorted(per["per_batch"]["foreground_share"]) == pytest.approx(sorted(ac["foreground"] / ac["anchors"]))
