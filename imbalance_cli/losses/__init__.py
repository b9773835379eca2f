"""imbalance_cli.losses — imbalance-aware detection losses in pure PyTorch.

Each loss is a documented function citing its paper and equation, usable in any training loop;
stateful long-tail losses (EQLv2, Seesaw, GHM-C with momentum) also come as small ``nn.Module``
wrappers. ``CLASSIFICATION_LOSSES``, ``REGRESSION_LOSSES`` and ``SAMPLERS`` map names to
functions (a plain-dict registry; names use hyphens like the CLI).
"""

from imbalance_cli.losses.balancing import ALRPSelfBalance, fixed_weights, guided_loss, self_balance
from imbalance_cli.losses.classification import (
    GHMC,
    ghm_bin_weights,
    ghm_edges,
    focal_loss,
    ghm_c,
    iou_balanced_cls,
    reduce_loss,
    sigmoid_ce,
    softmax_ce,
)
from imbalance_cli.losses.longtail import (
    EQLv2,
    SeesawLoss,
    bags_label2binlabel,
    bags_loss,
    bags_merge,
    bags_num_outputs,
    bags_pred_slice,
    class_balanced,
    class_balanced_weights,
    ecm_loss,
    ecm_margins,
    eqlv2,
    eqlv2_weights,
    seesaw,
)
from imbalance_cli.losses.ranking import alrp_loss, ap_loss, rank_sort_loss, smoothed_step
from imbalance_cli.losses.regression import (
    balanced_l1,
    bounded_iou,
    ciou_loss,
    GHMR,
    decode_deltas,
    ghm_r,
    diou_loss,
    encode_deltas,
    giou_loss,
    iou_balanced_l1,
    iou_loss,
    l1,
    smooth_l1,
)
from imbalance_cli.losses.sampling import (
    iou_balanced_sampler,
    none_sampler,
    ohem_sampler,
    random_sampler,
    sample_sizes,
)

CLASSIFICATION_LOSSES = {
    "sigmoid-ce": sigmoid_ce,
    "softmax-ce": softmax_ce,
    "focal": focal_loss,
    "ghm-c": ghm_c,
    "class-balanced": class_balanced,
    "eqlv2": eqlv2,
    "seesaw": seesaw,
    "iou-balanced": iou_balanced_cls,
    "ap": ap_loss,
    "alrp": alrp_loss,
    "rs": rank_sort_loss,
    "ecm": ecm_loss,
    "bags": bags_loss,
}

REGRESSION_LOSSES = {
    "l1": l1,
    "smooth-l1": smooth_l1,
    "balanced-l1": balanced_l1,
    "iou": iou_loss,
    "bounded-iou": bounded_iou,
    "giou": giou_loss,
    "diou": diou_loss,
    "ciou": ciou_loss,
    "iou-balanced-l1": iou_balanced_l1,
}

SAMPLERS = {
    "none": none_sampler,
    "random": random_sampler,
    "ohem": ohem_sampler,
    "iou-balanced": iou_balanced_sampler,
}

__all__ = [
    "CLASSIFICATION_LOSSES",
    "REGRESSION_LOSSES",
    "SAMPLERS",
    # classification
    "reduce_loss",
    "sigmoid_ce",
    "softmax_ce",
    "focal_loss",
    "ghm_c",
    "GHMC",
    "ghm_bin_weights",
    "ghm_edges",
    "ghm_r",
    "GHMR",
    "iou_balanced_cls",
    # ranking
    "rank_sort_loss",
    "ap_loss",
    "alrp_loss",
    "smoothed_step",
    # long tail
    "ecm_margins",
    "ecm_loss",
    "bags_label2binlabel",
    "bags_pred_slice",
    "bags_num_outputs",
    "bags_loss",
    "bags_merge",
    "class_balanced_weights",
    "class_balanced",
    "eqlv2_weights",
    "eqlv2",
    "EQLv2",
    "seesaw",
    "SeesawLoss",
    # regression
    "encode_deltas",
    "decode_deltas",
    "l1",
    "smooth_l1",
    "balanced_l1",
    "iou_loss",
    "bounded_iou",
    "giou_loss",
    "diou_loss",
    "ciou_loss",
    "iou_balanced_l1",
    # task balancing
    "fixed_weights",
    "self_balance",
    "guided_loss",
    "ALRPSelfBalance",
    # samplers
    "none_sampler",
    "random_sampler",
    "ohem_sampler",
    "iou_balanced_sampler",
    "sample_sizes",
]
