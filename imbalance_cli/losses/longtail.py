"""Long-tail (foreground-foreground class imbalance) losses.

* ECM, Effective Class-Margins (Cho & Krähenbühl, "Long-tail Detection with Effective Class-Margins",
  ECCV 2022, Eqs. 8, 10, 11, supp. F);
* BAGS, Balanced Group Softmax (Li et al., "Overcoming Classifier Imbalance for Long-tail Object
  Detection with Balanced Group Softmax", CVPR 2020, §4, Eqs. 3-5);
* class-balanced loss by effective number (Cui et al., CVPR 2019);
* EQLv2, gradient-guided reweighting (Tan et al., CVPR 2021);
* Seesaw loss (Wang et al., CVPR 2021).

Class indices are rows of the dataset's category table (0..C-1, ascending category id); the
background, where a head has one, is index C.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imbalance_cli.losses.classification import reduce_loss, sigmoid_ce
from imbalance_cli.losses.grouping import DEFAULT_BAGS_EDGES, bags_groups

__all__ = [
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
]


def _as_counts(counts, name: str = "counts") -> np.ndarray:
    if isinstance(counts, Tensor):
        counts = counts.detach().cpu().numpy()
    arr = np.asarray(counts, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of per-class instance counts")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and non-negative")
    return arr


# ----------------------------------------------------------------------------------------- ECM


def ecm_margins(
    counts: Sequence[float] | np.ndarray | Tensor, fg_bg_ratio: float | None = None
) -> dict[str, np.ndarray]:
    """Effective class-margins and detection weights from instance counts (Cho & Krähenbühl, ECCV 2022, Eq. 8, supp. F).

    ``counts`` are the C foreground training-instance counts. With ``fg_bg_ratio`` r (two-stage
    heads) a background channel is appended with count ``n_bg = r * sum(counts)`` (supp. Eq. 35);
    with ``None`` (one-stage heads) only the foreground classes are counted (supp. F, last
    sentence). For every channel c (supp. Eqs. 36-37)::

        n+ = n_c,  n- = sum(all n, background included) - n_c
        γ+ = n-^(1/4) / (n+^(1/4) + n-^(1/4)),  γ- = n+^(1/4) / (n+^(1/4) + n-^(1/4))   (Eq. 8)
        w± = 1 / γ±,  m± = log w±                                                     (Eq. 11)
        weight = a log((1 + a) / a),  a = n- / n+   (detection weight m_c, §4.1 lower bound)

    The detection weight is computed in float64 (``a log1p(1 / a)``). The authors' code
    (janghyuncho/ECM-Loss, ``ecm_utils.get_detection_weight``) computes ``a log((1 + a) / a)`` in
    float32, where ``(1 + a) / a`` rounds for large ``a = n- / n+``: on LVIS v1 train counts with the
    two-stage ratio 6.3313 its weights are 11.0% off for every class with 1-5 instances (exact value
    ~1.0, theirs ~1.11), 6.0% at most one-stage; we keep the exact value (the tests hold the authors'
    code run in float64 to 1e-5, and state the float32 gap). A class with zero instances is counted
    as one so the margins stay finite. Returns float64
    numpy arrays of length C (or C + 1, background last) under the keys ``n_pos, n_neg,
    gamma_pos, gamma_neg, w_pos, w_neg, m_pos, m_neg, weight``.
    """
    n = _as_counts(counts)
    if fg_bg_ratio is not None:
        if not np.isfinite(fg_bg_ratio) or fg_bg_ratio <= 0:
            raise ValueError(f"fg_bg_ratio must be a positive number, got {fg_bg_ratio}")
        n = np.concatenate([n, [fg_bg_ratio * n.sum()]])
    n_pos = np.maximum(n, 1.0)
    n_neg = n_pos.sum() - n_pos
    if np.any(n_neg <= 0):
        raise ValueError("ECM margins need at least two channels with instances (n- would be 0)")
    q_pos, q_neg = n_pos**0.25, n_neg**0.25
    gamma_pos = q_neg / (q_pos + q_neg)
    gamma_neg = q_pos / (q_pos + q_neg)
    w_pos, w_neg = 1.0 / gamma_pos, 1.0 / gamma_neg
    a = n_neg / n_pos
    weight = a * np.log1p(1.0 / a)
    return {
        "n_pos": n_pos,
        "n_neg": n_neg,
        "gamma_pos": gamma_pos,
        "gamma_neg": gamma_neg,
        "w_pos": w_pos,
        "w_neg": w_neg,
        "m_pos": np.log(w_pos),
        "m_neg": np.log(w_neg),
        "weight": weight,
    }


def ecm_loss(
    logits: Tensor,
    labels: Tensor,
    counts: Sequence[float] | np.ndarray | Tensor,
    fg_bg_ratio: float | None = None,
) -> Tensor:
    """Effective Class-Margin loss (Cho & Krähenbühl, ECCV 2022, Eqs. 10-11), summed over
    boxes and channels, divided by B.

    ``logits`` ``(B, C + 1)`` with the background in the last column and ``labels`` in ``0..C``
    (C = background) when ``fg_bg_ratio`` is given (two-stage heads; the authors' default ratio
    is 6.3313); ``logits`` ``(B, C)`` and label C meaning "no class" (all channels negative) when
    ``fg_bg_ratio`` is None (one-stage). ``counts`` are the C foreground instance counts;
    margins and detection weights come from :func:`ecm_margins`.

    Surrogate score (Eq. 11) on the raw logit ``f``, exactly as the authors' released code
    (``EffectiveClassMarginLoss``)::

        ŝ_c = w+ e^f / (w+ e^f + w- e^-f) = sigmoid(2 f + m+ - m-),   m± = log w±

    and the loss (Eq. 10) is ``sum_{i,c} weight_c * BCE(ŝ_c, y_ic) / B``. Labels below 0 are
    ignored (counted in B but contribute nothing). The margins are a training-time device: at
    inference the authors' code scores ``sigmoid(f)``. The authors' form ``-log(e^(f+m+) / (e^(f+m+)
    + e^(-f+m-)))`` overflows for ``|f| > 52`` or so in float32 and gives NaN; the BCE-on-logits
    form here stays finite (same value wherever theirs is finite).
    """
    num_fg = len(_as_counts(counts))
    channels = num_fg + (1 if fg_bg_ratio is not None else 0)
    if logits.dim() != 2 or logits.shape[1] != channels:
        raise ValueError(f"ecm_loss expects logits of shape (B, {channels}), got {tuple(logits.shape)}")
    labels = labels.long()
    if labels.shape != logits.shape[:1]:
        raise ValueError("labels must have shape (B,)")
    if bool((labels > num_fg).any()):
        raise ValueError(f"labels must be in 0..{num_fg} (background/no class = {num_fg})")
    mg = ecm_margins(counts, fg_bg_ratio)
    dev, dt = logits.device, logits.dtype
    shift = torch.as_tensor(mg["m_pos"] - mg["m_neg"], device=dev, dtype=dt)
    weight = torch.as_tensor(mg["weight"], device=dev, dtype=dt)
    valid = labels >= 0
    onehot = torch.zeros(logits.shape[0], num_fg + 1, device=dev, dtype=dt)
    onehot[valid, labels[valid]] = 1.0
    targets = onehot[:, :channels]
    bce = F.binary_cross_entropy_with_logits(2.0 * logits + shift, targets, reduction="none")
    loss = (bce * weight * valid.unsqueeze(1).to(dt)).sum()
    return loss / max(logits.shape[0], 1)


# ----------------------------------------------------------------------------------------- BAGS


def _bags_members(counts, edges) -> list[np.ndarray]:
    n = _as_counts(counts)
    group = bags_groups(n, edges)
    num_groups = len(edges) - 1
    return [np.flatnonzero(group == g) for g in range(1, num_groups + 1)]


def bags_label2binlabel(counts: Sequence[float] | np.ndarray, edges: Sequence[float] = DEFAULT_BAGS_EDGES) -> Tensor:
    """BAGS label remapping table, ``(N + 1, C + 1)`` int64 (Li et al., CVPR 2020, §4.1-4.2).

    ``table[n, label]`` is the target index inside group n for a box of class ``label``
    (``C`` = background). Group 0 (background group) has two outputs: 0 = ``others``
    (any foreground), 1 = background. In groups 1..N (classes with ``s_l <= N_j < s_h``, Eq. 3,
    edges as in :func:`imbalance_cli.losses.grouping.bags_groups`) index 0 is ``others`` and the
    group's classes are 1..k in ascending class index; other classes and background map to 0.
    """
    members = _bags_members(counts, edges)
    num_classes = len(_as_counts(counts))
    table = torch.zeros(len(members) + 1, num_classes + 1, dtype=torch.int64)
    table[0, num_classes] = 1
    for g, cls in enumerate(members, start=1):
        table[g, torch.as_tensor(cls, dtype=torch.int64)] = torch.arange(1, len(cls) + 1)
    return table


def bags_pred_slice(counts: Sequence[float] | np.ndarray, edges: Sequence[float] = DEFAULT_BAGS_EDGES) -> Tensor:
    """Where each BAGS group's logits lie in the head output, ``(N + 1, 2)`` int64 rows ``(start, length)``.

    Group 0 has length 2 (others, background); group n has ``k_n + 1`` outputs (others + its k_n
    classes; an empty group keeps its single ``others`` output). Groups are laid out in order, so
    the head has ``C + N + 2`` outputs (Li et al., CVPR 2020, §4.2: ``z ∈ R^{(C+1)+(N+1)}``).
    """
    members = _bags_members(counts, edges)
    lengths = [2] + [len(m) + 1 for m in members]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return torch.as_tensor(np.stack([starts, lengths], axis=1), dtype=torch.int64)


def bags_num_outputs(pred_slice: Tensor) -> int:
    """Number of classifier outputs a BAGS head needs for ``pred_slice``."""
    return int(pred_slice[-1, 0] + pred_slice[-1, 1])


def bags_loss(
    logits: Tensor,
    labels: Tensor,
    label2binlabel: Tensor,
    pred_slice: Tensor,
    beta: float = 8.0,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Balanced Group Softmax loss (Li et al., CVPR 2020, Eqs. 4-5, §4.3 sampling of ``others``).

    ``logits`` ``(B, T)`` laid out by ``pred_slice``; ``labels`` ``(B,)`` in ``0..C``
    (C = background, negative = ignored). Each group n has a softmax over its outputs (Eq. 4) and
    a cross-entropy ``-sum_{i in G_n} y_i^n log p_i^n`` (Eq. 5). Group 0 uses every box. Group
    n >= 1 uses the boxes of its classes plus ``m_n = floor(beta * their number)`` boxes drawn
    without replacement (``generator``) among the rest with target ``others``, or all of them
    when ``m_n`` reaches their number; a group without its classes in the batch contributes 0
    (§4.3). ``beta = inf`` keeps every ``others`` box.

    ``reduction="mean"`` is the authors' released code (``_remap_labels`` / ``loss`` of their
    group-softmax head): each group's cross-entropy is **averaged over the boxes that group
    uses** (``avg_factor = max(#used, 1)``) and the groups' means are summed.
    ``"sum"`` gives the plain sum over groups and used boxes, ``"none"`` the per-box sum over
    groups ``(B,)`` (no per-group normalisation).
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    labels = labels.long()
    valid = labels >= 0
    safe = torch.where(valid, labels, torch.zeros_like(labels))
    per_box = torch.zeros(logits.shape[0], dtype=logits.dtype, device=logits.device)
    total = logits.sum() * 0.0
    table = label2binlabel.to(logits.device)
    for g in range(pred_slice.shape[0]):
        start, length = int(pred_slice[g, 0]), int(pred_slice[g, 1])
        target = table[g, safe]
        if g == 0:
            use = valid
        else:
            pos = valid & (target > 0)
            n_pos = int(pos.sum())
            if n_pos == 0:
                continue
            others = torch.nonzero(valid & (target == 0)).squeeze(1)
            use = pos.clone()
            m = others.numel() if beta == float("inf") else int(math.floor(beta * n_pos))
            if m >= others.numel():
                use[others] = True
            elif m > 0:
                pick = torch.randperm(others.numel(), generator=generator)[:m].to(others.device)
                use[others[pick]] = True
        logp = F.log_softmax(logits[:, start : start + length], dim=1)
        nll = -logp.gather(1, target.unsqueeze(1)).squeeze(1)
        nll = torch.where(use, nll, torch.zeros_like(nll))
        per_box = per_box + nll
        total = total + nll.sum() / max(int(use.sum()), 1)
    if reduction == "mean":
        return total
    return reduce_loss(per_box, reduction)


def bags_merge(logits: Tensor, label2binlabel: Tensor, pred_slice: Tensor) -> Tensor:
    """BAGS inference merge (Li et al., CVPR 2020, §4.4): per-class scores ``(B, C + 1)``, background last.

    Softmax inside each group (Eq. 4), drop the ``others`` outputs of groups 1..N, put the class
    probabilities back in class order and rescale by the foreground probability of group 0:
    ``p~_j = p^0_others * p_j``. The last column is group 0's background probability. (The
    foreground scores do not sum to one, as the paper notes.)
    """
    num_classes = label2binlabel.shape[1] - 1
    out = logits.new_zeros(logits.shape[0], num_classes + 1)
    p0 = torch.softmax(logits[:, int(pred_slice[0, 0]) : int(pred_slice[0, 0]) + 2], dim=1)
    fg = p0[:, 0:1]
    table = label2binlabel.to(logits.device)
    for g in range(1, pred_slice.shape[0]):
        start, length = int(pred_slice[g, 0]), int(pred_slice[g, 1])
        cls = torch.nonzero(table[g, :num_classes] > 0).squeeze(1)
        if cls.numel() == 0:
            continue
        p = torch.softmax(logits[:, start : start + length], dim=1)
        out[:, cls] = fg * p[:, table[g, cls]]
    out[:, num_classes] = p0[:, 1]
    return out


# ------------------------------------------------------------------------------ class-balanced


def class_balanced_weights(counts, beta: float = 0.999) -> np.ndarray:
    """Class-balanced weights ``(1 - β) / (1 - β^n_c)`` (Cui et al., CVPR 2019, Eq. 4-5), normalised to sum to C.

    ``(1 - β^n) / (1 - β)`` is the effective number of samples; a class with no instances counts as one.
    """
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    n = np.maximum(_as_counts(counts), 1.0)
    w = (1.0 - beta) / (1.0 - np.power(beta, n)) if beta > 0 else np.ones_like(n)
    return w * len(w) / w.sum()


def _cb_focal_modulator(logits: Tensor, t: Tensor, gamma: float) -> Tensor:
    """``(1 - p_t)^γ`` as the authors write it, ``exp(-γ (t x + log(1 + e^-x)))`` (class-balanced-loss 1d78572,
    ``src/cifar_main.py``, ``focal_loss``): the same value for 0/1 targets, and a finite gradient where
    ``p_t`` rounds to 1 and γ < 1 (the power form's gradient is NaN there)."""
    if gamma == 0:
        return torch.ones_like(logits)
    return torch.exp(-gamma * (t * logits + F.softplus(-logits)))


def class_balanced(
    logits: Tensor,
    targets: Tensor,
    counts,
    beta: float = 0.999,
    loss: str = "sigmoid",
    gamma: float = 2.0,
    alpha: float = -1.0,
    bg_weight: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """Class-balanced loss by effective number of samples (Cui et al., CVPR 2019).

    Every sample of class y is weighted by :func:`class_balanced_weights` ``w_y``. ``loss``:

    * "sigmoid" / "focal": ``targets`` one-hot (or soft) ``(B, C)``; the whole row is weighted by
      its positive class's weight; rows without a positive (background) by ``bg_weight``. "focal"
      uses γ = ``gamma`` and α = ``alpha`` (−1 = no α, as in the paper's CB focal loss), with the
      authors' modulator ``exp(-γ (t x + log(1 + e^-x)))`` (equal to ``(1 - p_t)^γ`` for 0/1 targets);
    * "softmax": ``targets`` integer labels ``(B,)``; ``logits`` ``(B, C)`` or ``(B, C + 1)``
      with a background last column whose samples get ``bg_weight``.

    β = 0.999 by default; "none" returns the element-wise weighted loss.
    """
    w = torch.as_tensor(class_balanced_weights(counts, beta), dtype=logits.dtype, device=logits.device)
    num = w.numel()
    if loss in ("sigmoid", "focal"):
        t = targets.to(logits.dtype)
        if t.shape != logits.shape or logits.shape[-1] != num:
            raise ValueError(f"class_balanced expects logits and one-hot targets of shape (B, {num})")
        base = sigmoid_ce(logits, t)
        if loss == "focal":
            base = _cb_focal_modulator(logits, t, gamma) * base
            if alpha >= 0:
                base = (alpha * t + (1 - alpha) * (1 - t)) * base
        npos = t.sum(-1, keepdim=True)
        row = torch.where(
            npos > 0, (t * w).sum(-1, keepdim=True) / npos.clamp(min=1e-12), torch.full_like(npos, bg_weight)
        )
        return reduce_loss(base * row, reduction)
    if loss == "softmax":
        labels = targets.long()
        if logits.shape[-1] not in (num, num + 1):
            raise ValueError(f"class_balanced softmax expects logits with {num} or {num + 1} columns")
        wk = torch.cat([w, w.new_full((1,), bg_weight)]) if logits.shape[-1] == num + 1 else w
        ce = F.cross_entropy(logits, labels, reduction="none")
        return reduce_loss(ce * wk[labels], reduction)
    raise ValueError(f"loss must be 'sigmoid', 'focal' or 'softmax', got {loss!r}")


# ----------------------------------------------------------------------------------------- EQLv2


def _onehot_channels(labels: Tensor, channels: int, dtype) -> Tensor:
    labels = labels.long()
    out = torch.zeros(labels.shape[0], channels + 1, dtype=dtype, device=labels.device)
    keep = (labels >= 0) & (labels <= channels)
    out[keep, labels[keep]] = 1.0
    return out[:, :channels]


def eqlv2_weights(
    pos_grad: Tensor,
    neg_grad: Tensor,
    gamma: float = 12.0,
    mu: float = 0.8,
    alpha: float = 4.0,
    ratio: Tensor | None = None,
):
    """EQLv2 per-class weights from accumulated gradients (Tan et al., "Equalization Loss v2", CVPR 2021, Eqs. 5-7).

    ``g_j = pos_grad_j / (neg_grad_j + 1e-10)`` (or ``ratio`` when given, the authors' cached
    ``pos_neg``); ``q_j = f(g_j) = 1 / (1 + exp(-γ (g_j - μ)))``; negative weight ``q_j``,
    positive weight ``1 + α (1 - q_j)``. Returns ``(pos_w, neg_w)``.
    """
    if ratio is None:
        ratio = pos_grad / (neg_grad + 1e-10)
    neg_w = torch.sigmoid(gamma * (ratio - mu))
    pos_w = 1.0 + alpha * (1.0 - neg_w)
    return pos_w, neg_w


#: Initial gradient ratio of :class:`EQLv2`, as in the authors' released code: large enough that
#: both weights are 1 (to float precision) until statistics have been collected.
EQLV2_INITIAL_RATIO = 100.0


def eqlv2(
    logits: Tensor,
    labels: Tensor,
    pos_grad: Tensor,
    neg_grad: Tensor,
    gamma: float = 12.0,
    mu: float = 0.8,
    alpha: float = 4.0,
    has_background: bool = False,
    reduction: str = "mean",
    ratio: Tensor | None = None,
) -> Tensor:
    """Equalization Loss v2, functional core (Tan et al., CVPR 2021): gradient-guided reweighted sigmoid BCE.

    ``logits`` ``(B, C)`` (``(B, C + 1)`` with a background last channel if ``has_background``,
    whose weights stay 1); ``labels`` in ``0..C`` with C = background. Element weight
    ``w_ij = pos_w_j y_ij + neg_w_j (1 - y_ij)`` from :func:`eqlv2_weights` on the accumulated
    gradients ``pos_grad``/``neg_grad`` (length C) or on ``ratio``; loss ``w_ij BCE_ij``;
    "mean" = sum / B. γ = 12, μ = 0.8, α = 4. Use :class:`EQLv2` to accumulate the gradients
    during training (it starts with weights 1, as the authors' code).
    """
    weight = _eqlv2_element_weights(logits, labels, pos_grad, neg_grad, gamma, mu, alpha, has_background, ratio)
    t = _onehot_channels(labels, logits.shape[1], logits.dtype)
    loss = sigmoid_ce(logits, t) * weight
    if reduction == "mean":
        return loss.sum() / max(logits.shape[0], 1)
    return reduce_loss(loss, reduction)


def _eqlv2_element_weights(logits, labels, pos_grad, neg_grad, gamma, mu, alpha, has_background, ratio=None):
    num = pos_grad.numel()
    if logits.shape[1] != num + (1 if has_background else 0):
        raise ValueError(
            f"eqlv2 expects logits with {num + (1 if has_background else 0)} columns, got {logits.shape[1]}"
        )
    r = None if ratio is None else ratio.to(logits.dtype)
    pos_w, neg_w = eqlv2_weights(pos_grad.to(logits.dtype), neg_grad.to(logits.dtype), gamma, mu, alpha, r)
    if has_background:
        one = pos_w.new_ones(1)
        pos_w, neg_w = torch.cat([pos_w, one]), torch.cat([neg_w, one])
    t = _onehot_channels(labels, logits.shape[1], logits.dtype)
    return (pos_w * t + neg_w * (1 - t)).detach()


class EQLv2(nn.Module):
    """Equalization Loss v2 with its gradient statistics (buffers ``pos_grad``, ``neg_grad``, ``pos_neg``, length C).

    As in the authors' released code: the cached ratio ``pos_neg`` starts at
    :data:`EQLV2_INITIAL_RATIO` (weights 1 on the first call); each training-mode call computes
    :func:`eqlv2` with the cached ratio, then adds per class the magnitudes of the loss gradient
    w.r.t. the logits, ``w_ij |sigmoid(x_ij) - y_ij|``, of the positive and of the negative
    elements, and refreshes ``pos_neg = pos_grad / (neg_grad + 1e-10)`` (Tan et al. 2021, §3.2).
    """

    def __init__(
        self, num_classes: int, gamma: float = 12.0, mu: float = 0.8, alpha: float = 4.0, has_background: bool = False
    ):
        super().__init__()
        self.num_classes, self.gamma, self.mu, self.alpha = num_classes, gamma, mu, alpha
        self.has_background = has_background
        self.register_buffer("pos_grad", torch.zeros(num_classes, dtype=torch.float64))
        self.register_buffer("neg_grad", torch.zeros(num_classes, dtype=torch.float64))
        self.register_buffer("pos_neg", torch.full((num_classes,), EQLV2_INITIAL_RATIO, dtype=torch.float64))

    def forward(self, logits: Tensor, labels: Tensor, reduction: str = "mean") -> Tensor:
        """Loss of one batch; in training mode also accumulates the gradient statistics."""
        args = (self.pos_grad, self.neg_grad, self.gamma, self.mu, self.alpha, self.has_background)
        loss = eqlv2(logits, labels, *args, reduction=reduction, ratio=self.pos_neg)
        if self.training:
            with torch.no_grad():
                w = _eqlv2_element_weights(logits, labels, *args, ratio=self.pos_neg)
                t = _onehot_channels(labels, logits.shape[1], logits.dtype)
                g = w * (torch.sigmoid(logits) - t).abs()
                c = self.num_classes
                self.pos_grad += (g * t).sum(0)[:c].to(self.pos_grad.dtype)
                self.neg_grad += (g * (1 - t)).sum(0)[:c].to(self.neg_grad.dtype)
                self.pos_neg.copy_(self.pos_grad / (self.neg_grad + 1e-10))
        return loss


# ---------------------------------------------------------------------------------------- Seesaw


def seesaw(
    logits: Tensor,
    labels: Tensor,
    counts: Tensor | Sequence[float] | np.ndarray,
    p: float = 0.8,
    q: float = 2.0,
    eps: float = 1e-2,
    reduction: str = "mean",
) -> Tensor:
    """Seesaw loss (Wang et al., CVPR 2021, Eqs. 2-5), softmax form.

    For a sample of class i the other logits are rescaled,
    ``L = -log(e^{z_i} / (e^{z_i} + sum_{j != i} S_ij e^{z_j}))``, ``S_ij = M_ij C_ij`` with the
    mitigation factor ``M_ij = (N_j / N_i)^p`` if ``N_i > N_j`` else 1 (``counts`` N: the classes'
    cumulative training-sample counts) and the compensation factor ``C_ij = (σ_j / σ_i)^q`` if
    ``σ_j > σ_i`` else 1 (σ the detached softmax, ``σ_i`` clamped at ``eps``). p = 0.8, q = 2.
    ``logits`` are ``(B, C)`` or ``(B, C + 1)`` with a background last column; factors act among the
    C foreground classes only, background samples and the background logit use plain softmax CE.
    Labels below 0 are ignored; "mean" averages over the rest.
    """
    n = torch.as_tensor(
        counts if not isinstance(counts, np.ndarray) else counts.astype(np.float64), device=logits.device
    )
    n = n.to(logits.dtype).clamp(min=1.0)
    c = n.numel()
    k = logits.shape[1]
    if k not in (c, c + 1):
        raise ValueError(f"seesaw expects logits with {c} or {c + 1} columns, got {k}")
    labels = labels.long()
    valid = labels >= 0
    safe = torch.where(valid, labels, torch.zeros_like(labels))
    fg = valid & (safe < c)
    with torch.no_grad():
        y = safe.clamp(max=c - 1)
        ratio_n = n[None, :] / n[y][:, None]  # N_j / N_i
        log_m = p * torch.log(ratio_n.clamp(min=1e-12, max=1.0))
        prob = torch.softmax(logits.detach(), dim=1)
        self_p = prob.gather(1, y[:, None]).clamp(min=eps)
        ratio_s = prob[:, :c] / self_p
        log_c = q * torch.log(ratio_s.clamp(min=1.0))
        log_s = log_m + log_c
        log_s[torch.arange(len(y), device=logits.device), y] = 0.0
        log_s = torch.where(fg[:, None], log_s, torch.zeros_like(log_s))
        if k == c + 1:
            log_s = torch.cat([log_s, log_s.new_zeros(len(y), 1)], dim=1)
    adjusted = logits + log_s
    ce = -F.log_softmax(adjusted, dim=1).gather(1, safe[:, None]).squeeze(1)
    ce = torch.where(valid, ce, torch.zeros_like(ce))
    if reduction == "mean":
        return ce.sum() / max(int(valid.sum()), 1)
    return reduce_loss(ce, reduction)


class SeesawLoss(nn.Module):
    """Seesaw loss with its cumulative class counts (buffer ``cum_counts``, length C); see :func:`seesaw`.

    In training mode each call first adds the batch's foreground labels to ``cum_counts``
    (the paper accumulates N during training), then computes the loss.
    """

    def __init__(self, num_classes: int, p: float = 0.8, q: float = 2.0, eps: float = 1e-2):
        super().__init__()
        self.num_classes, self.p, self.q, self.eps = num_classes, p, q, eps
        self.register_buffer("cum_counts", torch.zeros(num_classes, dtype=torch.float64))

    def forward(self, logits: Tensor, labels: Tensor, reduction: str = "mean") -> Tensor:
        """Loss of one batch (updating the cumulative counts in training mode)."""
        if self.training:
            lab = labels.long()
            fg = lab[(lab >= 0) & (lab < self.num_classes)]
            self.cum_counts += torch.bincount(fg, minlength=self.num_classes).to(self.cum_counts.dtype)
        return seesaw(logits, labels, self.cum_counts, self.p, self.q, self.eps, reduction)
