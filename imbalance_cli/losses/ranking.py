"""Ranking-based classification losses with identity-update gradients: AP, aLRP and Rank & Sort.

Notation (Oksuz et al., Rank & Sort Loss, ICCV 2021, supp. §S1): ``x_ij = s_j - s_i`` for logits s; the step
function ``H`` is smoothed linearly, ``H(x) = clamp(x / (2δ) + 0.5, 0, 1)`` (δ > 0), or is the
unit step ``[x >= 0]`` for δ = 0. For a positive i: ``N_FP(i) = sum_{j in N} H(x_ij)``,
``rank+(i) = sum_{k in P} H(x_ik)``, ``rank(i) = rank+(i) + N_FP(i)``.

Identity update (Oksuz et al., Rank & Sort Loss, ICCV 2021, supp. Eq. S2): the "gradient" of
``L = 1/|P| sum_i sum_j L_ij`` w.r.t. s_i is ``1/|P| (sum_j L_ji - sum_j L_ij)`` with primary terms
``L_ij = (ℓ(i) - ℓ*(i)) p(j|i)``.

Everything is vectorised: negatives enter only through sums of the piecewise-linear H over
the 2P breakpoints ``s_i ± δ`` (one binary search and scatter-add per negative, then prefix
sums: O(N log P + P log P), no P x N matrix); negatives below ``min(s_P) - δ`` are skipped (they
cannot affect any error); positive-positive terms are dense ``P x P`` blocks processed in chunks
of rows. There is no Python loop over positives. Internal arithmetic is float64; gradients are
returned in the logits' dtype. ``benchmarks/losses.py`` compares against a per-positive loop.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["rank_sort_loss", "ap_loss", "alrp_loss", "smoothed_step"]

_CHUNK_ELEMS = 1 << 22  # positive-positive block size (rows x P) per chunk


def smoothed_step(x: Tensor, delta: float) -> Tensor:
    """``H(x)``: ``clamp(x / (2δ) + 0.5, 0, 1)`` for δ > 0, the unit step ``[x >= 0]`` for δ = 0."""
    if delta > 0:
        return (x / (2 * delta) + 0.5).clamp(0.0, 1.0)
    return (x >= 0).to(x.dtype)


def _prefix(w: Tensor) -> Tensor:
    return torch.cat([w.new_zeros(1), torch.cumsum(w, 0)])


class _Negatives:
    """Sums of the piecewise-linear H between positives and negatives without a P x N matrix.

    The breakpoints ``s_i ± δ`` (or ``s_i`` for δ = 0) of all positives cut the score axis into
    2P + 1 buckets; within a bucket every ``H(t - s_i)`` is linear in t (or constant). Negatives
    are counted into buckets once (binary search + scatter-add), after which
    ``N_FP(i) = sum_j H(t_j - s_i)`` and ``g(t_j) = sum_i c_i H(t_j - s_i)`` are prefix sums.
    """

    def __init__(self, sp: Tensor, sn: Tensor, delta: float):
        self.delta = delta
        self.sn = sn
        p = sp.numel()
        vals = torch.cat([sp - delta, sp + delta]) if delta > 0 else sp
        self.order = torch.argsort(vals)
        breaks = vals[self.order]
        where = torch.empty_like(self.order)
        where[self.order] = torch.arange(vals.numel(), device=vals.device)
        self.pos_minus = where[:p] if delta > 0 else None
        self.pos_plus = where[p:] if delta > 0 else where
        self.bucket = torch.searchsorted(breaks, sn, right=True)  # number of breakpoints <= t
        nb = vals.numel() + 1
        count = sn.new_zeros(nb).index_add_(0, self.bucket, torch.ones_like(sn))
        total = sn.new_zeros(nb).index_add_(0, self.bucket, sn)
        self.cum_count = _prefix(count)
        self.cum_sum = _prefix(total)

    def false_positives(self, sp: Tensor) -> Tensor:
        """``N_FP(i) = sum_{j in N} H(s_j - s_i)`` for every positive."""
        cc = self.cum_count
        full = cc[-1] - cc[self.pos_plus + 1]
        if self.delta <= 0:
            return full
        lo, hi = self.pos_minus + 1, self.pos_plus + 1
        count = cc[hi] - cc[lo]
        total = self.cum_sum[hi] - self.cum_sum[lo]
        return full + (total - sp * count) / (2 * self.delta) + 0.5 * count

    def spread(self, sp: Tensor, coef: Tensor) -> Tensor:
        """``g[j] = sum_{i in P} coef_i H(s_j - s_i)`` for every negative (the ranking pmf's update)."""
        if self.delta <= 0:
            return _prefix(coef[self.order])[self.bucket]
        a = coef * (0.5 - sp / (2 * self.delta))
        b = coef / (2 * self.delta)
        cum_a = _prefix(torch.cat([a, coef - a])[self.order])
        cum_b = _prefix(torch.cat([b, -b])[self.order])
        return cum_a[self.bucket] + cum_b[self.bucket] * self.sn


class _Split:
    """Flattened float64 scores split into positives (y > 0) and the relevant negatives (y == 0).

    Negatives scoring below ``min(s_P) - δ`` have ``H(x_ij) = 0`` for every positive: they add
    nothing to any error and get zero gradient, so they are dropped up front.
    """

    def __init__(self, logits: Tensor, targets: Tensor, delta: float):
        if logits.numel() != targets.numel():
            raise ValueError(
                "logits and targets must have the same number of elements, "
                f"got {tuple(logits.shape)} and {tuple(targets.shape)}"
            )
        s = logits.detach().reshape(-1)
        y = targets.detach().reshape(-1).to(s.device)
        self.shape, self.dtype, self.device = logits.shape, logits.dtype, logits.device
        self.pos_idx = torch.nonzero(y > 0).squeeze(1)
        self.n_pos = self.pos_idx.numel()
        self.sp = s[self.pos_idx].to(torch.float64)
        self.yp = y[self.pos_idx].to(torch.float64)
        if self.n_pos:
            floor = float(self.sp.min()) - delta
            if s.is_floating_point() and s.dtype != torch.float64:
                # compare in the input dtype with a floor lowered by a few ulps: nothing relevant
                # is dropped, and the few extra negatives kept have H = 0
                floor -= 4 * (abs(floor) + 1.0) * torch.finfo(s.dtype).eps
            self.neg_idx = torch.nonzero((y == 0) & (s >= floor)).squeeze(1)
        else:
            self.neg_idx = self.pos_idx.new_zeros(0)
        self.sn = s[self.neg_idx].to(torch.float64)

    def scatter(self, grad_pos: Tensor | None, grad_neg: Tensor | None) -> Tensor:
        """Full-size gradient in the logits' shape and dtype from the compact parts."""
        out = torch.zeros(self.shape.numel(), dtype=self.dtype, device=self.device)
        if grad_pos is not None and self.n_pos:
            out[self.pos_idx] = grad_pos.to(self.dtype)
        if grad_neg is not None and self.neg_idx.numel():
            out[self.neg_idx] = grad_neg.to(self.dtype)
        return out.reshape(self.shape)


def _chunks(p: int):
    step = max(1, _CHUNK_ELEMS // max(p, 1))
    for start in range(0, p, step):
        yield slice(start, min(p, start + step))


def _rank_sort_core(split: _Split, delta: float):
    """Values and compact identity-update gradients ``(ranking, sorting, g_R+, g_R-, g_S+)``."""
    n_pos = split.n_pos
    sp, yp = split.sp, split.yp
    negatives = _Negatives(sp, split.sn, delta)
    fp = negatives.false_positives(sp)  # N_FP(i)
    one_minus_y = 1.0 - yp
    sort_err = torch.empty_like(sp)
    rank = torch.empty_like(sp)
    gs_pos = torch.zeros_like(sp)
    for rows in _chunks(n_pos):
        h = smoothed_step(sp[None, :] - sp[rows, None], delta)  # H(x_ik), (r, P)
        rank_pos = h.sum(1)
        current = (h @ one_minus_y) / rank_pos  # ℓ_S(i), RS Eq. 7
        target_mask = h * (yp[None, :] >= yp[rows, None])
        target = (target_mask @ one_minus_y) / target_mask.sum(1)  # ℓ*_S(i), RS Eq. 8
        err = current - target
        missorted = h - target_mask  # H(x_ik) [y_k < y_i]: cause of the sorting error
        denom = missorted.sum(1)
        has = denom > 0
        coef = torch.where(has, err / denom.clamp(min=1e-300), torch.zeros_like(err))
        gs_pos[rows] -= torch.where(has, err, torch.zeros_like(err))  # - sum_j L_ij (Eq. S10)
        gs_pos += coef @ missorted  # + sum_j L_ji, p_S(i|j) (Eq. S14)
        sort_err[rows] = err
        rank[rows] = rank_pos + fp[rows]
    rank_err = fp / rank  # ℓ_R(i) = N_FP(i) / rank(i); ℓ*_R = 0
    has_fp = fp > 0
    gr_pos = -torch.where(has_fp, rank_err, torch.zeros_like(rank_err)) / n_pos  # Eq. S15 (ranking part)
    coef_r = torch.where(has_fp, rank_err / fp.clamp(min=1e-300), torch.zeros_like(rank_err))
    gr_neg = negatives.spread(sp, coef_r) / n_pos  # Eqs. S5-S7
    return rank_err.mean(), sort_err.mean(), gr_pos, gr_neg, gs_pos / n_pos  # Eqs. S14-S16


class _RankSortFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, delta):
        split = _Split(logits, targets, delta)
        ctx.split = split
        if split.n_pos == 0:
            ctx.parts = None
            zero = logits.new_zeros(())
            return zero, zero.clone()
        ranking, sorting, gr_pos, gr_neg, gs_pos = _rank_sort_core(split, delta)
        ctx.parts = (gr_pos, gr_neg, gs_pos)
        return ranking.to(logits.dtype), sorting.to(logits.dtype)

    @staticmethod
    def backward(ctx, d_ranking, d_sorting):
        split = ctx.split
        if ctx.parts is None:
            return split.scatter(None, None), None, None
        gr_pos, gr_neg, gs_pos = ctx.parts
        dr, ds = d_ranking.to(torch.float64), d_sorting.to(torch.float64)
        return split.scatter(gr_pos * dr + gs_pos * ds, gr_neg * dr), None, None


def rank_sort_loss(logits: Tensor, targets: Tensor, delta: float = 0.5) -> tuple[Tensor, Tensor]:
    """Rank & Sort loss (Oksuz et al., ICCV 2021, supp. Eqs. S1-S16), returns ``(ranking, sorting)``.

    ``logits`` and ``targets`` are flat (any shape, flattened together); targets are continuous
    labels: the IoU (> 0) for positives, 0 for negatives, -1 (any negative value) ignored.
    For a positive i (RS Eqs. 7-8, Fig. S1):

    * ranking error ``ℓ_R(i) = N_FP(i) / rank(i)``, target ``ℓ*_R(i) = 0``;
    * sorting error ``ℓ_S(i) = sum_{k in P} H(x_ik)(1 - y_k) / rank+(i)``, target ``ℓ*_S(i)``
      the same sum restricted to positives with ``y_k >= y_i``;
    * ``ranking = mean_i ℓ_R(i)``, ``sorting = mean_i (ℓ_S(i) - ℓ*_S(i))``.

    Backward uses the identity update: negatives get Eq. S7 (ranking pmf ``H(x_ij) / N_FP(i)``),
    positives Eq. S16 (sorting pmf over mis-sorted positives ``H(x_ij)[y_j < y_i]``). The two
    outputs carry their own gradients, so ``ranking + sorting`` gives the paper's total update.
    δ = 0.5 by default (Table S4); δ = 0 is the unit step of Fig. S1. Vectorised (see module doc).
    """
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    return _RankSortFunction.apply(logits, targets, float(delta))


def _ap_core(split: _Split, delta: float, loc_errors: Tensor | None, interpolate: bool = False, eps: float = 0.0):
    """Shared AP/aLRP machinery; ``rank+(i) = 1 + sum_{k != i} H(x_ik)`` (Chen et al. 2019).

    Returns ``(mean error, g+, g-, rank)`` with the compact identity-update gradients.
    ``interpolate``: AP loss's interpolated error (the authors' ``APLoss``): visiting positives
    from the lowest score up, ``e(i) = min`` of ``FP/rank`` over the positives visited so far,
    i.e. ``1 -`` interpolated precision. ``eps``: positives with ``N_FP <= eps`` get no update
    (aLRP's released code uses 1e-5).
    """
    n_pos = split.n_pos
    sp = split.sp
    negatives = _Negatives(sp, split.sn, delta)
    fp = negatives.false_positives(sp)
    h_self = 0.5 if delta > 0 else 1.0
    rank_pos = torch.empty_like(sp)
    loc_above = torch.zeros_like(sp)  # sum_{k != i} E_loc(k) H(x_ik)
    e = None
    if loc_errors is not None:
        e = (
            loc_errors.detach()
            .reshape(-1)[split.pos_idx.to(loc_errors.device)]
            .to(device=sp.device, dtype=torch.float64)
        )
    for rows in _chunks(n_pos):
        h = smoothed_step(sp[None, :] - sp[rows, None], delta)
        rank_pos[rows] = 1.0 + h.sum(1) - h_self
        if e is not None:
            loc_above[rows] = h @ e - h_self * e[rows]
    rank = rank_pos + fp
    err = fp / rank  # 1 - precision(i)
    if interpolate:
        order = torch.argsort(sp, stable=True)  # lowest score first, as the authors' loop
        interp = torch.empty_like(err)
        interp[order] = torch.cummin(err[order], 0).values
        err = interp
    has_fp = fp > eps
    # primary terms L_ij = (ℓ(i) - ℓ*(i)) H(x_ij) / N_FP(i); for aLRP ℓ - ℓ* = (N_FP + sum E H) / rank
    total = (fp + loc_above) / rank if e is not None else err
    total = torch.where(has_fp, total, torch.zeros_like(total))
    g_pos = -total / n_pos
    g_neg = negatives.spread(sp, total / fp.clamp(min=1e-300)) / n_pos
    return err.mean(), g_pos, g_neg, rank


class _APFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, delta, loc_errors, interpolate, eps):
        split = _Split(logits, targets, delta)
        ctx.split = split
        if split.n_pos == 0:
            ctx.parts = None
            ctx.rank = None
            return logits.new_zeros(())
        value, g_pos, g_neg, rank = _ap_core(split, delta, loc_errors, interpolate, eps)
        ctx.parts = (g_pos, g_neg)
        ctx.rank = rank
        return value.to(logits.dtype)

    @staticmethod
    def backward(ctx, d_value):
        split = ctx.split
        if ctx.parts is None:
            return split.scatter(None, None), None, None, None, None, None
        g_pos, g_neg = ctx.parts
        d = d_value.to(torch.float64)
        return split.scatter(g_pos * d, g_neg * d), None, None, None, None, None


def ap_loss(logits: Tensor, targets: Tensor, delta: float = 1.0, interpolate: bool = True) -> Tensor:
    """AP loss (Chen et al., "Towards Accurate One-Stage Object Detection with AP-Loss", CVPR 2019)
    with identity-update gradients.

    ``targets``: > 0 positive, 0 negative, < 0 ignored. With the smoothed step (δ = 1 by default)
    and ``rank(i) = 1 + sum_{k != i} H(x_ik)`` over positives and negatives, the precision error
    of a positive is ``ℓ(i) = N_FP(i) / rank(i)``. ``interpolate=True`` (default) follows the
    released ``APLoss`` (as shipped with aLRP, Oksuz et al., NeurIPS 2020): positives are visited
    from the lowest score up and each takes the interpolated error ``e(i) = min ℓ(k)`` over the
    positives visited so far (``1 -`` interpolated precision); ``interpolate=False`` uses ``ℓ(i)``.
    ``L_AP = 1/|P| sum_i e(i)``. Gradients: ``-e(i)/|P|`` for positives and
    ``1/|P| sum_i H(x_ij) e(i) / N_FP(i)`` for negatives (primary terms ``L_ij = e(i) H(x_ij) / N_FP(i)``).
    """
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    return _APFunction.apply(logits, targets, float(delta), None, bool(interpolate), 0.0)


def alrp_loss(
    logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float = 1.0, eps: float = 1e-5
) -> tuple[Tensor, Tensor]:
    """aLRP loss (Oksuz et al., "A Ranking-based, Balanced Loss Function ...", NeurIPS 2020, Eqs. 8-11), ``(cls, loc)``.

    ``targets``: > 0 positive, 0 negative, < 0 ignored; ``loc_errors`` has the shape of ``logits``
    and holds each positive's localisation error ``E_loc(i)`` (values at negatives are unused),
    differentiable w.r.t. the boxes. With ``rank(i) = rank+(i) + N_FP(i)``,
    ``rank+(i) = 1 + sum_{k in P, k != i} H(x_ik)`` (smoothed step, δ = 1):

    * ``cls = 1/|P| sum_i N_FP(i) / rank(i)``; its identity-update gradients use the primary
      terms ``L_ij = (N_FP(i) + sum_{k != i} E_loc(k) H(x_ik)) / rank(i) * H(x_ij) / N_FP(i)``
      (positives with ``N_FP <= eps`` get no update), as the released ``aLRPLoss``;
    * ``loc = 1/|P| sum_i (sum_{k ranked at or above i} E_loc(k)) / rank(i)``, positives ordered
      by their **hard** score (the released code's cumulative sum over the positives sorted by
      ``torch.argsort`` of their logits, reversed; that sort is not stable beyond 16 elements on
      the CPU, so exactly tied positives are ordered as the same call orders them), the ranks
      treated as constants so it only trains the box branch.

    Equals the released ``aLRPLoss`` and ``aLRPLossRetinaHead.loss`` (kemaloksuz/aLRPLoss,
    mmdet/models/losses/alrp_loss.py, mmdet/models/dense_heads/alrp_loss_retina_head.py at
    2cfaa8e). Combine the two with the self-balance
    (:class:`~imbalance_cli.losses.balancing.ALRPSelfBalance`).
    """
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    if loc_errors.shape != logits.shape:
        raise ValueError("loc_errors must have the shape of logits")
    cls = _APFunction.apply(logits, targets, float(delta), loc_errors, False, float(eps))
    split = _Split(logits, targets, delta)
    n_pos = split.n_pos
    if n_pos == 0:
        return cls, loc_errors.sum() * 0.0
    _, _, _, rank = _ap_core(split, delta, None)
    # the released code's order: torch.argsort (not stable) of the positives' logits in their own
    # dtype and file order, reversed; equal logits therefore fall as that call leaves them
    pos_logits = logits.detach().reshape(-1)[split.pos_idx.to(logits.device)]
    order = torch.argsort(pos_logits).flip(0).to(split.sp.device)
    e = loc_errors.reshape(-1)[split.pos_idx.to(loc_errors.device)]
    o = order.to(e.device)
    cum = torch.cumsum(e[o], 0)
    loc = (cum / rank[order].to(device=e.device, dtype=e.dtype)).sum() / n_pos
    return cls, loc
