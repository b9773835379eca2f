"""Small helpers shared by the renderers (figures, anchor figures, tables)."""

from __future__ import annotations

import math
from typing import Any


def new_figure(width: float, height: float):
    """A matplotlib Figure on the Agg canvas (no pyplot state, safe without a display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def num(v: Any) -> float:
    """``float(v)``, with None, non-numbers and NaN read as 0.0 (report values may be null)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(f) else f
