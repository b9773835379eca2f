"""Print the internal imports between imbalance_cli's packages and flag any that point back up the layers.

Layers (data moves one way): base (errors, fileio, progress, boxes) -> data -> analyses (stats, anchors, losses,
detector, check) -> report -> top (commands, cli, api, the package root). An import from a lower layer into a
higher one is printed as BACKWARD. Usage: ``python tools/imports.py [--all]`` (``--all`` lists every edge, not only
the package-level summary); exit code 1 when a backward import exists.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "imbalance_cli"
LAYERS = {"errors": 0, "fileio": 0, "progress": 0, "boxes": 0, "data": 1, "stats": 2, "anchors": 2, "losses": 2,
          "detector": 2, "check": 2, "report": 3, "commands": 4, "cli": 4, "api": 4, "__init__": 4, "__main__": 4}


def unit(module: str) -> str:
    """``imbalance_cli.stats.report`` -> ``stats``; the package root -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def edges():
    """Yield ``(source module, target module, line, at module level)`` for every internal import."""
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        src = ".".join(rel.parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "imbalance_cli" and node.level == 0:
                # "from imbalance_cli import api" names a module; "... import __version__, load" the package root
                targets = [f"imbalance_cli.{a.name}" if (PKG / a.name).is_dir() or (PKG / f"{a.name}.py").exists()
                           else "imbalance_cli" for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                if t == "imbalance_cli" or t.startswith("imbalance_cli."):
                    yield src, t, node.lineno, id(node) in top


def main(argv: list[str]) -> int:
    summary: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    backward = []
    for src, dst, line, module_level in edges():
        a, b = unit(src), unit(dst)
        if a == b or b == "__init__":
            continue
        summary[(a, b)][0 if module_level else 1] += 1
        if LAYERS.get(a, 9) < LAYERS.get(b, 9):
            backward.append(f"BACKWARD {src}:{line} imports {dst}")
        if "--all" in argv:
            print(f"{src}:{line} -> {dst}{'' if module_level else '  (inside a function)'}")
    print("imports between packages (module-level / inside functions):")
    for (a, b), (m, f) in sorted(summary.items(), key=lambda kv: (LAYERS.get(kv[0][0], 9), kv[0])):
        print(f"  {a:10s} -> {b:10s} {m:3d} / {f}")
    print("\n".join(backward) if backward else "no backward imports")
    return 1 if backward else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
