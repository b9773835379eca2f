"""What kind of value a setting or a file field holds, asked the same way everywhere.

JSON, TOML and YAML booleans arrive as Python ``bool``, a subclass of ``int``: a count, a seed or a size
written as ``true`` must be refused, not read as 1. So "an integer" here always means an integer that is
not a boolean, and "a number" an integer or a float that is not a boolean (Python or NumPy scalars alike).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def is_int(v: Any) -> bool:
    """An integer (Python or NumPy), never a boolean."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_number(v: Any) -> bool:
    """An integer or a float (Python or NumPy), never a boolean."""
    return is_int(v) or isinstance(v, (float, np.floating))
