"""``imbalance anchors``: fit a preset's anchors to a dataset, each candidate judged by the detector's own labelling.

Anchor fitting tools (Ultralytics AutoAnchor, MMYOLO ``optimize_anchors.py``, pyodi) score a candidate by a proxy: a
width/height ratio metric or the IoU of centred boxes. Here every candidate is labelled by the exact engine the
statistics use, on a seeded sample of images, and scored by what the detector will see.

* :mod:`~imbalance_cli.anchorfit.search`: :func:`~imbalance_cli.anchorfit.search.fit_anchors`, one search loop
  (starts, then a (1+1) evolution) over a preset's search space;
* :mod:`~imbalance_cli.anchorfit.grid`: the space of presets laying sizes x ratios (torchvision, mmdetection,
  detectron2);
* :mod:`~imbalance_cli.anchorfit.yolo`: the space of yolov5 presets (free ``(w, h)`` anchors per level);
* :mod:`~imbalance_cli.anchorfit.kmeans`: the k-means start of both spaces;
* :mod:`~imbalance_cli.anchorfit.scoring`: the metrics of a labelling pass and the objectives;
* :mod:`~imbalance_cli.anchorfit.outcome`: the verdict and the ``imbalance.anchors/1`` dict.

The fitted preset is written by :mod:`imbalance_cli.anchors.tomlwriter` (TOML) and
:mod:`imbalance_cli.anchors.snippets` (framework configuration); the command is :mod:`imbalance_cli.commands.anchors`,
its renderers :mod:`imbalance_cli.report.anchorfit`.
"""
