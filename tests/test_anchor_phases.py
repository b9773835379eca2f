"""The anchor pass's phase accounting (imbalance_cli/anchors/phases.py, read by benchmarks/anchor_floor.py).

Every CPU second between ``enable`` and ``read`` lands in exactly one phase, so the phases add up to the process's
CPU time measured around them (``time.process_time``, independent of the module); the engine's own phases are
non-zero on a real subset, and with accounting off nothing is recorded.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from imbalance_cli.anchors import phases
from imbalance_cli.data import load
from imbalance_cli.stats.anchors import anchor_statistics

COCO_VAL = Path(__file__).resolve().parent.parent / "examples" / "data" / "coco-mini_instances_val2017.json.gz"


@pytest.mark.slow
def test_phases_add_up_to_the_pass_and_are_off_by_default():
    ds = load(str(COCO_VAL))
    assert phases.read() == {}  # off: nothing was being recorded
    anchor_statistics(ds, "retinanet", device="cpu", workers=1)
    assert phases.TIMES is None
    c0 = time.process_time()
    phases.enable()
    s = anchor_statistics(ds, "retinanet", device="cpu", workers=1)
    got = phases.read()
    cpu = time.process_time() - c0
    assert set(got) == set(phases.PHASES) and all(v >= 0 for v in got.values())
    assert sum(got.values()) == pytest.approx(cpu, rel=0.05, abs=0.02)
    # the compiled pass computes each IoU inside the labelling; "iou" is the vectorised IoU of `enumerate_pairs`
    # (the gallery's and the NumPy tools' pair lists), which this pass does not run
    for name in ("enumeration", "labelling", "histograms"):
        assert got[name] > 0, name
    assert s["foreground"] == 14574  # the README's number for this subset: accounting changes nothing
