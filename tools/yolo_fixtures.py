#!/usr/bin/env python3
"""Make the YOLO variant fixtures and record what Ultralytics and YOLOv5 report for them (never run by CI).

    python tools/yolo_fixtures.py make                                  # main venv: writes tests/data/yolo-variants/
    /work/venvs/ultralytics/bin/python tools/yolo_fixtures.py record-ultralytics
    /work/venvs/yolov5/bin/python tools/yolo_fixtures.py record-yolov5
    /work/venvs/yolov5/bin/python tools/yolo_fixtures.py record-build-targets   # bundled sample, per box

``make`` writes small images and label files, one variant per image (see :data:`LABELS` and
``_images``), into ``tests/data/yolo-variants/``. The ``record-*`` commands copy that folder to a
temporary directory (Ultralytics rewrites a JPEG without end marker, and both write ``.cache``
files beside the labels), run the framework's own dataset code from the copy's parent folder (a
list file's lines without ``./`` are relative to the working directory) and write
``record-ultralytics.json`` / ``record-yolov5.json``: per split the images kept with their shape and
labels (float32 values as the framework holds them), the found / missing / empty / corrupt
counters, every message with the copy's root replaced by ``<root>``, and instances per class.
``record-build-targets`` runs YOLOv5's ``ComputeLoss.build_targets`` on the bundled sample's train
split through YOLOv5's own label arithmetic (``letterbox(auto=True)``, ``xywhn2xyxy``,
``xyxy2xywhn(clip=True, eps=1e-3)``) and writes the entries per box to ``yolov5-build-targets.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "yolo-variants"
SAMPLE = ROOT / "examples" / "data" / "yolo-coco-mini"
NAMES = ["a", "b", "c"]

#: label file text per variant (each on a valid 40 x 30 PNG of its own name); None: no label file.
LABELS = {
    "ok": "0 0.5 0.5 0.2 0.4\n1 0.25 0.5 0.5 1.0\n",
    "cls_out_of_range": "0 0.5 0.5 0.2 0.2\n999 0.5 0.5 0.1 0.1\n",
    "cls_equal_nc": "3 0.5 0.5 0.1 0.1\n",
    "cls_last": "2 0.5 0.5 0.1 0.1\n",
    "cls_negative": "0 0.5 0.5 0.1 0.1\n-1 0.5 0.5 0.1 0.1\n",
    "cls_non_integer": "0.5 0.5 0.5 0.1 0.1\n",
    "cls_float_integer": "1.0 0.5 0.5 0.2 0.2\n",
    "cls_tiny_negative": "-0.005 0.5 0.5 0.1 0.1\n",
    "not_a_number": "0 0.5 abc 0.1 0.1\n",
    "nan": "0 nan 0.5 0.1 0.1\n",
    "inf": "0 0.5 0.5 inf 0.1\n",
    "huge_exponent": "0 0.5 0.5 1e400 0.1\n",
    "coord_over": "0 0.5 1.2 0.1 0.1\n",
    "tol_over": "0 1.005 0.5 0.01 0.01\n1 0.5 0.5 1.009 0.2\n",
    "tol_edge": "0 0.5 1.01 0.1 0.1\n",
    "tol_edge_f32": "0 0.5 1.01000001 0.1 0.1\n",
    "tol_past": "0 0.5 1.0101 0.1 0.1\n",
    "tol_neg": "0 -0.005 0.5 0.01 0.01\n",
    "tol_neg_past": "0 -0.0101 0.5 0.01 0.01\n",
    "neg_width": "0 0.5 0.5 -0.005 0.1\n",
    "zero_size": "0 0.5 0.5 0 0\n",
    "odd_segment": "0 0.1 0.1 0.2 0.2 0.3 0.3 0.4\n",
    "mixed": "0 0.1 0.1 0.2 0.2 0.3 0.1\n1 0.5 0.5 0.1 0.1\n",
    "segment_ok": "2 0.1 0.2 0.3 0.7 0.5 0.4\n0 0.6 0.6 0.8 0.6 0.8 0.9\n",
    "segment_dup": "2 0.1 0.2 0.3 0.7 0.5 0.4\n2 0.1 0.2 0.3 0.7 0.5 0.4\n2 0.1 0.2 0.5 0.4 0.3 0.7\n",
    "segment_six": "0 0.1 0.1 0.2 0.2 0.3 0.3 0.4 0.4\n1 0.5 0.5 0.1 0.1 0.3\n",
    "six_fields": "0 0.5 0.5 0.1 0.1 0.3\n",
    "four_fields": "0 0.5 0.5 0.1\n",
    "dup_exact": "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n",
    "dup_float32": "0 0.5 0.5 0.2 0.2\n0 0.50000001 0.5 0.2 0.2\n",
    "bom": "\ufeff1 0.5 0.5 0.2 0.2\n2 0.4 0.4 0.1 0.1\n",
    "empty": "",
    "whitespace": "  \n\n \t\n",
    "blank_middle": "0 0.5 0.5 0.2 0.2\n   \n1 0.5 0.5 0.1 0.1\n",
    "crlf": "0 0.5 0.5 0.2 0.2\r\n1 0.4 0.4 0.1 0.1\r\n",
    "exponent": "0 5e-1 0.5 2E-1 .2\n",
    "plus_sign": "+1 +0.5 0.5 0.2 0.2\n",
    "missing": None,
}
GOOD = "0 0.5 0.5 0.2 0.2\n"


def _save(im, path: Path, fmt: str, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format=fmt, **kw)


def _exif(orientation: int) -> bytes:
    from PIL import Image

    ex = Image.Exif()
    ex[274] = orientation
    return ex.tobytes()


def _images(img_dir: Path, lab_dir: Path) -> None:
    """Image variants (each with the label GOOD): formats, sizes, truncation, EXIF orientation."""
    import io

    from PIL import Image

    base = Image.new("RGB", (40, 30), (90, 120, 150))

    def put(name, data: bytes | None = None, label: str | None = GOOD):
        if data is not None:
            (img_dir / name).write_bytes(data)
        if label is not None:
            (lab_dir / (name.rsplit(".", 1)[0] + ".txt")).write_text(label)

    def enc(im, fmt, **kw) -> bytes:
        b = io.BytesIO()
        im.save(b, format=fmt, **kw)
        return b.getvalue()

    jpg = enc(base, "JPEG", quality=80)
    put("img_jpeg_ok.jpg", jpg)
    put("img_jpeg_upper.JPG", jpg)
    put("img_jpeg_no_eoi.jpg", jpg[:-2])
    put("img_jpeg_half.jpg", jpg[: len(jpg) // 2])
    put("img_gif_as_jpg.jpg", enc(base.convert("P"), "GIF"))
    put("img_zero_bytes.jpg", b"")
    put("img_text_as_png.png", b"this is not an image\n")
    put("img_small_9.png", enc(Image.new("RGB", (9, 20)), "PNG"))
    put("img_small_10.png", enc(Image.new("RGB", (10, 10)), "PNG"))
    png = enc(base, "PNG")
    put("img_png_half.png", png[: len(png) // 2])
    bad_crc = bytearray(png)
    bad_crc[29] ^= 0xFF  # inside the IHDR CRC
    put("img_png_bad_crc.png", bytes(bad_crc))
    bad_idat = bytearray(png)
    bad_idat[-20] ^= 0xFF  # inside the last IDAT chunk: verify() checks every chunk's CRC
    put("img_png_bad_idat.png", bytes(bad_idat))
    put("img_bmp.bmp", enc(base, "BMP"))
    put("img_webp.webp", enc(base, "WEBP"))
    put("img_tiff.tiff", enc(base, "TIFF"))
    put("img_avif.avif", enc(base, "AVIF"))
    put("img_jp2.jp2", enc(base, "JPEG2000"))
    for o in (1, 3, 5, 6, 7, 8):
        put(f"img_exif{o}.jpg", enc(base, "JPEG", exif=_exif(o)))
    put("img_png_exif6.png", enc(base, "PNG", exif=_exif(6)))
    put("img_webp_exif6.webp", enc(base, "WEBP", exif=_exif(6)))
    put("img_tiff_exif6.tif", enc(base, "TIFF", tiffinfo={274: 6}))
    put("img_gif.gif", enc(base.convert("P"), "GIF"))  # not an image suffix of either framework: not listed
    put(".img_hidden.png", png)  # glob skips hidden files
    put("img_no_suffix", png)
    (img_dir / "sub").mkdir(exist_ok=True)
    (lab_dir / "sub").mkdir(exist_ok=True)
    put("sub/img_nested.png", png)


def make() -> None:
    """Write the fixtures into tests/data/yolo-variants (replacing the images and labels folders)."""
    from PIL import Image

    for sub in ("images", "labels"):
        shutil.rmtree(OUT / sub, ignore_errors=True)
    img_dir, lab_dir = OUT / "images" / "train", OUT / "labels" / "train"
    img_dir.mkdir(parents=True)
    lab_dir.mkdir(parents=True)
    base = Image.new("RGB", (40, 30), (90, 120, 150))
    for name, text in LABELS.items():
        base.save(img_dir / f"{name}.png")
        if text is not None:
            (lab_dir / f"{name}.txt").write_bytes(text.encode("utf-8"))
    _images(img_dir, lab_dir)
    # the list-file split: './' lines against the list's folder, other relative lines against the working directory
    listed, lab = OUT / "images" / "listed", OUT / "labels" / "listed"
    listed.mkdir(parents=True)
    lab.mkdir(parents=True)
    for n in ("l1", "l2", "l3", "l4"):
        Image.new("RGB", (32, 24), (1, 2, 3)).save(listed / f"{n}.png")
        (lab / f"{n}.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    (OUT / "val.txt").write_bytes(
        "\ufeff./images/listed/l1.png\n./images/listed/./l2.png\n"
        "yolo-variants/images/listed/l3.png\nimages/listed/l4.png\n"
        "./images/listed/l1.png  \n./images/listed/nothere.png\n\n".encode("utf-8")
    )
    (OUT / "data.yaml").write_text(
        "# YOLO loader variants: see tests/data/yolo-variants/README.md\n"
        "train: images/train\nval: val.txt\nnames: [a, b, c]\n"
    )
    (OUT / "data-cwd.yaml").write_text(
        "# 'path' relative to the working directory (Ultralytics' rule)\n"
        "path: yolo-variants\ntrain: images/listed\nval: images/listed\nnc: 3\n"
    )
    print(f"wrote {sum(1 for _ in OUT.rglob('*'))} files under {OUT}")


# ---------------------------------------------------------------------------------------------- recording
def _norm(s: str, root: str) -> str:
    return s.replace(root, "<root>")


def _copy() -> tuple[Path, Path]:
    tmp = Path(tempfile.mkdtemp(prefix="yolo-rec-"))
    shutil.copytree(OUT, tmp / "yolo-variants", ignore=shutil.ignore_patterns("record-*.json", "*.cache"))
    return tmp, tmp / "yolo-variants"


def _label_record(files, labels, shapes, root):
    out = {}
    for f, lb, shape in zip(files, labels, shapes):
        out[_norm(str(f), root)] = {
            "shape_hw": [int(shape[0]), int(shape[1])],
            "cls": [float(c) for c in lb[:, 0]],
            "xywhn": [[float(v) for v in row] for row in lb[:, 1:5]],
        }
    return out


def record_ultralytics() -> None:
    """Run Ultralytics' YOLODataset on each split of data.yaml and data-cwd.yaml (see module docstring)."""
    import numpy as np
    import ultralytics
    from ultralytics.cfg import get_cfg
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    tmp, root = _copy()
    os.chdir(tmp)
    rec = {"ultralytics": ultralytics.__version__, "numpy": np.__version__, "cwd": "<root>/..", "datasets": {}}
    import PIL

    rec["pillow"] = PIL.__version__
    for yaml_name in ("data.yaml", "data-cwd.yaml"):
        data = check_det_dataset(str(root / yaml_name))
        splits = {}
        for split in ("train", "val"):
            ds = YOLODataset(
                img_path=data[split],
                data=data,
                task="detect",
                augment=False,
                hyp=get_cfg(),
                imgsz=640,
                batch_size=1,
                rect=False,
                prefix=f"{split}: ",
            )
            cache = np.load(str(Path(ds.label_files[0]).parent.with_suffix(".cache")), allow_pickle=True).item()
            nf, nm, ne, nc, total = cache["results"]
            labels = ds.labels
            cls = np.concatenate([lb["cls"].reshape(-1) for lb in labels]) if labels else np.zeros(0)
            splits[split] = {
                "images": len(labels),
                "listed": int(total),
                "found": int(nf),
                "missing": int(nm),
                "empty": int(ne),
                "corrupt": int(nc),
                "boxes": int(len(cls)),
                "instances": {str(k): int(v) for k, v in zip(*np.unique(cls.astype(int).tolist(), return_counts=True))},
                "messages": sorted(_norm(m, str(root)) for m in cache["msgs"]),
                "labels": _label_record(
                    [lb["im_file"] for lb in labels],
                    [np.concatenate([lb["cls"].reshape(-1, 1), lb["bboxes"].reshape(-1, 4)], 1) for lb in labels],
                    [lb["shape"] for lb in labels],
                    str(root),
                ),
            }
        rec["datasets"][yaml_name] = {"names": [data["names"][i] for i in range(len(data["names"]))], "splits": splits}
    (OUT / "record-ultralytics.json").write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(tmp)
    print("wrote", OUT / "record-ultralytics.json")


def _yolov5_modules():
    import yolov5  # noqa: F401  (the pip package puts its own folder on sys.path for 'utils', 'models')

    sys.path.insert(0, str(Path(yolov5.__file__).parent))
    from yolov5.utils import dataloaders

    return dataloaders


def record_yolov5() -> None:
    """Run YOLOv5 7.0's LoadImagesAndLabels on each split of data.yaml (paths resolved by us: YOLOv5 resolves
    relative dataset paths against its own package folder)."""
    import numpy as np
    import yolov5

    dl = _yolov5_modules()
    tmp, root = _copy()
    os.chdir(tmp)
    rec = {"yolov5": getattr(yolov5, "__version__", "7.0.14"), "numpy": np.__version__, "datasets": {}}
    splits = {}
    for split, src in (("train", root / "images" / "train"), ("val", root / "val.txt")):
        msgs = []
        orig = dl.LOGGER.info
        dl.LOGGER.info = lambda m, *a, **k: msgs.append(str(m))
        try:
            ds = dl.LoadImagesAndLabels(
                str(src), img_size=640, batch_size=1, augment=False, rect=False, prefix=f"{split}: "
            )
        finally:
            dl.LOGGER.info = orig
        cache_path = (src if src.is_file() else Path(ds.label_files[0]).parent).with_suffix(".cache")
        cache = np.load(str(cache_path), allow_pickle=True).item()
        nf, nm, ne, nc, total = cache["results"]
        cls = np.concatenate([lb[:, 0] for lb in ds.labels]) if len(ds.labels) else np.zeros(0)
        splits[split] = {
            "images": len(ds.im_files),
            "listed": int(total),
            "found": int(nf),
            "missing": int(nm),
            "empty": int(ne),
            "corrupt": int(nc),
            "boxes": int(len(cls)),
            "instances": {str(k): int(v) for k, v in zip(*np.unique(cls.astype(int).tolist(), return_counts=True))},
            "messages": sorted(_norm(m, str(root)) for m in cache["msgs"]),
            "labels": _label_record(ds.im_files, list(ds.labels), [s[::-1] for s in ds.shapes], str(root)),
        }
    rec["datasets"]["data.yaml"] = {"names": NAMES, "splits": splits}
    (OUT / "record-yolov5.json").write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(tmp)
    print("wrote", OUT / "record-yolov5.json")


def record_build_targets() -> None:
    """YOLOv5's build_targets per box on the bundled sample's train split (see module docstring)."""
    import numpy as np
    import torch
    import yaml

    _yolov5_modules()
    from PIL import Image
    from yolov5.models.yolo import Model
    from yolov5.utils.augmentations import letterbox
    from yolov5.utils.general import xywhn2xyxy, xyxy2xywhn
    from yolov5.utils.loss import ComputeLoss

    model = Model(str(Path(sys.modules["yolov5"].__file__).parent / "models" / "yolov5s.yaml"), ch=3, nc=80)
    hyp = yaml.safe_load(
        (Path(sys.modules["yolov5"].__file__).parent / "data" / "hyps" / "hyp.scratch-low.yaml").read_text()
    )
    model.hyp = hyp
    loss = ComputeLoss(model)
    det = model.model[-1]
    out = {}
    img_dir = SAMPLE / "images" / "train2017"
    for img in sorted(img_dir.iterdir()):
        lab = SAMPLE / "labels" / "train2017" / (img.stem + ".txt")
        rows = [ln.split() for ln in lab.read_text().strip().splitlines() if ln.strip()] if lab.exists() else []
        if not rows:
            continue
        labels = np.array(rows, dtype=np.float32)
        w0, h0 = Image.open(img).size
        im, ratio, pad = letterbox(np.zeros((h0, w0, 3), np.uint8), 640, auto=True, stride=32)
        h, w = im.shape[:2]
        xyxy = xywhn2xyxy(labels[:, 1:], ratio[0] * w0, ratio[1] * h0, padw=pad[0], padh=pad[1])
        xywhn = xyxy2xywhn(xyxy, w=w, h=h, clip=True, eps=1e-3)
        n = len(labels)
        targets = torch.zeros((n, 6))
        targets[:, 1] = torch.arange(n, dtype=torch.float32)  # the class column carries the box index
        targets[:, 2:] = torch.from_numpy(np.asarray(xywhn, dtype=np.float32))
        p = [torch.zeros((1, det.na, h // int(s), w // int(s), det.no)) for s in det.stride]
        tcls, _tbox, indices, _anch = loss.build_targets(p, targets)
        per_box = [[] for _ in range(n)]
        for lv, (c, (b, a, gj, gi)) in enumerate(zip(tcls, indices)):
            for k, aa, j, i in zip(c.tolist(), a.tolist(), gj.tolist(), gi.tolist()):
                per_box[int(k)].append([lv, int(aa), int(j), int(i)])
        out[img.name] = {"padded_hw": [h, w], "entries": [sorted(e) for e in per_box]}
    path = OUT / "yolov5-build-targets.json"
    path.write_text(json.dumps({"yolov5": "7.0.14", "torch": torch.__version__, "images": out}, sort_keys=True) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    cmds = {
        "make": make,
        "record-ultralytics": record_ultralytics,
        "record-yolov5": record_yolov5,
        "record-build-targets": record_build_targets,
    }
    if len(sys.argv) != 2 or sys.argv[1] not in cmds:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(cmds)}")
    cmds[sys.argv[1]]()
