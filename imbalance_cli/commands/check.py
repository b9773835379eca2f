"""`imbalance check`: the CI gate (exit 0 pass, 1 findings at/above the fail level, 2 bad input).

Options follow the other commands: ``--format`` is the ANNOTATION format (as in ``stats``), the
report's format is ``--report-format``, and ``-o/--out`` is a directory (it receives every report
format). The Markdown summary goes to ``$GITHUB_STEP_SUMMARY`` when that variable is set (GitHub
Actions), or to ``--summary FILE``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from imbalance_cli import dist
from imbalance_cli.check import load_baseline, load_rules
from imbalance_cli.check.rules import run_check_splits
from imbalance_cli.choices import Choice
from imbalance_cli.commands._common import check_out, handle_errors, set_quiet
from imbalance_cli.data.detect import FORMATS
from imbalance_cli.errors import FindingsError
from imbalance_cli.fileio import check_append_target
from imbalance_cli.report.check import (
    FILE_NAMES,
    REPORT_FORMATS,
    append_step_summary,
    render_many,
    verdict_line,
    write_reports,
)

ReportFormat = Choice("ReportFormat", {f: f for f in REPORT_FORMATS})
AnnotationFormat = Choice("AnnotationFormat", {f: f for f in FORMATS})


class FailOn(Choice):
    """The lowest severity that fails the run."""

    error = "error"
    warning = "warning"


def _run_check(files, rules, baseline, fail_on, anchors, fmt, report_format, out, summary, split, quiet, yolo_version):
    """Check every file (and split), print the report, write the reports and the summary, fail on findings."""
    set_quiet(quiet)
    check_out(out, *files, own=FILE_NAMES.values())
    env = os.environ.get("GITHUB_STEP_SUMMARY") if dist.rank_info().is_main else None  # torchrun: rank 0 writes
    target, option = (summary, "--summary") if summary is not None else (env or None, "GITHUB_STEP_SUMMARY")
    if target is not None:
        check_append_target(target, "the Markdown summary", option)
    r = load_rules(rules, fail_on=fail_on.value if fail_on is not None else None, anchors=anchors)
    base = load_baseline(baseline) if baseline is not None else None
    results = [
        res
        for f in files
        for res in run_check_splits(
            f, r, base, format=fmt.value if fmt is not None else None, split=split, yolo_version=yolo_version
        )
    ]
    typer.echo(render_many(results, report_format.value), nl=False)
    if report_format.value in ("json", "junit", "markdown"):  # machine output on stdout: the verdict to stderr
        for res in results:
            typer.echo(verdict_line(res), err=True)
    if out is not None:
        write_reports(results, out)
    if target is not None:
        append_step_summary(results, target, option)
    if not all(res.passed for res in results):
        raise FindingsError(f"{sum(len(res.findings) for res in results)} finding(s)")


# long: holds the command's Typer declaration, one flat list of its options
def register(app):
    """Add this module's command(s) to the Typer app."""

    # long: one flat list of the command's options, as Typer declares them
    @app.command("check")
    @handle_errors
    def check(
        files: list[Path] = typer.Argument(
            ...,
            help="Annotation file(s) to check (COCO/LVIS/Objects365 JSON, Open "
            "Images CSV, VOC, YOLO data.yaml or labels folder); several files (e.g. "
            "from pre-commit) are checked in turn.",
        ),
        rules: Optional[Path] = typer.Option(
            None,
            "--rules",
            help="TOML rules file: thresholds, severities, fail_on, the "
            "anchors table's preset (see examples/ci/rules.toml).",
        ),
        baseline: Optional[Path] = typer.Option(
            None, "--baseline", help="Baseline stats.json (imbalance stats --json) for drift rules."
        ),
        fail_on: Optional[FailOn] = typer.Option(
            None, "--fail-on", help="Lowest severity that fails the run (default: the rules file's, else error)."
        ),
        anchors: Optional[str] = typer.Option(
            None,
            "--anchors",
            help="Run the anchor rules with this preset "
            "(retinanet|rpn|ssd300|yolov5|my.toml|none); only these load torch.",
        ),
        data_format: Optional[AnnotationFormat] = typer.Option(
            None, "--format", "-f", help="Annotation format: override detection (as in `imbalance stats`)."
        ),
        legacy_format: Optional[AnnotationFormat] = typer.Option(
            None, "--data-format", hidden=True, help="Old name of --format."
        ),
        report_format: ReportFormat = typer.Option(
            "text",
            "--report-format",
            "-r",
            help="Report on stdout (json, junit and markdown print the verdict line to stderr).",
        ),
        out: Optional[Path] = typer.Option(
            None,
            "--out",
            "-o",
            help="Directory for the report in every format: " + ", ".join(FILE_NAMES.values()) + ".",
        ),
        summary: Optional[Path] = typer.Option(
            None, "--summary", help="Append the Markdown summary to this file (default: $GITHUB_STEP_SUMMARY when set)."
        ),
        split: Optional[str] = typer.Option(
            None,
            "--split",
            metavar="NAME",
            show_default=False,
            help="One split of a multi-split YOLO data.yaml; default: every split "
            "checked in turn, each named FILE[split] (never merged).",
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
        yolo_version: Optional[int] = typer.Option(
            None,
            "--yolo-version",
            help="YOLO datasets: check them as Ultralytics 8.x reads them (8, default) or as YOLOv5 7.0 does (5).",
            show_default=False,
        ),
    ):
        """Check a dataset: structural errors, distribution warnings, anchor rules, drift against a baseline.

        Every finding names the class and the annotation ids, image ids and file names involved.

        Example: imbalance check train.json --rules rules.toml --baseline stats.json --report-format github -o check/
        """
        _run_check(
            files,
            rules,
            baseline,
            fail_on,
            anchors,
            data_format or legacy_format,
            report_format,
            out,
            summary,
            split,
            quiet,
            yolo_version,
        )
