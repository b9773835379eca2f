"""Import layering of imbalance_cli (tools/imports.py): data -> stats/anchors/losses/detector/check -> report ->
commands, utilities (errors, fileio, boxes, progress, specs) below all; nothing points back, no package cycles."""

import importlib.util
import subprocess
import sys

import pytest
from conftest import ROOT


def _tool():
    spec = importlib.util.spec_from_file_location("imports_tool", ROOT / "tools" / "imports.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_no_backward_edges_and_no_cycles_in_the_package():
    res = _tool().analyze(ROOT / "imbalance_cli")
    assert res["unknown_packages"] == [], "give every package a layer in tools/imports.py"
    assert [(b["source"], b["target"], b["where"]) for b in res["backward"]] == []
    assert res["cycles"] == []


def _write(root, rel, text):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def test_tool_finds_backward_edges_cycles_and_hidden_imports(tmp_path):
    pkg = tmp_path / "imbalance_cli"
    _write(pkg, "__init__.py", "__version__ = '1'\n")
    _write(pkg, "errors.py", "")
    _write(pkg, "data/__init__.py", "from imbalance_cli.errors import *\n")
    _write(pkg, "data/coco.py", "from ..report import figures\n")  # backward, relative import
    _write(pkg, "stats/__init__.py", "")
    _write(pkg, "stats/classes.py", "from imbalance_cli.losses import x\nfrom . import other\n")
    _write(pkg, "stats/other.py", "")
    _write(
        pkg,
        "losses/__init__.py",
        "def f():\n    import torch\n    import numpy\n    from imbalance_cli.stats import classes\n",
    )
    _write(pkg, "report/__init__.py", "from imbalance_cli import __version__\nfrom imbalance_cli import data\n")
    _write(pkg, "report/figures.py", "")
    _write(pkg, "commands/__init__.py", "from imbalance_cli import load\n")
    tool = _tool()
    res = tool.analyze(pkg)
    assert [(b["source"], b["target"]) for b in res["backward"]] == [("data", "report")]
    assert res["backward"][0]["where"] == ["imbalance_cli/data/coco.py:1"]
    assert res["cycles"] == [["losses", "stats"]]
    assert res["hidden"] == {"internal": 1, "allowed_lazy": 1, "other": 1}
    edges = {(e["source"], e["target"]): (e["module_level"], e["in_function"]) for e in res["edges"]}
    assert edges[("report", "data")] == (1, 0) and edges[("commands", "__init__")] == (1, 0)
    assert ("report", "__version__") in edges and ("stats", "stats") not in edges
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "imports.py"), str(pkg), "--check"], capture_output=True, text=True
    )
    assert out.returncode == 1 and "BACKWARD" in out.stdout and "losses <-> stats" in out.stdout
