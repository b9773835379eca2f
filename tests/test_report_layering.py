"""One renderer layer: analyses never import renderers, matplotlib or rich; the CLI starts without heavy imports;
every renderer's figures use the one figure type (no pyplot state)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "imbalance_cli"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_analyses_never_import_renderers_or_terminal_libraries():
    files = sorted((PKG / "stats").glob("*.py")) + sorted((PKG / "anchorfit").glob("*.py"))
    files += [PKG / n for n in ("fileio.py", "progress.py", "errors.py")]
    for f in files:
        bad = {
            m
            for m in _imports(f)
            if m.split(".")[0] in ("matplotlib", "rich")
            or m.startswith(("imbalance_cli.report", "imbalance_cli.commands", "imbalance_cli.cli"))
        }
        assert not bad, f"{f.relative_to(PKG)} imports {sorted(bad)}"


def test_renderers_hold_no_analysis_imports_of_commands():
    for f in sorted((PKG / "report").glob("*.py")):
        bad = {m for m in _imports(f) if m.startswith(("imbalance_cli.commands", "imbalance_cli.cli"))}
        assert not bad, f"{f.relative_to(PKG)} imports {sorted(bad)}"


def test_cli_import_is_light():
    code = (
        "import sys; from imbalance_cli.cli import app; "
        "print(','.join(m for m in ('torch', 'matplotlib', 'pandas', 'rich') if m in sys.modules))"
    )
    env = dict(os.environ, PYTHONPATH=str(PKG.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.slow
def test_a_command_imports_only_its_own_module_and_help_lists_every_command():
    env = dict(os.environ, PYTHONPATH=str(PKG.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = (
        "import sys\nfrom imbalance_cli import cli\nsys.argv = ['imbalance'] + sys.argv[1:]\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "print('MODULES', ','.join(sorted(m for m in sys.modules if m.startswith('imbalance_cli.commands.'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "margins", "--help"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "Usage: imbalance margins" in out
    loaded = out.rsplit("MODULES ", 1)[1].split()[0].split(",")
    assert "imbalance_cli.commands.margins" in loaded
    assert not {
        "imbalance_cli.commands.train",
        "imbalance_cli.commands.stats",
        "imbalance_cli.commands.anchors",
        "imbalance_cli.commands.check",
        "imbalance_cli.commands.bench",
    } & set(loaded)
    out = subprocess.run(
        [sys.executable, "-m", "imbalance_cli", "--help"], env=env, capture_output=True, text=True, check=True
    ).stdout
    for command in ("stats", "anchors", "margins", "groups", "check", "compare", "batches", "train", "bench"):
        assert f"│ {command} " in out, command


@pytest.mark.slow
def test_renderer_figures_use_no_pyplot():
    code = """
import sys
import numpy as np
from imbalance_cli.report import batches, compare, margins
from imbalance_cli.report.figures import render_figure_list
e = np.linspace(0, 1, 4)
cmp = {"a": {"name": "A"}, "b": {"name": "B"},
       "classes": {"tv": 0.5, "per_class": [{"name": "x", "instances_a": 2, "share_a": 1.0, "share_b": 0.5},
                                             {"name": "y", "instances_a": 0, "share_a": 0.0, "share_b": 0.5}]},
       "scale": {k: {"edges": e, "counts_a": [1, 2, 3], "counts_b": [3, 2, 1], "wasserstein": 0.1}
                 for k in compare.SCALE_KEYS},
       "location": {"counts_a": [[1, 0], [0, 1]], "counts_b": [[0, 1], [1, 0]], "tv": 1.0}}
mar = {"classes": [{"n_pos": 5.0, "n_neg": 50.0, "gamma_pos": 0.6, "gamma_neg": 0.4, "w_pos": 1.7, "w_neg": 2.5}],
       "fg_bg_ratio": 3.0, "one_stage": False}
bat = {"per_batch": {"classes": [1, 2, 3], "tv": [0.1, 0.2, float("nan")], "foreground_share": None},
       "sampler": "uniform", "batch_size": 2, "epochs": 1}
pngs = {}
for mod, rep in ((compare, cmp), (margins, mar), (batches, bat)):
    pngs.update(render_figure_list(mod.figures(rep)))
assert all(v.startswith(b"\\x89PNG") for v in pngs.values()), pngs.keys()
print(sorted(pngs), "matplotlib.pyplot" in sys.modules)
"""
    env = dict(os.environ, PYTHONPATH=str(PKG.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        "['batches.png', 'compare_classes.png', 'compare_location.png', 'compare_scale.png', "
        "'margins_vs_ratio.png', 'weights_sorted.png'] False"
    )
