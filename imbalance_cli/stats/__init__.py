"""Dataset statistics (Oksuz et al., Imbalance Problems in Object Detection, TPAMI 2021):
:func:`analyze` builds the :class:`Analysis`.

Submodules: ``classes`` (per-class counts, LVIS frequency, BAGS groups), ``geometry``
(objects/classes per image, scale, location), ``measures`` (§9.2 imbalance measures),
``analysis`` (``analyze`` and ``Analysis``), ``anchors`` (anchor statistics).
"""

from imbalance_cli.stats.analysis import Analysis, analyze

__all__ = ["analyze", "Analysis"]
