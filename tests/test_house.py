"""House rules on function length (issue 26): a function a reader can hold in mind.

No function anywhere (package, benchmarks, tools, tests) is over 100 lines; every function of the package over 60
lines says why it is one piece, in one comment line starting ``# long:`` directly above its ``def`` (or above its
first decorator). Lines are counted from the ``def`` line to the function's last line, its docstring included.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HARD_LIMIT = 100
STATED_LIMIT = 60
TAG = "# long:"


def long_functions(source: str, min_lines: int) -> list[tuple[str, int, int, bool]]:
    """``(name, def line, lines, stated)`` of every function (nested ones too) of at least ``min_lines`` lines;
    ``stated``: the line above it (above its first decorator when it has one) is ``# long: <reason>``."""
    lines = source.splitlines()
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        n = node.end_lineno - node.lineno + 1
        if n < min_lines:
            continue
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        above = lines[first - 2].strip() if first >= 2 else ""
        stated = above.startswith(TAG) and bool(above[len(TAG) :].strip())
        out.append((node.name, node.lineno, n, stated))
    return out


def _python_files(*folders: str):
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")


def test_no_function_is_over_100_lines():
    over = [
        f"{rel}:{line} {name} ({n} lines)"
        for rel, text in _python_files("imbalance_cli", "benchmarks", "tools", "tests")
        for name, line, n, _stated in long_functions(text, HARD_LIMIT + 1)
    ]
    assert not over, "split these functions (at most 100 lines each):\n" + "\n".join(over)


def test_every_package_function_over_60_lines_says_why_in_a_long_comment():
    unstated = [
        f"{rel}:{line} {name} ({n} lines)"
        for rel, text in _python_files("imbalance_cli")
        for name, line, n, stated in long_functions(text, STATED_LIMIT + 1)
        if not stated
    ]
    assert not unstated, (
        "split these functions into named steps, or state in one '# long: <reason>' line above the def why their "
        "length is one flat thing:\n" + "\n".join(unstated)
    )


def _function(name: str, body_lines: int, decorator: str = "") -> str:
    return decorator + f"def {name}():\n" + "".join(f"    x{i} = {i}\n" for i in range(body_lines))


def test_the_length_check_counts_from_the_def_and_reads_the_line_above():
    # 60 body lines + the def line = 61 lines: over the stated limit; 59 + 1 = 60: not.
    plain = _function("plain", 60)
    assert long_functions(plain, 61) == [("plain", 1, 61, False)]
    assert long_functions(_function("short", 59), 61) == []
    stated = "# long: one flat table\n" + _function("stated", 60)
    assert long_functions(stated, 61) == [("stated", 2, 61, True)]
    decorated = "# long: one flat table\n" + _function("decorated", 60, decorator="@staticmethod\n")
    assert long_functions(decorated, 61) == [("decorated", 3, 61, True)]
    # a tag without a reason, or a comment that is not the tag, states nothing
    assert long_functions("# long:\n" + plain, 61)[0][3] is False
    assert long_functions("# a long one\n" + plain, 61)[0][3] is False
    # a nested function is measured on its own (and counts inside its parent too)
    nested = "def outer():\n" + "".join("    " + line + "\n" for line in _function("inner", 60).splitlines())
    assert [(f[0], f[2]) for f in long_functions(nested, 61)] == [("outer", 62), ("inner", 61)]
