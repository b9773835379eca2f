"""Anchor engine benchmark on a COCO-train-size dataset (issue 3), ratios measured side by side in one run.

    python benchmarks/anchors.py [--file /tmp/coco_train_size.json] [--sample 100] [--skip-cli]

1. Builds (once, cached) the COCO-train-size file (118,287 images, ~860k boxes) by replicating the
   bundled real COCO subsets with jitter (``benchmarks/coco_train_size.py``) and loads it.
2. Baseline: the straightforward per-image method of ``tests/brute_force.py`` -- all anchors x all boxes IoU
   (torch, float32), then torchvision's ``Matcher(0.5, 0.4, allow_low_quality_matches=True)``
   rule -- timed on a random sample of images and *extrapolated* to the whole dataset
   (time per image x images; stated in the output).
3. The culled engine on the same sample (totals must be identical) and on the whole dataset.
4. The whole ``imbalance stats FILE --json`` (load + dataset stats + RetinaNet anchor stats) in a
   subprocess, wall time and peak RSS.
5. The dense engine on CUDA, when a GPU is present.

The anchor pass's own memory and time (issue 9 item 4), before/after side by side:

    python benchmarks/anchors.py --pass-memory [--images 174228] [--before-images 17422] [--ref /tmp/ref17]

builds the Objects365-v2-shaped synthetic dataset (``benchmarks/objects365_size.py``) once as
columns in an .npz, then runs ``anchor_statistics(ds, "retinanet", device="cpu")`` in fresh
subprocesses that load those columns (no JSON loader involved): this tree with ``--workers 1`` and
``2`` on ``--images``, and on ``--before-images`` this tree and the code of ``--ref`` (a checkout of
commit 17c0ee0, the unchunked engine: ``git worktree add /tmp/ref17 17c0ee0``). Each line gives the
RSS after loading the columns, the peak RSS of the parent process and of the largest worker, and the
wall time of the pass.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if "--child" not in sys.argv:  # a --child run imports the package from its PYTHONPATH (this tree or --ref)
    sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "benchmarks"))
sys.path.append(str(ROOT / "tests"))  # the brute-force reference matcher (tests/brute_force.py)


def _columns_file(n_images: int) -> Path:
    import objects365_size

    f = Path(f"/tmp/objects365_shaped_{n_images}.npz")
    if not f.exists():
        c = objects365_size.columns(n_images)
        tmp = f.with_suffix(".tmp.npz")
        np.savez(tmp, **c)
        tmp.replace(f)
    return f


def _child(args) -> None:
    """Load the columns, run the anchor pass once, print one JSON line (runs in a fresh process)."""
    import json

    import torch  # noqa: F401  (imported before the baseline RSS, as the CLI does)

    from imbalance_cli.data.dataset import Dataset
    from imbalance_cli.stats.anchors import anchor_statistics

    c = np.load(args.child)
    n = len(c["widths"])
    ds = Dataset(
        image_ids=np.arange(1, n + 1),
        widths=c["widths"],
        heights=c["heights"],
        boxes=c["boxes"],
        box_image=c["box_image"],
        box_category=c["box_category"],
        category_ids=np.arange(1, 366),
        category_names=[f"class_{i}" for i in range(1, 366)],
    )
    del c
    rss0 = _vmrss_mb()
    kw = {} if args.workers is None else {"workers": args.workers}
    t = time.perf_counter()
    s = anchor_statistics(ds, "retinanet", device="cpu", **kw)
    dt = time.perf_counter() - t
    import imbalance_cli

    print(
        json.dumps(
            {
                "package": str(Path(imbalance_cli.__file__).parent),
                "images": n,
                "boxes": ds.num_boxes,
                "rss_loaded_mb": rss0,
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "worker_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                "seconds": dt,
                "foreground": s["foreground"],
                "ignored": s["ignored"],
                "negative_zero": s["negative_iou"]["zero"],
            }
        )
    )


def _vmrss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pass_memory(args) -> None:
    """Before/after peak RSS and time of the anchor pass on the Objects365-shaped columns."""
    import json

    runs = [("after", ROOT, args.before_images, 1), ("after", ROOT, args.before_images, 2)]
    if args.ref:
        runs.insert(0, ("before (17c0ee0)", Path(args.ref), args.before_images, None))
    if args.images:
        runs += [("after", ROOT, args.images, 2)]
    results = {}
    for label, tree, n, workers in runs:
        f = _columns_file(n)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(f)]
        if workers is not None:
            cmd += ["--workers", str(workers)]
        env = dict(os.environ, PYTHONPATH=str(tree))
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        if proc.returncode != 0:
            print(f"{label} {n:,} images: FAILED {proc.stderr.strip()[-400:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results[(label, n, workers)] = r
        if not r["package"].startswith(str(tree)):
            print(f"{label}: imported {r['package']}, not {tree}: run it with a clean PYTHONPATH")
            continue
        print(
            f"{label:17s} {n:>8,} images {r['boxes']:>10,} boxes workers {workers or '-'}: pass {r['seconds']:7.1f} s, "
            f"RSS loaded {r['rss_loaded_mb']:6.0f} MB, peak {r['peak_mb']:6.0f} MB (pass adds "
            f"{r['peak_mb'] - r['rss_loaded_mb']:5.0f} MB), worker peak {r['worker_peak_mb']:5.0f} MB; "
            f"fg {r['foreground']:,} ign {r['ignored']:,}",
            flush=True,
        )
    b = results.get(("before (17c0ee0)", args.before_images, None))
    a = results.get(("after", args.before_images, 2))
    if a and b:
        same = all(a[k] == b[k] for k in ("foreground", "ignored", "negative_zero"))
        print(
            f"RATIO on {args.before_images:,} images: pass memory over the loaded columns before/after "
            f"{(b['peak_mb'] - b['rss_loaded_mb']) / max(1, a['peak_mb'] - a['rss_loaded_mb']):.1f}x, time "
            f"before/after {b['seconds'] / a['seconds']:.2f}x; totals {'IDENTICAL' if same else 'DIFFERENT'}"
        )


def _parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pass-memory", action="store_true", help="before/after memory of the anchor pass")
    ap.add_argument("--images", type=int, default=174_228, help="--pass-memory: images of the large run (0: skip it)")
    ap.add_argument("--before-images", type=int, default=17_422, help="--pass-memory: images of the side-by-side run")
    ap.add_argument("--ref", default=None, help="--pass-memory: checkout of the code before (17c0ee0)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--file", default="/tmp/coco_train_size.json")
    ap.add_argument("--sample", type=int, default=100, help="images timed with the baseline")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-cli", action="store_true", help="skip the whole `imbalance stats` run")
    return ap.parse_args()


def _sample_vs_baseline(args, p, sb, bimg, ph, pw, n_img):
    """Time the baseline and the culled engine on a random sample of images; check their totals agree.

    Returns the baseline's time on the sample and extrapolated to the dataset, and the culled engine's on the sample.
    """
    import torch
    from brute_force import brute_force_match

    from imbalance_cli.anchors.culled import culled_match_dataset
    from imbalance_cli.anchors.generator import grid_anchors, num_anchors

    # ---- sample: baseline vs culled, identical totals
    rng = np.random.default_rng(args.seed)
    sample = np.sort(rng.choice(n_img, size=min(args.sample, n_img), replace=False))
    start = np.searchsorted(bimg, np.arange(n_img + 1))
    base = {"fg": 0, "ign": 0, "bg": 0}
    t = time.perf_counter()
    for im in sample:
        anchors, _ = grid_anchors(p, int(ph[im]), int(pw[im]))
        b = torch.from_numpy(sb[start[im] : start[im + 1]])
        if len(b) == 0:
            base["bg"] += len(anchors)
            continue
        m, _, _ = brute_force_match(anchors, b)
        base["fg"] += int((m >= 0).sum())
        base["ign"] += int((m == -2).sum())
        base["bg"] += int((m == -1).sum())
    t_base_sample = time.perf_counter() - t
    per_image = t_base_sample / len(sample)
    t_base_full = per_image * n_img

    sel = np.concatenate([np.arange(start[im], start[im + 1]) for im in sample])
    remap = np.full(n_img, -1)
    remap[sample] = np.arange(len(sample))
    t = time.perf_counter()
    r = culled_match_dataset(p, sb[sel], remap[bimg[sel]], ph[sample], pw[sample])
    t_culled_sample = time.perf_counter() - t
    fg = len(r.pos_box)
    ign = int(r.ignored_per_image.sum())
    bg = int(num_anchors(p, ph[sample], pw[sample]).sum()) - fg - ign
    same = (fg, ign, bg) == (base["fg"], base["ign"], base["bg"])
    print(
        f"sample of {len(sample)} images: baseline {t_base_sample:.2f} s ({1000 * per_image:.1f} ms/image), "
        f"culled {t_culled_sample:.3f} s; totals fg/ign/bg baseline {base['fg']}/{base['ign']}/{base['bg']} "
        f"culled {fg}/{ign}/{bg} -> {'IDENTICAL' if same else 'DIFFERENT'}"
    )
    return t_base_sample, t_base_full, t_culled_sample


def _cuda_dense(p, sb, bimg, ph, pw, r) -> None:
    """Time the dense engine on CUDA, when a GPU is present, and compare it with the culled result ``r``."""
    import torch

    from imbalance_cli.anchors.dense import dense_match_dataset

    # ---- CUDA dense engine
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        t = time.perf_counter()
        d, _, _ = dense_match_dataset(p, sb, bimg, ph, pw, device="cuda")
        torch.cuda.synchronize()
        t_cuda = time.perf_counter() - t
        same = len(d.pos_box) == len(r.pos_box) and np.array_equal(d.ignored_per_image, r.ignored_per_image)
        print(
            f"dense engine on CUDA ({torch.cuda.get_device_name()}): {t_cuda:.1f} s, {len(d.pos_box):,} positives "
            f"({'identical' if same else 'DIFFERENT'})"
        )
    else:
        print("no CUDA device: dense GPU engine not timed")


def _cli_run(path) -> None:
    """Time the whole ``imbalance stats`` in a subprocess (wall time and peak RSS)."""
    cmd = [sys.executable, "-m", "imbalance_cli", "stats", str(path), "--json", "--quiet", "--device", "cpu"]
    t = time.perf_counter()
    proc = subprocess.run(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    t_cli = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
    print(
        f"`imbalance stats` (load + dataset stats + RetinaNet anchor stats, CPU): {t_cli:.1f} s "
        f"(target <= 60 s), peak RSS {rss:.0f} MB, {status}"
    )


def main() -> None:
    args = _parse_args()
    if args.child:
        return _child(args)
    if args.pass_memory:
        return pass_memory(args)

    import coco_train_size
    import torch

    import imbalance_cli
    from imbalance_cli.anchors.culled import culled_match_dataset
    from imbalance_cli.anchors.generator import num_anchors, padded_sizes, scale_boxes
    from imbalance_cli.anchors.presets import get_preset

    print(f"CPU threads: torch {torch.get_num_threads()}, os.cpu_count {os.cpu_count()}")
    t = time.perf_counter()
    path = coco_train_size.write(args.file)
    print(f"dataset file {path} ({path.stat().st_size / 1e6:.0f} MB), ready in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    ds = imbalance_cli.load(str(path))
    print(f"load: {time.perf_counter() - t:.1f} s -> {ds}")

    p = get_preset("retinanet")
    valid = ds.valid_mask()
    order, _ = ds.image_offsets(valid)
    bimg = ds.box_image[order]
    H, W = ds.heights, ds.widths
    ph, pw = padded_sizes(H, W, p)
    sb = scale_boxes(ds.boxes[order], H[bimg], W[bimg], p)
    n_img = ds.num_images
    print(f"valid boxes {len(order):,}, anchors {int(num_anchors(p, ph, pw).sum()):,}")

    t_base_sample, t_base_full, t_culled_sample = _sample_vs_baseline(args, p, sb, bimg, ph, pw, n_img)

    # ---- culled on the whole dataset
    t = time.perf_counter()
    r = culled_match_dataset(p, sb, bimg, ph, pw)
    t_culled = time.perf_counter() - t
    print(f"culled engine, whole dataset ({n_img:,} images): {t_culled:.1f} s, {len(r.pos_box):,} positives")
    print(f"baseline extrapolated from the sample: {t_base_full:.0f} s ({t_base_full / 60:.1f} min)")
    print(
        f"RATIO culled vs baseline (whole dataset, baseline extrapolated): {t_base_full / t_culled:.0f}x "
        f"(target >= 50x); on the sample alone: {t_base_sample / t_culled_sample:.0f}x"
    )
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")

    _cuda_dense(p, sb, bimg, ph, pw, r)

    if not args.skip_cli:
        _cli_run(path)


if __name__ == "__main__":
    main()
