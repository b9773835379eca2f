"""Renderers of a training run: figures (PNG, written atomically), the progress bar and the terminal summary.

matplotlib and rich are imported here only, inside the functions.

* ``loss_paces.png``: classification and regression losses per iteration and the gradient norm
  each puts on its head (objective imbalance; Oksuz et al., Imbalance Problems in Object
  Detection: A Review, TPAMI 2021, §7, Figs. 16-17);
* ``ap_vs_instances.png``: per-class AP on the held-out split against training instances
  (log scale), coloured by LVIS frequency group;
* ``weight_norms.png``: L2 norm of each class's classifier weights against its training instances
  (Li et al., Balanced Group Softmax, CVPR 2020, Fig. 1).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from imbalance_cli.fileio import save_figure

_FREQ_COLOURS = {"r": "tab:red", "c": "tab:orange", "f": "tab:blue"}


def _smooth(v: np.ndarray, k: int) -> np.ndarray:
    if len(v) < 2 or k <= 1:
        return v
    k = min(k, len(v))
    c = np.cumsum(np.insert(v, 0, 0.0))
    head = c[1:k] / np.arange(1, k)
    return np.concatenate([head, (c[k:] - c[:-k]) / k])


def read_log(path) -> dict[str, np.ndarray]:
    """The JSONL training log as columns."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    keys = ("iter", "cls_loss", "reg_loss", "cls_grad_norm", "reg_grad_norm")
    return {k: np.array([r[k] for r in rows], dtype=np.float64) for k in keys}


def loss_paces(log: dict[str, np.ndarray]):
    """Figure: task losses and their head gradient norms per iteration (moving average)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = max(1, len(log["iter"]) // 50)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, lab in (("cls_loss", "classification"), ("reg_loss", "regression")):
        ax[0].plot(log["iter"], _smooth(log[key], k), label=lab)
    ax[0].set_xlabel("iteration")
    ax[0].set_ylabel("loss")
    ax[0].set_title("task-loss paces")
    ax[0].legend()
    for key, lab in (("cls_grad_norm", "classification head"), ("reg_grad_norm", "regression head")):
        ax[1].plot(log["iter"], _smooth(log[key], k), label=lab)
    ax[1].set_yscale("log")
    ax[1].set_xlabel("iteration")
    ax[1].set_ylabel("gradient norm")
    ax[1].set_title("gradient norms per task")
    ax[1].legend()
    fig.tight_layout()
    return fig


def per_class_scatter(instances, values, frequency, ylabel: str, title: str):
    """Figure: one point per class, ``values`` against training ``instances`` (log x), r/c/f colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inst = np.asarray(instances, dtype=np.float64)
    vals = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for f, colour in _FREQ_COLOURS.items():
        sel = np.array([x == f for x in frequency]) & np.isfinite(vals)
        if sel.any():
            ax.scatter(
                np.maximum(inst[sel], 0.8),
                vals[sel],
                c=colour,
                label={"r": "rare", "c": "common", "f": "frequent"}[f],
                s=22,
            )
    ax.set_xscale("log")
    ax.set_xlabel("training instances")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


#: The plots :func:`write_all` writes into a run folder.
FILE_NAMES = ("loss_paces.png", "ap_vs_instances.png", "weight_norms.png")


def write_all(out_dir, metrics: dict, log_path) -> list[Path]:
    """Write the three figures of a run into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    cl = metrics["classes"]
    paths = [
        save_figure(loss_paces(read_log(log_path)), out / "loss_paces.png"),
        save_figure(
            per_class_scatter(
                cl["train_instances"],
                metrics["AP_per_class"],
                cl["frequency"],
                "AP (held-out)",
                "per-class AP vs training instances",
            ),
            out / "ap_vs_instances.png",
        ),
        save_figure(
            per_class_scatter(
                cl["train_instances"],
                cl["weight_norm"],
                cl["frequency"],
                "classifier weight norm",
                "classifier weight norms (BAGS Fig. 1)",
            ),
            out / "weight_norms.png",
        ),
    ]
    return paths


SUMMARY_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")


def summary_lines(metrics: dict) -> list[str]:
    """The terminal summary of ``metrics.json``: the AP line and AP per BAGS bin."""
    line = "  ".join(f"{k} {metrics[k]:.3f}" if metrics[k] == metrics[k] else f"{k} n/a" for k in SUMMARY_KEYS)
    bins = ", ".join(
        f"{b['bin']}: {b['AP']:.3f}" if b["AP"] is not None else f"{b['bin']}: n/a" for b in metrics["AP_bins"]
    )
    return [line, f"AP per BAGS bin (training instances) {bins}"]


class ProgressBar:
    """A rich progress bar showing the task losses (create it only on a terminal)."""

    def __init__(self, total: int, done: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.p = Progress(
            TextColumn("train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[losses]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.p.start()
        self.task = self.p.add_task("train", total=total, completed=done, losses="")

    def update(self, done: int, rec: dict) -> None:
        """Advance to ``done`` iterations and show the latest losses."""
        self.p.update(self.task, completed=done, losses=f"cls {rec['cls_loss']:.3f} reg {rec['reg_loss']:.3f}")

    def close(self) -> None:
        """Remove the bar."""
        self.p.stop()
