"""One report style (issue 21): the stats, anchors-fit and splits pages share one template (the same header, a
table of contents whose every entry leads somewhere), checked in headless Chromium on real reports of the
bundled data; class plots name their classes (Fig. 4b, coverage by class, compare / splits), with the extremes
named on large vocabularies; comparison overlays have axis labels.

The browser test injects a small script into a copy of each page (the pages themselves have none), loads it
in headless Chromium and reads the facts the script writes into the DOM (``--dump-dom``): what a reader's
browser lays out, not what the renderer meant to write."""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_report_render import _chromium  # the one lookup of the browser the tests use
from typer.testing import CliRunner

from imbalance_cli.cli import app

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
COCO_VAL = DATA / "coco-mini_instances_val2017.json.gz"
YOLO = DATA / "yolo-coco-mini" / "data.yaml"
runner = CliRunner()

_PROBE = """<script>
window.addEventListener('load', () => { setTimeout(() => {
  document.documentElement.style.scrollBehavior = 'auto';
  const links = [...document.querySelectorAll('nav.toc a')];
  const target = id => document.getElementById(decodeURIComponent(id));
  const r = {links: links.map(a => a.hash.slice(1)), resolved: links.filter(a => target(a.hash.slice(1))).length,
    brand: (document.querySelector('header.top .brand') || {}).textContent || '',
    h1: (document.querySelector('header.top h1') || {}).textContent || '',
    sections: [...document.querySelectorAll('main > section')].map(s => s.id),
    images: document.images.length, decoded: [...document.images].filter(i => i.complete && i.naturalWidth > 0).length,
    figureImages: document.querySelectorAll('#figures img').length,
    scrollW: document.documentElement.scrollWidth, innerW: window.innerWidth,
    height: document.documentElement.scrollHeight, nav: getComputedStyle(document.querySelector('nav.toc')).position,
    tops: [...document.querySelectorAll('main > section')].map(s => s.getBoundingClientRect().top + window.scrollY)};
  const last = links[links.length - 1];
  last.click();
  setTimeout(() => {
    r.jump = target(last.hash.slice(1)).getBoundingClientRect().top;
    r.scrollY = window.scrollY;
    r.innerH = window.innerHeight;
    document.body.setAttribute('data-probe', JSON.stringify(r));
  }, 50);
}, 50); });
</script>"""


def probe(page: Path, tmp_path: Path, script: str = _PROBE) -> dict:
    """Load a copy of ``page`` with the probe ``script`` in headless Chromium; the facts it measured (the script
    writes them as JSON into ``body[data-probe]``)."""
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (`.ci/run` installs it)")
    copy = page.with_name(page.stem + ".probe.html")
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", script + "</body>"), encoding="utf-8")
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
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,900",
        "--virtual-time-budget=10000",
        "--dump-dom",
        copy.resolve().as_uri(),
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    except subprocess.TimeoutExpired:
        pytest.fail("chromium did not finish within 120 s")
    finally:
        copy.unlink()
    m = re.search(r'data-probe="([^"]*)"', out)
    assert m, f"the probe did not run: {out[:500]}"
    return json.loads(html.unescape(m.group(1)))


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pages")
    mp = pytest.MonkeyPatch()  # the pages as `imbalance stats` writes them by default: with "What to change"
    mp.setenv("IMBALANCE_ADVICE", "on")
    for args in (
        ["stats", str(COCO_VAL), "--out", str(root / "stats")],
        ["anchors", str(COCO_VAL), "--iterations", "2", "--sample", "20", "--out", str(root / "fit")],
        ["stats", str(YOLO), "--out", str(root / "splits")],
    ):
        res = runner.invoke(app, [*args, "-q"])
        assert res.exit_code == 0, res.output
    mp.undo()
    return {
        "stats": root / "stats" / "report.html",
        "fit": root / "fit" / "report.html",
        "splits": root / "splits" / "splits.html",
        "split": root / "splits" / "val" / "report.html",
    }


@pytest.mark.parametrize(
    "kind, brand, min_sections",
    [
        ("stats", "imbalance · dataset statistics", 7),
        ("fit", "imbalance · anchor fit", 5),
        ("splits", "imbalance · splits", 3),
        ("split", "imbalance · dataset statistics", 7),
    ],
)
@pytest.mark.slow
def test_every_page_has_the_shared_header_and_a_contents_that_leads_somewhere(
    pages, tmp_path, kind, brand, min_sections
):
    r = probe(pages[kind], tmp_path)
    assert r["brand"] == brand and r["h1"]
    assert len(r["sections"]) >= min_sections
    assert r["resolved"] == len(r["links"]) > len(r["sections"]) - 1  # every entry has its target
    assert set(r["sections"]) <= set(r["links"])  # every section is in the contents
    assert r["tops"] == sorted(r["tops"])  # in page order
    assert r["nav"] == "sticky"  # the contents stay in view while scrolling
    assert r["images"] == r["decoded"]  # every embedded figure decodes
    assert r["scrollW"] <= r["innerW"]  # nothing wider than a 1280 px window
    assert r["scrollY"] > 0 and -5 <= r["jump"] <= r["innerH"] - 40  # the last entry brings its target into view


@pytest.mark.slow
def test_stats_page_lists_every_figure_in_the_contents(pages, tmp_path):
    r = probe(pages["stats"], tmp_path)
    figs = [x for x in r["links"] if x.startswith(("fig", "anchor-coverage")) and x != "figures"]
    assert len(figs) == r["figureImages"] == 10
    assert r["links"][:3] == ["summary", "verdicts", "advice"] and "dataset" in r["links"]


@pytest.mark.slow  # the pages fixture runs three commands
def test_splits_page_is_titled_and_links_each_split(pages):
    text = pages["splits"].read_text(encoding="utf-8")
    assert "<title>Splits of data.yaml</title>" in text
    assert 'href="train/report.html"' in text and 'href="val/report.html"' in text


def test_the_page_template_takes_extra_sections():
    """A later report part (issue 23: per-box table, gallery) adds itself as a Section."""
    from imbalance_cli.report.html import render_html
    from imbalance_cli.report.page import Section

    report = {"schema": "imbalance.stats/1", "dataset": {"path": "x.json", "images": 1}}
    page = render_html(
        report, [], extra_sections=[Section("gallery", "Image gallery", "<p>images</p>", [("img-1", "first image")])]
    )
    assert '<section id="gallery">' in page and 'href="#gallery"' in page and 'href="#img-1"' in page


# ------------------------------------------------------------------------------------------------ class names
def _anchors(n: int) -> dict:
    rng = np.random.default_rng(0)
    ids = [str(i) for i in range(1, n + 1)]
    inst = {k: int(v) for k, v in zip(ids, rng.integers(1, 50, n))}
    pos = {k: int(v * rng.integers(0, 30)) for k, v in inst.items()}
    cov = {
        k: {"boxes": v, "without_positive": int(v > 40), "below_positive_iou": v // 3, "below_negative": v // 5}
        for k, v in inst.items()
    }
    return {
        "per_class_positive": pos,
        "instances_per_class": inst,
        "positives_per_instance": {k: pos[k] / inst[k] for k in ids},
        "thresholds": {"pos_iou": 0.5, "neg_iou": 0.4},
        "coverage": {
            "by_size": {"small": {"boxes": 3, "without_positive": 1, "below_positive_iou": 2, "below_negative": 1}},
            "by_class": cov,
            "size_groups_by": "box",
        },
    }


def _tick_names(ax) -> list[str]:
    return [t.get_text() for t in ax.get_xticklabels() if t.get_text()]


@pytest.mark.slow
def test_fig4b_and_coverage_by_class_name_every_class():
    from imbalance_cli.report.anchor_figures import coverage_figure, positives_per_class_figure

    a = _anchors(80)
    names = {str(i): f"class {i}" for i in range(1, 81)}
    fig = positives_per_class_figure(a, names)
    for ax in fig.axes[:2]:
        assert sorted(_tick_names(ax)) == sorted(names.values())
    top = max(a["per_class_positive"], key=lambda k: (a["per_class_positive"][k], -int(k)))
    assert _tick_names(fig.axes[0])[0] == names[top]  # sorted by positives, most first
    fig = coverage_figure(a, names)
    assert sorted(_tick_names(fig.axes[1])) == sorted(names.values())


@pytest.mark.slow
def test_large_vocabularies_name_their_extremes():
    from imbalance_cli.report.anchor_figures import positives_per_class_figure

    a = _anchors(300)
    names = {str(i): f"c{i:03d}" for i in range(1, 301)}
    fig = positives_per_class_figure(a, names)
    ax = fig.axes[0]
    order = sorted(a["per_class_positive"], key=lambda k: (-a["per_class_positive"][k], k))
    text = next(t.get_text() for t in ax.texts if "first 5" in t.get_text())
    assert f"first 5: {', '.join(names[k] for k in order[:5])}" in text
    assert f"last 5: {', '.join(names[k] for k in order[-5:])}" in text
    ticks = set(ax.get_xticks(minor=True)) | set(ax.get_xticks())  # a minor tick on a major one is drawn once
    assert {1, 2, 3, 4, 5, 296, 297, 298, 299, 300} <= ticks  # bars at ranks 1..300
    assert "rank" in ax.get_xlabel() and not set(_tick_names(ax)) & set(names.values())


@pytest.mark.slow
def test_compare_plots_name_classes_and_label_axes():
    from imbalance_cli.report.compare import figures

    res = runner.invoke(app, ["compare", str(YOLO), "--json"])
    rep = json.loads(res.stdout)
    figs = {name: fig for name, _title, fig in figures(rep)}
    ax = figs["compare_classes.png"].axes[0]
    per = sorted(rep["classes"]["per_class"], key=lambda r: -r["instances_a"])
    assert _tick_names(ax) == [r["name"] for r in per] and "person" in _tick_names(ax)
    for name in ("compare_scale.png", "compare_location.png"):
        for axis in figs[name].axes:
            if axis.get_label() == "<colorbar>":
                continue
            assert axis.get_xlabel() and axis.get_ylabel(), name
