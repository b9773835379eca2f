#!/usr/bin/env python3
"""Print the internal import layering of ``imbalance_cli`` and flag what points the wrong way.

    python tools/imports.py            # edges between packages, backward edges, cycles, hidden imports
    python tools/imports.py --verbose  # also every backward import and every import inside a function
    python tools/imports.py --json     # the same as JSON
    python tools/imports.py --check    # exit 1 when an edge points backwards or packages form a cycle

Layers (an import may point down or sideways, never up)::

    0  errors, fileio, boxes, progress, dist,        top-level utility modules, usable by all
       memory, choices, vocabulary, values
    1  data                                           loaders -> columnar Dataset
    2  stats, anchors, losses, detector, check,       analyses (detector sits with losses, check with stats;
       specs, anchorfit                               specs resolves options into presets, beside anchors;
                                                      anchorfit is `imbalance anchors`' search)
    3  report                                         renderers: figures, tables, HTML, writers
    4  commands, cli, api, __main__, __init__         the CLI and the public API (re-exports, api.py)

A "package" is a subpackage of ``imbalance_cli`` (``imbalance_cli/stats/...`` -> ``stats``) or a top-level
module (``imbalance_cli/boxes.py`` -> ``boxes``). Besides backward edges, packages that import each other
(a cycle, even inside one layer, e.g. ``stats`` <-> ``losses``; found among the edges that are not already
backward) are flagged. Imports inside functions are
counted apart: the allowed lazy ones (torch, matplotlib, pandas, rich, so ``imbalance --help`` stays fast)
versus everything else (internal modules and other libraries), which should be at module level.
Only static ``import`` statements are seen (``importlib.import_module`` calls are not).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = "imbalance_cli"
LAYERS = {
    **dict.fromkeys(
        ("errors", "fileio", "boxes", "progress", "dist", "memory", "choices", "vocabulary", "values", "__version__"), 0
    ),
    "data": 1,
    **dict.fromkeys(("stats", "anchors", "anchorfit", "losses", "detector", "check", "specs"), 2),
    "report": 3,
    **dict.fromkeys(("commands", "cli", "api", "__main__", "__init__"), 4),
}
LAYER_NAMES = {0: "utilities", 1: "data", 2: "analyses", 3: "report", 4: "cli"}
ALLOWED_LAZY = ("torch", "matplotlib", "pandas", "rich")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
        return ".".join(parts) + ".__init__" if len(parts) == 1 else ".".join(parts)
    return ".".join(parts)


def package_of(module: str) -> str:
    """``imbalance_cli.stats.classes`` -> ``stats``; ``imbalance_cli.boxes`` -> ``boxes``; the root -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _resolve(node: ast.ImportFrom, module: str, is_pkg: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_pkg else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


class _Visitor(ast.NodeVisitor):
    def __init__(self):
        self.depth = 0
        self.found: list[tuple[str, int, bool, list[str]]] = []  # (target, line, in_function, names)

    def _func(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _func

    def visit_Import(self, node):
        for a in node.names:
            self.found.append((a.name, node.lineno, self.depth > 0, []))

    def visit_ImportFrom(self, node):
        self.found.append((node, node.lineno, self.depth > 0, [a.name for a in node.names]))


def scan(root: str | Path) -> list[dict]:
    """Every import statement under the package directory ``root``: source module, target, line, in_function."""
    root = Path(root).resolve()
    out = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        is_pkg = path.name == "__init__.py"
        mod_for_resolve = module[: -len(".__init__")] if module.endswith(".__init__") else module
        v = _Visitor()
        v.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        for target, line, in_func, names in v.found:
            if isinstance(target, ast.ImportFrom):
                base = _resolve(target, mod_for_resolve, is_pkg)
                targets = [base]
                if base == root.name:  # `from imbalance_cli import data` names a subpackage or module;
                    # `from imbalance_cli import load` a re-export of the root (the public API, top layer);
                    # `from imbalance_cli import __version__` package metadata (bottom layer)
                    targets = [
                        f"{base}.{n}"
                        if (root / n).is_dir() or (root / f"{n}.py").exists() or n.startswith("__")
                        else base
                        for n in names
                    ]
            else:
                targets = [target]
            for t in targets:
                out.append(
                    {
                        "source": module,
                        "file": str(path.relative_to(root.parent)),
                        "line": line,
                        "target": t,
                        "in_function": in_func,
                    }
                )
    return out


def analyze(root: str | Path) -> dict:
    """Package edges, backward edges, cycles and hidden-import counts for the package at ``root``."""
    root = Path(root).resolve()
    name = root.name
    imports = scan(root)
    edges: dict[tuple[str, str], dict] = defaultdict(lambda: {"module_level": 0, "in_function": 0, "where": []})
    hidden = {"internal": [], "allowed_lazy": [], "other": []}
    internal_total = 0
    for imp in imports:
        t = imp["target"]
        internal = t == name or t.startswith(name + ".")
        if imp["in_function"]:
            top = t.split(".")[0]
            kind = "internal" if internal else ("allowed_lazy" if top in ALLOWED_LAZY else "other")
            hidden[kind].append(imp)
        if not internal:
            continue
        internal_total += 1
        src, dst = package_of(imp["source"]), package_of(t) if t != name else "__init__"
        if src == dst:
            continue
        e = edges[(src, dst)]
        e["in_function" if imp["in_function"] else "module_level"] += 1
        e["where"].append(f"{imp['file']}:{imp['line']}" + (" (in function)" if imp["in_function"] else ""))

    def layer(p):
        return LAYERS[p]

    unknown = sorted({p for pair in edges for p in pair if p not in LAYERS})
    backward = [
        {
            "source": s,
            "target": d,
            "source_layer": LAYER_NAMES[layer(s)],
            "target_layer": LAYER_NAMES[layer(d)],
            "where": e["where"],
        }
        for (s, d), e in sorted(edges.items())
        if s in LAYERS and d in LAYERS and layer(d) > layer(s)
    ]
    back_pairs = {(b["source"], b["target"]) for b in backward}
    cycles = _cycles(sorted({p for pair in edges for p in pair}), [e for e in edges if e not in back_pairs])
    return {
        "edges": [{"source": s, "target": d, **{k: v for k, v in e.items()}} for (s, d), e in sorted(edges.items())],
        "backward": backward,
        "cycles": cycles,
        "unknown_packages": unknown,
        "internal_imports": internal_total,
        "hidden": {k: len(v) for k, v in hidden.items()},
        "hidden_list": {k: [f"{i['file']}:{i['line']} {i['target']}" for i in v] for k, v in hidden.items()},
    }


def _cycles(nodes: list[str], edges: list[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components with more than one package (Tarjan)."""
    graph = defaultdict(list)
    for s, d in edges:
        graph[s].append(d)
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for n in nodes:
        if n not in index:
            visit(n)
    return sorted(out)


def render(res: dict, verbose: bool = False) -> str:
    """The analysis as text."""
    lines = [
        "Layers: utilities (errors fileio boxes progress dist memory choices vocabulary) -> data -> analyses "
        "(stats anchors losses detector check specs) -> report -> cli (commands cli api __main__ __init__); "
        "imports may point down or sideways.",
        "",
        f"Internal imports between packages ({res['internal_imports']} internal import statements in all):",
        f"  {'from':10s} -> {'to':10s} {'module-level':>12s} {'in-function':>12s}",
    ]
    back = {(b["source"], b["target"]) for b in res["backward"]}
    cyc = {p for c in res["cycles"] for p in c}
    for e in res["edges"]:
        mark = "  BACKWARD" if (e["source"], e["target"]) in back else ""
        if (
            not mark
            and e["source"] in cyc
            and e["target"] in cyc
            and any(e["source"] in c and e["target"] in c for c in res["cycles"])
        ):
            mark = "  CYCLE"
        lines.append(f"  {e['source']:10s} -> {e['target']:10s} {e['module_level']:12d} {e['in_function']:12d}{mark}")
    lines += ["", f"Backward edges: {len(res['backward'])}"]
    for b in res["backward"]:
        lines.append(
            f"  {b['source']} ({b['source_layer']}) -> {b['target']} ({b['target_layer']}): "
            + ", ".join(b["where"][: None if verbose else 3])
            + ("" if verbose or len(b["where"]) <= 3 else f", ... ({len(b['where'])} imports)")
        )
    lines.append(f"Cycles between packages: {len(res['cycles'])}")
    for c in res["cycles"]:
        lines.append("  " + " <-> ".join(c))
    if res["unknown_packages"]:
        lines.append(f"Packages without a layer (add them to LAYERS): {', '.join(res['unknown_packages'])}")
    h = res["hidden"]
    lines += [
        "",
        f"Imports inside functions: {h['internal']} internal, {h['allowed_lazy']} allowed lazy "
        f"({', '.join(ALLOWED_LAZY)}), {h['other']} other libraries",
    ]
    if verbose:
        for k in ("internal", "other"):
            for item in res["hidden_list"][k]:
                lines.append(f"  [{k}] {item}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "root",
        nargs="?",
        default=str(Path(__file__).resolve().parent.parent / PACKAGE),
        help="package directory (default: imbalance_cli next to tools/)",
    )
    ap.add_argument("--json", action="store_true", help="print JSON")
    ap.add_argument("--verbose", "-v", action="store_true", help="list every backward and every hidden import")
    ap.add_argument("--check", action="store_true", help="exit 1 on a backward edge or a cycle")
    args = ap.parse_args(argv)
    res = analyze(args.root)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        sys.stdout.write(render(res, args.verbose))
    return 1 if args.check and (res["backward"] or res["cycles"]) else 0


if __name__ == "__main__":
    sys.exit(main())
