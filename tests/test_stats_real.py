"""Real data: statistics of the bundled COCO/LVIS subsets against pycocotools' own indexes and the raw JSON."""

import gzip
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import imbalance_cli
from imbalance_cli.stats.schema import validate

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
COCO_FILES = ["coco-mini_instances_val2017.json.gz", "coco-mini_instances_train2017.json.gz"]


@pytest.fixture(scope="module", params=COCO_FILES)
def coco_case(request, tmp_path_factory):
    """(report dict, pycocotools COCO, raw JSON) for one COCO subset."""
    from pycocotools.coco import COCO

    path = DATA / request.param
    raw = json.loads(gzip.decompress(path.read_bytes()))
    plain = tmp_path_factory.mktemp("coco") / "instances.json"
    plain.write_text(json.dumps(raw))
    coco = COCO(str(plain))
    report = imbalance_cli.analyze(imbalance_cli.load(path), anchors="none").to_dict()
    return report, coco, raw


def _usable(ann):
    return ann["bbox"][2] > 0 and ann["bbox"][3] > 0


def test_per_class_counts_equal_pycocotools(coco_case):
    report, coco, _ = coco_case
    rows = {c["id"]: c for c in report["classes"]}
    assert sorted(rows) == sorted(coco.getCatIds())
    for cat in coco.getCatIds():
        anns = [a for a in coco.loadAnns(coco.getAnnIds(catIds=[cat], iscrowd=False)) if _usable(a)]
        assert rows[cat]["instances"] == len(anns), cat
        assert rows[cat]["images"] == len({a["image_id"] for a in anns}), cat
        assert rows[cat]["name"] == coco.loadCats(cat)[0]["name"]


def test_summary_and_per_image_against_raw_json(coco_case):
    report, coco, raw = coco_case
    d = report["dataset"]
    valid = [a for a in raw["annotations"] if not a["iscrowd"] and _usable(a)]
    assert d["images"] == len(raw["images"]) and d["annotations"] == len(raw["annotations"])
    assert d["crowd"] == sum(a["iscrowd"] for a in raw["annotations"])
    assert d["boxes"] == len(valid) and d["invalid"] == 0
    assert d["categories"] == len(raw["categories"])
    assert d["categories_used"] == len({a["category_id"] for a in valid})
    per_image = Counter(a["image_id"] for a in valid)
    n = np.array([per_image.get(img["id"], 0) for img in raw["images"]])
    assert report["objects_per_image"]["counts"] == np.bincount(n).tolist()
    assert report["objects_per_image"]["mean"] == pytest.approx(n.mean())
    classes = {}
    for a in valid:
        classes.setdefault(a["image_id"], set()).add(a["category_id"])
    k = np.array([len(classes.get(img["id"], ())) for img in raw["images"]])
    assert report["classes_per_image"]["counts"] == np.bincount(k).tolist()
    # COCO size groups by the box's w*h and by the file's area field
    box_area = np.array([a["bbox"][2] * a["bbox"][3] for a in valid])
    seg_area = np.array([a["area"] for a in valid])
    for got, area in (
        (report["scale"]["size_groups"], box_area),
        (report["scale"]["size_groups_by_area_field"], seg_area),
    ):
        assert got["small"] == int((area < 32**2).sum()) and got["large"] == int((area >= 96**2).sum())
        assert got["small"] + got["medium"] + got["large"] == len(valid)
    validate(report)


def test_coco_val_subset_facts():
    # /work/shared/data README facts: 79 images, 624 annotations (5 crowd), 80 categories (78 used)
    r = imbalance_cli.analyze(imbalance_cli.load(DATA / COCO_FILES[0]), anchors="none").to_dict()
    d = r["dataset"]
    assert (d["images"], d["annotations"], d["crowd"], d["categories"], d["categories_used"]) == (79, 624, 5, 80, 78)
    assert r["classes"][0]["id"] == 1 and r["classes"][0]["name"] == "person"


def test_lvis_sample_against_lvis_api(tmp_path):
    from lvis import LVIS

    path = DATA / "lvis_v0.5_val_100.json.gz"
    plain = tmp_path / "lvis.json"
    plain.write_bytes(gzip.decompress(path.read_bytes()))
    api = LVIS(str(plain))
    r = imbalance_cli.analyze(imbalance_cli.load(path), anchors="none").to_dict()
    rows = {c["id"]: c for c in r["classes"]}
    assert len(rows) == len(api.get_cat_ids()) == 1230
    for cat in api.get_cat_ids():
        anns = [a for a in api.load_anns(api.get_ann_ids(cat_ids=[cat])) if _usable(a)]
        assert rows[cat]["instances"] == len(anns)
        assert rows[cat]["images"] == len({a["image_id"] for a in anns})
        file_freq = api.load_cats([cat])[0]["frequency"]
        assert rows[cat]["file_frequency"] == file_freq
    # every class's own frequency that differs from the one computed on this 100-image sample is reported
    disagree = {x["id"] for x in r["frequency_disagreements"]}
    assert disagree == {c for c in rows if rows[c]["frequency"] != rows[c]["file_frequency"]}
    assert r["dataset"]["images_without_boxes"] == sum(1 for i in api.get_img_ids() if not api.img_ann_map[i])
