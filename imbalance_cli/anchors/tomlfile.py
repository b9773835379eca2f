"""Reading a preset TOML file with bounds: regular files only, a size limit, UTF-8, bounded nesting.

:func:`read_toml` is the one way a preset file (``--anchors my.toml``, ``--preset my.toml``, a yolov5
``fitted.toml``) is read. Before anything is parsed it refuses, with one line naming the file:

* anything but a regular file (a FIFO, ``/dev/zero``, a socket, a directory): a FIFO would block the
  reader forever and ``/dev/zero`` never ends (:func:`imbalance_cli.data._io.check_regular`);
* a file over :data:`MAX_PRESET_BYTES` (a preset is a few hundred bytes; the largest a preset can
  meaningfully be -- 16 levels of 1000 anchors -- is far below it);
* bytes that are not UTF-8 (TOML is UTF-8 by definition), with the byte offset of the first bad byte;
* values nested more than :data:`MAX_TOML_DEPTH` arrays or inline tables deep (the deepest a preset
  needs is 3, a yolov5 ``anchors`` array); :mod:`tomllib` parses nesting by recursion and would
  otherwise end in a ``RecursionError``.

A UTF-8 byte-order mark, which Windows editors write, is skipped.
"""

from __future__ import annotations

import os
import re

from imbalance_cli.data._io import BOM, check_regular, toml_parser
from imbalance_cli.errors import InputError

#: Largest preset TOML file read, in bytes.
MAX_PRESET_BYTES = 1024 * 1024
#: Deepest nesting of arrays and inline tables accepted in a preset TOML (a preset needs 3).
MAX_TOML_DEPTH = 32

# the characters that open or close strings, comments and nesting, scanned instead of every byte
_TOKENS = re.compile(r'"""|\'\'\'|"|\'|#|\[|\]|\{|\}')
_STRING_END = {
    '"""': re.compile(r'(?:[^"\\]|\\.|"(?!""))*"""', re.S),
    "'''": re.compile(r"(?:[^']|'(?!''))*'''", re.S),
    '"': re.compile(r'(?:[^"\\\n]|\\.)*"'),
    "'": re.compile(r"[^'\n]*'"),
}


def nesting_depth(text: str, limit: int = MAX_TOML_DEPTH) -> tuple[int, int]:
    """Deepest nesting of ``[`` / ``{`` in TOML ``text`` outside strings and comments, up to ``limit + 1``.

    Returns ``(depth, offset)``: the depth reached (the scan stops once it exceeds ``limit``) and the
    character offset where it was reached. Table headers (``[a]``, ``[[b]]``) count like arrays; they
    never nest beyond 2. An unterminated string ends the scan (the parser reports it).
    """
    depth = deepest = where = 0
    pos = 0
    while True:
        m = _TOKENS.search(text, pos)
        if m is None:
            return deepest, where
        tok = m.group()
        pos = m.end()
        if tok in _STRING_END:
            end = _STRING_END[tok].match(text, pos)
            if end is None:
                return deepest, where
            pos = end.end()
        elif tok == "#":
            nl = text.find("\n", pos)
            if nl < 0:
                return deepest, where
            pos = nl + 1
        elif tok in "[{":
            depth += 1
            if depth > deepest:
                deepest, where = depth, m.start()
                if deepest > limit:
                    return deepest, where
        else:
            depth = max(0, depth - 1)


def read_toml(path: str | os.PathLike, what: str = "anchor preset") -> dict:
    """Parse the TOML file ``path`` within the bounds above; :class:`InputError` naming the file otherwise."""
    tomllib = toml_parser()
    if os.path.isdir(path):
        raise InputError(f"is a directory, not a {what} file", path=path)
    st = check_regular(path)
    if st.st_size > MAX_PRESET_BYTES:
        raise InputError(
            f"{what} file is {st.st_size:,} bytes; at most {MAX_PRESET_BYTES:,} are read "
            "(a preset is a few hundred bytes)",
            path=path,
        )
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PRESET_BYTES + 1)
    except OSError as e:
        raise InputError(f"cannot read {what}: {e.strerror or e}", path=path) from None
    if len(data) > MAX_PRESET_BYTES:
        raise InputError(f"{what} file grew past {MAX_PRESET_BYTES:,} bytes while being read", path=path)
    if data.startswith(BOM):
        data = data[len(BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(
            f"{what} is not UTF-8 text: byte 0x{data[e.start]:02x} at byte offset {e.start} (TOML files are UTF-8)",
            path=path,
        ) from None
    depth, at = nesting_depth(text)
    if depth > MAX_TOML_DEPTH:
        line = text.count("\n", 0, at) + 1
        raise InputError(
            f"{what} nests arrays or inline tables more than {MAX_TOML_DEPTH} deep (line {line}); "
            "a preset needs at most 3",
            path=path,
        )
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"invalid TOML: {e}", path=path) from None
    except RecursionError:  # nesting the scan does not count (deeply dotted keys): refused all the same
        raise InputError(f"{what} is nested too deeply to parse", path=path) from None
