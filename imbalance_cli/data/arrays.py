"""Small array kernels shared by the loaders and the statistics, chosen by measurement.

* :func:`unique_ints`: the sorted distinct values of an integer array. ``np.unique`` in NumPy 2.3+
  takes a hash-table path for plain calls that is ~70x slower than sorting on millions of distinct
  int64 keys (2.5 M (image, class) keys: 9.6 s vs 0.13 s, NumPy 2.4, same machine, same run);
  sorting and keeping the first of each run gives the identical result.
* :func:`index_of`: row of each referenced id in an array of unique ids (the annotation's
  ``image_id`` -> image row). Dense ids (the usual 1..N) use a direct lookup table, O(n); sparse
  ids fall back to a sorted search.
"""

from __future__ import annotations

import numpy as np

#: A lookup table is used when (max id - min id + 1) is at most this many times the number of ids.
DENSE_FACTOR = 8


def unique_ints(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer array (same result as ``np.unique(values)``)."""
    s = np.sort(np.asarray(values).reshape(-1))
    if s.size < 2:
        return s
    keep = np.empty(s.size, dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def index_of(defined: np.ndarray, refs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(index, ok)``: for each of ``refs`` its row in ``defined`` (unique int64 ids).

    ``ok`` is None when every reference is defined, else a boolean mask of the defined ones
    (``index`` is then meaningless where ``ok`` is False).
    """
    defined = np.asarray(defined, dtype=np.int64)
    refs = np.asarray(refs, dtype=np.int64)
    n = len(defined)
    if n == 0:
        return np.zeros(len(refs), np.int64), (np.zeros(len(refs), bool) if len(refs) else None)
    lo, hi = int(defined.min()), int(defined.max())
    span = hi - lo + 1
    if span <= DENSE_FACTOR * n + 1024:
        table = np.full(span, -1, dtype=np.int64)
        table[defined - lo] = np.arange(n, dtype=np.int64)
        rel = refs - lo
        inside = (refs >= lo) & (refs <= hi)
        if inside.all():
            idx = table[rel]
        else:
            idx = np.full(len(refs), -1, dtype=np.int64)
            idx[inside] = table[rel[inside]]
        bad = idx < 0
        if bad.any():
            return np.maximum(idx, 0), ~bad
        return idx, None
    order = np.argsort(defined, kind="stable")
    s = defined[order]
    pos = np.searchsorted(s, refs)
    pos_c = np.minimum(pos, n - 1)
    ok = (pos < n) & (s[pos_c] == refs)
    return order[pos_c].astype(np.int64), (None if ok.all() else ok)
