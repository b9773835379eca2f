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
Objects365-tenth file, and with ``verify=False`` the check below moves to the decoding workers): ``pending`` always starts at a record boundary (after the array's ``[`` or
the last cut), so the next cut is guessed at the first ``}, {`` past ``chunk_bytes`` and accepted
only if ``[`` + chunk + ``]`` parses as one JSON array (msgspec, ``Raw`` values, no records built):
a guess inside a string or a nested container cannot parse. A rejected guess, the array's end or
the end of the file make the scan exact again from the last accepted boundary, with the state it
has there (depth 2, outside strings); after :data:`MAX_SPECULATION_FAILURES` rejections it stays
exact. Results are the same either way; only where chunks are cut differs.

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
    costs no new memory per block (a growing and shrinking ``bytearray`` was reallocated, and its
    fresh pages faulted in, for every block: 0.2 s of the parent's CPU on the COCO-train-size file).
    """

    def __init__(self, capacity: int = 0):
        self.capacity = capacity  # allocated on first use
        self.buf = b""
        self.n = 0  # bytes in use: buf[:n]

    def _reserve(self, more: int) -> None:
        if self.n + more > len(self.buf):
            # an anonymous mapping: its pages are made when first written (a bytearray would zero them all)
            grown = mmap.mmap(-1, max(2 * len(self.buf), self.n + more, self.capacity, 1))
            grown[:self.n] = self.buf[:self.n]
            self.buf = grown

    def append(self, data) -> None:
        if not len(data):
            return
        self._reserve(len(data))
        self.buf[self.n:self.n + len(data)] = data
        self.n += len(data)

    def read(self, stream, size: int) -> int:
        """Read up to ``size`` bytes of ``stream`` onto the end; the count read (0 at the end of the stream)."""
        self._reserve(size)
        with memoryview(self.buf) as mv:
            got = stream.readinto(mv[self.n:self.n + size])
        self.n += got or 0
        return got or 0

    def drop(self, k: int) -> None:
        """Forget the first ``k`` bytes."""
        if k:
            with memoryview(self.buf) as mv:
                mv[:self.n - k] = mv[k:self.n]
            self.n -= k

    def take(self) -> bytes:
        """All the bytes, and empty the window."""
        out = bytes(memoryview(self.buf)[:self.n])
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


def scan(stream, path, chunked: tuple[str, ...] = ("images", "annotations"), chunk_bytes: int = 8 * 1024 * 1024,
         on_progress: Callable[[], None] | None = None, block: int = BLOCK,
         speculate: bool = True, verify: bool = True, direct: bool = False) -> Iterator[Chunk | ScanResult]:
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
    st = _State()
    res = ScanResult()
    offset = 0  # global offset of the current block
    skeleton = bytearray()
    first = True
    cur = None  # current depth-1 container: dict(kind, key, start, chunked, pieces, chunk_start, size)
    pending = bytearray()  # bytes of the current chunk (chunked) or member (not chunked)
    pending_off = 0
    started = False
    spec = False  # speculative mode: ``win`` holds bytes after a known record boundary, not yet scanned
    win = _Window(chunk_bytes + 3 * block)  # the most a stretch holds: see the fallback below
    spec_failures = 0
    # after a rejected guess: (start of its array, end of its stretch); the scan stays exact until it
    # passes that end or the array closes (re-guessing at once failed again the same way: a stretch
    # holding an array's end made 8 failures in a row and left the rest of the file to the exact scan)
    hold = (-1, -1)
    eof = False
    # bytes already read but not yet scanned: what a failed speculation hands back to the exact scan
    carry, carry_pos = b"", 0
    while True:
        # a speculative stretch reads whole blocks; an exact one reads EXACT_BLOCK at a time, so the
        # exact scan (the costly part) stops soon after an array opens (measured: parent CPU -0.2 s
        # on the COCO-train-size file, where 3 of its 7 blocks were scanned exactly)
        in_array = spec or (speculate and cur is not None and cur["chunked"])
        size = block if in_array else min(block, EXACT_BLOCK)
        if carry_pos < len(carry):
            buf = carry[carry_pos:carry_pos + size]
            carry_pos += len(buf)
        elif eof:
            break
        else:
            try:
                if spec:  # straight into the window (no bytes object per block)
                    buf = None
                    got = win.read(stream, size)
                else:
                    buf = stream.read(size)
                    got = len(buf)
            except (EOFError, OSError, zlib.error) as e:  # gzip truncation or corruption
                raise InputError(f"corrupt or truncated gzip data ({e})", path=path) from None
            if on_progress is not None:
                on_progress()
            if not got:
                if not spec:
                    break
                eof = True
        if first and buf:  # (never in a speculative stretch: one starts after an array opens)
            if buf.startswith(BOM):
                buf = buf[len(BOM):]
                offset += len(BOM)
            first = False
        if spec or (speculate and not eof and cur is not None and cur["chunked"]
                    and spec_failures < MAX_SPECULATION_FAILURES and (cur["start"] != hold[0] or offset >= hold[1])):
            # Speculative cuts (see module docstring). Inside a chunked array ``pending`` always starts
            # at a record boundary (after the array's "[" or the last cut: depth 2, outside strings),
            # so the next cut is guessed at a "}, {" after chunk_bytes and checked by parsing the
            # chunk's structure; only a failed check (or the array's end) scans exactly, from there.
            if not spec:  # entering: the window starts with the chunk's bytes scanned exactly so far
                win.append(pending)
                pending = bytearray()
            spec = True
            if buf is None:
                offset += got
            else:
                win.append(buf)
                offset += len(buf)
            wbuf, wn = win.buf, win.n
            ok = True
            start = 0  # the next chunk starts at wbuf[start] (one compaction per block, not per cut)
            while wn - start >= chunk_bytes:
                m = _CUT.search(wbuf, start + max(chunk_bytes - 1, 0), wn)
                if m is None:
                    break
                c = m.start()
                try:
                    records_start(wbuf, start, c + 1, cur["cut"], pending_off, path)
                except InputError:  # no comma after the boundary: the array ended there, scan exactly
                    ok = False
                    break
                check = verify or _ARRAY_END.search(wbuf, start, c + 1) is not None
                if direct and not check:
                    piece = Chunk(cur["key"], cur["cut"], pending_off, None, size=c + 1 - start)
                else:
                    text = array_text(wbuf, start, c + 1, cur["cut"], pending_off, path)
                    piece = Chunk(cur["key"], cur["cut"], pending_off, memoryview(text[0])[1:-1], text)
                    if check and not _verified(piece, path):
                        ok = False
                        break
                yield piece
                cur["cut"] = True
                pending_off += c + 1 - start
                start = c + 1
            win.drop(start)
            if ok and not eof and win.n <= chunk_bytes + 2 * block:
                continue
            # scan exactly from the last verified record boundary, EXACT_BLOCK at a time: once the
            # array has ended and the next one opened, speculation resumes (measured: the exact scan at
            # the images -> annotations boundary of the COCO-train-size file 0.26 -> 0.05 s)
            spec_failures += not ok
            spec = False
            hold = (cur["start"], pending_off + win.n) if not ok else hold
            rest = win.take() + carry[carry_pos:]
            buf, carry, carry_pos = rest[:EXACT_BLOCK], rest, min(EXACT_BLOCK, len(rest))
            offset = pending_off
            st.depth, st.in_str, st.trail_bs = 2, False, 0
            if not buf:
                break
        br, delta = _structure(buf, st)
        depth_after = st.depth + np.cumsum(delta)
        depth_before = depth_after - delta
        # events that matter: depth transitions 0<->1 (top-level object), 1<->2 (members),
        # and closes of records (2 after) in chunked arrays.
        top = (depth_before <= 1) | (depth_after <= 1)
        rc_all = br[(depth_after == 2) & (delta < 0)]  # closes of records at array depth
        pos = 0  # position in buf up to which bytes have been routed

        def cuts(lo, hi):
            """Chunk cuts among record closes in buf[lo:hi] of the current chunked member."""
            nonlocal pending, pending_off, pos
            rc = rc_all[(rc_all >= lo) & (rc_all < hi)]
            while len(rc):
                need = chunk_bytes - len(pending)  # bytes still wanted from buf[pos:]
                j = int(np.searchsorted(rc, pos + need - 1))
                if j >= len(rc):
                    break
                c = int(rc[j])
                pending += buf[pos:c + 1]
                yield Chunk(cur["key"], cur["cut"], pending_off, bytes(pending))
                cur["cut"] = True
                pending = bytearray()
                pending_off = offset + c + 1
                pos = c + 1
                rc = rc[j + 1:]

        for p, d_b, d_a in zip(br[top].tolist(), depth_before[top].tolist(), depth_after[top].tolist()):
            if cur is not None and cur["chunked"]:
                yield from cuts(pos, p)
            if d_b == 0 and d_a == 1:  # open of the top-level value
                if started:
                    raise InputError(f"malformed JSON: more than one top-level value (byte {offset + p})", path=path)
                started = True
                if buf[p] == 0x5B:  # '['
                    raise InputError(
                        "a JSON list is not an annotation file (a category-statistics list is read by "
                        "`imbalance margins` and `imbalance groups`)", path=path)
                skeleton += buf[pos:p + 1]
                pos = p + 1
            elif d_b == 1 and d_a == 2:  # a member container opens
                skeleton += buf[pos:p]
                pos = p
                k = len(res.members)
                m = _KEY.search(bytes(skeleton[-4096:]))
                key = _decode_key(m.group(1)) if m else None
                is_arr = buf[p] == 0x5B
                skeleton += (b"[%d]" % k) if is_arr else (b'{"#":%d}' % k)
                is_chunked = is_arr and key in chunked
                cur = {"key": key, "chunked": is_chunked, "start": offset + p, "k": k, "cut": False}
                res.members.append(key if is_chunked else None)
                pending = bytearray()
                pending_off = offset + p + 1
                pos = p + 1 if is_chunked else p
            elif d_b == 2 and d_a == 1:  # a member container closes
                if cur is not None and cur["chunked"]:
                    pending += buf[pos:p]
                    if bytes(pending).strip():
                        yield Chunk(cur["key"], cur["cut"], pending_off, bytes(pending))
                else:
                    pending += buf[pos:p + 1]
                    if cur is not None:
                        data = bytes(pending) if len(pending) <= MAX_MEMBER_BYTES else None
                        res.members[cur["k"]] = Member(cur["key"], cur["start"], data)
                pending = bytearray()
                pos = p + 1
                cur = None
            elif d_b == 1 and d_a == 0:  # the top-level value closes
                skeleton += buf[pos:p + 1]
                pos = p + 1
            if len(skeleton) > MAX_SKELETON_BYTES:
                raise InputError("the top-level object has more than 16 MiB outside its arrays and objects", path=path)
        # route the rest of the block
        if cur is not None and cur["chunked"]:
            yield from cuts(pos, len(buf))
        if cur is not None:
            pending += buf[pos:]
            if not cur["chunked"] and len(pending) > MAX_MEMBER_BYTES:
                del pending[MAX_MEMBER_BYTES + 1:]  # keep the bound; the member is not decoded
        else:
            skeleton += buf[pos:]
            if len(skeleton) > MAX_SKELETON_BYTES:
                raise InputError("the top-level object has more than 16 MiB outside its arrays and objects", path=path)
        st.depth += int(delta.sum())
        if st.depth < 0:
            raise InputError(f"malformed JSON: unbalanced closing bracket before byte {offset + len(buf)}", path=path)
        offset += len(buf)
    res.size = offset
    if st.depth != 0 or st.in_str:
        where = f" inside '{cur['key']}'" if cur is not None and cur.get("key") else ""
        raise InputError(f"truncated JSON: the file ends{where} at byte {offset} with unclosed brackets or strings",
                         path=path)
    res.skeleton = bytes(skeleton)
    yield res


def _decode_key(raw: bytes) -> str | None:
    import msgspec

    try:
        return msgspec.json.decode(b'"' + raw + b'"')
    except msgspec.DecodeError:
        return None
