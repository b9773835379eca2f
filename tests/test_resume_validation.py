"""``train --resume``: a checkpoint and a training log are checked field by field before anything trains.

Expected values: a forged field is refused with one line naming the checkpoint and the field (the developers'
guide); a mutation the checks accept must load into the model, optimizer, objective and random generators and
take a training step (the property test), so nothing accepted fails later with a traceback.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import zlib

import pytest
import torch
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from imbalance_cli.cli import app
from imbalance_cli.detector import data as D
from imbalance_cli.detector.objectives import resolve_objectives
from imbalance_cli.detector.resume import check_archive, check_checkpoint, check_states, kept_log_lines
from imbalance_cli.detector.synthetic import SyntheticConfig, write_synthetic_lt
from imbalance_cli.detector.train import (
    TrainConfig,
    _Anchors,
    _set_rng_state,
    _settings,
    build_model,
    compute_losses,
    detector_preset,
    load_checkpoint,
    load_data,
    train,
)
from imbalance_cli.errors import InputError

runner = CliRunner()


class Killed(Exception):
    pass


def _kill_after_first(epoch):
    if epoch == 0:
        raise Killed()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run killed after its first of two epochs, with options the CLI can express (``--data FILE --images``)."""
    root = tmp_path_factory.mktemp("resume")
    paths = write_synthetic_lt(
        root / "syn", SyntheticConfig(train_images=16, val_images=6, tail="exp", max_instances=6, min_instances=1)
    )
    cfg = TrainConfig(
        data=str(paths["train"]),
        images=str(paths["images"]),
        anchors="synthetic-lt",
        epochs=2,
        batch_size=8,
        val_fraction=0.25,
        threads=1,
        device="cpu",
        out=str(root / "run"),
        plots=False,
    )
    with pytest.raises(Killed):
        train(cfg, on_epoch_end=_kill_after_first)
    return cfg, root / "run"


class _Parts(dict):
    def __repr__(self):  # hypothesis prints the arguments of a failing example: not the whole model
        return "<parts>"


@pytest.fixture(scope="module")
def parts(run):
    """This run's model, optimizer and objectives (fresh) and its checkpoint, to check mutations against."""
    cfg, out = run
    preset = detector_preset(cfg)
    obj, box_obj = resolve_objectives(cfg.loss, cfg.box_loss, torch.device("cpu"))
    data = load_data(cfg, preset)
    obj.prepare(data.train_instances, torch.device("cpu"))
    model = build_model(obj, data, preset, torch.device("cpu"))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ck = load_checkpoint(out / "checkpoint.pt", "cpu")
    return _Parts(cfg=cfg, preset=preset, obj=obj, box_obj=box_obj, data=data, model=model, opt=opt, ck=ck)


def _validate(p, ck, path="checkpoint.pt"):
    check_checkpoint(ck, path, _settings(p["cfg"]), p["cfg"].epochs)
    check_states(ck, path, p["model"], p["opt"], p["obj"], p["box_obj"])


def _refused(p, ck, field):
    with pytest.raises(InputError) as e:
        _validate(p, ck)
    msg = str(e.value)
    assert "checkpoint.pt" in msg and "\n" not in msg and (field is None or f"field {field!r}" in msg), msg
    return msg


@pytest.mark.slow
def test_the_unchanged_checkpoint_passes(parts):
    _validate(parts, parts["ck"])


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda ck: ck.update(settings=["focal"]), "settings"),
        (lambda ck: ck.update(epoch="x"), "epoch"),
        (lambda ck: ck.update(epoch=-50), "epoch"),  # trained 50 epochs of a 1-epoch run
        (lambda ck: ck.update(epoch=10**6), "epoch"),  # wrote metrics without training
        (lambda ck: ck.update(epoch=True), "epoch"),
        (lambda ck: ck.update(train_seconds=math.nan), "train_seconds"),
        (lambda ck: ck.update(rng={}), "rng"),
        (lambda ck: ck["rng"].update(torch=torch.zeros(10, dtype=torch.uint8)), "rng.torch"),
        (lambda ck: ck["rng"]["numpy"].update(keys=torch.zeros(5, dtype=torch.int64)), "rng.numpy"),
        (lambda ck: ck["rng"]["numpy"].update(pos=700), "rng.numpy"),
        (lambda ck: ck["rng"].update(numpy=torch.zeros(3)), "rng.numpy"),  # a tensor where the state's table goes
        (lambda ck: ck["rng"].update(python=(3, (1, 2), None)), "rng.python"),
        (lambda ck: ck.update(model=[]), "model"),
        (lambda ck: ck["model"].popitem(), "model"),
        (lambda ck: ck["model"].update({"extra.weight": torch.zeros(1)}), "model"),
        (lambda ck: ck["model"].update({k: torch.zeros(3) for k in list(ck["model"])[:1]}), None),
        (lambda ck: ck["model"].update({k: v.double() for k, v in list(ck["model"].items())[:1]}), None),
        (lambda ck: ck["model"].update({k: v * math.nan for k, v in list(ck["model"].items())[:1]}), None),
        (lambda ck: ck["optimizer"].pop("param_groups"), "optimizer"),
        (lambda ck: ck["optimizer"].update(param_groups=[]), "optimizer.param_groups"),
        (lambda ck: ck["optimizer"]["param_groups"][0].update(lr="fast"), "optimizer.param_groups[0].lr"),
        (lambda ck: ck["optimizer"]["param_groups"][0].update(params=[0, 1]), "optimizer.param_groups[0].params"),
        (lambda ck: ck["optimizer"]["state"].update({999: ck["optimizer"]["state"][0]}), "optimizer.state[999]"),
        (lambda ck: ck["optimizer"]["state"][0].update(exp_avg=torch.zeros(2)), "optimizer.state[0].exp_avg"),
        (lambda ck: ck["optimizer"]["state"][0].pop("exp_avg_sq"), "optimizer.state[0]"),
        (lambda ck: ck["optimizer"]["state"][0].update(step=torch.tensor(-3.0)), "optimizer.state[0].step"),
        (lambda ck: ck["optimizer"].update(state=[]), "optimizer.state"),
        (lambda ck: ck.update(objective={"momentum": torch.zeros(3)}), "objective"),
    ],
)
@pytest.mark.slow
def test_forged_fields_refused_in_one_line(parts, mutate, field):
    ck = copy.deepcopy(parts["ck"])
    mutate(ck)
    msg = _refused(parts, ck, field)
    if field is None:  # a model tensor: named by its key
        assert f"field 'model.{next(iter(parts['ck']['model']))}'" in msg


# mutated values: every kind a weights-only checkpoint can hold
_VALUES = st.sampled_from(
    [
        "x",
        True,
        None,
        -50,
        10**6,
        math.nan,
        1e308,
        [],
        {},
        (),
        torch.zeros(3),
        torch.zeros((), dtype=torch.int64),
        torch.full((2, 2), math.inf),
    ]
)


def _paths(obj, prefix=()):
    """Every (container path) to a leaf or container of the checkpoint, tensors as leaves."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, (list, tuple)) and len(obj) < 50:  # the Python rng state's 625 ints: as one leaf
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _set(obj, path, value, delete=False):
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        out = dict(obj)
        if delete and not rest:
            del out[head]
        else:
            out[head] = _set(obj[head], rest, value, delete)
        return out
    out = list(obj)
    out[head] = _set(obj[head], rest, value, delete)
    return type(obj)(out) if isinstance(obj, tuple) else out


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_mutated_checkpoints_load_or_are_refused_in_one_line(parts, data):
    paths = list(_paths(parts["ck"]))
    path = data.draw(st.sampled_from(paths[1:]))
    delete = data.draw(st.booleans()) and len(path) >= 1
    ck = _set(parts["ck"], path, data.draw(_VALUES), delete=delete)
    try:
        _validate(parts, ck)
    except InputError as e:
        msg = str(e)
        assert "checkpoint.pt" in msg and "\n" not in msg and ("field '" in msg or "settings" in msg), msg
        return
    # accepted: it must load and train a step like the checkpoint the trainer wrote
    model, opt, obj = copy.deepcopy(parts["model"]), None, parts["obj"]
    opt = torch.optim.AdamW(model.parameters(), lr=parts["cfg"].lr, weight_decay=parts["cfg"].weight_decay)
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    saved = obj.state_dict()
    try:
        obj.load_state_dict(ck["objective"])
        _set_rng_state(ck["rng"])
        x, gb, gl = D.collate(parts["data"].train, [0, 1], parts["preset"].resize.size_divisible)
        total, *_ = compute_losses(
            model, obj, parts["box_obj"], "none", parts["preset"], _Anchors(parts["preset"], "cpu"), x, gb, gl, 0, 1.0
        )
        total.backward()
        opt.step()
    finally:
        obj.load_state_dict(saved)


# ---------------------------------------------------------------------------------------------- the archive
def _zip_with_record(path, name, compressed, size):
    """A zip whose one record ``name`` is ``compressed`` (raw deflate) and inflates to ``size`` bytes."""
    with open(path, "wb") as f:
        n = name.encode()
        f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, 0, len(compressed), size, len(n), 0) + n)
        f.write(compressed)
        cd = f.tell()
        f.write(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                8,
                0,
                0x21,
                0,
                len(compressed),
                size,
                len(n),
                0,
                0,
                0,
                0,
                0,
                0,
            )
            + n
        )
        end = f.tell()
        f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, end - cd, cd, 0))


def _three_gib_of_zeros_deflated() -> tuple[bytes, int]:
    chunk = bytes(64 * 1024**2)
    c = zlib.compressobj(1, zlib.DEFLATED, -15)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)  # the state is reset: every chunk compresses alike
    return block * 48 + c.flush(), 48 * len(chunk)


@pytest.mark.slow
def test_a_3_gib_tensor_in_a_deflated_record_is_refused_before_reading(tmp_path, run):
    cfg, out = run
    bomb, size = _three_gib_of_zeros_deflated()
    assert size == 3 * 1024**3 and len(bomb) < 20 * 1024**2
    path = tmp_path / "checkpoint.pt"
    _zip_with_record(path, "checkpoint/data/0", bomb, size)
    with pytest.raises(InputError, match=r"record 'checkpoint/data/0' is compressed \(3,221,225,472 bytes"):
        check_archive(path)
    # end to end, in a process of its own: refused in one line, memory far below the 3 GiB
    work = tmp_path / "work"
    shutil.copytree(out, work)
    shutil.copy(path, work / "checkpoint.pt")
    # VmHWM: this process's own peak (getrusage's maxrss also takes the parent's peak when it spawned by vfork)
    code = (
        "import re, sys, runpy; sys.argv = sys.argv[1:]\ntry:\n    runpy.run_module('imbalance_cli', "
        "run_name='__main__')\nfinally:\n    print('maxrss', re.search(r'VmHWM:\\s*(\\d+)', "
        "open('/proc/self/status').read()).group(1), file=sys.stderr)"
    )
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "imbalance",
            "train",
            "--resume",
            "--data",
            cfg.data,
            "--images",
            cfg.images,
            "--anchors",
            "synthetic-lt",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--val-fraction",
            "0.25",
            "--threads",
            "1",
            "--device",
            "cpu",
            "--out",
            str(work),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 2 and "is compressed" in lines[0], r.stderr
    assert int(lines[1].split()[1]) < 1024 * 1024  # KiB: under 1 GiB (torch itself is about 0.4 GiB)


def test_other_archives_refused(tmp_path, parts):
    ck_path = tmp_path / "checkpoint.pt"
    torch.save({"x": 1}, ck_path)
    import zipfile

    with zipfile.ZipFile(ck_path) as z, zipfile.ZipFile(tmp_path / "deflated.pt", "w", zipfile.ZIP_DEFLATED) as d:
        for i in z.infolist():
            d.writestr(i.filename, z.read(i.filename))
    with pytest.raises(InputError, match="is compressed"):
        check_archive(tmp_path / "deflated.pt")
    (tmp_path / "text.pt").write_text("not a zip")
    with pytest.raises(InputError, match="not a torch zip archive"):
        check_archive(tmp_path / "text.pt")
    os.mkfifo(tmp_path / "fifo.pt")
    with pytest.raises(InputError, match="not a regular file"):
        check_archive(tmp_path / "fifo.pt")


# ---------------------------------------------------------------------------------------------- the log
def _log(tmp_path, records, tail=""):
    p = tmp_path / "train_log.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return p


def _rec(i, **kw):
    return {
        "iter": i,
        "epoch": i // 2,
        "lr": 1e-3,
        "loss": 1.0,
        "cls_loss": 0.5,
        "reg_loss": 0.5,
        "cls_grad_norm": 1.0,
        "reg_grad_norm": 1.0,
        "grad_norm": 1.5,
        "num_pos": 10,
        **kw,
    }


def test_log_lines_before_the_checkpoint_are_complete_records(tmp_path):
    good = [_rec(i) for i in range(4)]
    assert len(kept_log_lines(_log(tmp_path, good, tail='{"iter": 4, "lo'), 2)) == 2  # the kill's partial tail
    assert len(kept_log_lines(_log(tmp_path, good + [_rec(9, loss=math.nan)]), 4)) == 4  # later lines dropped
    cases = [
        ([_rec(0), {"iter": 1}], "line 2: 'epoch'"),
        ([_rec(0), _rec(1, loss="x")], "line 2: 'loss'"),
        ([_rec(1), _rec(0)], "line 2: iteration 0 follows iteration 1"),
        ([_rec(0), ["x"]], "line 2 is not a log"),
        ([_rec(0), _rec(1, iter=True)], "line 2: 'iter'"),
    ]
    for recs, needle in cases:
        with pytest.raises(InputError, match=needle.replace("(", r"\(")):
            kept_log_lines(_log(tmp_path, recs), 2)
    p = tmp_path / "train_log.jsonl"
    p.write_text(json.dumps(_rec(0)) + "\n{broken\n" + json.dumps(_rec(1)) + "\n")
    with pytest.raises(InputError, match="line 2 is not JSON"):
        kept_log_lines(p, 2)


# ---------------------------------------------------------------------------------------------- end to end
def _resume_cli(cfg, out):
    return runner.invoke(
        app,
        [
            "train",
            "--resume",
            "--data",
            cfg.data,
            "--images",
            cfg.images,
            "--anchors",
            "synthetic-lt",
            "--epochs",
            "2",
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
            "-q",
        ],
    )


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda ck, log: ck.update(epoch=-50), "field 'epoch'"),
        (lambda ck, log: ck["model"].update({k: torch.zeros(3) for k in list(ck["model"])[:1]}), "field 'model."),
        (lambda ck, log: log.write_text(json.dumps({"iter": 0}) + "\n"), "line 1: 'epoch'"),
    ],
)
def test_cli_resume_refuses_before_training(tmp_path, run, change, needle):
    cfg, out = run
    work = tmp_path / "work"
    shutil.copytree(out, work)
    ck = torch.load(work / "checkpoint.pt", weights_only=True)
    change(ck, work / "train_log.jsonl")
    torch.save(ck, work / "checkpoint.pt")
    before = {p.name: p.read_bytes() for p in work.iterdir() if p.is_file()}
    r = _resume_cli(cfg, work)
    err = r.stderr.strip()
    assert r.exit_code == 2 and needle in err and "\n" not in err and "Traceback" not in r.output, r.output
    assert {p.name: p.read_bytes() for p in work.iterdir() if p.is_file()} == before  # nothing trained or written
