"""Options resolved once: the typed, validated specification of an anchor pass, and the limits.

:class:`AnchorSpec` is built in one place, :meth:`AnchorSpec.build`, from CLI or API arguments
(strings, Enums or numbers) and validated there: the preset with the threshold overrides applied,
the matcher semantics, the device (resolved once), the engine, the negative-IoU sample size, the
spatial histogram bins, the chunk size and the worker count. Everything below (the anchor pass,
the statistics) takes the spec and never re-parses strings. "No anchors" is ``None``, never the
string ``"none"`` (the CLI converts it at the edge, :func:`parse_anchors`).

Limits (checked before anything is allocated; see the README's "Bad input" section):
:data:`MAX_IMAGE_SIDE`, :data:`MAX_ANCHORS_PER_IMAGE`, :data:`MAX_GRID_CELLS`,
:data:`MAX_HISTOGRAM_BINS` (spatial and location histograms, per axis), :data:`MAX_WORKERS`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from imbalance_cli import dist
from imbalance_cli.anchors.presets import AnchorPreset, get_preset
from imbalance_cli.choices import Choice
from imbalance_cli.data.spec import default_workers  # noqa: F401  (one definition, shared with loading)
from imbalance_cli.errors import InputError
from imbalance_cli.values import is_int, is_number

#: Largest image width or height accepted (original pixels) for anchor statistics.
MAX_IMAGE_SIDE = 100_000
#: Largest number of anchors laid on one image (RetinaNet at 1333 x 800 lays 120,087).
MAX_ANCHORS_PER_IMAGE = 10_000_000
#: Largest grid (rows x columns) of one pyramid level on one image.
MAX_GRID_CELLS = 4_000_000
#: Largest number of bins per axis of a 2-D histogram (spatial distribution of positives, box centres).
MAX_HISTOGRAM_BINS = 1000
#: Largest worker-process count.
MAX_WORKERS = 256
#: Default number of images sampled for the negative-anchor IoU histogram on a CPU.
DEFAULT_NEGATIVE_IOU_SAMPLE = 100
#: Default bins per axis of the spatial distribution of positives (survey Fig. 14).
DEFAULT_SPATIAL_BINS = 40
#: Default images per chunk of the anchor pass (memory per chunk is O(boxes of the chunk)).
DEFAULT_CHUNK_IMAGES = 2000


class Matcher(Choice):
    """Anchor labelling rule (``--matcher``)."""

    torchvision = "torchvision"
    mmdet = "mmdet"
    ssd = "ssd"
    auto = "auto"


class Engine(Choice):
    """Anchor engine (``--engine``): auto = culled on a CPU, dense on CUDA."""

    auto = "auto"
    culled = "culled"
    dense = "dense"


class Device(Choice):
    """Torch device of the dense engine (``--device``): auto = CUDA when available."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def _value(x: Any) -> Any:
    return x.value if isinstance(x, Enum) else x


def resolve_device(device: Any) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda`` without a GPU -> InputError.

    The one place a device name is resolved (``cuda:N`` accepted from the API).
    """
    d = str(_value(device) if device is not None else "auto").lower()
    if d not in ("auto", "cpu", "cuda") and not (d.startswith("cuda:") and d[5:].isdigit()):
        raise InputError(f"--device must be auto, cpu or cuda, got {_value(device)!r}")
    if d == "cpu" or (d == "auto" and not _gpu_driver_present()):
        return "cpu"  # without importing torch (1.3-2.5 s of a small report's run, measured)
    import torch

    if d == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if d.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda asked for, but no CUDA device is available (use --device cpu or auto)")
    return d


def _gpu_driver_present() -> bool:
    """False only where torch cannot see a GPU for certain: Linux without the NVIDIA driver (``/proc/driver/nvidia``)
    and without ROCm's ``/dev/kfd``, or macOS (no CUDA); True elsewhere (torch is then asked)."""
    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):
        return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/kfd")
    return True


def resolve_semantics(matcher: Any, preset: AnchorPreset) -> str:
    """Matcher semantics for a preset.

    ``None``/``"auto"`` -> the preset's own; ``"torchvision"`` means torchvision's matcher *of that
    model* (``SSDMatcher`` for an ``ssd`` preset); ``"mmdet"`` MaxIoUAssigner; ``"ssd"`` SSDMatcher.
    """
    m = "auto" if matcher is None else str(_value(matcher)).lower()
    if m == "auto":
        return preset.matcher
    if m == "torchvision":
        return "ssd" if preset.kind == "ssd" else "torchvision"
    if m in ("mmdet", "ssd"):
        return m
    raise InputError(f"--matcher must be torchvision, mmdet, ssd or auto, got {_value(matcher)!r}")


def parse_anchors(value: Any) -> Any:
    """The CLI's ``--anchors`` value: ``"none"`` (any case) -> ``None``, anything else unchanged."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    return value


def parse_sample(value: Any) -> int | None:
    """``--negative-iou-sample``: a positive integer, or ``"all"``/``None`` -> ``None`` (every image)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() == "all":
            return None
        try:
            value = int(value)
        except ValueError:
            raise InputError(f"--negative-iou-sample must be a positive integer or 'all', got {value!r}") from None
    if not is_int(value) or int(value) < 1:
        raise InputError(f"--negative-iou-sample must be a positive integer or 'all', got {value!r}")
    return int(value)


def check_bins(name: str, bins: Any) -> int:
    """A per-axis histogram bin count in [1, :data:`MAX_HISTOGRAM_BINS`] (refused before allocating)."""
    if not is_int(bins):
        raise InputError(f"{name} must be an integer, got {bins!r}")
    if not 1 <= int(bins) <= MAX_HISTOGRAM_BINS:
        raise InputError(f"{name} must be between 1 and {MAX_HISTOGRAM_BINS}, got {bins}")
    return int(bins)


@dataclass(frozen=True)
class AnchorSpec:
    """A validated anchor pass: build it with :meth:`build`.

    ``preset`` has the threshold overrides applied; ``semantics`` is ``torchvision``/``mmdet``/``ssd``;
    ``device`` a resolved torch device name; ``engine`` ``culled`` or ``dense``;
    ``negative_iou_sample`` images sampled for the negative IoU histogram (``None``: every image);
    ``seed`` of that sample; ``spatial_bins`` per axis of the spatial histogram; ``chunk_images``
    images per chunk (``None``: all at once); ``workers`` processes.
    """

    preset: AnchorPreset
    semantics: str
    device: str
    engine: str
    negative_iou_sample: int | None
    seed: int
    spatial_bins: int
    chunk_images: int | None
    workers: int

    @property
    def assigner(self) -> str:
        """The preset's assignment rule (``max_iou`` unless the preset names another)."""
        return getattr(self.preset, "assigner", "max_iou")

    @property
    def thresholds(self) -> tuple[float, float, bool]:
        """(pos_iou, neg_iou, allow_low_quality) as the matcher applies them (SSD: neg = pos)."""
        from imbalance_cli.anchors.rules import thresholds

        return thresholds(self.preset, self.semantics)

    # long: 11 options, each validated in turn into one field of the spec (one flat sequence of checks)
    @classmethod
    def build(
        cls,
        anchors: Any = "retinanet",
        *,
        matcher: Any = "auto",
        device: Any = "auto",
        pos_iou: float | None = None,
        neg_iou: float | None = None,
        engine: Any = None,
        negative_iou_sample: Any = None,
        seed: int = 0,
        spatial_bins: Any = DEFAULT_SPATIAL_BINS,
        chunk_images: Any = DEFAULT_CHUNK_IMAGES,
        workers: Any = None,
    ) -> "AnchorSpec":
        """Validate CLI or API arguments into a spec (raises :class:`InputError` naming the option).

        ``anchors``: preset name, TOML path or ``AnchorPreset`` (an ``AnchorSpec`` is returned as is).
        ``negative_iou_sample``: N, ``"all"``, or ``None`` (default: every image on CUDA,
        :data:`DEFAULT_NEGATIVE_IOU_SAMPLE` on a CPU). ``chunk_images``: images per chunk, ``None`` or
        ``"all"`` for one chunk. ``workers``: processes (``None``/0: the machine's cores).
        """
        if isinstance(anchors, AnchorSpec):
            return anchors
        if anchors is None:
            raise InputError("no anchor preset given")
        for name, v in (("--pos-iou", pos_iou), ("--neg-iou", neg_iou)):
            if v is not None and (not is_number(v) or not np.isfinite(v)):
                raise InputError(f"{name} must be a number, got {v!r}")
        preset = get_preset(anchors, pos_iou=pos_iou, neg_iou=neg_iou)
        if preset.assigner != "max_iou" and matcher is not None and str(_value(matcher)).lower() != "auto":
            raise InputError(
                f"--matcher {_value(matcher)} does not apply to preset {preset.name!r}: it assigns with "
                f"{preset.assigner}, not a max-IoU matcher (leave --matcher at auto)"
            )
        semantics = resolve_semantics(matcher, preset)
        dev = resolve_device(device)
        eng = "auto" if engine is None else str(_value(engine)).lower()
        if eng == "auto":
            eng = "dense" if dev.startswith("cuda") else "culled"
        if eng not in ("dense", "culled"):
            raise InputError(f"--engine must be auto, culled or dense, got {_value(engine)!r}")
        if eng == "culled" and dev != "cpu":
            raise InputError("the culled engine runs on the CPU only (use --device cpu or the dense engine)")
        if negative_iou_sample is None:
            sample = None if dev.startswith("cuda") else DEFAULT_NEGATIVE_IOU_SAMPLE
        else:
            sample = parse_sample(negative_iou_sample)
        if not is_int(seed):
            raise InputError(f"seed must be an integer, got {seed!r}")
        bins = check_bins("spatial bins", spatial_bins)
        if chunk_images is None or (isinstance(chunk_images, str) and chunk_images.strip().lower() == "all"):
            chunk = None
        else:
            try:
                chunk = int(chunk_images)
            except (TypeError, ValueError):
                chunk = 0
            if isinstance(chunk_images, bool) or chunk < 1:
                raise InputError(f"--chunk-size must be a positive integer or 'all', got {chunk_images!r}")
        if workers is None or (is_int(workers) and workers == 0):
            nw = dist.local_share(default_workers())  # under torchrun: this rank's share of the node
        elif not is_int(workers) or not 1 <= workers <= MAX_WORKERS:
            raise InputError(f"--workers must be between 1 and {MAX_WORKERS} (0: the machine's cores), got {workers!r}")
        else:
            nw = int(workers)
        if dev.startswith("cuda"):
            nw = 1  # one process drives the GPU
        return cls(preset, semantics, dev, eng, sample, int(seed), bins, chunk, nw)

    def check_images(
        self, heights: np.ndarray, widths: np.ndarray, image_ids: np.ndarray | None = None, path: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Validate image sizes against the limits and return the padded sizes (int64).

        Every width and height must be finite, >= 1 and <= :data:`MAX_IMAGE_SIDE`; after the
        preset's resize every side must be >= 1, every level's grid <= :data:`MAX_GRID_CELLS` cells
        and every image <= :data:`MAX_ANCHORS_PER_IMAGE` anchors. All checks are arithmetic on the
        sizes: nothing per anchor is allocated. Raises :class:`InputError` naming the first bad image.
        """
        from imbalance_cli.anchors.generator import level_layout, padded_sizes, resized_sizes

        H, W, ids = check_image_sides(heights, widths, image_ids, path)
        rh, rw = resized_sizes(H, W, self.preset)
        zero = (rh < 1) | (rw < 1)
        if zero.any():
            i = int(np.flatnonzero(zero)[0])
            raise InputError(
                f"image {ids[i]} ({W[i]:g} x {H[i]:g}) resizes to {int(rw[i])} x {int(rh[i])} under "
                f"preset {self.preset.name!r}{_from(self.preset)}: a side of 0 pixels has no anchors",
                path=path,
                record=f"image id {ids[i]}",
            )
        ph, pw = padded_sizes(H, W, self.preset)
        if len(ph):
            sizes = np.unique(np.stack([ph, pw], 1), axis=0)
            for h, w in sizes:
                lay = level_layout(self.preset, int(h), int(w))
                cells = max(lv.grid_h * lv.grid_w for lv in lay)
                total = sum(lv.count for lv in lay)
                if cells > MAX_GRID_CELLS or total > MAX_ANCHORS_PER_IMAGE:
                    i = int(np.flatnonzero((ph == h) & (pw == w))[0])
                    raise InputError(
                        f"image {ids[i]} ({W[i]:g} x {H[i]:g}) is padded to {int(w)} x {int(h)} under preset "
                        f"{self.preset.name!r}{_from(self.preset)}: {total:,} anchors and {cells:,} grid cells on a "
                        f"level exceed the limits ({MAX_ANCHORS_PER_IMAGE:,} anchors per image, {MAX_GRID_CELLS:,} "
                        "cells per level)",
                        path=path,
                        record=f"image id {ids[i]}",
                    )
        return ph, pw


def _from(preset) -> str:
    """`` (from FILE)`` for a preset read from a TOML file, so an error it causes names that file too."""
    src = getattr(preset, "source", None)
    return f" (from {src})" if src else ""


def check_image_sides(heights, widths, image_ids=None, path: str | None = None):
    """Image widths and heights as float64 arrays (and the ids that name them), each finite, >= 1 and <=
    :data:`MAX_IMAGE_SIDE`; :class:`InputError` naming the first image that is not."""
    H = np.asarray(heights, np.float64)
    W = np.asarray(widths, np.float64)
    ids = np.arange(len(H)) if image_ids is None else np.asarray(image_ids)

    def bad(i: int, why: str):
        raise InputError(
            f"image {ids[i]}: {why}; anchor statistics need every image's width and height "
            f"finite and in [1, {MAX_IMAGE_SIDE}]",
            path=path,
            record=f"image id {ids[i]}",
        )

    with np.errstate(invalid="ignore"):
        usable = np.isfinite(H) & np.isfinite(W) & (H >= 1) & (W >= 1)
    if not usable.all():
        i = int(np.flatnonzero(~usable)[0])
        bad(i, f"no usable size ({W[i]} x {H[i]})")
    big = (H > MAX_IMAGE_SIDE) | (W > MAX_IMAGE_SIDE)
    if big.any():
        i = int(np.flatnonzero(big)[0])
        bad(i, f"size {W[i]:g} x {H[i]:g} is beyond the limit")
    return H, W, ids


def check_letterbox_images(preset, heights, widths, image_ids=None, path: str | None = None):
    """The anchor pass's limits on the yolov5 path: sides as :func:`check_image_sides`, every image letterboxed to
    at least 1 pixel a side (YOLOv5's resize of a 1 x 100,000 image to 640 gives a side of 0), every level's grid
    <= :data:`MAX_GRID_CELLS` and every image <= :data:`MAX_ANCHORS_PER_IMAGE` anchors. Returns the letterboxed,
    padded sizes ``(ph, pw)``; :class:`InputError` naming the first bad image. Arithmetic on the sizes only."""
    from imbalance_cli.anchors.yolov5 import letterbox_geometry, level_grids

    H, W, ids = check_image_sides(heights, widths, image_ids, path)
    _r, ph, pw, _px, _py = letterbox_geometry(H, W, preset)
    zero = (ph < 1) | (pw < 1)
    if zero.any():
        i = int(np.flatnonzero(zero)[0])
        raise InputError(
            f"image {ids[i]} ({W[i]:g} x {H[i]:g}) letterboxes to a side of 0 pixels at img_size "
            f"{preset.img_size} under preset {preset.name!r}: it has no anchors",
            path=path,
            record=f"image id {ids[i]}",
        )
    gh, gw, _ = level_grids(preset, ph, pw)
    per = np.array([len(a) for a in preset.anchors], np.int64)[:, None]
    cells, total = (gh * gw).max(axis=0, initial=0), (gh * gw * per).sum(axis=0)
    over = (cells > MAX_GRID_CELLS) | (total > MAX_ANCHORS_PER_IMAGE)
    if over.any():
        i = int(np.flatnonzero(over)[0])
        raise InputError(
            f"image {ids[i]} ({W[i]:g} x {H[i]:g}) is letterboxed to {int(pw[i])} x {int(ph[i])} under "
            f"preset {preset.name!r}: {int(total[i]):,} anchors and {int(cells[i]):,} grid cells on a "
            f"level exceed the limits ({MAX_ANCHORS_PER_IMAGE:,} anchors per image, "
            f"{MAX_GRID_CELLS:,} cells per level)",
            path=path,
            record=f"image id {ids[i]}",
        )
    return ph, pw


def anchor_spec(anchors: Any = "retinanet", **options: Any) -> AnchorSpec:
    """Shorthand for :meth:`AnchorSpec.build`."""
    return AnchorSpec.build(anchors, **options)
