"""Load an annotation file and list every structural problem instead of stopping at the first.

:func:`imbalance_cli.data.load` refuses a malformed file with one :class:`InputError` naming the
first bad record; that is right for ``stats`` but a dataset check wants the whole list.
:func:`load_with_problems` runs the ordinary loader first (a healthy file costs one normal load);
only when the loader refuses a COCO-style JSON file does it walk the records, collect every
problem as a :class:`Problem` and load the well-formed rest with the same COCO parser
(:func:`imbalance_cli.data.coco.from_dict`). When the walk finds nothing the loader's own error
stands, so the two never disagree about what is broken. Other formats have no tolerant path:
their loader's error is raised as is.

Problem kinds (the ``check`` rule names): ``missing_field`` (missing or malformed required
field), ``duplicate_id``, ``undefined_image``, ``undefined_category``, ``invalid_image``
(width or height not a finite number from 1 to ``MAX_IMAGE_SIDE`` pixels).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from imbalance_cli.data import coco
from imbalance_cli.data._io import MAX_IMAGE_SIDE, NESTING_ERROR, parse_json, read_bytes
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.data.detect import FORMATS, _detect_json, load, refuse_settings_file
from imbalance_cli.errors import InputError
from imbalance_cli.values import is_int, is_number


@dataclass(frozen=True)
class Problem:
    """One structurally broken record.

    ``record`` locates it (``"annotations[3] (id 7)"``), ``message`` says what is wrong;
    ``annotation_id``, ``image_id`` and ``file_name`` are set where the record has them.
    """

    kind: str
    record: str
    message: str
    annotation_id: int | None = None
    image_id: int | None = None
    file_name: str | None = None

    def describe(self) -> str:
        """``record: message`` in one line."""
        return f"{self.record}: {self.message}"


def load_with_problems(
    path: str | os.PathLike, format: str | None = None, yolo_version: int | None = None
) -> tuple[Dataset, list[Problem]]:
    """Load ``path`` like :func:`imbalance_cli.data.load`, listing structural problems of COCO-style JSON.

    Returns ``(dataset, problems)``: for a file the loader accepts, its dataset and ``[]``; for a
    COCO/LVIS/Objects365 file it refuses, the dataset of its well-formed records and every broken
    record. Anything else the loader refuses (unreadable file, malformed JSON, another format's
    error) is raised as :class:`InputError`.
    """
    p = Path(path)
    refuse_settings_file(p)
    if format is not None and format not in FORMATS:
        raise InputError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}", path=p)
    try:
        return load(p, format=format, yolo_version=yolo_version), []
    except InputError as refused:
        if format not in (None, "coco", "lvis", "objects365") or not p.is_file() or NESTING_ERROR in refused.message:
            raise  # (a document nested past the loader's parser is refused as a whole, not walked record by record)
        data = read_bytes(p)
        if data.lstrip()[:1] not in (b"{", b"["):
            raise
        d = parse_json(data, p)
        del data
        if not isinstance(d, dict) or not ({"images", "annotations"} & set(d)):
            raise
        probe = {
            k: (v if isinstance(v, list) else []) for k, v in d.items() if k in ("images", "annotations", "categories")
        }
        probe["info"] = d.get("info")
        flavour = format or _detect_json(probe, p)
        clean, problems = scan_coco(d, flavour)
        if not problems:
            raise refused
        return coco.from_dict(clean, str(p), flavour=flavour), problems


def _rec(section: str, i: int, rec) -> str:
    rid = rec.get("id") if isinstance(rec, dict) else None
    return f"{section}[{i}]" + (f" (id {rid})" if rid is not None else "")


def _is_int(v) -> bool:
    """An integer or an integral float (``1.0``): what the loaders read as an id."""
    return is_int(v) or (isinstance(v, float) and v.is_integer())


def _int_or_none(v) -> int | None:
    return int(v) if _is_int(v) else None


def scan_coco(d: dict, flavour: str = "coco") -> tuple[dict, list[Problem]]:
    """Walk a parsed COCO-style dict record by record (``flavour``: coco, lvis or objects365).

    Returns ``(clean, problems)``: a copy holding only the well-formed records (which the COCO
    loader accepts) and one :class:`Problem` per broken record, in file order per section.
    """
    problems: list[Problem] = []
    sections = _sections(d, problems)
    cats, cat_ids = _scan_categories(sections["categories"], problems)
    images, img_ids, names = _scan_images(sections["images"], problems)
    # Objects365 files may omit annotation ids (numbered in file order)
    anns = _scan_annotations(
        sections["annotations"], problems, cat_ids, img_ids, names, images, tolerant_ann_id=flavour == "objects365"
    )
    clean = {k: v for k, v in d.items() if k not in ("images", "annotations", "categories")}
    clean.update(images=images, annotations=anns, categories=cats)
    return clean, problems


def _sections(d: dict, problems: list) -> dict:
    """The three record lists of ``d`` (an empty list for a missing or non-list one, reported)."""
    sections = {}
    for key in ("images", "annotations", "categories"):
        v = d.get(key)
        if v is None:
            problems.append(Problem("missing_field", "top level", f"missing '{key}'"))
            v = []
        elif not isinstance(v, list):
            problems.append(Problem("missing_field", "top level", f"'{key}' is not a list"))
            v = []
        sections[key] = v
    return sections


def _scan_categories(records: list, problems: list) -> tuple[list, set]:
    """The well-formed categories and their ids; a problem per broken one."""
    cats, cat_ids = [], set()
    for i, c in enumerate(records):
        where = _rec("categories", i, c)
        if not isinstance(c, dict):
            problems.append(Problem("missing_field", f"categories[{i}]", "not an object"))
            continue
        miss = [k for k in ("id", "name") if k not in c]
        if miss:
            problems.append(Problem("missing_field", where, f"missing {', '.join(repr(k) for k in miss)}"))
        elif not _is_int(c["id"]):
            problems.append(Problem("missing_field", where, "'id' is not an integer"))
        elif int(c["id"]) in cat_ids:
            problems.append(Problem("duplicate_id", where, "duplicate category id"))
        else:
            cat_ids.add(int(c["id"]))
            cats.append(c)
    return cats, cat_ids


def _scan_images(records: list, problems: list) -> tuple[list, set, dict]:
    """The well-formed images, every defined image id (a broken size still defines it), file names by id."""
    images, img_ids, names = [], set(), {}
    for i, im in enumerate(records):
        where = _rec("images", i, im)
        if not isinstance(im, dict):
            problems.append(Problem("missing_field", f"images[{i}]", "not an object"))
            continue
        iid = _int_or_none(im.get("id"))
        fname = str(im.get("file_name") or "") or str(im.get("coco_url") or "").rsplit("/", 1)[-1] or None
        miss = [k for k in ("id", "width", "height") if k not in im]
        if miss:
            problems.append(
                Problem(
                    "missing_field", where, f"missing {', '.join(repr(k) for k in miss)}", image_id=iid, file_name=fname
                )
            )
            continue
        if iid is None:
            problems.append(Problem("missing_field", where, "'id' is not an integer", file_name=fname))
            continue
        if iid in img_ids:
            problems.append(Problem("duplicate_id", where, "duplicate image id", image_id=iid, file_name=fname))
            continue
        w, h = im["width"], im["height"]
        img_ids.add(iid)  # defined, even if its size is broken
        names[iid] = fname
        if not (
            is_number(w)
            and is_number(h)
            and math.isfinite(w)
            and math.isfinite(h)
            and 1 <= w <= MAX_IMAGE_SIDE
            and 1 <= h <= MAX_IMAGE_SIDE
        ):
            problems.append(
                Problem("invalid_image", where, f"width {w!r}, height {h!r}", image_id=iid, file_name=fname)
            )
            continue
        images.append(im)
    return images, img_ids, names


def _scan_annotations(
    records: list, problems: list, cat_ids: set, img_ids: set, names: dict, images: list, tolerant_ann_id: bool
) -> list:
    """The well-formed annotations of defined, valid images and defined categories; a problem per broken one."""
    good_img = {int(im["id"]) for im in images}
    anns, ann_ids = [], set()
    required = ("image_id", "category_id", "bbox") if tolerant_ann_id else ("id", "image_id", "category_id", "bbox")
    for i, a in enumerate(records):
        where = _rec("annotations", i, a)
        if not isinstance(a, dict):
            problems.append(Problem("missing_field", f"annotations[{i}]", "not an object"))
            continue
        aid, iid = _int_or_none(a.get("id")), _int_or_none(a.get("image_id"))
        ids = {"annotation_id": aid, "image_id": iid, "file_name": names.get(iid)}

        def add(kind, message):
            problems.append(Problem(kind, where, message, **ids))

        miss = [k for k in required if k not in a]
        if miss:
            add("missing_field", f"missing {', '.join(repr(k) for k in miss)}")
            continue
        bad = [k for k in ("id", "image_id", "category_id") if k in a and not _is_int(a[k])]
        if bad:
            add("missing_field", f"{', '.join(repr(k) for k in bad)} not an integer")
            continue
        b = a["bbox"]
        if not isinstance(b, list) or len(b) != 4 or any(v is not None and not is_number(v) for v in b):
            add("missing_field", f"'bbox' is not [x, y, w, h], got {b!r}"[:200])
            continue
        if "id" in a:
            if aid in ann_ids:
                add("duplicate_id", "duplicate annotation id")
                continue
            ann_ids.add(aid)
        if iid not in img_ids:
            add("undefined_image", f"image_id {a['image_id']} is not defined")
            continue
        if int(a["category_id"]) not in cat_ids:
            add("undefined_category", f"category_id {a['category_id']} is not defined")
            continue
        if iid not in good_img:
            continue  # its image is already reported as invalid_image
        if a.get("iscrowd", 0) not in (0, 1, True, False, None):
            add("missing_field", f"'iscrowd' must be 0 or 1, got {a.get('iscrowd')!r}")
            continue
        anns.append(a)
    return anns
