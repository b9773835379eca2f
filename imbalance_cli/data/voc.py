"""Pascal VOC XML (one file or a directory of them) -> :class:`Dataset`.

* Image size from ``<size><width>/<height>``; file name from ``<filename>``; the image id is the
  file-name stem when it is numeric (``000001.jpg`` -> 1), else the position in sorted order.
* Boxes from ``<bndbox>``: VOC coordinates are 1-based inclusive pixel indices, so, as detectron2
  does, ``xmin`` and ``ymin`` are shifted by -1 to give continuous ``(x1, y1, x2, y2)``
  (``xmin=1, xmax=W`` covers the whole image).
* ``<difficult>`` is kept as a flag (difficult boxes are still valid boxes for statistics).
* Categories: the 20 VOC classes in their standard order (ids 1..20) when every name is one
  of them, otherwise every name found, sorted, ids 1..K.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from imbalance_cli.data._io import MAX_IMAGE_SIDE, SUBPIXEL_IMAGE, read_bytes
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError

VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def _text(node, tag: str, path, record: str, required: bool = True) -> str | None:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        if required:
            raise InputError(f"missing <{tag}>", path=path, record=record)
        return None
    return child.text.strip()


def _number(node, tag, path, record) -> float:
    value = _text(node, tag, path, record)
    try:
        return float(value)
    except ValueError:
        raise InputError(f"<{tag}> must be a number, got {value!r}", path=path, record=record) from None


#: Largest VOC XML file read (one image's annotation is a few kB).
MAX_XML_BYTES = 64 * 1024 * 1024
#: Most tags (``<`` characters) in one VOC XML file, counted before parsing: the element tree costs ~200 bytes
#: per element, so 64 MiB of ``<a/>`` would take ~3 GiB; 500,000 is ~30,000 objects in one image.
MAX_XML_TAGS = 500_000


def parse_file(path, data: bytes | None = None) -> dict:
    """Parse one VOC XML file into a plain dict (file name, size, objects)."""
    data = read_bytes(path, limit=MAX_XML_BYTES, what="a VOC XML file") if data is None else data
    if data.count(b"<") > MAX_XML_TAGS:
        raise InputError(f"more than {MAX_XML_TAGS:,} tags in one VOC annotation file", path=path)
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        line, col = e.position
        raise InputError(f"malformed XML at line {line}, column {col}", path=path) from None
    if root.tag != "annotation":
        raise InputError(f"not a Pascal VOC annotation (root element <{root.tag}>)", path=path)
    size = root.find("size")
    if size is None:
        raise InputError("missing <size>", path=path, record="<annotation>")
    out = {
        "file_name": _text(root, "filename", path, "<annotation>", required=False)
        or Path(path).with_suffix(".jpg").name,
        "width": _number(size, "width", path, "<size>"),
        "height": _number(size, "height", path, "<size>"),
        "objects": [],
    }
    w, h = out["width"], out["height"]
    if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
        raise InputError(
            f"image width and height must be positive finite numbers, got {w:g} x {h:g}", path=path, record="<size>"
        )
    if w < 1 or h < 1:
        raise InputError(f"{SUBPIXEL_IMAGE}, got {w:g} x {h:g}", path=path, record="<size>")
    if w > MAX_IMAGE_SIDE or h > MAX_IMAGE_SIDE:
        raise InputError(
            f"image width and height must be at most {MAX_IMAGE_SIDE:,} pixels, got {w:g} x {h:g}",
            path=path,
            record="<size>",
        )
    for k, obj in enumerate(root.findall("object")):
        record = f"<object> #{k + 1}"
        name = _text(obj, "name", path, record)
        bb = obj.find("bndbox")
        if bb is None:
            raise InputError("missing <bndbox>", path=path, record=record)
        box = [_number(bb, t, path, record) for t in ("xmin", "ymin", "xmax", "ymax")]
        box[0] -= 1.0
        box[1] -= 1.0
        difficult = _text(obj, "difficult", path, record, required=False)
        out["objects"].append((name, box, difficult not in (None, "0")))
    return out


def load(path) -> Dataset:
    """Load a VOC XML file or a directory of VOC XML files (searched recursively)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.xml"))
        if not files:
            raise InputError("no .xml annotation files found in directory", path=path)
    else:
        files = [path]
    parsed = [parse_file(f) for f in files]
    names_found = sorted({o[0] for p in parsed for o in p["objects"]})
    classes = list(VOC_CLASSES) if set(names_found) <= set(VOC_CLASSES) else names_found
    cls_index = {c: i for i, c in enumerate(classes)}
    stems = [os.path.splitext(p["file_name"])[0] for p in parsed]
    if all(s.isdigit() for s in stems) and len(set(stems)) == len(stems):
        image_ids = np.array([int(s) for s in stems], dtype=np.int64)
    else:
        image_ids = np.arange(1, len(parsed) + 1, dtype=np.int64)
    boxes, box_image, box_cat, difficult = [], [], [], []
    for i, p in enumerate(parsed):
        for name, box, diff in p["objects"]:
            boxes.append(box)
            box_image.append(i)
            box_cat.append(cls_index[name])
            difficult.append(diff)
    return Dataset(
        image_ids=image_ids,
        widths=[p["width"] for p in parsed],
        heights=[p["height"] for p in parsed],
        file_names=np.array([p["file_name"] for p in parsed], dtype=object),
        boxes=np.array(boxes, dtype=np.float64).reshape(-1, 4),
        box_image=box_image,
        box_category=box_cat,
        difficult=np.array(difficult, dtype=bool),
        category_ids=np.arange(1, len(classes) + 1),
        category_names=np.array(classes, dtype=object),
        format="voc",
        path=str(path),
    )
