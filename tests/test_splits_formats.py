"""Splits and formats (issue 21): --split NAME in every command that reads a multi-split data.yaml (never a
silent merge), compare between two splits of one file, train on a data.yaml without --images, a hint for bare
label folders, "did you mean" for preset typos (yolov5 listed), --format on a file of another kind.

Expected counts come from the bundled YOLO sample's own files (images and label lines counted here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imbalance_cli.cli import app

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
YOLO = DATA / "yolo-coco-mini" / "data.yaml"
COCO_VAL = DATA / "coco-mini_instances_val2017.json.gz"
runner = CliRunner()


def _split_facts(split_dir: str) -> tuple[int, int]:
    """(images, label lines) of one split folder of the bundled YOLO sample."""
    root = DATA / "yolo-coco-mini"
    images = len(list((root / "images" / split_dir).glob("*.png")))
    lines = sum(
        len([ln for ln in f.read_text().splitlines() if ln.strip()])
        for f in (root / "labels" / split_dir).glob("*.txt")
    )
    return images, lines


VAL = _split_facts("val2017")
TRAIN = _split_facts("train2017")


def _json(args: list[str]) -> dict:
    res = runner.invoke(app, args)
    assert res.exit_code == 0, (args, res.stdout, res.stderr)
    return json.loads(res.stdout)


def _help(command: str) -> str:
    """``--help`` of a command as one line of words (rich's boxes and wrapping removed)."""
    text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "250"}).stdout
    return " ".join(text.replace("│", " ").split())


def test_facts_of_the_sample():
    assert VAL == (79, 619) and TRAIN == (80, 731)


def test_stats_split():
    r = _json(["stats", str(YOLO), "--split", "val", "--anchors", "none", "--json"])
    assert r["schema"] == "imbalance.stats/1"  # one split: the usual report, not the side-by-side one
    assert (r["dataset"]["images"], r["dataset"]["boxes"]) == VAL
    assert r["dataset"]["path"].endswith("[val]")


@pytest.mark.parametrize("command", [["margins", "--fg-bg-ratio", "3"], ["groups"]])
def test_training_side_commands_default_to_train_and_say_so(command):
    res = runner.invoke(app, [command[0], str(YOLO), *command[1:], "--json"])
    assert res.exit_code == 0, res.stderr
    assert "using split 'train'" in res.stderr and "--split NAME" in res.stderr
    rep = json.loads(res.stdout)
    total = rep.get("total_instances", rep.get("instances_total"))
    if total is None:
        total = sum(c["instances"] for c in rep["classes"])
    assert total == TRAIN[1]
    rep = _json([command[0], str(YOLO), *command[1:], "--split", "val", "--json"])
    total = rep.get("total_instances") or sum(c["instances"] for c in rep["classes"])
    assert total == VAL[1]


def test_batches_split():
    rep = _json(["batches", str(YOLO), "--split", "val", "--batch-size", "8", "--json"])
    assert rep["images"] == VAL[0] and rep["samples"] == VAL[0]
    res = runner.invoke(app, ["batches", str(YOLO), "--batch-size", "8", "--json"])
    assert json.loads(res.stdout)["images"] == TRAIN[0] and "using split 'train'" in res.stderr


def test_anchors_fits_on_train_not_on_train_plus_val():
    res = runner.invoke(
        app, ["anchors", str(YOLO), "--preset", "yolov5", "--iterations", "0", "--sample", "10", "--json"]
    )
    assert res.exit_code == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["dataset"].endswith("[train]") and rep["all"]["before"]["images"] == TRAIN[0]
    assert "using split 'train'" in res.stderr


def test_check_checks_each_split_never_the_merge():
    rep = _json(["check", str(YOLO), "--report-format", "json"])
    assert [r["path"] for r in rep["files"]] == [f"{YOLO}[train]", f"{YOLO}[val]"]
    assert [r["summary"]["images"] for r in rep["files"]] == [TRAIN[0], VAL[0]]
    one = _json(["check", str(YOLO), "--split", "val", "--report-format", "json"])  # one result: one object
    assert one["path"] == f"{YOLO}[val]" and one["summary"]["images"] == VAL[0]


def test_compare_two_splits_of_one_file():
    rep = _json(["compare", str(YOLO), "--json"])
    assert (rep["a"]["name"], rep["b"]["name"]) == ("data.yaml[train]", "data.yaml[val]")
    assert (rep["a"]["images"], rep["b"]["images"]) == (TRAIN[0], VAL[0])
    rep = _json(["compare", str(YOLO), "--split", "val", "--split", "train", "--json"])
    assert (rep["a"]["images"], rep["b"]["images"]) == (VAL[0], TRAIN[0])
    # the YOLO val split against the COCO val file it was converted from
    rep = _json(["compare", str(YOLO), str(COCO_VAL), "--split", "val", "--json"])
    assert rep["a"]["boxes"] == rep["b"]["boxes"] == VAL[1]
    res = runner.invoke(app, ["compare", str(YOLO), str(YOLO)])
    assert res.exit_code == 2 and "--split" in res.stderr and "Traceback" not in res.stderr


def test_split_errors_are_one_line():
    for args in (
        ["stats", str(YOLO), "--split", "trian"],
        ["margins", str(YOLO), "--split", "vall"],
        ["check", str(YOLO), "--split", "tain"],
    ):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and "did you mean" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = runner.invoke(app, ["stats", str(COCO_VAL), "--split", "val"])
    assert res.exit_code == 2 and "no splits" in res.stderr


@pytest.mark.slow
def test_train_takes_a_data_yaml_without_images(tmp_path):
    from imbalance_cli.anchors.presets import preset_from_dict
    from imbalance_cli.detector import data as D
    from imbalance_cli.detector.train import COMPACT_PRESET_SPEC

    preset = preset_from_dict(COMPACT_PRESET_SPEC)
    d = D.load_real(str(YOLO), None, preset, 0.2, 0)
    assert (len(d.train), len(d.val)) == (TRAIN[0], VAL[0])  # train split trained, val split evaluated
    assert len(d.val_gt["annotations"]) == VAL[1] and d.source["val_split"] == "val"
    assert all(im.shape[0] == 3 for im in d.train.images[:3])
    res = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(YOLO),
            "--images",
            str(DATA / "yolo-coco-mini" / "images"),
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert res.exit_code == 2 and "--images does not apply to a YOLO dataset" in res.stderr
    res = runner.invoke(app, ["train", "--split", "val", "--out", str(tmp_path / "run2")])
    assert res.exit_code == 2 and "only a YOLO data.yaml has splits" in res.stderr
    help_text = _help("train")
    assert "YOLO data.yaml (its own images" in help_text and "no --images" in help_text


def test_bare_labels_folder_hints_at_classes(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    for f in sorted((DATA / "yolo-coco-mini" / "labels" / "val2017").glob("*.txt"))[:5]:
        shutil.copy(f, labels / f.name)
    res = runner.invoke(app, ["stats", str(labels), "--anchors", "none"])
    assert res.exit_code == 0, res.stderr
    assert "--classes names.txt" in res.stderr
    (tmp_path / "names.txt").write_text("\n".join(f"c{k}" for k in range(80)) + "\n")
    res = runner.invoke(app, ["stats", str(labels), "--anchors", "none", "--classes", str(tmp_path / "names.txt")])
    assert res.exit_code == 0 and "--classes names.txt" not in res.stderr


def test_preset_typo_says_did_you_mean_and_lists_yolov5():
    res = runner.invoke(app, ["stats", str(COCO_VAL), "--anchors", "retinet"])
    assert res.exit_code == 2 and "did you mean 'retinanet'" in res.stderr and "yolov5" in res.stderr
    res = runner.invoke(app, ["stats", str(COCO_VAL), "--anchors", "yolov4"])
    assert res.exit_code == 2 and "did you mean 'yolov5'" in res.stderr


@pytest.mark.parametrize(
    "fmt, path, kind",
    [
        ("voc", COCO_VAL, "COCO-style JSON"),
        ("openimages", COCO_VAL, "COCO-style JSON"),
        ("coco", DATA / "VOC2007_Annotations_000001.xml", "Pascal VOC XML"),
        ("coco", DATA / "openimages-coco-mini_val-bbox.csv", "an Open Images box CSV"),
    ],
)
def test_forced_format_on_a_file_of_another_kind_names_the_right_one(fmt, path, kind):
    res = runner.invoke(app, ["stats", str(path), "--format", fmt, "--anchors", "none"])
    assert res.exit_code == 2 and f"the file is {kind}, not {fmt}" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_anchors_device_defaults_to_auto_like_stats():
    import re

    for cmd in ("anchors", "stats"):
        text = _help(cmd)
        assert re.search(r"--device \[auto\|cpu\|cuda\] .*?\[default: auto\]", text), cmd
