"""Renderers: terminal summary, CSV tables, PNG figures, self-contained HTML, atomic writes.

All inputs are hand-made report dicts in the ``imbalance.stats/1`` schema; expected values
are computed in the test from those inputs.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from imbalance_cli.errors import InputError
from imbalance_cli.report import figures as figmod
from imbalance_cli.report import render_terminal, tables, write_outputs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_report(n_classes: int = 6, seed: int = 0, anchors: bool = False) -> dict:
    """A small but complete report; class i has a distinct instance count (last one 0)."""
    rng = np.random.default_rng(seed)
    instances = [max(0, int(400 / (i + 1) ** 1.5)) for i in range(n_classes)]
    instances[-1] = 0
    order = rng.permutation(n_classes)  # report order is by id, not by instances
    classes = []
    for rank in order:
        inst = instances[rank]
        imgs = (inst + 1) // 2
        classes.append(
            {
                "id": int(rank) * 3 + 1,
                "name": f"class_{rank:03d}",
                "instances": inst,
                "images": imgs,
                "frequency": "r" if imgs <= 10 else ("c" if imgs <= 100 else "f"),
                "bags_group": 1 + int(np.searchsorted([10, 100, 1000], inst, side="right")),
                "file_frequency": "f",
            }
        )
    opi_edges = list(range(0, 9))
    opi_counts = [3, 10, 7, 5, 2, 0, 1, 1]
    cpi_counts = [3, 14, 9, 2, 1, 0, 0, 0]
    rel_edges = np.linspace(0, 1, 11).tolist()
    loc = rng.integers(0, 9, size=(5, 5)).tolist()
    report = {
        "schema": "imbalance.stats/1",
        "dataset": {
            "format": "coco",
            "path": "tests/data/tiny.json",
            "images": 29,
            "annotations": 140,
            "boxes": 131,
            "crowd": 4,
            "invalid": 5,
            "invalid_by_reason": {"non_finite": 1, "non_positive_size": 3, "outside_image": 1},
            "categories": n_classes,
            "categories_used": n_classes - 1,
            "images_without_boxes": 3,
        },
        "classes": classes,
        "measures": {
            "imbalance_ratio": 57.25,
            "gini": 0.6125,
            "normalized_entropy": 0.7,
            "tv_to_uniform": 0.41,
            "kl_to_uniform": None,
            "cv": 1.9,
        },
        "objects_per_image": {"edges": opi_edges, "counts": opi_counts, "mean": 2.4, "max": 7},
        "classes_per_image": {"edges": opi_edges, "counts": cpi_counts, "mean": 1.5, "max": 4},
        "scale": {
            "relative_width": {"edges": rel_edges, "counts": [40, 30, 20, 10, 9, 8, 7, 4, 2, 1]},
            "relative_height": {"edges": rel_edges, "counts": [35, 30, 25, 10, 9, 8, 7, 4, 2, 1]},
            "relative_area": {"edges": rel_edges, "counts": [60, 30, 15, 10, 6, 4, 3, 2, 1, 0]},
            "size_groups": {"small": 70, "medium": 40, "large": 21},
            "size_groups_by_area_field": {"small": 72, "medium": 39, "large": 20},
            "tv_to_uniform": {"relative_width": 0.35, "relative_height": 0.33, "relative_area": 0.5},
        },
        "location": {"bins": 5, "counts": loc, "tv_to_uniform": 0.2},
        "verdicts": [
            {"type": "class", "level": "severe", "message": "imbalance ratio 57 over 5 used classes"},
            {"type": "scale", "level": "moderate", "message": "53% of boxes are small"},
            {"type": "location", "level": "ok", "message": "centres spread over the image"},
        ],
        "some_future_key": {"ignored": True},
    }
    if anchors:
        report["anchors"] = _anchors_block(classes)
    return report


def _anchors_block(classes: list[dict]) -> dict:
    """The ``anchors`` section of :func:`make_report` (RetinaNet on 29 images; positives twice each class's count)."""
    return {
        "preset": "retinanet",
        "matcher": "torchvision",
        "device": "cpu",
        "images": 29,
        "anchors": 29000,
        "foreground": 300,
        "background": 28500,
        "ignored": 200,
        "per_image": {"anchors": 1000, "foreground": 10.3, "background": 982.8, "ignored": 6.9},
        "per_class_positive": {str(c["id"]): 2 * c["instances"] for c in classes},
        "pos_neg_ratio": 300 / 28500,
        "task_pos_neg_ratio": 300 / (300 * 5 + 28500 * 6),
        "levels": [
            {"name": f"P{i}", "stride": 2**i, "anchors": 1000, "foreground": 60, "best_level_boxes": 5}
            for i in range(3, 8)
        ],
        "positive_iou": {"edges": np.linspace(0, 1, 21).tolist(), "counts": [0] * 8 + [5] * 12},
        "negative_iou": {"edges": np.linspace(0, 0.4, 9).tolist(), "counts": [100] * 8, "zero": 27000},
        "boxes_without_positive": 7,
        "boxes_below_negative": 2,
        "thresholds": {"pos_iou": 0.5, "neg_iou": 0.4, "allow_low_quality": True},
        "coverage": {
            "by_size": {
                "small": {"boxes": 70, "without_positive": 6, "below_negative": 2},
                "medium": {"boxes": 40, "without_positive": 1, "below_negative": 0},
                "large": {"boxes": 21, "without_positive": 0, "below_negative": 0},
            },
            "by_class": {
                str(c["id"]): {"boxes": c["instances"], "without_positive": 0, "below_negative": 0} for c in classes
            },
        },
    }


def _console(width: int = 110):
    from rich.console import Console

    return Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------------------
# terminal
# --------------------------------------------------------------------------------------
def test_terminal_shows_top_class_measures_and_verdicts():
    report = make_report()
    top = max(report["classes"], key=lambda c: c["instances"])
    console = _console()
    render_terminal(report, console)
    text = console.file.getvalue()
    assert top["name"] == "class_000"
    assert "class_000" in text
    assert f"{top['instances']:,}" in text
    for v in report["verdicts"]:
        assert v["message"] in text
        assert v["level"].upper() in text
    assert "Gini coefficient" in text and "0.6125" in text
    assert "mean 2.4" in text  # objects per image summary
    # median of objects per image from the histogram: cumulative 3, 13 >= 29/2 at value 1? 3+10=13 < 14.5 -> value 2
    assert "median 2" in text
    assert "tests/data/tiny.json" in text


def test_terminal_top_and_bottom_when_many_classes():
    report = make_report(n_classes=30)
    console = _console(width=120)
    render_terminal(report, console)
    text = console.file.getvalue()
    ranked = sorted(report["classes"], key=lambda c: (-c["instances"], -c["images"], c["id"]))
    for c in ranked[:10] + ranked[-10:]:
        assert c["name"] in text, c["name"]
    for c in ranked[10:-10]:  # the middle of the tail is summarised away
        assert c["name"] not in text, c["name"]


def test_terminal_tolerates_missing_sections():
    for report in (
        {},
        {"schema": "imbalance.stats/1"},
        {"classes": [], "measures": {"gini": None}},
        {"scale": {"size_groups": None}},
    ):
        console = _console()
        render_terminal(report, console)
    assert "not available" in console.file.getvalue()


def test_terminal_calls_anchor_tables(monkeypatch):
    from imbalance_cli.report import anchor_tables

    calls = []
    monkeypatch.setattr(
        anchor_tables, "render", lambda anchors, console, names=None: calls.append((anchors["preset"], names["1"]))
    )
    render_terminal(make_report(anchors=True), _console())
    assert calls == [("retinanet", "class_000")]


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def test_histogram_quantile_and_sparkline():
    hist = {"edges": [0, 1, 2, 3, 4], "counts": [1, 1, 5, 1]}
    assert tables.histogram_quantile(hist, 0.5) == (2.0, 3.0)  # 8 items: cumulative 1, 2, 7 >= 4
    assert tables.histogram_quantile(hist, 0.1) == (0.0, 1.0)
    assert tables.histogram_quantile({"edges": [0, 1], "counts": [0]}, 0.5) is None
    s = tables.sparkline([0, 1, 10, 100], log=True, width=None)
    assert len(s) == 4 and s[0] == " " and s[-1] == "█"
    assert s[1] < s[2] < s[3]
    assert len(tables.sparkline(range(1, 101), width=20)) == 20


def test_histogram_bins_forms():
    assert tables.histogram_bins({"edges": [0, 1, 2], "counts": [4, 5]}) == [(0.0, 1.0, 4.0), (1.0, 2.0, 5.0)]
    assert tables.histogram_bins({"edges": [0, 1], "counts": [4, 5]}) == [(0.0, None, 4.0), (1.0, None, 5.0)]
    assert tables.histogram_bins({"counts": [4]}) == [(0.0, 1.0, 4.0)]
    assert tables.histogram_bins(None) == []


# --------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------
def test_fig5a_sorted_bars_on_log_scale():
    report = make_report(n_classes=8)
    fig = figmod.class_long_tail_figure(report)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    heights = [p.get_height() for p in ax.patches]
    expected = sorted((c["instances"] for c in report["classes"]), reverse=True)
    assert len(heights) == len(expected)
    got = [0 if math.isnan(h) else h for h in heights]
    assert got == expected
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "class_000"


def test_fig5b_fig7_fig13_data():
    report = make_report()
    fig = figmod.per_image_figure(report["objects_per_image"], "objects", "b")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert [p.get_height() for p in ax.patches] == report["objects_per_image"]["counts"]
    assert [p.get_x() + p.get_width() / 2 for p in ax.patches] == pytest.approx(list(range(8)))

    fig = figmod.scale_figure(report)
    assert [a.get_yscale() for a in fig.axes[:3]] == ["log"] * 3
    bars = fig.axes[3].patches  # size groups: one definition (box w*h), the area field only when asked
    assert [b.get_height() for b in bars] == [70, 40, 21]
    assert "box w·h" in fig.axes[3].get_title()
    report["scale"]["size_groups_by"] = "area_field"
    report["scale"]["size_groups"] = report["scale"]["size_groups_by_area_field"]
    fig = figmod.scale_figure(report)
    assert [b.get_height() for b in fig.axes[3].patches] == [72, 39, 20]
    assert "COCO-eval" in fig.axes[3].get_title() and "area" in fig.axes[3].get_title()

    fig = figmod.location_figure(report)
    image = fig.axes[0].images[0]
    np.testing.assert_array_equal(np.asarray(image.get_array()), np.asarray(report["location"]["counts"]))
    assert tuple(image.get_extent()) == (0, 1, 1, 0)  # top of the image at the top


def test_figures_many_classes_and_per_class_location():
    report = make_report(n_classes=150)
    report["location"]["per_class"] = {str(c["id"]): report["location"]["counts"] for c in report["classes"][:3]}
    names = [f[0] for f in figmod.figures(report)]
    assert names == [
        "fig5a_class_long_tail.png",
        "fig5b_objects_per_image.png",
        "fig5c_classes_per_image.png",
        "fig7_scale.png",
        "fig13_location.png",
        "fig13_location_per_class.png",
    ]


# --------------------------------------------------------------------------------------
# write_outputs
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "out"
    report = make_report()
    paths = write_outputs(report, out)
    return report, out, paths


@pytest.mark.slow
def test_write_outputs_json_roundtrip(written):
    report, out, paths = written
    assert all(p.exists() for p in paths)
    # no temp files left; the manifest lists what the tool wrote
    assert sorted(p.name for p in out.iterdir()) == sorted([p.name for p in paths] + [".imbalance-manifest.json"])
    loaded = json.loads((out / "stats.json").read_text())
    assert loaded == json.loads(json.dumps(report))


@pytest.mark.slow
def test_write_outputs_csv(written):
    report, out, _ = written
    rows = _read_csv(out / "classes.csv")
    assert len(rows) == len(report["classes"])
    assert [int(r["instances"]) for r in rows] == sorted((c["instances"] for c in report["classes"]), reverse=True)
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    total = sum(c["instances"] for c in report["classes"])
    assert float(rows[0]["instance_share"]) == pytest.approx(max(c["instances"] for c in report["classes"]) / total)
    assert rows[0]["file_frequency"] == "f"  # extra per-class keys kept as columns

    opi = _read_csv(out / "objects_per_image.csv")
    assert [int(r["images"]) for r in opi] == report["objects_per_image"]["counts"]
    assert [int(r["bin_start"]) for r in opi] == list(range(8))
    cpi = _read_csv(out / "classes_per_image.csv")
    assert [int(r["images"]) for r in cpi] == report["classes_per_image"]["counts"]
    for key in ("relative_width", "relative_height", "relative_area"):
        rows = _read_csv(out / f"scale_{key}.csv")
        assert [int(r["boxes"]) for r in rows] == report["scale"][key]["counts"]
        assert float(rows[3]["bin_start"]) == pytest.approx(0.3) and float(rows[3]["bin_end"]) == pytest.approx(0.4)
    groups = _read_csv(out / "scale_size_groups.csv")
    assert [r["group"] for r in groups] == ["small", "medium", "large"]
    assert float(groups[0]["share"]) == pytest.approx(70 / 131)
    assert [r["area_of"] for r in groups] == ["box w*h"] * 3 and "boxes_by_area_field" not in groups[0]
    loc = _read_csv(out / "location.csv")
    counts = report["location"]["counts"]
    assert len(loc) == 25
    assert sum(int(r["boxes"]) for r in loc) == sum(map(sum, counts))
    cell = next(r for r in loc if r["y_bin"] == "1" and r["x_bin"] == "3")
    assert int(cell["boxes"]) == counts[1][3]
    assert float(cell["y_start"]) == pytest.approx(0.2) and float(cell["x_end"]) == pytest.approx(0.8)
    measures = {r["measure"]: r["value"] for r in _read_csv(out / "measures.csv")}
    assert float(measures["gini"]) == 0.6125 and measures["kl_to_uniform"] == ""


def test_write_outputs_png_and_html(written):
    report, out, _ = written
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == sorted(
        [
            "fig5a_class_long_tail.png",
            "fig5b_objects_per_image.png",
            "fig5c_classes_per_image.png",
            "fig7_scale.png",
            "fig13_location.png",
        ]
    )
    html = (out / "report.html").read_text(encoding="utf-8")
    for p in pngs:
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
        assert "data:image/png;base64," + base64.b64encode(data).decode() in html
    assert html.count("<img ") == len(pngs)
    lowered = html.lower()
    assert "http://" not in lowered and "https://" not in lowered
    import re

    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']|url\(\s*["']?([^"')]*)""", lowered)
    targets = [a or b for a, b in refs]
    assert len(targets) >= len(pngs)
    assert all(t.startswith(("data:", "#")) for t in targets), [t[:40] for t in targets]
    assert "<script" not in lowered and "<link" not in lowered and "@import" not in lowered
    assert "<style>" in html
    for fig in ("Fig. 5a", "Fig. 5b", "Fig. 5c", "Fig. 7", "Fig. 13"):
        assert fig in html
    assert "class_000" in html and report["verdicts"][0]["message"] in html


def test_html_escapes_names_and_plots_dollar_names():
    from imbalance_cli.report.html import render_html

    report = make_report()
    report["classes"][0]["name"] = "<b>bad & name</b>"
    report["classes"][0]["instances"] = 10_000
    report["classes"][1]["name"] = "$5 bill $"
    html = render_html(report, [])
    assert "&lt;b&gt;bad &amp; name&lt;/b&gt;" in html and "<b>bad" not in html
    fig = figmod.class_long_tail_figure(report)
    assert figmod.figure_png(fig).startswith(PNG_MAGIC)  # no mathtext error on "$"


def test_write_outputs_with_anchors_and_optional_figures(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from imbalance_cli.report import anchor_figures as fake

    def anchor_figure_jobs(anchors, names=None):
        def build():
            fig = Figure(figsize=(3, 2))
            fig.add_subplot().bar([0, 1], [anchors["foreground"], anchors["background"]])
            return fig

        return [
            (
                "fig4a_foreground_background.png",
                "Foreground vs background (survey Fig. 4a)",
                build,
                "Foreground vs background (survey Fig. 4a)",
            )
        ]

    monkeypatch.setattr(fake, "figure_jobs", anchor_figure_jobs)
    full = make_report(anchors=True)
    report = {k: full[k] for k in ("schema", "dataset", "classes", "anchors")}  # fewer figures: faster
    second = next(c for c in report["classes"] if c["name"] == "class_001")
    report["anchors"]["per_class_positive"][str(second["id"])] = 1  # fewest positives per instance
    write_outputs(report, tmp_path)
    data = (tmp_path / "fig4a_foreground_background.png").read_bytes()
    html = (tmp_path / "report.html").read_text()
    assert base64.b64encode(data).decode() in html
    assert "Foreground vs background (survey Fig. 4a)" in html
    levels = _read_csv(tmp_path / "anchors_levels.csv")
    assert [r["name"] for r in levels] == ["P3", "P4", "P5", "P6", "P7"]
    per_class = _read_csv(tmp_path / "anchors_per_class.csv")
    top = max(report["classes"], key=lambda c: c["instances"])
    assert per_class[0]["name"] == top["name"]
    assert float(per_class[0]["positives_per_instance"]) == pytest.approx(2.0)
    row = next(r for r in per_class if r["name"] == "class_001")
    assert float(row["positives_per_instance"]) == pytest.approx(1 / second["instances"])
    by_size = _read_csv(tmp_path / "anchors_coverage_by_size.csv")
    assert [(r["group"], int(r["without_positive"])) for r in by_size] == [("small", 6), ("medium", 1), ("large", 0)]
    assert "8.6%" in html  # 6 of 70 small boxes without a positive anchor
    summary = {r["statistic"]: r["value"] for r in _read_csv(tmp_path / "anchors_summary.csv")}
    assert summary["negative_iou.zero"] == "27000" and summary["foreground"] == "300"
    section = html[html.index("Fewest positive anchors per instance") :]
    assert section.index("class_001") < section.index("class_000")


def test_minimal_report_writes(tmp_path):
    paths = write_outputs({"schema": "imbalance.stats/1", "dataset": {"images": 0}, "classes": []}, tmp_path)
    names = {p.name for p in paths}
    assert {"stats.json", "classes.csv", "report.html"} <= names
    assert _read_csv(tmp_path / "classes.csv") == []


def test_out_is_a_file(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(InputError, match="directory"):
        write_outputs(make_report(), target)


# --------------------------------------------------------------------------------------
# atomicity
# --------------------------------------------------------------------------------------
def test_failure_while_rendering_writes_nothing(tmp_path, monkeypatch):
    def boom(report):
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(figmod, "scale_figure", boom)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        write_outputs(make_report(), out)
    assert not (out / "stats.json").exists()
    assert not out.exists() or list(out.iterdir()) == []


def test_unserialisable_report_writes_nothing(tmp_path):
    report = make_report()
    report["dataset"]["path"] = object()
    with pytest.raises(TypeError):
        write_outputs(report, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_failure_mid_write_keeps_old_stats_json(tmp_path, monkeypatch):
    import imbalance_cli.fileio as fileio

    out = tmp_path / "out"
    out.mkdir()
    (out / "stats.json").write_text("OLD")
    calls = {"n": 0}
    real_fsync = os.fsync

    def failing_fsync(fd):  # the data is already in the temporary file when this fails
        calls["n"] += 1
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", failing_fsync)
    report = {k: v for k, v in make_report().items() if k not in ("scale", "location")}
    with pytest.raises(OSError):
        write_outputs(report, out)
    monkeypatch.setattr(fileio.os, "fsync", real_fsync)
    assert calls["n"] == 1
    assert (out / "stats.json").read_text() == "OLD"
    assert [p.name for p in out.iterdir()] == ["stats.json"]  # no temporary file left behind


# --------------------------------------------------------------------------------------
# headless browser
# --------------------------------------------------------------------------------------
def _chromium() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        path = shutil.which(name) if not os.path.isabs(name) else (name if os.access(name, os.X_OK) else None)
        if path:
            return path
    return None


@pytest.mark.slow
def test_report_html_in_headless_chromium(written, tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installed")
    _, out, _ = written
    shot = tmp_path / "shot.png"
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        (out / "report.html").resolve().as_uri(),
    ]
    try:
        subprocess.run(cmd, check=False, capture_output=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("chromium did not finish within 90 s")
    assert shot.exists(), "chromium wrote no screenshot"
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (2000, 1280)
    rgb = pixels[..., :3]
    assert rgb.std() > 0.05  # not a blank page
    colours = np.unique((rgb.reshape(-1, 3) * 255).astype(np.uint8)[::7], axis=0)
    assert len(colours) > 200  # text, tables and embedded figures, not a flat error page


@pytest.mark.slow
def test_no_image_sizes_report(tmp_path):
    report = make_report()
    report["scale"]["size_groups"] = None
    report["scale"].pop("size_groups_by_area_field")
    report["dataset"]["has_image_sizes"] = False
    fig = figmod.scale_figure(report)
    assert any("not available" in t.get_text() for t in fig.axes[3].texts)
    paths = write_outputs(report, tmp_path)
    assert "scale_size_groups.csv" not in {p.name for p in paths}
    console = _console()
    render_terminal(report, console)
    assert "relative statistics only" in console.file.getvalue()


def test_real_coco_subset_report(tmp_path):
    """End to end on the bundled real COCO subset; expectations from pycocotools' own index."""
    pycocotools = pytest.importorskip("pycocotools.coco")
    import gzip
    from collections import Counter
    from contextlib import redirect_stdout

    import imbalance_cli as im

    path = Path(__file__).resolve().parents[1] / "examples" / "data" / "coco-mini_instances_val2017.json.gz"
    raw = tmp_path / "coco.json"
    raw.write_bytes(gzip.decompress(path.read_bytes()))
    with redirect_stdout(io.StringIO()):
        coco = pycocotools.COCO(str(raw))
    counts = Counter(
        a["category_id"] for a in coco.loadAnns(coco.getAnnIds(iscrowd=False)) if a["bbox"][2] > 0 and a["bbox"][3] > 0
    )
    top_id, top_n = counts.most_common(1)[0]

    report = im.analyze(im.load(str(path)), anchors="none").to_dict()
    (tmp_path / "classes.csv").write_text(tables.csv_tables(report)["classes.csv"])
    rows = _read_csv(tmp_path / "classes.csv")
    assert len(rows) == len(coco.getCatIds())
    assert int(rows[0]["id"]) == top_id and int(rows[0]["instances"]) == top_n
    assert rows[0]["name"] == coco.loadCats(top_id)[0]["name"]
    assert sum(int(r["instances"]) for r in rows) == sum(counts.values())
    console = _console()
    render_terminal(report, console)
    assert coco.loadCats(top_id)[0]["name"] in console.file.getvalue()


def test_written_files_have_default_permissions(written):
    _, out, paths = written
    mask = os.umask(0o022)
    os.umask(mask)
    for p in paths:
        assert (p.stat().st_mode & 0o777) == (0o666 & ~mask), p.name
