"""Renderers of ``imbalance bench``: summary statistics, the like-with-like table, CSV, PNG and the terminal table.

matplotlib and rich are imported here only, inside the functions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imbalance_cli.fileio import save_figure, write_json, write_text

TABLE_KEYS = ("AP", "AP50", "APr", "APc", "APf")

__all__ = ["TABLE_KEYS", "summarize", "versus_baseline", "bench_figure", "write_outputs", "render_terminal",
           "markdown_table"]


def _finite(values) -> np.ndarray:
    return np.array([v for v in values if v is not None and v == v], dtype=np.float64)


def _mean_std(v: np.ndarray) -> tuple[float, float]:
    return (float(v.mean()) if len(v) else float("nan"), float(v.std(ddof=1)) if len(v) > 1 else 0.0)


def summarize(runs: list[dict], losses: list[str], keys=TABLE_KEYS) -> list[dict]:
    """Mean and sample standard deviation (ddof 1; 0 for one seed) per loss and metric.

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
    that metric. ``{k}_diff_mean``, ``{k}_diff_std`` (ddof 1) and ``{k}_wins`` (seeds where the
    loss is higher) per metric.
    """
    by = {(r["loss"], r["seed"]): r for r in runs}
    out = []
    for loss, base in pairs:
        seeds = sorted(s for (l, s) in by if l == loss and (base, s) in by)
        row = {"loss": loss, "baseline": base, "seeds": len(seeds)}
        for k in keys:
            d = _finite(by[(loss, s)].get(k) - by[(base, s)].get(k)
                        if by[(loss, s)].get(k) is not None and by[(base, s)].get(k) is not None else None
                        for s in seeds)
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
        ax.bar(x + (i - (n - 1) / 2) * width, [r[f"{k}_mean"] for k in keys], width,
               yerr=[r[f"{k}_std"] for k in keys], label=r["loss"], capsize=2)
    ax.set_xticks(x, keys)
    ax.set_ylabel("held-out AP")
    ax.set_title(f"imbalance bench (mean ± std over {max(r['seeds'] for r in rows) if rows else 0} seeds)")
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
        cells = [f"{r[f'{k}_mean']:.3f} ± {r[f'{k}_std']:.3f}" for k in keys]
        diffs = [f"{v[f'{k}_diff_mean']:+.3f} ± {v[f'{k}_diff_std']:.3f}" for k in keys] if v else ["" for _ in keys]
        lines.append(f"| {r['loss']} | {v['baseline'] if v else '(baseline)'} | " + " | ".join(cells) + " | "
                     + " | ".join(diffs) + " |")
    return "\n".join(lines) + "\n"


#: The files :func:`write_outputs` writes into the bench folder (beside one folder per run).
FILE_NAMES = ("bench.json", "bench.csv", "bench.md", "bench.png")


def write_outputs(out: Path, payload: dict) -> list[Path]:
    """``bench.json`` (runs, summary, versus_baseline, settings), ``bench.csv``, ``bench.md`` and ``bench.png``."""
    out = Path(out)
    summary, versus = payload["summary"], payload["versus_baseline"]
    write_json(out / "bench.json", payload)
    vs = {v["loss"]: v for v in versus}
    header = "loss,baseline,seeds," + ",".join(f"{k}_mean,{k}_std" for k in TABLE_KEYS) + "," + \
        ",".join(f"{k}_diff_mean,{k}_diff_std" for k in TABLE_KEYS)
    lines = [header]
    for r in summary:
        v = vs.get(r["loss"])
        diffs = ",".join(f"{v[f'{k}_diff_mean']:.6f},{v[f'{k}_diff_std']:.6f}" if v else "," for k in TABLE_KEYS)
        lines.append(f"{r['loss']},{v['baseline'] if v else ''},{r['seeds']}," +
                     ",".join(f"{r[f'{k}_mean']:.6f},{r[f'{k}_std']:.6f}" for k in TABLE_KEYS) + "," + diffs)
    write_text(out / "bench.csv", "\n".join(lines) + "\n")
    write_text(out / "bench.md", markdown_table(summary, versus))
    save_figure(bench_figure(summary), out / "bench.png")
    return [out / n for n in FILE_NAMES]


def render_terminal(summary: list[dict], versus: list[dict], seeds: int, epochs: int) -> None:
    """Rich table: each loss's mean ± std and its paired difference to its baseline."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"imbalance bench: mean ± std over {seeds} seed(s), {epochs} epochs; Δ = loss - its baseline")
    table.add_column("loss")
    table.add_column("baseline")
    for k in TABLE_KEYS:
        table.add_column(k, justify="right")
    for k in TABLE_KEYS:
        table.add_column(f"Δ{k}", justify="right")
    vs = {v["loss"]: v for v in versus}
    for r in summary:
        v = vs.get(r["loss"])
        table.add_row(r["loss"], v["baseline"] if v else "-",
                      *[f"{r[f'{k}_mean']:.3f} ± {r[f'{k}_std']:.3f}" for k in TABLE_KEYS],
                      *[(f"{v[f'{k}_diff_mean']:+.3f} ± {v[f'{k}_diff_std']:.3f}" if v else "") for k in TABLE_KEYS])
    Console().print(table)
