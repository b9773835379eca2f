#!/usr/bin/env python3
"""Make the framework oracle fixtures in ``tests/data/`` from the frameworks' and the authors' own code.

Not run by CI (it needs the frameworks); the files it writes are, by ``tests/test_losses_oracle.py`` and
``tests/test_anchors_framework_oracle.py``. Three steps::

    python tools/make_framework_oracles.py install            # venv /work/venvs/mmdet: torch 2.13 CPU,
                                                              # mmdet 3.3.0, mmengine, mmcv-lite 2.1.0,
                                                              # detectron2's pure-Python dependencies
    /work/venvs/mmdet/bin/python tools/make_framework_oracles.py losses  --sources /work/.mirror
    /work/venvs/mmdet/bin/python tools/make_framework_oracles.py anchors --sources /work/.mirror
    /work/venvs/mmdet/bin/python tools/make_framework_oracles.py torchvision   # rpn, ssd300: torchvision's models
    /work/venvs/tf/bin/python tools/make_framework_oracles.py class-balanced   # a venv with tensorflow-cpu 2.21

``--sources`` holds git mirrors of the authors' repositories and detectron2, one folder per
``owner+name`` with the git directory at ``repo`` or ``repo/.git`` (what the session's fetch tool
makes). Files are read at the pinned commits below with ``git show`` and their functions and classes
are executed as written: the script only supplies what their imports would have given (a CPU ``.cuda()``,
a no-op registry decorator and ``all_reduce``). mmdetection runs from pip with ``mmcv._ext`` stubbed
(every loss and assigner used here is pure PyTorch); detectron2's pure-Python modules are imported from
its source with ``detectron2._C`` stubbed.

What is recorded: for each case the inputs, the official output (per element where the function has
one) and the gradient of the summed output with respect to each differentiable input, plus the
versions and commits that made them.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path("/work/venvs/mmdet")

#: authors' repositories: key -> (owner+name, commit, file)
AUTHORS = {
    "alrp": ("kemaloksuz+aLRPLoss", "2cfaa8ec3150692cca8b085221f1bd8c8c78db8e", "mmdet/models/losses/alrp_loss.py"),
    "alrp_head": (
        "kemaloksuz+aLRPLoss",
        "2cfaa8ec3150692cca8b085221f1bd8c8c78db8e",
        "mmdet/models/dense_heads/alrp_loss_retina_head.py",
    ),
    "ap": ("kemaloksuz+aLRPLoss", "2cfaa8ec3150692cca8b085221f1bd8c8c78db8e", "mmdet/models/losses/ap_loss.py"),
    "rs": (
        "kemaloksuz+RankSortLoss",
        "b41f64df70b1f8e3260e5c04015e0c7b59b339d9",
        "mmdet/models/losses/ranking_losses.py",
    ),
    "rs_head": (
        "kemaloksuz+RankSortLoss",
        "b41f64df70b1f8e3260e5c04015e0c7b59b339d9",
        "mmdet/models/dense_heads/rank_based_atss_head.py",
    ),
    "ecm": (
        "janghyuncho+ECM-Loss",
        "a6372408876e69b02c2d70817ed6b2f334400c12",
        "mmdet/models/losses/effective_class_margin_loss.py",
    ),
    "ecm_utils": (
        "janghyuncho+ECM-Loss",
        "a6372408876e69b02c2d70817ed6b2f334400c12",
        "mmdet/models/losses/ecm_utils.py",
    ),
    "ioub": (
        "ShengkaiWu+IoU-aware-single-stage-object-detector",
        "67b8955eb59137590dbadc6aac45529ae9459e4a",
        "mmdet/core/loss/losses.py",
    ),
    "eqlv2": ("tztztztztz+eqlv2", None, "mmdet/models/losses/eqlv2.py"),
    "bags": (
        "FishYuLi+BalancedGroupSoftmax",
        "90e04fd8ccecd2bc61bbe6053a741ae708da2794",
        "mmdet/models/bbox_heads/gs_bbox_head_with0.py",
    ),
    "guided": (
        "chenjoya+sampling-free",
        "1e93d9a606935d68d87142ed6d9e73f0865a84bc",
        "sampling_free/modeling/rpn/retinanet/loss.py",
    ),
    "class_balanced": (
        "richardaecn+class-balanced-loss",
        "1d7857208a2abc03d84e35a9d5383af8225d4b4d",
        "src/cifar_main.py",
    ),
    "detectron2": ("facebookresearch+detectron2", None, ""),
}


# ------------------------------------------------------------------------------------------ install
def install(venv: Path) -> None:
    """Create ``venv`` with torch 2.13 (CPU, first), mmdet 3.3.0, mmengine, mmcv-lite 2.1.0
    and detectron2's Python deps."""
    subprocess.check_call([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.check_call(pip + ["torch==2.13.0"])
    subprocess.check_call(pip + ["mmdet==3.3.0", "mmengine", "mmcv-lite==2.1.0", "numpy", "scipy", "pycocotools"])
    # detectron2's pure-Python modules (imported from its source) need these; torchvision's compiled ops do not
    # load on this torch, its Python parts are imported through /work/shared/tools/tvshim.py
    subprocess.check_call(pip + ["torchvision==0.28.0", "--no-deps"])
    subprocess.check_call(
        pip + ["fvcore", "iopath", "omegaconf", "hydra-core", "termcolor", "tabulate", "yacs", "cloudpickle", "Pillow"]
    )


def stub_mmcv_ext() -> None:
    """mmcv-lite has no compiled ops: a ``mmcv._ext`` whose functions raise if anything calls them."""
    ext = types.ModuleType("mmcv._ext")

    def missing(name):
        if name.startswith("__"):
            raise AttributeError(name)

        def f(*a, **k):
            raise RuntimeError(f"mmcv._ext.{name} is a stub: this oracle must not need compiled ops")

        return f

    ext.__getattr__ = missing
    sys.modules["mmcv._ext"] = ext


# ------------------------------------------------------------------------------------------ sources
def git_dir(sources: Path, key: str) -> Path:
    repo = sources / AUTHORS[key][0] / "repo"
    return repo / ".git" if (repo / ".git").is_dir() else repo


def commit_of(sources: Path, key: str) -> str:
    pinned = AUTHORS[key][1]
    if pinned:
        return pinned
    return subprocess.check_output(
        ["git", "--git-dir", str(git_dir(sources, key)), "rev-parse", "HEAD"], text=True
    ).strip()


def source_text(sources: Path, key: str) -> str:
    _, _, path = AUTHORS[key]
    return subprocess.check_output(
        ["git", "--git-dir", str(git_dir(sources, key)), "show", f"{commit_of(sources, key)}:{path}"], text=True
    )


def load_defs(text: str, names: list[str], namespace: dict) -> dict:
    """Execute the named top-level functions/classes of a source file, as written, into ``namespace``."""
    tree = ast.parse(text)
    keep = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in names]
    missing = set(names) - {n.name for n in keep}
    if missing:
        raise SystemExit(f"not found in source: {sorted(missing)}")
    exec(compile(ast.Module(body=keep, type_ignores=[]), "<authors>", "exec"), namespace)
    return namespace


def head_block(text: str, test: str, start: str, end: str | None, label: str):
    """Compile statements of a head's ``loss`` method, as written: in the ``if`` whose test contains ``test``,
    from the statement containing ``start`` through the one containing ``end`` (or the branch's end)."""
    tree = ast.parse(text)
    loss_fn = next(
        n
        for c in tree.body
        if isinstance(c, ast.ClassDef)
        for n in c.body
        if isinstance(n, ast.FunctionDef) and n.name == "loss"
    )
    branch = next(n for n in ast.walk(loss_fn) if isinstance(n, ast.If) and test in ast.unparse(n.test))
    first = next(i for i, st in enumerate(branch.body) if start in ast.unparse(st))
    last = (
        len(branch.body) - 1 if end is None else next(i for i, st in enumerate(branch.body) if end in ast.unparse(st))
    )
    return compile(ast.Module(body=branch.body[first : last + 1], type_ignores=[]), label, "exec")


class _Registry:
    def register_module(self, *a, **k):
        return lambda cls: cls


def authors_namespace(torch) -> dict:
    import functools

    import numpy as np
    import torch.nn as nn
    import torch.nn.functional as F

    fake_dist = types.SimpleNamespace(all_reduce=lambda t, *a, **k: t)
    return {
        "torch": torch,
        "nn": nn,
        "F": F,
        "np": np,
        "LOSSES": _Registry(),
        "MODELS": _Registry(),
        "partial": functools.partial,
        "dist": fake_dist,
        "get_root_logger": lambda: types.SimpleNamespace(info=print),
        "math": math,
    }


# ------------------------------------------------------------------------------------------ helpers
def tolist(t):
    return t.detach().cpu().double().tolist()


def run_case(torch, fn, inputs: dict, dtype: str, grad: tuple = (), **params):
    """Call ``fn(**tensors, **params)``; value and gradients of its (summed) output w.r.t. ``grad``."""
    dt = getattr(torch, dtype)
    tens = {}
    for k, v in inputs.items():
        if isinstance(v, dict) and "int" in v:
            tens[k] = torch.tensor(v["int"], dtype=torch.int64)
        else:
            tens[k] = torch.tensor(v, dtype=dt, requires_grad=k in grad)
    out = fn(**tens, **params)
    outs = out if isinstance(out, tuple) else (out,)
    total = sum(o.sum() for o in outs)
    grads = {}
    if grad:
        g = torch.autograd.grad(total, [tens[k] for k in grad], allow_unused=True)
        grads = {k: (tolist(x) if x is not None else None) for k, x in zip(grad, g)}
    return [tolist(o) for o in outs], grads


def case(name, loss, dtype, inputs, params, value, grads, **extra):
    return {
        "name": name,
        "loss": loss,
        "dtype": dtype,
        "inputs": inputs,
        "params": params,
        "value": value,
        "grad": grads,
        **extra,
    }


# ------------------------------------------------------------------------------------------ mmdet losses
BOX_PAIRS = {  # pred, target (xyxy)
    "issue": ([0, 0, 10, 10], [5, 5, 25, 15]),
    "bounded_issue": ([0, 0, 10, 10], [3, 4, 13, 16]),
    "overlap_hi": ([1, 2, 11, 12], [0, 0, 10, 11]),
    "overlap_mid": ([10, 10, 50, 40], [20, 5, 60, 45]),
    "disjoint": ([0, 0, 10, 10], [20, 20, 30, 40]),
    "touching": ([0, 0, 10, 10], [10, 0, 20, 10]),
    "identical": ([3, 4, 30, 40], [3, 4, 30, 40]),
    "tiny": ([100.0, 100.0, 100.01, 100.02], [100.0, 100.0, 100.02, 100.01]),
    "tiny_far": ([5.0, 5.0, 5.01, 5.02], [5.005, 5.0, 5.015, 5.02]),
    "thin": ([0, 0, 1000, 0.5], [10, 0, 1010, 0.6]),
    "contained": ([0, 0, 100, 100], [40, 40, 60, 60]),
    "far_aspect": ([0, 0, 100, 5], [40, 40, 45, 140]),
    "border": ([0, 0, 1333, 800], [0, 700, 120, 800]),
}


def _raw(f):
    """The function under mmdet's ``weighted_loss`` wrapper (reduction none)."""
    return getattr(f, "__wrapped__", f)


def _iou_loss_cases(torch, il) -> list:
    cases = []
    pairs = list(BOX_PAIRS.values())
    names = list(BOX_PAIRS)
    pred = [p for p, _ in pairs]
    target = [t for _, t in pairs]
    inputs = {"pred": pred, "target": target}
    for dtype in ("float64", "float32"):
        for loss, fn, params in (
            ("ciou", _raw(il.ciou_loss), {"eps": 1e-7}),
            ("diou", _raw(il.diou_loss), {"eps": 1e-7}),
            ("giou", _raw(il.giou_loss), {"eps": 1e-7}),
            ("iou", _raw(il.iou_loss), {"mode": "log", "eps": 1e-6}),
            ("iou", _raw(il.iou_loss), {"mode": "linear", "eps": 1e-6}),
            ("bounded-iou", _raw(il.bounded_iou_loss), {"beta": 0.2, "eps": 1e-3}),
        ):
            value, grads = run_case(torch, fn, inputs, dtype, ("pred",), **params)
            cases.append(
                case(
                    f"{loss}-{params.get('mode', 'default')}-{dtype}",
                    loss,
                    dtype,
                    inputs,
                    params,
                    value[0],
                    grads,
                    rows=names,
                    source=f"mmdet {fn.__module__}.{fn.__name__}",
                )
            )
    return cases


def _l1_loss_cases(torch, bl1, sl1) -> list:
    cases = []
    # l1 family on deltas
    x = [0.0, 0.05, 0.11, 0.5, 0.999, 1.0, 1.5, 3.0, -0.05, -0.5, -2.0, 1.0 / 9]
    inputs = {"pred": [[v, -v, 2 * v, v / 3] for v in x], "target": [[0.0, 0.0, 0.0, 0.0]] * len(x)}
    for beta in (1.0, 0.11, 1.0 / 9):
        params = {"beta": beta, "alpha": 0.5, "gamma": 1.5}
        value, grads = run_case(torch, _raw(bl1.balanced_l1_loss), inputs, "float64", ("pred",), **params)
        cases.append(
            case(
                f"balanced-l1-beta{beta:.4f}",
                "balanced-l1",
                "float64",
                inputs,
                params,
                value[0],
                grads,
                source="mmdet mmdet.models.losses.balanced_l1_loss.balanced_l1_loss",
            )
        )
    for beta in (1.0, 1.0 / 9):
        value, grads = run_case(torch, _raw(sl1.smooth_l1_loss), inputs, "float64", ("pred",), beta=beta)
        cases.append(
            case(
                f"smooth-l1-beta{beta:.4f}",
                "smooth-l1",
                "float64",
                inputs,
                {"beta": beta},
                value[0],
                grads,
                source="mmdet mmdet.models.losses.smooth_l1_loss.smooth_l1_loss",
            )
        )
    value, grads = run_case(torch, _raw(sl1.l1_loss), inputs, "float64", ("pred",))
    cases.append(
        case(
            "l1",
            "l1",
            "float64",
            inputs,
            {},
            value[0],
            grads,
            source="mmdet mmdet.models.losses.smooth_l1_loss.l1_loss",
        )
    )
    return cases


def _focal_loss_cases(torch, fl) -> list:
    cases = []
    # focal loss (the pure-PyTorch form) on ordinary and extreme logits
    logits = [[-3.0, 0.0, 2.5], [60.0, -60.0, 0.3], [-100.0, 100.0, 17.0], [1e-3, -1e-3, 4.0]]
    targets = [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    for dtype in ("float64", "float32"):
        inputs = {"pred": logits, "target": targets}
        value, grads = run_case(
            torch, fl.py_sigmoid_focal_loss, inputs, dtype, ("pred",), gamma=2.0, alpha=0.25, reduction="none"
        )
        cases.append(
            case(
                f"focal-{dtype}",
                "focal",
                dtype,
                inputs,
                {"gamma": 2.0, "alpha": 0.25},
                value[0],
                grads,
                source="mmdet mmdet.models.losses.focal_loss.py_sigmoid_focal_loss",
            )
        )
    # gamma < 1 with confidently right negatives: 1 - p_t must not be formed by subtraction (a NaN gradient
    # otherwise). A positive whose sigmoid rounds to 1 gives NaN in mmdetection too (0^gamma): left out.
    inputs = {"pred": [[12.0, -30.0, 0.7], [-20.0, 18.0, -1.5]], "target": [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]}
    for gamma, alpha in ((0.5, 0.25), (0.5, 0.75), (1.5, 0.5)):
        value, grads = run_case(
            torch, fl.py_sigmoid_focal_loss, inputs, "float32", ("pred",), gamma=gamma, alpha=alpha, reduction="none"
        )
        cases.append(
            case(
                f"focal-gamma{gamma}-alpha{alpha}-float32",
                "focal",
                "float32",
                inputs,
                {"gamma": gamma, "alpha": alpha},
                value[0],
                grads,
                source="mmdet mmdet.models.losses.focal_loss.py_sigmoid_focal_loss",
            )
        )
    return cases


def mmdet_losses(torch) -> list:
    import importlib

    bl1, fl, ghm_loss, il, sl1 = (
        importlib.import_module(f"mmdet.models.losses.{m}")
        for m in ("balanced_l1_loss", "focal_loss", "ghm_loss", "iou_loss", "smooth_l1_loss")
    )

    cases = _iou_loss_cases(torch, il)
    cases += _l1_loss_cases(torch, bl1, sl1)
    cases += _focal_loss_cases(torch, fl)
    cases += empty_cases(torch, il, bl1, sl1, fl)
    cases += ghm_cases(torch, ghm_loss)
    cases += seesaw_cases(torch)
    cases += seesaw_module_cases(torch)
    cases += cross_entropy_cases(torch)
    return cases


def empty_cases(torch, il, bl1, sl1, fl) -> list:
    """Empty batches through mmdetection's own wrappers with ``reduction="mean"`` (NaN where it averages nothing)."""
    out = []
    for loss, fn, params in (
        ("ciou", il.ciou_loss, {}),
        ("diou", il.diou_loss, {}),
        ("giou", il.giou_loss, {}),
        ("iou", il.iou_loss, {"mode": "log"}),
        ("bounded-iou", il.bounded_iou_loss, {}),
        ("balanced-l1", bl1.balanced_l1_loss, {}),
        ("smooth-l1", sl1.smooth_l1_loss, {}),
        ("l1", sl1.l1_loss, {}),
    ):
        pred = torch.zeros(0, 4, requires_grad=True)
        v = fn(pred, torch.zeros(0, 4), reduction="mean", **params)
        value = float(v)
        out.append(
            {
                "name": f"{loss}-empty",
                "loss": "empty",
                "dtype": "float32",
                "params": {"which": loss, **params},
                "value": [value if math.isfinite(value) else str(value)],
                "grad": {},
                "source": f"mmdet {fn.__module__}.{fn.__name__} (weighted_loss wrapper, reduction mean)",
            }
        )
    v = fl.py_sigmoid_focal_loss(torch.zeros(0, 3), torch.zeros(0, 3), reduction="mean")
    out.append(
        {
            "name": "focal-empty",
            "loss": "empty",
            "dtype": "float32",
            "params": {"which": "focal"},
            "value": [float(v) if math.isfinite(float(v)) else str(float(v))],
            "grad": {},
            "source": "mmdet mmdet.models.losses.focal_loss.py_sigmoid_focal_loss (reduction mean)",
        }
    )
    return out


def ghm_cases(torch, ghm_loss) -> list:
    cases = []
    # the float32 bin edge: g = sigmoid(x) equal to a float32 edge that rounds below k / bins
    calls = [
        {"pred": [[0.26826388, 0.3091045, 0.17376928]], "target": [[0.0, 0.0, 0.0]], "label_weight": [[1.0, 1.0, 1.0]]}
    ]
    for bins, mmt in ((30, 0.0), (10, 0.0)):
        cases.append(ghm_run(torch, ghm_loss.GHMC, "ghm-c", f"ghm-c-edge-bins{bins}", calls, bins=bins, momentum=mmt))
    g = torch.Generator().manual_seed(7)
    calls = []
    for k in range(3):  # multi-call state: three batches with momentum
        logits = torch.randn(40, 5, generator=g, dtype=torch.float64) * 3
        target = (torch.rand(40, 5, generator=g) < 0.1).double()
        weight = (torch.rand(40, 5, generator=g) < 0.9).double()
        if k == 1:
            logits[0, :] = torch.tensor([60.0, -60.0, 0.0, 80.0, -80.0])
        calls.append({"pred": logits.tolist(), "target": target.tolist(), "label_weight": weight.tolist()})
    calls.append({"pred": calls[0]["pred"], "target": calls[0]["target"], "label_weight": [[0.0] * 5] * 40})
    cases.append(ghm_run(torch, ghm_loss.GHMC, "ghm-c", "ghm-c-momentum-4calls", calls, bins=30, momentum=0.75))
    cases.append(ghm_run(torch, ghm_loss.GHMC, "ghm-c", "ghm-c-nomomentum", calls[:1], bins=30, momentum=0.0))
    calls = []
    for k in range(3):
        pred = torch.randn(25, 4, generator=g, dtype=torch.float64) * (0.05 if k == 0 else 0.5)
        tgt = torch.randn(25, 4, generator=g, dtype=torch.float64) * 0.1
        calls.append({"pred": pred.tolist(), "target": tgt.tolist(), "label_weight": [[1.0] * 4] * 25})
    cases.append(ghm_run(torch, ghm_loss.GHMR, "ghm-r", "ghm-r-momentum-3calls", calls, mu=0.02, bins=10, momentum=0.7))
    cases.append(ghm_run(torch, ghm_loss.GHMR, "ghm-r", "ghm-r-nomomentum", calls[:1], mu=0.02, bins=10, momentum=0.0))
    return cases


def ghm_run(torch, cls, loss, name, calls, **params):
    module = cls(**params)
    values, grads = [], []
    for c in calls:
        pred = torch.tensor(c["pred"], dtype=torch.float32, requires_grad=True)
        out = module(pred, torch.tensor(c["target"], dtype=torch.float32), torch.tensor(c["label_weight"]))
        values.append(float(out))
        grads.append(tolist(torch.autograd.grad(out, pred)[0]))
    return {
        "name": name,
        "loss": loss,
        "dtype": "float32",
        "calls": calls,
        "params": params,
        "value": values,
        "grad": grads,
        "source": f"mmdet mmdet.models.losses.ghm_loss.{cls.__name__}",
    }


def seesaw_cases(torch) -> list:
    from mmdet.models.losses.seesaw_loss import seesaw_ce_loss

    g = torch.Generator().manual_seed(11)
    C = 5
    logits = (torch.randn(12, C, generator=g, dtype=torch.float64) * 2).tolist()
    logits[3][2] = 40.0
    labels = [0, 1, 2, 3, 4, 4, 0, 0, 1, 3, 2, 4]
    counts = [50.0, 10.0, 3.0, 1.0, 0.0]  # cumulative samples per class (a class never seen counts as 1)
    cls_score = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    out = seesaw_ce_loss(
        cls_score,
        torch.tensor(labels),
        None,
        torch.tensor(counts, dtype=torch.float64),
        C,
        0.8,
        2.0,
        1e-2,
        "none",
        None,
    )
    grad = torch.autograd.grad(out.sum(), cls_score)[0]
    return [
        {
            "name": "seesaw-ce",
            "loss": "seesaw",
            "dtype": "float64",
            "inputs": {"logits": logits, "labels": {"int": labels}, "counts": counts},
            "params": {"p": 0.8, "q": 2.0, "eps": 1e-2},
            "value": tolist(out),
            "grad": {"logits": tolist(grad)},
            "source": "mmdet mmdet.models.losses.seesaw_loss.seesaw_ce_loss",
        }
    ]


def seesaw_module_cases(torch) -> list:
    """mmdetection's ``SeesawLoss`` module over several calls: its cumulative counts, then values and gradients.

    The module takes ``C + 2`` columns (C classes, then two objectness logits) and labels ``0..C`` (C the
    background); each call first adds every label of the batch to ``cum_samples`` (length C + 1), then
    computes the class term on the positives (``loss_cls_classes``, what the seesaw factors act on) and a
    plain 2-way cross-entropy on the objectness columns. Recorded per call: ``cum_samples``, both terms and
    the gradient of ``loss_cls_classes`` w.r.t. the whole ``cls_score``.
    """
    from mmdet.models.losses.seesaw_loss import SeesawLoss

    C = 5
    g = torch.Generator().manual_seed(29)
    label_sets = [
        [0, 0, 0, 1, 5, 5, 0, 1, 0, 5],  # classes 2..4 not seen yet (their count clamps to 1)
        [2, 0, 5, 5, 5, 1, 0, 0, 3, 0, 0, 5],  # 2 and 3 appear
        [5, 5, 5, 5],  # background only: no class term
        [4, 3, 2, 1, 0, 0, 0, 0, 0, 2, 5, 0, 1, 4],
        [1, 1, 4, 0, 3],
    ]
    module = SeesawLoss(p=0.8, q=2.0, num_classes=C, eps=1e-2, reduction="mean", loss_weight=1.0)
    calls = []
    for k, labels in enumerate(label_sets):
        logits = torch.randn(len(labels), C + 2, generator=g, dtype=torch.float32) * 2
        if k == 3:
            logits[0, 1] = 40.0  # a very confident wrong class: the compensation factor at its largest
            logits[2, 2] = -30.0
        x = logits.clone().requires_grad_(True)
        out = module(x, torch.tensor(labels))
        cls_term, obj = out["loss_cls_classes"], out["loss_cls_objectness"]
        grad = torch.autograd.grad(cls_term, x, allow_unused=True)[0] if cls_term.requires_grad else None
        calls.append(
            {
                "logits": logits.tolist(),
                "labels": labels,
                "cum_samples": tolist(module.cum_samples),
                "loss_cls_classes": float(cls_term.detach()),
                "loss_cls_objectness": float(obj.detach()),
                "grad_cls_score": tolist(grad) if grad is not None else tolist(torch.zeros_like(x)),
            }
        )
    return [
        {
            "name": "seesaw-module-5calls",
            "loss": "seesaw-module",
            "dtype": "float32",
            "calls": calls,
            "params": {"num_classes": C, "p": 0.8, "q": 2.0, "eps": 1e-2, "reduction": "mean"},
            "source": "mmdet mmdet.models.losses.seesaw_loss.SeesawLoss (forward, several calls)",
        }
    ]


def _softmax_ce_cases(one, full, lab_ign, lab_255, class_weight, n_pos, dtype) -> None:
    """``cross_entropy_cases``' softmax cases: C + 1 columns, background last."""
    # softmax: C + 1 columns, background last
    one("softmax-none", False, full, lab_ign, {"ignore_index": -1, "reduction": "none"}, {}, dtype)
    one(
        "softmax-classweight-none",
        False,
        full,
        lab_ign,
        {"ignore_index": -1, "class_weight": class_weight, "reduction": "none"},
        {},
        dtype,
    )
    one(
        "softmax-classweight-mean-nonignore",
        False,
        full,
        lab_ign,
        {"ignore_index": -1, "class_weight": class_weight, "avg_non_ignore": True},
        {},
        dtype,
    )
    one("softmax-sum", False, full, lab_ign, {"ignore_index": -1, "reduction": "sum"}, {}, dtype)
    one("softmax-avgfactor", False, full, lab_ign, {"ignore_index": -1}, {"avg_factor": n_pos}, dtype)
    one(
        "softmax-ignore255-mean-nonignore",
        False,
        full,
        lab_255,
        {"ignore_index": 255, "avg_non_ignore": True},
        {},
        dtype,
    )


def _sigmoid_ce_cases(one, cls_only, lab_ign, soft_targets, sample_weight, class_weight, n_pos, dtype) -> None:
    """``cross_entropy_cases``' sigmoid cases (``class_weight``: the C foreground classes' weights)."""
    # sigmoid: C columns, integer labels expanded to one-hot (background C: all zeros)
    one("sigmoid-onehot-none", True, cls_only, lab_ign, {"ignore_index": -1, "reduction": "none"}, {}, dtype)
    one("sigmoid-onehot-mean", True, cls_only, lab_ign, {"ignore_index": -1}, {}, dtype)
    one("sigmoid-onehot-avgfactor", True, cls_only, lab_ign, {"ignore_index": -1}, {"avg_factor": n_pos}, dtype)
    one(
        "sigmoid-onehot-sampleweight-none",
        True,
        cls_only,
        lab_ign,
        {"ignore_index": -1, "reduction": "none"},
        {"weight": sample_weight},
        dtype,
    )
    one(
        "sigmoid-onehot-classweight-none",
        True,
        cls_only,
        lab_ign,
        {"ignore_index": -1, "class_weight": class_weight, "reduction": "none"},
        {},
        dtype,
    )
    one("sigmoid-soft-none", True, cls_only, soft_targets, {"reduction": "none"}, {}, dtype)
    one(
        "sigmoid-soft-elementweight-sum",
        True,
        cls_only,
        soft_targets,
        {"reduction": "sum"},
        {"weight": [[w * (1 + j) for j in range(len(cls_only[0]))] for w in sample_weight]},
        dtype,
    )


def cross_entropy_cases(torch) -> list:
    """mmdetection's ``CrossEntropyLoss`` module, softmax and sigmoid, with the arguments ``sigmoid_ce`` /
    ``softmax_ce`` map onto: class weights, sample weights, ``ignore_index``, ``avg_non_ignore``,
    ``avg_factor`` and each reduction. ``value`` is the module's output (element-wise for "none"),
    ``grad`` the gradient of its sum w.r.t. ``cls_score``.
    """
    from mmdet.models.losses import CrossEntropyLoss

    g = torch.Generator().manual_seed(31)
    C = 4
    N = 14
    logits = torch.randn(N, C + 1, generator=g, dtype=torch.float64) * 3
    logits[0] = torch.tensor([60.0, -60.0, 0.0, 1.0, -2.0])  # extreme logits
    logits[1] = torch.tensor([-100.0, 100.0, 17.0, 0.0, 0.0])
    soft_labels = [0, 1, 2, 3, 4, 4, 4, -1, 0, 2, 4, 255, 1, 4]  # C (= 4) is the background class
    class_weight = [1.0, 2.5, 0.5, 3.0, 0.25]
    sample_weight = (torch.rand(N, generator=g, dtype=torch.float64) * 2).tolist()
    soft_targets = torch.rand(N, C, generator=g, dtype=torch.float64).tolist()
    cases = []

    def one(name, use_sigmoid, cls_score, label, module_args, call_args, dtype):
        dt = getattr(torch, dtype)
        m = CrossEntropyLoss(use_sigmoid=use_sigmoid, **module_args)
        x = torch.tensor(cls_score, dtype=dt, requires_grad=True)
        lab = torch.tensor(label["int"]) if isinstance(label, dict) else torch.tensor(label, dtype=dt)
        kw = {k: (torch.tensor(v, dtype=dt) if k == "weight" else v) for k, v in call_args.items()}
        out = m(x, lab, **kw)
        grad = torch.autograd.grad(out.sum(), x)[0]
        cases.append(
            {
                "name": f"ce-{name}-{dtype}",
                "loss": "sigmoid-ce" if use_sigmoid else "softmax-ce",
                "dtype": dtype,
                "inputs": {"logits": cls_score, "labels": label},
                "params": {"module": module_args, "call": call_args},
                "value": tolist(out),
                "grad": {"logits": tolist(grad)},
                "source": "mmdet mmdet.models.losses.cross_entropy_loss.CrossEntropyLoss",
            }
        )

    lab_ign = {"int": [y if y != 255 else 4 for y in soft_labels]}  # -1 ignored, 255 -> background
    lab_255 = {"int": [y if y != -1 else 2 for y in soft_labels]}  # 255 ignored
    full = logits.tolist()
    cls_only = logits[:, :C].tolist()
    n_pos = sum(1 for y in lab_ign["int"] if 0 <= y < C)
    for dtype in ("float64", "float32"):
        _softmax_ce_cases(one, full, lab_ign, lab_255, class_weight, n_pos, dtype)
        _sigmoid_ce_cases(one, cls_only, lab_ign, soft_targets, sample_weight, class_weight[:C], n_pos, dtype)
    return cases


# ------------------------------------------------------------------------------------------ authors' losses
def authors_losses(torch, sources: Path) -> list:
    torch.Tensor.cuda = lambda self, *a, **k: self  # the authors' buffers are made with .cuda()
    cases = []
    cases += ranking_cases(torch, sources)
    cases += alrp_head_cases(torch, sources)
    cases += rs_self_balance_cases(torch, sources)
    cases += guided_cases(torch, sources)
    cases += ecm_cases(torch, sources)
    cases += iou_balanced_cases(torch, sources)
    cases += eqlv2_cases(torch, sources)
    cases += bags_cases(torch, sources)
    return cases


def bags_cases(torch, sources: Path) -> list:
    """BAGS: the authors' ``GSBBoxHeadWith0`` label remapping, ``others`` sampling and per-group loss, as written.

    Their methods run on a bare object holding the group tables of ``imbalance_cli.losses.bags_label2binlabel``
    / ``bags_pred_slice`` (their label 0 is the background, ours C: the columns are rotated to their
    convention) and mmdetection's ``CrossEntropyLoss`` as ``loss_bin``. Batches are chosen so that every
    group keeps all its ``others`` boxes (``floor(ratio * positives)`` reaches their number), which is the
    only case two different random generators can agree on.
    """
    sys.path.insert(0, str(ROOT))
    import numpy as np
    from mmdet.models.losses import CrossEntropyLoss

    from imbalance_cli.losses import bags_label2binlabel, bags_pred_slice

    tree = ast.parse(source_text(sources, "bags"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "GSBBoxHeadWith0")
    methods = [
        n
        for n in cls.body
        if isinstance(n, ast.FunctionDef) and n.name in ("_sample_others", "_remap_labels", "_slice_preds", "loss")
    ]
    ns = authors_namespace(torch)
    ns["force_fp32"] = lambda **k: lambda f: f
    body = ast.ClassDef(name="Head", bases=[], keywords=[], body=methods, decorator_list=[])
    exec(compile(ast.fix_missing_locations(ast.Module(body=[body], type_ignores=[])), "<bags>", "exec"), ns)
    cases = []
    g = torch.Generator().manual_seed(23)
    for name, counts, labels, ratio in (
        ("beta8-small", [3, 50, 400, 5000, 7, 120], [0, 1, 2, 3, 6, 6, 4, 5, 1, 3], 8.0),
        ("all-others", [3, 50, 400, 5000, 7, 120], [0, 1, 2, 3, 6, 6, 4, 5, 1, 6, 6, 6, 2, 3, 3, 3, 0, 6], 1e9),
        ("group-without-its-classes", [3, 50, 400, 5000], [2, 3, 4, 4, 3], 8.0),
    ):
        C = len(counts)
        l2b = bags_label2binlabel(np.asarray(counts, float))
        ps = bags_pred_slice(np.asarray(counts, float))
        theirs = torch.cat([l2b[:, C:], l2b[:, :C]], dim=1)  # their label 0 = background
        head = ns["Head"]()
        head.label2binlabel, head.pred_slice, head.others_sample_ratio = theirs, ps, ratio
        head.loss_bins = [CrossEntropyLoss() for _ in range(ps.shape[0])]
        T = int(ps[-1, 0] + ps[-1, 1])
        logits = (torch.randn(len(labels), T, generator=g, dtype=torch.float64) * 2).tolist()
        x = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
        their_labels = torch.tensor([0 if y == C else y + 1 for y in labels])
        losses = head.loss(x, None, their_labels, None, None, None)
        total = sum(losses.values())
        grad = torch.autograd.grad(total, x)[0]
        cases.append(
            {
                "name": f"bags-{name}",
                "loss": "bags",
                "dtype": "float64",
                "inputs": {"logits": logits, "labels": {"int": labels}, "counts": counts},
                "params": {"beta": ratio if ratio < 1e8 else "inf"},
                "value": [float(total)],
                "per_group": [float(v) for v in losses.values()],
                "grad": {"logits": tolist(grad)},
                "source": "BalancedGroupSoftmax gs_bbox_head_with0.GSBBoxHeadWith0 "
                "(_remap_labels, _sample_others, loss)",
            }
        )
    return cases


def _ranking_inputs(torch):
    g = torch.Generator().manual_seed(3)
    out = {}
    logits = torch.randn(60, generator=g, dtype=torch.float64) * 2
    labels = (torch.rand(60, generator=g) < 0.2).double()
    labels[torch.rand(60, generator=g) < 0.05] = -1.0
    out["random"] = (logits.tolist(), labels.tolist())
    # ties: 20 positives on three exact logit values (torch.argsort is not stable beyond 16 elements)
    tl = [0.5] * 8 + [1.25] * 7 + [-0.75] * 5 + [0.1, 0.9, -2.0, 3.0, 0.5, 1.25, 4.0, -1.0]
    ty = [1.0] * 20 + [0.0] * 8
    out["ties"] = (tl, ty)
    out["extreme"] = ([80.0, -80.0, 0.0, 55.0, -55.0, 1e-4, 60.0], [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    out["one_positive"] = ([4.0, -1.0, 3.0, 5.0], [1.0, 0.0, 0.0, 0.0])
    return out


def ranking_cases(torch, sources: Path) -> list:
    ns = authors_namespace(torch)
    load_defs(source_text(sources, "rs"), ["RankSort"], ns)
    load_defs(source_text(sources, "ap"), ["APLoss"], ns)
    load_defs(source_text(sources, "alrp"), ["aLRPLoss"], ns)
    cases = []
    for name, fn in (
        ("rs", lambda x, y: ns["RankSort"].apply(x, y, 0.5)),
        ("ap", lambda x, y: ns["APLoss"].apply(x, y, 1.0)),
        ("alrp", lambda x, y: ns["aLRPLoss"].apply(x, y, torch.zeros(0), 1.0)),
    ):
        try:  # a batch without positives
            fn(torch.tensor([0.3, -1.0, 2.0]), torch.tensor([0.0, 0.0, -1.0]))
            raised = None
        except Exception as e:  # noqa: BLE001  (recorded, whatever it is)
            raised = f"{type(e).__name__}: {e}"
        cases.append(
            {
                "name": f"{name}-no-positives",
                "loss": "ranking-no-positives",
                "dtype": "float32",
                "inputs": {"logits": [0.3, -1.0, 2.0], "targets": [0.0, 0.0, -1.0]},
                "params": {"which": name},
                "raises": raised,
                "value": None,
                "grad": {},
                "source": f"{name} official forward",
            }
        )
    for key, (logits, labels) in _ranking_inputs(torch).items():
        g = torch.Generator().manual_seed(5)
        ious = (torch.rand(len(labels), generator=g, dtype=torch.float64) * 0.8 + 0.15).tolist()
        rs_targets = [iou if y > 0 else y for iou, y in zip(ious, labels)]
        for delta in (0.5, 0.0):
            x = torch.tensor(logits, dtype=torch.float32, requires_grad=True)
            r, s = ns["RankSort"].apply(x, torch.tensor(rs_targets, dtype=torch.float32), delta)
            grad = torch.autograd.grad(r + s, x)[0]
            cases.append(
                {
                    "name": f"rs-{key}-delta{delta}",
                    "loss": "rs",
                    "dtype": "float32",
                    "inputs": {"logits": logits, "targets": rs_targets},
                    "params": {"delta": delta},
                    "value": [float(r), float(s)],
                    "grad": {"logits": tolist(grad)},
                    "source": "RankSortLoss ranking_losses.RankSort",
                }
            )
        x = torch.tensor(logits, dtype=torch.float32, requires_grad=True)
        v = ns["APLoss"].apply(x, torch.tensor(labels, dtype=torch.float32), 1.0)
        grad = torch.autograd.grad(v, x)[0]
        cases.append(
            {
                "name": f"ap-{key}",
                "loss": "ap",
                "dtype": "float32",
                "inputs": {"logits": logits, "targets": labels},
                "params": {"delta": 1.0},
                "value": [float(v)],
                "grad": {"logits": tolist(grad)},
                "source": "aLRPLoss ap_loss.APLoss",
            }
        )
    return cases


def alrp_head_cases(torch, sources: Path) -> list:
    """aLRP classification, localisation and self-balance: the head's own statements, run as written.

    The body of ``aLRPLossRetinaHead.loss`` from the aLRP call to the self-balance is executed per
    iteration with the head's state (``SB_weight``, ``counter``, ``period``, histories); iterations
    without positives skip it, as the head does.
    """
    import collections

    ns = authors_namespace(torch)
    load_defs(source_text(sources, "alrp"), ["aLRPLoss"], ns)
    block = head_block(source_text(sources, "alrp_head"), "pos_idx.sum()", "aLRP_Loss.apply", None, "<alrp head>")
    ranking = _ranking_inputs(torch)
    g = torch.Generator().manual_seed(9)
    cases = []
    for period, keys in (
        (3, ["random", "ties", "one_positive", "none", "extreme", "random", "ties"]),
        (2, ["ties", "random", "none", "one_positive", "random"]),
    ):
        head = types.SimpleNamespace(
            aLRP_Loss=ns["aLRPLoss"],
            SB_weight=50,
            counter=0,
            period=period,
            cls_LRP_hist=collections.deque(maxlen=period),
            reg_LRP_hist=collections.deque(maxlen=period),
        )
        iters = []
        for key in keys:
            if key == "none":  # an iteration without positives: the head returns zeros and records nothing
                iters.append({"logits": [0.3, -0.2], "targets": [0.0, 0.0], "loc": [0.0, 0.0], "value": None})
                continue
            logits, labels = ranking[key]
            n_pos = int(sum(1 for y in labels if y == 1))
            loc = (torch.rand(n_pos, generator=g, dtype=torch.float64) * 0.9).tolist()
            x = torch.tensor(logits, dtype=torch.float32, requires_grad=True)
            lb = torch.tensor(loc, dtype=torch.float32, requires_grad=True)
            local = {
                "self": head,
                "flat_preds": x,
                "flat_labels": torch.tensor(labels, dtype=torch.float32),
                "loss_bbox": lb,
                "torch": torch,
                "np": ns["np"],
            }
            exec(block, dict(local), local)
            cls, box = local["losses_cls"], local["losses_bbox"]
            gx, gl = torch.autograd.grad(cls + box, [x, lb])
            iters.append(
                {
                    "logits": logits,
                    "targets": labels,
                    "loc": loc,
                    "value": [float(cls), float(box)],
                    "sb_weight": float(head.SB_weight),
                    "grad_logits": tolist(gx),
                    "grad_loc": tolist(gl),
                }
            )
        cases.append(
            {
                "name": f"alrp-head-period{period}",
                "loss": "alrp-head",
                "dtype": "float32",
                "params": {"period": period, "init": 50.0, "delta": 1.0},
                "iterations": iters,
                "source": "aLRPLoss alrp_loss.aLRPLoss + alrp_loss_retina_head.aLRPLossRetinaHead.loss",
            }
        )
    return cases


def rs_self_balance_cases(torch, sources: Path) -> list:
    """RS loss's value-based self-balance: the released ``RankBasedATSSHead.loss`` statements, run as written.

    From the ``RankSort`` call to ``losses_bbox *= self.SB_weight`` (the box loss averaged with the
    positives' detached max scores as weights, then ``SB = (L_rank + L_sort) / L_box`` from detached values)
    on given logits, RS targets, per-positive box losses and score weights. Recorded: ranking, sorting,
    the balanced box term, ``SB_weight`` and the gradients of their sum w.r.t. the logits and box losses.
    """
    ns = authors_namespace(torch)
    load_defs(source_text(sources, "rs"), ["RankSort"], ns)
    text = source_text(sources, "rs_head")
    tree = ast.parse(text)
    block = head_block(text, "len(pos_inds)", "loss_rank.apply", "losses_bbox *= self.SB_weight", "<rs head>")
    eps = next(
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "EPS" for t in n.targets)
    )
    g = torch.Generator().manual_seed(37)
    cases = []
    sets = {k: v for k, v in _ranking_inputs(torch).items() if k in ("random", "ties", "one_positive")}
    for key, (logits, labels) in sets.items():
        n_pos = int(sum(1 for y in labels if y == 1))
        ious = (torch.rand(n_pos, generator=g, dtype=torch.float64) * 0.8 + 0.15).tolist()
        it = iter(ious)
        targets = [next(it) if y == 1 else y for y in labels]
        box = (torch.rand(n_pos, generator=g, dtype=torch.float64) * 1.5).tolist()
        weights = (torch.rand(n_pos, generator=g, dtype=torch.float64) * 0.9 + 0.05).tolist()
        variants = {"": (box, weights), "-tiny-weights": (box, [1e-14] * n_pos), "-zero-box": ([0.0] * n_pos, weights)}
        for suffix, (b, w) in variants.items():
            head = types.SimpleNamespace(loss_rank=ns["RankSort"], delta=0.5, SB_weight=None)
            x = torch.tensor(logits, dtype=torch.float32, requires_grad=True)
            lb = torch.tensor(b, dtype=torch.float32, requires_grad=True)
            local = {
                "self": head,
                "flat_preds": x,
                "flat_labels": torch.tensor(targets, dtype=torch.float32),
                "loss_bbox": lb,
                "bbox_weights": torch.tensor(w, dtype=torch.float32),
                "torch": torch,
                "EPS": eps,
            }
            exec(block, dict(local), local)
            r, srt, bx = local["ranking_loss"], local["sorting_loss"], local["losses_bbox"]
            gx, gl = torch.autograd.grad(r + srt + bx, [x, lb])
            fin = lambda v: v if math.isfinite(v) else str(v)  # noqa: E731
            cases.append(
                {
                    "name": f"rs-self-balance-{key}{suffix}",
                    "loss": "rs-self-balance",
                    "dtype": "float32",
                    "inputs": {"logits": logits, "targets": targets, "loss_bbox": b, "bbox_weights": w},
                    "params": {"delta": 0.5, "EPS": eps},
                    "value": [fin(float(r.detach())), fin(float(srt.detach())), fin(float(bx.detach()))],
                    "sb_weight": fin(float(head.SB_weight)),
                    "grad": {"logits": tolist(gx), "loss_bbox": tolist(gl)},
                    "source": "RankSortLoss rank_based_atss_head.RankBasedATSSHead.loss (RankSort + self-balance)",
                }
            )
    return cases


def guided_cases(torch, sources: Path) -> list:
    """Guided loss: the ``if self.sampling_free:`` block of the first release's ``RetinaNetLossComputation.__call__``.

    Run as written on given classification and regression loss values, its learnable ``self.delta`` at its
    initial value 1 (``norm = -log delta^2 = 0``). Recorded: the returned terms and the gradients of their
    sum w.r.t. both losses. (The repository's later ``GuidedLoss`` module, with a ratio frozen after 100
    warm-up iterations and learnable uncertainty weights, is a different rule and not held here.)
    """
    tree = ast.parse(source_text(sources, "guided"))
    call = next(
        n
        for c in tree.body
        if isinstance(c, ast.ClassDef)
        for n in c.body
        if isinstance(n, ast.FunctionDef) and n.name == "__call__"
    )
    branch = next(n for n in ast.walk(call) if isinstance(n, ast.If) and "self.sampling_free" in ast.unparse(n.test))
    fn = ast.FunctionDef(
        name="guided",
        args=ast.arguments(
            posonlyargs=[],
            args=[ast.arg(arg=a) for a in ("self", "retinanet_cls_loss", "retinanet_regression_loss")],
            kwonlyargs=[],
            kw_defaults=[],
            defaults=[],
        ),
        body=branch.body,
        decorator_list=[],
        returns=None,
        type_params=[],
    )
    ns = {"torch": torch}
    exec(compile(ast.fix_missing_locations(ast.Module(body=[fn], type_ignores=[])), "<guided>", "exec"), ns)
    cases = []
    for name, (c, r) in {
        "ordinary": (0.9, 0.3),
        "small-cls": (1e-3, 2.0),
        "tiny-cls": (1e-14, 0.7),
        "zero-reg": (5.0, 0.0),
        "zero-cls": (0.0, 0.5),
        "large": (1234.5, 0.02),
    }.items():
        head = types.SimpleNamespace(delta=torch.nn.Parameter(torch.ones(1)))
        cl = torch.tensor(c, dtype=torch.float32, requires_grad=True)
        rl = torch.tensor(r, dtype=torch.float32, requires_grad=True)
        out = ns["guided"](head, cl, rl)
        total = out["retinanet_cls_loss"].sum() + out["retinanet_regression_loss"] + out["norm"].sum()
        gc, gr = torch.autograd.grad(total, [cl, rl])
        fin = lambda v: v if math.isfinite(v) else str(v)  # noqa: E731
        cases.append(
            {
                "name": f"guided-{name}",
                "loss": "guided",
                "dtype": "float32",
                "inputs": {"cls_loss": c, "reg_loss": r},
                "params": {"w_reg": 1.0, "delta": 1.0},
                "value": fin(float(total.detach())),
                "terms": {k: fin(float(v.detach().sum())) for k, v in out.items()},
                "grad": {"cls_loss": fin(float(gc)), "reg_loss": fin(float(gr))},
                "source": "sampling-free rpn/retinanet/loss.py RetinaNetLossComputation.__call__ (sampling_free)",
            }
        )
    return cases


def ecm_cases(torch, sources: Path) -> list:
    ns = authors_namespace(torch)
    ns["accuracy"] = None
    load_defs(source_text(sources, "ecm_utils"), ["get_detection_weight"], ns)
    load_defs(source_text(sources, "ecm"), ["EffectiveClassMarginLoss"], ns)
    cls = ns["EffectiveClassMarginLoss"]
    cases = []
    g = torch.Generator().manual_seed(13)
    for name, counts, ratio in (
        ("small", [100.0, 10.0, 1.0], 6.3313),
        ("lvis-like", [5000.0, 120.0, 7.0, 2.0, 1.0], 6.3313),
    ):
        C = len(counts)
        logits = (torch.randn(6, C + 1, generator=g, dtype=torch.float64) * 2).tolist()
        logits[0][0] = 30.0
        labels = [i % (C + 1) for i in range(6)]
        for dtype in ("float64", "float32"):
            dt = getattr(torch, dtype)
            m = cls.__new__(cls)
            torch.nn.Module.__init__(m)  # the authors' __init__ reads a pickled count file; set its buffers as it does
            m.use_sigmoid, m.reduction, m.loss_weight, m.num_classes, m.dataset = False, "mean", 1.0, C, "given"
            n = torch.tensor(counts, dtype=dt)
            n = torch.cat([n, n.sum()[None] * ratio])
            m.register_buffer("sample_n", n)
            m.register_buffer("detection_cls_weight", ns["get_detection_weight"](n))
            x = torch.tensor(logits, dtype=dt, requires_grad=True)
            out = m(x, torch.tensor(labels))
            grad = torch.autograd.grad(out, x)[0]
            cases.append(
                {
                    "name": f"ecm-{name}-{dtype}",
                    "loss": "ecm",
                    "dtype": dtype,
                    "inputs": {"logits": logits, "labels": {"int": labels}, "counts": counts},
                    "params": {"fg_bg_ratio": ratio},
                    "value": [float(out)],
                    "grad": {"logits": tolist(grad)},
                    "detection_weight": tolist(m.detection_cls_weight.reshape(-1)),
                    "source": "ECM-Loss effective_class_margin_loss.EffectiveClassMarginLoss (+ ecm_utils)",
                }
            )
    # |logit| > 52: the authors' exp/log form gives NaN (float32) where the BCE-with-logits form stays finite
    m_logits = [[60.0, -60.0, 0.0, 1.0], [-53.0, 2.0, 0.5, 0.0]]
    m = cls.__new__(cls)
    torch.nn.Module.__init__(m)
    m.use_sigmoid, m.reduction, m.loss_weight, m.num_classes, m.dataset = False, "mean", 1.0, 3, "given"
    n = torch.tensor([100.0, 10.0, 1.0])
    n = torch.cat([n, n.sum()[None] * 6.3313])
    m.register_buffer("sample_n", n)
    m.register_buffer("detection_cls_weight", ns["get_detection_weight"](n))
    out = m(torch.tensor(m_logits), torch.tensor([1, 3]))
    cases.append(
        {
            "name": "ecm-extreme-float32",
            "loss": "ecm-nan",
            "dtype": "float32",
            "inputs": {"logits": m_logits, "labels": {"int": [1, 3]}, "counts": [100.0, 10.0, 1.0]},
            "params": {"fg_bg_ratio": 6.3313},
            "value": [float(out) if math.isfinite(float(out)) else str(float(out))],
            "grad": {},
            "source": "ECM-Loss effective_class_margin_loss.EffectiveClassMarginLoss",
        }
    )
    return cases


def iou_balanced_cases(torch, sources: Path) -> list:
    ns = authors_namespace(torch)
    load_defs(
        source_text(sources, "ioub"),
        [
            "py_sigmoid_focal_loss",
            "iou_balanced_sigmoid_focal_loss",
            "smooth_l1_loss",
            "weighted_iou_balanced_smoothl1",
        ],
        ns,
    )
    cases = []
    g = torch.Generator().manual_seed(17)
    sets = {
        "issue-one-positive": ([[4.0]], [[1.0]], [0.5]),
        "one-positive-one-negative": ([[4.0, -3.0]], [[1.0, 0.0]], [0.5]),
        "random": ((torch.randn(30, 4, generator=g, dtype=torch.float64) * 2).tolist(), None, None),
        "no-positive": ([[0.2, -1.0], [3.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [0.0, 0.0]),
    }
    for name, (logits, target, iou) in sets.items():
        if target is None:
            lab = torch.randint(0, 5, (30,), generator=g)
            t = torch.zeros(30, 5, dtype=torch.float64)
            t[torch.arange(30), lab] = 1.0
            target = t[:, :4].tolist()
            iou = (torch.rand(30, generator=g, dtype=torch.float64) * 0.9 + 0.05).tolist()
        for dtype in ("float64", "float32"):
            dt = getattr(torch, dtype)
            x = torch.tensor(logits, dtype=dt, requires_grad=True)
            t = torch.tensor(target, dtype=dt)
            out = ns["iou_balanced_sigmoid_focal_loss"](
                x, t, torch.ones_like(t), torch.tensor(iou, dtype=dt), gamma=2.0, alpha=0.25, eta=1.5, avg_factor=1.0
            )
            grad = torch.autograd.grad(out.sum(), x)[0]
            cases.append(
                {
                    "name": f"iou-balanced-cls-{name}-{dtype}",
                    "loss": "iou-balanced",
                    "dtype": dtype,
                    "inputs": {"logits": logits, "targets": target, "ious": iou},
                    "params": {"eta": 1.5, "alpha": 0.25, "gamma": 2.0},
                    "value": [float(out.sum())],
                    "grad": {"logits": tolist(grad)},
                    "source": "IoU-aware-single-stage-object-detector losses.iou_balanced_sigmoid_focal_loss",
                }
            )
    pred = (torch.randn(12, 4, generator=g, dtype=torch.float64) * 0.3).tolist()
    tgt = (torch.randn(12, 4, generator=g, dtype=torch.float64) * 0.1).tolist()
    iou = (torch.rand(12, generator=g, dtype=torch.float64)).tolist()
    x = torch.tensor(pred, dtype=torch.float64, requires_grad=True)
    out = ns["weighted_iou_balanced_smoothl1"](
        x,
        torch.tensor(tgt, dtype=torch.float64),
        torch.tensor(iou, dtype=torch.float64),
        torch.ones(12, 4, dtype=torch.float64),
        beta=1.0 / 9,
        delta=1.5,
        avg_factor=1.0,
    )
    grad = torch.autograd.grad(out.sum(), x)[0]
    cases.append(
        {
            "name": "iou-balanced-l1",
            "loss": "iou-balanced-l1",
            "dtype": "float64",
            "inputs": {"pred": pred, "target": tgt, "ious": iou},
            "params": {"lam": 1.5, "beta": 1.0 / 9},
            "value": [float(out.sum())],
            "grad": {"pred": tolist(grad)},
            "source": "IoU-aware-single-stage-object-detector losses.weighted_iou_balanced_smoothl1",
        }
    )
    return cases


def eqlv2_cases(torch, sources: Path) -> list:
    ns = authors_namespace(torch)
    load_defs(source_text(sources, "eqlv2"), ["EQLv2"], ns)
    C = 4
    m = ns["EQLv2"](num_classes=C).double()
    g = torch.Generator().manual_seed(19)
    calls, values, grads = [], [], []
    for k in range(3):
        logits = torch.randn(10, C + 1, generator=g, dtype=torch.float64) * 2
        labels = torch.randint(0, C + 1, (10,), generator=g)
        x = logits.clone().requires_grad_(True)
        out = m(x, labels)
        values.append(float(out))
        grads.append(tolist(torch.autograd.grad(out, x)[0]))
        calls.append({"logits": logits.tolist(), "labels": labels.tolist()})
    return [
        {
            "name": "eqlv2-3calls",
            "loss": "eqlv2",
            "dtype": "float64",
            "calls": calls,
            "params": {"gamma": 12.0, "mu": 0.8, "alpha": 4.0},
            "value": values,
            "grad": grads,
            "source": "eqlv2 eqlv2.EQLv2",
        }
    ]


def class_balanced_cases(sources: Path) -> dict:
    """Class-balanced loss (Cui et al., CVPR 2019) from the authors' TensorFlow code, run as written in TF 2 eager.

    From ``src/cifar_main.py``: the class weights as ``main`` computes them (``(1 - beta) / (1 - beta^n)``,
    normalised to sum to C), ``focal_loss``, and the statements of ``_tower_fn`` from ``one_hot_labels`` to the
    three loss branches ("softmax", "sigmoid", "focal"), with ``tf`` bound to ``tf.compat.v1`` (the code is
    TF 1). Recorded: the tower loss (without the weight decay term, which needs the model) and its gradient
    w.r.t. the logits (``tf.GradientTape``), in float32 as their code casts.
    """
    import numpy as np
    import tensorflow as tf2

    tf = tf2.compat.v1
    text = source_text(sources, "class_balanced")
    tree = ast.parse(text)
    ns = {"tf": tf, "np": np}
    load_defs(text, ["focal_loss"], ns)
    tower = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_tower_fn")
    first = next(i for i, st in enumerate(tower.body) if "one_hot_labels = " in ast.unparse(st))
    last = next(i for i, st in enumerate(tower.body) if "model_params = " in ast.unparse(st))
    block = compile(ast.Module(body=tower.body[first:last], type_ignores=[]), "<cb tower>", "exec")
    main_fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
    w_first = next(i for i, st in enumerate(main_fn.body) if "effective_num = " in ast.unparse(st))
    w_block = compile(ast.Module(body=main_fn.body[w_first : w_first + 3], type_ignores=[]), "<cb weights>", "exec")
    rng = np.random.default_rng(41)
    cases = []
    for name, counts, beta, n in (
        ("cifar-like", [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50], 0.999, 24),
        ("beta-0.9999", [4000, 400, 40, 4, 1], 0.9999, 12),
        ("beta-0.9", [300, 30, 3], 0.9, 9),
    ):
        C = len(counts)
        local = {"np": np, "hparams": {"beta": beta, "data_version": str(C)}, "img_num_per_cls": counts}
        exec(w_block, dict(local), local)
        weights = local["weights"]
        logits = (rng.standard_normal((n, C)) * 2.5).astype(np.float32)
        logits[0, 0] = 30.0
        logits[1, 1 % C] = -25.0
        labels = [int(v) for v in rng.integers(0, C, n)]
        for loss_type, gamma in (("softmax", 1.0), ("sigmoid", 1.0), ("focal", 2.0), ("focal", 0.5)):
            x = tf2.Variable(logits)
            with tf2.GradientTape() as tape:
                loc = dict(
                    ns,
                    logits=x,
                    label=tf2.constant(labels),
                    num_classes=C,
                    weights=weights,
                    loss_type=loss_type,
                    gamma=gamma,
                )
                exec(block, loc, loc)
                out = loc["tower_loss"]
            grad = tape.gradient(out, x)
            cases.append(
                {
                    "name": f"class-balanced-{name}-{loss_type}-g{gamma}",
                    "loss": "class-balanced",
                    "dtype": "float32",
                    "inputs": {"logits": logits.tolist(), "labels": {"int": labels}, "counts": counts},
                    "params": {"beta": beta, "loss": loss_type, "gamma": gamma},
                    "weights": [float(v) for v in weights],
                    "value": [float(out.numpy())],
                    "grad": {"logits": grad.numpy().astype(np.float64).tolist()},
                    "source": "class-balanced-loss src/cifar_main.py (main weights, _tower_fn losses, focal_loss)",
                }
            )
    return {
        "made_by": {
            "tensorflow": tf2.__version__,
            "python": sys.version.split()[0],
            "richardaecn/class-balanced-loss": commit_of(sources, "class_balanced"),
        },
        "tool": "tools/make_framework_oracles.py class-balanced",
        "cases": cases,
    }


# ------------------------------------------------------------------------------------------ main
def versions(torch, sources: Path, keys) -> dict:
    import mmcv
    import mmdet
    import mmengine

    out = {
        "torch": torch.__version__,
        "mmdet": mmdet.__version__,
        "mmengine": mmengine.__version__,
        "mmcv-lite": mmcv.__version__,
        "python": sys.version.split()[0],
    }
    for k in keys:
        out[AUTHORS[k][0].replace("+", "/")] = commit_of(sources, k)
    return out


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=None, separators=(",", ":")) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=["install", "losses", "anchors", "torchvision", "class-balanced"])
    ap.add_argument("--venv", type=Path, default=VENV)
    ap.add_argument("--sources", type=Path, default=Path("/work/.mirror"))
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "data")
    ap.add_argument(
        "--detectron2-src",
        type=Path,
        default=None,
        help="a detectron2 source tree (default: extracted from the mirror in --sources at its HEAD)",
    )
    args = ap.parse_args(argv)
    if args.step == "install":
        install(args.venv)
        return 0
    if args.step == "class-balanced":  # TensorFlow, its own venv: python -m venv V && V/bin/pip install tensorflow-cpu
        write_json(args.out / "authors-oracle" / "class_balanced.json", class_balanced_cases(args.sources))
        return 0
    stub_mmcv_ext()
    import torch

    torch.set_num_threads(1)
    if args.step == "losses":
        write_json(
            args.out / "mmdet-oracle" / "losses.json",
            {
                "made_by": versions(torch, args.sources, []),
                "tool": "tools/make_framework_oracles.py losses",
                "cases": mmdet_losses(torch),
            },
        )
        keys = ["alrp", "rs", "ecm", "ioub", "eqlv2", "bags", "guided"]
        write_json(
            args.out / "authors-oracle" / "losses.json",
            {
                "made_by": versions(torch, args.sources, keys),
                "tool": "tools/make_framework_oracles.py losses",
                "cases": authors_losses(torch, args.sources),
            },
        )
        return 0
    from make_anchor_oracles import anchors, torchvision_anchors  # noqa: E402  (same folder; needs the frameworks)

    (torchvision_anchors if args.step == "torchvision" else anchors)(torch, args)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
