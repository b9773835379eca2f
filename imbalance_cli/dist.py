"""Several processes under ``torchrun``: rank detection, the process group, sharding and reductions.

``torchrun --nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT] -m imbalance_cli COMMAND ...``
starts N x M copies of the command line. Each copy finds its place in the environment torchrun
sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``); :func:`command_session` (wrapped around every command by
:func:`imbalance_cli.commands._common.handle_errors`) then

* joins the process group: ``gloo`` for CPU tensors, plus ``nccl`` for CUDA tensors when this
  machine has CUDA (``init_process_group(backend="cpu:gloo,cuda:nccl")``), and makes the rank's
  ``LOCAL_RANK`` GPU the current CUDA device, so ``--device auto``/``cuda`` means the rank's own
  GPU while the report still says ``cuda``;
* silences every rank but 0: stdout and stderr go to ``os.devnull`` and output paths (``--out``,
  ``--summary``) are dropped, so rank 0 alone prints and writes;
* leaves the group when the command ends.

The analyses call only the small helpers below, which are no-ops in a single process:
:func:`shard` (which chunks of images this rank labels: chunk ``c`` goes to rank ``c mod world``),
:func:`chunk_images_for_ranks` (smaller chunks when there are fewer chunks than ranks),
:func:`sum_arrays` (in-place ``all_reduce`` sum of numpy accumulators) and
:func:`all_gather_objects` (a list in rank order). Every rank ends with the same accumulators, so
every rank computes the same report and the same exit code; the engines never see a rank.

How ranks get the dataset (:func:`load_shared`, set by ``IMBALANCE_DIST_LOAD``): ``broadcast``
(default) -- rank 0 loads the annotation file and sends the pickled columnar arrays to the others;
``each`` -- every rank loads the file itself (from the columnar cache when it is warm). Measured
side by side (``benchmarks/dist_load.py``, 2 gloo ranks, a 118,287-image / 860,435-box
COCO-train-size JSON, loaded 2-core machine): parsing the JSON, broadcast 15.3 s vs each 20.5 s;
from a warm cache, broadcast 1.2 s vs each 0.6 s. Broadcast is the default because the first,
uncached load is the expensive one (and only rank 0's machine needs the file); ``each`` is faster
for repeated runs on a warm cache with the file on every node.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

#: the variables torchrun sets for every process it starts; all must be present to count as launched
TORCHRUN_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
#: keyword arguments of a command that name an output path; dropped on ranks other than 0
OUTPUT_ARGUMENTS = ("out", "summary")


@dataclass(frozen=True)
class Rank:
    """This process's place: ``rank`` of ``world_size``; ``local_rank`` of ``local_world_size`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints, writes and checkpoints."""
        return self.rank == 0


def _int_env(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def launched() -> bool:
    """Whether torchrun (or another launcher setting the same variables) started this process."""
    return all(os.environ.get(k) for k in TORCHRUN_ENV) and _int_env("WORLD_SIZE", 1) >= 1


def rank_info() -> Rank:
    """This process's :class:`Rank` from torchrun's environment (rank 0 of 1 when not launched)."""
    if not launched():
        return Rank()
    world = _int_env("WORLD_SIZE", 1)
    return Rank(_int_env("RANK", 0), world, _int_env("LOCAL_RANK", 0), _int_env("LOCAL_WORLD_SIZE", world))


#: True inside :func:`alone`
_ALONE = False


def active() -> bool:
    """Whether a process group of more than one rank is joined (then the helpers below communicate).

    Never imports torch: without ``torch.distributed`` already imported no group can be joined. Inside
    :func:`alone` it is False: the rank works as a process of its own.
    """
    if _ALONE:
        return False
    dist = sys.modules.get("torch.distributed")
    if dist is None:
        return False
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


#: environment variable: seconds every torchrun process waits for the others to join (the rendezvous)
TIMEOUT_ENV = "IMBALANCE_DIST_TIMEOUT"
#: default of :data:`TIMEOUT_ENV`: long enough for nodes started one after the other, short enough that a process
#: started with torchrun's variables but no peers ends with a message instead of waiting for ever
DEFAULT_RENDEZVOUS_TIMEOUT = 300.0
#: largest :data:`TIMEOUT_ENV` (one week), and the delay after which a waiting process says what it waits for
MAX_RENDEZVOUS_TIMEOUT = 7 * 24 * 3600.0
WAIT_NOTICE_SECONDS = 5.0


def rendezvous_timeout() -> float:
    """Seconds to wait for every process to join (:data:`TIMEOUT_ENV`, default :data:`DEFAULT_RENDEZVOUS_TIMEOUT`)."""
    from imbalance_cli.errors import InputError

    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_RENDEZVOUS_TIMEOUT
    try:
        t = float(raw)
    except ValueError:
        t = float("nan")
    if not 0 < t <= MAX_RENDEZVOUS_TIMEOUT:  # NaN fails too
        raise InputError(
            f"{TIMEOUT_ENV} must be a number of seconds in (0, {MAX_RENDEZVOUS_TIMEOUT:g}], got {raw!r}",
            record="environment",
        )
    return t


def _env_int(name: str, lo: int, hi: int, why: str) -> int:
    from imbalance_cli.errors import InputError

    raw = os.environ.get(name, "")
    try:
        v = int(raw.strip())
    except ValueError:
        v = None
    if v is None or not lo <= v <= hi:
        raise InputError(
            f"{name}={raw!r}: must be an integer in [{lo}, {hi}] ({why}); unset torchrun's variables "
            "to run in one process",
            record="environment",
        )
    return v


def check_environment() -> None:
    """Refuse invalid multi-process settings before anything runs (one line each, launched or not).

    :data:`LOAD_ENV` and :data:`TIMEOUT_ENV` are checked in every mode. When torchrun's variables are all set,
    ``WORLD_SIZE`` >= 1, ``RANK`` in ``[0, WORLD_SIZE)``, ``LOCAL_WORLD_SIZE`` in ``[1, WORLD_SIZE]``,
    ``LOCAL_RANK`` in ``[0, LOCAL_WORLD_SIZE)``, ``MASTER_PORT`` a TCP port and ``MASTER_ADDR`` a name that resolves.
    """
    import socket

    from imbalance_cli.errors import InputError

    load_mode()
    rendezvous_timeout()
    if not all(os.environ.get(k) for k in TORCHRUN_ENV):
        return
    world = _env_int("WORLD_SIZE", 1, 1 << 20, "the number of processes")
    _env_int("RANK", 0, world - 1, "this process's rank, below WORLD_SIZE")
    local_world = (
        _env_int("LOCAL_WORLD_SIZE", 1, world, "processes on this node")
        if os.environ.get("LOCAL_WORLD_SIZE")
        else world
    )
    _env_int("LOCAL_RANK", 0, local_world - 1, "this process's rank on its node")
    port = _env_int("MASTER_PORT", 1, 65535, "the rendezvous TCP port")
    addr = os.environ["MASTER_ADDR"].strip()
    if world > 1:
        try:
            socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:
            raise InputError(
                f"MASTER_ADDR={addr!r} does not resolve ({e}); torchrun sets it to the rendezvous host",
                record="environment",
            ) from None


@contextlib.contextmanager
def _stderr_held():
    """While the rendezvous runs, what is written to file descriptor 2 (c10d logs each failed connection attempt
    with its C++ frames) is held in a temporary file and written out afterwards, unless ``drop()`` was called.
    Yields ``(say, drop)``: ``say(text)`` writes to the real stderr at once."""
    import tempfile

    sys.stderr.flush()
    real = os.dup(2)
    held = tempfile.TemporaryFile()
    os.dup2(held.fileno(), 2)
    dropped = []
    try:
        yield (lambda text: os.write(real, text.encode())), (lambda: dropped.append(True))
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)
        if not dropped:
            held.seek(0)
            for block in iter(lambda: held.read(1 << 16), b""):
                os.write(2, block)
        os.close(real)
        held.close()


def init() -> bool:
    """Join the process group when launched with more than one rank; returns whether this call joined it.

    Backend ``gloo`` (CPU tensors), plus ``nccl`` for CUDA tensors when CUDA is available; the
    rank's ``LOCAL_RANK`` GPU becomes the current device. The rendezvous (torch's ``env://``) waits at most
    :func:`rendezvous_timeout` seconds for every process; after :data:`WAIT_NOTICE_SECONDS` a waiting process says
    on stderr, in one line, what it waits for, and a timeout is an :class:`InputError` saying the same.
    """
    r = rank_info()
    if not launched() or r.world_size <= 1:
        return False
    import threading
    from datetime import timedelta

    import torch
    import torch.distributed as dist
    from torch.distributed.constants import default_pg_timeout

    from imbalance_cli.errors import InputError

    if dist.is_initialized():
        return False
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(r.local_rank % torch.cuda.device_count())
        backend = "cpu:gloo,cuda:nccl"
    timeout = rendezvous_timeout()
    what = (
        f"all {r.world_size} torchrun processes (this is rank {r.rank}) to join at "
        f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    )
    with _stderr_held() as (say, drop):
        notice = threading.Timer(
            WAIT_NOTICE_SECONDS, say, (f"waiting up to {timeout:g} s for {what} ({TIMEOUT_ENV} sets the limit)\n",)
        )
        notice.daemon = True
        notice.start()
        try:
            store, rank, world = next(
                dist.rendezvous("env://", r.rank, r.world_size, timeout=timedelta(seconds=timeout))
            )
        except (RuntimeError, OSError, ValueError) as e:  # DistStoreError / DistNetworkError subclass RuntimeError
            drop()  # c10d's own retry log and C++ frames: the one line below says it
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            raise InputError(
                f"gave up after {timeout:g} s waiting for {what} ({first}); started without torchrun? "
                f"unset WORLD_SIZE and RANK, or raise {TIMEOUT_ENV}",
                record="environment",
            ) from None
        finally:
            notice.cancel()
    store.set_timeout(default_pg_timeout)  # joined: later store waits (a rank loading for minutes) get torch's default
    dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world)
    return True


def finish() -> None:
    """Leave the process group (after a barrier, so no rank exits while another still talks)."""
    import torch.distributed as dist

    if dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


@contextlib.contextmanager
def command_session(kwargs: dict, outputs: tuple = OUTPUT_ARGUMENTS) -> Iterator[dict]:
    """Run one command on this rank: join the group, silence and strip outputs on ranks > 0, leave.

    Yields the command's keyword arguments with ``outputs`` (default :data:`OUTPUT_ARGUMENTS`) set
    to ``None`` on ranks other than 0 (a command that writes on rank 0 by itself passes ``()``).
    A no-op in a single process.
    """
    check_environment()
    if not launched() or rank_info().world_size <= 1:
        yield kwargs
        return
    joined = init()
    r = rank_info()
    saved = sys.stdout, sys.stderr
    sink = None
    if not r.is_main:
        kwargs = {k: (None if k in outputs else v) for k, v in kwargs.items()}
        sink = open(os.devnull, "w")
        sys.stdout = sys.stderr = sink
    ok = False
    try:
        yield kwargs
        ok = True
    finally:
        sys.stdout, sys.stderr = saved
        if sink is not None:
            sink.close()
        if joined:
            if ok:
                finish()
            else:  # another rank may be waiting in a collective: do not wait for it, torchrun stops the rest
                import torch.distributed as dist

                dist.destroy_process_group()


#: environment variable choosing how ranks get the dataset: ``broadcast`` (default) or ``each``
LOAD_ENV = "IMBALANCE_DIST_LOAD"
LOAD_MODES = ("each", "broadcast")


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Inside this block the calling rank works as one process (:func:`active` is False: no sharding, no
    collective), for work one rank does for all (``stats``' advice and gallery on rank 0)."""
    global _ALONE
    saved, _ALONE = _ALONE, True
    try:
        yield
    finally:
        _ALONE = saved


def on_main(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` computed on rank 0 alone (:func:`alone`) and sent to every rank; an exception there
    is raised on every rank. In one process: ``fn(*args, **kwargs)``."""
    if not active():
        return fn(*args, **kwargs)

    def alone_fn():
        with alone():
            return fn(*args, **kwargs)

    return _from_main(alone_fn)


def _from_main(fn):
    """``fn()``'s value computed on rank 0 and broadcast to every rank (a collective); an exception raised on rank
    0 is sent and raised on every rank, so all ranks fail alike."""
    if rank_info().is_main:
        try:
            payload = (True, fn())
        except Exception as e:  # sent to the other ranks, raised everywhere
            payload = (False, e)
    else:
        payload = None
    ok, value = broadcast_object(payload)
    if not ok:
        raise value
    return value


def load_mode() -> str:
    """``broadcast`` (default: rank 0 loads, the others receive) or ``each`` (every rank loads the file itself).

    Read from :data:`LOAD_ENV`; anything else is an :class:`~imbalance_cli.errors.InputError`.
    """
    from imbalance_cli.errors import InputError

    mode = os.environ.get(LOAD_ENV, "broadcast").strip().lower() or "broadcast"
    if mode not in LOAD_MODES:
        raise InputError(f"{LOAD_ENV} must be each or broadcast, got {os.environ.get(LOAD_ENV)!r}")
    return mode


#: True inside :func:`local_loads`.
_LOCAL_LOADS = False


@contextlib.contextmanager
def local_loads() -> Iterator[None]:
    """Inside this block :func:`load_shared` loads on the calling rank alone (no collective), for
    code that loads on some ranks only (the trainer: rank 0 builds the synthetic data first)."""
    global _LOCAL_LOADS
    saved = _LOCAL_LOADS
    _LOCAL_LOADS = True
    try:
        yield
    finally:
        _LOCAL_LOADS = saved


def load_shared(loader, *args, **kwargs):
    """``loader(*args, **kwargs)`` on every rank, or on rank 0 and broadcast (:func:`load_mode`).

    Under ``broadcast`` an exception raised on rank 0 (a bad file) is sent to every rank and raised
    there too, so all ranks fail alike. In one process, or inside :func:`local_loads`, this is
    ``loader(*args, **kwargs)``; otherwise every rank must call it (it is a collective).
    """
    if not active() or _LOCAL_LOADS or load_mode() == "each":
        return loader(*args, **kwargs)
    return _from_main(lambda: loader(*args, **kwargs))


def local_share(cores: int) -> int:
    """This rank's share of a node's ``cores`` (``cores // LOCAL_WORLD_SIZE``, at least 1)."""
    return max(1, cores // max(1, rank_info().local_world_size)) if launched() else cores


def chunk_images_for_ranks(num_images: int, chunk_images: int | None) -> int | None:
    """Images per chunk under several ranks: at most ``ceil(num_images / world)``, so every rank has work.

    Labels are per image, so the statistics do not depend on the chunk size.
    """
    world = rank_info().world_size if active() else 1
    if world <= 1 or num_images == 0:
        return chunk_images
    per_rank = -(-num_images // world)
    return per_rank if chunk_images is None else min(int(chunk_images), per_rank)


def shard(items: list) -> list:
    """This rank's items of a list: item ``c`` goes to rank ``c mod world_size`` (all items in one process)."""
    if not active():
        return list(items)
    r = rank_info()
    return list(items[r.rank :: r.world_size])


def sum_arrays(*arrays: np.ndarray) -> None:
    """``all_reduce`` sum of numpy arrays, in place, across ranks (no-op in one process).

    Integers are summed as int64 and floats in their own dtype; an array that is zero on all ranks
    but one (per-image and per-box slices owned by one rank) comes back exactly.
    """
    if not active():
        return
    import torch
    import torch.distributed as dist

    for a in arrays:
        if a.size == 0:
            continue
        t = torch.from_numpy(np.ascontiguousarray(a).reshape(-1))
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        a.reshape(-1)[...] = t.numpy()


def sum_scalars(*values: int) -> list[int]:
    """Sum integers across ranks; returns them in order (unchanged in one process)."""
    arr = np.array(values, np.int64)
    sum_arrays(arr)
    return [int(v) for v in arr]


def mean_floats(*values: float) -> list[float]:
    """Mean of floats over ranks (float64; unchanged in one process)."""
    if not active():
        return [float(v) for v in values]
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) / dist.get_world_size() for v in t]


def wrap_ddp(model, device):
    """``DistributedDataParallel(model)`` on this rank's device when ranks are joined, else ``model``.

    Rank 0's parameters are broadcast at construction; gradients are averaged over ranks in
    ``backward()``. ``device_ids`` is the rank's GPU for a CUDA model, none for a CPU one.
    """
    if not active():
        return model
    import torch
    from torch.nn.parallel import DistributedDataParallel

    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return DistributedDataParallel(model, device_ids=[index], output_device=index)
    return DistributedDataParallel(model)


def all_gather_objects(obj: Any) -> list:
    """Every rank's ``obj``, in rank order (``[obj]`` in one process); pickled over gloo."""
    if not active():
        return [obj]
    import torch.distributed as dist

    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (``obj`` in one process)."""
    if not active():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if active():
        import torch.distributed as dist

        dist.barrier()
