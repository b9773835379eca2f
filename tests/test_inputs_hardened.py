"""Every input surface besides the annotation records (issues 24 and 28): deep nesting, corrupt gzip, the
bounded reader, rules and baselines by schema, the cache's metadata and columns, options that cannot apply.

Each bad input must end in one line naming the file (and the field where there is one), exit code 2 and no
traceback, through every command that reads that kind of file. Expected byte offsets and depths are computed
in the tests from how each document is built; expected refusals from the schema the README states.
"""

import gzip
import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from imbalance_cli.cli import app

from conftest import COCO_VAL, ROOT

runner = CliRunner()

BASE = {"images": [{"id": 1, "width": 10, "height": 10, "file_name": "a.jpg"},
                   {"id": 2, "width": 20, "height": 10, "file_name": "b.jpg"}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "iscrowd": 0},
                        {"id": 8, "image_id": 2, "category_id": 2, "bbox": [1, 1, 5, 5], "iscrowd": 0}],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}

#: Commands that load an annotation file, with the arguments that make them run on one file quickly.
LOADING_COMMANDS = {
    "stats": lambda f: ["stats", f, "--anchors", "none", "--workers", "1"],
    "check": lambda f: ["check", f],
    "compare": lambda f: ["compare", f, f, "--workers", "1"],
    "batches": lambda f: ["batches", f, "--workers", "1"],
    "anchors": lambda f: ["anchors", f, "--iterations", "0"],
}


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
    """A COCO document with ``depth`` nested arrays at ``where``; and the byte where the nesting passes 900 levels
    (the document itself opens ``outer`` levels before the nested value: top object, array, record)."""
    d = json.loads(json.dumps(BASE))
    marker = "\"@@DEEP@@\""
    if where == "segmentation":
        d["annotations"][1]["segmentation"] = "@@DEEP@@"
        outer = 3
    elif where == "images":
        d["images"][0]["extra"] = "@@DEEP@@"
        outer = 3
    else:  # categories
        d["categories"][1]["extra"] = "@@DEEP@@"
        outer = 3
    text = json.dumps(d)
    start = text.index(marker)
    # the bracket at start + k opens level outer + k + 1; level 901 is the first past 900
    return text.replace(marker, "[" * depth + "]" * depth), start + (900 - outer)


@pytest.mark.parametrize("where", ["segmentation", "images", "categories"])
def test_json_nested_300000_deep_is_one_line_in_every_command(where, tmp_path):
    text, passing = _deep_doc(where, 300_000)
    p = tmp_path / "deep.json"
    p.write_text(text)
    for name, args in LOADING_COMMANDS.items():
        line = one_line_exit_2(args(str(p)), p, "nested too deeply")
        if name != "check":  # (check reports the same refusal; one command's numbers are enough)
            assert f"300,003 levels" in line and f"(byte {passing})" in line, line


def test_json_nested_a_million_deep_through_the_real_cli(tmp_path):
    text, passing = _deep_doc("segmentation", 1_000_000)
    p = tmp_path / "deep.json"
    p.write_text(text)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for workers in ("1", "2"):
        r = subprocess.run([sys.executable, "-m", "imbalance_cli", "stats", str(p), "--anchors", "none", "--workers",
                            workers, "--no-cache"], capture_output=True, text=True, env=env, timeout=120)
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

    for name, raw in (("boxes.csv.gz", (FIXTURES / "openimages_from_coco_val.csv").read_bytes() * 40),
                      ("a.xml.gz", VOC_XML.read_bytes())):
        for at in (0.0, 0.7):
            p = tmp_path / name
            p.write_bytes(_corrupt_gzip(raw, at))
            one_line_exit_2(["stats", str(p), "--anchors", "none"], p, "gzip")
