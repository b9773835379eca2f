"""``LoadSpec``: how to load an annotation file, resolved once from CLI or API arguments."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from imbalance_cli.choices import Choice
from imbalance_cli.errors import InputError
from imbalance_cli.values import is_int


class Format(Choice):
    """Annotation formats :func:`imbalance_cli.load` reads (``--format`` choices)."""

    coco = "coco"
    lvis = "lvis"
    objects365 = "objects365"
    openimages = "openimages"
    voc = "voc"
    yolo = "yolo"


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class LoadSpec:
    """Typed, validated loading options.

    Attributes
    ----------
    format: a :class:`Format`, or None to detect it from the content.
    classes: Open Images ``class-descriptions-boxable.csv`` (default: looked for beside the file).
    image_sizes: Open Images ``ImageID,Width,Height`` CSV.
    workers: processes decoding JSON chunks (>= 1; default: the machine's cores). Results do not depend on it.
    cache: use the columnar cache in ``$IMBALANCE_CACHE`` (see :mod:`imbalance_cli.data.cache`).
    strict: reserved for the analyses (an invalid box is fatal); loading itself is always strict about structure.
    yolo_version: whose rules a YOLO dataset is read by: 8 (Ultralytics 8.x, default) or 5 (YOLOv5 7.0).
    """

    format: Format | None = None
    classes: Path | None = None
    image_sizes: Path | None = None
    workers: int = 1
    cache: bool = True
    strict: bool = False
    yolo_version: int = 8

    @classmethod
    def build(
        cls, format=None, classes=None, image_sizes=None, workers=None, cache=True, strict=False, yolo_version=None
    ) -> "LoadSpec":
        """Validate raw arguments (strings, paths, ints) into a spec; bad values raise :class:`InputError`."""
        fmt = None
        if format is not None:
            value = format.value if isinstance(format, Format) else str(format).lower()
            try:
                fmt = Format(value)
            except ValueError:
                raise InputError(
                    f"unknown format {format!r}; choose one of {', '.join(f.value for f in Format)}"
                ) from None
        if workers is None:
            workers = default_workers()
        if not is_int(workers) or workers < 1 or workers > 1024:
            raise InputError(f"--workers must be an integer from 1 to 1024, got {workers!r}")
        if image_sizes is not None and fmt not in (None, Format.openimages):
            raise InputError("--image-sizes applies to Open Images CSV only")
        if classes is not None and fmt not in (None, Format.openimages, Format.yolo):
            raise InputError("--classes applies to Open Images CSV and YOLO labels folders only")
        if yolo_version is None:
            yolo_version = 8
        elif str(yolo_version).strip() not in ("5", "8") or isinstance(yolo_version, bool):
            raise InputError(f"--yolo-version must be 8 (Ultralytics 8.x) or 5 (YOLOv5 7.0), got {yolo_version!r}")
        elif fmt not in (None, Format.yolo):
            raise InputError("--yolo-version applies to YOLO datasets only")
        return cls(
            format=fmt,
            classes=None if classes is None else Path(classes),
            image_sizes=None if image_sizes is None else Path(image_sizes),
            workers=workers,
            cache=bool(cache),
            strict=bool(strict),
            yolo_version=int(str(yolo_version).strip()),
        )
