"""The GPU machine's checks and timings (issue: CUDA paths verified and timed on a GPU).

Run from the repository root on a machine with one CUDA GPU::

    python benchmarks/gpu.py [--install] [--work /tmp/gpu-bench] [--skip-train]

1. ``--install``: ``pip install -e .`` (the project and its dependencies) first.
2. Labels: for every bundled real subset with image sizes and every preset, the dense engine on
   CUDA (``engine=dense, device=cuda``) must give exactly the culled CPU engine's labels
   (positives: image, anchor, box, level, IoU; ignored per image; per-box best IoU/anchor/level).
3. The floor, as ``benchmarks/anchor_floor.py`` defines it (the (box, anchor) pairs the exact
   statistics cannot avoid, found by the culled engine's enumeration on the CPU), with the one
   vectorised float32 IoU of exactly those pairs timed on the GPU; the dense CUDA pass with the same
   negative-IoU sample (100 images) against it: the same floor ratio as on the CPU.
4. Times ``anchor_statistics`` (dense, CUDA, every image in the negative-IoU histogram) on the
   COCO-train-size file (``benchmarks/coco_train_size.py``) and the Objects365-tenth file
   (``benchmarks/objects365_size.py``); targets 5 s and 10 s.
5. Training throughput (images/s) of the compact detector on synthetic-lt for ``focal`` and ``rs``.

Without CUDA it stops at once with one line on stderr and exit code 2 (like ``--device cuda``
anywhere in the CLI).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SUBSETS = [  # (file, loader keyword arguments): every bundled real subset that has image sizes
    (ROOT / "examples" / "data" / "coco-mini_instances_val2017.json.gz", {}),
    (ROOT / "examples" / "data" / "coco-mini_instances_train2017.json.gz", {}),
    (ROOT / "examples" / "data" / "lvis_v0.5_val_100.json.gz", {}),
    (ROOT / "tests" / "data" / "objects365_from_coco_val.json", {}),
    (
        ROOT / "tests" / "data" / "openimages_from_coco_val.csv",
        {
            "classes": str(ROOT / "tests" / "data" / "openimages_from_coco_val_classes.csv"),
            "image_sizes": str(ROOT / "tests" / "data" / "openimages_from_coco_val_sizes.csv"),
        },
    ),
    (ROOT / "examples" / "data" / "VOC2007_Annotations_000001.xml", {}),
]
TARGETS = {"coco-train-size": 5.0, "objects365-tenth": 10.0}


def fail(msg: str) -> None:
    """One line on stderr, exit code 2."""
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def check_labels(device: str = "cuda", subsets=None, presets=None) -> int:
    """Dense ``device`` labels == culled CPU labels for every subset x preset; returns the number of mismatches."""
    import numpy as np

    from imbalance_cli.anchors.presets import PRESETS
    from imbalance_cli.data import load
    from imbalance_cli.specs import AnchorSpec
    from imbalance_cli.stats.anchors import label_anchors

    bad = 0
    for path, kw in SUBSETS if subsets is None else subsets:
        ds = load(str(path), **kw)
        for name in sorted(PRESETS) if presets is None else presets:
            cpu = label_anchors(ds, spec=AnchorSpec.build(name, device="cpu", engine="culled")).result
            gpu = label_anchors(ds, spec=AnchorSpec.build(name, device=device, engine="dense")).result

            def key(r):
                return np.lexsort((r.pos_anchor, r.pos_box, r.pos_image))

            kc, kg = key(cpu), key(gpu)
            same = len(kc) == len(kg) and all(
                np.array_equal(np.asarray(getattr(cpu, f))[kc], np.asarray(getattr(gpu, f))[kg])
                for f in ("pos_image", "pos_anchor", "pos_box", "pos_level", "pos_iou")
            )
            same = same and all(
                np.array_equal(np.asarray(getattr(cpu, f)), np.asarray(getattr(gpu, f)))
                for f in ("ignored_per_image", "box_max_iou", "box_best_anchor", "box_best_level")
            )
            bad += not same
            print(f"  {'ok  ' if same else 'DIFF'} {path.name} {name}: {len(kc):,} / {len(kg):,} positives")
    return bad


def floor_ratio(path: str, device: str = "cuda") -> dict:
    """The floor on ``device`` (pairs found on the CPU, their IoU timed on the device) and the dense pass against it."""
    import numpy as np
    from anchor_floor import TorchTimer, measure_floor

    from imbalance_cli.data import load
    from imbalance_cli.specs import AnchorSpec
    from imbalance_cli.stats.anchors import anchor_statistics

    ds = load(path)
    cpu_spec = AnchorSpec.build("retinanet", device="cpu")
    k = cpu_spec.negative_iou_sample
    sample = (
        None
        if k is None or k >= ds.num_images
        else np.sort(np.random.default_rng(cpu_spec.seed).choice(ds.num_images, size=k, replace=False))
    )
    fl = measure_floor(ds, cpu_spec, 1, sample=sample, timer=TorchTimer(device))
    spec = AnchorSpec.build("retinanet", device=device, engine="dense", negative_iou_sample=k)
    anchor_statistics(ds, spec=AnchorSpec.build("retinanet", device=device, engine="dense", negative_iou_sample=10))
    t0 = time.perf_counter()
    anchor_statistics(ds, spec=spec)
    sec = time.perf_counter() - t0
    return {
        "pairs": fl["pairs"],
        "counts": fl["counts"],
        "floor_seconds": fl["iou_cpu"],
        "pass_seconds": sec,
        "ratio": sec / max(fl["iou_cpu"], 1e-9),
    }


def time_pass(path: str) -> tuple[float, dict]:
    """Load once, then time ``anchor_statistics`` (dense, CUDA, all images in the negative histogram)."""
    from imbalance_cli.data import load
    from imbalance_cli.specs import AnchorSpec
    from imbalance_cli.stats.anchors import anchor_statistics

    ds = load(path)
    spec = AnchorSpec.build("retinanet", device="cuda", engine="dense", negative_iou_sample="all")
    anchor_statistics(
        ds, spec=AnchorSpec.build("retinanet", device="cuda", engine="dense", negative_iou_sample=10)
    )  # warm-up: CUDA context, kernels
    t0 = time.perf_counter()
    s = anchor_statistics(ds, spec=spec)
    return time.perf_counter() - t0, {"images": s["images"], "boxes": s["boxes"], "foreground": s["foreground"]}


def train_throughput(loss: str, work: Path) -> float:
    """Images per second of one synthetic-lt training epoch (1,600 images, batch 16) on CUDA."""
    from imbalance_cli.detector.train import TrainConfig, train

    m = train(
        TrainConfig(
            loss=loss,
            device="cuda",
            epochs=2,
            out=str(work / f"train-{loss}"),
            synthetic_dir=str(work / "synthetic-lt"),
            plots=False,
        )
    )
    return m["data"]["train_images"] * 2 / m["timing"]["train_seconds"]


def main() -> None:
    """Run every check and timing; print a summary (and ``--json`` it)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--install", action="store_true", help="pip install -e . first")
    ap.add_argument("--work", default="/tmp/gpu-bench", help="folder for generated files")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args()
    if args.install:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(ROOT)], check=True)
    import torch

    if not torch.cuda.is_available():
        fail(
            "benchmarks/gpu.py needs a CUDA device, and torch.cuda.is_available() is False on this machine "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda})"
        )
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name()
    out: dict = {"gpu": gpu, "torch": torch.__version__}
    print(f"GPU: {gpu}, torch {torch.__version__}")

    print("1. dense CUDA labels vs culled CPU labels, every bundled real subset x every preset")
    out["label_mismatches"] = check_labels()

    import coco_train_size
    import objects365_size

    coco = work / "coco_train_size.json"
    if not coco.exists():
        coco_train_size.write(
            str(coco),
            images=coco_train_size.COCO_TRAIN_IMAGES,
            annotations=coco_train_size.COCO_TRAIN_ANNOTATIONS,
            segmentation=False,
        )
    o365 = work / "objects365_tenth.json"
    if not o365.exists():
        objects365_size.write(str(o365), objects365_size.TENTH_IMAGES)

    fr = floor_ratio(str(coco))
    out["floor"] = fr
    print(
        f"2. floor (COCO-train-size, retinanet, negative sample 100 images): {fr['pairs']:,} unavoidable pairs, "
        f"their IoU {fr['floor_seconds']:.3f} s on the GPU; dense pass {fr['pass_seconds']:.2f} s: "
        f"{fr['ratio']:.1f}x the floor"
    )

    for name, path in (("coco-train-size", coco), ("objects365-tenth", o365)):
        sec, info = time_pass(str(path))
        out[name] = {"seconds": sec, **info, "target": TARGETS[name]}
        print(
            f"3. anchor pass {name}: {sec:.2f} s (target {TARGETS[name]:.0f} s) for {info['images']:,} images, "
            f"{info['boxes']:,} boxes"
        )

    if not args.skip_train:
        for loss in ("focal", "rs"):
            ips = train_throughput(loss, work)
            out[f"train_{loss}_images_per_second"] = ips
            print(f"4. training throughput {loss}: {ips:.1f} images/s")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    if out["label_mismatches"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
