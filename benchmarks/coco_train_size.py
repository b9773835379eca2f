"""Build a COCO-train-size annotation file by replicating the bundled real COCO subsets.

COCO 2017 train has 118,287 images and 860,001 annotations (about 450 MB of JSON). This
module replicates the 159 real images of ``examples/data/coco-mini_*`` with jitter (boxes shifted
and scaled a little, clipped to the image; segmentation polygons copied so the file has a
realistic size) until it reaches that size. Deterministic for a given seed.

Every field the real ``instances_train2017.json`` carries, in its order (images ``license,
file_name, coco_url, height, width, date_captured, flickr_url, id``; annotations ``segmentation,
area, iscrowd, image_id, bbox, category_id, id``), written with the real file's separators
(``","`` between items, ``": "`` after keys: ``json.dumps(..., separators=(",", ": "))``).
``--no-segmentation`` leaves the polygons out (the loader's hardest case against ``COCO()``).

    python benchmarks/coco_train_size.py /tmp/coco_train_size.json
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "examples" / "data" / f"coco-mini_instances_{s}2017.json.gz" for s in ("train", "val")]
COCO_TRAIN_IMAGES = 118_287
COCO_TRAIN_ANNOTATIONS = 860_001


def build_dataset(
    images: int = COCO_TRAIN_IMAGES, annotations: int = COCO_TRAIN_ANNOTATIONS, seed: int = 0, segmentation: bool = True
) -> dict:
    """Return a COCO instances dict with ``images`` images and about ``annotations`` annotations.

    ``segmentation=False`` leaves the polygons out (a COCO-train-size file without segmentations).
    """
    rng = np.random.default_rng(seed)
    src_images, src_anns = [], {}
    categories, licenses, info = None, [], {}
    for path in SOURCES:
        d = json.loads(gzip.decompress(path.read_bytes()))
        categories = categories or d["categories"]
        licenses, info = licenses or d.get("licenses", []), info or d.get("info", {})
        src_images += d["images"]
        for a in d["annotations"]:
            src_anns.setdefault(a["image_id"], []).append(a)
    per_image = sum(len(v) for v in src_anns.values()) / len(src_images)
    keep_p = min(1.0, annotations / (images * per_image))
    out_images, out_anns = [], []
    ann_id = 1
    for i in range(images):
        src = src_images[i % len(src_images)]
        W, H = src["width"], src["height"]
        image_id = i + 1
        name = f"{image_id:012d}.jpg"
        out_images.append(
            {
                "license": src.get("license", 1),
                "file_name": name,
                "coco_url": f"http://images.cocodataset.org/train2017/{name}",
                "height": H,
                "width": W,
                "date_captured": src.get("date_captured", ""),
                "flickr_url": src.get("flickr_url", ""),
                "id": image_id,
            }
        )
        for a in src_anns.get(src["id"], []):
            if rng.random() > keep_p:
                continue
            x, y, w, h = a["bbox"]
            s = float(rng.uniform(0.9, 1.1))
            dx, dy = rng.normal(0, 0.02 * max(w, 1)), rng.normal(0, 0.02 * max(h, 1))
            nw, nh = w * s, h * s
            nx = float(np.clip(x + dx, 0, max(W - nw, 0)))
            ny = float(np.clip(y + dy, 0, max(H - nh, 0)))
            rec = {"segmentation": a["segmentation"]} if segmentation else {}
            rec.update(
                {
                    "area": a["area"] * s * s,
                    "iscrowd": a["iscrowd"],
                    "image_id": image_id,
                    "bbox": [round(nx, 2), round(ny, 2), round(nw, 2), round(nh, 2)],
                    "category_id": a["category_id"],
                    "id": ann_id,
                }
            )
            out_anns.append(rec)
            ann_id += 1
    info = dict(info, description="COCO-train-size replica of real COCO 2017 subsets (benchmark only)")
    return {"info": info, "licenses": licenses, "images": out_images, "annotations": out_anns, "categories": categories}


def write(path: str | Path, **kw) -> Path:
    """Build the dataset and write it as JSON to ``path`` (skipped if it already exists), COCO's separators."""
    path = Path(path)
    if not path.exists():
        d = build_dataset(**kw)

        def dump(o):
            return json.dumps(o, separators=(",", ": "))

        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write('{"info": ' + dump(d["info"]) + ',"licenses": ' + dump(d["licenses"]))
            for key in ("images", "annotations"):
                recs = d[key]
                f.write(',"%s": [' % key)
                for a in range(0, len(recs), 100_000):
                    f.write(("," if a else "") + ",".join(map(dump, recs[a : a + 100_000])))
                f.write("]")
            f.write(',"categories": ' + dump(d["categories"]) + "}")
        tmp.replace(path)
    return path


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", nargs="?", default="/tmp/coco_train_size.json")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--no-segmentation", action="store_true")
    a = ap.parse_args()
    p = write(
        a.out,
        images=int(COCO_TRAIN_IMAGES * a.scale),
        annotations=int(COCO_TRAIN_ANNOTATIONS * a.scale),
        segmentation=not a.no_segmentation,
    )
    print(p, f"{p.stat().st_size / 1e6:.0f} MB")
