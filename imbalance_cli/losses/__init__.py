"""imbalance_cli.losses — imbalance-aware detection losses in pure PyTorch.

Each loss is a documented function citing its paper and equation, usable in any training loop;
stateful losses (EQLv2, Seesaw, GHM-C and GHM-R with momentum) also come as small ``nn.Module``
wrappers. The one registry of names lives in :mod:`imbalance_cli.losses.registry` (torch-free);
``CLASSIFICATION_LOSSES`` and ``REGRESSION_LOSSES`` here are views of it (name -> library
function), ``SAMPLERS`` maps sampler names to functions.

The package imports its torch-based modules on first attribute access (PEP 562), so the registry
and :mod:`imbalance_cli.losses.grouping` can be imported without loading torch (``imbalance --help``).
"""

from __future__ import annotations

import importlib

from imbalance_cli.losses.registry import BOX, CLASSIFICATION, SAMPLER_NAMES

_MODULE_OF = {
    "ALRPSelfBalance": "balancing",
    "fixed_weights": "balancing",
    "guided_loss": "balancing",
    "self_balance": "balancing",
    "GHMC": "classification",
    "ghm_bin_weights": "classification",
    "ghm_edges": "classification",
    "focal_loss": "classification",
    "ghm_c": "classification",
    "iou_balanced_cls": "classification",
    "reduce_loss": "classification",
    "sigmoid_ce": "classification",
    "softmax_ce": "classification",
    "EQLv2": "longtail",
    "SeesawLoss": "longtail",
    "bags_label2binlabel": "longtail",
    "bags_loss": "longtail",
    "bags_merge": "longtail",
    "bags_num_outputs": "longtail",
    "bags_pred_slice": "longtail",
    "class_balanced": "longtail",
    "class_balanced_weights": "longtail",
    "ecm_loss": "longtail",
    "ecm_margins": "longtail",
    "eqlv2": "longtail",
    "eqlv2_weights": "longtail",
    "seesaw": "longtail",
    "alrp_loss": "ranking",
    "ap_loss": "ranking",
    "rank_sort_loss": "ranking",
    "smoothed_step": "ranking",
    "balanced_l1": "regression",
    "bounded_iou": "regression",
    "ciou_loss": "regression",
    "GHMR": "regression",
    "decode_deltas": "regression",
    "ghm_r": "regression",
    "diou_loss": "regression",
    "encode_deltas": "regression",
    "giou_loss": "regression",
    "iou_balanced_l1": "regression",
    "iou_loss": "regression",
    "l1": "regression",
    "smooth_l1": "regression",
    "iou_balanced_sampler": "sampling",
    "none_sampler": "sampling",
    "ohem_sampler": "sampling",
    "random_sampler": "sampling",
    "sample_sizes": "sampling",
}


def _build(name: str):
    if name == "CLASSIFICATION_LOSSES":
        return {n: e.function() for n, e in CLASSIFICATION.items()}
    if name == "REGRESSION_LOSSES":
        return {n: e.function() for n, e in BOX.items()}
    if name == "SAMPLERS":
        sampling = importlib.import_module("imbalance_cli.losses.sampling")
        fns = {
            "none": sampling.none_sampler,
            "random": sampling.random_sampler,
            "ohem": sampling.ohem_sampler,
            "iou-balanced": sampling.iou_balanced_sampler,
        }
        return {n: fns[n] for n in SAMPLER_NAMES}
    raise AttributeError(name)


def __getattr__(name: str):
    """Import the module holding ``name`` on first access (keeps ``import imbalance_cli.losses.registry``
    torch-free)."""
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(f"imbalance_cli.losses.{_MODULE_OF[name]}"), name)
    elif name in ("CLASSIFICATION_LOSSES", "REGRESSION_LOSSES", "SAMPLERS"):
        value = _build(name)
    else:
        raise AttributeError(f"module 'imbalance_cli.losses' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


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
