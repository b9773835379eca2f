"""`imbalance bench`: like-with-like plan and the paired-difference table, against hand computations."""

from __future__ import annotations

import json
import math

import pytest

from imbalance_cli.commands.bench import plan
from imbalance_cli.report.bench import markdown_table, summarize, versus_baseline, write_outputs


def test_plan_pairs_each_loss_with_its_baseline_once():
    order, pairs = plan(["ecm", "ecm-focal", "bags", "rs", "eqlv2", "seesaw"])
    assert order == ["sigmoid-ce", "ecm", "focal", "ecm-focal", "softmax-ce", "bags", "rs", "eqlv2", "seesaw"]
    assert pairs == [
        ("ecm", "sigmoid-ce"),
        ("ecm-focal", "focal"),
        ("bags", "softmax-ce"),
        ("rs", "focal"),
        ("eqlv2", "sigmoid-ce"),
        ("seesaw", "softmax-ce"),
    ]


def _runs():
    base = {0: 0.10, 1: 0.20, 2: 0.30}
    loss = {0: 0.15, 1: 0.18, 2: 0.40}
    runs = []
    for s in range(3):
        runs.append(
            {"loss": "focal", "seed": s, "AP": base[s], "AP50": 0.5, "APr": float("nan"), "APc": 0.1, "APf": 0.2}
        )
        runs.append({"loss": "ecm-focal", "seed": s, "AP": loss[s], "AP50": 0.6, "APr": 0.05, "APc": 0.1, "APf": 0.2})
    return runs


def test_summary_and_paired_differences_by_hand():
    runs = _runs()
    rows = summarize(runs, ["focal", "ecm-focal"])
    assert rows[0]["AP_mean"] == pytest.approx(0.2)
    assert rows[0]["AP_std"] == pytest.approx(0.1)  # sample std of 0.1, 0.2, 0.3
    assert math.isnan(rows[0]["APr_mean"])
    v = versus_baseline(runs, [("ecm-focal", "focal")])[0]
    d = [0.05, -0.02, 0.10]
    m = sum(d) / 3
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / 2)
    assert v["AP_diff_mean"] == pytest.approx(m) and v["AP_diff_std"] == pytest.approx(sd)
    assert v["AP_wins"] == 2 and v["seeds"] == 3
    assert math.isnan(v["APr_diff_mean"])  # baseline APr undefined on every seed
    assert v["AP50_diff_mean"] == pytest.approx(0.1)
    md = markdown_table(rows, [v])
    assert "| ecm-focal | focal |" in md and f"{m:+.3f}" in md


@pytest.mark.slow
def test_write_outputs(tmp_path):
    runs = _runs()
    rows = summarize(runs, ["focal", "ecm-focal"])
    vs = versus_baseline(runs, [("ecm-focal", "focal")])
    paths = write_outputs(tmp_path, {"runs": runs, "summary": rows, "versus_baseline": vs})
    assert all(p.stat().st_size > 0 for p in paths)
    csv = (tmp_path / "bench.csv").read_text().splitlines()
    assert csv[0].startswith("loss,baseline,seeds,AP_mean")
    assert csv[2].startswith("ecm-focal,focal,3,")
    assert json.loads((tmp_path / "bench.json").read_text())["versus_baseline"][0]["baseline"] == "focal"


def _terminal(summary, versus, seeds, width=80) -> str:
    import io

    from rich.console import Console

    from imbalance_cli.report.bench import render_terminal

    console = Console(file=io.StringIO(), width=width, color_system=None)
    render_terminal(summary, versus, seeds, 3, console=console)
    return console.file.getvalue()


def test_terminal_table_fits_80_columns_with_every_value():
    runs = _runs()
    for loss in ("eqlv2", "sigmoid-ce", "seesaw", "softmax-ce"):  # the README's longest names
        runs += [dict(r, loss=loss) for r in runs if r["loss"] == "focal"]
    losses = ["focal", "ecm-focal", "sigmoid-ce", "eqlv2", "softmax-ce", "seesaw"]
    rows = summarize(runs, losses)
    vs = versus_baseline(runs, [("ecm-focal", "focal"), ("eqlv2", "sigmoid-ce"), ("seesaw", "softmax-ce")])
    text = _terminal(rows, vs, 3)
    lines = text.splitlines()
    assert max(len(ln) for ln in lines) <= 80 and "…" not in text
    v = vs[0]
    for needle in ("0.200", "±0.100", f"{v['AP_diff_mean']:+.3f}", f"±{v['AP_diff_std']:.3f}", "seesaw", "softmax-ce"):
        assert needle in text, needle
    assert not any(ln.rstrip().endswith(("0.", "0.0")) for ln in lines)  # no value cut short


def test_one_seed_shows_no_spread():
    runs = [r for r in _runs() if r["seed"] == 0]
    rows = summarize(runs, ["focal", "ecm-focal"])
    vs = versus_baseline(runs, [("ecm-focal", "focal")])
    assert rows[0]["AP_std"] is None and vs[0]["AP_diff_std"] is None
    text = _terminal(rows, vs, 1)
    assert "±" not in text.split("\n", 1)[1] and "one seed" in text
    md = markdown_table(rows, vs)
    assert "±" not in md and "| 0.100 |" in md and "+0.050" in md
