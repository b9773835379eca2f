"""Property test (issue 15 item 6): mutate the bundled real files; loading either succeeds with sane numbers or
fails with one InputError line naming the file -- never another exception.

Mutations: truncation, type swaps, key and record deletions, record duplications and extreme numbers, on the
real COCO val subset, the real LVIS v0.5 subset, the Objects365-style and Open Images fixtures (real COCO boxes)
and the real VOC XML file. "Sane" is checked against the schema: finite positive image sizes within the stated
bound, every box pointing at a defined image and category, counts consistent, and the dataset statistics
(``analyze(..., anchors="none")``) computed without error.
"""

import gzip
import json
import tracemalloc

import numpy as np
import pytest
from conftest import COCO_VAL, FIXTURES, LVIS_V05, VOC_XML
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import imbalance_cli
from imbalance_cli.cli import app
from imbalance_cli.data._io import MAX_IMAGE_SIDE
from imbalance_cli.errors import InputError

_DOCS = {
    "coco": json.loads(gzip.decompress(COCO_VAL.read_bytes())),
    "lvis": json.loads(gzip.decompress(LVIS_V05.read_bytes())),
    "objects365": json.loads((FIXTURES / "objects365_from_coco_val.json").read_text()),
}
for _d in _DOCS.values():  # keep examples quick: the first 30 images and their boxes
    keep = {im["id"] for im in _d["images"][:30]}
    _d["images"] = _d["images"][:30]
    _d["annotations"] = [a for a in _d["annotations"] if a["image_id"] in keep]
_CSV = (FIXTURES / "openimages_from_coco_val.csv").read_bytes()
_XML = VOC_XML.read_bytes()
_WEIRD = [
    True,
    False,
    None,
    "10",
    "",
    0.5,
    -1,
    0,
    1e308,
    -1e308,
    1e-308,
    2**63,
    2**64 - 1,
    -(2**63) - 1,
    [],
    {},
    [1, 2],
    [[1.0, 2.0]],
    {"a": 1},
    '\u00e9\\"}]',
]
_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


#: Stated memory bound of one mutated small file's load + statistics (Python and numpy allocations, tracemalloc):
#: a mutation must never make the loader allocate by a number read from the file (sizes, counts, ids).
MEMORY_BOUND = 256 * 2**20


def _check(path):
    tracemalloc.start()
    try:
        return _check_inner(path)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MEMORY_BOUND, f"{path}: peak {peak / 2**20:.0f} MiB"


def _cli_check(path):
    """The same file through ``imbalance stats --anchors none``: exit 0, or exit 2 with one line naming the file."""
    r = CliRunner().invoke(app, ["stats", str(path), "--anchors", "none", "--json", "--no-cache", "--workers", "1"])
    assert r.exit_code in (0, 2), (r.exit_code, r.output)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    if r.exit_code == 2:
        err = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(err) == 1 and str(path) in err[0] and "Traceback" not in r.output, r.stderr


def _check_inner(path):
    try:
        ds = imbalance_cli.load(path, cache=False, workers=1)
    except InputError as e:
        line = e.one_line()
        assert "\n" not in line and str(path) in line
        return None
    n_img, n_box, n_cat = ds.num_images, ds.num_boxes, ds.num_categories
    if ds.has_image_sizes:
        assert np.all(np.isfinite(ds.widths)) and np.all(ds.widths > 0) and np.all(ds.widths <= MAX_IMAGE_SIDE)
        assert np.all(np.isfinite(ds.heights)) and np.all(ds.heights > 0) and np.all(ds.heights <= MAX_IMAGE_SIDE)
    if n_box:
        assert ds.box_image.min() >= 0 and ds.box_image.max() < n_img
        assert ds.box_category.min() >= 0 and ds.box_category.max() < n_cat
    assert len(np.unique(ds.category_ids)) == n_cat
    from imbalance_cli.stats import analyze

    try:
        report = analyze(ds, anchors="none").to_dict()
    except InputError as e:  # e.g. a dataset without any valid box: a clear refusal is fine
        assert "\n" not in e.one_line()
        return ds
    assert report["dataset"]["annotations"] == n_box
    return ds


def _mutate_doc(doc, data):
    d = json.loads(json.dumps(doc))
    op = data.draw(st.sampled_from(["swap", "delete_key", "delete_record", "duplicate", "extreme", "top"]))
    section = data.draw(st.sampled_from(["images", "annotations", "categories"]))
    recs = d[section]
    if not recs:
        return d
    i = data.draw(st.integers(0, len(recs) - 1))
    rec = recs[i]
    key = data.draw(st.sampled_from(sorted(rec))) if rec else None
    if op == "swap" and key:
        rec[key] = data.draw(st.sampled_from(_WEIRD))
    elif op == "delete_key" and key:
        del rec[key]
    elif op == "delete_record":
        del recs[i]
    elif op == "duplicate":
        recs.insert(data.draw(st.integers(0, len(recs))), json.loads(json.dumps(rec)))
    elif op == "extreme":
        value = data.draw(st.sampled_from([1e308, -1e308, 1e20, 1e9, 0, -0.0, 5e-324, 2**53 + 1]))
        if section == "images":
            rec[data.draw(st.sampled_from(["width", "height"]))] = value
        elif section == "annotations":
            rec["bbox"][data.draw(st.integers(0, 3))] = value
        else:
            rec["id"] = value if float(value).is_integer() and abs(value) < 2**63 else rec["id"]
    elif op == "top":
        d[section] = data.draw(st.sampled_from(_WEIRD))
    return d


def _mutated_json_file(name, data, tmp_path):
    """A mutated (and maybe truncated) copy of one bundled JSON document, written to ``tmp_path``."""
    d = _mutate_doc(_DOCS[name], data)
    raw = json.dumps(d).encode()
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    p = tmp_path / f"{name}.json"
    p.write_bytes(raw)
    return p


@pytest.mark.slow
@_SETTINGS
@given(name=st.sampled_from(sorted(_DOCS)), data=st.data())
def test_mutated_json_loads_or_fails_cleanly(name, data, tmp_path):
    _check(_mutated_json_file(name, data, tmp_path))


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@pytest.mark.slow
@given(name=st.sampled_from(sorted(_DOCS)), data=st.data())
def test_mutated_json_through_the_cli_exits_0_or_2_with_one_line(name, data, tmp_path):
    _cli_check(_mutated_json_file(name, data, tmp_path))


@pytest.mark.slow
@_SETTINGS
@given(data=st.data())
def test_mutated_openimages_csv_loads_or_fails_cleanly(data, tmp_path):
    lines = _CSV.split(b"\n")
    op = data.draw(st.sampled_from(["truncate", "field", "drop_field", "duplicate", "delete"]))
    i = data.draw(st.integers(1, len(lines) - 2))
    fields = lines[i].split(b",")
    if op == "truncate":
        raw = _CSV[: data.draw(st.integers(0, len(_CSV)))]
    else:
        if op == "field":
            j = data.draw(st.integers(0, len(fields) - 1))
            fields[j] = data.draw(st.sampled_from([b"", b"x", b"1e308", b"-1", b"nan", b"inf", b'"a,b"', b"2"]))
            lines[i] = b",".join(fields)
        elif op == "drop_field":
            lines[i] = b",".join(fields[:-1])
        elif op == "duplicate":
            lines.insert(i, lines[i])
        else:
            del lines[i]
        raw = b"\n".join(lines)
    sub = tmp_path / "oi"
    sub.mkdir(exist_ok=True)
    p = sub / "boxes.csv"
    p.write_bytes(raw)
    _check(p)


@pytest.mark.slow
@_SETTINGS
@given(data=st.data())
def test_mutated_voc_xml_loads_or_fails_cleanly(data, tmp_path):
    text = _XML
    op = data.draw(st.sampled_from(["truncate", "value", "delete_tag"]))
    if op == "truncate":
        text = text[: data.draw(st.integers(0, len(text)))]
    else:
        tags = [b"width", b"height", b"xmin", b"ymin", b"xmax", b"ymax", b"name", b"difficult", b"size", b"bndbox"]
        tag = data.draw(st.sampled_from(tags))
        start, end = text.find(b"<" + tag + b">"), text.find(b"</" + tag + b">")
        if op == "value" and start >= 0:
            value = data.draw(st.sampled_from([b"", b"x", b"1e308", b"-1", b"nan", b"inf", b"0", b"1e9"]))
            text = text[: start + len(tag) + 2] + value + text[end:]
        elif start >= 0:
            text = text[:start] + text[end + len(tag) + 3 :]
    p = tmp_path / "a.xml"
    p.write_bytes(text)
    _check(p)
