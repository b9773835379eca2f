"""The baseline of ``imbalance check``'s drift rules: an ``imbalance stats --json`` report, read by schema.

A baseline is a user file like any other, so only what the drift rules use is read, each value checked
by type and range where it enters (:func:`load_baseline` for a file, :func:`check_baseline` for a report
given as a dict through the API), and every refusal is one :class:`~imbalance_cli.errors.InputError`
naming the file and the field (``field 'classes[3].instances': expected int >= 0, got -1000``):

* ``schema``: a string beginning ``imbalance.stats/``;
* ``classes``: at most :data:`MAX_BASELINE_CLASSES` objects, each with ``id`` (an integer within int64,
  unique), ``instances`` (an integer from 0 to 2^53: a string, boolean, float, null or NaN is refused)
  and optionally ``name`` (a string);
* ``scale.relative_width`` / ``relative_height`` / ``relative_area`` (each optional): ``edges``, 2 to
  :data:`MAX_BASELINE_BINS` + 1 finite numbers in strictly increasing order, and ``counts``, one integer
  from 0 to 2^53 per bin.

Every other key of the report is skipped by the decoder without being built. The file itself is read by
the bounded reader (:func:`imbalance_cli.data._io.read_file`, kind ``baseline``: a regular file of at
most 16 MiB, compressed or decompressed, nesting checked before parsing).
"""

from __future__ import annotations

import math
import os
from typing import Annotated, Optional

import msgspec
import msgspec.json

from imbalance_cli.data._io import check_nesting, decode_typed, read_file, validation_message
from imbalance_cli.errors import InputError
from imbalance_cli.stats.geometry import MAX_SCALE_BINS

#: Most classes a baseline may list (LVIS has 1,203, the Open Images class list 20k).
MAX_BASELINE_CLASSES = 100_000
#: Most bins of one baseline scale histogram: as many as `imbalance stats --hist-bins` writes (default 50).
MAX_BASELINE_BINS = MAX_SCALE_BINS
#: Largest count (exact in float64, and a sum of 100,000 of them stays finite).
MAX_COUNT = 2**53

_Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
_Id = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class BaselineClass(msgspec.Struct, gc=False):
    """One class of the baseline: its id, valid-box instances and name."""

    id: _Id
    instances: _Count
    name: Optional[str] = None


class BaselineHistogram(msgspec.Struct, gc=False):
    """A relative-size histogram of the baseline: bin edges and counts."""

    edges: Annotated[list[float], msgspec.Meta(min_length=2, max_length=MAX_BASELINE_BINS + 1)]
    counts: Annotated[list[_Count], msgspec.Meta(min_length=1, max_length=MAX_BASELINE_BINS)]


class BaselineScale(msgspec.Struct, gc=False):
    """The baseline's scale section (each histogram optional)."""

    relative_width: Optional[BaselineHistogram] = None
    relative_height: Optional[BaselineHistogram] = None
    relative_area: Optional[BaselineHistogram] = None


class Baseline(msgspec.Struct):
    """What the drift rules read from an ``imbalance.stats`` report (see module docstring)."""

    schema: str
    classes: Annotated[list[BaselineClass], msgspec.Meta(max_length=MAX_BASELINE_CLASSES)]
    scale: Optional[BaselineScale] = None


class _Head(msgspec.Struct):
    schema: str


_NOT_STATS = "not an imbalance.stats report (make one with `imbalance stats FILE --json > stats.json`)"


def load_baseline(path: str | os.PathLike) -> dict:
    """Read and validate a baseline ``stats.json`` (gzip accepted); the report's validated parts as a dict."""
    data = read_file(path, "baseline")
    check_nesting(data, path, "json")
    try:  # first: is this a stats report at all (a clearer message than a missing field)
        head = msgspec.json.decode(data, type=_Head)
    except (msgspec.ValidationError, msgspec.DecodeError):
        head = None
    if head is None or not head.schema.startswith("imbalance.stats/"):
        decode_typed(data, dict, path)  # malformed JSON: its own message with the byte
        raise InputError(_NOT_STATS, path=path)
    return msgspec.to_builtins(_cross_checked(decode_typed(data, Baseline, path), path))


def check_baseline(baseline, path: str | os.PathLike | None = None) -> Baseline:
    """A baseline given as a dict (the API) or :class:`Baseline`, checked like a file;
    :class:`InputError` if not one."""
    if isinstance(baseline, Baseline):
        return baseline
    if not isinstance(baseline, dict) or not str(baseline.get("schema", "")).startswith("imbalance.stats/"):
        raise InputError(_NOT_STATS, path=path)
    try:
        b = msgspec.convert(baseline, Baseline)
    except msgspec.ValidationError as e:
        raise InputError(validation_message(e), path=path) from None
    return _cross_checked(b, path)


def _cross_checked(b: Baseline, path) -> Baseline:
    """Rules across values: unique class ids; edges finite and strictly increasing, one count per bin."""
    seen = set()
    for i, c in enumerate(b.classes):
        if c.id in seen:
            raise InputError(f"field 'classes[{i}].id': duplicate class id {c.id}", path=path)
        seen.add(c.id)
    if b.scale is not None:
        for key in ("relative_width", "relative_height", "relative_area"):
            h = getattr(b.scale, key)
            if h is None:
                continue
            field = f"scale.{key}"
            for j, e in enumerate(h.edges):
                if not math.isfinite(e):
                    raise InputError(f"field '{field}.edges[{j}]': expected a finite number, got {e}", path=path)
                if j and e <= h.edges[j - 1]:
                    raise InputError(
                        f"field '{field}.edges[{j}]': edges must increase strictly, got {h.edges[j - 1]!r} then {e!r}",
                        path=path,
                    )
            if len(h.counts) != len(h.edges) - 1:
                raise InputError(
                    f"field '{field}.counts': {len(h.counts)} counts for {len(h.edges)} edges "
                    f"(one count per bin expected)",
                    path=path,
                )
    return b
