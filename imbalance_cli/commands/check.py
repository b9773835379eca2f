"""`imbalance check`: the CI gate (exit 0 pass, 1 findings at/above the fail level, 2 bad input)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imbalance_cli.commands._common import handle_errors, set_quiet

FORMATS = ("text", "json", "junit", "github")


def register(app):
    """Add this module's command(s) to the Typer app."""

    @app.command("check")
    @handle_errors
    def check(
        files: list[Path] = typer.Argument(..., help="Annotation file(s) to check (COCO/LVIS/Objects365 JSON, Open "
                                           "Images CSV, VOC); several files (e.g. from pre-commit) are checked in turn."),
        rules: Optional[Path] = typer.Option(None, "--rules", help="TOML rules file: thresholds, severities, fail_on, "
                                             "[anchors] preset (see examples/ci/rules.toml)."),
        baseline: Optional[Path] = typer.Option(None, "--baseline", help="Baseline stats.json (imbalance stats --json) "
                                                "for drift rules."),
        fail_on: Optional[str] = typer.Option(None, "--fail-on", help="error | warning (default: the rules file's, "
                                              "else error)."),
        anchors: Optional[str] = typer.Option(None, "--anchors", help="Run the anchor rules with this preset "
                                              "(retinanet|rpn|ssd300|my.toml|none)."),
        data_format: Optional[str] = typer.Option(None, "--data-format", help="Annotation format override "
                                                  "(coco|lvis|objects365|openimages|voc)."),
        fmt: str = typer.Option("text", "--format", help="Report format: text | json | junit | github."),
        output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the report to this file (the "
                                              "verdict line still goes to stdout)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    ):
        """Check a dataset: structural errors, distribution warnings, anchor rules, drift against a baseline.

        Example: imbalance check train.json --rules rules.toml --baseline stats.json --format junit -o check.xml
        """
        from imbalance_cli.check import load_baseline, load_rules, render_many, render_text, run_check
        from imbalance_cli.errors import FindingsError, InputError

        set_quiet(quiet)
        if fmt not in FORMATS:
            raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        r = load_rules(rules, fail_on=fail_on, anchors=anchors)
        base = load_baseline(baseline) if baseline is not None else None
        results = [run_check(f, r, base, format=data_format) for f in files]
        text = render_many(results, fmt)
        if output is not None:
            from imbalance_cli.fileio import write_text

            write_text(output, text)
            for res in results:
                typer.echo(render_text(res).splitlines()[-1])
        else:
            typer.echo(text, nl=False)
        if not all(res.passed for res in results):
            raise FindingsError(f"{sum(len(res.findings) for res in results)} finding(s)")
