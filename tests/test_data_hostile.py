"""Hostile and malformed inputs to the loaders (issue 15's loader cases), streaming edge cases and the cache.

Every bad input must give an :class:`InputError` whose one line names the file (and the record where
there is one); the CLI turns it into exit code 2 with no traceback. Expected values are the
schema's rules and, for good inputs, the documents' own contents decoded independently with ``json``.
"""

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import COCO_VAL, FIXTURES, LVIS_V05, ROOT, VOC_XML

import imbalance_cli
from imbalance_cli.data import cache as data_cache
from imbalance_cli.data import stream as data_stream
from imbalance_cli.errors import InputError

BASE = {
    "images": [
        {"id": 1, "width": 10, "height": 10, "file_name": "a.jpg"},
        {"id": 2, "width": 20, "height": 10, "file_name": "b.jpg"},
    ],
    "annotations": [
        {"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "iscrowd": 0},
        {"id": 8, "image_id": 2, "category_id": 2, "bbox": [1, 1, 5, 5], "iscrowd": 0},
    ],
    "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
}


def _doc(fn=None):
    d = json.loads(json.dumps(BASE))
    if fn is not None:
        fn(d)
    return d


def _write(tmp_path, d, name="x.json"):
    p = tmp_path / name
    p.write_bytes(d if isinstance(d, bytes) else json.dumps(d).encode())
    return p


def _err(p, where=None, **kw) -> str:
    with pytest.raises(InputError) as e:
        imbalance_cli.load(p, **kw)
    msg = e.value.one_line()
    assert str(where or p) in msg and "\n" not in msg
    return msg


def _set(section, i, **fields):
    return lambda d: d[section][i].update(fields)


# ---- JSON types as the schema says, on every code path --------------------------------------------------
TYPE_CASES = {
    "images_object": (lambda d: d.update(images={"id": 1}), "'images' must be a list, got an object"),
    "images_number": (lambda d: d.update(images=5), "'images' must be a list, got a number"),
    "categories_object": (lambda d: d.update(categories={"a": 1}), "'categories' must be a list, got an object"),
    "categories_number": (lambda d: d.update(categories=3), "'categories' must be a list, got a number"),
    "annotations_string": (lambda d: d.update(annotations="x"), "'annotations' must be a list, got a string"),
    "bbox_bools": (_set("annotations", 0, bbox=[True, True, True, True]), "annotations[0] (id 7): field 'bbox'"),
    "bbox_strings": (_set("annotations", 0, bbox=["10", "20", "30", "40"]), "annotations[0] (id 7): field 'bbox'"),
    "bbox_three": (_set("annotations", 1, bbox=[1, 2, 3]), "annotations[1] (id 8): field 'bbox'"),
    "width_string": (_set("images", 0, width="640"), "images[0] (id 1): field 'width'"),
    "width_bool": (_set("images", 1, width=True), "images[1] (id 2): field 'width'"),
    "id_float": (_set("images", 1, id=2.5), "images[1]"),
    "id_string": (_set("annotations", 0, id="7"), "annotations[0]"),
    "image_id_bool": (_set("annotations", 0, image_id=True), "annotations[0] (id 7): field 'image_id'"),
    "iscrowd_half": (_set("annotations", 0, iscrowd=0.5), "annotations[0] (id 7): field 'iscrowd'"),
    "iscrowd_two": (_set("annotations", 1, iscrowd=2), "annotations[1] (id 8): field 'iscrowd'"),
    "iscrowd_bool_coco": (_set("annotations", 1, iscrowd=True), "annotations[1] (id 8): field 'iscrowd'"),
    "id_huge": (_set("annotations", 0, id=2**64 - 1), "annotations[0]"),
    "category_name_number": (_set("categories", 0, name=5), "categories[0] (id 1): field 'name'"),
    "instance_count_huge": (
        _set("categories", 0, instance_count=2**64 - 1, frequency="f"),
        "categories[0] (id 1): field 'instance_count'",
    ),
    "record_not_object": (lambda d: d["annotations"].append(5), "annotations[2]: record is not a JSON object"),
    "missing_image_id": (
        lambda d: d["annotations"][1].pop("image_id"),
        "annotations[1] (id 8): missing required key 'image_id'",
    ),
    "width_zero": (_set("images", 1, width=0), "images[1] (id 2): image width and height must be positive"),
    "width_negative": (_set("images", 0, height=-3), "images[0] (id 1): image width and height must be positive"),
    "width_1e9": (_set("images", 0, width=1e9), "at most 1,000,000 pixels"),
    "width_1e20": (_set("images", 1, width=1e20), "at most 1,000,000 pixels"),
    "width_1e308": (_set("images", 1, height=1e308), "at most 1,000,000 pixels"),
    "lvis_neg_undefined": (
        _set("images", 0, neg_category_ids=[1, 99]),
        "images[0] (id 1): 'neg_category_ids' names category 99",
    ),
    "lvis_not_exhaustive_undefined": (
        _set("images", 1, not_exhaustive_category_ids=[42]),
        "images[1] (id 2): 'not_exhaustive_category_ids' names category 42",
    ),
    "undefined_image": (
        _set("annotations", 1, image_id=5),
        "annotations[1] (id 8): image_id 5 refers to an undefined image",
    ),
}


@pytest.mark.parametrize("name", sorted(TYPE_CASES))
def test_types_and_values_are_checked_identically_on_every_path(name, tmp_path):
    fn, expected = TYPE_CASES[name]
    d = _doc(fn)
    p = _write(tmp_path, d)
    msgs = {_err(p, workers=1, cache=False), _err(p, workers=2, cache=False)}
    # the dict path (used by `imbalance check`) gives the same line
    from imbalance_cli.data.coco import from_dict

    with pytest.raises(InputError) as e:
        from_dict(d, str(p), flavour="lvis" if "neg" in name or "exhaustive" in name else "coco")
    msgs.add(e.value.one_line())
    assert len(msgs) == 1, msgs
    assert expected in msgs.pop()


def test_booleans_in_iscrowd_are_an_objects365_quirk_only(tmp_path):
    d = _doc(_set("annotations", 1, iscrowd=True))
    d["info"] = {"description": "Objects365 v2"}
    ds = imbalance_cli.load(_write(tmp_path, d), cache=False)
    assert ds.format == "objects365" and ds.crowd.tolist() == [False, True]


def test_json_bom_csv_bom_xml_bom(tmp_path):
    p = _write(tmp_path, b"\xef\xbb\xbf" + json.dumps(BASE).encode())
    ds = imbalance_cli.load(p, cache=False)
    assert ds.num_boxes == 2 and ds.category_names.tolist() == ["a", "b"]
    csv_src = (FIXTURES / "openimages_from_coco_val.csv").read_bytes()
    c = tmp_path / "boxes.csv"
    c.write_bytes(b"\xef\xbb\xbf" + csv_src)
    plain = tmp_path / "plain" / "boxes.csv"
    plain.parent.mkdir()
    plain.write_bytes(csv_src)
    a, b = imbalance_cli.load(c, cache=False), imbalance_cli.load(plain, cache=False)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert a.category_names.tolist() == b.category_names.tolist()
    x = tmp_path / "a.xml"
    x.write_bytes(b"\xef\xbb\xbf" + VOC_XML.read_bytes())
    assert imbalance_cli.load(x).num_boxes == imbalance_cli.load(VOC_XML).num_boxes


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "1e308", "1e20"])
def test_voc_sizes_rejected_like_coco(value, tmp_path):
    x = tmp_path / "a.xml"
    x.write_text(VOC_XML.read_text().replace("<width>353</width>", f"<width>{value}</width>"))
    msg = _err(x)
    assert "<size>" in msg and "width and height" in msg


def test_openimages_malformed_rows_and_sizes(tmp_path):
    c = tmp_path / "boxes.csv"
    c.write_text(
        "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,"
        "IsDepiction,IsInside\nabc,x,/m/1,1,0.1,0.2,0.1,0.3,0,0,0,0,0\nabd,x,/m/1,0.1\n"
    )
    msg = _err(c, cache=False)
    assert "malformed CSV" in msg and "line 3" in msg and "4 fields" in msg
    c.write_text("ImageID,LabelName,XMin,XMax,YMin,YMax\nabc,/m/1,0.1,0.2,0.1,0.3\n")
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("ImageID,Width,Height\nabc,wide,100\n")
    msg = _err(c, sizes, image_sizes=sizes, cache=False)
    assert str(sizes) in msg and "line 2" in msg and "Width/Height must be numbers" in msg
    sizes.write_text("ImageID,Width,Height\nabc,1e20,100\n")
    assert "at most 1,000,000" in _err(c, sizes, image_sizes=sizes, cache=False)
    sizes.write_text("ImageID,Width,Height\nabc,0,100\n")
    assert "positive" in _err(c, sizes, image_sizes=sizes, cache=False)
    c.write_text("ImageID,LabelName,XMin,XMax,YMin,YMax,IsGroupOf\nabc,/m/1,0.1,0.2,0.1,0.3,0.5\n")
    assert "IsGroupOf must be 0 or 1" in _err(c, cache=False)


def test_openimages_matches_the_csv_read_independently():
    import csv

    path = FIXTURES / "openimages_from_coco_val.csv"
    ds = imbalance_cli.load(path, cache=False)
    rows = list(csv.DictReader(path.open()))
    first_seen = list(dict.fromkeys(r["ImageID"] for r in rows))
    assert ds.num_boxes == len(rows) and ds.num_images == len(first_seen)
    expect = np.array([[float(r[k]) for k in ("XMin", "YMin", "XMax", "YMax")] for r in rows])
    np.testing.assert_allclose(ds.boxes, expect)  # no sizes file beside it: normalised
    assert [first_seen[i] for i in ds.box_image] == [r["ImageID"] for r in rows]
    assert [ds.category_codes[c] for c in ds.box_category] == [r["LabelName"] for r in rows]
    assert ds.crowd.tolist() == [r["IsGroupOf"] == "1" for r in rows]


# ---- non-regular and oversized files ---------------------------------------------------------------------
def test_dev_zero_fifo_and_directories_are_refused(tmp_path):
    with pytest.raises(InputError, match="not a regular file"):
        imbalance_cli.load("/dev/zero")
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        imbalance_cli.load(fifo)
    c = tmp_path / "boxes.csv"
    c.write_text("ImageID,LabelName,XMin,XMax,YMin,YMax\nabc,/m/1,0.1,0.2,0.1,0.3\n")
    with pytest.raises(InputError, match="is a directory"):
        imbalance_cli.load(c, image_sizes=tmp_path)
    with pytest.raises(InputError, match="not a regular file"):
        imbalance_cli.load(c, classes="/dev/zero")
    from imbalance_cli.stats.counts import class_counts_from

    with pytest.raises(InputError, match="not a regular file"):
        class_counts_from(fifo)


def test_files_read_whole_have_a_size_bound(tmp_path, monkeypatch):
    from imbalance_cli.data import _io, voc

    monkeypatch.setattr(voc, "MAX_XML_BYTES", 100)
    with pytest.raises(InputError, match="larger than"):
        imbalance_cli.load(VOC_XML)
    big = tmp_path / "big.json.gz"
    big.write_bytes(gzip.compress(b" " * 5000 + b"[]"))
    with pytest.raises(InputError, match="decompressed data exceed"):
        _io.read_bytes(big, limit=1000)


# ---- streaming: chunk boundaries, workers, truncation -------------------------------------------------
def _load_json_reference(path):
    """Independent reference: the document parsed whole by the standard library."""
    d = json.loads(gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes())
    return d


@pytest.mark.slow
@pytest.mark.parametrize("src", [COCO_VAL, LVIS_V05], ids=["coco", "lvis"])
def test_chunked_results_equal_whatever_chunk_block_and_workers(src, tmp_path, monkeypatch):
    d = _load_json_reference(src)
    p = tmp_path / "a.json"
    p.write_bytes(gzip.decompress(src.read_bytes()))
    base = imbalance_cli.load(p, workers=1, cache=False)
    # the reference: every annotation in file order
    anns = d["annotations"]
    assert base.box_ids.tolist() == [a["id"] for a in anns]
    xywh = np.array([a["bbox"] for a in anns], dtype=float)
    np.testing.assert_allclose(base.boxes, np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]])
    assert base.image_ids[base.box_image].tolist() == [a["image_id"] for a in anns]
    assert base.category_ids[base.box_category].tolist() == [a["category_id"] for a in anns]
    from imbalance_cli.data._io import open_stream

    for chunk, block, workers in ((4096, 1000, 1), (300, 4093, 2), (50_000, 61, 1), (10**9, 1 << 20, 2)):
        s, raw = open_stream(p)
        with raw:
            ds = data_stream.load_json_stream(s, raw, str(p), workers=workers, chunk_bytes=chunk, block=block)
        for col in ("boxes", "box_image", "box_category", "box_ids", "crowd", "area", "image_ids", "widths", "heights"):
            np.testing.assert_array_equal(getattr(ds, col), getattr(base, col), err_msg=col)
        assert ds.file_names.tolist() == base.file_names.tolist()
        if base.neg_category_ids is not None:
            np.testing.assert_array_equal(ds.neg_category_ids.values, base.neg_category_ids.values)
            np.testing.assert_array_equal(ds.neg_category_ids.offsets, base.neg_category_ids.offsets)


@pytest.mark.slow
def test_strings_with_escapes_and_brackets_across_block_edges(tmp_path):
    d = _doc()
    names = ['a "quoted" } ] name', "back\\slash\\", '\\\\"}{[', "\u00e9\u4e2d\\u", "x" * 300 + "\\"]
    for i, n in enumerate(names):
        d["images"].append({"id": 10 + i, "width": 5, "height": 5, "file_name": n})
        d["annotations"].append(
            {
                "id": 100 + i,
                "image_id": 10 + i,
                "category_id": 1,
                "bbox": [0, 0, 1, 1],
                "note": n,
                "segmentation": {"counts": n, "size": [5, 5]},
            }
        )
    d["info"] = {"description": '} ] "annotations": [', "x": "\\"}
    p = _write(tmp_path, json.dumps(d, indent=1, ensure_ascii=False).encode())
    from imbalance_cli.data._io import open_stream

    for block in (1, 2, 3, 5, 64):
        s, raw = open_stream(p)
        with raw:
            ds = data_stream.load_json_stream(s, raw, str(p), workers=1, chunk_bytes=30, block=block)
        assert ds.file_names.tolist() == ["a.jpg", "b.jpg"] + names
        assert ds.box_ids.tolist() == [7, 8] + [100 + i for i in range(len(names))]
        assert ds.info == d["info"]


@pytest.mark.parametrize("workers", [1, 2])
def test_wrong_speculative_cuts_are_caught_by_the_decoders_and_read_again(tmp_path, workers):
    # strings holding "}, {" and arrays of objects inside records: the scanner's unchecked guesses
    # land inside them, the chunk fails to decode, and the file is read again with checked cuts
    d = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}]}
    for i in range(60):
        d["images"].append({"id": i, "width": 50, "height": 40, "file_name": f"img}}, {{{i}.jpg" + "x" * (i % 7)})
        d["annotations"].append(
            {
                "id": 1000 + i,
                "image_id": i,
                "category_id": 1,
                "bbox": [i % 5, 1, 3, 2 + i % 4],
                "attributes": [{"k": "}, {"}, {"k": i}],
                "note": "a" * (i % 11) + "}, {",
            }
        )
    p = _write(tmp_path, json.dumps(d, indent=1).encode())
    from imbalance_cli.data._io import open_stream

    tries = []
    real = data_stream.load_json_stream

    def spy(*a, **k):
        try:
            return real(*a, **k)
        finally:
            tries.append(k["verify_cuts"])

    data_stream.load_json_stream, saved = spy, data_stream.load_json_stream
    try:
        ds = data_stream.load_json_file(lambda: open_stream(p), str(p), workers=workers, chunk_bytes=40, block=97)
    finally:
        data_stream.load_json_stream = saved
    assert tries == [False, True]  # the unchecked pass failed on a wrong cut, the checked pass read it
    anns = d["annotations"]
    assert ds.box_ids.tolist() == [a["id"] for a in anns]
    assert ds.file_names.tolist() == [im["file_name"] for im in d["images"]]
    xywh = np.array([a["bbox"] for a in anns], dtype=float)
    np.testing.assert_array_equal(ds.boxes, np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]])
    assert ds.image_ids[ds.box_image].tolist() == [a["image_id"] for a in anns]


def test_unchecked_cuts_that_decode_need_one_pass(tmp_path):
    d = _doc()
    for i in range(300):
        d["annotations"].append({"id": 1000 + i, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1 + i]})
    p = _write(tmp_path, d)
    from imbalance_cli.data._io import open_stream

    tries = []
    real = data_stream.load_json_stream
    data_stream.load_json_stream, saved = (lambda *a, **k: tries.append(k["verify_cuts"]) or real(*a, **k)), real
    try:
        ds = data_stream.load_json_file(lambda: open_stream(p), str(p), workers=2, chunk_bytes=200, block=512)
    finally:
        data_stream.load_json_stream = saved
    assert tries == [False] and ds.box_ids.tolist()[-300:] == [1000 + i for i in range(300)]


def test_empty_arrays_images_without_boxes_ids_out_of_order(tmp_path):
    d = {"images": [], "annotations": [], "categories": [{"id": 3, "name": "c"}]}
    ds = imbalance_cli.load(_write(tmp_path, d), cache=False)
    assert ds.num_images == 0 and ds.num_boxes == 0
    d = _doc(lambda d: d["images"].append({"id": 0, "width": 3, "height": 3}))
    d["images"].reverse()
    d["categories"].reverse()
    ds = imbalance_cli.load(_write(tmp_path, d, "b.json"), cache=False)
    assert ds.image_ids.tolist() == [0, 2, 1] and ds.category_ids.tolist() == [1, 2]
    assert ds.category_names[ds.box_category].tolist() == ["a", "b"]
    assert ds.image_ids[ds.box_image].tolist() == [1, 2]


def test_mid_stream_errors_name_record_or_byte_and_leave_no_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(data_stream, "CHUNK_BYTES", 64)
    d = _doc()
    for i in range(200):
        d["annotations"].append({"id": 1000 + i, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]})
    d["annotations"][150]["category_id"] = 77
    p = _write(tmp_path, d)
    cache = data_cache.cache_dir()
    for workers in (1, 2):
        msg = _err(p, workers=workers)
        assert "annotations[150] (id 1148): category_id 77 refers to an undefined category" in msg
    d["annotations"][150]["category_id"] = 1
    d["annotations"][120]["bbox"] = [0, 0, "1", 1]
    p = _write(tmp_path, d)
    for workers in (1, 2):
        assert "annotations[120] (id 1118): field 'bbox'" in _err(p, workers=workers)
    d["annotations"][120]["bbox"] = [0, 0, 1, 1]
    raw = json.dumps(d).encode()
    p.write_bytes(raw[: len(raw) // 2])
    assert "truncated JSON" in _err(p)
    p.write_bytes(raw.replace(b'"id": 1130,', b'"id": 1130,,'))
    msg = _err(p, workers=2)
    assert "malformed JSON" in msg and "line 1, column" in msg and "(byte" in msg
    gz = tmp_path / "t.json.gz"
    gz.write_bytes(gzip.compress(raw)[:-30])
    assert "gzip" in _err(gz)
    assert not cache.exists() or not any(cache.iterdir())


# ---- the cache ---------------------------------------------------------------------------------------------
def test_cache_hit_stale_corrupt_and_no_cache(tmp_path, monkeypatch):
    p = tmp_path / "a.json"
    p.write_bytes(gzip.decompress(COCO_VAL.read_bytes()))
    root = data_cache.cache_dir()
    first = imbalance_cli.load(p)
    entries = [e for e in root.iterdir()]
    assert len(entries) == 1 and not any(e.name.startswith(".tmp") for e in entries)

    calls = []
    real = data_stream.load_json_stream
    monkeypatch.setattr(data_stream, "load_json_stream", lambda *a, **k: calls.append(1) or real(*a, **k))
    second = imbalance_cli.load(p)
    assert calls == []  # served from the cache
    for col in ("boxes", "box_image", "box_category", "box_ids", "crowd", "area", "image_ids", "widths"):
        np.testing.assert_array_equal(getattr(second, col), getattr(first, col))
    assert second.file_names.tolist() == first.file_names.tolist()
    assert second.category_names.tolist() == first.category_names.tolist() and second.info == first.info

    # corrupt: flip one byte of a column -> not trusted, rebuilt
    col = entries[0] / "boxes.npy"
    b = bytearray(col.read_bytes())
    b[-1] ^= 0xFF
    col.write_bytes(bytes(b))
    third = imbalance_cli.load(p)
    assert calls == [1]
    np.testing.assert_array_equal(third.boxes, first.boxes)
    (entries[0] / "meta.json").write_text("{not json")
    imbalance_cli.load(p)
    assert calls == [1, 1]

    # stale: new content under the same name -> new key, new result
    d = json.loads(p.read_bytes())
    d["annotations"] = d["annotations"][:5]
    p.write_text(json.dumps(d))
    assert imbalance_cli.load(p).num_boxes == 5

    # --no-cache writes nothing
    q = tmp_path / "b.json"
    q.write_text(json.dumps(BASE))
    before = set(root.iterdir())
    imbalance_cli.load(q, cache=False)
    assert set(root.iterdir()) == before


def test_cache_defaults_to_the_user_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("IMBALANCE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    if sys.platform.startswith("linux"):
        assert data_cache.cache_dir() == tmp_path / "imbalance"


# ---- CLI: exit 2, one line, no traceback ------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("case", ["images_number", "lvis_neg_undefined"])
def test_cli_exit_2_one_line(case, tmp_path):
    p = _write(tmp_path, _doc(TYPE_CASES[case][0]))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for cmd in (["stats", str(p), "--workers", "2", "--no-cache"],):
        r = subprocess.run(
            [sys.executable, "-m", "imbalance_cli", *cmd], capture_output=True, text=True, env=env, timeout=120
        )
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert str(p) in r.stderr and TYPE_CASES[case][1] in r.stderr


@pytest.mark.slow
def test_cli_workers_option_is_validated(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for bad in ("-1", "100000"):  # 0 means the machine's cores (README); a negative or absurd count is refused
        r = subprocess.run(
            [sys.executable, "-m", "imbalance_cli", "stats", str(COCO_VAL), "--workers", bad],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert r.returncode == 2 and "--workers" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_chunks_the_decoders_read_from_the_file_equal_the_document(tmp_path, workers):
    # the first pass's speculative chunks of a plain file are not copied by the scanner: the decoders
    # read their byte ranges from the file; values against the json module's own reading
    src = COCO_VAL
    d = _load_json_reference(src)
    p = tmp_path / "a.json"
    p.write_bytes(json.dumps(d, indent=1).encode())  # whitespace between records and after commas
    from imbalance_cli.data._io import open_stream

    jobs = []
    real_job = data_stream._job

    def spy(item, path, file):
        job = real_job(item, path, file)
        jobs.append(job[1] is None)
        return job

    data_stream._job, saved = spy, data_stream._job
    try:
        for chunk in (3000, 20_000):
            jobs.clear()
            s, raw = open_stream(p)
            with raw:
                ds = data_stream.load_json_stream(
                    s, raw, str(p), workers=workers, chunk_bytes=chunk, block=50_000, verify_cuts=False
                )
            assert sum(jobs) > 10  # most chunks were read by the decoders
            anns = d["annotations"]
            assert ds.box_ids.tolist() == [a["id"] for a in anns]
            xywh = np.array([a["bbox"] for a in anns], dtype=float)
            np.testing.assert_array_equal(ds.boxes, np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]])
            assert ds.image_ids[ds.box_image].tolist() == [a["image_id"] for a in anns]
            assert ds.category_ids[ds.box_category].tolist() == [a["category_id"] for a in anns]
            assert ds.crowd.tolist() == [bool(a.get("iscrowd", 0)) for a in anns]
            assert ds.file_names.tolist() == [im["file_name"] for im in d["images"]]
            assert ds.widths.tolist() == [im["width"] for im in d["images"]]
    finally:
        data_stream._job = saved


def test_columns_too_big_for_their_shared_slot_come_back_pickled(tmp_path, monkeypatch):
    # workers put a chunk's numeric columns in a shared slot of 2 x chunk_bytes (+ a margin, here none):
    # with chunks of ~1 record most columns do not fit and are pickled; values against the json module
    d = _doc()
    for i in range(40):
        d["annotations"].append(
            {"id": 1000 + i, "image_id": 2, "category_id": 2, "bbox": [i, 1, 2, 3], "area": 1.5 * i}
        )
    p = _write(tmp_path, json.dumps(d).encode())
    monkeypatch.setattr(data_stream, "SLOT_MARGIN", 0)
    from imbalance_cli.data._io import open_stream

    s, raw = open_stream(p)
    with raw:
        ds = data_stream.load_json_stream(
            s, raw, str(p), workers=2, chunk_bytes=40, block=64, verify_cuts=False, total=10**9
        )
    anns = d["annotations"]
    assert ds.box_ids.tolist() == [a["id"] for a in anns]
    xywh = np.array([a["bbox"] for a in anns], dtype=float)
    np.testing.assert_array_equal(ds.boxes, np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]])
    assert ds.image_ids[ds.box_image].tolist() == [a["image_id"] for a in anns]
    np.testing.assert_array_equal(ds.area, [a.get("area", np.nan) for a in anns])


def test_a_file_that_changes_while_it_is_read_is_refused(tmp_path):
    d = _doc()
    for i in range(400):
        d["annotations"].append({"id": 1000 + i, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1 + i]})
    p = _write(tmp_path, json.dumps(d).encode())
    from imbalance_cli.data._io import open_stream

    real = data_stream._decode
    calls = []

    def grow(job):
        if not calls:
            with open(p, "ab") as f:
                f.write(b"\n")
        calls.append(1)
        return real(job)

    data_stream._decode, saved = grow, data_stream._decode
    try:
        s, raw = open_stream(p)
        with raw, pytest.raises(InputError, match="changed while it was read") as e:
            data_stream.load_json_stream(s, raw, str(p), workers=1, chunk_bytes=500, block=700, verify_cuts=False)
    finally:
        data_stream._decode = saved
    assert str(p) in str(e.value) and "\n" not in str(e.value)
