"""The columnar :class:`Dataset` every loader produces and every analysis consumes.

All per-image, per-box and per-category data live in flat numpy arrays; there is no
Python object per box after parsing, so a 25 M-box dataset fits in a few GiB.

Conventions
-----------
* ``boxes`` are float64 ``(x1, y1, x2, y2)`` in pixels of the original image. When a
  format gives no image sizes (Open Images without a sizes CSV) ``has_image_sizes`` is
  False, ``widths``/``heights`` are NaN and ``boxes`` are in normalised [0, 1] image
  coordinates instead; relative statistics still work, absolute ones refuse.
* ``box_image`` and ``box_category`` are *row indices* into the image and category
  arrays (not ids); ``image_ids``/``category_ids`` give the ids.
* Categories are sorted by id.
* A box is **valid** when it is not crowd (COCO ``iscrowd``, Open Images ``IsGroupOf``),
  all four coordinates are finite, its width and height are > 0 and it overlaps its
  image. Only valid boxes enter class, scale, location and anchor statistics; the others
  are counted in the summary by reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Reasons a non-crowd box is invalid, in the order they are checked (first match wins).
INVALID_REASONS = ("non_finite", "non_positive_size", "outside_image")
_BLOCK = 1 << 20


@dataclass
class Ragged:
    """A list of integer lists stored as CSR: row ``i`` is ``values[offsets[i]:offsets[i+1]]``."""

    offsets: np.ndarray  # int64 (n + 1,)
    values: np.ndarray  # int64 (offsets[-1],)

    @classmethod
    def from_lists(cls, lists: list[list[int]]) -> "Ragged":
        """Build from a list of integer lists."""
        lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
        offsets = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.fromiter((v for x in lists for v in x), dtype=np.int64, count=int(offsets[-1]))
        return cls(offsets, values)

    @classmethod
    def empty(cls, n: int) -> "Ragged":
        """``n`` empty rows."""
        return cls(np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def row(self, i: int) -> np.ndarray:
        """Values of row ``i``."""
        return self.values[self.offsets[i] : self.offsets[i + 1]]


def _opt(arr, n, dtype):
    return None if arr is None else np.asarray(arr, dtype=dtype).reshape(n)


class LazyStrings:
    """A string column kept as a UTF-8 blob plus int64 offsets until it is first read.

    The columnar cache hands ``file_names`` to :class:`Dataset` this way: decoding 1.7 M file names
    into Python strings costs more than reading every numeric column, and statistics never read
    them. The first access of the attribute turns it into the usual object array (same values).
    """

    __slots__ = ("blob", "offsets")

    def __init__(self, blob: np.ndarray, offsets: np.ndarray):
        self.blob = blob  # uint8
        self.offsets = offsets  # int64 (n + 1,)

    def __len__(self) -> int:
        return max(len(self.offsets) - 1, 0)

    def materialize(self) -> np.ndarray:
        """The column as a 1-D object array of ``str``."""
        blob = self.blob.tobytes()
        off = self.offsets.tolist()
        out = np.empty(len(self), dtype=object)
        out[:] = [blob[a:b].decode("utf-8", "surrogatepass") for a, b in zip(off[:-1], off[1:])]
        return out


class _LazyColumn:
    """Data descriptor of a column that may hold a :class:`LazyStrings` (decoded on first read)."""

    def __set_name__(self, owner, name):
        self.slot = "_lazy_" + name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return None
        value = obj.__dict__.get(self.slot)
        if isinstance(value, LazyStrings):
            value = value.materialize()
            obj.__dict__[self.slot] = value
        return value

    def __set__(self, obj, value):
        obj.__dict__[self.slot] = value


@dataclass
class Dataset:
    """A detection dataset as flat arrays (see module docstring for conventions).

    Build one with a loader (:func:`imbalance_cli.load`) or directly from arrays, e.g. in
    tests::

        Dataset(image_ids=[1], widths=[640], heights=[480],
                boxes=[[10, 10, 50, 60]], box_image=[0], box_category=[0],
                category_ids=[1], category_names=["cat"])
    """

    # --- images -------------------------------------------------------------------------
    image_ids: np.ndarray
    widths: np.ndarray
    heights: np.ndarray
    # --- boxes --------------------------------------------------------------------------
    boxes: np.ndarray
    box_image: np.ndarray
    box_category: np.ndarray
    # --- categories ---------------------------------------------------------------------
    category_ids: np.ndarray
    category_names: np.ndarray
    # --- optional columns ---------------------------------------------------------------
    file_names: np.ndarray | None = None
    box_ids: np.ndarray | None = None
    crowd: np.ndarray | None = None  # bool; COCO iscrowd / Open Images IsGroupOf
    area: np.ndarray | None = None  # float64, the file's own `area`, NaN where absent
    difficult: np.ndarray | None = None  # bool; VOC `difficult`
    integer_boxes: np.ndarray | None = (
        None  # bool; COCO bbox written as four JSON integers (detectron2 truncates those)
    )
    label_lines: np.ndarray | None = None  # int64; YOLO: the 1-based line of each box in its image's label file
    supercategory: np.ndarray | None = None  # object (str)
    frequency: np.ndarray | None = None  # object: "r" | "c" | "f" | "" (the file's LVIS field)
    category_image_count: np.ndarray | None = None  # int64, the file's own field, -1 where absent
    category_instance_count: np.ndarray | None = None  # int64, the file's own field, -1 where absent
    synset: np.ndarray | None = None  # object (str)
    category_codes: np.ndarray | None = None  # object (str): the format's own label, e.g. an Open Images MID
    neg_category_ids: Ragged | None = None  # per image (LVIS)
    not_exhaustive_category_ids: Ragged | None = None  # per image (LVIS)
    # --- provenance ---------------------------------------------------------------------
    format: str = "coco"
    path: str | None = None
    has_image_sizes: bool = True
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.image_ids = np.asarray(self.image_ids, dtype=np.int64).reshape(-1)
        n_img = len(self.image_ids)
        self.widths = np.asarray(self.widths, dtype=np.float64).reshape(n_img)
        self.heights = np.asarray(self.heights, dtype=np.float64).reshape(n_img)
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        n_box = len(self.boxes)
        self.box_image = np.asarray(self.box_image, dtype=np.int64).reshape(n_box)
        self.box_category = np.asarray(self.box_category, dtype=np.int64).reshape(n_box)
        self.category_ids = np.asarray(self.category_ids, dtype=np.int64).reshape(-1)
        n_cat = len(self.category_ids)
        self.category_names = np.asarray(self.category_names, dtype=object).reshape(n_cat)
        if self.crowd is None:
            self.crowd = np.zeros(n_box, dtype=bool)
        self.crowd = np.asarray(self.crowd, dtype=bool).reshape(n_box)
        if self.area is None:
            self.area = np.full(n_box, np.nan)
        self.area = np.asarray(self.area, dtype=np.float64).reshape(n_box)
        self.box_ids = (
            np.arange(1, n_box + 1, dtype=np.int64) if self.box_ids is None else _opt(self.box_ids, n_box, np.int64)
        )
        self.difficult = _opt(self.difficult, n_box, bool)
        self.integer_boxes = _opt(self.integer_boxes, n_box, bool)
        self.label_lines = _opt(self.label_lines, n_box, np.int64)
        lazy = self.__dict__.get("_lazy_file_names")
        if isinstance(lazy, LazyStrings):
            if len(lazy) != n_img:
                raise ValueError(f"file_names has {len(lazy)} entries for {n_img} images")
        else:
            self.file_names = _opt(self.file_names, n_img, object)
        self.supercategory = _opt(self.supercategory, n_cat, object)
        self.frequency = _opt(self.frequency, n_cat, object)
        self.category_image_count = _opt(self.category_image_count, n_cat, np.int64)
        self.category_instance_count = _opt(self.category_instance_count, n_cat, np.int64)
        self.synset = _opt(self.synset, n_cat, object)
        self.category_codes = _opt(self.category_codes, n_cat, object)
        if n_cat > 1 and np.any(np.diff(self.category_ids) <= 0):
            order = np.argsort(self.category_ids, kind="stable")
            self._reorder_categories(order)

    def _reorder_categories(self, order: np.ndarray) -> None:
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        self.category_ids = self.category_ids[order]
        self.category_names = self.category_names[order]
        for name in (
            "supercategory",
            "frequency",
            "category_image_count",
            "category_instance_count",
            "synset",
            "category_codes",
        ):
            col = getattr(self, name)
            if col is not None:
                setattr(self, name, col[order])
        self.box_category = inverse[self.box_category]

    # --- sizes --------------------------------------------------------------------------
    @property
    def num_images(self) -> int:
        """Number of images."""
        return len(self.image_ids)

    @property
    def num_boxes(self) -> int:
        """Number of annotations (every record, valid or not)."""
        return len(self.boxes)

    @property
    def num_categories(self) -> int:
        """Number of defined categories."""
        return len(self.category_ids)

    # --- validity -----------------------------------------------------------------------
    def invalid_reason(self) -> np.ndarray:
        """Per box (int8, read-only): -1 if valid or crowd, else the index into :data:`INVALID_REASONS`.

        Crowd boxes get -1 here (they are counted as crowd, not invalid). Computed once and kept: every statistic
        and the advice ask for it (three times in one ``imbalance stats``). It is computed again when one of the
        columns it reads (``boxes``, ``crowd``, ``box_image``, ``widths``, ``heights``) is replaced by another array
        or ``has_image_sizes`` changes; a column changed *in place* after the first call is not noticed.
        """
        key = (self.boxes, self.crowd, self.box_image, self.widths, self.heights, self.has_image_sizes)
        kept = self.__dict__.get("_kept_reason")
        if kept is not None and all(a is b for a, b in zip(kept[0], key)):
            return kept[1]
        reason = self._invalid_reason()
        reason.flags.writeable = False
        self.__dict__["_kept_reason"] = (key, reason)
        return reason

    def _invalid_reason(self) -> np.ndarray:
        n = len(self.boxes)
        reason = np.full(n, -1, dtype=np.int8)  # int8: 25 MB instead of 200 MB at 25 M boxes
        for a in range(0, n, _BLOCK):  # blocks of boxes: temporaries stay O(block) at 25 M boxes
            sl = slice(a, min(n, a + _BLOCK))
            b = self.boxes[sl]
            r = reason[sl]
            finite = np.isfinite(b).all(axis=1)
            w = b[:, 2] - b[:, 0]
            h = b[:, 3] - b[:, 1]
            with np.errstate(invalid="ignore"):
                nonpos = finite & ~((w > 0) & (h > 0))
                if self.has_image_sizes:
                    img = self.box_image[sl]
                    W, H = self.widths[img], self.heights[img]
                else:
                    W = H = np.ones(len(b))
                outside = finite & ~nonpos & ((b[:, 2] <= 0) | (b[:, 3] <= 0) | (b[:, 0] >= W) | (b[:, 1] >= H))
            r[outside] = 2
            r[nonpos] = 1
            r[~finite] = 0
            r[self.crowd[sl]] = -1
        return reason

    def valid_mask(self) -> np.ndarray:
        """Boolean mask of valid boxes (non-crowd, finite, positive size, overlapping the image)."""
        return (~self.crowd) & (self.invalid_reason() < 0)

    def image_size_of_boxes(self) -> tuple[np.ndarray, np.ndarray]:
        """Width and height of each box's image (1.0 when boxes are normalised)."""
        if not self.has_image_sizes:
            ones = np.ones(len(self.boxes))
            return ones, ones
        return self.widths[self.box_image], self.heights[self.box_image]

    # --- grouping -----------------------------------------------------------------------
    def image_offsets(self, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Group (optionally masked) boxes by image.

        Returns ``(order, offsets)``: box indices sorted by image (stable), and int64
        offsets of length ``num_images + 1`` so image ``i`` owns
        ``order[offsets[i]:offsets[i+1]]``.
        """
        idx = np.arange(self.num_boxes) if mask is None else np.flatnonzero(mask)
        order = idx[np.argsort(self.box_image[idx], kind="stable")]
        counts = np.bincount(self.box_image[order], minlength=self.num_images)
        offsets = np.zeros(self.num_images + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return order, offsets

    def subset_images(self, image_index: np.ndarray) -> "Dataset":
        """A new Dataset restricted to the given image rows (categories unchanged)."""
        image_index = np.asarray(image_index, dtype=np.int64)
        remap = np.full(self.num_images, -1, dtype=np.int64)
        remap[image_index] = np.arange(len(image_index))
        keep = remap[self.box_image] >= 0

        def rag(r):
            if r is None:
                return None
            return Ragged.from_lists([r.row(i).tolist() for i in image_index])

        lists = (rag(self.neg_category_ids), rag(self.not_exhaustive_category_ids))
        return self._select(image_index, keep, remap[self.box_image[keep]], lists)

    def image_range(self, a: int, b: int) -> "Dataset":
        """``subset_images(np.arange(a, b))`` for a dataset whose boxes are ordered by image, made of views (no
        column copied); a dataset with LVIS's per-image category lists is copied by :meth:`subset_images`."""
        if self.neg_category_ids is not None or self.not_exhaustive_category_ids is not None:
            return self.subset_images(np.arange(a, b))
        lo, hi = (int(x) for x in np.searchsorted(self.box_image, [a, b]))
        box_image = self.box_image[lo:hi] - a if a else self.box_image[lo:hi]
        return self._select(slice(a, b), slice(lo, hi), box_image, (None, None))

    def _select(self, img, box, box_image: np.ndarray, lists: tuple) -> "Dataset":
        """The Dataset of image rows ``img`` and box rows ``box`` (index arrays, masks or slices), with the boxes'
        new image rows ``box_image`` and the per-image category lists ``lists`` (negative, not exhaustive)."""

        def sel(col, m):
            return None if col is None else col[m]

        return Dataset(
            image_ids=self.image_ids[img],
            widths=self.widths[img],
            heights=self.heights[img],
            boxes=self.boxes[box],
            box_image=box_image,
            box_category=self.box_category[box],
            category_ids=self.category_ids,
            category_names=self.category_names,
            file_names=sel(self.file_names, img),
            box_ids=self.box_ids[box],
            crowd=self.crowd[box],
            area=self.area[box],
            difficult=sel(self.difficult, box),
            integer_boxes=sel(self.integer_boxes, box),
            label_lines=sel(self.label_lines, box),
            supercategory=self.supercategory,
            frequency=self.frequency,
            category_image_count=self.category_image_count,
            category_instance_count=self.category_instance_count,
            synset=self.synset,
            category_codes=self.category_codes,
            neg_category_ids=lists[0],
            not_exhaustive_category_ids=lists[1],
            format=self.format,
            path=self.path,
            has_image_sizes=self.has_image_sizes,
            info=dict(self.info),
        )

    def category_index(self) -> dict[int, int]:
        """Map category id -> row index."""
        return {int(c): i for i, c in enumerate(self.category_ids)}

    def __repr__(self) -> str:
        return (
            f"Dataset(format={self.format!r}, images={self.num_images}, boxes={self.num_boxes}, "
            f"categories={self.num_categories}, path={self.path!r})"
        )


# After the dataclass is built, so ``__init__`` keeps its plain ``file_names=None`` parameter.
_file_names = _LazyColumn()
_file_names.__set_name__(Dataset, "file_names")
Dataset.file_names = _file_names
