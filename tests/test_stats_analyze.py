"""`analyze()` on hand-made datasets: every statistic checked against values computed by hand."""

import math

import numpy as np
import pytest

from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError
from imbalance_cli.stats import Analysis, analyze
from imbalance_cli.stats.schema import SCHEMA, problems, validate

NAN = float("nan")


def tiny() -> Dataset:
    """Three images (100x200, 50x50, 10x10 without boxes), 8 records, categories A B C D (ids 3 5 7 9).

    box  image  cat  xyxy              note
    0    0      A    0  0  50 100      w/W .5  h/H .5  sqrt .5    area 5000 medium, centre (.25, .25)
    1    0      A    10 20 25 50       .15 .15 .15                area 450 small,   centre (.175, .175)
    2    0      B    0  0  100 200     1 1 1                      area 20000 large, centre (.5, .5)
    3    1      B    5  5  42 15       .74 .2 sqrt(.148)=.385     area 370 small,   centre (.47, .2)
    4    1      A    crowd
    5    1      C    zero width        non_positive_size
    6    1      C    x1 >= W           outside_image
    7    1      C    NaN               non_finite
    """
    return Dataset(
        image_ids=[10, 11, 12],
        widths=[100, 50, 10],
        heights=[200, 50, 10],
        boxes=[
            [0, 0, 50, 100],
            [10, 20, 25, 50],
            [0, 0, 100, 200],
            [5, 5, 42, 15],
            [0, 0, 10, 10],
            [10, 10, 10, 20],
            [60, 60, 70, 70],
            [NAN, 0, 5, 5],
        ],
        box_image=[0, 0, 0, 1, 1, 1, 1, 1],
        box_category=[0, 0, 1, 1, 0, 2, 2, 2],
        box_ids=[101, 102, 103, 104, 105, 106, 107, 108],
        crowd=[0, 0, 0, 0, 1, 0, 0, 0],
        area=[4000, 500, 9000, NAN, 80, 0, 100, NAN],
        category_ids=[3, 5, 7, 9],
        category_names=["A", "B", "C", "D"],
        path="tiny.json",
    )


def test_summary_and_classes():
    r = analyze(tiny(), location_bins=4, hist_bins=4).to_dict()
    assert r["schema"] == SCHEMA == "imbalance.stats/1"
    d = r["dataset"]
    assert (d["images"], d["annotations"], d["boxes"], d["crowd"], d["invalid"]) == (3, 8, 4, 1, 3)
    assert d["invalid_by_reason"] == {"non_finite": 1, "non_positive_size": 1, "outside_image": 1}
    assert (d["categories"], d["categories_used"], d["images_without_boxes"]) == (4, 2, 1)
    assert d["path"] == "tiny.json" and d["format"] == "coco"
    rows = {c["name"]: c for c in r["classes"]}
    assert [c["id"] for c in r["classes"]] == [3, 5, 7, 9]
    assert (rows["A"]["instances"], rows["A"]["images"]) == (2, 1)  # the crowd A box does not count
    assert (rows["B"]["instances"], rows["B"]["images"]) == (2, 2)
    assert (rows["C"]["instances"], rows["D"]["instances"]) == (0, 0)
    assert all(c["frequency"] == "r" and c["bags_group"] == 1 for c in r["classes"])
    m = r["measures"]  # used counts (2, 2): perfectly balanced
    assert m["imbalance_ratio"] == 1 and m["gini"] == 0 and m["normalized_entropy"] == pytest.approx(1.0)
    assert m["tv_to_uniform"] == 0 and m["kl_to_uniform"] == pytest.approx(0) and m["cv"] == 0
    assert problems(r) == []


def test_per_image_histograms():
    r = analyze(tiny()).to_dict()
    # valid boxes per image: 3, 1, 0
    assert r["objects_per_image"] == {
        "edges": [0, 1, 2, 3, 4],
        "counts": [1, 1, 0, 1],
        "mean": pytest.approx(4 / 3),
        "max": 3,
    }
    # distinct classes per image: {A, B}, {B}, {}
    assert r["classes_per_image"] == {"edges": [0, 1, 2, 3], "counts": [1, 1, 1], "mean": 1.0, "max": 2}


@pytest.fixture(params=[None, 3, 1], ids=["default-blocks", "blocks-of-3", "blocks-of-1"])
def box_block(request, monkeypatch):
    """The scale and location passes work in blocks of boxes: the same hand-computed values whatever the block."""
    from imbalance_cli.stats import geometry

    if request.param is not None:
        monkeypatch.setattr(geometry, "BOX_BLOCK", request.param)
    return request.param


def test_scale(box_block):
    s = analyze(tiny(), hist_bins=4).to_dict()["scale"]
    assert s["relative_width"]["edges"] == [0, 0.25, 0.5, 0.75, 1.0]
    assert s["relative_width"]["counts"] == [1, 0, 2, 1]  # .15 | - | .5 .74 | 1
    assert s["relative_height"]["counts"] == [2, 0, 1, 1]  # .15 .2 | - | .5 | 1
    assert s["relative_area"]["counts"] == [1, 1, 1, 1]  # .15 | .385 | .5 | 1
    assert s["size_groups"] == {"small": 2, "medium": 1, "large": 1}
    # the file's area: 4000 medium, 500 small, 9000 medium, one missing
    assert s["size_groups_by_area_field"] == {"small": 1, "medium": 2, "large": 0, "missing": 1}
    tv = s["tv_to_uniform"]
    assert tv["relative_width"] == pytest.approx(0.25)  # 1/2 (0 + 1/4 + 1/4 + 0)
    assert tv["relative_height"] == pytest.approx(0.25)
    assert tv["relative_area"] == pytest.approx(0.0)


def test_location_rows_are_y_and_per_class(box_block):
    loc = analyze(tiny(), location_bins=4, per_class_location=True).to_dict()["location"]
    want = np.zeros((4, 4), dtype=int)
    want[1, 1] = 1  # box 0 centre (.25, .25)
    want[0, 0] = 1  # box 1 (.175, .175)
    want[2, 2] = 1  # box 2 (.5, .5)
    want[0, 1] = 1  # box 3: x .47 -> column 1, y .2 -> row 0
    assert loc["bins"] == 4
    assert np.array_equal(np.array(loc["counts"]), want)
    assert loc["tv_to_uniform"] == pytest.approx(0.75)
    assert set(loc["per_class"]) == {"3", "5"}  # used classes only, keyed by category id
    a = np.zeros((4, 4), dtype=int)
    a[1, 1] = a[0, 0] = 1
    assert np.array_equal(np.array(loc["per_class"]["3"]), a)
    assert np.array_equal(np.array(loc["per_class"]["5"]) + a, want)
    assert "per_class" not in analyze(tiny(), location_bins=4).to_dict()["location"]


def long_tail() -> Dataset:
    """X: 12 boxes in 12 images; Y: 101 boxes in 101 images; Z: 10 boxes in one image; W: none.

    Image sizes 100x100; every box (10, 10, 30, 40).
    """
    n_img = 101
    cats = [0] * 12 + [1] * 101 + [2] * 10
    imgs = list(range(12)) + list(range(101)) + [5] * 10
    return Dataset(
        image_ids=np.arange(1, n_img + 1),
        widths=np.full(n_img, 100),
        heights=np.full(n_img, 100),
        boxes=np.tile([10, 10, 30, 40], (len(cats), 1)),
        box_image=imgs,
        box_category=cats,
        category_ids=[1, 2, 3, 4],
        category_names=["X", "Y", "Z", "W"],
        frequency=["c", "c", "r", ""],
        category_image_count=[50, 300, 2, 0],
        category_instance_count=[60, 900, 2, 0],
        format="lvis",
    )


def test_frequency_bags_and_measures():
    r = analyze(long_tail()).to_dict()
    rows = {c["name"]: c for c in r["classes"]}
    # LVIS rule on image counts: 12 -> c, 101 -> f, 1 -> r, 0 -> r
    assert [rows[n]["frequency"] for n in "XYZW"] == ["c", "f", "r", "r"]
    # BAGS (seed 002, Eq. 3) on instances with edges 0,10,100,1000,inf: 12 -> 2, 101 -> 3, 10 -> 2, 0 -> 1
    assert [rows[n]["bags_group"] for n in "XYZW"] == [2, 3, 2, 1]
    assert r["bags_groups"] == {"1": 1, "2": 2, "3": 1, "4": 0}
    assert r["bags_edges"] == [0, 10, 100, 1000, None]  # inf -> null in JSON
    assert r["frequency_groups"] == {"r": 2, "c": 1, "f": 1}
    # the file says Y is common; computed says frequent. W has no file frequency.
    assert r["frequency_disagreements"] == [
        {"id": 2, "name": "Y", "images": 101, "frequency": "f", "file_frequency": "c"}
    ]
    assert r["frequency_groups_from_file_counts"] == {"r": 2, "c": 1, "f": 1}  # 50 c, 300 f, 2 r, 0 r
    assert rows["Y"]["file_images"] == 300 and rows["Y"]["file_instances"] == 900
    n = [12.0, 101.0, 10.0]  # used classes
    k, total, mean = 3, sum(n), sum(n) / 3
    p = [x / total for x in n]
    m = r["measures"]
    assert m["imbalance_ratio"] == pytest.approx(10.1)
    assert m["gini"] == pytest.approx(sum(abs(a - b) for a in n for b in n) / (2 * k * k * mean))
    assert m["normalized_entropy"] == pytest.approx(-sum(q * math.log(q) for q in p) / math.log(3))
    assert m["tv_to_uniform"] == pytest.approx(0.5 * sum(abs(q - 1 / 3) for q in p))
    assert m["kl_to_uniform"] == pytest.approx(sum(q * math.log(3 * q) for q in p))
    assert m["cv"] == pytest.approx(np.std(n) / np.mean(n))
    # custom edges
    r2 = analyze(long_tail(), bags_edges=[0, 11, math.inf]).to_dict()
    assert [c["bags_group"] for c in r2["classes"]] == [2, 2, 1, 1]


def test_report_tables_and_json():
    rep = analyze(long_tail(), location_bins=5, hist_bins=8)
    assert isinstance(rep, Analysis)
    df = rep.classes
    assert list(df["name"]) == ["Y", "X", "Z", "W"]  # sorted by instances, descending
    t = rep.tables()
    assert set(t) == {
        "classes",
        "objects_per_image",
        "classes_per_image",
        "relative_width",
        "relative_height",
        "relative_area",
        "location",
    }
    assert len(t["relative_area"]) == 8 and int(t["relative_area"]["count"].sum()) == 123
    assert len(t["location"]) == 25 and int(t["location"]["count"].sum()) == 123
    assert int(t["objects_per_image"]["images"].sum()) == 101
    import json

    d = json.loads(rep.to_json())
    assert d == rep.to_dict()
    validate(d)
    d2 = rep.to_dict()
    d2["classes"].clear()
    assert rep["classes"]  # to_dict() is a copy


def test_verdicts():
    r = analyze(long_tail()).to_dict()
    v = {x["type"]: x for x in r["verdicts"]}
    assert set(v) == {"class", "scale", "location"}
    assert all(x["level"] in ("ok", "moderate", "severe") for x in v.values())
    assert v["class"]["value"] == pytest.approx(r["measures"]["gini"])
    # all boxes identical: scale and location mass sits in one bin -> far from uniform
    assert v["location"]["level"] == "severe" and v["scale"]["level"] == "severe"


def test_empty_and_single_class():
    empty = Dataset(
        image_ids=[],
        widths=[],
        heights=[],
        boxes=np.zeros((0, 4)),
        box_image=[],
        box_category=[],
        category_ids=[],
        category_names=[],
    )
    r = analyze(empty).to_dict()
    assert r["dataset"]["images"] == 0 and r["classes"] == []
    assert all(r["measures"][k] is None for k in ("imbalance_ratio", "gini", "normalized_entropy", "cv"))
    assert r["objects_per_image"]["mean"] is None and r["location"]["tv_to_uniform"] is None
    assert problems(r) == []
    no_boxes = Dataset(
        image_ids=[1, 2],
        widths=[10, 10],
        heights=[10, 10],
        boxes=np.zeros((0, 4)),
        box_image=[],
        box_category=[],
        category_ids=[1],
        category_names=["a"],
    )
    r = analyze(no_boxes).to_dict()
    assert r["objects_per_image"]["counts"] == [2] and r["dataset"]["images_without_boxes"] == 2
    assert r["measures"]["gini"] is None and r["scale"]["size_groups"] == {"small": 0, "medium": 0, "large": 0}
    one = Dataset(
        image_ids=[1],
        widths=[10],
        heights=[10],
        boxes=[[1, 1, 5, 5], [2, 2, 4, 4]],
        box_image=[0, 0],
        box_category=[0, 0],
        category_ids=[1],
        category_names=["a"],
    )
    r = analyze(one).to_dict()
    assert r["measures"]["imbalance_ratio"] == 1 and r["measures"]["normalized_entropy"] is None
    assert {x["type"]: x["level"] for x in r["verdicts"]}["class"] == "ok"


def test_without_image_sizes():
    # Open Images without a sizes CSV: normalised boxes, NaN sizes
    ds = Dataset(
        image_ids=[1],
        widths=[NAN],
        heights=[NAN],
        boxes=[[0.1, 0.2, 0.35, 0.6], [0.5, 0.5, 0.95, 0.7]],
        box_image=[0, 0],
        box_category=[0, 1],
        category_ids=[1, 2],
        category_names=["a", "b"],
        has_image_sizes=False,
        format="openimages",
        path="boxes.csv",
    )
    r = analyze(ds, hist_bins=10, location_bins=2).to_dict()
    assert r["dataset"]["boxes"] == 2
    assert r["scale"]["size_groups"] is None
    assert r["scale"]["relative_width"]["counts"] == [0, 0, 1, 0, 1, 0, 0, 0, 0, 0]  # w .25 and .45
    assert r["location"]["counts"] == [[1, 0], [0, 1]]  # centres (.225, .4) and (.725, .6)
    with pytest.raises(InputError, match="anchor statistics need image sizes") as e:
        analyze(ds, anchors="retinanet")
    assert "boxes.csv" in str(e.value)


def test_strict_and_bad_options():
    with pytest.raises(InputError, match="annotation id 106") as e:
        analyze(tiny(), strict=True)  # first invalid record: box 5, id 106, zero width
    assert "non positive size" in str(e.value) and "3 invalid" in str(e.value)
    analyze(long_tail(), strict=True)  # nothing invalid: no error
    with pytest.raises(InputError, match="bags-edges"):
        analyze(tiny(), bags_edges=[5, 10])  # count 0 falls below the first edge
    with pytest.raises(InputError, match="bags-edges"):
        analyze(tiny(), bags_edges=[0, 10, 5])
    with pytest.raises(InputError, match="location-bins"):
        analyze(tiny(), location_bins=0)
