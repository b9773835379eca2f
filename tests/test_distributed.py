"""torchrun on localhost with gloo (2 CPU processes): stats identical to one process; DDP training runs,
checkpoints on rank 0, resumes, and logs what one process would log within a stated tolerance."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from imbalance_cli import dist
from imbalance_cli.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
COCO_VAL = ROOT / "examples" / "data" / "coco-mini_instances_val2017.json.gz"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path, **extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IMBALANCE_CACHE": str(tmp_path / "cache"), **extra}
    for k in dist.TORCHRUN_ENV:  # a test run under torchrun must not leak its own rank into the children
        env.pop(k, None)
    return env


def _torchrun(args, tmp_path, nproc=2, **extra):
    cmd = TORCHRUN + ["--nproc-per-node", str(nproc), "--master-addr", "127.0.0.1", "--master-port", str(_port())]
    return subprocess.run(cmd + args, capture_output=True, text=True, env=_env(tmp_path, **extra), timeout=240)


def _strip_times(d):
    if isinstance(d, dict):
        return {
            k: _strip_times(v) for k, v in d.items() if k not in ("seconds", "generated", "created", "wall_seconds")
        }
    if isinstance(d, list):
        return [_strip_times(v) for v in d]
    return d


@pytest.mark.slow
def test_two_process_stats_equal_one_process_and_rank_zero_alone_prints(tmp_path):
    one = subprocess.run(
        [sys.executable, "-m", "imbalance_cli", "stats", str(COCO_VAL), "--json"],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=240,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    # chunks of 7 images: 12 chunks dealt round-robin to the 2 ranks
    two = _torchrun(
        ["-m", "imbalance_cli", "stats", str(COCO_VAL), "--json", "--chunk-size", "7", "--workers", "1"], tmp_path
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = json.loads(one.stdout), json.loads(two.stdout)  # one JSON document each: rank 1 printed nothing
    assert a["anchors"]["foreground"] > 0 and a["anchors"]["images"] == 79
    assert _strip_times(a) == _strip_times(b)


def test_rank_helpers_are_identity_in_one_process(monkeypatch):
    for k in dist.TORCHRUN_ENV:
        monkeypatch.delenv(k, raising=False)
    assert not dist.launched() and not dist.active() and dist.rank_info() == dist.Rank()
    assert dist.shard([3, 1, 2]) == [3, 1, 2] and dist.chunk_images_for_ranks(10, 4) == 4
    assert dist.sum_scalars(2, 5) == [2, 5] and dist.all_gather_objects("x") == ["x"]
    with dist.command_session({"out": "dir"}) as kw:
        assert kw == {"out": "dir"}
    monkeypatch.setenv(dist.LOAD_ENV, "sometimes")
    with pytest.raises(InputError, match="IMBALANCE_DIST_LOAD"):
        dist.load_mode()


TINY = dict(
    train_images=16,
    val_images=6,
    tail="exp",
    max_instances=6,
    min_instances=1,
    batch_size=8,
    threads=1,
    device="cpu",
    lr=2e-3,
    epochs=2,
    plots=False,
)


def _log(path):
    return [json.loads(line) for line in (path / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_process_training_checkpoints_resumes_and_matches_one_process(tmp_path):
    from imbalance_cli.detector.train import TrainConfig, train

    syn = str(tmp_path / "syn")
    one = train(TrainConfig(out=str(tmp_path / "one"), synthetic_dir=syn, **TINY))  # also builds the data once
    cfg = json.dumps({**TINY, "out": str(tmp_path / "two"), "synthetic_dir": syn})
    driver = str(ROOT / "tests" / "_dist_train_driver.py")
    killed = _torchrun([driver, cfg, "--stop-after-epoch", "0"], tmp_path)
    assert killed.returncode != 0  # both ranks stopped after epoch 0's checkpoint
    assert (tmp_path / "two" / "checkpoint.pt").exists() and not (tmp_path / "two" / "metrics.json").exists()
    resumed = _torchrun([driver, json.dumps({**json.loads(cfg), "resume": True})], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["timing"]["ranks"] == 2 and "AP" in metrics
    log1, log2 = _log(tmp_path / "one"), _log(tmp_path / "two")
    # the same iterations (the global batch is --batch-size, 4 images per rank), one line each (rank 0 writes)
    assert [r["iter"] for r in log2] == [r["iter"] for r in log1] == list(range(len(log1)))
    # positives are counted per image: the sum over ranks equals one process's count exactly
    assert [r["num_pos"] for r in log2] == [r["num_pos"] for r in log1]
    # iteration 0 (same initial weights): one process normalises the loss by all positives of the batch,
    # each rank by its own and the log shows the mean over ranks, so the losses differ by the imbalance
    # of positives between the two half-batches; here within 10 %. Later iterations drift further.
    assert log2[0]["loss"] == pytest.approx(log1[0]["loss"], rel=0.10)
    assert log2[0]["grad_norm"] == pytest.approx(log1[0]["grad_norm"], rel=0.25)
    assert one["timing"]["ranks"] == 1


@pytest.mark.slow
def test_gpu_script_fails_in_one_line_without_cuda_and_its_checks_run_on_the_cpu(tmp_path):
    import importlib.util

    import torch

    script = ROOT / "benchmarks" / "gpu.py"
    if not torch.cuda.is_available():
        res = subprocess.run(
            [sys.executable, str(script), "--work", str(tmp_path)],
            capture_output=True,
            text=True,
            env=_env(tmp_path),
            timeout=120,
        )
        assert res.returncode == 2 and res.stdout == ""
        assert len(res.stderr.strip().splitlines()) == 1 and "CUDA" in res.stderr
        cli = subprocess.run(
            [sys.executable, "-m", "imbalance_cli", "stats", str(COCO_VAL), "--device", "cuda"],
            capture_output=True,
            text=True,
            env=_env(tmp_path),
            timeout=120,
        )
        assert cli.returncode == 2 and len(cli.stderr.strip().splitlines()) == 1 and "CUDA" in cli.stderr
    spec = importlib.util.spec_from_file_location("gpu_bench", script)
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)
    # the script's label check, with the dense engine on the CPU: it finds no mismatch on a real subset
    assert gpu.check_labels("cpu", gpu.SUBSETS[:1], ["retinanet", "ssd300"]) == 0
    # the floor's unavoidable pairs (benchmarks/anchor_floor.py, which gpu.py times on the GPU), counted here
    # again from every anchor x box IoU of each image (torchvision's box_iou written out, anchors from the generator)
    import numpy as np

    from imbalance_cli.anchors.generator import grid_anchors
    from imbalance_cli.data import load
    from imbalance_cli.specs import AnchorSpec
    from imbalance_cli.stats.anchors import _inputs

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import anchor_floor

    ds = load(str(COCO_VAL)).subset_images(np.arange(12))
    spec = AnchorSpec.build("retinanet", device="cpu")
    sample = np.array([1, 4, 7])
    got = anchor_floor.measure_floor(ds, spec, 1, chunk_images=5, sample=sample, timer=anchor_floor.Timer())
    inp = _inputs(ds, spec)
    sb = inp.scaled.materialise()
    want = dict.fromkeys(got["counts"], 0)
    # the output floor's units, from the same matrices: torchvision's Matcher (positive at >= 0.5, ignored at >= 0.4,
    # and every anchor at a box's highest IoU a positive); ties: each box's anchors at its highest IoU
    units = {"labelled anchors": 0, "positives": 0, "boxes": 0, "ties": 0}
    for im in range(ds.num_images):
        b = torch.from_numpy(sb[inp.box_start[im] : inp.box_start[im + 1]])
        if len(b) == 0:
            continue
        a, _ = grid_anchors(spec.preset, int(inp.padded_h[im]), int(inp.padded_w[im]))
        inter = (torch.min(b[:, None, 2], a[None, :, 2]) - torch.max(b[:, None, 0], a[None, :, 0])).clamp(min=0) * (
            torch.min(b[:, None, 3], a[None, :, 3]) - torch.max(b[:, None, 1], a[None, :, 1])
        ).clamp(min=0)
        iou = inter / (
            ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[:, None]
            + ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[None, :]
            - inter
        )
        want["at_or_above_neg"] += int((iou >= 0.4).sum())
        best = iou.max(dim=1).values
        for g in torch.nonzero(best < 0.4).flatten().tolist():
            tied = torch.nonzero(iou[g] == best[g]).flatten()
            want["low_quality_ties"] += len(tied)
            want["ties_own_best_box"] += int((iou[:, tied] > 0).sum())
        if im in sample:
            want["negative_histogram"] += int((iou > 0).sum())
        tie = (iou == best[:, None]) & (best[:, None] > 0)
        positive = (iou.max(dim=0).values >= 0.5) | tie.any(dim=0)
        units["positives"] += int(positive.sum())
        units["labelled anchors"] += int((positive | (iou.max(dim=0).values >= 0.4)).sum())
        units["boxes"] += len(b)
        units["ties"] += int(tie.sum())
    assert got["counts"] == want and got["pairs"] == sum(want.values()) and want["low_quality_ties"] > 0
    assert got["units"] == units and units["positives"] > 0
