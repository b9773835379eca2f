"""Fit anchor sizes and aspect ratios to a dataset, judged by the detector's own labelling rule.

Anchor fitting tools (Ultralytics AutoAnchor, MMYOLO ``optimize_anchors.py``, pyodi) score a candidate by a
proxy: a width/height ratio metric or the IoU of centred boxes. Here every candidate is labelled by the exact
engine the statistics use (:func:`imbalance_cli.stats.anchors.label_anchors`: the preset's resize, grid, steps
and matcher or assigner) on a seeded sample of images, and scored by what the detector will see:

* **coverage** -- share of boxes with at least one positive *at the positive threshold*: max-IoU presets, an
  anchor the matcher assigns to the box with IoU >= ``pos_iou`` (low-quality matches do not count, and an anchor
  taken by an overlapping box with a higher IoU does not count for this one); ATSS: at least one positive;
* **positives per box** -- mean number of positive anchors per box;
* the **balance** of both across COCO size groups (area < 32², < 96², else) and class-frequency groups
  (classes split into thirds by instance count in the dataset) -- the imbalance of positives across scales
  and classes of Oksuz et al., "Imbalance Problems in Object Detection: A Review", TPAMI 2021, §5.4 and
  Fig. 4b;
* **BPR** (best possible recall of AutoAnchor's ratio metric) for presets that declare a ratio threshold
  (``anchor_t``, YOLO-style); see :data:`BPR_PRESET_ATTRIBUTE`.

Objectives (a scalar to maximise, :func:`objective_score`):

* ``coverage``: ``0.5 C + 0.25 mean_g C_g + 0.25 min_g C_g`` over the size groups g that have boxes
  (C = coverage): overall coverage, with the worst size group weighted in.
* ``positives``: ``(min_g P_g / max_g P_g) * min(1, P / P_0)`` subject to ``C >= C_0`` (a candidate covering
  fewer boxes scores ``C - C_0 < 0``), with P_g the mean positives per box of group g over the size groups and
  the class-frequency groups, P the overall mean, P_0 and C_0 the original preset's (on the same images):
  positives balanced across scales and class frequencies (the starved group against the best fed), never bought
  by losing boxes, and no reward for piling up positives beyond the preset's own level.
* ``bpr``: AutoAnchor's BPR plus ``0.001`` x its fitness ``mean(best * (best > 1/anchor_t))``.

Search space. A fitted grid preset keeps the preset's levels, strides, resize, matcher and the number of
sizes (S) and ratios (R) per location, so a pretrained head keeps its shapes; sizes are ``base_l * scale_i``
(one base size per level, ``scale_0 = 1``, scales shared by all levels) and the R ratios (h / w) are shared by
all levels. That is exactly expressible by torchvision's ``AnchorGenerator`` (a size tuple per level, ratios per
level), mmdetection's ``AnchorGenerator`` (``base_sizes`` per level x shared ``scales``, shared ``ratios``) and
detectron2's ``DefaultAnchorGenerator`` (``SIZES`` per level, ``ASPECT_RATIOS``). Base sizes are rounded to
0.01 px and kept non-decreasing with the stride, scales and ratios to 1e-4, sizes ``base_l * scale_i`` to 1e-4 px before scoring, so the emitted numbers
are the scored numbers.

Search. Starts, each scored exactly: the preset's own sizes projected onto the search space (least squares
in log space), the same layout with every size scaled by 0.25 .. 2 (:data:`SCALE_STARTS`), and k-means with the ``1 - IoU`` distance of centred boxes (YOLOv2, Redmon & Farhadi, CVPR 2017,
§2 "Dimension Clusters") over the resized box shapes of the sample, with ``L*S*R`` clusters mapped onto the
space (sizes sorted into the L x S grid, ratios split into R groups). From the best start, a (1+1) evolution
as AutoAnchor's ``kmean_anchors`` (mutate a random subset of the parameters by a multiplicative normal
perturbation, keep the child when it scores strictly better) in log space with a step that shrinks from 0.25 to
0.02 over the first 300 iterations (a function of the iteration alone, so a run of N iterations is exactly the
first N iterations of a longer one). The engine is exact and discontinuous in the parameters (grid positions, thresholds),
so a derivative-free search is the natural fit; the elitist evolution never accepts a worse candidate.

Determinism: the result is a function of (dataset, preset, objective, sample, seed, iterations). ``budget``
seconds stops the search early; the JSON then records the number of iterations done, and rerunning with
``iterations`` equal to it reproduces the result exactly. Interruption (``KeyboardInterrupt``, Ctrl-C) stops
the search and keeps the best candidate so far; the final scores are still computed.

Final scores of the original preset and of the fitted one are recomputed on all images (not only the sample).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from imbalance_cli.anchors.kinds import KINDS, any_preset, kind_of
from imbalance_cli.anchors.yolov5 import assign_yolov5, autoanchor_metric, letterbox_boxes, letterbox_geometry
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError
from imbalance_cli.specs import check_letterbox_images
from imbalance_cli.stats.anchors import label_anchors
from imbalance_cli.stats.geometry import SIZE_GROUPS, check_size_by, size_group_codes
from imbalance_cli.vocabulary import definitions

SCHEMA = "imbalance.anchors/1"
OBJECTIVES = ("coverage", "positives", "bpr")
TARGETS = ("torchvision", "mmdet", "detectron2", "ultralytics")
DEFAULT_SAMPLE = 500
DEFAULT_ITERATIONS = 300
DEFAULT_SEED = 0
FREQUENCY_GROUPS = ("rare third", "middle third", "frequent third")
#: A preset declares BPR (YOLO-style ratio matching) by carrying this attribute (the ratio threshold).
BPR_PRESET_ATTRIBUTE = "anchor_t"
KMEANS_MAX_BOXES = 20_000
SIGMA_START, SIGMA_END = 0.25, 0.02
#: Step decay per iteration: SIGMA_START reaches SIGMA_END after 300 iterations, then stays there.
SIGMA_DECAY = (SIGMA_END / SIGMA_START) ** (1.0 / 300)
RATIO_RANGE = (0.05, 20.0)
SIZE_RANGE = (2.0, 4096.0)
SCALE_RANGE = (0.25, 8.0)
#: Extra starts: the preset's projected sizes times these factors (half-octave steps).
SCALE_STARTS = (0.25, 0.35, 0.5, 0.71, 1.41, 2.0)


# --------------------------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class AnchorParams:
    """A point of the search space: per-level ``base`` sizes, shared ``scales`` (first 1), shared ``ratios``."""

    base: tuple[float, ...]
    scales: tuple[float, ...]
    ratios: tuple[float, ...]

    def sizes(self) -> tuple[tuple[float, ...], ...]:
        """Anchor sizes per level ``round(base_l * scale_i, 4)`` (as stored in the preset and the snippets)."""
        return tuple(tuple(round(float(b) * float(s), 4) for s in self.scales) for b in self.base)

    def key(self) -> tuple:
        """Hashable identity (the rounded numbers)."""
        return (self.base, self.scales, self.ratios)

    def to_dict(self) -> dict:
        """Plain dict for JSON."""
        return {"base_sizes": list(self.base), "scales": list(self.scales), "ratios": list(self.ratios)}


def _round_params(base, scales, ratios) -> AnchorParams:
    b = tuple(sorted(round(float(np.clip(v, *SIZE_RANGE)), 2) for v in base))  # finer level, smaller base size
    s = (1.0,) + tuple(round(float(np.clip(v, *SCALE_RANGE)), 4) for v in list(scales)[1:])
    r = tuple(sorted(round(float(np.clip(v, *RATIO_RANGE)), 4) for v in ratios))
    return AnchorParams(b, s, r)


def project_preset(preset) -> AnchorParams:
    """The preset's sizes and ratios projected onto the search space (log least squares; exact when rank one).

    ``log size[l, i] ~ log base_l + log scale_i`` with ``scale_0 = 1``; ratios: the geometric mean over levels
    of each ratio position (exact when every level has the same ratios).
    """
    S = np.log(np.array(preset.sizes, dtype=np.float64))  # (L, S)
    log_scale = (S - S[:, :1]).mean(axis=0)
    log_base = (S - log_scale[None, :]).mean(axis=1)
    R = np.log(np.array(preset.aspect_ratios, dtype=np.float64)).mean(axis=0)
    return _round_params(np.exp(log_base), np.exp(log_scale), np.exp(R))


def apply_params(preset, params: AnchorParams, name: str | None = None):
    """A copy of ``preset`` with ``params``' sizes and ratios (every other field kept)."""
    L = preset.num_levels
    return replace(
        preset, name=name or f"{preset.name}-fitted", sizes=params.sizes(), aspect_ratios=(tuple(params.ratios),) * L
    )


def check_fittable(preset, objective: str) -> None:
    """Raise :class:`InputError` when ``preset`` cannot be fitted for ``objective`` (one line, what to do)."""
    if objective not in OBJECTIVES:
        raise InputError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if objective == "bpr" and not hasattr(preset, BPR_PRESET_ATTRIBUTE):
        raise InputError(
            f"--objective bpr needs a YOLO-style preset with a width/height ratio threshold "
            f"({BPR_PRESET_ATTRIBUTE}); preset {preset.name!r} matches by "
            f"{'IoU' if getattr(preset, 'assigner', 'max_iou') == 'max_iou' else preset.assigner}: "
            "use --objective coverage or positives"
        )
    kind = getattr(preset, "kind", "grid")
    if kind == "point":
        raise InputError(
            f"preset {preset.name!r} has no anchors to fit (points, assigner "
            f"{preset.assigner}); fit an anchor preset such as retinanet or atss"
        )
    if kind == "ssd":
        raise InputError(
            f"preset {preset.name!r} builds its default boxes from relative scales (SSD); fitting "
            "covers grid presets (retinanet, rpn, mmdet-retinanet, detectron2-retinanet, atss or a "
            "grid TOML)"
        )
    if kind != "grid" and kind not in KINDS:
        raise InputError(f"fitting preset kind {kind!r} is not supported; grid presets and yolov5 only")


# --------------------------------------------------------------------------------------------- scoring
def size_groups(dataset: Dataset, order: np.ndarray, size_by: str = "box") -> np.ndarray:
    """Size group per box (0 small: area < 32², 1 medium: < 96², 2 large): the box's w·h in original pixels, or
    the file's ``area`` with ``size_by="area_field"`` (COCO-eval groups); the one definition of
    :func:`imbalance_cli.stats.geometry.size_group_codes`."""
    return size_group_codes(dataset, order, size_by).astype(np.int64)


def frequency_groups(dataset: Dataset) -> np.ndarray:
    """Per category row: 0/1/2 = rarest / middle / most frequent third of the classes that have valid boxes,
    ranked by valid instance count in the whole dataset (ties by category id); -1 for classes without boxes.

    The thirds are relative to the dataset (not LVIS's image-count thresholds, which assume LVIS's size).
    """
    C = dataset.num_categories
    counts = np.bincount(dataset.box_category[dataset.valid_mask()], minlength=C)
    present = np.flatnonzero(counts > 0)
    out = np.full(C, -1, np.int64)
    if len(present):
        rank = present[np.lexsort((dataset.category_ids[present], counts[present]))]
        for g, chunk in enumerate(np.array_split(rank, 3)):
            out[chunk] = g
    return out


def _group_table(covered, pos_count, groups, names) -> dict:
    out = {}
    for g, name in enumerate(names):
        m = groups == g
        n = int(m.sum())
        out[name] = {
            "boxes": n,
            "coverage": float(covered[m].mean()) if n else None,
            "positives_per_box": float(pos_count[m].mean()) if n else None,
        }
    return out


def label_metrics(lp, dataset: Dataset, freq_of_class: np.ndarray, size_by: str = "box") -> dict:
    """Coverage and positives per box, overall and by size / class-frequency group, from one labelling pass.

    ``lp`` is an :class:`imbalance_cli.stats.anchors.AnchorLabels` over ``dataset``. ``boxes_without_positive``
    counts boxes without any positive (low-quality matches counted), ``boxes_below_positive_iou`` boxes not
    covered at the positive threshold (:mod:`imbalance_cli.vocabulary`); ``background_per_foreground`` is
    background / foreground anchors (None where the pass does not count anchors).
    """
    res, preset = lp.result, lp.preset
    n = len(lp.order)
    pos_count = np.bincount(res.pos_box, minlength=n).astype(np.int64) if n else np.zeros(0, np.int64)
    if getattr(preset, "assigner", "max_iou") == "max_iou":  # a positive assigned to the box at the threshold
        strong = np.asarray(res.pos_iou) >= np.float32(preset.pos_iou)
        covered = np.bincount(np.asarray(res.pos_box)[strong], minlength=n) > 0 if n else np.zeros(0, bool)
    else:
        covered = pos_count > 0
    sg = size_groups(dataset, lp.order, size_by)
    fg = freq_of_class[dataset.box_category[lp.order]]
    by_size = _group_table(covered, pos_count, sg, SIZE_GROUPS)
    by_freq = _group_table(covered, pos_count, fg, FREQUENCY_GROUPS)
    ppb = [v["positives_per_box"] for v in by_size.values() if v["boxes"]]
    foreground = int(len(res.pos_box))
    background = None
    if getattr(lp, "anchors_per_image", None) is not None:
        per = lp.per_image(dataset.num_images)
        foreground, background = int(per["foreground"].sum()), int(per["background"].sum())
    return {
        "images": int(dataset.num_images),
        "boxes": int(n),
        "coverage": float(covered.mean()) if n else None,
        "positives_per_box": float(pos_count.mean()) if n else None,
        "boxes_without_positive": int((pos_count == 0).sum()),
        "boxes_below_positive_iou": int(n - covered.sum()),
        "size_balance": (min(ppb) / max(ppb)) if ppb and max(ppb) > 0 else None,
        "by_size": by_size,
        "by_frequency": by_freq,
        "foreground": foreground,
        "background": background,
        "background_per_foreground": background / foreground if background is not None and foreground else None,
    }


def bpr_metrics(wh: np.ndarray, anchors_wh: np.ndarray, anchor_t: float) -> dict:
    """AutoAnchor's ``metric()`` (ultralytics/yolov5 ``utils/autoanchor.py`` ``check_anchors``):
    ``r = wh / anchor``, ``x = min(r, 1/r).min(over w, h)``, ``best = x.max(over anchors)``;
    BPR = ``mean(best > 1/anchor_t)``, fitness = ``mean(best * (best > 1/anchor_t))``."""
    wh = np.asarray(wh, np.float64).reshape(-1, 1, 2)
    k = np.asarray(anchors_wh, np.float64).reshape(1, -1, 2)
    if wh.shape[0] == 0:
        return {"bpr": None, "fitness": None}
    r = wh / k
    x = np.minimum(r, 1.0 / r).min(axis=2)
    best = x.max(axis=1)
    t = 1.0 / float(anchor_t)
    return {"bpr": float((best > t).mean()), "fitness": float((best * (best > t)).mean())}


def objective_score(metrics: dict, objective: str, reference: tuple[float, float] | None = None) -> float:
    """The scalar the search maximises (see the module docstring for each objective's formula).

    ``reference``: the original preset's ``(positives per box, coverage)`` on the same images (the ``positives``
    objective's cap and constraint; None = this candidate's own).
    """
    if objective == "bpr":
        return float(metrics["bpr"] or 0.0) + 0.001 * float(metrics.get("fitness") or 0.0)
    cov = metrics["coverage"] or 0.0
    groups = [v for v in metrics["by_size"].values() if v["boxes"]]
    if objective == "coverage":
        gc = [v["coverage"] for v in groups] or [cov]
        return 0.5 * cov + 0.25 * float(np.mean(gc)) + 0.25 * float(min(gc))
    if objective == "positives":
        gp = [
            v["positives_per_box"] for sec in ("by_size", "by_frequency") for v in metrics[sec].values() if v["boxes"]
        ]
        p = metrics["positives_per_box"] or 0.0
        if not gp or max(gp) <= 0:
            return 0.0
        ref_p, ref_c = reference if reference else (p, cov)
        if cov < ref_c:  # a constraint: never fewer boxes covered than the original preset
            return cov - ref_c
        return (min(gp) / max(gp)) * (min(1.0, p / ref_p) if ref_p > 0 else 1.0)
    raise InputError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")


# --------------------------------------------------------------------------------------------- k-means
def kmeans_iou(wh: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 30) -> np.ndarray:
    """k-means on box shapes with the distance ``1 - IoU`` of boxes sharing a centre (YOLOv2 §2).

    Seeded k-means++ initialisation (D² sampling with the same distance), Lloyd updates with the mean shape
    of each cluster; an emptied cluster keeps its centroid. Returns ``(k, 2)`` centroids sorted by area.
    """
    wh = np.asarray(wh, np.float64)
    k = max(1, min(int(k), len(wh)))

    def dist(a, c):
        inter = np.minimum(a[:, None, 0], c[None, :, 0]) * np.minimum(a[:, None, 1], c[None, :, 1])
        union = (a[:, 0] * a[:, 1])[:, None] + (c[:, 0] * c[:, 1])[None, :] - inter
        return 1.0 - inter / union

    cent = [wh[rng.integers(len(wh))]]
    for _ in range(1, k):
        d = dist(wh, np.array(cent)).min(axis=1) ** 2
        p = d / d.sum() if d.sum() > 0 else None
        cent.append(wh[rng.choice(len(wh), p=p)])
    c = np.array(cent)
    for _ in range(iterations):
        a = dist(wh, c).argmin(axis=1)
        new = c.copy()
        for j in range(k):
            m = a == j
            if m.any():
                new[j] = wh[m].mean(axis=0)
        if np.allclose(new, c):
            break
        c = new
    return c[np.argsort(c[:, 0] * c[:, 1], kind="stable")]


def kmeans_start(wh: np.ndarray, L: int, S: int, R: int, rng: np.random.Generator) -> AnchorParams | None:
    """k-means centroids (``L*S*R`` clusters) mapped onto the search space (sizes -> L x S grid, ratios -> R)."""
    wh = wh[np.isfinite(wh).all(axis=1) & (wh[:, 0] > 0) & (wh[:, 1] > 0)]  # a box beyond float32 has no shape
    K = L * S * R
    if len(wh) < K:
        return None
    if len(wh) > KMEANS_MAX_BOXES:
        wh = wh[np.sort(rng.choice(len(wh), KMEANS_MAX_BOXES, replace=False))]
    c = kmeans_iou(wh, K, rng)
    size = np.sqrt(c[:, 0] * c[:, 1])
    ratio = c[:, 1] / c[:, 0]
    grid = np.log(np.sort(size)).reshape(L * S, R).mean(axis=1).reshape(L, S)  # ascending: P3 small .. large
    log_scale = (grid - grid[:, :1]).mean(axis=0)
    log_base = (grid - log_scale[None, :]).mean(axis=1)
    r = np.exp(np.array([chunk.mean() for chunk in np.array_split(np.sort(np.log(ratio)), R)]))
    return _round_params(np.exp(log_base), np.exp(log_scale), r)


# --------------------------------------------------------------------------------------------- search
@dataclass
class FitResult:
    """What :func:`fit_anchors` found (all plain data; :meth:`to_report` gives the JSON dict)."""

    original: Any
    fitted: Any
    params: AnchorParams
    objective: str
    seed: int
    sample_images: int
    iterations_asked: int
    iterations_done: int
    stopped: str  # "iterations" | "budget" | "interrupted"
    starts: dict
    sample_before: dict
    sample_after: dict
    all_before: dict | None
    all_after: dict | None
    history: list = field(default_factory=list)
    seconds: float = 0.0
    dataset_path: str | None = None
    size_by: str = "box"


def _sample(dataset: Dataset, n: int | None, seed: int) -> np.ndarray:
    N = dataset.num_images
    if n is None or n >= N:
        return np.arange(N)
    return np.sort(np.random.default_rng(seed).choice(N, size=int(n), replace=False))


def fit_anchors(
    dataset: Dataset,
    preset: Any = "retinanet",
    *,
    objective: str = "coverage",
    sample: int | None = DEFAULT_SAMPLE,
    seed: int = DEFAULT_SEED,
    iterations: int = DEFAULT_ITERATIONS,
    budget: float | None = None,
    device: str = "cpu",
    final_all: bool = True,
    on_candidate: Callable[[int, float, float], None] | None = None,
    progress_factory: Callable | None = None,
    size_by: str = "box",
) -> FitResult:
    """Fit ``preset``'s anchor sizes and ratios to ``dataset`` (see the module docstring).

    Parameters
    ----------
    preset: built-in name, TOML path or ``AnchorPreset`` (via :func:`imbalance_cli.anchors.presets.get_preset`).
    objective: ``coverage`` | ``positives`` | ``bpr`` (BPR only for presets declaring ``anchor_t``).
    sample: images (seeded) the search scores on; None = all.
    iterations: evolution candidates after the starts (preset projection, scaled projections, k-means).
    budget: wall-clock seconds for the search (None = no limit); the final all-image scores come after it.
    on_candidate: called ``(iteration, candidate_score, best_score)`` after each scored candidate (a hook for
        progress and tests; a ``KeyboardInterrupt`` raised in it stops the search like Ctrl-C).
    progress_factory: ``f(iterable, total, description)`` wrapping the iteration range (a progress bar).
    size_by: size groups, ``box`` (w·h, default) or ``area_field`` (COCO-eval groups by the file's ``area``).
    """

    t0 = time.perf_counter()
    check_size_by(size_by)
    original = any_preset(preset)
    check_fittable(original, objective)
    _check_search_options(iterations, sample, budget)
    if is_yolo(original):
        return _fit_yolov5(
            dataset,
            original,
            objective=objective,
            sample=sample,
            seed=seed,
            iterations=iterations,
            budget=budget,
            final_all=final_all,
            on_candidate=on_candidate,
            progress_factory=progress_factory,
            t0=t0,
            size_by=size_by,
        )
    rows = _sample(dataset, sample, seed)
    sub = dataset.subset_images(rows) if len(rows) < dataset.num_images else dataset
    freq = frequency_groups(dataset)
    L, S, R = _uniform_counts(original)
    score_preset = _preset_scorer(device, freq, size_by, objective)
    before, lp0, ref, evaluate = _baseline(
        score_preset, lambda params: apply_params(original, params), original, dataset, sub, rows, objective
    )
    rng = np.random.default_rng(seed)

    starts, best = _search_starts(original, lp0, evaluate, (L, S, R), seed)
    n_b, n_s = L, S - 1
    best, history, stopped, done = _evolve(
        best,
        evaluate,
        encode=lambda q: np.log(np.array(q.base + q.scales[1:] + q.ratios)),
        decode=lambda e: _round_params(e[:n_b], np.concatenate(([1.0], e[n_b : n_b + n_s])), e[n_b + n_s :]),
        rng=rng,
        iterations=iterations,
        budget=budget,
        t0=t0,
        objective=objective,
        on_candidate=on_candidate,
        progress_factory=progress_factory,
    )
    return _finish(
        dataset,
        sub,
        rows,
        original,
        apply_params(original, best),
        best,
        evaluate,
        score_preset,
        before,
        ref,
        objective=objective,
        seed=seed,
        iterations=iterations,
        done=done,
        stopped=stopped,
        starts=starts,
        history=history,
        final_all=final_all,
        t0=t0,
        size_by=size_by,
    )


def _check_search_options(iterations: int, sample: int | None, budget: float | None) -> None:
    """Refuse a negative ``iterations``, a non-positive ``sample`` and a non-positive or infinite ``budget``."""
    if iterations < 0:
        raise InputError(f"--iterations must be >= 0, got {iterations}")
    if sample is not None and sample < 1:
        raise InputError(f"--sample must be a positive integer, got {sample}")
    if budget is not None and not (budget > 0 and math.isfinite(budget)):
        raise InputError(f"--budget must be a positive number of seconds, got {budget}")


def _uniform_counts(original) -> tuple[int, int, int]:
    """``(levels, sizes, ratios)`` of a preset with one count of sizes and of ratios on every level (else refused)."""
    L, S, R = original.num_levels, len(original.sizes[0]), len(original.aspect_ratios[0])
    if any(len(s) != S for s in original.sizes) or any(len(r) != R for r in original.aspect_ratios):
        raise InputError(
            f"preset {original.name!r} has different numbers of sizes or ratios per level; a fitted "
            "set keeps one count per location for every level (as the frameworks' shared heads need)"
        )
    return L, S, R


def _preset_scorer(device: str, freq, size_by: str, objective: str) -> Callable:
    """``score_preset(preset, dataset) -> (metrics, labelled pass)``: the anchor pass and its fit metrics."""

    def score_preset(p, ds):
        lp = label_anchors(ds, p, device=device)
        m = label_metrics(lp, ds, freq, size_by)
        if objective == "bpr":  # YOLO-style: AutoAnchor's metric over the resized shapes
            wh = lp.scaled_boxes[:, 2:4] - lp.scaled_boxes[:, 0:2]
            m.update(bpr_metrics(wh, np.array([a for lv in p.anchors for a in lv]), getattr(p, BPR_PRESET_ATTRIBUTE)))
        return m, lp

    return score_preset


def _search_starts(original, lp0, evaluate, counts: tuple, seed: int) -> tuple[dict, Any]:
    """The search's starts, scored: the preset's projection, k-means of the boxes, the projection scaled by each of
    ``SCALE_STARTS``; returns ``(starts, best start)``."""
    L, S, R = counts
    starts = {}
    proj = project_preset(original)
    starts["preset"] = {"params": proj.to_dict(), "score": evaluate(proj)[0]}
    wh = (lp0.scaled_boxes[:, 2:4] - lp0.scaled_boxes[:, 0:2]).astype(np.float64)
    km = kmeans_start(wh, L, S, R, np.random.default_rng(seed))
    best = proj
    if km is not None:
        starts["kmeans"] = {"params": km.to_dict(), "score": evaluate(km)[0]}
        if starts["kmeans"]["score"] > starts["preset"]["score"]:
            best = km
    for f in SCALE_STARTS:  # the preset's layout, every size scaled by f (a level-consistent re-scaling)
        cand = _round_params(np.array(proj.base) * f, proj.scales, proj.ratios)
        starts[f"preset x {f:g}"] = {"params": cand.to_dict(), "score": evaluate(cand)[0]}
        if evaluate(cand)[0] > evaluate(best)[0]:
            best = cand
    return starts, best


def _baseline(score_preset, build, original, dataset: Dataset, sub: Dataset, rows, objective: str):
    """Score ``original`` on the sample and return ``(before, labels, reference, evaluate)``.

    An empty sample is refused with one line. ``evaluate(params)`` scores ``build(params)`` on the
    sample against the original's (positives per box, coverage), once per distinct candidate.
    """
    before, lp0 = score_preset(original, sub)
    if len(lp0.order) == 0:
        raise InputError(
            "no valid boxes to fit anchors to"
            + (f" in the {len(rows)} sampled images (raise --sample)" if sub is not dataset else ""),
            path=dataset.path,
        )
    ref = (before["positives_per_box"], before["coverage"])
    cache: dict = {}

    def evaluate(params) -> tuple[float, dict]:
        k = params.key()
        if k not in cache:
            try:
                m, _ = score_preset(build(params), sub)
            except InputError:  # outside the preset limits (a base anchor under 1 px once rounded): never chosen
                cache[k] = (-math.inf, None)
                return cache[k]
            cache[k] = (objective_score(m, objective, ref), m)
        return cache[k]

    return before, lp0, ref, evaluate


def _evolve(best, evaluate, *, encode, decode, rng, iterations, budget, t0, objective, on_candidate, progress_factory):
    """The (1+1) evolution shared by every preset kind (AutoAnchor-like mutation in log space, elitist).

    ``encode(params)`` gives the log-space vector, ``decode(exp(vector))`` the rounded candidate;
    ``evaluate(params) -> (score, metrics)``. Each iteration mutates a random half of the coordinates
    (at least one) with a step that shrinks with the iteration number only, so a run of N iterations is
    the first N of a longer one. Returns ``(best, history, stopped, iterations_done)``; Ctrl-C or the
    budget stop it with the best so far.
    """
    best_score = evaluate(best)[0]
    history = [[0, best_score]]
    stopped, done = "iterations", 0
    vec = encode(best)
    it_range = range(1, iterations + 1)
    if progress_factory is not None:
        it_range = progress_factory(it_range, iterations, f"fitting anchors ({objective})")
    try:
        for it in it_range:
            if budget is not None and time.perf_counter() - t0 > budget:
                stopped = "budget"
                break
            sigma = max(SIGMA_END, SIGMA_START * SIGMA_DECAY ** (it - 1))  # independent of the total asked
            mask = rng.random(len(vec)) < 0.5
            if not mask.any():
                mask[rng.integers(len(vec))] = True
            child = vec + mask * rng.normal(0.0, sigma, len(vec))
            cand = decode(np.exp(child))
            sc, _ = evaluate(cand)
            done = it
            if sc > best_score:
                best, best_score = cand, sc
                vec = encode(best)
                history.append([it, sc])
            if on_candidate is not None:
                on_candidate(it, sc, best_score)
    except KeyboardInterrupt:
        stopped = "interrupted"
    return best, history, stopped, done


def _finish(
    dataset,
    sub,
    rows,
    original,
    fitted,
    best,
    evaluate,
    score_preset,
    before,
    ref,
    *,
    objective,
    seed,
    iterations,
    done,
    stopped,
    starts,
    history,
    final_all,
    t0,
    size_by="box",
) -> FitResult:
    """Score the fitted set on the sample and (``final_all``) both sets on all images; the :class:`FitResult`."""
    after = evaluate(best)[1]
    all_before = all_after = None
    if final_all:
        if sub is dataset:
            all_before, all_after = before, after
        else:
            all_before, _ = score_preset(original, dataset)
            all_after, _ = score_preset(fitted, dataset)
    ref_all = None if all_before is None else (all_before["positives_per_box"], all_before["coverage"])
    for m, r in ((before, ref), (after, ref), (all_before, ref_all), (all_after, ref_all)):
        if m is not None:
            m["score"] = objective_score(m, objective, r)
    return FitResult(
        original=original,
        fitted=fitted,
        params=best,
        objective=objective,
        seed=int(seed),
        sample_images=int(len(rows)),
        iterations_asked=int(iterations),
        iterations_done=int(done),
        stopped=stopped,
        starts=starts,
        sample_before=before,
        sample_after=after,
        all_before=all_before,
        all_after=all_after,
        history=history,
        seconds=round(time.perf_counter() - t0, 3),
        dataset_path=dataset.path,
        size_by=size_by,
    )


# --------------------------------------------------------------------------------------------- YOLO presets
def is_yolo(preset) -> bool:
    """True for a YOLOv5-style preset object (anchors as free (w, h) pairs per level, ratio-test assignment)."""
    return not isinstance(preset, str) and kind_of(preset) is not None


@dataclass(frozen=True)
class YoloAnchorParams:
    """A point of the YOLO search space: free ``(w, h)`` anchors (letterboxed pixels), per level, sorted by area."""

    anchors: tuple[tuple[tuple[float, float], ...], ...]

    def key(self) -> tuple:
        """Hashable identity (the rounded numbers)."""
        return self.anchors

    def flat(self) -> np.ndarray:
        """``(K, 2)`` anchors in level order."""
        return np.array([a for lv in self.anchors for a in lv], np.float64).reshape(-1, 2)

    def to_dict(self) -> dict:
        """Plain dict for JSON."""
        return {"anchors": [[list(a) for a in lv] for lv in self.anchors]}


def round_yolo(wh, per_level: tuple[int, ...]) -> YoloAnchorParams:
    """Anchors ``(K, 2)`` -> clipped to ``SIZE_RANGE``, rounded to 0.01 px, sorted by area (ascending, stable, as
    AutoAnchor's ``kmean_anchors`` sorts) and split into levels of ``per_level`` anchors (small anchors on the
    finest level)."""
    a = np.round(np.clip(np.asarray(wh, np.float64).reshape(-1, 2), *SIZE_RANGE), 2)
    a = a[np.argsort(a[:, 0] * a[:, 1], kind="stable")]
    out, i = [], 0
    for n in per_level:
        out.append(tuple((float(w), float(h)) for w, h in a[i : i + n]))
        i += n
    return YoloAnchorParams(tuple(out))


def _yolo_pass(ds: Dataset, preset, lb_cache: dict):
    """One labelling pass of YOLOv5 ``build_targets`` (:func:`imbalance_cli.anchors.yolov5.assign_yolov5`) over
    ``ds`` on the letterboxed input; an object with ``preset``, ``order``, ``scaled_boxes``, ``result`` (what
    :func:`label_metrics` reads). The letterbox does not depend on the anchors and is computed once per dataset."""
    from types import SimpleNamespace

    key = id(ds)
    if key not in lb_cache:
        order, _ = ds.image_offsets(ds.valid_mask())
        bimg = ds.box_image[order]
        H, W = ds.heights, ds.widths
        _r, ph, pw, _px, _py = letterbox_geometry(H, W, preset)
        lb = letterbox_boxes(ds.boxes[order], H[bimg], W[bimg], preset)
        lb_cache[key] = (ds, order, bimg, ph, pw, lb)
    _ds, order, bimg, ph, pw, lb = lb_cache[key]
    res = assign_yolov5(preset, lb, bimg, ph, pw)
    return SimpleNamespace(preset=preset, order=order, scaled_boxes=lb, result=res)


def _fit_yolov5(
    dataset: Dataset,
    original,
    *,
    objective,
    sample,
    seed,
    iterations,
    budget,
    final_all,
    on_candidate,
    progress_factory,
    t0,
    size_by="box",
) -> FitResult:
    """:func:`fit_anchors` for a YOLOv5 preset: free (w, h) anchors, each candidate judged by ``build_targets``
    on the letterboxed sample; BPR / anchors above threshold as AutoAnchor's ``metric()``."""

    if not dataset.has_image_sizes:
        raise InputError("fitting YOLOv5 anchors needs image sizes (the images themselves)", path=dataset.path)
    check_letterbox_images(original, dataset.heights, dataset.widths, dataset.image_ids, dataset.path)
    rows = _sample(dataset, sample, seed)
    sub = dataset.subset_images(rows) if len(rows) < dataset.num_images else dataset
    freq = frequency_groups(dataset)
    per_level = tuple(len(lv) for lv in original.anchors)
    lb_cache: dict = {}

    def score_preset(p, ds):
        lp = _yolo_pass(ds, p, lb_cache)
        m = label_metrics(lp, ds, freq, size_by)
        wh = lp.scaled_boxes[:, 2:4] - lp.scaled_boxes[:, 0:2]
        m.update(bpr_metrics(wh, p.anchor_array(), p.anchor_t))
        m["aat"] = autoanchor_metric(wh, p.anchor_array(), p.anchor_t)["aat"]
        return m, lp

    def make(params: YoloAnchorParams, name=None):
        return replace(original, name=name or f"{original.name}-fitted", anchors=params.anchors)

    before, lp0, ref, evaluate = _baseline(score_preset, make, original, dataset, sub, rows, objective)
    rng = np.random.default_rng(seed)

    starts = {}
    proj = round_yolo(original.anchor_array(), per_level)
    starts["preset"] = {"params": proj.to_dict(), "score": evaluate(proj)[0]}
    best = proj
    wh = (lp0.scaled_boxes[:, 2:4] - lp0.scaled_boxes[:, 0:2]).astype(np.float64)
    wh = wh[(wh[:, 0] > 0) & (wh[:, 1] > 0)]
    K = int(sum(per_level))
    if len(wh) >= K:
        kwh = (
            wh
            if len(wh) <= KMEANS_MAX_BOXES
            else wh[np.sort(np.random.default_rng(seed).choice(len(wh), KMEANS_MAX_BOXES, replace=False))]
        )
        km = round_yolo(kmeans_iou(kwh, K, np.random.default_rng(seed)), per_level)
        starts["kmeans"] = {"params": km.to_dict(), "score": evaluate(km)[0]}
        if starts["kmeans"]["score"] > evaluate(best)[0]:
            best = km
    for f in SCALE_STARTS:
        cand = round_yolo(proj.flat() * f, per_level)
        starts[f"preset x {f:g}"] = {"params": cand.to_dict(), "score": evaluate(cand)[0]}
        if evaluate(cand)[0] > evaluate(best)[0]:
            best = cand
    best, history, stopped, done = _evolve(
        best,
        evaluate,
        encode=lambda q: np.log(q.flat().ravel()),
        decode=lambda e: round_yolo(e, per_level),
        rng=rng,
        iterations=iterations,
        budget=budget,
        t0=t0,
        objective=objective,
        on_candidate=on_candidate,
        progress_factory=progress_factory,
    )
    return _finish(
        dataset,
        sub,
        rows,
        original,
        make(best),
        best,
        evaluate,
        score_preset,
        before,
        ref,
        objective=objective,
        seed=seed,
        iterations=iterations,
        done=done,
        stopped=stopped,
        starts=starts,
        history=history,
        final_all=final_all,
        t0=t0,
        size_by=size_by,
    )


def yolov5_toml(preset) -> str:
    """A yolov5 preset as TOML (``kind = "yolov5"``) that ``imbalance stats --anchors FILE`` and
    ``imbalance anchors --preset FILE`` load back (:func:`imbalance_cli.anchors.yolov5.preset_from_toml`)."""
    return "\n".join(
        [
            "# YOLOv5 anchor preset fitted by `imbalance anchors` (load with --anchors THIS_FILE).",
            f"name = {_toml_str(preset.name)}",
            'kind = "yolov5"',
            "anchors = ["
            + ", ".join("[" + ", ".join(f"[{_num(w)}, {_num(h)}]" for w, h in lv) + "]" for lv in preset.anchors)
            + "]",
            "strides = [" + ", ".join(str(int(s)) for s in preset.strides) + "]",
            "level_names = [" + ", ".join(_toml_str(n) for n in preset.level_names) + "]",
            f"img_size = {int(preset.img_size)}",
            f"pad_stride = {int(preset.pad_stride)}",
            f"anchor_t = {_num(preset.anchor_t)}",
            f"offset_g = {_num(preset.offset_g)}",
            "",
        ]
    )


def ultralytics_snippet(preset) -> str:
    """The model-yaml ``anchors:`` block (ultralytics/yolov5 ``models/*.yaml``): one ``[w,h, w,h, ...]`` line per
    level, finest level first, in pixels of the ``img_size`` input."""
    lines = ["# ultralytics/yolov5 model yaml (e.g. models/yolov5s.yaml): replace its anchors: block", "anchors:"]
    for lv, name, stride in zip(preset.anchors, preset.level_names, preset.strides):
        lines.append("  - [" + ", ".join(f"{_num(w)},{_num(h)}" for w, h in lv) + f"]  # {name}/{int(stride)}")
    return "\n".join(lines) + "\n"


def yolo_configs(preset, targets: tuple[str, ...] | None = None) -> dict:
    """Snippets for a fitted YOLOv5 preset: only ``ultralytics`` (torchvision / mmdetection / detectron2 lay
    sizes x ratios, which cannot express free (w, h) pairs per level: asking for them raises InputError)."""
    targets = ("ultralytics",) if targets is None else tuple(targets)
    bad = [t for t in targets if t != "ultralytics"]
    if bad:
        raise InputError(
            f"--target {bad[0]} cannot express YOLO anchors (free width,height pairs per level); "
            "for a yolov5 preset use --target ultralytics"
        )
    return {
        "ultralytics": {
            "language": "yaml",
            "text": ultralytics_snippet(preset),
            "exact": True,
            "note": "the scored anchors (YOLOv5 letterbox, strides, anchor_t and build_targets)",
        }
    }


# --------------------------------------------------------------------------------------------- outputs
def _toml_str(s: str) -> str:
    """``s`` as a TOML basic string (backslashes and double quotes escaped)."""
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _num(v: float) -> str:
    """A float as the shortest text that reads back to the same float (an integer-valued one keeps '.0')."""
    return repr(float(v))


def preset_to_toml(preset) -> str:
    """The grid preset as TOML that :func:`imbalance_cli.anchors.presets.get_preset` loads back unchanged."""

    def nums(vals) -> str:
        return "[" + ", ".join(_num(v) for v in vals) + "]"

    lines = [
        "# Anchor preset fitted by `imbalance anchors` (load with --anchors THIS_FILE).",
        f"name = {_toml_str(preset.name)}",
        f"kind = {_toml_str(preset.kind)}",
        "strides = [" + ", ".join(str(int(s)) for s in preset.strides) + "]",
        "sizes = [" + ", ".join(nums(s) for s in preset.sizes) + "]",
        "aspect_ratios = [" + ", ".join(nums(r) for r in preset.aspect_ratios) + "]",
        "level_names = [" + ", ".join(_toml_str(n) for n in preset.level_names) + "]",
        f"pos_iou = {_num(preset.pos_iou)}",
        f"neg_iou = {_num(preset.neg_iou)}",
        f"allow_low_quality = {'true' if preset.allow_low_quality else 'false'}",
        f"matcher = {_toml_str(preset.matcher)}",
        f"stride_rule = {_toml_str(preset.stride_rule)}",
        f"anchor_rule = {_toml_str(preset.anchor_rule)}",
        f"box_rule = {_toml_str(preset.box_rule)}",
        f"center_offset = {_num(preset.center_offset)}",
        f"assigner = {_toml_str(preset.assigner)}",
        f"topk = {int(preset.topk)}",
        f"center_radius = {_num(preset.center_radius)}",
        "",
        "[resize]",
    ]
    r = preset.resize
    if r.min_size is not None:
        lines.append(f"min_size = {int(r.min_size)}")
    if r.max_size is not None:
        lines.append(f"max_size = {int(r.max_size)}")
    if r.fixed is not None:
        lines.append(f"fixed = [{int(r.fixed[0])}, {int(r.fixed[1])}]")
    lines += [f"size_divisible = {int(r.size_divisible)}", f"rule = {_toml_str(r.rule)}", ""]
    if r.min_size is None or r.max_size is None:
        raise InputError(
            "the fitted preset has an unbounded resize (min_size or max_size missing), which the TOML "
            "format cannot express as 'none'; give both bounds in the source preset"
        )
    return "\n".join(lines)


def _framework_of(preset) -> str:
    return {"torchvision": "torchvision", "mmdet": "mmdet", "detectron2": "detectron2"}[preset.anchor_rule]


def framework_configs(preset, params: AnchorParams, targets: tuple[str, ...] | None = None) -> dict:
    """Ready-to-paste configuration per framework for a fitted grid preset.

    Each entry: ``{"language", "text", "exact", "note"}``. ``exact`` is true for the framework whose arithmetic
    the preset follows (its ``anchor_rule``): that framework lays exactly the anchors that were scored. For the
    others the sizes and ratios are the same numbers, but their own resize rounding, base-anchor rounding,
    anchor order and centre offset apply (rerun ``imbalance stats`` with the matching preset to check).
    Ultralytics has no sizes x ratios anchors: asking for it (``targets``) with a grid preset raises InputError.
    """
    targets = tuple(TARGETS[:3]) if targets is None else tuple(targets)
    if "ultralytics" in targets:
        raise InputError(
            f"--target ultralytics needs a YOLO preset (anchors as width,height pairs per level); "
            f"preset {preset.name!r} lays sizes x aspect ratios: use torchvision, mmdet or detectron2"
        )
    own = _framework_of(preset)
    sizes = params.sizes()
    ratios = list(params.ratios)
    out = {}

    def note(fw):
        if fw == own:
            return "the scored anchors (same resize, steps and rounding as this preset)"
        return (
            f"same sizes and ratios, but {fw}'s own arithmetic (resize rounding, base-anchor rounding, "
            f"centre offset, strides) differs from preset {preset.name!r}, which follows {own}"
        )

    if "torchvision" in targets:
        text = (
            "from torchvision.models.detection.anchor_utils import AnchorGenerator\n\n"
            "anchor_generator = AnchorGenerator(\n"
            "    sizes=(" + ", ".join("(" + ", ".join(_num(v) for v in s) + ",)" for s in sizes) + ",),\n"
            "    aspect_ratios=((" + ", ".join(_num(r) for r in ratios) + ",),) * " + str(len(sizes)) + ",\n"
            ")\n"
            "# e.g. torchvision.models.detection.retinanet_resnet50_fpn(anchor_generator=anchor_generator, ...)\n"
        )
        out["torchvision"] = {
            "language": "python",
            "text": text,
            "exact": own == "torchvision",
            "note": note("torchvision"),
        }
    if "mmdet" in targets:
        text = (
            "anchor_generator = dict(\n"
            "    type='AnchorGenerator',\n"
            "    base_sizes=[" + ", ".join(_num(b) for b in params.base) + "],\n"
            "    scales=[" + ", ".join(_num(s) for s in params.scales) + "],\n"
            "    ratios=[" + ", ".join(_num(r) for r in ratios) + "],\n"
            "    strides=[" + ", ".join(str(int(s)) for s in preset.strides) + "])\n"
            "# model.bbox_head.anchor_generator in an mmdetection config\n"
        )
        n = note("mmdet") + (
            "; mmdetection multiplies base_size x scale itself, which differs from the stored "
            "sizes (rounded to 1e-4 px) by under 5e-5 px"
            if own == "mmdet"
            else ""
        )
        out["mmdet"] = {"language": "python", "text": text, "exact": own == "mmdet", "note": n}
    if "detectron2" in targets:
        text = (
            "MODEL:\n  ANCHOR_GENERATOR:\n"
            "    SIZES: [" + ", ".join("[" + ", ".join(_num(v) for v in s) + "]" for s in sizes) + "]\n"
            "    ASPECT_RATIOS: [[" + ", ".join(_num(r) for r in ratios) + "]]\n"
        )
        out["detectron2"] = {"language": "yaml", "text": text, "exact": own == "detectron2", "note": note("detectron2")}
    return out


def _pct(v):
    return None if v is None else float(v)


#: What the fit verdict calls a cost (our choice): positives per box falling by 20 % or more, background anchors
#: per foreground anchor growing by 1.25x or more, coverage falling by more than half a point.
FIT_COSTS = {"positives_per_box_drop": 0.20, "background_per_foreground_growth": 1.25, "coverage_drop": 0.005}


def fit_verdict(before: dict, after: dict) -> dict:
    """The fit's verdict from the before / after scores (all-image scores when computed): ``{level, message,
    gains, costs}``.

    ``level``: ``better`` (the objective improved at no cost of :data:`FIT_COSTS`), ``trade-off`` (it
    improved, but a cost applies: e.g. coverage up while positives per box fall 23.3 -> 9.4 or the
    background per foreground anchor ratio grows 2.6x, which a detector's classifier then faces; survey
    Oksuz et al., TPAMI 2021, §4.1, Fig. 4a-b), or ``no gain`` (the objective did not improve).
    """
    gains, costs = [], []
    cb, ca = before.get("coverage"), after.get("coverage")
    if cb is not None and ca is not None:
        text = f"coverage {100 * cb:.1f}% -> {100 * ca:.1f}%"
        if ca < cb - FIT_COSTS["coverage_drop"]:
            costs.append(text)
        elif ca > cb:
            gains.append(text)
    pb, pa = before.get("positives_per_box"), after.get("positives_per_box")
    if pb and pa is not None:
        text = f"positives per box {pb:.1f} -> {pa:.1f} ({100 * (pa / pb - 1):+.0f}%)"
        (costs if pa < pb * (1 - FIT_COSTS["positives_per_box_drop"]) else gains).append(text)
    rb, ra = before.get("background_per_foreground"), after.get("background_per_foreground")
    if rb and ra:
        text = f"background per foreground anchor {rb:,.0f} -> {ra:,.0f} ({ra / rb:.2g}x)"
        (costs if ra >= rb * FIT_COSTS["background_per_foreground_growth"] else gains).append(text)
    if (after.get("score") or 0.0) <= (before.get("score") or 0.0):
        level = "no gain"
    else:
        level = "trade-off" if costs else "better"
    head = {
        "better": "the fit improves the objective at no listed cost",
        "trade-off": "the fit improves the objective at a cost",
        "no gain": "the fit does not improve the objective",
    }[level]
    message = head + ": " + "; ".join(costs + gains) if (costs or gains) else head
    return {"level": level, "message": message, "gains": gains, "costs": costs, "limits": dict(FIT_COSTS)}


_FIT_TERMS = (
    "coverage",
    "positives_per_box",
    "boxes_without_positive",
    "boxes_below_positive_iou",
    "size_balance",
    "foreground",
    "background",
    "background_per_foreground",
    "score",
    "bpr",
    "aat",
    "small",
    "medium",
    "large",
)


def _verdict_and_terms(res: FitResult) -> dict:
    before, after = (
        (res.all_before, res.all_after) if res.all_before is not None else (res.sample_before, res.sample_after)
    )
    return {
        "verdict": fit_verdict(before, after),
        "size_groups_by": res.size_by,
        "definitions": definitions(_FIT_TERMS, size_groups_by=res.size_by),
    }


#: How each search space is searched, as the report states it.
_SEARCH_METHODS = {
    "grid": "(1+1) evolution in log space from the best start (preset projection, scaled projections, 1-IoU k-means)",
    "yolo": "(1+1) evolution of free (w, h) anchors in log space from the best start (preset, scaled preset, 1-IoU "
    "k-means of the letterboxed box shapes)",
}


def _grid_preset_dict(p) -> dict:
    return {
        "name": p.name,
        "sizes": [list(s) for s in p.sizes],
        "aspect_ratios": [list(r) for r in p.aspect_ratios],
        "strides": list(p.strides),
        "level_names": list(p.level_names),
        "pos_iou": float(p.pos_iou),
        "neg_iou": float(p.neg_iou),
        "matcher": p.matcher,
        "assigner": p.assigner,
        "anchor_rule": p.anchor_rule,
    }


def _yolo_preset_dict(p) -> dict:
    return {
        "name": p.name,
        "kind": "yolov5",
        "anchors": [[list(a) for a in lv] for lv in p.anchors],
        "strides": list(p.strides),
        "level_names": list(p.level_names),
        "img_size": int(p.img_size),
        "anchor_t": float(p.anchor_t),
        "pos_iou": float(p.pos_iou),
        "neg_iou": float(p.neg_iou),
        "matcher": p.matcher,
        "assigner": p.assigner,
    }


def to_report(res: FitResult, targets: tuple[str, ...] | None = None) -> dict:
    """The ``imbalance.anchors/1`` JSON dict of a fit (documented in the README, "Fitting anchors"): the same keys
    for both search spaces; the presets, snippets and TOML are written the way their space's presets are."""
    yolo = is_yolo(res.original)
    preset_dict = _yolo_preset_dict if yolo else _grid_preset_dict
    f = res.fitted
    return {
        "schema": SCHEMA,
        "dataset": res.dataset_path,
        "objective": res.objective,
        "seed": res.seed,
        "sample_images": res.sample_images,
        "search": {
            "method": _SEARCH_METHODS["yolo" if yolo else "grid"],
            "iterations_asked": res.iterations_asked,
            "iterations_done": res.iterations_done,
            "stopped": res.stopped,
            "starts": res.starts,
            "history": res.history,
            "seconds": res.seconds,
        },
        "original": preset_dict(res.original),
        "fitted": preset_dict(f),
        "fitted_params": res.params.to_dict(),
        "sample": {"before": res.sample_before, "after": res.sample_after},
        "all": None if res.all_before is None else {"before": res.all_before, "after": res.all_after},
        "configs": yolo_configs(f, targets) if yolo else framework_configs(f, res.params, targets),
        "toml": yolov5_toml(f) if yolo else preset_to_toml(f),
        **_verdict_and_terms(res),
    }
