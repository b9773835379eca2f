"""Property tests (issues 24 and 28): mutated rules files and baselines hold the loaders' guarantees.

Mutations: values swapped for values of other types and out of range (strings, booleans, NaN, inf, huge and
negative numbers, arrays, tables), keys deleted and added, records duplicated and reversed, deep nesting, and
byte-level damage (truncation, stray brackets, dots, quotes and invalid UTF-8). Through ``imbalance check``, every
mutant exits 0 or 1 with sane numbers, or exits 2 with one line naming the file (and no traceback), and no read
allocates more than 256 MiB (tracemalloc). "Sane" is checked independently: the settings of an accepted rules
file lie in the ranges the README states, and an accepted baseline's class drift equals the total-variation
distance computed here from the two count vectors.
"""

import json
import math
import tracemalloc

import pytest
from conftest import COCO_VAL, ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from imbalance_cli.cli import app

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

runner = CliRunner()
_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
MEMORY_BOUND = 256 * 2**20
_RULES = tomllib.loads((ROOT / "examples" / "ci" / "rules.toml").read_text())
_WEIRD = [
    True,
    False,
    "5",
    "",
    "error",
    "off",
    0,
    -1,
    1,
    2,
    0.5,
    1.5,
    -0.0,
    1e308,
    -1e308,
    5e-324,
    2**63,
    -(2**63) - 1,
    float("nan"),
    float("inf"),
    float("-inf"),
    [],
    [1, 2],
    {},
    {"a": 1},
    '\u00e9[{"]}',
]
_BYTES = [b"[", b"]", b"{", b"}", b".", b'"', b"'", b"=", b"#", b"\n", b"\xff", b"\xc3", b"\\", b"[[", b"a.b.c"]


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


def _toml(d: dict) -> str:
    """A small TOML writer for the rules file's shape: top-level scalars, tables, and tables of tables."""
    lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for k, v in d.items():
        if not isinstance(v, dict):
            continue
        flat = {kk: vv for kk, vv in v.items() if not isinstance(vv, dict)}
        lines.append(f"[{json.dumps(k)}]")
        lines += [f"{json.dumps(kk)} = {_toml_value(vv)}" for kk, vv in flat.items()]
        for kk, vv in v.items():
            if isinstance(vv, dict):
                lines.append(f"[{json.dumps(k)}.{json.dumps(kk)}]")
                lines += [f"{json.dumps(a)} = {_toml_value(b)}" for a, b in vv.items()]
    return "\n".join(lines) + "\n"


def _mutate_tree(d, data):
    """One structural mutation of a JSON/TOML-like tree: swap a value, delete or add a key,
    duplicate or reverse a list."""
    node, path = d, []
    while True:  # walk down to a random container
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        if not children:
            break
        key, child = data.draw(st.sampled_from(children))
        if not isinstance(child, (dict, list)) or data.draw(st.integers(0, 3)) == 0:
            break
        node, path = child, path + [key]
    children = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
    op = data.draw(
        st.sampled_from(["swap", "swap", "same_type", "same_type", "delete", "add", "duplicate", "reverse", "nest"])
    )
    if not children:
        op = "add"
    key = data.draw(st.sampled_from(children)) if children else None
    if op == "swap":
        node[key] = data.draw(st.sampled_from(_WEIRD))
    elif op == "same_type":  # a plausible value of the same type: most such files are accepted
        v = node[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            node[key] = data.draw(st.sampled_from(_WEIRD))
        elif isinstance(v, int):
            node[key] = data.draw(st.integers(0, 10**6))
        else:
            node[key] = data.draw(st.floats(0, 1))
    elif op == "delete":
        del node[key]
    elif op == "add":
        if isinstance(node, dict):
            node[data.draw(st.sampled_from(["x", "threshold", "severity", "name", "id", "edges"]))] = data.draw(
                st.sampled_from(_WEIRD)
            )
        else:
            node.append(data.draw(st.sampled_from(_WEIRD)))
    elif op == "duplicate" and isinstance(node, list):
        node.insert(key, json.loads(json.dumps(node[key])))
    elif op == "reverse" and isinstance(node, list):
        node.reverse()
    elif op == "nest":
        node[key] = _Deep(data.draw(st.sampled_from([2, 70, 3000])), data.draw(st.sampled_from("[{")))
    return d


class _Deep:
    """A value nested ``depth`` arrays (``[``) or tables (``{``) deep, written without recursion by the writers."""

    def __init__(self, depth: int, kind: str):
        self.depth, self.kind = depth, kind

    def text(self, toml: bool) -> str:
        if self.kind == "[":
            return "[" * self.depth + "1" + "]" * self.depth
        opener = "{a = " if toml else '{"a": '
        return opener * self.depth + "1" + "}" * self.depth


def _dumps(d, toml: bool) -> str:
    """JSON (or the TOML writer's) text of ``d`` with every :class:`_Deep` value spelled out."""
    deep = {}

    def mark(v):
        if isinstance(v, _Deep):
            deep[f"@@deep{len(deep)}@@"] = v
            return list(deep)[-1]
        if isinstance(v, dict):
            return {k: mark(x) for k, x in v.items()}
        if isinstance(v, list):
            return [mark(x) for x in v]
        return v

    text = _toml(mark(d)) if toml else json.dumps(mark(d), allow_nan=True)
    for token, v in deep.items():
        text = text.replace(f'"{token}"', v.text(toml))
    return text


def _damage(raw: bytes, data) -> bytes:
    op = data.draw(st.sampled_from(["none", "none", "none", "none", "truncate", "insert"]))
    if op == "truncate":
        return raw[: data.draw(st.integers(0, len(raw)))]
    if op == "insert":
        at = data.draw(st.integers(0, len(raw)))
        return raw[:at] + data.draw(st.sampled_from(_BYTES)) * data.draw(st.sampled_from([1, 3, 100])) + raw[at:]
    return raw


def _run_check(args, path):
    """``imbalance check``: exit 0/1 with the JSON report, or exit 2 with one line naming
    ``path``; peak memory bound."""
    tracemalloc.start()
    try:
        r = runner.invoke(app, ["check", str(COCO_VAL), "--report-format", "json", *args])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"peak {peak / 2**20:.0f} MiB"
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code in (0, 1, 2), (r.exit_code, r.output)
    if r.exit_code == 2:
        err = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(err) == 1 and str(path) in err[0] and "Traceback" not in r.output, r.stderr
        return None
    return json.loads(r.stdout)


# ---- rules files -------------------------------------------------------------------------------------------------
#: The ranges the README states for each setting: (integer?, low, high).
_RANGES = {
    "max_share": (False, 0, 1),
    "dominance": (False, 0, 1),
    "top_bins": (False, 0, 1),
    "bins": (True, 1, 1000),
    "min_instances": (True, 0, 2**53),
    "sigma": (False, 0, math.inf),
}
_THRESHOLD = {"few_instances": (True, 0, 2**53), "anchor_no_positive": (False, 0, 1), "drift_class_tv": (False, 0, 1)}


@pytest.mark.slow
@_SETTINGS
@given(data=st.data())
def test_mutated_rules_files_are_sane_or_one_line(data, tmp_path):
    d = json.loads(json.dumps(_RULES))
    d["anchors"] = {}  # (no anchor pass: keeps each example fast; the anchors table is still mutated below)
    for _ in range(data.draw(st.integers(1, 2))):
        where = data.draw(st.sampled_from(["setting", "setting", "setting", "anywhere"]))
        if where == "setting" and isinstance(d.get("rules"), dict) and d["rules"]:  # (an earlier draw may swap it)
            # a rule's table (most mutations land where the thresholds are)
            rule = d["rules"][data.draw(st.sampled_from(sorted(d["rules"])))]
            if isinstance(rule, (dict, list)):
                _mutate_tree(rule, data)
                continue
        d = _mutate_tree(d, data)
    if isinstance(d.get("anchors"), dict):  # (a deleted or swapped table stays so)
        d["anchors"] = {k: v for k, v in d["anchors"].items() if k != "preset"}
    p = tmp_path / "rules.toml"
    p.write_bytes(_damage(_dumps(d, toml=True).encode(), data))
    report = _run_check(["--rules", str(p)], p)
    if report is None:
        return
    from imbalance_cli.check import load_rules

    r = load_rules(p)  # accepted: every setting within the stated range, of the stated type
    for rule, settings_ in r.rules.items():
        for key, value in settings_.items():
            if key == "severity":
                assert value in ("error", "warning", "info", "off")
                continue
            integer, low, high = _THRESHOLD.get(rule, (False, 0, math.inf)) if key == "threshold" else _RANGES[key]
            assert not isinstance(value, bool) and isinstance(value, int if integer else (int, float)), (
                rule,
                key,
                value,
            )
            assert math.isfinite(value) and low <= value <= high, (rule, key, value)
    assert r.fail_on in ("error", "warning") and report["fail_on"] == r.fail_on


# ---- baselines ---------------------------------------------------------------------------------------------------
_BASELINE = {}


def _real_baseline() -> dict:
    if not _BASELINE:
        r = runner.invoke(app, ["stats", str(COCO_VAL), "--anchors", "none", "--json"])
        _BASELINE.update(json.loads(r.stdout))
    return json.loads(json.dumps(_BASELINE))


def _tv(p: dict, q: dict) -> float | None:
    """Total-variation distance of two {class id: count} maps, computed here (1/2 sum |p/|p| - q/|q||)."""
    sp, sq = sum(p.values()), sum(q.values())
    if not sp or not sq:
        return None
    return 0.5 * sum(abs(p.get(k, 0) / sp - q.get(k, 0) / sq) for k in set(p) | set(q))


@pytest.mark.slow
@_SETTINGS
@given(data=st.data())
def test_mutated_baselines_are_sane_or_one_line(data, tmp_path):
    real = _real_baseline()
    d = real
    # mostly mutate what drift reads (classes, scale); sometimes anything
    for _ in range(data.draw(st.integers(1, 2))):
        target = data.draw(st.sampled_from(["classes", "scale", "any"]))
        if target == "any" or not isinstance(d.get(target), (dict, list)) or not d[target]:
            d = _mutate_tree(d, data)
        else:
            _mutate_tree(d[target], data)
    p = tmp_path / "stats.json"
    raw = _dumps(d, toml=False).encode()
    p.write_bytes(_damage(raw, data))
    report = _run_check(["--baseline", str(p)], p)
    if report is None:
        return
    accepted = json.loads(p.read_bytes())  # it parsed, so it is JSON; recompute the class drift from it
    current = {c["id"]: c["instances"] for c in real["classes"]}
    base = {c["id"]: c["instances"] for c in accepted["classes"]}
    assert all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 2**53 for v in base.values())
    tv = _tv(current, base)
    found = {f["rule"]: f for f in report["findings"]}
    if tv is not None and tv > 0.1:
        assert math.isclose(found["drift_class_tv"]["value"], tv, rel_tol=1e-9, abs_tol=1e-12), (tv, found)
    else:
        assert "drift_class_tv" not in found
    for f in report["findings"]:
        v = f.get("value")
        assert v is None or (isinstance(v, (int, float)) and math.isfinite(v)), f
