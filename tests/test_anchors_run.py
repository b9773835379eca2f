"""The chunked, multi-process anchor pass against the unchunked engine, the assigner dispatch, and the limits.

Expected reports come from the project's code at commit 17c0ee0, before the pass was chunked
(``tests/data/anchor_reports/make_reference.py`` says how they were made), on the bundled real
subsets (COCO val/train mini, LVIS v0.5 val 100, Objects365-shaped COCO val).
"""

import dataclasses
import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from imbalance_cli import load
from imbalance_cli.anchors import rules
from imbalance_cli.anchors.culled import culled_match_dataset
from imbalance_cli.anchors.generator import padded_sizes, scale_boxes
from imbalance_cli.anchors.presets import AnchorPreset, ResizePolicy, get_preset
from imbalance_cli.cli import app
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError
from imbalance_cli.specs import MAX_HISTOGRAM_BINS, MAX_IMAGE_SIDE, AnchorSpec
from imbalance_cli.stats.anchors import anchor_statistics, label_anchors

ROOT = Path(__file__).resolve().parents[1]
REF_DIR = ROOT / "tests" / "data" / "anchor_reports"
sys.path.insert(0, str(REF_DIR))
from make_reference import CASES  # noqa: E402

REFERENCE = json.loads(gzip.decompress((REF_DIR / "reference.json.gz").read_bytes()))
_DATASETS: dict = {}


def _data(path):
    if path not in _DATASETS:
        _DATASETS[path] = load(str(ROOT / path))
    return _DATASETS[path]


def _report(name, **kw):
    _, path, preset, opts = next(c for c in CASES if c[0] == name)
    s = anchor_statistics(_data(path), preset, device="cpu", **opts, **kw)
    s.pop("seconds")
    return json.loads(json.dumps(s, sort_keys=True))


def _diff(a, b):
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


#: Keys whose meaning changed after the reference was made (issue 21: the two meanings of "positive" named
#: apart, size groups by the box's own w*h): held to this code's unchunked one-process report instead, and
#: the old values to their new names by test_renamed_keys_keep_the_reference_values.
RENAMED = ("boxes_without_positive", "boxes_below_positive_iou", "coverage")
#: Keys added after the reference was made (issue 23: boxes with only ignored anchors), held the same way.
ADDED = ("boxes_ignored_only",)
#: Display strings the reference carried and the report no longer does (issue 26: the renderers format
#: ``pos_neg_ratio`` / ``task_pos_neg_ratio``, which stay): left out of the comparison.
REMOVED = ("pos_neg_ratio_text", "task_pos_neg_ratio_text")
for _case in REFERENCE.values():
    for _key in REMOVED:
        _case["report"].pop(_key, None)
_UNCHUNKED: dict = {}


def _expected(name):
    if name not in _UNCHUNKED:
        _UNCHUNKED[name] = _report(name, chunk_images="all", workers=1)
    ref = dict(REFERENCE[name]["report"])
    for k in RENAMED + ADDED:
        ref[k] = _UNCHUNKED[name].get(k)
    return ref


@pytest.mark.slow
@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_chunked_pass_equals_unchunked_reference(name):
    assert _diff(_report(name, chunk_images=7, workers=2), _expected(name)) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_renamed_keys_keep_the_reference_values(name):
    """The reference's "without positive" counted boxes below the positive IoU: that count is now
    boxes_below_positive_iou (assigners without an IoU threshold: boxes without any positive, as before)."""
    ref, now = REFERENCE[name]["report"], _report(name)
    renamed = now["boxes_below_positive_iou"]
    assert (renamed if renamed is not None else now["boxes_without_positive"]) == ref["boxes_without_positive"]
    for cid, row in ref["coverage"]["by_class"].items():
        got = now["coverage"]["by_class"][cid]
        assert got.get("below_positive_iou", got["without_positive"]) == row["without_positive"]
        assert got["below_negative"] == row["below_negative"] and got["boxes"] == row["boxes"]
    assert now["boxes_without_positive"] <= ref["boxes_without_positive"]


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [1, 7, "all"])
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("name", ["coco_val_retinanet_mmdet", "coco_val_ssd300"])
def test_any_chunk_size_and_worker_count(name, chunk, workers):
    assert _diff(_report(name, chunk_images=chunk, workers=workers), _expected(name)) == []


def test_label_anchors_chunked_equals_one_whole_dataset_call():
    ds = _data("examples/data/coco-mini_instances_val2017.json.gz")
    p = get_preset("retinanet")
    order, _ = ds.image_offsets(ds.valid_mask())
    bimg = ds.box_image[order]
    ph, pw = padded_sizes(ds.heights, ds.widths, p)
    sb = scale_boxes(ds.boxes[order], ds.heights[bimg], ds.widths[bimg], p)
    whole = culled_match_dataset(p, sb, bimg, ph, pw)
    spec = AnchorSpec.build("retinanet", device="cpu", chunk_images=5, workers=2)
    lp = label_anchors(ds, spec=spec)

    def key(r):
        return np.lexsort((r.pos_anchor, r.pos_image))

    a, b = lp.result, whole
    ka, kb = key(a), key(b)
    for f in ("pos_image", "pos_anchor", "pos_level", "pos_box", "pos_iou"):
        np.testing.assert_array_equal(getattr(a, f)[ka], getattr(b, f)[kb])
    for f in ("ignored_per_image", "box_max_iou", "box_best_anchor", "box_best_level"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


@dataclasses.dataclass(frozen=True)
class _AssignedPreset(AnchorPreset):
    assigner: str = "test-mmdet"


def test_assigner_dispatch_through_the_registry():
    calls = []

    def assign(preset, boxes, box_image, padded_h, padded_w, *, semantics, images=None):
        calls.append(len(padded_h))
        return culled_match_dataset(preset, boxes, box_image, padded_h, padded_w, semantics="mmdet")

    rules.register_assigner("test-mmdet", assign)
    try:
        base = get_preset("retinanet")
        fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        fields["assigner"] = "test-mmdet"
        preset = _AssignedPreset(**fields)
        name = "coco_val_retinanet_mmdet"
        _, path, _, opts = next(c for c in CASES if c[0] == name)
        opts = {k: v for k, v in opts.items() if k != "matcher"}  # an assigner preset takes no --matcher
        s = anchor_statistics(_data(path), preset, device="cpu", chunk_images=40, workers=1, **opts)
        s.pop("seconds")
        s = json.loads(json.dumps(s, sort_keys=True))
        # the registered function labelled every image, chunk by chunk: the same labels as the mmdet engine.
        # An assigner preset has no negative IoU band (no negative-IoU histogram) and a box counts as covered
        # when it got a positive, so those fields are compared apart.
        ref = REFERENCE[name]["report"]
        apart = {
            "boxes_without_positive",
            "boxes_below_negative",
            "coverage",
            "negative_iou",
            "matcher",
            "assigner",
            *ADDED,
        }
        assert sorted(set(_diff(s, ref)) - apart) == [] and sum(calls) == _data(path).num_images and len(calls) > 1
        assert s["assigner"] == "test-mmdet" and s["negative_iou"]["sample_images"] == 0
        assert sum(s["negative_iou"]["counts"]) == 0
        # covered = got a positive: here every box the reference engine left without one has a low-quality match
        assert s["boxes_without_positive"] <= ref["boxes_without_positive"]
    finally:
        rules.ASSIGNERS.pop("test-mmdet", None)
    with pytest.raises(
        InputError, match="(unknown anchor assigner|assigner must be one of|field 'assigner': must be one of).*'nope'"
    ):
        anchor_statistics(
            Dataset(
                image_ids=[1],
                widths=[64],
                heights=[48],
                boxes=[[4, 4, 40, 30]],
                box_image=[0],
                box_category=[0],
                category_ids=[1],
                category_names=["x"],
            ),
            dataclasses.replace(preset, assigner="nope"),
            device="cpu",
        )


# ----------------------------------------------------------------------------------------------
# limits: refused before allocating, one line
# ----------------------------------------------------------------------------------------------


def _one(width, height, box=(4, 4, 40, 30)):
    return Dataset(
        image_ids=[7],
        widths=[width],
        heights=[height],
        boxes=[list(box)],
        box_image=[0],
        box_category=[0],
        category_ids=[1],
        category_names=["x"],
    )


@pytest.mark.parametrize(
    "w, h, needle",
    [
        (1e9, 500, "beyond the limit"),
        (500, 1e9, "beyond the limit"),
        (1e308, 500, "beyond the limit"),
        (MAX_IMAGE_SIDE + 1, 10, "beyond the limit"),
        (float("inf"), 10, "no usable size"),
        (0, 10, "no usable size"),
        (30000, 1, "resizes to"),  # retinanet: 1 x 30000 -> 0 x 1333
    ],
)
def test_image_size_limits(w, h, needle):
    with pytest.raises(InputError, match=needle) as e:
        anchor_statistics(_one(w, h), "retinanet", device="cpu")
    assert "\n" not in e.value.one_line() and "image 7" in e.value.one_line()


def test_anchors_per_image_limit_before_allocating():
    huge = AnchorPreset(
        name="huge",
        sizes=((16.0,),),
        aspect_ratios=((1.0,),),
        strides=(1,),
        level_names=("P",),
        resize=ResizePolicy(None, None, (100_000, 100_000), 1),
    )
    # refused by the preset's own bounds (anchors/presets.py) or, failing that, by the spec's per-image limit
    with pytest.raises(InputError, match="exceed the limits|at most 50,000,000 are allowed"):
        anchor_statistics(_one(64, 48), huge, device="cpu")


@pytest.mark.parametrize("bins", [0, MAX_HISTOGRAM_BINS + 1, 100_000, True, 2.5])
def test_spatial_bins_limit(bins):
    with pytest.raises(InputError, match="spatial bins"):
        AnchorSpec.build("retinanet", device="cpu", spatial_bins=bins)


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"workers": -1}, "--workers"),
        ({"workers": 10_000}, "--workers"),
        ({"chunk_images": 0}, "--chunk-size"),
        ({"engine": "fast"}, "--engine"),
        ({"engine": "culled", "device": "cuda:0"}, None),
        ({"negative_iou_sample": 0}, "--negative-iou-sample"),
        ({"pos_iou": float("nan")}, "--pos-iou"),
    ],
)
def test_spec_rejects_bad_options(kw, needle):
    import torch

    if needle is None:
        if torch.cuda.is_available():
            with pytest.raises(InputError, match="culled engine runs on the CPU"):
                AnchorSpec.build("retinanet", **kw)
        return
    with pytest.raises(InputError, match=needle):
        AnchorSpec.build("retinanet", device="cpu", **kw)


def test_spec_is_resolved_once():
    s = AnchorSpec.build("ssd300", matcher="torchvision", device="cpu", negative_iou_sample="all", chunk_images="all")
    assert (s.semantics, s.engine, s.device, s.negative_iou_sample, s.chunk_images) == (
        "ssd",
        "culled",
        "cpu",
        None,
        None,
    )
    s = AnchorSpec.build("rpn", device="cpu", pos_iou=0.6, neg_iou=0.2, workers=3)
    assert (s.preset.pos_iou, s.preset.neg_iou, s.workers, s.negative_iou_sample) == (0.6, 0.2, 3, 100)
    assert AnchorSpec.build(s) is s


runner = CliRunner()


def _cli(*args):
    return runner.invoke(app, ["stats", *map(str, args)])


def test_cli_voc_huge_width_one_line(tmp_path):
    xml = (ROOT / "examples" / "data" / "VOC2007_Annotations_000001.xml").read_text()
    f = tmp_path / "huge.xml"
    f.write_text(xml.replace("<width>353</width>", "<width>1e308</width>"))
    res = _cli(f, "--device", "cpu", "--json")
    assert res.exit_code == 2, (res.stdout, res.stderr)
    err = res.stderr.strip()
    assert err.count("\n") == 0 and "huge.xml" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--location-bins", "100000"], "--location-bins"),
        (["--engine", "warp"], "--engine"),
        (["--workers", "-2"], "--workers"),
        (["--chunk-size", "0"], "--chunk-size"),
    ],
)
def test_cli_rejects_bad_anchor_options_in_one_line(args, needle):
    res = _cli(ROOT / "examples" / "data" / "VOC2007_Annotations_000001.xml", "--device", "cpu", *args)
    assert res.exit_code == 2 and needle in res.stderr and res.stderr.count("\n") == 1, res.stderr


def test_cli_help_lists_choices():
    res = runner.invoke(app, ["stats", "--help"], env={"COLUMNS": "300", "TERMINAL_WIDTH": "300"})
    for choice in ("torchvision|mmdet|ssd|auto", "auto|cpu|cuda", "auto|culled|dense", "--workers", "--chunk-size"):
        assert choice in res.stdout, choice
