"""Open Images bounding-box CSV -> :class:`Dataset`, read by pyarrow's multi-threaded CSV reader.

Inputs
------
* the box CSV with header
  ``ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside``
  (coordinates normalised to [0, 1]); only ``ImageID, LabelName, XMin, XMax, YMin, YMax`` and
  ``IsGroupOf`` are decoded. ``ImageID`` and ``LabelName`` are dictionary-encoded while reading,
  so no Python string is made per row;
* optionally ``class-descriptions-boxable.csv`` (``MID,DisplayName``, no header) for class
  names; looked for next to the box CSV when not given. Without it the MIDs are the names;
* optionally an image-sizes CSV (``ImageID,Width,Height``). With it boxes are converted to
  pixels; without it boxes stay normalised, ``has_image_sizes`` is False, relative statistics
  work and anchor statistics refuse with a clear message.

``IsGroupOf = 1`` is treated like COCO ``iscrowd``. Category ids are 1..K in the order of the
class-descriptions file (or of sorted MIDs); the MID is kept in ``category_codes``. Image ids are
1..N in order of first appearance (sizes-file images first); the ImageID is the file name stem.
A row with the wrong number of fields is a malformed CSV; a non-numeric coordinate, size or
``IsGroupOf`` is an error naming the line. Empty coordinates are read as NaN (a non-finite box,
counted, not fatal). A UTF-8 BOM is accepted.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from imbalance_cli.data._io import (
    BOM,
    GZIP_MAGIC,
    MAX_IMAGE_SIDE,
    SUBPIXEL_IMAGE,
    check_regular,
    decode_utf8,
    read_file,
)
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError

BOX_COLUMNS = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax")
CLASSES_FILE = "class-descriptions-boxable.csv"


def _input(path):
    import pyarrow as pa

    check_regular(path)
    with open(path, "rb") as f:
        gz = f.read(2) == GZIP_MAGIC
    return pa.input_stream(str(path), compression="gzip" if gz else None)


def _gzip_error(path, e) -> InputError:
    return InputError(f"corrupt or truncated gzip data ({e})", path=path)


def _header(path) -> list[str]:
    try:
        with _input(path) as s:
            head = s.read(65536)
    except (OSError, EOFError) as e:  # pyarrow's gzip errors are OSErrors
        raise _gzip_error(path, e) from None
    if head.startswith(BOM):
        head = head[len(BOM) :]
    line = head.split(b"\n", 1)[0].decode("utf-8", "replace").strip("\r")
    return next(csv.reader([line]), [])


def _read_table(path, columns: dict, line_of_error_check):
    """Read the CSV at ``path`` keeping ``columns`` (name -> arrow type); errors name the line."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        with _input(path) as stream:
            return pacsv.read_csv(
                stream,
                read_options=pacsv.ReadOptions(use_threads=True, block_size=1 << 24),
                convert_options=pacsv.ConvertOptions(
                    include_columns=list(columns),
                    column_types=columns,
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise line_of_error_check(str(e)) from None
    except (OSError, EOFError) as e:  # reading or decompressing (pyarrow's gzip errors are OSErrors)
        raise _gzip_error(path, e) from None


def _find_bad_line(path, check) -> int | None:
    """Slow path (errors only): the first data line (1-based, header = line 1) failing ``check(fields)``."""
    try:
        with _input(path) as s:
            text = io.TextIOWrapper(s, encoding="utf-8-sig", errors="replace", newline="")
            reader = csv.reader(text)
            header = next(reader, [])
            for i, row in enumerate(reader):
                if check(header, row):
                    return i + 2
    except (OSError, EOFError) as e:
        raise _gzip_error(path, e) from None
    return None


def _first_non_utf8_line(path) -> int | None:
    """Slow path (errors only): the first line (1-based) that is not valid UTF-8."""
    try:
        with _input(path) as s:
            for i, line in enumerate(io.BufferedReader(s)):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    return i + 1
    except (OSError, EOFError) as e:
        raise _gzip_error(path, e) from None
    return None


def _csv_error(path, message: str, expected: int | None = None, numeric: tuple = ()) -> InputError:
    first = message.splitlines()[0]
    if "invalid UTF8" in first:
        line = _first_non_utf8_line(path)
        return InputError(
            "invalid UTF-8 in a text field (ImageID, Source or LabelName)",
            path=path,
            record=f"line {line}" if line else None,
        )
    if "Expected" in first and "columns" in first:
        line = _find_bad_line(path, lambda h, r: len(r) != len(h))
        got = first.split("got ", 1)[-1].split(":", 1)[0] if "got " in first else "?"
        return InputError(
            f"malformed CSV: a row has {got} fields where the header has {len(_header(path))}",
            path=path,
            record=f"line {line}" if line else None,
        )
    if "conversion error" in first:

        def bad(h, r):
            for name in numeric:
                if name in h and h.index(name) < len(r):
                    v = r[h.index(name)].strip()
                    if v == "":
                        continue
                    try:
                        float(v)
                    except ValueError:
                        return True
            return False

        line = _find_bad_line(path, bad)
        return InputError(
            f"{'/'.join(numeric)} must be numbers ({first.split(': ', 1)[-1]})",
            path=path,
            record=f"line {line}" if line else None,
        )
    return InputError(f"malformed CSV: {first}", path=path)


def read_classes(path) -> tuple[list[str], list[str]]:
    """Read ``MID,DisplayName`` rows (no header) -> (mids, names), by the bounded reader (kind ``class-list``)."""
    text = decode_utf8(read_file(path, "class-list"), path)
    rows = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
    if not rows or any(len(r) < 2 for r in rows):
        bad = next((i for i, r in enumerate(rows) if len(r) < 2), 0)
        raise InputError("expected two columns MID,DisplayName", path=path, record=f"line {bad + 1}")
    if rows[0][0].strip().lower() in ("labelname", "mid"):
        rows = rows[1:]
    mids = [r[0].strip() for r in rows]
    dup = _first_duplicate(mids)
    if dup is not None:
        raise InputError(f"duplicate class {mids[dup]!r}", path=path, record=f"line {dup + 1}")
    return mids, [r[1].strip() for r in rows]


def read_image_sizes(path):
    """Read ``ImageID,Width,Height`` (header required) -> (ImageID arrow array, widths, heights)."""
    import pyarrow as pa

    header = _header(path)
    missing = [c for c in ("ImageID", "Width", "Height") if c not in header]
    if missing:
        raise InputError(
            f"image-sizes CSV needs columns ImageID,Width,Height; missing {', '.join(missing)}",
            path=path,
            record="header",
        )
    t = _read_table(
        path,
        {"ImageID": pa.string(), "Width": pa.float64(), "Height": pa.float64()},
        lambda m: _csv_error(path, m, numeric=("Width", "Height")),
    )
    w = t.column("Width").to_numpy(zero_copy_only=False).astype(np.float64)
    h = t.column("Height").to_numpy(zero_copy_only=False).astype(np.float64)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(w) & np.isfinite(h) & (w > 0) & (h > 0)
        big = ok & ((w > MAX_IMAGE_SIDE) | (h > MAX_IMAGE_SIDE))
        small = ok & ((w < 1) | (h < 1))
    bad = np.flatnonzero(~ok | big | small)
    if len(bad):
        i = int(bad[0])
        what = (
            f"Width and Height must be at most {MAX_IMAGE_SIDE:,} pixels"
            if big[i]
            else f"{SUBPIXEL_IMAGE}, got {w[i]:g} x {h[i]:g}"
            if small[i]
            else "Width and Height must be positive finite numbers"
        )
        raise InputError(what, path=path, record=f"line {i + 2}")
    ids = t.column("ImageID").combine_chunks()
    import pyarrow.compute as pc

    if pc.count_distinct(ids).as_py() != len(ids):
        keys = ids.to_pylist()
        dup = _first_duplicate(keys)
        raise InputError(f"duplicate ImageID {keys[dup]!r}", path=path, record=f"line {dup + 2}")
    return ids, w, h


def _first_duplicate(items: list) -> int | None:
    seen = set()
    for i, x in enumerate(items):
        if x in seen:
            return i
        seen.add(x)
    return None


def _dict_column(table, name):
    """(indices int64, dictionary arrow array) of a dictionary-encoded column."""
    col = table.column(name)
    if col.num_chunks == 0:
        import pyarrow as pa

        return np.zeros(0, np.int64), pa.array([], pa.string())
    col = col.unify_dictionaries()
    idx = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in col.chunks]).astype(np.int64)
    return idx, col.chunks[0].dictionary


def load(path, data: bytes | None = None, classes=None, image_sizes=None) -> Dataset:
    """Load an Open Images box CSV (see module docstring for the optional side files)."""
    path = Path(path)
    header = _header(path)
    missing = [c for c in BOX_COLUMNS if c not in header]
    if missing:
        raise InputError(
            f"not an Open Images box CSV: missing column(s) {', '.join(missing)}", path=path, record="header"
        )
    columns = _column_types(header)
    numeric = ("XMin", "XMax", "YMin", "YMax") + (("IsGroupOf",) if "IsGroupOf" in header else ())
    t = _read_table(path, columns, lambda m: _csv_error(path, m, numeric=numeric))
    if "Source" in header:
        t = t.drop_columns(["Source"])
    n = t.num_rows

    boxes = np.empty((n, 4), dtype=np.float64)
    for j, name in enumerate(("XMin", "YMin", "XMax", "YMax")):  # one column at a time, nulls -> NaN
        boxes[:, j] = t.column(name).to_numpy(zero_copy_only=False)
        t = t.drop_columns([name])  # release the column's buffers now
    img_idx, img_dict = _dict_column(t, "ImageID")
    lab_idx, lab_dict = _dict_column(t, "LabelName")
    _refuse_blank(path, (img_idx, img_dict), (lab_idx, lab_dict))

    mids, names, code = _category_codes(path, lab_idx, lab_dict, classes)
    box_category = code[lab_idx] if n else np.zeros(0, np.int64)

    box_image, image_keys, W, H = _image_index(path, img_idx, img_dict, image_sizes, n)
    if image_sizes is not None:
        boxes = boxes * np.stack([W, H, W, H], axis=1)[box_image]

    group = _group_of(path, t, n) if "IsGroupOf" in columns else np.zeros(n)
    return Dataset(
        image_ids=np.arange(1, len(image_keys) + 1),
        widths=W,
        heights=H,
        file_names=np.array([f"{k}.jpg" for k in image_keys], dtype=object),
        boxes=boxes,
        box_image=box_image,
        box_category=box_category,
        crowd=group == 1,
        category_ids=np.arange(1, len(mids) + 1),
        category_names=np.array(names, dtype=object),
        category_codes=np.array(mids, dtype=object),
        format="openimages",
        path=str(path),
        has_image_sizes=image_sizes is not None,
    )


def _column_types(header: list) -> dict:
    """The Arrow type of each column read: ids as dictionaries, coordinates and IsGroupOf as float64."""
    import pyarrow as pa

    dict_t = pa.dictionary(pa.int32(), pa.string())
    columns = {
        "ImageID": dict_t,
        "LabelName": dict_t,
        "XMin": pa.float64(),
        "XMax": pa.float64(),
        "YMin": pa.float64(),
        "YMax": pa.float64(),
    }
    if "IsGroupOf" in header:
        columns["IsGroupOf"] = pa.float64()
    if "Source" in header:  # decoded only so that its UTF-8 is checked like the other text fields (no measured cost)
        columns["Source"] = dict_t
    return columns


def _refuse_blank(path: Path, *coded) -> None:
    """An :class:`InputError` at the first line whose ImageID or LabelName is empty (``coded``: (codes, dictionary))."""
    import pyarrow.compute as pc

    blank_rows = []
    for idx, dic in coded:
        k = pc.index(dic, "").as_py() if len(dic) else -1
        if k >= 0 and (idx == k).any():
            blank_rows.append(int(np.flatnonzero(idx == k)[0]))
    if blank_rows:
        raise InputError("ImageID and LabelName are required", path=path, record=f"line {min(blank_rows) + 2}")


def _category_codes(path: Path, lab_idx: np.ndarray, lab_dict, classes) -> tuple[list, list, np.ndarray]:
    """``(mids, names, code)``: the class list (the classes file's, default beside ``path``, else the used labels
    sorted) and each LabelName dictionary entry's class row (-1: none)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if classes is None and (path.parent / CLASSES_FILE).is_file():
        classes = path.parent / CLASSES_FILE
    if classes is not None:
        mids, names = read_classes(classes)
        code = pc.index_in(lab_dict, value_set=pa.array(mids, pa.string())).to_numpy(zero_copy_only=False)
        code = (
            np.where(np.isnan(code.astype(np.float64)), -1, code).astype(np.int64)
            if len(code)
            else code.astype(np.int64)
        )
        if len(lab_idx) and (code[lab_idx] < 0).any():
            i = int(np.flatnonzero(code[lab_idx] < 0)[0])
            raise InputError(
                f"LabelName {lab_dict[int(lab_idx[i])].as_py()!r} is not in the class list {Path(classes).name}",
                path=path,
                record=f"line {i + 2}",
            )
    else:
        used = np.flatnonzero(np.bincount(lab_idx, minlength=len(lab_dict))) if len(lab_idx) else np.zeros(0, np.int64)
        values = [lab_dict[int(k)].as_py() for k in used]
        order = np.argsort(np.array(values, dtype=object)) if values else np.zeros(0, np.int64)
        mids = [values[k] for k in order]
        names = list(mids)
        code = np.full(len(lab_dict), -1, dtype=np.int64)
        code[used[order]] = np.arange(len(mids))
    return mids, names, code


def _image_index(path: Path, img_idx: np.ndarray, img_dict, image_sizes, n: int) -> tuple:
    """``(box_image, image_keys, W, H)``: the image rows (the image-sizes file's order, else first appearance)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if image_sizes is not None:
        size_ids, W, H = read_image_sizes(image_sizes)
        pos = pc.index_in(img_dict, value_set=size_ids).to_numpy(zero_copy_only=False)
        pos = np.where(np.isnan(pos.astype(np.float64)), -1, pos).astype(np.int64) if len(pos) else pos.astype(np.int64)
        if n and (pos[img_idx] < 0).any():
            i = int(np.flatnonzero(pos[img_idx] < 0)[0])
            raise InputError(
                f"ImageID {img_dict[int(img_idx[i])].as_py()!r} has no entry in the image-sizes file",
                path=path,
                record=f"line {i + 2}",
            )
        box_image = pos[img_idx] if n else np.zeros(0, np.int64)
        image_keys = size_ids.to_pylist()
    else:
        uniq, first = np.unique(img_idx, return_index=True)
        order = uniq[np.argsort(first, kind="stable")]
        remap = np.full(len(img_dict), -1, dtype=np.int64)
        remap[order] = np.arange(len(order))
        box_image = remap[img_idx]
        image_keys = img_dict.take(pa.array(order, pa.int64())).to_pylist() if len(order) else []
        W = H = np.full(len(image_keys), np.nan)
    return box_image, image_keys, W, H


def _group_of(path: Path, t, n: int) -> np.ndarray:
    """The IsGroupOf column (empty = 0), refused unless 0, 1 or -1."""
    if not n:
        return np.zeros(n)
    group = t.column("IsGroupOf").to_numpy(zero_copy_only=False).astype(np.float64)
    group = np.where(np.isnan(group), 0, group)
    bad = np.flatnonzero(~np.isin(group, (0, 1, -1)))
    if len(bad):
        raise InputError(
            f"IsGroupOf must be 0 or 1, got {group[bad[0]]:g}", path=path, record=f"line {int(bad[0]) + 2}"
        )
    return group
