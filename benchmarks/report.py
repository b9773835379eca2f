"""The report speed target (issue 21): the bundled sample's full report in under 10 s on a 2-core machine.

Times the README's main job, ``imbalance stats examples/data/coco-mini_instances_val2017.json.gz --out DIR``
(and ``--json`` alone), for two versions of the package side by side in one run: ``--before REV`` (a git
revision, exported with ``git archive`` into a temporary folder) and the working tree. Runs alternate (before,
after, before, after, ...), each a fresh process with its own PYTHONPATH, bytecode compiled first (as an install
has it), the columnar cache off (``--no-cache``: both parse the file); wall time and the CPU time of the process
and its children (``wait4``) are reported as medians, with the ratio and the machine's load average, since the
machine is shared.

Usage::

    python benchmarks/report.py --before 796583d --repeat 5
    python benchmarks/report.py --before main --repeat 3 --json-too
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

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "data" / "coco-mini_instances_val2017.json.gz"
TARGET_S = 10.0


def export(rev: str, dest: Path) -> str:
    """Export revision ``rev`` of this repository into ``dest``; return its full commit id."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", rev], check=True, capture_output=True, text=True
    ).stdout.strip()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return commit


def run(tree: Path, args: list[str], out: Path | None) -> tuple[float, float]:
    """``(wall seconds, CPU seconds of the process and its children)`` of one ``imbalance`` run from ``tree``."""
    if out is not None and out.exists():
        shutil.rmtree(out)
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "imbalance_cli", "stats", str(SAMPLE), "--no-cache", "-q", *args]
    if out is not None:
        cmd += ["--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(tree))
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"run failed in {tree}: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="main", help="git revision to compare with (default: main)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each version, alternating (default 3)")
    ap.add_argument("--json-too", action="store_true", help="also time `--json` alone (no report directory)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="imbalance-report-bench-") as tmp:
        tmp = Path(tmp)
        before = tmp / "before"
        before.mkdir()
        commit = export(a.before, before)
        for tree in (before, ROOT):
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "imbalance_cli")], check=True)
        cases = [("full report (--out DIR)", lambda t: run(t, [], tmp / "out"))]
        if a.json_too:
            cases.append(("--json only", lambda t: run(t, ["--json"], None)))
        load0 = os.getloadavg()
        print(
            f"before: {a.before} = {commit[:10]}; after: working tree {ROOT}; {a.repeat} runs each, alternating; "
            f"{os.cpu_count()} cores; load average at start {load0[0]:.2f}"
        )
        for name, fn in cases:
            res: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
            fn(ROOT)  # one untimed run each: file-system caches warm for both
            fn(before)
            for _ in range(a.repeat):
                res["before"].append(fn(before))
                res["after"].append(fn(ROOT))
            med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in res.items()}
            print(f"\n{name}:")
            for k in ("before", "after"):
                walls = ", ".join(f"{w:.2f}" for w, _ in res[k])
                print(f"  {k:6s} median wall {med[k][0]:6.2f} s, CPU {med[k][1]:6.2f} s   (runs: {walls})")
            print(
                f"  after / before: wall {med['after'][0] / med['before'][0]:.2f}x "
                f"({med['before'][0] / med['after'][0]:.2f}x faster), CPU {med['after'][1] / med['before'][1]:.2f}x"
            )
            if name.startswith("full"):
                met = "met" if med["after"][0] < TARGET_S else "NOT met"
                print(
                    f"  target: full report under {TARGET_S:.0f} s on this machine: {met} "
                    f"(median {med['after'][0]:.2f} s)"
                )
        print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
