"""Regenerate this YOLO-format sample from the bundled COCO subset (run from the repository root).

    python examples/data/yolo-coco-mini/generate.py

For each split (train2017, val2017) of ``examples/data/coco-mini_instances_*.json.gz``:

* ``images/<split>/<stem>.png``: a solid grey PNG of the COCO image's width x height (a real
  image file with the right size in its header; the pixels are not the photo);
* ``labels/<split>/<stem>.txt``: one ``class cx cy w h`` line per annotation, normalised by the
  image size, written with ``%g`` as Ultralytics' COCO converter (JSON2YOLO ``convert_coco``)
  does. Classes are the 80 COCO categories in id order (0..79, the ``coco91_to_coco80`` mapping);
  crowd annotations and boxes with a non-positive width or height are skipped as that converter
  skips them. Images without annotations get no label file (YOLO background images);
* ``data.yaml`` with ``train``, ``val`` and the 80 ``names``.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
SRC = HERE.parent


def convert(split: str, names_out: list) -> dict:
    d = json.loads(gzip.decompress((SRC / f"coco-mini_instances_{split}.json.gz").read_bytes()))
    cats = sorted(d["categories"], key=lambda c: c["id"])
    index = {c["id"]: i for i, c in enumerate(cats)}
    if not names_out:
        names_out.extend(c["name"] for c in cats)
    img_dir, lab_dir = HERE / "images" / split, HERE / "labels" / split
    for p in (img_dir, lab_dir):
        shutil.rmtree(p, ignore_errors=True)
        p.mkdir(parents=True)
    by_image: dict = {}
    for a in d["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    stats = {"images": 0, "labels": 0, "skipped_crowd": 0, "skipped_empty": 0}
    for im in d["images"]:
        stem = Path(im["file_name"]).stem
        W, H = int(im["width"]), int(im["height"])
        Image.new("L", (W, H), 128).save(img_dir / f"{stem}.png", optimize=True)
        stats["images"] += 1
        lines = []
        for a in sorted(by_image.get(im["id"], []), key=lambda a: a["id"]):
            x, y, w, h = a["bbox"]
            if a.get("iscrowd", 0):
                stats["skipped_crowd"] += 1
                continue
            if w <= 0 or h <= 0:
                stats["skipped_empty"] += 1
                continue
            cx, cy = (x + w / 2) / W, (y + h / 2) / H
            lines.append("%g %g %g %g %g" % (index[a["category_id"]], cx, cy, w / W, h / H))
        if lines:
            (lab_dir / f"{stem}.txt").write_text("\n".join(lines) + "\n")
            stats["labels"] += len(lines)
    return stats


def main() -> None:
    names: list = []
    for split in ("train2017", "val2017"):
        print(split, convert(split, names))
    yaml_lines = [
        "# YOLO-format copy of examples/data/coco-mini_instances_{train,val}2017.json.gz (see NOTICE.md)",
        '# no "path" key: the root is this file\'s folder, for Ultralytics and imbalance alike, '
        "from any working directory",
        "train: images/train2017",
        "val: images/val2017",
        f"nc: {len(names)}",
        "names:",
    ]
    yaml_lines += [f"  {i}: {n}" for i, n in enumerate(names)]
    (HERE / "data.yaml").write_text("\n".join(yaml_lines) + "\n")


if __name__ == "__main__":
    main()
