"""The YOLO loader held to what Ultralytics 8.4 and YOLOv5 7.0 themselves report on the same folders.

Expected values: ``tests/data/yolo-variants/record-ultralytics.json`` and ``record-yolov5.json``,
written by ``tools/yolo_fixtures.py`` running each framework's own dataset code (``YOLODataset`` /
``LoadImagesAndLabels``) on a copy of the fixtures (versions in the records and the folder's README).
Per split: which images are kept and which are corrupt, each kept image's shape and label rows
(float32), the found / missing / empty / corrupt counters, duplicates removed, boxes and instances
per class. The records were made with the working directory at the fixtures' parent folder (a
list file's lines without ``./`` are relative to it): the tests run from ``tests/data`` too.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pytest

from imbalance_cli.data import yolo

from conftest import FIXTURES

VARIANTS = FIXTURES / "yolo-variants"


def _record(name: str) -> dict:
    return json.loads((VARIANTS / f"record-{name}.json").read_text())


def _norm(p: str) -> str:
    return str(p).replace(str(VARIANTS.resolve()), "<root>")


def _corrupt_in(messages: list[str]) -> set[str]:
    out = set()
    for m in messages:
        if "ignoring corrupt image/label" in m:
            path = m.split(": ", 1)[1] if m.startswith(("train: ", "val: ")) else m
            path = path.replace("WARNING ⚠️ ", "").split(": ignoring corrupt")[0]
            out.add(path)
    return out


def _dups_in(messages: list[str]) -> dict[str, int]:
    out = {}
    for m in messages:
        g = re.search(r"(\S+): (\d+) duplicate labels removed", m)
        if g:
            out[g.group(1)] = int(g.group(2))
    return out


def _ours(monkeypatch, version: int, yaml_name: str = "data.yaml"):
    monkeypatch.chdir(FIXTURES)
    return yolo.load(f"yolo-variants/{yaml_name}", version=version, cache=False)


@pytest.mark.parametrize("framework,version,yaml_name", [("ultralytics", 8, "data.yaml"),
                                                         ("ultralytics", 8, "data-cwd.yaml"),
                                                         ("yolov5", 5, "data.yaml")])
def test_counts_as_the_trainer(monkeypatch, framework, version, yaml_name):
    rec = _record(framework)["datasets"][yaml_name]
    ds = _ours(monkeypatch, version, yaml_name)
    assert list(ds.category_names) == rec["names"]
    parts = yolo.split_datasets(ds)
    for split, theirs in rec["splits"].items():
        part = parts[split]
        counts = ds.info["split_counts"][split]
        # images kept, with their (EXIF-oriented) shapes
        kept = {_norm(f): (int(h), int(w)) for f, w, h in zip(part.file_names, part.widths, part.heights)}
        assert kept == {f: tuple(v["shape_hw"]) for f, v in theirs["labels"].items()}, split
        # corrupt images (image or label), listed with their reasons
        ours_corrupt = {_norm(f) for f in ds.info["corrupt_files"] if _norm(f) in _split_files(split, theirs, ds)}
        assert ours_corrupt == _corrupt_in(theirs["messages"]), split
        assert counts["corrupt_images"] == theirs["corrupt"]
        assert counts["images_listed"] == theirs["listed"]
        assert counts["images"] == theirs["images"]
        assert counts["label_files_found"] == theirs["found"]
        assert counts["label_files_missing"] == theirs["missing"]
        assert counts["label_files_empty"] == theirs["empty"]
        # label rows per image (float32 values, any order: the trainers reorder rows when removing duplicates)
        row_of = {_norm(f): r for r, f in enumerate(part.file_names)}
        cls_all = []
        for f, v in theirs["labels"].items():
            r = row_of[f]
            sel = part.box_image == r
            if framework == "yolov5" and any(c >= len(rec["names"]) for c in v["cls"]):
                continue  # class >= nc: YOLOv5 keeps the row, its train.py stops (our info["fatal"], below)
            exp = sorted(map(tuple, _pixels(v, clip=version == 8)))
            got = sorted(map(tuple, np.column_stack([part.box_category[sel], part.boxes[sel]]).tolist()))
            assert len(got) == len(exp), f
            np.testing.assert_allclose(np.array(got).reshape(-1, 5), np.array(exp).reshape(-1, 5), atol=1e-9,
                                       err_msg=f)
            cls_all += [int(c) for c in np.trunc(v["cls"])]
        # duplicates removed per image
        ours_dups = Counter(_norm(yolo.label2img_stem(d.split(":")[0])) for d in ds.info["duplicates"]
                            if _norm(d).startswith(f"<root>/labels/{'train' if split == 'train' else 'listed'}"))
        theirs_dups = {f.rsplit(".", 1)[0]: n for f, n in _dups_in(theirs["messages"]).items()}
        if split == "train":
            assert dict(ours_dups) == theirs_dups
        inst = {str(k): int(v) for k, v in Counter(part.box_category.tolist()).items()}
        exp_inst = {k: v for k, v in theirs["instances"].items() if int(k) < len(rec["names"])}
        assert inst == exp_inst
        assert part.num_boxes == sum(exp_inst.values())


def _split_files(split, theirs, ds) -> set[str]:
    """Every file the trainer listed for ``split`` (kept or corrupt), normalised."""
    out = set(theirs["labels"]) | _corrupt_in(theirs["messages"])
    return out


def _pixels(v: dict, clip: bool) -> list:
    """The trainer's float32 rows as (class, x1, y1, x2, y2) pixels of its shape; clipped to the image as
    Ultralytics' transforms clip (``Instances.clip``) when ``clip``."""
    H, W = v["shape_hw"]
    a = np.array(v["xywhn"], np.float32).astype(np.float64).reshape(-1, 4)
    xyxy = np.column_stack([(a[:, 0] - a[:, 2] / 2) * W, (a[:, 1] - a[:, 3] / 2) * H,
                            (a[:, 0] + a[:, 2] / 2) * W, (a[:, 1] + a[:, 3] / 2) * H])
    if clip:
        xyxy = np.clip(xyxy, 0, [W, H, W, H])
    return np.column_stack([np.trunc(v["cls"]), xyxy]).tolist()


def test_tolerance_rows_are_clipped_to_the_image(monkeypatch):
    """tol_over: cx 1.005 (w 0.01) and w 1.009 are accepted by Ultralytics and clipped by its transforms (xyxy to the image)."""
    ds = _ours(monkeypatch, 8)
    r = [i for i, f in enumerate(ds.file_names) if f.endswith("tol_over.png")][0]
    b = ds.boxes[ds.box_image == r]
    W = 40.0
    # (1.005 - 0.005) * 40 = 40 -> clipped at 40 on both sides: a zero-width box at the right edge
    assert b[:, 0].min() >= 0 and b[:, 2].max() <= W
    full = b[np.argmax(b[:, 2] - b[:, 0])]
    np.testing.assert_allclose(full[[0, 2]], [0.0, W])


def test_yolov5_fatal_class_and_bom(monkeypatch):
    ds = _ours(monkeypatch, 5)
    fatal = [_norm(f) for f in ds.info["fatal"]]
    assert fatal == ["<root>/labels/train/cls_equal_nc.txt:1: class 3 exceeds nc=3 (YOLOv5's train.py stops: "
                     "'Label class exceeds nc')",
                     "<root>/labels/train/cls_out_of_range.txt:2: class 999 exceeds nc=3 (YOLOv5's train.py stops: "
                     "'Label class exceeds nc')"]
    assert any(_norm(c).startswith("<root>/labels/train/bom.txt:1: ") for c in ds.info["corrupt"])


def test_corrupt_entries_name_file_and_line(monkeypatch):
    ds = _ours(monkeypatch, 8)
    entries = {_norm(c) for c in ds.info["corrupt"]}
    assert "<root>/labels/train/cls_out_of_range.txt:2: class 999 is not below nc=3 (classes 0..2)" in entries
    assert "<root>/labels/train/mixed.txt:2: a box row in a file of segment rows (Ultralytics: 'labels mix " \
           "segment and detection rows')" in entries
    assert any(e.startswith("<root>/images/train/img_jpeg_half.jpg: ") for e in entries)
    theirs = _record("ultralytics")["datasets"]["data.yaml"]["splits"]
    assert ds.info["bad_line_count"] + ds.info["unreadable_images"] == ds.info["corrupt_image_count"] \
        == theirs["train"]["corrupt"] + theirs["val"]["corrupt"]
