"""`imbalance compare`: two datasets side by side (class, scale, location, foreground) with distances."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imbalance_cli.commands._common import echo_json, handle_errors, set_quiet


def register(app):
    """Add this module's command(s) to the Typer app."""

    @app.command("compare")
    @handle_errors
    def compare(
        file_a: Path = typer.Argument(..., help="First annotation file (e.g. train)."),
        file_b: Path = typer.Argument(..., help="Second annotation file (e.g. val, or after resampling)."),
        anchors: Optional[str] = typer.Option(None, "--anchors", help="Also compare foreground anchors under this "
                                              "preset (retinanet|rpn|ssd300|my.toml)."),
        scale_bins: int = typer.Option(50, "--scale-bins", help="Bins of the relative-size histograms on [0, 1]."),
        location_bins: int = typer.Option(20, "--location-bins", help="Bins per axis of the box-centre histogram."),
        fmt: Optional[str] = typer.Option(None, "--format", help="Annotation format override (both files)."),
        json_out: bool = typer.Option(False, "--json", help="Print the imbalance.compare/1 JSON to stdout only."),
        out: Optional[Path] = typer.Option(None, "--out", help="Write compare.json, compare_classes.csv and overlay "
                                           "plots here."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
        workers: Optional[int] = typer.Option(None, "--workers", help="Processes decoding JSON chunks (default: all "
                                              "cores).", show_default=False),
        no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the columnar cache."),
    ):
        """Class, scale and location distributions of A and B, their distances (TV, JS, Wasserstein) and overlays.

        Example: imbalance compare instances_train2017.json instances_val2017.json --out cmp/
        """
        from imbalance_cli.data import load
        from imbalance_cli.errors import InputError
        from imbalance_cli.stats.compare import compare_datasets, write_outputs

        from imbalance_cli.data.spec import LoadSpec

        set_quiet(quiet)
        spec = LoadSpec.build(format=fmt, workers=workers, cache=not no_cache)
        if scale_bins < 1 or location_bins < 1:
            raise InputError("--scale-bins and --location-bins must be >= 1")
        a = load(file_a, spec=spec)
        b = load(file_b, spec=spec)
        report = compare_datasets(a, b, anchors=anchors, scale_bins=scale_bins, location_bins=location_bins,
                                  names=(file_a.name, file_b.name))
        if out is not None:
            write_outputs(report, out)
        if json_out:
            from imbalance_cli.fileio import dumps_json

            echo_json(dumps_json(report))
            return
        _render(report)
        if out is not None:
            typer.echo(f"wrote {out}/ (compare.json, compare_classes.csv, compare_*.png)")


def _f(v, spec=".4f"):
    return "-" if v is None else format(v, spec)


def _render(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=f"A = {r['a']['name']}  vs  B = {r['b']['name']}")
    for col in ("distribution", "A", "B", "distance"):
        t.add_column(col, justify="left" if col == "distribution" else "right")
    t.add_row("images / valid boxes", f"{r['a']['images']} / {r['a']['boxes']}", f"{r['b']['images']} / {r['b']['boxes']}", "")
    c = r["classes"]
    t.add_row("classes (instances)", f"{sum(x['instances_a'] > 0 for x in c['per_class'])} used",
              f"{sum(x['instances_b'] > 0 for x in c['per_class'])} used", f"TV {_f(c['tv'])}, JS {_f(c['js'])}")
    for key, s in r["scale"].items():
        t.add_row(key.replace("_", " "), "", "", f"W1 {_f(s['wasserstein'])}, TV {_f(s['tv'])}")
    t.add_row("box centres", "", "", f"TV {_f(r['location']['tv'])}")
    if r["anchors"]:
        an = r["anchors"]
        t.add_row("foreground anchor share", _f(an["foreground_share_a"], ".3%"), _f(an["foreground_share_b"], ".3%"),
                  f"per-class positives TV {_f(an['per_class_positive_tv'])}")
    console.print(t)
    if c["only_in_a"] or c["only_in_b"]:
        console.print(f"classes only in A: {len(c['only_in_a'])}; only in B: {len(c['only_in_b'])}")
