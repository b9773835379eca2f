"""A streaming structural scanner for one large JSON object: where are its top-level members and array records?

The scanner reads a byte stream block by block (16 MiB) and tracks, with vectorised numpy
operations, exactly what a JSON parser tracks to find nesting: which double quotes are
unescaped (a quote preceded by an odd run of backslashes is escaped), hence which bytes lie
inside strings, and the bracket depth of every ``{ [ ] }`` outside strings. From that it emits:

* the *skeleton* of the top-level object: its keys and scalar values, each container member
  replaced by a placeholder (``[k]`` for the k-th array, ``{"#": k}`` for the k-th object), so
  ``"images": 5`` or ``"images": {}`` can be reported precisely;
* for the arrays named in ``chunked`` (``images``, ``annotations``): the bytes of their records
  in *chunks* of about ``chunk_bytes``, cut only after a record's closing brace at array depth,
  so a chunk is always a whole number of records, whatever the block size;
* the whole bytes of the other container members (``categories``, ``info``, ...), up to a bound.

Inside a chunked array the scan *speculates* (measured: ~20% less scanner CPU on the
Objects365-tenth file, and with ``verify=False`` the check below moves to the decoding workers): ``pending`` always
starts at a record boundary (after the array's ``[`` or the last cut), so the next cut is guessed at the first ``}, {``
past ``chunk_bytes`` and accepted only if ``[`` + chunk + ``]`` parses as one JSON array (msgspec, ``Raw`` values, no
records built): a guess inside a string or a nested container cannot parse. A rejected guess, the array's end or the end
of the file make the scan exact again from the last accepted boundary, with the state it has there (depth 2, outside
strings); after :data:`MAX_SPECULATION_FAILURES` rejections it stays exact. Results are the same either way;
only where chunks are cut differs.

It never validates record contents: the typed decoder does that chunk by chunk, and a bad byte
anywhere is reported by it (or by the skeleton parse) with its byte offset. A file that ends
inside a container is reported as truncated. Memory is O(block + chunk).
"""

from __future__ import annotations

import mmap
import re
import zlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from imbalance_cli.data._io import BOM
from imbalance_cli.errors import InputError

BLOCK = 16 * 1024 * 1024
#: Bytes read at a time while the scan is exact (outside chunked arrays, or until speculation starts).
EXACT_BLOCK = 1024 * 1024
#: Largest non-chunked container member (categories, info, licenses) kept in memory.
MAX_MEMBER_BYTES = 512 * 1024 * 1024
#: Largest skeleton (top-level keys and scalars) accepted.
MAX_SKELETON_BYTES = 16 * 1024 * 1024
_RAW_ARRAY = None  # msgspec decoder of list[Raw], built on first use
_KEY = re.compile(rb'"((?:[^"\\]|\\.)*)"\s*:\s*$', re.S)


@dataclass
class Chunk:
    """A run of whole records of a chunked top-level array."""

    key: str  # the member's name, e.g. "annotations"
    cont: bool  # True when the chunk continues its array after a cut (its body starts with a comma)
    offset: int  # byte offset of ``body`` in the (decompressed) document
    body: bytes | None  # records separated by commas, no surrounding brackets; None: read them from the file
    _text: tuple | None = field(default=None, repr=False, compare=False)
    size: int = 0  # bytes of the body in the file when ``body`` is None

    def text(self, path) -> tuple[bytes, int]:
        """``(json_array, base)``: the chunk as a JSON array, and the document offset of its byte 0."""
        if self._text is not None:
            text, self._text = self._text, None
            return text
        return array_text(self.body, 0, len(self.body), self.cont, self.offset, path)


def records_start(buf, a: int, b: int, cont: bool, offset: int, path) -> int:
    """Where the records of ``buf[a:b]`` (document offset ``offset``) start: after the comma that continues
    an array (``cont``), else ``a``. A missing comma or one followed by nothing is malformed JSON."""
    if not cont:
        return a
    j = _SPACE.match(buf, a, b).end()
    if j >= b or buf[j] != 0x2C:
        raise InputError(f"malformed JSON: expected ',' or ']' at byte {offset + j - a}", path=path)
    if _SPACE.match(buf, j + 1, b).end() == b:
        raise InputError(f"malformed JSON: trailing comma at byte {offset + j - a}", path=path)
    return j + 1


_SPACE = re.compile(rb"[ \t\r\n]*")


def array_text(buf, a: int, b: int, cont: bool, offset: int, path) -> tuple[bytes, int]:
    """``(b"[" + records + b"]", base)`` for the records in ``buf[a:b]`` (document offset ``offset``), one copy.

    ``cont``: the records continue an array after a cut, so a comma (after optional whitespace)
    comes first and is dropped; a missing comma or one followed by nothing is malformed JSON.
    """
    skip = records_start(buf, a, b, cont, offset, path)
    with memoryview(buf) as mv:
        text = b"".join((b"[", mv[skip:b], b"]"))
    return text, offset + skip - a - 1


#: A record boundary candidate inside a chunked array: a closing brace, a comma, an opening brace.
_CUT = re.compile(rb"\}[ \t\r\n]*,[ \t\r\n]*\{")
#: A record's closing brace followed by an array's closing bracket: in a speculative chunk, where
#: its array (or a nested array of objects) may end; such a chunk is checked even when ``verify`` is off.
_ARRAY_END = re.compile(rb"\}[ \t\r\n]*\]")
#: After this many failed speculative cuts the scan stays exact.
MAX_SPECULATION_FAILURES = 8


def _last_cut(buf, lo: int, hi: int) -> int | None:
    """Where the last record boundary candidate (:data:`_CUT`) in ``buf[lo:hi]`` starts; None when there is none."""
    a = max(lo, hi - 65536)
    while True:
        last = None
        for last in _CUT.finditer(buf, a, hi):  # noqa: B007 - the last match is wanted
            pass
        if last is not None:
            return last.start()
        if a == lo:
            return None
        a = max(lo, 2 * a - hi)


def _verified(chunk: Chunk, path) -> bool:
    """True when ``chunk`` is a complete JSON array body (then its last byte closes a record at array depth).

    The chunk starts at a known record boundary, so if ``[`` + body + ``]`` parses as one JSON array
    the cut cannot lie inside a string or a nested container. Its structure is parsed by msgspec
    without building the records (``Raw`` values); the text is kept for the decoder.
    """
    import msgspec

    global _RAW_ARRAY
    if _RAW_ARRAY is None:
        _RAW_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])
    try:
        text = chunk.text(path)
        _RAW_ARRAY.decode(text[0])
    except (InputError, msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return False  # (nested past the parser's limit: the exact scan goes on, and the decoder reports it)
    chunk._text = text
    return True


@dataclass
class Member:
    """A non-chunked container member of the top-level object."""

    key: str
    offset: int
    data: bytes | None  # None when it exceeded MAX_MEMBER_BYTES (never decoded)


@dataclass
class ScanResult:
    """What the scan found besides the chunks."""

    skeleton: bytes = b""
    members: list = field(default_factory=list)  # container k -> Member or chunked-key marker
    size: int = 0


class _Window:
    """The bytes of a speculative stretch (after the last record boundary), in one buffer kept for the whole scan.

    Blocks are read straight into it and what follows a cut is moved to its front, so the stretch
    costs no new memory per block (a growing and shrinking ``bytearray`` would be reallocated, and its
    fresh pages faulted in, for every block).
    """

    def __init__(self, capacity: int = 0):
        self.capacity = capacity  # allocated on first use
        self.buf = b""
        self.n = 0  # bytes in use: buf[:n]

    def _reserve(self, more: int) -> None:
        if self.n + more > len(self.buf):
            # an anonymous mapping: its pages are made when first written (a bytearray would zero them all)
            grown = mmap.mmap(-1, max(2 * len(self.buf), self.n + more, self.capacity, 1))
            grown[: self.n] = self.buf[: self.n]
            self.buf = grown

    def append(self, data) -> None:
        if not len(data):
            return
        self._reserve(len(data))
        self.buf[self.n : self.n + len(data)] = data
        self.n += len(data)

    def read(self, stream, size: int) -> int:
        """Read up to ``size`` bytes of ``stream`` onto the end; the count read (0 at the end of the stream)."""
        self._reserve(size)
        with memoryview(self.buf) as mv:
            got = stream.readinto(mv[self.n : self.n + size])
        self.n += got or 0
        return got or 0

    def drop(self, k: int) -> None:
        """Forget the first ``k`` bytes."""
        if k:
            with memoryview(self.buf) as mv:
                mv[: self.n - k] = mv[k : self.n]
            self.n -= k

    def take(self) -> bytes:
        """All the bytes, and empty the window."""
        out = bytes(memoryview(self.buf)[: self.n])
        self.n = 0
        return out


class _State:
    __slots__ = ("in_str", "depth", "trail_bs")

    def __init__(self):
        self.in_str = False
        self.depth = 0
        self.trail_bs = 0  # backslashes ending the previous block (inside a string)


_CLASS = bytearray(256)
for _c in b"{[}]":
    _CLASS[_c] = 1
_CLASS[34] = 1  # "
_CLASS[92] = 1  # backslash
_CLASS = bytes(_CLASS)


def _structure(buf: bytes, st: _State):
    """Positions and +1/-1 deltas of brackets outside strings in block ``buf``; updates the string state.

    One C pass (``bytes.translate``) marks the interesting bytes; everything after works on their
    positions only.
    """
    marks = np.flatnonzero(np.frombuffer(buf.translate(_CLASS), dtype=np.bool_))
    a = np.frombuffer(buf, dtype=np.uint8)
    ch = a[marks]
    is_q = ch == 34
    quotes = marks[is_q]
    bs = marks[ch == 92]
    if len(bs) or st.trail_bs:
        # a quote is escaped when an odd run of backslashes ends right before it
        cand = quotes[np.isin(quotes - 1, bs)]
        if st.trail_bs and len(quotes) and quotes[0] == 0:
            cand = np.concatenate([[0], cand])
        if len(cand):
            escaped = np.zeros(len(quotes), dtype=bool)
            for q in cand.tolist():
                n, j = 0, q - 1
                while j >= 0 and a[j] == 92:
                    n += 1
                    j -= 1
                if j < 0:
                    n += st.trail_bs
                escaped[int(np.searchsorted(quotes, q))] = n % 2 == 1
            quotes = quotes[~escaped]
    brm = ~is_q & (ch != 92)
    br = marks[brm]
    parity = (np.searchsorted(quotes, br) + int(st.in_str)) & 1
    keep = parity == 0
    br = br[keep]
    delta = np.where((ch[brm][keep] | 0x20) == 0x7B, 1, -1).astype(np.int64)
    st.in_str = bool((len(quotes) + int(st.in_str)) & 1)
    # trailing backslashes (relevant only inside a string)
    n = 0
    j = len(a) - 1
    while j >= 0 and a[j] == 92 and n < 1 << 20:
        n += 1
        j -= 1
    st.trail_bs = (n + (st.trail_bs if j < 0 else 0)) if st.in_str else 0
    return br, delta


def scan(
    stream,
    path,
    chunked: tuple[str, ...] = ("images", "annotations"),
    chunk_bytes: int = 8 * 1024 * 1024,
    on_progress: Callable[[], None] | None = None,
    block: int = BLOCK,
    speculate: bool = True,
    verify: bool = True,
    direct: bool = False,
) -> Iterator[Chunk | ScanResult]:
    """Scan a JSON document from ``stream``; yield :class:`Chunk` s as they complete, then one :class:`ScanResult`.

    ``speculate=False`` scans every byte exactly (the chunks then differ only in where they are cut).
    ``verify=False`` yields speculative chunks without parsing their structure here (except a chunk
    holding ``}]``, where its array may end: that one is checked): the caller's typed decode is then
    the check. A wrong guess always makes its chunk fail to decode (it ends inside a string or a
    record), so a caller that gets every chunk decoded has the right chunks;
    on any error it must scan again with ``verify=True`` (:func:`imbalance_cli.data.stream.load_json_file`
    does), which also gives the error messages of an exact scan.
    ``direct=True`` (the document is a plain file, document offsets are file offsets): a speculative
    chunk that is not checked here carries no bytes (``body=None``, ``offset`` and ``size``), and the
    decoder reads it from the file itself; the records are never copied or sent between processes.
    """
    scanner = _Scanner(stream, path, chunked, chunk_bytes, on_progress, block, speculate, verify, direct)
    return scanner.run()


#: What :meth:`_Scanner._speculate` returns when its stretch goes on: read the next block.
_GO_ON = object()


@dataclass
class _Position:
    """Where a scan stands between blocks (the bracket and string state is :class:`_State`)."""

    offset: int = 0  # document offset of the current block
    skeleton: bytearray = field(default_factory=bytearray)
    first: bool = True  # before the first block (a BOM is dropped there)
    started: bool = False  # the top-level value has opened
    cur: dict | None = None  # current depth-1 container: key, chunked, start, k, cut
    pending: bytearray = field(default_factory=bytearray)  # bytes of the current chunk or member
    pending_off: int = 0
    pos: int = 0  # position in the current block up to which bytes have been routed
    spec: bool = False  # speculative mode: the window holds bytes after a known record boundary, not yet scanned
    spec_failures: int = 0
    # after a rejected guess: (start of its array, end of its stretch); the scan stays exact until it
    # passes that end or the array closes (re-guessing at once failed again the same way: a stretch
    # holding an array's end made 8 failures in a row and left the rest of the file to the exact scan)
    hold: tuple[int, int] = (-1, -1)
    eof: bool = False
    # bytes already read but not yet scanned: what a failed speculation hands back to the exact scan
    carry: bytes = b""
    carry_pos: int = 0


class _Scanner:
    """One scan of :func:`scan`: reads blocks, speculates inside chunked arrays, scans the rest exactly."""

    def __init__(self, stream, path, chunked, chunk_bytes, on_progress, block, speculate, verify, direct):
        self.stream, self.path, self.chunked, self.chunk_bytes = stream, path, chunked, chunk_bytes
        self.on_progress, self.block, self.speculate, self.verify, self.direct = (
            on_progress,
            block,
            speculate,
            verify,
            direct,
        )
        self.st = _State()
        self.res = ScanResult()
        self.at = _Position()
        self.win = _Window(chunk_bytes + 3 * block)  # the most a stretch holds: see the fallback in _speculate

    def run(self) -> Iterator[Chunk | ScanResult]:
        at = self.at
        while True:
            read = self._read()
            if read is None:
                break
            buf, got = read
            if at.first and buf:  # (never in a speculative stretch: one starts after an array opens)
                if buf.startswith(BOM):
                    buf = buf[len(BOM) :]
                    at.offset += len(BOM)
                at.first = False
            if self._speculating():
                buf = yield from self._speculate(buf, got)
                if buf is _GO_ON:
                    continue
                if not buf:
                    break
            yield from self._exact(buf)
        yield self._finish()

    def _read(self):
        """The next block to scan as ``(bytes or None (read into the window), count read)``; None at the end."""
        at = self.at
        # a speculative stretch reads whole blocks; an exact one reads EXACT_BLOCK at a time, so the
        # exact scan (the costly part) stops soon after an array opens (or, after a rejected guess, soon after
        # the array ends) instead of running to the block's end
        size = self.block if self._speculating() else min(self.block, EXACT_BLOCK)
        if at.carry_pos < len(at.carry):
            buf = at.carry[at.carry_pos : at.carry_pos + size]
            at.carry_pos += len(buf)
            return buf, len(buf)
        if at.eof:
            return None
        try:
            if at.spec:  # straight into the window (no bytes object per block)
                buf = None
                got = self.win.read(self.stream, size)
            else:
                buf = self.stream.read(size)
                got = len(buf)
        except (EOFError, OSError, zlib.error) as e:  # gzip truncation or corruption
            raise InputError(f"corrupt or truncated gzip data ({e})", path=self.path) from None
        if self.on_progress is not None:
            self.on_progress()
        if not got:
            if not at.spec:
                return None
            at.eof = True
        return buf, got

    def _speculating(self) -> bool:
        at = self.at
        return at.spec or (
            self.speculate
            and not at.eof
            and at.cur is not None
            and at.cur["chunked"]
            and at.spec_failures < MAX_SPECULATION_FAILURES
            and (at.cur["start"] != at.hold[0] or at.offset >= at.hold[1])
        )

    def _next_cut(self, wbuf, wn: int, start: int):
        """``(c, end)``: the next speculative chunk from ``wbuf[start]`` ends at ``wbuf[c]``, and ``end`` is the
        :data:`_ARRAY_END` it holds (None when it holds none, or under ``verify``); None: no cut in the window yet."""
        chunk_bytes = self.chunk_bytes
        m = _CUT.search(wbuf, start + max(chunk_bytes - 1, 0), wn) if wn - start >= chunk_bytes else None
        if m is None and not (self.at.eof and not self.verify and start < wn):
            return None
        # (at the end of the file, the rest is a chunk up to the boundary before its array's end, if any)
        c = wn - 1 if m is None else m.start()
        end = None if self.verify else _ARRAY_END.search(wbuf, start, c + 1)
        if end is not None:
            # where the array may end: cut at the last record boundary before that, so only the records
            # after it are scanned exactly (rather than up to a whole chunk: 0.1 s on COCO-train size)
            before = _last_cut(wbuf, start, end.start())
            if before is not None:
                c, end = before, None
        if m is None and c == wn - 1:
            return None
        if m is None and c - start > chunk_bytes // 4:
            # the file's last records: halved while large, so the workers finish together
            half = _CUT.search(wbuf, start + (c - start) // 2, c)
            c = c if half is None else half.start()
        return c, end

    def _speculate(self, buf, got):
        """Speculative cuts (see module docstring); returns :data:`_GO_ON`, or the bytes to scan exactly from the
        last verified record boundary (empty: the end of the document).

        Inside a chunked array ``pending`` always starts at a record boundary (after the array's "[" or the last
        cut: depth 2, outside strings), so the next cut is guessed at a "}, {" after chunk_bytes and checked by
        parsing the chunk's structure; only a failed check (or the array's end) scans exactly, from there.
        """
        at, win, cur, path, chunk_bytes = self.at, self.win, self.at.cur, self.path, self.chunk_bytes
        if not at.spec:  # entering: the window starts with the chunk's bytes scanned exactly so far
            win.append(at.pending)
            at.pending = bytearray()
        at.spec = True
        if buf is None:
            at.offset += got
        else:
            win.append(buf)
            at.offset += len(buf)
        wbuf, wn = win.buf, win.n
        ok = True
        start = 0  # the next chunk starts at wbuf[start] (one compaction per block, not per cut)
        while True:
            cut = self._next_cut(wbuf, wn, start)
            if cut is None:
                break
            c, end = cut
            try:
                records_start(wbuf, start, c + 1, cur["cut"], at.pending_off, path)
            except InputError:  # no comma after the boundary: the array ended there, scan exactly
                ok = False
                break
            check = self.verify or end is not None
            if self.direct and not check:
                piece = Chunk(cur["key"], cur["cut"], at.pending_off, None, size=c + 1 - start)
            else:
                text = array_text(wbuf, start, c + 1, cur["cut"], at.pending_off, path)
                piece = Chunk(cur["key"], cur["cut"], at.pending_off, memoryview(text[0])[1:-1], text)
                if check and not _verified(piece, path):
                    ok = False
                    break
            yield piece
            cur["cut"] = True
            at.pending_off += c + 1 - start
            start = c + 1
        win.drop(start)
        if ok and not at.eof and win.n <= chunk_bytes + 2 * self.block:
            return _GO_ON
        # scan exactly from the last verified record boundary, EXACT_BLOCK at a time: once the
        # array has ended and the next one opened, speculation resumes, so only the stretch around the
        # boundary between two arrays is scanned exactly
        at.spec_failures += not ok
        at.spec = False
        at.hold = (cur["start"], at.pending_off + win.n) if not ok else at.hold
        rest = win.take() + at.carry[at.carry_pos :]
        buf, at.carry, at.carry_pos = rest[:EXACT_BLOCK], rest, min(EXACT_BLOCK, len(rest))
        at.offset = at.pending_off
        self.st.depth, self.st.in_str, self.st.trail_bs = 2, False, 0
        return buf

    def _exact(self, buf: bytes):
        """Scan ``buf`` byte by byte: route its bytes to the skeleton, the members and the chunks."""
        at, st = self.at, self.st
        br, delta = _structure(buf, st)
        depth_after = st.depth + np.cumsum(delta)
        depth_before = depth_after - delta
        # events that matter: depth transitions 0<->1 (top-level object), 1<->2 (members),
        # and closes of records (2 after) in chunked arrays.
        top = (depth_before <= 1) | (depth_after <= 1)
        rc_all = br[(depth_after == 2) & (delta < 0)]  # closes of records at array depth
        at.pos = 0
        for p, d_b, d_a in zip(br[top].tolist(), depth_before[top].tolist(), depth_after[top].tolist()):
            if at.cur is not None and at.cur["chunked"]:
                yield from self._cuts(buf, rc_all, at.pos, p)
            yield from self._event(buf, p, d_b, d_a)
            self._check_skeleton()
        # route the rest of the block
        if at.cur is not None and at.cur["chunked"]:
            yield from self._cuts(buf, rc_all, at.pos, len(buf))
        if at.cur is not None:
            at.pending += buf[at.pos :]
            if not at.cur["chunked"] and len(at.pending) > MAX_MEMBER_BYTES:
                del at.pending[MAX_MEMBER_BYTES + 1 :]  # keep the bound; the member is not decoded
        else:
            at.skeleton += buf[at.pos :]
            self._check_skeleton()
        st.depth += int(delta.sum())
        if st.depth < 0:
            raise InputError(
                f"malformed JSON: unbalanced closing bracket before byte {at.offset + len(buf)}", path=self.path
            )
        at.offset += len(buf)

    def _check_skeleton(self) -> None:
        if len(self.at.skeleton) > MAX_SKELETON_BYTES:
            raise InputError("the top-level object has more than 16 MiB outside its arrays and objects", path=self.path)

    def _cuts(self, buf, rc_all, lo, hi):
        """Chunk cuts among record closes in buf[lo:hi] of the current chunked member."""
        at = self.at
        rc = rc_all[(rc_all >= lo) & (rc_all < hi)]
        while len(rc):
            need = self.chunk_bytes - len(at.pending)  # bytes still wanted from buf[pos:]
            j = int(np.searchsorted(rc, at.pos + need - 1))
            if j >= len(rc):
                break
            c = int(rc[j])
            at.pending += buf[at.pos : c + 1]
            yield Chunk(at.cur["key"], at.cur["cut"], at.pending_off, bytes(at.pending))
            at.cur["cut"] = True
            at.pending = bytearray()
            at.pending_off = at.offset + c + 1
            at.pos = c + 1
            rc = rc[j + 1 :]

    def _event(self, buf, p: int, d_b: int, d_a: int):
        """The bracket at ``buf[p]`` takes the depth from ``d_b`` to ``d_a`` at the top two levels."""
        at, path = self.at, self.path
        if d_b == 0 and d_a == 1:  # open of the top-level value
            if at.started:
                raise InputError(f"malformed JSON: more than one top-level value (byte {at.offset + p})", path=path)
            at.started = True
            if buf[p] == 0x5B:  # '['
                raise InputError(
                    "a JSON list is not an annotation file (a category-statistics list is read by "
                    "`imbalance margins` and `imbalance groups`)",
                    path=path,
                )
            at.skeleton += buf[at.pos : p + 1]
            at.pos = p + 1
        elif d_b == 1 and d_a == 2:  # a member container opens
            self._member_opens(buf, p)
        elif d_b == 2 and d_a == 1:  # a member container closes
            cur = at.cur
            if cur is not None and cur["chunked"]:
                at.pending += buf[at.pos : p]
                if bytes(at.pending).strip():
                    yield Chunk(cur["key"], cur["cut"], at.pending_off, bytes(at.pending))
            else:
                at.pending += buf[at.pos : p + 1]
                if cur is not None:
                    data = bytes(at.pending) if len(at.pending) <= MAX_MEMBER_BYTES else None
                    self.res.members[cur["k"]] = Member(cur["key"], cur["start"], data)
            at.pending = bytearray()
            at.pos = p + 1
            at.cur = None
        elif d_b == 1 and d_a == 0:  # the top-level value closes
            at.skeleton += buf[at.pos : p + 1]
            at.pos = p + 1

    def _member_opens(self, buf, p: int) -> None:
        """A container member opens at ``buf[p]``: a placeholder in the skeleton, then its chunks or its bytes."""
        at = self.at
        at.skeleton += buf[at.pos : p]
        at.pos = p
        k = len(self.res.members)
        m = _KEY.search(bytes(at.skeleton[-4096:]))
        key = _decode_key(m.group(1)) if m else None
        is_arr = buf[p] == 0x5B
        at.skeleton += (b"[%d]" % k) if is_arr else (b'{"#":%d}' % k)
        is_chunked = is_arr and key in self.chunked
        at.cur = {"key": key, "chunked": is_chunked, "start": at.offset + p, "k": k, "cut": False}
        self.res.members.append(key if is_chunked else None)
        at.pending = bytearray()
        at.pending_off = at.offset + p + 1
        at.pos = p + 1 if is_chunked else p

    def _finish(self) -> ScanResult:
        at, res = self.at, self.res
        res.size = at.offset
        if self.st.depth != 0 or self.st.in_str:
            where = f" inside '{at.cur['key']}'" if at.cur is not None and at.cur.get("key") else ""
            raise InputError(
                f"truncated JSON: the file ends{where} at byte {at.offset} with unclosed brackets or strings",
                path=self.path,
            )
        res.skeleton = bytes(at.skeleton)
        return res


def _decode_key(raw: bytes) -> str | None:
    import msgspec

    try:
        return msgspec.json.decode(b'"' + raw + b'"')
    except msgspec.DecodeError:
        return None
