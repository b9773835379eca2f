"""The streaming COCO-style JSON pipeline: scan -> decode chunks on ``workers`` processes -> assemble.

Peak memory is the columnar result plus O(chunk x workers): the document is never held whole,
and no Python object outlives the chunk it was decoded from. Chunks are put together in file
order, so the result (and the first error reported) is the same for every worker count.
"""

from __future__ import annotations

import collections
import io
import mmap
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import msgspec
import numpy as np

from imbalance_cli import memory
from imbalance_cli.data import coco
from imbalance_cli.data._io import NESTING_ERROR
from imbalance_cli.data.jsonscan import Chunk, Member, records_start, scan
from imbalance_cli.data.progress import ByteProgress
from imbalance_cli.errors import InputError

#: Bytes of records per chunk.
CHUNK_BYTES = 8 * 1024 * 1024


def _job(item: Chunk, path: str, file: str | None) -> tuple:
    """What a decoder needs for ``item``: its text, or (for a chunk not held in memory) where it lies in ``file``."""
    if item.body is None:
        return item.key, None, (file, item.offset, item.size, item.cont), path
    text, base = item.text(path)
    return item.key, text, base, path


def _decode_into_slot(job, slot: int):
    """A worker's task: decode ``job`` and put its numeric columns in shared slot ``slot`` (see :class:`_Slots`)."""
    return _SLOTS.put(slot, _decode(job))


def _decode(job):
    key, text, base, path = job
    if text is not None:
        return coco.decode_chunk(key, text, base, path)
    file, offset, size, cont = base
    buf = _span_buffer(size + 2)
    with memoryview(buf) as mv:
        _read_exactly(file, mv[1 : size + 1], offset, path)
        mv[size + 1] = 0x5D  # "]"
        # the records start after the comma that continues the array: "[" takes the comma's place
        start = records_start(buf, 1, size + 1, cont, offset, path) - 1 if cont else 0
        mv[start] = 0x5B  # "["
        # buffer index i holds document byte offset + i - 1
        return coco.decode_chunk(key, mv[start : size + 2], offset + start - 1, path)


#: This process's buffer for chunks read from the file: reused, so a chunk costs no fresh pages.
_SPAN_BUFFER = bytearray()


def _span_buffer(size: int) -> bytearray:
    global _SPAN_BUFFER
    if len(_SPAN_BUFFER) < size:
        _SPAN_BUFFER = bytearray(size + size // 8)
    return _SPAN_BUFFER


def _free_span_buffer() -> None:
    global _SPAN_BUFFER
    _SPAN_BUFFER = bytearray()


class _Slots:
    """Shared memory through which workers hand decoded columns back: one slot per chunk in flight.

    The slots are anonymous shared mappings made before the workers fork, so a worker writes a
    chunk's numeric columns (~5 MB per 8 MiB of COCO annotations) into memory the parent reads, and
    only their places are pickled: pickling the columns through a pipe would make three copies and fresh
    pages in each process (on the COCO-train-size file the slots save the parent about 5 k of its 60 k page
    faults, measured). Columns that do not fit (or object arrays) are pickled.
    """

    def __init__(self, count: int = 0, size: int = 0):
        self.maps = [mmap.mmap(-1, size) for _ in range(count)]
        self.free = list(range(count))

    def put(self, slot: int, res: dict) -> dict:
        """Move ``res``'s numeric arrays into slot ``slot``; each becomes ``("slot", offset, dtype, shape)``."""
        buf, at = self.maps[slot], 0
        out = dict(res)
        for k, v in res.items():
            if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
                at = -(-at // 64) * 64
                if at + v.nbytes > len(buf):
                    break
                np.frombuffer(buf, dtype=v.dtype, count=v.size, offset=at)[:] = v.reshape(-1)
                out[k] = ("slot", at, v.dtype.str, v.shape)
                at += v.nbytes
        return out

    def take(self, slot: int, res: dict, columns: dict) -> dict:
        """Append the arrays ``put`` placed in slot ``slot`` (and any pickled numeric arrays) to ``columns``, free
        the slot; ``res`` keeps the rest."""
        with memoryview(self.maps[slot]) as buf:
            for k, v in res.items():
                if isinstance(v, tuple) and len(v) == 4 and v[0] == "slot":
                    _, at, dtype, shape = v
                    dtype = np.dtype(dtype)
                    nbytes = int(np.prod(shape)) * dtype.itemsize
                    _column(columns, k, dtype, shape).append(buf[at : at + nbytes], shape[0])
        self.free.append(slot)
        return _keep_columns(res, columns)

    def close(self) -> None:
        for m in self.maps:
            m.close()
        self.maps, self.free = [], []


class _Column:
    """One numeric column of one key's chunks, appended in file order into a single anonymous mapping.

    Each chunk's values are copied once, from the worker's result slot to their final place (copying them
    out of the slot into arrays of their own and joining those at the end made two copies, and two sets
    of fresh pages, in the parent). The mapping grows by ``mremap`` (``mmap.resize``: the pages move, nothing
    is copied and the peak is the column itself); where that is not available a grown mapping is copied.
    """

    def __init__(self, dtype: np.dtype, row_shape: tuple):
        self.dtype, self.row_shape = dtype, tuple(row_shape)
        self.row_bytes = dtype.itemsize * int(np.prod(self.row_shape, dtype=np.int64))
        self.map = None
        self.n = 0  # rows

    def append(self, data, rows: int) -> None:
        """Append ``rows`` rows given as a C-contiguous buffer (``data``) of their bytes."""
        at = self.n * self.row_bytes
        self._reserve(at + len(data))
        with memoryview(self.map) as mv:
            mv[at : at + len(data)] = data
        self.n += rows

    def _reserve(self, need: int) -> None:
        size = 0 if self.map is None else len(self.map)
        if need <= size:
            return
        grown = max(need, 2 * size, 1 << 20)
        if self.map is not None:
            try:
                self.map.resize(grown)
                return
            except (OSError, SystemError):  # (no mremap: copied below)
                pass
        new = mmap.mmap(-1, grown, **_PRIVATE)
        if hasattr(mmap, "MADV_HUGEPAGE"):  # fewer page faults, as NumPy asks for its large arrays
            try:
                new.madvise(mmap.MADV_HUGEPAGE)
            except OSError:  # (a kernel without transparent huge pages)
                pass
        if self.map is not None:
            with memoryview(new) as dst, memoryview(self.map) as src:
                dst[:size] = src
            self.map.close()
        self.map = new

    def array(self) -> np.ndarray:
        """The column, its mapping trimmed to it."""
        if self.n == 0:
            return np.zeros((0,) + self.row_shape, dtype=self.dtype)
        nbytes = self.n * self.row_bytes
        try:
            self.map.resize(nbytes)
        except (OSError, SystemError):
            pass
        flat = np.frombuffer(self.map, dtype=self.dtype, count=nbytes // self.dtype.itemsize)
        return flat.reshape((self.n,) + self.row_shape)


#: A private anonymous mapping (a shared one cannot grow by ``mremap``: its new pages would not exist).
_PRIVATE = {"flags": mmap.MAP_PRIVATE} if hasattr(mmap, "MAP_PRIVATE") else {}


def _column(columns: dict, name: str, dtype: np.dtype, shape: tuple) -> _Column:
    col = columns.get(name)
    if col is None:
        col = columns[name] = _Column(dtype, shape[1:])
    return col


def _keep_columns(res: dict, columns: dict) -> dict:
    """Append ``res``'s numeric arrays to ``columns`` (those in a slot are there already); ``res`` keeps the rest
    (see :func:`_columns_into_parts`)."""
    for k, v in list(res.items()):
        if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
            _column(columns, k, v.dtype, v.shape).append(np.ascontiguousarray(v).reshape(-1).view(np.uint8), len(v))
            res[k] = None  # (freed now; a view of the column takes its place once the load is done)
    return res


def _columns_into_parts(parts: list, columns: dict) -> None:
    """Put the finished ``columns`` under ``parts[0]["columns"]`` and a view of each chunk's rows in its part."""
    whole = {k: col.array() for k, col in columns.items()}
    at = 0
    for p in parts:
        for k, arr in whole.items():
            p[k] = arr[at : at + p["n"]]
        at += p["n"]
    for k, arr in whole.items():
        if len(arr) != at:
            raise AssertionError(f"column {k}: {len(arr)} rows for {at} records")
    if parts:
        parts[0]["columns"] = whole


#: Bytes of a result slot beyond twice the chunk size.
SLOT_MARGIN = 1 << 20
#: The slots of the load in progress (set before the workers fork, so they share them).
_SLOTS = _Slots()


def _start_workers(workers: int, chunk_bytes: int) -> ProcessPoolExecutor:
    """The decoding pool, forked after this load's result slots are made (so the workers share them)."""
    global _SLOTS
    # one slot per chunk in flight (at most 2 x workers + 1); columns take ~0.6 x a COCO chunk's
    # bytes and at most ~1.3 x for the smallest records; bigger ones are pickled
    _SLOTS = _Slots(2 * workers + 2, 2 * chunk_bytes + SLOT_MARGIN)
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("fork"), initializer=_worker_init
    )


def _worker_init() -> None:
    """A decoding worker keeps the memory it frees for its next chunk (the C heap's and the object allocator's)."""
    memory.keep_freed_memory()
    coco.keep_arenas()


def _read_exactly(file: str, into: memoryview, offset: int, path: str) -> None:
    with open(file, "rb", buffering=0) as f:
        f.seek(offset)
        got = 0
        while got < len(into):
            n = f.readinto(into[got:])
            if not n:
                raise InputError(
                    f"the file changed while it was read (it ends before byte {offset + len(into)})", path=path
                )
            got += n


def load_json_file(
    open_stream,
    path: str,
    flavour: str | None = None,
    workers: int = 1,
    total: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    block: int | None = None,
):
    """Load a COCO / LVIS / Objects365 file: one pass whose cuts the decoders check, a checked pass on any error.

    ``open_stream()`` returns ``(stream, raw)`` for a fresh read of the file. The first pass lets the
    workers' typed decode check the scanner's speculative cuts (:func:`~imbalance_cli.data.jsonscan.scan`
    with ``verify=False``: the parent no longer parses every chunk a second time; parent CPU on the
    COCO-train-size file 1.4 -> 1.2 s, measured side by side); a wrong cut makes its chunk fail to decode, so when every
    chunk decodes the result is right. On any error the file is read again with cuts checked as it is
    scanned, which either succeeds or reports the error an exact scan reports.
    """

    def one_pass(verify: bool):
        stream, raw = open_stream()
        try:
            return load_json_stream(
                stream,
                raw,
                path,
                flavour=flavour,
                workers=workers,
                total=total,
                chunk_bytes=chunk_bytes,
                block=block,
                verify_cuts=verify,
            )
        finally:
            raw.close()

    try:
        return one_pass(False)
    except InputError:
        return one_pass(True)


# long: one read-decode loop under one try: the first error in file order wins and the workers always stop
def load_json_stream(
    stream,
    raw,
    path: str,
    flavour: str | None = None,
    workers: int = 1,
    total: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    block: int | None = None,
    verify_cuts: bool = True,
):
    """Load a COCO / LVIS / Objects365 document from a binary stream (see module docstring).

    ``raw`` is the underlying file (its ``tell()`` drives the progress bar over ``total`` bytes).
    ``verify_cuts=False``: speculative chunk cuts are checked only by decoding them (see
    :func:`load_json_file`, which reads the file again on any error).
    """

    parts = {"images": [], "annotations": []}
    columns = {"images": {}, "annotations": {}}  # name -> _Column: the numeric columns, each in one piece
    counts = {"images": 0, "annotations": 0}
    pending = collections.deque()  # (key, first_index, future or result)
    pool = None
    workers = max(1, int(workers))
    kw = {} if block is None else {"block": block}
    bar = ByteProgress(total, f"reading {path.rsplit('/', 1)[-1]}")
    # a plain file (not gzip): decoders read speculative chunks from it themselves (jsonscan.scan's
    # ``direct``), so records are neither copied here nor sent to workers (who then fault in fewer pages)
    file = raw.name if stream is raw and isinstance(raw, io.BufferedReader) and isinstance(raw.name, str) else None
    before = _identity(file)

    result = None
    try:
        with bar:
            for item in scan(
                stream,
                path,
                chunk_bytes=chunk_bytes,
                on_progress=lambda: bar.update(raw.tell()),
                verify=verify_cuts,
                direct=file is not None,
                **kw,
            ):
                if not isinstance(item, Chunk):
                    result = item
                    break
                job = _job(item, path, file)
                first = counts[item.key]
                # records in this chunk: counted after decoding; the index of the first record is needed
                # before, so chunks of one key are numbered when collected (in order) below.
                # workers from the first chunk of a file of several chunks; a small file is decoded here
                if workers > 1 and pool is None and (item.cont or len(pending) or (total or 0) > 2 * chunk_bytes):
                    pool = _start_workers(workers, chunk_bytes)
                if pool is None:
                    try:
                        res = _decode(job)
                    except InputError as e:
                        raise _renumber(e, item.key, parts) from None
                    _keep(parts, counts, item.key, _keep_columns(res, columns[item.key]))
                    continue
                slot = _SLOTS.free.pop()
                pending.append((item.key, first, pool.submit(_decode_into_slot, job, slot), slot))
                while len(pending) > 2 * workers:
                    _collect_in_order(pending.popleft(), parts, counts, columns)
        while pending:
            _collect_in_order(pending.popleft(), parts, counts, columns)
    except BaseException:
        # report the first error in file order: an earlier chunk's error wins over a later scan error
        while pending:
            _collect_in_order(pending.popleft(), parts, counts, columns)
        raise
    finally:
        if pool is not None:
            # the workers' exit is not waited for (~20 ms): they end while the columns are assembled
            pool.shutdown(wait=False, cancel_futures=True)
            _SLOTS.close()
        _free_span_buffer()
    if _identity(file) != before:
        raise InputError("the file changed while it was read: run again", path=path)
    memory.release_free_memory()
    for key in ("images", "annotations"):
        _columns_into_parts(parts[key], columns[key])
    skeleton = _skeleton(result.skeleton, path)
    members = _members(result.members, path)
    return coco.assemble(path, skeleton, members, parts["images"], parts["annotations"], flavour)


def _members(scanned: list, path: str) -> dict:
    """``{key: (kind, data, offset)}`` of the document's other top-level members; a duplicate images or
    annotations key is an error."""
    members = {}
    for m in scanned:
        if isinstance(m, Member) and m.key is not None:
            kind = "array" if m.data is not None and m.data[:1] == b"[" else "object"
            members[m.key] = (kind, m.data, m.offset)
    for key in ("images", "annotations"):
        if scanned.count(key) > 1:
            raise InputError(f"duplicate top-level key '{key}'", path=path)
    return members


def _identity(file: str | None):
    """Size and modification time of ``file`` (None for none), to notice a file changed during a load."""
    if file is None:
        return None
    try:
        st = os.stat(file)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _renumber(err: InputError, key: str, parts: dict) -> InputError:
    return coco._globalise(err, sum(p["n"] for p in parts[key]))


def _collect_in_order(item, parts, counts, columns):
    key, _first, fut, slot = item
    try:
        res = fut.result()
    except InputError as e:
        _SLOTS.free.append(slot)
        raise _renumber(e, key, parts) from None
    _keep(parts, counts, key, _SLOTS.take(slot, res, columns[key]))


def _keep(parts, counts, key, res) -> None:
    parts[key].append(res)
    counts[key] += res["n"]
    if (len(parts["images"]) + len(parts["annotations"])) % memory.RELEASE_EVERY == 0:
        memory.release_free_memory()  # freed chunk buffers back to the system (imbalance_cli.memory)


def _skeleton(data: bytes, path: str) -> dict:
    try:
        top = msgspec.json.decode(data)
    except RecursionError:  # (the skeleton holds placeholders for containers: not reached by real nesting)
        raise InputError(f"malformed JSON: {NESTING_ERROR} at the top level", path=path) from None
    except msgspec.DecodeError as e:
        msg = coco._BYTE.sub("", str(e).replace("JSON is malformed: ", "")).strip()
        raise InputError(f"malformed JSON at the top level: {msg}", path=path) from None
    if not isinstance(top, dict):
        raise InputError(
            "unrecognised JSON: expected a COCO-style object with images, annotations and categories", path=path
        )
    if not {"images", "annotations", "categories"} & set(top):
        raise InputError(
            "unrecognised JSON: expected a COCO-style object with images, annotations and categories", path=path
        )
    return top
