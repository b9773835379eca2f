"""Training/evaluation data for the compact detector, held in memory as tensors.

Two sources:

* ``synthetic-lt`` (:mod:`imbalance_cli.detector.synthetic`): generated once into a cache folder,
  its ``train.json``/``val.json`` loaded back with :func:`imbalance_cli.load` like any LVIS file;
* a real COCO/LVIS/VOC file plus an image folder: loaded with :func:`imbalance_cli.load`, split
  into train / held-out images deterministically from the seed, images resized with the anchor
  preset's :class:`~imbalance_cli.anchors.ResizePolicy`.

Boxes are kept in resized-image pixels; ``scales`` map detections back to the original image for
evaluation. Only valid, non-crowd boxes are training targets (the Dataset's validity rule).
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from imbalance_cli.anchors.generator import resized_size
from imbalance_cli.data import load
from imbalance_cli.data._io import MAX_IMAGE_SIDE, confined_image_path
from imbalance_cli.data.splits import TRAIN_SPLIT, select_split, split_names, split_of
from imbalance_cli.data.yolo import is_yolo_path
from imbalance_cli.detector.synthetic import write_synthetic_lt
from imbalance_cli.errors import InputError
from imbalance_cli.progress import progress
from imbalance_cli.stats.classes import class_counts, lvis_frequency


@dataclass
class Split:
    """One split in memory: uint8 images (each (3, h, w)), per-image boxes/labels, ids, scales."""

    images: list[Tensor]
    boxes: list[Tensor]  # float32 (n, 4) xyxy in resized pixels
    labels: list[Tensor]  # int64 (n,) category rows 0..C-1
    image_ids: list[int]
    scales: list[tuple[float, float]]  # (sy, sx) = resized / original
    sizes: list[tuple[int, int]]  # original (h, w)

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class DetectionData:
    """Both splits plus what evaluation and the long-tail losses need."""

    train: Split
    val: Split
    category_ids: list[int]
    category_names: list[str]
    train_instances: np.ndarray  # per category row
    train_images: np.ndarray
    frequency: list[str]  # r/c/f from training image counts (LVIS rule)
    val_gt: dict  # COCO/LVIS-style ground truth of the held-out split (original coordinates)
    source: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Number of categories."""
        return len(self.category_ids)


def resize_scale(h: int, w: int, preset) -> tuple[float, float, int, int]:
    """Scale factors and resized size ``(sy, sx, new_h, new_w)`` of an image under the preset's
    resize policy (the anchor generator's own rule, :func:`imbalance_cli.anchors.generator.resized_size`)."""

    nh, nw = (int(v) for v in resized_size(h, w, preset))
    return nh / h, nw / w, nh, nw


def _read_image(path: Path, h: int, w: int) -> Tensor:
    """The image file decoded to RGB and resized to ``h x w``; every failure one :class:`InputError` naming it.

    Only a regular file is opened (a FIFO would block); its header size must lie within the loaders' side limit
    (:data:`~imbalance_cli.data._io.MAX_IMAGE_SIDE`) before any pixel is decoded, and Pillow's own
    decompression-bomb limit holds. Whatever a Pillow decoder raises (``OSError``, ``SyntaxError``,
    ``DecompressionBombError``, ``struct.error``, ...) is reported as the image's error, never a traceback.
    """
    from PIL import Image

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError("image file not found (check --images)", path=str(path)) from None
    except OSError as e:
        raise InputError(f"cannot read image: {e.strerror or e}", path=str(path)) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError("not a regular file (devices, FIFOs and sockets are refused)", path=str(path))
    try:
        with Image.open(path) as im:
            iw, ih = im.size
            if not (1 <= iw <= MAX_IMAGE_SIDE and 1 <= ih <= MAX_IMAGE_SIDE):
                raise InputError(
                    f"image header says {iw} x {ih} pixels; sides must be in [1, {MAX_IMAGE_SIDE:,}]", path=str(path)
                )
            im = im.convert("RGB")
            if im.size != (w, h):
                im = im.resize((w, h), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure is the file's (Pillow raises many kinds)
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise InputError(f"cannot read image: {type(e).__name__}: {first}", path=str(path)) from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def _check_train_size(ds, i: int, preset) -> None:
    """An image's annotated size usable for training: at least 1 pixel a side (a 0.5-pixel image has no pixel
    rows to read), within the loaders' side limit, and at least 1 pixel a side after the preset's resize."""
    h, w = float(ds.heights[i]), float(ds.widths[i])
    where = dict(path=ds.path, record=f"image id {int(ds.image_ids[i])}")
    if not (math.isfinite(h) and math.isfinite(w) and 1 <= h <= MAX_IMAGE_SIDE and 1 <= w <= MAX_IMAGE_SIDE):
        raise InputError(
            f"image size {w:g} x {h:g}: training needs whole images of 1 to {MAX_IMAGE_SIDE:,} pixels "
            "a side (sub-pixel images are refused)",
            **where,
        )
    _sy, _sx, nh, nw = resize_scale(int(h), int(w), preset)
    if nh < 1 or nw < 1:
        raise InputError(
            f"image size {w:g} x {h:g} resizes to {nw} x {nh} under preset {preset.name!r}: a side of 0 pixels", **where
        )


def _split_from_dataset(ds, rows: np.ndarray, images_dir: Path | None, preset) -> Split:
    """One split in memory; ``images_dir`` None: the file names are the image paths (a YOLO data.yaml lists its
    images itself, as the Ultralytics trainer reads them)."""
    valid = ds.valid_mask()
    order, offsets = ds.image_offsets(valid)
    images, boxes, labels, ids, scales, sizes = [], [], [], [], [], []
    paths = {}
    for i in rows:  # every name is checked before any image is read
        i = int(i)
        if ds.file_names is None or not ds.file_names[i]:
            raise InputError("image has no file name", path=ds.path, record=f"image id {int(ds.image_ids[i])}")
        paths[i] = (
            Path(str(ds.file_names[i]))
            if images_dir is None
            else confined_image_path(images_dir, str(ds.file_names[i]), ds.path, f"image id {int(ds.image_ids[i])}")
        )
        _check_train_size(ds, i, preset)
    for i in progress(rows, total=len(rows), description="reading images"):
        i = int(i)
        oh, ow = int(ds.heights[i]), int(ds.widths[i])
        sy, sx, nh, nw = resize_scale(oh, ow, preset)
        images.append(_read_image(paths[i], nh, nw))
        sel = order[offsets[i] : offsets[i + 1]]
        b = ds.boxes[sel].copy()
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, ow) * sx
        b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, oh) * sy
        keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        boxes.append(torch.as_tensor(b[keep], dtype=torch.float32).reshape(-1, 4))
        labels.append(torch.as_tensor(ds.box_category[sel][keep], dtype=torch.int64))
        ids.append(int(ds.image_ids[i]))
        scales.append((float(sy), float(sx)))
        sizes.append((oh, ow))
    return Split(images, boxes, labels, ids, scales, sizes)


def gt_dict(ds, rows: np.ndarray, frequency: list[str]) -> dict:
    """COCO/LVIS-style ground truth of the images ``rows`` of ``ds`` (original coordinates).

    Categories get ``frequency`` (training-split letters); each image lists as
    ``neg_category_ids`` the categories absent from it unless the source file gave its own
    (LVIS), and ``not_exhaustive_category_ids`` likewise. Crowd boxes keep ``iscrowd = 1``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cat_ids = [int(c) for c in ds.category_ids]
    images, anns = [], []
    in_rows = np.isin(ds.box_image, rows)
    finite = np.isfinite(ds.boxes).all(axis=1)
    w = ds.boxes[:, 2] - ds.boxes[:, 0]
    h = ds.boxes[:, 3] - ds.boxes[:, 1]
    keep = in_rows & finite & (w > 0) & (h > 0)
    present: dict[int, set] = {int(r): set() for r in rows}
    for k in np.flatnonzero(keep):
        r = int(ds.box_image[k])
        cid = cat_ids[int(ds.box_category[k])]
        x1, y1 = float(ds.boxes[k, 0]), float(ds.boxes[k, 1])
        area = float(ds.area[k]) if np.isfinite(ds.area[k]) else float(w[k] * h[k])
        anns.append(
            {
                "id": len(anns) + 1,
                "image_id": int(ds.image_ids[r]),
                "category_id": cid,
                "bbox": [x1, y1, float(w[k]), float(h[k])],
                "area": area,
                "iscrowd": int(bool(ds.crowd[k])),
            }
        )
        present[r].add(cid)
    for r in rows:
        r = int(r)
        rec = {"id": int(ds.image_ids[r]), "width": int(ds.widths[r]), "height": int(ds.heights[r])}
        if ds.neg_category_ids is not None:
            rec["neg_category_ids"] = [int(x) for x in ds.neg_category_ids.row(r)]
        else:
            rec["neg_category_ids"] = [c for c in cat_ids if c not in present[r]]
        if ds.not_exhaustive_category_ids is not None:
            rec["not_exhaustive_category_ids"] = [int(x) for x in ds.not_exhaustive_category_ids.row(r)]
        else:
            rec["not_exhaustive_category_ids"] = []
        images.append(rec)
    cats = [{"id": c, "name": str(ds.category_names[j]), "frequency": frequency[j]} for j, c in enumerate(cat_ids)]
    return {"images": images, "annotations": anns, "categories": cats}


def from_dataset(train_ds, val_ds, train_rows, val_rows, images_dir: Path, preset, source: dict) -> DetectionData:
    """Assemble :class:`DetectionData` from loaded Datasets and chosen image rows."""

    train_mask = train_ds.valid_mask() & np.isin(train_ds.box_image, train_rows)
    inst, imgs = class_counts(train_ds, train_mask)
    freq = [str(f) for f in lvis_frequency(imgs)]
    train = _split_from_dataset(train_ds, np.asarray(train_rows), images_dir, preset)
    val = _split_from_dataset(val_ds, np.asarray(val_rows), images_dir, preset)
    return DetectionData(
        train=train,
        val=val,
        category_ids=[int(c) for c in train_ds.category_ids],
        category_names=[str(n) for n in train_ds.category_names],
        train_instances=inst,
        train_images=imgs,
        frequency=freq,
        val_gt=gt_dict(val_ds, np.asarray(val_rows), freq),
        source=source,
    )


def load_synthetic(cache_dir, cfg, preset) -> DetectionData:
    """Generate (or reuse) ``synthetic-lt`` in ``cache_dir`` and load both splits."""

    paths = write_synthetic_lt(cache_dir, cfg)
    tr = load(str(paths["train"]))
    va = load(str(paths["val"]))
    return from_dataset(
        tr,
        va,
        np.arange(tr.num_images),
        np.arange(va.num_images),
        Path(paths["images"]),
        preset,
        {"data": "synthetic-lt", "path": str(cache_dir)},
    )


def load_real(
    data_file: str,
    images_dir: str,
    preset,
    val_fraction: float,
    seed: int,
    val_file: str | None = None,
    split: str | None = None,
) -> DetectionData:
    """Load a COCO/LVIS/VOC file; hold out ``val_fraction`` of its images (seeded) unless ``val_file`` is given.

    A YOLO dataset (data.yaml) is read as the Ultralytics trainer reads it: its own image paths (no ``--images``),
    training on split ``split`` (default ``train``) and evaluating on its ``val`` split when it has one.
    """
    if is_yolo_path(data_file):
        return _load_yolo(data_file, images_dir, preset, val_fraction, seed, val_file, split)
    if split is not None:
        raise InputError(f"--split {split}: only a YOLO data.yaml has splits", path=data_file)
    if not images_dir:
        raise InputError("--images DIR is required with --data FILE")
    idir = Path(images_dir)
    if not idir.is_dir():
        raise InputError("not a directory", path=str(idir), record="--images")
    ds = load(data_file)
    if ds.num_images == 0 or ds.num_categories == 0:
        raise InputError("dataset has no images or no categories", path=data_file)
    if not ds.has_image_sizes:
        raise InputError("training needs image sizes in the annotation file", path=data_file)
    if val_file:
        vds = load(val_file)
        if list(vds.category_ids) != list(ds.category_ids):
            raise InputError("held-out file's categories differ from the training file's", path=val_file)
        return from_dataset(
            ds,
            vds,
            np.arange(ds.num_images),
            np.arange(vds.num_images),
            idir,
            preset,
            {"data": data_file, "val": val_file, "images": images_dir},
        )
    train_rows, val_rows = _held_out(ds.num_images, val_fraction, seed, data_file)
    return from_dataset(
        ds,
        ds,
        train_rows,
        val_rows,
        idir,
        preset,
        {"data": data_file, "images": images_dir, "val_fraction": val_fraction},
    )


def _held_out(n_images: int, val_fraction: float, seed: int, data_file) -> tuple[np.ndarray, np.ndarray]:
    """``(train rows, held-out rows)``: a seeded ``val_fraction`` of the images held out for evaluation."""
    if not (0.0 < val_fraction < 1.0):
        raise InputError(f"--val-fraction must be in (0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(n_images)
    n_val = max(1, int(round(val_fraction * n_images)))
    if n_val >= n_images:
        raise InputError("dataset too small to hold out images for evaluation", path=data_file)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _load_yolo(data_file, images_dir, preset, val_fraction, seed, val_file, split) -> DetectionData:
    if images_dir:
        raise InputError(
            "--images does not apply to a YOLO dataset: the data.yaml lists its images (the labels sit "
            "beside them); leave --images out",
            path=data_file,
        )
    full = load(data_file)
    train_name = split or TRAIN_SPLIT
    ds = select_split(full, split, default=TRAIN_SPLIT) if split_names(full) else full
    if ds.num_images == 0 or ds.num_categories == 0:
        raise InputError("dataset has no images or no categories", path=data_file)
    if not ds.has_image_sizes:
        raise InputError("training needs the images (their sizes): none found beside the labels", path=data_file)
    source = {"data": data_file, "split": train_name if split_names(full) else None}
    if val_file:
        raise InputError(
            "--val-data does not apply to a YOLO data.yaml: its val split is evaluated, or "
            "--val-fraction of the training split when it has none",
            path=data_file,
            record="--val-data",
        )
    if "val" in split_names(full) and train_name != "val":
        vds = split_of(full, "val")
        return from_dataset(
            ds, vds, np.arange(ds.num_images), np.arange(vds.num_images), None, preset, {**source, "val_split": "val"}
        )
    train_rows, val_rows = _held_out(ds.num_images, val_fraction, seed, data_file)
    return from_dataset(ds, ds, train_rows, val_rows, None, preset, {**source, "val_fraction": val_fraction})


def collate(
    split: Split, indices: list[int], size_divisible: int, flip: list[bool] | None = None
) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """Stack images ``indices`` into a zero-padded float batch (0-1 scaled, padded to a multiple of
    ``size_divisible``); optionally flip some horizontally (boxes flipped too)."""
    imgs = [split.images[i] for i in indices]
    H = max(int(im.shape[1]) for im in imgs)
    W = max(int(im.shape[2]) for im in imgs)
    d = max(1, int(size_divisible))
    H, W = int(math.ceil(H / d) * d), int(math.ceil(W / d) * d)
    batch = torch.zeros(len(imgs), 3, H, W)
    boxes, labels = [], []
    for j, (i, im) in enumerate(zip(indices, imgs)):
        h, w = int(im.shape[1]), int(im.shape[2])
        b = split.boxes[i].clone()
        x = im.float().div_(255.0)
        if flip is not None and flip[j]:
            x = x.flip(-1)
            b = torch.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], dim=1)
        batch[j, :, :h, :w] = x
        boxes.append(b)
        labels.append(split.labels[i])
    batch = (batch - 0.5) / 0.25
    return batch, boxes, labels
