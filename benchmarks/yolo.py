"""YOLO loading against Ultralytics' own dataset scan, measured side by side in one run (alternating, medians).

    python benchmarks/yolo.py generate [--images 100000] [--boxes 7] [--root /work/bench-data/yolo-100k]
    python benchmarks/yolo.py run [--root ...] [--ultralytics /work/venvs/ultralytics/bin/python] [--repeats 3]
                                  [--second-only]
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

Both run from compiled bytecode, as installed packages do (pip compiles Ultralytics' and its dependencies'
``.pyc`` files at install): imbalance's run uses a temporary ``PYTHONPYCACHEPREFIX``, filled before any
timing by ``compileall`` and one untimed run on the bundled sample (a checkout run with
``PYTHONDONTWRITEBYTECODE`` would otherwise compile every module again in every run). ``--second-only`` times the second
runs alone (a quick look; the README quotes full runs).

It prints each time (wall, and the CPU time user + system of the process and its threads), the load
average around each round, the medians and the ratios Ultralytics / imbalance (first and second runs). The
machine is shared: the numbers are medians of alternated runs and still move with the other load.
``assign`` times :func:`imbalance_cli.anchors.yolov5.assign_yolov5` against the per-box loop of
``tests/test_yolov5_assign.py`` (extrapolated).
"""

from __future__ import annotations

import argparse
import os
import resource
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
                "".join(f"{a} {b:.6f} {d:.6f} {e:.6f} {f:.6f}\n" for a, b, d, e, f in zip(c, cx, cy, w, h))
            )
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnc: 80\n")
    print(f"wrote {images:,} images with {boxes} boxes each under {root}")


def _timed(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """Wall and CPU seconds (user + system of the child and its threads) of one whole process, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return dt, cpu, r.stdout


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def run(root: Path, ultralytics: str, repeats: int, second_only: bool = False) -> None:
    """Time both tools' first and second runs, alternating (see module docstring)."""
    yaml = str(root / "data.yaml")
    pyc = tempfile.mkdtemp(prefix="imb-pyc-")
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONPYCACHEPREFIX=pyc)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    ours = [sys.executable, "-m", "imbalance_cli", "stats", yaml, "--anchors", "none", "--json", "-q"]
    # compile once, untimed: the prefix then holds the .pyc of every module the command imports
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "imbalance_cli")],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    _timed(
        ours[:4] + [str(ROOT / "examples" / "data" / "yolo-coco-mini" / "data.yaml")] + ours[5:] + ["--no-cache"], env
    )
    theirs = [ultralytics, "-c", ULTRALYTICS_DRIVER, yaml]
    keys = [f"{tool} {which}" for which in ("first", "second") for tool in ("imbalance", "ultralytics")]
    times: dict[str, list[float]] = {k: [] for k in keys}
    cpus: dict[str, list[float]] = {k: [] for k in keys}

    def timed(key: str, cmd: list[str], e: dict) -> str:
        dt, cpu, out = _timed(cmd, e)
        times[key].append(dt)
        cpus[key].append(cpu)
        return out

    out = out_u = ""
    try:
        for rep in range(repeats):
            load = _load()
            with tempfile.TemporaryDirectory(prefix="imb-cache-") as cache:
                e = dict(env, IMBALANCE_CACHE=cache)
                if second_only:  # fill both caches untimed
                    _timed(ours, e)
                    _timed(theirs, env)
                else:
                    timed("imbalance first", ours, e)
                    for f in (root / "labels").glob("*.cache"):
                        f.unlink()
                    out_u = timed("ultralytics first", theirs, env)
                out = timed("imbalance second", ours, e)
                out_u = timed("ultralytics second", theirs, env)
            print(
                f"round {rep + 1} (load {load} -> {_load()}): "
                + ", ".join(f"{k} {times[k][-1]:.2f} s (cpu {cpus[k][-1]:.2f})" for k in keys if times[k]),
                flush=True,
            )
    finally:
        shutil.rmtree(pyc, ignore_errors=True)
    import json

    boxes = json.loads(out)["splits"]
    n_ours = sum(s["dataset"]["boxes"] for s in boxes.values())
    print(f"\n{root}: boxes imbalance {n_ours:,}, Ultralytics {int(out_u.strip().splitlines()[-1]):,}")
    print("| run | imbalance (s) | Ultralytics (s) | Ultralytics / imbalance | CPU imbalance / Ultralytics (s) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for which in ("first", "second"):
        if not times[f"imbalance {which}"]:
            continue
        a, b = (statistics.median(times[f"{t} {which}"]) for t in ("imbalance", "ultralytics"))
        ca, cb = (statistics.median(cpus[f"{t} {which}"]) for t in ("imbalance", "ultralytics"))
        print(f"| {which} | {a:.2f} | {b:.2f} | {b / a:.2f}x | {ca:.2f} / {cb:.2f} |")
    print(f"(medians of {repeats} alternated runs each; the machine is shared: load average {_load()} at the end)")


def assign(n_boxes: int) -> None:
    """assign_yolov5 against the per-box reference loop (extrapolated)."""
    from test_yolov5_assign import slow_build_targets

    from imbalance_cli.anchors.yolov5 import YOLOV5, assign_yolov5

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
    print(
        f"assign_yolov5 on {n_boxes:,} boxes: {t_fast:.2f} s, {len(res.pos_box):,} entries; per-box loop "
        f"extrapolated from {m:,} boxes: {t_slow:.1f} s (ratio {t_slow / t_fast:.0f}x)"
    )


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
    r.add_argument("--second-only", action="store_true", help="time the second runs alone (caches filled untimed)")
    a = sub.add_parser("assign")
    a.add_argument("--boxes", type=int, default=1_000_000)
    args = ap.parse_args()
    if args.cmd == "generate":
        generate(args.root, args.images, args.boxes)
    elif args.cmd == "run":
        run(args.root, args.ultralytics, args.repeats, args.second_only)
    else:
        assign(args.boxes)


if __name__ == "__main__":
    main()
