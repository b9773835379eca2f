"""Reading annotation files safely: regular files only, stated size bounds, transparent ``.gz``, UTF-8 BOM.

Limits (also listed in the README's "Bad input" section):

* :data:`MAX_IMAGE_SIDE`: an image width or height above this many pixels is refused (every loader), and
  one below 1 pixel (:data:`SUBPIXEL_IMAGE`).
* :data:`MAX_IN_MEMORY_BYTES`: the default bound of :func:`read_bytes` (``imbalance check``'s record-by-record
  scan of a refused COCO-style file), compressed or decompressed; the COCO / LVIS / Objects365 JSON and the
  Open Images box and sizes CSVs are streamed and have no size bound.
* Only regular files (and, for VOC, directories) are read: ``/dev/zero``, FIFOs and sockets are refused.
* :data:`READ_LIMITS`: the bound of each kind of file read whole by :func:`read_file` (rules, baselines,
  cache metadata, class lists, category statistics, ...), and :data:`MAX_NESTING`, the deepest JSON or TOML
  nesting those readers accept, checked before the document is parsed (:func:`read_json`, :func:`read_toml`).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import stat
import zlib
from pathlib import Path

import numpy as np

from imbalance_cli.errors import InputError

#: Largest accepted image width or height, in pixels (larger values are refused, never cast).
MAX_IMAGE_SIDE = 1_000_000
#: The refusal of an image narrower or lower than one pixel (0.5 x 0.5 is no image a detector reads).
SUBPIXEL_IMAGE = "image width and height must be at least 1 pixel (a sub-pixel image)"
#: Largest file read whole into memory (the streaming JSON and CSV paths have no bound).
MAX_IN_MEMORY_BYTES = 2 * 1024**3
#: UTF-8 byte-order mark (Windows tools write it); skipped by every reader.
BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"


def check_regular(path: str | os.PathLike, allow_dir: bool = False) -> os.stat_result:
    """Stat ``path`` and refuse anything but a regular file (or a directory if ``allow_dir``).

    Raises :class:`InputError` for a missing path, a directory where a file is expected, and
    devices, FIFOs or sockets (``/dev/zero`` would otherwise be read without end).
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise InputError("no such file", path=p) from None
    except OSError as e:
        raise InputError(f"cannot read file: {e.strerror}", path=p) from None
    if stat.S_ISDIR(st.st_mode):
        if allow_dir:
            return st
        raise InputError("is a directory (a directory is read as Pascal VOC only: pass --format voc)", path=p)
    if not stat.S_ISREG(st.st_mode):
        raise InputError("not a regular file (devices, FIFOs and sockets are refused)", path=p)
    return st


def open_stream(path: str | os.PathLike):
    """Open a regular file for streaming reads, decompressing gzip (detected by magic bytes).

    Returns ``(stream, raw)``: ``stream`` yields the (decompressed) bytes, ``raw`` is the underlying
    file, whose ``tell()`` measures progress in bytes of the file on disk.
    """
    check_regular(path)
    try:
        raw = open(path, "rb")
    except OSError as e:
        raise InputError(f"cannot read file: {e.strerror}", path=path) from None
    head = raw.read(2)
    raw.seek(0)
    if head == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw
    return raw, raw


def read_bytes(path: str | os.PathLike, limit: int = MAX_IN_MEMORY_BYTES, what: str = "this format") -> bytes:
    """Read a whole (regular) file, decompressing gzip, at most ``limit`` bytes; a leading UTF-8 BOM is dropped.

    ``what`` names the kind of file in the size messages. Raises :class:`InputError` for a missing,
    unreadable, non-regular, empty, too large or truncated file.
    """
    p = Path(path)
    st = check_regular(p)
    if st.st_size > limit:
        raise InputError(f"file is larger than the {_size(limit)} read into memory for {what}", path=p)
    stream, raw = open_stream(p)
    try:
        data = stream.read(limit + 1)
    except (EOFError, OSError, zlib.error) as e:
        raise InputError(f"corrupt or truncated gzip data ({e})", path=p) from None
    finally:
        raw.close()
    if len(data) > limit:
        raise InputError(f"decompressed data exceed the {_size(limit)} read into memory for {what}", path=p)
    if data.startswith(BOM):
        data = data[len(BOM) :]
    if not data.strip():
        raise InputError("file is empty", path=p)
    return data


def parse_json(data: bytes, path: str | os.PathLike):
    """Parse JSON bytes (whole documents: category statistics, ``imbalance check``), errors as :class:`InputError`.

    The annotation loaders do not use it: COCO-style files are streamed and segmentations never decoded.
    """
    if data.startswith(BOM):
        data = data[len(BOM) :]
    import orjson

    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise InputError(f"malformed or truncated JSON: {_json_where(e, data)}", path=path) from None


def _json_where(err: ValueError, data: bytes) -> str:
    pos = getattr(err, "pos", None)
    msg = getattr(err, "msg", None) or str(err).split(":")[0]
    if pos is None:
        return str(err)
    line = data.count(b"\n", 0, pos) + 1
    col = pos - (data.rfind(b"\n", 0, pos) + 1) + 1
    return f"{msg} at line {line}, column {col} (byte {pos})"


def bytes_stream(data: bytes):
    """An in-memory stream in the shape :func:`open_stream` returns."""
    s = io.BytesIO(data)
    return s, s


def line_col(path: str | os.PathLike, offset: int) -> tuple[int, int] | None:
    """1-based line and column of byte ``offset`` of the (decompressed) file; None if unreadable."""
    try:
        stream, raw = open_stream(path)
    except InputError:
        return None
    line, last_nl, pos = 1, -1, 0
    try:
        while pos < offset:
            buf = stream.read(min(16 * 1024 * 1024, offset - pos))
            if not buf:
                break
            n = buf.count(b"\n")
            if n:
                line += n
                last_nl = pos + buf.rfind(b"\n")
            pos += len(buf)
    except (EOFError, OSError, zlib.error):
        return None
    finally:
        raw.close()
    return line, offset - last_nl


# ------------------------------------------------------------------------------------------------ bounded reader
# One reader for every small file the tool reads whole besides the annotations themselves: regular files only,
# a byte bound per kind (compressed and decompressed: a gzip bomb stops at the bound), UTF-8 errors with their
# byte offset, and the nesting depth of JSON and TOML checked before a parser (each recursing per level) runs.

#: Bound (bytes, compressed or decompressed) and name of each kind of file :func:`read_file` reads whole; the
#: README's limits table lists them. Kinds are added here, never bounded ad hoc at the caller.
READ_LIMITS: dict[str, tuple[int, str]] = {
    "rules": (1024**2, "a rules file"),  # a complete rules file is ~2 kB
    "baseline": (16 * 1024**2, "a baseline stats.json"),  # an LVIS v0.5 report (1,230 classes): 0.4 MB
    "cache-meta": (16 * 1024**2, "a cache entry's meta.json"),
    "category-statistics": (16 * 1024**2, "a category-statistics file"),  # LVIS v1 train: 0.2 MB
    "class-list": (64 * 1024**2, "a class list"),  # Open Images' 20k-class list: 0.6 MB
    "ecm-counts": (16 * 1024**2, "an ecm_counts.json"),
    "run-record": (64 * 1024**2, "a run's metrics.json or synthetic-lt config.json"),
}
#: Deepest nesting of a JSON or TOML document read whole (real rules, baselines and metadata nest at most 6
#: deep); deeper is refused before parsing, since every parser here recurses once per level.
MAX_NESTING = 64
#: How every refusal for nesting begins (``imbalance check`` re-raises it instead of walking the records).
NESTING_ERROR = "nested too deeply"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"


def read_file(path: str | os.PathLike, kind: str) -> bytes:
    """The bytes of a file of ``kind`` (a key of :data:`READ_LIMITS`), read whole within its bound.

    Regular files only (a FIFO, device or socket, or a link to one, is refused before it is opened), the
    size on disk and the decompressed size (gzip, detected by magic bytes) both within the bound, a
    leading UTF-8 BOM dropped; any failure is one :class:`InputError` naming the file.
    """
    limit, what = READ_LIMITS[kind]
    return read_bytes(path, limit=limit, what=what)


def decode_utf8(data: bytes, path: str | os.PathLike) -> str:
    """``data`` as text; invalid UTF-8 is an :class:`InputError` with its line and byte offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(f"invalid UTF-8 at line {line} (byte {e.start})", path=path) from None


def json_nesting(data: bytes, limit: int = MAX_NESTING) -> tuple[int, int | None]:
    """``(deepest nesting, byte offset of the first bracket opening a level deeper than limit or None)``.

    Brackets inside JSON strings do not count (the streaming scanner's string-aware bracket pass).
    """
    from imbalance_cli.data.jsonscan import _State, _structure

    pos, delta = _structure(bytes(data), _State())
    return _deepest(pos, delta, limit)


#: TOML strings and comments, whose brackets do not nest (multi-line forms first).
_TOML_INERT = re.compile(rb'"""(?:[^\\]|\\.)*?"""|\'\'\'.*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*', re.S)


#: Bytes a run of dotted keys is made of (bare-key characters, dots, blanks): strings are blanked before.
_TOML_KEY_RUN = np.zeros(256, dtype=bool)
for _c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-. \t":
    _TOML_KEY_RUN[_c] = True


def toml_nesting(data: bytes, limit: int = MAX_NESTING) -> tuple[int, int | None]:
    """As :func:`json_nesting` for TOML, whose tables nest two ways: arrays and inline tables (``[`` / ``{``
    outside strings and comments) and dotted keys (``a.b.c = 1`` or ``[a.b.c]``: the dots in one run of key
    characters; tomllib's time grows with the square of a key's depth). The deeper of the two is returned, and
    the first byte past ``limit`` of either."""
    blank = bytearray(data)
    for m in _TOML_INERT.finditer(data):
        blank[m.start() : m.end()] = b" " * (m.end() - m.start())
    a = np.frombuffer(bytes(blank), dtype=np.uint8)
    pos = np.flatnonzero((a == 0x5B) | (a == 0x5D) | (a == 0x7B) | (a == 0x7D))
    delta = np.where((a[pos] == 0x5B) | (a[pos] == 0x7B), 1, -1).astype(np.int64)
    deepest, at = _deepest(pos, delta, limit)
    dots = np.flatnonzero(a == 0x2E)
    if len(dots):
        run = np.cumsum(~_TOML_KEY_RUN[a])[dots]  # the run of key characters each dot lies in
        starts = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
        levels = np.arange(len(dots)) - np.repeat(starts, np.diff(np.r_[starts, len(dots)])) + 2  # a.b: 2 levels
        deepest = max(deepest, int(levels.max()))
        over = np.flatnonzero(levels > limit)
        if len(over) and (at is None or dots[over[0]] < at):
            at = int(dots[over[0]])
    return deepest, at


def _deepest(pos: np.ndarray, delta: np.ndarray, limit: int) -> tuple[int, int | None]:
    if not len(pos):
        return 0, None
    depth = np.cumsum(delta)
    over = np.flatnonzero(depth > limit)
    return int(depth.max()), (int(pos[over[0]]) if len(over) else None)


def check_nesting(data: bytes, path: str | os.PathLike, language: str = "json", limit: int = MAX_NESTING) -> None:
    """Refuse ``data`` nested deeper than ``limit`` levels (before any parser recurses into it)."""
    deepest, at = (json_nesting if language == "json" else toml_nesting)(data, limit)
    if at is not None:
        line = data.count(b"\n", 0, at) + 1
        what = "arrays or objects" if language == "json" else "arrays, tables or dotted keys"
        raise InputError(
            f"{NESTING_ERROR}: {deepest:,} levels of nested {what} where at most {limit} are read "
            f"(line {line}, byte {at})",
            path=path,
        )


def read_json(path: str | os.PathLike, kind: str, type=None):
    """A JSON file of ``kind`` (see :func:`read_file`), nesting checked before parsing.

    With ``type`` (a msgspec type: Structs, lists, ``Annotated`` bounds) the document is decoded into it
    and validated by it, and a value of the wrong type or range is an :class:`InputError` naming the
    field (``field 'classes[3].id': expected int, got float``); without, it is parsed to plain objects.
    """
    data = read_file(path, kind)
    check_nesting(data, path, "json")
    if type is None:
        return parse_json(data, path)
    return decode_typed(data, type, path)


_FIELD_AT = re.compile(r"^(.*?)(?: - at `\$(.*)`)?$", re.S)


def validation_message(err) -> str:
    """A msgspec ``ValidationError`` as ``field 'classes[3].id': expected int, got float``."""
    msg, where = _FIELD_AT.match(str(err)).groups()
    msg = msg.replace("`", "")
    msg = msg[:1].lower() + msg[1:]
    field = (where or "").lstrip(".")
    return f"field '{field}': {msg}" if field else msg


def decode_typed(data: bytes, type, path: str | os.PathLike):
    """Decode JSON ``data`` into the msgspec ``type``; wrong types and ranges name the field, malformed JSON its
    line and byte offset, invalid UTF-8 its byte offset."""
    import msgspec

    try:
        return msgspec.json.decode(data, type=type)
    except msgspec.ValidationError as e:
        raise InputError(validation_message(e), path=path) from None
    except msgspec.DecodeError as e:
        if "UTF-8" in str(e):
            decode_utf8(data, path)
        m = re.search(r"\(byte (\d+)\)", str(e))
        text = str(e).replace("JSON is malformed: ", "")
        if m:
            at = int(m.group(1))
            line = data.count(b"\n", 0, at) + 1
            text = text.replace(m.group(0), f"at line {line} (byte {at})")
        raise InputError(f"malformed JSON: {text}", path=path) from None
    except RecursionError:  # unreachable after check_nesting; kept so a parser's recursion never escapes
        raise InputError(f"{NESTING_ERROR} for the JSON parser", path=path) from None


def toml_parser():
    """The TOML parser module: :mod:`tomllib` (Python >= 3.11), else its backport ``tomli`` (a dependency on
    Python 3.10). Imported when a TOML file is read, so commands that read none do not pay for it."""
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib


def read_toml(path: str | os.PathLike, kind: str) -> dict:
    """A TOML file of ``kind`` (see :func:`read_file`): UTF-8 checked with its byte offset, nesting checked before
    parsing, syntax errors as one line with TOML's own line and column."""
    tomllib = toml_parser()
    data = read_file(path, kind)
    text = decode_utf8(data, path)
    check_nesting(data, path, "toml")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"malformed TOML: {e}", path=path) from None
    except RecursionError:  # unreachable after check_nesting (see decode_typed)
        raise InputError(f"{NESTING_ERROR} for the TOML parser", path=path) from None


def parser_nesting_error(text, base: int, path: str | os.PathLike, outer: int = 0) -> InputError:
    """The one-line error for a streamed JSON piece (``text`` at document offset ``base``, inside ``outer``
    levels) that the JSON parser refused for its nesting (msgspec recurses once per level, up to Python's
    recursion limit, 1,000 by default): how deep the piece nests and where it passes 900 levels."""
    import sys

    limit = sys.getrecursionlimit()
    mark = max(min(limit - 100, 900) - outer, 1)
    deepest, at = json_nesting(text, mark)
    where = f", passing {mark + outer} levels (byte {base + at})" if at is not None else ""
    return InputError(
        f"malformed JSON: {NESTING_ERROR}: {deepest + outer:,} levels of nested arrays or objects, "
        f"beyond the JSON parser's limit of about {limit:,}{where}",
        path=path,
    )


def confined_image_path(images_dir: Path, file_name: str, data_path, record: str) -> Path:
    """``images_dir / file_name``, refusing a name that leaves the folder.

    An absolute ``file_name``, or one whose ``..`` components (after resolving symbolic links)
    lead outside ``images_dir``, is an :class:`InputError` naming the annotation file and record.
    """
    name = str(file_name)
    if "\x00" in name:
        raise InputError(
            f"file_name {name!r} holds a NUL byte, which no path can", path=data_path, record=f"{record}: file_name"
        )
    root = images_dir.resolve()
    if Path(name).is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise InputError(
            f"file_name {name!r} is an absolute path; it must be relative to --images",
            path=data_path,
            record=f"{record}: file_name",
        )
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        raise InputError(
            f"file_name {name!r} points outside the --images folder", path=data_path, record=f"{record}: file_name"
        )
    return target
