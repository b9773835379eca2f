"""YOLO label files read by the rules of the trainer that consumes them: Ultralytics 8.x (default) or YOLOv5 7.0.

:func:`parse_label` turns one label file's bytes into ``(classes, xywhn float32)`` or a *corrupt* verdict,
rule for rule as ``verify_image_label`` (``ultralytics/data/utils.py``; YOLOv5 ``utils/dataloaders.py``)
decides it; the trainer then skips the whole image. Ultralytics 8.x (``version=8``):

* text: UTF-8, a leading byte-order mark dropped; lines as ``str.splitlines``; blank lines (only
  whitespace) skipped; fields split on whitespace and parsed as NumPy parses them into float32;
* a file with any line of more than 6 fields is a *segment* file: each line is
  ``class x1 y1 x2 y2 ...``, its box the min/max of its points in float32 (``segments2boxes``); a
  5-field line there is corrupt ("labels mix segment and detection rows"), as is an odd number of
  coordinates or a line without any; otherwise every line must have exactly 5 fields;
* the checks run on the boxes ``(class, cx, cy, w, h)`` in float32: every coordinate ``<= 1.01``,
  every value ``>= -0.01`` with width and height ``>= 0`` (NaN fails both: Ultralytics' 1%
  tolerance), classes integral and ``< nc``; the values are kept as they are (the trainer clips the
  boxes to the image later; :mod:`imbalance_cli.data.yolo` clips the pixel boxes);
* duplicate rows (equal in float32) are removed; in a segment file rows count as duplicates when the
  class and every point are equal (byte for byte).

YOLOv5 7.0 (``version=5``): text read without dropping a byte-order mark (a BOM makes the first
value a non-number: corrupt); lines with only whitespace are not skipped (they make the file
ragged: corrupt); a segment file may mix 5-field lines (read as a two-point segment); every value
``>= 0`` and every coordinate ``<= 1`` (no tolerance); classes neither checked for being integers
(``int()`` truncates them when counted) nor against ``nc`` here (YOLOv5's ``train.py`` stops with
"Label class ... exceeds nc": reported as ``fatal``); duplicates compared on the box rows only.

Every verdict names the first line at fault (1-based, as ``str.splitlines`` counts). Limits, checked
before parsing: :data:`MAX_LABEL_BYTES` per file, :data:`MAX_LABEL_LINES` lines, :data:`MAX_LABEL_FIELDS`
fields per line (a label over one is corrupt, with the limit named).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Largest label file read (bytes); a larger one makes its image corrupt (the limit is named).
MAX_LABEL_BYTES = 16 * 1024 * 1024
#: Most lines in one label file (the densest real datasets have a few thousand objects per image).
MAX_LABEL_LINES = 100_000
#: Most fields in one label line (a segment of 50,000 points), counted before the line is split.
MAX_LABEL_FIELDS = 100_001
_LINE_BREAKS = (b"\n", b"\r", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")  # str.splitlines' ASCII separators
VERSIONS = (8, 5)
_F32 = np.float32
_TOL_HI = _F32(1.01)
_TOL_LO = _F32(-0.01)
_BOM = "\ufeff"


@dataclass
class LabelResult:
    """One label file: kept rows, or the reason the image is corrupt.

    ``cls`` int64 class per kept row; ``xywhn`` float32 (n, 4); ``lines`` the 1-based line of each
    kept row; ``duplicates`` ``(line, line it repeats)`` of every removed row; ``segments`` rows read
    from segments; ``bad`` ``(line or None, reason)`` when the trainer drops the image; ``empty``
    when the file has no row; ``fatal`` ``(line, reason)`` when YOLOv5's ``train.py`` would stop.
    """

    cls: np.ndarray
    xywhn: np.ndarray
    lines: np.ndarray
    duplicates: list = field(default_factory=list)
    segments: int = 0
    bad: tuple | None = None
    empty: bool = False
    fatal: tuple | None = None


class _Corrupt(Exception):
    """A label line that makes the trainer drop the image: ``args = (line, reason)``."""


def _result(bad=None, empty=False) -> LabelResult:
    return LabelResult(np.zeros(0, np.int64), np.zeros((0, 4), _F32), np.zeros(0, np.int64), bad=bad, empty=empty)


def _f32(tokens: list[str], line: int) -> np.ndarray:
    """``tokens`` as float32 the way NumPy parses strings; :class:`_Corrupt` naming the first non-number."""
    try:
        return np.array(tokens, dtype=_F32)
    except (ValueError, OverflowError):
        for t in tokens:
            try:
                np.array([t], dtype=_F32)
            except (ValueError, OverflowError):
                raise _Corrupt(line, f"{t[:40]!r} is not a number") from None
        raise _Corrupt(line, "not a number") from None


def decode(data: bytes, version: int) -> tuple[str | None, tuple | None]:
    """The label text (``utf-8-sig`` for Ultralytics, plain UTF-8 for YOLOv5) or ``(None, (line, reason))``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        return None, (line, f"not UTF-8 text (byte {e.start})")
    if version == 8 and text.startswith(_BOM):
        text = text[1:]
    return text, None


def _rows(text: str, version: int) -> list[tuple[int, list[str]]]:
    """``(line, fields)`` of the rows the trainer reads (see module docstring)."""
    out = []
    if version == 8:
        for n, ln in enumerate(text.splitlines(), 1):
            if ln.strip():
                out.append((n, _fields(ln, n)))
        return out
    # YOLOv5: f.read().strip().splitlines(), lines kept when len(x): whitespace-only lines inside stay (empty rows)
    lead = text[: len(text) - len(text.lstrip())]
    first = len((lead + "x").splitlines())  # line breaks before the first character kept, plus one
    for n, ln in enumerate(text.strip().splitlines(), first):
        if len(ln):
            out.append((n, _fields(ln, n)))
    return out


def _fields(line: str, n: int) -> list[str]:
    """``line.split()``, refused past :data:`MAX_LABEL_FIELDS` fields without splitting the rest of the line."""
    f = line.split(None, MAX_LABEL_FIELDS)
    if len(f) > MAX_LABEL_FIELDS:
        raise _Corrupt(n, f"more than {MAX_LABEL_FIELDS:,} fields (imbalance's limit)")
    return f


def parse_label(data: bytes, nc: int | None, version: int = 8) -> LabelResult:
    """One label file's bytes -> :class:`LabelResult` (see module docstring). ``nc=None``
    skips the class-range check."""
    if len(data) > MAX_LABEL_BYTES:
        return _result(bad=(None, f"label file larger than {MAX_LABEL_BYTES:,} bytes (imbalance's limit)"))
    if sum(data.count(b) for b in _LINE_BREAKS) > 2 * MAX_LABEL_LINES:  # before any line is made
        return _result(bad=(None, f"more than {MAX_LABEL_LINES:,} lines (imbalance's limit)"))
    text, err = decode(data, version)
    if err is not None:
        return _result(bad=err)
    if text.count("\x85") + text.count("\u2028") + text.count("\u2029") > MAX_LABEL_LINES:
        return _result(bad=(None, f"more than {MAX_LABEL_LINES:,} lines (imbalance's limit)"))
    try:
        rows = _rows(text, version)
    except _Corrupt as e:
        return _result(bad=e.args)
    if len(rows) > MAX_LABEL_LINES:
        return _result(bad=(None, f"more than {MAX_LABEL_LINES:,} lines (imbalance's limit)"))
    if not rows:
        return _result(empty=True)
    segment = any(len(f) > 6 for _n, f in rows)
    try:
        lb, nseg, keys = _segment_rows(rows, version) if segment else _box_rows(rows, version)
    except _Corrupt as e:
        return _result(bad=e.args)
    bad = _check_values(lb, [n for n, _f in rows], nc, version)
    if bad is not None:
        return _result(bad=bad)
    lines = np.array([n for n, _f in rows], np.int64)
    keep, dups = _dedup(lb, keys, lines)
    res = LabelResult(
        cls=np.trunc(lb[keep, 0]).astype(np.int64),
        xywhn=np.ascontiguousarray(lb[keep, 1:5]),
        lines=lines[keep],
        duplicates=dups,
        segments=nseg if segment else 0,
    )
    if version == 5 and nc is not None and len(res.cls) and int(res.cls.max()) >= nc:
        k = int(np.argmax(res.cls >= nc))
        res.fatal = (
            int(res.lines[k]),
            f"class {int(res.cls[k])} exceeds nc={nc} (YOLOv5's train.py stops: 'Label class exceeds nc')",
        )
    return res


def _box_rows(rows, version):
    """Rows of a box file -> ``(lb float32 (n, 5), 0, None)``; :class:`_Corrupt` for the first bad line."""
    for n, f in rows:
        if len(f) != 5:
            raise _Corrupt(n, f"{len(f)} fields (a box is 'class cx cy w h')")
    try:
        arr = np.array([t for _n, f in rows for t in f], dtype=_F32)
    except (ValueError, OverflowError):
        for n, f in rows:
            _f32(f, n)
        raise
    return arr.reshape(-1, 5), 0, None


def _segment_rows(rows, version):
    """Rows of a segment file -> ``(lb float32 (n, 5), n, keys)`` (``segments2boxes``); :class:`_Corrupt` otherwise."""
    if version == 8:
        for n, f in rows:
            if len(f) == 5:
                raise _Corrupt(
                    n, "a box row in a file of segment rows (Ultralytics: 'labels mix segment and detection rows')"
                )
    for n, f in rows:  # classes are parsed first, then each segment
        if not f:
            raise _Corrupt(n, "a line with only whitespace in a segment file")
        _f32(f[:1], n)
    boxes, keys = [], []
    for n, f in rows:
        pts = _f32(f[1:], n)
        if len(pts) % 2:
            raise _Corrupt(n, f"a segment with an odd number of coordinates ({len(pts)})")
        if not len(pts):
            raise _Corrupt(n, "a segment without points")
        xy = pts.reshape(-1, 2)
        x1, y1 = xy[:, 0].min(), xy[:, 1].min()
        x2, y2 = xy[:, 0].max(), xy[:, 1].max()
        c = np.array(f[:1], dtype=_F32)
        boxes.append((c[0], (x1 + x2) / _F32(2), (y1 + y2) / _F32(2), x2 - x1, y2 - y1))
        keys.append(c.tobytes() + xy.tobytes())
    # Ultralytics compares segment rows byte for byte; YOLOv5 compares their boxes
    return np.array(boxes, dtype=_F32).reshape(-1, 5), len(rows), keys if version == 8 else None


def _check_values(lb: np.ndarray, lines: list[int], nc: int | None, version: int):
    """The first line failing the trainer's value checks, as ``(line, reason)``; None when all pass."""
    c, pts = lb[:, 0], lb[:, 1:5]
    if version == 8:
        bad_hi = ~(pts <= _TOL_HI)
        bad_lo = ~(lb >= _TOL_LO) | np.concatenate([np.zeros((len(lb), 3), bool), ~(lb[:, 3:5] >= 0)], 1)
        bad_int = ~(np.mod(c, _F32(1)) == 0)
        bad_nc = (c >= nc) if nc is not None else np.zeros(len(c), bool)
    else:
        bad_hi = ~(pts <= _F32(1))
        bad_lo = ~(lb >= 0)
        bad_int = bad_nc = np.zeros(len(c), bool)
    rows = np.flatnonzero(bad_hi.any(1) | bad_lo.any(1) | bad_int | bad_nc)
    if not len(rows):
        return None
    r = int(rows[0])
    n = lines[r]
    if bad_hi[r].any():
        v = pts[r][bad_hi[r]][0]
        lim = "1.01 (Ultralytics' 1% tolerance)" if version == 8 else "1 (YOLOv5 has no tolerance)"
        return n, f"coordinate {_show(v)} outside [0, 1]: above {lim}"
    if bad_lo[r].any():
        k = int(np.argmax(bad_lo[r]))
        what = "class" if k == 0 else ("width" if k == 3 else "height" if k == 4 else "coordinate")
        lim = "-0.01 (widths and heights >= 0)" if version == 8 else "0"
        return n, f"negative {what} {_show(lb[r, k])} (values must be >= {lim})"
    if bad_int[r]:
        return n, f"class {_show(c[r])} is not an integer"
    return n, f"class {int(c[r])} is not below nc={nc} (classes 0..{nc - 1})"


def _show(v) -> str:
    return f"{float(v):.8g}"


def _dedup(lb: np.ndarray, keys, lines: np.ndarray):
    """Indices of the rows kept (first of each equal group, in file order) and ``(line, first line)`` removed."""
    seen: dict = {}
    keep, dups = [], []
    rows = lb.tolist() if keys is None else keys
    for i, r in enumerate(rows):
        k = tuple(r) if keys is None else r
        j = seen.get(k)
        if j is None:
            seen[k] = i
            keep.append(i)
        else:
            dups.append((int(lines[i]), int(lines[j])))
    return np.array(keep, np.int64), dups


# ------------------------------------------------------------------------------------------------ many files at once
_NUM = rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_ROW = rb"[ \t]*" + rb"[ \t]+".join([_NUM] * 5) + rb"[ \t]*"
#: A plain box file: ASCII rows of exactly five plain decimal numbers, one per line, no blank line.
_PLAIN = __import__("re").compile(rb"(?:" + _ROW + rb"\r?\n)*" + _ROW + rb"(?:\r?\n)?")


def parse_labels(datas: list[bytes], nc: int | None, version: int = 8) -> list[LabelResult]:
    """:func:`parse_label` of many files, the plain ones (:data:`_PLAIN`) parsed and checked together.

    A plain file's numbers are parsed as float64 and rounded to float32 -- what NumPy's string parsing
    does -- in one call for all of them; a file with any row the value checks or the duplicate check
    would flag, and every file that is not plain, goes through :func:`parse_label` (which words the reason).
    """
    out: list = [None] * len(datas)
    plain, texts, rows = [], [], []
    for i, d in enumerate(datas):
        body = d[3:] if version == 8 and d[:3] == b"\xef\xbb\xbf" else d
        if body and len(body) <= MAX_LABEL_BYTES and _PLAIN.fullmatch(body):
            plain.append(i)
            texts.append(body if body.endswith(b"\n") else body + b"\n")
            rows.append(body.count(b"\n") + (0 if body.endswith(b"\n") else 1))
        else:
            out[i] = parse_label(d, nc, version)
    if plain:
        vals = np.array(b"".join(texts).split(), dtype=np.float64).astype(_F32)
        counts = np.asarray(rows, np.int64)
        if len(vals) != 5 * int(counts.sum()):  # cannot happen for plain files; never trust it blindly
            for i in plain:
                out[i] = parse_label(datas[i], nc, version)
            return out
        lb = vals.reshape(-1, 5)
        owner = np.repeat(np.arange(len(plain)), counts)
        bad = _bad_rows(lb, nc, version) | _duplicate_rows(lb, owner)
        bad_file = np.zeros(len(plain), bool)
        bad_file[owner[bad]] = True
        off = np.concatenate([[0], np.cumsum(counts)])
        cls = np.trunc(lb[:, 0]).astype(np.int64)
        xywhn = lb[:, 1:5]
        for k, i in enumerate(plain):
            if bad_file[k]:
                out[i] = parse_label(datas[i], nc, version)
                continue
            a, b = int(off[k]), int(off[k + 1])
            res = LabelResult(cls=cls[a:b], xywhn=xywhn[a:b], lines=np.arange(1, b - a + 1, dtype=np.int64))
            if version == 5 and nc is not None and b > a and int(res.cls.max()) >= nc:
                out[i] = parse_label(datas[i], nc, version)  # words the fatal class
                continue
            out[i] = res
    return out


def _bad_rows(lb: np.ndarray, nc: int | None, version: int) -> np.ndarray:
    """Rows :func:`_check_values` would flag (vectorised over many files)."""
    c, pts = lb[:, 0], lb[:, 1:5]
    if version == 8:
        bad = (
            ~(pts <= _TOL_HI).all(1) | ~(lb >= _TOL_LO).all(1) | ~(lb[:, 3:5] >= 0).all(1) | ~(np.mod(c, _F32(1)) == 0)
        )
        if nc is not None:
            bad |= c >= nc
        return bad
    return ~(pts <= _F32(1)).all(1) | ~(lb >= 0).all(1)


def _duplicate_rows(lb: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Rows equal (float32, -0 == 0) to another row of the same file."""
    if len(lb) < 2:
        return np.zeros(len(lb), bool)
    key = np.column_stack([owner.astype(np.float64), lb.astype(np.float64) + 0.0])  # + 0.0: -0 -> 0
    order = np.lexsort(key.T[::-1])
    k = key[order]
    same = (k[1:] == k[:-1]).all(1)
    dup = np.zeros(len(lb), bool)
    dup[order[1:][same]] = True
    dup[order[:-1][same]] = True
    return dup
