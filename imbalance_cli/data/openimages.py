"""Open Images bounding-box CSV -> :class:`Dataset`.

Inputs
------
* the box CSV with header
  ``ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside``
  (coordinates normalised to [0, 1]);
* optionally ``class-descriptions-boxable.csv`` (``MID,DisplayName``, no header) for class
  names; looked for next to the box CSV when not given. Without it the MIDs are the names;
* optionally an image-sizes CSV (``ImageID,Width,Height``). With it boxes are converted to
  pixels; without it boxes stay normalised, ``has_image_sizes`` is False, relative statistics
  work and anchor statistics refuse with a clear message.

``IsGroupOf = 1`` is treated like COCO ``iscrowd``. Category ids are 1..K in the order of the
class-descriptions file (or of sorted MIDs); the MID is kept in ``category_codes``. Image ids are
1..N in order of first appearance (sizes-file images first); the ImageID is the file name stem.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from imbalance_cli.data._io import read_bytes
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError

BOX_COLUMNS = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax")
CLASSES_FILE = "class-descriptions-boxable.csv"


def _read_csv(data: bytes, path, **kw):
    import pandas as pd

    try:
        return pd.read_csv(io.BytesIO(data), **kw)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"malformed CSV: {str(e).splitlines()[0]}", path=path) from None


def read_classes(path) -> tuple[list[str], list[str]]:
    """Read ``MID,DisplayName`` rows (no header) -> (mids, names)."""
    df = _read_csv(read_bytes(path), path, header=None, dtype=str, keep_default_na=False)
    if df.shape[1] < 2:
        raise InputError("expected two columns MID,DisplayName", path=path, record="line 1")
    if str(df.iloc[0, 0]).strip().lower() in ("labelname", "mid"):
        df = df.iloc[1:]
    mids = df.iloc[:, 0].str.strip().tolist()
    dup = _first_duplicate(mids)
    if dup is not None:
        raise InputError(f"duplicate class {mids[dup]!r}", path=path, record=f"line {dup + 1}")
    return mids, df.iloc[:, 1].str.strip().tolist()


def read_image_sizes(path) -> dict[str, tuple[float, float]]:
    """Read ``ImageID,Width,Height`` (header required) -> {image id: (width, height)}."""
    df = _read_csv(read_bytes(path), path, dtype={"ImageID": str})
    missing = [c for c in ("ImageID", "Width", "Height") if c not in df.columns]
    if missing:
        raise InputError(f"image-sizes CSV needs columns ImageID,Width,Height; missing {', '.join(missing)}", path=path, record="header")
    w = np.asarray(df["Width"], dtype=np.float64)
    h = np.asarray(df["Height"], dtype=np.float64)
    bad = np.flatnonzero(~(np.isfinite(w) & np.isfinite(h) & (w > 0) & (h > 0)))
    if len(bad):
        raise InputError("Width and Height must be positive numbers", path=path, record=f"line {int(bad[0]) + 2}")
    ids = df["ImageID"].tolist()
    dup = _first_duplicate(ids)
    if dup is not None:
        raise InputError(f"duplicate ImageID {ids[dup]!r}", path=path, record=f"line {dup + 2}")
    return dict(zip(ids, zip(w.tolist(), h.tolist())))


def _first_duplicate(items: list) -> int | None:
    seen = set()
    for i, x in enumerate(items):
        if x in seen:
            return i
        seen.add(x)
    return None


def load(path, data: bytes | None = None, classes=None, image_sizes=None) -> Dataset:
    """Load an Open Images box CSV (see module docstring for the optional side files)."""
    path = Path(path)
    data = read_bytes(path) if data is None else data
    df = _read_csv(data, path, dtype={"ImageID": str, "LabelName": str, "Source": str})
    missing = [c for c in BOX_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"not an Open Images box CSV: missing column(s) {', '.join(missing)}", path=path, record="header")
    coords = df[["XMin", "YMin", "XMax", "YMax"]]
    try:
        boxes = coords.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        numeric = coords.apply(lambda c: __import__("pandas").to_numeric(c, errors="coerce"))
        bad = np.flatnonzero(numeric.isna().to_numpy().any(axis=1) & coords.notna().to_numpy().any(axis=1))
        line = int(bad[0]) + 2 if len(bad) else 2
        raise InputError("XMin/XMax/YMin/YMax must be numbers", path=path, record=f"line {line}") from None
    if df["ImageID"].isna().any() or df["LabelName"].isna().any():
        i = int(np.flatnonzero(df["ImageID"].isna().to_numpy() | df["LabelName"].isna().to_numpy())[0])
        raise InputError("ImageID and LabelName are required", path=path, record=f"line {i + 2}")

    # classes
    if classes is None and (path.parent / CLASSES_FILE).exists():
        classes = path.parent / CLASSES_FILE
    labels = df["LabelName"].to_numpy(dtype=object)
    if classes is not None:
        mids, names = read_classes(classes)
        mid_index = {m: i for i, m in enumerate(mids)}
        idx = np.fromiter((mid_index.get(m, -1) for m in labels), dtype=np.int64, count=len(labels))
        if (idx < 0).any():
            i = int(np.flatnonzero(idx < 0)[0])
            raise InputError(f"LabelName {labels[i]!r} is not in the class list {Path(classes).name}", path=path, record=f"line {i + 2}")
    else:
        mids = sorted(set(labels.tolist()))
        names = list(mids)
        mid_index = {m: i for i, m in enumerate(mids)}
        idx = np.fromiter((mid_index[m] for m in labels), dtype=np.int64, count=len(labels))

    # images
    sizes = read_image_sizes(image_sizes) if image_sizes is not None else None
    image_keys = list(sizes) if sizes is not None else []
    known = set(image_keys)
    for key in df["ImageID"].unique().tolist():
        if key not in known:
            if sizes is not None:
                i = int(np.flatnonzero(df["ImageID"].to_numpy() == key)[0])
                raise InputError(f"ImageID {key!r} has no entry in the image-sizes file", path=path, record=f"line {i + 2}")
            image_keys.append(key)
            known.add(key)
    key_index = {k: i for i, k in enumerate(image_keys)}
    box_image = np.fromiter((key_index[k] for k in df["ImageID"].tolist()), dtype=np.int64, count=len(df))
    if sizes is not None:
        W = np.array([sizes[k][0] for k in image_keys])
        H = np.array([sizes[k][1] for k in image_keys])
        boxes = boxes * np.stack([W, H, W, H], axis=1)[box_image]
    else:
        W = H = np.full(len(image_keys), np.nan)

    group = df["IsGroupOf"].fillna(0).to_numpy() if "IsGroupOf" in df.columns else np.zeros(len(df))
    try:
        group = np.asarray(group, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("IsGroupOf must be 0 or 1", path=path, record="column IsGroupOf") from None
    bad = np.flatnonzero(~np.isin(group, (0, 1, -1)))
    if len(bad):
        raise InputError(f"IsGroupOf must be 0 or 1, got {group[bad[0]]!r}", path=path, record=f"line {int(bad[0]) + 2}")
    return Dataset(
        image_ids=np.arange(1, len(image_keys) + 1), widths=W, heights=H,
        file_names=np.array([f"{k}.jpg" for k in image_keys], dtype=object),
        boxes=boxes, box_image=box_image, box_category=idx, crowd=group == 1,
        category_ids=np.arange(1, len(mids) + 1), category_names=np.array(names, dtype=object),
        category_codes=np.array(mids, dtype=object),
        format="openimages", path=str(path), has_image_sizes=sizes is not None,
    )
