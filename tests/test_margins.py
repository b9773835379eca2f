"""`imbalance margins`: ECM margins (seed 003, Eq. 8, Eq. 11, supp. F) recomputed independently in numpy."""

import gzip
import json

import numpy as np
import pytest
from conftest import COCO_VAL, LVIS_V1_CATS
from typer.testing import CliRunner

from imbalance_cli.cli import app
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.stats.counts import class_counts_from
from imbalance_cli.stats.margins import effective_class_margins, load_ecm_counts

runner = CliRunner()


def _lvis_cats():
    return sorted(json.loads(gzip.decompress(LVIS_V1_CATS.read_bytes())), key=lambda c: c["id"])


def _reference(n, r):
    """Seed 003: n_bg = r sum n (Eq. 35); n- = total - n+ (Eq. 37); Eq. 8; w = 1/gamma; m = log w; a log((1+a)/a)."""
    n = np.asarray(n, dtype=float)
    chans = n if r is None else np.append(n, r * n.sum())
    rows = []
    for npos in chans:
        nneg = chans.sum() - npos
        gp = nneg**0.25 / (npos**0.25 + nneg**0.25)
        gn = 1 - gp
        a = nneg / npos
        rows.append(
            dict(
                n_pos=npos,
                n_neg=nneg,
                gamma_pos=gp,
                gamma_neg=gn,
                w_pos=1 / gp,
                w_neg=1 / gn,
                m_pos=np.log(1 / gp),
                m_neg=np.log(1 / gn),
                weight=a * np.log((1 + a) / a),
            )
        )
    return rows


def test_lvis_v1_ratio_6_3313_every_class_cli_json():
    res = runner.invoke(app, ["margins", str(LVIS_V1_CATS), "--fg-bg-ratio", "6.3313", "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["schema"] == "imbalance.margins/1" and rep["fg_bg_ratio"] == 6.3313 and rep["one_stage"] is False
    cats = _lvis_cats()
    assert [c["id"] for c in rep["classes"]] == [c["id"] for c in cats]
    ref = _reference([c["instance_count"] for c in cats], 6.3313)
    keys = ("n_pos", "n_neg", "gamma_pos", "gamma_neg", "w_pos", "w_neg", "m_pos", "m_neg", "weight")
    got = np.array([[row[k] for k in keys] for row in rep["classes"]] + [[rep["background"][k] for k in keys]])
    exp = np.array([[row[k] for k in keys] for row in ref])
    np.testing.assert_allclose(got, exp, rtol=1e-8)  # log((1+a)/a) loses ~1e-10 to cancellation at a ~ 1e7
    # background: n+ = 6.3313 * 1,270,141 (the file's instance total, data README)
    assert rep["background"]["n_pos"] == pytest.approx(6.3313 * 1_270_141)
    assert rep["background"]["n_neg"] == pytest.approx(1_270_141)
    # rarest class gets the largest negative weight, margins sum to 1
    assert max(rep["classes"], key=lambda r: r["w_neg"])["n_pos"] == min(c["instance_count"] for c in cats)
    assert all(abs(r["gamma_pos"] + r["gamma_neg"] - 1) < 1e-12 for r in rep["classes"])


def test_one_stage_leaves_background_out():
    counts = class_counts_from(LVIS_V1_CATS)
    rep = effective_class_margins(counts, one_stage=True)
    assert rep["background"] is None and rep["fg_bg_ratio"] is None
    ref = _reference(counts.instances, None)
    np.testing.assert_allclose([r["gamma_pos"] for r in rep["classes"]], [r["gamma_pos"] for r in ref], rtol=1e-12)
    assert rep["classes"][0]["n_neg"] == pytest.approx(1_270_141 - rep["classes"][0]["n_pos"])


def test_three_class_hand_example():
    # counts 1, 16, 81 and r = 1: n_bg = 98, total 196 -> class 0: n- = 195
    ds = Dataset(
        image_ids=[1],
        widths=[100],
        heights=[100],
        boxes=[[0, 0, 10, 10]] * 98,
        box_image=[0] * 98,
        box_category=[0] + [1] * 16 + [2] * 81,
        category_ids=[5, 7, 9],
        category_names=["a", "b", "c"],
    )
    rep = effective_class_margins(class_counts_from(ds), fg_bg_ratio=1.0)
    g = 195**0.25 / (1 + 195**0.25)
    assert rep["classes"][0]["gamma_pos"] == pytest.approx(g)
    assert rep["classes"][0]["w_neg"] == pytest.approx(1 / (1 - g))
    assert rep["classes"][0]["weight"] == pytest.approx(195 * np.log(196 / 195))
    assert rep["background"]["n_pos"] == pytest.approx(98) and rep["background"]["n_neg"] == pytest.approx(98)
    assert rep["background"]["gamma_pos"] == pytest.approx(0.5)


@pytest.mark.slow
def test_out_dir_exports_load_into_ecm_loss(tmp_path):
    import torch

    from imbalance_cli.losses.longtail import ecm_loss

    res = runner.invoke(app, ["margins", str(COCO_VAL), "--fg-bg-ratio", "3", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    for name in (
        "margins.json",
        "margins.csv",
        "instance_counts.json",
        "ecm_counts.json",
        "margins_vs_ratio.png",
        "weights_sorted.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    # instance counts in category-id order equal an independent count from the raw COCO JSON
    raw = json.loads(gzip.decompress(COCO_VAL.read_bytes()))
    ids = sorted(c["id"] for c in raw["categories"])
    exp = [
        sum(
            1
            for a in raw["annotations"]
            if a["category_id"] == i and not a.get("iscrowd", 0) and a["bbox"][2] > 0 and a["bbox"][3] > 0
        )
        for i in ids
    ]
    assert json.loads((tmp_path / "instance_counts.json").read_text()) == exp
    kw = load_ecm_counts(tmp_path / "ecm_counts.json")
    assert kw == {"counts": exp, "fg_bg_ratio": 3.0}
    logits = torch.zeros(4, len(exp) + 1)
    loss = ecm_loss(logits, torch.tensor([0, 1, len(exp), 2]), **kw)
    assert torch.isfinite(loss)
    csv = (tmp_path / "margins.csv").read_text().splitlines()
    assert len(csv) == 1 + len(exp) + 1 and csv[-1].split(",")[1] == "background"


@pytest.mark.parametrize(
    "args",
    [
        [],  # no ratio, no --one-stage
        ["--fg-bg-ratio", "2", "--one-stage"],
        ["--fg-bg-ratio", "-1"],
        ["--fg-bg-ratio", "2", "--anchors", "retinanet"],
        ["--anchors", "retinanet"],  # category statistics cannot be matched to anchors
    ],
)
def test_bad_options_exit_2(args):
    res = runner.invoke(app, ["margins", str(LVIS_V1_CATS), *args])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output


def test_bad_files_exit_2(tmp_path):
    missing = runner.invoke(app, ["margins", str(tmp_path / "nope.json"), "--one-stage"])
    assert missing.exit_code == 2
    bad = tmp_path / "cats.json"
    bad.write_text(json.dumps([{"id": 1, "instance_count": 5, "image_count": 9}]))
    res = runner.invoke(app, ["margins", str(bad), "--one-stage"])
    assert res.exit_code == 2 and "image_count" in res.output
    bad.write_text(json.dumps({"categories": [{"id": 1, "instance_count": 5}]}))
    res = runner.invoke(app, ["margins", str(bad), "--one-stage"])
    assert res.exit_code == 2


def _retinanet_anchors_800():
    """RetinaNet anchors of an 800 x 800 image written out from torchvision's documented rule (independent)."""
    out = []
    for stride, base in zip((8, 16, 32, 64, 128), (32, 64, 128, 256, 512)):
        sizes = [base, int(base * 2 ** (1 / 3)), int(base * 2 ** (2 / 3))]
        cell = []
        for ar in (0.5, 1.0, 2.0):  # ratio-major order, h/w
            hr = np.sqrt(ar)
            for s in sizes:
                w, h = s / hr, s * hr
                cell.append(np.round([-w / 2, -h / 2, w / 2, h / 2]))
        cell = np.array(cell)
        g = -(-800 // stride)
        ys, xs = np.meshgrid(np.arange(g) * stride, np.arange(g) * stride, indexing="ij")
        shifts = np.stack([xs.ravel(), ys.ravel(), xs.ravel(), ys.ravel()], axis=1)
        out.append((shifts[:, None, :] + cell[None]).reshape(-1, 4))
    return np.concatenate(out)


def test_measured_ratio_with_anchors_matches_brute_force():
    box = np.array([384.0, 384.0, 416.0, 416.0])
    ds = Dataset(
        image_ids=[1],
        widths=[800],
        heights=[800],
        boxes=[box],
        box_image=[0],
        box_category=[0],
        category_ids=[1],
        category_names=["a"],
    )
    a = _retinanet_anchors_800()
    assert len(a) == 9 * (100**2 + 50**2 + 25**2 + 13**2 + 7**2)
    ix = np.clip(np.minimum(a[:, 2], box[2]) - np.maximum(a[:, 0], box[0]), 0, None)
    iy = np.clip(np.minimum(a[:, 3], box[3]) - np.maximum(a[:, 1], box[1]), 0, None)
    inter = ix * iy
    iou = inter / ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + 32 * 32 - inter)
    fg = int((iou >= 0.5).sum())  # the best anchor has IoU 1, so the low-quality rule adds nothing
    ign = int(((iou >= 0.4) & (iou < 0.5)).sum())
    bg = len(a) - fg - ign
    from imbalance_cli.stats.margins import measured_fg_bg_ratio

    r, counts = measured_fg_bg_ratio(ds, "retinanet")
    assert counts["foreground_total"] == fg and counts["background_total"] == bg
    assert r == pytest.approx(bg / fg)
    res = runner.invoke(app, ["margins", str(COCO_VAL), "--anchors", "retinanet", "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["fg_bg_ratio_source"] == "anchors:retinanet" and rep["fg_bg_ratio"] > 1
