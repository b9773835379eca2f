"""The detector's side of the loss registry: heads, targets and inputs for each ``--loss`` / ``--box-loss``.

Everything that differs between losses is data in :mod:`imbalance_cli.losses.registry`; this
module turns an entry into an objective for the one-stage head without branching on a name:

* the head (``sigmoid``: C logits per anchor; ``softmax``: C + 1, background last; ``grouped``:
  BAGS, C + N + 2 logits laid out by ``bags_pred_slice``) decides the number of logits, the bias
  initialisation, the OHEM hardness and how scores are read at inference (sigmoid, softmax
  without the background column, or the BAGS merge of Li et al., CVPR 2020, §4.4);
* the entry's ``needs`` decide which inputs are built (training counts, BAGS tables, IoU of the
  predicted boxes, differentiable localisation errors);
* the entry's state object (EQLv2 / Seesaw / GHM accumulators, aLRP self-balance, IoU-balanced
  L1's w_loc) is created per run and saved in the checkpoint;
* the entry's ``balance`` picks how the classification and box terms are combined.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from imbalance_cli.losses import adapters
from imbalance_cli.losses.longtail import bags_label2binlabel, bags_merge, bags_num_outputs, bags_pred_slice
from imbalance_cli.losses.registry import (
    CLASSIFICATION,
    SAMPLER_NAMES,
    LossEntry,
    check_options,
    check_sampler,
    get_box_loss,
    get_loss,
)
from imbalance_cli.losses.sampling import iou_balanced_sampler, ohem_sampler, random_sampler

__all__ = [
    "ClsObjective",
    "BoxObjective",
    "cls_objectives",
    "get_cls_objective",
    "get_box_objective",
    "resolve_objectives",
    "check_sampler",
    "sample_anchors",
    "SAMPLER_NAMES",
]


class ClsObjective:
    """A classification objective for the one-stage head, built from a registry entry."""

    def __init__(self, entry: LossEntry):
        self.entry = entry
        self.name = entry.name
        self.head = entry.head
        self.description = entry.description
        self.needs = entry.needs
        self.fn = entry.adapter_fn()
        self.combine_fn = adapters.COMBINE[entry.balance]
        self.counts: np.ndarray | None = None
        self.num_classes = 0
        self.tables = None
        self.state = None

    # --- set-up ---------------------------------------------------------------------------
    def prepare(self, counts: np.ndarray, device, iters_per_epoch: int | None = None) -> None:
        """Per-dataset set-up: counts, BAGS tables (grouped head), the loss's state object.

        ``iters_per_epoch``: the trainer's iterations per epoch, the period of a state that updates
        once per epoch of iterations (aLRP's self-balance, as its released head does).
        """
        self.counts = np.asarray(counts, dtype=np.float64)
        self.num_classes = int(len(counts))
        if self.head == "grouped":
            c = np.maximum(self.counts, 0)
            self.tables = (bags_label2binlabel(c).to(device), bags_pred_slice(c))
        self.state = self.entry.new_state(num_classes=self.num_classes, device=device, period=iters_per_epoch)

    def num_logits(self, num_classes: int) -> int:
        """Classifier outputs per anchor."""
        return {"sigmoid": num_classes, "softmax": num_classes + 1}.get(self.head) or bags_num_outputs(self.tables[1])

    def bias_init(self, num_classes: int, prior: float = 0.01) -> Tensor | None:
        """Initial classifier bias giving every foreground class probability ``prior``.

        Grouped head: group 0's ``background`` logit ``log((1 - prior) / prior)`` above ``others``.
        A loss that scores ``scale * f + shift`` (the entry's ``surrogate``, e.g. ECM): per class
        ``b = (logit(prior) - shift) / scale``, so the probability the loss scores starts at
        ``prior`` as RetinaNet's does (Lin et al., ICCV 2017, §4.1). Other heads: ``None`` (the
        model's own rule).
        """
        surrogate = self.entry.surrogate_fn()
        if surrogate is not None:
            scale, shift = surrogate(self.counts)
            return torch.as_tensor((math.log(prior / (1 - prior)) - shift) / scale, dtype=torch.float32)
        if self.head != "grouped":
            return None
        b = torch.zeros(self.num_logits(num_classes))
        b[int(self.tables[1][0, 0]) + 1] = math.log((1 - prior) / prior)
        return b

    def class_logit_index(self) -> np.ndarray:
        """Index of each class's own logit in the head output (for weight-norm plots)."""
        C = self.num_classes
        if self.head != "grouped":
            return np.arange(C)
        l2b, sl = self.tables[0].cpu().numpy(), self.tables[1].numpy()
        idx = np.zeros(C, dtype=np.int64)
        for g in range(1, sl.shape[0]):
            for c in np.flatnonzero(l2b[g, :C] > 0):
                idx[c] = sl[g, 0] + l2b[g, c]
        return idx

    # --- training / inference -----------------------------------------------------------------
    def inputs(
        self,
        logits: Tensor,
        labels: Tensor,
        num_pos: float,
        step: int,
        ious: Tensor | None = None,
        loc_errors: Tensor | None = None,
    ) -> adapters.LossInputs:
        """The adapter's inputs; only what the entry ``needs`` is filled in."""
        return adapters.LossInputs(
            logits=logits,
            labels=labels,
            num_classes=self.num_classes,
            num_pos=num_pos,
            step=step,
            counts=self.counts if "counts" in self.needs else None,
            ious=ious if "ious" in self.needs else None,
            loc_errors=loc_errors if "loc_errors" in self.needs else None,
            tables=self.tables if "tables" in self.needs else None,
        )

    def loss(self, inputs: adapters.LossInputs) -> tuple[Tensor, Tensor | None]:
        """``(cls, own_box)`` of one batch (``own_box`` only for losses with their own localisation term)."""
        return self.fn(self.state, inputs)

    def combine(self, cls: Tensor, box: Tensor, box_weight: float) -> Tensor:
        """The total loss by the entry's balance policy."""
        return self.combine_fn(self.state, cls, box, box_weight)

    @torch.no_grad()
    def per_anchor_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Detached cross-entropy per anchor ``(N,)``, the hardness OHEM ranks by.

        Sigmoid heads: BCE summed over classes; softmax heads: softmax CE; grouped heads: the
        softmax CE of BAGS group 0 (background vs. ``others``).
        """
        if self.head == "sigmoid":
            t = adapters.onehot(labels, self.num_classes, logits.dtype)
            return F.binary_cross_entropy_with_logits(logits, t, reduction="none").sum(1)
        if self.head == "softmax":
            return F.cross_entropy(logits, labels, reduction="none")
        start = int(self.tables[1][0, 0])
        return F.cross_entropy(logits[:, start : start + 2], self.tables[0][0, labels], reduction="none")

    def scores(self, logits: Tensor) -> Tensor:
        """Per-class probabilities ``(A, C)`` from the head's logits ``(A, L)``."""
        if self.head == "sigmoid":
            return torch.sigmoid(logits)
        if self.head == "softmax":
            return torch.softmax(logits, dim=-1)[:, :-1]
        return bags_merge(logits, self.tables[0], self.tables[1])[:, :-1]

    def end_epoch(self) -> None:
        """Epoch hook of the state object (aLRP's self-balance weight)."""
        if self.state is not None:
            self.state.end_epoch()

    def state_dict(self) -> dict:
        """State that must survive ``--resume`` (tensors and plain types)."""
        return self.state.state_dict() if self.state is not None else {}

    def load_state_dict(self, sd: dict) -> None:
        """Restore :meth:`state_dict`."""
        if self.state is not None:
            self.state.load_state_dict(sd)


class BoxObjective:
    """A box regression objective built from a registry entry (with its state object, if any)."""

    def __init__(self, entry: LossEntry, device="cpu"):
        self.entry = entry
        self.name = entry.name
        self.description = entry.description
        self.fn = entry.adapter_fn()
        self.state = entry.new_state(device=device)

    def loss(self, pred_deltas, target_deltas, pred_boxes, target_boxes, ious, num_pos: float) -> Tensor:
        """Normalised box term of the positives."""
        return self.fn(self.state, pred_deltas, target_deltas, pred_boxes, target_boxes, ious, num_pos)

    def state_dict(self) -> dict:
        """State that must survive ``--resume``."""
        return self.state.state_dict() if self.state is not None else {}

    def load_state_dict(self, sd: dict) -> None:
        """Restore :meth:`state_dict`."""
        if self.state is not None:
            self.state.load_state_dict(sd)


def cls_objectives() -> dict[str, LossEntry]:
    """The classification registry (name -> entry)."""
    return dict(CLASSIFICATION)


def get_cls_objective(name) -> ClsObjective:
    """Objective for ``--loss NAME``; :class:`InputError` for an unknown name."""
    return ClsObjective(get_loss(name))


def get_box_objective(name, device="cpu") -> BoxObjective:
    """Objective for ``--box-loss NAME``; :class:`InputError` for an unknown name."""
    return BoxObjective(get_box_loss(name), device)


def resolve_objectives(loss, box_loss=None, device="cpu") -> tuple[ClsObjective, BoxObjective | None]:
    """Both objectives of a run; ``--box-loss`` with a loss that has its own localisation term is an InputError."""
    entry, box_entry = check_options(loss, box_loss)
    return ClsObjective(entry), (BoxObjective(box_entry, device) if box_entry is not None else None)


_SAMPLERS = {
    "random": lambda pos, iou, losses, gen: random_sampler(pos, positive_fraction=0.25, generator=gen),
    "ohem": lambda pos, iou, losses, gen: ohem_sampler(pos, losses, positive_fraction=0.25),
    "iou-balanced": lambda pos, iou, losses, gen: iou_balanced_sampler(pos, iou, positive_fraction=0.25, generator=gen),
}


def sample_anchors(
    name: str,
    labels: Tensor,
    anchor_max_iou: Tensor,
    losses: Tensor | None,
    num_classes: int,
    generator: torch.Generator,
) -> Tensor:
    """Boolean mask over anchors (positives and negatives; ignored anchors already removed).

    ``none`` keeps every anchor (focal-style). The others keep all positives and draw
    negatives so that positives are ``0.25`` of the sample (at least 3 negatives per positive,
    SSD/Faster R-CNN practice): ``random`` uniformly, ``ohem`` the highest-loss negatives,
    ``iou-balanced`` evenly from IoU bins (Oksuz et al., TPAMI 2021, §4.1.1).
    """
    if name == "none":
        return torch.ones_like(labels, dtype=torch.bool)
    return _SAMPLERS[name](labels < num_classes, anchor_max_iou, losses, generator)
