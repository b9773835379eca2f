"""One vocabulary (issue 21): "small", the two meanings of "positive", margins' words and counts, the yolov5
summary, the LVIS scope, the anchor-fit verdict, sample-size-aware verdicts and partial batches; every renderer
reads the quantity's label from imbalance_cli/vocabulary.py and the JSON carries its definition.

Expected values come from the raw annotation files (counted here with json), from hand-made datasets whose
anchors are worked out by hand, or from brute-force enumeration; never from the code under test."""

from __future__ import annotations

import gzip
import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import imbalance_cli as im
from imbalance_cli import vocabulary
from imbalance_cli.cli import app
from imbalance_cli.report import tables
from imbalance_cli.report.html import render_html
from imbalance_cli.report.stats import render_terminal
from imbalance_cli.stats import measures
from imbalance_cli.stats.analysis import verdicts

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
COCO_VAL = DATA / "coco-mini_instances_val2017.json.gz"
YOLO = DATA / "yolo-coco-mini" / "data.yaml"
runner = CliRunner()


def _terminal(report: dict) -> str:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=200, color_system=None)
    render_terminal(report, console)
    return console.file.getvalue()


@pytest.fixture(scope="module")
def raw_val():
    return json.loads(gzip.decompress(COCO_VAL.read_bytes()))


@pytest.fixture(scope="module")
def val_report():
    return im.analyze(im.load(str(COCO_VAL)), anchors="retinanet", device="cpu").to_dict()


def _valid(raw) -> list[dict]:
    return [a for a in raw["annotations"] if not a.get("iscrowd") and a["bbox"][2] > 0 and a["bbox"][3] > 0]


# ------------------------------------------------------------------------------------------------ "small"
@pytest.mark.slow
def test_small_is_one_definition_in_stats_coverage_fit_and_yolo(raw_val, val_report):
    from imbalance_cli.anchorfit.scoring import frequency_groups, label_metrics
    from imbalance_cli.data.yolo import split_datasets
    from imbalance_cli.stats.anchors import label_anchors

    valid = _valid(raw_val)
    wh = np.array([a["bbox"][2] * a["bbox"][3] for a in valid])
    expected = {
        "small": int((wh < 32**2).sum()),
        "medium": int(((wh >= 32**2) & (wh < 96**2)).sum()),
        "large": int((wh >= 96**2).sum()),
    }
    assert expected["small"] == 224  # the "36.2% (224 boxes)"
    assert val_report["scale"]["size_groups"] == expected and val_report["scale"]["size_groups_by"] == "box"
    cov = val_report["anchors"]["coverage"]
    assert {g: v["boxes"] for g, v in cov["by_size"].items()} == expected and cov["size_groups_by"] == "box"
    ds = im.load(str(COCO_VAL))
    m = label_metrics(label_anchors(ds, "retinanet", device="cpu"), ds, frequency_groups(ds))
    assert {g: v["boxes"] for g, v in m["by_size"].items()} == expected
    val = split_datasets(im.load(str(YOLO)))["val"]  # the same boxes in YOLO format (no area field)
    assert im.analyze(val, anchors="none").to_dict()["scale"]["size_groups"] == expected
    # every renderer names the definition
    assert "size groups (box w·h)" in _terminal(val_report)
    assert "size groups (box w·h)" in render_html(val_report, [])
    csv = tables.csv_tables(val_report)["scale_size_groups.csv"]
    assert "box w*h" in csv and "by_area_field" not in csv


@pytest.mark.slow
def test_coco_eval_groups_only_when_asked_and_labelled(raw_val):
    valid = _valid(raw_val)
    area = np.array([a["area"] for a in valid])
    small = int((area < 32**2).sum())
    assert small == 284  # the file's area field: the second denominator
    res = runner.invoke(app, ["stats", str(COCO_VAL), "--coco-eval-sizes", "--json", "-q", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["scale"]["size_groups_by"] == "area_field" and r["scale"]["size_groups"]["small"] == small
    assert r["anchors"]["coverage"]["by_size"]["small"]["boxes"] == small
    assert r["definitions"]["size_groups_by"]["value"] == "area_field"
    assert "pycocotools" in r["definitions"]["size_groups_by"]["meaning"]
    assert "COCO-eval size groups" in _terminal(r)


# ------------------------------------------------------------------------------------------------ "positive"
def _hand_coco(tmp_path) -> Path:
    """One 800 x 800 image (retinanet keeps its size): box 1 equals the P3 anchor of size 32 centred at (400, 400)
    (IoU 1); box 2 is 4 x 4 px: every anchor's IoU with it is at most 16 / 1024 < 0.4, so it is below the
    positive and the negative IoU, and only the low-quality rule gives it positives."""
    d = {
        "images": [{"id": 1, "width": 800, "height": 800, "file_name": "a.jpg"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [384, 384, 32, 32], "area": 1024, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [100, 100, 4, 4], "area": 16, "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }
    p = tmp_path / "hand.json"
    p.write_text(json.dumps(d))
    return p


def test_two_meanings_of_positive_named_apart_in_stats_and_check(tmp_path):
    path = _hand_coco(tmp_path)
    res = runner.invoke(app, ["stats", str(path), "--json", "-q", "--device", "cpu"])
    a = json.loads(res.stdout)["anchors"]
    assert (a["boxes_without_positive"], a["boxes_below_positive_iou"], a["boxes_below_negative"]) == (0, 1, 1)
    res = runner.invoke(app, ["check", str(path), "--anchors", "retinanet", "--report-format", "json"])
    findings = {f["rule"]: f for f in json.loads(res.stdout)["findings"]}
    assert "anchor_no_positive" not in findings  # no box lacks a positive anchor ...
    f = findings["anchor_below_positive_iou"]  # ... but one of two is trained only by low-quality matches
    assert f["value"] == pytest.approx(0.5) and f["annotation_ids"] == [2]
    assert "IoU >= 0.5" in f["message"] and "0 without any positive" in f["message"]
    # terminal and HTML show both, each under its one label
    rep = json.loads(runner.invoke(app, ["stats", str(path), "--json", "-q", "--device", "cpu"]).stdout)
    text = _terminal(rep)
    html = render_html(rep, [])
    for key in ("boxes_without_positive", "boxes_below_positive_iou"):
        assert vocabulary.label(key) in text and vocabulary.label(key) in html
        assert rep["definitions"][key] == vocabulary.term(key).as_dict()


def test_low_quality_off_makes_the_two_counts_equal(tmp_path):
    path = _hand_coco(tmp_path)
    toml = tmp_path / "p.toml"
    toml.write_text(
        "strides = [8]\nsizes = [[32]]\naspect_ratios = [1.0]\npos_iou = 0.5\nneg_iou = 0.4\n"
        "allow_low_quality = false\n[resize]\nmin_size = 800\nmax_size = 1333\nsize_divisible = 32\n"
    )
    res = runner.invoke(app, ["stats", str(path), "--anchors", str(toml), "--json", "-q", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    a = json.loads(res.stdout)["anchors"]
    assert a["boxes_without_positive"] == a["boxes_below_positive_iou"] == 1


def test_check_and_stats_agree_on_the_bundled_val(val_report):
    res = runner.invoke(app, ["check", str(COCO_VAL), "--anchors", "retinanet", "--report-format", "json"])
    findings = {f["rule"]: f for f in json.loads(res.stdout)["findings"]}
    a = val_report["anchors"]
    assert a["boxes_without_positive"] == 1 and a["boxes_below_positive_iou"] == 67  # the 1 and 67
    assert findings["anchor_no_positive"]["message"].startswith(f"{a['boxes_without_positive']} of {a['boxes']}")
    assert f"{a['boxes_below_positive_iou']} (" in findings["anchor_no_positive"]["message"]


# ------------------------------------------------------------------------------------------------ margins, yolov5, LVIS
def test_margins_header_words_and_counts(raw_val):
    valid = _valid(raw_val)
    used = {a["category_id"] for a in valid}
    empty = len([c for c in raw_val["categories"] if c["id"] not in used])
    res = runner.invoke(app, ["margins", str(COCO_VAL), "--fg-bg-ratio", "3", "--json"])
    rep = json.loads(res.stdout)
    assert rep["total_instances"] == len(valid) == 619 and rep["empty_classes"] == empty == 2
    assert rep["formula_instances"] == len(valid) + empty == 621
    res = runner.invoke(app, ["margins", str(COCO_VAL), "--fg-bg-ratio", "3"], terminal_width=200)
    out = " ".join(res.output.split())  # the title wraps at the table's width
    assert "619 instances (621 instances in the formulas: 2 classes without instances count as one)" in out
    assert "background per foreground (r) = 3" in out and "fg/bg" not in out


def test_yolov5_summary_names_the_ratio_test_not_iou():
    rep = json.loads(runner.invoke(app, ["stats", str(YOLO), "--json", "-q"]).stdout)
    text = _terminal(rep["splits"]["val"])
    assert "ratio test max(r, 1/r) < 4" in text and "positive IoU" not in text and "negative <" not in text
    assert vocabulary.label("boxes_below_positive_iou") not in text  # no IoU: one meaning only
    assert "w/h ratio metric" in text


def test_lvis_disagreements_hidden_with_the_groups():
    r = im.analyze(im.load(str(DATA / "lvis_v0.5_val_100.json.gz")), anchors="none").to_dict()
    assert r["frequency_scope"]["shown"] is False and len(r["frequency_disagreements"]) > 700
    text = _terminal(r)
    assert "LVIS frequency groups hidden" in text
    assert "differs" not in text and "differs" not in render_html(r, [])


# ------------------------------------------------------------------------------------------------ verdicts and size
def _enumerated_tv(n: int, bins: int) -> float:
    """E[TV to uniform] of n uniform draws over bins, by enumerating every outcome (a second implementation)."""
    total = 0.0
    for cells in itertools.product(range(bins), repeat=n):
        c = np.bincount(cells, minlength=bins) / n
        total += 0.5 * np.abs(c - 1 / bins).sum()
    return total / bins**n


@pytest.mark.parametrize("n, bins", [(1, 2), (2, 3), (3, 4), (5, 3), (4, 6)])
def test_expected_tv_is_exact(n, bins):
    assert measures.expected_histogram_tv(n, bins) == pytest.approx(_enumerated_tv(n, bins), rel=1e-12)


def test_one_voc_image_is_not_called_severe():
    r = im.analyze(im.load(str(DATA / "VOC2007_Annotations_000001.xml")), anchors="none").to_dict()
    assert r["dataset"]["boxes"] == 2
    v = {x["type"]: x for x in r["verdicts"]}
    assert v["scale"]["level"] == v["location"]["level"] == "undetermined"
    assert "too few boxes" in v["location"]["message"]
    # 2 boxes in 50 bins: a balanced dataset shows TV 1 - 1/50 - (chance both share a bin) ... by enumeration
    assert v["scale"]["chance"] == pytest.approx(_enumerated_tv(2, 50))


def test_a_large_concentrated_sample_is_still_severe_and_a_balanced_one_ok():
    rng = np.random.default_rng(3)
    n = 4000
    ok = {
        "dataset": {"boxes": n},
        "measures": {"gini": None},
        "scale": {
            "tv_to_uniform": {
                "relative_area": measures.histogram_tv(np.bincount(rng.integers(0, 50, n), minlength=50))
            },
            "relative_area": {"counts": [0] * 50},
        },
        "location": {"tv_to_uniform": 1 - 1 / 400, "bins": 20},
    }
    v = {x["type"]: x for x in verdicts(ok)}
    assert v["scale"]["level"] == "ok" and v["scale"]["p_value"] > 0.01  # uniform draws: within noise
    assert v["location"]["level"] == "severe" and v["location"]["excess"] > 0.9  # every box in one cell


def test_verdict_levels_rendered_from_one_style():
    r = im.analyze(im.load(str(DATA / "VOC2007_Annotations_000001.xml")), anchors="none").to_dict()
    html = render_html(r, [])
    assert 'class="undetermined"' in html and "UNDETERMINED" in _terminal(r)
    assert set(tables.LEVEL_STYLE) >= set(("ok", "moderate", "severe", "undetermined"))


# ------------------------------------------------------------------------------------------------ anchor fit verdict
def test_fit_verdict_names_its_costs():
    from imbalance_cli.anchorfit.outcome import fit_verdict

    before = {"coverage": 0.881, "positives_per_box": 23.3, "background_per_foreground": 861.0, "score": 0.8}
    after = {"coverage": 0.974, "positives_per_box": 9.4, "background_per_foreground": 861.0 * 2.6, "score": 0.9}
    v = fit_verdict(before, after)
    assert v["level"] == "trade-off"
    assert any("positives per box 23.3 -> 9.4" in c for c in v["costs"])
    assert any("2.6x" in c for c in v["costs"]) and any("coverage 88.1% -> 97.4%" in g for g in v["gains"])
    assert fit_verdict(before, dict(before, coverage=0.9, score=0.85))["level"] == "better"
    assert fit_verdict(before, dict(before, score=0.8))["level"] == "no gain"


def test_fit_report_carries_the_verdict_and_shows_it(tmp_path):
    """A small-box dataset: the fit raises coverage and lowers positives per box (the README's synthetic case)."""
    from test_anchors_fit import small_box_coco

    ds = im.load(str(small_box_coco(tmp_path / "small.json", images=30, seed=5)))
    from imbalance_cli.anchorfit.outcome import to_report
    from imbalance_cli.anchorfit.search import fit_anchors
    from imbalance_cli.report.anchorfit import render_html as fit_html
    from imbalance_cli.report.anchorfit import render_terminal as fit_terminal

    rep = to_report(fit_anchors(ds, "retinanet", iterations=5, sample=None, seed=5))
    b, a = rep["all"]["before"], rep["all"]["after"]
    assert a["positives_per_box"] < b["positives_per_box"] * 0.8 and a["coverage"] > b["coverage"]
    assert rep["verdict"]["level"] == "trade-off" and "positives per box" in rep["verdict"]["message"]
    assert b["background_per_foreground"] == pytest.approx(b["background"] / b["foreground"])
    from rich.console import Console

    console = Console(file=io.StringIO(), width=200, color_system=None)
    fit_terminal(rep, console, snippets=False)
    assert "TRADE-OFF" in console.file.getvalue()
    assert "trade-off" in fit_html(rep, None).lower()


# ------------------------------------------------------------------------------------------------ one vocabulary
def test_json_definitions_are_the_vocabulary(val_report):
    d = val_report["definitions"]
    for key, entry in d.items():
        if key == "size_groups_by":
            assert entry["value"] == "box" and entry["meaning"] == vocabulary.SIZE_DEFINITIONS["box"].meaning
        else:
            assert entry == vocabulary.term(key).as_dict()
    # the quantities the report holds are defined
    for key in ("boxes", "gini", "foreground", "boxes_without_positive", "boxes_below_positive_iou", "small"):
        assert key in d
    # CSV: measures and anchor summary carry the vocabulary's meaning
    files = tables.csv_tables(val_report)
    assert vocabulary.meaning("gini") in files["measures.csv"]
    assert vocabulary.meaning("boxes_below_positive_iou") in files["anchors_summary.csv"]


def test_batches_keep_the_partial_last_batch_and_show_shares_as_percent():
    res = runner.invoke(app, ["batches", str(COCO_VAL), "--batch-size", "16", "--json"])
    rep = json.loads(res.stdout)
    assert rep["samples"] == 79 and rep["batches"] == 5 and rep["last_batch_size"] == 79 - 4 * 16
    res = runner.invoke(app, ["batches", str(COCO_VAL), "--batch-size", "16", "--drop-last", "--json"])
    rep = json.loads(res.stdout)
    assert rep["batches"] == 4 and rep["dropped_samples"] == 15
    out = runner.invoke(app, ["batches", str(COCO_VAL), "--batch-size", "16"], terminal_width=200).output
    assert "5 batches of 16 (the last one partial: 15 images)" in out
