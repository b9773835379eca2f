"""The per-box table: every analysed box, one row, as the detector sees it (``boxes.parquet``).

The anchor pass (:func:`imbalance_cli.stats.anchors.anchor_statistics`, or
:func:`imbalance_cli.stats.yolov5.yolov5_statistics`) already reduces every chunk to per-box arrays -- each
box's best IoU and the level of its best anchor, its positive anchors and the ignored anchors whose own best
box it is -- and folds them in image order (under ``torchrun`` every rank's slice is summed in, so the arrays
are those of one process). :class:`BoxTable` turns them, with the dataset's ids and names, into one row per
valid box (the boxes the statistics count), in image order:

``annotation_id, image_id, file_name, category_id, category, size_group, resized_width, resized_height,
best_level, best_iou, positive_anchors, ignored_anchors, status`` and, for YOLO datasets, ``label_file,
label_line``. Every column is a quantity of :mod:`imbalance_cli.vocabulary` (its label, unit and meaning are
stored in the Parquet file's metadata under ``imbalance.definitions``).

``status`` (:data:`STATUSES`): ``positive`` (at least one positive anchor), ``ignored-only`` (no positive
anchor, some ignored anchor), ``none`` (neither). So ``ignored-only + none`` = ``boxes_without_positive``
and ``ignored-only`` = ``boxes_ignored_only`` of ``stats.json``, per class and per size group as well.

Columns are built only when asked for (:meth:`BoxTable.to_arrow`): text columns are dictionary-encoded (file
names, classes, levels, statuses), so the table costs a few bytes per box.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from imbalance_cli.data.dataset import Dataset
from imbalance_cli.vocabulary import SIZE_GROUP_NAMES, definitions

#: Box status codes 0, 1, 2 (see the module docstring).
STATUSES = ("positive", "ignored-only", "none")
COLUMNS = (
    "annotation_id",
    "image_id",
    "file_name",
    "category_id",
    "category",
    "size_group",
    "resized_width",
    "resized_height",
    "best_level",
    "best_iou",
    "positive_anchors",
    "ignored_anchors",
    "status",
)
YOLO_COLUMNS = ("label_file", "label_line")
#: Rows handled at once when columns are built from the resized boxes.
BLOCK = 1 << 20


def status_codes(positives: np.ndarray, ignored: np.ndarray) -> np.ndarray:
    """Status code per box (int8): 0 positive, 1 ignored-only, 2 none (:data:`STATUSES`)."""
    pos = np.asarray(positives) > 0
    ign = np.asarray(ignored) > 0
    return np.where(pos, 0, np.where(ign, 1, 2)).astype(np.int8)


class BoxTable:
    """The per-box table of one anchor pass over ``dataset`` (see the module docstring).

    ``arrays`` is what the anchor pass filled (``box_arrays=``): ``order`` (dataset box rows of the valid
    boxes, image order), ``max_iou``, ``best_level``, ``positives``, ``ignored``, ``size_group`` (0/1/2),
    ``scaled`` (the boxes in the resized image, an array or a sliceable
    :class:`~imbalance_cli.stats.anchors.ScaledBoxes`) and ``preset``; ``anchors`` what the pass ran (an
    :class:`~imbalance_cli.specs.AnchorSpec` or a preset: the gallery labels its images again with it).
    """

    def __init__(self, dataset: Dataset, arrays: dict, size_groups_by: str = "box", anchors: Any = None):
        self.dataset = dataset
        self.order = np.asarray(arrays["order"], np.int64)
        self.max_iou = np.asarray(arrays["max_iou"], np.float32)
        self.best_level = np.asarray(arrays["best_level"], np.int64)
        self.positives = np.asarray(arrays["positives"], np.int64)
        self.ignored = np.asarray(arrays["ignored"], np.int64)
        self.size_group = np.asarray(arrays["size_group"], np.int8)
        self.scaled = arrays["scaled"]
        self.preset = arrays["preset"]
        self.size_groups_by = size_groups_by
        self.anchors = anchors if anchors is not None else self.preset  # what the pass ran (an AnchorSpec, ...)

    def __len__(self) -> int:
        return len(self.order)

    @property
    def status(self) -> np.ndarray:
        """Status code per row (:func:`status_codes`)."""
        return status_codes(self.positives, self.ignored)

    @property
    def box_image(self) -> np.ndarray:
        """Image row of each table row."""
        return self.dataset.box_image[self.order]

    @property
    def box_category(self) -> np.ndarray:
        """Category row of each table row."""
        return self.dataset.box_category[self.order]

    def resized_wh(self) -> tuple[np.ndarray, np.ndarray]:
        """Width and height of each box in the detector's input (float32), block by block."""
        n = len(self)
        w, h = np.empty(n, np.float32), np.empty(n, np.float32)
        for a in range(0, n, BLOCK):
            b = np.asarray(self.scaled[a : a + BLOCK], np.float32).reshape(-1, 4)
            w[a : a + len(b)] = b[:, 2] - b[:, 0]
            h[a : a + len(b)] = b[:, 3] - b[:, 1]
        return w, h

    def columns(self) -> tuple[str, ...]:
        """The table's column names (YOLO datasets add the label file and line)."""
        return COLUMNS + (YOLO_COLUMNS if self.dataset.label_lines is not None else ())

    def metadata(self) -> dict:
        """What the Parquet file carries besides its columns: every column's definition, the preset, the size groups."""
        return {
            "schema": "imbalance.boxes/1",
            "preset": str(getattr(self.preset, "name", self.preset)),
            "size_groups_by": self.size_groups_by,
            "statuses": list(STATUSES),
            "definitions": definitions(self.columns()),
        }

    def to_arrow(self):
        """The table as a ``pyarrow.Table`` (text columns dictionary-encoded; definitions in its metadata)."""
        import pyarrow as pa

        ds = self.dataset
        img, cat = self.box_image, self.box_category

        def dictionary(indices, values):  # a missing value (an image without a file name) is a null entry
            missing = np.array([v is None for v in values], bool)
            idx = np.asarray(indices, np.int32)
            mask = missing[idx] if missing.any() else None
            return pa.DictionaryArray.from_arrays(
                pa.array(idx, mask=mask), pa.array(["" if v is None else str(v) for v in values], pa.string())
            )

        names = ds.file_names if ds.file_names is not None else np.full(ds.num_images, None, object)
        w, h = self.resized_wh()
        levels = [str(x) for x in getattr(self.preset, "level_names", ())] or [
            str(i) for i in range(int(self.best_level.max(initial=0)) + 1)
        ]
        cols: dict[str, Any] = {
            "annotation_id": pa.array(ds.box_ids[self.order]),
            "image_id": pa.array(ds.image_ids[img]),
            "file_name": dictionary(img, names),
            "category_id": pa.array(ds.category_ids[cat]),
            "category": dictionary(cat, ds.category_names),
            "size_group": dictionary(self.size_group, SIZE_GROUP_NAMES),
            "resized_width": pa.array(w),
            "resized_height": pa.array(h),
            "best_level": dictionary(self.best_level, levels),
            "best_iou": pa.array(self.max_iou),
            "positive_anchors": pa.array(self.positives.astype(np.int32)),
            "ignored_anchors": pa.array(self.ignored.astype(np.int32)),
            "status": dictionary(self.status, STATUSES),
        }
        if ds.label_lines is not None:
            from imbalance_cli.data.yolo import img2label_path

            labels = [None if n is None else img2label_path(str(n)) for n in names]
            cols["label_file"] = dictionary(img, labels)
            cols["label_line"] = pa.array(ds.label_lines[self.order].astype(np.int32))
        table = pa.table(cols)
        return table.replace_schema_metadata({"imbalance": json.dumps(self.metadata())})

    def to_pandas(self):
        """The table as a pandas DataFrame (text columns as categoricals)."""
        return self.to_arrow().to_pandas()

    def write_parquet(self, path: str | os.PathLike) -> None:
        """Write the table to ``path`` as Parquet (the report writer calls this on its temporary folder)."""
        import pyarrow.parquet as pq

        pq.write_table(self.to_arrow(), path)

    def status_counts(self, by: str | None = None) -> dict:
        """``{status: count}`` overall, or ``{group: {status: count}}`` by ``"category"`` (category ids as
        strings, as ``stats.json`` keys its classes) or ``"size_group"``."""
        code = self.status
        if by is None:
            return {s: int((code == i).sum()) for i, s in enumerate(STATUSES)}
        if by == "size_group":
            keys, groups = list(SIZE_GROUP_NAMES), self.size_group
        elif by == "category":
            keys = [str(int(c)) for c in self.dataset.category_ids]
            groups = self.box_category
        else:
            raise ValueError(f"by must be None, 'category' or 'size_group', got {by!r}")
        counts = np.zeros((len(keys), len(STATUSES)), np.int64)
        np.add.at(counts, (groups.astype(np.int64), code.astype(np.int64)), 1)
        return {
            k: {s: int(counts[g, i]) for i, s in enumerate(STATUSES)} for g, k in enumerate(keys) if counts[g].sum()
        }
