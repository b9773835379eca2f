"""Loading benchmark: pycocotools ``COCO()`` vs ``imbalance`` side by side, in fresh subprocesses.

For each file it prints wall time and peak RSS of:

* ``COCO()``: pycocotools loading the JSON and building its indexes (JSON files only);
* ``load``: ``imbalance_cli.load(path, cache=False)`` (the streaming columnar loader);
* ``stats``: ``python -m imbalance_cli stats FILE --anchors none --json --no-cache`` (loading + every
  dataset statistic), the issue's target command;
* ``stats, cached``: the same command run twice with the cache on; the second run is timed, and then
  ``load()`` alone from the cache;
* with ``--default-stats``: the default ``imbalance stats FILE --json --no-cache`` (RetinaNet anchors).

and the speed-up of ``stats`` over ``COCO()``. Every command runs in its own process, one at a
time (peak RSS from ``wait4``: the largest of the command's processes, workers included; forked
workers count the parent's pages they share). ``--repeat N`` runs ``COCO()`` and ``stats`` N times,
alternating, and takes the ratio of the medians (the machine is shared; single runs vary by 20%).
The package's bytecode is compiled first (``compileall``), as an installed package has it and as
pycocotools' is: with ``PYTHONDONTWRITEBYTECODE`` set and no ``__pycache__``, every run would
compile the package's sources again (~0.3 s).

    python benchmarks/load.py --kind objects365 --scale 0.1 [--workers 2]
    python benchmarks/load.py --kind objects365 --scale 0.1 --repeat 3 --default-stats --base ../base  # before/after
    python benchmarks/load.py --kind coco-train --kind lvis --kind openimages --scale 1
    python benchmarks/load.py --kind coco-train-polygons --scale 1  # every field of the real file, polygons too

Files are generated under ``--data`` (default /work/bench-data, outside the repository) and reused:
Objects365 by ``benchmarks/objects365_size.py`` and COCO-train size by ``benchmarks/coco_train_size.py``
(every field the real files carry, with their separators), LVIS and Open Images by
``benchmarks/synthetic_sizes.py``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# No numpy here: generators run in subprocesses so this process stays small (a child's ru_maxrss on Linux
# starts from its parent's peak at fork).

COCO_CHILD = r"""
import contextlib, io, sys
from pycocotools.coco import COCO
with contextlib.redirect_stdout(io.StringIO()):
    c = COCO(sys.argv[1])
print(len(c.anns))
"""
LOAD_CHILD = r"""
import sys, imbalance_cli
print(imbalance_cli.load(sys.argv[1], workers=int(sys.argv[2]), cache=sys.argv[3] == "cache").num_boxes)
"""


def run_one(cmd: list[str], env=None, cwd=None) -> dict:
    """Run ``cmd`` alone (in ``cwd``); wall seconds, its own peak RSS (MiB, from wait4) and its last stdout line.

    ``python -m`` and ``python -c`` put the working directory first on ``sys.path``, ahead of ``PYTHONPATH``:
    each tree's commands run in that tree, or a run from the repository root would time this tree's package
    under the name of ``--base``.
    """
    t = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd if cwd is not None else ROOT)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        dt = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        text = out.read().decode()
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {err.read().decode()[-2000:]}")
    return {
        "seconds": dt,
        "rss_mib": usage.ru_maxrss / 1024,
        "out": text.strip().splitlines()[-1] if text.strip() else "",
    }


def _median(runs: list[dict]) -> dict:
    """The run with the median wall time (the lower middle one for an even count)."""
    return sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2]


def make(kind: str, scale: float, data: Path) -> Path:
    """Generate (or reuse) the benchmark file of ``kind`` at ``scale``."""
    data.mkdir(parents=True, exist_ok=True)
    tag = f"{scale:g}".replace(".", "p")
    if kind in ("coco-train", "coco-train-polygons"):  # every field of instances_train2017.json, COCO's separators
        polygons = kind == "coco-train-polygons"  # coco-train leaves the polygons out: the loader's hardest case
        p = data / (f"coco_train_fields_{tag}.json" if polygons else f"coco_train_fields_noseg_{tag}.json")
        if not p.exists():
            cmd = [sys.executable, str(HERE / "coco_train_size.py"), str(p), "--scale", str(scale)]
            subprocess.run(cmd + ([] if polygons else ["--no-segmentation"]), check=True)
        return p
    if kind == "objects365":  # every field of the Objects365 v2 train file, its separators
        p = data / f"objects365_fields_{tag}.json"
        if not p.exists():
            subprocess.run(
                [sys.executable, str(HERE / "objects365_size.py"), str(p), "--scale", str(scale)], check=True
            )
        return p
    if kind == "openimages":
        p = data / f"openimages_{tag}" / "train-annotations-bbox.csv"
        if not p.exists():
            subprocess.run(
                [sys.executable, str(HERE / "synthetic_sizes.py"), "openimages", str(p), "--scale", str(scale)],
                check=True,
            )
        return p
    p = data / f"{kind}_{tag}.json"
    if not p.exists():
        subprocess.run(
            [sys.executable, str(HERE / "synthetic_sizes.py"), kind, str(p), "--scale", str(scale)], check=True
        )
    return p


def _parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--kind", action="append", choices=["objects365", "coco-train", "coco-train-polygons", "lvis", "openimages"]
    )
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--data", type=Path, default=Path("/work/bench-data"))
    ap.add_argument("--skip-coco", action="store_true", help="Do not run pycocotools (e.g. at full size).")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="Only `stats --anchors none` (cold, writing the cache) and "
        "then load() from the cache: two passes instead of five, for full-size files.",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="Runs of COCO() and of `stats --anchors none --no-cache` (alternating); their medians are compared.",
    )
    ap.add_argument(
        "--default-stats",
        action="store_true",
        help="Also run the default `imbalance stats FILE` "
        "(RetinaNet anchors, no cache) and report its time and peak RSS.",
    )
    ap.add_argument(
        "--base",
        type=Path,
        default=None,
        help="A checkout of the previous commit (e.g. `git worktree "
        "add ../base main`): its `stats` commands run alternating with this tree's, --repeat times each, "
        "and the medians are compared (before / after side by side).",
    )
    return ap.parse_args(argv)


def _default_stats(args, stats, trees) -> None:
    """``--default-stats``: the default ``imbalance stats FILE`` (RetinaNet anchors), in
    each tree, ``--repeat`` times."""
    full = [a for a in stats if a not in ("--anchors", "none")]
    druns = {tag: [] for tag, _, _ in trees}
    for _ in range(max(1, args.repeat)):
        for tag, tenv, tree in trees:
            druns[tag].append(run_one(full + ["--no-cache"], tenv, tree))
    for tag, rs in druns.items():
        r = _median(rs)
        print(
            f"{tag + 'imbalance stats (RetinaNet anchors)':42s} {r['seconds']:8.2f} s  peak RSS "
            f"{r['rss_mib']:8,.0f} MiB  (runs " + ", ".join(f"{x['seconds']:.2f}" for x in rs) + ")",
            flush=True,
        )
    if args.base is not None:
        print(
            f"speed-up of the default `stats` over before (medians): "
            f"{_median(druns['before: '])['seconds'] / _median(druns[''])['seconds']:.2f}x",
            flush=True,
        )


def _bench_kind(args, kind, py, env, trees, workers) -> None:
    """Generate (or reuse) the file of ``kind`` and time each command on it; print the table and the speed-ups."""
    path = make(kind, args.scale, args.data).resolve()
    size = path.stat().st_size
    print(f"\n== {kind} x{args.scale:g}: {path} ({size / 1e6:,.0f} MB)")
    rows = {}
    stats = [
        py,
        "-m",
        "imbalance_cli",
        "stats",
        str(path),
        "--anchors",
        "none",
        "--json",
        "--quiet",
        "--workers",
        str(workers),
    ]
    if kind != "openimages" and not args.skip_coco:
        runs = {"coco": [], "stats": [], "before: stats": []}
        for _ in range(max(1, args.repeat)):
            runs["coco"].append(run_one([py, "-c", COCO_CHILD, str(path)], env))
            for tag, tenv, tree in trees:
                runs[tag + "stats"].append(run_one(stats + ["--no-cache"], tenv, tree))
        rows["pycocotools COCO()"] = _median(runs["coco"])
        if args.base is not None:
            rows["before: stats --anchors none"] = _median(runs["before: stats"])
        if args.repeat > 1:
            for name in runs:
                if runs[name]:
                    print(f"{name} runs: " + ", ".join(f"{r['seconds']:.2f}" for r in runs[name]) + " s")
    if args.default_stats:
        _default_stats(args, stats, trees)
    if args.quick:
        with tempfile.TemporaryDirectory(dir=args.data) as cache:
            cenv = dict(env, IMBALANCE_CACHE=cache)
            rows["imbalance stats --anchors none"] = run_one(stats, cenv)
            rows["  load(), cached"] = run_one([py, "-c", LOAD_CHILD, str(path), str(workers), "cache"], cenv)
        for name, r in rows.items():
            print(f"{name:34s} {r['seconds']:8.2f} s  peak RSS {r['rss_mib']:8,.0f} MiB", flush=True)
        return
    rows["imbalance load"] = run_one([py, "-c", LOAD_CHILD, str(path), str(workers), "no-cache"], env)
    rows["imbalance stats --anchors none"] = (
        _median(runs["stats"]) if "pycocotools COCO()" in rows else run_one(stats + ["--no-cache"], env)
    )
    with tempfile.TemporaryDirectory(dir=args.data) as cache:
        cenv = dict(env, IMBALANCE_CACHE=cache)
        rows["  first run, cache on"] = run_one(stats, cenv)
        rows["  second run, cached"] = run_one(stats, cenv)
        rows["  load(), cached"] = run_one([py, "-c", LOAD_CHILD, str(path), str(workers), "cache"], cenv)
    for name, r in rows.items():
        print(f"{name:34s} {r['seconds']:8.2f} s  peak RSS {r['rss_mib']:8,.0f} MiB")
    if "pycocotools COCO()" in rows:
        c = rows["pycocotools COCO()"]["seconds"]
        print(
            f"speed-up of `stats --anchors none` over COCO(): "
            f"{c / rows['imbalance stats --anchors none']['seconds']:.2f}x; "
            f"of load(): {c / rows['imbalance load']['seconds']:.2f}x"
            + (
                f"; before: {c / rows['before: stats --anchors none']['seconds']:.2f}x"
                if "before: stats --anchors none" in rows
                else ""
            )
        )


def main(argv=None) -> None:
    args = _parse_args(argv)
    workers = args.workers or len(os.sched_getaffinity(0))
    py = sys.executable
    env = dict(os.environ)
    root = str(HERE.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    subprocess.run([py, "-m", "compileall", "-q", str(HERE.parent / "imbalance_cli")], check=True)
    trees = [("", env, ROOT)]
    if args.base is not None:
        benv = dict(os.environ)
        benv["PYTHONPATH"] = str(args.base) + (
            os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""
        )
        subprocess.run([py, "-m", "compileall", "-q", str(args.base / "imbalance_cli")], check=True)
        trees.append(("before: ", benv, args.base.resolve()))
    print(
        f"python {sys.version.split()[0]}, {len(os.sched_getaffinity(0))} cores, workers={workers}; "
        f"load average {os.getloadavg()[0]:.1f} at start; imbalance_cli bytecode compiled"
    )
    for kind in args.kind or ["objects365"]:
        _bench_kind(args, kind, py, env, trees, workers)
    print(f"\nload average {os.getloadavg()[0]:.1f} at end (the machine is shared: compare ratios, not seconds)")


if __name__ == "__main__":
    main()
