"""What to change: each finding of the check rules tied to a fix, and the fix measured on the same data (issue 23).

:func:`advise` reads an ``imbalance.stats/1`` report with the dataset and anchor preset it was computed from,
applies the thresholds of the same rules ``imbalance check`` uses (:class:`imbalance_cli.check.rules.Rules`,
defaults or a TOML rules file) and returns the report's ``advice`` section. Every item is

* a **finding**: the rule that fired, the measured value, the threshold, the survey section (Oksuz et al.,
  Imbalance Problems in Object Detection: A Review, TPAMI 2021);
* a **fix**: the exact command of this tool and the config snippet of the preset's framework;
* its **effect**, measured where the tool can measure it on the same data in the same run: anchor coverage and
  boxes without a positive before and after a short ``imbalance anchors`` fit on a seeded sample (the search
  bounded by ``budget`` seconds), small-box coverage before and after a larger input size on the same sample,
  tail-class instances per batch before and after repeat-factor sampling in the batch simulation of
  ``imbalance batches``. A loss changes training, which a statistics run cannot measure: its item says so and
  names the ``imbalance bench`` command that measures it.

No item without a measured finding; items are ordered by the measured size of the problem (``size``: the share
of the valid boxes the finding is about -- boxes not covered, small boxes not covered, instances that would have
to change class (TV distance to uniform) -- or, for the foreground-background item, the share of background
anchors beyond the threshold's level), an item whose effect was measured first among equals. ``checked`` lists
every rule looked at, fired or not.

The items (ids): ``anchors`` (``anchor_no_positive`` / ``anchor_below_positive_iou``, survey §6.5.3),
``input_size`` (``anchor_below_positive_iou``'s threshold on the small boxes; ``anchor_no_positive``'s for
presets without an IoU threshold; §5.1), ``repeat_factor`` and ``class_loss`` (``imbalance_ratio``, §4.2.1),
``foreground_loss`` (``anchor_neg_pos_ratio``, §4.1).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import replace
from typing import Any

import numpy as np

from imbalance_cli.anchorfit.outcome import to_report
from imbalance_cli.anchorfit.scoring import frequency_groups
from imbalance_cli.anchorfit.search import fit_anchors
from imbalance_cli.anchors.kinds import preset_names
from imbalance_cli.anchors.kinds import resolve as resolve_kind
from imbalance_cli.anchors.presets import PRESETS, get_preset
from imbalance_cli.anchors.yolov5 import YoloV5Preset
from imbalance_cli.check.rules import Rules
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError
from imbalance_cli.losses.registry import get_loss
from imbalance_cli.specs import AnchorSpec
from imbalance_cli.stats.batches import anchor_counts, epoch_order
from imbalance_cli.stats.classes import boxes_per_image, class_counts
from imbalance_cli.stats.geometry import size_group_codes
from imbalance_cli.stats.groups import image_repeat_factors, repeat_factors

#: Default ``--advice-budget``: seconds of anchor search (the fit's starts are scored first, whatever the budget).
DEFAULT_BUDGET = 1.0
#: Images (seeded) the anchor and input-size measurements use; all images of a smaller dataset.
SAMPLE = 100
SEED = 0
#: The larger input the ``input_size`` item measures: every resize side times this (YOLOv5: img_size).
INPUT_SCALE = 1.5
#: Batch size and (at least) epochs of the repeat-factor simulation (``imbalance batches``' defaults); a small
#: dataset is drawn for more epochs, up to about SIM_SAMPLES samples.
BATCH_SIZE = 16
EPOCHS = 1
SIM_SAMPLES = 2000
#: LVIS's repeat threshold; the advice uses the tail's own image frequency when that is larger.
LVIS_REPEAT_THRESHOLD = 0.001
#: The loss suggested against class imbalance, by the preset's detector (a softmax classifier for the two-stage
#: RPN and SSD presets; the sigmoid focal classifier of one-stage detectors otherwise).
CLASS_LOSS = {"rpn": "bags", "ssd300": "seesaw"}
DEFAULT_CLASS_LOSS = "ecm-focal"
FOREGROUND_LOSS = "rs"
SURVEY = "Oksuz et al., Imbalance Problems in Object Detection: A Review, TPAMI 2021"
#: Environment variable: ``off`` makes ``--no-advice`` the default of ``imbalance stats`` (``on``, the default).
ADVICE_ENV = "IMBALANCE_ADVICE"


def advice_default() -> bool:
    """Whether ``imbalance stats`` gives advice unless told otherwise: ``$IMBALANCE_ADVICE`` (on / off), default on.

    A value other than on/off (1/0, true/false, yes/no) is an :class:`InputError`.
    """
    raw = os.environ.get(ADVICE_ENV, "").strip().lower()
    if raw in ("", "on", "1", "true", "yes"):
        return True
    if raw in ("off", "0", "false", "no"):
        return False
    raise InputError(f"{ADVICE_ENV} must be on or off, got {os.environ.get(ADVICE_ENV)!r}")


def _preset(anchors: Any):
    """``(preset, spec or None)``: an :class:`AnchorSpec`, a YOLOv5 preset or name, or a grid preset / name."""
    if isinstance(anchors, AnchorSpec):
        return anchors.preset, anchors
    y = resolve_kind(anchors)  # None for anything the IoU engine handles
    if y is not None:
        return y, None
    return get_preset(anchors), None


def _sample_rows(n_images: int, n: int, seed: int) -> np.ndarray:
    """The seeded image sample (``imbalance anchors``' rule: ``default_rng(seed).choice`` without replacement)."""
    if n >= n_images:
        return np.arange(n_images)
    return np.sort(np.random.default_rng(seed).choice(n_images, size=n, replace=False))


def _item(id_: str, title: str, size: float, finding: dict, fix: dict, effect: dict) -> dict:
    return {"id": id_, "title": title, "size": float(size), "finding": finding, "fix": fix, "effect": effect}


def _finding(rule: str, measure: str, value, threshold, survey: str, text: str, **extra) -> dict:
    return {
        "rule": rule,
        "measure": measure,
        "value": value,
        "threshold": threshold,
        "survey": survey,
        "survey_source": SURVEY,
        "text": text,
        **extra,
    }


def _not_measured(why: str, how: str | None = None) -> dict:
    return {"measured": False, "why": why, "how": how}


def _fired(
    rules: Rules, rule: str, value: float | None, checked: list, strict: bool = True, group: str | None = None
) -> bool:
    """Whether ``rule`` fires on ``value`` (> its threshold as ``imbalance check`` compares it; ``strict=False``:
    >=), recorded in ``checked`` (``group``: the rule applied to one size group)."""
    sev = rules.severity(rule)
    thr = rules.get(rule, "threshold")
    fired = value is not None and sev != "off" and (value > thr if strict else value >= thr)
    checked.append(
        {"rule": rule, "group": group, "value": value, "threshold": thr, "severity": sev, "fired": bool(fired)}
    )
    return bool(fired)


# --------------------------------------------------------------------------------------------- anchors
def _anchor_items(
    report: dict,
    dataset: Dataset,
    anchors: Any,
    rules: Rules,
    budget: float,
    checked: list,
    skipped: list,
    t0: float,
    file: str,
) -> list[dict]:
    a = report.get("anchors") or {}
    n = int(a.get("boxes") or 0)
    if not n:
        return []
    preset, spec = _preset(anchors)
    no_pos, below = a.get("boxes_without_positive"), a.get("boxes_below_positive_iou")
    fire_np = _fired(rules, "anchor_no_positive", no_pos / n, checked)
    fire_bp = below is not None and _fired(rules, "anchor_below_positive_iou", below / n, checked)
    out = []
    rows = _sample_rows(dataset.num_images, SAMPLE, SEED)
    sub = dataset.subset_images(rows) if len(rows) < dataset.num_images else dataset
    iou_rule = below is not None
    small = (a.get("coverage") or {}).get("by_size", {}).get("small") or {}
    uncovered_key = "below_positive_iou" if iou_rule else "without_positive"
    rule = "anchor_below_positive_iou" if iou_rule else "anchor_no_positive"
    if small.get("boxes") and _fired(rules, rule, small.get(uncovered_key, 0) / small["boxes"], checked, group="small"):
        out.append(_input_size_item(a, dataset, sub, preset, spec, rules, rule, uncovered_key, small, n, skipped, file))
    if fire_np or fire_bp:
        item = _fit_item(a, dataset, sub, preset, spec, rules, fire_np, fire_bp, n, budget, t0, skipped, file)
        if item is not None:
            out.append(item)
    return [i for i in out if i is not None]


def _fit_item(a, dataset, sub, preset, spec, rules, fire_np, fire_bp, n, budget, t0, skipped, file):
    kind = getattr(preset, "kind", "grid")
    own = isinstance(preset, YoloV5Preset)  # YOLOv5's ratio test: fitted by `imbalance anchors`, no IoU threshold
    if kind != "grid" and not own:
        skipped.append(
            {
                "id": "anchors",
                "why": f"preset {preset.name!r} ({kind}) cannot be fitted: `imbalance "
                "anchors` fits grid presets and yolov5",
            }
        )
        return None
    share, finding = _fit_finding(a, preset, rules, fire_np, fire_bp, n)
    command = f"imbalance anchors {file} --preset {_preset_arg(preset)} --out fit/"
    if kind == "grid" and getattr(preset, "assigner", "max_iou") != "max_iou":
        fix = {"kind": "anchors", "text": "anchors fitted to the boxes", "commands": [command], "snippets": []}
        return _item(
            "anchors",
            "Anchors that cover the boxes",
            share,
            finding,
            fix,
            _not_measured(
                f"scoring a candidate under {preset.assigner.upper()}'s assigner takes seconds per image batch, beyond "
                "a statistics run's budget",
                command + " --budget 600",
            ),
        )
    left = max(0.05, budget - (time.perf_counter() - t0))
    started = time.perf_counter()
    try:
        res = fit_anchors(
            sub,
            preset,
            objective="coverage",
            sample=None,
            seed=SEED,
            budget=left,
            final_all=False,
            device=spec.device if spec is not None else "cpu",
        )
        rep = to_report(res)
    except InputError as e:
        skipped.append({"id": "anchors", "why": f"the fit could not run: {e.one_line()}"})
        return None
    effect = _fit_effect(res, rep, own, left, started)
    fix = _fit_fix(rep, command, file)
    return _item("anchors", "Anchors that cover the boxes", share, finding, fix, effect)


def _fit_effect(res, rep: dict, own: bool, budget: float, started: float) -> dict:
    """The measured effect of the short fit: its sample, iterations, time and before/after metrics."""
    b, f = res.sample_before, res.sample_after
    metrics = _fit_metrics(b, f, own)
    return {
        "measured": True,
        "method": "a short `imbalance anchors` fit (objective coverage) scored by the "
        "preset's own matcher on the sample; before = the preset, after = the fitted anchors",
        "images": int(b["images"]),
        "boxes": int(b["boxes"]),
        "sample_seed": SEED,
        "iterations": int(res.iterations_done),
        "stopped": res.stopped,
        "budget_seconds": round(budget, 3),
        "seconds": round(time.perf_counter() - started, 3),
        "metrics": metrics,
        "verdict": rep["verdict"]["message"],
        "verdict_level": rep["verdict"]["level"],
    }


def _fit_finding(a: dict, preset, rules, fire_np: bool, fire_bp: bool, n: int) -> tuple[float, dict]:
    """The share of boxes the anchors miss and the finding of the rule that fired (below the positive IoU first)."""
    no_pos, below = a["boxes_without_positive"], a.get("boxes_below_positive_iou")
    share = max(no_pos, below or 0) / n
    rule = "anchor_below_positive_iou" if fire_bp else "anchor_no_positive"
    value = below if fire_bp else no_pos
    measure = "boxes_below_positive_iou" if fire_bp else "boxes_without_positive"
    finding = _finding(
        rule,
        measure,
        value / n,
        rules.get(rule, "threshold"),
        "§6.5.3",
        f"{value:,} of {n:,} boxes ({100 * value / n:.1f}%) "
        + ("have no anchor at IoU >= the positive threshold" if fire_bp else "get no positive anchor at all")
        + f" under {preset.name!r}",
        count=int(value),
        boxes=int(n),
        also=None if not (fire_np and fire_bp) else {"boxes_without_positive": int(no_pos)},
    )
    return share, finding


def _fit_fix(rep: dict, command: str, file) -> dict:
    """The fix: the fit's commands and its snippets (the first exact framework's, else the first; and the TOML)."""
    fw, cfg = next(((k, v) for k, v in rep["configs"].items() if v.get("exact")), next(iter(rep["configs"].items())))
    return {
        "kind": "anchors",
        "text": f"anchors fitted to the boxes ({fw} syntax; run the full fit for the final set)",
        "commands": [command, f"imbalance stats {file} --anchors fit/fitted.toml"],
        "snippets": [
            {"framework": fw, "language": cfg["language"], "text": cfg["text"], "exact": bool(cfg.get("exact"))},
            {"framework": "imbalance", "language": "toml", "text": rep["toml"], "exact": True},
        ],
    }


def _fit_metrics(b: dict, f: dict, own: bool) -> list[dict]:
    """The fit's before/after metrics on the sample (no IoU-threshold measure for YOLOv5's ratio test ``own``)."""
    metrics = [
        {"measure": k, "before": b.get(k), "after": f.get(k)}
        for k in ("coverage", "boxes_without_positive", "boxes_below_positive_iou", "positives_per_box")
        if not (k == "boxes_below_positive_iou" and own)
    ]  # YOLOv5 has no IoU threshold
    metrics.append(
        {
            "measure": "coverage",
            "group": "small",
            "before": (b["by_size"].get("small") or {}).get("coverage"),
            "after": (f["by_size"].get("small") or {}).get("coverage"),
        }
    )
    return metrics


def _preset_arg(preset) -> str:
    """The ``--preset`` argument naming ``preset``: its built-in name, or a placeholder for a TOML preset."""
    builtin = getattr(preset, "source", None) is None and (preset.name in PRESETS or preset.name in preset_names())
    return preset.name if builtin else "PRESET.toml"


def _bigger(preset):
    """The preset with every resize side times :data:`INPUT_SCALE` (None for a fixed-size preset)."""
    if isinstance(preset, YoloV5Preset):
        side = int(round(preset.img_size * INPUT_SCALE / preset.pad_stride)) * preset.pad_stride
        return replace(preset, img_size=side)
    r = preset.resize
    if r.fixed is not None or r.min_size is None or r.max_size is None:
        return None
    return replace(
        preset,
        resize=replace(r, min_size=int(round(r.min_size * INPUT_SCALE)), max_size=int(round(r.max_size * INPUT_SCALE))),
    )


def _small_uncovered(dataset: Dataset, preset, spec, key: str) -> tuple[float | None, int, float]:
    """Share of the small boxes not covered (``key``) on ``dataset`` under ``preset``, small boxes, anchors/image."""
    opts = {"matcher": spec.semantics} if spec is not None and getattr(preset, "assigner", "") == "max_iou" else {}
    c = anchor_counts(dataset, preset, **opts)
    rows = c["box_below_positive_iou"] if key == "below_positive_iou" else c["box_without_positive"]
    order, _ = dataset.image_offsets(dataset.valid_mask())
    small = order[size_group_codes(dataset, order) == 0]
    share = float(np.isin(rows, small).sum() / len(small)) if len(small) else None
    return share, int(len(small)), float(np.mean(c["anchors"])) if len(c["anchors"]) else 0.0


def _input_size_item(a, dataset, sub, preset, spec, rules, rule, key, small, n, skipped, file):
    big = _bigger(preset)
    if big is None:
        skipped.append({"id": "input_size", "why": f"preset {preset.name!r} resizes to a fixed size"})
        return None
    share = small[key] / small["boxes"]
    what = (
        "have no anchor at IoU >= the positive threshold" if key == "below_positive_iou" else "get no positive anchor"
    )
    finding = _finding(
        rule,
        f"boxes_{key}",
        share,
        rules.get(rule, "threshold"),
        "§5.1",
        f"{small[key]:,} of {small['boxes']:,} small boxes ({100 * share:.1f}%) {what}",
        count=int(small[key]),
        boxes=int(small["boxes"]),
        group="small",
    )
    started = time.perf_counter()
    try:
        before, boxes, anchors_before = _small_uncovered(sub, preset, spec, key)
        after, _, anchors_after = _small_uncovered(sub, big, spec, key)
    except InputError as e:
        skipped.append({"id": "input_size", "why": f"the larger input could not be measured: {e.one_line()}"})
        return None
    old, new, snippets, toml = _input_size_change(preset, big)
    metrics = [
        {"measure": f"boxes_{key}", "group": "small", "unit": "share of small boxes", "before": before, "after": after},
        {"measure": "anchors_per_image", "before": anchors_before, "after": anchors_after},
    ]
    effect = {
        "measured": True,
        "method": f"the preset's labelling of the sample at input {old} (before) and {new} (after, x{INPUT_SCALE:g})",
        "images": int(sub.num_images),
        "boxes": int(boxes),
        "sample_seed": SEED,
        "seconds": round(time.perf_counter() - started, 3),
        "metrics": metrics,
    }
    fix = {
        "kind": "input_size",
        "text": f"a larger input: {old} -> {new} (costs anchors and compute per image)",
        "commands": [
            f"imbalance stats {file} --anchors PRESET.toml   # the preset with [resize] as below"
            if toml
            else f"imbalance stats {file} --anchors PRESET.toml   # img_size = {new}"
        ],
        "snippets": snippets
        + ([{"framework": "imbalance", "language": "toml", "text": toml, "exact": True}] if toml else []),
    }
    return _item("input_size", "A larger input for small boxes", small[key] / n, finding, fix, effect)


def _input_size_change(preset, big) -> tuple[str, str, list[dict], str | None]:
    """The input size before and after as text, the frameworks' snippets and the preset TOML (None for YOLOv5)."""
    if isinstance(preset, YoloV5Preset):
        old, new = f"{preset.img_size}", f"{big.img_size}"
        snippets = [
            {
                "framework": "ultralytics",
                "language": "shell",
                "exact": True,
                "text": f"python train.py --img {big.img_size}   # YOLOv5; Ultralytics: yolo train imgsz="
                f"{big.img_size}\n",
            }
        ]
        toml = None
    else:
        r0, r1 = preset.resize, big.resize
        old, new = f"{r0.min_size}/{r0.max_size}", f"{r1.min_size}/{r1.max_size}"
        snippets = _resize_snippets(preset, r1.min_size, r1.max_size)
        toml = f"[resize]\nmin_size = {r1.min_size}\nmax_size = {r1.max_size}\n"
    return old, new, snippets, toml


def _resize_snippets(preset, lo: int, hi: int) -> list[dict]:
    rule = getattr(preset, "anchor_rule", "torchvision")
    text = {
        "torchvision": (
            "python",
            f"retinanet_resnet50_fpn(..., min_size={lo}, max_size={hi})  # GeneralizedRCNNTransform\n",
        ),
        "mmdet": ("python", f"dict(type='Resize', scale=({hi}, {lo}), keep_ratio=True)  # train and test pipelines\n"),
        "detectron2": (
            "yaml",
            f"INPUT:\n  MIN_SIZE_TRAIN: ({lo},)\n  MAX_SIZE_TRAIN: {hi}\n  MIN_SIZE_TEST: {lo}\n"
            f"  MAX_SIZE_TEST: {hi}\n",
        ),
    }
    lang, t = text.get(rule, text["torchvision"])
    return [{"framework": rule, "language": lang, "text": t, "exact": True}]


# --------------------------------------------------------------------------------------------- classes
def tail_classes(dataset: Dataset) -> np.ndarray:
    """Boolean per category row: the rarest third of the used classes by valid instances (ties by id), the
    class-frequency group ``imbalance anchors`` calls the rare third."""
    return frequency_groups(dataset) == 0


def repeat_threshold(dataset: Dataset, tail: np.ndarray, images: np.ndarray | None = None) -> float:
    """The repeat threshold the advice measures: the image frequency of the most frequent tail class, so every
    rarer tail class is repeated (LVIS's 0.001 when that is larger). ``images``: images per class, when counted."""
    if images is None:
        _, images = class_counts(dataset, dataset.valid_mask())
    f = images[tail] / max(dataset.num_images, 1)
    return float(max(LVIS_REPEAT_THRESHOLD, f.max(initial=0.0)))


def sim_epochs(num_images: int) -> int:
    """Epochs the simulation draws: enough for about :data:`SIM_SAMPLES` samples (1 on a large dataset, at most 100)."""
    return int(min(100, max(EPOCHS, -(-SIM_SAMPLES // max(num_images, 1)))))


def tail_per_batch(
    dataset: Dataset,
    tail: np.ndarray,
    sampler: str,
    threshold: float,
    batch_size: int = BATCH_SIZE,
    epochs: int = EPOCHS,
    seed: int = SEED,
    counted: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Tail-class instances per batch under ``sampler``: the stream of ``imbalance batches`` (same sampler code,
    seed and epochs). ``tail_instances_per_batch`` = tail instances drawn per sample x ``batch_size`` (a partial
    last batch does not dilute it), ``tail_share`` = tail instances / instances drawn, ``batches_with_tail`` =
    share of batches (the last one may be partial) with a tail instance, ``samples_per_epoch``. ``counted``: the
    valid-box mask and the images per class, when the caller has them."""
    valid, images = counted if counted is not None else (dataset.valid_mask(), None)
    all_image = boxes_per_image(dataset, valid)
    per_image = boxes_per_image(dataset, valid & tail[dataset.box_category])
    rng = np.random.default_rng(seed)
    factors = None
    if sampler == "repeat-factor":
        if images is None:
            _, images = class_counts(dataset, valid)
        factors = image_repeat_factors(dataset, repeat_factors(images, dataset.num_images, threshold), valid)
    stream = np.concatenate([epoch_order(sampler, rng, dataset.num_images, factors) for _ in range(epochs)])
    batches = -(-len(stream) // batch_size)
    per_batch = np.bincount(np.arange(len(stream)) // batch_size, weights=per_image[stream], minlength=batches)
    drawn = float(all_image[stream].sum())
    return {
        "tail_instances_per_batch": float(per_image[stream].sum() / len(stream) * batch_size) if len(stream) else None,
        "tail_share": float(per_image[stream].sum() / drawn) if drawn else None,
        "batches_with_tail": float((per_batch > 0).mean()) if batches else None,
        "samples_per_epoch": float(len(stream) / epochs),
        "batches": int(batches),
    }


def _class_items(report: dict, dataset: Dataset, preset, rules: Rules, checked: list, file: str) -> list[dict]:
    m = report.get("measures") or {}
    ratio = m.get("imbalance_ratio")
    if not _fired(rules, "imbalance_ratio", ratio, checked, strict=False):
        return []
    tv = float(m.get("tv_to_uniform") or 0.0)
    finding = _finding(
        "imbalance_ratio",
        "imbalance_ratio",
        float(ratio),
        rules.get("imbalance_ratio", "threshold"),
        "§4.2.1",
        f"the most frequent class has {ratio:,.1f}x the instances of the rarest "
        f"({m.get('classes_used')} used classes; TV distance to uniform {tv:.2f})",
        tv_to_uniform=tv,
    )
    items = []
    tail = tail_classes(dataset)
    if tail.any():
        items.append(_repeat_factor_item(dataset, tail, tv, finding, file))
    name = CLASS_LOSS.get(getattr(preset, "name", ""), DEFAULT_CLASS_LOSS) if preset is not None else DEFAULT_CLASS_LOSS
    items.append(_loss_item("class_loss", "A long-tail loss", tv, finding, name, file, dataset.format == "yolo"))
    return items


def _repeat_factor_item(dataset: Dataset, tail: np.ndarray, tv: float, finding: dict, file: str) -> dict:
    """Repeat-factor sampling for the tail classes, its effect measured by the batch simulation."""
    valid = dataset.valid_mask()
    _, images = class_counts(dataset, valid)
    t = repeat_threshold(dataset, tail, images)
    started = time.perf_counter()
    epochs = sim_epochs(dataset.num_images)
    before = tail_per_batch(dataset, tail, "uniform", t, epochs=epochs, counted=(valid, images))
    after = tail_per_batch(dataset, tail, "repeat-factor", t, epochs=epochs, counted=(valid, images))
    metrics = [
        {"measure": k, "before": before[k], "after": after[k]}
        for k in ("tail_instances_per_batch", "tail_share", "batches_with_tail", "samples_per_epoch")
    ]
    names = [str(x) for x in dataset.category_names[tail]]
    effect = {
        "measured": True,
        "method": f"the batch simulation of `imbalance batches` (batch size {BATCH_SIZE}, "
        f"{epochs} epoch(s), seed {SEED}): uniform sampling (before) against repeat-factor sampling at "
        f"t = {t:.4g} (after)",
        "tail_classes": int(tail.sum()),
        "tail_class_names": names[:20],
        "epochs": epochs,
        "images": int(dataset.num_images),
        "seconds": round(time.perf_counter() - started, 3),
        "metrics": metrics,
    }
    fix = _repeat_factor_fix(t, epochs, file)
    return _item("repeat_factor", "Repeat-factor sampling for the tail classes", tv, finding, fix, effect)


def _repeat_factor_fix(t: float, epochs: int, file: str) -> dict:
    """The fix: the threshold ``t``, the commands that show it and the detectron2 and mmdet settings."""
    return {
        "kind": "sampler",
        "text": f"repeat-factor sampling with threshold t = {t:.4g} (Gupta et al., LVIS, "
        "CVPR 2019: image factor max over its classes of max(1, sqrt(t / f(c))))",
        "commands": [
            f"imbalance batches {file} --sampler repeat-factor --repeat-threshold {t:.4g} "
            f"--batch-size {BATCH_SIZE} --epochs {epochs}",
            f"imbalance groups {file}   # repeat factors per class",
        ],
        "snippets": [
            {
                "framework": "detectron2",
                "language": "yaml",
                "exact": True,
                "text": f"DATALOADER:\n  SAMPLER_TRAIN: RepeatFactorTrainingSampler\n  REPEAT_THRESHOLD: {t:.4g}\n",
            },
            {
                "framework": "mmdet",
                "language": "python",
                "exact": True,
                "text": f"train_dataloader = dict(dataset=dict(type='ClassBalancedDataset', oversample_thr={t:.4g}, "
                "dataset=...))\n",
            },
        ],
    }


def _loss_item(id_: str, title: str, size: float, finding: dict, name: str, file: str, yolo: bool) -> dict:
    e = get_loss(name)
    base = get_loss(e.baseline) if e.baseline else None
    commands = [f"imbalance bench --losses {e.name}   # {e.name} against {e.baseline} on synthetic-lt"]
    snippets = []
    if e.name == "ecm-focal":  # the one-stage form: margins without the background (ECM supp. F)
        commands.insert(0, f"imbalance margins {file} --one-stage --out margins/   # its margins and weights")
    elif e.name == "bags":
        commands.insert(0, f"imbalance groups {file} --out groups/   # label2binlabel, pred_slice")
    images = "" if yolo else " --images IMAGES"  # a YOLO data.yaml lists its images
    commands.append(f"imbalance train --data {file}{images} --loss {e.name}   # the compact detector")
    fix = {
        "kind": "loss",
        "text": f"loss {e.name}: {e.description}",
        "loss": e.name,
        "paper": e.citation,
        "baseline": e.baseline,
        "baseline_paper": None if base is None else base.citation,
        "commands": commands,
        "snippets": snippets,
    }
    effect = _not_measured(
        "a loss changes how the detector trains; a statistics run cannot measure it",
        f"imbalance bench --losses {e.name}",
    )
    return _item(id_, title, size, finding, fix, effect)


def _foreground_items(report: dict, preset, rules: Rules, checked: list, file: str, yolo: bool) -> list[dict]:
    a = report.get("anchors") or {}
    fg, bg = a.get("foreground"), a.get("background")
    if not fg or bg is None:
        return []
    ratio = bg / fg
    if not _fired(rules, "anchor_neg_pos_ratio", ratio, checked):
        return []
    thr = rules.get("anchor_neg_pos_ratio", "threshold")
    finding = _finding(
        "anchor_neg_pos_ratio",
        "background_per_foreground",
        ratio,
        thr,
        "§4.1",
        f"{ratio:,.0f} background anchors per foreground anchor under {getattr(preset, 'name', '')!r}",
    )
    size = 1.0 - thr / ratio if ratio > 0 else 0.0
    return [
        _loss_item(
            "foreground_loss",
            "A ranking-based loss for the foreground-background imbalance",
            size,
            finding,
            FOREGROUND_LOSS,
            file,
            yolo,
        )
    ]


# --------------------------------------------------------------------------------------------- entry point
def advise(
    report: dict,
    dataset: Dataset,
    anchors: Any = None,
    rules: Rules | None = None,
    budget: float = DEFAULT_BUDGET,
    rules_source: str | None = None,
    file: str | None = None,
) -> dict:
    """The report's ``advice`` section (see the module docstring).

    ``anchors`` is what the anchor pass ran (an :class:`AnchorSpec`, ``"yolov5"``, a YOLOv5 preset, a grid
    preset or name; None without anchors); ``rules`` the check rules (defaults when None); ``budget`` the
    seconds the anchor search may take; ``file`` how the commands name the dataset.
    """
    if not (budget > 0 and math.isfinite(budget)):
        raise InputError(f"--advice-budget must be a positive number of seconds, got {budget}")
    rules = rules or Rules()
    t0 = time.perf_counter()
    checked: list = []
    skipped: list = []
    file = file or (dataset.path or "FILE")
    preset = None
    items: list[dict] = []
    if anchors is not None and report.get("anchors"):
        preset, _ = _preset(anchors)
        items += _anchor_items(report, dataset, anchors, rules, budget, checked, skipped, t0, file)
        items += _foreground_items(report, preset, rules, checked, file, dataset.format == "yolo")
    items += _class_items(report, dataset, preset, rules, checked, file)
    items.sort(key=lambda i: (-i["size"], not i["effect"]["measured"]))
    return {
        "rules": rules_source or "defaults",
        "budget_seconds": float(budget),
        "seconds": round(time.perf_counter() - t0, 3),
        "items": items,
        "checked": checked,
        "skipped": skipped,
    }
