"""imbalance_cli.detector — a compact one-stage detector for comparing imbalance losses.

* :mod:`~imbalance_cli.detector.synthetic` — ``synthetic-lt``, a seeded long-tailed shapes dataset;
* :mod:`~imbalance_cli.detector.model` — backbone + FPN + RetinaNet-style heads, NMS, post-processing;
* :mod:`~imbalance_cli.detector.objectives` — objectives built from the loss registry
  (:mod:`imbalance_cli.losses.registry`): heads, inputs, state, samplers;
* :mod:`~imbalance_cli.detector.train` — the training loop (checkpoints, resume, logs);
* :mod:`~imbalance_cli.detector.evaluate` — pycocotools / lvis evaluation, AP per BAGS bin.

Figures, the progress bar and the terminal summary of a run live in :mod:`imbalance_cli.report.train`.

Heavy modules (torch) are imported lazily: ``from imbalance_cli.detector import train`` etc.
"""

__all__ = ["TrainConfig", "train", "SyntheticConfig", "write_synthetic_lt", "evaluate"]


def __getattr__(name):
    if name in ("TrainConfig", "train"):
        from imbalance_cli.detector import train as _t

        return getattr(_t, name)
    if name in ("SyntheticConfig", "write_synthetic_lt"):
        from imbalance_cli.detector import synthetic as _s

        return getattr(_s, name)
    if name == "evaluate":
        from imbalance_cli.detector.evaluate import evaluate as _e

        return _e
    raise AttributeError(name)
