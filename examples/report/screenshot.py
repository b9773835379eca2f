"""Full-page screenshot of a report.html with headless Chromium, cropped to the content.

Usage: python examples/report/screenshot.py REPORT_HTML OUT_PNG [--chromium PATH]
Needs Chromium (Debian package ``chromium``) and Pillow (a matplotlib dependency).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def screenshot(html: Path, out: Path, chromium: str = "/usr/bin/chromium", width: int = 1280,
               max_height: int = 12000) -> tuple[int, int]:
    """Render ``html`` at ``width`` px, crop the trailing background, save a 256-colour PNG; return its size."""
    with tempfile.TemporaryDirectory() as tmp:
        shot = Path(tmp) / "full.png"
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
             f"--user-data-dir={tmp}/profile", f"--screenshot={shot}", f"--window-size={width},{max_height}",
             html.resolve().as_uri()],
            capture_output=True, timeout=120, check=False,
        )
        image = Image.open(shot).convert("RGB")
    pixels = np.asarray(image).astype(int)
    background = pixels[-1, 5]
    used = np.where((np.abs(pixels - background).sum(axis=2) > 6).any(axis=1))[0]
    bottom = min(len(pixels), int(used.max()) + 30) if used.size else len(pixels)
    image = image.crop((0, 0, image.width, bottom))
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)
    return image.size


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    print(args.out, screenshot(args.html, args.out, args.chromium))


if __name__ == "__main__":
    main()
