"""`analyze()` and the :class:`Analysis` it returns: the survey's dataset statistics as plain data.

``analyze(dataset)`` computes the ``imbalance.stats/1`` report (schema documented in
:mod:`imbalance_cli.stats.schema`): summary, class long tail (Oksuz et al., TPAMI 2021, Fig. 5a; LVIS
frequency groups; BAGS groups, Li et al., BAGS, CVPR 2020, Eq. 3), objects/classes per image (Figs. 5b, 5c),
scale (Fig. 7), location (Fig. 13), the imbalance measures of §9.2
(:mod:`imbalance_cli.stats.measures`), one verdict per imbalance type and, when asked,
the anchor statistics of :func:`imbalance_cli.stats.anchors.anchor_statistics`.

:class:`Analysis` wraps the dict: ``.to_dict()``, ``.to_json()``, ``.classes`` and
``.tables()`` (pandas). Writing it (``.save(out_dir)`` on the report :func:`imbalance_cli.analyze`
returns) is the renderers' business: :mod:`imbalance_cli.report.stats`.
"""

from __future__ import annotations

import copy
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np

from imbalance_cli.anchors.kinds import resolve as resolve_kind
from imbalance_cli.data.dataset import INVALID_REASONS, Dataset
from imbalance_cli.errors import InputError
from imbalance_cli.fileio import dumps_json, to_jsonable
from imbalance_cli.progress import progress
from imbalance_cli.specs import parse_anchors
from imbalance_cli.stats import geometry, measures
from imbalance_cli.stats.anchors import anchor_statistics
from imbalance_cli.stats.boxes import BoxTable
from imbalance_cli.stats.classes import (
    DEFAULT_BAGS_EDGES,
    bags_groups,
    class_counts,
    lvis_frequency,
    lvis_frequency_scope,
)
from imbalance_cli.stats.schema import SCHEMA, validate
from imbalance_cli.stats.yolov5 import yolov5_statistics
from imbalance_cli.vocabulary import DATASET_COUNTS, definitions

#: Verdict thresholds (level "ok" below the first, "moderate" below the second, else "severe").
#: class: Gini coefficient of instances per used class; scale/location: TV distance to
#: uniform of the relative-area / centre histograms; foreground_background: background
#: anchors per foreground anchor *divided by the reference* of :data:`FG_BG_REFERENCE` for the
#: same preset (1 = what the detector sees on COCO).
VERDICT_THRESHOLDS = {
    "class": (0.3, 0.6),
    "scale": (0.3, 0.6),
    "location": (0.3, 0.5),
    "foreground_background": (2.0, 5.0),
}

#: What each built-in anchor preset typically sees: background anchors per foreground anchor on
#: COCO, measured with this program's anchor engine (default matcher of the preset: torchvision's
#: Matcher for retinanet/rpn, SSDMatcher for ssd300) over the two bundled real COCO 2017 subsets
#: together (examples/data/coco-mini_instances_{train,val}2017.json.gz, 80 + 79 images):
#: retinanet 27,202,200 / 31,585; rpn 36,158,342 / 8,031; ssd300 1,383,199 / 5,189;
#: mmdet-retinanet 27,203,434 / 30,948; detectron2-retinanet 27,203,439 / 30,933; atss 3,020,259 / 12,261;
#: fcos 3,020,335 / 12,185 (ATSS / FCOS count locations, one anchor or point each).
#: ``tests/test_stats_verdicts.py`` re-measures them. (About 1:1000 for RetinaNet is what the
#: survey's Fig. 4a shows; Oksuz et al., Imbalance Problems in Object Detection, TPAMI 2021.)
FG_BG_REFERENCE = {
    "retinanet": 27_202_200 / 31_585,
    "rpn": 36_158_342 / 8_031,
    "ssd300": 1_383_199 / 5_189,
    "mmdet-retinanet": 27_203_434 / 30_948,
    "detectron2-retinanet": 27_203_439 / 30_933,
    "atss": 3_020_259 / 12_261,
    "fcos": 3_020_335 / 12_185,
}
FG_BG_REFERENCE_SOURCE = "COCO 2017 (bundled 159-image subsets), same preset, measured with this program"

_ANCHOR_OPTIONS = ("matcher", "device", "pos_iou", "neg_iou", "negative_iou_sample", "seed")

#: The quantities of an ``imbalance.stats/1`` report whose label, unit and meaning its ``definitions`` carry.
STATS_TERMS = (
    *DATASET_COUNTS,
    "imbalance_ratio",
    "gini",
    "normalized_entropy",
    "tv_to_uniform",
    "kl_to_uniform",
    "cv",
    "classes_used",
    "small",
    "medium",
    "large",
    "size_groups",
    "anchors",
    "foreground",
    "background",
    "ignored",
    "pos_neg_ratio",
    "task_pos_neg_ratio",
    "background_per_foreground",
    "boxes_without_positive",
    "boxes_ignored_only",
    "boxes_below_positive_iou",
    "boxes_below_negative",
    "low_quality",
    "positives_per_instance",
    "positives_per_box",
)


#: Verdict levels; ``undetermined``: the sample is too small for the measure to say anything (see
#: :data:`UNDETERMINED_CHANCE`).
VERDICT_LEVELS = ("ok", "moderate", "severe", "undetermined")

#: A measure is told apart from sampling noise when a balanced dataset of the same size reaches it in at most
#: this share of seeded draws (a one-sided test at 1 %).
SIGNIFICANCE = 0.01

#: A class, scale or location verdict is ``undetermined`` when the measure is within sampling noise and a
#: balanced dataset of the same size shows at least this value of it by chance (our choice: half of the
#: measure's range is noise; e.g. 2 boxes in a 50-bin histogram give TV 0.96 however they are spread).
UNDETERMINED_CHANCE = 0.5


def _level(kind: str, value: float) -> str:
    lo, hi = VERDICT_THRESHOLDS[kind]
    return "ok" if value < lo else ("moderate" if value < hi else "severe")


def _judged(kind: str, value: float, chance: tuple, n: int, what: str) -> tuple[str, dict, str]:
    """``(level, {chance, p_value, excess}, text)`` of a measure in [0, 1] for a sample of ``n`` ``what``.

    ``chance`` is ``(expected value, p-value)`` under a balanced dataset of the same size
    (:mod:`imbalance_cli.stats.measures`). The thresholds of :data:`VERDICT_THRESHOLDS` apply to the excess over
    chance, ``(value - expected) / (1 - expected)``, when the value is told apart from noise (p-value <=
    :data:`SIGNIFICANCE`); within noise the level is ``ok`` (no more imbalance than sampling gives), or
    ``undetermined`` when the sample is too small to say (:data:`UNDETERMINED_CHANCE`). A large dataset is
    judged on its value (its expected value is near 0); a small one is not called imbalanced for the noise of
    its own size.
    """
    expected, p = chance
    if expected is None:
        return _level(kind, value), {"chance": None, "p_value": None, "excess": None}, ""
    excess = max(0.0, (value - expected) / (1.0 - expected)) if expected < 1 else 0.0
    facts = {"chance": expected, "p_value": p, "excess": excess}
    if p is not None and p > SIGNIFICANCE:
        if expected >= UNDETERMINED_CHANCE:
            return (
                "undetermined",
                facts,
                (f"; too few {what} to judge ({n:,}): a balanced dataset of this size shows {expected:.2f} by chance"),
            )
        return "ok", facts, f" (within sampling noise: {expected:.2f} by chance at {n:,} {what})"
    return _level(kind, excess), facts, f" ({expected:.2f} by chance at {n:,} {what}: excess {excess:.2f})"


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def verdicts(report: dict) -> list[dict]:
    """One verdict ``{type, level, value, message}`` per imbalance type present in ``report``.

    ``message`` is one line without the type and level (renderers show those beside it).

    Types: ``class`` (by Gini), ``scale`` (TV of the relative-area histogram), ``location``
    (TV of the centre histogram), each judged on its excess over the value a balanced dataset of the
    same size shows by chance (``chance``, ``excess``; ``undetermined`` when the sample is too small, see
    :func:`_judged` and :mod:`imbalance_cli.stats.measures`) and, with anchor statistics, ``foreground_background``
    (background anchors per foreground anchor, survey Fig. 4a; ``value`` is that ratio). The
    foreground-background level compares the ratio with what the same preset sees on COCO
    (:data:`FG_BG_REFERENCE`, stored as ``reference`` with ``reference_source``): ok below 2x,
    moderate below 5x, severe above; every anchor detector sees about 1:1000 on COCO, so a fixed
    threshold would call every dataset severe. A preset without a reference (a TOML file) gets
    level ``"ok"`` and says so. Thresholds: :data:`VERDICT_THRESHOLDS`. A type without data gets
    level ``"ok"`` and says why.
    """
    n_boxes = int((report.get("dataset") or {}).get("boxes") or 0)
    out = [_class_verdict(report), _scale_verdict(report, n_boxes), _location_verdict(report, n_boxes)]
    a = report.get("anchors")
    if a:
        out.append(_fg_bg_verdict(a))
    return out


def _class_verdict(report: dict) -> dict:
    """The ``class`` verdict: Gini judged on its excess over chance (see :func:`verdicts`)."""
    m = report["measures"]
    if m.get("gini") is None:
        return {"type": "class", "level": "ok", "value": None, "message": "no valid boxes"}
    n_inst = sum(int(c.get("instances") or 0) for c in report.get("classes") or [])
    chance = measures.gini_chance(n_inst, m["classes_used"], m["gini"]) if n_inst else (None, None)
    lvl, facts, note = _judged("class", m["gini"], chance, n_inst, "instances")
    return {
        "type": "class",
        "level": lvl,
        "value": m["gini"],
        **facts,
        "message": f"imbalance ratio {m['imbalance_ratio']:.1f}:1 over {m['classes_used']} used "
        f"classes, Gini {m['gini']:.2f}{note}, normalised entropy {_fmt(m['normalized_entropy'])}",
    }


def _scale_verdict(report: dict, n_boxes: int) -> dict:
    """The ``scale`` verdict: the relative-area histogram's TV distance to uniform, with the size groups' shares."""
    tv = report["scale"]["tv_to_uniform"]["relative_area"]
    if tv is None:
        return {"type": "scale", "level": "ok", "value": None, "message": "no valid boxes"}
    bins = len(report["scale"]["relative_area"]["counts"])
    chance = measures.histogram_tv_chance(n_boxes, bins, tv) if n_boxes else (None, None)
    lvl, facts, note = _judged("scale", tv, chance, n_boxes, "boxes")
    msg = f"relative-area histogram TV distance to uniform {tv:.2f}{note}"
    sg = report["scale"].get("size_groups")
    total = sum(sg.values()) if sg else 0
    if total:
        msg += (
            f"; small/medium/large {100 * sg['small'] / total:.0f}%/{100 * sg['medium'] / total:.0f}%/"
            f"{100 * sg['large'] / total:.0f}%"
        )
    return {"type": "scale", "level": lvl, "value": tv, **facts, "message": msg}


def _location_verdict(report: dict, n_boxes: int) -> dict:
    """The ``location`` verdict: the box-centre histogram's TV distance to uniform."""
    tv = report["location"]["tv_to_uniform"]
    if tv is None:
        return {"type": "location", "level": "ok", "value": None, "message": "no valid boxes"}
    b = report["location"]["bins"]
    chance = measures.histogram_tv_chance(n_boxes, b * b, tv) if n_boxes else (None, None)
    lvl, facts, note = _judged("location", tv, chance, n_boxes, "boxes")
    return {
        "type": "location",
        "level": lvl,
        "value": tv,
        **facts,
        "message": f"box-centre histogram ({b}x{b}) TV distance to uniform {tv:.2f}{note}",
    }


def _fg_bg_verdict(a: dict) -> dict:
    """The ``foreground_background`` verdict of the anchor statistics ``a`` (see :func:`verdicts`)."""
    fg, bg = a.get("foreground"), a.get("background")
    if fg:
        ratio = bg / fg
        preset = str(a.get("preset", ""))
        ref = FG_BG_REFERENCE.get(preset)
        msg = (
            f"{ratio:,.0f} background anchors per foreground anchor ({preset} anchors, {a.get('matcher', '')} matcher)"
        )
        if ref is None:
            lvl = "ok"
            msg += "; no COCO reference for this preset: run it on COCO to compare"
        else:
            lvl = _level("foreground_background", ratio / ref)
            msg += f"; COCO under the same preset: {ref:,.0f} ({ratio / ref:.2g}x)"
        return {
            "type": "foreground_background",
            "level": lvl,
            "value": ratio,
            "message": msg,
            "reference": ref,
            "reference_source": None if ref is None else FG_BG_REFERENCE_SOURCE,
        }
    else:
        return {
            "type": "foreground_background",
            "level": "severe" if bg else "ok",
            "value": None,
            "message": "no foreground anchor at all",
        }


def _check_strict(dataset: Dataset) -> None:
    reason = dataset.invalid_reason()
    bad = np.flatnonzero(reason >= 0)
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"invalid box ({INVALID_REASONS[reason[i]].replace('_', ' ')}: {dataset.boxes[i].tolist()}); "
            f"{bad.size} invalid box(es) in all, --strict makes them fatal",
            path=dataset.path,
            record=f"annotation id {int(dataset.box_ids[i])}",
        )


def _parse_edges(edges: Sequence[float]) -> list[float]:
    try:
        e = [float(x) for x in edges]
    except (TypeError, ValueError):
        raise InputError(f"--bags-edges must be numbers, got {edges!r}") from None
    if len(e) < 2 or any(b <= a for a, b in zip(e, e[1:])) or any(math.isnan(x) for x in e):
        raise InputError(f"--bags-edges must be at least two strictly increasing numbers, got {edges!r}")
    return e


# long: a docstring that explains each of its nine options; the body is one step loop
def analyze(
    dataset: Dataset,
    *,
    anchors: str | Any = None,
    location_bins: int = 20,
    per_class_location: bool = False,
    bags_edges: Sequence[float] = DEFAULT_BAGS_EDGES,
    hist_bins: int = 50,
    strict: bool = False,
    size_by: str = "box",
    **anchor_options: Any,
) -> "Analysis":
    """Compute the ``imbalance.stats/1`` report of ``dataset`` (see :mod:`imbalance_cli.stats.schema`).

    Parameters
    ----------
    anchors:
        ``None`` (or ``"none"``, as the CLI says it) or an anchor preset (``"retinanet"``, ``"rpn"``, ``"ssd300"``,
        a TOML path or an ``AnchorPreset``) for :func:`imbalance_cli.stats.anchors.anchor_statistics`; its dict is
        stored unchanged under ``report["anchors"]``. Needs image sizes.
    location_bins:
        Bins per axis of the box-centre histogram (survey Fig. 13).
    per_class_location:
        Also store one centre histogram per used class under ``location.per_class``.
    bags_edges:
        BAGS group edges on instance counts (Li et al., Balanced Group Softmax, CVPR 2020, Eq. 3); every count must
        fall inside.
    hist_bins:
        Bins over [0, 1] of the relative width/height/area histograms (survey Fig. 7).
    strict:
        Raise :class:`InputError` naming the first invalid box instead of counting it.
    size_by:
        Size groups (:mod:`imbalance_cli.vocabulary`): ``"box"`` (w·h of the box, default) or
        ``"area_field"`` (COCO-evaluation groups by the file's ``area``; the CLI's ``--coco-eval-sizes``).
    anchor_options:
        ``matcher``, ``device``, ``pos_iou``, ``neg_iou``, ``negative_iou_sample``, ``seed``,
        passed to ``anchor_statistics``.
    """
    _check_options(size_by, anchor_options, location_bins, hist_bins)
    edges = _parse_edges(bags_edges)
    anchors = parse_anchors(anchors)
    want_anchors = anchors is not None
    if want_anchors and not dataset.has_image_sizes:
        raise InputError(
            "anchor statistics need image sizes: pass --image-sizes sizes.csv or --anchors none", path=dataset.path
        )
    if strict:
        _check_strict(dataset)

    reason = dataset.invalid_reason()
    valid = (~dataset.crowd) & (reason < 0)
    report: dict = {"schema": SCHEMA}
    box_arrays: dict = {}  # the anchor pass's per-box arrays (the per-box table)
    steps = ["summary", "classes", "per_image", "scale", "location"] + (["anchors"] if want_anchors else [])
    # scale and location are independent of the other steps and spend their time in NumPy, which
    # releases the GIL: they run on two threads while the class statistics run here (0.64 -> 0.48 s
    # on the Objects365-tenth file); results are the same, the steps are reported in order
    with ThreadPoolExecutor(max_workers=2) as pool:
        background = {
            "scale": pool.submit(geometry.scale_statistics, dataset, valid, bins=int(hist_bins), size_by=size_by),
            "location": pool.submit(
                geometry.location_statistics, dataset, valid, bins=int(location_bins), per_class=per_class_location
            ),
        }
        for step in progress(steps, total=len(steps), description="statistics"):
            _run_step(step, report, dataset, (reason, valid, edges), background)
            if step == "location":
                pool.shutdown(wait=True)  # no idle threads left when the anchor pass forks its workers
            elif step == "anchors":
                report["anchors"] = _anchor_step(dataset, anchors, size_by, box_arrays, anchor_options)
    report["verdicts"] = verdicts(report)
    report["definitions"] = definitions(STATS_TERMS, size_groups_by=size_by)
    table = BoxTable(dataset, box_arrays, size_by, anchors=anchors) if box_arrays else None
    return Analysis(report, box_table=table)


def _run_step(step: str, report: dict, dataset: Dataset, masks: tuple, background: dict) -> None:
    """One dataset step of :func:`analyze` into ``report`` (``masks`` = invalid reasons, valid boxes, BAGS edges;
    ``background`` the scale and location futures)."""
    reason, valid, edges = masks
    if step == "summary":
        report["dataset"] = _summary(dataset, reason, valid)
    elif step == "classes":
        report.update(_classes(dataset, valid, edges))
        report["dataset"]["categories_used"] = report["measures"]["classes_used"]
    elif step == "per_image":
        report["objects_per_image"] = geometry.objects_per_image(dataset, valid)
        report["classes_per_image"] = geometry.classes_per_image(dataset, valid)
        report["dataset"]["images_without_boxes"] = (
            int(report["objects_per_image"]["counts"][0]) if dataset.num_images else 0
        )
    elif step == "scale":
        scale = background["scale"].result()
        scale["tv_to_uniform"] = {
            k: measures.histogram_tv(scale[k]["counts"]) for k in ("relative_width", "relative_height", "relative_area")
        }
        report["scale"] = scale
    elif step == "location":
        loc = background["location"].result()
        loc["tv_to_uniform"] = measures.histogram_tv(loc["counts"])
        report["location"] = loc


def _check_options(size_by: str, anchor_options: dict, location_bins: int, hist_bins: int) -> None:
    """Reject an unknown size grouping or anchor option and bin counts out of range, before any work."""
    geometry.check_size_by(size_by)
    unknown = set(anchor_options) - set(_ANCHOR_OPTIONS)
    if unknown:
        raise TypeError(f"analyze() got unexpected keyword argument(s) {sorted(unknown)}")
    if int(location_bins) < 1:
        raise InputError(f"--location-bins must be >= 1, got {location_bins}")
    if not 1 <= int(hist_bins) <= geometry.MAX_SCALE_BINS:
        raise InputError(f"--hist-bins must be from 1 to {geometry.MAX_SCALE_BINS:,}, got {hist_bins}")


def _anchor_step(dataset: Dataset, anchors: Any, size_by: str, box_arrays: dict, anchor_options: dict) -> dict:
    """The report's ``anchors`` block: YOLOv5's own assigner for its presets, else the IoU engine."""
    own_kind = resolve_kind(anchors)  # YOLOv5's build_targets, not the IoU engine (stats/yolov5.py)
    if own_kind is not None:
        return yolov5_statistics(dataset, own_kind, size_by=size_by, box_arrays=box_arrays, **anchor_options)
    return anchor_statistics(dataset, anchors, size_by=size_by, box_arrays=box_arrays, **anchor_options)


def _summary(dataset: Dataset, reason: np.ndarray, valid: np.ndarray) -> dict:
    by_reason = {name: int(np.count_nonzero(reason == i)) for i, name in enumerate(INVALID_REASONS)}
    out = {
        "format": dataset.format,
        "path": None if dataset.path is None else os.fspath(dataset.path),
        "images": dataset.num_images,
        "annotations": dataset.num_boxes,
        "boxes": int(np.count_nonzero(valid)),
        "crowd": int(np.count_nonzero(dataset.crowd)),
        "invalid": int(sum(by_reason.values())),
        "invalid_by_reason": by_reason,
        "categories": dataset.num_categories,
        "categories_used": 0,
        "images_without_boxes": 0,
        "has_image_sizes": bool(dataset.has_image_sizes),
    }
    if dataset.difficult is not None:
        out["difficult"] = int(np.count_nonzero(dataset.difficult & valid))
    return out


def _classes(dataset: Dataset, valid: np.ndarray, edges: list[float]) -> dict:
    instances, images = class_counts(dataset, valid)
    freq = lvis_frequency(images)
    try:
        groups = bags_groups(instances, edges)
    except ValueError:
        raise InputError(
            f"--bags-edges {edges}: some class has an instance count outside the edges "
            f"(counts range {int(instances.min())}..{int(instances.max())})"
        ) from None
    file_freq = dataset.frequency
    file_imgs = dataset.category_image_count
    file_inst = dataset.category_instance_count
    classes, disagreements = [], []
    for k in range(dataset.num_categories):
        row = {
            "id": int(dataset.category_ids[k]),
            "name": str(dataset.category_names[k]),
            "instances": int(instances[k]),
            "images": int(images[k]),
            "frequency": str(freq[k]),
            "bags_group": int(groups[k]),
        }
        if dataset.supercategory is not None:
            row["supercategory"] = str(dataset.supercategory[k])
        if file_freq is not None and file_freq[k]:
            row["file_frequency"] = str(file_freq[k])
            if file_freq[k] != freq[k]:
                disagreements.append(
                    {
                        "id": row["id"],
                        "name": row["name"],
                        "images": row["images"],
                        "frequency": row["frequency"],
                        "file_frequency": row["file_frequency"],
                    }
                )
        if file_imgs is not None and file_imgs[k] >= 0:
            row["file_images"] = int(file_imgs[k])
        if file_inst is not None and file_inst[k] >= 0:
            row["file_instances"] = int(file_inst[k])
        classes.append(row)
    out = {
        "classes": classes,
        "measures": measures.class_measures(instances),
        "frequency_groups": {g: int(np.count_nonzero(freq == g)) for g in ("r", "c", "f")},
        "frequency_scope": lvis_frequency_scope(dataset.num_images),
        "frequency_disagreements": disagreements,
        "bags_edges": edges,
        "bags_groups": {str(g): int(np.count_nonzero(groups == g)) for g in range(1, len(edges))},
    }
    if file_imgs is not None and np.all(file_imgs >= 0) and file_imgs.size:
        ff = lvis_frequency(file_imgs)
        out["frequency_groups_from_file_counts"] = {g: int(np.count_nonzero(ff == g)) for g in ("r", "c", "f")}
    return out


_TABLE_HISTS = ("objects_per_image", "classes_per_image")
_TABLE_SCALE = ("relative_width", "relative_height", "relative_area")


class Analysis:
    """The result of :func:`analyze`: a dict of plain data (``imbalance.stats/1``) with pandas views.

    ``report["measures"]`` indexes the dict directly. ``box_table`` (with anchors) is the per-box table
    (:class:`imbalance_cli.stats.boxes.BoxTable`), kept apart from the JSON dict; :attr:`boxes` is its DataFrame.
    """

    def __init__(self, data: dict, box_table: BoxTable | None = None):
        self._data = to_jsonable(data)
        self.box_table = box_table

    @property
    def boxes(self):
        """The per-box table as a pandas DataFrame, one row per valid box in image order (None without anchors)."""
        return None if self.box_table is None else self.box_table.to_pandas()

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Analysis":
        """Read a ``stats.json`` written by ``imbalance stats`` (validated; :class:`InputError` if it is not one)."""
        from imbalance_cli.data._io import read_json

        data = read_json(path, "baseline")  # the bounded reader: regular file, 16 MiB, nesting checked first
        return cls(validate(data, path=os.fspath(path)))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def keys(self):
        """Top-level keys of the report dict."""
        return self._data.keys()

    def __repr__(self) -> str:
        d = self._data["dataset"]
        return (
            f"{type(self).__name__}(schema={self._data['schema']!r}, images={d['images']}, boxes={d['boxes']}, "
            f"categories_used={d['categories_used']})"
        )

    def to_dict(self) -> dict:
        """A deep copy of the report as plain JSON-able data (NaN/inf already mapped to None)."""
        return copy.deepcopy(self._data)

    def to_json(self, indent: bool = True) -> str:
        """The report as a JSON string."""
        return dumps_json(self._data, indent=indent)

    @property
    def measures(self) -> dict:
        """The class-distribution measures (survey §9.2)."""
        return dict(self._data["measures"])

    @property
    def classes(self):
        """Per-class table (pandas DataFrame), sorted by instances descending, then id."""
        import pandas as pd

        df = pd.DataFrame(self._data["classes"])
        if df.empty:
            return pd.DataFrame(columns=["id", "name", "instances", "images", "frequency", "bags_group"])
        return df.sort_values(["instances", "id"], ascending=[False, True], kind="stable").reset_index(drop=True)

    def tables(self) -> dict:
        """Name -> DataFrame: classes, objects_per_image, classes_per_image, relative_width/height/area, location.

        Histogram tables have one row per bin (``bin_start``, ``bin_end``, ``count``);
        ``location`` has one row per cell (``row`` = y bin, ``col`` = x bin, their ranges, ``count``).
        """
        import pandas as pd

        out = {"classes": self.classes}
        for name in _TABLE_HISTS:
            h = self._data[name]
            out[name] = pd.DataFrame({name.split("_per_")[0]: h["edges"][:-1], "images": h["counts"]})
        for name in _TABLE_SCALE:
            h = self._data["scale"][name]
            out[name] = pd.DataFrame({"bin_start": h["edges"][:-1], "bin_end": h["edges"][1:], "count": h["counts"]})
        loc = self._data["location"]
        b = loc["bins"]
        counts = np.asarray(loc["counts"], dtype=np.int64).reshape(b, b)
        e = np.linspace(0.0, 1.0, b + 1)
        rows, cols = np.divmod(np.arange(b * b), b)
        out["location"] = pd.DataFrame(
            {
                "row": rows,
                "col": cols,
                "y_start": e[rows],
                "y_end": e[rows + 1],
                "x_start": e[cols],
                "x_end": e[cols + 1],
                "count": counts.reshape(-1),
            }
        )
        return out
