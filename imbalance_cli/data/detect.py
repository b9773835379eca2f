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
import zlib
from pathlib import Path

from imbalance_cli import dist, memory
from imbalance_cli.data import cache as _cache
from imbalance_cli.data import openimages, voc, yolo
from imbalance_cli.data._io import BOM, check_regular, line_col, open_stream
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.data.spec import Format, LoadSpec
from imbalance_cli.errors import InputError

FORMATS = tuple(f.value for f in Format)


def load(
    path: str | os.PathLike,
    format: str | None = None,
    *,
    classes=None,
    image_sizes=None,
    workers: int | None = None,
    cache: bool = True,
    spec: LoadSpec | None = None,
    yolo_version: int | None = None,
) -> Dataset:
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
    workers:
        Processes decoding JSON chunks (default: the machine's cores); the result does not depend on it.
    cache:
        Read and write the columnar cache (:mod:`imbalance_cli.data.cache`); JSON and CSV files only.
    spec:
        A :class:`~imbalance_cli.data.spec.LoadSpec` instead of the keyword arguments above.
    yolo_version:
        YOLO only: count as Ultralytics 8.x reads the dataset (8, default) or as YOLOv5 7.0 does (5).

    Raises
    ------
    InputError
        One-line, actionable message naming the file and record, for anything malformed.
    """
    # under torchrun: rank 0 loads and broadcasts (or every rank loads: IMBALANCE_DIST_LOAD=each)
    ds = dist.load_shared(
        _load,
        path,
        format,
        classes=classes,
        image_sizes=image_sizes,
        workers=workers,
        cache=cache,
        spec=spec,
        yolo_version=yolo_version,
    )
    memory.release_free_memory()  # what parsing freed goes back to the system (imbalance_cli.memory)
    return ds


_JSON_FAMILY = (None, "coco", "lvis", "objects365")


def _load(path, format, *, classes, image_sizes, workers, cache, spec, yolo_version=None) -> Dataset:
    try:
        return _load_as(
            path,
            format,
            classes=classes,
            image_sizes=image_sizes,
            workers=workers,
            cache=cache,
            spec=spec,
            yolo_version=yolo_version,
        )
    except InputError as e:
        forced = format if spec is None else (None if spec.format is None else spec.format.value)
        raise _wrong_format(e, Path(path), forced) from None


def _wrong_format(e: InputError, p: Path, forced: str | None) -> InputError:
    """``e`` with a pointer to the right ``--format`` when a forced format refused a file of another kind (e.g.
    ``--format voc`` on COCO JSON fails as "malformed XML": say it is JSON)."""
    if forced is None:
        return e
    try:
        if yolo.is_yolo_path(p):
            found = "yolo"
        elif os.path.isdir(p):
            found = "voc"
        else:
            found = detect_format(_head(p), p)
    except (InputError, OSError):
        return e
    if found == forced or (found in _JSON_FAMILY and forced in _JSON_FAMILY):
        return e
    kind = {
        "voc": "Pascal VOC XML",
        "openimages": "an Open Images box CSV",
        "yolo": "a YOLO data.yaml or labels folder",
    }.get(found, "COCO-style JSON")
    fix = "--format coco (or lvis / objects365)" if found is None else f"--format {found}"
    return InputError(
        f"{e.message}; the file is {kind}, not {forced}: leave --format out or pass {fix}",
        path=e.path or p,
        record=e.record,
    )


def _load_as(path, format, *, classes, image_sizes, workers, cache, spec, yolo_version=None) -> Dataset:
    p = Path(path)
    if spec is None:
        try:
            spec = LoadSpec.build(
                format=format,
                classes=classes,
                image_sizes=image_sizes,
                workers=workers,
                cache=cache,
                yolo_version=yolo_version,
            )
        except InputError as e:
            raise InputError(e.message, path=p) from None
    fmt = None if spec.format is None else spec.format.value
    st = check_regular(p, allow_dir=True)
    refuse_settings_file(p)
    if fmt == "yolo" or (fmt is None and spec.image_sizes is None and yolo.is_yolo_path(p)):  # data.yaml or labels dir
        return yolo.load(p, classes=spec.classes, cache=spec.cache, version=spec.yolo_version, strict=spec.strict)
    if spec.yolo_version != 8:
        raise InputError("--yolo-version applies to YOLO datasets (data.yaml or a labels folder) only", path=p)
    if os.path.isdir(p):
        if fmt not in (None, "voc"):
            raise InputError(f"a directory can only be read as Pascal VOC, not {fmt}", path=p)
        _no_side_files(spec, p, "a Pascal VOC directory")
        return voc.load(p)
    if st.st_size == 0:
        raise InputError("file is empty", path=p)
    if fmt is None:
        fmt = detect_format(_head(p), p)
    if fmt == "voc":
        _no_side_files(spec, p, "Pascal VOC XML")
        return voc.load(p)
    if fmt != "openimages" and (spec.classes is not None or spec.image_sizes is not None):
        raise InputError("--classes and --image-sizes apply to Open Images CSV only", path=p)
    key = _cache_key(p, fmt, spec) if spec.cache else None
    if key is not None:
        ds = _cache.load(key)
        if ds is not None:
            ds.path = str(p)
            return ds
    if fmt == "openimages":
        ds = openimages.load(p, classes=spec.classes, image_sizes=spec.image_sizes)
    else:
        from imbalance_cli.data.stream import load_json_file

        try:
            ds = load_json_file(lambda: open_stream(p), str(p), flavour=fmt, workers=spec.workers, total=st.st_size)
        except InputError as e:
            raise _with_line(e, p) from None
    if key is not None:
        _cache.save(key, ds)
    return ds


def _cache_key(p: Path, fmt: str, spec: LoadSpec):
    """The columnar cache's key of ``p`` read as ``fmt``, Open Images' side files included (None: no key)."""
    options = {"format": fmt or "", "loader": "json" if fmt != "openimages" else "csv"}
    if fmt == "openimages":
        classes_file = spec.classes
        if classes_file is None and (p.parent / openimages.CLASSES_FILE).is_file():
            classes_file = p.parent / openimages.CLASSES_FILE
        for name, side in (("classes", classes_file), ("image_sizes", spec.image_sizes)):
            if side is not None:
                check_regular(side)
                options[name] = Path(side)
    try:
        return _cache.key_for(p, options)
    except OSError:
        return None


def _no_side_files(spec: LoadSpec, p: Path, what: str) -> None:
    if spec.classes is not None or spec.image_sizes is not None:
        raise InputError(f"--classes and --image-sizes do not apply to {what} (Open Images CSV only)", path=p)


def refuse_settings_file(p: Path) -> None:
    """Refuse a TOML file given where annotations are expected (an anchor preset or a rules file: they are passed
    with ``--anchors`` / ``--rules``, and a command without those options takes neither)."""
    if p.suffix.lower() == ".toml" and p.is_file():
        raise InputError(
            "a TOML file (an anchor preset or a rules file) is not an annotation file: presets are "
            "given with --anchors, rules with `imbalance check --rules`",
            path=p,
        )


def _with_line(e: InputError, p: Path) -> InputError:
    """Add the line and column to a byte offset in a JSON error message."""
    import re

    m = re.search(r"\(byte (\d+)\)", e.message)
    if not m:
        return e
    where = line_col(p, int(m.group(1)))
    if where is None:
        return e
    msg = e.message.replace(m.group(0), f"at line {where[0]}, column {where[1]} (byte {m.group(1)})")
    return InputError(msg, path=e.path, record=e.record)


def _head(p: Path) -> bytes:
    stream, raw = open_stream(p)
    try:
        return stream.read(4096)
    except (EOFError, OSError, zlib.error) as e:
        raise InputError(f"corrupt or truncated gzip data ({e})", path=p) from None
    finally:
        raw.close()


def detect_format(data: bytes, path) -> str | None:
    """Guess the format from the first bytes; ``None`` means COCO-style JSON (flavour decided after parsing)."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    head = data.lstrip()[:4096]
    if not head:
        raise InputError("file is empty", path=path)
    if head[:1] in (b"{", b"["):
        return None
    if head[:1] == b"<":
        return "voc"
    first_line = head.split(b"\n", 1)[0].decode("utf-8", "replace")
    if "ImageID" in first_line and "LabelName" in first_line:
        return "openimages"
    raise InputError(
        "unrecognised annotation format (expected COCO/LVIS/Objects365 JSON, Open Images CSV or VOC XML); "
        "pass --format to force one",
        path=path,
    )


def _detect_json(d, path) -> str:
    """The flavour of an already-parsed COCO-style dict (``imbalance check`` parses whole documents)."""
    if isinstance(d, list) or (
        isinstance(d, dict) and "categories" in d and "annotations" not in d and "images" not in d
    ):
        raise InputError(
            "this is a category-statistics file (categories only, no images or annotations): "
            "`imbalance margins` and `imbalance groups` accept it; `stats` needs a full annotation file",
            path=path,
        )
    if not isinstance(d, dict) or not {"images", "annotations", "categories"} & set(d):
        raise InputError(
            "unrecognised JSON: expected a COCO-style object with images, annotations and categories", path=path
        )
    cats = d.get("categories") if isinstance(d.get("categories"), list) else []
    images = d.get("images") if isinstance(d.get("images"), list) else []
    if any(isinstance(c, dict) and ("frequency" in c or "image_count" in c) for c in cats[:2000]) or any(
        isinstance(im, dict) and ("neg_category_ids" in im or "not_exhaustive_category_ids" in im)
        for im in images[:1000]
    ):
        return "lvis"
    info = d.get("info")
    if isinstance(info, dict) and "objects365" in str(info.get("description", "")).lower().replace(" ", ""):
        return "objects365"
    anns = d.get("annotations") if isinstance(d.get("annotations"), list) else []
    ids = {c.get("id") for c in cats if isinstance(c, dict)}
    if ids == set(range(1, 366)) and anns and all(isinstance(a, dict) and "iscrowd" not in a for a in anns[:100]):
        return "objects365"
    return "coco"
