"""Screenshot of chosen sections of a report.html (the others hidden), with examples/report/screenshot.py.

Usage: python examples/report/yolo/sections.py REPORT_HTML OUT_PNG SECTION_ID [SECTION_ID ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from screenshot import screenshot  # noqa: E402


def main() -> None:
    page, out, ids = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    keep = ", ".join(f"main > section#{i}" for i in ids)
    style = f"<style>main > section {{ display: none; }} {keep} {{ display: block; }}</style></head>"
    copy = page.with_name(page.stem + ".sections.html")  # beside the page: the thumbnails load
    copy.write_text(page.read_text(encoding="utf-8").replace("</head>", style, 1), encoding="utf-8")
    try:
        print(out, screenshot(copy, out))
    finally:
        copy.unlink()


if __name__ == "__main__":
    main()
