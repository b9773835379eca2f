"""A columnar cache of loaded datasets: the second load of the same file reads a few ``.npy`` files.

Where: ``$IMBALANCE_CACHE``, else the platform's user cache directory (``$XDG_CACHE_HOME/imbalance``,
``~/.cache/imbalance`` on Linux, ``~/Library/Caches/imbalance`` on macOS, ``%LOCALAPPDATA%\\imbalance``
on Windows).

Key: a BLAKE2b digest of the file's size, modification time (ns), the bytes read from it for the
key (the first and last MiB and 16 MiB-sized samples spread over the file, so a key costs at
most ~18 MiB of reading whatever the file size), the loading options that change the result
(format, Open Images side files, keyed the same way) and :data:`VERSION`. Any change to the file
gives a new key; an old entry is then simply not found.

Entry: a directory ``<key>/`` holding ``meta.json`` (scalars, string and dtype information, the
CRC-32 and length of every column file, the entry's key, and ``meta_crc32``, the CRC-32 of the rest)
and one ``.npy`` per numeric column; string columns are stored as one UTF-8 blob plus int64 offsets
(never pickled objects). It is written into a temporary sibling directory and renamed into place, so
a reader sees a complete entry or none.

On read nothing is trusted that the loaders would check: ``meta.json`` is read by the bounded reader
(a regular file of at most 16 MiB, not a link) and checked against its own CRC and a schema (known
format, types of every field); every column against its length, CRC, dtype and shape; and the values
as a loader checks them (image sizes finite, >= 1 and <= ``MAX_IMAGE_SIDE`` px, ids unique, indices in
range, UTF-8 strings cut at character boundaries, LVIS id lists naming defined categories). Anything
unexpected discards the entry, which is rebuilt from the annotation file, so a damaged or forged entry
(even one whose CRCs were recomputed) is never used.
"""

from __future__ import annotations

import hashlib
import io
import json
import mmap
import os
import shutil
import stat
import sys
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import numpy as np

from imbalance_cli.data._io import MAX_IMAGE_SIDE, read_json
from imbalance_cli.data.dataset import Dataset, LazyStrings, Ragged
from imbalance_cli.errors import InputError
from imbalance_cli.fileio import OutputWarning, os_reason

#: Bump when the Dataset layout or the loaders' semantics change (2: meta.json checksummed, images >= 1 px;
#: 3: the integer_boxes column).
VERSION = 3
_SAMPLE = 1024 * 1024
_NUMERIC = (
    "image_ids",
    "widths",
    "heights",
    "boxes",
    "box_image",
    "box_category",
    "category_ids",
    "box_ids",
    "crowd",
    "area",
    "difficult",
    "integer_boxes",
    "category_image_count",
    "category_instance_count",
)
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
    try:
        if not stat.S_ISDIR(os.lstat(entry).st_mode):  # (a link is not an entry this program wrote)
            raise ValueError("not a directory")
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        _remove(entry)
        return None
    try:
        return _read(entry)
    except Exception:  # noqa: BLE001 - anything wrong with an entry means: not trusted, rebuilt
        _remove(entry)
        return None


#: Cache folders already reported unwritable in this process (one warning each, however many entries fail).
_WARNED_UNWRITABLE: set[str] = set()


def warn_unwritable(root: Path | str, exc: OSError) -> None:
    """Say in one line (an :class:`~imbalance_cli.fileio.OutputWarning`) that the cache at ``root`` was skipped;
    once per folder and process."""
    if str(root) in _WARNED_UNWRITABLE:
        return
    _WARNED_UNWRITABLE.add(str(root))
    warnings.warn(
        f"the load cache {root} cannot be written ({os_reason(exc)}); this load is not cached: free "
        "space or set IMBALANCE_CACHE to a writable folder (or use --no-cache)",
        OutputWarning,
        stacklevel=3,
    )


def _remove(entry: Path) -> None:
    if entry.is_symlink() or entry.is_file():
        try:
            entry.unlink()
        except OSError:
            pass
    else:
        shutil.rmtree(entry, ignore_errors=True)


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
        meta = _write_columns(tmp, key, ds)
        meta = json.loads(json.dumps(meta, default=str))  # what a reader will see (info's odd values as strings)
        meta["meta_crc32"] = _meta_crc(meta)
        (tmp / "meta.json").write_text(json.dumps(meta))
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


def _write_columns(tmp: Path, key: str, ds: Dataset) -> dict:
    """Write every column of ``ds`` into ``tmp`` (numeric arrays, strings as offsets + blob, ragged arrays);
    returns the entry's metadata naming each file with its size and CRC."""
    meta = {
        "version": VERSION,
        "key": key,
        "columns": {},
        "strings": {},
        "ragged": {},
        "format": ds.format,
        "has_image_sizes": bool(ds.has_image_sizes),
        "info": ds.info,
    }
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
            meta["strings"][name] = {
                "offsets": _write_npy(tmp / f"{name}.off.npy", offsets),
                "blob": _write_npy(tmp / f"{name}.blob.npy", blob),
            }
    for name in _RAGGED:
        r = getattr(ds, name)
        if r is not None:
            meta["ragged"][name] = {
                "offsets": _write_npy(tmp / f"{name}.off.npy", r.offsets),
                "values": _write_npy(tmp / f"{name}.val.npy", r.values),
            }
    return meta


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


def _meta_crc(meta: dict) -> int:
    """CRC-32 of the metadata without its own checksum, in one canonical JSON form."""
    body = {k: v for k, v in meta.items() if k != "meta_crc32"}
    return zlib.crc32(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def _read_npy(entry: Path, info: ColumnFile) -> np.ndarray:
    path = entry / info.file
    if path.name != info.file or "/" in info.file or "\\" in info.file:
        raise ValueError("bad file name")
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):  # a link, FIFO or device is not a column this program wrote
        raise ValueError("not a regular file")
    size = st.st_size
    if size != info.bytes:
        raise ValueError("size mismatch")
    if size == 0:
        raise ValueError("empty file")
    # Memory-mapped copy-on-write: no read into a fresh buffer (whose zeroing and copy would be most of a
    # cached load), pages come straight from the page cache, and the arrays stay writable (writes are
    # private to this process; the entry is never modified in place, only replaced by rename).
    with open(path, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    if len(data) != size:
        raise ValueError("short read")
    if zlib.crc32(data) != info.crc32:
        raise ValueError("crc mismatch")
    bio = io.BytesIO(data[: min(size, 1 << 17)])
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


class ColumnFile(msgspec.Struct, forbid_unknown_fields=True):
    """A column file of an entry: its name, length and CRC-32."""

    file: str
    bytes: Annotated[int, msgspec.Meta(ge=1, le=2**48)]
    crc32: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]


class _StringColumn(msgspec.Struct, forbid_unknown_fields=True):
    offsets: ColumnFile
    blob: ColumnFile


class _RaggedColumn(msgspec.Struct, forbid_unknown_fields=True):
    offsets: ColumnFile
    values: ColumnFile


class EntryMeta(msgspec.Struct, forbid_unknown_fields=True):
    """The schema of an entry's ``meta.json``."""

    version: int
    key: str
    format: Literal["coco", "lvis", "objects365", "openimages"]
    has_image_sizes: bool
    info: dict
    columns: dict[Literal[_NUMERIC], ColumnFile]
    strings: dict[Literal[_STRINGS], _StringColumn]
    ragged: dict[Literal[_RAGGED], _RaggedColumn]
    meta_crc32: int


#: dtype and shape of every numeric column: ("images" | "boxes" | "categories", trailing dimensions).
_LAYOUT = {
    "image_ids": ("<i8", "images"),
    "widths": ("<f8", "images"),
    "heights": ("<f8", "images"),
    "boxes": ("<f8", "boxes", 4),
    "box_image": ("<i8", "boxes"),
    "box_category": ("<i8", "boxes"),
    "category_ids": ("<i8", "categories"),
    "box_ids": ("<i8", "boxes"),
    "crowd": ("|b1", "boxes"),
    "area": ("<f8", "boxes"),
    "difficult": ("|b1", "boxes"),
    "category_image_count": ("<i8", "categories"),
    "category_instance_count": ("<i8", "categories"),
}


def _read_meta(entry: Path) -> EntryMeta:
    """``meta.json`` through the bounded reader, its own CRC and the schema (a ValueError when anything is off)."""
    path = entry / "meta.json"
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise ValueError("meta.json is not a regular file")
    try:
        raw = read_json(path, "cache-meta", type=dict)
    except InputError as e:
        raise ValueError(e.message) from None
    if raw.get("version") != VERSION:
        raise ValueError("old version")
    if raw.get("meta_crc32") != _meta_crc(raw):
        raise ValueError("meta.json crc mismatch")
    if raw.get("key") != entry.name:  # an entry moved or copied under another key
        raise ValueError("entry of another key")
    return msgspec.convert(raw, EntryMeta)


def _read(entry: Path) -> Dataset:
    meta = _read_meta(entry)
    kw = {name: _read_npy(entry, info) for name, info in meta.columns.items()}
    for name, info in meta.strings.items():
        offsets = _read_npy(entry, info.offsets)
        blob = _read_npy(entry, info.blob)
        if offsets.ndim != 1 or blob.ndim != 1 or offsets.dtype != np.dtype("<i8") or blob.dtype != np.uint8:
            raise ValueError("bad string column")
        if len(offsets) and (offsets[0] != 0 or offsets[-1] != len(blob) or np.any(np.diff(offsets) < 0)):
            raise ValueError("bad offsets")
        _check_utf8(blob, offsets)
        strings = LazyStrings(blob, offsets)
        # file names (one per image) are decoded on first use; the small category columns now
        kw[name] = strings if name == "file_names" else strings.materialize()
    for name, info in meta.ragged.items():
        r = Ragged(_read_npy(entry, info.offsets), _read_npy(entry, info.values))
        if (
            r.offsets.dtype != np.dtype("<i8")
            or r.values.dtype != np.dtype("<i8")
            or r.offsets.ndim != 1
            or r.values.ndim != 1
            or not len(r.offsets)
            or r.offsets[0] != 0
            or r.offsets[-1] != len(r.values)
            or np.any(np.diff(r.offsets) < 0)
        ):
            raise ValueError("bad ragged column")
        kw[name] = r
    _check_layout(kw)
    ds = Dataset(format=meta.format, has_image_sizes=meta.has_image_sizes, info=meta.info, **kw)
    _check_values(ds)
    return ds


def _check_utf8(blob: np.ndarray, offsets: np.ndarray) -> None:
    """Every string of a column is UTF-8 (as written: lone surrogates allowed) and starts at a character."""
    try:
        blob.tobytes().decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        raise ValueError("a string column is not UTF-8") from None
    starts = offsets[:-1][offsets[:-1] < len(blob)]
    if np.any((blob[starts] & 0xC0) == 0x80):  # a string would begin inside a character
        raise ValueError("a string offset cuts a character")


def _check_layout(kw: dict) -> None:
    """Each numeric column has its dtype and a shape consistent with the others (no silent cast)."""
    for key in ("image_ids", "widths", "heights", "boxes", "box_image", "box_category", "category_ids"):
        if key not in kw:
            raise ValueError(f"missing column {key}")
    counts = {"images": len(kw["image_ids"]), "boxes": len(kw["boxes"]), "categories": len(kw["category_ids"])}
    for name, (dtype, rows, *rest) in _LAYOUT.items():
        col = kw.get(name)
        if col is not None and (col.dtype != np.dtype(dtype) or col.shape != (counts[rows], *rest)):
            raise ValueError(f"column {name}: {col.dtype} {col.shape}")
    for name in _RAGGED:
        if name in kw and len(kw[name]) != counts["images"]:
            raise ValueError(f"column {name}: {len(kw[name])} rows for {counts['images']} images")


def _check_values(ds: Dataset) -> None:
    """The values a loader would have refused (see module docstring): raises ValueError."""
    n_box, n_img = ds.num_boxes, ds.num_images
    if n_box and (
        ds.box_image.min() < 0
        or ds.box_image.max() >= n_img
        or ds.box_category.min() < 0
        or ds.box_category.max() >= ds.num_categories
    ):
        raise ValueError("indices out of range")
    if ds.has_image_sizes:
        with np.errstate(invalid="ignore"):
            for side in (ds.widths, ds.heights):
                if not np.all((side >= 1) & (side <= MAX_IMAGE_SIDE)):  # (NaN fails too)
                    raise ValueError("image sizes out of range")
    elif ds.format != "openimages" or not (np.all(np.isnan(ds.widths)) and np.all(np.isnan(ds.heights))):
        raise ValueError("image sizes missing where the format has them")
    for ids in (ds.image_ids, ds.box_ids, ds.category_ids):
        if not _unique(ids):
            raise ValueError("duplicate ids")
    for name in ("category_image_count", "category_instance_count"):
        col = getattr(ds, name)
        if col is not None and np.any(col < -1):
            raise ValueError(f"{name} below -1")
    for name in _RAGGED:
        r = getattr(ds, name)
        if r is not None and len(r.values) and not np.all(np.isin(r.values, ds.category_ids)):
            raise ValueError(f"{name} names an undefined category")


def _unique(ids: np.ndarray) -> bool:
    if len(ids) < 2:
        return True
    if np.all(ids[1:] > ids[:-1]):  # ids are usually increasing: no sort needed
        return True
    s = np.sort(ids)
    return not np.any(s[1:] == s[:-1])
