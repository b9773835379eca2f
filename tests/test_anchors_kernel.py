"""The culled engine's compiled pass (``imbalance_cli.anchors.kernel``) against the dense engine.

The dense engine (every anchor against every box of its image in torch, ``rules.py``'s labelling) is the
reference: the culled engine's chunk statistics (counted inside the kernel, no positive kept) must equal
the statistics of the dense engine's :class:`MatchOutput` reduced by ``_match_statistics`` key by key
(per-image foreground / ignored, per-box best IoU, best level, positives, ignored anchors, per-class and
per-level positives, the positive-IoU, spatial and negative-IoU histograms and their counters), over random
multi-image chunks: boxes of every kind (tiny, huge, thin, outside the image, on the grid: exact ties,
duplicates), images without boxes, boxes reaching no anchor (the dense fallback), every matcher semantics.
The per-box ignored counts are also checked against a plain re-computation (``ref_iou``, first best box).
"""

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_anchors_matcher import RETINA_SMALL, SMALL, draw_boxes, ref_iou

from imbalance_cli.anchors.dense import dense_match_dataset
from imbalance_cli.anchors.generator import grid_anchors
from imbalance_cli.anchors.matcher import culled_match_dataset
from imbalance_cli.anchors.run import Chunk
from imbalance_cli.specs import AnchorSpec
from imbalance_cli.stats.anchors import _match_statistics, chunk_statistics

SIZES = ((128, 192), (96, 128), (160, 96))


@st.composite
def chunks(draw, sizes=SIZES):
    """(boxes, box_image, padded_h, padded_w, in_sample): 1-4 images of the given padded sizes, 0-6 boxes each."""
    n_img = draw(st.integers(1, 4))
    ph, pw, boxes, box_image = [], [], [], []
    for im in range(n_img):
        h, w = draw(st.sampled_from(sizes))
        ph.append(h)
        pw.append(w)
        mine = draw_boxes(draw, draw(st.integers(0, 6)), h, w)
        if draw(st.integers(0, 4)) == 0:  # beyond every anchor: best IoU 0, the image goes to the dense engine
            mine.append([w + 400.0, h + 400.0, w + 405.0, h + 405.0])
        boxes += mine
        box_image += [im] * len(mine)
    in_sample = np.array(draw(st.lists(st.booleans(), min_size=n_img, max_size=n_img)))
    return (
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(box_image, np.int64),
        np.asarray(ph, np.int64),
        np.asarray(pw, np.int64),
        in_sample,
    )


def _chunk(boxes, box_image, ph, pw, in_sample, num_classes=3):
    cls = (np.arange(len(boxes)) * 7 + 1) % num_classes
    return Chunk(
        0,
        0,
        0,
        boxes,
        box_image,
        ph,
        pw,
        extra={"box_class": cls, "in_sample": in_sample, "num_classes": np.array([num_classes])},
    )


def _dense_statistics(spec, chunk):
    res, _, _ = dense_match_dataset(
        spec.preset,
        chunk.boxes,
        chunk.box_image,
        chunk.padded_h,
        chunk.padded_w,
        semantics=spec.semantics,
        device="cpu",
        progress_description=None,
    )
    return res, _match_statistics(replace(spec, engine="dense"), chunk, res, np.flatnonzero(chunk.extra["in_sample"]))


def _assert_same(a: dict, b: dict, ctx):
    assert sorted(a) == sorted(b), ctx
    for k in a:
        if k == "fallback":
            continue
        assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), (ctx, k, a[k], b[k])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    data=chunks(),
    preset=st.sampled_from([SMALL, RETINA_SMALL]),
    semantics=st.sampled_from(["torchvision", "mmdet", "ssd"]),
    bins=st.sampled_from([1, 5, 16]),
)
def test_property_kernel_statistics_equal_dense(data, preset, semantics, bins):
    chunk = _chunk(*data)
    spec = AnchorSpec.build(
        preset, matcher=semantics, device="cpu", engine="culled", negative_iou_sample="all", spatial_bins=bins
    )
    a = chunk_statistics(spec, chunk)
    res, b = _dense_statistics(spec, chunk)
    _assert_same(a, b, (preset.name, semantics))
    # every ignored anchor counted once, at its image's boxes
    start = np.searchsorted(chunk.box_image, np.arange(chunk.num_images + 1))
    assert np.array_equal(
        np.add.reduceat(np.append(a["box_ignored"], 0), start)[:-1] * (np.diff(start) > 0), a["ignored"]
    )


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    data=chunks(sizes=((128, 192),)), semantics=st.sampled_from(["torchvision", "mmdet", "ssd"]), allow=st.booleans()
)
def test_property_box_ignored_equals_plain_recount(data, semantics, allow):
    """``box_ignored``: the ignored anchors (the culled engine's labels) by their first best box, recounted here."""
    boxes, box_image, ph, pw, _ = data
    p = RETINA_SMALL
    res = culled_match_dataset(
        p, boxes, box_image, ph, pw, semantics=semantics, allow_low_quality=allow, chunk_boxes=5, threads=2
    )
    anchors, _ = grid_anchors(p, 128, 192)
    positive = set(zip(res.pos_image.tolist(), res.pos_anchor.tolist()))
    neg, pos = (0.5, 0.5) if semantics == "ssd" else (0.4, 0.5)
    expected = np.zeros(len(boxes), np.int64)
    for im in range(len(ph)):
        sel = np.flatnonzero(box_image == im)
        if not len(sel):
            continue
        iou = ref_iou(torch.from_numpy(boxes[sel]), anchors)
        best, arg = iou.max(dim=0).values, torch.tensor([int(torch.nonzero(c == c.max())[0]) for c in iou.T])
        for a in torch.nonzero((best >= neg) & (best < pos)).flatten().tolist():
            if (im, a) not in positive:
                expected[sel[int(arg[a])]] += 1
    assert np.array_equal(res.box_ignored, expected)
    assert np.array_equal(
        np.bincount(box_image, weights=res.box_ignored, minlength=len(ph)).astype(np.int64), res.ignored_per_image
    )


@pytest.mark.slow
def test_kernel_statistics_equal_dense_on_many_images():
    """A larger deterministic chunk (retinanet at real sizes, many boxes per image) through both engines."""
    rng = np.random.default_rng(5)
    spec = AnchorSpec.build(
        "retinanet", matcher="torchvision", device="cpu", engine="culled", negative_iou_sample="all"
    )
    n_img = 5
    ph, pw = rng.choice([640, 800, 1024], n_img), rng.choice([800, 1088, 1216], n_img)
    per = np.array([0, 30, 4, 60, 11])
    box_image = np.repeat(np.arange(n_img), per)
    x, y = rng.uniform(0, 1, len(box_image)) * pw[box_image], rng.uniform(0, 1, len(box_image)) * ph[box_image]
    bw = np.exp(rng.uniform(1, 6.5, len(box_image)))
    bh = bw * np.exp(rng.uniform(-1.5, 1.5, len(box_image)))
    boxes = np.stack([x, y, x + bw, y + bh], 1).astype(np.float32)
    for sem in ("torchvision", "mmdet"):
        spec = replace(spec, semantics=sem)
        chunk = _chunk(boxes, box_image, ph, pw, np.array([True, False, True, True, False]), num_classes=4)
        a = chunk_statistics(spec, chunk)
        _, b = _dense_statistics(spec, chunk)
        _assert_same(a, b, sem)


@pytest.mark.slow
def test_kernel_imports_and_runs_without_a_writable_cache():
    """numba refuses ``cache=True`` where no cache location is writable: the kernel then compiles in memory."""
    code = (
        "import numba.core.caching as c; c.CacheImpl._locator_classes = []\n"
        "from imbalance_cli.anchors import kernel as K\n"
        "assert not K._nmin._can_compile or K._nmin._cache.__class__.__name__ == 'NullCache'\n"
        "print(K._count_le(__import__('numpy').array([0.0, 1.0, 2.0]), 1.0))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "2", r.stderr
