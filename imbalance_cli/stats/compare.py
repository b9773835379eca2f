"""Two datasets side by side (``imbalance compare``) and the distances ``imbalance check`` uses for drift.

Distances (Oksuz et al., Imbalance Problems in Object Detection, TPAMI 2021, §9.2 names both families: distribution distances and optimal transport):

* total-variation distance of two discrete distributions ``TV(p, q) = 1/2 sum_i |p_i - q_i|`` after
  normalising each to sum 1 (class instance distributions are aligned by category id);
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
    """Total-variation distance ``1/2 sum |p - q|`` of two non-negative count vectors (normalised); None if one is empty."""
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
        "path": dataset.path, "format": dataset.format, "images": dataset.num_images, "boxes": int(valid.sum()),
        "category_ids": dataset.category_ids, "names": dataset.category_names, "instances": inst, "images_per_class": imgs,
        "scale": scale, "location": loc,
    }
    if anchors is not None:
        ac = anchor_counts(dataset, anchors)
        prof["anchors"] = {
            "foreground": ac["foreground_total"], "background": ac["background_total"],
            "foreground_share": ac["foreground_total"] / max(1, int(ac["anchors"].sum())),
            "per_image_foreground_share": ac["foreground"] / np.maximum(ac["anchors"], 1),
            "per_class_positive": ac["per_class_positive"],
        }
    return prof


def compare_profiles(a: dict, b: dict, names: tuple[str, str] = ("A", "B")) -> dict:
    """The ``imbalance.compare/1`` report from two :func:`dataset_profile` results."""
    ids, ca, cb = aligned_class_counts(a["category_ids"], a["instances"], b["category_ids"], b["instances"])
    name_of = {int(i): str(n) for i, n in zip(b["category_ids"], b["names"])}
    name_of.update({int(i): str(n) for i, n in zip(a["category_ids"], a["names"])})
    pa, pb = _normalise(ca), _normalise(cb)
    classes = [{"id": int(i), "name": name_of[int(i)], "instances_a": int(x), "instances_b": int(y),
                "share_a": None if pa is None else float(pa[k]), "share_b": None if pb is None else float(pb[k])}
               for k, (i, x, y) in enumerate(zip(ids, ca, cb))]
    scale = {}
    for key in SCALE_KEYS:
        ha, hb = a["scale"][key], b["scale"][key]
        scale[key] = {"edges": ha["edges"], "counts_a": ha["counts"], "counts_b": hb["counts"],
                      "wasserstein": wasserstein_hist(ha["counts"], hb["counts"], ha["edges"]),
                      "tv": tv_distance(ha["counts"], hb["counts"])}
    report = {
        "schema": SCHEMA,
        "a": {"name": names[0], "path": a["path"], "format": a["format"], "images": a["images"], "boxes": a["boxes"]},
        "b": {"name": names[1], "path": b["path"], "format": b["format"], "images": b["images"], "boxes": b["boxes"]},
        "classes": {
            "tv": tv_distance(ca, cb), "js": js_divergence(ca, cb),
            "only_in_a": [int(i) for i, x, y in zip(ids, ca, cb) if x > 0 and y == 0],
            "only_in_b": [int(i) for i, x, y in zip(ids, ca, cb) if y > 0 and x == 0],
            "per_class": classes,
        },
        "scale": scale,
        "location": {"bins": int(a["location"].shape[0]), "counts_a": a["location"], "counts_b": b["location"],
                     "tv": tv_distance(a["location"], b["location"])},
        "anchors": None,
    }
    if "anchors" in a and "anchors" in b:
        edges = np.linspace(0.0, 0.01, 21)
        ha = np.histogram(np.clip(a["anchors"]["per_image_foreground_share"], 0, 0.01), bins=edges)[0]
        hb = np.histogram(np.clip(b["anchors"]["per_image_foreground_share"], 0, 0.01), bins=edges)[0]
        _, fa, fb = aligned_class_counts(a["category_ids"], a["anchors"]["per_class_positive"],
                                         b["category_ids"], b["anchors"]["per_class_positive"])
        report["anchors"] = {
            "per_class_positive_tv": tv_distance(fa, fb), "per_class_positive_js": js_divergence(fa, fb),
            "foreground_share_a": a["anchors"]["foreground_share"], "foreground_share_b": b["anchors"]["foreground_share"],
            "foreground_a": a["anchors"]["foreground"], "foreground_b": b["anchors"]["foreground"],
            "background_a": a["anchors"]["background"], "background_b": b["anchors"]["background"],
            "per_image_foreground_share": {"edges": edges, "counts_a": ha, "counts_b": hb,
                                           "wasserstein": wasserstein_hist(ha, hb, edges), "tv": tv_distance(ha, hb)},
        }
    return report


def compare_datasets(ds_a, ds_b, *, anchors: str | None = None, scale_bins: int = 50, location_bins: int = 20,
                     names: tuple[str, str] = ("A", "B")) -> dict:
    """Compare two datasets: class, scale and location distributions (and foreground with ``anchors``)."""
    pa = dataset_profile(ds_a, scale_bins, location_bins, anchors)
    pb = dataset_profile(ds_b, scale_bins, location_bins, anchors)
    return compare_profiles(pa, pb, names)
