"""Small helpers shared by the renderers (figures, anchor figures, tables)."""

from __future__ import annotations

import math
from typing import Any


def new_figure(width: float, height: float, constrained: bool = True):
    """A matplotlib Figure on the Agg canvas (no pyplot state, safe without a display).

    ``constrained=False``: no layout engine; the caller places the axes with :func:`place` (the report's
    figures do: constrained layout measures every tick label twice more before the real draw, a third of
    their drawing time, measured on the bundled sample).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained" if constrained else None)
    FigureCanvasAgg(fig)
    return fig


def place(
    fig,
    *,
    rows: int = 1,
    cols: int = 1,
    left: float = 0.8,
    right: float = 0.2,
    top: float = 0.4,
    bottom: float = 0.6,
    wspace: float = 0.7,
    hspace: float = 0.7,
) -> None:
    """Fixed margins and gaps, in inches, for a figure's grid of ``rows`` x ``cols`` axes (one layout, no
    measuring pass): ``left`` holds the y tick labels and label, ``bottom`` the x tick labels and label, ``top``
    the title, ``wspace`` / ``hspace`` the room between axes for the same."""
    w, h = fig.get_size_inches()
    ax_w = max((w - left - right - (cols - 1) * wspace) / cols, 0.1)
    ax_h = max((h - top - bottom - (rows - 1) * hspace) / rows, 0.1)
    fig.subplots_adjust(
        left=left / w,
        right=1 - right / w,
        top=1 - top / h,
        bottom=bottom / h,
        wspace=wspace / ax_w,
        hspace=hspace / ax_h,
    )


def names_margin(names: list, fontsize: float) -> float:
    """Inches below an axis for its class names written at 90 degrees (the longest name) and an axis label."""
    longest = max((len(str(n)) for n in names), default=0)
    return 0.62 * fontsize * longest / 72.0 + 0.5


def names_fontsize(n: int) -> float:
    """The font size :func:`name_classes` writes ``n`` class names in."""
    return max(4.5, min(8.0, 560.0 / max(n, 1)))


def num(v: Any) -> float:
    """``float(v)``, with None, non-numbers and NaN read as 0.0 (report values may be null)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(f) else f


def plain(text: Any) -> str:
    """Text shown literally by matplotlib (a ``$`` would otherwise start mathtext)."""
    return str(text).replace("$", r"\$")


#: Up to this many classes a class axis names every class (Fig. 5a names all 80 COCO classes); above it the
#: classes are ranked and the :data:`EXTREME_CLASSES` first and last are named at their bars.
ALL_NAMES_MAX = 100
EXTREME_CLASSES = 5


def shown_names(names: list) -> list:
    """The class names a class axis writes under itself: all up to :data:`ALL_NAMES_MAX`, none beyond (the
    extremes are then listed inside the axes), for sizing the margin with :func:`names_margin`."""
    return list(names) if len(names) <= ALL_NAMES_MAX else []


def name_classes(ax, names: list, heights: list | None = None, x0: int = 0) -> None:
    """Label the categorical x axis of ``ax`` (bar or point ``i`` = class ``names[i]``) with class names.

    Every name, rotated, when there are at most :data:`ALL_NAMES_MAX`; otherwise the axis is a rank axis
    ("class rank, 1 = ...", set by the caller's label), the :data:`EXTREME_CLASSES` first and last classes get
    a tick and are named, in rank order, in two lines at the top of the axes (``heights`` is unused; kept for
    callers). Bar ``i`` sits at ``x0 + i``.
    """
    n = len(names)
    if n == 0:
        return
    if n <= ALL_NAMES_MAX:
        ax.set_xticks([x0 + i for i in range(n)], [plain(s) for s in names], rotation=90, fontsize=names_fontsize(n))
        ax.tick_params(axis="x", length=2, pad=1)
        return
    k = EXTREME_CLASSES
    ax.set_xticks([x0 + i for i in list(range(k)) + list(range(n - k, n))], minor=True)
    ax.tick_params(axis="x", which="minor", length=5, color="#d62728")
    first = ", ".join(plain(s) for s in names[:k])
    last = ", ".join(plain(s) for s in names[-k:])
    ax.text(
        0.5,
        0.97,
        f"{n:,} classes (red ticks): first {k}: {first}\nlast {k}: {last}",
        ha="center",
        va="top",
        transform=ax.transAxes,
        fontsize=7.5,
        color="0.25",
        linespacing=1.4,
        bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "0.8", "alpha": 0.9},
    )
