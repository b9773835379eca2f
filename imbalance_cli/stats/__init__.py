"""Dataset statistics (Oksuz et al., Imbalance Problems in Object Detection, TPAMI 2021):
:func:`analyze` builds the :class:`Report`.

Submodules: ``classes`` (per-class counts, LVIS frequency, BAGS groups), ``geometry``
(objects/classes per image, scale, location), ``measures`` (§9.2 imbalance measures),
``report`` (``analyze`` and ``Report``), ``anchors`` (anchor statistics).
"""

from imbalance_cli.stats.report import Report, analyze

__all__ = ["analyze", "Report"]
