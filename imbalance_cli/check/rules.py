"""Check rules: settings (defaults, TOML rules file) and the rule functions, Dataset -> findings.

Every finding names what it is about: the class (by name), and the annotation ids, image ids and
file names of every box and image involved (see :mod:`imbalance_cli.check.findings`).

Rules (every threshold and severity can be set in a TOML rules file, see :data:`DEFAULT_RULES`):

* structure (errors; a COCO-style JSON file the loader refuses is walked record by record by
  :func:`imbalance_cli.data.validate.load_with_problems`, so every broken record is reported and the
  well-formed rest is checked further): ``missing_field``, ``duplicate_id``, ``undefined_image``,
  ``undefined_category``, ``invalid_image`` (a side below 1 or above 1,000,000 pixels); ``invalid_box`` (non-finite,
  non-positive size or outside the image; any format);
* Datumaro's validator defaults as the starting point (warnings): ``few_instances`` (classes with
  <= 1 instance), ``imbalance_ratio`` (max/min instances over used classes >= 50), ``size_outlier``
  (per-class box width/height/area beyond 5 sigma of the class mean), ``skewed_distribution``
  (a class whose width/height/area histogram puts >= 80% of its mass in the top 10% of bins),
  ``unused_class`` (defined but no valid box), ``images_without_boxes``;
* anchors (with ``--anchors`` or ``[anchors] preset``): ``anchor_no_positive`` (share of boxes
  with no positive anchor at all, low-quality matches counted, > threshold), ``anchor_below_positive_iou``
  (share of boxes with no anchor at IoU >= the positive threshold, trained only through low-quality
  matches, > threshold 0.25) and ``anchor_neg_pos_ratio`` (background/foreground anchors
  > threshold). Only these import the anchor engine (and so torch);
* drift against a baseline ``stats.json`` (``imbalance stats --json``): ``drift_class_tv``
  (total-variation distance of class instance distributions), ``drift_scale_wasserstein``
  (W1 distance of the relative width/height/area histograms on the baseline's edges),
  ``drift_new_class`` / ``drift_missing_class`` (classes used in only one of the two).

Which findings carry ids: ``invalid_box``, ``size_outlier``, ``few_instances``,
``anchor_no_positive`` and ``drift_new_class`` list their boxes (and those boxes' images);
``images_without_boxes`` lists its images; the structural rules list every broken record (with its
annotation / image id and file name where the record has them). ``imbalance_ratio``,
``skewed_distribution``, ``unused_class``, ``anchor_neg_pos_ratio``, ``drift_class_tv``,
``drift_scale_wasserstein`` and ``drift_missing_class`` are about a class or the whole dataset and
involve no particular box.

Rules file (TOML)::

    fail_on = "error"                 # or "warning"
    [anchors]
    preset = "retinanet"              # anchor rules run only when a preset is given
    matcher = "torchvision"           # optional: torchvision | mmdet | ssd; pos_iou / neg_iou too
    [rules.imbalance_ratio]
    threshold = 100
    [rules.images_without_boxes]
    severity = "off"                  # error | warning | info | off
"""

from __future__ import annotations

import copy
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imbalance_cli.check.baseline import check_baseline, load_baseline  # noqa: F401 (re-exported)
from imbalance_cli.check.findings import LEVEL, SEVERITIES, CheckResult, Finding
from imbalance_cli.data._io import read_toml
from imbalance_cli.data.arrays import unique_ints
from imbalance_cli.data.dataset import INVALID_REASONS
from imbalance_cli.data.splits import has_splits, split_names, split_of
from imbalance_cli.data.validate import Problem, load_with_problems
from imbalance_cli.errors import InputError
from imbalance_cli.stats.batches import anchor_counts
from imbalance_cli.stats.classes import class_counts
from imbalance_cli.stats.compare import names_given, pair_classes, paired_counts, tv_distance, wasserstein_hist
from imbalance_cli.stats.geometry import histogram, relative_sizes
from imbalance_cli.values import is_int, is_number

DEFAULT_RULES: dict[str, dict] = {
    "missing_field": {"severity": "error"},
    "duplicate_id": {"severity": "error"},
    "undefined_image": {"severity": "error"},
    "undefined_category": {"severity": "error"},
    "invalid_image": {"severity": "error"},
    "invalid_box": {"severity": "error", "max_share": 0.0},
    "few_instances": {"severity": "warning", "threshold": 1},
    "imbalance_ratio": {"severity": "warning", "threshold": 50.0},
    "size_outlier": {"severity": "warning", "sigma": 5.0},
    "skewed_distribution": {"severity": "warning", "dominance": 0.8, "top_bins": 0.1, "bins": 10, "min_instances": 5},
    "unused_class": {"severity": "warning"},
    "images_without_boxes": {"severity": "warning", "max_share": 0.0},
    "anchor_no_positive": {"severity": "warning", "threshold": 0.0},
    "anchor_below_positive_iou": {"severity": "warning", "threshold": 0.25},
    "anchor_neg_pos_ratio": {"severity": "warning", "threshold": 1000.0},
    "drift_class_tv": {"severity": "warning", "threshold": 0.1},
    "drift_scale_wasserstein": {"severity": "warning", "threshold": 0.05},
    "drift_new_class": {"severity": "warning"},
    "drift_missing_class": {"severity": "warning"},
    "corrupt_image": {"severity": "error"},
    "corrupt_label": {"severity": "error"},
    "missing_label": {"severity": "error"},
    "duplicate_label": {"severity": "error"},
    "label_class_exceeds_nc": {"severity": "error"},
}
RULE_GROUPS = {
    "structure": (
        "missing_field",
        "duplicate_id",
        "undefined_image",
        "undefined_category",
        "invalid_image",
        "invalid_box",
    ),
    "distribution": (
        "few_instances",
        "imbalance_ratio",
        "size_outlier",
        "skewed_distribution",
        "unused_class",
        "images_without_boxes",
    ),
    "anchors": ("anchor_no_positive", "anchor_below_positive_iou", "anchor_neg_pos_ratio"),
    "drift": ("drift_class_tv", "drift_scale_wasserstein", "drift_new_class", "drift_missing_class"),
    "labels": ("corrupt_image", "corrupt_label", "missing_label", "duplicate_label", "label_class_exceeds_nc"),
}
GROUP_OF = {r: g for g, rs in RULE_GROUPS.items() for r in rs}


@dataclass
class Rules:
    """Rule settings: per-rule severity and thresholds, the fail level, and optional anchor settings."""

    rules: dict = field(default_factory=lambda: copy.deepcopy(DEFAULT_RULES))
    fail_on: str = "error"
    anchors: str | None = None
    anchor_options: dict = field(default_factory=dict)

    def get(self, rule: str, key: str):
        """Setting ``key`` of ``rule``."""
        return self.rules[rule][key]

    def severity(self, rule: str) -> str:
        """The rule's severity (``off`` disables it)."""
        return self.rules[rule]["severity"]


#: What each rule setting holds, checked by type then range when a rules file is read: ``(kind, low, high)``,
#: kind ``share`` (a number in [low, high]), ``number`` (finite, >= low), ``count`` (an integer >= low) or
#: ``bins`` (an integer in [low, high]). A string, boolean or array is never a number.
SETTING_SCHEMA: dict[str, dict[str, tuple]] = {
    "invalid_box": {"max_share": ("share", 0.0, 1.0)},
    "few_instances": {"threshold": ("count", 0, None)},
    "imbalance_ratio": {"threshold": ("number", 0.0, None)},
    "size_outlier": {"sigma": ("number", 0.0, None)},
    "skewed_distribution": {
        "dominance": ("share", 0.0, 1.0),
        "top_bins": ("share", 0.0, 1.0),
        "bins": ("bins", 1, 1000),
        "min_instances": ("count", 0, None),
    },
    "images_without_boxes": {"max_share": ("share", 0.0, 1.0)},
    "anchor_no_positive": {"threshold": ("share", 0.0, 1.0)},
    "anchor_neg_pos_ratio": {"threshold": ("number", 0.0, None)},
    "drift_class_tv": {"threshold": ("share", 0.0, 1.0)},
    "drift_scale_wasserstein": {"threshold": ("number", 0.0, None)},
}
_ANCHOR_KEYS = ("preset", "matcher", "pos_iou", "neg_iou")
#: Largest integer setting (counts compare with int64 instance counts).
_MAX_COUNT = 2**53


def _setting(field: str, value, kind: str, low, high, path):
    """``value`` checked against its schema entry; an :class:`InputError` naming the file and the field otherwise."""

    def refuse(expected: str):
        raise InputError(f"field '{field}': expected {expected}, got {_toml_repr(value)}", path=path)

    if kind in ("count", "bins"):
        top = _MAX_COUNT if high is None else high
        if not is_int(value) or not low <= value <= top:
            refuse(f"an integer from {low} to {top:,}")
        return value
    if not is_number(value) or not math.isfinite(value) or value < low or (high is not None and value > high):
        refuse(f"a number from {low:g} to {high:g}" if high is not None else f"a finite number >= {low:g}")
    return value


def _toml_repr(value) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load_rules(path: str | os.PathLike | None = None, fail_on: str | None = None, anchors: str | None = None) -> Rules:
    """Defaults, overridden by a TOML rules file, overridden by explicit ``fail_on``/``anchors`` (CLI options).

    The file is read by the bounded reader (regular file, :data:`~imbalance_cli.data._io.READ_LIMITS`
    ``rules``, nesting checked before parsing) and checked against :data:`SETTING_SCHEMA`: every wrong
    key, type or range is one :class:`InputError` naming the file and the field.
    """
    r = Rules()
    p = None
    if path is not None:
        p = Path(path)
        data = read_toml(p, "rules")
        unknown = set(data) - {"fail_on", "anchors", "rules"}
        if unknown:
            raise InputError(f"unknown top-level key(s) {sorted(unknown)}; expected fail_on, anchors, rules", path=p)
        if "fail_on" in data:
            if data["fail_on"] not in ("error", "warning"):
                raise InputError(
                    f'field \'fail_on\': expected "error" or "warning", got {_toml_repr(data["fail_on"])}', path=p
                )
            r.fail_on = data["fail_on"]
        _read_anchors_table(r, data.get("anchors", {}), p)
        _read_rule_tables(r, data.get("rules", {}), p)
    if fail_on is not None:
        r.fail_on = fail_on
    if r.fail_on not in ("error", "warning"):
        raise InputError(f"--fail-on must be 'error' or 'warning', got {r.fail_on!r}")
    if anchors is not None:
        r.anchors = None if anchors == "none" else anchors
        if r.anchors is None:  # --anchors none turns the file's whole [anchors] table off
            r.anchor_options = {}
    if r.anchors is not None:
        _check_anchor_settings(r, p if anchors is None else None)
    elif r.anchor_options:
        raise InputError(
            f"[anchors] sets {', '.join(sorted(r.anchor_options))} but no anchor preset is given "
            "(set [anchors] preset or --anchors)",
            path=p,
        )
    return r


def _read_anchors_table(r: Rules, a, p: Path) -> None:
    """The rules file's ``[anchors]`` table into ``r``: its preset and the matcher options, each checked."""
    if not isinstance(a, dict):
        raise InputError(f"field 'anchors': expected a table, got {_toml_repr(a)}", path=p)
    bad = set(a) - set(_ANCHOR_KEYS)
    if bad:
        raise InputError(f"[anchors] has unknown key(s) {sorted(bad)}; expected {', '.join(_ANCHOR_KEYS)}", path=p)
    for key in ("preset", "matcher"):
        if key in a and (not isinstance(a[key], str) or not a[key].strip()):
            raise InputError(f"field 'anchors.{key}': expected a name, got {_toml_repr(a[key])}", path=p)
    for key in ("pos_iou", "neg_iou"):
        if key in a:
            _setting(f"anchors.{key}", a[key], "share", 0.0, 1.0, p)
    if a.get("preset") not in (None, "none"):
        r.anchors = a["preset"]
    r.anchor_options = {k: v for k, v in a.items() if k != "preset"}


def _read_rule_tables(r: Rules, rules, p: Path) -> None:
    """The rules file's ``[rules.NAME]`` tables into ``r``: known rules and settings only, each value checked."""
    if not isinstance(rules, dict):
        raise InputError(f"field 'rules': expected a table of rule tables, got {_toml_repr(rules)}", path=p)
    for name, settings in rules.items():
        if name not in DEFAULT_RULES:
            raise InputError(f"unknown rule '{name}'; known: {', '.join(DEFAULT_RULES)}", path=p)
        if not isinstance(settings, dict):
            raise InputError(f"field 'rules.{name}': expected a table, got {_toml_repr(settings)}", path=p)
        for key, value in settings.items():
            if key not in DEFAULT_RULES[name]:
                raise InputError(
                    f"rule '{name}' has no setting '{key}' (settings: {', '.join(DEFAULT_RULES[name])})", path=p
                )
            if key == "severity":
                if value not in (*SEVERITIES, "off"):
                    raise InputError(
                        f"field 'rules.{name}.severity': expected error, warning, info or off, got {_toml_repr(value)}",
                        path=p,
                    )
            else:
                _setting(f"rules.{name}.{key}", value, *SETTING_SCHEMA[name][key], p)
            r.rules[name][key] = value


def _check_anchor_settings(r: Rules, path) -> None:
    """The anchor preset and its [anchors] settings resolved once, before any data is read (torch is not loaded);
    errors name the rules file ``path`` when the preset came from it."""
    from imbalance_cli.anchors.kinds import resolve as resolve_kind
    from imbalance_cli.anchors.presets import get_preset
    from imbalance_cli.specs import resolve_semantics

    opts = r.anchor_options
    try:
        yolo = resolve_kind(r.anchors)
        if yolo is not None:  # YOLOv5's build_targets: no IoU matcher, no thresholds
            given = sorted(k for k in ("pos_iou", "neg_iou") if opts.get(k) is not None)
            if given or str(opts.get("matcher") or "auto").lower() not in ("auto", "yolov5"):
                raise InputError(
                    f"{', '.join(given) or 'matcher'} does not apply to the yolov5 preset (it assigns "
                    "by YOLOv5's width/height ratio test)"
                )
            return
        preset = get_preset(r.anchors, pos_iou=opts.get("pos_iou"), neg_iou=opts.get("neg_iou"))
        if opts.get("matcher") is not None:
            if preset.assigner != "max_iou" and str(opts["matcher"]).lower() != "auto":
                raise InputError(
                    f"matcher {opts['matcher']!r} does not apply to preset {preset.name!r} (it assigns "
                    f"with {preset.assigner})"
                )
            resolve_semantics(opts["matcher"], preset)
    except InputError as e:
        if path is None:  # the preset came from --anchors
            raise
        raise InputError(f"[anchors]: {e.one_line()}", path=path) from None


def load_for_check(path: str | os.PathLike, format: str | None = None):
    """``(dataset, problems)`` for ``path``: the loader's dataset, plus every structurally broken
    record when the loader refuses a COCO-style file (see :mod:`imbalance_cli.data.validate`)."""
    return load_with_problems(path, format)


# --------------------------------------------------------------------------------------- helpers
def _emit(out: list, rules: Rules, rule: str, message: str, **kw) -> None:
    sev = rules.severity(rule)
    if sev != "off":
        out.append(Finding(rule, sev, message, **kw))


def _involved(dataset, boxes: np.ndarray | None = None, images: np.ndarray | None = None) -> dict:
    """``annotation_ids``, ``image_ids`` and ``file_names`` of dataset rows ``boxes`` (and their images)
    or of image rows ``images``."""
    out = {}
    if boxes is not None:
        boxes = np.asarray(boxes, dtype=np.int64)
        out["annotation_ids"] = [int(i) for i in dataset.box_ids[boxes]]
        images = unique_ints(dataset.box_image[boxes])
    if images is not None:
        images = np.asarray(images, dtype=np.int64)
        out["image_ids"] = [int(i) for i in dataset.image_ids[images]]
        if dataset.file_names is not None:
            out["file_names"] = [str(n or "") for n in dataset.file_names[images]]
    return out


def _class(dataset, row: int) -> dict:
    return {"category_id": int(dataset.category_ids[row]), "category": str(dataset.category_names[row])}


# --------------------------------------------------------------------------------------- structure
_NOUNS = {
    "missing_field": "record(s) with missing or malformed required fields",
    "duplicate_id": "record(s) with a duplicate id",
    "undefined_image": "annotation(s) with an undefined image_id",
    "undefined_category": "annotation(s) with an undefined category_id",
    "invalid_image": "image(s) whose width or height is not a finite number from 1 to 1,000,000 pixels",
}


def structure_findings(problems: list[Problem], rules: Rules) -> list[Finding]:
    """One finding per structural rule, listing every broken record and the ids it carries."""
    by_kind: dict[str, list[Problem]] = {}
    for pr in problems:
        by_kind.setdefault(pr.kind, []).append(pr)
    out = []
    for rule, prs in by_kind.items():
        images: dict[int, str] = {}
        for pr in prs:
            if pr.image_id is not None and pr.image_id not in images:
                images[pr.image_id] = pr.file_name or ""
        _emit(
            out,
            rules,
            rule,
            f"{len(prs)} {_NOUNS[rule]}",
            value=len(prs),
            annotation_ids=[pr.annotation_id for pr in prs if pr.annotation_id is not None],
            image_ids=list(images),
            file_names=list(images.values()),
            records=[pr.describe() for pr in prs],
        )
    return out


# --------------------------------------------------------------------------------------- distribution
def _box_attributes(dataset, valid: np.ndarray) -> dict[str, np.ndarray]:
    b = dataset.boxes[valid]
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    return {"width": w, "height": h, "area": w * h}


def distribution_findings(dataset, rules: Rules) -> list[Finding]:
    """Invalid boxes and the Datumaro-style distribution warnings (see module docstring)."""
    out: list[Finding] = []
    _invalid_findings(out, dataset, rules)
    valid = dataset.valid_mask()
    valid_idx = np.flatnonzero(valid)
    inst, _ = class_counts(dataset, valid)
    cats = dataset.box_category[valid]
    order = np.argsort(cats, kind="stable")
    bounds = np.searchsorted(cats[order], np.arange(dataset.num_categories + 1))

    def boxes_of(c):  # dataset rows of class row c's valid boxes
        return valid_idx[order[bounds[c] : bounds[c + 1]]]

    _class_count_findings(out, dataset, rules, inst, boxes_of)
    _empty_image_findings(out, dataset, rules, valid)
    # per-class attribute outliers and skew (width, height, area of valid boxes)
    _attribute_findings(out, dataset, rules, valid, valid_idx, order, bounds)
    return out


def _invalid_findings(out: list, dataset, rules: Rules) -> None:
    """``invalid_box``: one finding per invalid-box reason whose share is over the rule's."""
    reason = dataset.invalid_reason()
    n_box = max(dataset.num_boxes, 1)
    for k, name in enumerate(INVALID_REASONS):
        idx = np.flatnonzero(reason == k)
        share = len(idx) / n_box
        if len(idx) and share > rules.get("invalid_box", "max_share"):
            _emit(
                out,
                rules,
                "invalid_box",
                f"{len(idx)} invalid box(es) ({name.replace('_', ' ')})",
                value=len(idx),
                threshold=rules.get("invalid_box", "max_share"),
                **_involved(dataset, boxes=idx),
            )


def _class_count_findings(out: list, dataset, rules: Rules, inst: np.ndarray, boxes_of) -> None:
    """``few_instances``, ``unused_class`` and ``imbalance_ratio`` of the valid boxes' class counts ``inst``."""
    names = dataset.category_names
    used = inst > 0
    thr = rules.get("few_instances", "threshold")
    for i in np.flatnonzero(used & (inst <= thr)):
        _emit(
            out,
            rules,
            "few_instances",
            f"class '{names[i]}' has only {inst[i]} instance(s)",
            value=int(inst[i]),
            threshold=thr,
            **_class(dataset, i),
            **_involved(dataset, boxes=boxes_of(i)),
        )
    for i in np.flatnonzero(~used):
        _emit(
            out,
            rules,
            "unused_class",
            f"class '{names[i]}' is defined but has no valid box",
            value=0,
            **_class(dataset, i),
        )
    if used.sum() >= 1:
        ratio = float(inst[used].max() / inst[used].min())
        thr = rules.get("imbalance_ratio", "threshold")
        if ratio >= thr:
            hi, lo = (
                int(np.argmax(np.where(used, inst, -1))),
                int(np.argmin(np.where(used, inst, np.iinfo(np.int64).max))),
            )
            _emit(
                out,
                rules,
                "imbalance_ratio",
                f"imbalance ratio {ratio:.1f} (max '{names[hi]}': {inst[hi]}, "
                f"min '{names[lo]}': {inst[lo]}) >= {thr:g}",
                value=ratio,
                threshold=thr,
            )


def _empty_image_findings(out: list, dataset, rules: Rules, valid: np.ndarray) -> None:
    """``images_without_boxes``: images without a valid box, over the rule's share."""
    n_img = dataset.num_images
    if n_img:
        has = np.zeros(n_img, dtype=bool)
        has[dataset.box_image[valid]] = True
        empty = int((~has).sum())
        share = empty / n_img
        thr = rules.get("images_without_boxes", "max_share")
        if empty and share > thr:
            _emit(
                out,
                rules,
                "images_without_boxes",
                f"{empty} of {n_img} images ({share:.1%}) have no valid box",
                value=share,
                threshold=thr,
                **_involved(dataset, images=np.flatnonzero(~has)),
            )


def _attribute_findings(out: list, dataset, rules: Rules, valid, valid_idx, order, bounds) -> None:
    """``size_outlier`` and ``skewed_distribution`` of each class's valid boxes' width, height and area."""
    names = dataset.category_names
    attrs = _box_attributes(dataset, valid)
    sigma = rules.get("size_outlier", "sigma")
    sk = rules.rules["skewed_distribution"]
    bins = max(1, int(sk["bins"]))
    top = max(1, int(round(sk["top_bins"] * bins)))
    for c in range(dataset.num_categories):
        sel = order[bounds[c] : bounds[c + 1]]
        if len(sel) < 2:
            continue
        for attr, values in attrs.items():
            v = values[sel]
            mean, std = v.mean(), v.std()
            if std > 0:
                far = np.abs(v - mean) > sigma * std
                n_out = int(far.sum())
                if n_out:
                    _emit(
                        out,
                        rules,
                        "size_outlier",
                        f"class '{names[c]}': {n_out} box(es) with {attr} beyond "
                        f"{sigma:g} sigma of the class mean ({mean:.4g} +- {std:.4g})",
                        value=n_out,
                        threshold=sigma,
                        **_class(dataset, c),
                        **_involved(dataset, boxes=valid_idx[sel[far]]),
                    )
            if len(sel) >= sk["min_instances"] and v.max() > v.min():
                hist, _ = np.histogram(v, bins=bins)
                mass = float(np.sort(hist)[::-1][:top].sum() / len(v))
                if mass >= sk["dominance"]:
                    _emit(
                        out,
                        rules,
                        "skewed_distribution",
                        f"class '{names[c]}': {mass:.0%} of its {attr} distribution in the top {top} of {bins} bins",
                        value=mass,
                        threshold=sk["dominance"],
                        **_class(dataset, c),
                    )


# --------------------------------------------------------------------------------------- anchors
def anchor_findings(dataset, rules: Rules) -> list[Finding]:
    """Anchor rules under ``rules.anchors``, counted with the anchor engine
    (:func:`imbalance_cli.stats.batches.anchor_counts`); torch is loaded by the engine when it runs,
    so a check without anchor rules never loads it."""
    opts = {k: v for k, v in rules.anchor_options.items() if k in ("matcher", "pos_iou", "neg_iou")}
    a = anchor_counts(dataset, rules.anchors, **opts)
    out: list[Finding] = []
    if a["boxes"]:
        share = a["boxes_without_positive"] / a["boxes"]
        thr = rules.get("anchor_no_positive", "threshold")
        below = a.get("boxes_below_positive_iou")
        other = (
            ""
            if below is None
            else (
                f"; {below} ({below / a['boxes']:.2%}) have no anchor at IoU >= "
                f"{a['pos_iou']:g} (positives only through low-quality matches)"
            )
        )
        if share > thr:
            rows = a.get("box_without_positive")
            _emit(
                out,
                rules,
                "anchor_no_positive",
                f"{a['boxes_without_positive']} of {a['boxes']} boxes ({share:.2%}) "
                f"have no positive anchor under '{rules.anchors}' (low-quality matches counted){other}",
                value=share,
                threshold=thr,
                **(_involved(dataset, boxes=np.sort(rows)) if rows is not None else {}),
            )
        if below is not None and below / a["boxes"] > rules.get("anchor_below_positive_iou", "threshold"):
            rows = a.get("box_below_positive_iou")
            _emit(
                out,
                rules,
                "anchor_below_positive_iou",
                f"{below} of {a['boxes']} boxes ({below / a['boxes']:.2%}) "
                f"have no anchor at IoU >= {a['pos_iou']:g} under '{rules.anchors}': positives only through "
                f"low-quality matches ({a['boxes_without_positive']} without any positive)",
                value=below / a["boxes"],
                threshold=rules.get("anchor_below_positive_iou", "threshold"),
                **_involved(dataset, boxes=np.sort(rows)),
            )
    fg, bg = float(a["foreground_total"]), float(a["background_total"])
    thr = rules.get("anchor_neg_pos_ratio", "threshold")
    ratio = math.inf if fg == 0 else bg / fg
    if ratio > thr:
        _emit(
            out,
            rules,
            "anchor_neg_pos_ratio",
            f"background:foreground anchors {ratio:.1f}:1 under '{rules.anchors}' exceeds {thr:g}:1",
            value=ratio if math.isfinite(ratio) else None,
            threshold=thr,
        )
    return out


# --------------------------------------------------------------------------------------- YOLO labels
_LOCATION = re.compile(r"^(.*?):(\d+): ")
_LABEL_RULES = (  # rule, info key, what
    ("corrupt_image", "unreadable_image_files", "corrupt image(s) the trainer skips"),
    ("corrupt_label", "bad_lines", "corrupt label file(s): the trainer skips their images"),
    ("missing_label", "missing_labels", "image(s) without a label file (read as background images)"),
    ("duplicate_label", "duplicates", "duplicate label row(s) the trainer removes"),
    ("label_class_exceeds_nc", "fatal", "label row(s) whose class exceeds nc (YOLOv5's train.py stops)"),
)


def _location(entry: str) -> dict:
    m = _LOCATION.match(entry)
    if m:
        return {"file": m.group(1), "line": int(m.group(2))}
    return {"file": entry.split(": ", 1)[0]}


def label_findings(dataset, rules: Rules) -> list[Finding]:
    """YOLO datasets: what the loader found by the trainer's rules (:mod:`imbalance_cli.data.yolo`), one finding per
    rule listing every file (and line) at fault as ``records`` and ``locations``."""
    out: list[Finding] = []
    info = dataset.info
    for rule, key, what in _LABEL_RULES:
        entries = info.get(key) or []
        if not entries:
            continue
        trainer = info.get("trainer", "the trainer")
        _emit(
            out,
            rules,
            rule,
            f"{len(entries):,} {what} ({trainer}'s rules)",
            value=len(entries),
            records=list(entries),
            locations=[_location(e) for e in entries],
        )
    return out


# --------------------------------------------------------------------------------------- drift
def baseline_pairing(dataset, baseline) -> dict:
    """The dataset's classes paired with the (checked) baseline's: by name when both name theirs, else by id."""
    baseline = check_baseline(baseline)
    b_ids = [c.id for c in baseline.classes]
    b_names = [c.name if c.name is not None else str(c.id) for c in baseline.classes]
    by_name = names_given(dataset) and all(c.name is not None for c in baseline.classes)
    return pair_classes(dataset.category_ids, dataset.category_names, b_ids, b_names, by_name)


def drift_findings(dataset, baseline, rules: Rules) -> list[Finding]:
    """Drift of ``dataset`` against a baseline stats report (class TV, scale W1, new/missing classes).

    Classes are paired by name when both the dataset and the baseline name theirs (unique names), else by
    id (:func:`imbalance_cli.stats.compare.pair_classes`); each class finding says which.
    """
    baseline = check_baseline(baseline)  # a dict from the API is checked like a file
    out: list[Finding] = []
    valid = dataset.valid_mask()
    inst, _ = class_counts(dataset, valid)
    b_inst = [float(c.instances) for c in baseline.classes]
    pairing = baseline_pairing(dataset, baseline)
    cur, base = paired_counts(pairing, inst, b_inst)
    by = f"classes paired by {pairing['by']}"
    tv = tv_distance(cur, base)
    thr = rules.get("drift_class_tv", "threshold")
    if tv is not None and tv > thr:
        _emit(
            out,
            rules,
            "drift_class_tv",
            f"class distribution drifted from the baseline: TV distance {tv:.3f} > {thr:g} ({by})",
            value=tv,
            threshold=thr,
        )
    for i in np.flatnonzero((cur > 0) & (base == 0)):
        row = int(pairing["index_a"][i])
        cid, name = int(dataset.category_ids[row]), pairing["names"][i]
        boxes = np.flatnonzero(valid & (dataset.box_category == row))
        _emit(
            out,
            rules,
            "drift_new_class",
            f"class '{name}' is used but not in the baseline ({by})",
            category_id=cid,
            category=name,
            value=int(cur[i]),
            **_involved(dataset, boxes=boxes),
        )
    for i in np.flatnonzero((cur == 0) & (base > 0)):
        cid, name = int(pairing["ids_b"][i]), pairing["names"][i]
        _emit(
            out,
            rules,
            "drift_missing_class",
            f"class '{name}' is in the baseline ({int(base[i])} instances) but not used here ({by})",
            category_id=cid,
            category=name,
            value=int(base[i]),
        )
    _scale_drift(out, dataset, valid, baseline, rules)
    return out


def _scale_drift(out: list, dataset, valid: np.ndarray, baseline, rules: Rules) -> None:
    """Findings for each relative-size histogram whose Wasserstein distance to the baseline's passes the threshold."""
    sizes = relative_sizes(dataset, valid)  # relative sizes: valid with or without image sizes
    thr = rules.get("drift_scale_wasserstein", "threshold")
    for key in ("relative_width", "relative_height", "relative_area"):
        h = getattr(baseline.scale, key) if baseline.scale is not None else None
        if h is None:
            continue
        edges = np.asarray(h.edges, dtype=np.float64)
        w = wasserstein_hist(histogram(sizes[key], edges), np.asarray(h.counts, dtype=np.float64), edges)
        if w is not None and w > thr:
            _emit(
                out,
                rules,
                "drift_scale_wasserstein",
                f"{key.replace('_', ' ')} distribution drifted: Wasserstein distance {w:.4f} > {thr:g}",
                value=w,
                threshold=thr,
            )


# --------------------------------------------------------------------------------------- run
def run_check(
    path: str | os.PathLike,
    rules: Rules | None = None,
    baseline: dict | None = None,
    format: str | None = None,
    split: str | None = None,
    yolo_version: int | None = None,
) -> CheckResult:
    """Run every enabled rule on the file at ``path`` (plus anchors/drift rules when configured).

    ``format`` is the annotation format (coco, lvis, objects365, openimages, voc, yolo; detected when None);
    ``split`` one split of a multi-split data.yaml (:func:`run_check_splits` checks every split);
    ``yolo_version`` whose rules a YOLO dataset is read by (8: Ultralytics 8.x, default; 5: YOLOv5 7.0).
    """
    results = run_check_splits(path, rules, baseline, format, split, yolo_version)
    if len(results) != 1:
        raise InputError(f"the file has {len(results)} splits: pass split= (or use run_check_splits)", path=path)
    return results[0]


def run_check_splits(
    path: str | os.PathLike,
    rules: Rules | None = None,
    baseline: dict | None = None,
    format: str | None = None,
    split: str | None = None,
    yolo_version: int | None = None,
) -> list[CheckResult]:
    """:func:`run_check` of split ``split``, or of every split of a multi-split data.yaml in turn (one result
    each, named ``file[split]``), never of the splits merged; one result for a file without splits."""
    rules = rules or Rules()
    dataset, problems = load_with_problems(path, format, yolo_version=yolo_version)
    if split is not None:
        parts = [split_of(dataset, split)]
    elif has_splits(dataset):
        parts = [split_of(dataset, name) for name in split_names(dataset)]
    else:
        parts = [dataset]
    return [_check_dataset(d, problems, rules, baseline, d.path if d is not dataset else path) for d in parts]


def _check_dataset(dataset, problems, rules: Rules, baseline: dict | None, path) -> CheckResult:
    findings = structure_findings(problems, rules)
    run = list(RULE_GROUPS["structure"]) + list(RULE_GROUPS["distribution"])
    if dataset.format == "yolo":
        findings += label_findings(dataset, rules)
        run = list(RULE_GROUPS["labels"]) + run
    findings += distribution_findings(dataset, rules)
    if rules.anchors:
        findings += anchor_findings(dataset, rules)
        run += list(RULE_GROUPS["anchors"])
    if baseline is not None:
        findings += drift_findings(dataset, baseline, rules)
        run += list(RULE_GROUPS["drift"])
    run = [r for r in run if rules.severity(r) != "off"]
    findings.sort(key=lambda f: (-LEVEL[f.severity], run.index(f.rule) if f.rule in run else 99))
    summary = {
        "format": dataset.format,
        "images": dataset.num_images,
        "annotations": dataset.num_boxes,
        "categories": dataset.num_categories,
        "anchors": rules.anchors,
        "baseline": baseline is not None,
    }
    if baseline is not None:
        summary["classes_paired_by"] = baseline_pairing(dataset, baseline)["by"]
    if dataset.format == "yolo":
        summary["yolo_trainer"] = dataset.info.get("trainer")
    return CheckResult(str(path), findings, rules.fail_on, run, summary)
