"""COCO-style JSON (COCO instances, LVIS v0.5 / v1, Objects365) -> :class:`Dataset`.

One parser serves the three families; ``flavour`` only changes how tolerant it is:

* ``coco``: ``images[].{id, width, height}``, ``annotations[].{id, image_id, category_id, bbox}``
  (bbox is ``[x, y, w, h]`` in pixels), ``categories[].{id, name}`` are required; ``iscrowd``
  (default 0), ``area``, ``file_name`` and ``supercategory`` are optional.
* ``lvis``: as COCO, plus categories' ``frequency``, ``image_count``, ``instance_count``,
  ``synset`` and images' ``neg_category_ids`` / ``not_exhaustive_category_ids``. LVIS v1 images
  carry ``coco_url`` instead of ``file_name``: the file name is taken from the URL.
* ``objects365``: COCO-style with known quirks tolerated: ``iscrowd`` absent, 0/1 or boolean;
  annotation ``id`` absent (numbered 1..N in file order); ids need not be contiguous.

The fast path pulls every column with list comprehensions into numpy; only if that fails does
a slow validating pass run to name the first bad record.
"""

from __future__ import annotations

import numpy as np

from imbalance_cli.data.dataset import Dataset, Ragged
from imbalance_cli.errors import InputError

_REQUIRED = {
    "images": ("id", "width", "height"),
    "annotations": ("id", "image_id", "category_id", "bbox"),
    "categories": ("id", "name"),
}


def from_dict(d: dict, path: str, flavour: str = "coco") -> Dataset:
    """Build a :class:`Dataset` from a parsed COCO-style dict.

    Raises :class:`InputError` naming the file and the first bad record for missing keys,
    malformed values, duplicate ids, or annotations referring to undefined images/categories.
    """
    if not isinstance(d, dict):
        raise InputError("expected a JSON object with 'images', 'annotations' and 'categories'", path=path)
    for key in ("images", "annotations", "categories"):
        if key not in d:
            raise InputError(f"missing required top-level key '{key}'", path=path)
        if not isinstance(d[key], list):
            raise InputError(f"'{key}' must be a list", path=path)
    images, anns, cats = d["images"], d["annotations"], d["categories"]
    tolerant = flavour == "objects365"

    # ---- categories -------------------------------------------------------------------
    cat_ids = _int_column(cats, "id", "categories", path)
    names = _column(cats, "name", "categories", path)
    _check_unique(cat_ids, "categories", "category id", path)
    extra = {}
    if any("frequency" in c for c in cats):
        extra["frequency"] = np.array([c.get("frequency", "") or "" for c in cats], dtype=object)
    for src, dst in (("image_count", "category_image_count"), ("instance_count", "category_instance_count")):
        if any(src in c for c in cats):
            extra[dst] = _optional_int(cats, src, "categories", path)
    for key in ("supercategory", "synset"):
        if any(key in c for c in cats):
            extra[key] = np.array([c.get(key, "") or "" for c in cats], dtype=object)

    # ---- images -----------------------------------------------------------------------
    img_ids = _int_column(images, "id", "images", path)
    widths = _float_column(images, "width", "images", path)
    heights = _float_column(images, "height", "images", path)
    _check_unique(img_ids, "images", "image id", path)
    bad = np.flatnonzero(~(np.isfinite(widths) & np.isfinite(heights) & (widths > 0) & (heights > 0)))
    if len(bad):
        i = int(bad[0])
        raise InputError("image width and height must be positive numbers", path=path, record=_rec("images", i, images[i]))
    file_names = np.array([_file_name(im) for im in images], dtype=object)
    neg = not_exh = None
    if any("neg_category_ids" in im for im in images):
        neg = _ragged(images, "neg_category_ids", path)
    if any("not_exhaustive_category_ids" in im for im in images):
        not_exh = _ragged(images, "not_exhaustive_category_ids", path)

    # ---- annotations ------------------------------------------------------------------
    if tolerant and anns and any("id" not in a for a in anns):
        ann_ids = np.arange(1, len(anns) + 1, dtype=np.int64)
    else:
        ann_ids = _int_column(anns, "id", "annotations", path)
        _check_unique(ann_ids, "annotations", "annotation id", path)
    ann_img = _int_column(anns, "image_id", "annotations", path)
    ann_cat = _int_column(anns, "category_id", "annotations", path)
    xywh = _bbox_column(anns, path)
    crowd = _crowd_column(anns, path)
    area = _area_column(anns)

    img_index = _lookup(img_ids, ann_img, anns, "image_id", "image", path)
    cat_index = _lookup(cat_ids, ann_cat, anns, "category_id", "category", path)
    boxes = xywh.copy()
    boxes[:, 2] += boxes[:, 0]
    boxes[:, 3] += boxes[:, 1]

    return Dataset(
        image_ids=img_ids, widths=widths, heights=heights, file_names=file_names,
        boxes=boxes, box_image=img_index, box_category=cat_index, box_ids=ann_ids, crowd=crowd, area=area,
        category_ids=cat_ids, category_names=names, neg_category_ids=neg, not_exhaustive_category_ids=not_exh,
        format=flavour, path=str(path), info=d.get("info") if isinstance(d.get("info"), dict) else {}, **extra,
    )


# ---------------------------------------------------------------------------------------
def _rec(section: str, i: int, record) -> str:
    rid = record.get("id") if isinstance(record, dict) else None
    return f"{section}[{i}]" + (f" (id {rid})" if rid is not None else "")


def _first_bad(records: list, section: str, path: str, check) -> None:
    """Slow pass: raise InputError for the first record failing ``check`` (returns an error string or None)."""
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise InputError("record is not a JSON object", path=path, record=f"{section}[{i}]")
        problem = check(r)
        if problem:
            raise InputError(problem, path=path, record=_rec(section, i, r))


def _missing(key):
    def check(r):
        return None if key in r else f"missing required key '{key}'"

    return check


def _column(records: list, key: str, section: str, path: str) -> np.ndarray:
    try:
        return np.array([r[key] for r in records], dtype=object)
    except (KeyError, TypeError):
        _first_bad(records, section, path, _missing(key))
        raise


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) or (isinstance(v, float) and v.is_integer())


def _int_column(records: list, key: str, section: str, path: str) -> np.ndarray:
    try:
        values = [r[key] for r in records]
        arr = np.array(values, dtype=np.int64)
        if len(values) and not all(type(v) is int for v in values):  # noqa: E721 - exact type check is the fast path
            if not all(_is_int(v) for v in values):
                raise TypeError
        return arr
    except (KeyError, TypeError, ValueError, OverflowError):
        def check(r):
            if key not in r:
                return f"missing required key '{key}'"
            if not _is_int(r[key]):
                return f"'{key}' must be an integer, got {r[key]!r}"
            return None

        _first_bad(records, section, path, check)
        raise InputError(f"bad '{key}' values", path=path, record=section) from None


def _float_column(records: list, key: str, section: str, path: str) -> np.ndarray:
    try:
        return np.array([r[key] for r in records], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        def check(r):
            if key not in r:
                return f"missing required key '{key}'"
            v = r[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return f"'{key}' must be a number, got {v!r}"
            return None

        _first_bad(records, section, path, check)
        raise InputError(f"bad '{key}' values", path=path, record=section) from None


def _optional_int(records: list, key: str, section: str, path: str) -> np.ndarray:
    try:
        return np.array([r.get(key, -1) for r in records], dtype=np.int64)
    except (TypeError, ValueError):
        _first_bad(records, section, path, lambda r: None if _is_int(r.get(key, -1)) else f"'{key}' must be an integer")
        raise


def _bbox_column(anns: list, path: str) -> np.ndarray:
    if not anns:
        return np.zeros((0, 4))
    try:
        arr = np.array([a["bbox"] for a in anns], dtype=np.float64)
        if arr.ndim == 2 and arr.shape[1] == 4:
            return arr
    except (KeyError, TypeError, ValueError):
        pass

    def check(a):
        if "bbox" not in a:
            return "missing required key 'bbox'"
        b = a["bbox"]
        if not isinstance(b, list) or len(b) != 4:
            return f"'bbox' must be a list of 4 numbers [x, y, w, h], got {b!r}"
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in b):
            if any(v is None for v in b):
                return None  # null -> NaN: counted as a non-finite box, not fatal
            return f"'bbox' must hold numbers, got {b!r}"
        return None

    _first_bad(anns, "annotations", path, check)
    # only nulls remain: map them to NaN
    return np.array([[np.nan if v is None else v for v in a["bbox"]] for a in anns], dtype=np.float64)


def _crowd_column(anns: list, path: str) -> np.ndarray:
    try:
        crowd = np.array([a.get("iscrowd", 0) or 0 for a in anns], dtype=np.int64)
    except (TypeError, ValueError):
        _first_bad(anns, "annotations", path,
                   lambda a: None if a.get("iscrowd", 0) in (0, 1, True, False, None) else f"'iscrowd' must be 0 or 1, got {a.get('iscrowd')!r}")
        raise
    bad = np.flatnonzero((crowd != 0) & (crowd != 1))
    if len(bad):
        i = int(bad[0])
        raise InputError(f"'iscrowd' must be 0 or 1, got {anns[i].get('iscrowd')!r}", path=path, record=_rec("annotations", i, anns[i]))
    return crowd.astype(bool)


def _area_column(anns: list) -> np.ndarray:
    values = [a.get("area") for a in anns]
    try:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    except (TypeError, ValueError):  # a non-numeric area is ignored, not fatal: it is informational only
        return np.array([v if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan for v in values], dtype=np.float64)


def _file_name(im: dict) -> str:
    name = im.get("file_name")
    if name:
        return str(name)
    url = im.get("coco_url") or im.get("flickr_url") or ""
    return str(url).rsplit("/", 1)[-1]


def _ragged(images: list, key: str, path: str) -> Ragged:
    try:
        return Ragged.from_lists([[int(v) for v in (im.get(key) or [])] for im in images])
    except (TypeError, ValueError):
        _first_bad(images, "images", path, lambda im: None if isinstance(im.get(key) or [], list) else f"'{key}' must be a list of category ids")
        raise InputError(f"'{key}' must be lists of integers", path=path, record="images") from None


def _check_unique(ids: np.ndarray, section: str, what: str, path: str) -> None:
    if len(ids) < 2:
        return
    order = np.argsort(ids, kind="stable")
    s = ids[order]
    dup = np.flatnonzero(s[1:] == s[:-1])
    if len(dup):
        j = int(order[dup[0] + 1])
        raise InputError(f"duplicate {what} {int(s[dup[0]])}", path=path, record=f"{section}[{j}]")


def _lookup(defined: np.ndarray, refs: np.ndarray, anns: list, key: str, what: str, path: str) -> np.ndarray:
    """Map referenced ids to row indices of ``defined``; an undefined id is an error naming the record."""
    if len(refs) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(defined, kind="stable")
    s = defined[order]
    pos = np.searchsorted(s, refs)
    pos_c = np.minimum(pos, max(len(s) - 1, 0))
    ok = (pos < len(s)) & (s[pos_c] == refs) if len(s) else np.zeros(len(refs), bool)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise InputError(f"{key} {int(refs[i])} refers to an undefined {what}", path=path, record=_rec("annotations", i, anns[i]))
    return order[pos_c].astype(np.int64)
