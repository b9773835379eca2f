"""The mmdetection and detectron2 presets held to those frameworks' own pipelines, image by image.

Expected values: ``tests/data/mmdet-oracle/anchors.json`` (mmdetection 3.3.0: ``CocoDataset``,
``LoadAnnotations``, ``Resize``, ``AnchorGenerator`` / ``MlvlPointGenerator``, ``MaxIoUAssigner``,
``ATSSAssigner``, ``FCOSHead._get_targets_single``) and ``tests/data/detectron2-oracle/anchors.json``
(detectron2's ``load_coco_json``, ``ResizeShortestEdge``, ``transform_instance_annotations``,
``annotations_to_instances``, ``filter_empty_instances``, ``ImageList``, ``DefaultAnchorGenerator``,
``Matcher``), made by ``tools/make_framework_oracles.py anchors`` on the bundled COCO subsets and on the
small synthetic files stored in the fixtures (integer boxes, the issue's examples, exact ATSS ties,
tiny, degenerate and border boxes, an image without boxes).
``tests/data/torchvision-models-oracle/anchors.json``: ``rpn`` and ``ssd300`` from torchvision 0.28's own
``fasterrcnn_resnet50_fpn`` (transform, backbone feature sizes, ``rpn.anchor_generator``,
``rpn.assign_targets_to_anchors``) and ``ssd300_vgg16`` (transform, ``DefaultBoxGenerator``, ``SSDMatcher``),
made by ``tools/make_framework_oracles.py torchvision`` on both COCO subsets and two synthetic files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imbalance_cli.anchors.presets import get_preset
from imbalance_cli.data import load
from imbalance_cli.stats.anchors import label_anchors

DATA = Path(__file__).parent / "data"
EXAMPLES = Path(__file__).parent.parent / "examples" / "data"
ORACLES = {
    "mmdet": json.loads((DATA / "mmdet-oracle" / "anchors.json").read_text()),
    "detectron2": json.loads((DATA / "detectron2-oracle" / "anchors.json").read_text()),
    "torchvision": json.loads((DATA / "torchvision-models-oracle" / "anchors.json").read_text()),
}
PRESETS = {
    "mmdet": ("mmdet-retinanet", "atss", "fcos"),
    "detectron2": ("detectron2-retinanet",),
    "torchvision": ("rpn", "ssd300"),
}
_LOADED: dict = {}


def _dataset(name: str, coco, tmp_path_factory):
    if name not in _LOADED:
        if coco is None:
            path = EXAMPLES / f"{name}.json.gz"
        else:  # the fixture's own bytes: json keeps 201 and 201.0 apart, as the frameworks saw them
            path = tmp_path_factory.mktemp("oracle") / f"{name}.json"
            path.write_text(json.dumps(coco))
        _LOADED[name] = load(str(path), cache=False)
    return _LOADED[name]


def _params():
    for fw, data in ORACLES.items():
        for name in data["datasets"]:
            for preset in PRESETS[fw]:
                yield pytest.param(fw, name, preset, id=f"{preset}-{name}")


@pytest.mark.slow
@pytest.mark.parametrize(("framework", "name", "preset"), list(_params()))
def test_per_image_labels_equal_the_framework(framework, name, preset, tmp_path_factory):
    entry = ORACLES[framework]["datasets"][name]
    ds = _dataset(name, entry["coco"], tmp_path_factory)
    lab = label_anchors(ds, get_preset(preset), device="cpu")
    per = lab.per_image(ds.num_images)
    row_of = {int(i): k for k, i in enumerate(ds.image_ids)}
    pos_cat = np.asarray(ds.category_ids)[ds.box_category[lab.order][lab.result.pos_box]]
    nbox = np.bincount(lab.box_image, minlength=ds.num_images)
    assert len(entry["images"]) == ds.num_images
    for rec in entry["images"]:
        k = row_of[rec["image_id"]]
        exp = rec[preset]
        padded = rec["padded"] if "padded" in rec else exp["padded"]  # torchvision's: per model
        assert (int(lab.padded_h[k]), int(lab.padded_w[k])) == tuple(padded), rec["image_id"]
        assert int(nbox[k]) == rec["boxes"], (rec["image_id"], "boxes kept")
        got = {f: int(per[f][k]) for f in ("anchors", "foreground", "ignored", "background")}
        assert got == {f: exp[f] for f in got}, (rec["image_id"], got, exp)
        cats, cnt = np.unique(pos_cat[lab.result.pos_image == k], return_counts=True)
        assert {str(int(c)): int(n) for c, n in zip(cats, cnt)} == exp["per_class_positive"], rec["image_id"]


def test_integer_and_float_bbox_and_atss_tie_examples_are_in_the_fixtures():
    d2 = ORACLES["detectron2"]["datasets"]
    fg = lambda n: d2[n]["images"][0]["detectron2-retinanet"]  # noqa: E731
    assert (fg("issue-integer-bbox")["foreground"], fg("issue-integer-bbox")["ignored"]) == (10, 71)
    assert (fg("issue-float-bbox")["foreground"], fg("issue-float-bbox")["ignored"]) == (13, 62)
    atss = ORACLES["mmdet"]["datasets"]["issue-atss-tie"]["images"][0]["atss"]
    assert atss["foreground"] == 9 and atss["per_class_positive"] == {"1": 7, "2": 2}
    assert ORACLES["mmdet"]["made_by"]["mmdet"] == "3.3.0"
    assert ORACLES["detectron2"]["made_by"]["facebookresearch/detectron2"].startswith("02b5c4e")


def test_torchvision_models_oracle_totals_and_versions():
    """The bundled val subset's totals from torchvision's own models (the README's table quotes them)."""
    tv = ORACLES["torchvision"]
    assert tv["made_by"]["torchvision"].startswith("0.28") and tv["made_by"]["torch"].startswith("2.13")
    images = tv["datasets"]["coco-mini_instances_val2017"]["images"]
    tot = {
        p: [sum(r[p][k] for r in images) for k in ("anchors", "foreground", "ignored", "background")]
        for p in ("rpn", "ssd300")
    }
    assert tot == {"rpn": [17965551, 3789, 89847, 17871915], "ssd300": [689828, 2405, 0, 687423]}
    assert all(r["ssd300"]["anchors"] == 8732 for r in images)
