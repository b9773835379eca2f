"""YOLO loading against Ultralytics' own dataset scan, measured side by side in one run (alternating, medians).

    python benchmarks/yolo.py generate [--images 100000] [--boxes 7] [--root /work/bench-data/yolo-100k]
    python benchmarks/yolo.py run [--root ...] [--ultralytics /work/venvs/ultralytics/bin/python] [--repeats 3]
    python benchmarks/yolo.py assign [--boxes 1000000]

``generate`` writes ``--images`` small PNG files (sizes drawn from the bundled COCO subset, one
template per size) under ``images/train`` with one label file of ``--boxes`` random boxes each under
``labels/train``, a 1% ``val`` split, and a ``data.yaml``.

``run`` times, as whole processes, alternating and ``--repeats`` times each:

* imbalance, first run: ``imbalance stats data.yaml --anchors none --json -q`` with an empty label cache
  (``$IMBALANCE_CACHE`` a fresh folder): every image verified, every label file parsed;
* imbalance, second run: the same command again (the label cache is warm);
* Ultralytics, first run: its ``YOLODataset`` built for the train and val splits after its
  ``labels/*.cache`` files are removed (``check_det_dataset`` + ``YOLODataset(..., augment=False)``,
  the scan a training run starts with), in the interpreter given by ``--ultralytics``
  (``pip install torch==2.14.1 torchvision==0.29.1 ultralytics`` in a venv of its own);
* Ultralytics, second run: the same with its ``.cache`` files present.

It prints each time, the medians and the ratios Ultralytics / imbalance (first and second runs). The machine
is shared: the numbers are medians of alternated runs and still move with the other load.
``assign`` times :func:`imbalance_cli.anchors.yolov5.assign_yolov5` against the per-box loop of
``tests/test_yolov5_assign.py`` (extrapolated).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
DEFAULT_ROOT = Path("/work/bench-data/yolo-100k")

ULTRALYTICS_DRIVER = r"""
import sys, logging
from ultralytics.utils import LOGGER
LOGGER.setLevel(logging.ERROR)
from ultralytics.cfg import get_cfg
from ultralytics.data.dataset import YOLODataset
from ultralytics.data.utils import check_det_dataset
data = check_det_dataset(sys.argv[1])
n = 0
for split in ("train", "val"):
    ds = YOLODataset(img_path=data[split], data=data, task="detect", augment=False, hyp=get_cfg(), imgsz=640,
                     batch_size=16, rect=False, prefix=f"{split}: ")
    n += sum(len(lb["cls"]) for lb in ds.labels)
print(n)
"""


def generate(root: Path, images: int, boxes: int, seed: int = 0) -> None:
    """Write the synthetic dataset (see module docstring)."""
    from PIL import Image

    from imbalance_cli import load

    rng = np.random.default_rng(seed)
    coco = load(ROOT / "examples" / "data" / "coco-mini_instances_val2017.json.gz")
    if root.exists():
        shutil.rmtree(root)
    n_val = max(1, images // 100)
    templates: dict = {}
    for split, n in (("train", images - n_val), ("val", n_val)):
        img_dir, lab_dir = root / "images" / split, root / "labels" / split
        img_dir.mkdir(parents=True)
        lab_dir.mkdir(parents=True)
        pick = rng.integers(0, coco.num_images, n)
        for k, i in enumerate(pick):
            wh = (int(coco.widths[i]), int(coco.heights[i]))
            if wh not in templates:
                p = root / f"t_{wh[0]}x{wh[1]}.png"
                Image.new("L", wh, 128).save(p, optimize=True)
                templates[wh] = p.read_bytes()
                p.unlink()
            (img_dir / f"{k:07d}.png").write_bytes(templates[wh])
            w = rng.uniform(0.02, 0.5, boxes)
            h = rng.uniform(0.02, 0.5, boxes)
            cx = rng.uniform(w / 2, 1 - w / 2)
            cy = rng.uniform(h / 2, 1 - h / 2)
            c = rng.integers(0, 80, boxes)
            (lab_dir / f"{k:07d}.txt").write_text(
                "".join(f"{a} {b:.6f} {d:.6f} {e:.6f} {f:.6f}\n" for a, b, d, e, f in zip(c, cx, cy, w, h)))
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnc: 80\n")
    print(f"wrote {images:,} images with {boxes} boxes each under {root}")


def _timed(cmd: list[str], env: dict) -> tuple[float, str]:
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return dt, r.stdout


def run(root: Path, ultralytics: str, repeats: int) -> None:
    """Time both tools' first and second runs, alternating (see module docstring)."""
    yaml = str(root / "data.yaml")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ours = [sys.executable, "-m", "imbalance_cli", "stats", yaml, "--anchors", "none", "--json", "-q"]
    theirs = [ultralytics, "-c", ULTRALYTICS_DRIVER, yaml]
    times: dict[str, list[float]] = {"imbalance first": [], "imbalance second": [], "ultralytics first": [],
                                     "ultralytics second": []}
    for rep in range(repeats):
        with tempfile.TemporaryDirectory(prefix="imb-cache-") as cache:
            e = dict(env, IMBALANCE_CACHE=cache)
            dt, _ = _timed(ours, e)
            times["imbalance first"].append(dt)
            for f in (root / "labels").glob("*.cache"):
                f.unlink()
            dt, out_u = _timed(theirs, env)
            times["ultralytics first"].append(dt)
            dt, out = _timed(ours, e)
            times["imbalance second"].append(dt)
            dt, _ = _timed(theirs, env)
            times["ultralytics second"].append(dt)
        print(f"round {rep + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
    import json

    boxes = json.loads(out)["splits"]
    n_ours = sum(s["dataset"]["boxes"] for s in boxes.values())
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{root}: boxes imbalance {n_ours:,}, Ultralytics {int(out_u.strip().splitlines()[-1]):,}")
    print("| run | imbalance (s) | Ultralytics (s) | Ultralytics / imbalance |")
    print("| --- | ---: | ---: | ---: |")
    for which in ("first", "second"):
        a, b = med[f"imbalance {which}"], med[f"ultralytics {which}"]
        print(f"| {which} | {a:.2f} | {b:.2f} | {b / a:.2f}x |")
    print(f"(medians of {repeats} alternated runs each; the machine is shared)")


def assign(n_boxes: int) -> None:
    """assign_yolov5 against the per-box reference loop (extrapolated)."""
    from imbalance_cli.anchors.yolov5 import YOLOV5, assign_yolov5
    from test_yolov5_assign import slow_build_targets

    rng = np.random.default_rng(0)
    n_img = max(1, n_boxes // 7)
    ph = np.full(n_img, 480, np.int64)
    pw = np.full(n_img, 640, np.int64)
    bi = rng.integers(0, n_img, n_boxes)
    w = np.exp(rng.uniform(np.log(4), np.log(600), n_boxes))
    h = w * np.exp(rng.uniform(-1, 1, n_boxes))
    cx, cy = rng.uniform(0, 640, n_boxes), rng.uniform(0, 480, n_boxes)
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    t = time.perf_counter()
    res = assign_yolov5(YOLOV5, boxes, bi, ph, pw)
    t_fast = time.perf_counter() - t
    m = 2000
    t = time.perf_counter()
    slow_build_targets(boxes[:m], bi[:m], ph, pw)
    t_slow = (time.perf_counter() - t) * n_boxes / m
    print(f"assign_yolov5 on {n_boxes:,} boxes: {t_fast:.2f} s, {len(res.pos_box):,} entries; per-box loop "
          f"extrapolated from {m:,} boxes: {t_slow:.1f} s (ratio {t_slow / t_fast:.0f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--images", type=int, default=100_000)
    g.add_argument("--boxes", type=int, default=7)
    g.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    r = sub.add_parser("run")
    r.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    r.add_argument("--ultralytics", default="/work/venvs/ultralytics/bin/python")
    r.add_argument("--repeats", type=int, default=3)
    a = sub.add_parser("assign")
    a.add_argument("--boxes", type=int, default=1_000_000)
    args = ap.parse_args()
    if args.cmd == "generate":
        generate(args.root, args.images, args.boxes)
    elif args.cmd == "run":
        run(args.root, args.ultralytics, args.repeats)
    else:
        assign(args.boxes)


if __name__ == "__main__":
    main()
