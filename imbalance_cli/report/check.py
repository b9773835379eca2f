"""Renderers of ``imbalance check`` results: text, JSON, JUnit XML, GitHub annotations, Markdown.

Each renderer takes :class:`~imbalance_cli.check.findings.CheckResult` objects and returns a string;
they know nothing about how the findings were computed. Every finding shows the boxes and images it
involves: all of them in JSON, the first :data:`SHOW` with the count in the other formats.

* ``text``: one line per finding (plus indented ``records``/``boxes``/``images`` lines), then the verdict;
* ``json``: the ``imbalance.check/1`` report (one file) or ``{"schema", "passed", "fail_on", "files"}``;
* ``junit``: one test suite per file, one test case per rule run; findings at or above the fail level
  are failures, the others go to the case's system-out;
* ``github``: GitHub Actions workflow commands (``::error``/``::warning``/``::notice``), one per finding;
* ``markdown``: a summary table for ``$GITHUB_STEP_SUMMARY`` (or any Markdown viewer).

No matplotlib or rich here: the check report is plain text.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from imbalance_cli.check.findings import LEVEL, CheckResult, Finding, many_to_dict
from imbalance_cli.check.rules import GROUP_OF
from imbalance_cli.fileio import append_text, dumps_json
from imbalance_cli.report.writer import check_out_dir, write_report

SHOW = 5  # ids / records shown per finding outside JSON
GITHUB_LOCATIONS = 50  # file/line annotations per finding in the github format (all are in JSON)
JUNIT_SHOW = 50
REPORT_FORMATS = ("text", "json", "junit", "github", "markdown")
FILE_NAMES = {
    "text": "check.txt",
    "json": "check.json",
    "junit": "check.xml",
    "github": "check.github.txt",
    "markdown": "check.md",
}


def _first(items: list, n: int) -> str:
    shown = ", ".join(str(x) for x in items[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


def detail_lines(f: Finding, n: int = SHOW) -> list[str]:
    """The records, boxes and images of ``f`` as short lines (first ``n`` of each, with the count)."""
    lines = []
    if f.records:
        lines += [f"record {r}" for r in f.records[:n]]
        if len(f.records) > n:
            lines.append(f"... {len(f.records) - n} more record(s) ({len(f.records)} in all)")
    if f.annotation_ids:
        lines.append(f"boxes (annotation ids): {_first(f.annotation_ids, n)}")
    if f.image_ids:
        lines.append(f"images: {_first(f.images(), n)}")
    return lines


def verdict_line(result: CheckResult) -> str:
    """``PASSED|FAILED: e error(s), w warning(s), i info (fail on X) - path``."""
    c = result.counts()
    return (
        f"{'PASSED' if result.passed else 'FAILED'}: {c['error']} error(s), {c['warning']} warning(s), "
        f"{c['info']} info (fail on {result.fail_on}) - {result.path}"
    )


def render_text(result: CheckResult) -> str:
    """Human-readable report: one line per finding with its first boxes and images, then the verdict."""
    lines = []
    for f in result.findings:
        lines.append(f"{f.severity.upper():7s} {f.rule}: {f.message}")
        lines += [f"        {d}" for d in detail_lines(f)]
    lines.append(verdict_line(result))
    return "\n".join(lines) + "\n"


def render_json(result: CheckResult) -> str:
    """The ``imbalance.check/1`` JSON (every id)."""
    return dumps_json(result.to_dict())


def render_junit(result: "CheckResult | list[CheckResult]") -> str:
    """JUnit XML: one test suite per file and one test case per rule run."""
    results = result if isinstance(result, list) else [result]
    suites = ET.Element("testsuites", name="imbalance check")
    tests = failures = 0
    for res in results:
        n, f = _junit_suite(suites, res)
        tests, failures = tests + n, failures + f
    suites.set("tests", str(tests))
    suites.set("failures", str(failures))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _junit_text(fs: list[Finding]) -> str:
    out = []
    for f in fs:
        out.append(f"[{f.severity}] {f.message}")
        out += [f"    {d}" for d in detail_lines(f, JUNIT_SHOW)]
    return "\n".join(out)


def _junit_suite(suites, result: CheckResult) -> tuple[int, int]:
    by_rule: dict[str, list[Finding]] = {}
    for f in result.findings:
        by_rule.setdefault(f.rule, []).append(f)
    failing = [
        r for r in result.rules_run if any(LEVEL[f.severity] >= LEVEL[result.fail_on] for f in by_rule.get(r, []))
    ]
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"imbalance check {result.path}",
        tests=str(len(result.rules_run)),
        failures=str(len(failing)),
        errors="0",
        skipped="0",
    )
    for rule in result.rules_run:
        case = ET.SubElement(suite, "testcase", classname=f"imbalance.check.{GROUP_OF[rule]}", name=rule)
        fs = by_rule.get(rule, [])
        bad = [f for f in fs if LEVEL[f.severity] >= LEVEL[result.fail_on]]
        if bad:
            fail = ET.SubElement(
                case,
                "failure",
                message=f"{len(bad)} {bad[0].severity} finding(s): {bad[0].message}"[:500],
                type=bad[0].severity,
            )
            fail.text = _junit_text(bad)
        rest = [f for f in fs if f not in bad]
        if rest:
            ET.SubElement(case, "system-out").text = _junit_text(rest)
    return len(result.rules_run), len(failing)


def _gh_escape(s: str, prop: bool = False) -> str:
    s = s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        s = s.replace(":", "%3A").replace(",", "%2C")
    return s


def render_github(result: CheckResult) -> str:
    """GitHub Actions workflow commands, one per finding (message, then its boxes and images), then the verdict."""
    cmd = {"error": "error", "warning": "warning", "info": "notice"}
    lines = []
    for f in result.findings:
        text = "\n".join([f.message, *detail_lines(f)])
        lines.append(
            f"::{cmd[f.severity]} file={_gh_escape(result.path, True)},"
            f"title={_gh_escape('imbalance ' + f.rule, True)}::{_gh_escape(text)}"
        )
        for loc, rec in zip(f.locations[:GITHUB_LOCATIONS], f.records):  # YOLO: an annotation on each file and line
            at = f",line={int(loc['line'])}" if loc.get("line") else ""
            lines.append(
                f"::{cmd[f.severity]} file={_gh_escape(str(loc['file']), True)}{at},"
                f"title={_gh_escape('imbalance ' + f.rule, True)}::{_gh_escape(rec)}"
            )
    lines.append(verdict_line(result))
    return "\n".join(lines) + "\n"


def _md(s) -> str:
    return str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def render_markdown(result: "CheckResult | list[CheckResult]") -> str:
    """A Markdown summary (for ``$GITHUB_STEP_SUMMARY``): verdict, counts and one table row per finding."""
    results = result if isinstance(result, list) else [result]
    out = []
    for res in results:
        c = res.counts()
        s = res.summary
        out.append(f"### imbalance check: {'PASSED' if res.passed else 'FAILED'} - `{_md(res.path)}`\n")
        out.append(
            f"{c['error']} error(s), {c['warning']} warning(s), {c['info']} info (fail on {res.fail_on}); "
            f"{s.get('images', '?')} images, {s.get('annotations', '?')} annotations, "
            f"{s.get('categories', '?')} classes ({s.get('format', '?')}).\n"
        )
        if not res.findings:
            out.append("No findings.\n")
            continue
        out.append("| severity | rule | class | finding | boxes (annotation ids) | images |")
        out.append("|---|---|---|---|---|---|")
        for f in res.findings:
            msg = _md(f.message)
            if f.records:
                msg += "<br>" + "<br>".join(_md(r) for r in f.records[:SHOW])
                if len(f.records) > SHOW:
                    msg += f"<br>... ({len(f.records)} records in all)"
            out.append(
                f"| {f.severity} | `{f.rule}` | {_md(f.category or '')} | {msg} | "
                f"{_md(_first(f.annotation_ids, SHOW))} | {_md(_first(f.images(), SHOW))} |"
            )
        out.append("")
    return "\n".join(out) + "\n"


RENDERERS = {
    "text": render_text,
    "json": render_json,
    "junit": render_junit,
    "github": render_github,
    "markdown": render_markdown,
}


def render_many(results: list[CheckResult], fmt: str) -> str:
    """Render one or more results: text/github concatenated, JUnit and Markdown one section per file, JSON one
    report (a single file) or ``{"schema", "passed", "fail_on", "files": [reports]}`` (several files)."""
    if fmt not in RENDERERS:
        raise ValueError(f"unknown report format {fmt!r}")
    if fmt in ("junit", "markdown"):
        return RENDERERS[fmt](results)
    if fmt == "json":
        return dumps_json(many_to_dict(results))
    return "".join(RENDERERS[fmt](r) for r in results)


def write_reports(results: list[CheckResult], out_dir: str | os.PathLike) -> list[Path]:
    """Write every report format into ``out_dir`` (``check.txt``, ``check.json``, ``check.xml``,
    ``check.github.txt``, ``check.md``): rendered in memory, then the directory is swapped in whole
    (:func:`imbalance_cli.report.writer.write_report`, all or nothing)."""
    check_out_dir(out_dir)
    files = {FILE_NAMES[fmt]: render_many(results, fmt) for fmt in REPORT_FORMATS}
    return write_report(out_dir, files, own=tuple(FILE_NAMES.values()), kind="check")


def append_step_summary(results: list[CheckResult], path: str | os.PathLike, option: str = "--summary") -> None:
    """Append the Markdown summary to ``path`` (GitHub's ``$GITHUB_STEP_SUMMARY`` is appended to, not replaced).

    A failed append is cut back off and raised as one line naming ``path`` and ``option`` (the
    :class:`~imbalance_cli.fileio.WriteError` of :func:`~imbalance_cli.fileio.append_text`).
    """
    append_text(path, render_markdown(results), what="the Markdown summary", option=option)
