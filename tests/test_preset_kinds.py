"""Preset kinds come from the one registry: no caller compares a value to a preset name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from imbalance_cli.anchors.kinds import KINDS, kind_of, preset_names, resolve
from imbalance_cli.anchors.presets import PRESETS, get_preset
from imbalance_cli.anchors.yolov5 import YOLOV5
from imbalance_cli.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "imbalance_cli"
#: The registries themselves and the YOLOv5 kind's own modules may name their presets.
OWNERS = {"anchors/presets.py", "anchors/kinds.py", "anchors/yolov5.py", "anchors/yolov5_schema.py"}


def _name_comparisons(path: Path) -> list[str]:
    """Comparisons of a value with a built-in preset name (``x == "yolov5"``, ``x in ("retinanet", ...)``). Matcher
    and semantics names spelled like a preset (``yolov5``, ``atss``) are another vocabulary and are skipped."""
    names = set(PRESETS) | set(preset_names())
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        text = ast.unparse(node)
        consts = {c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
        if consts & names and "matcher" not in text and "semantics" not in text:
            found.append(f"{path}:{node.lineno}: {text}")
    return found


@pytest.mark.slow
def test_no_caller_branches_on_a_preset_name():
    found = [
        hit
        for p in sorted(PACKAGE.rglob("*.py"))
        if str(p.relative_to(PACKAGE)) not in OWNERS
        for hit in _name_comparisons(p)
    ]
    assert not found, "\n".join(found)


def test_the_grep_sees_a_branch_on_a_name(tmp_path):
    bad = tmp_path / "caller.py"
    bad.write_text(
        'def f(anchors, matcher):\n    if matcher == "yolov5":\n        return 0\n'
        '    return anchors.strip().lower() in ("retinanet", "yolov5")\n'
    )
    assert len(_name_comparisons(bad)) == 1


def test_kind_of_a_toml_reads_its_declared_kind(tmp_path):
    toml = tmp_path / "fitted.toml"
    toml.write_text(
        'kind = "yolov5"\nname = "fitted"\nanchors = [[[10, 13], [16, 30], [33, 23]], '
        "[[30, 61], [62, 45], [59, 119]], [[116, 90], [156, 198], [373, 326]]]\n"
    )
    assert kind_of(str(toml)) is KINDS["yolov5"]
    p = resolve(str(toml))
    assert p.name == "fitted" and p.anchors == YOLOV5.anchors
    grid = tmp_path / "grid.toml"
    grid.write_text('kind = "grid"\n')
    assert kind_of(str(grid)) is None and kind_of(str(tmp_path / "missing.toml")) is None


def test_grid_registry_refuses_a_kind_of_its_own():
    with pytest.raises(InputError, match="is a yolov5 preset"):
        get_preset("YOLOv5")
    with pytest.raises(InputError, match="retinanet.*yolov5 or a path"):
        get_preset("no-such-preset")
