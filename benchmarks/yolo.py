"""YOLO loader and YOLOv5 assignment benchmark, ratios measured side by side in one run.

    python benchmarks/yolo.py [--images 20000] [--boxes 1000000]

1. Writes ``--images`` tiny PNG files (sizes drawn from the bundled COCO subset) with one label
   file each under a temporary ``images/``/``labels/`` tree and a data.yaml, then times the image
   header reading sequentially and with the thread pool (the loader switches to threads above
   ``THREAD_THRESHOLD`` images), and the whole ``load(data.yaml)``.
2. Times ``assign_yolov5`` on ``--boxes`` synthetic boxes (COCO-like sizes) against the slow
   per-box loop of ``tests/test_yolov5_assign.py`` on a sample, extrapolated (stated).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--boxes", type=int, default=1_000_000)
    args = ap.parse_args()
    from PIL import Image

    from imbalance_cli import load
    from imbalance_cli.anchors.yolov5 import YOLOV5, assign_yolov5
    from imbalance_cli.data import yolo

    rng = np.random.default_rng(0)
    coco = load(ROOT / "examples" / "data" / "coco-mini_instances_val2017.json.gz")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "images" / "train").mkdir(parents=True)
        (root / "labels" / "train").mkdir(parents=True)
        pick = rng.integers(0, coco.num_images, args.images)
        templates = {}
        for k, i in enumerate(pick):
            wh = (int(coco.widths[i]), int(coco.heights[i]))
            if wh not in templates:
                p = root / f"t_{wh[0]}x{wh[1]}.png"
                Image.new("L", wh, 128).save(p, optimize=True)
                templates[wh] = p.read_bytes()
            (root / "images" / "train" / f"{k:07d}.png").write_bytes(templates[wh])
            (root / "labels" / "train" / f"{k:07d}.txt").write_text("0 0.5 0.5 0.2 0.3\n1 0.3 0.3 0.1 0.1\n")
        (root / "data.yaml").write_text("train: images/train\nnames: [a, b]\n")
        files = sorted(str(p) for p in (root / "images" / "train").iterdir())
        t = time.perf_counter()
        seq = [yolo.image_size(f) for f in files]
        t_seq = time.perf_counter() - t
        t = time.perf_counter()
        thr = yolo.image_sizes(files, threads=16)
        t_thr = time.perf_counter() - t
        assert seq == thr
        t = time.perf_counter()
        ds = load(root / "data.yaml")
        t_load = time.perf_counter() - t
        print(f"headers of {len(files):,} images: sequential {t_seq:.2f} s, 16 threads {t_thr:.2f} s "
              f"(ratio {t_seq / t_thr:.2f}x); load(data.yaml) {t_load:.2f} s for {ds.num_boxes:,} boxes")

    from test_yolov5_assign import slow_build_targets

    n_img = max(1, args.boxes // 7)
    ph = np.full(n_img, 480, np.int64)
    pw = np.full(n_img, 640, np.int64)
    bi = rng.integers(0, n_img, args.boxes)
    w = np.exp(rng.uniform(np.log(4), np.log(600), args.boxes))
    h = w * np.exp(rng.uniform(-1, 1, args.boxes))
    cx, cy = rng.uniform(0, 640, args.boxes), rng.uniform(0, 480, args.boxes)
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    t = time.perf_counter()
    res = assign_yolov5(YOLOV5, boxes, bi, ph, pw)
    t_fast = time.perf_counter() - t
    m = 2000
    t = time.perf_counter()
    slow_build_targets(boxes[:m], bi[:m], ph, pw)
    t_slow = (time.perf_counter() - t) * args.boxes / m
    print(f"assign_yolov5 on {args.boxes:,} boxes: {t_fast:.2f} s, {len(res.pos_box):,} entries; per-box loop "
          f"extrapolated from {m:,} boxes: {t_slow:.1f} s (ratio {t_slow / t_fast:.0f}x)")


if __name__ == "__main__":
    main()
