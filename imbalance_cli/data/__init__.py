"""Loaders: annotation files -> columnar :class:`~imbalance_cli.data.dataset.Dataset`."""

from imbalance_cli.data.dataset import Dataset, Ragged

__all__ = ["Dataset", "Ragged", "load", "FORMATS"]


def __getattr__(name):
    if name in ("load", "FORMATS"):
        from imbalance_cli.data import detect

        return getattr(detect, name)
    raise AttributeError(name)
