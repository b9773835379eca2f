"""Splits side by side: per-split statistics equal the COCO originals', distances recomputed by hand, CLI outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import COCO_TRAIN, COCO_VAL, REAL
from typer.testing import CliRunner

from imbalance_cli import load
from imbalance_cli.cli import app
from imbalance_cli.stats import analyze
from imbalance_cli.stats.splits import pick_pair, split_statistics

SAMPLE = REAL / "yolo-coco-mini" / "data.yaml"
runner = CliRunner()


@pytest.fixture(scope="module")
def report():
    return split_statistics(load(SAMPLE), anchors="yolov5")


def _counts_by_name(rep):
    return {c["name"]: c["instances"] for c in rep["classes"]}


def test_each_split_equals_its_coco_original(report):
    assert report["schema"] == "imbalance.splits/1" and report["order"] == ["train", "val"]
    for name, coco in (("train", COCO_TRAIN), ("val", COCO_VAL)):
        ref = analyze(load(coco)).to_dict()
        assert _counts_by_name(report["splits"][name]) == _counts_by_name(ref)
        assert report["splits"][name]["dataset"]["images"] == ref["dataset"]["images"]
        assert report["splits"][name]["anchors"]["preset"] == "yolov5"
        assert 0 < report["splits"][name]["anchors"]["autoanchor"]["bpr"] <= 1


def test_train_vs_val_distances_by_hand(report):
    tr = _counts_by_name(analyze(load(COCO_TRAIN)).to_dict())
    va = _counts_by_name(analyze(load(COCO_VAL)).to_dict())
    names = sorted(tr)
    p = np.array([tr[n] for n in names], float)
    q = np.array([va[n] for n in names], float)
    p, q = p / p.sum(), q / q.sum()
    tv = 0.5 * np.abs(p - q).sum()
    m = (p + q) / 2
    kl = lambda a, b: float(np.sum(a[a > 0] * np.log(a[a > 0] / b[a > 0])))  # noqa: E731
    c = report["comparison"]
    assert report["compared"] == ["train", "val"]
    assert c["classes"]["tv"] == pytest.approx(tv)
    assert c["classes"]["js"] == pytest.approx(0.5 * kl(p, m) + 0.5 * kl(q, m))
    only_train = [n for n in names if tr[n] and not va[n]]
    assert len(c["classes"]["only_in_a"]) == len(only_train) == 2


def test_pick_pair():
    assert pick_pair(["train", "val", "test"]) == ("train", "val")
    assert pick_pair(["a", "b"]) == ("a", "b")
    assert pick_pair(["train", "test"], ("test", "train")) == ("test", "train")
    with pytest.raises(Exception, match="no split named 'val'"):
        pick_pair(["train", "test"], ("train", "val"))


@pytest.mark.slow
def test_cli_json_terminal_and_outputs(tmp_path):
    r = runner.invoke(app, ["stats", str(SAMPLE), "--anchors", "none", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["schema"] == "imbalance.splits/1" and set(d["splits"]) == {"train", "val"}
    out = tmp_path / "out"
    r = runner.invoke(app, ["stats", str(SAMPLE), "--anchors", "yolov5", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "splits side by side" in r.output and "AutoAnchor BPR" in r.output and "train vs val" in r.output
    for f in ("splits.json", "splits.csv", "splits.html", "compare_classes.png", "train/stats.json", "val/report.html"):
        assert (out / f).is_file(), f
    page = (out / "splits.html").read_text()
    assert "train/report.html" in page and "data:image/png;base64," in page
    saved = json.loads((out / "splits.json").read_text())
    assert saved["splits"]["val"]["anchors"]["autoanchor"]["labels"] == 619  # non-crowd COCO val boxes
    assert saved["comparison"]["classes"]["tv"] == pytest.approx(d["comparison"]["classes"]["tv"])


def test_single_split_yaml_gives_plain_report(tmp_path):
    y = tmp_path / "one.yaml"
    y.write_text(
        f"path: {SAMPLE.parent}\nval: images/val2017\nnames: {json.dumps(list(load(COCO_VAL).category_names))}\n"
    )
    r = runner.invoke(app, ["stats", str(y), "--anchors", "none", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["schema"].startswith("imbalance.stats/")


def test_yolov5_anchors_on_a_coco_file_and_bad_options():
    r = runner.invoke(app, ["stats", str(COCO_VAL), "--anchors", "yolov5", "--json"])
    assert r.exit_code == 0, r.output
    a = json.loads(r.stdout)["anchors"]
    assert a["preset"] == "yolov5" and a["autoanchor"]["labels"] == 619 and a["ignored"] == 0
    assert [lv["name"] for lv in a["levels"]] == ["P3", "P4", "P5"]
    for bad in (["--matcher", "mmdet"], ["--pos-iou", "0.6"]):
        r = runner.invoke(app, ["stats", str(COCO_VAL), "--anchors", "yolov5", *bad])
        assert r.exit_code == 2 and "yolov5" in r.output and "Traceback" not in r.output
