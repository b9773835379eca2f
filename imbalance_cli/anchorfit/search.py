"""The anchor search of ``imbalance anchors``: one loop over two search spaces, grid and YOLO.

A space (:class:`imbalance_cli.anchorfit.grid.GridSpace` for presets laying sizes x ratios,
:class:`imbalance_cli.anchorfit.yolo.YoloSpace` for yolov5 presets) gives the starts, the log-space coordinates and
the preset of a point; the search is the same for both (:func:`fit_anchors`).

Search. Starts, each scored exactly (:mod:`imbalance_cli.anchorfit.scoring`): the preset's own anchors projected
onto the space, the same layout with every size scaled by 0.25 .. 2 (:data:`SCALE_STARTS`), and k-means with the
``1 - IoU`` distance of centred boxes (:mod:`imbalance_cli.anchorfit.kmeans`) over the resized box shapes of the
sample. From the best start, a (1+1) evolution as AutoAnchor's ``kmean_anchors`` (mutate a random subset of the
parameters by a multiplicative normal perturbation, keep the child when it scores strictly better) in log space with
a step that shrinks from 0.25 to 0.02 over the first 300 iterations (a function of the iteration alone, so a run of
N iterations is exactly the first N iterations of a longer one). The engine is exact and discontinuous in the
parameters (grid positions, thresholds), so a derivative-free search is the natural fit; the elitist evolution never
accepts a worse candidate.

Determinism: the result is a function of (dataset, preset, objective, sample, seed, iterations). ``budget``
seconds stops the search early; the JSON then records the number of iterations done, and rerunning with
``iterations`` equal to it reproduces the result exactly. Interruption (``KeyboardInterrupt``, Ctrl-C) stops
the search and keeps the best candidate so far; the final scores are still computed.

Final scores of the original preset and of the fitted one are recomputed on all images (not only the sample).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import numpy as np

from imbalance_cli.anchorfit.grid import GridSpace
from imbalance_cli.anchorfit.scoring import BPR_PRESET_ATTRIBUTE, OBJECTIVES, frequency_groups, objective_score
from imbalance_cli.anchorfit.yolo import YoloSpace
from imbalance_cli.anchors.kinds import KINDS, any_preset, kind_of
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError
from imbalance_cli.stats.geometry import check_size_by

DEFAULT_SAMPLE = 500
DEFAULT_ITERATIONS = 300
DEFAULT_SEED = 0
SIGMA_START, SIGMA_END = 0.25, 0.02
#: Step decay per iteration: SIGMA_START reaches SIGMA_END after 300 iterations, then stays there.
SIGMA_DECAY = (SIGMA_END / SIGMA_START) ** (1.0 / 300)
#: Extra starts: the preset's projected sizes times these factors (half-octave steps).
SCALE_STARTS = (0.25, 0.35, 0.5, 0.71, 1.41, 2.0)
#: The search space of each registered preset kind (:data:`imbalance_cli.anchors.kinds.KINDS`); a preset of no
#: registered kind is searched in the grid space.
SPACES = {"yolov5": YoloSpace}


def is_yolo(preset) -> bool:
    """True for a YOLOv5-style preset object (anchors as free (w, h) pairs per level, ratio-test assignment)."""
    return not isinstance(preset, str) and kind_of(preset) is not None


def space_type(preset) -> type:
    """The search space class of a preset object: its registered kind's (:data:`SPACES`), else the grid space."""
    kind = kind_of(preset) if not isinstance(preset, str) else None
    return GridSpace if kind is None else SPACES[kind.name]


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


@dataclass
class FitResult:
    """What :func:`fit_anchors` found (all plain data; :func:`imbalance_cli.anchorfit.outcome.to_report` gives the
    JSON dict)."""

    original: Any
    fitted: Any
    params: Any  # the point of the search space: grid AnchorParams or YoloAnchorParams
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


class Baseline(NamedTuple):
    """The sampled images and the original preset's scores on them: ``evaluate(params) -> (score, metrics)``
    scores a candidate there, ``score_preset(preset, dataset)`` labels and scores any preset."""

    rows: np.ndarray
    sub: Dataset
    before: dict
    labels: Any
    reference: tuple
    evaluate: Callable
    score_preset: Callable


class Evolved(NamedTuple):
    """What the evolution ends with: the best point, the improvements ``[iteration, score]``, why it stopped
    (``iterations`` | ``budget`` | ``interrupted``) and the iterations done."""

    best: Any
    history: list
    stopped: str
    done: int


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
    """Fit ``preset``'s anchors to ``dataset`` in its search space (see the module docstring).

    Parameters
    ----------
    preset: built-in name, TOML path or preset object (:func:`imbalance_cli.anchors.kinds.any_preset`).
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
    space = space_type(original).of(original, dataset, device)
    score_preset = space.scorer(frequency_groups(dataset), size_by, objective)
    base = _baseline(score_preset, space.build, original, dataset, _sample(dataset, sample, seed), objective)
    rng = np.random.default_rng(seed)
    starts, best = _search_starts(space, base, seed)
    evolved = _evolve(
        best, base.evaluate, space, rng, iterations, budget, t0, objective, on_candidate, progress_factory
    )
    res = _finish(dataset, original, space.build(evolved.best), base, evolved, objective, final_all)
    return FitResult(
        **res,
        objective=objective,
        seed=int(seed),
        iterations_asked=int(iterations),
        starts=starts,
        seconds=round(time.perf_counter() - t0, 3),
        dataset_path=dataset.path,
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


def _search_starts(space, base: Baseline, seed: int) -> tuple[dict, Any]:
    """The search's starts, scored: the preset's projection, k-means of the sample's boxes, the projection scaled by
    each of ``SCALE_STARTS``; returns ``(starts, best start)``."""
    wh = (base.labels.scaled_boxes[:, 2:4] - base.labels.scaled_boxes[:, 0:2]).astype(np.float64)
    proj = space.projection()
    named = [("preset", proj), ("kmeans", space.kmeans(wh, seed))]
    named += [(f"preset x {f:g}", space.scaled(proj, f)) for f in SCALE_STARTS]
    starts, best = {}, proj
    for name, cand in named:
        if cand is None:
            continue
        starts[name] = {"params": cand.to_dict(), "score": base.evaluate(cand)[0]}
        if base.evaluate(cand)[0] > base.evaluate(best)[0]:
            best = cand
    return starts, best


def _baseline(score_preset, build, original, dataset: Dataset, rows, objective: str) -> Baseline:
    """Score ``original`` on the images ``rows`` of ``dataset`` (all of them: the dataset itself).

    An empty sample is refused with one line. ``evaluate(params)`` scores ``build(params)`` on the
    sample against the original's (positives per box, coverage), once per distinct candidate.
    """
    sub = dataset.subset_images(rows) if len(rows) < dataset.num_images else dataset
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

    return Baseline(rows, sub, before, lp0, ref, evaluate, score_preset)


def _evolve(best, evaluate, space, rng, iterations, budget, t0, objective, on_candidate, progress_factory) -> Evolved:
    """The (1+1) evolution shared by every preset kind (AutoAnchor-like mutation in log space, elitist).

    ``space.encode(params)`` gives the log-space vector, ``space.decode(exp(vector))`` the rounded candidate;
    ``evaluate(params) -> (score, metrics)``. Each iteration mutates a random half of the coordinates
    (at least one) with a step that shrinks with the iteration number only, so a run of N iterations is
    the first N of a longer one. Returns :class:`Evolved`; Ctrl-C or the
    budget stop it with the best so far.
    """
    best_score = evaluate(best)[0]
    history = [[0, best_score]]
    stopped, done = "iterations", 0
    vec = space.encode(best)
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
            cand = space.decode(np.exp(child))
            sc, _ = evaluate(cand)
            done = it
            if sc > best_score:
                best, best_score = cand, sc
                vec = space.encode(best)
                history.append([it, sc])
            if on_candidate is not None:
                on_candidate(it, sc, best_score)
    except KeyboardInterrupt:
        stopped = "interrupted"
    return Evolved(best, history, stopped, done)


def _finish(dataset: Dataset, original, fitted, base: Baseline, evolved: Evolved, objective: str, final_all: bool):
    """Score the fitted set on the sample and (``final_all``) both sets on all images: the :class:`FitResult`
    fields of the presets, the sample, the scores and the search's end."""
    after = base.evaluate(evolved.best)[1]
    all_before = all_after = None
    if final_all:
        if base.sub is dataset:
            all_before, all_after = base.before, after
        else:
            all_before, _ = base.score_preset(original, dataset)
            all_after, _ = base.score_preset(fitted, dataset)
    ref_all = None if all_before is None else (all_before["positives_per_box"], all_before["coverage"])
    for m, r in ((base.before, base.reference), (after, base.reference), (all_before, ref_all), (all_after, ref_all)):
        if m is not None:
            m["score"] = objective_score(m, objective, r)
    return {
        "original": original,
        "fitted": fitted,
        "params": evolved.best,
        "sample_images": int(len(base.rows)),
        "iterations_done": int(evolved.done),
        "stopped": evolved.stopped,
        "sample_before": base.before,
        "sample_after": after,
        "all_before": all_before,
        "all_after": all_after,
        "history": evolved.history,
    }
