"""Typed field checks for preset files: exact types, finite ranges, one error naming the field.

A value read from a TOML (or JSON-like) file is checked against what its field means before it is
used: an integer field takes an integer (``8``, not ``8.0``, ``8.7``, ``"8"`` or ``true``), a number
field an integer or a float (never a string or a boolean), a boolean field ``true`` or ``false``
(never ``"false"``, ``0`` or ``"no"``), a choice one of its names; numbers must be finite and in the
field's stated range. Every check raises :class:`FieldError` carrying the field's name
(``resize.min_size``, ``anchors[2][0]``) and a message saying what the field takes and what it got;
:func:`as_input_error` turns it into the project's one-line :class:`~imbalance_cli.errors.InputError`
(``my.toml: field 'pos_iou': must be a number in (0, 1], got the string '0.5'``).

The presets modules declare their fields in tables of these checkers
(:data:`imbalance_cli.anchors.presets.FIELDS`, :data:`imbalance_cli.anchors.yolov5.TOML_FIELDS`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from imbalance_cli.errors import InputError
from imbalance_cli.values import is_int, is_number


class FieldError(ValueError):
    """A field of a preset has the wrong type or an out-of-range value."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"field {field!r}: {message}")


def as_input_error(e: FieldError, where: str | None) -> InputError:
    """The one-line :class:`InputError` of a :class:`FieldError` (file, field, message)."""
    return InputError(e.message, path=where, record=f"field {e.field!r}")


def describe(v: Any) -> str:
    """A value as an error message shows it: its TOML type and (short) text."""
    if isinstance(v, (bool, np.bool_)):
        return f"the boolean {str(bool(v)).lower()}"
    if isinstance(v, str):
        s = v if len(v) <= 40 else v[:37] + "..."
        return f"the string {s!r}"
    if isinstance(v, (int, np.integer)):
        return f"{int(v)}" if abs(int(v)) < 10**15 else f"{float(v):g}"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    if isinstance(v, (list, tuple)):
        return f"an array of {len(v)}"
    if isinstance(v, dict):
        return "a table"
    if v is None:
        return "nothing (null)"
    return f"a {type(v).__name__}"


def _interval(lo: float, hi: float, lo_open: bool, hi_open: bool) -> str:
    return f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def integer(field: str, v: Any, lo: int, hi: int) -> int:
    """An integer in ``[lo, hi]``."""
    if not is_int(v) or not lo <= int(v) <= hi:
        raise FieldError(field, f"must be an integer in [{lo}, {hi}], got {describe(v)}")
    return int(v)


def number(field: str, v: Any, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> float:
    """A finite number in the interval ``lo .. hi`` (open ends as flagged)."""
    ok = is_number(v) and math.isfinite(float(v))
    if ok:
        x = float(v)
        ok = (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)
    if not ok:
        raise FieldError(field, f"must be a finite number in {_interval(lo, hi, lo_open, hi_open)}, got {describe(v)}")
    return float(v)


def boolean(field: str, v: Any) -> bool:
    """``true`` or ``false`` (a string, a number or anything else is refused)."""
    if not isinstance(v, (bool, np.bool_)):
        raise FieldError(field, f"must be true or false, got {describe(v)}")
    return bool(v)


def string(field: str, v: Any, max_len: int = 200) -> str:
    """A non-empty string of at most ``max_len`` characters, without control characters."""
    if not isinstance(v, str) or not 0 < len(v) <= max_len or any(ord(c) < 32 for c in v):
        raise FieldError(field, f"must be a name of 1 to {max_len} printable characters, got {describe(v)}")
    return v


def choice(field: str, v: Any, names: Sequence[str]) -> str:
    """One of ``names`` (exactly, as a string)."""
    if not isinstance(v, str) or v not in names:
        raise FieldError(field, f"must be one of {', '.join(names)}, got {describe(v)}")
    return v


def array(field: str, v: Any, lo: int, hi: int) -> list:
    """An array (list or tuple) of ``lo`` to ``hi`` items."""
    count = f"{lo}" if lo == hi else f"{lo} to {hi}"
    if not isinstance(v, (list, tuple)):
        raise FieldError(field, f"must be an array of {count} items, got {describe(v)}")
    if not lo <= len(v) <= hi:
        raise FieldError(field, f"must have {count} items, got {len(v)}")
    return list(v)


def each(field: str, items: Sequence, check: Callable[[str, Any], Any]) -> tuple:
    """``check`` applied to every item, the item's index in the field name (``sizes[1][0]``)."""
    return tuple(check(f"{field}[{i}]", x) for i, x in enumerate(items))
