"""The YOLO / Ultralytics loader: data.yaml, labels folders, bad lines, EXIF, and the bundled sample held to COCO."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import COCO_TRAIN, COCO_VAL, REAL
from PIL import Image
from typer.testing import CliRunner

from imbalance_cli import load
from imbalance_cli.cli import app
from imbalance_cli.data import yolo
from imbalance_cli.errors import InputError

SAMPLE = REAL / "yolo-coco-mini" / "data.yaml"
runner = CliRunner()


def _coco(path):
    return json.loads(gzip.decompress(Path(path).read_bytes()))


# ---- the bundled sample against the COCO original ---------------------------------------------------
@pytest.mark.parametrize("split,coco_path", [("train", COCO_TRAIN), ("val", COCO_VAL)])
def test_sample_matches_coco_original(split, coco_path):
    ds = load(SAMPLE)
    assert ds.format == "yolo" and ds.has_image_sizes
    part = yolo.split_datasets(ds)[split]
    d = _coco(coco_path)
    cats = sorted(d["categories"], key=lambda c: c["id"])
    assert list(part.category_names) == [c["name"] for c in cats]
    # image sizes: read from the PNG headers, equal to COCO's width/height for the same image id
    sizes = {im["id"]: (im["width"], im["height"]) for im in d["images"]}
    assert sorted(part.image_ids.tolist()) == sorted(sizes)
    for iid, w, h in zip(part.image_ids, part.widths, part.heights):
        assert (w, h) == sizes[int(iid)]
    # per-class counts (by name) of the non-crowd COCO boxes (Ultralytics' converter drops crowd)
    anns = [a for a in d["annotations"] if not a["iscrowd"]]
    name_of = {c["id"]: c["name"] for c in cats}
    expected = {}
    for a in anns:
        expected[name_of[a["category_id"]]] = expected.get(name_of[a["category_id"]], 0) + 1
    got = {}
    for k in part.box_category:
        got[str(part.category_names[k])] = got.get(str(part.category_names[k]), 0) + 1
    assert got == expected
    # boxes: per image, sorted, within %g rounding of the original pixel boxes
    row_of = {int(i): r for r, i in enumerate(part.image_ids)}
    for iid in sizes:
        mine = part.boxes[part.box_image == row_of[iid]]
        ref = np.array(
            [
                [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                for a in anns
                if a["image_id"] == iid
            ]
        ).reshape(-1, 4)
        assert len(mine) == len(ref)
        if len(ref):  # one-to-one nearest match, every coordinate within 0.01 px
            dist = np.abs(ref[:, None, :] - mine[None, :, :]).max(axis=2)
            nearest = dist.argmin(axis=1)
            assert len(set(nearest.tolist())) == len(ref)
            assert dist[np.arange(len(ref)), nearest].max() < 0.01
    assert ds.info["bad_line_count"] == 0


def test_sample_statistics_equal_coco_statistics():
    from imbalance_cli.stats import analyze

    part = yolo.split_datasets(load(SAMPLE))["val"]
    ours = analyze(part).to_dict()
    ref = analyze(load(COCO_VAL)).to_dict()
    assert ours["dataset"]["boxes"] == ref["dataset"]["boxes"] == 619
    assert ours["dataset"]["images"] == ref["dataset"]["images"] == 79
    by_name = {c["name"]: (c["instances"], c["images"]) for c in ref["classes"]}
    assert {c["name"]: (c["instances"], c["images"]) for c in ours["classes"]} == by_name
    assert ours["measures"]["gini"] == pytest.approx(ref["measures"]["gini"])
    assert ours["objects_per_image"]["counts"] == ref["objects_per_image"]["counts"]


# ---- path mapping, names, splits ---------------------------------------------------------------------
def test_img2label_path_maps_last_images_folder():
    p = os.sep.join(["", "data", "images", "x", "images", "train", "a.b.jpg"])
    assert yolo.img2label_path(p) == os.sep.join(["", "data", "images", "x", "labels", "train", "a.b.txt"])


def _img(path: Path, w: int, h: int, exif_orientation: int | None = None, fmt: str | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", (w, h), (10, 20, 30))
    kw = {}
    if exif_orientation is not None:
        ex = Image.Exif()
        ex[274] = exif_orientation
        kw["exif"] = ex.tobytes()
    im.save(path, format=fmt, **kw)


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    _img(root / "images" / "train" / "a.png", 100, 50)
    _img(root / "images" / "train" / "b.png", 40, 80)
    _img(root / "images" / "train" / "bg.png", 30, 30)  # no label file: background
    _img(root / "images" / "val" / "c.png", 200, 100)
    _img(root / "images" / "val" / "empty.png", 20, 20)
    lab = root / "labels"
    (lab / "train").mkdir(parents=True)
    (lab / "val").mkdir(parents=True)
    (lab / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n1 0.25 0.5 0.5 1.0\n")
    (lab / "train" / "b.txt").write_text("1 0.1 0.2 0.3 0.7 0.5 0.4\n")  # 7 fields: a 3-point segment
    (lab / "val" / "c.txt").write_text("0 0.5 0.5 1 1\n")
    (lab / "val" / "empty.txt").write_text("\n")
    return root


def test_data_yaml_dirs_names_dict_and_background(tmp_path):
    root = _tree(tmp_path)
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames:\n  0: cat\n  1: dog\n")
    ds = load(root / "data.yaml")
    assert list(ds.category_names) == ["cat", "dog"]
    assert ds.info["splits"] == {"train": [0, 3], "val": [3, 5]}
    assert ds.info["background_images"] == 2 and ds.info["label_files_missing"] == 1
    assert ds.info["segment_lines"] == 1
    files = [Path(f).name for f in ds.file_names]
    assert files == ["a.png", "b.png", "bg.png", "c.png", "empty.png"]
    a = ds.boxes[ds.box_image == 0]
    # image a is 100 x 50: (0.5, 0.5, 0.2, 0.4) -> x 40..60, y 15..35; (0.25, 0.5, 0.5, 1) -> x 0..50, y 0..50
    np.testing.assert_allclose(a, [[40, 15, 60, 35], [0, 0, 50, 50]], atol=1e-5)
    # segment (0.1,0.2) (0.3,0.7) (0.5,0.4) on 40 x 80 -> bbox x 0.1..0.5, y 0.2..0.7 -> 4..20, 16..56
    np.testing.assert_allclose(ds.boxes[ds.box_image == 1], [[4, 16, 20, 56]], atol=1e-5)
    assert ds.box_category.tolist() == [0, 1, 1, 0]


def test_data_yaml_list_files_relative_to_the_working_directory(tmp_path, monkeypatch):
    """'./' lines are relative to the list's folder, other relative lines to the working directory (Ultralytics)."""
    root = _tree(tmp_path)
    (root / "train.txt").write_text("./images/train/a.png\nimages/train/b.png\n\nimages/train/readme.md\n")
    (root / "data.yaml").write_text(f"path: {root}\ntrain: [train.txt, images/val]\nnames: [cat, dog]\nnc: 2\n")
    monkeypatch.chdir(tmp_path)  # images/train/b.png is not there
    ds = load(root / "data.yaml")
    assert list(ds.info["splits"]) == ["train"]
    assert [Path(f).name for f in ds.file_names] == ["a.png", "c.png", "empty.png"]
    assert ds.info["corrupt"] == ["images/train/b.png: no such image file"]
    monkeypatch.chdir(root)  # now it is (sorted as strings: the relative path after the absolute ones)
    assert [Path(f).name for f in load(root / "data.yaml").file_names] == ["a.png", "c.png", "empty.png", "b.png"]
    (root / "d2.yaml").write_text("train: images/train\nnc: 3\n")
    assert list(load(root / "d2.yaml").category_names) == ["class_0", "class_1", "class_2"]


def test_path_key_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    """Ultralytics' check_det_dataset: a relative 'path' resolves against the working directory;
    no 'path': the YAML's folder."""
    root = _tree(tmp_path)
    (root / "dot.yaml").write_text("path: .\ntrain: images/train\nnames: [cat, dog]\n")
    monkeypatch.chdir(root)
    assert load(root / "dot.yaml").num_images == 3
    monkeypatch.chdir(tmp_path)  # '.' is now tmp_path, which has no images/train
    with pytest.raises(InputError, match="no such directory"):
        load(root / "dot.yaml")
    (root / "rel.yaml").write_text("path: nowhere/else\ntrain: images/train\nnames: [cat, dog]\n")
    with pytest.raises(InputError, match="does not exist relative to the working directory"):
        load(root / "rel.yaml")
    # the bundled sample has no 'path' key: it loads from any folder
    assert load(SAMPLE).num_images == 159


@pytest.mark.parametrize(
    "text,msg",
    [
        ("train: images/train\nnames: [a]\nnc: 2\n", "'nc' is 2 but 'names' has 1"),
        ("names: [a, b]\n", "names no split"),
        ("train: nowhere\nnames: [a, b]\n", "no such directory"),
        ("train: [images/train\n", "malformed YAML"),
        ("train: images/train\nnames: {0: a, 2: b}\n", "without gaps"),
    ],
)
def test_data_yaml_errors(tmp_path, text, msg):
    root = _tree(tmp_path)
    (root / "bad.yaml").write_text(text)
    with pytest.raises(InputError, match=msg):
        load(root / "bad.yaml")


def test_a_bad_line_drops_the_whole_image_and_names_file_and_line(tmp_path):
    root = _tree(tmp_path)
    (root / "labels" / "train" / "a.txt").write_text(
        "0 0.5 0.5 0.2 0.4\n"  # good
        "0 0.5 0.5 0.2\n"  # 4 fields: the first bad line
        "2 0.5 0.5 0.2 0.2\n"  # class out of range (nc 2)
    )
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [cat, dog]\n")
    ds = load(root / "data.yaml")
    f = str(root / "labels" / "train" / "a.txt")
    assert ds.info["bad_line_count"] == 1 and ds.info["corrupt_image_count"] == 1
    assert ds.info["bad_lines"] == [f"{f}:2: 4 fields (a box is 'class cx cy w h')"]
    assert "a.png" not in [Path(x).name for x in ds.file_names]  # skipped, as the trainer skips it
    with pytest.raises(InputError, match=":2: 4 fields"):
        yolo.load(root / "data.yaml", strict=True)
    r = runner.invoke(app, ["stats", str(root / "data.yaml"), "--anchors", "none", "--strict"])
    assert r.exit_code == 2 and f"{f}:2" in r.output and "Traceback" not in r.output


def test_exif_orientation_swaps_size_as_exif_size(tmp_path):
    from imbalance_cli.data.yolo_images import verify_image

    for o, swapped in ((1, False), (3, False), (5, True), (6, True), (7, True), (8, True)):
        p = tmp_path / "images" / f"r{o}.jpg"
        _img(p, 64, 32, exif_orientation=o, fmt="JPEG")
        assert verify_image(str(p)) == ((32, 64) if swapped else (64, 32)), o
        # YOLOv5's exif_size swaps for 6 and 8 only
        assert verify_image(str(p), 5) == ((32, 64) if o in (6, 8) else (64, 32)), o
    assert isinstance(verify_image(str(tmp_path / "nothing.jpg")), str)


def test_sizes_never_decode_pixels(tmp_path, monkeypatch):
    from PIL import ImageFile

    from imbalance_cli.data.yolo_images import verify_image

    files = []
    for fmt, suf in (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("BMP", "bmp"), ("TIFF", "tif")):
        p = tmp_path / "images" / f"x.{suf}"
        _img(p, 48, 24, exif_orientation=6 if fmt in ("JPEG", "PNG", "WEBP", "TIFF") else None, fmt=fmt)
        files.append((fmt, p))

    def no_decode(self, *a, **k):
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    # orientation 6 swaps JPEG, PNG and WebP; Pillow itself already reports a TIFF of orientation 6 as 24 x 48;
    # BMP carries no EXIF
    for fmt, p in files:
        assert verify_image(str(p)) == ((48, 24) if fmt == "BMP" else (24, 48)), fmt


def test_threaded_verification_equals_sequential():
    from imbalance_cli.data.yolo_images import verify_image, verify_images

    files = sorted(str(p) for p in (REAL / "yolo-coco-mini" / "images").rglob("*.png"))
    assert verify_images(files, threads=4) == [verify_image(f) for f in files]


def test_bare_labels_folder_with_classes_and_images(tmp_path):
    root = _tree(tmp_path)
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n")
    ds = load(root / "labels" / "train", classes=names)
    assert ds.format == "yolo" and list(ds.category_names) == ["cat", "dog"]
    assert ds.has_image_sizes  # images found by labels/ -> images/
    np.testing.assert_allclose(ds.boxes[ds.box_image == 0], [[40, 15, 60, 35], [0, 0, 50, 50]])
    # labels without images: boxes stay normalised, sizes unknown
    lone = tmp_path / "lone" / "labels"
    lone.mkdir(parents=True)
    (lone / "x.txt").write_text("0 0.5 0.5 0.2 0.4\n")
    ds2 = load(lone, classes=names)
    assert not ds2.has_image_sizes
    np.testing.assert_allclose(ds2.boxes, [[0.4, 0.3, 0.6, 0.7]])
    # class out of range of --classes is a bad line
    (lone / "y.txt").write_text("5 0.5 0.5 0.2 0.4\n")
    assert load(lone, classes=names).info["bad_line_count"] == 1


def test_voc_directory_still_voc(tmp_path):
    d = tmp_path / "voc"
    d.mkdir()
    (d / "a.xml").write_bytes((REAL / "VOC2007_Annotations_000001.xml").read_bytes())
    assert load(d).format == "voc"


def test_forced_yolo_on_a_non_yaml_file_is_a_clean_error():
    with pytest.raises(InputError, match="not a YOLO data.yaml"):
        load(COCO_VAL, format="yolo")
    r = runner.invoke(app, ["stats", str(COCO_VAL), "--format", "yolo", "--anchors", "none"])
    assert r.exit_code == 2 and "not a YOLO data.yaml" in r.output


def test_cli_default_anchors_yolov5_for_yolo_and_none_without_images(tmp_path):
    root = _tree(tmp_path)
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [cat, dog]\n")
    r = runner.invoke(app, ["stats", str(root / "data.yaml"), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["splits"]["train"]["anchors"]["preset"] == "yolov5"
    assert d["labels"]["background_images"] == 2 and d["splits"]["val"]["dataset"]["images_without_boxes"] == 1
    lone = tmp_path / "lone" / "labels"
    lone.mkdir(parents=True)
    (lone / "x.txt").write_text("0 0.5 0.5 0.2 0.4\n1 0.5 0.5 0.2 0.4\n")
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n")
    r = runner.invoke(app, ["stats", str(lone), "--classes", str(names), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert "anchors" not in d and d["dataset"]["format"] == "yolo" and not d["dataset"]["has_image_sizes"]
    assert {c["name"]: c["instances"] for c in d["classes"]} == {"cat": 1, "dog": 1}


def test_label_cache_second_run_reads_no_label_and_opens_no_image(tmp_path, monkeypatch):
    root = _tree(tmp_path)
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [cat, dog]\n")
    first = load(root / "data.yaml")
    real_verify, real_parse = yolo.verify_images, yolo.parse_labels
    opened, parsed = [], []

    def verify(paths, version=8, threads=None):
        opened.extend(paths)
        return real_verify(paths, version, threads)

    def parse(datas, nc, version=8):
        parsed.extend(datas)
        return real_parse(datas, nc, version)

    monkeypatch.setattr(yolo, "verify_images", verify)
    monkeypatch.setattr(yolo, "parse_labels", parse)
    again = load(root / "data.yaml")
    assert opened == [] and parsed == []
    for col in ("widths", "heights", "boxes", "box_category", "box_image"):
        assert np.array_equal(getattr(first, col), getattr(again, col)), col
    assert first.info["corrupt"] == again.info["corrupt"] and list(first.file_names) == list(again.file_names)
    # an image that changes is verified again, alone; a label file that changes is parsed again, alone
    changed = root / "images" / "train" / "a.png"
    _img(changed, 33, 21)
    (root / "labels" / "train" / "b.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    third = load(root / "data.yaml")
    assert opened == [str(changed)] and parsed == [b"0 0.5 0.5 0.5 0.5\n"]
    row = [Path(f).name for f in third.file_names].index("a.png")
    assert (third.widths[row], third.heights[row]) == (33, 21)
    assert third.box_category[third.box_image == 1].tolist() == [0]
    # a damaged cache file is not trusted: everything is read again, with the same result
    for f in Path(os.environ["IMBALANCE_CACHE"]).glob("yolo-labels-*.npz"):
        f.write_bytes(b"not a cache")
    opened.clear()
    parsed.clear()
    fourth = load(root / "data.yaml")
    assert len(opened) == 5 and len(parsed) == 4 and np.array_equal(third.boxes, fourth.boxes)
    # cache=False (--no-cache) never reads it
    opened.clear()
    load(root / "data.yaml", cache=False)
    assert len(opened) == 5
