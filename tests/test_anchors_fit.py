"""`imbalance anchors`: anchor fitting judged by the exact engine.

Coverage is re-computed here independently: torchvision's ``AnchorGenerator`` (ratio-major, float32, rounded
base anchors; steps ``padded // grid``), ``box_iou`` in float32 and the ``Matcher(0.5, 0.4)`` rule (each anchor
goes to its best box; positive when that IoU >= 0.5) written from torchvision's source, brute force over every
anchor of every image.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from imbalance_cli import load
from imbalance_cli.anchorfit.grid import project_preset
from imbalance_cli.anchorfit.kmeans import kmeans_iou
from imbalance_cli.anchorfit.outcome import to_report
from imbalance_cli.anchorfit.scoring import bpr_metrics
from imbalance_cli.anchorfit.search import check_fittable, fit_anchors
from imbalance_cli.anchors.presets import PRESETS, get_preset
from imbalance_cli.anchors.snippets import framework_configs
from imbalance_cli.anchors.tomlwriter import preset_to_toml
from imbalance_cli.cli import app
from imbalance_cli.errors import InputError
from imbalance_cli.report.anchorfit import render_html, write_outputs

ROOT = Path(__file__).resolve().parent.parent
VAL = ROOT / "examples" / "data" / "coco-mini_instances_val2017.json.gz"
runner = CliRunner()


def small_box_coco(path: Path, images: int = 30, seed: int = 3) -> Path:
    """640 x 640 images (torchvision resizes them by exactly 1.25 to 800 x 800); 85% of boxes are 6..20 px."""
    rng = np.random.default_rng(seed)
    imgs, anns = [], []
    for i in range(images):
        imgs.append({"id": i + 1, "width": 640, "height": 640, "file_name": f"{i}.jpg"})
        for _ in range(12):
            if rng.random() < 0.85:
                w, h = rng.integers(6, 21, 2)
            else:
                w, h = rng.integers(40, 121, 2)
            x, y = rng.integers(0, 640 - 121, 2)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(rng.integers(1, 3)),
                    "bbox": [int(x), int(y), int(w), int(h)],
                    "area": int(w * h),
                    "iscrowd": 0,
                }
            )
    cats = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    path.write_text(json.dumps({"images": imgs, "annotations": anns, "categories": cats}))
    return path


# ----------------------------------------------------------------------------- independent torchvision rules
def tv_anchors(sizes, ratios, strides, padded: int) -> np.ndarray:
    """All anchors of a square padded image as torchvision's AnchorGenerator lays them (float32)."""
    out = []
    for lv, nominal in enumerate(strides):
        grid = -(-padded // nominal)
        step = padded // grid  # AnchorGenerator.forward: image_size // grid_size
        ar = np.asarray(ratios[lv], np.float32)
        h_r = np.sqrt(ar)
        w_r = np.float32(1) / h_r
        sc = np.asarray(sizes[lv], np.float32)
        ws = (w_r[:, None] * sc[None, :]).reshape(-1)
        hs = (h_r[:, None] * sc[None, :]).reshape(-1)
        base = np.round(np.stack([-ws, -hs, ws, hs], 1) / np.float32(2))
        sx = np.arange(grid, dtype=np.float32) * np.float32(step)
        yy, xx = np.meshgrid(sx, sx, indexing="ij")
        shifts = np.stack([xx.ravel(), yy.ravel(), xx.ravel(), yy.ravel()], 1)
        out.append((shifts[:, None, :] + base[None, :, :]).reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


def tv_coverage(coco_path: Path, sizes, ratios, strides=(8, 16, 32, 64, 128)) -> float:
    """Share of boxes to which the Matcher assigns an anchor with IoU >= 0.5 (640x640 images -> 800x800)."""
    d = json.loads(Path(coco_path).read_text())
    anchors = tv_anchors(sizes, ratios, strides, 800)
    area_a = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    covered = total = 0
    by_img: dict = {}
    for a in d["annotations"]:
        by_img.setdefault(a["image_id"], []).append(a["bbox"])
    for boxes in by_img.values():
        b = np.array([[x, y, x + w, y + h] for x, y, w, h in boxes], np.float32) * np.float32(1.25)
        area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        lt = np.maximum(b[:, None, :2], anchors[None, :, :2])
        rb = np.minimum(b[:, None, 2:], anchors[None, :, 2:])
        wh = np.clip(rb - lt, 0, None)
        inter = wh[..., 0] * wh[..., 1]
        iou = inter / (area_b[:, None] + area_a[None, :] - inter)  # (boxes, anchors) float32
        best_box = iou.argmax(axis=0)
        best_val = iou.max(axis=0)
        pos = best_val >= np.float32(0.5)
        got = np.zeros(len(b), bool)
        got[best_box[pos]] = True
        covered += int(got.sum())
        total += len(b)
    return covered / total


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = small_box_coco(tmp_path_factory.mktemp("fit") / "small.json")
    ds = load(str(path))
    res = fit_anchors(ds, "retinanet", iterations=40, sample=None, seed=0)
    return path, ds, res


@pytest.mark.slow
def test_small_boxes_fitted_covers_strictly_more_by_independent_matcher(small):
    path, ds, res = small
    p0 = PRESETS["retinanet"]
    before = tv_coverage(path, p0.sizes, p0.aspect_ratios)
    after = tv_coverage(path, res.fitted.sizes, res.fitted.aspect_ratios)
    assert after > before + 0.3  # default anchors (>= 32 px) leave most 7..25 px boxes without a positive
    # the engine's numbers agree with the brute-force re-implementation
    assert res.all_before["coverage"] == pytest.approx(before, abs=1e-12)
    assert res.all_after["coverage"] == pytest.approx(after, abs=1e-12)


@pytest.mark.slow
def test_deterministic_for_a_seed(small):
    path, ds, res = small
    again = fit_anchors(ds, "retinanet", iterations=40, sample=None, seed=0)
    assert again.params == res.params
    a, b = to_report(again), to_report(res)
    for r in (a, b):
        r["search"].pop("seconds")
    assert a == b
    other = fit_anchors(ds, "retinanet", iterations=40, sample=15, seed=1)
    assert other.sample_images == 15


@pytest.mark.slow
def test_interrupt_keeps_best_so_far_and_equals_a_shorter_run(small, tmp_path):
    path, ds, _ = small

    def stop(it, score, best):
        if it == 7:
            raise KeyboardInterrupt

    res = fit_anchors(ds, "retinanet", iterations=40, sample=None, seed=0, on_candidate=stop)
    assert res.stopped == "interrupted" and res.iterations_done == 7
    short = fit_anchors(ds, "retinanet", iterations=7, sample=None, seed=0)  # the same first 7 iterations
    assert short.stopped == "iterations" and short.params == res.params
    assert short.history == res.history
    assert res.all_after is not None and res.all_after["images"] == ds.num_images
    # outputs are still written
    files = write_outputs(to_report(res), tmp_path / "out")
    names = {f.name for f in files}
    assert {"anchors.json", "fitted.toml", "report.html", "anchors.png"} <= names
    assert json.loads((tmp_path / "out" / "anchors.json").read_text())["search"]["stopped"] == "interrupted"


@pytest.mark.slow
def test_toml_round_trip_and_stats_loads_it(small, tmp_path):
    path, ds, res = small
    toml_path = tmp_path / "fitted.toml"
    toml_path.write_text(preset_to_toml(res.fitted))
    loaded = get_preset(str(toml_path))
    assert loaded == res.fitted
    r = runner.invoke(
        app,
        [
            "stats",
            str(path),
            "--anchors",
            str(toml_path),
            "--device",
            "cpu",
            "--json",
            "--negative-iou-sample",
            "2",
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    a = report["anchors"]
    assert a["preset"] == res.fitted.name
    assert a["foreground"] == res.all_after["foreground"]


def test_snippets_parse_and_carry_the_fitted_numbers(small):
    _, _, res = small
    cfg = framework_configs(res.fitted, res.params)
    assert cfg["torchvision"]["exact"] and not cfg["mmdet"]["exact"] and not cfg["detectron2"]["exact"]
    # torchvision: run the snippet against a stand-in AnchorGenerator that records its arguments
    seen = {}
    mod = types.ModuleType("torchvision.models.detection.anchor_utils")
    mod.AnchorGenerator = lambda **kw: seen.update(kw)
    names = [
        "torchvision",
        "torchvision.models",
        "torchvision.models.detection",
        "torchvision.models.detection.anchor_utils",
    ]
    saved = {n: sys.modules.get(n) for n in names}
    for n in names[:-1]:
        sys.modules[n] = types.ModuleType(n)
    sys.modules[names[-1]] = mod
    try:
        exec(cfg["torchvision"]["text"], {})
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m
    assert seen["sizes"] == res.fitted.sizes
    assert seen["aspect_ratios"] == res.fitted.aspect_ratios
    # mmdetection: a Python dict; base_sizes x scales reproduce the sizes
    ns: dict = {}
    exec(cfg["mmdet"]["text"], {"dict": dict}, ns)
    g = ns["anchor_generator"]
    assert g["strides"] == list(res.fitted.strides) and tuple(g["ratios"]) == res.fitted.aspect_ratios[0]
    prod = np.array(g["base_sizes"])[:, None] * np.array(g["scales"])[None, :]
    assert np.allclose(prod, np.array(res.fitted.sizes), atol=5e-5, rtol=0)
    # detectron2: YAML (PyYAML when installed; else its flow sequences read as JSON, which they also are)
    text = cfg["detectron2"]["text"]
    try:
        import yaml

        y = yaml.safe_load(text)["MODEL"]["ANCHOR_GENERATOR"]
    except ModuleNotFoundError:
        lines = text.splitlines()
        assert lines[:2] == ["MODEL:", "  ANCHOR_GENERATOR:"]
        y = {k.strip(): json.loads(v) for k, v in (ln.split(":", 1) for ln in lines[2:] if ln.strip())}
    assert tuple(tuple(s) for s in y["SIZES"]) == res.fitted.sizes
    assert tuple(y["ASPECT_RATIOS"][0]) == res.fitted.aspect_ratios[0]
    # TOML
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    t = tomllib.loads(preset_to_toml(res.fitted))
    assert tuple(tuple(s) for s in t["sizes"]) == res.fitted.sizes
    html = render_html(to_report(res), None)
    assert "AnchorGenerator" in html and "ANCHOR_GENERATOR" in html


def test_mmdet_preset_is_exact_in_mmdet_and_projects_exactly():
    p = PRESETS["mmdet-retinanet"]
    params = project_preset(p)
    # octave_base_scale 4, scales_per_octave 3: base = 4 * stride, scales 2^(i/3)
    assert params.base == tuple(round(4.0 * s, 2) for s in p.strides)
    assert params.scales == tuple(round(2 ** (i / 3), 4) for i in range(3))
    assert params.ratios == (0.5, 1.0, 2.0)
    cfg = framework_configs(p, params, ("mmdet",))
    assert list(cfg) == ["mmdet"] and cfg["mmdet"]["exact"]


def test_kmeans_iou_recovers_separated_shapes():
    rng = np.random.default_rng(0)
    a = np.column_stack([rng.uniform(9, 11, 200), rng.uniform(9, 11, 200)])
    b = np.column_stack([rng.uniform(95, 105, 200), rng.uniform(48, 52, 200)])
    c = kmeans_iou(np.concatenate([a, b]), 2, np.random.default_rng(1))
    assert np.allclose(c[0], a.mean(0)) and np.allclose(c[1], b.mean(0))


def test_bpr_metric_by_hand():
    wh = np.array([[10.0, 10.0], [40.0, 10.0], [200.0, 200.0]])
    anchors = np.array([[10.0, 10.0], [30.0, 30.0]])
    # x = min over (w, h) of min(r, 1/r), r = box / anchor:
    # box0 -> 1 and 1/3 (best 1); box1 -> min(1/4, 1) = 0.25 and min(3/4, 1/3) = 1/3 (best 1/3);
    # box2 -> 0.05 and 0.15 (best 0.15 < 1/4: not recalled)
    m = bpr_metrics(wh, anchors, 4.0)
    assert m["bpr"] == pytest.approx(2 / 3)
    assert m["fitness"] == pytest.approx((1.0 + 1 / 3 + 0.0) / 3)


@pytest.mark.slow
def test_real_coco_val_subset_coverage_rises():
    ds = load(str(VAL))
    res = fit_anchors(ds, "retinanet", iterations=25, sample=40, seed=0)
    assert res.all_before["images"] == ds.num_images == 79
    assert res.all_after["coverage"] > res.all_before["coverage"]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--objective", "bpr"], "--objective bpr needs a YOLO-style preset"),
        (["--objective", "recall"], "--objective must be one of"),
        (["--preset", "fcos"], "has no anchors to fit"),
        (["--preset", "ssd300"], "relative scales"),
        (["--preset", "nope"], "unknown anchor preset"),
        (["--sample", "0"], "--sample must be"),
        (["--budget", "-1"], "--budget must be"),
        (["--iterations", "-3"], "--iterations must be"),
        (["--target", "ultralytics"], "--target ultralytics needs a YOLO preset"),
        (["--target", "keras"], "--target must be"),
    ],
)
def test_bad_options_one_line_exit_2(args, needle):
    r = runner.invoke(app, ["anchors", str(VAL), *args])
    assert r.exit_code == 2
    err = r.stderr.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err


def test_check_fittable_refuses_bpr_for_every_current_preset():
    for name, p in PRESETS.items():
        with pytest.raises(InputError):
            check_fittable(p, "bpr")


@pytest.mark.slow
def test_cli_end_to_end_writes_outputs(tmp_path, small):
    path, _, _ = small
    out = tmp_path / "fit"
    r = runner.invoke(app, ["anchors", str(path), "--iterations", "5", "--sample", "all", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "anchors.json").read_text())
    assert rep["schema"] == "imbalance.anchors/1"
    assert rep["all"]["after"]["coverage"] >= rep["all"]["before"]["coverage"]
    assert (out / "torchvision_anchor_generator.py").exists() and (out / "detectron2_anchor_generator.yaml").exists()
    r = runner.invoke(app, ["anchors", str(path), "--iterations", "2", "--json", "--target", "detectron2"])
    assert r.exit_code == 0
    assert list(json.loads(r.stdout)["configs"]) == ["detectron2"]


def _metrics(cov, ppb, size, freq):
    names = ("small", "medium", "large")
    fnames = ("rare third", "middle third", "frequent third")
    return {
        "coverage": cov,
        "positives_per_box": ppb,
        "by_size": {n: {"boxes": b, "coverage": c, "positives_per_box": p} for n, (b, c, p) in zip(names, size)},
        "by_frequency": {n: {"boxes": b, "coverage": c, "positives_per_box": p} for n, (b, c, p) in zip(fnames, freq)},
    }


def test_objective_formulas_by_hand():
    from imbalance_cli.anchorfit.scoring import objective_score

    m = _metrics(
        0.8, 10.0, [(10, 0.6, 5.0), (10, 0.9, 10.0), (0, None, None)], [(5, 0.8, 8.0), (5, 0.8, 12.0), (10, 0.8, 10.0)]
    )
    # coverage: 0.5 * 0.8 + 0.25 * mean(0.6, 0.9) + 0.25 * 0.6 (the empty large group is left out)
    assert objective_score(m, "coverage") == pytest.approx(0.4 + 0.25 * 0.75 + 0.15)
    # positives: min/max over size and frequency groups = 5 / 12, times min(1, 10 / 20) against the reference
    assert objective_score(m, "positives", (20.0, 0.8)) == pytest.approx(5 / 12 * 0.5)
    assert objective_score(m, "positives", (5.0, 0.7)) == pytest.approx(5 / 12)
    # a candidate covering fewer boxes than the original scores below zero, whatever its positives
    assert objective_score(m, "positives", (5.0, 0.9)) == pytest.approx(-0.1)


def test_positives_objective_keeps_coverage(small):
    _, ds, _ = small
    res = fit_anchors(ds, "retinanet", objective="positives", iterations=20, sample=None, seed=0)
    assert res.sample_after["coverage"] >= res.sample_before["coverage"]
    assert res.sample_after["score"] >= res.sample_before["score"]


@pytest.mark.slow
def test_budget_stops_early_and_iterations_reproduce_it(small):
    _, ds, _ = small
    import time

    t = time.perf_counter()
    fit_anchors(ds, "retinanet", iterations=0, sample=None, seed=0, final_all=False)
    starts = time.perf_counter() - t
    res = fit_anchors(
        ds,
        "retinanet",
        iterations=100000,
        sample=None,
        seed=0,
        budget=starts + 1.5,
        on_candidate=lambda it, s, b: time.sleep(0.1),
    )
    assert res.stopped == "budget" and res.iterations_done < 100000
    again = fit_anchors(ds, "retinanet", iterations=res.iterations_done, sample=None, seed=0)
    assert again.params == res.params


def test_no_valid_boxes_is_refused(tmp_path):
    f = tmp_path / "empty.json"
    f.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "width": 640, "height": 480, "file_name": "a.jpg"}],
                "annotations": [],
                "categories": [{"id": 1, "name": "a"}],
            }
        )
    )
    r = runner.invoke(app, ["anchors", str(f), "--iterations", "2", "-q"])
    assert r.exit_code == 2 and "no valid boxes to fit anchors to" in r.stderr and str(f) in r.stderr
