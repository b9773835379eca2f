"""Generators of full-size synthetic annotation files for the loading benchmarks (``benchmarks/load.py``).

All are deterministic for a seed and written in chunks (never the whole document in memory):

* ``objects365``: Objects365-v2-shaped COCO-style JSON without segmentations. 1,742,292 images
  (``--scale 0.1``: 174,229), a mean of 14.6 boxes per image (Poisson), 365 categories with a long
  tail (class frequencies ~ rank^-1.3, so the head class holds ~25% of the boxes as ``person``
  does), image sizes drawn from common photo sizes, boxes log-normal in relative size.
  The Objects365 ``info`` description is set, no ``iscrowd`` key (as in the real file).
* ``lvis``: an LVIS-v1-train-size file: 100,170 images, 1,270,141 annotations, 1,203 categories
  with ``frequency``/``image_count``/``instance_count``/``synset``, LVIS image fields
  (``coco_url``, ``neg_category_ids``, ``not_exhaustive_category_ids``) and COCO-like polygon
  segmentations (one polygon of 12-40 vertices around each box, coordinates with 2 decimals).
* ``openimages``: an Open Images v6 train-size box CSV: 14,610,229 rows over 1,743,042 images and
  600 classes, with the 13 official columns, plus ``class-descriptions-boxable.csv``.

    python benchmarks/synthetic_sizes.py objects365 /work/bench-data/o365_tenth.json --scale 0.1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

O365_IMAGES = 1_742_292
O365_BOXES_PER_IMAGE = 14.6
LVIS_IMAGES = 100_170
LVIS_ANNOTATIONS = 1_270_141
LVIS_CATEGORIES = 1_203
OI_ROWS = 14_610_229
OI_IMAGES = 1_743_042
OI_CLASSES = 600
_SIZES = np.array(
    [
        (640, 480),
        (480, 640),
        (1024, 768),
        (800, 600),
        (1920, 1080),
        (1280, 720),
        (640, 427),
        (500, 375),
        (1024, 683),
        (2048, 1536),
    ],
    dtype=np.float64,
)


def _long_tail(rng, n_classes: int, n: int, alpha: float = 1.3) -> np.ndarray:
    w = 1.0 / np.arange(1, n_classes + 1) ** alpha
    return rng.choice(n_classes, size=n, p=w / w.sum())


def _boxes(rng, W, H):
    rel = np.exp(rng.normal(-2.2, 0.9, size=(len(W), 2))).clip(0.003, 1.0)
    w, h = rel[:, 0] * W, rel[:, 1] * H
    x = rng.uniform(0, 1, len(W)) * (W - w)
    y = rng.uniform(0, 1, len(W)) * (H - h)
    return np.round(x, 2), np.round(y, 2), np.round(w, 2), np.round(h, 2)


def _write_json(path: Path, head: bytes, sections, tail: bytes) -> Path:
    """``sections``: iterables of record chunks (lists of dicts) for images, then annotations."""
    import orjson

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(head)
        for k, (name, chunks) in enumerate(sections):
            f.write((b"," if k else b"") + b'"' + name.encode() + b'":[')
            first = True
            for chunk in chunks:
                if not chunk:
                    continue
                f.write((b"" if first else b",") + orjson.dumps(chunk)[1:-1])
                first = False
            f.write(b"]")
        f.write(tail)
    tmp.replace(path)
    return path


def objects365(path, scale: float = 1.0, seed: int = 0) -> Path:
    """Write an Objects365-v2-shaped file (see module docstring)."""
    import orjson

    rng = np.random.default_rng(seed)
    n_img = int(round(O365_IMAGES * scale))
    sizes = _SIZES[rng.integers(0, len(_SIZES), n_img)]
    per = rng.poisson(O365_BOXES_PER_IMAGE, n_img)
    step = 20_000

    def images():
        for s in range(0, n_img, step):
            yield [
                {
                    "id": i + 1,
                    "file_name": f"images/v2/patch{i % 51}/objects365_v2_{i + 1:08d}.jpg",
                    "width": int(sizes[i, 0]),
                    "height": int(sizes[i, 1]),
                }
                for i in range(s, min(n_img, s + step))
            ]

    def annotations():
        ann_id = 1
        for s in range(0, n_img, step):
            e = min(n_img, s + step)
            img = np.repeat(np.arange(s, e), per[s:e])
            W, H = sizes[img, 0], sizes[img, 1]
            x, y, w, h = _boxes(rng, W, H)
            cat = _long_tail(rng, 365, len(img)) + 1
            area = np.round(w * h, 2)
            chunk = [
                {
                    "id": ann_id + k,
                    "image_id": int(img[k]) + 1,
                    "category_id": int(cat[k]),
                    "bbox": [float(x[k]), float(y[k]), float(w[k]), float(h[k])],
                    "area": float(area[k]),
                    "isfake": 0,
                    "isreflected": 0,
                }
                for k in range(len(img))
            ]
            ann_id += len(img)
            yield chunk

    cats = [{"id": i + 1, "name": f"class_{i + 1:03d}", "supercategory": "object"} for i in range(365)]
    head = b'{"info":{"description":"Objects365 v2-shaped synthetic benchmark file","year":2019},"licenses":[],'
    tail = b',"categories":' + orjson.dumps(cats) + b"}"
    return _write_json(Path(path), head, [("images", images()), ("annotations", annotations())], tail)


def lvis(path, scale: float = 1.0, seed: int = 0) -> Path:
    """Write an LVIS-v1-train-shaped file with polygon segmentations (see module docstring)."""
    import orjson

    rng = np.random.default_rng(seed)
    n_img = int(round(LVIS_IMAGES * scale))
    n_ann = int(round(LVIS_ANNOTATIONS * scale))
    sizes = _SIZES[rng.integers(0, 9, n_img)]
    img_of = np.sort(rng.integers(0, n_img, n_ann))
    cat_of = _long_tail(rng, LVIS_CATEGORIES, n_ann, alpha=1.1) + 1
    inst = np.bincount(cat_of, minlength=LVIS_CATEGORIES + 1)[1:]
    freq = np.where(inst >= 100, "f", np.where(inst >= 11, "c", "r"))
    step = 10_000

    def images():
        for s in range(0, n_img, step):
            chunk = []
            for i in range(s, min(n_img, s + step)):
                chunk.append(
                    {
                        "id": i + 1,
                        "width": int(sizes[i, 0]),
                        "height": int(sizes[i, 1]),
                        "coco_url": f"http://images.cocodataset.org/train2017/{i + 1:012d}.jpg",
                        "license": 1,
                        "neg_category_ids": rng.integers(1, LVIS_CATEGORIES + 1, 3).tolist(),
                        "not_exhaustive_category_ids": rng.integers(1, LVIS_CATEGORIES + 1, 1).tolist(),
                    }
                )
            yield chunk

    def annotations():
        for s in range(0, n_ann, step * 5):
            e = min(n_ann, s + step * 5)
            img = img_of[s:e]
            W, H = sizes[img, 0], sizes[img, 1]
            x, y, w, h = _boxes(rng, W, H)
            chunk = []
            for k in range(e - s):
                m = int(rng.integers(12, 41))
                t = np.linspace(0, 2 * np.pi, m, endpoint=False)
                px = np.round(x[k] + w[k] / 2 * (1 + np.cos(t)), 2)
                py = np.round(y[k] + h[k] / 2 * (1 + np.sin(t)), 2)
                poly = np.stack([px, py], 1).reshape(-1).tolist()
                chunk.append(
                    {
                        "id": s + k + 1,
                        "image_id": int(img[k]) + 1,
                        "category_id": int(cat_of[s + k]),
                        "bbox": [float(x[k]), float(y[k]), float(w[k]), float(h[k])],
                        "area": round(float(np.pi * w[k] * h[k] / 4), 2),
                        "segmentation": [poly],
                    }
                )
            yield chunk

    cats = [
        {
            "id": i + 1,
            "name": f"synset_{i + 1}",
            "synset": f"synset_{i + 1}.n.01",
            "frequency": str(freq[i]),
            "image_count": int(min(inst[i], n_img)),
            "instance_count": int(inst[i]),
            "def": "a thing",
            "synonyms": [f"s{i}"],
        }
        for i in range(LVIS_CATEGORIES)
    ]
    head = b'{"info":{"description":"LVIS v1 train-shaped synthetic benchmark file"},"licenses":[],'
    tail = b',"categories":' + orjson.dumps(cats) + b"}"
    return _write_json(Path(path), head, [("images", images()), ("annotations", annotations())], tail)


def openimages(path, scale: float = 1.0, seed: int = 0) -> Path:
    """Write an Open Images v6 train-shaped box CSV and its class-descriptions file beside it."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_rows = int(round(OI_ROWS * scale))
    n_img = int(round(OI_IMAGES * scale))
    mids = np.array([f"/m/0{i:05x}" for i in range(OI_CLASSES)])
    (path.parent / "class-descriptions-boxable.csv").write_text("".join(f"{m},Class {i}\n" for i, m in enumerate(mids)))
    image_keys = np.array([f"{int(v):016x}" for v in rng.integers(0, 2**62, n_img)])
    img_of = np.sort(rng.integers(0, n_img, n_rows))
    tmp = path.with_name(path.name + ".tmp")
    step = 1_000_000
    with pacsv.CSVWriter(
        str(tmp),
        pa.schema(
            [
                (
                    c,
                    pa.string()
                    if c in ("ImageID", "Source", "LabelName")
                    else (pa.float64() if c.startswith(("X", "Y")) else pa.int8()),
                )
                for c in (
                    "ImageID",
                    "Source",
                    "LabelName",
                    "Confidence",
                    "XMin",
                    "XMax",
                    "YMin",
                    "YMax",
                    "IsOccluded",
                    "IsTruncated",
                    "IsGroupOf",
                    "IsDepiction",
                    "IsInside",
                )
            ]
        ),
        write_options=pacsv.WriteOptions(quoting_style="none"),
    ) as w:
        for s in range(0, n_rows, step):
            e = min(n_rows, s + step)
            n = e - s
            rel = np.exp(rng.normal(-1.6, 0.8, size=(n, 2))).clip(0.002, 1.0)
            x0 = rng.uniform(0, 1, n) * (1 - rel[:, 0])
            y0 = rng.uniform(0, 1, n) * (1 - rel[:, 1])
            flags = [pa.array(rng.integers(0, 2, n).astype(np.int8)) for _ in range(5)]
            flags[2] = pa.array((rng.random(n) < 0.05).astype(np.int8))
            w.write_table(
                pa.table(
                    [
                        pa.array(image_keys[img_of[s:e]]),
                        pa.array(np.full(n, "xclick")),
                        pa.array(mids[_long_tail(rng, OI_CLASSES, n, alpha=1.2)]),
                        pa.array(np.ones(n, np.int8)),
                        pa.array(np.round(x0, 6)),
                        pa.array(np.round(x0 + rel[:, 0], 6)),
                        pa.array(np.round(y0, 6)),
                        pa.array(np.round(y0 + rel[:, 1], 6)),
                        *flags,
                    ],
                    names=[
                        "ImageID",
                        "Source",
                        "LabelName",
                        "Confidence",
                        "XMin",
                        "XMax",
                        "YMin",
                        "YMax",
                        "IsOccluded",
                        "IsTruncated",
                        "IsGroupOf",
                        "IsDepiction",
                        "IsInside",
                    ],
                )
            )
    tmp.replace(path)
    return path


GENERATORS = {"objects365": objects365, "lvis": lvis, "openimages": openimages}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=sorted(GENERATORS))
    ap.add_argument("out")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    p = GENERATORS[args.kind](args.out, scale=args.scale, seed=args.seed)
    print(p, f"{p.stat().st_size / 1e6:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
