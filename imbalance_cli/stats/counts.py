"""Per-class counts from either a full annotation file or a category-statistics file.

The long-tail tools (``imbalance margins``, ``imbalance groups``) need only per-class
instance and image counts. Users who hold just the published statistics (an LVIS-style
category list with ``instance_count`` and ``image_count``, e.g. LVIS v1's
``lvis_v1_train_cat_info.json``) get the same outputs as users with the full annotations:

* a **category-statistics file** is a JSON (optionally gzipped) that is either a bare list of
  categories or an object with ``categories`` and no ``annotations``; every category needs
  ``id``, ``instance_count`` and ``image_count`` (``name`` and ``frequency`` are optional).
  Such a file carries no image total: pass ``num_images`` (``--num-images``) where one is
  needed (repeat factors);
* anything else is loaded with :func:`imbalance_cli.load` and counted with
  :func:`imbalance_cli.stats.classes.class_counts` (valid, non-crowd boxes only).
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imbalance_cli.data import load
from imbalance_cli.data._io import BOM, check_nesting, open_stream, parse_json, read_file
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.data.detect import refuse_settings_file
from imbalance_cli.data.splits import select_split
from imbalance_cli.errors import InputError
from imbalance_cli.stats.classes import class_counts
from imbalance_cli.values import is_int

#: Largest instance or image count of a category-statistics file: sums over classes stay exact in float64
#: and within int64 (a count near 2^63 made the ECM total wrap around).
MAX_COUNT = 2**53
#: Most categories of a category-statistics file (LVIS has 1,203; as many as a baseline may list).
MAX_CATEGORIES = 100_000


@dataclass
class ClassCounts:
    """Per-category counts, categories sorted by id.

    ``instances``/``images`` are int64 arrays aligned with ``ids``; ``num_images`` is the image
    total (None when unknown, e.g. a category-statistics file without ``--num-images``);
    ``frequency_from_file`` holds the file's own LVIS ``frequency`` letters (None when absent);
    ``dataset`` is the loaded :class:`Dataset` when counts came from annotations (None for a
    statistics file), so per-image analyses (repeat-factor epoch length, batches) can use it.
    """

    ids: np.ndarray
    names: np.ndarray
    instances: np.ndarray
    images: np.ndarray
    num_images: int | None = None
    frequency_from_file: np.ndarray | None = None
    dataset: Dataset | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=np.int64).reshape(-1)
        n = len(self.ids)
        self.names = np.asarray(self.names, dtype=object).reshape(n)
        self.instances = np.asarray(self.instances, dtype=np.int64).reshape(n)
        self.images = np.asarray(self.images, dtype=np.int64).reshape(n)
        if self.frequency_from_file is not None:
            self.frequency_from_file = np.asarray(self.frequency_from_file, dtype=object).reshape(n)
        if n > 1 and np.any(np.diff(self.ids) <= 0):
            order = np.argsort(self.ids, kind="stable")
            if np.any(np.diff(self.ids[order]) == 0):
                dup = int(self.ids[order][np.flatnonzero(np.diff(self.ids[order]) == 0)[0]])
                raise InputError(f"duplicate category id {dup}", path=self.source)
            self.ids, self.names = self.ids[order], self.names[order]
            self.instances, self.images = self.instances[order], self.images[order]
            if self.frequency_from_file is not None:
                self.frequency_from_file = self.frequency_from_file[order]

    @property
    def num_classes(self) -> int:
        """Number of defined categories."""
        return len(self.ids)

    @property
    def is_statistics_file(self) -> bool:
        """True when the counts came from a category-statistics file (no per-image data)."""
        return self.dataset is None


def is_category_statistics(obj) -> bool:
    """True when parsed JSON ``obj`` is a category-statistics file (see module docstring)."""
    if isinstance(obj, dict):
        if "annotations" in obj or "images" in obj:
            return False
        obj = obj.get("categories")
    if not isinstance(obj, list) or not obj:
        return False
    first = obj[0]
    return isinstance(first, dict) and "instance_count" in first and "image_count" in first


def _from_statistics(cats: list, path: str, num_images: int | None) -> ClassCounts:
    if len(cats) > MAX_CATEGORIES:
        raise InputError(
            f"{len(cats):,} categories; a category-statistics file may list at most {MAX_CATEGORIES:,}", path=path
        )
    ids, names, inst, imgs, freq = [], [], [], [], []
    for i, c in enumerate(cats):
        where = f"categories[{i}]"
        if not isinstance(c, dict):
            raise InputError("a category must be a JSON object", path=path, record=where)
        for key in ("id", "instance_count", "image_count"):
            if key not in c:
                raise InputError(f"missing required key '{key}'", path=path, record=where)
            v = c[key]
            low = -(2**63) if key == "id" else 0
            high = 2**63 - 1 if key == "id" else MAX_COUNT
            if not is_int(v) or not low <= v <= high:
                what = "an integer within int64" if key == "id" else "a non-negative integer up to 2^53"
                raise InputError(f"field '{key}': expected {what}, got {v!r}", path=path, record=where)
        for key, allowed in (("name", None), ("frequency", ("r", "c", "f", ""))):
            v = c.get(key)
            if v is not None and (not isinstance(v, str) or (allowed is not None and v not in allowed)):
                what = "a string" if allowed is None else "one of r, c, f"
                raise InputError(f"field '{key}': expected {what}, got {v!r}", path=path, record=where)
        if c["image_count"] > c["instance_count"]:
            raise InputError(
                f"image_count {c['image_count']} exceeds instance_count {c['instance_count']}",
                path=path,
                record=f"{where} (id {c['id']})",
            )
        ids.append(c["id"])
        names.append(str(c.get("name", c["id"])))
        inst.append(c["instance_count"])
        imgs.append(c["image_count"])
        freq.append(c.get("frequency") or "")
    has_freq = any(freq)
    return ClassCounts(
        ids=ids,
        names=names,
        instances=inst,
        images=imgs,
        num_images=num_images,
        frequency_from_file=np.array(freq, dtype=object) if has_freq else None,
        dataset=None,
        source=path,
    )


def from_dataset(dataset: Dataset, num_images: int | None = None) -> ClassCounts:
    """Counts of a loaded :class:`Dataset` (valid, non-crowd boxes; ``num_images`` overrides the image total)."""
    inst, imgs = class_counts(dataset)
    freq = dataset.frequency
    if freq is not None and not any(bool(f) for f in freq):
        freq = None
    return ClassCounts(
        ids=dataset.category_ids,
        names=dataset.category_names,
        instances=inst,
        images=imgs,
        num_images=dataset.num_images if num_images is None else int(num_images),
        frequency_from_file=freq,
        dataset=dataset,
        source=dataset.path,
    )


def class_counts_from(
    path_or_dataset, num_images: int | None = None, format: str | None = None, split: str | None = None, note=None
) -> ClassCounts:
    """Per-class counts from a :class:`Dataset`, a category-statistics file or an annotation file.

    ``num_images`` supplies (or overrides) the image total. A statistics file is recognised by
    content (see module docstring); ``format`` is passed to :func:`imbalance_cli.load` otherwise.
    A multi-split dataset (a YOLO data.yaml) is counted on split ``split``, by default ``train``
    (:func:`imbalance_cli.data.splits.select_split`; ``note`` is told the default choice).
    Raises :class:`InputError` on unreadable files or bad records.
    """
    if num_images is not None and int(num_images) <= 0:
        raise InputError(f"--num-images must be a positive integer, got {num_images}")
    if isinstance(path_or_dataset, Dataset):
        return from_dataset(select_split(path_or_dataset, split, note=note), num_images)
    path = os.fspath(path_or_dataset)
    p = Path(path)
    too_big = None
    refuse_settings_file(p)
    if format is None and p.is_file() and _json_head(p) in (b"[", b"{"):
        try:  # a statistics file is small: read whole by the bounded reader (a bigger one is an annotation file)
            data = read_file(p, "category-statistics")
        except InputError as e:
            if _json_head(p) == b"[" or "read into memory" not in e.message:
                raise
            data, too_big = None, e
        if data is not None:
            check_nesting(data, p, "json")
            obj = parse_json(data, p)
            del data
            if is_category_statistics(obj):
                if split is not None:
                    raise InputError(f"--split {split}: a category-statistics file has no splits", path=path)
                cats = obj if isinstance(obj, list) else obj["categories"]
                counts = _from_statistics(cats, path, None if num_images is None else int(num_images))
                return counts
            if isinstance(obj, list):
                raise InputError(
                    "a JSON list is read as category statistics only, and its entries lack "
                    "'instance_count'/'image_count'",
                    path=path,
                )
    try:
        dataset = select_split(load(path, format=format), split, note=note)
    except InputError as e:
        if too_big is not None and "category-statistics file" in e.message:
            raise too_big from None  # a statistics file over the bound: say so, not "this is a statistics file"
        raise
    return from_dataset(dataset, num_images)


def _json_head(p: Path) -> bytes:
    """The first non-blank byte of the (decompressed) file, or b"" (the loaders report unreadable files)."""
    try:
        stream, raw = open_stream(p)
    except InputError:
        return b""
    try:
        head = stream.read(4096)
    except (EOFError, OSError, zlib.error):
        return b""
    finally:
        raw.close()
    return head.removeprefix(BOM).lstrip()[:1]
