"""The one loss registry: every caller reads it, entries are complete, options a loss cannot use are refused."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import imbalance_cli.losses as L
from imbalance_cli.errors import InputError
from imbalance_cli.losses import adapters
from imbalance_cli.losses.registry import (
    BOX,
    CLASSIFICATION,
    BoxLossName,
    LossName,
    check_options,
    get_box_loss,
    get_loss,
)

ROOT = Path(__file__).resolve().parents[1]


def test_enums_and_library_views_are_the_registry():
    assert [m.value for m in LossName] == list(CLASSIFICATION)
    assert [m.value for m in BoxLossName] == list(BOX)
    assert set(L.CLASSIFICATION_LOSSES) == set(CLASSIFICATION)
    assert set(L.REGRESSION_LOSSES) == set(BOX)
    assert L.REGRESSION_LOSSES["ghm-r"] is L.ghm_r
    assert L.CLASSIFICATION_LOSSES["ecm"] is L.ecm_loss


@pytest.mark.parametrize("entry", list(CLASSIFICATION.values()) + list(BOX.values()), ids=lambda e: e.name)
def test_every_entry_resolves(entry):
    assert callable(entry.function())
    assert callable(entry.adapter_fn())
    state = entry.new_state(num_classes=3, device="cpu")
    assert (state is None) == (entry.state is None)
    if state is not None:  # checkpointable as tensors and plain types
        sd = state.state_dict()
        assert isinstance(sd, dict)
        state.load_state_dict(sd)
    if entry.baseline is not None:
        assert get_loss(entry.baseline).head == entry.head or entry.head == "grouped"
    assert "seed 0" not in entry.citation and entry.citation


def test_baselines_follow_the_papers():
    assert get_loss("ecm").baseline == "sigmoid-ce"
    assert get_loss("ecm-focal").baseline == "focal"
    assert get_loss("bags").baseline == "softmax-ce"
    assert get_loss("rs").baseline == "focal"
    assert get_loss("eqlv2").baseline == "sigmoid-ce"
    assert get_loss("seesaw").baseline == "softmax-ce"


def test_options_a_loss_cannot_use_are_refused():
    with pytest.raises(InputError, match="box-loss"):
        check_options("alrp", "giou")
    entry, box = check_options("alrp", None)
    assert entry.name == "alrp" and box is None
    assert check_options("focal", None)[1].name == "giou"
    assert check_options("focal", "ghm-r")[1].name == "ghm-r"
    with pytest.raises(InputError):
        get_loss("nope")
    with pytest.raises(InputError):
        get_box_loss("nope")


def test_no_caller_branches_on_a_loss_name():
    """Loss-specific behaviour comes from entries: train/objectives/bench never compare to a loss name."""
    names = set(CLASSIFICATION) | set(BOX)
    for rel in (
        "imbalance_cli/detector/train.py",
        "imbalance_cli/detector/objectives.py",
        "imbalance_cli/commands/bench.py",
        "imbalance_cli/commands/train.py",
    ):
        tree = ast.parse((ROOT / rel).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                consts = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
                assert not (set(consts) & (names - {"none"})), (rel, ast.unparse(node))


def test_registry_import_does_not_load_torch():
    code = (
        "import sys; import imbalance_cli.losses.registry, imbalance_cli.losses.grouping; "
        "import imbalance_cli.commands.train, imbalance_cli.commands.bench; print('torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_losses_does_not_import_stats():
    for path in (ROOT / "imbalance_cli" / "losses").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("imbalance_cli.stats"), path.name
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("imbalance_cli.stats") for a in node.names), path.name
    from imbalance_cli.losses.longtail import bags_pred_slice  # noqa: F401 - the name stats/groups.py imports
    from imbalance_cli.stats.classes import DEFAULT_BAGS_EDGES, bags_groups  # noqa: F401 - still exported by stats


def test_ecm_focal_adapter_value_by_hand():
    # focal(2f + m+ - m-) weighted by the ECM detection weight, summed, / positives (Cho & Krähenbühl, supp. F)
    import math

    counts = [4.0, 40.0]
    f = torch.tensor([[0.3, -1.2], [-0.7, 0.4], [-2.0, -2.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 2])
    x = adapters.LossInputs(logits=f, labels=labels, num_classes=2, num_pos=2.0, step=0, counts=counts)
    got, own = adapters.cls_ecm_focal(None, x)
    assert own is None
    total = 0.0
    n = sum(counts)
    for i in range(3):
        for c in range(2):
            npos, nneg = counts[c], n - counts[c]
            qp, qn = npos**0.25, nneg**0.25
            mp, mn = math.log((qp + qn) / qn), math.log((qp + qn) / qp)
            a = nneg / npos
            w = a * math.log((1 + a) / a)
            z = 2 * f[i, c].item() + mp - mn
            p = 1 / (1 + math.exp(-z))
            y = 1.0 if labels[i] == c else 0.0
            pt = p if y else 1 - p
            alpha = 0.25 if y else 0.75
            total += w * alpha * (1 - pt) ** 2 * -math.log(pt)
    assert got.item() == pytest.approx(total / 2.0, rel=1e-12)


@pytest.mark.parametrize("name", ["ecm", "ecm-focal"])
def test_ecm_detector_starts_with_the_scored_probability_at_the_prior(name):
    # RetinaNet's prior initialisation (Lin et al., ICCV 2017, §4.1) applied to what ECM scores:
    # sigmoid(2 f + m+ - m-) with m+ - m- = log(n+^(1/4) / n-^(1/4)) (Cho & Krähenbühl, Eq. 8 and 11),
    # so every class's scored probability at the initial bias is the prior 0.01.
    import math

    from imbalance_cli.detector.model import Detector
    from imbalance_cli.detector.objectives import ClsObjective

    counts = [900.0, 120.0, 3.0]
    obj = ClsObjective(get_loss(name))
    obj.prepare(counts, "cpu")
    b = obj.bias_init(len(counts))
    total = sum(counts)
    for c, n in enumerate(counts):
        z = 2 * float(b[c]) + 0.25 * math.log(n / (total - n))
        assert 1 / (1 + math.exp(-z)) == pytest.approx(0.01, rel=1e-6)
    # and the detector's classifier starts with that bias for every anchor (anchor-major channels)
    model = Detector(3, 9, "sigmoid", bias_init=b)
    assert torch.allclose(model.cls_out.bias.detach().reshape(9, 3), b.expand(9, 3))
    # the plain sigmoid heads keep the model's own rule
    plain = ClsObjective(get_loss("focal"))
    plain.prepare(counts, "cpu")
    assert plain.bias_init(3) is None
