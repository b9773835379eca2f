"""Every loss held to the output of its reference implementation, run by ``tools/make_framework_oracles.py``.

``tests/data/mmdet-oracle/losses.json``: mmdetection 3.3.0's own loss functions (pip, CPU);
``tests/data/authors-oracle/losses.json``: the authors' released loss code (aLRP, AP, RS, ECM,
IoU-balanced, EQLv2) at the commits recorded in the file. Each case holds the inputs, the official
output and the gradient of its sum w.r.t. the differentiable inputs; ours must agree to 1e-5
relative on both (float32 cases: the reference ran in float32, and so do we).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import imbalance_cli.losses as L

DATA = Path(__file__).parent / "data"
MMDET = json.loads((DATA / "mmdet-oracle" / "losses.json").read_text())
AUTHORS = json.loads((DATA / "authors-oracle" / "losses.json").read_text())
RTOL = 1e-5


def _close(ours, ref, dtype: str, what: str):
    """1e-5 relative (plus an absolute floor far below the largest entry, for exact zeros).

    Where the reference is NaN (mmdetection's CIoU of identical float32 boxes) ours must be finite.
    """
    ref = np.asarray(ref, dtype=np.float64)
    ours = np.asarray(ours, dtype=np.float64).reshape(ref.shape)
    finite = np.isfinite(ref)
    assert np.isfinite(ours[~finite]).all(), f"{what}: not finite where the reference is NaN"
    ref, ours = ref[finite], ours[finite]
    scale = float(np.max(np.abs(ref))) if ref.size else 1.0
    atol = (1e-6 if dtype == "float32" else 1e-9) * max(scale, 1e-12)
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=atol, err_msg=what)


def _tensors(case, grad=()):
    dt = getattr(torch, case["dtype"])
    out = {}
    for k, v in case["inputs"].items():
        if isinstance(v, dict) and "int" in v:
            out[k] = torch.tensor(v["int"], dtype=torch.int64)
        else:
            out[k] = torch.tensor(v, dtype=dt, requires_grad=k in grad)
    return out


def _check(case, fn, grad_keys, precision: str | None = None):
    """``precision``: the dtype whose tolerance applies, where the reference computed in another than the case's."""
    t = _tensors(case, grad_keys)
    out = fn(t, case["params"])
    outs = out if isinstance(out, tuple) else (out,)
    refs = case["value"] if isinstance(out, tuple) else [case["value"]]  # one reference per output
    tol = precision or case["dtype"]
    for i, (o, ref) in enumerate(zip(outs, refs, strict=True)):
        _close(o.detach(), ref, tol, f"{case['name']} value {i}")
    total = sum(o.sum() for o in outs)
    grads = torch.autograd.grad(total, [t[k] for k in grad_keys])
    for k, g in zip(grad_keys, grads):
        _close(g, case["grad"][k], tol, f"{case['name']} grad {k}")


_BOX = {
    "ciou": lambda t, p: L.ciou_loss(t["pred"], t["target"], eps=p["eps"]),
    "diou": lambda t, p: L.diou_loss(t["pred"], t["target"], eps=p["eps"]),
    "giou": lambda t, p: L.giou_loss(t["pred"], t["target"], eps=p["eps"]),
    "iou": lambda t, p: L.iou_loss(t["pred"], t["target"], mode=p["mode"], eps=p["eps"]),
    "bounded-iou": lambda t, p: L.bounded_iou(t["pred"], t["target"], beta=p["beta"], eps=p["eps"]),
    "balanced-l1": lambda t, p: L.balanced_l1(
        t["pred"], t["target"], alpha=p["alpha"], gamma=p["gamma"], beta=p["beta"]
    ),
    "smooth-l1": lambda t, p: L.smooth_l1(t["pred"], t["target"], beta=p["beta"]),
    "l1": lambda t, p: L.l1(t["pred"], t["target"]),
    "focal": lambda t, p: L.focal_loss(t["pred"], t["target"], alpha=p["alpha"], gamma=p["gamma"]),
}


def _cases(data, kinds):
    return [pytest.param(c, id=c["name"]) for c in data["cases"] if c["loss"] in kinds]


@pytest.mark.parametrize("case", _cases(MMDET, _BOX))
def test_mmdet_elementwise_losses(case):
    """ciou, diou, giou, iou (log, linear), bounded-iou, balanced-l1 (beta 1, 0.11, 1/9), smooth-l1, l1, focal."""
    fn = _BOX[case["loss"]]
    _check(case, lambda t, p: fn(t, p), ("pred",))


def test_mmdet_worked_examples():
    """The worked examples (CIoU, IoU of disjoint boxes, bounded IoU), read from mmdetection's own output."""
    by = {c["name"]: c for c in MMDET["cases"]}
    rows = by["ciou-default-float64"]["rows"]
    assert by["ciou-default-float64"]["value"][rows.index("issue")] == pytest.approx(1.0561497, abs=1e-7)
    assert by["iou-log-float64"]["value"][rows.index("disjoint")] == pytest.approx(-math.log(1e-6), rel=1e-9)
    assert by["iou-linear-float64"]["grad"]["pred"][rows.index("touching")] == [0.0, 0.0, 0.0, 0.0]
    assert sum(by["bounded-iou-default-float64"]["value"][rows.index("bounded_issue")]) == pytest.approx(
        1.5286, abs=1e-4
    )
    b = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    assert float(L.ciou_loss(b, torch.tensor([[5.0, 5.0, 25.0, 15.0]]))) == pytest.approx(1.0561497, abs=1e-6)


@pytest.mark.parametrize("case", _cases(MMDET, {"ghm-c", "ghm-r"}))
def test_mmdet_ghm_multi_call(case):
    """GHM-C / GHM-R modules over successive batches (momentum state), float32 edges included."""
    p = case["params"]
    module = (
        L.GHMC(bins=p["bins"], momentum=p["momentum"])
        if case["loss"] == "ghm-c"
        else L.GHMR(mu=p["mu"], bins=p["bins"], momentum=p["momentum"])
    )
    for k, (call, value, grad) in enumerate(zip(case["calls"], case["value"], case["grad"])):
        x = torch.tensor(call["pred"], dtype=torch.float32, requires_grad=True)
        y = torch.tensor(call["target"], dtype=torch.float32)
        valid = torch.tensor(call["label_weight"]) > 0
        out = module(x, y, valid=valid, reduction="mean")
        _close(out.detach(), value, "float32", f"{case['name']} call {k} value")
        _close(torch.autograd.grad(out, x)[0], grad, "float32", f"{case['name']} call {k} grad")


def test_mmdet_seesaw():
    (case,) = [c for c in MMDET["cases"] if c["loss"] == "seesaw"]
    _check(
        case,
        lambda t, q: L.seesaw(
            t["logits"], t["labels"], case["inputs"]["counts"], p=q["p"], q=q["q"], eps=q["eps"], reduction="none"
        ),
        ("logits",),
    )


def test_mmdet_seesaw_module_multi_call():
    """mmdetection's ``SeesawLoss`` module over five calls: cumulative counts, then value and gradient of each call.

    Mapping: mmdetection's module takes C + 2 columns (classes, then an objectness pair) and labels 0..C
    (C the background) and computes the seesaw term on the positives only (``loss_cls_classes``). Ours
    gets those same positives' first C columns and labels; its ``cum_counts`` must equal their
    ``cum_samples[:C]`` after every call (their last entry counts background, which has no seesaw factor).
    The objectness term is mmdetection's own head design, a plain 2-way cross-entropy: not part of Seesaw.
    """
    (case,) = [c for c in MMDET["cases"] if c["loss"] == "seesaw-module"]
    p = case["params"]
    C = p["num_classes"]
    m = L.SeesawLoss(C, p=p["p"], q=p["q"], eps=p["eps"]).train()
    for k, call in enumerate(case["calls"]):
        x = torch.tensor(call["logits"], dtype=torch.float32, requires_grad=True)
        labels = torch.tensor(call["labels"])
        pos = labels < C
        out = m(x[pos][:, :C], labels[pos], reduction=p["reduction"])
        np.testing.assert_array_equal(m.cum_counts.numpy(), np.asarray(call["cum_samples"][:C]), err_msg=f"call {k}")
        _close(out.detach(), call["loss_cls_classes"], "float32", f"call {k} value")
        (g,) = torch.autograd.grad(out, x, allow_unused=True)
        g = torch.zeros_like(x) if g is None else g
        ref = np.asarray(call["grad_cls_score"])
        assert not ref[:, C:].any()  # the class term does not reach the objectness columns
        _close(g[:, :C], ref[:, :C], "float32", f"call {k} grad")


def _ce_ours(case, t):
    """``softmax_ce`` / ``sigmoid_ce`` with mmdetection's ``CrossEntropyLoss`` arguments mapped onto ours.

    softmax: ``class_weight`` -> ``weight``, ``ignore_index`` -> ``ignore_index``; "mean" with
    ``avg_non_ignore=True`` -> "mean"; ``avg_factor=n`` -> "sum" / n (their ``n + 1.19e-7``).
    sigmoid: integer labels -> one-hot over the C columns (background C: all zeros); an ignored row ->
    element weight 0; a sample weight ``w_i`` -> ``w_i`` on its row; their sigmoid ``class_weight`` is
    BCE's ``pos_weight`` -> element weight ``1 + (w_c - 1) y`` (equal for hard 0/1 targets); "mean"
    (``avg_non_ignore`` False) -> "mean" over all N x C elements.
    """
    module, call = case["params"]["module"], case["params"]["call"]
    x = t["logits"]
    red = "sum" if "avg_factor" in call else module.get("reduction", "mean")
    if case["loss"] == "softmax-ce":
        w = torch.tensor(module["class_weight"], dtype=x.dtype) if "class_weight" in module else None
        out = L.softmax_ce(x, t["labels"], weight=w, ignore_index=module["ignore_index"], reduction=red)
    elif isinstance(case["inputs"]["labels"], dict):
        lab = t["labels"]
        C = x.shape[1]
        valid = (lab >= 0) & (lab != module["ignore_index"])
        y = torch.nn.functional.one_hot(torch.where(valid & (lab < C), lab, C), C + 1)[:, :C].to(x.dtype)
        w = valid.to(x.dtype)[:, None].expand_as(x)
        if "weight" in call:
            w = w * torch.tensor(call["weight"], dtype=x.dtype)[:, None]
        if "class_weight" in module:
            w = w * (1 + (torch.tensor(module["class_weight"], dtype=x.dtype) - 1) * y)
        out = L.sigmoid_ce(x, y, weight=w, reduction=red)
    else:
        w = torch.tensor(call["weight"], dtype=x.dtype) if "weight" in call else None
        out = L.sigmoid_ce(x, t["labels"], weight=w, reduction=red)
    return out / call["avg_factor"] if "avg_factor" in call else out


@pytest.mark.parametrize("case", _cases(MMDET, {"softmax-ce", "sigmoid-ce"}))
def test_mmdet_cross_entropy(case):
    """``softmax_ce`` / ``sigmoid_ce`` against mmdetection's ``CrossEntropyLoss`` (softmax and sigmoid, weights,
    ignored labels, every reduction, ``avg_factor``): values and gradients w.r.t. the logits.

    mmdetection's sigmoid form computes in float32 whatever the logits' dtype (its ``label.float()``
    makes ``binary_cross_entropy_with_logits`` return float32); ours keeps float64 inputs in float64, so
    its float64 sigmoid cases are held at float32 precision (softmax ones at float64's).
    """
    precision = "float32" if case["loss"] == "sigmoid-ce" else None
    _check(case, lambda t, p: _ce_ours(case, t), ("logits",), precision)


# ------------------------------------------------------------------------------------------ authors' code
@pytest.mark.parametrize("case", _cases(AUTHORS, {"rs", "ap"}))
def test_authors_ranking_losses(case):
    """Rank & Sort (RankSortLoss ``RankSort``, delta 0.5 and 0) and AP loss (aLRPLoss
    ``APLoss``): values and updates."""
    if case["loss"] == "rs":
        fn = lambda t, p: L.rank_sort_loss(t["logits"], t["targets"], delta=p["delta"])  # noqa: E731
    else:
        fn = lambda t, p: L.ap_loss(t["logits"], t["targets"], delta=p["delta"])  # noqa: E731
    _check(case, fn, ("logits",))


@pytest.mark.parametrize("case", _cases(AUTHORS, {"alrp-head"}))
def test_authors_alrp_head_self_balance(case):
    """aLRP cls and loc terms, tie order and the period self-balance, iteration by iteration, as the released head."""
    p = case["params"]
    sb = L.ALRPSelfBalance(init=p["init"], period=p["period"])
    for k, it in enumerate(case["iterations"]):
        x = torch.tensor(it["logits"], dtype=torch.float32, requires_grad=True)
        y = torch.tensor(it["targets"], dtype=torch.float32)
        pos = torch.nonzero(y == 1).squeeze(1)
        loc = torch.tensor(it["loc"], dtype=torch.float32, requires_grad=True)
        if it["value"] is None:
            assert pos.numel() == 0
            sb(x.sum() * 0, x.sum() * 0, has_positives=False)
            continue
        full = torch.zeros_like(x).index_put((pos,), loc)
        cls, box = L.alrp_loss(x, y, full, delta=p["delta"])
        total = sb(cls, box)
        assert sb.weight == pytest.approx(it["sb_weight"], rel=1e-5), f"iteration {k}"
        _close(torch.stack([cls, sb.weight * box]).detach(), it["value"], "float32", f"iteration {k} values")
        gx, gl = torch.autograd.grad(total, [x, loc])
        _close(gx, it["grad_logits"], "float32", f"iteration {k} grad logits")
        _close(gl, it["grad_loc"], "float32", f"iteration {k} grad loc")


def test_alrp_period3_uses_the_new_weight_on_the_third_iteration_with_positives():
    """Period 3: the third iteration with positives already uses the new weight (the released head's order)."""
    (case,) = [c for c in AUTHORS["cases"] if c["name"] == "alrp-head-period3"]
    weights = [it.get("sb_weight") for it in case["iterations"]]
    assert weights[0] == weights[1] == 50.0 and weights[2] != 50.0


@pytest.mark.parametrize("case", _cases(AUTHORS, {"ecm"}))
def test_authors_ecm(case):
    """ECM (two-stage form, background channel from fg_bg_ratio) against ``EffectiveClassMarginLoss``.

    The float64 run of the authors' code is held at 1e-5; their float32 run differs from the exact
    detection weight ``a log((1 + a) / a)`` by float32 rounding of ``(1 + a) / a``, which we do not copy
    (relative error of the weights printed below, at most ~1e-4 on these counts).
    """

    def fn(t, p):
        return L.ecm_loss(t["logits"], t["labels"], case["inputs"]["counts"], fg_bg_ratio=p["fg_bg_ratio"])

    if case["dtype"] == "float64":
        _check(case, fn, ("logits",))
        mg = L.ecm_margins(case["inputs"]["counts"], case["params"]["fg_bg_ratio"])
        np.testing.assert_allclose(mg["weight"], case["detection_weight"], rtol=1e-10)
    else:
        t = _tensors(case)
        assert float(fn(t, case["params"])) == pytest.approx(case["value"][0], rel=1e-4)


def test_authors_ecm_extreme_logits_stay_finite():
    """|logit| > 52: the authors' exp/log form gives NaN in float32; ours (BCE on logits) is finite."""
    (case,) = [c for c in AUTHORS["cases"] if c["loss"] == "ecm-nan"]
    assert case["value"] == ["nan"]
    t = _tensors(case)
    assert math.isfinite(float(L.ecm_loss(t["logits"], t["labels"], case["inputs"]["counts"], fg_bg_ratio=6.3313)))


@pytest.mark.parametrize("case", _cases(AUTHORS, {"iou-balanced", "iou-balanced-l1"}))
def test_authors_iou_balanced(case):
    """IoU-balanced classification (focal base, eta 1.5) and localisation (lambda 1.5)
    against the authors' functions."""
    if case["loss"] == "iou-balanced":

        def fn(t, p):
            return L.iou_balanced_cls(
                t["logits"],
                t["targets"],
                t["ious"],
                eta=p["eta"],
                loss="focal",  # noqa: E731
                alpha=p["alpha"],
                gamma=p["gamma"],
                reduction="sum",
            )

        _check(case, fn, ("logits",))
    else:

        def fn(t, p):
            return L.iou_balanced_l1(
                t["pred"],
                t["target"],
                t["ious"],
                lam=p["lam"],
                w_loc=1.0,  # noqa: E731
                beta=p["beta"],
                reduction="sum",
            )

        _check(case, fn, ("pred",))


def test_authors_eqlv2_multi_call():
    """EQLv2 with its gradient statistics over three batches (the authors' ``EQLv2`` module, background channel)."""
    (case,) = [c for c in AUTHORS["cases"] if c["loss"] == "eqlv2"]
    C = len(case["calls"][0]["logits"][0]) - 1
    m = L.EQLv2(C, has_background=True).train()
    for k, (call, value, grad) in enumerate(zip(case["calls"], case["value"], case["grad"])):
        x = torch.tensor(call["logits"], dtype=torch.float64, requires_grad=True)
        out = m(x, torch.tensor(call["labels"]), reduction="mean")
        _close(out.detach(), value, "float64", f"call {k} value")
        _close(torch.autograd.grad(out, x)[0], grad, "float64", f"call {k} grad")


def test_fixtures_name_their_makers():
    for data in (MMDET, AUTHORS):
        assert data["made_by"]["torch"].startswith("2.13") and data["made_by"]["mmdet"] == "3.3.0"
    assert AUTHORS["made_by"]["kemaloksuz/aLRPLoss"].startswith("2cfaa8e")


@pytest.mark.parametrize("case", _cases(AUTHORS, {"rs-self-balance"}))
def test_authors_rs_value_self_balance(case):
    """``self_balance(L_rank + L_sort, L_box)`` against the released ``RankBasedATSSHead.loss`` (RS + its
    ``SB_weight``): the summed value and its gradients w.r.t. the logits and the per-positive box losses.

    Input mapping: the head's box term is ``sum(w * loss_bbox) / sum(w)`` with the positives' detached max
    scores ``w`` (``sum(w)`` below its ``EPS`` counts as 1); that box term is what ours balances. With box
    losses of exactly 0 the released code gives NaN (``0 * inf``); ours must be finite there (the checker
    requires it) and gives ``L_rank + L_sort``.
    """

    def fn(t, p):
        w = t["bbox_weights"].detach()
        avg = w.sum() if float(w.sum()) >= p["EPS"] else torch.ones((), dtype=w.dtype)
        box = (w * t["loss_bbox"]).sum() / avg
        r, s = L.rank_sort_loss(t["logits"], t["targets"], delta=p["delta"])
        return L.self_balance(r + s, box)

    ref = case["value"]
    total = sum(float(v) for v in ref)  # "nan" reads as NaN
    _check(dict(case, value=total), fn, ("logits", "loss_bbox"))
    if "zero-box" in case["name"]:
        assert math.isnan(total)
        t = _tensors(case)
        assert float(fn(t, case["params"])) == pytest.approx(float(ref[0]) + float(ref[1]), rel=1e-6)


@pytest.mark.parametrize("case", _cases(AUTHORS, {"guided"}))
def test_authors_guided_loss(case):
    """``guided_loss(cls, reg)`` against the sampling-free first release's RetinaNet block (its learnable scale at
    its initial 1): the summed value and the gradients w.r.t. both losses. Where ``L_cls`` is 0 the release gives
    NaN (``inf * 0``); ours must be finite there (the checker requires it) and equals ``L_reg``."""
    fn = lambda t, p: L.guided_loss(t["cls_loss"], t["reg_loss"], w_reg=p["w_reg"])  # noqa: E731
    case = dict(case, value=float(case["value"]), grad={k: float(v) for k, v in case["grad"].items()})
    _check(case, fn, ("cls_loss", "reg_loss"))
    if case["name"] == "guided-zero-cls":
        assert float(fn(_tensors(case), case["params"])) == pytest.approx(case["inputs"]["reg_loss"])


_CB_PATH = DATA / "authors-oracle" / "class_balanced.json"
CB = json.loads(_CB_PATH.read_text()) if _CB_PATH.exists() else {"cases": []}


@pytest.mark.parametrize("case", _cases(CB, {"class-balanced"}))
def test_authors_class_balanced(case):
    """``class_balanced`` against the authors' TensorFlow code (class-balanced-loss ``src/cifar_main.py``: the
    weights of ``main``, the softmax / sigmoid / focal branches of ``_tower_fn``, ``focal_loss``).

    Mapping: their softmax loss is ``tf.losses.softmax_cross_entropy`` with per-sample weights (sum over the
    N nonzero weights) -> ours "mean"; their sigmoid and focal losses are summed and divided by the number of
    positives (N, one per sample) -> ours "sum" / N; their focal loss has no alpha -> ``alpha=-1``.
    """
    p = case["params"]
    counts = case["inputs"]["counts"]
    np.testing.assert_allclose(L.class_balanced_weights(counts, p["beta"]), case["weights"], rtol=1e-12)

    def fn(t, q):
        x, y = t["logits"], t["labels"]
        if q["loss"] == "softmax":
            return L.class_balanced(x, y, counts, beta=q["beta"], loss="softmax", reduction="mean")
        onehot = torch.nn.functional.one_hot(y, x.shape[1]).to(x.dtype)
        out = L.class_balanced(
            x, onehot, counts, beta=q["beta"], loss=q["loss"], gamma=q["gamma"], alpha=-1.0, reduction="sum"
        )
        return out / x.shape[0]

    _check(case, fn, ("logits",))


def test_class_balanced_oracle_present():
    """The TensorFlow fixture is in the repository (the test above must not silently collect nothing)."""
    assert CB["cases"] and CB["made_by"]["tensorflow"].startswith("2.")


@pytest.mark.parametrize("case", _cases(AUTHORS, {"ranking-no-positives"}))
def test_authors_ranking_losses_without_positives(case):
    """The released RS, AP and aLRP forwards raise on a batch without positives; ours give 0 and a zero update."""
    assert case["raises"] and "RuntimeError" in case["raises"]
    x = torch.tensor(case["inputs"]["logits"], requires_grad=True)
    y = torch.tensor(case["inputs"]["targets"])
    which = case["params"]["which"]
    if which == "rs":
        out = sum(L.rank_sort_loss(x, y))
    elif which == "ap":
        out = L.ap_loss(x, y)
    else:
        out = sum(L.alrp_loss(x, y, torch.zeros_like(x)))
    assert float(out.detach()) == 0.0
    (g,) = torch.autograd.grad(out, x, allow_unused=True)
    assert g is None or not g.any()


_EMPTY = {
    "ciou": lambda p, t: L.ciou_loss(p, t, reduction="mean"),
    "diou": lambda p, t: L.diou_loss(p, t, reduction="mean"),
    "giou": lambda p, t: L.giou_loss(p, t, reduction="mean"),
    "iou": lambda p, t: L.iou_loss(p, t, reduction="mean"),
    "bounded-iou": lambda p, t: L.bounded_iou(p, t, reduction="mean"),
    "balanced-l1": lambda p, t: L.balanced_l1(p, t, reduction="mean"),
    "smooth-l1": lambda p, t: L.smooth_l1(p, t, reduction="mean"),
    "l1": lambda p, t: L.l1(p, t, reduction="mean"),
    "focal": lambda p, t: L.focal_loss(p[:, :3], t[:, :3], reduction="mean"),
}


@pytest.mark.parametrize("case", _cases(MMDET, {"empty"}))
def test_mmdet_empty_batches(case):
    """An empty batch with ``reduction="mean"``: 0 where mmdetection gives 0, and 0 (not its
    NaN) where it averages nothing."""
    pred = torch.zeros(0, 4, requires_grad=True)
    out = _EMPTY[case["params"]["which"]](pred, torch.zeros(0, 4))
    assert float(out.detach()) == 0.0
    assert case["value"] in ([0.0], ["nan"])
    (g,) = torch.autograd.grad(out, pred, allow_unused=True)
    assert g is None or g.numel() == 0


@pytest.mark.parametrize("case", _cases(AUTHORS, {"bags"}))
def test_authors_bags(case):
    """BAGS per-group mean loss against the authors' ``GSBBoxHeadWith0`` (every group keeps all its ``others``)."""
    counts = np.asarray(case["inputs"]["counts"], dtype=np.float64)
    l2b, ps = L.bags_label2binlabel(counts), L.bags_pred_slice(counts)
    beta = float("inf") if case["params"]["beta"] == "inf" else case["params"]["beta"]
    _check(case, lambda t, p: L.bags_loss(t["logits"], t["labels"], l2b, ps, beta=beta, reduction="mean"), ("logits",))
