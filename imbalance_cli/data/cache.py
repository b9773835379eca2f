"""A columnar cache of loaded datasets: the second load of the same file reads a few ``.npy`` files.

Where: ``$IMBALANCE_CACHE``, else the platform's user cache directory (``$XDG_CACHE_HOME/imbalance``,
``~/.cache/imbalance`` on Linux, ``~/Library/Caches/imbalance`` on macOS, ``%LOCALAPPDATA%\\imbalance``
on Windows).

Key: a BLAKE2b digest of the file's size, modification time (ns), the bytes read from it for the
key (the first and last MiB and 16 MiB-sized samples spread over the file, so a key costs at
most ~18 MiB of reading whatever the file size), the loading options that change the result
(format, Open Images side files, keyed the same way) and :data:`VERSION`. Any change to the file
gives a new key; an old entry is then simply not found.

Entry: a directory ``<key>/`` holding ``meta.json`` (scalars, string and dtype information, and the
CRC-32 and length of every column file) and one ``.npy`` per numeric column; string columns are
stored as one UTF-8 blob plus int64 offsets (never pickled objects). It is written into a
temporary sibling directory and renamed into place, so a reader sees a complete entry or none.
On read every column is checked against its length and CRC; anything unexpected (missing file,
bad header, wrong shape, CRC mismatch, unparsable meta) discards the entry, which is rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import json
import mmap
import os
import shutil
import sys
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np

from imbalance_cli.data.dataset import Dataset, LazyStrings, Ragged
from imbalance_cli.fileio import OutputWarning, os_reason

#: Bump when the Dataset layout or the loaders' semantics change.
VERSION = 2
_SAMPLE = 1024 * 1024
_NUMERIC = ("image_ids", "widths", "heights", "boxes", "box_image", "box_category", "category_ids", "box_ids",
            "crowd", "area", "difficult", "integer_boxes", "category_image_count", "category_instance_count")
_STRINGS = ("category_names", "file_names", "supercategory", "frequency", "synset", "category_codes")
_RAGGED = ("neg_category_ids", "not_exhaustive_category_ids")


def cache_dir() -> Path:
    """The cache root (see module docstring)."""
    env = os.environ.get("IMBALANCE_CACHE")
    if env:
        return Path(env)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "imbalance"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home())) / "imbalance"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "imbalance"


def file_fingerprint(path: str | os.PathLike) -> str:
    """Size, mtime and sampled bytes of a file, digested (see module docstring)."""
    st = os.stat(path)
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    with open(path, "rb") as f:
        size = st.st_size
        offsets = {0, max(0, size - _SAMPLE)}
        offsets.update((size * k) // 17 for k in range(1, 17))
        for off in sorted(offsets):
            f.seek(off)
            h.update(f.read(_SAMPLE))
    return h.hexdigest()


def key_for(path, options: dict) -> str:
    """The cache key of loading ``path`` with ``options`` (side files given by path are fingerprinted too)."""
    h = hashlib.blake2b(digest_size=20)
    h.update(f"v{VERSION}".encode())
    h.update(file_fingerprint(path).encode())
    for name in sorted(options):
        value = options[name]
        if isinstance(value, os.PathLike):
            value = file_fingerprint(value)
        h.update(f"|{name}={value}".encode())
    return h.hexdigest()


def load(key: str) -> Dataset | None:
    """The cached dataset for ``key``, or None (a damaged entry is removed)."""
    try:
        entry = cache_dir() / key
    except (RuntimeError, KeyError):  # no home directory to put the default cache in
        return None
    if not entry.is_dir():
        return None
    try:
        return _read(entry)
    except Exception:  # noqa: BLE001 - anything wrong with an entry means: not trusted, rebuilt
        shutil.rmtree(entry, ignore_errors=True)
        return None


def warn_unwritable(root: Path | str, exc: OSError) -> None:
    """Say in one line (an :class:`~imbalance_cli.fileio.OutputWarning`) that the cache at ``root`` was skipped."""
    warnings.warn(f"the load cache {root} cannot be written ({os_reason(exc)}); this load is not cached: free "
                  "space or set IMBALANCE_CACHE to a writable folder (or use --no-cache)", OutputWarning, stacklevel=3)


def save(key: str, ds: Dataset) -> Path | None:
    """Write ``ds`` under ``key`` atomically; returns the entry, or None if the cache is not writable.

    A cache that cannot be written (read-only, full, a file where the folder should be, no home
    directory) is skipped with one warning (:func:`warn_unwritable`), never fatal; a partly written
    entry is removed.
    """
    try:
        root = cache_dir()
    except (RuntimeError, KeyError):  # no home directory to put the default cache in
        return None
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-", dir=root))
    except OSError as e:
        warn_unwritable(root, e)
        return None
    final = root / key
    try:
        meta = {"version": VERSION, "columns": {}, "strings": {}, "ragged": {}, "format": ds.format,
                "has_image_sizes": bool(ds.has_image_sizes), "info": ds.info}
        for name in _NUMERIC:
            col = getattr(ds, name)
            if col is not None:
                meta["columns"][name] = _write_npy(tmp / f"{name}.npy", np.ascontiguousarray(col))
        for name in _STRINGS:
            col = getattr(ds, name)
            if col is not None:
                encoded = [str(s).encode("utf-8", "surrogatepass") for s in col.tolist()]
                lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
                offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
                np.cumsum(lengths, out=offsets[1:])
                blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
                meta["strings"][name] = {"offsets": _write_npy(tmp / f"{name}.off.npy", offsets),
                                         "blob": _write_npy(tmp / f"{name}.blob.npy", blob)}
        for name in _RAGGED:
            r = getattr(ds, name)
            if r is not None:
                meta["ragged"][name] = {"offsets": _write_npy(tmp / f"{name}.off.npy", r.offsets),
                                        "values": _write_npy(tmp / f"{name}.val.npy", r.values)}
        (tmp / "meta.json").write_text(json.dumps(meta, default=str))
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        return final
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.isdir(final):  # not an entry another process renamed in first
            warn_unwritable(root, e)
        return None
    except (TypeError, ValueError):
        shutil.rmtree(tmp, ignore_errors=True)
        return None


class _CrcWriter:
    """A write-only file wrapper counting bytes and their CRC-32 as they pass (no copy of the array)."""

    def __init__(self, f):
        self.f, self.crc, self.bytes = f, 0, 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self.crc = zlib.crc32(view, self.crc)
        self.bytes += len(view)
        return self.f.write(view)


def _write_npy(path: Path, arr: np.ndarray) -> dict:
    """Write ``arr`` as .npy, streamed (NumPy writes a non-file object in 16 MiB pieces): no whole copy in memory."""
    with open(path, "wb") as f:
        w = _CrcWriter(f)
        np.save(w, arr, allow_pickle=False)
    return {"file": path.name, "bytes": w.bytes, "crc32": w.crc}


def _read_npy(entry: Path, info: dict) -> np.ndarray:
    path = entry / info["file"]
    if path.name != info["file"] or "/" in info["file"] or "\\" in info["file"]:
        raise ValueError("bad file name")
    size = os.stat(path).st_size
    if size != info["bytes"]:
        raise ValueError("size mismatch")
    if size == 0:
        raise ValueError("empty file")
    # Memory-mapped copy-on-write: no read into a fresh buffer (whose zeroing and copy were most of a
    # cached load), pages come straight from the page cache, and the arrays stay writable (writes are
    # private to this process; the entry is never modified in place, only replaced by rename).
    with open(path, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    if len(data) != size:
        raise ValueError("short read")
    if zlib.crc32(data) != info["crc32"]:
        raise ValueError("crc mismatch")
    bio = io.BytesIO(data[:min(size, 1 << 17)])
    version = np.lib.format.read_magic(bio)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(bio, max_header_size=1 << 16)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(bio, max_header_size=1 << 16)
    else:
        raise ValueError("unknown .npy version")
    if dtype.hasobject or fortran:
        raise ValueError("unexpected dtype")
    count = int(np.prod(shape)) if shape else 1
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=bio.tell())
    return arr.reshape(shape)


def _read(entry: Path) -> Dataset:
    meta = json.loads((entry / "meta.json").read_text())
    if meta.get("version") != VERSION:
        raise ValueError("old version")
    kw = {name: _read_npy(entry, info) for name, info in meta["columns"].items() if name in _NUMERIC}
    for name, info in meta["strings"].items():
        if name not in _STRINGS:
            continue
        offsets = _read_npy(entry, info["offsets"])
        blob = _read_npy(entry, info["blob"])
        if offsets.ndim != 1 or blob.ndim != 1 or offsets.dtype.kind != "i" or blob.dtype != np.uint8:
            raise ValueError("bad string column")
        if len(offsets) and (offsets[0] != 0 or offsets[-1] != len(blob) or np.any(np.diff(offsets) < 0)):
            raise ValueError("bad offsets")
        strings = LazyStrings(blob, offsets)
        # file names (one per image) are decoded on first use; the small category columns now
        kw[name] = strings if name == "file_names" else strings.materialize()
    for name, info in meta["ragged"].items():
        if name in _RAGGED:
            kw[name] = Ragged(_read_npy(entry, info["offsets"]), _read_npy(entry, info["values"]))
    ds = Dataset(format=meta["format"], has_image_sizes=meta["has_image_sizes"], info=meta.get("info") or {}, **kw)
    n_box, n_img = ds.num_boxes, ds.num_images
    if n_box and (ds.box_image.min() < 0 or ds.box_image.max() >= n_img
                  or ds.box_category.min() < 0 or ds.box_category.max() >= ds.num_categories):
        raise ValueError("indices out of range")
    return ds
