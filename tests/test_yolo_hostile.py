"""Hostile YOLO inputs (issue 24): every case one line naming the file and exit 2 -- or a sane exit 0 / 1 with the
image listed as corrupt -- within seconds, under a bounded memory peak, never a traceback or a hang."""

from __future__ import annotations

import os
import threading
import tracemalloc
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from imbalance_cli.cli import app
from imbalance_cli.data import yolo
from imbalance_cli.data.yolo_rules import MAX_LABEL_FIELDS, MAX_LABEL_LINES, parse_label
from imbalance_cli.errors import InputError

runner = CliRunner()
MiB = 1024 * 1024


def _ds(tmp_path: Path, n: int = 2) -> Path:
    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True, exist_ok=True)
        (tmp_path / "labels" / split).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            Image.new("RGB", (64, 48)).save(tmp_path / "images" / split / f"{k}.png")
            (tmp_path / "labels" / split / f"{k}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a, b]\n")
    return tmp_path / "data.yaml"


def _stats(*args, timeout: float = 30.0):
    """Run `imbalance stats` in a thread with a timeout (a hang fails the test instead of blocking it)."""
    out = {}

    def go():
        out["r"] = runner.invoke(app, ["stats", *map(str, args), "--anchors", "none", "-q", "--no-cache"])

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"stats {args} hung"
    r = out["r"]
    assert "Traceback" not in r.output, r.output
    return r


def _refused(r, fragment: str):
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0], r.output


# ---- data.yaml -------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_deep_flow_sequence_names_refused(tmp_path):
    y = _ds(tmp_path)
    y.write_text("train: images/train\nnames: " + "[" * 20000 + "]" * 20000 + "\n")
    _refused(_stats(y), "nested deeper than")


@pytest.mark.slow
@pytest.mark.parametrize("key", ["names", "train", "nc"])
def test_billion_laughs_refused_quickly(tmp_path, key):
    y = _ds(tmp_path)
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    body = {
        "names": "train: images/train\nnames: *i\n",
        "train": "train: *i\nnames: [a, b]\n",
        "nc": "train: images/train\nnc: *i\n",
    }[key]
    y.write_text("\n".join(lines) + "\n" + body)
    tracemalloc.start()
    r = _stats(y, timeout=20)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    _refused(r, "aliases")
    assert peak < 256 * MiB


def test_nc_huge_without_names_refused_before_allocation(tmp_path):
    y = _ds(tmp_path)
    for nc in ("1000000000000", "50000000"):
        y.write_text(f"train: images/train\nnc: {nc}\n")
        _refused(_stats(y), "more than the 1,000,000 classes")


@pytest.mark.parametrize("names", ["{0.5: a, 1: b}", "{true: a, 0: b}", "{0: a, 1.0: b}"])
def test_names_dict_float_or_bool_keys_refused(tmp_path, names):
    y = _ds(tmp_path)
    y.write_text(f"train: images/train\nnames: {names}\n")
    _refused(_stats(y), "'names' keys must be integers")


def test_data_yaml_fifo_device_and_huge_sparse_refused(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    _refused(_stats(fifo, "--format", "yolo"), "not a regular file")
    _refused(_stats("/dev/zero", "--format", "yolo"), "not a regular file")
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    _refused(_stats(link), "not a regular file")
    sparse = tmp_path / "sparse.yaml"
    with open(sparse, "wb") as f:
        f.truncate(3 * 1024**3)
    _refused(_stats(sparse), "larger than")


# ---- label files, image lists, --classes -----------------------------------------------------------------------------
def test_label_fifo_dev_zero_and_sparse_make_the_image_corrupt(tmp_path):
    y = _ds(tmp_path, n=4)
    lab = tmp_path / "labels" / "train"
    (lab / "0.txt").unlink()
    os.mkfifo(lab / "0.txt")
    (lab / "1.txt").unlink()
    (lab / "1.txt").symlink_to("/dev/zero")
    with open(lab / "2.txt", "wb") as f:
        f.truncate(3 * 1024**3)
    tracemalloc.start()
    ds = yolo.load(y, cache=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 256 * MiB
    bad = sorted(ds.info["bad_lines"])
    assert len(bad) == 3
    assert "not a regular file" in bad[0] and "not a regular file" in bad[1] and "larger than" in bad[2]
    assert ds.info["split_counts"]["train"]["images"] == 1
    r = runner.invoke(app, ["check", str(y), "-q"])
    assert r.exit_code == 1 and "Traceback" not in r.output and "corrupt_label" in r.output


def test_label_line_and_line_count_limits():
    tracemalloc.start()
    wide = b"0 " + b"0.5 " * 25_000_000  # 25 M fields, 100 MB: over the byte limit, refused before decoding
    res = parse_label(wide, 3)
    assert res.bad and "larger than" in res.bad[1]
    fields = b"0 " + b"0.1 " * (MAX_LABEL_FIELDS + 10) + b"\n"  # under the byte limit, over the field limit
    res = parse_label(fields, 3)
    assert res.bad == (1, f"more than {MAX_LABEL_FIELDS:,} fields (imbalance's limit)")
    many = b"0 .5 .5 .1 .1\n" * 1_000_000  # 1 M lines, 14 MB: under the byte limit, over the line limit
    res = parse_label(many, 3)
    assert res.bad and f"more than {MAX_LABEL_LINES:,} lines" in res.bad[1]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 256 * MiB


@pytest.mark.slow
def test_image_list_with_nul_fifo_entry_and_a_million_missing_images(tmp_path):
    y = _ds(tmp_path)
    lst = tmp_path / "list.txt"
    lst.write_bytes(b"./images/train/0.png\n./images/tr\x00ain/1.png\n")
    y.write_text("train: list.txt\nnames: [a, b]\n")
    _refused(_stats(y), "line 2: NUL byte")
    os.mkfifo(tmp_path / "images" / "train" / "fifo.png")
    lst.write_text("./images/train/0.png\n./images/train/fifo.png\n")
    r = _stats(y)
    assert r.exit_code == 0 and "fifo.png: not a regular file" in r.output
    lst.write_text("".join(f"./missing/{k:07d}.jpg\n" for k in range(1_000_000)))
    import time

    t = time.perf_counter()
    _refused(_stats(y, timeout=60), "none of the 1,000,000 images listed exists")
    assert time.perf_counter() - t < 30


def test_classes_file_fifo_and_device_refused(tmp_path):
    _ds(tmp_path)
    fifo = tmp_path / "names.txt"
    os.mkfifo(fifo)
    _refused(_stats(tmp_path / "labels" / "train", "--classes", fifo), "not a regular file")
    _refused(_stats(tmp_path / "labels" / "train", "--classes", "/dev/zero"), "not a regular file")


# ---- image headers over the side limits, zero sizes ------------------------------------------------------------------
def _png_header(w: int, h: int) -> bytes:
    import struct
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 4))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("w,h,why", [(2_000_000, 10, "above imbalance's limit"), (0, 20, ""), (20, 0, "")])
def test_image_headers_over_the_limits_or_zero_are_corrupt(tmp_path, w, h, why):
    y = _ds(tmp_path)
    (tmp_path / "images" / "train" / "0.png").write_bytes(_png_header(w, h))
    ds = yolo.load(y, cache=False)
    bad = ds.info["unreadable_image_files"]
    assert len(bad) == 1 and bad[0].startswith(str(tmp_path / "images" / "train" / "0.png")) and why in bad[0]
    assert (ds.widths > 0).all() and (ds.widths <= 1_000_000).all()
    r = runner.invoke(app, ["check", str(y), "-q"])
    assert r.exit_code == 1 and "corrupt_image" in r.output


def test_jpeg_sof_height_zero_is_corrupt(tmp_path):
    y = _ds(tmp_path)
    import io

    b = io.BytesIO()
    Image.new("RGB", (32, 24)).save(b, "JPEG")
    data = bytearray(b.getvalue())
    i = data.index(b"\xff\xc0")
    data[i + 5 : i + 7] = b"\x00\x00"  # SOF0 height
    (tmp_path / "images" / "train" / "0.jpg").write_bytes(bytes(data))
    (tmp_path / "labels" / "train" / "0.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    ds = yolo.load(y, cache=False)
    assert any("0.jpg" in e for e in ds.info["unreadable_image_files"])


def test_forced_yolo_on_a_fifo_is_refused_not_hung(tmp_path):
    fifo = tmp_path / "x.yaml"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        yolo.load(fifo)
