"""Training loop of the compact detector: match anchors, compute task losses, log, checkpoint, evaluate.

* Anchors come from the project's presets and generator (:mod:`imbalance_cli.anchors`) and are
  labelled by the project's matcher (the same rule ``imbalance stats`` reports on): matched box
  index ``>= 0`` positive, ``-1`` negative, ``-2`` ignored.
* Every iteration appends one JSON line to ``train_log.jsonl``: classification and regression
  losses and the gradient norm each task puts on its own head (the classification tower + output
  receive gradient only from the classification loss, the box tower + output only from the
  regression loss), i.e. the objective-imbalance view of the survey (Oksuz et al., Imbalance Problems in Object
  Detection: A Review, TPAMI 2021, §7, Figs. 16-17).
* A checkpoint (model, optimizer, stateful-loss state, every RNG state, epoch) is written
  atomically after each epoch; ``resume=True`` continues from it and reaches the same weights
  and metrics as an uninterrupted run (data order and flips come from per-epoch seeded
  generators, BAGS sampling from per-step seeded generators).
* Optimiser: AdamW (weight decay 1e-4), linear warm-up over the first 200 iterations (or 10% of
  training if shorter), then cosine decay to 1% of ``lr``; gradient-norm clipping at 10.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imbalance_cli import dist
from imbalance_cli.anchors.dense import dense_match_batched
from imbalance_cli.anchors.generator import grid_anchors, level_layout
from imbalance_cli.anchors.presets import get_preset, preset_from_dict
from imbalance_cli.anchors.yolov5_schema import refuse_yolov5
from imbalance_cli.boxes import iou_aligned
from imbalance_cli.data.yolo import is_yolo_path
from imbalance_cli.detector import data as D
from imbalance_cli.detector.evaluate import evaluate
from imbalance_cli.detector.model import Detector, ModelConfig, PostProcess, postprocess
from imbalance_cli.detector.objectives import resolve_objectives, sample_anchors
from imbalance_cli.detector.resume import check_archive, check_checkpoint, check_states, kept_log_lines
from imbalance_cli.detector.synthetic import SyntheticConfig
from imbalance_cli.errors import InputError
from imbalance_cli.fileio import AppendFile, claim_files, make_dirs, write_json, write_text, write_via
from imbalance_cli.losses.registry import check_options, check_sampler
from imbalance_cli.losses.regression import decode_deltas, encode_deltas
from imbalance_cli.progress import counter as progress_counter
from imbalance_cli.progress import enabled as progress_enabled
from imbalance_cli.specs import resolve_device

#: The anchor preset for ``synthetic-lt``'s 128 px images: strides 8/16/32, three octave scales
#: and ratios 0.5/1/2 per level (sizes 16-101 px), RetinaNet thresholds 0.5/0.4.
SYNTHETIC_PRESET_SPEC = {
    "name": "synthetic-lt",
    "kind": "grid",
    "strides": [8, 16, 32],
    "sizes": [[16, 20, 25], [32, 40, 50], [64, 80, 101]],
    "aspect_ratios": [[0.5, 1.0, 2.0]],
    "level_names": ["P3", "P4", "P5"],
    "pos_iou": 0.5,
    "neg_iou": 0.4,
    "allow_low_quality": True,
    "matcher": "torchvision",
    "resize": {"fixed": [128, 128], "size_divisible": 32, "min_size": None, "max_size": None},
}

#: Default preset for real data on a CPU: RetinaNet's P3-P7 anchors on images resized to 512 px.
COMPACT_PRESET_SPEC = {
    "name": "compact",
    "kind": "grid",
    "strides": [8, 16, 32, 64, 128],
    "sizes": [[32, 40, 50], [64, 80, 101], [128, 161, 203], [256, 322, 406], [512, 645, 812]],
    "aspect_ratios": [[0.5, 1.0, 2.0]],
    "level_names": ["P3", "P4", "P5", "P6", "P7"],
    "pos_iou": 0.5,
    "neg_iou": 0.4,
    "allow_low_quality": True,
    "matcher": "torchvision",
    "resize": {"min_size": 512, "max_size": 853, "size_divisible": 32},
}


@dataclass
class TrainConfig:
    """Every setting of a training run (recorded in ``metrics.json``)."""

    loss: str = "focal"
    box_loss: str | None = None  # None: the loss's default (giou)
    sampler: str = "none"
    data: str = "synthetic-lt"
    images: str | None = None
    split: str | None = None  # a YOLO data.yaml's training split (None: train)
    val_data: str | None = None
    val_fraction: float = 0.2
    anchors: str | None = None  # None: synthetic-lt preset or "compact"
    epochs: int = 10
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    box_weight: float = 1.0
    device: str = "auto"
    out: str = "runs/train"
    resume: bool = False
    seed: int = 0
    threads: int = 0  # 0: auto_threads()
    data_seed: int = 0
    train_images: int = 1600
    val_images: int = 400
    tail: str = "lvis"
    max_instances: int = 900
    min_instances: int = 3
    synthetic_dir: str | None = None  # cache of generated synthetic-lt (default OUT/synthetic-lt)
    flip: bool = True
    plots: bool = True
    max_iters: int = 0  # >0: stop each epoch after this many iterations (tests)


def auto_threads() -> int:
    """CPU threads for ``--threads 0``: the cores not already busy (1-minute load average), at least 1.

    Oversubscribing cores is far worse than leaving one idle for torch's OpenMP kernels (a 2-core
    machine with one busy core ran an iteration 25x slower with 2 threads than with 1).
    """
    n = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(n, int(n - busy + 0.5)))


def detector_preset(cfg: TrainConfig):
    """The anchor preset of a run; checks it fits the detector (grid kind, strides 8, 16, ... 128)."""
    if cfg.anchors:
        if cfg.anchors == "synthetic-lt":
            preset = preset_from_dict(SYNTHETIC_PRESET_SPEC)
        elif cfg.anchors == "compact":
            preset = preset_from_dict(COMPACT_PRESET_SPEC)
        else:
            preset = get_preset(cfg.anchors)
    else:
        preset = preset_from_dict(SYNTHETIC_PRESET_SPEC if cfg.data == "synthetic-lt" else COMPACT_PRESET_SPEC)
    if preset.kind != "grid":
        raise InputError(
            f"the detector needs a grid anchor preset, {preset.name!r} is {preset.kind!r}", record="--anchors"
        )
    if preset.assigner != "max_iou":
        raise InputError(
            f"the detector labels anchors by max IoU; preset {preset.name!r} assigns with {preset.assigner}",
            record="--anchors",
        )
    n = preset.num_levels
    if n < 1 or n > 5 or tuple(preset.strides) != tuple(8 * 2**i for i in range(n)):
        raise InputError(
            f"the detector's levels have strides 8, 16, 32, 64, 128; preset {preset.name!r} has {list(preset.strides)}",
            record="--anchors",
        )
    per = {preset.anchors_per_location(i) for i in range(n)}
    if len(per) != 1:
        raise InputError(
            f"preset {preset.name!r} must have the same number of anchors per location on every level",
            record="--anchors",
        )
    return preset


def validate(cfg: TrainConfig) -> None:
    """Check numeric options and names early (InputError naming the option)."""
    if cfg.epochs < 1:
        raise InputError(f"--epochs must be >= 1, got {cfg.epochs}")
    if cfg.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {cfg.batch_size}")
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise InputError(f"--lr must be a positive number, got {cfg.lr}")
    if cfg.train_images < 1 or cfg.val_images < 1:
        raise InputError("--train-images and --val-images must be >= 1")
    if cfg.tail not in ("lvis", "exp", "uniform"):
        raise InputError(f"unknown tail {cfg.tail!r}: use lvis, exp or uniform", record="--tail")
    check_options(cfg.loss, cfg.box_loss)
    check_sampler(cfg.sampler)
    refuse_yolov5(
        cfg.anchors,
        "train",
        "the compact detector's RetinaNet-style heads label anchors by max IoU "
        "(strides 8..128); use synthetic-lt, compact, retinanet or a grid TOML",
    )
    if cfg.split is not None and (cfg.data == "synthetic-lt" or not is_yolo_path(cfg.data)):
        raise InputError(f"--split {cfg.split}: only a YOLO data.yaml has splits", record="--split")
    if cfg.data != "synthetic-lt":
        if not Path(cfg.data).exists():
            raise InputError("annotation file not found (or use --data synthetic-lt)", path=cfg.data, record="--data")
        if not cfg.images and not is_yolo_path(cfg.data):
            raise InputError("--images DIR is required with --data FILE (a YOLO data.yaml lists its own images)")
    resolve_device(cfg.device)  # an unknown name or CUDA without a GPU is refused before any work
    if cfg.resume and not (Path(cfg.out) / "checkpoint.pt").exists():
        raise InputError("no checkpoint to resume from", path=str(Path(cfg.out) / "checkpoint.pt"), record="--resume")


def load_data(cfg: TrainConfig, preset):
    """Synthetic or real data for a run (see :mod:`imbalance_cli.detector.data`)."""
    if cfg.data == "synthetic-lt":
        scfg = SyntheticConfig(
            seed=cfg.data_seed,
            train_images=cfg.train_images,
            val_images=cfg.val_images,
            tail=cfg.tail,
            max_instances=cfg.max_instances,
            min_instances=cfg.min_instances,
        )
        cache = Path(cfg.synthetic_dir) if cfg.synthetic_dir else Path(cfg.out) / "synthetic-lt"
        try:
            return D.load_synthetic(cache, scfg, preset)
        except ValueError as e:
            raise InputError(f"cannot build synthetic-lt with these sizes: {e}", record="--train-images") from None
    return D.load_real(cfg.data, cfg.images, preset, cfg.val_fraction, cfg.seed, cfg.val_data, split=cfg.split)


class _Anchors:
    """Anchors per padded image size (cached)."""

    def __init__(self, preset, device):
        self.preset, self.device, self.cache = preset, device, {}

    def __call__(self, h: int, w: int):
        key = (h, w)
        if key not in self.cache:
            a, _lv = grid_anchors(self.preset, h, w, device=self.device, dtype=torch.float32)
            counts = [lay.count for lay in level_layout(self.preset, h, w)]
            self.cache[key] = (a, counts)
        return self.cache[key]


def _match_batch(preset, anchors, gt_boxes, device):
    """Label every anchor of every image with the project's dense matcher (one batched call).

    Returns ``matched (B, A)`` (box index, -1 negative, -2 ignored) and the anchors' best IoU ``(B, A)``.
    """
    B = len(gt_boxes)
    M = max([int(b.shape[0]) for b in gt_boxes] + [0])
    boxes = torch.zeros(B, max(M, 1), 4, device=device)
    valid = torch.zeros(B, max(M, 1), dtype=torch.bool, device=device)
    for i, b in enumerate(gt_boxes):
        boxes[i, : b.shape[0]] = b.to(device)
        valid[i, : b.shape[0]] = True
    if M == 0:
        return torch.full((B, anchors.shape[0]), -1, dtype=torch.int64, device=device), torch.zeros(
            B, anchors.shape[0], device=device
        )
    out = dense_match_batched(
        anchors, boxes, valid, preset.pos_iou, preset.neg_iou, preset.allow_low_quality, preset.matcher
    )
    return out.matched, out.anchor_max.clamp_min(0)


def _lr_at(step: int, total: int, base: float) -> float:
    warm = max(1, min(200, total // 10))
    if step < warm:
        return base * (0.001 + 0.999 * step / warm)
    t = (step - warm) / max(1, total - warm)
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))


def _grad_norm(params) -> float:
    sq = 0.0
    for p in params:
        if p.grad is not None:
            sq += float(p.grad.detach().pow(2).sum())
    return math.sqrt(sq)


def _rng_state() -> dict:
    """Every RNG state as tensors and plain types (checkpoints load with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }


def _set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    n = s["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    random.setstate(s["python"])


def load_checkpoint(path: Path, device) -> dict:
    """Load ``checkpoint.pt`` with ``torch.load(weights_only=True)``: tensors and plain types only.

    A file holding anything else (e.g. a pickle that would run code on load) is refused with an
    :class:`InputError`; nothing in it is executed. Before it is read the archive is checked
    (:func:`imbalance_cli.detector.resume.check_archive`: regular file, size bound, no compressed record).
    """
    check_archive(path)
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means: not a checkpoint we wrote
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InputError(
            f"refusing to load the checkpoint: it is not a plain weights file ({first})",
            path=str(path),
            record="--resume",
        ) from None
    return ck


#: The files a run writes into its ``--out`` folder (besides the renderer's plots and ``synthetic-lt/``).
RUN_FILES = ("train_log.jsonl", "checkpoint.pt", "metrics.json", "detections.json")


def _save_checkpoint(path: Path, payload: dict) -> None:
    write_via(path, lambda f: torch.save(payload, f), "the checkpoint")  # a full disk: one line, not torch's error


def _settings(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    for k in ("resume", "out", "plots", "threads", "device"):
        d.pop(k, None)
    return d


def build_model(obj, data, preset, device):
    """The detector for an objective (head kind, logits, bias) and a preset (levels, anchors)."""
    C = data.num_classes
    return Detector(
        obj.num_logits(C),
        preset.anchors_per_location(0),
        obj.head,
        ModelConfig(num_levels=preset.num_levels),
        bias_init=obj.bias_init(C),
    ).to(device)


def _batch_labels(matched, gt_boxes, gt_labels, A: int, C: int, device) -> tuple:
    """Every anchor's label over the batch (``C`` background, -2 ignored), the positives' flat rows and boxes."""
    all_labels, pos_rows, pos_gt = [], [], []
    for b, (bx, lb) in enumerate(zip(gt_boxes, gt_labels)):
        bx = bx.to(device)
        lb = lb.to(device)
        m = matched[b]
        lab = torch.full((A,), C, dtype=torch.int64, device=device)
        pos = m >= 0
        lab[pos] = lb[m[pos]]
        lab[m == -2] = -2
        all_labels.append(lab)
        idx = torch.nonzero(pos).squeeze(1)
        pos_rows.append(idx + b * A)
        pos_gt.append(bx[m[idx]].reshape(-1, 4))
    return torch.cat(all_labels), torch.cat(pos_rows), torch.cat(pos_gt).reshape(-1, 4)


def _loc_errors(tau: float, n_rows: int, pos_rows, pb, pos_gt, keep_idx, kl, C: int):
    """aLRP's localisation errors of the kept anchors, ``(kept, C)``: E_loc = (1 - IoU) / (1 - tau), tau = pos_iou,
    of the positives' decoded boxes (differentiable), placed at each positive's class entry (Oksuz et al.,
    NeurIPS 2020, Eq. 9)."""
    device = pb.device
    loc = torch.zeros(n_rows, device=device)
    if pos_rows.numel():
        loc = loc.index_put((pos_rows,), ((1 - iou_aligned(pb, pos_gt)) / (1 - tau)).clamp(0, 1))
    loc_mat = torch.zeros(keep_idx.numel(), C + 1, device=device, dtype=loc.dtype)
    return loc_mat.index_put((torch.arange(keep_idx.numel(), device=device), kl), loc[keep_idx])[:, :C]


def compute_losses(model, obj, box_obj, sampler, preset, anchors_fn, x, gt_boxes, gt_labels, step, box_weight):
    """One forward pass and the task losses; returns ``(total, cls, box, num_pos)``.

    The objective's registry entry decides everything loss-specific: the inputs it needs, whether
    ``box_obj`` applies (``None`` for a loss with its own localisation term) and how the terms combine.
    """
    C = obj.num_classes
    logits, deltas, _sizes = model(x)
    anchors, _counts = anchors_fn(x.shape[-2], x.shape[-1])
    matched, anchor_iou = _match_batch(preset, anchors, gt_boxes, x.device)
    labels, pos_rows, pos_gt = _batch_labels(matched, gt_boxes, gt_labels, anchors.shape[0], C, x.device)
    anchor_iou = anchor_iou.reshape(-1)
    flat_logits = logits.reshape(-1, logits.shape[-1])
    flat_deltas = deltas.reshape(-1, 4)
    flat_anchors = anchors.repeat(x.shape[0], 1)
    num_pos = max(1.0, float(pos_rows.numel()))
    pa = flat_anchors[pos_rows]
    pd = flat_deltas[pos_rows]
    pb = decode_deltas(pa, pd)
    pred_iou = torch.zeros(labels.shape[0], device=x.device)
    if pos_rows.numel():
        pred_iou[pos_rows] = iou_aligned(pb.detach(), pos_gt).clamp(0, 1)
    if box_obj is not None and pos_rows.numel():
        box = box_obj.loss(pd, encode_deltas(pa, pos_gt), pb, pos_gt, pred_iou[pos_rows], num_pos)
    else:
        box = flat_deltas.sum() * 0.0
    keep = labels >= -1
    keep_idx = torch.nonzero(keep).squeeze(1)
    if sampler != "none":
        g = torch.Generator().manual_seed(7_000_003 * (step + 1))
        with torch.no_grad():
            per_anchor = obj.per_anchor_loss(flat_logits[keep_idx], labels[keep_idx]) if sampler == "ohem" else None
            sel = sample_anchors(sampler, labels[keep_idx], anchor_iou[keep_idx], per_anchor, C, g)
        keep_idx = keep_idx[sel]
    kl = labels[keep_idx]
    loc_mat = None
    if "loc_errors" in obj.needs:
        loc_mat = _loc_errors(float(preset.pos_iou), labels.shape[0], pos_rows, pb, pos_gt, keep_idx, kl, C)
    inputs = obj.inputs(flat_logits[keep_idx], kl, num_pos, step, ious=pred_iou[keep_idx], loc_errors=loc_mat)
    cls, own_box = obj.loss(inputs)
    if own_box is not None:
        box = own_box
    return obj.combine(cls, box, box_weight), cls, box, num_pos


def train(cfg: TrainConfig, echo=None, on_epoch_end=None, renderer=None) -> dict:
    """Train (or resume), evaluate on the held-out split, write outputs; return the metrics dict.

    ``on_epoch_end(epoch)`` (optional) is called after each epoch's checkpoint is written (e.g.
    to stop early by raising; a later ``resume=True`` run continues from that checkpoint).
    ``renderer`` (optional; the CLI passes :mod:`imbalance_cli.report.train`) draws what the
    trainer cannot: ``renderer.ProgressBar(total, done)`` on a terminal and
    ``renderer.write_all(out, metrics, log_path)`` for the plots when ``cfg.plots``; without it
    (library use) no bar is shown and no plot is written, since the detector layer never imports
    the report layer.

    Writes into ``cfg.out``: ``checkpoint.pt`` (each epoch), ``train_log.jsonl``,
    ``metrics.json``, ``detections.json`` and the plots (``loss_paces.png``,
    ``ap_vs_instances.png``, ``weight_norms.png``).
    """
    echo = echo or (lambda s: None)
    validate(cfg)
    world, main, device, threads = _ranks_and_device(cfg)
    out = Path(cfg.out)
    if main:  # before any work: a folder that cannot be written
        make_dirs(out, "the run folder")
    ckpt_path = out / "checkpoint.pt"
    preset = detector_preset(cfg)
    obj, box_obj = resolve_objectives(cfg.loss, cfg.box_loss, device)
    sampler = check_sampler(cfg.sampler)
    settings = _settings(cfg)
    ck = _resume_checkpoint(cfg, ckpt_path, device, settings)
    plots = tuple(getattr(renderer, "FILE_NAMES", ()))
    claim = dict(
        kind="train",
        names=RUN_FILES + (plots if cfg.plots else ()),
        legacy=("synthetic-lt", ".*.tmp", *plots),
        markers=RUN_FILES[:2],
    )
    if main:  # before any work: refuse to overwrite a file of the user's named like an output (recorded below)
        claim_files(out, **claim, record=False)
    data, t_data = _load_ranked(cfg, preset, main)
    ipe = _iters_per_epoch(cfg, len(data.train))
    obj.prepare(data.train_instances, device, iters_per_epoch=ipe)

    _seed_everything(cfg.seed)
    model = build_model(obj, data, preset, device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    run = _Run(cfg, device, preset, data, model, opt, obj, box_obj, sampler, settings, ckpt_path, ipe, world, main)
    if ck is not None:
        run.start_epoch, run.train_seconds = _restore(ck, run, echo)
    log_path = out / "train_log.jsonl"
    # the log keeps exactly the iterations before the resume point
    keep_lines = kept_log_lines(log_path, run.start_epoch * ipe) if run.start_epoch > 0 else []
    if main:  # the first write of the run: the manifest records what it will write
        claim_files(out, **claim)
        write_text(log_path, "".join(line + "\n" for line in keep_lines))
    _run_epochs(run, log_path, renderer, on_epoch_end, echo)
    if not main:  # rank 0 evaluates and writes; the others receive its metrics
        return dist.broadcast_object(None)
    metrics = _evaluate(run, threads, t_data)
    if cfg.plots and renderer is not None:
        renderer.write_all(out, metrics, log_path)
    return dist.broadcast_object(metrics)


def _ranks_and_device(cfg: TrainConfig) -> tuple:
    """``(world size, is main rank, torch device, CPU threads)``; the global batch needs an image per rank."""
    rk = dist.rank_info() if dist.active() else dist.Rank()  # under torchrun: DistributedDataParallel
    world, main = rk.world_size, rk.is_main
    if cfg.batch_size < world:
        raise InputError(
            f"--batch-size {cfg.batch_size} is the global batch: it needs at least one image per rank ({world} ranks)",
            record="--batch-size",
        )
    device = torch.device(resolve_device(cfg.device))  # under torchrun "cuda" is this rank's LOCAL_RANK GPU (dist.init)
    threads = cfg.threads or dist.local_share(auto_threads())
    torch.set_num_threads(threads)
    return world, main, device, threads


def _iters_per_epoch(cfg: TrainConfig, n: int) -> int:
    """Batches in an epoch of ``n`` training images, at most ``cfg.max_iters`` when that is set."""
    ipe = math.ceil(n / cfg.batch_size)
    return min(ipe, cfg.max_iters) if cfg.max_iters > 0 else ipe


def _seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (initialisation, data order, sampling)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _run_epochs(run: "_Run", log_path: Path, renderer, on_epoch_end, echo) -> None:
    """The epochs from ``run.start_epoch``: train, log, checkpoint (rank 0), report one line each."""
    cfg, main, ipe = run.cfg, run.main, run.ipe
    bar = (
        renderer.ProgressBar(ipe * cfg.epochs, run.start_epoch * ipe)
        if main and renderer is not None and progress_enabled()
        else None
    )
    try:
        with AppendFile(log_path, "the training log") if main else open(os.devnull, "a") as log:
            for epoch in range(run.start_epoch, cfg.epochs):
                t_ep = time.perf_counter()
                rec = _train_epoch(run, epoch, log, bar)
                run.train_seconds += time.perf_counter() - t_ep
                if main:  # rank 0 checkpoints (its stateful-loss state; see the README "Scaling out")
                    _checkpoint(run, epoch)
                if on_epoch_end is not None:
                    on_epoch_end(epoch)
                echo(
                    f"epoch {epoch + 1}/{cfg.epochs}: loss {rec['loss']:.4f} (cls {rec['cls_loss']:.4f}, "
                    f"reg {rec['reg_loss']:.4f}), {run.train_seconds:.0f}s"
                )
    finally:
        if bar:
            bar.close()


def _resume_checkpoint(cfg: TrainConfig, ckpt_path: Path, device, settings: dict):
    """The checkpoint to resume from (None without ``cfg.resume``), checked before any data is built: a missing,
    foreign or mismatched checkpoint fails fast."""
    if not cfg.resume:
        return None
    if not ckpt_path.exists():
        raise InputError("no checkpoint to resume from", path=str(ckpt_path), record="--resume")
    ck = load_checkpoint(ckpt_path, device)
    check_checkpoint(ck, ckpt_path, settings, cfg.epochs)
    return ck


def _load_ranked(cfg: TrainConfig, preset, main: bool):
    """``(data, seconds)``: rank 0 builds (and caches) the data first; the other ranks then read the same files."""
    t0 = time.perf_counter()
    if not main:
        dist.barrier()
    with dist.local_loads():
        data = load_data(cfg, preset)
    if main:
        dist.barrier()
    return data, time.perf_counter() - t0


@dataclass
class _Run:
    """What a training run's steps share: its settings, model, optimiser and objectives, and where it stands."""

    cfg: TrainConfig
    device: torch.device
    preset: Any
    data: Any
    model: Any
    opt: Any
    obj: Any
    box_obj: Any
    sampler: Any
    settings: dict
    ckpt_path: Path
    ipe: int  # iterations per epoch
    world: int
    main: bool
    start_epoch: int = 0
    train_seconds: float = 0.0

    def __post_init__(self):
        self.anchors_fn = _Anchors(self.preset, self.device)
        self.net = dist.wrap_ddp(self.model, self.device)  # the model itself in one process
        m = self.model
        self.cls_params = list(m.cls_tower.parameters()) + list(m.cls_out.parameters())
        self.box_params = list(m.box_tower.parameters()) + list(m.box_out.parameters())


def _restore(ck: dict, run: _Run, echo) -> tuple[int, float]:
    """Load a checked checkpoint's states into the run; ``(first epoch to train, training seconds so far)``."""
    check_states(
        ck, run.ckpt_path, run.model, run.opt, run.obj, run.box_obj
    )  # shapes, dtypes, finite values: before any step
    run.model.load_state_dict(ck["model"])
    run.opt.load_state_dict(ck["optimizer"])
    run.obj.load_state_dict(ck["objective"])
    if run.box_obj is not None:
        run.box_obj.load_state_dict(ck.get("box_objective", {}))
    _set_rng_state(ck["rng"])
    start_epoch = int(ck["epoch"]) + 1
    echo(f"resuming after epoch {start_epoch} of {run.cfg.epochs}")
    return start_epoch, float(ck.get("train_seconds", 0.0))


def _train_epoch(run: _Run, epoch: int, log, bar) -> dict:
    """One epoch's iterations (each logged to ``log``); returns the last iteration's log record."""
    cfg, model, opt, world = run.cfg, run.model, run.opt, run.world
    model.train()
    n = len(run.data.train)
    total_steps = run.ipe * cfg.epochs
    g = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    flips = (torch.rand(n, generator=g) < 0.5).tolist()
    for it in range(run.ipe):
        step = epoch * run.ipe + it
        idx = perm[it * cfg.batch_size : (it + 1) * cfg.batch_size]
        if len(idx) < world:  # (one process: empty) every rank needs an image
            break
        idx = dist.shard(idx)  # this rank's images of the global batch: idx[rank::world]
        lr = _lr_at(step, total_steps, cfg.lr)
        for pg in opt.param_groups:
            pg["lr"] = lr
        x, gb, gl = D.collate(
            run.data.train, idx, run.preset.resize.size_divisible, [flips[i] for i in idx] if cfg.flip else None
        )
        x = x.to(run.device)
        total, cls, box, num_pos = compute_losses(
            run.net, run.obj, run.box_obj, run.sampler, run.preset, run.anchors_fn, x, gb, gl, step, cfg.box_weight
        )
        opt.zero_grad(set_to_none=True)
        total.backward()  # under DDP the gradients are averaged over the ranks here
        gc, gr = _grad_norm(run.cls_params), _grad_norm(run.box_params)
        gall = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0))
        # logged losses: the mean over ranks of each rank's loss (the loss DDP's averaged
        # gradient belongs to); positives summed; grad norms are of the averaged gradient
        t_loss, t_cls, t_box = dist.mean_floats(float(total.detach()), float(cls.detach()), float(box.detach()))
        num_pos = dist.sum_scalars(int(num_pos))[0]
        if math.isfinite(t_loss):  # the same decision on every rank
            opt.step()
        rec = {
            "iter": step,
            "epoch": epoch,
            "lr": lr,
            "loss": t_loss,
            "cls_loss": t_cls,
            "reg_loss": t_box,
            "cls_grad_norm": gc,
            "reg_grad_norm": gr,
            "grad_norm": gall,
            "num_pos": num_pos,
        }
        log.write(json.dumps(rec) + "\n")
        if step % 20 == 0:
            log.flush()
        if bar:
            bar.update(step + 1, rec)
    log.flush()
    run.obj.end_epoch()
    return rec


def _checkpoint(run: _Run, epoch: int) -> None:
    """Write the run's state after ``epoch`` (what :func:`_restore` reads back)."""
    _save_checkpoint(
        run.ckpt_path,
        {
            "model": run.model.state_dict(),
            "optimizer": run.opt.state_dict(),
            "objective": run.obj.state_dict(),
            "box_objective": run.box_obj.state_dict() if run.box_obj is not None else {},
            "rng": _rng_state(),
            "epoch": epoch,
            "settings": run.settings,
            "train_seconds": run.train_seconds,
        },
    )


def _evaluate(run: _Run, threads: int, t_data: float) -> dict:
    """Evaluate on the held-out split, write ``detections.json`` and ``metrics.json``; return the metrics."""
    cfg, model, obj, data, box_obj = run.cfg, run.model, run.obj, run.data, run.box_obj
    t1 = time.perf_counter()
    metrics, detections = evaluate_model(model, obj, data, run.preset, run.device)
    eval_seconds = time.perf_counter() - t1
    metrics["settings"] = {
        **asdict(cfg),
        "anchors": run.preset.name,
        "box_loss": box_obj.name if box_obj else None,
        "threads": threads,
        "device": str(run.device),
    }
    metrics["classes"] = {
        "names": data.category_names,
        "train_instances": data.train_instances.tolist(),
        "frequency": data.frequency,
        "weight_norm": model.classifier_weight_norms()[torch.as_tensor(obj.class_logit_index())].tolist(),
    }
    metrics["data"] = {
        **data.source,
        "train_images": len(data.train),
        "val_images": len(data.val),
        "val_image_ids": list(data.val.image_ids),
    }
    metrics["timing"] = {
        "data_seconds": t_data,
        "train_seconds": run.train_seconds,
        "eval_seconds": eval_seconds,
        "iterations": run.ipe * cfg.epochs,
        "ranks": run.world,
    }
    out = Path(cfg.out)
    write_json(out / "detections.json", detections)
    write_json(out / "metrics.json", metrics)
    return metrics


@torch.no_grad()
def predict(model, obj, split, preset, device, batch_size: int = 32) -> list[dict]:
    """COCO-style detections (original-image coordinates) for every image of ``split``."""
    model.eval()
    anchors_fn = _Anchors(preset, device)
    results = []
    pp = PostProcess()
    with progress_counter(len(split), "inference on the held-out images") as bar:
        for s in range(0, len(split), batch_size):
            idx = list(range(s, min(len(split), s + batch_size)))
            results += _predict_batch(model, obj, split, idx, preset, device, anchors_fn, pp)
            bar.advance(len(idx))
    return results


def _predict_batch(model, obj, split, idx, preset, device, anchors_fn, pp) -> list[dict]:
    """Detections of the images ``idx`` of ``split`` (one forward pass)."""
    results = []
    x, _, _ = D.collate(split, idx, preset.resize.size_divisible)
    x = x.to(device)
    logits, deltas, _ = model(x)
    anchors, counts = anchors_fn(x.shape[-2], x.shape[-1])
    for j, i in enumerate(idx):
        h, w = int(split.images[i].shape[1]), int(split.images[i].shape[2])
        b, sc, cl = postprocess(obj.scores(logits[j]), deltas[j], anchors, counts, (h, w), pp)
        sy, sx = split.scales[i]
        b = b.cpu().double()
        b[:, 0::2] /= sx
        b[:, 1::2] /= sy
        for bb, ss, cc in zip(b.tolist(), sc.tolist(), cl.tolist()):
            results.append(
                {
                    "image_id": split.image_ids[i],
                    "category_id": int(cc),
                    "score": float(ss),
                    "bbox": [bb[0], bb[1], bb[2] - bb[0], bb[3] - bb[1]],
                }
            )
    return results


def evaluate_model(model, obj, data, preset, device) -> tuple[dict, list[dict]]:
    """Run inference on the held-out split and evaluate with pycocotools + lvis."""
    dets = predict(model, obj, data.val, preset, device)
    for d in dets:
        d["category_id"] = data.category_ids[d["category_id"]]
    return evaluate(data.val_gt, dets, data.train_instances), dets
