"""Task balancing between classification and regression (objective imbalance, Oksuz et al., Imbalance Problems in Object
Detection: A Review, TPAMI 2021, §7).

All weights that depend on loss values are computed from detached values, so they rescale the
gradients of a task without being differentiated themselves.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

__all__ = ["fixed_weights", "self_balance", "guided_loss", "ALRPSelfBalance"]


def fixed_weights(losses: Mapping[str, Tensor], weights: Mapping[str, float] | None = None) -> Tensor:
    """Linear task weighting ``sum_k λ_k L_k`` (Oksuz et al., Imbalance Problems in Object Detection: A Review, TPAMI
    2021, §7, Eq. 1 of most detectors).

    ``weights`` maps task names to λ (missing tasks weigh 1); an unknown name raises ``ValueError``.
    """
    weights = dict(weights or {})
    unknown = set(weights) - set(losses)
    if unknown:
        raise ValueError(f"weights for unknown tasks: {sorted(unknown)}")
    if not losses:
        raise ValueError("no losses to combine")
    return sum(float(weights.get(name, 1.0)) * value for name, value in losses.items())


def self_balance(cls_loss: Tensor, box_loss: Tensor) -> Tensor:
    """Value-based self-balance of RS loss (Oksuz et al., Rank & Sort Loss, ICCV 2021, supp. Eq. S17
    with ``λ_box = L_RS / L_box``).

    Returns ``L_cls + λ L_box`` with ``λ = L_cls / L_box`` recomputed every iteration from detached
    values (tuning-free; Table S1), as the released head computes it (kemaloksuz/RankSortLoss b41f64d,
    ``mmdet/models/dense_heads/rank_based_atss_head.py``, ``RankBasedATSSHead.loss``:
    ``SB_weight = (ranking_loss + sorting_loss).detach() / float(losses_bbox.item())``), however small
    the box loss. Where the box loss is exactly 0 (or the ratio overflows) the released code gives
    ``0 * inf = NaN``; here ``λ = 0`` and the result is ``L_cls``.
    """
    with torch.no_grad():
        box = box_loss.detach()
        lam = cls_loss.detach() / box
        lam = torch.where((box != 0) & torch.isfinite(lam), lam, torch.zeros_like(lam))
    return cls_loss + lam * box_loss


def guided_loss(cls_loss: Tensor, reg_loss: Tensor, w_reg: float = 1.0) -> Tensor:
    """Guided loss (Chen et al. 2019; Oksuz et al., Imbalance Problems in Object Detection:
    A Review, TPAMI 2021, Eq. 24).

    The classification loss is rescaled by ``w_reg L_reg / L_cls`` (detached), so its magnitude
    follows the regression loss, which is normalised by the foreground count:
    ``L = (w_reg L_reg / L_cls) L_cls + w_reg L_reg``. With ``w_reg = 1`` this is the authors' first
    release (chenjoya/sampling-free 1e93d9a, ``sampling_free/modeling/rpn/retinanet/loss.py``,
    ``RetinaNetLossComputation.__call__``: ``r = reg / cls`` under ``no_grad``, ``cls = r * cls``) at its
    learnable scale's initial value 1, however small ``L_cls``. Where ``L_cls`` is exactly 0 (or the ratio
    overflows) that code gives ``inf * 0 = NaN``; here the scale is 1 and the result ``w_reg L_reg``.
    """
    with torch.no_grad():
        c = cls_loss.detach()
        k = w_reg * reg_loss.detach() / c
        k = torch.where((c != 0) & torch.isfinite(k), k, torch.ones_like(k))
    return k * cls_loss + w_reg * reg_loss


class ALRPSelfBalance:
    """aLRP loss's self-balance (Oksuz et al., NeurIPS 2020, §5): ``L = L_cls + SB * L_loc``.

    ``SB`` starts at ``init`` (50). With ``period`` P (the released head's rule,
    ``aLRPLossRetinaHead.loss``, kemaloksuz/aLRPLoss at 2cfaa8e; P = 3665 there, one COCO epoch at
    batch 32): only iterations with positives are counted and recorded; the iteration that
    completes P of them sets ``SB = (mean L_cls + mean L_loc) / mean L_loc`` over those P and
    applies it in that same iteration, then the record starts over. With ``period=None`` the
    update happens in :meth:`end_epoch` instead (over the epoch's recorded iterations) and applies
    from the next iteration. :meth:`__call__` combines and records one iteration.
    """

    def __init__(self, init: float = 50.0, period: int | None = None):
        if period is not None and int(period) < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        self.weight = float(init)
        self.period = None if period is None else int(period)
        self._cls = 0.0
        self._loc = 0.0
        self._n = 0

    def __call__(self, cls_loss: Tensor, loc_loss: Tensor, has_positives: bool = True) -> Tensor:
        """``cls + SB * loc`` for this iteration; iterations without positives are not
        recorded (as the released head)."""
        if has_positives:
            self._cls += float(cls_loss.detach())
            self._loc += float(loc_loss.detach())
            self._n += 1
            if self.period is not None and self._n == self.period:
                self._update()
        return cls_loss + self.weight * loc_loss

    def _update(self) -> None:
        if self._n and self._loc > 0:
            self.weight = (self._cls + self._loc) / self._loc
        self._cls = self._loc = 0.0
        self._n = 0

    def end_epoch(self) -> float:
        """With ``period=None``: update ``SB`` from the epoch's mean losses and reset the record; returns the weight."""
        if self.period is None:
            self._update()
        return self.weight

    def state_dict(self) -> dict:
        """Serializable state (for checkpoints)."""
        return {"weight": self.weight, "cls": self._cls, "loc": self._loc, "n": self._n, "period": self.period}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.weight, self._cls, self._loc, self._n = state["weight"], state["cls"], state["loc"], state["n"]
        self.period = state.get("period", self.period)
