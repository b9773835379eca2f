"""`imbalance anchors --preset yolov5`: free (w, h) anchors judged by YOLOv5's build_targets, BPR, Ultralytics snippet.

The expected coverage and BPR are recomputed here independently of the package, box by box, from the label
files and the image headers (Pillow):

* letterbox as ultralytics/yolov5 ``utils/augmentations.py`` ``letterbox(auto=True, stride=32)``: ``r = min(640 / h,
  640 / w)``, unpadded size ``round(w r), round(h r)``, each side padded by ``(640 - size) mod 32``, labels shifted
  by half the padding;
* positives as ``utils/loss.py`` ``ComputeLoss.build_targets``: per level, targets in grid units (float32), anchor
  kept when ``max(r, 1/r) < anchor_t`` over w and h, plus the neighbour cells ``j, k, l, m`` (``xy % 1 < 0.5`` and
  ``xy > 1``, the mirror for the far side): one entry per (box, anchor, cell);
* BPR as ``utils/autoanchor.py`` ``check_anchors`` ``metric()``: ``best = max_k min(min(r, 1/r))`` with the label
  sizes in pixels of the 640 input, ``BPR = mean(best > 1 / anchor_t)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from imbalance_cli import load
from imbalance_cli.anchorfit.outcome import to_report
from imbalance_cli.anchorfit.search import check_fittable, fit_anchors
from imbalance_cli.anchors.kinds import any_preset
from imbalance_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "data" / "yolo-coco-mini" / "data.yaml"
DEFAULT_ANCHORS = [
    [(10, 13), (16, 30), (33, 23)],
    [(30, 61), (62, 45), (59, 119)],
    [(116, 90), (156, 198), (373, 326)],
]  # ultralytics/yolov5 models/yolov5s.yaml
STRIDES = (8, 16, 32)
runner = CliRunner()


# ----------------------------------------------------------------------------- independent oracle
def read_yolo(root: Path) -> list[tuple[int, int, list[tuple[float, float, float, float]]]]:
    """(width, height, [(cx, cy, w, h) normalised]) per image of every images/*/ folder under ``root``."""
    out = []
    for img in sorted((root / "images").rglob("*.png")):
        w0, h0 = Image.open(img).size
        lab = Path(str(img).replace("/images/", "/labels/")).with_suffix(".txt")
        rows = []
        if lab.exists():
            for line in lab.read_text().splitlines():
                f = line.split()
                if len(f) == 5:
                    rows.append(tuple(float(v) for v in f[1:]))
        out.append((w0, h0, rows))
    return out


def oracle(images, anchors, anchor_t=4.0, g=0.5) -> dict:
    """Box-by-box coverage, positives per box and BPR (see module docstring)."""
    covered, positives, best_all = [], [], []
    thr = 1.0 / anchor_t
    flat = [a for lv in anchors for a in lv]
    for w0, h0, rows in images:
        r = min(640 / h0, 640 / w0)
        nw, nh = int(round(w0 * r)), int(round(h0 * r))
        pw, ph = nw + (640 - nw) % 32, nh + (640 - nh) % 32
        dw, dh = ((640 - nw) % 32) / 2, ((640 - nh) % 32) / 2
        for cx, cy, bw, bh in rows:
            x1, x2 = (cx - bw / 2) * w0 * r + dw, (cx + bw / 2) * w0 * r + dw
            y1, y2 = (cy - bh / 2) * h0 * r + dh, (cy + bh / 2) * h0 * r + dh
            # normalised xywh of the padded image, float32 like the training targets
            t = np.array([(x1 + x2) / 2 / pw, (y1 + y2) / 2 / ph, (x2 - x1) / pw, (y2 - y1) / ph], np.float32)
            n = 0
            for lv, stride in enumerate(STRIDES):
                gain = np.array([pw // stride, ph // stride], np.float32)
                gxy, gwh = t[:2] * gain, t[2:] * gain
                gxi = gain - gxy
                for aw, ah in anchors[lv]:
                    a = np.array([aw / stride, ah / stride], np.float32)
                    ratio = gwh / a
                    if np.maximum(ratio, 1 / ratio).max() < anchor_t:
                        n += 1  # the centre cell
                        for v in (gxy[0], gxy[1], gxi[0], gxi[1]):  # j, k, l, m
                            if v % 1 < g and v > 1:
                                n += 1
            positives.append(n)
            covered.append(n > 0)
            lw, lh = x2 - x1, y2 - y1  # label size in pixels of the 640 input (check_anchors' wh)
            best = max(min(min(lw / aw, aw / lw), min(lh / ah, ah / lh)) for aw, ah in flat)
            best_all.append(best)
    return {
        "coverage": float(np.mean(covered)),
        "positives_per_box": float(np.mean(positives)),
        "bpr": float(np.mean(np.array(best_all) > thr)),
        "boxes": len(covered),
    }


def small_box_yolo(root: Path, images: int = 24, seed: int = 7) -> Path:
    """A YOLO dataset (640 x 480 PNGs) where 80% of the boxes are 1.5 .. 3 px (below YOLOv5's 10 x 13 / 4)."""
    rng = np.random.default_rng(seed)
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    for i in range(images):
        Image.new("L", (640, 480), 128).save(root / "images" / "train" / f"{i:03d}.png")
        lines = []
        for _ in range(10):
            w, h = rng.uniform(1.5, 3.0, 2) if rng.random() < 0.8 else rng.uniform(30, 150, 2)
            cx, cy = rng.uniform(80, 560), rng.uniform(80, 400)
            lines.append(f"{int(rng.integers(0, 3))} {cx / 640:.6f} {cy / 480:.6f} {w / 640:.6f} {h / 480:.6f}")
        (root / "labels" / "train" / f"{i:03d}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text("train: images/train\nnames: [a, b, c]\n")
    return root / "data.yaml"


def anchors_of(report_preset: dict):
    return [[tuple(a) for a in lv] for lv in report_preset["anchors"]]


# ----------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("yolo_small")
    path = small_box_yolo(root)
    ds = load(str(path))
    return path, ds, read_yolo(root)


def test_oracle_reproduces_the_default_preset_on_the_sample():
    """The oracle and the package agree on the default anchors (both before any fitting)."""
    imgs = read_yolo(SAMPLE.parent)
    o = oracle(imgs, DEFAULT_ANCHORS)
    res = fit_anchors(load(str(SAMPLE)), "yolov5", iterations=0, sample=None)
    b = res.all_before
    assert b["boxes"] == o["boxes"] == 1350
    assert b["bpr"] == pytest.approx(o["bpr"], abs=1e-12)
    assert b["coverage"] == pytest.approx(o["coverage"], abs=1.01 / o["boxes"])
    assert b["positives_per_box"] == pytest.approx(o["positives_per_box"], abs=0.02)


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["bpr", "coverage"])
def test_bundled_sample_fitted_anchors_raise_bpr_and_coverage(objective):
    imgs = read_yolo(SAMPLE.parent)
    res = fit_anchors(load(str(SAMPLE)), "yolov5", objective=objective, iterations=40, sample=None, seed=1)
    rep = to_report(res)
    before, after = oracle(imgs, DEFAULT_ANCHORS), oracle(imgs, anchors_of(rep["fitted"]))
    # the default set leaves 4 of 1350 boxes (3 small) outside anchor_t: BPR 0.99704, coverage 0.99704
    assert before["bpr"] == pytest.approx(1346 / 1350)
    assert after["bpr"] > before["bpr"] and after["coverage"] > before["coverage"]
    assert after["bpr"] == 1.0 and after["coverage"] == 1.0
    assert rep["all"]["after"]["bpr"] == pytest.approx(after["bpr"])
    assert rep["all"]["after"]["coverage"] == pytest.approx(after["coverage"])


def test_small_box_dataset_coverage_and_bpr_rise_by_the_oracle(synth):
    path, ds, imgs = synth
    res = fit_anchors(ds, "yolov5", objective="coverage", iterations=40, sample=None, seed=0)
    rep = to_report(res)
    before, after = oracle(imgs, DEFAULT_ANCHORS), oracle(imgs, anchors_of(rep["fitted"]))
    assert before["boxes"] == ds.num_boxes == 240
    assert before["coverage"] < 0.3 and before["bpr"] < 0.3  # the 1.5-3 px boxes fail the ratio test
    assert after["coverage"] > before["coverage"] + 0.5
    assert after["bpr"] > before["bpr"] + 0.5
    assert rep["all"]["after"]["coverage"] == pytest.approx(after["coverage"], abs=1.01 / after["boxes"])
    assert rep["all"]["after"]["bpr"] == pytest.approx(after["bpr"])
    assert rep["all"]["before"]["coverage"] == pytest.approx(before["coverage"], abs=1.01 / before["boxes"])
    # the fitted set stays three anchors per level, sorted by area as YOLOv5 does
    areas = [w * h for lv in rep["fitted"]["anchors"] for w, h in lv]
    assert [len(lv) for lv in rep["fitted"]["anchors"]] == [3, 3, 3] and areas == sorted(areas)


def test_bpr_objective_on_small_boxes(synth):
    path, ds, imgs = synth
    rep = to_report(fit_anchors(ds, "yolov5", objective="bpr", iterations=20, sample=None, seed=0))
    assert oracle(imgs, anchors_of(rep["fitted"]))["bpr"] > oracle(imgs, DEFAULT_ANCHORS)["bpr"] + 0.5


def test_deterministic_for_a_seed(synth):
    _, ds, _ = synth

    def run(seed):
        r = to_report(fit_anchors(ds, "yolov5", iterations=15, sample=12, seed=seed))
        r["search"].pop("seconds")
        return json.dumps(r, sort_keys=True)

    assert run(3) == run(3)


def test_interrupt_keeps_best_so_far(synth):
    _, ds, _ = synth

    def hook(it, sc, best):
        if it == 5:
            raise KeyboardInterrupt

    a = fit_anchors(ds, "yolov5", iterations=50, sample=None, seed=2, on_candidate=hook)
    b = fit_anchors(ds, "yolov5", iterations=5, sample=None, seed=2)
    assert a.stopped == "interrupted" and a.iterations_done == 5
    assert a.params == b.params


@pytest.mark.slow
def test_snippet_parses_and_toml_round_trips_into_stats(synth, tmp_path):
    import yaml

    path, ds, imgs = synth
    out = tmp_path / "fit"
    r = runner.invoke(
        app,
        [
            "anchors",
            str(path),
            "--preset",
            "yolov5",
            "--iterations",
            "10",
            "--sample",
            "all",
            "--objective",
            "bpr",
            "--out",
            str(out),
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "anchors.json").read_text())
    fitted = rep["fitted"]["anchors"]
    y = yaml.safe_load((out / "ultralytics_anchors.yaml").read_text())
    assert y["anchors"] == [[v for a in lv for v in a] for lv in fitted]
    assert sorted(p.name for p in out.iterdir()) == [
        ".imbalance-manifest.json",
        "anchors.json",
        "anchors.png",
        "fitted.toml",
        "report.html",
        "ultralytics_anchors.yaml",
    ]
    p = any_preset(str(out / "fitted.toml"))
    assert [[list(a) for a in lv] for lv in p.anchors] == fitted and p.anchor_t == 4.0
    # imbalance stats routes the TOML to the YOLOv5 statistics with the fitted anchors
    r = runner.invoke(app, ["stats", str(path), "--anchors", str(out / "fitted.toml"), "--json"])
    assert r.exit_code == 0, r.output
    anchors = json.loads(r.stdout)["anchors"]
    assert anchors["autoanchor"]["bpr"] == pytest.approx(oracle(imgs, anchors_of(rep["fitted"]))["bpr"])
    assert [lv["anchor_sizes"] for lv in anchors["levels"]] == fitted
    # and `imbalance anchors --preset fitted.toml` starts from it
    r = runner.invoke(
        app,
        ["anchors", str(path), "--preset", str(out / "fitted.toml"), "--iterations", "0", "--sample", "all", "--json"],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["original"]["anchors"] == fitted


def test_check_fittable_accepts_yolov5_for_every_objective():
    for objective in ("coverage", "positives", "bpr"):
        check_fittable(any_preset("yolov5"), objective)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--preset", "yolov5", "--target", "torchvision"], "--target torchvision cannot express YOLO anchors"),
        (["--preset", "yolov5", "--target", "ultralytics,mmdet"], "--target mmdet cannot express YOLO anchors"),
        (["--preset", "retinanet", "--target", "ultralytics"], "--target ultralytics needs a YOLO preset"),
        (["--preset", "retinanet", "--objective", "bpr"], "--objective bpr needs a YOLO-style preset"),
        (["--preset", "yolov5", "--objective", "recall"], "--objective must be one of"),
    ],
)
def test_bad_options_one_line_exit_2(args, needle):
    r = runner.invoke(app, ["anchors", str(SAMPLE), *args])
    assert r.exit_code == 2
    err = r.stderr.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err


def test_bad_yolov5_toml_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('kind = "yolov5"\nanchors = [[[10, 13]], [[30]], [[116, 90]]]\n')
    r = runner.invoke(app, ["anchors", str(SAMPLE), "--preset", str(bad)])
    assert r.exit_code == 2
    err = r.stderr.strip()
    assert "bad.toml" in err and "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize("preset", ["retinanet", "yolov5"])
def test_one_search_for_both_spaces(synth, preset):
    """The module docstring's search, in the grid space and in the YOLO space alike: the starts in their documented
    order (projection, k-means, projection x 0.25 .. 2), the evolution from the best of them, and a run of N
    iterations the first N of a longer one."""
    _, ds, _ = synth
    short = fit_anchors(ds, preset, iterations=3, sample=12, seed=1)
    long = fit_anchors(ds, preset, iterations=6, sample=12, seed=1)
    scaled = [f"preset x {f}" for f in ("0.25", "0.35", "0.5", "0.71", "1.41", "2")]
    assert list(long.starts) == ["preset", "kmeans", *scaled]
    assert long.history[0] == [0, max(s["score"] for s in long.starts.values())]
    assert short.history == [h for h in long.history if h[0] <= 3]
    assert short.starts == long.starts


def test_both_spaces_report_the_same_keys(synth):
    """One report for both spaces: the same keys in the same order; each space writes its own presets, snippets
    and TOML."""
    _, ds, _ = synth
    grid, yolo = (to_report(fit_anchors(ds, p, iterations=2, sample=12, seed=0)) for p in ("retinanet", "yolov5"))
    assert list(grid) == list(yolo) and list(grid["search"]) == list(yolo["search"])
    assert set(grid["configs"]) == {"torchvision", "mmdet", "detectron2"} and set(yolo["configs"]) == {"ultralytics"}
    assert 'kind = "grid"' in grid["toml"] and 'kind = "yolov5"' in yolo["toml"]
    assert "sizes" in grid["fitted"] and "anchors" in yolo["fitted"]
