"""COCO-style JSON (COCO instances, LVIS v0.5 / v1, Objects365) -> :class:`Dataset`, streamed and columnar.

One loader serves the three families; ``flavour`` only changes how tolerant it is:

* ``coco``: ``images[].{id, width, height}``, ``annotations[].{id, image_id, category_id, bbox}``
  (bbox is ``[x, y, w, h]`` in pixels), ``categories[].{id, name}`` are required; ``iscrowd``
  (0 or 1, default 0), ``area``, ``file_name`` and ``supercategory`` are optional.
* ``lvis``: as COCO, plus categories' ``frequency``, ``image_count``, ``instance_count``,
  ``synset`` and images' ``neg_category_ids`` / ``not_exhaustive_category_ids`` (which must name
  defined categories). LVIS v1 images carry ``coco_url`` instead of ``file_name``: the file name
  is taken from the URL.
* ``objects365``: COCO-style with known quirks tolerated: ``iscrowd`` absent, 0/1 or boolean;
  annotation ``id`` absent (numbered 1..N in file order); ids need not be contiguous.

How: :mod:`imbalance_cli.data.jsonscan` cuts the ``images`` and ``annotations`` arrays into chunks of
whole records without parsing them; each chunk is decoded by msgspec into typed Structs that hold
only the fields above (``segmentation`` polygons and RLE, and any other key, are skipped by the
decoder without being built), turned into numpy columns, and dropped. Chunks are decoded on
``workers`` processes; results are put together in file order, so they are identical for any
number of workers. The types are the schema: ids and counts are JSON integers within int64,
sizes and coordinates JSON numbers (never booleans or strings), ``iscrowd`` 0 or 1. Every code
path (the CLI, :func:`from_dict`, ``imbalance check``) goes through this one decoder and the one
columnar validation in :func:`assemble`.
"""

from __future__ import annotations

import gc
import itertools
import math
import operator
import re
from typing import Annotated, Union

import msgspec
import numpy as np

from imbalance_cli.data._io import MAX_IMAGE_SIDE, SUBPIXEL_IMAGE, parser_nesting_error
from imbalance_cli.data.arrays import index_of
from imbalance_cli.data.dataset import Dataset, LazyStrings, Ragged
from imbalance_cli.errors import InputError
from imbalance_cli.values import is_int

UNSET = msgspec.UNSET
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
Num = Union[float, None]
BoxNum = Union[int, float, None]  # int kept apart: detectron2 treats an all-integer bbox differently


class _Ann(msgspec.Struct, gc=False):
    image_id: Int64
    category_id: Int64
    bbox: tuple[BoxNum, BoxNum, BoxNum, BoxNum]
    id: Union[Int64, msgspec.UnsetType] = UNSET
    iscrowd: Union[int, bool, None, msgspec.UnsetType] = UNSET
    area: Union[float, None] = None


class _Img(msgspec.Struct, gc=False):
    id: Int64
    width: float
    height: float
    file_name: Union[str, None] = None
    coco_url: Union[str, None] = None
    flickr_url: Union[str, None] = None
    neg_category_ids: Union[list[Int64], None, msgspec.UnsetType] = UNSET
    not_exhaustive_category_ids: Union[list[Int64], None, msgspec.UnsetType] = UNSET


class _Cat(msgspec.Struct, gc=False):
    id: Int64
    name: str
    supercategory: Union[str, None, msgspec.UnsetType] = UNSET
    frequency: Union[str, None, msgspec.UnsetType] = UNSET
    synset: Union[str, None, msgspec.UnsetType] = UNSET
    image_count: Union[Int64, None, msgspec.UnsetType] = UNSET
    instance_count: Union[Int64, None, msgspec.UnsetType] = UNSET


_DECODERS = {
    "annotations": msgspec.json.Decoder(list[_Ann]),
    "images": msgspec.json.Decoder(list[_Img]),
    "categories": msgspec.json.Decoder(list[_Cat]),
}
_AT = re.compile(r"^(.*?)(?: - at `\$\[(\d+)\](.*)`)?$", re.S)
_BYTE = re.compile(r"\(byte (\d+)\)")


# ------------------------------------------------------------------------------------------
# chunk decoding (runs in worker processes)
#: In a decoding worker (see :func:`keep_arenas`): some records of the last chunk, kept alive.
_KEPT: list | None = None
#: One record in this many is kept: a few per 1 MiB arena of the object allocator. (One in 64 pinned nearly every
#: 16 KiB pool: its free slots were then handed out in scattered order, and on full Objects365 the workers' decoding
#: took 1.9x as long, measured.)
KEEP_EVERY = 1024


def keep_arenas() -> None:
    """Keep the object allocator's memory from one chunk to the next (for short-lived decoding processes).

    A chunk's records are ~20 MB of small Python objects, which CPython's allocator takes from 1 MiB
    arenas and unmaps as soon as an arena is empty: every chunk would fault in ~5,000 fresh zeroed pages
    (in a virtual machine a large part of the decoding time). Keeping one record in :data:`KEEP_EVERY` of
    the last chunk alive keeps every arena it used partly occupied, so the next chunk's records reuse
    their free pools (measured on 8 chunks of 8 MiB of COCO annotations: 37.8 k -> 6.3 k page faults, 0.59-0.66
    -> 0.53-0.54 s; 40 chunks of Objects365: no slower).
    """
    global _KEPT
    _KEPT = []


def decode_chunk(key: str, text: bytes, base: int, path: str) -> dict:
    """Decode one chunk (a JSON array of records of ``key``) into numpy columns.

    ``base`` is the document offset of ``text[0]`` (for byte offsets in errors). Raises
    :class:`InputError`; record indices in the message are relative to the chunk and are made
    global by the caller (``local_index`` attribute).
    """
    # The cyclic garbage collector is paused while a chunk's records exist: they hold no cycles, and
    # its generation-0 passes over ~60,000 fresh objects per chunk double the decode time (measured).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            recs = _DECODERS[key].decode(text)
        except msgspec.ValidationError as e:
            raise _validation_error(e, key, text, path) from None
        except msgspec.DecodeError as e:
            raise _decode_error(e, base, path) from None
        except RecursionError:  # nested past the parser's limit (e.g. a 300,000-deep segmentation)
            raise parser_nesting_error(text, base, path, outer=1) from None
        out = _ann_columns(recs) if key == "annotations" else _img_columns(recs)
        if _KEPT is not None:
            _KEPT[:] = recs[::KEEP_EVERY]
        return out
    finally:
        if was_enabled:
            gc.enable()


def _fast(values, dtype, count: int, slow):
    """``np.fromiter`` over ``values`` (C speed); on None/UNSET/etc. fall back to ``slow()``."""
    try:
        return np.fromiter(values, dtype=dtype, count=count)
    except (TypeError, ValueError, OverflowError):
        return slow()


def _ann_columns(recs: list) -> dict:
    """Annotation columns of one decoded chunk: one ``np.fromiter`` pass per column (C speed; 2x faster than one
    pass into a structured row dtype, measured), each with its own slow path for absent ids and null values."""
    n = len(recs)
    missing_id = -1

    def ids_with_unset():
        nonlocal missing_id
        ids = list(map(_get_id, recs))
        missing_id = next(i for i, v in enumerate(ids) if v is UNSET)
        return np.array([-1 if v is UNSET else v for v in ids], dtype=np.int64)

    box_ids = _fast(map(_get_id, recs), np.int64, n, ids_with_unset)
    xywh = _fast(
        itertools.chain.from_iterable(map(_get_bbox, recs)),
        np.float64,
        4 * n,
        lambda: np.fromiter(map(_as_float, itertools.chain.from_iterable(map(_get_bbox, recs))), np.float64, 4 * n),
    ).reshape(n, 4)
    area = _fast(
        map(_get_area, recs),
        np.float64,
        n,
        lambda: np.array([np.nan if v is None else v for v in map(_get_area, recs)], dtype=np.float64),
    )
    crowd_raw = list(map(_get_crowd, recs))
    crowd, bool_crowd, bad = _crowd_column(crowd_raw, n)
    return {
        "n": n,
        "box_ids": box_ids,
        "missing_id": missing_id,
        "image_id": np.fromiter(map(_get_image_id, recs), dtype=np.int64, count=n),
        "category_id": np.fromiter(map(_get_category_id, recs), dtype=np.int64, count=n),
        "xywh": xywh,
        "integer_bbox": _integer_bboxes(recs, xywh),
        "crowd": crowd.astype(bool),
        "bad_crowd": (int(bad[0]), crowd_raw[int(bad[0])]) if len(bad) else None,
        "bool_crowd": bool_crowd,
        "crowd_given_first_100": any(a.iscrowd is not UNSET for a in recs[:100]),
        "area": area.reshape(n),
    }


def _as_float(v) -> float:
    """A bbox number as float: None -> NaN, an integer beyond float range -> +-inf (then an invalid box)."""
    if v is None:
        return math.nan
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf


def _integer_bboxes(recs: list, xywh: np.ndarray) -> np.ndarray:
    """Per record: were all four bbox numbers JSON integers (``201``, not ``201.0``)?

    detectron2 keeps such a bbox as an int64 array through its resize, so the resized coordinates
    are truncated to whole pixels (see :func:`imbalance_cli.anchors.generator.scale_boxes`). Only
    records whose four values are whole numbers can qualify, so the types are looked at for those
    alone (none in a typical COCO file; every record of one converted from VOC or YOLO).
    """
    with np.errstate(invalid="ignore"):
        cand = np.flatnonzero((xywh == np.floor(xywh)).all(axis=1))
    out = np.zeros(len(xywh), dtype=bool)
    if len(cand):
        values = itertools.chain.from_iterable(map(_get_bbox, map(recs.__getitem__, cand.tolist())))
        is_int = np.fromiter(map(isinstance, values, itertools.repeat(int)), dtype=bool, count=4 * len(cand))
        out[cand] = is_int.reshape(-1, 4).all(axis=1)
    return out


def _crowd_column(crowd_raw: list, n: int):
    """``(crowd int64, index of the first boolean or -1, indices of values other than 0/1)``; absent/null = 0."""
    types = set(map(type, crowd_raw))
    bool_crowd = next((i for i, v in enumerate(crowd_raw) if v is True or v is False), -1) if bool in types else -1
    if types <= {int, bool}:
        crowd = np.fromiter(crowd_raw, dtype=np.int64, count=n)
    elif types == {msgspec.UnsetType}:
        crowd = np.zeros(n, dtype=np.int64)
    else:
        crowd = np.array([0 if (v is None or v is UNSET) else int(v) for v in crowd_raw], dtype=np.int64).reshape(n)
    return crowd, bool_crowd, np.flatnonzero((crowd != 0) & (crowd != 1))


_get_id = operator.attrgetter("id")
_get_crowd = operator.attrgetter("iscrowd")
_get_bbox = operator.attrgetter("bbox")
_get_area = operator.attrgetter("area")
_get_image_id = operator.attrgetter("image_id")
_get_category_id = operator.attrgetter("category_id")
_get_width = operator.attrgetter("width")
_get_height = operator.attrgetter("height")
_get_file_name = operator.attrgetter("file_name")


def _img_columns(recs: list) -> dict:
    """Image columns of one decoded chunk (one C-speed pass per column, as :func:`_ann_columns`)."""
    n = len(recs)
    names = list(map(_get_file_name, recs))
    if not all(names):  # no file_name: the name in the URL
        names = [v if v else _file_name(r) for v, r in zip(names, recs)]
    blob, lengths = _utf8_blob(names)
    out = {
        "n": n,
        "ids": np.fromiter(map(_get_id, recs), dtype=np.int64, count=n),
        "widths": np.fromiter(map(_get_width, recs), dtype=np.float64, count=n),
        "heights": np.fromiter(map(_get_height, recs), dtype=np.float64, count=n),
        # the names as one UTF-8 blob (a :class:`LazyStrings` once assembled): sent between processes and kept
        # without a Python string per image, which statistics never read
        "file_name_blob": blob,
        "file_name_bytes": lengths,
    }
    for key in ("neg_category_ids", "not_exhaustive_category_ids"):
        vals = list(map(operator.attrgetter(key), recs))
        if vals.count(UNSET) != n:
            lists = [v if isinstance(v, list) else [] for v in vals]
            out[key] = (
                np.fromiter((len(x) for x in lists), dtype=np.int64, count=n),
                np.fromiter((v for x in lists for v in x), dtype=np.int64),
            )
    return out


def _utf8_blob(names: list) -> tuple[bytes, np.ndarray]:
    """``names`` encoded as one UTF-8 blob (``surrogatepass``, as :class:`LazyStrings` decodes) and each one's bytes."""
    text = "".join(names)
    blob = text.encode("utf-8", "surrogatepass")
    if len(blob) == len(text):  # ASCII: a character is a byte
        return blob, np.fromiter(map(len, names), dtype=np.int64, count=len(names))
    encoded = [v.encode("utf-8", "surrogatepass") for v in names]
    return b"".join(encoded), np.fromiter(map(len, encoded), dtype=np.int64, count=len(names))


def _file_name(r) -> str:
    if r.file_name:
        return r.file_name
    url = r.coco_url or r.flickr_url or ""
    return url.rsplit("/", 1)[-1]


def _validation_error(e: msgspec.ValidationError, key: str, text: bytes, path: str) -> InputError:
    m = _AT.match(str(e))
    msg, idx, rest = m.group(1), m.group(2), m.group(3) or ""
    msg = msg.replace("`", "")
    msg = msg.replace("Expected int <= 9223372036854775807", "expected an integer within int64")
    msg = msg.replace("Expected int >= -9223372036854775808", "expected an integer within int64")
    msg = msg.replace("Expected array of length 4", "expected a list of 4 numbers [x, y, w, h]")
    msg = msg.replace("`int | float | null`", "`float | null`")
    if msg.startswith("Expected"):
        msg = "e" + msg[1:]
    field = rest.lstrip(".").split(".")[0].split("[")[0] if rest else ""
    if msg.startswith("Object missing required field"):
        name = msg.rsplit(" ", 1)[-1]
        msg, field = f"missing required key '{name}'", ""
    if idx is None:
        err = InputError(f"'{key}' must be a list of JSON objects: {msg}", path=path, record=key)
        err.local_index = None
        return err
    i = int(idx)
    rid = _record_id(text, i)
    where = f"field '{field}': " if field else ""
    if msg.startswith("expected object"):
        msg = "record is not a JSON object: " + msg
    err = InputError(where + msg, path=path, record=None)
    err.local_index, err.section, err.rid = i, key, rid
    return err


def _record_id(text: bytes, i: int):
    try:
        raw = msgspec.json.decode(text, type=list[msgspec.Raw])[i]
        rec = msgspec.json.decode(raw)
        rid = rec.get("id") if isinstance(rec, dict) else None
        return rid if is_int(rid) or isinstance(rid, str) else None
    except (msgspec.DecodeError, IndexError, RecursionError):
        return None


def _decode_error(e: msgspec.DecodeError, base: int, path: str) -> InputError:
    msg = str(e)
    m = _BYTE.search(msg)
    if m:
        msg = _BYTE.sub(f"(byte {base + int(m.group(1))})", msg)
    msg = msg.replace("JSON is malformed: ", "malformed JSON: ")
    return InputError(msg, path=path)


# ------------------------------------------------------------------------------------------
# the whole document
def decode_categories(data: bytes, base: int, path: str) -> list:
    """Decode the ``categories`` member into typed records."""
    try:
        return _DECODERS["categories"].decode(data)
    except msgspec.ValidationError as e:
        err = _validation_error(e, "categories", data, path)
        raise _globalise(err, 0) from None
    except msgspec.DecodeError as e:
        raise _decode_error(e, base, path) from None
    except RecursionError:  # (data[0] lies at document offset base + 1: see assemble)
        raise parser_nesting_error(data, base + 1, path, outer=1) from None


def _globalise(err: InputError, first: int) -> InputError:
    if getattr(err, "local_index", None) is None:
        return err
    i = first + err.local_index
    rid = f" (id {err.rid})" if err.rid is not None else ""
    return InputError(err.message, path=err.path, record=f"{err.section}[{i}]{rid}")


def assemble(path: str, skeleton, members: dict, img_parts: list, ann_parts: list, flavour: str | None) -> Dataset:
    """Validate the decoded columns (one columnar pass) and build the :class:`Dataset`.

    ``skeleton`` is the decoded top level (placeholders for containers), ``members`` maps a
    top-level key to ``("array"|"object", bytes or None, offset)`` for the non-chunked members,
    ``img_parts``/``ann_parts`` the decoded chunks in file order.
    """
    info = _decode_info(members, path)
    _check_top_level(skeleton, members, path)
    _, cdata, coff = members["categories"]
    if cdata is None:
        raise InputError("'categories' is larger than 512 MiB", path=path, record="categories")
    cats = decode_categories(cdata, coff - 1, path)
    cat_ids, extra = _category_columns(cats, path)
    img_ids, widths, heights, file_names, ragged = _image_columns(img_parts, cat_ids, path)
    if flavour is None:
        flavour = _detect(cats, img_parts, ann_parts, info, cat_ids)
    ann_ids, img_index, cat_index, boxes, crowd, area, integer_boxes = _annotation_columns(
        ann_parts, img_ids, cat_ids, flavour == "objects365", path
    )
    return Dataset(
        image_ids=img_ids,
        widths=widths,
        heights=heights,
        file_names=file_names,
        boxes=boxes,
        box_image=img_index,
        box_category=cat_index,
        box_ids=ann_ids,
        crowd=crowd,
        area=area,
        integer_boxes=integer_boxes,
        category_ids=cat_ids,
        category_names=np.array([c.name for c in cats], dtype=object),
        neg_category_ids=ragged.get("neg_category_ids"),
        not_exhaustive_category_ids=ragged.get("not_exhaustive_category_ids"),
        format=flavour,
        path=str(path),
        info=info if isinstance(info, dict) else {},
        **extra,
    )


def _decode_info(members: dict, path: str):
    """The top-level ``info`` object decoded ({} when absent or not an object)."""
    info = {}
    if "info" in members and members["info"][1] is not None and members["info"][0] == "object":
        try:
            info = msgspec.json.decode(members["info"][1])
        except msgspec.DecodeError as e:
            raise _decode_error(e, members["info"][2], path) from None
        except RecursionError:
            raise parser_nesting_error(members["info"][1], members["info"][2], path, outer=1) from None
    return info


def _check_top_level(skeleton, members: dict, path: str) -> None:
    """``images``, ``annotations`` and ``categories`` present and lists (a category-statistics file named as such)."""
    if "categories" in skeleton and "images" not in skeleton and "annotations" not in skeleton:
        raise InputError(
            "this is a category-statistics file (categories only, no images or annotations): "
            "`imbalance margins` and `imbalance groups` accept it; `stats` needs a full annotation file",
            path=path,
        )
    for key in ("images", "annotations", "categories"):
        if key not in skeleton:
            raise InputError(f"missing required top-level key '{key}'", path=path)
        kind = _kind(skeleton[key], members.get(key))
        if kind != "array":
            raise InputError(f"'{key}' must be a list, got {kind}", path=path, record=key)


def _category_columns(cats: list, path: str):
    """Category ids (checked unique) and the optional per-category columns (LVIS frequency and counts, ...)."""
    cat_ids = np.array([c.id for c in cats], dtype=np.int64)
    _check_unique(cat_ids, "categories", "category id", path)
    extra = {}
    if any(c.frequency is not UNSET for c in cats):
        extra["frequency"] = np.array(
            [c.frequency or "" if c.frequency is not UNSET else "" for c in cats], dtype=object
        )
    for src, dst in (("image_count", "category_image_count"), ("instance_count", "category_instance_count")):
        vals = [getattr(c, src) for c in cats]
        if any(v is not UNSET for v in vals):
            extra[dst] = np.array([-1 if (v is UNSET or v is None) else v for v in vals], dtype=np.int64)
    for key in ("supercategory", "synset"):
        vals = [getattr(c, key) for c in cats]
        if any(v is not UNSET for v in vals):
            extra[key] = np.array([v or "" if v is not UNSET else "" for v in vals], dtype=object)

    return cat_ids, extra


def _image_columns(img_parts: list, cat_ids: np.ndarray, path: str):
    """Image ids (unique), sizes (checked), file names and the LVIS per-image category lists."""
    n_img = sum(p["n"] for p in img_parts)
    img_ids = _take(img_parts, "ids", np.int64)
    widths = _take(img_parts, "widths", np.float64)
    heights = _take(img_parts, "heights", np.float64)
    offsets = np.zeros(n_img + 1, dtype=np.int64)
    np.cumsum(_take(img_parts, "file_name_bytes", np.int64), out=offsets[1:])
    blob = np.frombuffer(b"".join([p.pop("file_name_blob") for p in img_parts]), dtype=np.uint8)
    file_names = LazyStrings(blob, offsets)
    _check_unique(img_ids, "images", "image id", path)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(widths) & np.isfinite(heights) & (widths > 0) & (heights > 0)
        big = ok & ((widths > MAX_IMAGE_SIDE) | (heights > MAX_IMAGE_SIDE))
        small = ok & ((widths < 1) | (heights < 1))
    bad = np.flatnonzero(~ok | big | small)
    if len(bad):
        i = int(bad[0])
        what = (
            f"image width and height must be at most {MAX_IMAGE_SIDE:,} pixels"
            if big[i]
            else SUBPIXEL_IMAGE
            if small[i]
            else "image width and height must be positive finite numbers"
        )
        raise InputError(
            f"{what}, got {widths[i]:g} x {heights[i]:g}", path=path, record=f"images[{i}] (id {int(img_ids[i])})"
        )
    ragged = {}
    for key in ("neg_category_ids", "not_exhaustive_category_ids"):
        if any(key in p for p in img_parts):
            lengths = _cat([p[key][0] if key in p else np.zeros(p["n"], np.int64) for p in img_parts], np.int64)
            values = _cat([p[key][1] for p in img_parts if key in p], np.int64)
            offsets = np.zeros(n_img + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            r = Ragged(offsets, values)
            undefined = ~np.isin(values, cat_ids)
            if undefined.any():
                j = int(np.flatnonzero(undefined)[0])
                i = int(np.searchsorted(offsets, j, side="right") - 1)
                raise InputError(
                    f"'{key}' names category {int(values[j])}, which is not defined in 'categories'",
                    path=path,
                    record=f"images[{i}] (id {int(img_ids[i])})",
                )
            ragged[key] = r

    return img_ids, widths, heights, file_names, ragged


def _annotation_columns(ann_parts: list, img_ids: np.ndarray, cat_ids: np.ndarray, tolerant: bool, path: str):
    """Annotation ids, image and category rows, xyxy boxes, crowd flags, areas and integer flags; ``tolerant``
    (Objects365) accepts boolean crowd flags and numbers missing ids."""
    starts = np.cumsum([0] + [p["n"] for p in ann_parts])
    for k, p in enumerate(ann_parts):
        if p["bad_crowd"] is not None:
            i, v = p["bad_crowd"]
            raise InputError(
                f"field 'iscrowd': must be 0 or 1, got {v!r}",
                path=path,
                record=_ann_rec(int(starts[k]) + i, p["box_ids"][i]),
            )
        if p["bool_crowd"] >= 0 and not tolerant:
            i = p["bool_crowd"]
            raise InputError(
                "field 'iscrowd': must be 0 or 1, got a boolean (accepted only for Objects365)",
                path=path,
                record=_ann_rec(int(starts[k]) + i, p["box_ids"][i]),
            )
    missing = [(k, p["missing_id"]) for k, p in enumerate(ann_parts) if p["missing_id"] >= 0]
    n_box = int(starts[-1])
    if missing and tolerant:
        ann_ids = np.arange(1, n_box + 1, dtype=np.int64)
    else:
        if missing:
            k, i = missing[0]
            raise InputError("missing required key 'id'", path=path, record=f"annotations[{int(starts[k]) + i}]")
        ann_ids = _take(ann_parts, "box_ids", np.int64)
        _check_unique(ann_ids, "annotations", "annotation id", path)
    ann_img = _take(ann_parts, "image_id", np.int64)
    ann_cat = _take(ann_parts, "category_id", np.int64)
    img_index = _lookup(img_ids, ann_img, ann_ids, "image_id", "image", path)
    cat_index = _lookup(cat_ids, ann_cat, ann_ids, "category_id", "category", path)
    del ann_img, ann_cat
    boxes = _take(ann_parts, "xywh", np.float64).reshape(-1, 4)
    with np.errstate(over="ignore", invalid="ignore"):
        boxes[:, 2] += boxes[:, 0]
        boxes[:, 3] += boxes[:, 1]
    crowd = _take(ann_parts, "crowd", bool)
    area = _take(ann_parts, "area", np.float64)
    integer_boxes = _take(ann_parts, "integer_bbox", bool)
    return ann_ids, img_index, cat_index, boxes, crowd, area, integer_boxes


def _kind(value, member) -> str:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], int):
        return "array"
    if isinstance(value, dict) and "#" in value:
        return "an object"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else "something else"


def _detect(cats, img_parts, ann_parts, info, cat_ids) -> str:
    if any(c.frequency is not UNSET or c.image_count is not UNSET for c in cats[:2000]):
        return "lvis"
    if any("neg_category_ids" in p or "not_exhaustive_category_ids" in p for p in img_parts):
        return "lvis"
    if isinstance(info, dict) and "objects365" in str(info.get("description", "")).lower().replace(" ", ""):
        return "objects365"
    if (
        len(cat_ids) == 365
        and set(cat_ids.tolist()) == set(range(1, 366))
        and ann_parts
        and not ann_parts[0].get("crowd_given_first_100", True)
    ):
        return "objects365"
    return "coco"


def _ann_rec(i: int, rid) -> str:
    return f"annotations[{i}]" + (f" (id {int(rid)})" if rid is not None and int(rid) >= 0 else "")


def _take(parts: list, key: str, dtype) -> np.ndarray:
    """Column ``key`` of the chunk results in one array: the one the loader put together (``parts[0]["columns"]``,
    see :mod:`imbalance_cli.data.stream`), else copied piece by piece into one array as each piece is released.

    The result is allocated once and every chunk's piece is dropped as soon as it is copied, so
    the peak is the chunk results plus nothing (``np.concatenate`` would hold the result and every
    piece at once: +0.8 GB for the boxes of a full-size Objects365 file).
    """
    whole = parts[0].get("columns", {}).pop(key, None) if parts else None
    if whole is not None:
        for p in parts:
            p.pop(key, None)
        return whole.astype(dtype, copy=False)
    total = sum(len(p[key]) for p in parts)
    first = parts[0][key] if parts else np.zeros(0, dtype=dtype)
    out = np.empty((total,) + first.shape[1:], dtype=dtype)
    at = 0
    for p in parts:
        piece = p.pop(key)
        out[at : at + len(piece)] = piece
        at += len(piece)
        del piece
    return out


def _cat(parts: list, dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)


def _check_unique(ids: np.ndarray, section: str, what: str, path: str) -> None:
    if len(ids) < 2 or bool((ids[1:] > ids[:-1]).all()):  # increasing (as files are usually written): no sort
        return
    order = np.argsort(ids, kind="stable")
    s = ids[order]
    dup = np.flatnonzero(s[1:] == s[:-1])
    if len(dup):
        j = int(order[dup[0] + 1])
        raise InputError(f"duplicate {what} {int(s[dup[0]])}", path=path, record=f"{section}[{j}]")


def _lookup(defined: np.ndarray, refs: np.ndarray, ann_ids: np.ndarray, key: str, what: str, path: str) -> np.ndarray:
    """Map referenced ids to row indices of ``defined``; an undefined id is an error naming the record."""
    if len(refs) == 0:
        return np.zeros(0, dtype=np.int64)
    index, ok = index_of(defined, refs)
    if ok is not None:
        i = int(np.flatnonzero(~ok)[0])
        raise InputError(
            f"{key} {int(refs[i])} refers to an undefined {what}", path=path, record=_ann_rec(i, ann_ids[i])
        )
    return index


def from_dict(d: dict, path: str, flavour: str = "coco") -> Dataset:
    """Build a :class:`Dataset` from a parsed COCO-style dict, through the same decoder and validation as files.

    Raises :class:`InputError` naming the file and the first bad record.
    """
    import orjson

    if not isinstance(d, dict):
        raise InputError("expected a JSON object with 'images', 'annotations' and 'categories'", path=path)
    try:
        data = orjson.dumps(d)
    except (TypeError, orjson.JSONEncodeError) as e:
        raise InputError(f"cannot re-encode the document: {e}", path=path) from None
    from imbalance_cli.data._io import bytes_stream
    from imbalance_cli.data.stream import load_json_stream

    stream, raw = bytes_stream(data)
    return load_json_stream(stream, raw, str(path), flavour=flavour, workers=1)
