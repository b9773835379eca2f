"""`imbalance stats FILE`: the survey's dataset statistics (and anchor statistics) of one annotation file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, NamedTuple, Optional

import typer

from imbalance_cli import dist
from imbalance_cli.anchors.kinds import kind_of
from imbalance_cli.anchors.kinds import resolve as resolve_kind
from imbalance_cli.check.advice import ADVICE_ENV, DEFAULT_BUDGET, advice_default, advise
from imbalance_cli.check.rules import Rules, load_rules
from imbalance_cli.commands._anchor_options import (
    ChunkSizeOpt,
    CocoEvalSizesOpt,
    DeviceOpt,
    EngineOpt,
    MatcherOpt,
    NegativeSampleOpt,
    NegIouOpt,
    PosIouOpt,
    WorkersOpt,
    build_spec,
    size_by,
)
from imbalance_cli.commands._common import (
    check_out,
    echo_json,
    flag,
    handle_errors,
    out_option,
    refuse_inapplicable,
    set_quiet,
    wrote,
)
from imbalance_cli.commands._split import names_hint
from imbalance_cli.data import load
from imbalance_cli.data.spec import LoadSpec
from imbalance_cli.data.splits import split_of
from imbalance_cli.data.yolo import label_summary, split_datasets
from imbalance_cli.errors import InputError
from imbalance_cli.fileio import dumps_json
from imbalance_cli.report import splits as render_splits
from imbalance_cli.report import stats as render
from imbalance_cli.report.gallery import GalleryOptions
from imbalance_cli.specs import DEFAULT_CHUNK_IMAGES, Device, Engine, Matcher, check_bins, parse_anchors
from imbalance_cli.stats import analyze
from imbalance_cli.stats.gallery import DEFAULT_IMAGES as DEFAULT_GALLERY
from imbalance_cli.stats.splits import has_splits, split_statistics

FORMAT_CHOICES = ("coco", "lvis", "openimages", "objects365", "voc", "yolo")


def _parse_bags_edges(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--bags-edges must be comma-separated numbers (inf allowed), got {text!r}") from None


def _is_yolov5(anchors) -> bool:
    """A preset of a kind with its own assignment (YOLOv5: :mod:`imbalance_cli.anchors.kinds`), named or in a TOML."""
    return isinstance(anchors, str) and kind_of(anchors) is not None


FileArg = Annotated[
    Path,
    typer.Argument(
        help="Annotation file (COCO/LVIS/Objects365 JSON, Open Images CSV, VOC XML or "
        "directory, YOLO data.yaml or labels folder; .gz accepted).",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    Optional[str],
    typer.Option(
        "--format", "-f", help="Override format detection: " + "|".join(FORMAT_CHOICES) + ".", show_default=False
    ),
]
ClassesOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--classes",
        help="Open Images class-descriptions-boxable.csv "
        "(default: looked for beside FILE), or the names.txt of a YOLO labels "
        "folder.",
        show_default=False,
    ),
]
ImageSizesOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--image-sizes",
        help="Open Images image sizes CSV (ImageID,Width,Height); without it only relative statistics.",
        show_default=False,
    ),
]
StatsAnchorsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--anchors",
        help="Anchor preset for anchor statistics: none | "
        "retinanet | rpn | ssd300 | mmdet-retinanet | detectron2-retinanet | atss | fcos | "
        "yolov5 | path to a preset TOML. "
        "Default: retinanet; yolov5 for a YOLO dataset with images.",
        show_default=False,
    ),
]
LocationBinsOpt = Annotated[int, typer.Option("--location-bins", help="Bins per axis of the box-centre histogram.")]
BagsEdgesOpt = Annotated[str, typer.Option("--bags-edges", help="BAGS group edges on instance counts.")]
HistBinsOpt = Annotated[int, typer.Option("--hist-bins", help="Bins of the relative width/height/area histograms.")]
StatsSplitOpt = Annotated[
    Optional[str],
    typer.Option(
        "--split",
        metavar="NAME",
        show_default=False,
        help="One split of a "
        "multi-split YOLO data.yaml (train, val, ...). Default: every split side by "
        "side, with the train vs val distances.",
    ),
]
YoloVersionOpt = Annotated[
    Optional[int],
    typer.Option(
        "--yolo-version",
        help="YOLO datasets: count as Ultralytics 8.x reads them (8, default) or as YOLOv5 7.0 does (5).",
        show_default=False,
    ),
]
GalleryOpt = Annotated[
    Optional[int],
    typer.Option(
        "--gallery",
        metavar="N",
        show_default=False,
        help="report.html's "
        "gallery decodes or draws at most N images, as the detector sees them "
        f"(0: no gallery; default {DEFAULT_GALLERY}; needs --out and anchors).",
    ),
]
ImagesOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--images",
        metavar="DIR",
        show_default=False,
        help="Image folder of "
        "a COCO-style file: the gallery draws the pixels (file_name relative to DIR; "
        "YOLO datasets list their images). Default: a blank canvas of each image's "
        "size.",
    ),
]
AdviceBudgetOpt = Annotated[
    Optional[float],
    typer.Option(
        "--advice-budget",
        metavar="SECONDS",
        show_default=False,
        help="Seconds the advice's anchor search may take (default "
        f"{DEFAULT_BUDGET:g}; the fit's starts are scored first).",
    ),
]
RulesOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--rules",
        metavar="TOML",
        show_default=False,
        help="The advice's thresholds: an `imbalance check` rules file (default: check's defaults).",
    ),
]


# long: 30 options, one a line as Typer declares them; the body is the command's steps in order
def stats(
    file: FileArg,
    format: FormatOpt = None,
    classes: ClassesOpt = None,
    image_sizes: ImageSizesOpt = None,
    anchors: StatsAnchorsOpt = None,
    matcher: MatcherOpt = Matcher.auto,
    device: DeviceOpt = Device.auto,
    engine: EngineOpt = Engine.auto,
    pos_iou: PosIouOpt = None,
    neg_iou: NegIouOpt = None,
    negative_iou_sample: NegativeSampleOpt = None,
    workers: WorkersOpt = 0,
    chunk_size: ChunkSizeOpt = DEFAULT_CHUNK_IMAGES,
    location_bins: LocationBinsOpt = 20,
    per_class_location: bool = flag("--per-class-location", help="Also a centre histogram per class."),
    bags_edges: BagsEdgesOpt = "0,10,100,1000,inf",
    hist_bins: HistBinsOpt = 50,
    coco_eval_sizes: CocoEvalSizesOpt = False,
    split: StatsSplitOpt = None,
    json_out: bool = flag("--json", help="Print only the report JSON to stdout."),
    out: Optional[Path] = out_option("stats.json, CSVs, PNG figures and report.html"),
    quiet: bool = flag("--quiet", "-q", help="No progress bars or status messages."),
    strict: bool = flag("--strict", help="Fail (exit 2) on the first invalid box instead of counting it."),
    no_cache: bool = flag("--no-cache", help="Neither read nor write the columnar cache ($IMBALANCE_CACHE)."),
    yolo_version: YoloVersionOpt = None,
    gallery: GalleryOpt = None,
    images: ImagesOpt = None,
    no_advice: bool = flag("--no-advice", help="No 'What to change' section (no anchor fit, no batch simulation)."),
    advice_budget: AdviceBudgetOpt = None,
    rules: RulesOpt = None,
) -> None:
    """Dataset imbalance statistics (survey Figs. 4, 5, 7, 13): class long tail, objects and classes per image,
    scale, location, imbalance measures, verdicts, and (unless --anchors none) anchor statistics."""
    set_quiet(quiet)
    check_out(out, file, own=render.OWN_FILES + render_splits.OWN_FILES)
    if format is not None and format.lower() not in FORMAT_CHOICES:
        raise InputError(f"--format must be one of {', '.join(FORMAT_CHOICES)}, got {format!r}")
    check_bins("--location-bins", location_bins)
    edges = _parse_bags_edges(bags_edges)
    advice_rules, gallery_opts = _advice_and_gallery_options(
        out, gallery, images, no_advice, advice_budget, rules, anchors
    )
    anchor_opts = dict(matcher=matcher, device=device, engine=engine, pos_iou=pos_iou, neg_iou=neg_iou)
    anchor_opts.update(negative_iou_sample=negative_iou_sample, workers=workers, chunk_size=chunk_size)
    if anchors is not None:
        _refuse_unused(anchors, anchor_opts)
    spec = _make_spec(anchors, anchor_opts) if anchors is not None else None

    load_spec = LoadSpec.build(
        format=format,
        classes=classes,
        image_sizes=image_sizes,
        workers=workers or None,
        cache=not no_cache,
        strict=strict,
        yolo_version=yolo_version,
    )
    dataset = _load_split(file, load_spec, split, quiet or json_out)
    if anchors is None:  # the detector a dataset's users train: YOLOv5 for YOLO datasets, RetinaNet otherwise
        anchors = ("yolov5" if dataset.has_image_sizes else "none") if dataset.format == "yolo" else "retinanet"
        _refuse_unused(anchors, anchor_opts)
        spec = _make_spec(anchors, anchor_opts)
    _refuse_for_dataset(dataset, anchors, gallery, images, advice_budget)
    if advice_rules is not None:
        _rules_agree(advice_rules[0], rules, anchors, spec)
    yolo_warnings(dataset, quiet=json_out)
    anchor_arg, anchor_kwargs = _anchor_arguments(dataset, anchors, spec, anchor_opts)
    stat_kwargs = dict(
        anchors=anchor_arg,
        location_bins=location_bins,
        per_class_location=per_class_location,
        bags_edges=edges,
        strict=strict,
        size_by=size_by(coco_eval_sizes),
        **anchor_kwargs,
    )
    advice_anchors = anchor_arg if spec is None else spec
    show = _Show(out=out, gallery_opts=gallery_opts, quiet=quiet, json_out=json_out)
    if has_splits(dataset):  # a data.yaml with several splits: each split plus the train-vs-val comparison
        _stats_of_splits(dataset, file, stat_kwargs, hist_bins, advice_anchors, advice_rules, show)
        return
    source = str(file) if split is None else f"{file} --split {split}"
    _stats_of_dataset(dataset, source, stat_kwargs, hist_bins, advice_anchors, advice_rules, show)


def _load_split(file: Path, load_spec: LoadSpec, split: Optional[str], quiet: bool):
    """The dataset (one split of it when ``split`` is given), with the class-names hint unless ``quiet``."""
    dataset = load(str(file), spec=load_spec)
    if split is not None:
        dataset = split_of(dataset, split)
    names_hint(dataset, quiet)
    return dataset


def _anchor_arguments(dataset, anchors, spec, anchor_opts: dict) -> tuple:
    """The statistics' ``anchors`` argument and extra keywords (the yolov5 kind's own), after the anchor limits are
    checked on the dataset's images."""
    if spec is not None and dataset.has_image_sizes:  # the anchor limits, before any statistic is computed
        spec.check_images(dataset.heights, dataset.widths, dataset.image_ids, path=dataset.path)
    anchor_arg, anchor_kwargs = spec, {}
    if _is_yolov5(anchors):  # YOLOv5 build_targets + AutoAnchor (no IoU matcher: see stats/yolov5.py)
        anchor_arg, anchor_kwargs = (
            resolve_kind(anchors),
            {
                "matcher": anchor_opts["matcher"].value,
                "pos_iou": anchor_opts["pos_iou"],
                "neg_iou": anchor_opts["neg_iou"],
            },
        )
    return anchor_arg, anchor_kwargs


def _make_spec(preset, anchor_opts: dict):
    """One AnchorSpec from the options (None for the yolov5 kind), validated before loading."""
    return None if _is_yolov5(preset) else build_spec(preset, **anchor_opts)


def _refuse_unused(preset, anchor_opts: dict) -> None:
    """Refuse anchor-pass options without an anchor pass, or that the yolov5 path does not use."""
    yolo = _is_yolov5(preset)
    if preset is not None and parse_anchors(preset) is not None and not yolo:
        return
    why = (
        "to the yolov5 preset (YOLOv5's build_targets assignment runs on the CPU, with no IoU histogram)"
        if yolo
        else "with --anchors none (no anchor pass)"
    )
    o = anchor_opts
    refuse_inapplicable(
        why,
        matcher=not yolo and o["matcher"] != Matcher.auto,
        device=o["device"] != Device.auto,
        engine=o["engine"] != Engine.auto,
        pos_iou=not yolo and o["pos_iou"] is not None,
        neg_iou=not yolo and o["neg_iou"] is not None,
        negative_iou_sample=o["negative_iou_sample"] is not None,
        chunk_size=o["chunk_size"] != DEFAULT_CHUNK_IMAGES,
    )


class _Show(NamedTuple):
    """Where and how a stats report is shown: --out directory, gallery options, --quiet, --json."""

    out: Optional[Path]
    gallery_opts: Optional[GalleryOptions]
    quiet: bool
    json_out: bool


def _stats_of_splits(dataset, file, stat_kwargs, hist_bins, advice_anchors, advice_rules, show: _Show) -> None:
    """A data.yaml with several splits: each split's statistics (and advice), the train-vs-val comparison, shown."""
    box_tables: dict = {}
    split_report = split_statistics(dataset, scale_bins=hist_bins, box_tables=box_tables, **stat_kwargs)
    if advice_rules is not None:
        parts = split_datasets(dataset)
        for name in split_report["order"]:
            split_report["splits"][name]["advice"] = dist.on_main(
                advise,
                split_report["splits"][name],
                parts[name],
                advice_anchors,
                advice_rules[0],
                advice_rules[1],
                advice_rules[2],
                f"{file} --split {name}",
            )
    written = (
        render_splits.write_outputs(split_report, show.out, box_tables=box_tables, gallery=show.gallery_opts)
        if show.out is not None
        else []
    )
    _gallery_warnings([r.get("gallery") for r in split_report["splits"].values()], show.quiet or show.json_out)
    if show.json_out:
        echo_json(dumps_json(split_report))
        return
    render_splits.render_terminal(split_report)
    wrote(show.out, written, show.quiet)


def _stats_of_dataset(dataset, source, stat_kwargs, hist_bins, advice_anchors, advice_rules, show: _Show) -> None:
    """One dataset's statistics (and advice, labelled with ``source``), written and shown."""
    report = analyze(dataset, hist_bins=hist_bins, **stat_kwargs)
    # the per-box table (about 50 bytes a box) is written only into --out: released before the advice otherwise
    box_table = report.box_table if show.out is not None else None
    data = report.to_dict()
    del report
    if dataset.format == "yolo":  # what the trainer's rules found in the label files (see data/yolo.py)
        data["labels"] = label_summary(dataset)
    if advice_rules is not None:  # computed by rank 0 alone under torchrun (a time-bounded search)
        data["advice"] = dist.on_main(advise, data, dataset, advice_anchors, *advice_rules, source)
    written = (
        render.write_outputs(data, show.out, box_table=box_table, gallery=show.gallery_opts)
        if show.out is not None
        else []
    )
    _gallery_warnings([data.get("gallery")], show.quiet or show.json_out)
    if show.json_out:
        echo_json(dumps_json(data))
        return
    render.render_terminal(data)
    wrote(show.out, written, show.quiet)


def _advice_and_gallery_options(out, gallery, images, no_advice, advice_budget, rules, anchors):
    """The advice's ``(rules, budget, rules source)`` (None with --no-advice) and the gallery's options (None: no
    gallery), checked before any data is read; options that cannot apply are refused."""
    off = not no_advice and not advice_default()
    refuse_inapplicable(
        f"with --no-advice{f' ({ADVICE_ENV}=off)' if off else ''}",
        advice_budget=(no_advice or off) and advice_budget is not None,
        rules=(no_advice or off) and rules is not None,
    )
    no_advice = no_advice or off
    if advice_budget is not None and not (advice_budget > 0 and math.isfinite(advice_budget)):
        raise InputError(f"--advice-budget must be a positive number of seconds, got {advice_budget}")
    if gallery is not None and gallery < 0:
        raise InputError(f"--gallery must be 0 (no gallery) or a number of images, got {gallery}")
    main = not dist.launched() or dist.rank_info().is_main  # other ranks under torchrun write nothing
    refuse_inapplicable(
        "without --out (the gallery is part of the report directory)",
        gallery=main and out is None and gallery is not None,
        images=main and out is None and images is not None,
    )
    refuse_inapplicable("with --gallery 0", images=images is not None and gallery == 0)
    none = anchors is not None and parse_anchors(anchors) is None
    refuse_inapplicable(
        "with --anchors none (the gallery draws anchors; the advice's budget bounds an anchor fit)",
        gallery=none and gallery is not None,
        images=none and images is not None,
        advice_budget=none and advice_budget is not None,
    )
    if images is not None and not images.is_dir():
        raise InputError("--images must be a folder of images", path=str(images))
    advice = None
    if not no_advice:
        advice = (
            load_rules(rules) if rules is not None else Rules(),
            DEFAULT_BUDGET if advice_budget is None else float(advice_budget),
            None if rules is None else str(rules),
        )
    opts = None if out is None else GalleryOptions(DEFAULT_GALLERY if gallery is None else int(gallery), images)
    return advice, opts


def _refuse_for_dataset(dataset, anchors, gallery, images, advice_budget) -> None:
    """What the loaded dataset rules out: --images on a YOLO dataset (it lists its own image files), and the
    gallery and the advice budget once the default preset turns out to be none (a YOLO labels folder)."""
    if images is not None and dataset.format == "yolo":
        raise InputError("--images does not apply to a YOLO dataset: it lists its own image files")
    if parse_anchors(anchors) is None:
        refuse_inapplicable(
            "without anchors (this dataset has no image sizes)",
            gallery=gallery is not None,
            images=images is not None,
            advice_budget=advice_budget is not None,
        )


def _rules_agree(r, path, anchors, spec) -> None:
    """A rules file's ``[anchors]`` table is ``imbalance check``'s: ``stats`` takes its preset from --anchors, so the
    table must describe the same anchors (preset, and matcher and thresholds where it sets them), else refused."""
    if r.anchors is None:
        return
    ours = "none" if parse_anchors(anchors) is None else str(anchors)
    if str(r.anchors).strip().lower() != ours.strip().lower():
        raise InputError(
            f"[anchors] preset = {r.anchors!r} differs from this run's --anchors {ours}: pass --anchors "
            f"{r.anchors} or a rules file without [anchors] (its preset is imbalance check's)",
            path=str(path),
        )
    opts = r.anchor_options
    if spec is None or not opts:
        return
    from imbalance_cli.specs import resolve_semantics

    same = (
        ("matcher" not in opts or resolve_semantics(opts["matcher"], spec.preset) == spec.semantics)
        and ("pos_iou" not in opts or float(opts["pos_iou"]) == float(spec.preset.pos_iou))
        and ("neg_iou" not in opts or float(opts["neg_iou"]) == float(spec.preset.neg_iou))
    )
    if not same:
        raise InputError(
            f"[anchors] sets {', '.join(sorted(opts))} unlike this run's --matcher/--pos-iou/--neg-iou: "
            "give the same values, or a rules file without them",
            path=str(path),
        )


def _gallery_warnings(summaries, quiet: bool) -> None:
    """One line on stderr per gallery whose images could not all be read (all are listed in report.html)."""
    for g in summaries:
        if g and g.get("problems") and not quiet:
            typer.echo(
                f"warning: {len(g['problems'])} gallery image(s) drawn on a blank canvas (listed in "
                f"report.html): {g['problems'][0]}",
                err=True,
            )


def yolo_warnings(dataset, quiet: bool = False, shown: int = 5) -> None:
    """YOLO: the corrupt images the trainer skips (first ``shown`` as ``file[:line]: reason``) on stderr; a class
    YOLOv5's train.py stops on is an error (exit 2)."""
    info = dataset.info
    if info.get("fatal"):
        raise InputError(
            f"{info['fatal'][0]} ({len(info['fatal'])} such label line(s); use --yolo-version 8 to "
            "count them as Ultralytics 8.x does)"
        )
    n = info.get("corrupt_image_count") or 0
    if n and not quiet:
        typer.echo(
            f"warning: {n:,} corrupt image(s) skipped as {info.get('trainer', 'the trainer')} skips them "
            "(all listed in the JSON report's labels.corrupt):",
            err=True,
        )
        for line in info["corrupt"][:shown]:
            typer.echo(f"  {line}", err=True)
        if n > shown:
            typer.echo(f"  ... and {n - shown:,} more", err=True)


def register(app: typer.Typer) -> None:
    """Add ``imbalance stats`` to the Typer app."""
    app.command("stats")(handle_errors(stats))
