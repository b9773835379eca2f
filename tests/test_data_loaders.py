"""Loaders: real subsets against pycocotools / lvis indexes, converted formats, hand-made cases."""

import contextlib
import gzip
import io
import json

import numpy as np
import pytest
from conftest import COCO_TRAIN, COCO_VAL, FIXTURES, LVIS_V05, VOC_XML

import imbalance_cli
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError
from imbalance_cli.stats.classes import class_counts


def _unzipped(src, tmp_path):
    out = tmp_path / src.name.replace(".gz", "")
    out.write_bytes(gzip.decompress(src.read_bytes()))
    return out


@pytest.mark.parametrize("src", [COCO_VAL, COCO_TRAIN], ids=["val", "train"])
def test_coco_counts_equal_pycocotools_indexes(src, tmp_path):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(_unzipped(src, tmp_path)))
    ds = imbalance_cli.load(src)
    assert ds.format == "coco"
    assert ds.num_images == len(gt.imgs) and ds.num_boxes == len(gt.anns)
    assert int(ds.crowd.sum()) == len(gt.getAnnIds(iscrowd=True))
    instances, images = class_counts(ds)
    for row, cid in enumerate(ds.category_ids):
        anns = gt.loadAnns(gt.getAnnIds(catIds=[int(cid)], iscrowd=False))
        anns = [a for a in anns if a["bbox"][2] > 0 and a["bbox"][3] > 0]
        assert instances[row] == len(anns), cid
        assert images[row] == len({a["image_id"] for a in anns}), cid
    # xywh -> xyxy for one record, checked against the raw annotation
    a = gt.anns[int(ds.box_ids[0])]
    x, y, w, h = a["bbox"]
    np.testing.assert_allclose(ds.boxes[0], [x, y, x + w, y + h])


def test_coco_mini_facts():
    val = imbalance_cli.load(COCO_VAL)
    assert (val.num_images, val.num_boxes, int(val.crowd.sum()), val.num_categories) == (79, 624, 5, 80)
    instances, _ = class_counts(val)
    assert int((instances > 0).sum()) == 78
    train = imbalance_cli.load(COCO_TRAIN)
    assert (train.num_images, train.num_boxes, int(train.crowd.sum())) == (80, 739, 8)


def test_lvis_v05_against_lvis_api(tmp_path):
    from lvis import LVIS

    path = _unzipped(LVIS_V05, tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        api = LVIS(str(path))
    ds = imbalance_cli.load(LVIS_V05)
    assert ds.format == "lvis"
    assert (ds.num_images, ds.num_boxes, ds.num_categories) == (100, 977, 1230)
    instances, images = class_counts(ds)
    idx = ds.category_index()
    for cid, img_ids in api.cat_img_map.items():
        assert images[idx[cid]] == len(set(img_ids))
    for cid in api.cats:
        assert instances[idx[cid]] == len([a for a in api.anns.values() if a["category_id"] == cid])
    assert set(ds.frequency) == {"r", "c", "f"}
    raw = json.loads(gzip.decompress(LVIS_V05.read_bytes()))
    for i, im in enumerate(raw["images"]):
        assert ds.neg_category_ids.row(i).tolist() == im["neg_category_ids"]
        assert ds.not_exhaustive_category_ids.row(i).tolist() == im["not_exhaustive_category_ids"]
    cat = raw["categories"][0]
    row = idx[cat["id"]]
    assert ds.category_image_count[row] == cat["image_count"] and ds.synset[row] == cat["synset"]


def test_lvis_v1_image_without_file_name_uses_coco_url(tmp_path):
    d = {
        "images": [
            {
                "id": 5,
                "width": 10,
                "height": 10,
                "coco_url": "http://images.cocodataset.org/train2017/000000000005.jpg",
                "neg_category_ids": [],
                "not_exhaustive_category_ids": [],
            }
        ],
        "annotations": [{"id": 1, "image_id": 5, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4}],
        "categories": [
            {"id": 1, "name": "a", "frequency": "r", "image_count": 1, "instance_count": 1, "synset": "a.n.01"}
        ],
    }
    p = tmp_path / "lvis_v1.json"
    p.write_text(json.dumps(d))
    ds = imbalance_cli.load(p)
    assert ds.format == "lvis" and ds.file_names[0] == "000000000005.jpg"


def _same_statistics(a: Dataset, b: Dataset, names_match=True):
    assert a.num_images == b.num_images and a.num_boxes == b.num_boxes
    ia, ma = class_counts(a)
    ib, mb = class_counts(b)
    # compare per category name (ids may differ between formats)
    ca = {n: (int(i), int(m)) for n, i, m in zip(a.category_names, ia, ma) if i > 0}
    cb = {n: (int(i), int(m)) for n, i, m in zip(b.category_names, ib, mb) if i > 0}
    assert ca == cb
    assert int(a.crowd.sum()) == int(b.crowd.sum())
    assert int(a.valid_mask().sum()) == int(b.valid_mask().sum())
    key_a = np.lexsort(np.round(a.boxes, 6).T[::-1])
    key_b = np.lexsort(np.round(b.boxes, 6).T[::-1])
    np.testing.assert_allclose(a.boxes[key_a], b.boxes[key_b], atol=1e-6)


def test_objects365_fixture_equals_coco_original():
    coco = imbalance_cli.load(COCO_VAL)
    o365 = imbalance_cli.load(FIXTURES / "objects365_from_coco_val.json")
    assert o365.format == "objects365"  # detected from its info description
    _same_statistics(coco, o365)
    assert o365.num_categories == coco.num_categories


def test_openimages_fixture_equals_coco_original():
    coco = imbalance_cli.load(COCO_VAL)
    oi = imbalance_cli.load(
        FIXTURES / "openimages_from_coco_val.csv",
        classes=FIXTURES / "openimages_from_coco_val_classes.csv",
        image_sizes=FIXTURES / "openimages_from_coco_val_sizes.csv",
    )
    assert oi.format == "openimages" and oi.has_image_sizes
    _same_statistics(coco, oi)
    assert oi.num_categories == 80
    np.testing.assert_array_equal(np.sort(oi.widths), np.sort(coco.widths))


def test_openimages_without_sizes_is_normalised():
    oi = imbalance_cli.load(FIXTURES / "openimages_from_coco_val.csv")
    assert not oi.has_image_sizes and np.isnan(oi.widths).all()
    assert oi.boxes.max() <= 1.0 + 1e-9 and oi.boxes.min() >= 0.0
    assert oi.category_codes[0].startswith("/m/")


def test_voc_real_file():
    ds = imbalance_cli.load(VOC_XML)
    assert ds.format == "voc" and ds.num_categories == 20 and ds.image_ids.tolist() == [1]
    assert (ds.widths[0], ds.heights[0]) == (353, 500)
    names = ds.category_names[ds.box_category].tolist()
    assert names == ["dog", "person"]
    # VOC 1-based inclusive -> continuous: xmin, ymin shifted by -1
    np.testing.assert_allclose(ds.boxes, [[47, 239, 195, 371], [7, 11, 352, 498]])
    assert ds.difficult.tolist() == [False, False]


def test_voc_directory_and_difficult(tmp_path):
    xml = VOC_XML.read_text().replace("<difficult>0</difficult>", "<difficult>1</difficult>", 1)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "000001.xml").write_text(xml)
    (tmp_path / "000002.xml").write_text(xml.replace("000001.jpg", "000002.jpg"))
    ds = imbalance_cli.load(tmp_path)
    assert ds.num_images == 2 and ds.num_boxes == 4
    assert sorted(ds.image_ids.tolist()) == [1, 2]
    assert int(ds.difficult.sum()) == 2


def test_gzip_any_format(tmp_path):
    p = tmp_path / "voc.xml.gz"
    p.write_bytes(gzip.compress(VOC_XML.read_bytes()))
    assert imbalance_cli.load(p).num_boxes == 2


def test_format_override():
    ds = imbalance_cli.load(COCO_VAL, format="objects365")
    assert ds.format == "objects365"


def test_invalid_boxes_by_reason():
    ds = Dataset(
        image_ids=[1],
        widths=[100],
        heights=[50],
        boxes=[[0, 0, 10, 10], [5, 5, 5, 9], [np.nan, 0, 1, 1], [120, 0, 130, 10], [0, 0, 10, 10], [90, 40, 110, 60]],
        box_image=[0] * 6,
        box_category=[0] * 6,
        category_ids=[1],
        category_names=["a"],
        crowd=[0, 0, 0, 0, 1, 0],
    )
    # valid, zero width, non-finite, entirely right of the image, crowd, partly outside (still valid)
    assert ds.invalid_reason().tolist() == [-1, 1, 0, 2, -1, -1]
    assert ds.valid_mask().tolist() == [True, False, False, False, False, True]
    # kept between calls, read-only, and computed again when a column it reads is replaced
    assert ds.invalid_reason() is ds.invalid_reason()
    with pytest.raises(ValueError):
        ds.invalid_reason()[0] = 1
    ds.widths = np.array([200.0])  # the box right of x = 100 now overlaps the image
    assert ds.invalid_reason().tolist() == [-1, 1, 0, -1, -1, -1]
    ds.has_image_sizes = False  # normalised boxes: the image is [0, 1]
    assert ds.invalid_reason().tolist() == [-1, 1, 0, 2, -1, 2]


# ---- bad input: one InputError naming the file and the record ----------------------------------
BASE = {
    "images": [{"id": 1, "width": 10, "height": 10, "file_name": "a.jpg"}],
    "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "iscrowd": 0}],
    "categories": [{"id": 1, "name": "a"}],
}


def _mutate(fn):
    d = json.loads(json.dumps(BASE))
    fn(d)
    return json.dumps(d).encode()


BAD = {
    "malformed": (b'{"images": [}', "malformed"),
    "truncated": (json.dumps(BASE).encode()[:-20], "truncated"),
    "empty": (b"  \n", "empty"),
    "unrecognised": (b"hello world\n", "unrecognised"),
    "missing_top_key": (_mutate(lambda d: d.pop("categories")), "'categories'"),
    "missing_bbox": (_mutate(lambda d: d["annotations"][0].pop("bbox")), "annotations[0] (id 7)"),
    "bad_bbox": (_mutate(lambda d: d["annotations"][0].update(bbox=[1, 2, 3])), "annotations[0] (id 7)"),
    "undefined_category": (_mutate(lambda d: d["annotations"][0].update(category_id=99)), "category_id 99"),
    "undefined_image": (_mutate(lambda d: d["annotations"][0].update(image_id=42)), "image_id 42"),
    "duplicate_image": (_mutate(lambda d: d["images"].append(dict(d["images"][0]))), "duplicate image id 1"),
    "duplicate_annotation": (
        _mutate(lambda d: d["annotations"].append(dict(d["annotations"][0]))),
        "duplicate annotation id 7",
    ),
    "duplicate_category": (
        _mutate(lambda d: d["categories"].append({"id": 1, "name": "b"})),
        "duplicate category id 1",
    ),
    "bad_width": (_mutate(lambda d: d["images"][0].update(width="wide")), "images[0] (id 1)"),
    "bad_iscrowd": (_mutate(lambda d: d["annotations"][0].update(iscrowd=3)), "iscrowd"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_json_inputs_raise_one_line_input_error(name, tmp_path):
    data, expected = BAD[name]
    p = tmp_path / f"{name}.json"
    p.write_bytes(data)
    with pytest.raises(InputError) as e:
        imbalance_cli.load(p)
    msg = e.value.one_line()
    assert str(p) in msg and expected in msg and "\n" not in msg


def test_truncated_gzip(tmp_path):
    p = tmp_path / "x.json.gz"
    p.write_bytes(gzip.compress(json.dumps(BASE).encode())[:-12])
    with pytest.raises(InputError, match="gzip"):
        imbalance_cli.load(p)


def test_bad_xml_and_csv(tmp_path):
    x = tmp_path / "a.xml"
    x.write_text("<annotation><size><width>10</width>")
    with pytest.raises(InputError, match="malformed XML"):
        imbalance_cli.load(x)
    x.write_text(VOC_XML.read_text().replace("<xmin>48</xmin>", "<xmin>abc</xmin>"))
    with pytest.raises(InputError, match=r"<object> #1.*<xmin> must be a number"):
        imbalance_cli.load(x)
    c = tmp_path / "boxes.csv"
    c.write_text("ImageID,LabelName,XMin,XMax\nabc,/m/1,0.1,0.2\n")
    with pytest.raises(InputError, match="missing column"):
        imbalance_cli.load(c)
    c.write_text("ImageID,LabelName,XMin,XMax,YMin,YMax\nabc,/m/1,0.1,0.2,oops,0.3\n")
    with pytest.raises(InputError, match="line 2"):
        imbalance_cli.load(c)
    classes = tmp_path / "classes.csv"
    classes.write_text("/m/2,two\n")
    c.write_text("ImageID,LabelName,XMin,XMax,YMin,YMax\nabc,/m/1,0.1,0.2,0.1,0.3\n")
    with pytest.raises(InputError, match=r"line 2.*not in the class list"):
        imbalance_cli.load(c, classes=classes)


def test_category_statistics_file_is_refused_by_load():
    from conftest import LVIS_V1_CATS

    with pytest.raises(InputError, match="category-statistics"):
        imbalance_cli.load(LVIS_V1_CATS)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        imbalance_cli.load(tmp_path / "nope.json")
    with pytest.raises(InputError, match="unknown format"):
        imbalance_cli.load(COCO_VAL, format="darknet")


def test_segmentations_are_skipped_and_change_nothing(tmp_path):
    d = json.loads(json.dumps(BASE))
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(d))
    d["annotations"][0]["segmentation"] = [[0, 0, 2, 0, 2.5e0, 2]]
    d["annotations"].append(
        {
            "id": 8,
            "image_id": 1,
            "category_id": 1,
            "bbox": [1, 1, 3, 3],
            "iscrowd": 1,
            "segmentation": {"counts": 'a]b\\"}{[', "size": [10, 10]},
        }
    )
    d["categories"][0]["name"] = 'tricky "segmentation": [[1, 2]] name ]}'
    tricky = tmp_path / "tricky.json"
    tricky.write_text(json.dumps(d))
    a, b = imbalance_cli.load(plain, cache=False), imbalance_cli.load(tricky, cache=False)
    assert b.category_names[0] == d["categories"][0]["name"]
    assert b.num_boxes == a.num_boxes + 1
    np.testing.assert_array_equal(b.boxes[:-1], a.boxes)
    np.testing.assert_array_equal(b.box_ids, [a["id"] for a in d["annotations"]])
    assert b.crowd.tolist() == [bool(a.get("iscrowd", 0)) for a in d["annotations"]]


def test_malformed_json_location_is_in_the_original_bytes(tmp_path):
    p = tmp_path / "bad.json"
    raw = b'{"annotations": [{"segmentation": [[1, 2, 3]], "bbox": [1, 2,, 3]}]}'
    p.write_bytes(raw)
    column = raw.index(b",,") + 2  # the second comma, 1-based
    with pytest.raises(InputError, match=f"column {column} "):
        imbalance_cli.load(p)


@pytest.mark.slow
def test_cli_version_and_module_entry():
    import subprocess
    import sys

    import imbalance_cli as im

    r = subprocess.run([sys.executable, "-m", "imbalance_cli", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == im.__version__
    r = subprocess.run([sys.executable, "-m", "imbalance_cli"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "stats" in r.stdout and "margins" in r.stdout
