"""Renderers of ``imbalance bench``: summary statistics, the like-with-like table, CSV, PNG and the terminal table.

matplotlib and rich are imported here only, inside the functions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imbalance_cli.fileio import save_figure, write_json, write_text

TABLE_KEYS = ("AP", "AP50", "APr", "APc", "APf")

__all__ = [
    "TABLE_KEYS",
    "summarize",
    "versus_baseline",
    "bench_figure",
    "write_outputs",
    "render_terminal",
    "markdown_table",
]


def _finite(values) -> np.ndarray:
    return np.array([v for v in values if v is not None and v == v], dtype=np.float64)


def _mean_std(v: np.ndarray) -> tuple[float, float | None]:
    """Mean and sample std (ddof 1); the std is None for fewer than two values (no spread to show)."""
    return (float(v.mean()) if len(v) else float("nan"), float(v.std(ddof=1)) if len(v) > 1 else None)


def _pm(mean: float, std: float | None, sign: bool = False) -> str:
    """``0.023 ± 0.002``, or ``0.023`` alone for one seed (never "± 0.000" for a spread that does not exist)."""
    m = f"{mean:+.3f}" if sign else f"{mean:.3f}"
    return m if std is None else f"{m} ± {std:.3f}"


def summarize(runs: list[dict], losses: list[str], keys=TABLE_KEYS) -> list[dict]:
    """Mean and sample standard deviation (ddof 1; None for one seed) per loss and metric.

    ``runs`` are dicts with ``loss``, ``seed`` and the metric keys (NaN for an undefined metric
    is left out of that metric's mean).
    """
    rows = []
    for loss in losses:
        sel = [r for r in runs if r["loss"] == loss]
        row = {"loss": loss, "seeds": len(sel)}
        for k in keys:
            row[f"{k}_mean"], row[f"{k}_std"] = _mean_std(_finite(r.get(k) for r in sel))
        rows.append(row)
    return rows


def versus_baseline(runs: list[dict], pairs: list[tuple[str, str]], keys=TABLE_KEYS) -> list[dict]:
    """Paired differences ``loss - baseline`` per seed (same data, schedule and seed), mean and std.

    ``pairs`` are ``(loss, baseline)``. A seed where either metric is undefined is left out of
    that metric. ``{k}_diff_mean``, ``{k}_diff_std`` (ddof 1; None for one seed) and ``{k}_wins`` (seeds where
    the loss is higher) per metric.
    """
    by = {(r["loss"], r["seed"]): r for r in runs}
    out = []
    for loss, base in pairs:
        seeds = sorted(s for (name, s) in by if name == loss and (base, s) in by)
        row = {"loss": loss, "baseline": base, "seeds": len(seeds)}
        for k in keys:
            d = _finite(
                by[(loss, s)].get(k) - by[(base, s)].get(k)
                if by[(loss, s)].get(k) is not None and by[(base, s)].get(k) is not None
                else None
                for s in seeds
            )
            row[f"{k}_diff_mean"], row[f"{k}_diff_std"] = _mean_std(d)
            row[f"{k}_wins"] = int((d > 0).sum())
        out.append(row)
    return out


def bench_figure(rows: list[dict], keys=TABLE_KEYS):
    """Grouped bar chart: one group per metric, one bar per loss, error bars = std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.8))
    n = len(rows)
    width = 0.8 / max(n, 1)
    x = np.arange(len(keys))
    for i, r in enumerate(rows):
        yerr = None if any(r[f"{k}_std"] is None for k in keys) else [r[f"{k}_std"] for k in keys]
        ax.bar(
            x + (i - (n - 1) / 2) * width, [r[f"{k}_mean"] for k in keys], width, yerr=yerr, label=r["loss"], capsize=2
        )
    ax.set_xticks(x, keys)
    ax.set_xlabel("metric (pycocotools / lvis, held-out images)")
    ax.set_ylabel("held-out AP")
    seeds = max(r["seeds"] for r in rows) if rows else 0
    ax.set_title(f"imbalance bench (mean ± std over {seeds} seeds)" if seeds > 1 else "imbalance bench (one seed)")
    ax.legend(fontsize=8, ncol=min(n, 4))
    fig.tight_layout()
    return fig


def markdown_table(summary: list[dict], versus: list[dict], keys=TABLE_KEYS) -> str:
    """The like-with-like table as Markdown: each loss's mean ± std, then its difference to its baseline."""
    head = "| loss | baseline | " + " | ".join(keys) + " | " + " | ".join(f"Δ{k}" for k in keys) + " |"
    sep = "|" + "---|" * (2 + 2 * len(keys))
    lines = [head, sep]
    vs = {v["loss"]: v for v in versus}
    for r in summary:
        v = vs.get(r["loss"])
        cells = [_pm(r[f"{k}_mean"], r[f"{k}_std"]) for k in keys]
        diffs = [_pm(v[f"{k}_diff_mean"], v[f"{k}_diff_std"], sign=True) for k in keys] if v else ["" for _ in keys]
        lines.append(
            f"| {r['loss']} | {v['baseline'] if v else '(baseline)'} | "
            + " | ".join(cells)
            + " | "
            + " | ".join(diffs)
            + " |"
        )
    return "\n".join(lines) + "\n"


#: The files :func:`write_outputs` writes into the bench folder (beside one folder per run).
FILE_NAMES = ("bench.json", "bench.csv", "bench.md", "bench.png")


def write_outputs(out: Path, payload: dict) -> list[Path]:
    """``bench.json`` (runs, summary, versus_baseline, settings), ``bench.csv``, ``bench.md`` and ``bench.png``."""
    out = Path(out)
    summary, versus = payload["summary"], payload["versus_baseline"]
    write_json(out / "bench.json", payload)
    vs = {v["loss"]: v for v in versus}
    header = (
        "loss,baseline,seeds,"
        + ",".join(f"{k}_mean,{k}_std" for k in TABLE_KEYS)
        + ","
        + ",".join(f"{k}_diff_mean,{k}_diff_std" for k in TABLE_KEYS)
    )
    lines = [header]
    for r in summary:
        v = vs.get(r["loss"])
        diffs = ",".join(f"{v[f'{k}_diff_mean']:.6f},{_num(v[f'{k}_diff_std'])}" if v else "," for k in TABLE_KEYS)
        lines.append(
            f"{r['loss']},{v['baseline'] if v else ''},{r['seeds']},"
            + ",".join(f"{r[f'{k}_mean']:.6f},{_num(r[f'{k}_std'])}" for k in TABLE_KEYS)
            + ","
            + diffs
        )
    write_text(out / "bench.csv", "\n".join(lines) + "\n")
    write_text(out / "bench.md", markdown_table(summary, versus))
    save_figure(bench_figure(summary), out / "bench.png")
    return [out / n for n in FILE_NAMES]


def _num(v: float | None) -> str:
    """A CSV number (empty for None: no spread over one seed)."""
    return "" if v is None else f"{v:.6f}"


def render_terminal(summary: list[dict], versus: list[dict], seeds: int, epochs: int, console=None) -> None:
    """Two rich tables readable at 80 columns: each loss's mean (± std over seeds, on a second line), then each
    loss's paired difference to its baseline. One seed: values only (no spread to show)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()

    def cell(mean: float, std: float | None, sign: bool = False) -> Text:
        if mean != mean:  # undefined (e.g. APr without rare classes)
            return Text("–")
        t = Text(f"{mean:+.3f}" if sign else f"{mean:.3f}")
        if std is not None:
            t.append(f"\n±{std:.3f}", style="dim")
        return t

    spread = "mean, ±std below" if seeds > 1 else "one seed: no spread"
    table = Table(
        title=f"imbalance bench: held-out AP, {seeds} seed(s), {epochs} epochs ({spread})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    table.add_column("loss", overflow="fold")
    for k in TABLE_KEYS:
        table.add_column(k, justify="right", no_wrap=True)
    for r in summary:
        table.add_row(r["loss"], *[cell(r[f"{k}_mean"], r[f"{k}_std"]) for k in TABLE_KEYS])
    console.print(table)
    if versus:
        diff = Table(
            title="Δ = loss − its paper's baseline, paired by seed",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
        )
        diff.add_column("loss", overflow="fold")
        diff.add_column("baseline", overflow="fold")
        for k in TABLE_KEYS:
            diff.add_column(f"Δ{k}", justify="right", no_wrap=True)
        for v in versus:
            diff.add_row(
                v["loss"],
                v["baseline"],
                *[cell(v[f"{k}_diff_mean"], v[f"{k}_diff_std"], sign=True) for k in TABLE_KEYS],
            )
        console.print(diff)
