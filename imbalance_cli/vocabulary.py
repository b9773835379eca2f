"""One vocabulary: the name, unit and meaning of every quantity the reports print.

Each quantity is defined once here, under the key its JSON report uses. The terminal tables, the
CSV files, the HTML pages and the figures take their labels and explanations from :data:`TERMS`
(:func:`label`, :func:`meaning`), and every JSON report carries the definitions of the quantities
it holds under ``definitions`` (:func:`definitions`), so a reader of ``stats.json`` finds the same
words as a reader of the terminal. Nothing here computes anything; the analyses cite these keys.

Two words need care and are defined once for all commands:

* **small / medium / large** (size groups): the box's own area ``w x h`` in pixels of the original
  image against COCO's thresholds 32² and 96² (:data:`SMALL_MAX_AREA`, :data:`MEDIUM_MAX_AREA`).
  The COCO file's ``area`` field (a segment's area, what pycocotools' ``areaRng`` uses) groups
  boxes only when the user asks for COCO-evaluation groups (``--coco-eval-sizes``), and every
  output then says so (:data:`SIZE_DEFINITIONS`).
* **positive**: a *positive anchor* is one the matcher labels foreground, low-quality matches
  included (torchvision / detectron2 ``allow_low_quality_matches``, mmdetection ``min_pos_iou``):
  the anchors a detector trains a box with. A box *without a positive anchor* gets none at all
  (``boxes_without_positive``); a box *below the positive IoU* has no anchor at IoU >= the positive
  threshold and is trained only through low-quality matches, if at all
  (``boxes_below_positive_iou``). The two counts differ whenever low-quality matching is on.

This module imports nothing from the package, so every layer may read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

#: COCO's size thresholds (pycocotools ``areaRng``): small < 32², medium < 96², large otherwise.
SMALL_MAX_AREA = 32.0**2
MEDIUM_MAX_AREA = 96.0**2
SIZE_GROUP_NAMES = ("small", "medium", "large")
#: The dataset's counts, in the order every output lists them (the ``dataset`` section of ``stats.json``).
DATASET_COUNTS = (
    "images",
    "annotations",
    "boxes",
    "crowd",
    "invalid",
    "categories",
    "categories_used",
    "images_without_boxes",
)


@dataclass(frozen=True)
class Term:
    """A reported quantity: ``label`` (what the outputs call it), ``unit`` and one-sentence ``meaning``."""

    label: str
    unit: str
    meaning: str
    short: str = ""

    @property
    def column(self) -> str:
        """The table-column header: ``short`` where a table needs one, else the label."""
        return self.short or self.label

    def as_dict(self) -> dict:
        """``{"label", "unit", "meaning"}`` for a JSON report."""
        return {"label": self.label, "unit": self.unit, "meaning": self.meaning}


#: How size groups are formed: ``box`` (default, every command) or ``area_field`` (``--coco-eval-sizes``).
SIZE_DEFINITIONS = {
    "box": Term(
        "size groups by box area",
        "boxes",
        "box area w·h in pixels of the original image: small < 32², medium 32²–96², large ≥ 96² "
        "(COCO's thresholds applied to the box itself)",
    ),
    "area_field": Term(
        "COCO-eval size groups (the file's area field)",
        "boxes",
        "the annotation's own `area` field (a segment's area, as pycocotools' areaRng groups "
        "boxes for COCO evaluation), the box's w·h where a record has none: small < 32², "
        "medium 32²–96², large ≥ 96²",
    ),
}

TERMS: dict[str, Term] = {
    # ---------------------------------------------------------------- dataset summary
    "images": Term("images", "images", "image records of the dataset (of the split, for a split)"),
    "annotations": Term("annotations", "records", "every box record in the file, valid or not"),
    "boxes": Term(
        "valid boxes",
        "boxes",
        "non-crowd boxes with finite coordinates, w > 0 and h > 0 that overlap "
        "their image: the boxes every statistic counts",
    ),
    "crowd": Term("crowd boxes", "boxes", "COCO iscrowd = 1 or Open Images IsGroupOf = 1 (not counted as objects)"),
    "invalid": Term(
        "invalid boxes",
        "boxes",
        "boxes that are non-finite, of non-positive size or entirely outside their image (counted, not used)",
    ),
    "categories": Term("categories defined", "classes", "categories the file defines"),
    "categories_used": Term("categories used", "classes", "categories with at least one valid box"),
    "images_without_boxes": Term("images without valid boxes", "images", "background images: no valid box"),
    "difficult": Term("difficult boxes", "boxes", "VOC `difficult` flag, among valid boxes (counted as valid)"),
    # ---------------------------------------------------------------- class measures (survey §9.2)
    "imbalance_ratio": Term("imbalance ratio", "ratio", "max / min instances over used classes (1 = balanced)"),
    "gini": Term(
        "Gini coefficient", "0–1", "inequality of instances per used class: 0 = balanced, towards 1 = one class has all"
    ),
    "normalized_entropy": Term(
        "normalised entropy", "0–1", "entropy of the class distribution / log K (1 = uniform over the K used classes)"
    ),
    "tv_to_uniform": Term(
        "TV distance to uniform",
        "0–1",
        "share of instances that would have to change class to make the distribution uniform",
    ),
    "kl_to_uniform": Term("KL divergence to uniform", "nats", "KL(class distribution || uniform) (0 = uniform)"),
    "cv": Term("coefficient of variation", "ratio", "std / mean of instances per used class"),
    "classes_used": Term("classes used (K)", "classes", "classes with at least one valid box"),
    # ---------------------------------------------------------------- size groups
    "small": Term("small", "boxes", "box area < 32² pixels (see the size-group definition in use)"),
    "medium": Term("medium", "boxes", "32² ≤ box area < 96² pixels (see the size-group definition in use)"),
    "large": Term("large", "boxes", "box area ≥ 96² pixels (see the size-group definition in use)"),
    "size_groups": Term(
        "size groups",
        "boxes",
        "small / medium / large counts under the definition named in "
        "`size_groups_by` (box: w·h of the box; area_field: the file's area field)",
    ),
    # ---------------------------------------------------------------- anchors (survey Fig. 4)
    "anchors": Term("anchors", "anchors", "anchors (or points) the preset lays over every image"),
    "foreground": Term(
        "foreground (positive) anchors",
        "anchors",
        "anchors the matcher labels positive, low-quality matches included: what the detector trains boxes with",
    ),
    "background": Term("background (negative) anchors", "anchors", "anchors labelled negative"),
    "ignored": Term("ignored anchors", "anchors", "anchors between the negative and positive thresholds, in no loss"),
    "pos_neg_ratio": Term("positive : negative anchors", "ratio", "foreground / background anchors (shown 1 : x)"),
    "task_pos_neg_ratio": Term(
        "positive : negative tasks (sigmoid)",
        "ratio",
        "positive / negative binary tasks of C sigmoid classifiers (RS loss supp. Table S7; shown 1 : x)",
    ),
    "background_per_foreground": Term(
        "background per foreground anchor", "anchors per anchor", "background anchors / foreground anchors"
    ),
    "boxes_without_positive": Term(
        "boxes without a positive anchor",
        "boxes",
        "boxes the matcher gives no "
        "positive anchor at all, low-quality matches counted: the detector never trains "
        "them",
        short="no positive",
    ),
    "boxes_below_positive_iou": Term(
        "boxes below the positive IoU",
        "boxes",
        "boxes with no anchor at IoU ≥ the positive threshold: positives only through low-quality matches, if any",
        short="< pos. IoU",
    ),
    "boxes_below_negative": Term(
        "boxes below the negative IoU",
        "boxes",
        "boxes whose best anchor IoU is below the negative threshold",
        short="< neg. IoU",
    ),
    "low_quality": Term(
        "low-quality positives",
        "anchors",
        "positive anchors below the positive IoU threshold, "
        "made positive by the low-quality rule (a box's best anchors)",
    ),
    "positives_per_instance": Term(
        "positive anchors per instance", "anchors per box", "positive anchors of a class / its valid boxes"
    ),
    "positives_per_box": Term(
        "positives per box", "anchors per box", "positive anchors (YOLOv5: build_targets entries) per valid box"
    ),
    "boxes_ignored_only": Term(
        "boxes with only ignored anchors",
        "boxes",
        "boxes without a positive anchor that "
        "are the best box of some ignored anchors: trained neither as an object nor as "
        "background there (a subset of the boxes without a positive anchor)",
        short="ignored only",
    ),
    # ---------------------------------------------------------------- the per-box table (boxes.parquet)
    "annotation_id": Term(
        "annotation id",
        "id",
        "the box's id in the annotation file (YOLO and files without ids: its record number, from 1)",
    ),
    "image_id": Term("image id", "id", "the id of the box's image in the annotation file"),
    "file_name": Term(
        "file name", "path", "the image's file name as the annotation file gives it (YOLO: the image path)"
    ),
    "category_id": Term("category id", "id", "the box's category id in the annotation file (YOLO: the class index)"),
    "category": Term("class", "name", "the box's category name"),
    "size_group": Term(
        "size group",
        "small | medium | large",
        "the box's COCO size group under the definition in use (`size_groups_by`)",
    ),
    "resized_width": Term(
        "width after resize",
        "pixels",
        "the box's width in the detector's input: after the preset's resize (YOLOv5: letterbox), before padding",
    ),
    "resized_height": Term(
        "height after resize",
        "pixels",
        "the box's height in the detector's input: after the preset's resize (YOLOv5: letterbox)",
    ),
    "best_level": Term(
        "level of the best anchor",
        "level",
        "the pyramid level of the anchor with the box's highest IoU (the first such anchor)",
    ),
    "best_iou": Term(
        "best IoU",
        "IoU",
        "the box's highest IoU with any anchor of its image (YOLOv5: AutoAnchor's "
        "width/height ratio metric, threshold 1/anchor_t)",
    ),
    "positive_anchors": Term(
        "positive anchors",
        "anchors",
        "anchors the matcher assigns to this box, low-quality matches included (YOLOv5: build_targets entries)",
    ),
    "ignored_anchors": Term(
        "ignored anchors",
        "anchors",
        "ignored anchors (between the thresholds) whose own best "
        "box (highest IoU, first box on ties) is this box; they sum to the ignored anchors",
    ),
    "status": Term(
        "status",
        "positive | ignored-only | none",
        "positive: at least one positive anchor; "
        "ignored-only: no positive anchor but ignored ones; none: neither (positive anchors 0 = "
        "boxes without a positive anchor = ignored-only + none)",
    ),
    "label_file": Term("label file", "path", "YOLO: the box's label file (img2label_paths of its image)"),
    "label_line": Term("label line", "line", "YOLO: the 1-based line of the box in its label file"),
    # ---------------------------------------------------------------- advice (what to change)
    "anchors_per_image": Term(
        "anchors per image", "anchors", "anchors (or points) the preset lays over one image, mean over the images"
    ),
    "tail_instances_per_batch": Term(
        "tail-class instances per batch",
        "boxes per batch",
        "valid boxes of the tail "
        "classes (the rarest third of the used classes by instances) per batch of the "
        "simulated stream: tail boxes drawn per image times the batch size",
    ),
    "tail_share": Term(
        "tail-class share of instances",
        "share of boxes",
        "boxes of the tail classes among the boxes drawn by the sampler",
    ),
    "batches_with_tail": Term(
        "batches with a tail class", "share of batches", "batches holding at least one box of a tail class"
    ),
    "samples_per_epoch": Term(
        "samples per epoch", "images", "images drawn per epoch by the sampler (repeat-factor sampling repeats images)"
    ),
    # ---------------------------------------------------------------- anchor fitting (imbalance anchors)
    "coverage": Term(
        "coverage",
        "share of boxes",
        "share of boxes with at least one positive at the positive "
        "threshold (IoU presets: low-quality matches not counted; YOLOv5: a build_targets entry)",
    ),
    "size_balance": Term("size balance", "0–1", "min / max positives per box over the size groups"),
    "score": Term("objective score", "score", "the value the anchor search maximises"),
    "bpr": Term(
        "AutoAnchor BPR",
        "share of boxes",
        "best possible recall: share of boxes with an anchor inside "
        "the width/height ratio threshold (YOLOv5 utils/autoanchor.py metric())",
    ),
    "aat": Term(
        "anchors above threshold",
        "anchors per box",
        "anchors per box inside the width/height ratio threshold (AutoAnchor's aat)",
    ),
    # ---------------------------------------------------------------- distances (compare, splits, check)
    "tv": Term("TV distance", "0–1", "total variation 1/2 Σ|p − q| of two normalised distributions"),
    "js": Term("JS divergence", "nats", "Jensen–Shannon divergence (natural log, 0 to log 2)"),
    "wasserstein": Term(
        "Wasserstein-1 distance",
        "relative size",
        "earth mover's distance of two histograms on the same edges (mass at bin centres)",
    ),
    "foreground_share": Term("foreground anchor share", "% of anchors", "positive anchors / all anchors"),
    # ---------------------------------------------------------------- margins (ECM)
    "fg_bg_ratio": Term(
        "background per foreground (r)",
        "anchors per anchor",
        "background / foreground anchors of the classification layer; ECM's background count is r · Σ n_c",
    ),
    "total_instances": Term("instances", "boxes", "Σ n_c over classes (true counts)"),
    "formula_instances": Term(
        "instances in the formulas",
        "boxes",
        "Σ max(n_c, 1): a class without instances enters ECM's formulas as one (Cho & Krähenbühl's code)",
    ),
    # ---------------------------------------------------------------- batches
    "batches": Term("batches", "batches", "batches drawn from the sampler's stream (the last one may be partial)"),
    "class_coverage": Term("classes per batch", "% of used classes", "distinct classes in a batch / classes used"),
}


def term(key: str) -> Term:
    """The :class:`Term` of ``key`` (a ``KeyError`` names a quantity the vocabulary lacks: add it here)."""
    return TERMS[key]


def label(key: str) -> str:
    """What every output calls the quantity ``key``."""
    return TERMS[key].label


def meaning(key: str) -> str:
    """The one-sentence meaning of ``key``."""
    return TERMS[key].meaning


def unit(key: str) -> str:
    """The unit of ``key``."""
    return TERMS[key].unit


def definitions(keys: Iterable[str], size_groups_by: str | None = None) -> dict:
    """``{key: {label, unit, meaning}}`` of ``keys`` for a JSON report's ``definitions`` (and
    ``size_groups_by``: the size-group definition in use, when given)."""
    out = {k: TERMS[k].as_dict() for k in keys}
    if size_groups_by is not None:
        out["size_groups_by"] = {"value": size_groups_by, **SIZE_DEFINITIONS[size_groups_by].as_dict()}
    return out


def size_group_code(area):
    """COCO size group per area value (0 small, 1 medium, 2 large), a numpy int8 array.

    Takes any array-like of areas in pixels; NaN counts as large (callers pass finite areas).
    """
    import numpy as np

    a = np.asarray(area, dtype=np.float64)
    return np.where(a < SMALL_MAX_AREA, 0, np.where(a < MEDIUM_MAX_AREA, 1, 2)).astype(np.int8)


def size_definition_text(by: str | None) -> str:
    """One line naming the size-group definition ``by`` (``box`` when None)."""
    d = SIZE_DEFINITIONS[by or "box"]
    return f"{d.label}: {d.meaning}"
