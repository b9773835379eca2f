"""`imbalance groups`: BAGS groups and mappings (seed 002), LVIS r/c/f, repeat factors, class-balanced weights."""

import gzip
import json
import math

import numpy as np
import pytest
from conftest import LVIS_V1_CATS
from typer.testing import CliRunner

from imbalance_cli.cli import app
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.stats.counts import class_counts_from
from imbalance_cli.stats.groups import long_tail_groups

runner = CliRunner()


def test_lvis_v1_done_when_numbers():
    res = runner.invoke(app, ["groups", str(LVIS_V1_CATS), "--json", "--num-images", "100170"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["schema"] == "imbalance.groups/1"
    assert [g["classes"] for g in rep["bags"]["groups"]] == [200, 412, 334, 257]
    assert [g["index"] for g in rep["bags"]["groups"]] == [1, 2, 3, 4]
    assert rep["frequency"] == {"r": 337, "c": 461, "f": 405}
    assert rep["frequency_disagreements"] == []  # the file's own letters agree with image counts
    assert sum(g["instances"] for g in rep["bags"]["groups"]) == 1_270_141
    # repeat factors recomputed from the raw file: r = max(1, sqrt(0.001 / (image_count / 100170)))
    cats = json.loads(gzip.decompress(LVIS_V1_CATS.read_bytes()))
    for c in cats[:50]:
        exp = max(1.0, math.sqrt(0.001 / (c["image_count"] / 100170)))
        assert rep["repeat_factors"]["per_class"][str(c["id"])] == pytest.approx(exp, rel=1e-12)
        n = c["instance_count"]
        assert rep["class_balanced"]["per_class"][str(c["id"])] == pytest.approx((1 - 0.999) / (1 - 0.999**n))
    lo, hi = rep["repeat_factors"]["expected_epoch_images_bounds"]
    assert 100170 <= lo <= hi
    assert rep["repeat_factors"]["expected_epoch_images"] is None


def test_statistics_file_without_num_images_has_no_repeat_factors():
    rep = long_tail_groups(class_counts_from(LVIS_V1_CATS))
    assert rep["repeat_factors"]["per_class"] is None and "--num-images" in rep["repeat_factors"]["note"]


def _tiny():
    # 4 images; class 10: 1 box in image 0; class 20: 12 boxes over images 1-3; class 30: unused
    boxes = [[0, 0, 5, 5]] * 13
    box_image = [0] + [1] * 4 + [2] * 4 + [3] * 4
    box_cat = [0] + [1] * 12
    return Dataset(
        image_ids=[1, 2, 3, 4],
        widths=[10] * 4,
        heights=[10] * 4,
        boxes=boxes,
        box_image=box_image,
        box_category=box_cat,
        category_ids=[10, 20, 30],
        category_names=["a", "b", "c"],
    )


def test_repeat_factors_and_epoch_length_by_hand():
    rep = long_tail_groups(class_counts_from(_tiny()), repeat_threshold=0.5)
    rf = rep["repeat_factors"]
    # f(10) = 1/4 -> r = sqrt(0.5 / 0.25) = sqrt(2); f(20) = 3/4 -> r = 1; class 30 in no image -> None
    assert rf["per_class"]["10"] == pytest.approx(math.sqrt(2))
    assert rf["per_class"]["20"] == 1.0 and rf["per_class"]["30"] is None
    assert rf["expected_epoch_images"] == pytest.approx(math.sqrt(2) + 3)
    cb = rep["class_balanced"]
    assert cb["per_class"]["20"] == pytest.approx((1 - 0.999) / (1 - 0.999**12))
    w10, w20 = 1.0, (1 - 0.999) / (1 - 0.999**12)
    assert cb["normalized"]["10"] == pytest.approx(2 * w10 / (w10 + w20))
    assert cb["per_class"]["30"] is None
    assert [g["category_ids"] for g in rep["bags"]["groups"]] == [[10, 30], [20], [], []]


def _reference_bags(counts, edges):
    """label2binlabel / pred_slice built straight from seed 002 §4 (others = 0; background -> others in groups 1..N)."""
    C, N = len(counts), len(edges) - 1
    group = [next(n for n in range(1, N + 1) if edges[n - 1] <= x < edges[n]) for x in counts]
    l2b = np.zeros((N + 1, C + 1), dtype=np.int64)
    # group 0: index 0 is `others` = every foreground class (p_0^0 is the foreground probability, §4.4),
    # index 1 is the background (label C)
    l2b[0, C] = 1
    for n in range(1, N + 1):
        members = [c for c in range(C) if group[c] == n]
        for k, c in enumerate(members):
            l2b[n, c] = k + 1
    sizes = [2] + [sum(g == n for g in group) + 1 for n in range(1, N + 1)]
    starts = np.cumsum([0] + sizes[:-1])
    return l2b, np.stack([starts, sizes], axis=1)


def test_out_dir_mappings_match_seed_002(tmp_path):
    import torch

    counts = [5, 150, 12, 3000, 0, 40, 999]
    cats = [
        {"id": 100 + i, "name": f"c{i}", "instance_count": n, "image_count": min(n, 3)} for i, n in enumerate(counts)
    ]
    f = tmp_path / "cats.json"
    f.write_text(json.dumps({"categories": cats}))
    res = runner.invoke(app, ["groups", str(f), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    l2b_ref, ps_ref = _reference_bags(counts, [0, 10, 100, 1000, math.inf])
    bags = json.loads((tmp_path / "o" / "bags.json").read_text())
    np.testing.assert_array_equal(bags["label2binlabel"], l2b_ref)
    np.testing.assert_array_equal(bags["pred_slice"], ps_ref)
    np.testing.assert_array_equal(torch.load(tmp_path / "o" / "label2binlabel.pt").numpy(), l2b_ref)
    np.testing.assert_array_equal(torch.load(tmp_path / "o" / "pred_slice.pt").numpy(), ps_ref)
    rep = json.loads((tmp_path / "o" / "groups.json").read_text())
    assert rep["bags"]["edges"] == [0, 10, 100, 1000, "inf"]


def test_custom_edges_and_bad_input(tmp_path):
    res = runner.invoke(app, ["groups", str(LVIS_V1_CATS), "--bags-edges", "0,100,inf", "--json"])
    assert res.exit_code == 0
    rep = json.loads(res.stdout)
    assert [g["classes"] for g in rep["bags"]["groups"]] == [200 + 412, 334 + 257]
    for args in (
        ["--bags-edges", "0,10,5"],
        ["--bags-edges", "a,b"],
        ["--cb-beta", "1.5"],
        ["--num-images", "0"],
        ["--repeat-threshold", "0"],
    ):
        r = runner.invoke(app, ["groups", str(LVIS_V1_CATS), *args])
        assert r.exit_code == 2, (args, r.output)
    bad = tmp_path / "x.json"
    bad.write_text("[1, 2")
    assert runner.invoke(app, ["groups", str(bad)]).exit_code == 2


@pytest.mark.parametrize("block", [1, 3, 7, 1 << 20])
def test_class_and_image_counts_are_the_same_read_in_blocks(monkeypatch, block):
    """Per-class instances / images, per-image box counts and image repeat factors read block by block equal a plain
    count over (image, class) pairs written here, whatever the block size (blocks split an image's boxes)."""
    import imbalance_cli.stats.classes as classes
    import imbalance_cli.stats.groups as groups

    rng = np.random.default_rng(5)
    n, n_img, n_cat = 200, 13, 6
    ds = Dataset(
        boxes=np.tile([[1.0, 1.0, 5.0, 5.0]], (n, 1)),
        box_image=rng.integers(0, n_img, n),
        box_category=rng.integers(0, n_cat, n),
        image_ids=np.arange(n_img),
        category_ids=np.arange(n_cat) + 10,
        category_names=np.array([f"c{i}" for i in range(n_cat)]),
        widths=np.full(n_img, 10.0),
        heights=np.full(n_img, 10.0),
    )
    mask = rng.random(n) < 0.7
    monkeypatch.setattr(classes, "BOX_BLOCK", block)
    monkeypatch.setattr(groups, "BOX_BLOCK", block)
    inst, imgs = classes.class_counts(ds, mask)
    pairs = {(int(i), int(c)) for i, c, k in zip(ds.box_image, ds.box_category, mask) if k}
    assert inst.tolist() == [int(((ds.box_category == c) & mask).sum()) for c in range(n_cat)]
    assert imgs.tolist() == [sum(1 for _, c2 in pairs if c2 == c) for c in range(n_cat)]
    per_image = classes.boxes_per_image(ds, mask)
    assert per_image.tolist() == [int(((ds.box_image == i) & mask).sum()) for i in range(n_img)]
    factors = np.array([1.5, np.nan, 3.0, 1.0, 2.0, 4.0])
    got = groups.image_repeat_factors(ds, factors)  # every box is valid here
    want = [
        max([1.0] + [np.nan_to_num(factors[c], nan=1.0) for i2, c in zip(ds.box_image, ds.box_category) if i2 == i])
        for i in range(n_img)
    ]
    assert got.tolist() == want
