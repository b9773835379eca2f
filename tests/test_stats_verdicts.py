"""An honest interface (issue 12 item 5): verdicts against a stated reference, LVIS groups labelled and scoped,
class names instead of ids, flags shown as flags, -o/--out a directory everywhere."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imbalance_cli.cli import app
from imbalance_cli.stats.analysis import FG_BG_REFERENCE, VERDICT_THRESHOLDS, verdicts
from imbalance_cli.stats.classes import lvis_frequency_scope

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
COCO_VAL = DATA / "coco-mini_instances_val2017.json.gz"
COCO_TRAIN = DATA / "coco-mini_instances_train2017.json.gz"
runner = CliRunner()


def _minimal(preset: str, fg: int, bg: int) -> dict:
    return {
        "measures": {"gini": None},
        "scale": {"tv_to_uniform": {"relative_area": None}},
        "location": {"tv_to_uniform": None},
        "anchors": {"preset": preset, "matcher": "torchvision", "foreground": fg, "background": bg},
    }


@pytest.mark.parametrize(
    "factor, level", [(0.5, "ok"), (1.0, "ok"), (1.99, "ok"), (2.01, "moderate"), (4.9, "moderate"), (5.1, "severe")]
)
def test_fg_bg_level_is_relative_to_the_preset_reference(factor, level):
    ref = 27_202_200 / 31_585  # RetinaNet on the two bundled COCO subsets (see FG_BG_REFERENCE)
    fg = 1000
    bg = round(ref * factor * fg)
    v = next(x for x in verdicts(_minimal("retinanet", fg, bg)) if x["type"] == "foreground_background")
    assert v["value"] == pytest.approx(bg / fg)
    assert v["level"] == level
    assert v["reference"] == pytest.approx(ref)
    assert "COCO" in v["reference_source"] and "COCO under the same preset" in v["message"]


def test_coco_like_foreground_background_ratio_is_not_severe():
    # about 1:1000 is what RetinaNet sees on COCO: a fixed threshold (>= 100) would call every COCO-like dataset severe
    v = next(x for x in verdicts(_minimal("retinanet", 1, 1000)) if x["type"] == "foreground_background")
    assert v["level"] == "ok"
    assert VERDICT_THRESHOLDS["foreground_background"] == (2.0, 5.0)


def test_preset_without_reference_says_so():
    v = next(x for x in verdicts(_minimal("my_preset", 10, 100000)) if x["type"] == "foreground_background")
    assert v["level"] == "ok" and v["reference"] is None and "no COCO reference" in v["message"]


@pytest.mark.slow
def test_reference_reproduces_on_bundled_coco():
    """The reference numbers are what the engine measures on the two bundled COCO subsets, per preset."""
    import imbalance_cli as im
    from imbalance_cli.stats import analyze

    sets = [im.load(str(COCO_TRAIN)), im.load(str(COCO_VAL))]
    for preset, ref in FG_BG_REFERENCE.items():
        fg = bg = 0
        for ds in sets:
            a = analyze(ds, anchors=preset, negative_iou_sample=1)["anchors"]
            fg += a["foreground"]
            bg += a["background"]
        assert bg / fg == pytest.approx(ref, rel=1e-12), preset


def test_lvis_scope_by_image_count():
    # LVIS v1 train: 100,170 images (lvis_v1_train.json); groups hidden below 10% of that
    small = lvis_frequency_scope(79)
    assert small["shown"] is False and "100,170" in small["reason"] and "79" in small["reason"]
    assert small["rare_max_images"] == 10 and small["common_max_images"] == 100
    assert lvis_frequency_scope(10_016)["shown"] is False
    assert lvis_frequency_scope(10_017)["shown"] is True
    assert lvis_frequency_scope(118_287)["shown"] is True
    assert lvis_frequency_scope(None)["shown"] is True  # category statistics: image total unknown


@pytest.mark.slow
def test_stats_on_small_coco_hides_lvis_groups_and_names_classes(tmp_path):
    res = runner.invoke(
        app, ["stats", str(COCO_VAL), "--anchors", "ssd300", "-o", str(tmp_path / "r"), "-q"], env={"COLUMNS": "200"}
    )
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert "LVIS frequency groups hidden" in text and "100,170" in text
    assert "┃ LVIS ┃" not in text  # no per-class LVIS column
    d = json.loads((tmp_path / "r" / "stats.json").read_text())
    assert d["frequency_scope"]["shown"] is False and d["frequency_scope"]["images"] == 79
    # fewest positives per instance: the table names classes (names from the file, not from the code)
    with gzip.open(COCO_VAL, "rt") as f:
        names = {str(c["id"]): c["name"] for c in json.load(f)["categories"]}
    ppi = d["anchors"]["positives_per_instance"]
    worst = min(ppi, key=lambda k: (ppi[k], k))
    section = text[text.index("Fewest positive anchors per instance") :]
    first_row = next(line for line in section.splitlines() if line.startswith("│"))
    assert first_row.split("│")[1].strip() == names[worst]
    html = (tmp_path / "r" / "report.html").read_text()
    assert "LVIS frequency groups hidden" in html and "<th>LVIS</th>" not in html
    fb = next(v for v in d["verdicts"] if v["type"] == "foreground_background")
    assert fb["reference"] == pytest.approx(FG_BG_REFERENCE["ssd300"])


def test_lvis_statistics_file_shows_lvis_thresholds():
    res = runner.invoke(app, ["groups", str(DATA / "lvis_v1_train_cat_info.json.gz")], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "LVIS's thresholds on images per class: rare ≤ 10, common 11–100, frequent > 100" in res.stdout
    res = runner.invoke(app, ["groups", str(DATA / "lvis_v1_train_cat_info.json.gz"), "--json"])
    assert json.loads(res.stdout)["frequency_scope"]["shown"] is True


@pytest.mark.parametrize("command", ["stats", "margins", "groups", "compare", "batches"])
def test_help_shows_flags_as_flags_and_out_as_directory(command):
    res = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    for opt in ("--json", "--quiet"):
        line = next(line for line in lines if re.search(rf"{opt}\b", line))
        assert "<bool>" not in line and "--no-" not in line, line
    out = next(line for line in lines if re.search(r"│\s*--out\b", line))
    assert "-o" in out and "DIR" in out and "directory" in res.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["margins", str(COCO_VAL), "--one-stage"],
        ["groups", str(COCO_VAL)],
        ["compare", str(COCO_VAL), str(COCO_VAL)],
        ["batches", str(COCO_VAL)],
    ],
)
def test_out_must_be_a_directory(tmp_path, args):
    target = tmp_path / "file.txt"
    target.write_text("x")
    res = runner.invoke(app, [*args, "-o", str(target)])
    assert res.exit_code == 2 and "must be a directory" in res.stderr and "Traceback" not in res.output
    assert target.read_text() == "x"
