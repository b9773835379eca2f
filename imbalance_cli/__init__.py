"""imbalance: how imbalanced a detection dataset is as a detector sees it.

Public API (re-exports only)::

    import imbalance_cli as im
    ds = im.load("instances_val2017.json")      # columnar Dataset
    report = im.analyze(ds, anchors="retinanet")  # Report with .to_dict() and pandas tables
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load", "analyze", "Report", "Dataset", "InputError"]


def __getattr__(name):  # lazy re-exports keep `import imbalance_cli` light
    if name == "load":
        from imbalance_cli.data import load

        return load
    if name in ("analyze", "Report"):
        from imbalance_cli import api

        return getattr(api, name)
    if name == "Dataset":
        from imbalance_cli.data.dataset import Dataset

        return Dataset
    if name == "InputError":
        from imbalance_cli.errors import InputError

        return InputError
    raise AttributeError(name)
