"""`imbalance train`: train the compact detector with an imbalance loss, evaluate, plot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from imbalance_cli.commands._common import (
    choice_metavar,
    choice_parser,
    echo_json,
    handle_errors,
    refuse_inapplicable,
    set_quiet,
)
from imbalance_cli.fileio import dumps_json
from imbalance_cli.losses.registry import DEFAULT_BOX_LOSS, BoxLossName, LossName, SamplerName
from imbalance_cli.report import train as report_train
from imbalance_cli.report.train import summary_lines

LOSS_HELP = "Classification loss (see the README's loss table; every entry of imbalance_cli.losses.registry)."
BOX_HELP = f"Box loss (default {DEFAULT_BOX_LOSS}). Not accepted with a loss that has its own localisation term (alrp)."
SAMPLER_HELP = "Which negatives enter the classification loss (random / ohem / iou-balanced: 1:3 pos:neg)."


#: Defaults of the options that apply to one kind of data only (an option given away from its default where
#: it cannot apply is refused).
SYNTHETIC_DEFAULTS = {"data_seed": 0, "train_images": 1600, "val_images": 400, "tail": "lvis"}
DEFAULT_VAL_FRACTION = 0.2


def refuse_data_options(data: str, images=None, val_data=None, val_fraction=DEFAULT_VAL_FRACTION, **synthetic) -> None:
    """Options for an annotation file given with synthetic-lt, synthetic-lt's options given with a file, and
    ``--val-fraction`` beside ``--val-data``: refused with one line (``synthetic``: its options' values)."""
    if data == "synthetic-lt":
        refuse_inapplicable(
            "with --data synthetic-lt (they are for an annotation file)",
            images=images is not None,
            val_data=val_data is not None,
            val_fraction=val_fraction != DEFAULT_VAL_FRACTION,
        )
        return
    refuse_inapplicable(
        "with --data FILE (they shape the built-in synthetic-lt data)",
        **{k: v != SYNTHETIC_DEFAULTS[k] for k, v in synthetic.items()},
    )
    if val_data is not None:
        refuse_inapplicable(
            "with --val-data (that file is the held-out split)", val_fraction=val_fraction != DEFAULT_VAL_FRACTION
        )


LossOpt = Annotated[
    LossName,
    typer.Option("--loss", parser=choice_parser(LossName, "--loss"), metavar=choice_metavar(LossName), help=LOSS_HELP),
]
BoxLossOpt = Annotated[
    Optional[BoxLossName],
    typer.Option(
        "--box-loss",
        parser=choice_parser(BoxLossName, "--box-loss"),
        metavar=choice_metavar(BoxLossName),
        help=BOX_HELP,
        show_default=False,
    ),
]
SamplerOpt = Annotated[
    SamplerName,
    typer.Option(
        "--sampler",
        parser=choice_parser(SamplerName, "--sampler"),
        metavar=choice_metavar(SamplerName),
        help=SAMPLER_HELP,
    ),
]
DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        help="synthetic-lt (built in), a COCO/LVIS/VOC annotation "
        "file (with --images), or a YOLO data.yaml (its own images: trains on its train split, "
        "evaluates on its val split; no --images).",
    ),
]
ImagesOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--images",
        help="Image folder for a COCO/LVIS/VOC --data FILE (file_name is relative to it); not for a YOLO data.yaml.",
        show_default=False,
    ),
]
TrainSplitOpt = Annotated[
    Optional[str],
    typer.Option(
        "--split",
        metavar="NAME",
        show_default=False,
        help="Training split of a YOLO data.yaml (default train; its val split is evaluated).",
    ),
]
ValDataOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--val-data",
        help="Held-out annotation file (default: hold out --val-fraction of --data's images).",
        show_default=False,
    ),
]
ValFractionOpt = Annotated[
    float, typer.Option("--val-fraction", help="Share of --data's images held out for evaluation.")
]
TrainAnchorsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--anchors",
        help="Anchor preset: synthetic-lt | compact | retinanet | "
        "path to a preset TOML (strides 8..128). Default: synthetic-lt for the "
        "synthetic data, compact (RetinaNet anchors, 512 px) for real data.",
        show_default=False,
    ),
]
DataSeedOpt = Annotated[int, typer.Option("--data-seed", help="Seed of the synthetic-lt images.")]
TrainImagesOpt = Annotated[int, typer.Option("--train-images", help="synthetic-lt training images.")]
ValImagesOpt = Annotated[int, typer.Option("--val-images", help="synthetic-lt held-out images.")]
TailOpt = Annotated[str, typer.Option("--tail", help="synthetic-lt class-frequency profile: lvis | exp | uniform.")]


# long: 23 options, one a line as Typer declares them, then copied one a line into the TrainConfig
def train(
    loss: LossOpt = "focal",
    box_loss: BoxLossOpt = None,
    sampler: SamplerOpt = "none",
    data: DataOpt = "synthetic-lt",
    images: ImagesOpt = None,
    split: TrainSplitOpt = None,
    val_data: ValDataOpt = None,
    val_fraction: ValFractionOpt = DEFAULT_VAL_FRACTION,
    anchors: TrainAnchorsOpt = None,
    epochs: int = typer.Option(10, "--epochs", help="Training epochs."),
    batch_size: int = typer.Option(16, "--batch-size", help="Images per iteration."),
    lr: float = typer.Option(2e-3, "--lr", help="Peak AdamW learning rate (warm-up, then cosine decay)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    out: Path = typer.Option(Path("runs/train"), "--out", help="Output folder (checkpoint, log, metrics, plots)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt (same options required)."),
    seed: int = typer.Option(0, "--seed", help="Seed of initialisation, data order and sampling."),
    data_seed: DataSeedOpt = SYNTHETIC_DEFAULTS["data_seed"],
    train_images: TrainImagesOpt = SYNTHETIC_DEFAULTS["train_images"],
    val_images: ValImagesOpt = SYNTHETIC_DEFAULTS["val_images"],
    tail: TailOpt = SYNTHETIC_DEFAULTS["tail"],
    threads: int = typer.Option(0, "--threads", help="CPU threads (0 = the cores not already busy)."),
    json_out: bool = typer.Option(False, "--json", help="Print metrics.json to stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or per-epoch lines."),
):
    """Train the compact one-stage detector and evaluate it on the held-out split.

    Writes OUT/metrics.json (AP, AP50, AP75, APs/m/l from pycocotools; APr/APc/APf from lvis; AP per BAGS bin; the
    settings), OUT/train_log.jsonl (per-iteration task losses and gradient norms), OUT/checkpoint.pt (each epoch) and
    the plots loss_paces.png, ap_vs_instances.png and weight_norms.png.
    """
    set_quiet(quiet)
    refuse_data_options(
        data,
        images,
        val_data,
        val_fraction,
        data_seed=data_seed,
        train_images=train_images,
        val_images=val_images,
        tail=tail,
    )
    from imbalance_cli.detector.train import TrainConfig  # torch: lazy
    from imbalance_cli.detector.train import train as run

    cfg = TrainConfig(
        loss=loss.value,
        box_loss=box_loss.value if box_loss is not None else None,
        sampler=sampler.value,
        data=data,
        images=str(images) if images else None,
        split=split,
        val_data=str(val_data) if val_data else None,
        val_fraction=val_fraction,
        anchors=anchors,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        device=device,
        out=str(out),
        resume=resume,
        seed=seed,
        data_seed=data_seed,
        train_images=train_images,
        val_images=val_images,
        tail=tail,
        threads=threads,
    )
    echo = (lambda s: None) if (quiet or json_out) else (lambda s: typer.echo(s, err=True))
    metrics = run(cfg, renderer=report_train, echo=echo)
    if json_out:
        echo_json(dumps_json({k: v for k, v in metrics.items()}))
        return
    if not quiet:
        for line in summary_lines(metrics):
            typer.echo(line)
        typer.echo(f"wrote {out}/metrics.json")


train.rank_zero_outputs = ()  # under torchrun --out is kept on every rank: the trainer itself writes on rank 0 only


def register(app):
    """Add this module's command(s) to the Typer app."""
    app.command("train")(handle_errors(train))
