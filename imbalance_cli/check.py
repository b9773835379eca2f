"""``imbalance check``: rules -> findings -> exit code, the CI gate in front of training.

A finding has a rule name, a severity (``error`` > ``warning`` > ``info``), a one-line message and,
where it applies, ``category_id``, ``value`` and ``threshold``. The run fails (exit code 1) when a
finding is at or above ``fail_on`` (``error`` by default); bad input or usage is exit code 2.

Rules (every threshold and severity can be set in a TOML rules file, see :data:`DEFAULT_RULES`):

* structure (errors; COCO-style JSON is scanned record by record, so every broken record is
  reported instead of stopping at the first): ``missing_field``, ``duplicate_id``,
  ``undefined_image``, ``undefined_category``, ``invalid_image`` (non-positive size);
  ``invalid_box`` (non-finite, non-positive size or outside the image; any format);
* Datumaro's validator defaults as the starting point (warnings): ``few_instances`` (classes with
  <= 1 instance), ``imbalance_ratio`` (max/min instances over used classes >= 50), ``size_outlier``
  (per-class box width/height/area beyond 5 sigma of the class mean), ``skewed_distribution``
  (a class whose width/height/area histogram puts >= 80% of its mass in the top 10% of bins),
  ``unused_class`` (defined but no valid box), ``images_without_boxes``;
* anchors (with ``--anchors`` or ``[anchors] preset``): ``anchor_no_positive`` (share of boxes
  with no positive anchor > threshold) and ``anchor_neg_pos_ratio`` (background/foreground anchors
  > threshold);
* drift against a baseline ``stats.json`` (``imbalance stats --json``): ``drift_class_tv``
  (total-variation distance of class instance distributions), ``drift_scale_wasserstein``
  (W1 distance of the relative width/height/area histograms on the baseline's edges),
  ``drift_new_class`` / ``drift_missing_class`` (classes used in only one of the two).

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imbalance_cli.errors import InputError

SCHEMA = "imbalance.check/1"
SEVERITIES = ("info", "warning", "error")
LEVEL = {"info": 0, "warning": 1, "error": 2}
MAX_EXAMPLES = 5

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
    "anchor_neg_pos_ratio": {"severity": "warning", "threshold": 1000.0},
    "drift_class_tv": {"severity": "warning", "threshold": 0.1},
    "drift_scale_wasserstein": {"severity": "warning", "threshold": 0.05},
    "drift_new_class": {"severity": "warning"},
    "drift_missing_class": {"severity": "warning"},
}
RULE_GROUPS = {
    "structure": ("missing_field", "duplicate_id", "undefined_image", "undefined_category", "invalid_image", "invalid_box"),
    "distribution": ("few_instances", "imbalance_ratio", "size_outlier", "skewed_distribution", "unused_class",
                     "images_without_boxes"),
    "anchors": ("anchor_no_positive", "anchor_neg_pos_ratio"),
    "drift": ("drift_class_tv", "drift_scale_wasserstein", "drift_new_class", "drift_missing_class"),
}


@dataclass
class Finding:
    """One rule violation."""

    rule: str
    severity: str
    message: str
    category_id: int | None = None
    value: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict:
        """Plain dict; optional keys only when set."""
        d = {"rule": self.rule, "severity": self.severity, "message": self.message}
        for k in ("category_id", "value", "threshold"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        return d


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


def load_rules(path: str | os.PathLike | None = None, fail_on: str | None = None, anchors: str | None = None) -> Rules:
    """Defaults, overridden by a TOML rules file, overridden by explicit ``fail_on``/``anchors`` (CLI options)."""
    r = Rules()
    if path is not None:
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError("no such rules file", path=p) from None
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise InputError(f"malformed TOML rules file: {e}", path=p) from None
        unknown = set(data) - {"fail_on", "anchors", "rules"}
        if unknown:
            raise InputError(f"unknown top-level key(s) {sorted(unknown)}; expected fail_on, anchors, rules", path=p)
        if "fail_on" in data:
            r.fail_on = data["fail_on"]
        a = data.get("anchors", {})
        if not isinstance(a, dict):
            raise InputError("[anchors] must be a table", path=p)
        if a.get("preset") not in (None, "none"):
            r.anchors = str(a["preset"])
        bad = set(a) - {"preset", "matcher", "pos_iou", "neg_iou"}
        if bad:
            raise InputError(f"[anchors] has unknown key(s) {sorted(bad)}; expected preset, matcher, pos_iou, neg_iou",
                             path=p)
        r.anchor_options = {k: v for k, v in a.items() if k != "preset"}
        rules = data.get("rules", {})
        if not isinstance(rules, dict):
            raise InputError("[rules] must be a table of rule tables", path=p)
        for name, settings in rules.items():
            if name not in DEFAULT_RULES:
                raise InputError(f"unknown rule '{name}'; known: {', '.join(DEFAULT_RULES)}", path=p)
            if not isinstance(settings, dict):
                raise InputError(f"[rules.{name}] must be a table", path=p)
            for key, value in settings.items():
                if key not in DEFAULT_RULES[name]:
                    raise InputError(f"rule '{name}' has no setting '{key}' (settings: "
                                     f"{', '.join(DEFAULT_RULES[name])})", path=p)
                if key == "severity":
                    if value not in (*SEVERITIES, "off"):
                        raise InputError(f"rule '{name}': severity must be error, warning, info or off, got {value!r}", path=p)
                elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                    raise InputError(f"rule '{name}': '{key}' must be a non-negative number, got {value!r}", path=p)
                r.rules[name][key] = value
    if fail_on is not None:
        r.fail_on = fail_on
    if r.fail_on not in ("error", "warning"):
        raise InputError(f"--fail-on must be 'error' or 'warning', got {r.fail_on!r}")
    if anchors is not None:
        r.anchors = None if anchors == "none" else anchors
    return r


# --------------------------------------------------------------------------------------- structure
class _Collector:
    def __init__(self):
        self.hits: dict[str, list] = {}

    def add(self, rule: str, where: str) -> None:
        self.hits.setdefault(rule, []).append(where)


def _rec(section: str, i: int, rec) -> str:
    rid = rec.get("id") if isinstance(rec, dict) else None
    return f"{section}[{i}]" + (f" (id {rid})" if rid is not None else "")


def _is_int(v) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def scan_coco_structure(d, path: str, flavour: str = "coco") -> tuple[dict, dict[str, list[str]]]:
    """Scan a COCO-style dict record by record (``flavour`` as the loader's: coco, lvis, objects365).

    Returns ``(clean, problems)``: a copy holding only the well-formed records (loadable by the
    COCO loader) and, per structural rule, the list of offending records (``"annotations[3] (id 7): ..."``).
    """
    if not isinstance(d, dict) or not ({"images", "annotations"} & set(d)):
        raise InputError("not a COCO-style annotation file (expected an object with images, annotations, "
                         "categories)", path=path)
    col = _Collector()
    sections = {}
    for key in ("images", "annotations", "categories"):
        v = d.get(key)
        if v is None:
            col.add("missing_field", f"top level: missing '{key}'")
            v = []
        elif not isinstance(v, list):
            col.add("missing_field", f"top level: '{key}' is not a list")
            v = []
        sections[key] = v
    tolerant_ann_id = flavour == "objects365"  # Objects365 files may omit annotation ids (numbered in file order)

    cats, cat_ids = [], set()
    for i, c in enumerate(sections["categories"]):
        where = _rec("categories", i, c)
        if not isinstance(c, dict):
            col.add("missing_field", f"categories[{i}]: not an object")
            continue
        miss = [k for k in ("id", "name") if k not in c]
        if miss:
            col.add("missing_field", f"{where}: missing {', '.join(repr(k) for k in miss)}")
            continue
        if not _is_int(c["id"]):
            col.add("missing_field", f"{where}: 'id' is not an integer")
            continue
        if int(c["id"]) in cat_ids:
            col.add("duplicate_id", f"{where}: duplicate category id")
            continue
        cat_ids.add(int(c["id"]))
        cats.append(c)

    images, img_ids = [], set()
    for i, im in enumerate(sections["images"]):
        where = _rec("images", i, im)
        if not isinstance(im, dict):
            col.add("missing_field", f"images[{i}]: not an object")
            continue
        miss = [k for k in ("id", "width", "height") if k not in im]
        if miss:
            col.add("missing_field", f"{where}: missing {', '.join(repr(k) for k in miss)}")
            continue
        if not _is_int(im["id"]):
            col.add("missing_field", f"{where}: 'id' is not an integer")
            continue
        if int(im["id"]) in img_ids:
            col.add("duplicate_id", f"{where}: duplicate image id")
            continue
        w, h = im["width"], im["height"]
        img_ids.add(int(im["id"]))  # defined, even if its size is broken
        if not (_is_num(w) and _is_num(h) and math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
            col.add("invalid_image", f"{where}: width {w!r}, height {h!r}")
            continue
        images.append(im)
    good_img = {int(im["id"]) for im in images}

    anns, ann_ids = [], set()
    required = ("image_id", "category_id", "bbox") if tolerant_ann_id else ("id", "image_id", "category_id", "bbox")
    for i, a in enumerate(sections["annotations"]):
        where = _rec("annotations", i, a)
        if not isinstance(a, dict):
            col.add("missing_field", f"annotations[{i}]: not an object")
            continue
        miss = [k for k in required if k not in a]
        if miss:
            col.add("missing_field", f"{where}: missing {', '.join(repr(k) for k in miss)}")
            continue
        bad = [k for k in ("id", "image_id", "category_id") if k in a and not _is_int(a[k])]
        if bad:
            col.add("missing_field", f"{where}: {', '.join(repr(k) for k in bad)} not an integer")
            continue
        b = a["bbox"]
        if not isinstance(b, list) or len(b) != 4 or any(v is not None and not _is_num(v) for v in b):
            col.add("missing_field", f"{where}: 'bbox' is not [x, y, w, h], got {b!r}"[:200])
            continue
        if "id" in a:
            if int(a["id"]) in ann_ids:
                col.add("duplicate_id", f"{where}: duplicate annotation id")
                continue
            ann_ids.add(int(a["id"]))
        if int(a["image_id"]) not in img_ids:
            col.add("undefined_image", f"{where}: image_id {a['image_id']} is not defined")
            continue
        if int(a["category_id"]) not in cat_ids:
            col.add("undefined_category", f"{where}: category_id {a['category_id']} is not defined")
            continue
        if int(a["image_id"]) not in good_img:
            continue  # its image is already reported as invalid_image
        if a.get("iscrowd", 0) not in (0, 1, True, False, None):
            col.add("missing_field", f"{where}: 'iscrowd' must be 0 or 1, got {a.get('iscrowd')!r}")
            continue
        anns.append(a)

    clean = {k: v for k, v in d.items() if k not in ("images", "annotations", "categories")}
    clean.update(images=images, annotations=anns, categories=cats)
    return clean, col.hits


def _structure_findings(hits: dict[str, list[str]], rules: Rules) -> list[Finding]:
    out = []
    nouns = {"missing_field": "record(s) with missing or malformed required fields",
             "duplicate_id": "record(s) with a duplicate id", "undefined_image": "annotation(s) with an undefined image_id",
             "undefined_category": "annotation(s) with an undefined category_id",
             "invalid_image": "image(s) without a positive finite width and height"}
    for rule, where in hits.items():
        sev = rules.severity(rule)
        if sev == "off":
            continue
        ex = "; ".join(where[:MAX_EXAMPLES]) + (f"; ... ({len(where) - MAX_EXAMPLES} more)" if len(where) > MAX_EXAMPLES else "")
        out.append(Finding(rule, sev, f"{len(where)} {nouns[rule]}: {ex}", value=len(where)))
    return out


def load_for_check(path: str | os.PathLike, format: str | None = None):
    """Load ``path`` for checking: ``(dataset, structural_hits)``.

    COCO-style JSON is scanned record by record (all structural problems become findings and the
    well-formed rest is checked further); other formats go through :func:`imbalance_cli.load`
    (a structural problem there is bad input, exit code 2).
    """
    from imbalance_cli.data import coco, load
    from imbalance_cli.data._io import parse_json, read_bytes
    from imbalance_cli.data.detect import _detect_json

    p = Path(path)
    if format in (None, "coco", "lvis", "objects365") and p.is_file():
        data = read_bytes(p)
        if data.lstrip()[:1] in (b"{", b"["):
            d = parse_json(data, p)
            if isinstance(d, list) or (isinstance(d, dict) and "categories" in d and not ({"images", "annotations"} & set(d))):
                raise InputError("a category-statistics file has no boxes to check; pass the annotation file", path=p)
            if not isinstance(d, dict) or not ({"images", "annotations"} & set(d)):
                raise InputError("not a COCO-style annotation file (expected an object with images, annotations, "
                                 "categories)", path=p)
            probe = {k: (v if isinstance(v, list) else []) for k, v in d.items() if k in ("images", "annotations", "categories")}
            probe["info"] = d.get("info")
            flavour = format or _detect_json(probe, p)
            clean, hits = scan_coco_structure(d, str(p), flavour)
            return coco.from_dict(clean, str(p), flavour=flavour), hits
    return load(p, format=format), {}


# --------------------------------------------------------------------------------------- rules
def _emit(out: list, rules: Rules, rule: str, message: str, **kw) -> None:
    sev = rules.severity(rule)
    if sev != "off":
        out.append(Finding(rule, sev, message, **kw))


def _box_attributes(dataset, valid: np.ndarray) -> dict[str, np.ndarray]:
    b = dataset.boxes[valid]
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    return {"width": w, "height": h, "area": w * h}


def distribution_findings(dataset, rules: Rules) -> list[Finding]:
    """Invalid boxes and the Datumaro-style distribution warnings (see module docstring)."""
    from imbalance_cli.data.dataset import INVALID_REASONS
    from imbalance_cli.stats.classes import class_counts

    out: list[Finding] = []
    reason = dataset.invalid_reason()
    n_box = max(dataset.num_boxes, 1)
    for k, name in enumerate(INVALID_REASONS):
        idx = np.flatnonzero(reason == k)
        share = len(idx) / n_box
        if len(idx) and share > rules.get("invalid_box", "max_share"):
            ids = ", ".join(str(int(i)) for i in dataset.box_ids[idx[:MAX_EXAMPLES]])
            _emit(out, rules, "invalid_box", f"{len(idx)} invalid box(es) ({name.replace('_', ' ')}); first annotation "
                  f"id(s): {ids}", value=len(idx), threshold=rules.get("invalid_box", "max_share"))

    valid = dataset.valid_mask()
    inst, _ = class_counts(dataset, valid)
    ids, names = dataset.category_ids, dataset.category_names
    used = inst > 0
    thr = rules.get("few_instances", "threshold")
    for i in np.flatnonzero(used & (inst <= thr)):
        _emit(out, rules, "few_instances", f"class {names[i]!s} (id {ids[i]}) has only {inst[i]} instance(s)",
              category_id=int(ids[i]), value=int(inst[i]), threshold=thr)
    for i in np.flatnonzero(~used):
        _emit(out, rules, "unused_class", f"class {names[i]!s} (id {ids[i]}) is defined but has no valid box",
              category_id=int(ids[i]), value=0)
    if used.sum() >= 1:
        ratio = float(inst[used].max() / inst[used].min())
        thr = rules.get("imbalance_ratio", "threshold")
        if ratio >= thr:
            hi, lo = int(np.argmax(np.where(used, inst, -1))), int(np.argmin(np.where(used, inst, np.iinfo(np.int64).max)))
            _emit(out, rules, "imbalance_ratio", f"imbalance ratio {ratio:.1f} (max {names[hi]!s}: {inst[hi]}, "
                  f"min {names[lo]!s}: {inst[lo]}) >= {thr:g}", value=ratio, threshold=thr)

    n_img = dataset.num_images
    if n_img:
        has = np.zeros(n_img, dtype=bool)
        has[dataset.box_image[valid]] = True
        empty = int((~has).sum())
        share = empty / n_img
        thr = rules.get("images_without_boxes", "max_share")
        if empty and share > thr:
            first = ", ".join(str(int(x)) for x in dataset.image_ids[~has][:MAX_EXAMPLES])
            _emit(out, rules, "images_without_boxes", f"{empty} of {n_img} images ({share:.1%}) have no valid box; "
                  f"first image id(s): {first}", value=share, threshold=thr)

    # per-class attribute outliers and skew (width, height, area of valid boxes)
    attrs = _box_attributes(dataset, valid)
    cats = dataset.box_category[valid]
    order = np.argsort(cats, kind="stable")
    bounds = np.searchsorted(cats[order], np.arange(dataset.num_categories + 1))
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
                n_out = int((np.abs(v - mean) > sigma * std).sum())
                if n_out:
                    _emit(out, rules, "size_outlier", f"class {names[c]!s} (id {ids[c]}): {n_out} box(es) with {attr} "
                          f"beyond {sigma:g} sigma of the class mean ({mean:.4g} +- {std:.4g})",
                          category_id=int(ids[c]), value=n_out, threshold=sigma)
            if len(sel) >= sk["min_instances"] and v.max() > v.min():
                hist, _ = np.histogram(v, bins=bins)
                mass = float(np.sort(hist)[::-1][:top].sum() / len(v))
                if mass >= sk["dominance"]:
                    _emit(out, rules, "skewed_distribution", f"class {names[c]!s} (id {ids[c]}): {mass:.0%} of its "
                          f"{attr} distribution in the top {top} of {bins} bins", category_id=int(ids[c]),
                          value=mass, threshold=sk["dominance"])
    return out


def anchor_findings(dataset, rules: Rules) -> list[Finding]:
    """Anchor rules under ``rules.anchors``, counted with the anchor engine
    (:func:`imbalance_cli.stats.batches.anchor_counts`)."""
    from imbalance_cli.stats.batches import anchor_counts

    opts = {k: v for k, v in rules.anchor_options.items() if k in ("matcher", "pos_iou", "neg_iou")}
    a = anchor_counts(dataset, rules.anchors, **opts)
    out: list[Finding] = []
    if a["boxes"]:
        share = a["boxes_without_positive"] / a["boxes"]
        thr = rules.get("anchor_no_positive", "threshold")
        if share > thr:
            _emit(out, rules, "anchor_no_positive", f"{a['boxes_without_positive']} of {a['boxes']} boxes ({share:.2%}) "
                  f"have no positive anchor under '{rules.anchors}'", value=share, threshold=thr)
    fg, bg = float(a["foreground_total"]), float(a["background_total"])
    thr = rules.get("anchor_neg_pos_ratio", "threshold")
    ratio = math.inf if fg == 0 else bg / fg
    if ratio > thr:
        _emit(out, rules, "anchor_neg_pos_ratio", f"background:foreground anchors {ratio:.1f}:1 under "
              f"'{rules.anchors}' exceeds {thr:g}:1", value=ratio if math.isfinite(ratio) else None, threshold=thr)
    return out


def load_baseline(path: str | os.PathLike) -> dict:
    """Read a baseline ``stats.json`` (``imbalance.stats/1``); :class:`InputError` when it is not one."""
    from imbalance_cli.data._io import parse_json, read_bytes

    p = Path(path)
    d = parse_json(read_bytes(p), p)
    if not isinstance(d, dict) or not str(d.get("schema", "")).startswith("imbalance.stats/"):
        raise InputError("not an imbalance.stats report (make one with `imbalance stats FILE --json > stats.json`)", path=p)
    if not isinstance(d.get("classes"), list) or not all(isinstance(c, dict) and "id" in c and "instances" in c
                                                          for c in d["classes"]):
        raise InputError("baseline 'classes' must be a list of {id, instances, ...}", path=p)
    return d


def drift_findings(dataset, baseline: dict, rules: Rules) -> list[Finding]:
    """Drift of ``dataset`` against a baseline stats report (class TV, scale W1, new/missing classes)."""
    from imbalance_cli.stats.classes import class_counts
    from imbalance_cli.stats.compare import aligned_class_counts, tv_distance, wasserstein_hist
    from imbalance_cli.stats.geometry import histogram, relative_sizes

    out: list[Finding] = []
    valid = dataset.valid_mask()
    inst, _ = class_counts(dataset, valid)
    b_ids = [int(c["id"]) for c in baseline["classes"]]
    b_inst = [float(c["instances"] or 0) for c in baseline["classes"]]
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in baseline["classes"]}
    names.update({int(i): str(n) for i, n in zip(dataset.category_ids, dataset.category_names)})
    ids, cur, base = aligned_class_counts(dataset.category_ids, inst, b_ids, b_inst)
    tv = tv_distance(cur, base)
    thr = rules.get("drift_class_tv", "threshold")
    if tv is not None and tv > thr:
        _emit(out, rules, "drift_class_tv", f"class distribution drifted from the baseline: TV distance {tv:.3f} > {thr:g}",
              value=tv, threshold=thr)
    for i in np.flatnonzero((cur > 0) & (base == 0)):
        _emit(out, rules, "drift_new_class", f"class {names[int(ids[i])]} (id {ids[i]}) is used but not in the baseline",
              category_id=int(ids[i]), value=int(cur[i]))
    for i in np.flatnonzero((cur == 0) & (base > 0)):
        _emit(out, rules, "drift_missing_class", f"class {names[int(ids[i])]} (id {ids[i]}) is in the baseline "
              f"({int(base[i])} instances) but not used here", category_id=int(ids[i]), value=int(base[i]))
    scale = baseline.get("scale") or {}
    sizes = relative_sizes(dataset, valid)  # relative sizes: valid with or without image sizes
    thr = rules.get("drift_scale_wasserstein", "threshold")
    for key in ("relative_width", "relative_height", "relative_area"):
        h = scale.get(key)
        if not isinstance(h, dict) or "edges" not in h or "counts" not in h:
            continue
        edges = np.asarray(h["edges"], dtype=np.float64)
        if len(edges) != len(h["counts"]) + 1:
            raise InputError(f"baseline scale.{key}: {len(h['counts'])} counts for {len(edges)} edges")
        w = wasserstein_hist(histogram(sizes[key], edges), h["counts"], edges)
        if w is not None and w > thr:
            _emit(out, rules, "drift_scale_wasserstein", f"{key.replace('_', ' ')} distribution drifted: "
                  f"Wasserstein distance {w:.4f} > {thr:g}", value=w, threshold=thr)
    return out


@dataclass
class CheckResult:
    """Findings of one run and the verdict."""

    path: str
    findings: list[Finding]
    fail_on: str
    rules_run: list[str]
    summary: dict

    @property
    def passed(self) -> bool:
        """True when no finding is at or above ``fail_on``."""
        return not any(LEVEL[f.severity] >= LEVEL[self.fail_on] for f in self.findings)

    @property
    def exit_code(self) -> int:
        """0 pass, 1 fail."""
        return 0 if self.passed else 1

    def to_dict(self) -> dict:
        """The ``imbalance.check/1`` report."""
        counts = {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}
        return {"schema": SCHEMA, "path": self.path, "passed": self.passed, "fail_on": self.fail_on,
                "counts": counts, "summary": self.summary, "rules_run": self.rules_run,
                "findings": [f.to_dict() for f in self.findings]}


def run_check(path: str | os.PathLike, rules: Rules | None = None, baseline: dict | None = None,
              format: str | None = None) -> CheckResult:
    """Run every enabled rule on the file at ``path`` (plus anchors/drift rules when configured)."""
    rules = rules or Rules()
    dataset, hits = load_for_check(path, format)
    findings = _structure_findings(hits, rules)
    findings += distribution_findings(dataset, rules)
    run = list(RULE_GROUPS["structure"]) + list(RULE_GROUPS["distribution"])
    if rules.anchors:
        findings += anchor_findings(dataset, rules)
        run += list(RULE_GROUPS["anchors"])
    if baseline is not None:
        findings += drift_findings(dataset, baseline, rules)
        run += list(RULE_GROUPS["drift"])
    run = [r for r in run if rules.severity(r) != "off"]
    findings.sort(key=lambda f: (-LEVEL[f.severity], run.index(f.rule) if f.rule in run else 99))
    summary = {"format": dataset.format, "images": dataset.num_images, "annotations": dataset.num_boxes,
               "categories": dataset.num_categories, "anchors": rules.anchors, "baseline": baseline is not None}
    return CheckResult(str(path), findings, rules.fail_on, run, summary)


# --------------------------------------------------------------------------------------- renderers
def render_text(result: CheckResult) -> str:
    """Human-readable report: one line per finding, then the verdict."""
    lines = [f"{f.severity.upper():7s} {f.rule}: {f.message}" for f in result.findings]
    d = result.to_dict()["counts"]
    verdict = "PASSED" if result.passed else "FAILED"
    lines.append(f"{verdict}: {d['error']} error(s), {d['warning']} warning(s), {d['info']} info "
                 f"(fail on {result.fail_on}) - {result.path}")
    return "\n".join(lines) + "\n"


def render_json(result: CheckResult) -> str:
    """The ``imbalance.check/1`` JSON."""
    from imbalance_cli.fileio import dumps_json

    return dumps_json(result.to_dict())


def render_junit(result: "CheckResult | list[CheckResult]") -> str:
    """JUnit XML: one test suite per file and one test case per rule run; findings at/above the fail level
    are failures, the others go to the case's system-out."""
    import xml.etree.ElementTree as ET

    results = result if isinstance(result, list) else [result]
    suites = ET.Element("testsuites", name="imbalance check")
    tests = failures = 0
    for res in results:
        n, f = _junit_suite(suites, res)
        tests, failures = tests + n, failures + f
    suites.set("tests", str(tests))
    suites.set("failures", str(failures))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _junit_suite(suites, result: CheckResult) -> tuple[int, int]:
    import xml.etree.ElementTree as ET

    by_rule: dict[str, list[Finding]] = {}
    for f in result.findings:
        by_rule.setdefault(f.rule, []).append(f)
    failing = [r for r in result.rules_run if any(LEVEL[f.severity] >= LEVEL[result.fail_on] for f in by_rule.get(r, []))]
    suite = ET.SubElement(suites, "testsuite", name=f"imbalance check {result.path}", tests=str(len(result.rules_run)),
                          failures=str(len(failing)), errors="0", skipped="0")
    group_of = {r: g for g, rs in RULE_GROUPS.items() for r in rs}
    for rule in result.rules_run:
        case = ET.SubElement(suite, "testcase", classname=f"imbalance.check.{group_of[rule]}", name=rule)
        fs = by_rule.get(rule, [])
        bad = [f for f in fs if LEVEL[f.severity] >= LEVEL[result.fail_on]]
        if bad:
            fail = ET.SubElement(case, "failure", message=f"{len(bad)} {bad[0].severity} finding(s): {bad[0].message}"[:500],
                                 type=bad[0].severity)
            fail.text = "\n".join(f"[{f.severity}] {f.message}" for f in bad)
        rest = [f for f in fs if f not in bad]
        if rest:
            ET.SubElement(case, "system-out").text = "\n".join(f"[{f.severity}] {f.message}" for f in rest)
    return len(result.rules_run), len(failing)


def _gh_escape(s: str, prop: bool = False) -> str:
    s = s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        s = s.replace(":", "%3A").replace(",", "%2C")
    return s


def render_github(result: CheckResult) -> str:
    """GitHub Actions workflow commands (``::error``/``::warning``/``::notice``), one per finding, then a summary."""
    cmd = {"error": "error", "warning": "warning", "info": "notice"}
    lines = [f"::{cmd[f.severity]} file={_gh_escape(result.path, True)},title={_gh_escape('imbalance ' + f.rule, True)}"
             f"::{_gh_escape(f.message)}" for f in result.findings]
    lines.append(render_text(result).splitlines()[-1])
    return "\n".join(lines) + "\n"


RENDERERS = {"text": render_text, "json": render_json, "junit": render_junit, "github": render_github}


def render_many(results: list[CheckResult], fmt: str) -> str:
    """Render one or more results: text/github concatenated, JUnit one suite per file, JSON one report
    (a single file) or ``{"schema", "passed", "fail_on", "files": [reports]}`` (several files)."""
    if fmt == "junit":
        return render_junit(results)
    if fmt == "json":
        if len(results) == 1:
            return render_json(results[0])
        from imbalance_cli.fileio import dumps_json

        return dumps_json({"schema": SCHEMA, "passed": all(r.passed for r in results), "fail_on": results[0].fail_on,
                           "files": [r.to_dict() for r in results]})
    return "".join(RENDERERS[fmt](r) for r in results)
