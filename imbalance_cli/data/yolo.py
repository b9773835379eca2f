"""YOLO / Ultralytics datasets (``data.yaml`` + ``labels/*.txt``) -> :class:`Dataset`.

Two entry points, both through :func:`load`:

* a ``data.yaml`` (Ultralytics YOLOv5/YOLOv8 dataset file): ``path`` (the dataset root; relative
  to the YAML file's folder, default that folder), ``train`` / ``val`` / ``test`` each a directory
  of images, a text file listing image paths, or a list of either (relative to ``path``), ``names``
  as a list or as a dict ``{index: name}``, and ``nc`` (checked against ``names``; alone it names
  the classes ``"0"``, ``"1"``, ...). Every split found is loaded; the images of all splits are
  concatenated in the order train, val, test (then any other split key) and
  ``Dataset.info["splits"]`` maps each split name to its ``[first, end)`` image rows.
* a bare folder of label files (``labels/train/*.txt``) or of images, with the class names from
  ``classes=`` (a text file, one name per line), else a ``classes.txt`` beside the labels, else
  the indices themselves.

Semantics follow ultralytics/yolov5 ``utils/dataloaders.py``:

* image files: a directory is searched recursively; a list file's lines starting with ``./`` are
  relative to the list file's folder (other relative lines are taken relative to it too, where
  YOLOv5 takes them relative to the working directory); only the image suffixes of ``IMG_FORMATS``
  count; each split's images are sorted.
* label file of an image (``img2label_paths``): the last ``/images/`` in the path becomes
  ``/labels/`` and the suffix becomes ``.txt``. An image without a label file, or with an empty
  one, is a **background image** (no boxes).
* a line ``class cx cy w h`` is a box in normalised centre/size coordinates; a line with more than
  six fields ``class x1 y1 x2 y2 ...`` is a segment and becomes its bounding box (min/max of its
  points, as ``segments2boxes``). YOLOv5 switches a whole file to segments when any line is one;
  here each line is read by its own field count.
* image sizes from the image header only (Pillow's lazy ``Image.open`` reads no pixels), with
  width and height swapped for EXIF orientations 6 and 8 as ``exif_size`` does: for the formats
  whose Pillow image has ``_getexif`` (JPEG/MPO, WebP, PNG); TIFF sizes stay as Pillow reports them
  (``exif_size`` finds no ``_getexif`` there). A PNG's ``eXIf`` chunk is read only when it precedes
  the pixel data (Pillow would otherwise decode the image to find it). A thread pool reads the
  headers for large datasets.
* bad lines -- wrong field count (not 5 and not an odd number >= 7), a non-number, a class that is
  not an integer in ``[0, nc)``, a coordinate outside [0, 1] -- are dropped, counted and listed as
  ``file:line: reason`` in ``Dataset.info["bad_lines"]`` (with ``strict=True`` the first is fatal).
  YOLOv5 instead drops the whole image as corrupt; duplicate rows, which YOLOv5 removes, are kept
  and counted in ``info["duplicate_labels"]``.

Boxes become pixel ``(x1, y1, x2, y2)`` of the original (EXIF-corrected) image; category ids are
the YOLO class indices ``0..nc-1``; the image id is the file stem when every stem is a unique
number (COCO-style ``000000397133.jpg`` -> 397133), else the row number + 1.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from imbalance_cli.data import cache as _cache
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError

#: Image suffixes YOLOv5 accepts (``utils/dataloaders.py`` ``IMG_FORMATS``).
IMG_FORMATS = ("bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm")
#: Split keys read from a data.yaml, in this order (other keys holding paths are not splits).
SPLIT_KEYS = ("train", "val", "test")
#: Images from which header reading uses a thread pool (it pays on slow or network storage; on a warm
#: local disk the GIL makes it no faster, see benchmarks/yolo.py).
THREAD_THRESHOLD = 100_000
#: How many bad lines are kept verbatim in ``info["bad_lines"]`` (all are counted).
MAX_LISTED = 200
_EXIF_ORIENTATION = 274


def is_yolo_path(path: str | os.PathLike) -> bool:
    """True for a ``.yaml``/``.yml`` file, or a directory holding ``.txt`` label files or images but no ``.xml``."""
    p = Path(path)
    if p.is_file():
        return p.suffix.lower() in (".yaml", ".yml")
    if not p.is_dir():
        return False
    has_txt = has_img = False
    for f in p.rglob("*"):
        s = f.suffix.lower()
        if s == ".xml":
            return False
        if s == ".txt":
            has_txt = True
        elif s[1:] in IMG_FORMATS:
            has_img = True
    return has_txt or has_img


def img2label_path(image_path: str) -> str:
    """The label file of an image as YOLOv5's ``img2label_paths``: last ``/images/`` -> ``/labels/``, suffix -> ``.txt``."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return sb.join(image_path.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt"


def label2img_stem(label_path: str) -> str:
    """The inverse mapping without suffix: last ``/labels/`` -> ``/images/``, ``.txt`` removed."""
    sa, sb = f"{os.sep}labels{os.sep}", f"{os.sep}images{os.sep}"
    return sb.join(label_path.rsplit(sa, 1)).rsplit(".", 1)[0]


# ---------------------------------------------------------------------------------------------------
def read_names(path: str | os.PathLike) -> list[str]:
    """Class names from a text file, one per line (blank lines ignored)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read class names: {e.strerror or e}", path=p) from None
    names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not names:
        raise InputError("class names file is empty", path=p)
    return names


def _names_from_yaml(d: dict, where) -> list[str]:
    names, nc = d.get("names"), d.get("nc")
    if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int) or nc < 1):
        raise InputError(f"'nc' must be a positive integer, got {nc!r}", path=where, record="nc")
    if names is None:
        if nc is None:
            raise InputError("data.yaml needs 'names' (a list or a dict index: name) or 'nc'", path=where)
        return [str(i) for i in range(nc)]
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise InputError("'names' as a dict needs integer keys (class index: name)", path=where,
                             record="names") from None
        if keys != list(range(len(keys))):
            raise InputError(f"'names' keys must be 0..{len(keys) - 1} without gaps, got {keys[:10]}",
                             path=where, record="names")
        by_int = {int(k): v for k, v in names.items()}
        out = [str(by_int[i]) for i in range(len(keys))]
    elif isinstance(names, list):
        out = [str(n) for n in names]
    else:
        raise InputError(f"'names' must be a list or a dict, got {type(names).__name__}", path=where, record="names")
    if not out:
        raise InputError("'names' is empty", path=where, record="names")
    if nc is not None and nc != len(out):
        raise InputError(f"'nc' is {nc} but 'names' has {len(out)} entries", path=where, record="nc")
    return out


def _image_files(source: Path, where, key: str) -> list[str]:
    """Image paths of one split entry: a directory (recursive) or a list file (as YOLOv5's ``LoadImagesAndLabels``)."""
    if source.is_dir():
        files = [str(f) for f in source.rglob("*.*") if f.is_file()]
    elif source.is_file():
        parent = source.parent
        try:
            lines = source.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise InputError(f"cannot read image list: {e.strerror or e}", path=source) from None
        files = []
        for ln in lines:
            ln = ln.strip()
            if not ln:
                continue
            q = Path(ln[2:]) if ln.startswith("./") else Path(ln)
            files.append(str(q if q.is_absolute() else parent / q))
    else:
        raise InputError(f"split '{key}': no such directory or image list file: {source}", path=where, record=key)
    return sorted(f for f in files if f.rsplit(".", 1)[-1].lower() in IMG_FORMATS)


# ---------------------------------------------------------------------------------------------------
def image_size(path: str) -> tuple[int, int] | None:
    """(width, height) from the image header (no pixel decoding), EXIF orientation 6/8 swapped; None if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            try:
                if im.format == "PNG":  # PngImageFile.getexif() decodes the pixels to find a late eXIf chunk
                    raw = im.info.get("exif")
                    ex = Image.Exif()
                    if raw:
                        ex.load(raw)
                    rot = ex.get(_EXIF_ORIENTATION)
                elif hasattr(im, "_getexif"):  # JPEG/MPO (APP1), WebP: parsed from the header
                    rot = im.getexif().get(_EXIF_ORIENTATION)
                else:  # no _getexif (TIFF, BMP, ...): exif_size leaves the size as Pillow reports it
                    rot = None
            except Exception:  # noqa: BLE001 - a broken EXIF block is ignored, as YOLOv5's exif_size does
                rot = None
    except Exception:  # noqa: BLE001 - any unreadable or unknown file is reported by the caller
        return None
    if rot in (6, 8):
        w, h = h, w
    return int(w), int(h)


def _read_sizes(paths: list[str], threads: int | None = None) -> list[tuple[int, int] | None]:
    if len(paths) < THREAD_THRESHOLD and not threads:
        return [image_size(p) for p in paths]
    workers = threads or min(32, (os.cpu_count() or 1) * 4)
    with ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(image_size, paths, chunksize=256))


def _size_cache_file(paths: list[str]) -> Path:
    common = os.path.commonpath([os.path.abspath(p) for p in paths])
    return _cache.cache_dir() / f"yolo-sizes-{hashlib.blake2b(common.encode(), digest_size=12).hexdigest()}.npz"


def _load_size_cache(path: Path) -> dict:
    """``{abs path: (size, mtime_ns, w, h)}`` from a sizes cache file; {} when absent or damaged (then rebuilt)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            names = bytes(z["names"]).decode("utf-8").split("\n")
            meta = z["meta"]
        if meta.ndim != 2 or meta.shape != (len(names), 4):
            raise ValueError("shape")
        return {n: tuple(int(v) for v in row) for n, row in zip(names, meta)}
    except Exception:  # noqa: BLE001 - a missing or damaged cache file is not trusted: rebuilt below
        return {}


def _save_size_cache(path: Path, table: dict) -> None:
    names = list(table)
    meta = np.array([table[n] for n in names], dtype=np.int64).reshape(-1, 4)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, names=np.frombuffer("\n".join(names).encode("utf-8"), dtype=np.uint8), meta=meta)
        os.replace(tmp, path)
    except OSError as e:  # an unwritable cache only costs the next run the header reads: one warning
        _cache.warn_unwritable(path.parent, e)
        try:
            os.unlink(tmp)
        except (OSError, UnboundLocalError):
            pass


def image_sizes(paths: list[str], threads: int | None = None, cache: bool = True) -> list[tuple[int, int] | None]:
    """:func:`image_size` of many images; a thread pool (I/O bound) above :data:`THREAD_THRESHOLD` images.

    With ``cache`` the sizes are kept in the columnar cache directory (``$IMBALANCE_CACHE``), one file
    per dataset folder, keyed per image by its absolute path, byte size and modification time: a
    second load stats the images instead of opening them, and an image that changed is read again.
    """
    if not cache or not paths:
        return _read_sizes(paths, threads)
    cache_file = _size_cache_file(paths)
    table = _load_size_cache(cache_file)
    keys, todo = [], []
    for i, p in enumerate(paths):
        try:
            st = os.stat(p)
            key = (os.path.abspath(p), int(st.st_size), int(st.st_mtime_ns))
        except OSError:
            key = None
        keys.append(key)
        hit = table.get(key[0]) if key else None
        if key is None or hit is None or hit[:2] != key[1:]:
            todo.append(i)
    out: list = [None] * len(paths)
    fresh = _read_sizes([paths[i] for i in todo], threads) if todo else []
    got = dict(zip(todo, fresh))
    changed = False
    for i, key in enumerate(keys):
        if i in got:
            out[i] = got[i]
            if key is not None and got[i] is not None:
                table[key[0]] = (key[1], key[2], got[i][0], got[i][1])
                changed = True
        else:
            hit = table[key[0]]
            out[i] = (hit[2], hit[3])
    if changed:
        _save_size_cache(cache_file, table)
    return out


def parse_label_text(text: str, nc: int | None, file: str, bad: list, counts: dict):
    """Parse one label file's text into ``(classes int64 (n,), xywhn float64 (n, 4))``; bad lines go to ``bad``.

    ``bad`` receives ``"file:line: reason"`` strings (at most :data:`MAX_LISTED` kept) and
    ``counts["bad"]`` counts every bad line. ``nc=None`` accepts any non-negative class.
    """
    cls, rows = [], []
    counts["first"] = None  # the first bad line of this file, for --strict
    for n, raw in enumerate(text.splitlines(), 1):
        parts = raw.split()
        if not parts:
            continue
        reason = None
        k = len(parts)
        try:
            vals = [float(v) for v in parts]
        except ValueError:
            vals = None
            reason = "not a number: " + next(v for v in parts if not _is_float(v))
        if reason is None and not (k == 5 or (k >= 7 and k % 2 == 1)):
            reason = f"{k} fields (expected 'class cx cy w h', or 'class x1 y1 x2 y2 ...' for a segment)"
        if reason is None:
            c = vals[0]
            if not (math.isfinite(c) and c == int(c)):
                reason = f"class {parts[0]} is not an integer"
            elif c < 0 or (nc is not None and c >= nc):
                reason = f"class {parts[0]} out of range 0..{(nc or 1) - 1}"
            else:
                coords = vals[1:]
                if not all(0.0 <= v <= 1.0 for v in coords):  # NaN and inf fail the comparison too
                    reason = "coordinate outside [0, 1]"
                elif k == 5:
                    cls.append(int(c))
                    rows.append(coords)
                else:  # segments2boxes: the min/max of the points, as centre and size
                    xs, ys = coords[0::2], coords[1::2]
                    x1, x2, y1, y2 = min(xs), max(xs), min(ys), max(ys)
                    cls.append(int(c))
                    rows.append([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
                    counts["segments"] += 1
        if reason is not None:
            counts["bad"] += 1
            if counts["first"] is None:
                counts["first"] = (n, reason)
            if len(bad) < MAX_LISTED:
                bad.append(f"{file}:{n}: {reason}")
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 4))
    return np.asarray(cls, np.int64), np.asarray(rows, dtype=np.float64)


def _is_float(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _read_label(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read label file: {getattr(e, 'strerror', None) or e}", path=path) from None


# ---------------------------------------------------------------------------------------------------
def _build(items: list[tuple[str, str | None, tuple[int, int] | None]], names: list[str], path: str,
           splits: dict[str, list[int]], nc_known: bool, strict: bool, extra_info: dict) -> Dataset:
    """items: (image file or label stem, label file or None, (w, h) or None) in image-row order."""
    bad: list[str] = []
    counts = {"bad": 0, "segments": 0, "first": None}
    nc = len(names) if nc_known else None
    cls_all, xywh_all, img_all = [], [], []
    missing = empty = 0
    for i, (_img, lab, _wh) in enumerate(items):
        text = _read_label(lab) if lab is not None else None
        if text is None:
            missing += 1
            continue
        if not text.strip():
            empty += 1
            continue
        before = counts["bad"]
        c, b = parse_label_text(text, nc, lab, bad, counts)
        if strict and counts["bad"] > before:
            line, reason = counts["first"]
            raise InputError(f"bad label line: {reason} (--strict makes bad lines fatal)", path=lab,
                             record=f"line {line}")
        cls_all.append(c)
        xywh_all.append(b)
        img_all.append(np.full(len(c), i, np.int64))
    cls = np.concatenate(cls_all) if cls_all else np.zeros(0, np.int64)
    xywh = np.concatenate(xywh_all) if xywh_all else np.zeros((0, 4))
    bimg = np.concatenate(img_all) if img_all else np.zeros(0, np.int64)
    if not nc_known and len(cls):
        top = int(cls.max())
        if top >= len(names):
            names = names + [str(k) for k in range(len(names), top + 1)]
    has_sizes = all(wh is not None for _i, _l, wh in items) and len(items) > 0
    W = np.array([wh[0] if wh else np.nan for _i, _l, wh in items], dtype=np.float64)
    H = np.array([wh[1] if wh else np.nan for _i, _l, wh in items], dtype=np.float64)
    if has_sizes:
        sw, sh = W[bimg], H[bimg]
    else:
        sw = sh = np.ones(len(bimg))
        W[:] = np.nan
        H[:] = np.nan
    boxes = np.stack([(xywh[:, 0] - xywh[:, 2] / 2) * sw, (xywh[:, 1] - xywh[:, 3] / 2) * sh,
                      (xywh[:, 0] + xywh[:, 2] / 2) * sw, (xywh[:, 1] + xywh[:, 3] / 2) * sh], axis=1) \
        if len(xywh) else np.zeros((0, 4))
    dup = 0
    if len(cls):
        key = np.concatenate([bimg[:, None].astype(np.float64), cls[:, None].astype(np.float64), xywh], axis=1)
        dup = int(len(key) - len(np.unique(key, axis=0)))
    stems = [Path(it[0]).stem for it in items]
    if stems and all(s.isdigit() for s in stems) and len(set(stems)) == len(stems):
        image_ids = np.array([int(s) for s in stems], dtype=np.int64)
    else:
        image_ids = np.arange(1, len(items) + 1, dtype=np.int64)
    info = dict(extra_info)
    info.update({
        "splits": splits,
        "label_files_missing": int(missing), "label_files_empty": int(empty),
        "background_images": int(missing + empty),
        "bad_line_count": int(counts["bad"]), "bad_lines": bad,
        "segment_lines": int(counts["segments"]), "duplicate_labels": dup,
    })
    return Dataset(
        image_ids=image_ids, widths=W, heights=H, file_names=np.array([it[0] for it in items], dtype=object),
        boxes=boxes, box_image=bimg, box_category=cls, category_ids=np.arange(len(names)),
        category_names=np.array(names, dtype=object), format="yolo", path=path, has_image_sizes=has_sizes, info=info,
    )


def _sized_items(images: list[str], cache: bool = True) -> tuple[list, list[str]]:
    sizes = image_sizes(images, cache=cache)
    unreadable = [p for p, s in zip(images, sizes) if s is None]
    items = [(p, img2label_path(p), s) for p, s in zip(images, sizes) if s is not None]
    return items, unreadable


def load_yaml(path: str | os.PathLike, *, strict: bool = False, cache: bool = True) -> Dataset:
    """Load every split of an Ultralytics ``data.yaml`` (see module docstring) into one :class:`Dataset`."""
    import yaml

    p = Path(path)
    try:
        d = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", path=p) from None
    except UnicodeDecodeError:
        raise InputError("not a YOLO data.yaml (not UTF-8 text)", path=p) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else None
        raise InputError(f"malformed YAML: {getattr(e, 'problem', None) or e}", path=p, record=where) from None
    if not isinstance(d, dict):
        raise InputError("a data.yaml must be a mapping with train/val and names", path=p)
    names = _names_from_yaml(d, p)
    root = d.get("path")
    root = p.parent if root in (None, "") else Path(str(root))
    if not root.is_absolute():
        root = p.parent / root
    keys = [k for k in SPLIT_KEYS if d.get(k)]
    if not keys:
        raise InputError("data.yaml names no split: give 'train' and/or 'val' (and optionally 'test')", path=p)
    items: list = []
    splits: dict[str, list[int]] = {}
    unreadable: list[str] = []
    for k in keys:
        entries = d[k] if isinstance(d[k], list) else [d[k]]
        images: list[str] = []
        for e in entries:
            if not isinstance(e, str):
                raise InputError(f"split '{k}' entries must be paths, got {e!r}", path=p, record=k)
            q = Path(e)
            q = q if q.is_absolute() else root / q
            images.extend(_image_files(q, p, k))
        if not images:
            raise InputError(f"split '{k}' has no images ({', '.join(IMG_FORMATS)})", path=p, record=k)
        got, bad_imgs = _sized_items(sorted(images), cache)
        unreadable.extend(bad_imgs)
        splits[k] = [len(items), len(items) + len(got)]
        items.extend(got)
    if unreadable and strict:
        raise InputError("image header unreadable (--strict makes it fatal)", path=unreadable[0])
    return _build(items, names, str(p), splits, True, strict,
                  {"unreadable_images": len(unreadable), "unreadable_image_files": unreadable[:MAX_LISTED]})


def load_dir(path: str | os.PathLike, *, classes: str | os.PathLike | None = None, strict: bool = False,
             cache: bool = True) -> Dataset:
    """Load a bare folder of YOLO label files (or of images whose labels follow ``img2label_paths``).

    For a labels folder the images are looked for by the inverse mapping (``/labels/`` ->
    ``/images/``, any suffix of :data:`IMG_FORMATS`); when every label file has its image the boxes
    are in pixels, otherwise image sizes are unknown and boxes stay normalised
    (``has_image_sizes=False``). Class names: ``classes`` file, else ``classes.txt`` in the folder,
    else the indices found.
    """
    p = Path(path)
    files = sorted(str(f) for f in p.rglob("*") if f.is_file())
    images = [f for f in files if f.rsplit(".", 1)[-1].lower() in IMG_FORMATS]
    if classes is not None:
        names, known = read_names(classes), True
    elif (p / "classes.txt").is_file():
        names, known = read_names(p / "classes.txt"), True
    else:
        names, known = [], False
    if images:
        items, unreadable = _sized_items(images, cache)
    else:
        labels = [f for f in files if f.endswith(".txt") and Path(f).name != "classes.txt"]
        if not labels:
            raise InputError("no YOLO label (.txt) or image files found in directory", path=p)
        index: dict[str, str] = {}
        for root in {str(Path(label2img_stem(lf)).parent) for lf in labels}:
            if os.path.isdir(root):
                for f in os.listdir(root):
                    stem, _, suf = f.rpartition(".")
                    if suf.lower() in IMG_FORMATS:
                        index.setdefault(os.path.join(root, stem), os.path.join(root, f))
        found = [index.get(label2img_stem(lf)) for lf in labels]
        sizes = image_sizes([f for f in found if f], cache=cache) if any(found) else []
        it = iter(sizes)
        items, unreadable = [], []
        for lf, img in zip(labels, found):
            wh = next(it) if img else None
            if img and wh is None:
                unreadable.append(img)
            items.append((img or lf, lf, wh))
    if unreadable and strict:
        raise InputError("image header unreadable (--strict makes it fatal)", path=unreadable[0])
    return _build(items, names, str(p), {}, known, strict,
                  {"unreadable_images": len(unreadable), "unreadable_image_files": unreadable[:MAX_LISTED]})


def load(path: str | os.PathLike, *, classes: str | os.PathLike | None = None, strict: bool = False,
         cache: bool = True) -> Dataset:
    """Load a ``data.yaml`` or a bare YOLO labels/images folder (see module docstring).

    ``cache``: keep image sizes in the columnar cache directory (see :func:`image_sizes`)."""
    p = Path(path)
    if not p.exists():
        raise InputError("no such file or directory", path=p)
    if p.is_dir():
        return load_dir(p, classes=classes, strict=strict, cache=cache)
    if classes is not None:
        raise InputError("--classes applies to a bare YOLO labels folder; a data.yaml has its own 'names'", path=p)
    return load_yaml(p, strict=strict, cache=cache)


def split_datasets(dataset: Dataset) -> dict[str, Dataset]:
    """The per-split :class:`Dataset` s of a data.yaml load (``info["splits"]``), in file order; {} if none."""
    out = {}
    for name, (a, b) in (dataset.info.get("splits") or {}).items():
        sub = dataset.subset_images(np.arange(int(a), int(b)))
        sub.path = f"{dataset.path}[{name}]"
        sub.info.pop("splits", None)
        out[name] = sub
    return out
