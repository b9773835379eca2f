"""``load(path, format=None)``: detect an annotation file's format from its content and load it.

Detection (``format=None``), after transparent gzip decompression:

* a directory, or a document whose root element is ``<annotation>`` -> ``voc``;
* a CSV whose header has ``ImageID`` and ``LabelName`` -> ``openimages``;
* a JSON object with ``images``/``annotations``/``categories`` ->
  ``lvis`` if any category has ``frequency``/``image_count`` or any image has
  ``neg_category_ids``/``not_exhaustive_category_ids``; ``objects365`` if its ``info`` names
  Objects365 or it defines exactly the 365 Objects365 category ids 1..365 with annotations
  lacking ``iscrowd``; else ``coco``.

``format=`` (the CLI's ``--format``) overrides detection.
"""

from __future__ import annotations

import os
from pathlib import Path

from imbalance_cli import dist
from imbalance_cli.data import coco, openimages, voc, yolo
from imbalance_cli.data._io import parse_json, read_bytes
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError

FORMATS = ("coco", "lvis", "objects365", "openimages", "voc", "yolo")


def load(path: str | os.PathLike, format: str | None = None, *, classes=None, image_sizes=None) -> Dataset:
    """Load an annotation file (or a VOC directory) into a columnar :class:`Dataset`.

    Parameters
    ----------
    path:
        COCO / LVIS / Objects365 JSON, Open Images box CSV, VOC XML file or directory; ``.gz`` accepted.
    format:
        One of :data:`FORMATS` to skip detection.
    classes:
        Open Images only: ``class-descriptions-boxable.csv`` (default: looked for beside ``path``).
    image_sizes:
        Open Images only: CSV ``ImageID,Width,Height``; without it boxes stay normalised.

    Raises
    ------
    InputError
        One-line, actionable message naming the file and record, for anything malformed.
    """
    return dist.load_shared(_load, path, format, classes=classes, image_sizes=image_sizes)


def _load(path, format, *, classes, image_sizes) -> Dataset:
    p = Path(path)
    if format is not None and format not in FORMATS:
        raise InputError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}", path=p)
    if format == "yolo" or (format is None and image_sizes is None and yolo.is_yolo_path(p)):  # YOLO: data.yaml or labels dir
        return yolo.load(p, classes=classes)
    if (classes is not None or image_sizes is not None) and format not in (None, "openimages"):
        raise InputError("--classes and --image-sizes apply to Open Images CSV only", path=p)
    if p.is_dir():
        if format not in (None, "voc"):
            raise InputError(f"a directory can only be read as Pascal VOC, not {format}", path=p)
        return voc.load(p)
    data = read_bytes(p)
    fmt = format or detect_format(data, p)
    if fmt == "voc":
        return voc.load(p)
    if fmt == "openimages":
        return openimages.load(p, data=data, classes=classes, image_sizes=image_sizes)
    if classes is not None or image_sizes is not None:
        raise InputError("--classes and --image-sizes apply to Open Images CSV only", path=p)
    d = parse_json(data, p, drop_polygons=True)
    del data  # the raw bytes are no longer needed: lower peak memory on large files
    if fmt is None:
        fmt = _detect_json(d, p)
    return coco.from_dict(d, str(p), flavour=fmt)


def detect_format(data: bytes, path) -> str | None:
    """Guess the format from the first bytes; ``None`` means JSON (decided after parsing)."""
    head = data.lstrip()[:4096]
    if head[:1] in (b"{", b"["):
        return None
    if head[:1] == b"<":
        return "voc"
    first_line = head.split(b"\n", 1)[0].decode("utf-8", "replace")
    if "ImageID" in first_line and "LabelName" in first_line:
        return "openimages"
    raise InputError(
        "unrecognised annotation format (expected COCO/LVIS/Objects365 JSON, Open Images CSV or VOC XML); "
        "pass --format to force one", path=path)


def _detect_json(d, path) -> str:
    if isinstance(d, list) or (isinstance(d, dict) and "categories" in d and "annotations" not in d and "images" not in d):
        raise InputError(
            "this is a category-statistics file (categories only, no images or annotations): "
            "`imbalance margins` and `imbalance groups` accept it; `stats` needs a full annotation file", path=path)
    if not isinstance(d, dict) or not {"images", "annotations", "categories"} & set(d):
        raise InputError("unrecognised JSON: expected a COCO-style object with images, annotations and categories", path=path)
    cats = d.get("categories") or []
    images = d.get("images") or []
    if any(isinstance(c, dict) and ("frequency" in c or "image_count" in c) for c in cats[:2000]) or any(
        isinstance(im, dict) and ("neg_category_ids" in im or "not_exhaustive_category_ids" in im) for im in images[:1000]
    ):
        return "lvis"
    info = d.get("info")
    if isinstance(info, dict) and "objects365" in str(info.get("description", "")).lower().replace(" ", ""):
        return "objects365"
    anns = d.get("annotations") or []
    ids = {c.get("id") for c in cats if isinstance(c, dict)}
    if ids == set(range(1, 366)) and anns and all(isinstance(a, dict) and "iscrowd" not in a for a in anns[:100]):
        return "objects365"
    return "coco"
