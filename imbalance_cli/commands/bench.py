"""`imbalance bench`: each loss against its own baseline head, same data, schedule and seeds; one table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from imbalance_cli.commands._common import (
    choice_metavar,
    choice_parser,
    echo_json,
    handle_errors,
    set_quiet,
)
from imbalance_cli.commands.train import SYNTHETIC_DEFAULTS, TrainImagesOpt, ValImagesOpt, refuse_data_options
from imbalance_cli.data._io import read_json
from imbalance_cli.errors import InputError
from imbalance_cli.fileio import claim_files, dumps_json, make_dirs
from imbalance_cli.losses.registry import BoxLossName, SamplerName, get_loss
from imbalance_cli.report import bench as report_bench
from imbalance_cli.report import train as report_train
from imbalance_cli.report.bench import TABLE_KEYS
from imbalance_cli.values import is_number

DEFAULT_LOSSES = "ecm,ecm-focal,bags,rs,eqlv2,seesaw"

_REUSE_KEYS = (
    "loss",
    "box_loss",
    "sampler",
    "data",
    "epochs",
    "batch_size",
    "lr",
    "seed",
    "train_images",
    "val_images",
    "anchors",
)


def plan(names: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Runs to train (each loss's registry baseline first, each name once) and the ``(loss, baseline)`` pairs."""
    order, pairs = [], []
    for n in names:
        e = get_loss(n)
        if e.baseline is not None:
            if e.baseline not in order:
                order.append(e.baseline)
            pairs.append((e.name, e.baseline))
        if e.name not in order:
            order.append(e.name)
    return order, pairs


LossesOpt = Annotated[
    str,
    typer.Option(
        "--losses",
        help="Comma-separated --loss names; each is trained "
        "together with the baseline its paper compares against (registry 'baseline': ECM "
        "sigmoid vs sigmoid CE, ECM one-stage vs focal, BAGS vs softmax CE, RS vs focal, "
        "EQLv2 vs sigmoid CE, Seesaw vs softmax CE).",
    ),
]
SeedsOpt = Annotated[
    int, typer.Option("--seeds", help="Seeds per loss (0, 1, ...); every loss and its baseline see the same seeds.")
]
BenchBoxLossOpt = Annotated[
    Optional[BoxLossName],
    typer.Option(
        "--box-loss",
        parser=choice_parser(BoxLossName, "--box-loss"),
        metavar=choice_metavar(BoxLossName),
        help="Box loss of every run that takes one (default: giou).",
        show_default=False,
    ),
]
BenchSamplerOpt = Annotated[
    SamplerName,
    typer.Option(
        "--sampler",
        parser=choice_parser(SamplerName, "--sampler"),
        metavar=choice_metavar(SamplerName),
        help="Sampler of every run.",
    ),
]
BenchAnchorsOpt = Annotated[
    Optional[str], typer.Option("--anchors", help="Anchor preset (see `imbalance train --help`).", show_default=False)
]
BenchOutOpt = Annotated[
    Path,
    typer.Option("--out", help="Output folder: one sub-folder per run, bench.json, bench.csv, bench.md, bench.png."),
]


# long: 17 options, one a line as Typer declares them, and the docstring that is the command's help
def bench(
    losses: LossesOpt = DEFAULT_LOSSES,
    seeds: SeedsOpt = 3,
    epochs: int = typer.Option(10, "--epochs", help="Training epochs of every run."),
    box_loss: BenchBoxLossOpt = None,
    sampler: BenchSamplerOpt = "none",
    data: str = typer.Option("synthetic-lt", "--data", help="synthetic-lt or an annotation file."),
    images: Optional[Path] = typer.Option(None, "--images", help="Image folder for --data FILE.", show_default=False),
    anchors: BenchAnchorsOpt = None,
    batch_size: int = typer.Option(16, "--batch-size", help="Images per iteration."),
    lr: float = typer.Option(2e-3, "--lr", help="Peak learning rate."),
    train_images: TrainImagesOpt = SYNTHETIC_DEFAULTS["train_images"],
    val_images: ValImagesOpt = SYNTHETIC_DEFAULTS["val_images"],
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    out: BenchOutOpt = Path("runs/bench"),
    threads: int = typer.Option(0, "--threads", help="CPU threads (0 = the cores not already busy)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
):
    """Train every loss and its own baseline with every seed on the same data; mean ± std and paired differences.

    For each loss the table gives mean ± std over seeds of AP, AP50, APr, APc, APf and the difference to its baseline
    (paired by seed) with its spread. Writes OUT/bench.json, OUT/bench.csv, OUT/bench.md and OUT/bench.png. Runs whose
    OUT/<loss>-s<seed>/metrics.json already exists with the same settings are reused, so an interrupted bench continues
    where it stopped.
    """
    set_quiet(quiet)
    from imbalance_cli.detector.train import TrainConfig  # torch: lazy
    from imbalance_cli.detector.train import train as run

    names = [s.strip() for s in losses.split(",") if s.strip()]
    if not names:
        raise InputError("--losses is empty", record="--losses")
    if seeds < 1:
        raise InputError(f"--seeds must be >= 1, got {seeds}", record="--seeds")
    order, pairs = plan(names)
    refuse_data_options(data, images, train_images=train_images, val_images=val_images)
    make_dirs(out, "the bench folder")  # before any training: a folder that cannot be written is one line
    claim_files(out, "bench", report_bench.FILE_NAMES, legacy=("*-s[0-9]*", "synthetic-lt", ".*.tmp"))
    box = box_loss.value if box_loss is not None else None
    echo = (lambda s: None) if (quiet or json_out) else (lambda s: typer.echo(s, err=True))
    common = dict(
        sampler=sampler.value,
        data=data,
        images=str(images) if images else None,
        anchors=anchors,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        device=device,
        train_images=train_images,
        val_images=val_images,
        threads=threads,
        synthetic_dir=str(out / "synthetic-lt"),
    )
    runs = _bench_runs(TrainConfig, run, echo, order, seeds, box, out, common)
    summary = report_bench.summarize(runs, order)
    versus = report_bench.versus_baseline(runs, pairs)
    payload = {
        "runs": runs,
        "summary": summary,
        "versus_baseline": versus,
        "epochs": epochs,
        "seeds": seeds,
        "data": data,
        "train_images": train_images,
        "val_images": val_images,
    }
    report_bench.write_outputs(out, payload)
    if json_out:
        echo_json(dumps_json({"runs": runs, "summary": summary, "versus_baseline": versus}))
        return
    report_bench.render_terminal(summary, versus, seeds, epochs)
    typer.echo(f"wrote {out}/bench.json, bench.csv, bench.md, bench.png")


def _bench_runs(TrainConfig, run, echo, order: list, seeds: int, box, out: Path, common: dict) -> list:
    """Every loss of ``order`` with every seed, seed-major: an interrupted bench has every loss at the first seeds."""
    runs = []
    for seed in range(seeds):
        for name in order:
            cfg = TrainConfig(
                loss=name,
                box_loss=box if get_loss(name).box_loss else None,
                out=str(out / f"{name}-s{seed}"),
                seed=seed,
                **common,
            )
            runs.append(_bench_run(cfg, run, echo))
    return runs


def _bench_run(cfg, run, echo) -> dict:
    """One run of the bench (reused when its metrics.json holds the same settings): its row of ``runs``."""
    name, seed, run_dir = cfg.loss, cfg.seed, Path(cfg.out)
    metrics = _reusable(run_dir / "metrics.json", cfg)
    if metrics is not None:
        echo(f"{name} seed {seed}: reusing {run_dir / 'metrics.json'}")
    else:
        echo(f"{name} seed {seed}: training")
        metrics = run(cfg, renderer=report_train, echo=echo)
    return {
        "loss": name,
        "seed": seed,
        **{k: metrics[k] for k in TABLE_KEYS},
        "AP_bins": metrics["AP_bins"],
        "train_seconds": metrics["timing"]["train_seconds"],
    }


def _reusable(mpath: Path, cfg) -> dict | None:
    """The metrics of a finished run with the same settings, else ``None`` (the run is trained again).

    The file is read by the bounded reader and what the table reads is checked by type (AP values numbers in
    [0, 1] or null, ``AP_bins`` a list, ``timing.train_seconds`` a number): a damaged or foreign
    ``metrics.json`` is not a finished run.
    """
    if not mpath.exists():
        return None
    try:
        old = read_json(mpath, "run-record", type=dict)  # bounded: a FIFO or a huge file is not a finished run
        have = {k: old["settings"].get(k) for k in _REUSE_KEYS}
        want = {k: getattr(cfg, k) for k in _REUSE_KEYS}
        if want["box_loss"] is None:
            want["box_loss"] = have["box_loss"]
        if want["anchors"] is None:
            want["anchors"] = have["anchors"]
        if have != want or not isinstance(old.get("AP_bins"), list):
            return None
        seconds = old["timing"]["train_seconds"]
        if not is_number(seconds) or not seconds >= 0:
            return None
        for k in TABLE_KEYS:
            v = old[k]
            if v is not None and (not is_number(v) or not 0 <= v <= 1):
                return None
        return old
    except (InputError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def register(app):
    """Add this module's command(s) to the Typer app."""
    app.command("bench")(handle_errors(bench))
