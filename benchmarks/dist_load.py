"""Under torchrun: every rank loads the annotation file itself, or rank 0 loads and broadcasts it?

Run it with torchrun (gloo on the CPU); both ways are timed side by side, alternating, in one run,
from a barrier until every rank holds the columnar :class:`Dataset`::

    IMBALANCE_CACHE=/tmp/bench-cache torchrun --nproc-per-node 2 --master-port 29531 benchmarks/dist_load.py FILE

Prints, on rank 0, the wall time of each way and their ratio, parsing the file (``cache=False``) and
reading the columnar cache (filled once by rank 0 first). ``broadcast`` pickles the Dataset's
numpy arrays once on rank 0 (``torch.distributed.broadcast_object_list``) and unpickles them on
every other rank.
"""

from __future__ import annotations

import argparse
import time

import torch.distributed as dist

from imbalance_cli import dist as idist
from imbalance_cli.data import load


def _each(path: str, cache: bool):
    with idist.local_loads():  # this rank alone, no collective
        return load(path, cache=cache)


def _broadcast(path: str, cache: bool):
    ds = _each(path, cache) if dist.get_rank() == 0 else None
    return idist.broadcast_object(ds)


def main() -> None:
    """Time both ways, alternating, and print the medians on rank 0."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    idist.init()
    ways = [
        (f"{name} {c}", fn, c == "cache")
        for c in ("no-cache", "cache")
        for name, fn in (("each", _each), ("broadcast", _broadcast))
    ]
    times: dict[str, list[float]] = {w[0]: [] for w in ways}
    sizes = None
    if dist.get_rank() == 0:
        _each(args.file, True)  # fill the columnar cache for the "cache" rows
    for _ in range(args.repeat):
        for name, fn, cache in ways:
            dist.barrier()
            t0 = time.perf_counter()
            ds = fn(args.file, cache)
            dist.barrier()
            times[name].append(time.perf_counter() - t0)
            sizes = (ds.num_images, len(ds.boxes))
            del ds
    if dist.get_rank() == 0:
        med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        print(f"{args.file}: {sizes[0]:,} images, {sizes[1]:,} boxes, {dist.get_world_size()} ranks (gloo)")
        for k, v in times.items():
            print(f"  {k:18s}: " + ", ".join(f"{x:.2f} s" for x in v) + f"  (median {med[k]:.2f} s)")
        for c in ("no-cache", "cache"):
            print(f"  {c}: broadcast / each = {med['broadcast ' + c] / med['each ' + c]:.2f}")
    idist.finish()


if __name__ == "__main__":
    main()
