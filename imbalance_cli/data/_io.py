"""Reading annotation files safely: regular files only, stated size bounds, transparent ``.gz``, UTF-8 BOM.

Limits (also listed in the README's "Bad input" section):

* :data:`MAX_IMAGE_SIDE`: an image width or height above this many pixels is refused (every loader).
* :data:`MAX_IN_MEMORY_BYTES`: a file read whole into memory (VOC XML, side CSVs, category-statistics
  JSON, ``imbalance check``) may not exceed this many bytes, compressed or decompressed; the
  COCO / LVIS / Objects365 JSON and the Open Images box CSV are streamed and have no size bound.
* Only regular files (and, for VOC, directories) are read: ``/dev/zero``, FIFOs and sockets are refused.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import zlib
from pathlib import Path

from imbalance_cli.errors import InputError

#: Largest accepted image width or height, in pixels (larger values are refused, never cast).
MAX_IMAGE_SIDE = 1_000_000
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


def read_bytes(path: str | os.PathLike, limit: int = MAX_IN_MEMORY_BYTES) -> bytes:
    """Read a whole (regular) file, decompressing gzip, at most ``limit`` bytes; a leading UTF-8 BOM is dropped.

    Raises :class:`InputError` for a missing, unreadable, non-regular, empty, too large or truncated file.
    """
    p = Path(path)
    st = check_regular(p)
    if st.st_size > limit:
        raise InputError(f"file is larger than the {limit / 1024**3:g} GiB read into memory for this format", path=p)
    stream, raw = open_stream(p)
    try:
        data = stream.read(limit + 1)
    except (EOFError, OSError, zlib.error) as e:
        raise InputError(f"corrupt or truncated gzip data ({e})", path=p) from None
    finally:
        raw.close()
    if len(data) > limit:
        raise InputError(f"decompressed data exceed the {limit / 1024**3:g} GiB read into memory for this format", path=p)
    if data.startswith(BOM):
        data = data[len(BOM):]
    if not data.strip():
        raise InputError("file is empty", path=p)
    return data


def parse_json(data: bytes, path: str | os.PathLike):
    """Parse JSON bytes (whole documents: category statistics, ``imbalance check``), errors as :class:`InputError`.

    The annotation loaders do not use it: COCO-style files are streamed and segmentations never decoded.
    """
    if data.startswith(BOM):
        data = data[len(BOM):]
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
