"""Two datasets side by side (``imbalance compare``) and the distances ``imbalance check`` uses for drift.

Distances (Oksuz et al., Imbalance Problems in Object Detection, TPAMI 2021, §9.2 names both families: distribution
distances and optimal transport):

* total-variation distance of two discrete distributions ``TV(p, q) = 1/2 sum_i |p_i - q_i|`` after
  normalising each to sum 1 (class instance distributions are paired by class **name** when both files
  name their classes with unique names, else by category id -- a YOLO dataset's class 0 is COCO's id 1;
  :func:`pair_classes`; every report says which in ``paired_by``);
* Jensen-Shannon divergence (natural log, in [0, log 2]) of the same;
* 1-D Wasserstein-1 distance of two histograms on the same edges, with each bin's mass at its centre:
  ``W1 = sum_i |F_p(i) - F_q(i)| * (c_{i+1} - c_i)`` over consecutive bin centres ``c`` (``F`` the CDFs).

Rendering and writing: :mod:`imbalance_cli.report.compare`.
"""

from __future__ import annotations

import numpy as np

from imbalance_cli.errors import InputError
from imbalance_cli.stats.batches import anchor_counts
from imbalance_cli.stats.classes import class_counts
from imbalance_cli.stats.geometry import box_centres, histogram, relative_sizes

SCHEMA = "imbalance.compare/1"
SCALE_KEYS = ("relative_width", "relative_height", "relative_area")


def _normalise(x) -> np.ndarray | None:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    s = x.sum()
    return None if s <= 0 else x / s


def tv_distance(p, q) -> float | None:
    """Total-variation distance ``1/2 sum |p - q|`` of two non-negative count vectors
    (normalised); None if one is empty."""
    p, q = _normalise(p), _normalise(q)
    if p is None or q is None:
        return None
    return float(0.5 * np.abs(p - q).sum())


def js_divergence(p, q) -> float | None:
    """Jensen-Shannon divergence (natural log) of two count vectors (normalised); None if one is empty."""
    p, q = _normalise(p), _normalise(q)
    if p is None or q is None:
        return None
    m = 0.5 * (p + q)

    def kl(a, b):
        nz = a > 0
        return float(np.sum(a[nz] * np.log(a[nz] / b[nz])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def wasserstein_hist(counts_p, counts_q, edges) -> float | None:
    """W1 distance of two histograms on the same ``edges`` (mass at bin centres); None if one is empty."""
    p, q = _normalise(counts_p), _normalise(counts_q)
    if p is None or q is None:
        return None
    e = np.asarray(edges, dtype=np.float64)
    if len(e) != len(p) + 1 or len(p) != len(q):
        raise InputError(f"histograms of {len(p)} and {len(q)} bins do not match {len(e)} edges")
    centres = 0.5 * (e[:-1] + e[1:])
    cdf_diff = np.abs(np.cumsum(p) - np.cumsum(q))[:-1]
    return float(np.sum(cdf_diff * np.diff(centres)))


def aligned_class_counts(ids_a, counts_a, ids_b, counts_b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Align two per-category count vectors on the sorted union of their ids: ``(ids, a, b)``."""
    ids = np.union1d(np.asarray(ids_a, dtype=np.int64), np.asarray(ids_b, dtype=np.int64))
    a = np.zeros(len(ids))
    b = np.zeros(len(ids))
    a[np.searchsorted(ids, ids_a)] = counts_a
    b[np.searchsorted(ids, ids_b)] = counts_b
    return ids, a, b


def names_given(dataset) -> bool:
    """True when the dataset's file names its classes (not a YOLO ``nc`` alone, nor label files without names)."""
    return not dataset.info.get("names_generated", False)


def pair_classes(ids_a, names_a, ids_b, names_b, by_name: bool) -> dict:
    """Pair two class lists: by name when ``by_name`` and the names are unique on both sides, else by id.

    Returns ``{"by": "name" | "id", "ids_a", "ids_b" (int64, -1 where the class is absent), "names",
    "index_a", "index_b" (row of each pair in the inputs, -1 where absent)}``, pairs ordered by A's
    order (ids ascending when paired by id), then B's classes missing from A.
    """
    ids_a = [int(i) for i in ids_a]
    ids_b = [int(i) for i in ids_b]
    names_a = [str(n) for n in names_a]
    names_b = [str(n) for n in names_b]
    by = "name" if by_name and len(set(names_a)) == len(names_a) and len(set(names_b)) == len(names_b) else "id"
    key_a = names_a if by == "name" else ids_a
    key_b = names_b if by == "name" else ids_b
    row_a = {k: r for r, k in enumerate(key_a)}
    row_b = {k: r for r, k in enumerate(key_b)}
    keys = list(key_a) + [k for k in key_b if k not in row_a]
    if by == "id":
        keys = sorted(keys)
    ia = np.array([row_a.get(k, -1) for k in keys], np.int64)
    ib = np.array([row_b.get(k, -1) for k in keys], np.int64)
    return {
        "by": by,
        "index_a": ia,
        "index_b": ib,
        "ids_a": np.array([ids_a[r] if r >= 0 else -1 for r in ia], np.int64),
        "ids_b": np.array([ids_b[r] if r >= 0 else -1 for r in ib], np.int64),
        "names": [names_a[a] if a >= 0 else names_b[b] for a, b in zip(ia, ib)],
    }


def paired_counts(pairing: dict, counts_a, counts_b) -> tuple[np.ndarray, np.ndarray]:
    """Two per-class count vectors laid out on a :func:`pair_classes` pairing (0 where a side lacks the class)."""
    ca, cb = np.asarray(counts_a, np.float64), np.asarray(counts_b, np.float64)
    ia, ib = pairing["index_a"], pairing["index_b"]
    a = np.where(ia >= 0, ca[np.maximum(ia, 0)] if len(ca) else 0.0, 0.0)
    b = np.where(ib >= 0, cb[np.maximum(ib, 0)] if len(cb) else 0.0, 0.0)
    return a, b


def dataset_profile(dataset, scale_bins: int = 50, location_bins: int = 20, anchors: str | None = None) -> dict:
    """Class, scale, location (and, with ``anchors``, foreground) distributions of one dataset."""
    valid = dataset.valid_mask()
    inst, imgs = class_counts(dataset, valid)
    edges = np.linspace(0.0, 1.0, scale_bins + 1)
    sizes = relative_sizes(dataset, valid)
    scale = {k: {"edges": edges, "counts": histogram(sizes[k], edges)} for k in SCALE_KEYS}
    cx, cy = box_centres(dataset, valid)
    loc_edges = np.linspace(0.0, 1.0, location_bins + 1)
    loc, _, _ = np.histogram2d(np.clip(cy, 0, 1), np.clip(cx, 0, 1), bins=[loc_edges, loc_edges])
    prof = {
        "path": dataset.path,
        "format": dataset.format,
        "images": dataset.num_images,
        "boxes": int(valid.sum()),
        "category_ids": dataset.category_ids,
        "names": dataset.category_names,
        "names_given": names_given(dataset),
        "instances": inst,
        "images_per_class": imgs,
        "scale": scale,
        "location": loc,
    }
    if anchors is not None:
        ac = anchor_counts(dataset, anchors)
        prof["anchors"] = {
            "foreground": ac["foreground_total"],
            "background": ac["background_total"],
            "foreground_share": ac["foreground_total"] / max(1, int(ac["anchors"].sum())),
            "per_image_foreground_share": ac["foreground"] / np.maximum(ac["anchors"], 1),
            "per_class_positive": ac["per_class_positive"],
        }
    return prof


def compare_profiles(a: dict, b: dict, names: tuple[str, str] = ("A", "B")) -> dict:
    """The ``imbalance.compare/1`` report from two :func:`dataset_profile` results.

    Classes are paired by :func:`pair_classes` (by name when both name their classes); ``classes.paired_by``
    says which; each ``per_class`` row has ``id`` (A's id, else B's), ``id_a`` / ``id_b`` (None where absent),
    and ``only_in_a`` / ``only_in_b`` list each side's own ids.
    """
    pairing = pair_classes(
        a["category_ids"],
        a["names"],
        b["category_ids"],
        b["names"],
        by_name=bool(a.get("names_given", True) and b.get("names_given", True)),
    )
    ca, cb = paired_counts(pairing, a["instances"], b["instances"])
    ida, idb = pairing["ids_a"], pairing["ids_b"]
    report = {
        "schema": SCHEMA,
        "a": {"name": names[0], "path": a["path"], "format": a["format"], "images": a["images"], "boxes": a["boxes"]},
        "b": {"name": names[1], "path": b["path"], "format": b["format"], "images": b["images"], "boxes": b["boxes"]},
        "classes": {
            "paired_by": pairing["by"],
            "tv": tv_distance(ca, cb),
            "js": js_divergence(ca, cb),
            "only_in_a": [int(ida[k]) for k, (x, y) in enumerate(zip(ca, cb)) if x > 0 and y == 0],
            "only_in_b": [int(idb[k]) for k, (x, y) in enumerate(zip(ca, cb)) if y > 0 and x == 0],
            "per_class": _per_class(pairing, ca, cb),
        },
        "scale": _scale(a, b),
        "location": {
            "bins": int(a["location"].shape[0]),
            "counts_a": a["location"],
            "counts_b": b["location"],
            "tv": tv_distance(a["location"], b["location"]),
        },
        "anchors": None,
    }
    if "anchors" in a and "anchors" in b:
        report["anchors"] = _anchors(a["anchors"], b["anchors"], pairing)
    return report


def _per_class(pairing: dict, ca: np.ndarray, cb: np.ndarray) -> list[dict]:
    """The paired classes' rows: ids on each side (None where absent), instances and shares."""
    pa, pb = _normalise(ca), _normalise(cb)
    ida, idb = pairing["ids_a"], pairing["ids_b"]
    return [
        {
            "id": int(ida[k] if ida[k] >= 0 else idb[k]),
            "name": pairing["names"][k],
            "id_a": int(ida[k]) if ida[k] >= 0 else None,
            "id_b": int(idb[k]) if idb[k] >= 0 else None,
            "instances_a": int(x),
            "instances_b": int(y),
            "share_a": None if pa is None else float(pa[k]),
            "share_b": None if pb is None else float(pb[k]),
        }
        for k, (x, y) in enumerate(zip(ca, cb))
    ]


def _scale(a: dict, b: dict) -> dict:
    """The relative-size histograms of A and B side by side, with their Wasserstein and TV distances."""
    scale = {}
    for key in SCALE_KEYS:
        ha, hb = a["scale"][key], b["scale"][key]
        scale[key] = {
            "edges": ha["edges"],
            "counts_a": ha["counts"],
            "counts_b": hb["counts"],
            "wasserstein": wasserstein_hist(ha["counts"], hb["counts"], ha["edges"]),
            "tv": tv_distance(ha["counts"], hb["counts"]),
        }
    return scale


def _anchors(aa: dict, ab: dict, pairing: dict) -> dict:
    """Foreground anchors compared: per-class positives' distances, totals and the per-image foreground share."""
    edges = np.linspace(0.0, 0.01, 21)
    ha = np.histogram(np.clip(aa["per_image_foreground_share"], 0, 0.01), bins=edges)[0]
    hb = np.histogram(np.clip(ab["per_image_foreground_share"], 0, 0.01), bins=edges)[0]
    fa, fb = paired_counts(pairing, aa["per_class_positive"], ab["per_class_positive"])
    return {
        "per_class_positive_tv": tv_distance(fa, fb),
        "per_class_positive_js": js_divergence(fa, fb),
        "foreground_share_a": aa["foreground_share"],
        "foreground_share_b": ab["foreground_share"],
        "foreground_a": aa["foreground"],
        "foreground_b": ab["foreground"],
        "background_a": aa["background"],
        "background_b": ab["background"],
        "per_image_foreground_share": {
            "edges": edges,
            "counts_a": ha,
            "counts_b": hb,
            "wasserstein": wasserstein_hist(ha, hb, edges),
            "tv": tv_distance(ha, hb),
        },
    }


def compare_datasets(
    ds_a,
    ds_b,
    *,
    anchors: str | None = None,
    scale_bins: int = 50,
    location_bins: int = 20,
    names: tuple[str, str] = ("A", "B"),
) -> dict:
    """Compare two datasets: class, scale and location distributions (and foreground with ``anchors``)."""
    pa = dataset_profile(ds_a, scale_bins, location_bins, anchors)
    pb = dataset_profile(ds_b, scale_bins, location_bins, anchors)
    return compare_profiles(pa, pb, names)
