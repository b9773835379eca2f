"""What a fit found, as the ``imbalance.anchors/1`` dict: the verdict, the definitions of its terms, the presets
before and after, the framework snippets and the TOML (the renderers: :mod:`imbalance_cli.report.anchorfit`)."""

from __future__ import annotations

from imbalance_cli.anchorfit.search import FitResult, space_type
from imbalance_cli.vocabulary import definitions

SCHEMA = "imbalance.anchors/1"

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


def to_report(res: FitResult, targets: tuple[str, ...] | None = None) -> dict:
    """The ``imbalance.anchors/1`` JSON dict of a fit (documented in the README, "Fitting anchors"): the same keys
    for both search spaces; the presets, snippets and TOML are written the way their space's presets are."""
    space = space_type(res.original)
    f = res.fitted
    return {
        "schema": SCHEMA,
        "dataset": res.dataset_path,
        "objective": res.objective,
        "seed": res.seed,
        "sample_images": res.sample_images,
        "search": {
            "method": space.method,
            "iterations_asked": res.iterations_asked,
            "iterations_done": res.iterations_done,
            "stopped": res.stopped,
            "starts": res.starts,
            "history": res.history,
            "seconds": res.seconds,
        },
        "original": space.preset_dict(res.original),
        "fitted": space.preset_dict(f),
        "fitted_params": res.params.to_dict(),
        "sample": {"before": res.sample_before, "after": res.sample_after},
        "all": None if res.all_before is None else {"before": res.all_before, "after": res.all_after},
        "configs": space.configs(f, res.params, targets),
        "toml": space.toml(f),
        **_verdict_and_terms(res),
    }
