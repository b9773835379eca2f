"""Every input surface besides the annotation records (issues 24 and 28): deep nesting, corrupt gzip, the
bounded reader, rules and baselines by schema, the cache's metadata and columns, options that cannot apply.

Each bad input must end in one line naming the file (and the field where there is one), exit code 2 and no
traceback, through every command that reads that kind of file. Expected byte offsets and depths are computed
in the tests from how each document is built; expected refusals from the schema the README states.
"""

import contextlib
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import zlib

import numpy as np
import pytest
from conftest import COCO_VAL, ROOT
from typer.testing import CliRunner

import imbalance_cli
from imbalance_cli.cli import app
from imbalance_cli.data import cache as data_cache
from imbalance_cli.data import stream as data_stream

runner = CliRunner()

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

#: Commands that load an annotation file, with the arguments that make them run on one file quickly.
LOADING_COMMANDS = {
    "stats": lambda f: ["stats", f, "--anchors", "none", "--workers", "1"],
    "check": lambda f: ["check", f],
    "compare": lambda f: ["compare", f, f, "--workers", "1"],
    "batches": lambda f: ["batches", f, "--workers", "1"],
    "anchors": lambda f: ["anchors", f, "--iterations", "0"],
}


@contextlib.contextmanager
def within(seconds: int):
    """Fail (instead of hanging) when the block takes longer than ``seconds`` (a FIFO read would block forever)."""

    def expire(signum, frame):
        raise TimeoutError(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def one_line_exit_2(args, *needles):
    """Run the CLI in-process: exit 2, exactly one stderr line, naming every needle, no traceback."""
    r = runner.invoke(app, args)
    assert r.exit_code == 2, (args, r.exit_code, r.output, r.exception)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


# ---- JSON nested far deeper than any parser recurses -------------------------------------------------------
def _deep_doc(where: str, depth: int) -> tuple[str, int]:
    """A COCO document with ``depth`` nested arrays in one record of ``where``, and the byte where the nesting passes
    900 levels (the record lies 3 levels deep: top object, array, record)."""
    d = json.loads(json.dumps(BASE))
    record = {"segmentation": d["annotations"][1], "images": d["images"][0], "categories": d["categories"][1]}[where]
    record["segmentation" if where == "segmentation" else "extra"] = "@@DEEP@@"
    text = json.dumps(d)
    start = text.index('"@@DEEP@@"')
    # the bracket at start + k opens level 3 + k + 1; level 901 is the first past 900
    return text.replace('"@@DEEP@@"', "[" * depth + "]" * depth), start + (900 - 3)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["segmentation", "images", "categories"])
def test_json_nested_300000_deep_is_one_line_in_every_command(where, tmp_path):
    text, passing = _deep_doc(where, 300_000)
    p = tmp_path / "deep.json"
    p.write_text(text)
    for name, args in LOADING_COMMANDS.items():
        line = one_line_exit_2(args(str(p)), p, "nested too deeply")
        if name != "check":  # (check reports the same refusal; one command's numbers are enough)
            assert "300,003 levels" in line and f"(byte {passing})" in line, line


@pytest.mark.slow
def test_json_nested_a_million_deep_through_the_real_cli(tmp_path):
    text, passing = _deep_doc("segmentation", 1_000_000)
    p = tmp_path / "deep.json"
    p.write_text(text)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for workers in ("1", "2"):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "imbalance_cli",
                "stats",
                str(p),
                "--anchors",
                "none",
                "--workers",
                workers,
                "--no-cache",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1 and "1,000,003 levels" in r.stderr and f"(byte {passing})" in r.stderr


# ---- gzip with a corrupted deflate stream ------------------------------------------------------------------
def _corrupt_gzip(raw: bytes, at: float) -> bytes:
    g = bytearray(gzip.compress(raw, compresslevel=1))
    a = max(12, int(len(g) * at))
    for i in range(a, min(a + 64, len(g) - 8)):
        g[i] ^= 0x5A
    return bytes(g)


@pytest.mark.parametrize("at", [0.0, 0.6])
def test_corrupt_gzip_is_one_line_in_every_command(at, tmp_path):
    raw = gzip.decompress(COCO_VAL.read_bytes())
    p = tmp_path / "bad.json.gz"
    p.write_bytes(_corrupt_gzip(raw, at))
    for name, args in LOADING_COMMANDS.items():
        one_line_exit_2(args(str(p)), p, "gzip")
    for name in ("margins", "groups"):
        one_line_exit_2([name, str(p)], p, "gzip")


def test_corrupt_gzip_open_images_and_voc(tmp_path):
    from conftest import FIXTURES, VOC_XML

    for name, raw in (
        ("boxes.csv.gz", (FIXTURES / "openimages_from_coco_val.csv").read_bytes() * 40),
        ("a.xml.gz", VOC_XML.read_bytes()),
    ):
        for at in (0.0, 0.7):
            p = tmp_path / name
            p.write_bytes(_corrupt_gzip(raw, at))
            one_line_exit_2(["stats", str(p), "--anchors", "none"], p, "gzip")


# ---- the columnar cache: metadata checksummed, every column validated like loaded data -------------------------
def _cached(tmp_path, monkeypatch):
    """A COCO file with its cache entry, and a counter of real loads (a cache hit does not load)."""
    p = tmp_path / "a.json"
    p.write_bytes(gzip.decompress(COCO_VAL.read_bytes()))
    first = imbalance_cli.load(p)
    (entry,) = [e for e in data_cache.cache_dir().iterdir()]
    calls = []
    real = data_stream.load_json_stream
    monkeypatch.setattr(data_stream, "load_json_stream", lambda *a, **k: calls.append(1) or real(*a, **k))
    return p, first, entry, calls


def _entry():
    (entry,) = [e for e in data_cache.cache_dir().iterdir()]
    return entry


def _forge(entry, edit_meta=None, column=None, array=None):
    """Rewrite an entry consistently: column file ``column`` replaced by ``array`` (its length and CRC updated in
    the metadata) and/or the metadata edited, the metadata's own CRC recomputed (CRC-32 of the canonical JSON of
    the rest, as the cache writes it)."""
    meta = json.loads((entry / "meta.json").read_text())
    if column is not None:
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        data = buf.getvalue()
        (entry / column).write_bytes(data)
        infos = [
            i
            for group in ("columns", "strings", "ragged")
            for v in meta[group].values()
            for i in ([v] if "file" in v else v.values())
        ]
        (info,) = [i for i in infos if i["file"] == column]
        info.update(bytes=len(data), crc32=zlib.crc32(data))
    if edit_meta is not None:
        edit_meta(meta)
    body = {k: v for k, v in meta.items() if k != "meta_crc32"}
    meta["meta_crc32"] = zlib.crc32(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    (entry / "meta.json").write_text(json.dumps(meta))


def _rebuilt_equal(p, first, calls):
    again = imbalance_cli.load(p)
    assert calls == [1], "the damaged entry must be rebuilt from the file, not used"
    for col in ("image_ids", "widths", "heights", "boxes", "box_image", "box_category", "box_ids"):
        np.testing.assert_array_equal(getattr(again, col), getattr(first, col))
    assert again.file_names.tolist() == first.file_names.tolist() and again.format == first.format
    assert again.has_image_sizes
    calls.clear()
    imbalance_cli.load(p)
    assert calls == []  # the rebuilt entry is used next time


def _with(values, k, v):
    out = values.copy()
    out[k] = v
    return out


FORGED_COLUMNS = {  # (column file, the forged array from the loaded dataset)
    "width_negative": ("widths.npy", lambda f: _with(f.widths, 3, -640.0)),
    "width_nan": ("widths.npy", lambda f: _with(f.widths, 3, np.nan)),
    "width_1e300": ("widths.npy", lambda f: _with(f.widths, 3, 1e300)),
    "height_subpixel": ("heights.npy", lambda f: _with(f.heights, 0, 0.5)),
    "width_float32": ("widths.npy", lambda f: f.widths.astype(np.float32)),
    "boxes_one_short": ("boxes.npy", lambda f: f.boxes[:-1]),
    "box_image_out_of_range": ("box_image.npy", lambda f: _with(f.box_image, 0, f.num_images)),
    "box_category_negative": ("box_category.npy", lambda f: _with(f.box_category, 0, -1)),
    "duplicate_image_id": ("image_ids.npy", lambda f: _with(f.image_ids, 1, f.image_ids[0])),
    "duplicate_box_id": ("box_ids.npy", lambda f: _with(f.box_ids, 5, f.box_ids[9])),
    "file_names_not_utf8": (
        "file_names.blob.npy",
        lambda f: _with(np.frombuffer("".join(f.file_names).encode(), np.uint8), 5, 0xFF),
    ),
    "file_names_cut_in_a_character": ("file_names.blob.npy", lambda f: _straddling(f.file_names)),
}


def _straddling(names):
    """The names' blob, valid UTF-8 as a whole, with a 2-byte character across the end of the first name: the
    second name would start inside it."""
    blob = "".join(names).encode()
    cut = len(names[0].encode())
    return np.frombuffer(blob[: cut - 1] + "\u00e9".encode() + blob[cut + 1 :], np.uint8)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(FORGED_COLUMNS))
def test_a_forged_column_with_consistent_crcs_is_rebuilt(case, tmp_path, monkeypatch):
    p, first, entry, calls = _cached(tmp_path, monkeypatch)
    column, make = FORGED_COLUMNS[case]
    array = make(first)
    if column.startswith("file_names"):
        assert len(array) == len("".join(first.file_names).encode())  # same length: the offsets still fit
    _forge(entry, column=column, array=array)
    _rebuilt_equal(p, first, calls)


def test_a_file_names_blob_with_a_forged_crc_is_not_used_by_check(tmp_path, monkeypatch):
    p, first, entry, calls = _cached(tmp_path, monkeypatch)
    column, make = FORGED_COLUMNS["file_names_not_utf8"]
    _forge(entry, column=column, array=make(first))
    r = runner.invoke(app, ["check", str(p), "--report-format", "json"])
    assert r.exit_code in (0, 1) and r.exception is None or isinstance(r.exception, SystemExit), r.output
    names = {n for f in json.loads(r.stdout)["findings"] for n in f.get("file_names", [])}
    assert names and names <= set(first.file_names.tolist()) and calls == [1]


@pytest.mark.parametrize("edit", [{"format": "lvis"}, {"has_image_sizes": False}, {"info": {"x": 1}}])
def test_an_edited_meta_json_is_rebuilt(edit, tmp_path, monkeypatch):
    p, first, entry, calls = _cached(tmp_path, monkeypatch)
    meta = json.loads((entry / "meta.json").read_text())
    meta.update(edit)
    (entry / "meta.json").write_text(json.dumps(meta))  # its checksum no longer matches
    _rebuilt_equal(p, first, calls)


@pytest.mark.parametrize(
    "edit",
    [
        {"has_image_sizes": False},
        {"format": "yaml"},
        {"version": "2"},
        {"columns": {}},
        {"key": "0" * 40},
        {"extra": 1},
    ],
)
def test_meta_json_forged_with_a_consistent_crc_is_still_checked(edit, tmp_path, monkeypatch):
    p, first, entry, calls = _cached(tmp_path, monkeypatch)
    _forge(entry, edit_meta=lambda m: m.update(edit))
    _rebuilt_equal(p, first, calls)


def test_meta_json_or_a_column_linked_to_dev_zero_is_rebuilt(tmp_path, monkeypatch):
    p, first, entry, calls = _cached(tmp_path, monkeypatch)
    with within(30):
        (entry / "meta.json").unlink()
        (entry / "meta.json").symlink_to("/dev/zero")
        _rebuilt_equal(p, first, calls)
        calls.clear()
        entry = _entry()
        (entry / "widths.npy").unlink()
        (entry / "widths.npy").symlink_to("/dev/zero")
        _rebuilt_equal(p, first, calls)


# ---- loaders: sub-pixel images, Open Images UTF-8, VOC folders and tag floods ----------------------------------
def _coco_with(tmp_path, **image_fields):
    d = json.loads(json.dumps(BASE))
    d["images"][1].update(image_fields)
    p = tmp_path / "sub.json"
    p.write_text(json.dumps(d))
    return p


@pytest.mark.parametrize("w,h", [(0.5, 0.5), (0.999, 10), (10, 0.25)])
def test_sub_pixel_images_are_refused_like_zero_size_ones(w, h, tmp_path):
    from conftest import VOC_XML

    p = _coco_with(tmp_path, width=w, height=h)
    one_line_exit_2(["stats", str(p), "--anchors", "none"], p, "images[1] (id 2)", "at least 1 pixel")
    # imbalance check walks the records: the image is an invalid_image error, its box is not counted
    r = runner.invoke(app, ["check", str(p), "--report-format", "json"])
    assert r.exit_code == 1
    found = {f["rule"]: f for f in json.loads(r.stdout)["findings"]}
    assert found["invalid_image"]["image_ids"] == [2]
    x = tmp_path / "a.xml"
    x.write_text(
        VOC_XML.read_text()
        .replace("<width>353</width>", f"<width>{w}</width>")
        .replace("<height>500</height>", f"<height>{h}</height>")
    )
    one_line_exit_2(["stats", str(x), "--anchors", "none"], x, "<size>", "at least 1 pixel")
    sizes = tmp_path / "sizes.csv"
    sizes.write_text(f"ImageID,Width,Height\nabc,{w},{h}\n")
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("ImageID,LabelName,XMin,XMax,YMin,YMax\nabc,/m/1,0.1,0.2,0.1,0.3\n")
    one_line_exit_2(
        ["stats", str(boxes), "--image-sizes", str(sizes), "--anchors", "none"], sizes, "line 2", "at least 1 pixel"
    )


def test_one_pixel_images_are_accepted(tmp_path):
    p = _coco_with(tmp_path, width=1, height=1.0)
    assert imbalance_cli.load(p, cache=False).widths.tolist() == [10.0, 1.0]


@pytest.mark.parametrize("column", [0, 1, 2])  # ImageID, Source, LabelName
def test_invalid_utf8_in_open_images_text_fields_names_the_line(column, tmp_path):
    from conftest import FIXTURES

    lines = (FIXTURES / "openimages_from_coco_val.csv").read_bytes().split(b"\n")
    fields = lines[6].split(b",")
    fields[column] = fields[column][:3] + b"\xff" + fields[column][3:]
    lines[6] = b",".join(fields)
    p = tmp_path / "oi" / "boxes.csv"
    p.parent.mkdir()
    p.write_bytes(b"\n".join(lines))
    one_line_exit_2(["stats", str(p), "--anchors", "none", "--no-cache"], p, "line 7", "invalid UTF-8")
    classes = tmp_path / "classes.csv"
    classes.write_bytes(b"/m/04dr76w,Per\xffson\n")
    good = FIXTURES / "openimages_from_coco_val.csv"
    one_line_exit_2(
        ["stats", str(good), "--classes", str(classes), "--anchors", "none"],
        classes,
        "invalid UTF-8 at line 1 (byte 14)",
    )


def test_a_voc_folder_without_xml_and_a_tag_flood_are_refused(tmp_path):
    d = tmp_path / "voc"
    d.mkdir()
    (d / "notes.txt").write_text("not an annotation\n")
    one_line_exit_2(["stats", str(d), "--format", "voc", "--anchors", "none"], d, "no .xml annotation files")
    x = tmp_path / "flood.xml"
    x.write_text(
        "<annotation><size><width>10</width><height>10</height></size>"
        + "<a>" * 300_000
        + "</a>" * 300_000
        + "</annotation>"
    )
    one_line_exit_2(["stats", str(x), "--anchors", "none"], x, "more than 500,000 tags")


# ---- rules files: by schema, bounded, nesting checked before parsing --------------------------------------------
RULES_CASES = {  # TOML text -> what the one line must name
    "fail_on_number": ("fail_on = 3\n", "field 'fail_on'"),
    "severity_number": ("[rules.few_instances]\nseverity = 1\n", "field 'rules.few_instances.severity'"),
    "sigma_string": ('[rules.size_outlier]\nsigma = "5"\n', "field 'rules.size_outlier.sigma'"),
    "bins_float": ("[rules.skewed_distribution]\nbins = 2.5\n", "field 'rules.skewed_distribution.bins'"),
    "bins_zero": ("[rules.skewed_distribution]\nbins = 0\n", "field 'rules.skewed_distribution.bins'"),
    "bins_huge": ("[rules.skewed_distribution]\nbins = 1000000000000\n", "field 'rules.skewed_distribution.bins'"),
    "share_above_one": ("[rules.invalid_box]\nmax_share = 1.5\n", "field 'rules.invalid_box.max_share'"),
    "threshold_nan": ("[rules.imbalance_ratio]\nthreshold = nan\n", "field 'rules.imbalance_ratio.threshold'"),
    "threshold_inf": (
        "[rules.anchor_neg_pos_ratio]\nthreshold = inf\n",
        "field 'rules.anchor_neg_pos_ratio.threshold'",
    ),
    "threshold_bool": ("[rules.drift_class_tv]\nthreshold = true\n", "field 'rules.drift_class_tv.threshold'"),
    "count_negative": ("[rules.few_instances]\nthreshold = -1\n", "field 'rules.few_instances.threshold'"),
    "count_float": (
        "[rules.skewed_distribution]\nmin_instances = 2.0\n",
        "field 'rules.skewed_distribution.min_instances'",
    ),
    "rule_not_table": ("[rules]\nsize_outlier = 5\n", "field 'rules.size_outlier'"),
    "anchors_not_table": ('anchors = "retinanet"\n', "field 'anchors'"),
    "preset_number": ("[anchors]\npreset = 5\n", "field 'anchors.preset'"),
    "pos_iou_two": ('[anchors]\npreset = "retinanet"\npos_iou = 2\n', "field 'anchors.pos_iou'"),
    "pos_below_neg": ('[anchors]\npreset = "retinanet"\npos_iou = 0.3\nneg_iou = 0.5\n', "[anchors]"),
    "matcher_unknown": ('[anchors]\npreset = "retinanet"\nmatcher = "best"\n', "[anchors]"),
    "preset_unknown": ('[anchors]\npreset = "retinanett"\n', "[anchors]"),
    "matcher_without_preset": ('[anchors]\nmatcher = "mmdet"\n', "no anchor preset is given"),
    "deep_arrays": ("a = " + "[" * 50_000 + "]" * 50_000 + "\n", "nested too deeply: 50,000 levels"),
    "deep_inline_tables": ("a = " + "{b=" * 20_000 + "1" + "}" * 20_000 + "\n", "nested too deeply: 20,000 levels"),
    "deep_dotted_key": ("a" + ".a" * 50_000 + " = 1\n", "nested too deeply: 50,001 levels"),
    "deep_table_header": ("[" + "a." * 50_000 + "a]\n", "nested too deeply: 50,001 levels"),
    "malformed": ('fail_on = "error\nx\n', "malformed TOML"),
}


@pytest.mark.parametrize("case", sorted(RULES_CASES))
def test_bad_rules_files_are_one_line_naming_the_field(case, tmp_path):
    text, needle = RULES_CASES[case]
    p = tmp_path / "rules.toml"
    p.write_text(text)
    with within(20):  # (tomllib's time grows with the square of a dotted key's depth: bounded before parsing)
        one_line_exit_2(["check", str(COCO_VAL), "--rules", str(p)], p, needle)


def test_brackets_and_dots_inside_strings_and_comments_do_not_nest(tmp_path):
    from imbalance_cli.check import load_rules

    p = tmp_path / "rules.toml"
    p.write_text(
        "# [[[[ a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v\n"
        'fail_on = "warning"  # ' + "[" * 100 + "\n[rules.size_outlier]\nsigma = 4.5\n"
        '[rules."images_without_boxes"]\nseverity = "off"\n'
    )
    r = load_rules(p)
    assert r.fail_on == "warning" and r.get("size_outlier", "sigma") == 4.5
    assert r.severity("images_without_boxes") == "off"
    q = tmp_path / "utf8.toml"
    q.write_bytes(b'fail_on = "error"\n# caf\xc3\xa9\n[rules.few_instances]\nseverity = "w\xffarning"\n')
    one_line_exit_2(["check", str(COCO_VAL), "--rules", str(q)], q, "invalid UTF-8 at line 4 (byte 61)")


# ---- baselines: by schema -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_baseline():
    r = runner.invoke(app, ["stats", str(COCO_VAL), "--anchors", "none", "--json"])
    assert r.exit_code == 0
    return json.loads(r.stdout)


def _set_class(key, value):
    return lambda d: d["classes"][0].__setitem__(key, value)


def _set_hist(key, field, value):
    return lambda d: d["scale"][key].__setitem__(field, value(d["scale"][key][field]) if callable(value) else value)


BASELINE_CASES = {  # edit -> the field the one line names
    "id_string": (_set_class("id", "abc"), "field 'classes[0].id': expected int, got str"),
    "id_1e300": (_set_class("id", 1e300), "field 'classes[0].id': expected int, got float"),
    "id_1_7": (_set_class("id", 1.7), "field 'classes[0].id': expected int, got float"),
    "id_2_70": (_set_class("id", 2**70), "field 'classes[0].id'"),
    "id_list": (_set_class("id", [1]), "field 'classes[0].id': expected int, got array"),
    "id_null": (_set_class("id", None), "field 'classes[0].id': expected int, got null"),
    "id_duplicate": (lambda d: d["classes"][1].__setitem__("id", d["classes"][0]["id"]), "field 'classes[1].id'"),
    "instances_many": (_set_class("instances", "many"), "field 'classes[0].instances': expected int, got str"),
    "instances_object": (_set_class("instances", {}), "field 'classes[0].instances': expected int, got object"),
    "instances_negative": (_set_class("instances", -1000), "field 'classes[0].instances': expected int >= 0"),
    "instances_1e308": (_set_class("instances", 1e308), "field 'classes[0].instances': expected int, got float"),
    "instances_true": (_set_class("instances", True), "field 'classes[0].instances': expected int, got bool"),
    "instances_missing": (lambda d: d["classes"][2].pop("instances"), "field 'classes[2]'"),
    "name_number": (_set_class("name", 5), "field 'classes[0].name'"),
    "classes_object": (lambda d: d.__setitem__("classes", {"a": 1}), "field 'classes': expected array"),
    "scale_list": (lambda d: d.__setitem__("scale", [1]), "field 'scale'"),
    "counts_number": (_set_hist("relative_width", "counts", 5), "field 'scale.relative_width.counts'"),
    "counts_strings": (
        _set_hist("relative_width", "counts", lambda c: [str(x) for x in c]),
        "field 'scale.relative_width.counts[0]'",
    ),
    "counts_negative": (
        _set_hist("relative_area", "counts", lambda c: [-5] + c[1:]),
        "field 'scale.relative_area.counts[0]'",
    ),
    "counts_one_short": (
        _set_hist("relative_height", "counts", lambda c: c[1:]),
        "field 'scale.relative_height.counts'",
    ),
    "edges_strings": (
        _set_hist("relative_width", "edges", lambda e: [str(x) for x in e]),
        "field 'scale.relative_width.edges[0]'",
    ),
    "edges_descending": (
        _set_hist("relative_width", "edges", lambda e: e[::-1]),
        "field 'scale.relative_width.edges[1]'",
    ),
    "edges_null": (
        _set_hist("relative_width", "edges", lambda e: e[:3] + [None] + e[4:]),
        "field 'scale.relative_width.edges[3]'",
    ),
    "edges_repeated": (
        _set_hist("relative_area", "edges", lambda e: [e[0]] + e[:-1]),
        "field 'scale.relative_area.edges[1]'",
    ),
    "schema_other": (lambda d: d.__setitem__("schema", "imbalance.compare/1"), "not an imbalance.stats report"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BASELINE_CASES))
def test_bad_baselines_are_one_line_naming_the_field(case, real_baseline, tmp_path):
    edit, needle = BASELINE_CASES[case]
    d = json.loads(json.dumps(real_baseline))
    edit(d)
    p = tmp_path / "stats.json"
    p.write_text(json.dumps(d))
    one_line_exit_2(["check", str(COCO_VAL), "--baseline", str(p)], p, needle)
    # the API checks a dict the same way (no file to name)
    from imbalance_cli.check import load_rules, run_check
    from imbalance_cli.errors import InputError

    with pytest.raises(InputError) as e:
        run_check(COCO_VAL, load_rules(None), d)
    assert needle.split(":")[0] in e.value.one_line()


@pytest.mark.slow
def test_baseline_nan_and_a_million_classes_and_deep_nesting(real_baseline, tmp_path):
    import tracemalloc

    from imbalance_cli.check import load_baseline

    p = tmp_path / "nan.json"
    p.write_text(json.dumps(real_baseline).replace('"instances": 1,', '"instances": NaN,', 1))
    assert "NaN" in p.read_text()
    one_line_exit_2(["check", str(COCO_VAL), "--baseline", str(p)], p, "malformed JSON", "(byte")
    deep = tmp_path / "deep.json"
    text = '{"schema": "imbalance.stats/1", "classes": ' + "[" * 150_000 + "]" * 150_000 + "}"
    deep.write_text(text)
    # the bracket at start + k opens level k + 2 (the object is level 1): level 65 is the first past 64
    one_line_exit_2(
        ["check", str(COCO_VAL), "--baseline", str(deep)],
        deep,
        "nested too deeply: 150,001 levels",
        f"byte {text.index('[') + 63})",
    )
    many = tmp_path / "many.json"
    many.write_text(
        '{"schema": "imbalance.stats/1", "classes": ['
        + ",".join('{"id":%d,"instances":1}' % i for i in range(600_000))
        + "]}"
    )
    assert many.stat().st_size < 16 * 2**20
    tracemalloc.start()
    try:
        with pytest.raises(Exception) as e:
            load_baseline(many)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "field 'classes': expected array of length <= 100000" in str(e.value)
    assert peak < 256 * 2**20, f"peak {peak / 2**20:.0f} MiB"


# ---- non-regular, sparse, compressed-bomb and oversized files, wherever a file is read whole -------------------
def _hostile_files(tmp_path):
    """FIFO, /dev/zero (directly and through a link), a 3 GiB sparse file and a gzip bomb (3 GiB of spaces)."""
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    link = tmp_path / "zero.json"
    link.symlink_to("/dev/zero")
    sparse = tmp_path / "sparse.json"
    with open(sparse, "wb") as f:
        f.truncate(3 * 2**30)
    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(gzip.compress(b" " * 2**24, compresslevel=9) * (3 * 2**6))  # 192 gzip members of 16 MiB
    return {
        "fifo": (fifo, "not a regular file"),
        "dev_zero": ("/dev/zero", "not a regular file"),
        "link_to_dev_zero": (link, "not a regular file"),
        "sparse_3gib": (sparse, "larger than"),
        "gzip_bomb": (bomb, "read into memory"),
    }  # (on-disk size or decompressed size, by the kind's bound)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return _hostile_files(tmp_path_factory.mktemp("hostile"))


SIDE_FILE_COMMANDS = {  # where a whole-read file enters, and how the CLI passes it
    "baseline": lambda f: ["check", str(COCO_VAL), "--baseline", str(f)],
    "rules": lambda f: ["check", str(COCO_VAL), "--rules", str(f)],
    "open_images_classes": lambda f: ["stats", str(_OI_BOXES), "--classes", str(f), "--anchors", "none"],
    "open_images_sizes": lambda f: ["stats", str(_OI_BOXES), "--image-sizes", str(f), "--anchors", "none"],
    "category_statistics_margins": lambda f: ["margins", str(f)],
    "category_statistics_groups": lambda f: ["groups", str(f)],
}
_OI_BOXES = ROOT / "tests" / "data" / "openimages_from_coco_val.csv"


@pytest.mark.slow
@pytest.mark.parametrize("where", sorted(SIDE_FILE_COMMANDS))
def test_fifos_dev_zero_sparse_files_and_gzip_bombs_are_one_line_within_seconds(where, hostile):
    import resource
    import time

    for name, (path, needle) in hostile.items():
        if where.startswith("category_statistics") and name in ("sparse_3gib", "gzip_bomb"):
            continue  # (a big file there is not statistics but an annotation file: streamed, see the next test)
        if where == "open_images_sizes" and name in ("sparse_3gib", "gzip_bomb"):
            needle = "missing ImageID, Width, Height"  # (streamed by pyarrow like the box CSV: its header is read)
        t = time.monotonic()
        with within(30):
            one_line_exit_2(SIDE_FILE_COMMANDS[where](path), path, needle)
        assert time.monotonic() - t < 30
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 2 * 2**20  # KiB: never near 2 GiB


def test_library_readers_of_whole_files_are_bounded_too(hostile, tmp_path):
    from imbalance_cli.errors import InputError
    from imbalance_cli.stats.analysis import Analysis
    from imbalance_cli.stats.margins import load_ecm_counts

    for reader in (load_ecm_counts, Analysis.load):
        for name, (path, needle) in hostile.items():
            with within(30), pytest.raises(InputError, match=needle):
                reader(path)


# ---- options that cannot apply: refused with one line, never recorded and ignored -------------------------------
_YAML = ROOT / "examples" / "data" / "yolo-coco-mini" / "data.yaml"
_LVIS_CATS = ROOT / "examples" / "data" / "lvis_v1_train_cat_info.json.gz"
_VOC = ROOT / "examples" / "data" / "VOC2007_Annotations_000001.xml"

INAPPLICABLE = {  # arguments -> what the one line names
    "no_anchor_pass_engine": (
        ["stats", str(COCO_VAL), "--anchors", "none", "--engine", "dense"],
        ["--engine", "--anchors none"],
    ),
    "no_anchor_pass_many": (
        [
            "stats",
            str(COCO_VAL),
            "--anchors",
            "none",
            "--pos-iou",
            "0.6",
            "--chunk-size",
            "7",
            "--negative-iou-sample",
            "5",
            "--matcher",
            "mmdet",
            "--device",
            "cpu",
        ],
        ["--matcher, --device, --pos-iou, --negative-iou-sample, --chunk-size"],
    ),
    "yolov5_device": (["stats", str(COCO_VAL), "--anchors", "yolov5", "--device", "cpu"], ["--device", "yolov5"]),
    "yolov5_engine_chunks": (
        ["stats", str(COCO_VAL), "--anchors", "yolov5", "--engine", "culled", "--chunk-size", "3"],
        ["--engine, --chunk-size", "yolov5"],
    ),
    "yolo_default_yolov5_sample": (
        ["stats", str(_YAML), "--negative-iou-sample", "all"],
        ["--negative-iou-sample", "yolov5"],
    ),
    "classes_with_coco": (
        ["stats", str(COCO_VAL), "--classes", str(_LVIS_CATS), "--anchors", "none"],
        ["--classes", "Open Images"],
    ),
    "classes_with_voc": (
        ["stats", str(_VOC), "--classes", str(_LVIS_CATS), "--anchors", "none"],
        ["--classes", "Pascal VOC"],
    ),
    "sizes_with_voc_dir": (
        ["stats", "vocdir", "--image-sizes", str(_LVIS_CATS), "--anchors", "none"],
        ["--image-sizes", "Pascal VOC directory"],
    ),
    "sizes_with_format_voc": (
        ["stats", "vocdir", "--format", "voc", "--image-sizes", str(_LVIS_CATS)],
        ["--image-sizes", "Open Images"],
    ),
    "one_stage_ratio": (
        ["margins", str(_LVIS_CATS), "--one-stage", "--fg-bg-ratio", "6.3313"],
        ["--fg-bg-ratio", "--one-stage"],
    ),
    "one_stage_anchors": (
        ["margins", str(COCO_VAL), "--one-stage", "--anchors", "retinanet"],
        ["--anchors", "--one-stage"],
    ),
    "repeat_threshold_uniform": (
        ["batches", str(COCO_VAL), "--repeat-threshold", "0.01"],
        ["--repeat-threshold", "--sampler uniform"],
    ),
    "repeat_threshold_class_aware": (
        ["batches", str(COCO_VAL), "--sampler", "class-aware", "--repeat-threshold", "0.01"],
        ["--repeat-threshold", "--sampler class-aware"],
    ),
    "train_images_with_synthetic": (["train", "--images", "imgs/", "--out", "unused"], ["--images", "synthetic-lt"]),
    "train_val_data_with_synthetic": (
        ["train", "--val-data", "v.json", "--val-fraction", "0.3", "--out", "unused"],
        ["--val-data, --val-fraction", "synthetic-lt"],
    ),
    "train_tail_with_a_file": (
        [
            "train",
            "--data",
            str(COCO_VAL),
            "--images",
            "imgs/",
            "--tail",
            "exp",
            "--train-images",
            "10",
            "--out",
            "unused",
        ],
        ["--train-images, --tail", "--data FILE"],
    ),
    "train_fraction_with_val_data": (
        [
            "train",
            "--data",
            str(COCO_VAL),
            "--images",
            "imgs/",
            "--val-data",
            str(COCO_VAL),
            "--val-fraction",
            "0.5",
            "--out",
            "unused",
        ],
        ["--val-fraction", "--val-data"],
    ),
    "bench_val_images_with_a_file": (
        ["bench", "--data", str(COCO_VAL), "--images", "imgs/", "--val-images", "9", "--out", "unused"],
        ["--val-images", "--data FILE"],
    ),
    "bench_images_with_synthetic": (["bench", "--images", "imgs/", "--out", "unused"], ["--images", "synthetic-lt"]),
    "hist_bins_huge": (
        ["stats", str(COCO_VAL), "--anchors", "none", "--hist-bins", str(10**12)],
        ["--hist-bins must be from 1 to 10,000"],
    ),
    "scale_bins_huge": (
        ["compare", str(COCO_VAL), str(COCO_VAL), "--scale-bins", str(10**12)],
        ["--scale-bins must be from 1 to 10,000"],
    ),
}


@pytest.mark.parametrize("case", sorted(INAPPLICABLE))
def test_options_that_cannot_apply_are_refused(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vocdir").mkdir()
    (tmp_path / "vocdir" / "a.xml").write_bytes(_VOC.read_bytes())
    args, needles = INAPPLICABLE[case]
    one_line_exit_2(args, *needles)
    assert not (tmp_path / "unused").exists()  # refused before any work


@pytest.mark.parametrize("command", ["stats", "groups", "margins", "check", "compare", "batches"])
def test_a_toml_preset_given_as_the_annotation_file_is_refused(command, tmp_path):
    p = tmp_path / "fitted.toml"
    p.write_text('name = "fit"\nsizes = [[32.0]]\naspect_ratios = [0.5, 1.0, 2.0]\nstrides = [8]\n')
    args = [command, str(p)] + ([str(p)] if command == "compare" else [])
    one_line_exit_2(args, p, "not an annotation file", "--anchors")


def test_the_options_that_apply_still_work(tmp_path):
    r = runner.invoke(
        app, ["batches", str(COCO_VAL), "--sampler", "repeat-factor", "--repeat-threshold", "0.01", "--json"]
    )
    assert r.exit_code == 0 and json.loads(r.stdout)["repeat_threshold"] == 0.01
    r = runner.invoke(app, ["batches", str(COCO_VAL), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["repeat_threshold"] is None
    r = runner.invoke(app, ["margins", str(_LVIS_CATS), "--one-stage", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["fg_bg_ratio"] is None


def test_bench_reuses_only_a_sane_finished_run(tmp_path):
    from types import SimpleNamespace

    from imbalance_cli.commands.bench import _REUSE_KEYS, _reusable

    cfg = SimpleNamespace(**{k: 1 for k in _REUSE_KEYS})
    good = {
        "settings": {k: 1 for k in _REUSE_KEYS},
        "AP": 0.3,
        "AP50": 0.5,
        "APr": None,
        "APc": 0.1,
        "APf": 0.2,
        "AP_bins": [],
        "timing": {"train_seconds": 12.5},
    }
    p = tmp_path / "metrics.json"
    p.write_text(json.dumps(good))
    assert _reusable(p, cfg) == good
    for bad in (
        {"AP": "0.3"},
        {"AP": 7.0},
        {"AP50": True},
        {"settings": [1]},
        {"AP_bins": {}},
        {"timing": {"train_seconds": "x"}},
        {"settings": {**good["settings"], "seed": 2}},
    ):
        p.write_text(json.dumps({**good, **bad}))
        assert _reusable(p, cfg) is None, bad
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with within(10):
        assert _reusable(fifo, cfg) is None


# ---- category-statistics files: by type and range, a bounded number of categories --------------------------------
@pytest.mark.parametrize(
    "edit, needle",
    [
        ({"instance_count": 2**60}, "field 'instance_count': expected a non-negative integer up to 2^53"),
        ({"image_count": -1}, "field 'image_count'"),
        ({"id": 1.5}, "field 'id': expected an integer within int64"),
        ({"name": {"en": "x"}}, "field 'name': expected a string"),
        ({"frequency": "x"}, "field 'frequency': expected one of r, c, f"),
    ],
)
def test_category_statistics_values_are_checked(edit, needle, tmp_path):
    cats = json.loads(gzip.decompress(_LVIS_CATS.read_bytes()))
    cats[3].update(edit)
    p = tmp_path / "cats.json"
    p.write_text(json.dumps(cats))
    for command in ("margins", "groups"):
        one_line_exit_2([command, str(p)], p, "categories[3]", needle)


def test_category_statistics_list_at_most_100000_categories(tmp_path):
    p = tmp_path / "cats.json"
    p.write_text("[" + ",".join('{"id":%d,"instance_count":1,"image_count":1}' % i for i in range(100_001)) + "]")
    one_line_exit_2(["groups", str(p)], p, "100,001 categories", "at most 100,000")


def test_anchors_none_on_the_command_line_turns_the_rules_files_anchors_off(tmp_path):
    from imbalance_cli.check import load_rules

    p = tmp_path / "rules.toml"
    p.write_text('[anchors]\npreset = "retinanet"\nmatcher = "mmdet"\n')
    r = load_rules(p, anchors="none")
    assert r.anchors is None and r.anchor_options == {}
    r = load_rules(p)
    assert r.anchors == "retinanet" and r.anchor_options == {"matcher": "mmdet"}


def test_a_folder_of_notes_is_not_taken_for_yolo_labels(tmp_path):
    """Without --format, a folder whose only .txt holds prose is no labels folder (the VOC reading then names the
    missing XML, exit 2); label-shaped text files (rows, an empty file for an image without boxes, a malformed
    row the YOLO rules report) keep it a YOLO folder."""
    from imbalance_cli.data.yolo import is_yolo_path

    d = tmp_path / "notes"
    d.mkdir()
    (d / "notes.txt").write_text("not an annotation\n")
    (d / "classes.txt").write_text("person\ncar\n")
    assert not is_yolo_path(d)
    one_line_exit_2(["stats", str(d), "--anchors", "none"], d, "no .xml annotation files")
    for name, text in {"row": "\ufeff\n0 0.5 0.5 0.2 0.2\n", "empty": "", "short": "3 0.5 0.5\n"}.items():
        e = tmp_path / name
        e.mkdir()
        (e / "classes.txt").write_text("person\n")
        (e / "a.txt").write_text(text)
        assert is_yolo_path(e), name
