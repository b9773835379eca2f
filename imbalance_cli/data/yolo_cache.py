"""The YOLO label cache: a second run on an unchanged dataset reads no label file and opens no image.

One ``.npz`` file per split source in the columnar cache directory
(:func:`imbalance_cli.data.cache.cache_dir`), named by a digest of the source (data.yaml and split,
or folder), the trainer version whose rules made it and the number of classes (the class-range
check depends on it). It holds, per image in listing order: the image path, the image's and the
label file's byte size and ``st_mtime_ns`` (``-1`` for a missing label file), the verdicts
(:mod:`imbalance_cli.data.yolo_images`, :mod:`imbalance_cli.data.yolo_rules`) and the kept label rows.
An image or label file whose size or mtime differs is verified or parsed again, alone; the others
come from the cache. Like Ultralytics' ``labels.cache`` the key is size and mtime, so a file
rewritten to the same size within the file system's timestamp resolution is not noticed.

The file is written to a temporary name and renamed (a reader sees a whole file or none); NumPy's
zip members carry CRC-32s, checked on read, and any damage or unexpected content discards the file
(it is rebuilt). Never pickled objects: strings are UTF-8 blobs with offsets.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

from imbalance_cli.data import cache as _cache
from imbalance_cli.fileio import replaced_atomically

#: Bump when the stored layout or the rules change.
VERSION = 2
#: Arrays every cache file holds, with their dtypes.
FIELDS = {
    "img_st": np.int64,
    "lab_st": np.int64,
    "wh": np.int64,
    "lab_kind": np.int8,
    "row_off": np.int64,
    "cls": np.int64,
    "xywhn": np.float32,
    "lines": np.int64,
    "dup_off": np.int64,
    "dups": np.int64,
    "segments": np.int64,
    "stem_id": np.int64,
    "stamp": np.int64,
}


def cache_path(source: str, version: int, nc: int | None) -> Path:
    """Where the cache of one split source lives."""
    key = f"v{VERSION}|yolo{version}|nc{nc}|{os.path.abspath(source)}"
    return _cache.cache_dir() / f"yolo-labels-{hashlib.blake2b(key.encode(), digest_size=16).hexdigest()}.npz"


def join_strings(items: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 blob of NUL-separated strings (none may hold a NUL) and ``[count, bytes]`` for checking it."""
    raw = "\0".join(items).encode("utf-8", "surrogateescape")
    return np.frombuffer(raw, np.uint8), np.array([len(items), len(raw)], np.int64)


def split_strings(blob: np.ndarray, off: np.ndarray) -> list[str]:
    """Inverse of :func:`join_strings` (ValueError when the blob does not hold the stated count)."""
    n = int(off[0])
    if n == 0:
        return []
    out = blob.tobytes().decode("utf-8", "surrogateescape").split("\0")
    if len(out) != n:
        raise ValueError("string count")
    return out


def load(path: Path, n_expected: int | None = None) -> dict | None:
    """The stored table, or None when absent, damaged or of another layout (then it is rebuilt)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            t = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    try:
        if int(t["stamp"][0]) != VERSION:
            return None
        for k, dt in FIELDS.items():
            if t[k].dtype != dt:
                return None
        n = len(t["img_st"])
        ok = (
            t["img_st"].shape == (n, 2)
            and t["lab_st"].shape == (n, 2)
            and t["wh"].shape == (n, 2)
            and len(t["lab_kind"]) == n
            and len(t["row_off"]) == n + 1
            and len(t["dup_off"]) == n + 1
            and len(t["segments"]) == n
            and t["xywhn"].shape == (len(t["cls"]), 4)
            and len(t["lines"]) == len(t["cls"])
            and int(t["row_off"][-1]) == len(t["cls"])
            and t["dups"].shape == (int(t["dup_off"][-1]), 2)
        )
        for name in ("paths", "labels", "img_msg", "lab_msg", "fatal"):
            if t[name + "_off"].tolist() != [n, len(t[name + "_blob"])] and not (
                n == 0 and len(t[name + "_blob"]) == 0
            ):
                ok = False
        ok = ok and t["stem_id"].shape == (n,)
        if not ok or (np.diff(t["row_off"]) < 0).any() or (np.diff(t["dup_off"]) < 0).any():
            return None
    except (KeyError, IndexError, ValueError, TypeError):
        return None
    return t


def save(path: Path, table: dict) -> None:
    """Write ``table`` atomically; an unwritable cache directory only costs the next run the reading."""
    try:
        with replaced_atomically(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, stamp=np.array([VERSION], np.int64), **table)
    except OSError as e:  # an unwritable cache only costs the next run the reading: one warning
        _cache.warn_unwritable(path.parent, e)


# ------------------------------------------------------------------------------------------------ folder listings
def listing_path(top: str, suffixes) -> Path:
    """Where the listing of one image folder is kept."""
    key = f"v{VERSION}|{os.path.abspath(top)}|{','.join(sorted(suffixes))}"
    return _cache.cache_dir() / f"yolo-listing-{hashlib.blake2b(key.encode(), digest_size=16).hexdigest()}.npz"


def load_listing(path: Path):
    """``(folders, their mtime_ns, time written ns, files)`` of a kept listing, or None."""
    try:
        with np.load(path, allow_pickle=False) as z:
            t = {k: z[k] for k in z.files}
        if int(t["stamp"][0]) != VERSION:
            return None
        dirs = split_strings(t["dirs_blob"], t["dirs_off"])
        files = split_strings(t["files_blob"], t["files_off"])
        if len(t["mtimes"]) != len(dirs) or t["mtimes"].dtype != np.int64:
            return None
        return dirs, t["mtimes"], int(t["written"][0]), files
    except (OSError, ValueError, KeyError, EOFError, IndexError, UnicodeDecodeError, zipfile.BadZipFile):
        return None


def save_listing(path: Path, dirs: list[str], mtimes: np.ndarray, written_ns: int, files: list[str]) -> None:
    """Keep a folder listing (see :func:`imbalance_cli.data.yolo._glob_images`)."""
    db, do = join_strings(dirs)
    fb, fo = join_strings(files)
    save(
        path,
        {
            "dirs_blob": db,
            "dirs_off": do,
            "files_blob": fb,
            "files_off": fo,
            "mtimes": np.asarray(mtimes, np.int64),
            "written": np.array([written_ns], np.int64),
        },
    )
