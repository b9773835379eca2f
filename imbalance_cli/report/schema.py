"""The ``imbalance.stats/1`` schema as the renderers see it.

The schema belongs to the analysis that produces the report (:mod:`imbalance_cli.stats.schema`,
where it is documented and validated); it is re-exported here for readers of a ``stats.json``.
"""

from __future__ import annotations

from imbalance_cli.stats.schema import (
    CLASS_KEYS,
    REQUIRED,
    SCHEMA,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    problems,
    validate,
)

__all__ = ["CLASS_KEYS", "REQUIRED", "SCHEMA", "SCHEMA_NAME", "SCHEMA_VERSION", "problems", "validate"]
