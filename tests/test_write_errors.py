"""Every file the tool writes besides report directories: ``check --summary`` / ``$GITHUB_STEP_SUMMARY``, the
training and bench folders, the load cache. Each OSError is one line naming the user's path (exit 2), never a
temporary path; a file of the user's is never overwritten; a cache that cannot be written is one warning.

The errors are made by mocking the one call that writes (or by /dev/full, a real full device on Linux).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from imbalance_cli import fileio
from imbalance_cli.cli import app
from imbalance_cli.data import cache
from imbalance_cli.errors import InputError
from imbalance_cli.fileio import (
    MANIFEST,
    AppendFile,
    OutputWarning,
    WriteError,
    append_text,
    claim_files,
    make_dirs,
    write_text,
    write_via,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "data" / "coco-mini_instances_val2017.json.gz"
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
TINY_CLI = [
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
    "--epochs",
    "1",
    "-q",
]


def _one_line(res) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


def _no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp") or "imbalance-tmp" in p.name]


# --------------------------------------------------------------------------------------------------------------------
# check --summary and $GITHUB_STEP_SUMMARY
# --------------------------------------------------------------------------------------------------------------------
def test_check_summary_on_a_full_device_is_one_line():
    res = CliRunner().invoke(app, ["check", str(DATA), "--summary", "/dev/full", "-q"])
    assert res.exit_code == 2
    assert _one_line(res) == (
        "error: /dev/full: cannot write the Markdown summary: No space left on device (ENOSPC); "
        "the disk is full: free some space or choose another --summary"
    )


def test_github_step_summary_that_cannot_be_written_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", "/dev/full")
    res = CliRunner().invoke(app, ["check", str(DATA), "-q"])
    assert res.exit_code == 2 and "choose another GITHUB_STEP_SUMMARY" in _one_line(res)
    from imbalance_cli.commands import check as check_cmd

    monkeypatch.setattr(
        check_cmd, "run_check_splits", lambda *a, **k: pytest.fail("checked before refusing the summary")
    )
    for target, why in ((tmp_path, "it is a folder: name a file"), (tmp_path / "no" / "summary.md", "does not exist")):
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
        res = CliRunner().invoke(app, ["check", str(DATA), "-q"])
        assert res.exit_code == 2 and why in _one_line(res) and str(target) in _one_line(res)
    assert not (tmp_path / "no").exists()


def test_a_failed_append_is_cut_back_to_the_previous_content(tmp_path, monkeypatch):
    path = tmp_path / "summary.md"
    path.write_text("# earlier step\n")
    real_write = os.write

    def half_then_full(fd, data):  # the first call writes a part, the next finds the disk full
        if len(data) > 8:
            return real_write(fd, bytes(data[:8]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileio.os, "write", half_then_full)
    with pytest.raises(WriteError, match=rf"^{path}: cannot write the Markdown summary: No space left on device"):
        append_text(path, "| a long table |\n" * 10, what="the Markdown summary", option="--summary")
    monkeypatch.undo()
    assert path.read_text() == "# earlier step\n"
    append_text(path, "more\n")
    assert path.read_text() == "# earlier step\nmore\n"


# --------------------------------------------------------------------------------------------------------------------
# train and bench folders
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["train", "bench"])
def test_out_that_is_a_file_or_below_a_file_is_one_line(tmp_path, command):
    f = tmp_path / "file"
    f.write_text("x")
    args = TINY_CLI if command == "train" else ["--losses", "focal", "--seeds", "1", "--epochs", "1", "-q"]
    for out, why in ((f, "it is an existing file"), (f / "sub", f"{f} is a file")):
        res = CliRunner().invoke(app, [command, *args, "--out", str(out)])
        assert res.exit_code == 2, res.output
        assert _one_line(res).startswith(f"error: {out}: the ") and why in _one_line(res)
    assert f.read_text() == "x"


def test_train_refuses_to_overwrite_your_file_named_like_an_output(tmp_path):
    out = tmp_path / "project"
    out.mkdir()
    (out / "metrics.json").write_text('{"mine": 1}')
    (out / "notes.txt").write_text("mine")
    res = CliRunner().invoke(app, ["train", *TINY_CLI, "--out", str(out)])
    assert res.exit_code == 2
    assert "holds 'metrics.json', which train writes, and 'notes.txt', which it does not" in _one_line(res)
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "notes.txt"]


def test_claim_files_records_takes_over_earlier_runs_and_refuses_yours(tmp_path):
    names = ("train_log.jsonl", "checkpoint.pt", "metrics.json")
    run = tmp_path / "run"
    run.mkdir()
    claim_files(run, "train", names)
    assert json.loads((run / MANIFEST).read_text())["files"] == dict.fromkeys(names, "train")
    (run / "metrics.json").write_text("written by the run")
    claim_files(run, "train", names)  # listed: fine
    old = tmp_path / "old"  # a run folder of an earlier version: no manifest, only its own files
    old.mkdir()
    for n in (*names, ".imbalance-ab12cd34.tmp"):
        (old / n).write_text("old")
    claim_files(old, "train", names, legacy=(".*.tmp",))
    assert (old / MANIFEST).is_file()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.json").write_text("mine")  # alone, without the log every run writes first
    with pytest.raises(InputError, match="no 'train_log.jsonl', which it always does"):
        claim_files(mine, "train", names)
    (run / MANIFEST).write_text(json.dumps({"schema": "imbalance.manifest/1", "files": {"stats.json": "stats"}}))
    with pytest.raises(InputError, match="holds 'metrics.json', which train writes but no earlier run wrote"):
        claim_files(run, "train", names)
    assert (mine / "metrics.json").read_text() == "mine" and not (mine / MANIFEST).exists()


class _FullAfter:
    """A binary file that takes ``room`` bytes, then fails like a full disk."""

    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def write(self, data):
        n = len(memoryview(data).cast("B"))
        if n > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= n
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.mark.slow
def test_checkpoint_on_a_full_disk_is_one_line_and_keeps_the_previous_one(tmp_path, monkeypatch):
    from imbalance_cli.detector.train import TrainConfig, train
    from imbalance_cli.report import train as report_train

    out, syn = tmp_path / "run", str(tmp_path / "syn")
    train(TrainConfig(epochs=1, out=str(out), synthetic_dir=syn, **TINY), renderer=report_train)
    before = (out / "checkpoint.pt").read_bytes()
    real_open = open

    def full_open(path, mode="r", *a, **k):  # torch.save's writes fail after 4 KiB (it then raises RuntimeError)
        f = real_open(path, mode, *a, **k)
        return _FullAfter(f, 4096) if mode == "wb" else f

    monkeypatch.setattr(fileio, "open", full_open, raising=False)
    with pytest.raises(WriteError) as info:
        train(TrainConfig(epochs=1, seed=1, out=str(out), synthetic_dir=syn, **TINY), renderer=report_train)
    assert str(info.value) == (
        f"{out / 'checkpoint.pt'}: cannot write the checkpoint: No space left on device "
        "(ENOSPC); the disk is full: free some space or choose another --out"
    )
    assert info.value.errno == errno.ENOSPC
    assert (out / "checkpoint.pt").read_bytes() == before and _no_temporaries(tmp_path)


def test_write_via_keeps_errors_that_are_not_the_disks(tmp_path):
    def buggy(f):
        f.write(b"abc")
        raise RuntimeError("a bug, not a disk error")

    with pytest.raises(RuntimeError, match="a bug"):
        write_via(tmp_path / "x.pt", buggy)
    write_via(tmp_path / "x.pt", lambda f: torch.save({"a": torch.ones(2)}, f))
    assert torch.load(tmp_path / "x.pt", weights_only=True)["a"].tolist() == [1.0, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pt"]


def test_log_on_a_full_device_and_folders_that_cannot_be_made_are_one_line(tmp_path):
    with pytest.raises(WriteError, match=r"^/dev/full: cannot write the training log: No space left on device"):
        with AppendFile("/dev/full", "the training log") as log:
            log.write("{}\n")
            log.flush()
    with pytest.raises(WriteError, match=r"File name too long \(ENAMETOOLONG\); .* choose a shorter --out"):
        make_dirs(tmp_path / ("r" * 256))
    (tmp_path / "f").write_text("x")
    with pytest.raises(WriteError, match="must be a folder, but it is an existing file"):
        make_dirs(tmp_path / "f")


def test_single_files_with_the_longest_valid_names_and_errors_naming_them(tmp_path, monkeypatch):
    long = tmp_path / ("m" * 255)
    write_text(long, "ok")  # the temporary sibling's name is short whatever the target's
    assert long.read_text() == "ok" and sorted(p.name for p in tmp_path.iterdir()) == [long.name]
    monkeypatch.setattr(fileio.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "Input/output error")))
    with pytest.raises(WriteError, match=rf"^{long}: cannot write the file: Input/output error \(EIO\)"):
        write_text(long, "new")
    monkeypatch.undo()
    assert long.read_text() == "ok" and sorted(p.name for p in tmp_path.iterdir()) == [long.name]


# --------------------------------------------------------------------------------------------------------------------
# the load cache: skipped with one warning, never fatal
# --------------------------------------------------------------------------------------------------------------------
def test_cache_that_cannot_be_written_is_one_warning_and_the_run_goes_on(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("IMBALANCE_CACHE", str(blocker))
    res = CliRunner().invoke(app, ["stats", str(DATA), "--anchors", "none", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["schema"] == "imbalance.stats/1"
    line = _one_line(res)
    assert line.startswith(f"warning: the load cache {blocker} cannot be written (File exists (EEXIST))")


def test_yolo_label_cache_that_cannot_be_written_is_one_warning(tmp_path, monkeypatch):
    from conftest import REAL

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("IMBALANCE_CACHE", str(blocker))
    res = CliRunner().invoke(app, ["stats", str(REAL / "yolo-coco-mini" / "data.yaml"), "--anchors", "none", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["schema"] == "imbalance.splits/1"
    line = _one_line(res)  # two splits, one label cache file each: still one line
    assert line.startswith(f"warning: the load cache {blocker} cannot be written (File exists (EEXIST))")


def test_cache_full_midway_leaves_no_partial_entry(tmp_path, monkeypatch):
    from imbalance_cli.data import load

    root = tmp_path / "cache"
    monkeypatch.setenv("IMBALANCE_CACHE", str(root))
    ds = load(str(DATA), cache=False)
    real, calls = cache._write_npy, []

    def full(path, arr):
        calls.append(path.name)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, arr)

    monkeypatch.setattr(cache, "_write_npy", full)
    with pytest.warns(OutputWarning, match=r"No space left on device \(ENOSPC\)"):
        assert cache.save("k" * 40, ds) is None
    assert list(root.iterdir()) == []


def test_evaluation_temporary_file_that_cannot_be_written_is_one_line(monkeypatch):
    from imbalance_cli.detector import evaluate

    def read_only(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(evaluate.tempfile, "mkstemp", read_only)
    with pytest.raises(
        WriteError,
        match=r"cannot write the evaluation's ground-truth file: Read-only file system "
        r"\(EROFS\); the file system is read-only: choose another TMPDIR",
    ):
        evaluate.lvis_eval({"images": [], "annotations": [], "categories": []}, [{"image_id": 1}])
