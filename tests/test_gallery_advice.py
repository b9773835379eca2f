"""The gallery and "What to change" of ``imbalance stats`` (issue 23), on the bundled data and in headless Chromium.

Expected values come from outside the code under test: the page as Chromium lays it out (sections, images that
decode), the files on disk, a hand computation of the detector's input size (torchvision's resize rule, Ultralytics'
rectangular letterbox), the advice's "before" numbers held to ``stats.json`` of the same run (the sample is the
whole dataset: fewer images than the sample size), its "after" numbers re-measured by a second ``imbalance stats``
run with the fitted preset the advice prints, and the repeat-factor effect held to the expectation of LVIS's rule
(Gupta et al., CVPR 2019) written here.
"""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import test_report_pages as report_pages
from PIL import Image
from typer.testing import CliRunner

from imbalance_cli.cli import app
from imbalance_cli.stats.schema import problems

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
COCO_VAL = DATA / "coco-mini_instances_val2017.json.gz"
YOLO = DATA / "yolo-coco-mini" / "data.yaml"
runner = CliRunner()

_PROBE = """<script>
window.addEventListener('load', () => { setTimeout(() => {
  const g = document.getElementById('gallery'), a = document.getElementById('advice');
  const imgs = g ? [...g.querySelectorAll('img')] : [];
  const r = {gallery: !!g, advice: !!a, links: [...document.querySelectorAll('nav.toc a')].map(x => x.hash.slice(1)),
    images: imgs.map(i => i.getAttribute('src')), decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    shown: imgs.filter(i => i.getBoundingClientRect().width > 0).length,
    cards: a ? [...a.querySelectorAll('.advice')].map(c => c.id) : [],
    effects: a ? [...a.querySelectorAll('.advice table')].length : 0,
    scrollW: document.documentElement.scrollWidth, innerW: window.innerWidth};
  document.body.setAttribute('data-probe', JSON.stringify(r));
}, 50); });
</script>"""


def probe(page: Path, tmp_path: Path) -> dict:
    return report_pages.probe(page, tmp_path, _PROBE)


def _stats(args):
    res = runner.invoke(app, ["stats", *map(str, args), "-q"])
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("IMBALANCE_ADVICE", "on")
    root = tmp_path_factory.mktemp("gallery")
    try:
        _stats([COCO_VAL, "--out", root / "coco"])
        _stats([YOLO, "--split", "val", "--out", root / "yolo"])
    finally:
        mp.undo()
    return {k: (root / k, json.loads((root / k / "stats.json").read_text())) for k in ("coco", "yolo")}


# ------------------------------------------------------------------------------------------------ the page
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["coco", "yolo"])
def test_gallery_and_advice_render_in_chromium(reports, tmp_path, kind):
    out, rep = reports[kind]
    r = probe(out / "report.html", tmp_path)
    assert r["gallery"] and r["advice"] and {"gallery", "advice"} <= set(r["links"])
    files = rep["gallery"]["files"]
    assert sorted(r["images"]) == sorted(files) and len(files) >= 4  # worst, levels, class strips
    assert r["decoded"] == r["shown"] == len(files)  # every thumbnail loads and is laid out
    assert all((out / f).is_file() for f in files)
    assert r["scrollW"] <= r["innerW"]  # no horizontal scroll from the thumbnails
    items = rep["advice"]["items"]
    assert r["cards"] == [f"advice-{it['id'].replace('_', '-')}" for it in items] and items
    assert r["effects"] == sum(1 for it in items if it["effect"]["measured"])
    # the HTML stays light: thumbnails are files, not data URIs
    text = (out / "report.html").read_text()
    assert "data:image/jpeg" not in text and all(f'src="{f}"' in text for f in files)


@pytest.mark.slow
def test_yolo_gallery_draws_its_own_pixels_letterboxed(reports):
    out, rep = reports["yolo"]
    g = rep["gallery"]
    assert g["decoded"] == g["images"] > 0 and g["blank"] == 0 and g["problems"] == []
    # Ultralytics' val letterbox (rect, stride 32, pad 0.5): 640x480 -> 640 x ceil(480/32 + 0.5) * 32 = 512
    worst = [f for f in g["files"] if f.startswith("gallery_worst_")]
    for f in worst:
        w, h = Image.open(out / f).size
        assert max(w, h) == 640 and w % 32 == 0 and h % 32 == 0


@pytest.mark.slow
def test_coco_gallery_without_images_is_a_blank_canvas_of_the_resized_image(reports):
    import gzip

    out, rep = reports["coco"]
    g = rep["gallery"]
    assert g["decoded"] == 0 and g["blank"] == g["images"] > 0 and g["problems"] == []
    coco = {i["file_name"]: i for i in json.loads(gzip.open(COCO_VAL).read())["images"]}
    page = (out / "report.html").read_text()
    worst = [f for f in g["files"] if f.startswith("gallery_worst_")]
    assert worst
    for f in worst:  # the caption names the file; torchvision's resize (short side 800, long <= 1333), padded to 32
        caption = html.unescape(re.search(rf'src="{f}" alt="([^"]*)"', page).group(1))
        im = coco[caption.split(" (image")[0]]
        h, w = im["height"], im["width"]
        s = min(800 / min(h, w), 1333 / max(h, w))
        ph, pw = math.ceil(math.floor(h * s) / 32) * 32, math.ceil(math.floor(w * s) / 32) * 32
        tw, th = Image.open(out / f).size
        assert abs(tw / th - pw / ph) < 0.02, (f, tw, th, pw, ph)


# ------------------------------------------------------------------------------------------------ bounded
@pytest.mark.slow
def test_gallery_is_bounded_and_off_decodes_nothing(tmp_path, monkeypatch):
    import imbalance_cli.report.gallery as gal

    calls = []
    real = gal._decode
    monkeypatch.setattr(gal, "_decode", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    _stats([YOLO, "--split", "val", "--gallery", "0", "--no-advice", "--out", tmp_path / "off"])
    assert calls == [] and not list((tmp_path / "off").glob("gallery_*"))
    assert "gallery" not in json.loads((tmp_path / "off" / "stats.json").read_text())
    assert 'id="gallery"' not in (tmp_path / "off" / "report.html").read_text()
    _stats([YOLO, "--split", "val", "--gallery", "3", "--no-advice", "--out", tmp_path / "three"])
    g = json.loads((tmp_path / "three" / "stats.json").read_text())["gallery"]
    assert len(calls) == g["images"] == g["decoded"] <= 3 and len(set(calls)) == len(calls)
    assert sorted(p.name for p in (tmp_path / "three").glob("gallery_*")) == sorted(g["files"])


@pytest.mark.slow
def test_missing_and_unreadable_images_are_listed_never_fatal(tmp_path):
    import gzip

    coco = json.loads(gzip.open(COCO_VAL).read())
    images = tmp_path / "images"
    images.mkdir()
    names = [i["file_name"] for i in coco["images"]]
    for n in names[:40]:  # a third of the files unreadable, the rest missing
        (images / n).write_bytes(b"not an image")
    res = runner.invoke(
        app,
        [
            "stats",
            str(COCO_VAL),
            "--images",
            str(images),
            "--gallery",
            "6",
            "--no-advice",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert res.exit_code == 0, res.output
    g = json.loads((tmp_path / "r" / "stats.json").read_text())["gallery"]
    assert g["images"] == g["blank"] == len(g["problems"]) > 0 and g["decoded"] == 0
    assert "gallery image(s) drawn on a blank canvas" in res.output
    page = (tmp_path / "r" / "report.html").read_text()
    assert 'id="gallery-problems"' in page and all(html.escape(p.split(":")[0]) in page for p in g["problems"])


def test_gallery_options_are_refused_where_they_cannot_apply(tmp_path):
    for args, word in (
        (["--gallery", "3"], "--out"),
        (["--images", str(tmp_path)], "--out"),
        (["--gallery", "0", "--images", str(tmp_path), "--out", str(tmp_path / "o")], "--gallery 0"),
        (["--anchors", "none", "--gallery", "2", "--out", str(tmp_path / "o")], "none"),
        (["--gallery", "-1", "--out", str(tmp_path / "o")], "--gallery"),
    ):
        res = runner.invoke(app, ["stats", str(COCO_VAL), *args])
        assert res.exit_code == 2 and word in res.output, (args, res.output)
    res = runner.invoke(app, ["stats", str(YOLO), "--images", str(tmp_path), "--out", str(tmp_path / "y")])
    assert res.exit_code == 2 and "YOLO" in res.output


@pytest.mark.slow
def test_synthetic_lt_images_as_a_real_pixel_example(tmp_path):
    from imbalance_cli.detector.synthetic import SyntheticConfig, write_synthetic_lt

    paths = write_synthetic_lt(tmp_path / "syn", SyntheticConfig(train_images=200, val_images=20, max_instances=60))
    _stats([paths["val"], "--images", paths["images"], "--gallery", "4", "--no-advice", "--out", tmp_path / "r"])
    g = json.loads((tmp_path / "r" / "stats.json").read_text())["gallery"]
    assert g["decoded"] == g["images"] > 0 and g["problems"] == []
    # real pixels: a thumbnail is not one flat colour
    arr = np.asarray(Image.open(tmp_path / "r" / g["files"][0]).convert("L"))
    assert arr.std() > 5


# ------------------------------------------------------------------------------------------------ advice
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["coco", "yolo"])
def test_every_item_carries_its_measurement_ordered_by_size(reports, kind):
    _, rep = reports[kind]
    assert problems(rep) == []
    items = rep["advice"]["items"]
    assert [it["size"] for it in items] == sorted((it["size"] for it in items), reverse=True)
    for it in items:
        f = it["finding"]
        assert isinstance(f["value"], (int, float)) and isinstance(f["threshold"], (int, float))
        assert f["survey"].startswith("§") and f["rule"] in {c["rule"] for c in rep["advice"]["checked"]}
        assert it["fix"]["commands"] or it["fix"]["snippets"]
        if it["id"] in ("anchors", "repeat_factor"):
            e = it["effect"]
            assert e["measured"] and all("before" in m and "after" in m for m in e["metrics"])
    ids = [it["id"] for it in items]
    assert "repeat_factor" in ids and "anchors" in ids
    if kind == "yolo":  # YOLOv5 assigns by a width/height ratio: no IoU threshold to report against
        assert all(m["measure"] != "boxes_below_positive_iou" for it in items for m in it["effect"].get("metrics", []))


@pytest.mark.slow
def test_anchor_effect_before_is_the_run_and_after_is_the_fitted_preset_measured_again(reports, tmp_path):
    _, rep = reports["coco"]
    it = next(i for i in rep["advice"]["items"] if i["id"] == "anchors")
    e, a = it["effect"], rep["anchors"]
    assert e["images"] == rep["dataset"]["images"]  # the sample is the whole (small) dataset
    m = {(x["measure"], x.get("group")): x for x in e["metrics"]}
    n = a["boxes"]
    assert m[("boxes_without_positive", None)]["before"] == a["boxes_without_positive"]
    assert m[("coverage", None)]["before"] == pytest.approx(1 - a["boxes_below_positive_iou"] / n)
    toml = next(s["text"] for s in it["fix"]["snippets"] if s["framework"] == "imbalance")
    (tmp_path / "fitted.toml").write_text(toml)
    res = runner.invoke(
        app, ["stats", str(COCO_VAL), "--anchors", str(tmp_path / "fitted.toml"), "--no-advice", "--json"]
    )
    assert res.exit_code == 0, res.output
    b = json.loads(res.stdout)["anchors"]
    assert m[("boxes_without_positive", None)]["after"] == b["boxes_without_positive"]
    assert m[("coverage", None)]["after"] == pytest.approx(1 - b["boxes_below_positive_iou"] / n)
    assert m[("coverage", None)]["after"] > m[("coverage", None)]["before"]


@pytest.mark.slow
def test_repeat_factor_effect_agrees_with_lvis_rule(reports):
    import gzip

    _, rep = reports["coco"]
    it = next(i for i in rep["advice"]["items"] if i["id"] == "repeat_factor")
    e = it["effect"]
    m = {x["measure"]: x for x in e["metrics"]}
    coco = json.loads(gzip.open(COCO_VAL).read())
    anns = [a for a in coco["annotations"] if not a.get("iscrowd") and a["bbox"][2] > 0 and a["bbox"][3] > 0]
    inst = {c["id"]: 0 for c in coco["categories"]}
    imgs_of = {c["id"]: set() for c in coco["categories"]}
    for a in anns:
        inst[a["category_id"]] += 1
        imgs_of[a["category_id"]].add(a["image_id"])
    used = sorted((c for c in inst if inst[c]), key=lambda c: (inst[c], c))
    tail = set(used[: len(used) // 3])  # the rarest third, ties by id
    assert e["tail_classes"] == len(tail)
    n_img = len(coco["images"])
    tail_per_img = {i["id"]: 0 for i in coco["images"]}
    for a in anns:
        tail_per_img[a["image_id"]] += a["category_id"] in tail
    B = 16
    assert m["tail_instances_per_batch"]["before"] == pytest.approx(B * sum(tail_per_img.values()) / n_img)
    t = float(re.search(r"t = ([0-9.]+)", it["fix"]["text"]).group(1))
    r_c = {c: max(1.0, math.sqrt(t / (len(imgs_of[c]) / n_img))) for c in inst if inst[c]}
    r_i = {i: max([r_c[a["category_id"]] for a in anns if a["image_id"] == i], default=1.0) for i in tail_per_img}
    expected = B * sum(r_i[i] * tail_per_img[i] for i in r_i) / sum(r_i.values())
    assert m["tail_instances_per_batch"]["after"] == pytest.approx(expected, rel=0.08)  # stochastic rounding
    assert m["samples_per_epoch"]["after"] == pytest.approx(sum(r_i.values()), rel=0.05)


@pytest.mark.slow
def test_thresholds_come_from_the_check_rules_and_no_advice_turns_it_off(tmp_path, monkeypatch):
    monkeypatch.setenv("IMBALANCE_ADVICE", "on")
    rules = tmp_path / "rules.toml"
    rules.write_text("[rules.imbalance_ratio]\nthreshold = 1000\n")
    res = runner.invoke(app, ["stats", str(COCO_VAL), "--rules", str(rules), "--json"])
    assert res.exit_code == 0, res.output
    adv = json.loads(res.stdout)["advice"]
    assert not {"repeat_factor", "class_loss"} & {i["id"] for i in adv["items"]}
    row = next(c for c in adv["checked"] if c["rule"] == "imbalance_ratio")
    assert row["threshold"] == 1000 and not row["fired"]
    res = runner.invoke(app, ["stats", str(COCO_VAL), "--no-advice", "--json"])
    assert res.exit_code == 0 and "advice" not in json.loads(res.stdout)
    res = runner.invoke(app, ["stats", str(COCO_VAL), "--no-advice", "--advice-budget", "2"])
    assert res.exit_code == 2 and "--advice-budget" in res.output


@pytest.mark.slow
def test_the_schema_checks_the_advice(reports):
    import copy

    _, rep = reports["coco"]
    assert problems(rep) == []
    bad = copy.deepcopy(rep)
    bad["advice"]["items"].reverse()
    assert problems(bad) == ["advice.items must be ordered by size, largest first"]
    bad = copy.deepcopy(rep)
    del bad["advice"]["items"][0]["effect"]["metrics"][0]["after"]
    assert problems(bad) == ["advice.items[0].effect.metrics must list before/after pairs"]
    bad = copy.deepcopy(rep)
    bad["advice"]["items"][0]["finding"]["threshold"] = None
    assert problems(bad) == ["advice.items[0].finding.threshold is missing or of the wrong type"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["coco", "yolo"])
def test_every_printed_command_parses_and_the_quick_ones_run(reports, kind, tmp_path, monkeypatch):
    """Each fix's commands are this tool's own command lines: every one is accepted by the CLI's parser (options
    and values), and the quick ones (batches, groups, margins) run to exit 0 on the same data."""
    import shlex

    import typer

    _, rep = reports[kind]
    group = typer.main.get_command(app)
    monkeypatch.chdir(tmp_path)
    ran = 0
    for it in rep["advice"]["items"]:
        for line in it["fix"]["commands"]:
            argv = shlex.split(line.split("#")[0])
            assert argv[0] == "imbalance"
            argv = [a.replace("IMAGES", str(tmp_path)).replace("PRESET.toml", "retinanet") for a in argv[1:]]
            sub = group.get_command(None, argv[0])
            with sub.make_context(argv[0], list(argv[1:]), resilient_parsing=False) as ctx:  # parses, runs nothing
                assert ctx.params
            if argv[0] in ("batches", "groups", "margins"):
                res = runner.invoke(app, [*argv, "-q"] if argv[0] != "groups" else argv)
                assert res.exit_code == 0, (line, res.output)
                ran += 1
    assert ran >= 2


@pytest.mark.slow
def test_python_api_gives_the_table_the_advice_and_saves_the_gallery(reports, tmp_path):
    import pandas as pd

    import imbalance_cli as im

    _, rep = reports["coco"]
    r = im.analyze(im.load(str(COCO_VAL)), anchors="retinanet", advice=True)
    assert [i["id"] for i in r.to_dict()["advice"]["items"]] == [i["id"] for i in rep["advice"]["items"]]
    assert len(r.boxes) == rep["anchors"]["boxes"]
    r.save(tmp_path / "out", gallery=2)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out" / "boxes.parquet"), r.boxes)
    g = json.loads((tmp_path / "out" / "stats.json").read_text())["gallery"]
    assert g["images"] == 2 and all((tmp_path / "out" / f).is_file() for f in g["files"])
