"""Load time of ``imbalance_cli.load`` vs pycocotools' ``COCO()`` on a COCO-train-size file.

Each loader runs in its own fresh subprocess (so peak memory is its own), ``--repeat`` times;
the best time of each is compared.

    python benchmarks/load.py [--file /tmp/coco_train_size.json] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coco_train_size  # noqa: E402

CHILD = r"""
import json, resource, sys, time
path, which = sys.argv[1], sys.argv[2]
t = time.perf_counter()
if which == "pycocotools":
    import contextlib, io
    from pycocotools.coco import COCO
    with contextlib.redirect_stdout(io.StringIO()):
        c = COCO(path)
    n = len(c.anns)
else:
    import imbalance_cli
    n = imbalance_cli.load(path).num_boxes
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "boxes": n, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(path: Path, which: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), which], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--file", default="/tmp/coco_train_size.json")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    path = coco_train_size.write(args.file)
    print(f"file: {path} ({path.stat().st_size / 1e6:.0f} MB)")
    results = {}
    for which in ("pycocotools", "imbalance"):
        runs = [run(path, which) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["seconds"])
        results[which] = best
        print(f"{which:12s} {best['seconds']:7.2f} s  boxes {best['boxes']:,}  peak RSS {best['peak_rss_mb']:,.0f} MB")
    assert results["pycocotools"]["boxes"] == results["imbalance"]["boxes"], "box counts differ"
    ratio = results["pycocotools"]["seconds"] / results["imbalance"]["seconds"]
    print(f"speed-up over pycocotools COCO(): {ratio:.2f}x (>1 means imbalance is faster)")


if __name__ == "__main__":
    main()
