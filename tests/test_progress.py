"""Progress (issue 21): the anchors bar moves through the pass, figure rendering and train's data generation,
inference and evaluation report progress, and off a terminal every long phase prints one line on stderr
(unless --quiet), without adding lines to quick commands and their one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import imbalance_cli as im
from imbalance_cli import progress
from imbalance_cli.cli import app

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
COCO_VAL = DATA / "coco-mini_instances_val2017.json.gz"
runner = CliRunner()


class Recorder:
    """A counting bar that records what it is told (installed in place of the rich bar)."""

    made: list["Recorder"] = []

    def __init__(self, total, description, unit="items"):
        self.total, self.description, self.values = total, description, []
        Recorder.made.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def advance(self, n):
        self.values.append((self.values[-1] if self.values else 0) + n)

    def update(self, completed):
        self.values.append(completed)


@pytest.fixture
def terminal(monkeypatch):
    """Progress as on a terminal, with the recorder as the bar; restored afterwards."""
    Recorder.made = []
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(progress, "_COUNTER", Recorder)
    monkeypatch.setattr(progress, "_BAR", lambda it, total, desc: (Recorder(total, desc), it)[1])
    monkeypatch.setattr(progress, "_ENABLED", True)
    yield Recorder
    Recorder.made = []


def _bar(prefix: str) -> Recorder:
    return next(r for r in Recorder.made if r.description.startswith(prefix))


@pytest.mark.slow
def test_anchors_bar_moves_through_the_pass(terminal):
    from imbalance_cli.stats.anchors import anchor_statistics

    ds = im.load(str(COCO_VAL))
    anchor_statistics(ds, "retinanet", device="cpu", workers=2)
    bar = _bar("anchors")
    assert bar.total == 79 and bar.values[-1] == 79
    assert len(bar.values) >= 8 and bar.values == sorted(bar.values)  # 8 chunks of 10 images, not 0 -> 79


@pytest.mark.slow
def test_figure_rendering_counts_every_figure(terminal):
    from imbalance_cli.report.figures import render_figures

    report = im.analyze(im.load(str(COCO_VAL)), anchors="none").to_dict()
    for workers in (1, 2):
        Recorder.made = []
        figs = render_figures(report, workers=workers)
        bar = _bar("figures")
        assert bar.total == len(figs) == 5 and bar.values == [1, 2, 3, 4, 5]


def test_train_data_generation_and_evaluation_report_progress(terminal, tmp_path):
    from imbalance_cli.detector.evaluate import evaluate
    from imbalance_cli.detector.synthetic import SyntheticConfig, write_synthetic_lt

    paths = write_synthetic_lt(
        tmp_path / "syn", SyntheticConfig(train_images=16, val_images=6, tail="exp", max_instances=6, min_instances=1)
    )
    names = [r.description for r in Recorder.made]
    for split in ("train", "val"):
        assert f"generating synthetic-lt {split} images" in names and f"writing synthetic-lt {split} images" in names
    gt = json.loads(Path(paths["val"]).read_text())
    Recorder.made = []
    dets = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
        for a in gt["annotations"]
    ]
    evaluate(gt, dets, [1] * len(gt["categories"]))
    assert _bar("evaluating").values == [1, 2]


@pytest.mark.slow
def test_train_inference_counts_the_held_out_images(terminal, tmp_path):
    from imbalance_cli.detector.train import TrainConfig, train

    train(
        TrainConfig(
            epochs=1,
            max_iters=1,
            out=str(tmp_path / "run"),
            synthetic_dir=str(tmp_path / "syn"),
            plots=False,
            train_images=16,
            val_images=6,
            tail="exp",
            max_instances=6,
            min_instances=1,
            batch_size=8,
            threads=1,
            device="cpu",
        )
    )
    bar = _bar("inference")
    assert bar.total == 6 and bar.values[-1] == 6


@pytest.mark.slow
def test_one_line_per_long_phase_off_a_terminal_and_none_with_quiet(monkeypatch, tmp_path):
    monkeypatch.setenv("IMBALANCE_PHASE_DELAY", "0")  # every phase counts as long here
    res = runner.invoke(app, ["stats", str(COCO_VAL), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("imbalance: ")]
    for phase in ("statistics", "anchors (culled)", "figures"):
        assert sum(ln.startswith(f"imbalance: {phase}") for ln in lines) == 1, (phase, lines)
    res = runner.invoke(app, ["stats", str(COCO_VAL), "--anchors", "none", "--out", str(tmp_path / "q"), "-q"])
    assert res.exit_code == 0 and "imbalance: " not in res.stderr


def test_quick_work_and_errors_stay_one_line_off_a_terminal(tmp_path, monkeypatch):
    # the default delay: phases shorter than it print nothing, so an early error is the only line
    monkeypatch.delenv("IMBALANCE_PHASE_DELAY")
    res = runner.invoke(app, ["stats", str(COCO_VAL), "--bags-edges", "10,5"])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    for bad in ("-1", "soon", "inf"):
        monkeypatch.setenv("IMBALANCE_PHASE_DELAY", bad)
        res = runner.invoke(app, ["stats", str(COCO_VAL), "--anchors", "none", "--json"])
        assert res.exit_code == 2 and res.stderr.startswith("error: IMBALANCE_PHASE_DELAY must be"), res.stderr
