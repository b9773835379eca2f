"""What ``imbalance train --resume`` reads back, checked before anything of it is used.

A checkpoint is a file like any other user input: it may be truncated, forged or from another run. Before
training continues:

* :func:`check_archive` -- before ``torch.load`` reads a byte of it: a regular file of at most
  :data:`MAX_CHECKPOINT_BYTES`, a zip archive whose every record is *stored* (``torch.save`` never
  compresses), each record's size within the file. So no record can expand on reading (a 3 GiB tensor in a
  deflated record is refused before it is inflated) and ``torch.load`` never allocates more than the file holds.
* :func:`check_checkpoint` -- after ``torch.load(weights_only=True)``, before any data is built: the top-level
  keys and their types, ``settings`` equal to this run's, ``epoch`` an integer in ``[0, epochs)``,
  ``train_seconds`` a finite number >= 0, and every random-number state accepted by a throwaway generator
  (torch, NumPy, Python), never by the process's own.
* :func:`check_states` -- once the model, optimizer and objectives exist, before the first step: every model
  tensor present with its shape and dtype and finite, nothing extra; the optimizer's parameter groups and
  per-parameter state (AdamW: ``step``, ``exp_avg``, ``exp_avg_sq`` shaped like their parameter); each
  objective's state shaped like a fresh one's.
* :func:`kept_log_lines` -- the ``train_log.jsonl`` lines before the checkpoint's epoch, each a complete record
  (every key, numbers where numbers go, iterations increasing); a partial last line (a kill) is dropped.

Each failure is one :class:`~imbalance_cli.errors.InputError` naming the file and the field (``checkpoint.pt:
field 'optimizer.state[3].exp_avg': ...``); nothing was trained or written by then.
"""

from __future__ import annotations

import json
import math
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imbalance_cli.data._io import check_regular
from imbalance_cli.errors import InputError
from imbalance_cli.values import is_int, is_number

#: Largest checkpoint read (bytes): the compact detector's is about 11 MB at 24 classes, 0.3 GB at 10,000.
MAX_CHECKPOINT_BYTES = 2 * 1024**3
#: Keys every checkpoint written by ``imbalance train`` has.
CHECKPOINT_KEYS = ("model", "optimizer", "objective", "rng", "epoch", "settings")
#: Keys of one ``train_log.jsonl`` record and whether each is an integer (else any JSON number).
LOG_KEYS = {
    "iter": True,
    "epoch": True,
    "lr": False,
    "loss": False,
    "cls_loss": False,
    "reg_loss": False,
    "cls_grad_norm": False,
    "reg_grad_norm": False,
    "grad_norm": False,
    "num_pos": True,
}
#: Bytes of ``train_log.jsonl`` read per logged iteration (a record is about 300 bytes), plus a fixed allowance.
LOG_BYTES_PER_ITERATION = 4096
LOG_BYTES_MIN = 64 * 1024**2


def _bad(path, field: str, message: str) -> InputError:
    return InputError(message, path=str(path), record=f"--resume: field {field!r}" if field else "--resume")


def check_archive(path) -> None:
    """Refuse, before reading it, a checkpoint that is not a plain stored zip within the size bound."""
    st = check_regular(path)
    if st.st_size > MAX_CHECKPOINT_BYTES:
        raise _bad(path, "", f"checkpoint is {st.st_size:,} bytes; at most {MAX_CHECKPOINT_BYTES:,} are read")
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise _bad(path, "", f"not a checkpoint written by imbalance train (not a torch zip archive: {e})") from None
    total = 0
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise _bad(
                path,
                "",
                f"record {info.filename!r} is compressed ({info.file_size:,} bytes once inflated); "
                "torch.save stores records uncompressed, so this is not a checkpoint it wrote",
            )
        total += info.file_size
    if total > st.st_size:
        raise _bad(path, "", f"records claim {total:,} bytes, more than the file's {st.st_size:,}: a damaged archive")


def _differs(saved: Any, wanted: Any) -> bool:
    """A saved setting differs from this run's: another type, or another value (a tensor or anything whose
    comparison does not give one truth value differs)."""
    try:
        return type(saved) is not type(wanted) or bool(saved != wanted)
    except Exception:  # noqa: BLE001 - e.g. a tensor of several values: not a setting this run wrote
        return True


def _settings_diff(saved: Any, settings: dict, path) -> None:
    if not isinstance(saved, dict) or not all(isinstance(k, str) for k in saved):
        raise _bad(path, "settings", f"must be a table of the run's options, got a {type(saved).__name__}")
    diff = sorted(set(saved) ^ set(settings)) + sorted(
        k for k in settings if k in saved and _differs(saved[k], settings[k])
    )
    if diff:
        raise InputError(
            f"checkpoint was written with other settings ({', '.join(diff)}); use the same options or another --out",
            path=str(path),
            record="--resume",
        )


def _check_rng(rng: Any, path) -> None:
    """Each saved random state accepted by a throwaway generator of its kind (the process's own are untouched)."""
    if not isinstance(rng, dict) or set(rng) != {"torch", "numpy", "python"}:
        raise _bad(path, "rng", "must hold the torch, numpy and python random states")
    t = rng["torch"]
    try:
        if not (isinstance(t, torch.Tensor) and t.dtype == torch.uint8 and t.dim() == 1):
            raise ValueError("not a 1-D uint8 tensor")
        torch.Generator().set_state(t)
    except (RuntimeError, ValueError, TypeError) as e:
        raise _bad(path, "rng.torch", f"not a torch generator state ({str(e).splitlines()[0][:120]})") from None
    n = rng["numpy"]
    try:
        if not isinstance(n, dict):
            raise TypeError(f"a {type(n).__name__}, not a table of the state's fields")
        keys = n["keys"]
        if not (
            isinstance(keys, torch.Tensor)
            and keys.dtype == torch.int64
            and keys.shape == (624,)
            and bool(((keys >= 0) & (keys < 2**32)).all())
        ):
            raise ValueError("keys must be 624 integers in [0, 2^32)")
        for k, kinds in (("kind", str), ("pos", int), ("has_gauss", int), ("cached_gaussian", float)):
            if not isinstance(n[k], kinds) or isinstance(n[k], bool):
                raise ValueError(f"{k} is a {type(n[k]).__name__}")
        if (
            n["kind"] != "MT19937"
            or not 0 <= n["pos"] <= 624
            or n["has_gauss"] not in (0, 1)
            or not math.isfinite(n["cached_gaussian"])
        ):  # NumPy does not bound pos: 700 would read past the keys
            raise ValueError(
                f"kind MT19937, pos in [0, 624], has_gauss 0 or 1 needed, got {n['kind']!r}, {n['pos']}, "
                f"{n['has_gauss']}"
            )
        np.random.RandomState().set_state(
            (n["kind"], keys.numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
        )
    except (KeyError, TypeError, ValueError) as e:
        raise _bad(path, "rng.numpy", f"not a NumPy random state ({e})") from None
    py = rng["python"]
    try:
        if not (
            isinstance(py, tuple)
            and len(py) == 3
            and isinstance(py[1], tuple)
            and len(py[1]) == 625
            and all(is_int(x) and 0 <= x < 2**32 for x in py[1])
            and (py[2] is None or isinstance(py[2], float))
        ):
            raise ValueError("(version, 625 integers in [0, 2^32), gauss) needed")
        random.Random().setstate(py)
    except (TypeError, ValueError, KeyError, IndexError) as e:
        raise _bad(path, "rng.python", f"not a Python random state ({e})") from None


def check_checkpoint(ck: Any, path, settings: dict, epochs: int) -> None:
    """The checkpoint's top level, settings, epoch and random states (before any data is built)."""
    if not isinstance(ck, dict):
        raise InputError("not a checkpoint written by imbalance train", path=str(path), record="--resume")
    missing = [k for k in CHECKPOINT_KEYS if k not in ck]
    if missing:
        raise _bad(path, missing[0], "missing: not a checkpoint written by imbalance train")
    _settings_diff(ck["settings"], settings, path)
    epoch = ck["epoch"]
    if not is_int(epoch) or not 0 <= epoch < epochs:
        raise _bad(
            path, "epoch", f"must be an integer in [0, {epochs - 1}] (the run has {epochs} epochs), got {epoch!r}"[:200]
        )
    secs = ck.get("train_seconds", 0.0)
    if not is_number(secs) or not (math.isfinite(secs) and secs >= 0):
        raise _bad(path, "train_seconds", f"must be a finite number of seconds >= 0, got {secs!r}"[:200])
    for key in ("model", "optimizer", "objective", "box_objective"):
        if key in ck and not isinstance(ck[key], dict):
            raise _bad(path, key, f"must be a table, got a {type(ck[key]).__name__}")
    _check_rng(ck["rng"], path)


def same_structure(ref: Any, got: Any, field: str, path, none_takes_number: bool = False) -> None:
    """``got`` shaped like ``ref``: tensors of the same shape and dtype (finite when floating), tables with the
    same keys, sequences of the same length, scalars of the same kind. ``none_takes_number``: a ``None`` in
    ``ref`` also accepts a finite number (a state a loss fills at its first step)."""
    if isinstance(ref, torch.Tensor):
        if not isinstance(got, torch.Tensor) or got.shape != ref.shape or got.dtype != ref.dtype:
            what = (
                f"a {tuple(got.shape)} {got.dtype} tensor"
                if isinstance(got, torch.Tensor)
                else f"a {type(got).__name__}"
            )
            raise _bad(path, field, f"must be a {tuple(ref.shape)} {ref.dtype} tensor, got {what}")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise _bad(path, field, "holds NaN or infinite values")
    elif isinstance(ref, dict):
        if not isinstance(got, dict) or set(got) != set(ref):
            keys = sorted(map(str, set(got) ^ set(ref))) if isinstance(got, dict) else []
            raise _bad(
                path,
                field,
                "must be a table with the keys of this run's state"
                + (f" (differs in: {', '.join(keys[:5])})" if keys else f", got a {type(got).__name__}"),
            )
        for k in ref:
            same_structure(ref[k], got[k], f"{field}.{k}" if field else str(k), path, none_takes_number)
    elif isinstance(ref, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(ref):
            raise _bad(path, field, f"must be a sequence of {len(ref)}, got {type(got).__name__}")
        for i, (a, b) in enumerate(zip(ref, got)):
            same_structure(a, b, f"{field}[{i}]", path, none_takes_number)
    elif ref is None:
        number = is_number(got) and math.isfinite(got)
        if got is not None and not (none_takes_number and number):
            raise _bad(path, field, f"must be empty (None), got {got!r}"[:200])
    elif isinstance(ref, bool) or isinstance(got, bool):
        if type(got) is not type(ref):
            raise _bad(path, field, f"must be a {type(ref).__name__}, got {got!r}"[:200])
    elif isinstance(ref, (int, float)):
        if (
            not isinstance(got, (int, float))
            or (isinstance(ref, int) and not isinstance(got, int))
            or not math.isfinite(got)
        ):
            raise _bad(path, field, f"must be a finite {type(ref).__name__}, got {got!r}"[:200])
    elif type(got) is not type(ref):
        raise _bad(path, field, f"must be a {type(ref).__name__}, got a {type(got).__name__}")


def _adam_state_keys() -> set:
    """The per-parameter state keys of the trainer's optimizer (AdamW), read from one step of a throwaway one."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p])
    p.grad = torch.zeros(1)
    opt.step()
    return set(opt.state_dict()["state"][0])


def _check_optimizer(saved: dict, opt, path) -> None:
    ref = opt.state_dict()
    if set(saved) != {"state", "param_groups"}:
        raise _bad(path, "optimizer", "must hold 'state' and 'param_groups'")
    same_structure(ref["param_groups"], saved["param_groups"], "optimizer.param_groups", path)
    for i, (a, b) in enumerate(zip(ref["param_groups"], saved["param_groups"])):
        if list(a["params"]) != list(b["params"]):
            raise _bad(path, f"optimizer.param_groups[{i}].params", "must list this model's parameters in order")
    params = [p for g in opt.param_groups for p in g["params"]]
    state = saved["state"]
    if not isinstance(state, dict):
        raise _bad(path, "optimizer.state", f"must be a table, got a {type(state).__name__}")
    keys = _adam_state_keys()
    for k, s in state.items():
        field = f"optimizer.state[{k}]"
        if not is_int(k) or not 0 <= k < len(params):
            raise _bad(path, field, f"names no parameter (0..{len(params) - 1})")
        p = params[k]
        ref_s = {
            n: torch.zeros((), dtype=torch.float32) if n == "step" else torch.zeros_like(p, device="cpu") for n in keys
        }
        same_structure(
            ref_s,
            {n: (v.cpu() if isinstance(v, torch.Tensor) else v) for n, v in s.items()} if isinstance(s, dict) else s,
            field,
            path,
        )
        if float(s["step"]) < 0:
            raise _bad(path, f"{field}.step", f"must be >= 0, got {float(s['step']):g}")


def check_states(ck: dict, path, model, opt, obj, box_obj) -> None:
    """Model, optimizer and objective states shaped like this run's (before the first training step)."""
    same_structure(
        {k: v.cpu() for k, v in model.state_dict().items()},
        {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in ck["model"].items()},
        "model",
        path,
    )
    _check_optimizer(ck["optimizer"], opt, path)
    same_structure(obj.state_dict(), ck["objective"], "objective", path, none_takes_number=True)
    if box_obj is not None:
        same_structure(box_obj.state_dict(), ck.get("box_objective", {}), "box_objective", path, none_takes_number=True)


def _log_record(line: str, n: int, path) -> dict | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    if not isinstance(rec, dict):
        raise InputError(f"line {n} is not a log record (a JSON object)", path=str(path), record="--resume")
    return rec


def kept_log_lines(path: Path, before_iter: int) -> list[str]:
    """The lines of ``train_log.jsonl`` for iterations below ``before_iter`` (the checkpoint's), each checked.

    Lines of later iterations (logged after the checkpoint) are dropped; a last line that is not JSON is the
    partial line a kill leaves and is dropped too. Any other defect is an :class:`InputError` naming the line.
    """
    if not path.exists():
        return []
    st = check_regular(path)
    limit = max(LOG_BYTES_MIN, LOG_BYTES_PER_ITERATION * before_iter)
    if st.st_size > limit:
        raise InputError(
            f"training log is {st.st_size:,} bytes, more than {limit:,} for {before_iter:,} iterations",
            path=str(path),
            record="--resume",
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the training log: {e}", path=str(path), record="--resume") from None
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip()]
    keep, last = [], -1
    for j, (n, line) in enumerate(numbered):
        rec = _log_record(line, n, path)
        if rec is None:
            if j == len(numbered) - 1:
                break  # the partial tail of a killed run
            raise InputError(
                f"line {n} is not JSON (only the last line may be partial)", path=str(path), record="--resume"
            )
        it = rec.get("iter")
        if not is_int(it):
            raise InputError(
                f"line {n}: 'iter' must be an integer, got {it!r}"[:200], path=str(path), record="--resume"
            )
        if it >= before_iter:
            continue
        for key, integer in LOG_KEYS.items():
            v = rec.get(key)
            if not (is_int(v) if integer else is_number(v)):
                raise InputError(
                    f"line {n}: {key!r} must be {'an integer' if integer else 'a number'}, got {v!r} "
                    "(the log before the checkpoint must be intact: restore it or start another --out)"[:300],
                    path=str(path),
                    record="--resume",
                )
        if it <= last:
            raise InputError(
                f"line {n}: iteration {it} follows iteration {last} (the log must be in order)",
                path=str(path),
                record="--resume",
            )
        last = it
        keep.append(line)
    return keep
