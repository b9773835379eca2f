"""End-to-end: a tiny synthetic-lt run trains, resumes to the same result, evaluates; CLI errors exit 2."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from imbalance_cli.detector.train import TrainConfig, train
from imbalance_cli.report import train as report_train

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
)


@pytest.fixture(scope="module")
def syn_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("syn"))


def _weights(path):
    return torch.load(path / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]


@pytest.mark.slow
def test_resume_after_one_epoch_gives_identical_weights_and_metrics(tmp_path, syn_dir):
    straight = tmp_path / "straight"
    m1 = train(TrainConfig(epochs=2, out=str(straight), synthetic_dir=syn_dir, **TINY), renderer=report_train)
    split = tmp_path / "split"

    class Killed(Exception):
        pass

    def kill_after_first(epoch):
        if epoch == 0:
            raise Killed()

    with pytest.raises(Killed):
        train(TrainConfig(epochs=2, out=str(split), synthetic_dir=syn_dir, **TINY), on_epoch_end=kill_after_first)
    assert not (split / "metrics.json").exists()
    m2 = train(TrainConfig(epochs=2, out=str(split), resume=True, synthetic_dir=syn_dir, **TINY))
    w1, w2 = _weights(straight), _weights(split)
    assert w1.keys() == w2.keys()
    for k in w1:
        assert torch.equal(w1[k], w2[k]), k
    for k in ("AP", "AP50", "APr", "APc", "APf"):
        assert m1[k] == m2[k] or (m1[k] != m1[k] and m2[k] != m2[k])
    log1 = (straight / "train_log.jsonl").read_text().splitlines()
    log2 = (split / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["iter"] for line in log2] == list(range(len(log1)))
    assert [json.loads(line)["loss"] for line in log1] == [json.loads(line)["loss"] for line in log2]
    # outputs of the straight run
    saved = json.loads((straight / "metrics.json").read_text())
    for k in ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf", "AP_bins", "settings"):
        assert k in saved
    assert saved["settings"]["loss"] == "focal"
    for name in ("loss_paces.png", "ap_vs_instances.png", "weight_norms.png", "detections.json"):
        assert (straight / name).stat().st_size > 0
    rec = json.loads(log1[0])
    for k in ("cls_loss", "reg_loss", "cls_grad_norm", "reg_grad_norm"):
        assert rec[k] >= 0


@pytest.mark.slow
def test_every_registered_loss_takes_a_step(tmp_path, syn_dir):
    from imbalance_cli.losses.registry import CLASSIFICATION

    for name in CLASSIFICATION:
        if name in ("focal", "sigmoid-ce"):
            continue
        m = train(
            TrainConfig(
                loss=name, epochs=1, max_iters=1, out=str(tmp_path / name), synthetic_dir=syn_dir, plots=False, **TINY
            )
        )
        assert 0.0 <= m["AP"] <= 1.0, name
        rec = json.loads((tmp_path / name / "train_log.jsonl").read_text().splitlines()[0])
        assert rec["cls_loss"] == rec["cls_loss"] and rec["cls_grad_norm"] > 0, name


def test_cli_bad_options_exit_2(tmp_path):
    from imbalance_cli.cli import app

    runner = CliRunner()
    cases = [
        ["train", "--loss", "nope", "--out", str(tmp_path)],
        ["train", "--box-loss", "nope", "--out", str(tmp_path)],
        ["train", "--sampler", "nope", "--out", str(tmp_path)],
        ["train", "--epochs", "0", "--out", str(tmp_path)],
        ["train", "--data", str(tmp_path / "missing.json"), "--out", str(tmp_path)],
        ["train", "--resume", "--out", str(tmp_path / "empty")],
        ["train", "--device", "tpu", "--out", str(tmp_path)],
        ["bench", "--losses", "focal,nope", "--out", str(tmp_path)],
        ["train", "--loss", "alrp", "--box-loss", "giou", "--out", str(tmp_path)],
    ]
    for args in cases:
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        assert "Traceback" not in r.output


@pytest.mark.slow
def test_cli_trains_on_a_real_format_file_and_stats_commands_read_synthetic(tmp_path, syn_dir):
    """--data FILE --images DIR (an LVIS-format file: the synthetic train split) holds out images and
    evaluates them; `imbalance stats/margins/groups` accept the synthetic ground truth."""
    from imbalance_cli.cli import app
    from imbalance_cli.detector.synthetic import SyntheticConfig, write_synthetic_lt

    cfg = SyntheticConfig(train_images=16, val_images=6, tail="exp", max_instances=6, min_instances=1)
    paths = write_synthetic_lt(tmp_path / "syn", cfg)
    runner = CliRunner()
    out = tmp_path / "real"
    r = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(paths["train"]),
            "--images",
            str(paths["images"]),
            "--anchors",
            "synthetic-lt",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--val-fraction",
            "0.25",
            "--threads",
            "1",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.stdout)
    assert metrics["settings"]["data"] == str(paths["train"])
    assert metrics["data"]["train_images"] == 12 and metrics["data"]["val_images"] == 4  # 25% of 16 held out
    train_gt = json.loads(paths["train"].read_text())
    assert set(metrics["data"]["val_image_ids"]) <= {im["id"] for im in train_gt["images"]}
    dets = json.loads((out / "detections.json").read_text())
    assert {d["image_id"] for d in dets} <= set(metrics["data"]["val_image_ids"])
    for cmd in (["stats", "--anchors", "none"], ["margins", "--one-stage"], ["groups"]):
        r = runner.invoke(app, [*cmd, str(paths["train"])])
        assert r.exit_code == 0, (cmd, r.output)
    # a preset the detector cannot use is refused with exit code 2
    r = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(paths["train"]),
            "--images",
            str(paths["images"]),
            "--anchors",
            "ssd300",
            "--out",
            str(tmp_path / "bad"),
        ],
    )
    assert r.exit_code == 2 and "grid" in r.output


@pytest.mark.slow
def test_every_box_loss_takes_a_step_and_ghm_r_resumes(tmp_path, syn_dir):
    from imbalance_cli.losses.registry import BOX

    for name in BOX:
        m = train(
            TrainConfig(
                box_loss=name,
                epochs=1,
                max_iters=1,
                out=str(tmp_path / name),
                synthetic_dir=syn_dir,
                plots=False,
                **TINY,
            )
        )
        assert m["settings"]["box_loss"] == name
        rec = json.loads((tmp_path / name / "train_log.jsonl").read_text().splitlines()[0])
        assert rec["reg_loss"] > 0 and rec["reg_grad_norm"] > 0, name
    # GHM-R's moving bin counts and IoU-balanced L1's w_loc are saved in the checkpoint
    ck = torch.load(tmp_path / "ghm-r" / "checkpoint.pt", weights_only=True)
    assert ck["box_objective"]["acc_counts"].sum() > 0
    ck = torch.load(tmp_path / "iou-balanced-l1" / "checkpoint.pt", weights_only=True)
    assert ck["box_objective"]["w_loc"] > 0


@pytest.mark.slow
def test_alrp_records_no_box_loss(tmp_path, syn_dir):
    m = train(
        TrainConfig(
            loss="alrp", epochs=1, max_iters=1, out=str(tmp_path / "a"), synthetic_dir=syn_dir, plots=False, **TINY
        )
    )
    assert m["settings"]["box_loss"] is None


@pytest.mark.slow
def test_alrp_self_balance_follows_the_released_heads_period(tmp_path, syn_dir):
    """The released aLRP head (kemaloksuz/aLRPLoss, ``aLRPLossRetinaHead.loss``) recomputes
    SB = (mean L_cls + mean L_loc) / mean L_loc when an iteration completes the period (one epoch of
    iterations here) and applies it in that same iteration. Replayed from the log by that rule."""
    m = train(TrainConfig(loss="alrp", epochs=2, out=str(tmp_path / "a"), synthetic_dir=syn_dir, plots=False, **TINY))
    recs = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    period = 16 // TINY["batch_size"]
    assert len(recs) == 2 * period and all(r["num_pos"] >= 1 for r in recs)
    sb, cls_sum, loc_sum, n, weights = 50.0, 0.0, 0.0, 0, []
    for r in recs:
        cls_sum, loc_sum, n = cls_sum + r["cls_loss"], loc_sum + r["reg_loss"], n + 1
        if n == period:
            sb, cls_sum, loc_sum, n = (cls_sum + loc_sum) / loc_sum, 0.0, 0.0, 0
        weights.append(sb)
        assert r["loss"] == pytest.approx(r["cls_loss"] + sb * r["reg_loss"], rel=1e-5)
    assert weights[period - 1] != 50.0  # applied in the iteration completing the period, not from the next one
    ck = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    assert ck["objective"]["weight"] == pytest.approx(weights[-1], rel=1e-5)
    assert 0.0 <= m["AP"] <= 1.0


@pytest.mark.slow
def test_planted_pickle_checkpoint_is_refused_without_running_it(tmp_path, syn_dir):
    import pickle
    import subprocess
    import sys

    out = tmp_path / "run"
    train(TrainConfig(epochs=1, max_iters=1, out=str(out), synthetic_dir=syn_dir, plots=False, **TINY))
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"model": Evil()}, out / "checkpoint.pt", pickle_module=pickle)
    env = dict(__import__("os").environ)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "imbalance_cli",
            "train",
            "--resume",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--train-images",
            "16",
            "--val-images",
            "6",
            "--tail",
            "exp",
            "--batch-size",
            "8",
            "--threads",
            "1",
            "--device",
            "cpu",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "checkpoint.pt" in lines[0] and "refusing" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not marker.exists()


@pytest.mark.slow
def test_resume_truncates_the_log_to_the_checkpoint_iteration(tmp_path, syn_dir):
    out = tmp_path / "run"
    cfg = dict(epochs=2, out=str(out), synthetic_dir=syn_dir, plots=False, **TINY)

    class Killed(Exception):
        pass

    def kill(epoch):
        if epoch == 0:
            # iterations of epoch 1 that were logged after the checkpoint, then the process died
            with open(out / "train_log.jsonl", "a") as f:
                f.write(json.dumps({"iter": 2, "loss": 123.0}) + "\n" + '{"iter": 3, "lo')
            raise Killed()

    with pytest.raises(Killed):
        train(TrainConfig(**cfg), on_epoch_end=kill)
    ipe = 2  # 16 images, batch 8
    train(TrainConfig(resume=True, **cfg))
    recs = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in recs] == list(range(2 * ipe))
    assert all(r["loss"] != 123.0 for r in recs)


def test_images_outside_the_folder_are_refused(tmp_path, syn_dir):
    from imbalance_cli.cli import app
    from imbalance_cli.detector.synthetic import SyntheticConfig, write_synthetic_lt

    cfg = SyntheticConfig(train_images=16, val_images=6, tail="exp", max_instances=6, min_instances=1)
    paths = write_synthetic_lt(tmp_path / "syn", cfg)
    gt = json.loads(paths["train"].read_text())
    outside = tmp_path / "secret.png"
    outside.write_bytes((paths["images"] / gt["images"][0]["file_name"]).read_bytes())
    runner = CliRunner()
    for bad in ("../secret.png", str(outside)):
        g = json.loads(json.dumps(gt))
        g["images"][3]["file_name"] = bad
        f = tmp_path / "bad.json"
        f.write_text(json.dumps(g))
        r = runner.invoke(
            app,
            [
                "train",
                "--data",
                str(f),
                "--images",
                str(paths["images"]),
                "--anchors",
                "synthetic-lt",
                "--epochs",
                "1",
                "--threads",
                "1",
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "o"),
            ],
        )
        assert r.exit_code == 2, r.output
        assert f"image id {g['images'][3]['id']}" in r.output and "file_name" in r.output and "bad.json" in r.output
        assert "Traceback" not in r.output
