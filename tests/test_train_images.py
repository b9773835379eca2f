"""``imbalance train --data FILE --images DIR``: every bad image is one line naming it, exit code 2, before training.

The bad images are made by hand here (a PNG header claiming 20000 x 20000 pixels, a truncated PNG, bytes
that are no image, a header beyond the loaders' 1,000,000-pixel side, a FIFO); the expected outcome is the
developers' guide's rule (one line naming the file, exit 2, no traceback).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image
from typer.testing import CliRunner

from imbalance_cli.cli import app

runner = CliRunner()


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk (valid CRC) for ``width x height`` RGB, then an IDAT of garbage and IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def _dataset(tmp_path, bad_name=None, bad_bytes=None, size=(32, 32), file_name=None):
    """Five 32 x 32 images (category 1, one box each); image 3's file replaced by
    ``bad_bytes`` / named ``file_name``."""
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i in range(1, 6):
        name = f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(img_dir / name)
        w, h = size if i == 3 else (32, 32)
        images.append({"id": i, "width": w, "height": h, "file_name": file_name if (i == 3 and file_name) else name})
        anns.append({"id": i, "image_id": i, "category_id": 1, "bbox": [4, 4, 12, 12], "area": 144.0, "iscrowd": 0})
    if bad_bytes is not None:
        (img_dir / "3.png").write_bytes(bad_bytes)
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"}]}))
    return ann, img_dir


def _train(ann, img_dir, out):
    return [
        "train",
        "--data",
        str(ann),
        "--images",
        str(img_dir),
        "--anchors",
        "synthetic-lt",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--val-fraction",
        "0.4",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--out",
        str(out),
        "-q",
    ]


def _one_line(r, *needles):
    err = r.stderr.strip()
    assert r.exit_code == 2, r.output
    assert "\n" not in err and "Traceback" not in r.output, r.output
    for n in needles:
        assert n in err, err


def _truncated_png() -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()[:300]


@pytest.mark.parametrize(
    "bad, needle",
    [
        (_png_header(20000, 20000), "DecompressionBombError"),  # Pillow's own limit, not an OSError
        (_png_header(1_000_001, 1), "image header says 1000001 x 1 pixels"),
        (_truncated_png(), "cannot read image"),
        (b"\x00" * 100, "UnidentifiedImageError"),
        (_png_header(32, 32)[:20], "cannot read image"),
    ],
)
def test_every_pillow_error_is_one_line_naming_the_image(tmp_path, bad, needle):
    ann, img_dir = _dataset(tmp_path, bad_bytes=bad)
    r = runner.invoke(app, _train(ann, img_dir, tmp_path / "run"))
    _one_line(r, str(img_dir / "3.png"), needle)


@pytest.mark.parametrize(
    "size, needle",
    [
        ((0.5, 0.5), "at least 1 pixel"),  # a size that rounds to 0: refused, no division by zero
        ((32, 0.9), "at least 1 pixel"),
        ((1_000_001, 32), "1,000,000"),
    ],
)
def test_image_sizes_held_to_the_loaders_limits(tmp_path, size, needle):
    ann, img_dir = _dataset(tmp_path, size=size)
    r = runner.invoke(app, _train(ann, img_dir, tmp_path / "run"))
    _one_line(r, "ann.json", "images[2] (id 3)", needle)  # the loader refuses it, before any image is read


def test_nul_byte_in_file_name(tmp_path):
    ann, img_dir = _dataset(tmp_path, file_name="3\x00.png")  # one line naming the record, not open()'s ValueError
    r = runner.invoke(app, _train(ann, img_dir, tmp_path / "run"))
    _one_line(r, "ann.json", "image id 3: file_name", "NUL byte")


@pytest.mark.slow
def test_fifo_image_refused_without_blocking(tmp_path):
    ann, img_dir = _dataset(tmp_path)
    (img_dir / "3.png").unlink()
    os.mkfifo(img_dir / "3.png")
    r = subprocess.run(
        [sys.executable, "-m", "imbalance_cli", *_train(ann, img_dir, tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "not a regular file" in lines[0] and "3.png" in lines[0], r.stderr


@pytest.mark.slow
def test_good_images_train(tmp_path):
    ann, img_dir = _dataset(tmp_path)
    r = runner.invoke(app, _train(ann, img_dir, tmp_path / "run"))
    assert r.exit_code == 0, r.output
