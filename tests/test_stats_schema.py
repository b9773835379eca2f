"""The ``imbalance.stats/1`` validator: accepts real reports, names what is wrong in broken ones."""

import copy

import pytest

from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError
from imbalance_cli.stats import analyze
from imbalance_cli.stats.schema import SCHEMA, problems, validate


@pytest.fixture(scope="module")
def good():
    ds = Dataset(
        image_ids=[1, 2],
        widths=[100, 100],
        heights=[50, 50],
        boxes=[[1, 1, 20, 20], [5, 5, 90, 40]],
        box_image=[0, 1],
        box_category=[0, 1],
        category_ids=[1, 2],
        category_names=["a", "b"],
    )
    return analyze(ds).to_dict()


def test_valid_report_passes(good):
    assert problems(good) == [] and validate(good) is good and good["schema"] == SCHEMA


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda d: d.pop("measures"), "missing key 'measures'"),
        (lambda d: d["dataset"].pop("boxes"), "missing key 'dataset.boxes'"),
        (lambda d: d["dataset"].__setitem__("images", "2"), "'dataset.images' has type str"),
        (lambda d: d["dataset"].__setitem__("images", True), "'dataset.images' has type bool"),
        (lambda d: d["measures"].__setitem__("gini", "high"), "'measures.gini'"),
        (lambda d: d.__setitem__("schema", "other/1"), "schema is 'other/1'"),
        (lambda d: d.__setitem__("schema", "imbalance.stats/9"), "newer"),
        (lambda d: d["classes"][0].pop("bags_group"), "classes[0] misses 'bags_group'"),
        (lambda d: d["classes"][1].__setitem__("frequency", "x"), "classes[1].frequency"),
        (lambda d: d["location"]["counts"].pop(), "location.counts must be"),
        (lambda d: d["objects_per_image"]["edges"].append(99), "objects_per_image: len(edges)"),
    ],
)
def test_problems_are_named(good, mutate, needle):
    d = copy.deepcopy(good)
    mutate(d)
    found = problems(d)
    assert any(needle in p for p in found), found
    with pytest.raises(InputError, match="not an imbalance.stats/1 report") as e:
        validate(d, path="stats.json")
    assert str(e.value).startswith("stats.json: ")


def test_measures_may_be_null(good):
    d = copy.deepcopy(good)
    d["measures"] = {k: None for k in d["measures"]}
    d["scale"]["size_groups"] = None
    assert problems(d) == []
    assert problems([1, 2]) == ["report must be a JSON object, got list"]


def test_report_load_round_trip(good, tmp_path):
    import json

    from imbalance_cli.stats import Analysis

    p = tmp_path / "stats.json"
    p.write_text(json.dumps(good))
    assert Analysis.load(p).to_dict() == good
    p.write_text('{"schema": "imbalance.stats/1"')
    with pytest.raises(InputError, match="malformed or truncated JSON"):
        Analysis.load(p)
    p.write_text('{"schema": "imbalance.stats/1"}')
    with pytest.raises(InputError, match="missing key 'dataset'"):
        Analysis.load(p)
