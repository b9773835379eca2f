"""The one loss registry: a plain dict per kind, one entry per CLI name (detectron2-style registry).

Every caller reads this table and nothing else: ``imbalance train`` / ``imbalance bench`` (the
objective built from an entry), the CLI help and its Enum choices (:data:`LossName`,
:data:`BoxLossName`, :data:`SamplerName`), ``imbalance_cli.losses.CLASSIFICATION_LOSSES`` /
``REGRESSION_LOSSES`` and the tests. No caller branches on a loss name: what differs between
losses is data in the entry:

* ``head``: the classifier a classification loss needs -- ``sigmoid`` (C logits per anchor),
  ``softmax`` (C + 1, background last) or ``grouped`` (BAGS, C + N + 2 logits);
* ``needs``: the inputs the adapter reads besides logits and labels -- ``counts`` (training
  instances per class), ``ious`` (IoU of each positive's predicted box, detached), ``loc_errors``
  (differentiable localisation errors of the positives), ``tables`` (BAGS group tables);
* ``state``: the class of the loss's state object (EQLv2 and Seesaw accumulators, GHM moving
  counts, aLRP self-balance, IoU-balanced L1's w_loc), built per run and saved in checkpoints;
* ``balance``: how the classification and box terms are combined -- ``weighted``
  (``cls + box_weight * box``), ``value`` (RS self-balance, ``λ = L_cls / L_box`` per iteration)
  or ``state`` (the state object combines them, e.g. aLRP's epoch self-balance);
* ``box_loss``: whether ``--box-loss`` applies (aLRP brings its own localisation term);
* ``baseline``: the loss the paper compares against with the same head (``imbalance bench``);
* ``surrogate``: for losses that score an affine function of the raw logit (ECM's ``2 f + m+ - m-``),
  the adapter function ``counts -> (scale, shift)`` per class; the detector starts the classifier
  bias so that the *scored* probability is the prior (RetinaNet's prior initialisation, Lin et al.,
  ICCV 2017, §4.1, applied to what the loss sees);
* ``library`` / ``adapter``: the library function (:mod:`imbalance_cli.losses`) and the
  detector adapter (:mod:`imbalance_cli.losses.adapters`) that applies it to anchors.

This module imports neither torch nor the loss modules, so ``imbalance --help`` stays fast; an
entry's functions are resolved on first use (:meth:`LossEntry.function`, :meth:`LossEntry.adapter_fn`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from imbalance_cli.choices import Choice
from imbalance_cli.errors import InputError

__all__ = [
    "LossEntry",
    "CLASSIFICATION",
    "BOX",
    "SAMPLER_NAMES",
    "LossName",
    "BoxLossName",
    "SamplerName",
    "get_loss",
    "get_box_loss",
    "check_sampler",
    "check_options",
]

HEADS = ("sigmoid", "softmax", "grouped")
NEEDS = ("counts", "ious", "loc_errors", "tables")
BALANCES = ("weighted", "value", "state")


@dataclass(frozen=True)
class LossEntry:
    """One registry row (see the module docstring for the fields)."""

    name: str
    kind: str  # "cls" | "box"
    description: str
    citation: str
    library: str  # attribute of imbalance_cli.losses
    adapter: str  # attribute of imbalance_cli.losses.adapters
    head: str | None = None
    needs: frozenset = field(default_factory=frozenset)
    state: str | None = None  # class in imbalance_cli.losses.adapters
    balance: str = "weighted"
    box_loss: bool = True
    baseline: str | None = None
    surrogate: str | None = None  # function in imbalance_cli.losses.adapters

    def __post_init__(self):
        if self.kind == "cls" and self.head not in HEADS:
            raise ValueError(f"{self.name}: head must be one of {HEADS}")
        if not set(self.needs) <= set(NEEDS):
            raise ValueError(f"{self.name}: unknown needs {set(self.needs) - set(NEEDS)}")
        if self.balance not in BALANCES:
            raise ValueError(f"{self.name}: balance must be one of {BALANCES}")

    def function(self):
        """The library loss function (imports torch on first use)."""
        return getattr(importlib.import_module("imbalance_cli.losses"), self.library)

    def adapter_fn(self):
        """The detector adapter ``(state, inputs) -> loss`` (imports torch on first use)."""
        return getattr(importlib.import_module("imbalance_cli.losses.adapters"), self.adapter)

    def surrogate_fn(self):
        """``counts -> (scale, shift)`` of the scored logit ``scale * f + shift``, or ``None``."""
        if self.surrogate is None:
            return None
        return getattr(importlib.import_module("imbalance_cli.losses.adapters"), self.surrogate)

    def new_state(self, **context):
        """A fresh state object for one run (``None`` when the loss is stateless)."""
        if self.state is None:
            return None
        return getattr(importlib.import_module("imbalance_cli.losses.adapters"), self.state)(**context)


def _cls(
    name,
    head,
    description,
    citation,
    library,
    adapter,
    needs=(),
    state=None,
    balance="weighted",
    box_loss=True,
    baseline=None,
    surrogate=None,
) -> LossEntry:
    return LossEntry(
        name,
        "cls",
        description,
        citation,
        library,
        adapter,
        head,
        frozenset(needs),
        state,
        balance,
        box_loss,
        baseline,
        surrogate,
    )


def _box(name, description, citation, library, adapter, needs=(), state=None) -> LossEntry:
    return LossEntry(name, "box", description, citation, library, adapter, None, frozenset(needs), state)


_FOCAL = "Lin et al., Focal Loss for Dense Object Detection, ICCV 2017, Eq. 5"
_SURVEY = "Oksuz et al., Imbalance Problems in Object Detection: A Review, TPAMI 2021"
_ECM = "Cho & Krähenbühl, Long-tail Detection with Effective Class-Margins, ECCV 2022, Eqs. 8, 10-11"
_BAGS = (
    "Li et al., Overcoming Classifier Imbalance for Long-tail Object Detection with Balanced Group Softmax, CVPR 2020, "
    "Eqs. 3-5"
)
_RS = "Oksuz et al., Rank & Sort Loss for Object Detection and Instance Segmentation, ICCV 2021, Eqs. 7-8, supp. S1-S17"
_AP = "Chen et al., Towards Accurate One-Stage Object Detection with AP-Loss, CVPR 2019"
_ALRP = "Oksuz et al., A Ranking-based, Balanced Loss Function Unifying Classification and Localisation, NeurIPS 2020"
_IOUB = "Wu et al., IoU-balanced Loss Functions for Single-stage Object Detection, Pattern Recognition Letters 2022"
_GHM = "Li et al., Gradient Harmonized Single-stage Detector, AAAI 2019"
_CB = "Cui et al., Class-Balanced Loss Based on Effective Number of Samples, CVPR 2019, Eqs. 4-5"
_EQL = "Tan et al., Equalization Loss v2, CVPR 2021, Eqs. 5-7"
_SEESAW = "Wang et al., Seesaw Loss for Long-Tailed Instance Segmentation, CVPR 2021, Eqs. 2-5"

#: Classification losses by ``--loss`` name.
CLASSIFICATION: dict[str, LossEntry] = {
    e.name: e
    for e in [
        _cls(
            "focal",
            "sigmoid",
            "sigmoid focal loss (alpha 0.25, gamma 2; RetinaNet default)",
            _FOCAL,
            "focal_loss",
            "cls_focal",
        ),
        _cls(
            "sigmoid-ce",
            "sigmoid",
            "sigmoid cross-entropy over all anchors",
            _SURVEY + ", Eq. 2",
            "sigmoid_ce",
            "cls_sigmoid_ce",
        ),
        _cls(
            "ce",
            "sigmoid",
            "sigmoid cross-entropy over all anchors (alias of sigmoid-ce)",
            _SURVEY + ", Eq. 2",
            "sigmoid_ce",
            "cls_sigmoid_ce",
        ),
        _cls(
            "softmax-ce",
            "softmax",
            "softmax cross-entropy with a background class",
            _SURVEY + ", Eq. 2",
            "softmax_ce",
            "cls_softmax_ce",
        ),
        _cls(
            "ecm",
            "sigmoid",
            "Effective Class-Margin loss, sigmoid head (official parametrisation sigmoid(2f + m+ - m-))",
            _ECM,
            "ecm_loss",
            "cls_ecm",
            needs=("counts",),
            baseline="sigmoid-ce",
            surrogate="ecm_surrogate",
        ),
        _cls(
            "ecm-focal",
            "sigmoid",
            "focal loss on the ECM surrogate with ECM detection weights (one-stage form)",
            _ECM + ", supp. F",
            "ecm_margins",
            "cls_ecm_focal",
            needs=("counts",),
            baseline="focal",
            surrogate="ecm_surrogate",
        ),
        _cls(
            "bags",
            "grouped",
            "Balanced Group Softmax (beta 8, per-group mean; merge §4.4)",
            _BAGS,
            "bags_loss",
            "cls_bags",
            needs=("counts", "tables"),
            baseline="softmax-ce",
        ),
        _cls(
            "rs",
            "sigmoid",
            "Rank & Sort loss (delta 0.5) with RS value-based self-balance",
            _RS,
            "rank_sort_loss",
            "cls_rank_sort",
            needs=("ious",),
            balance="value",
            baseline="focal",
        ),
        _cls(
            "ap",
            "sigmoid",
            "AP loss (delta 1, interpolated as the released APLoss), value-based self-balance",
            _AP,
            "ap_loss",
            "cls_ap",
            balance="value",
            baseline="focal",
        ),
        _cls(
            "iou-balanced",
            "sigmoid",
            "IoU-balanced classification loss on focal (eta 1.5)",
            _IOUB + ", Eqs. 1-2",
            "iou_balanced_cls",
            "cls_iou_balanced",
            needs=("ious",),
            baseline="focal",
        ),
        _cls(
            "alrp",
            "sigmoid",
            "aLRP loss (delta 1) with its own localisation term and epoch self-balance",
            _ALRP,
            "alrp_loss",
            "cls_alrp",
            needs=("loc_errors",),
            state="ALRPState",
            balance="state",
            box_loss=False,
            baseline="focal",
        ),
        _cls(
            "ghm-c",
            "sigmoid",
            "gradient harmonizing classification loss (30 bins, momentum 0.75)",
            _GHM + ", Eqs. 3-8",
            "ghm_c",
            "cls_ghm_c",
            state="GHMCState",
            baseline="focal",
        ),
        _cls(
            "class-balanced",
            "sigmoid",
            "class-balanced focal loss by effective number (beta 0.999)",
            _CB,
            "class_balanced",
            "cls_class_balanced",
            needs=("counts",),
            baseline="focal",
        ),
        _cls(
            "eqlv2",
            "sigmoid",
            "Equalization Loss v2 (gamma 12, mu 0.8, alpha 4; weights 1 at start)",
            _EQL,
            "eqlv2",
            "cls_eqlv2",
            needs=("counts",),
            state="EQLv2State",
            baseline="sigmoid-ce",
        ),
        _cls(
            "seesaw",
            "softmax",
            "Seesaw loss (p 0.8, q 2) with a background class",
            _SEESAW,
            "seesaw",
            "cls_seesaw",
            needs=("counts",),
            state="SeesawState",
            baseline="softmax-ce",
        ),
    ]
}

#: Box regression losses by ``--box-loss`` name.
BOX: dict[str, LossEntry] = {
    e.name: e
    for e in [
        _box(
            "giou",
            "GIoU loss on decoded boxes",
            "Rezatofighi et al., Generalized Intersection over Union, CVPR 2019",
            "giou_loss",
            "box_giou",
        ),
        _box(
            "diou", "DIoU loss on decoded boxes", "Zheng et al., Distance-IoU Loss, AAAI 2020", "diou_loss", "box_diou"
        ),
        _box(
            "ciou", "CIoU loss on decoded boxes", "Zheng et al., Distance-IoU Loss, AAAI 2020", "ciou_loss", "box_ciou"
        ),
        _box("l1", "L1 on (dx, dy, dw, dh) deltas", _SURVEY + ", §6.2", "l1", "box_l1"),
        _box(
            "smooth-l1",
            "smooth L1 on deltas (beta 1/9)",
            "Girshick, Fast R-CNN, ICCV 2015, Eq. 3",
            "smooth_l1",
            "box_smooth_l1",
        ),
        _box(
            "balanced-l1",
            "balanced L1 on deltas (alpha 0.5, gamma 1.5, beta 1; mmdetection's form)",
            "Pang et al., Libra R-CNN, CVPR 2019, Eqs. 7-9",
            "balanced_l1",
            "box_balanced_l1",
        ),
        _box("iou", "-ln IoU loss on decoded boxes", "Yu et al., UnitBox, ACM MM 2016", "iou_loss", "box_iou"),
        _box(
            "bounded-iou",
            "bounded IoU loss on decoded boxes",
            "Tychsen-Smith & Petersson, Improving Object Localization with Fitness NMS and Bounded IoU Loss, CVPR 2018",
            "bounded_iou",
            "box_bounded_iou",
        ),
        _box(
            "iou-balanced-l1",
            "IoU-balanced smooth L1 on deltas (lambda 1.5, Eq. 4: w_loc fixed at the first step)",
            _IOUB + ", Eqs. 3-4",
            "iou_balanced_l1",
            "box_iou_balanced_l1",
            needs=("ious",),
            state="IoUBalancedL1State",
        ),
        _box(
            "ghm-r",
            "GHM-R: ASL1 (mu 0.02) with gradient-density weights (10 bins, momentum 0.7)",
            _GHM + ", Eqs. 9-12",
            "ghm_r",
            "box_ghm_r",
            state="GHMRState",
        ),
    ]
}

#: ``--sampler`` names (functions in :data:`imbalance_cli.losses.SAMPLERS`).
SAMPLER_NAMES: tuple[str, ...] = ("none", "random", "ohem", "iou-balanced")

#: Default ``--box-loss`` for losses that take one.
DEFAULT_BOX_LOSS = "giou"

LossName = Choice("LossName", {n: n for n in CLASSIFICATION})
LossName.__doc__ = "``--loss`` choices (the keys of :data:`CLASSIFICATION`)."
BoxLossName = Choice("BoxLossName", {n: n for n in BOX})
BoxLossName.__doc__ = "``--box-loss`` choices (the keys of :data:`BOX`)."
SamplerName = Choice("SamplerName", {n: n for n in SAMPLER_NAMES})
SamplerName.__doc__ = "``--sampler`` choices."


def _key(name) -> str:
    name = getattr(name, "value", name)
    return str(name).strip().lower().replace("_", "-")


def get_loss(name) -> LossEntry:
    """Entry for ``--loss NAME``; :class:`InputError` (exit 2) for an unknown name."""
    key = _key(name)
    if key not in CLASSIFICATION:
        raise InputError(f"unknown loss {name!r}: choose one of {', '.join(CLASSIFICATION)}", record="--loss")
    return CLASSIFICATION[key]


def get_box_loss(name) -> LossEntry:
    """Entry for ``--box-loss NAME``; :class:`InputError` (exit 2) for an unknown name."""
    key = _key(name)
    if key not in BOX:
        raise InputError(f"unknown box loss {name!r}: choose one of {', '.join(BOX)}", record="--box-loss")
    return BOX[key]


def check_sampler(name) -> str:
    """Validate ``--sampler``; :class:`InputError` for an unknown name."""
    key = _key(name)
    if key not in SAMPLER_NAMES:
        raise InputError(f"unknown sampler {name!r}: choose one of {', '.join(SAMPLER_NAMES)}", record="--sampler")
    return key


def check_options(loss, box_loss=None) -> tuple[LossEntry, LossEntry | None]:
    """Resolve ``--loss`` and ``--box-loss`` together.

    Returns ``(loss entry, box entry)``; the box entry is ``None`` for a loss that brings its own
    localisation term (``box_loss=False`` in its entry), and giving ``--box-loss`` to such a loss
    is an :class:`InputError` rather than a recorded, ignored setting.
    """
    entry = get_loss(loss)
    if not entry.box_loss:
        if box_loss is not None:
            raise InputError(
                f"--loss {entry.name} has its own localisation term; --box-loss cannot be used with it",
                record="--box-loss",
            )
        return entry, None
    return entry, get_box_loss(DEFAULT_BOX_LOSS if box_loss is None else box_loss)
