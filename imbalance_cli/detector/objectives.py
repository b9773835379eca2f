"""Adapters from ``--loss`` / ``--box-loss`` / ``--sampler`` names to the detector's head and targets.

Every loss comes from :mod:`imbalance_cli.losses`; this module only decides how the one-stage
head's outputs and the matcher's per-anchor targets feed it:

* which head the loss needs: ``sigmoid`` (C logits per anchor), ``softmax`` (C + 1, background
  last) or ``grouped`` (BAGS: C + N + 2 logits laid out by ``bags_pred_slice``);
* the targets: one-hot for sigmoid losses, an integer label (C = background) for softmax
  losses, continuous IoU targets (IoU of the *predicted* box with its ground truth, detached)
  for the ranking losses (RS / AP / aLRP) and IoU-balanced classification, training-instance
  counts for ECM / EQLv2 / Seesaw / class-balanced, the BAGS group tables;
* the normalisation: summed losses are divided by the number of positive anchors (RetinaNet),
  the ranking losses are already normalised by their own definition;
* how scores are read at inference: sigmoid, softmax without the background column, or the BAGS
  merge (seed 002, §4.4).

Per-anchor inputs to :meth:`ClsObjective.loss`: ``logits (N, L)`` of the non-ignored anchors,
``labels (N,)`` in ``0..C`` (C = background) and ``ious (N,)`` (IoU of the predicted box with the
matched ground truth for positives, 0 for negatives).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from imbalance_cli.errors import InputError


def _losses():
    import imbalance_cli.losses as L

    return L


def _onehot(labels: Tensor, num_classes: int, dtype) -> Tensor:
    t = torch.zeros(labels.shape[0], num_classes + 1, dtype=dtype, device=labels.device)
    t[torch.arange(labels.shape[0], device=labels.device), labels] = 1.0
    return t[:, :num_classes]


@dataclass
class ClsObjective:
    """A classification objective for the one-stage head (see module docstring)."""

    name: str
    head: str  # sigmoid | softmax | grouped
    description: str
    requires: tuple[str, ...]
    fn: Callable  # (self, logits, labels, ious, num_pos, step) -> scalar
    uses_iou: bool = False  # needs IoU of predicted boxes
    self_balance: bool = False  # RS-style value-based task balancing (RS supp. Eq. S17)
    box_loss_default: str = "giou"
    state: dict = field(default_factory=dict)

    # --- set-up ---------------------------------------------------------------------------
    def prepare(self, counts: np.ndarray, device) -> None:
        """Store per-dataset state: counts, BAGS tables, stateful loss modules."""
        L = _losses()
        self.state = {"counts": np.asarray(counts, dtype=np.float64), "C": int(len(counts)), "device": device}
        if self.head == "grouped":
            c = np.maximum(np.asarray(counts, dtype=np.float64), 0)
            self.state["l2b"] = L.bags_label2binlabel(c).to(device)
            self.state["slice"] = L.bags_pred_slice(c)
        if self.name == "eqlv2":
            self.state["module"] = L.EQLv2(int(len(counts))).to(device)
        if self.name == "seesaw":
            self.state["module"] = L.SeesawLoss(int(len(counts))).to(device)
        if self.name == "alrp":
            self.state["balance"] = L.ALRPSelfBalance()

    def num_logits(self, num_classes: int) -> int:
        """Classifier outputs per anchor."""
        if self.head == "sigmoid":
            return num_classes
        if self.head == "softmax":
            return num_classes + 1
        return _losses().bags_num_outputs(self.state["slice"])

    def bias_init(self, num_classes: int, prior: float = 0.01) -> Tensor | None:
        """Initial classifier bias giving every foreground class probability ``prior``.

        Grouped head: group 0's ``background`` logit ``log((1 - prior) / prior)`` above ``others``.
        Other heads: ``None`` (the model's own rule).
        """
        if self.head != "grouped":
            return None
        b = torch.zeros(self.num_logits(num_classes))
        start = int(self.state["slice"][0, 0])
        b[start + 1] = math.log((1 - prior) / prior)
        return b

    def class_logit_index(self) -> np.ndarray:
        """Index of each class's own logit in the head output (for weight-norm plots)."""
        C = self.state["C"]
        if self.head != "grouped":
            return np.arange(C)
        l2b, sl = self.state["l2b"].cpu().numpy(), self.state["slice"].numpy()
        idx = np.zeros(C, dtype=np.int64)
        for g in range(1, sl.shape[0]):
            for c in np.flatnonzero(l2b[g, :C] > 0):
                idx[c] = sl[g, 0] + l2b[g, c]
        return idx

    # --- training / inference -----------------------------------------------------------------
    def loss(self, logits: Tensor, labels: Tensor, ious: Tensor, num_pos: float, step: int) -> Tensor:
        """Classification loss of one batch (scalar)."""
        return self.fn(self, logits, labels, ious, num_pos, step)

    @torch.no_grad()
    def per_anchor_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Detached cross-entropy per anchor ``(N,)``, the hardness OHEM ranks by.

        Sigmoid heads: BCE summed over classes; softmax heads: softmax CE; grouped heads: the
        softmax CE of BAGS group 0 (background vs. ``others``).
        """
        C = self.state["C"]
        if self.head == "sigmoid":
            return F.binary_cross_entropy_with_logits(logits, _onehot(labels, C, logits.dtype), reduction="none").sum(1)
        if self.head == "softmax":
            return F.cross_entropy(logits, labels, reduction="none")
        start = int(self.state["slice"][0, 0])
        return F.cross_entropy(logits[:, start : start + 2], self.state["l2b"][0, labels], reduction="none")

    def scores(self, logits: Tensor) -> Tensor:
        """Per-class probabilities ``(A, C)`` from the head's logits ``(A, L)``."""
        if self.head == "sigmoid":
            return torch.sigmoid(logits)
        if self.head == "softmax":
            return torch.softmax(logits, dim=-1)[:, :-1]
        return _losses().bags_merge(logits, self.state["l2b"], self.state["slice"])[:, :-1]

    def end_epoch(self) -> None:
        """Epoch hook: aLRP's self-balance weight is updated from the epoch's mean losses."""
        if "balance" in self.state:
            self.state["balance"].end_epoch()

    def state_dict(self) -> dict:
        """Training state that must survive ``--resume`` (EQLv2 / Seesaw buffers, aLRP self-balance)."""
        out = {}
        m = self.state.get("module")
        if m is not None:
            out["module"] = {k: v.cpu() for k, v in m.state_dict().items()}
        if "balance" in self.state:
            out["balance"] = self.state["balance"].state_dict()
        return out

    def load_state_dict(self, sd: dict) -> None:
        """Restore :meth:`state_dict`."""
        m = self.state.get("module")
        if m is not None and sd.get("module"):
            m.load_state_dict(sd["module"])
        if "balance" in self.state and sd.get("balance"):
            self.state["balance"].load_state_dict(sd["balance"])


# ------------------------------------------------------------------------------------------------
# adapters
# ------------------------------------------------------------------------------------------------


def _sigmoid_ce(self, logits, labels, ious, num_pos, step):
    t = _onehot(labels, self.state["C"], logits.dtype)
    return _losses().sigmoid_ce(logits, t, reduction="sum") / num_pos


def _focal(self, logits, labels, ious, num_pos, step):
    t = _onehot(labels, self.state["C"], logits.dtype)
    return _losses().focal_loss(logits, t, alpha=0.25, gamma=2.0, reduction="sum") / num_pos


def _softmax_ce(self, logits, labels, ious, num_pos, step):
    return _losses().softmax_ce(logits, labels, reduction="sum") / num_pos


def _ecm(self, logits, labels, ious, num_pos, step):
    # ecm_loss returns sum_{i,c} weight_c BCE / B; rescale to the per-positive normalisation
    n = logits.shape[0]
    return _losses().ecm_loss(logits, labels, self.state["counts"], fg_bg_ratio=None) * n / num_pos


def _ecm_focal(self, logits, labels, ious, num_pos, step):
    # seed 003, supp. F: one-stage detectors keep the focal weight for fg-bg imbalance and use the
    # effective class-margins (Eq. 11) and detection weights for the fg-fg imbalance.
    L = _losses()
    mg = L.ecm_margins(self.state["counts"], None)
    shift = torch.as_tensor(mg["m_pos"] - mg["m_neg"], dtype=logits.dtype, device=logits.device)
    w = torch.as_tensor(mg["weight"], dtype=logits.dtype, device=logits.device)
    t = _onehot(labels, self.state["C"], logits.dtype)
    return (L.focal_loss(logits + shift, t, reduction="none") * w).sum() / num_pos


def _bags(self, logits, labels, ious, num_pos, step):
    g = torch.Generator().manual_seed(1_000_003 * (step + 1))
    return _losses().bags_loss(logits, labels, self.state["l2b"], self.state["slice"], beta=8.0, generator=g, reduction="sum") / num_pos


def _iou_targets(labels, ious, C, dtype):
    t = torch.zeros(labels.shape[0], C + 1, dtype=dtype, device=labels.device)
    t[torch.arange(labels.shape[0], device=labels.device), labels] = ious.to(dtype).clamp_min(1e-6)
    return t[:, :C]


def _rank_sort(self, logits, labels, ious, num_pos, step):
    t = _iou_targets(labels, ious, self.state["C"], logits.dtype)
    ranking, sorting = _losses().rank_sort_loss(logits.reshape(-1), t.reshape(-1), delta=0.5)
    return ranking + sorting


def _ap(self, logits, labels, ious, num_pos, step):
    t = _onehot(labels, self.state["C"], logits.dtype)
    return _losses().ap_loss(logits.reshape(-1), t.reshape(-1), delta=1.0)


def _iou_balanced(self, logits, labels, ious, num_pos, step):
    # seed 004's RetinaNet form: focal loss as the base, positives reweighted by IoU^eta (Eq. 2)
    t = _onehot(labels, self.state["C"], logits.dtype)
    return _losses().iou_balanced_cls(logits, t, ious.to(logits.dtype), eta=1.5, loss="focal", reduction="sum") / num_pos


def _ghm(self, logits, labels, ious, num_pos, step):
    # GHM-C normalises by the number of valid elements itself (weights average to one)
    t = _onehot(labels, self.state["C"], logits.dtype)
    return _losses().ghm_c(logits, t, bins=10, momentum=0.0, reduction="mean")


def _class_balanced(self, logits, labels, ious, num_pos, step):
    # class-balanced focal loss (Cui et al.: gamma 2, no alpha), background rows weight 1
    t = _onehot(labels, self.state["C"], logits.dtype)
    return _losses().class_balanced(logits, t, self.state["counts"], beta=0.999, loss="focal", reduction="sum") / num_pos


def _alrp(self, logits, labels, ious, num_pos, step, loc_errors=None):
    t = _onehot(labels, self.state["C"], logits.dtype)
    return _losses().alrp_loss(logits.reshape(-1), t.reshape(-1), loc_errors.reshape(-1), delta=1.0)


def _eqlv2(self, logits, labels, ious, num_pos, step):
    return self.state["module"](logits, labels, reduction="sum") / num_pos


def _seesaw(self, logits, labels, ious, num_pos, step):
    return self.state["module"](logits, labels, reduction="sum") / num_pos


_SPECS = [
    ("focal", "sigmoid", "sigmoid focal loss (alpha 0.25, gamma 2; RetinaNet default)", ("focal_loss",), _focal, False, False),
    ("ce", "sigmoid", "sigmoid cross-entropy over all anchors (alias sigmoid-ce)", ("sigmoid_ce",), _sigmoid_ce, False, False),
    ("sigmoid-ce", "sigmoid", "sigmoid cross-entropy over all anchors", ("sigmoid_ce",), _sigmoid_ce, False, False),
    ("softmax-ce", "softmax", "softmax cross-entropy with a background class", ("softmax_ce",), _softmax_ce, False, False),
    ("ecm", "sigmoid", "Effective Class-Margin loss, one-stage form (seed 003, Eqs. 10-11)", ("ecm_loss",), _ecm, False, False),
    ("ecm-focal", "sigmoid", "focal loss on ECM-shifted logits with ECM detection weights (seed 003, supp. F)", ("ecm_margins", "focal_loss"), _ecm_focal, False, False),
    ("bags", "grouped", "Balanced Group Softmax (seed 002, Eqs. 3-5, merge §4.4)", ("bags_loss", "bags_merge"), _bags, False, False),
    ("rs", "sigmoid", "Rank & Sort loss with RS self-balance (seed 001)", ("rank_sort_loss",), _rank_sort, True, True),
    ("ap", "sigmoid", "AP loss (delta 1), RS-style self-balance", ("ap_loss",), _ap, False, True),
    ("iou-balanced", "sigmoid", "IoU-balanced classification loss (seed 004, Eqs. 1-2, eta 1.5)", ("iou_balanced_cls",), _iou_balanced, True, False),
    ("alrp", "sigmoid", "aLRP loss (delta 1) with its localisation part and epoch self-balance; replaces --box-loss", ("alrp_loss", "ALRPSelfBalance"), _alrp, True, False),
    ("ghm-c", "sigmoid", "gradient harmonizing classification loss (bins 10)", ("ghm_c",), _ghm, False, False),
    ("class-balanced", "sigmoid", "class-balanced focal loss by effective number (beta 0.999)", ("class_balanced",), _class_balanced, False, False),
    ("eqlv2", "sigmoid", "Equalization Loss v2 (gamma 12, mu 0.8, alpha 4)", ("EQLv2",), _eqlv2, False, False),
    ("seesaw", "softmax", "Seesaw loss (p 0.8, q 2) with a background class", ("SeesawLoss",), _seesaw, False, False),
]


def cls_objectives() -> dict[str, ClsObjective]:
    """Available classification objectives by name (those whose loss the library exports)."""
    L = _losses()
    out = {}
    for name, head, desc, req, fn, uses_iou, bal in _SPECS:
        if all(hasattr(L, r) for r in req):
            out[name] = ClsObjective(name, head, desc, req, fn, uses_iou, bal)
    return out


def get_cls_objective(name: str) -> ClsObjective:
    """Objective for ``--loss NAME``; :class:`InputError` for an unknown name."""
    objs = cls_objectives()
    key = name.strip().lower().replace("_", "-")
    if key not in objs:
        raise InputError(f"unknown loss {name!r}: choose one of {', '.join(objs)}", record="--loss")
    return objs[key]


# ------------------------------------------------------------------------------------------------
# box losses
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoxObjective:
    """A regression objective: ``fn(pred_deltas, target_deltas, pred_boxes, target_boxes, ious) -> (P,)``."""

    name: str
    description: str
    requires: tuple[str, ...]
    fn: Callable

    def loss(self, pred_deltas, target_deltas, pred_boxes, target_boxes, ious) -> Tensor:
        """Per-positive loss ``(P,)``."""
        return self.fn(pred_deltas, target_deltas, pred_boxes, target_boxes, ious)


def _box_specs():
    L = _losses()
    return [
        ("giou", "GIoU loss on decoded boxes (survey Eq. 16)", ("giou_loss",), lambda pd, td, pb, tb, i: L.giou_loss(pb, tb)),
        ("diou", "DIoU loss on decoded boxes (survey Eq. 18)", ("diou_loss",), lambda pd, td, pb, tb, i: L.diou_loss(pb, tb)),
        ("ciou", "CIoU loss on decoded boxes (survey Eqs. 19-22)", ("ciou_loss",), lambda pd, td, pb, tb, i: L.ciou_loss(pb, tb)),
        ("l1", "L1 on (dx, dy, dw, dh) deltas", ("l1",), lambda pd, td, pb, tb, i: L.l1(pd, td).sum(1)),
        ("smooth-l1", "smooth L1 on deltas (beta 1/9)", ("smooth_l1",), lambda pd, td, pb, tb, i: L.smooth_l1(pd, td, beta=1.0 / 9).sum(1)),
        ("balanced-l1", "balanced L1 on deltas (alpha 0.5, gamma 1.5, beta 1; survey Eqs. 10-12)", ("balanced_l1",), lambda pd, td, pb, tb, i: L.balanced_l1(pd, td).sum(1)),
        ("iou", "-ln IoU loss on decoded boxes (survey Eq. 14)", ("iou_loss",), lambda pd, td, pb, tb, i: L.iou_loss(pb, tb)),
        ("bounded-iou", "bounded IoU loss on decoded boxes (survey Eqs. 15-17)", ("bounded_iou",), lambda pd, td, pb, tb, i: L.bounded_iou(pb, tb).sum(-1)),
        ("iou-balanced-l1", "IoU-balanced smooth L1 on deltas (seed 004, Eqs. 3-5, lambda 1.5)", ("iou_balanced_l1",), lambda pd, td, pb, tb, i: L.iou_balanced_l1(pd, td, i).reshape(pd.shape[0], -1).sum(1)),
    ]


def box_objectives() -> dict[str, BoxObjective]:
    """Available box objectives by name."""
    L = _losses()
    return {n: BoxObjective(n, d, r, f) for n, d, r, f in _box_specs() if all(hasattr(L, x) for x in r)}


def get_box_objective(name: str) -> BoxObjective:
    """Objective for ``--box-loss NAME``; :class:`InputError` for an unknown name."""
    objs = box_objectives()
    key = name.strip().lower().replace("_", "-")
    if key not in objs:
        raise InputError(f"unknown box loss {name!r}: choose one of {', '.join(objs)}", record="--box-loss")
    return objs[key]


# ------------------------------------------------------------------------------------------------
# samplers: which negatives enter the classification loss
# ------------------------------------------------------------------------------------------------

SAMPLER_NAMES = ("none", "random", "ohem", "iou-balanced")


def check_sampler(name: str) -> str:
    """Validate ``--sampler``; :class:`InputError` for an unknown name."""
    key = name.strip().lower().replace("_", "-")
    if key not in SAMPLER_NAMES:
        raise InputError(f"unknown sampler {name!r}: choose one of {', '.join(SAMPLER_NAMES)}", record="--sampler")
    return key


def sample_anchors(name: str, labels: Tensor, anchor_max_iou: Tensor, losses: Tensor | None, num_classes: int, generator: torch.Generator) -> Tensor:
    """Boolean mask over anchors (positives and negatives; ignored anchors already removed).

    ``none`` keeps every anchor (focal-style). The others keep all positives and draw
    negatives so that positives are ``0.25`` of the sample (at least 3 negatives per positive,
    SSD/Faster R-CNN practice): ``random`` uniformly, ``ohem`` the highest-loss negatives,
    ``iou-balanced`` evenly from IoU bins (survey §4.1.1). Uses the library's samplers.
    """
    if name == "none":
        return torch.ones_like(labels, dtype=torch.bool)
    L = _losses()
    pos = labels < num_classes
    if name == "random":
        return L.random_sampler(pos, positive_fraction=0.25, generator=generator)
    if name == "ohem":
        return L.ohem_sampler(pos, losses, positive_fraction=0.25)
    return L.iou_balanced_sampler(pos, anchor_max_iou, positive_fraction=0.25, generator=generator)
