"""The versioned JSON schema of `imbalance stats` (``imbalance.stats/1``) and a validator.

The report is one JSON object. Names below are binding within a schema version; later
versions only add keys. ``null`` marks a value that is undefined for the data (e.g. a
measure with no used class, size groups without image sizes).

```
schema: "imbalance.stats/1"
dataset:                                   # summary
  format, path, images, annotations        # annotations = every record
  boxes                                    # valid: non-crowd, finite, w > 0 and h > 0, overlapping the image
  crowd                                    # COCO iscrowd / Open Images IsGroupOf
  invalid, invalid_by_reason: {non_finite, non_positive_size, outside_image}
  categories, categories_used              # defined / with >= 1 valid box
  images_without_boxes                     # images with no valid box
  has_image_sizes, [difficult]             # difficult: VOC flag, valid boxes only
classes: [{id, name, instances, images,    # one per defined category; valid non-crowd boxes only
           frequency: "r"|"c"|"f",         # LVIS rule on `images`: r <= 10, c 11-100, f > 100
           bags_group: 1..N,               # Li et al., BAGS, CVPR 2020, Eq. 3 on `instances`, edges in `bags_edges`
           [supercategory, file_frequency, file_images, file_instances]}]   # the file's own fields
frequency_groups: {r, c, f}                # classes per computed LVIS group
frequency_scope: {thresholds: "lvis", rare_max_images: 10, common_max_images: 100,   # added within /1:
                  reference_images: 100170, images, share_of_reference,             # whether the LVIS groups
                  shown, reason}                                                   # mean anything here
[frequency_groups_from_file_counts: {r, c, f}]   # from the file's own image_count (LVIS)
frequency_disagreements: [{id, name, images, frequency, file_frequency}]
bags_edges: [0, 10, 100, 1000, null]       # null = inf
bags_groups: {"1": n, ...}                 # classes per BAGS group
measures: {imbalance_ratio, gini, normalized_entropy, tv_to_uniform, kl_to_uniform, cv, classes_used}
                                           # over used classes (survey §9.2); see imbalance_cli.stats.measures
objects_per_image: {edges, counts, mean, max}    # integer bins: counts[k] = images with k valid boxes
classes_per_image: {edges, counts, mean, max}    # counts[k] = images with k distinct classes
scale: {relative_width: {edges, counts},   # w/W over [0, 1]
        relative_height: {edges, counts},  # h/H
        relative_area: {edges, counts},    # sqrt(wh/WH)
        size_groups: {small, medium, large} | null,            # by `size_groups_by`; null w/o image sizes
        size_groups_by: "box" | "area_field",                   # box: w*h of the box < 32^2, < 96^2, else
                                                               # (default); area_field: --coco-eval-sizes
        size_groups_by_area_field: {small, medium, large, missing} | null,   # the file's `area`, always
        tv_to_uniform: {relative_width, relative_height, relative_area}}
location: {bins, edges, counts,            # counts: bins x bins, rows = y (top first), box centres
           tv_to_uniform, [per_class: {"<category id>": bins x bins}]}
verdicts: [{type: "class"|"scale"|"location"|"foreground_background",
            level: "ok"|"moderate"|"severe"|"undetermined", value, message,
            [chance, p_value, excess],     # class/scale/location: what a balanced dataset of this size shows
                                           # by chance, how often, and the excess over it (added within /1)
            [reference, reference_source]}]  # foreground_background: bg/fg on COCO, same preset (added within /1)
[anchors: {...,                            # only with --anchors other than none; see the anchor statistics
           boxes_without_positive,         # no positive anchor at all (low-quality matches counted)
           boxes_below_positive_iou,       # no anchor at IoU >= pos_iou (null: ATSS/FCOS/YOLOv5); added within /1
           coverage: {by_size, by_class, size_groups_by}}]   # rows: boxes, without_positive,
                                           #   below_positive_iou, below_negative
[gallery: {images, decoded, blank,        # report directory only (--out, anchors, --gallery N > 0): images
           problems: [str], files: [str]}]  # drawn, decoded from files, blank canvases, unreadable ones listed
[advice: {rules, budget_seconds, seconds,  # "What to change" (imbalance stats; --no-advice: absent); rules =
                                           #   "defaults" or the rules file whose thresholds fired
          items: [{id, title, size,        # ordered by size (the measured share of the problem), descending
                   finding: {rule, measure, value, threshold, survey, survey_source, text},
                   fix: {kind, text, commands: [str], snippets: [{framework, language, text, exact}]},
                   effect: {measured: true, method, images, metrics: [{measure, [group], before, after}]}
                         | {measured: false, why, [how]}}],
          checked: [{rule, group, value, threshold, severity, fired}],   # every rule looked at
          skipped: [str]}]                 # measurements the budget or the data left out, with the reason
definitions: {key: {label, unit, meaning}, size_groups_by: {value, label, unit, meaning}}
                                           # the one vocabulary (imbalance_cli/vocabulary.py) for every
                                           # quantity above: the words the terminal, CSV and HTML use
```
"""

from __future__ import annotations

from typing import Any

from imbalance_cli.errors import InputError

SCHEMA_NAME = "imbalance.stats"
SCHEMA_VERSION = 1
SCHEMA = f"{SCHEMA_NAME}/{SCHEMA_VERSION}"

_OPT_NUM = (int, float, type(None))

#: Required keys and their allowed types, as dotted paths.
REQUIRED: dict[str, tuple] = {
    "schema": (str,),
    "dataset": (dict,),
    "dataset.format": (str,),
    "dataset.images": (int,),
    "dataset.annotations": (int,),
    "dataset.boxes": (int,),
    "dataset.crowd": (int,),
    "dataset.invalid": (int,),
    "dataset.categories": (int,),
    "dataset.categories_used": (int,),
    "dataset.images_without_boxes": (int,),
    "classes": (list,),
    "measures": (dict,),
    "measures.imbalance_ratio": _OPT_NUM,
    "measures.gini": _OPT_NUM,
    "measures.normalized_entropy": _OPT_NUM,
    "measures.tv_to_uniform": _OPT_NUM,
    "measures.kl_to_uniform": _OPT_NUM,
    "measures.cv": _OPT_NUM,
    "objects_per_image": (dict,),
    "objects_per_image.edges": (list,),
    "objects_per_image.counts": (list,),
    "objects_per_image.mean": _OPT_NUM,
    "objects_per_image.max": (int, type(None)),
    "classes_per_image": (dict,),
    "classes_per_image.edges": (list,),
    "classes_per_image.counts": (list,),
    "classes_per_image.mean": _OPT_NUM,
    "classes_per_image.max": (int, type(None)),
    "scale": (dict,),
    "scale.relative_width.edges": (list,),
    "scale.relative_width.counts": (list,),
    "scale.relative_height.edges": (list,),
    "scale.relative_height.counts": (list,),
    "scale.relative_area.edges": (list,),
    "scale.relative_area.counts": (list,),
    "scale.size_groups": (dict, type(None)),
    "location": (dict,),
    "location.bins": (int,),
    "location.counts": (list,),
}

CLASS_KEYS: dict[str, tuple] = {
    "id": (int,),
    "name": (str,),
    "instances": (int,),
    "images": (int,),
    "frequency": (str,),
    "bags_group": (int,),
}


def _get(d: Any, dotted: str) -> tuple[bool, Any]:
    cur = d
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


def _type_ok(value: Any, types: tuple) -> bool:
    if isinstance(value, bool):  # bool is an int subclass; never a valid count or measure
        return bool in types
    return isinstance(value, types)


def problems(report: Any) -> list[str]:
    """Every way ``report`` departs from ``imbalance.stats/1`` (empty list = valid)."""
    if not isinstance(report, dict):
        return [f"report must be a JSON object, got {type(report).__name__}"]
    out = []
    for key, types in REQUIRED.items():
        found, value = _get(report, key)
        if not found:
            out.append(f"missing key {key!r}")
        elif not _type_ok(value, types):
            out.append(f"key {key!r} has type {type(value).__name__}, expected {'/'.join(t.__name__ for t in types)}")
    schema = report.get("schema")
    if isinstance(schema, str) and schema.split("/")[0] != SCHEMA_NAME:
        out.append(f"schema is {schema!r}, expected {SCHEMA!r}")
    elif isinstance(schema, str):
        try:
            version = int(schema.split("/", 1)[1])
        except (IndexError, ValueError):
            out.append(f"schema {schema!r} has no integer version")
        else:
            if version > SCHEMA_VERSION:
                out.append(f"schema version {version} is newer than this program's {SCHEMA_VERSION}")
    for i, row in enumerate(report.get("classes") or []):
        if not isinstance(row, dict):
            out.append(f"classes[{i}] is not an object")
            continue
        for key, types in CLASS_KEYS.items():
            if key not in row:
                out.append(f"classes[{i}] misses {key!r}")
            elif not _type_ok(row[key], types):
                out.append(f"classes[{i}].{key} has type {type(row[key]).__name__}")
        if row.get("frequency") not in ("r", "c", "f"):
            out.append(f"classes[{i}].frequency must be 'r', 'c' or 'f'")
    for name in ("objects_per_image", "classes_per_image"):
        found, h = _get(report, name)
        if found and isinstance(h, dict) and isinstance(h.get("edges"), list) and isinstance(h.get("counts"), list):
            if len(h["edges"]) != len(h["counts"]) + 1:
                out.append(f"{name}: len(edges) must be len(counts) + 1")
    found, loc = _get(report, "location")
    if found and isinstance(loc, dict) and isinstance(loc.get("bins"), int) and isinstance(loc.get("counts"), list):
        b = loc["bins"]
        if len(loc["counts"]) != b or any(not isinstance(r, list) or len(r) != b for r in loc["counts"]):
            out.append(f"location.counts must be {b} x {b}")
    out.extend(_advice_problems(report.get("advice")))
    return out


#: Keys of an advice item, its finding and fix, and of a measured effect's metrics.
ADVICE_ITEM_KEYS = {
    "id": (str,),
    "title": (str,),
    "size": (int, float),
    "finding": (dict,),
    "fix": (dict,),
    "effect": (dict,),
}
ADVICE_FINDING_KEYS = {
    "rule": (str,),
    "measure": (str,),
    "value": (int, float),
    "threshold": (int, float),
    "survey": (str,),
    "text": (str,),
}


def _advice_problems(advice: Any) -> list[str]:
    """How an ``advice`` section departs from the schema (absent: none)."""
    if advice is None:
        return []
    if not isinstance(advice, dict) or not isinstance(advice.get("items"), list):
        return ["advice must be an object with a list 'items'"]
    out = []
    sizes = []
    for i, it in enumerate(advice["items"]):
        if not isinstance(it, dict):
            out.append(f"advice.items[{i}] is not an object")
            continue
        for key, types in ADVICE_ITEM_KEYS.items():
            if not _type_ok(it.get(key), types):
                out.append(f"advice.items[{i}].{key} is missing or of the wrong type")
        f, e = it.get("finding"), it.get("effect")
        for key, types in ADVICE_FINDING_KEYS.items():
            if isinstance(f, dict) and not _type_ok(f.get(key), types):
                out.append(f"advice.items[{i}].finding.{key} is missing or of the wrong type")
        if isinstance(e, dict):
            if e.get("measured") is True:
                ms = e.get("metrics")
                if (
                    not isinstance(ms, list)
                    or not ms
                    or any(not isinstance(m, dict) or "before" not in m or "after" not in m for m in ms)
                ):
                    out.append(f"advice.items[{i}].effect.metrics must list before/after pairs")
            elif e.get("measured") is not False or not isinstance(e.get("why"), str):
                out.append(f"advice.items[{i}].effect must be measured (metrics) or say why not")
        if isinstance(it.get("size"), (int, float)) and not isinstance(it.get("size"), bool):
            sizes.append(it["size"])
    if sizes != sorted(sizes, reverse=True):
        out.append("advice.items must be ordered by size, largest first")
    return out


def validate(report: Any, path: str | None = None) -> dict:
    """Check required keys and types of an ``imbalance.stats/1`` report; return it, or raise :class:`InputError`.

    The error names the first problem (and how many there are) and ``path`` when given.
    """
    found = problems(report)
    if found:
        more = f" (and {len(found) - 1} more problem(s))" if len(found) > 1 else ""
        raise InputError(f"not an {SCHEMA} report: {found[0]}{more}", path=path)
    return report
