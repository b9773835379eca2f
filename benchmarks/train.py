"""Targets of issue 5 for the compact detector, measured in one run (not a timed test).

1. ``imbalance train --loss focal --data synthetic-lt`` (defaults): wall time (target <= 10 min on a
   2-core CPU) and held-out AP50 (target >= 0.5).
2. ``imbalance bench --losses ecm,ecm-focal,bags --seeds 3``: each loss against its own baseline head
   (ECM vs sigmoid CE, ECM one-stage vs focal, BAGS vs softmax CE), mean ± std over seeds and the
   paired difference to the baseline.

Usage: ``python benchmarks/train.py [--out runs/targets] [--bench-epochs 5] [--seeds 3] [--threads 1]``.
Finished runs in ``--out`` are reused (the bench command skips runs whose metrics exist), so the
script can be re-run to print the tables again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def _run(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "imbalance_cli", *args], check=True)
    return time.perf_counter() - t


def main() -> None:
    """Run (or reuse) the focal run and the ce/ecm/bags bench; print the target tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/targets")
    ap.add_argument("--bench-epochs", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--skip-focal", action="store_true")
    a = ap.parse_args()
    out = Path(a.out)
    focal = out / "focal"
    if not a.skip_focal:
        wall = None
        if not (focal / "metrics.json").exists():
            wall = _run(
                [
                    "train",
                    "--loss",
                    "focal",
                    "--data",
                    "synthetic-lt",
                    "--out",
                    str(focal),
                    "--quiet",
                    "--threads",
                    str(a.threads),
                ]
            )
        m = json.loads((focal / "metrics.json").read_text())
        t = m["timing"]
        print("Target 1: imbalance train --loss focal --data synthetic-lt (defaults)")
        print(
            f"  wall {wall:.0f} s" if wall is not None else "  wall: reused run (see timing)",
            f"| data {t['data_seconds']:.0f} s, train {t['train_seconds']:.0f} s, eval {t['eval_seconds']:.0f} s,"
            f" {t['iterations']} iterations, {m['settings']['threads']} thread(s)",
        )
        print("  " + "  ".join(f"{k} {m[k]:.3f}" for k in ("AP", "AP50", "AP75", "APr", "APc", "APf")))
        print(f"  AP50 >= 0.5: {'yes' if m['AP50'] >= 0.5 else 'NO'}")
    bench = out / "bench"
    _run(
        [
            "bench",
            "--losses",
            "ecm,ecm-focal,bags",
            "--seeds",
            str(a.seeds),
            "--epochs",
            str(a.bench_epochs),
            "--out",
            str(bench),
            "--quiet",
            "--threads",
            str(a.threads),
        ]
    )
    b = json.loads((bench / "bench.json").read_text())
    keys = ("AP", "AP50", "APr", "APc", "APf")
    print(f"\nTarget 2: {a.seeds} seeds, {a.bench_epochs} epochs (mean ± std; Δ = loss - its baseline, paired by seed)")
    for r in b["summary"]:
        print(f"  {r['loss']:<11} " + " ".join(f"{k} {r[k + '_mean']:.3f} ± {r[k + '_std']:.3f}" for k in keys))
    for v in b["versus_baseline"]:
        print(
            f"  {v['loss']:<11} vs {v['baseline']:<11} "
            + " ".join(f"Δ{k} {v[k + '_diff_mean']:+.3f} ± {v[k + '_diff_std']:.3f}" for k in keys)
        )


if __name__ == "__main__":
    main()
