"""Renderer of the ``imbalance.groups/1`` report (``imbalance groups``): terminal summary and exports.

Files: ``groups.json`` (the report), ``classes.csv`` (one row per class: counts, BAGS group, LVIS
frequency), ``bags.json`` (edges, category ids, ``label2binlabel`` and ``pred_slice`` as lists) and the
same two mappings as int64 tensors ``label2binlabel.pt`` / ``pred_slice.pt`` (Li et al., Balanced Group
Softmax, CVPR 2020, §4).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from imbalance_cli.fileio import dumps_json
from imbalance_cli.report.tables import LVIS_GROUPS_TITLE
from imbalance_cli.report.writer import write_report

OWN_FILES = ("groups.json", "classes.csv", "bags.json", "label2binlabel.pt", "pred_slice.pt")


def render_terminal(report: dict, console=None) -> None:
    """Print the BAGS groups table, the LVIS frequency line, repeat factors and class-balanced weights."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    t = Table(title=f"BAGS groups ({report['num_classes']} classes; Li et al., CVPR 2020, Eq. 3)")
    for col in ("group", "instances per class", "classes", "instances"):
        t.add_column(col, justify="right")
    t.add_row("0", "background", "1", "-")
    for g in report["bags"]["groups"]:
        t.add_row(str(g["index"]), f"[{g['range'][0]}, {g['range'][1]})", str(g["classes"]), f"{g['instances']:,}")
    console.print(t)
    f = report["frequency"]
    scope = report.get("frequency_scope") or {}
    dis = (
        f" ({len(report['frequency_disagreements'])} disagree with the file)"
        if report["frequency_disagreements"]
        else ""
    )
    if scope.get("shown") is False:
        console.print(f"LVIS frequency groups {scope.get('reason')}{dis}")
    else:
        console.print(f"{LVIS_GROUPS_TITLE}: rare {f['r']}, common {f['c']}, frequent {f['f']}{dis}")
    rf = report["repeat_factors"]
    if rf["per_class"] is None:
        console.print(f"repeat factors: {rf['note']}")
    else:
        vals = [v for v in rf["per_class"].values() if v is not None]
        line = (
            f"repeat factors (t = {rf['threshold']:g}): {sum(v > 1 for v in vals)} classes repeated, "
            f"max r = {max(vals) if vals else 1:.3g}; "
        )
        if rf["expected_epoch_images"] is not None:
            line += f"expected epoch {rf['expected_epoch_images']:,.1f} images (of {rf['num_images']:,})"
        else:
            lo, hi = rf["expected_epoch_images_bounds"]
            line += f"expected epoch between {lo:,.0f} and {hi:,.0f} images (of {rf['num_images']:,})"
        console.print(line)
    cb = [v for v in report["class_balanced"]["normalized"].values() if v is not None]
    if cb:
        console.print(
            f"class-balanced weights (beta = {report['class_balanced']['beta']:g}, normalised): "
            f"min {min(cb):.3g}, max {max(cb):.3g}"
        )


def _tensor_file(arr: np.ndarray) -> bytes:
    """``torch.save`` of ``arr`` as int64, in memory (the report writer then writes bytes: a full disk is one line)."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(torch.as_tensor(arr, dtype=torch.int64), buf)
    return buf.getvalue()


def report_files(report: dict, label2binlabel: np.ndarray, pred_slice: np.ndarray) -> dict:
    """Every file of the groups directory: ``{file name: content}`` (the tensors as ``torch.save`` bytes).

    ``label2binlabel`` ((N+1, C+1)) and ``pred_slice`` ((N+1, 2)) come from
    :func:`imbalance_cli.stats.groups.bags_mappings`, in the order of ``report["classes"]``.
    """
    import pandas as pd

    return {
        "groups.json": dumps_json(report),
        "classes.csv": pd.DataFrame(report["classes"]).to_csv(index=False),
        "bags.json": dumps_json(
            {
                "edges": report["bags"]["edges"],
                "category_ids": [c["id"] for c in report["classes"]],
                "label2binlabel": np.asarray(label2binlabel).tolist(),
                "pred_slice": np.asarray(pred_slice).tolist(),
            }
        ),
        "label2binlabel.pt": _tensor_file(label2binlabel),
        "pred_slice.pt": _tensor_file(pred_slice),
    }


def write_outputs(
    report: dict, out_dir: str | os.PathLike, label2binlabel: np.ndarray, pred_slice: np.ndarray
) -> list[Path]:
    """Write groups.json, classes.csv, bags.json, label2binlabel.pt and pred_slice.pt (swapped in whole)."""
    return write_report(out_dir, report_files(report, label2binlabel, pred_slice), own=OWN_FILES, kind="groups")
