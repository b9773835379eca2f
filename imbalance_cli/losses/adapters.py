"""Detector adapters of the registry's losses (:mod:`imbalance_cli.losses.registry`), and their state objects.

A classification adapter takes ``(state, inputs)`` with :class:`LossInputs` (the kept anchors'
logits and labels, and whatever the entry's ``needs`` asks for) and returns ``(cls, own_box)``:
the classification term and, for a loss that brings its own localisation term (aLRP), that term
(``None`` otherwise). A box adapter takes ``(state, pred_deltas, target_deltas, pred_boxes,
target_boxes, ious, num_pos)`` of the positives and returns the normalised box term.

Normalisation: summed losses are divided by the number of positive anchors (RetinaNet, Lin et
al., ICCV 2017, §4); losses whose official form carries its own normaliser keep it (GHM-C and GHM-R:
the number of valid elements; the ranking losses: their own definition; BAGS: the per-group mean,
rescaled by ``N / num_pos`` so that with every box in every group it equals softmax CE summed over
anchors and divided by the positives, the baseline head's normalisation).

State objects hold what must survive between iterations and in checkpoints (as tensors and plain
types only, so checkpoints load with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from imbalance_cli.losses.balancing import ALRPSelfBalance, self_balance
from imbalance_cli.losses.classification import GHMC, focal_loss, iou_balanced_cls, sigmoid_ce, softmax_ce
from imbalance_cli.losses.longtail import EQLv2, SeesawLoss, bags_loss, class_balanced, ecm_loss, ecm_margins
from imbalance_cli.losses.ranking import alrp_loss, ap_loss, rank_sort_loss
from imbalance_cli.losses.regression import (
    GHMR,
    balanced_l1,
    bounded_iou,
    ciou_loss,
    diou_loss,
    giou_loss,
    iou_balanced_l1,
    iou_loss,
    l1,
    smooth_l1,
)


@dataclass
class LossInputs:
    """What a classification adapter may read (fields a loss does not need may be ``None``)."""

    logits: Tensor  # (N, L) logits of the anchors entering the loss
    labels: Tensor  # (N,) in 0..C, C = background
    num_classes: int
    num_pos: float  # positives in the batch (>= 1)
    step: int  # global iteration (seeds BAGS sampling)
    counts: np.ndarray | None = None  # training instances per class (needs "counts")
    ious: Tensor | None = None  # (N,) IoU of the predicted box, 0 for negatives (needs "ious")
    loc_errors: Tensor | None = None  # (N, C) differentiable E_loc at each positive's class (needs "loc_errors")
    tables: tuple | None = None  # BAGS (label2binlabel, pred_slice) (needs "tables")


def onehot(labels: Tensor, num_classes: int, dtype) -> Tensor:
    """One-hot ``(N, C)`` targets; label C (background) is an all-zero row."""
    t = torch.zeros(labels.shape[0], num_classes + 1, dtype=dtype, device=labels.device)
    t[torch.arange(labels.shape[0], device=labels.device), labels] = 1.0
    return t[:, :num_classes]


def _iou_targets(labels, ious, C, dtype):
    t = torch.zeros(labels.shape[0], C + 1, dtype=dtype, device=labels.device)
    t[torch.arange(labels.shape[0], device=labels.device), labels] = ious.to(dtype).clamp_min(1e-6)
    return t[:, :C]


# ------------------------------------------------------------------------------------------ state


class LossState:
    """Base of the per-run state objects: ``end_epoch`` hook and checkpoint (de)serialisation."""

    module: torch.nn.Module | None = None

    def end_epoch(self) -> None:
        """Called after every epoch (no-op unless the loss updates per epoch)."""

    def state_dict(self) -> dict:
        """Tensors and plain types only (checkpoints load with ``weights_only=True``)."""
        return {k: v.detach().cpu() for k, v in self.module.state_dict().items()} if self.module is not None else {}

    def load_state_dict(self, sd: dict) -> None:
        """Restore :meth:`state_dict`."""
        if self.module is not None and sd:
            self.module.load_state_dict(sd)


class _ModuleState(LossState):
    factory = None

    def __init__(self, num_classes: int = 0, device="cpu", **_):
        self.module = self.factory(num_classes).to(device) if num_classes else self.factory().to(device)


class EQLv2State(_ModuleState):
    """EQLv2's gradient accumulators and cached ratio (start: weights 1, as the authors' code)."""

    factory = EQLv2


class SeesawState(_ModuleState):
    """Seesaw's cumulative class counts."""

    factory = SeesawLoss


class GHMCState(LossState):
    """GHM-C's moving bin counts (30 bins, momentum 0.75; Li et al., AAAI 2019, §4)."""

    def __init__(self, device="cpu", **_):
        self.module = GHMC(bins=30, momentum=0.75).to(device)


class GHMRState(LossState):
    """GHM-R's moving bin counts (mu 0.02, 10 bins, momentum 0.7)."""

    def __init__(self, device="cpu", **_):
        self.module = GHMR(mu=0.02, bins=10, momentum=0.7).to(device)


class ALRPState(LossState):
    """aLRP's self-balance ``L = L_cls + SB * L_loc`` (SB starts at 50) by the released head's rule
    (:class:`ALRPSelfBalance`): its period is 3665 iterations with positives, one COCO epoch at batch
    32; the trainer passes ``period`` = its own iterations per epoch, so SB is recomputed once per
    epoch's worth of iterations with positives and applied in the iteration that completes it.
    ``period=None`` (library use without a trainer) updates at :meth:`end_epoch` instead."""

    def __init__(self, period: int | None = None, **_):
        self.balance = ALRPSelfBalance(period=period)
        self.has_positives = True  # set by cls_alrp for the iteration being combined

    def combine(self, cls: Tensor, box: Tensor) -> Tensor:
        """``cls + SB * box`` (recorded for the epoch update unless the batch had no positive)."""
        return self.balance(cls, box, has_positives=self.has_positives)

    def end_epoch(self) -> None:
        """Update SB from the epoch's mean losses (only without a period)."""
        self.balance.end_epoch()

    def state_dict(self) -> dict:
        """Plain floats and ints."""
        return self.balance.state_dict()

    def load_state_dict(self, sd: dict) -> None:
        """Restore :meth:`state_dict`."""
        if sd:
            self.balance.load_state_dict(sd)


class IoUBalancedL1State(LossState):
    """IoU-balanced L1's ``w_loc`` (Wu et al., PRL 2022, Eq. 4), fixed at the first step.

    The paper adjusts ``w_loc`` "to keep the sum of localization loss unchanged for the first step
    of the training procedure" and finds this better than renormalising every step (Eq. 5); we
    compute exactly that ratio on the first batch with positives and keep it.
    """

    def __init__(self, **_):
        self.w_loc: float | None = None

    def state_dict(self) -> dict:
        """``{"w_loc": float | None}``."""
        return {"w_loc": self.w_loc}

    def load_state_dict(self, sd: dict) -> None:
        """Restore :meth:`state_dict`."""
        if sd:
            self.w_loc = sd.get("w_loc")


# --------------------------------------------------------------------------- combination policies


def combine_weighted(state, cls: Tensor, box: Tensor, box_weight: float) -> Tensor:
    """``cls + box_weight * box``."""
    return cls + box_weight * box


def combine_value(state, cls: Tensor, box: Tensor, box_weight: float) -> Tensor:
    """RS value-based self-balance (Oksuz et al., ICCV 2021, supp. Eq. S17): ``cls + (L_cls / L_box) box``,
    detached ratio."""
    return self_balance(cls, box)


def combine_state(state, cls: Tensor, box: Tensor, box_weight: float) -> Tensor:
    """The state object combines the two terms (aLRP's epoch self-balance)."""
    return state.combine(cls, box)


#: ``LossEntry.balance`` -> combination function.
COMBINE = {"weighted": combine_weighted, "value": combine_value, "state": combine_state}


# -------------------------------------------------------------------------- classification adapters


def cls_focal(state, x: LossInputs):
    """Sigmoid focal loss (alpha 0.25, gamma 2), summed, / positives."""
    t = onehot(x.labels, x.num_classes, x.logits.dtype)
    return focal_loss(x.logits, t, alpha=0.25, gamma=2.0, reduction="sum") / x.num_pos, None


def cls_sigmoid_ce(state, x: LossInputs):
    """Sigmoid BCE, summed, / positives."""
    t = onehot(x.labels, x.num_classes, x.logits.dtype)
    return sigmoid_ce(x.logits, t, reduction="sum") / x.num_pos, None


def cls_softmax_ce(state, x: LossInputs):
    """Softmax CE with a background column, summed, / positives."""
    return softmax_ce(x.logits, x.labels, reduction="sum") / x.num_pos, None


def ecm_surrogate(counts, margins: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, shift)`` per class of the logit ECM scores: ``2 f + (m+ - m-)`` (Cho & Krähenbühl, ECCV 2022, Eq. 11).

    ``margins``: :func:`ecm_margins` of ``counts`` when the caller has them already.
    """
    mg = ecm_margins(counts, None) if margins is None else margins
    shift = mg["m_pos"] - mg["m_neg"]
    return np.full_like(shift, 2.0), shift


def cls_ecm(state, x: LossInputs):
    """ECM (one-stage: C sigmoid channels, no background channel), summed, / positives."""
    n = x.logits.shape[0]
    return ecm_loss(x.logits, x.labels, x.counts, fg_bg_ratio=None) * n / x.num_pos, None


def cls_ecm_focal(state, x: LossInputs):
    """Focal loss on the ECM surrogate logit ``2 f + m+ - m-`` times the ECM detection weight
    (Cho & Krähenbühl, supp. F)."""
    mg = ecm_margins(x.counts, None)
    scale, shift = (
        torch.as_tensor(v, dtype=x.logits.dtype, device=x.logits.device) for v in ecm_surrogate(x.counts, mg)
    )
    w = torch.as_tensor(mg["weight"], dtype=x.logits.dtype, device=x.logits.device)
    t = onehot(x.labels, x.num_classes, x.logits.dtype)
    return (focal_loss(scale * x.logits + shift, t, reduction="none") * w).sum() / x.num_pos, None


def cls_bags(state, x: LossInputs):
    """BAGS with beta 8 and the authors' per-group mean, rescaled by ``N / num_pos`` (see module docstring)."""
    l2b, pred_slice = x.tables
    g = torch.Generator().manual_seed(1_000_003 * (x.step + 1))
    mean = bags_loss(x.logits, x.labels, l2b, pred_slice, beta=8.0, generator=g, reduction="mean")
    return mean * x.logits.shape[0] / x.num_pos, None


def cls_rank_sort(state, x: LossInputs):
    """RS loss on IoU targets (delta 0.5); ranking + sorting."""
    t = _iou_targets(x.labels, x.ious, x.num_classes, x.logits.dtype)
    ranking, sorting = rank_sort_loss(x.logits.reshape(-1), t.reshape(-1), delta=0.5)
    return ranking + sorting, None


def cls_ap(state, x: LossInputs):
    """Interpolated AP loss (delta 1)."""
    t = onehot(x.labels, x.num_classes, x.logits.dtype)
    return ap_loss(x.logits.reshape(-1), t.reshape(-1), delta=1.0), None


def cls_iou_balanced(state, x: LossInputs):
    """IoU-balanced classification on focal (eta 1.5), summed, / positives."""
    t = onehot(x.labels, x.num_classes, x.logits.dtype)
    return iou_balanced_cls(
        x.logits, t, x.ious.to(x.logits.dtype), eta=1.5, loss="focal", reduction="sum"
    ) / x.num_pos, None


def cls_ghm_c(state, x: LossInputs):
    """GHM-C with momentum (its own normaliser: the number of elements)."""
    t = onehot(x.labels, x.num_classes, x.logits.dtype)
    return state.module(x.logits, t, reduction="mean"), None


def cls_class_balanced(state, x: LossInputs):
    """Class-balanced focal loss (gamma 2, no alpha), background rows weight 1, / positives."""
    t = onehot(x.labels, x.num_classes, x.logits.dtype)
    return class_balanced(x.logits, t, x.counts, beta=0.999, loss="focal", reduction="sum") / x.num_pos, None


def cls_alrp(state, x: LossInputs):
    """aLRP: ``(cls, loc)``; loc replaces the box loss."""
    t = onehot(x.labels, x.num_classes, x.logits.dtype)
    if state is not None:
        state.has_positives = bool((t > 0).any())
    cls, loc = alrp_loss(x.logits.reshape(-1), t.reshape(-1), x.loc_errors.reshape(-1), delta=1.0)
    return cls, loc


def cls_eqlv2(state, x: LossInputs):
    """EQLv2 (stateful), summed, / positives."""
    return state.module(x.logits, x.labels, reduction="sum") / x.num_pos, None


def cls_seesaw(state, x: LossInputs):
    """Seesaw (stateful), summed, / positives."""
    return state.module(x.logits, x.labels, reduction="sum") / x.num_pos, None


# ------------------------------------------------------------------------------------ box adapters


def box_giou(state, pd, td, pb, tb, ious, num_pos):
    """GIoU on decoded boxes, summed, / positives."""
    return giou_loss(pb, tb).sum() / num_pos


def box_diou(state, pd, td, pb, tb, ious, num_pos):
    """DIoU on decoded boxes, summed, / positives."""
    return diou_loss(pb, tb).sum() / num_pos


def box_ciou(state, pd, td, pb, tb, ious, num_pos):
    """CIoU on decoded boxes, summed, / positives."""
    return ciou_loss(pb, tb).sum() / num_pos


def box_l1(state, pd, td, pb, tb, ious, num_pos):
    """L1 on deltas, summed, / positives."""
    return l1(pd, td).sum() / num_pos


def box_smooth_l1(state, pd, td, pb, tb, ious, num_pos):
    """Smooth L1 (beta 1/9) on deltas, summed, / positives."""
    return smooth_l1(pd, td, beta=1.0 / 9).sum() / num_pos


def box_balanced_l1(state, pd, td, pb, tb, ious, num_pos):
    """Balanced L1 on deltas, summed, / positives."""
    return balanced_l1(pd, td).sum() / num_pos


def box_iou(state, pd, td, pb, tb, ious, num_pos):
    """-ln IoU on decoded boxes, summed, / positives."""
    return iou_loss(pb, tb).sum() / num_pos


def box_bounded_iou(state, pd, td, pb, tb, ious, num_pos):
    """Bounded IoU on decoded boxes, summed, / positives."""
    return bounded_iou(pb, tb).sum() / num_pos


def box_iou_balanced_l1(state, pd, td, pb, tb, ious, num_pos):
    """IoU-balanced smooth L1 with Eq. 4 (``w_loc`` fixed on the first batch with positives), / positives."""
    if state.w_loc is None and pd.shape[0] > 0:
        with torch.no_grad():
            base = smooth_l1(pd, td, beta=1.0 / 9)
            raw = ious.detach().to(base.dtype).clamp(min=0.0).pow(1.5).unsqueeze(1)
            den = float((raw * base).sum())
            if den > 0 and math.isfinite(den):
                state.w_loc = float(base.sum()) / den
    w_loc = 1.0 if state.w_loc is None else state.w_loc
    return iou_balanced_l1(pd, td, ious, lam=1.5, w_loc=w_loc, beta=1.0 / 9).sum() / num_pos


def box_ghm_r(state, pd, td, pb, tb, ious, num_pos):
    """GHM-R on deltas with momentum (its own normaliser: the number of elements, as mmdetection)."""
    return state.module(pd, td, reduction="mean")
