"""The cached second run's fast paths give what the plain computations give.

Each fast path is held to an independent, simple version of the same thing: ``os.stat`` path by path,
the whole-array box formula, ``Dataset.subset_images``, and ``dataset_profile`` computed from the boxes.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL

from imbalance_cli import load
from imbalance_cli.data import yolo, yolo_cache
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.stats import analyze
from imbalance_cli.stats.compare import dataset_profile
from imbalance_cli.stats.splits import report_profile

SAMPLE = REAL / "yolo-coco-mini" / "data.yaml"


def _stat_one_by_one(paths):
    out = []
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            out.append((-1, -1))
            continue
        out.append((st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else (-2, -2))
    return out


@pytest.mark.parametrize("threads_from,step", [(1, 3), (10**9, 1024)])  # threaded, then one thread
def test_stat_pairs_equal_os_stat_path_by_path(tmp_path, monkeypatch, threads_from, step):
    files = []
    for i in range(23):
        f = tmp_path / f"f{i}.txt"
        f.write_bytes(b"x" * i)
        files.append(str(f))
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to(tmp_path / "f5.txt")
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing")
    odd = [str(tmp_path / n) for n in ("dir", "fifo", "link", "dangling", "missing.txt")]
    paths = files[:7] + odd + files[7:] + ["bad\0path"]  # odd entries between plain ones, in every thread's slice
    real = yolo._stat_chunk
    monkeypatch.setattr(yolo, "STAT_THREADS_FROM", threads_from)
    monkeypatch.setattr(yolo, "_stat_threads", lambda: yolo.STAT_THREADS)  # as on an idle machine
    monkeypatch.setattr(yolo, "_stat_chunk", lambda ps: real(ps, step=step))
    got = yolo._stat_pairs(paths).tolist()
    expected = _stat_one_by_one(paths[:-1]) + [(-2, -2)]  # a NUL in a path: unreadable
    assert got == [list(e) for e in expected]


@pytest.mark.parametrize(
    "cores,load,threads", [(2, 0.3, 3), (2, 1.0, 3), (2, 1.2, 1), (2, 4.5, 1), (16, 4.5, 3), (1, 0.0, 1)]
)
def test_stat_threads_only_with_an_idle_core(monkeypatch, cores, load, threads):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert yolo._stat_threads() == threads


def test_stat_pairs_raise_a_worker_threads_error_in_the_caller(monkeypatch):
    def fail(ps):
        raise MemoryError("in a worker")

    monkeypatch.setattr(yolo, "STAT_THREADS_FROM", 1)
    monkeypatch.setattr(yolo, "_stat_threads", lambda: yolo.STAT_THREADS)
    monkeypatch.setattr(yolo, "_stat_chunk", fail)
    with pytest.raises(MemoryError, match="in a worker"):
        yolo._stat_pairs(["a", "b", "c", "d"])


@pytest.mark.parametrize("clip", [True, False])
def test_pixel_boxes_in_blocks_equal_the_whole_array_formula(monkeypatch, clip):
    rng = np.random.default_rng(3)
    n, n_img = 1000, 37
    xywh = rng.uniform(-0.01, 1.01, (n, 4)).astype(np.float32)
    xywh[:50, 2] = np.float32(1.009)  # within Ultralytics' tolerance: clipped
    xywh[50:60] = np.float32(0.5)
    img = np.sort(rng.integers(0, n_img, n))
    W = rng.integers(10, 4000, n_img).astype(np.float64)
    H = rng.integers(10, 4000, n_img).astype(np.float64)
    monkeypatch.setattr(yolo, "BOX_BLOCK", 64)
    got = yolo._pixel_boxes(xywh, img, W, H, clip=clip)
    x = xywh.astype(np.float64)
    sw, sh = W[img], H[img]
    x1, x2 = (x[:, 0] - x[:, 2] / 2) * sw, (x[:, 0] + x[:, 2] / 2) * sw
    y1, y2 = (x[:, 1] - x[:, 3] / 2) * sh, (x[:, 1] + x[:, 3] / 2) * sh
    if clip:
        x1, x2 = np.minimum(np.maximum(x1, 0), sw), np.minimum(np.maximum(x2, 0), sw)
        y1, y2 = np.minimum(np.maximum(y1, 0), sh), np.minimum(np.maximum(y2, 0), sh)
    assert got.tobytes() == np.stack([x1, y1, x2, y2], axis=1).tobytes()  # bit for bit


def _same_dataset(a: Dataset, b: Dataset):
    for f in dataclasses.fields(Dataset):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
            assert np.array_equal(np.asarray(va), np.asarray(vb), equal_nan=va.dtype.kind == "f"), f.name
            assert np.asarray(va).dtype == np.asarray(vb).dtype, f.name
        else:
            assert va == vb, f.name


def test_splits_as_views_equal_subset_images():
    ds = load(SAMPLE)
    parts = yolo.split_datasets(ds)
    assert list(parts) == ["train", "val"]
    for name, (a, b) in ds.info["splits"].items():
        ref = ds.subset_images(np.arange(a, b))
        ref.path = f"{ds.path}[{name}]"
        ref.info.pop("splits", None)
        yolo._own_split_info(ref.info, ds.info, name)  # (each split's own label lists: tested with check --split)
        _same_dataset(parts[name], ref)
        assert np.shares_memory(parts[name].boxes, ds.boxes)  # views, not copies
    # boxes not ordered by image (not what the loader makes): the copying path, same result
    order = np.random.default_rng(0).permutation(ds.num_boxes)
    shuffled = Dataset(
        image_ids=ds.image_ids,
        widths=ds.widths,
        heights=ds.heights,
        boxes=ds.boxes[order],
        box_image=ds.box_image[order],
        box_category=ds.box_category[order],
        category_ids=ds.category_ids,
        category_names=ds.category_names,
        format="yolo",
        info=dict(ds.info),
    )
    for name, sub in yolo.split_datasets(shuffled).items():
        a, b = ds.info["splits"][name]
        assert sub.num_images == b - a
        assert sorted(sub.box_category.tolist()) == sorted(parts[name].box_category.tolist())


def _profiles_equal(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k, va in a.items():
        vb = b[k]
        if k == "scale":
            assert va.keys() == vb.keys()
            for s, hist in va.items():
                for part in ("edges", "counts"):
                    x, y = np.asarray(hist[part]), np.asarray(vb[s][part])
                    assert x.dtype == y.dtype and np.array_equal(x, y), (s, part)
        elif isinstance(va, np.ndarray):
            assert va.dtype == vb.dtype and np.array_equal(va, vb), k
        else:
            assert va == vb, k


def _hand_made() -> list[Dataset]:
    """Datasets with what the split comparison must count alike: crowd and invalid boxes, centres outside the
    image and on bin edges, a box larger than its image, an image without boxes, unused classes."""
    boxes = [
        [0, 0, 10, 10],
        [-30, -30, 10, 10],
        [95, 40, 130, 60],
        [50, 50, 50, 60],
        [np.nan, 0, 1, 1],
        [0, 0, 100, 100],
        [0, 0, 250, 40],
        [200, 200, 210, 210],
        [25, 0, 25.0000001, 100],
        [10, 20, 30, 40],
    ]
    common = {
        "image_ids": [1, 2, 3],
        "widths": [100, 200, 50],
        "heights": [100, 80, 50],
        "boxes": boxes,
        "box_image": [0, 0, 0, 0, 0, 1, 1, 1, 1, 0],
        "box_category": [0, 1, 1, 2, 0, 3, 0, 1, 2, 1],
        "category_ids": [1, 2, 3, 4, 5],
        "category_names": ["a", "b", "c", "d", "e"],
    }
    crowd = [False, False, False, False, False, True, False, False, False, False]
    norm = np.clip(np.nan_to_num(np.asarray(boxes, float)) / 250.0, -0.2, 1.2)
    return [
        Dataset(**common),
        Dataset(**common, crowd=crowd),
        Dataset(**{**common, "boxes": norm, "widths": [np.nan] * 3, "heights": [np.nan] * 3}, has_image_sizes=False),
    ]


@pytest.mark.parametrize("scale_bins,location_bins", [(50, 20), (7, 3), (1, 1)])
def test_report_profile_equals_dataset_profile(scale_bins, location_bins):
    datasets = list(yolo.split_datasets(load(SAMPLE)).values()) + _hand_made()
    for ds in datasets:
        rep = analyze(ds, hist_bins=scale_bins, location_bins=location_bins).to_dict()
        _profiles_equal(report_profile(ds, rep, scale_bins), dataset_profile(ds, scale_bins, location_bins))


def test_listing_cache_keeps_the_sorted_listing(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    names = [f"{i:03d}.png" for i in np.random.default_rng(1).permutation(40)]
    for n in names:
        (root / n).write_bytes(b"")
    first = yolo._glob_images(str(root), {"png"}, cache=True)
    kept = yolo_cache.load_listing(yolo_cache.listing_path(str(root), {"png"}))
    assert first == kept[3] == sorted(str(root / n) for n in names) and Path(first[0]).name == "000.png"


@pytest.mark.parametrize(
    "size,stated,limit",
    [(0, 0, 10), (3, 3, 10), (10, 10, 10), (11, 11, 10), (11, 3, 10), (3 << 20, 5, 5 << 20), (6 << 20, 0, 5 << 20)],
)
def test_read_upto_reads_the_file_up_to_one_byte_past_the_limit(tmp_path, size, stated, limit):
    """A file that grew after it was stat-ed (``stated`` < ``size``) is read on; never more than limit + 1 bytes."""
    p = tmp_path / "f"
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    p.write_bytes(data)
    with open(p, "rb") as f:
        assert yolo._read_upto(f, limit, stated) == data[: limit + 1]


def test_a_small_list_file_is_not_read_through_a_limit_sized_buffer(tmp_path):
    import tracemalloc

    p = tmp_path / "list.txt"
    p.write_text("a.png\n")
    tracemalloc.start()
    try:
        yolo._read_text(p, yolo.MAX_LIST_BYTES, "image list")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # (f.read(limit + 1) reserved the 1 GiB limit)


def _modules_after_stats(runs: int, *extra) -> str:
    import subprocess
    import sys

    from conftest import ROOT

    code = (
        "import sys\nfrom imbalance_cli.cli import main\n"
        f"sys.argv = ['imbalance', 'stats', {str(SAMPLE)!r}, '--anchors', 'none', '-q', *{list(extra)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'pandas', 'numpy.ma') if m in sys.modules))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for _ in range(runs):  # the last run: label cache warm when runs > 1
        r = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=False
        )
        assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_cached_yolo_stats_imports_no_heavy_module():
    """``stats --anchors none --json`` on a data.yaml, label cache warm: no torch, matplotlib, pandas or numpy.ma
    (``np.unique`` imports it) in the process."""
    assert _modules_after_stats(2, "--json") == "[]"
