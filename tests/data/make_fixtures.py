"""Regenerate the converted fixtures in this folder from the real COCO val2017 subset.

No real Open Images or Objects365 boxes are available offline, so these fixtures carry the
real COCO geometry in the other formats' schemas (see examples/data/NOTICE.md):

* ``openimages_from_coco_val.csv``: Open Images box CSV, coordinates normalised by the COCO
  image size, crowd -> IsGroupOf=1; class MIDs are the real Open Images MIDs where the COCO name
  matches an Open Images display name (case-insensitive), else ``/m/coco_<id>``;
* ``openimages_from_coco_val_classes.csv`` (MID,DisplayName) and
  ``openimages_from_coco_val_sizes.csv`` (ImageID,Width,Height, every COCO image);
* ``objects365_from_coco_val.json``: COCO-style JSON with Objects365's quirks: no annotation
  ``id``, ``iscrowd`` present only (as a boolean) on crowd boxes, non-contiguous category ids.

Run: ``python tests/data/make_fixtures.py``
"""

import csv
import gzip
import json
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
SRC = ROOT / "examples" / "data" / "coco-mini_instances_val2017.json.gz"


def main() -> None:
    d = json.loads(gzip.decompress(SRC.read_bytes()))
    images = {im["id"]: im for im in d["images"]}
    oi_names = {}
    with open(ROOT / "examples" / "data" / "class-descriptions-boxable.csv", newline="") as f:
        for mid, name in csv.reader(f):
            oi_names.setdefault(name.lower(), mid)
    mids = {c["id"]: oi_names.get(c["name"].lower(), f"/m/coco_{c['id']}") for c in d["categories"]}

    with open(HERE / "openimages_from_coco_val_classes.csv", "w", newline="") as f:
        w = csv.writer(f)
        for c in d["categories"]:
            w.writerow([mids[c["id"]], c["name"]])
    with open(HERE / "openimages_from_coco_val_sizes.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ImageID", "Width", "Height"])
        for im in d["images"]:
            w.writerow([Path(im["file_name"]).stem, im["width"], im["height"]])
    with open(HERE / "openimages_from_coco_val.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside".split(
                ","
            )
        )
        for a in d["annotations"]:
            im = images[a["image_id"]]
            x, y, bw, bh = a["bbox"]
            W, H = im["width"], im["height"]
            w.writerow(
                [
                    Path(im["file_name"]).stem,
                    "xclick",
                    mids[a["category_id"]],
                    1,
                    repr(x / W),
                    repr((x + bw) / W),
                    repr(y / H),
                    repr((y + bh) / H),
                    0,
                    0,
                    int(a["iscrowd"]),
                    0,
                    0,
                ]
            )

    o365 = {
        "info": {"description": "Objects365-style fixture converted from a COCO val2017 subset (real COCO boxes)"},
        "images": [{k: im[k] for k in ("id", "file_name", "width", "height")} for im in d["images"]],
        "categories": [{"id": c["id"], "name": c["name"]} for c in d["categories"]],
        "annotations": [],
    }
    for a in d["annotations"]:
        rec = {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "area": a["area"]}
        if a["iscrowd"]:
            rec["iscrowd"] = True
        o365["annotations"].append(rec)
    (HERE / "objects365_from_coco_val.json").write_text(json.dumps(o365))


if __name__ == "__main__":
    main()
