"""Preset kinds with their own geometry and assignment: which kind an ``--anchors`` / ``--preset`` value names.

The IoU-matched presets (kinds ``grid``, ``ssd``, ``point``: :mod:`imbalance_cli.anchors.presets`) are laid and
matched by the anchor engine, with the assigner their ``assigner`` field names
(:data:`imbalance_cli.anchors.rules.ASSIGNERS`). A kind that lays and assigns its anchors its own way registers
here, in :data:`KINDS`: its built-in presets by name, how its TOML is read and checked, and its assigner. A caller
asks :func:`kind_of` / :func:`resolve` instead of comparing a value to a preset name. YOLOv5
(:mod:`imbalance_cli.anchors.yolov5`: free ``(w, h)`` anchors, the width/height ratio test of ``build_targets``)
is the one such kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from imbalance_cli.anchors import yolov5


@dataclass(frozen=True)
class PresetKind:
    """A preset kind outside the IoU engine: its name (a TOML's ``kind``), preset class, built-in presets by name,
    TOML reader, checker and assigner."""

    name: str
    preset_type: type
    presets: Mapping[str, Any]
    from_toml: Callable[[str], Any]
    validate: Callable[..., Any]
    assigner: Callable[..., Any]


#: The registered kinds by name.
KINDS: dict[str, PresetKind] = {}


def register_kind(kind: PresetKind) -> PresetKind:
    """Add ``kind`` to :data:`KINDS` (returns it)."""
    KINDS[kind.name] = kind
    return kind


register_kind(
    PresetKind(
        "yolov5",
        yolov5.YoloV5Preset,
        {"yolov5": yolov5.YOLOV5},
        yolov5.preset_from_toml,
        yolov5.validate,
        yolov5.assign_yolov5,
    )
)


def preset_names() -> tuple[str, ...]:
    """The built-in presets of the registered kinds (offered by the same options as the grid presets)."""
    return tuple(name for kind in KINDS.values() for name in kind.presets)


def toml_kind(path: Any) -> PresetKind | None:
    """The registered kind a ``.toml`` file declares (``kind = ...``), None for other files or kinds. The file is
    read within the preset reader's bounds: a FIFO, a device or an oversized file is refused with one line."""
    p = Path(str(path))
    if p.suffix.lower() != ".toml" or not p.exists():
        return None
    from imbalance_cli.anchors.tomlfile import read_toml

    declared = read_toml(p).get("kind")
    return KINDS.get(declared) if isinstance(declared, str) else None


def kind_of(value: Any) -> PresetKind | None:
    """The registered kind ``value`` names -- a preset object of the kind, a built-in name (any case) or a TOML
    declaring the kind -- or None (an IoU-matched preset, ``none``, ...). A TOML is only read for its ``kind``."""
    for kind in KINDS.values():
        if isinstance(value, kind.preset_type):
            return kind
    if not isinstance(value, str):
        return None
    name = value.strip().lower()
    for kind in KINDS.values():
        if name in kind.presets:
            return kind
    return toml_kind(value)


def resolve(value: Any) -> Any | None:
    """The preset of a registered kind that ``value`` names (a preset object as given, a built-in one by name, a
    TOML read and checked), or None for anything else (an IoU-matched preset, handled by the anchor engine)."""
    kind = kind_of(value)
    if kind is None or isinstance(value, kind.preset_type):
        return value if kind is not None else None
    name = value.strip().lower()
    return kind.presets[name] if name in kind.presets else kind.from_toml(value)


def any_preset(value: Any) -> Any:
    """The preset object of any ``--anchors`` / ``--preset`` value: a registered kind's (an object checked, a name
    or a TOML read) or an IoU-matched one (:func:`imbalance_cli.anchors.presets.get_preset`)."""
    kind = kind_of(value)
    if kind is None:
        from imbalance_cli.anchors.presets import get_preset

        return get_preset(value)
    return kind.validate(value) if isinstance(value, kind.preset_type) else resolve(value)
