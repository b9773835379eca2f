"""Image verification as the YOLO trainers do it (``check_image`` / ``verify_image_label``), without decoding pixels.

:func:`verify_image` returns an image's ``(width, height)`` or the reason the trainer skips it as
corrupt, by the rules of Ultralytics 8.x (``version=8``, ``ultralytics/data/utils.py``) or YOLOv5 7.0
(``version=5``, ``utils/dataloaders.py``):

1. Pillow opens the file (``Image.open``: the header only) and ``verify()`` runs -- for PNG that
   reads every chunk and checks its CRC; other formats need nothing more. A file Pillow cannot
   identify is corrupt. HEIC/HEIF open through ``pi_heif`` when it is installed (Ultralytics
   installs it on first need); without it such an image is listed as corrupt, naming the package;
2. the size, EXIF-corrected (``exif_size``): Ultralytics swaps width and height for orientations 5-8
   (JPEG, MPO, PNG, AVIF by rule; WebP as OpenCV decodes it upright; a TIFF's size is already
   oriented by Pillow), YOLOv5 for orientations 6 and 8 of the formats whose Pillow image has
   ``_getexif`` (JPEG/MPO, PNG, WebP). A PNG's ``eXIf`` chunk counts only before the pixel data
   (after ``verify()`` Pillow cannot load a later one);
3. both sides must be at least 10 px; the format must be one of :data:`FORMATS` (``jpeg2000`` for
   Ultralytics' ``.jp2``); GIF content named ``.jpg`` is corrupt;
4. a JPEG whose last two bytes are not the EOI marker is decoded (Ultralytics and YOLOv5 re-save it
   when that works; imbalance never writes to a dataset): corrupt when decoding fails.

Beyond the trainers (the loaders' limits, see :mod:`imbalance_cli.data._io`): a side above
:data:`~imbalance_cli.data._io.MAX_IMAGE_SIDE` pixels, or anything but a regular file, is corrupt.
"""

from __future__ import annotations

import os
import re
import stat
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

from imbalance_cli.data._io import MAX_IMAGE_SIDE

#: Image suffixes (lower case) each trainer lists (Ultralytics ``IMG_FORMATS``; YOLOv5 ``IMG_FORMATS``).
SUFFIXES = {
    8: frozenset({"avif", "bmp", "dng", "heic", "heif", "jp2", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp"}),
    5: frozenset({"bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm"}),
}
#: Pillow formats (lower case) each trainer accepts after opening.
FORMATS = {8: SUFFIXES[8] | {"jpeg2000"}, 5: SUFFIXES[5]}
#: Images from which :func:`verify_images` uses a thread pool (I/O bound: it pays on slow or network storage).
THREAD_THRESHOLD = 2_000
_ORIENTATION = 274
_heif = [None]  # None: not tried; True/False: pi_heif registered or missing


def _open(f, path: str):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(f)
    except UnidentifiedImageError:
        if _heif[0] is None:
            try:
                from pi_heif import register_heif_opener

                register_heif_opener()
                _heif[0] = True
            except ImportError:
                _heif[0] = False
        if _heif[0]:
            f.seek(0)
            return Image.open(f)
        if path.rpartition(".")[2].lower() in ("heic", "heif"):
            raise ValueError(
                "HEIC/HEIF images need the pi-heif package (pip install pi-heif), as Ultralytics installs it"
            ) from None
        raise


def _orientation(im, version: int):
    try:
        if im.format == "PNG":  # only an eXIf chunk before the pixel data: PngImageFile cannot load after verify()
            raw = im.info.get("exif")
            if not raw:
                return None
            from PIL import Image

            ex = Image.Exif()
            ex.load(raw)
            return ex.get(_ORIENTATION)
        if version == 8:
            return (im.tag_v2 if im.format == "TIFF" else im.getexif()).get(_ORIENTATION)
        return im.getexif().get(_ORIENTATION) if hasattr(im, "_getexif") else None
    except Exception:  # noqa: BLE001 - a broken EXIF block is ignored, as both exif_size functions do
        return None


def _size(im, version: int) -> tuple[int, int]:
    w, h = im.size
    rot = _orientation(im, version)
    if version == 8:
        if rot in (5, 6, 7, 8) and im.format in ("JPEG", "MPO", "PNG", "AVIF", "WEBP"):
            w, h = h, w
    elif rot in (6, 8) and im.format != "TIFF":
        w, h = h, w
    return int(w), int(h)


def _jpeg_decodes(path: str) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
    except Exception as e:  # noqa: BLE001 - any failure to decode is the reason it is corrupt
        return f"JPEG without end marker that cannot be decoded ({e})"
    return None


# ------------------------------------------------------------------------------------------------ fast paths
# Plain PNG and JPEG files are read here without Pillow's Python-level parsing (10x less work per image). A fast
# path answers only for a file whose every part it checked is well formed -- what Pillow's open + verify accept
# with the same size -- and hands anything else (EXIF, ICC, text chunks, a bad CRC, truncation, odd markers, a
# JPEG without end marker) to Pillow, whose verdict then decides, exactly as in the trainers.
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_MODES = frozenset(
    {
        (1, 0),
        (2, 0),
        (4, 0),
        (8, 0),
        (16, 0),
        (8, 2),
        (16, 2),
        (1, 3),
        (2, 3),
        (4, 3),
        (8, 3),
        (8, 4),
        (16, 4),
        (8, 6),
        (16, 6),
    }
)  # PIL.PngImagePlugin._MODES
_PNG_BEFORE_IDAT = {b"PLTE": None, b"gAMA": 4, b"cHRM": 32, b"sRGB": 1, b"pHYs": 9}  # chunk: required length
_CID = re.compile(rb"\w\w\w\w")  # PIL.PngImagePlugin.is_cid
_JPEG_HEAD = 65536


def _max_pixels() -> int:
    from PIL import Image

    return int(Image.MAX_IMAGE_PIXELS or 1 << 62)


def _png_fast(data: bytes) -> tuple[int, int] | None:
    """(w, h) of a plain, complete PNG whose every chunk CRC holds (what Pillow's open + verify check), else None."""
    if len(data) < 45 or data[:8] != _PNG_SIG or data[8:16] != b"\x00\x00\x00\rIHDR":
        return None
    w, h, depth, ctype = struct.unpack(">IIBB", data[16:26])
    if (depth, ctype) not in _PNG_MODES or not (0 < w and 0 < h) or w * h > _max_pixels():
        return None
    pos, n, idat = 8, len(data), False
    crc32 = zlib.crc32
    while True:
        if pos + 8 > n:
            return None
        length, cid = struct.unpack(">I4s", data[pos : pos + 8])
        if not _CID.match(cid):
            return None
        if cid == b"IEND":
            return (w, h) if idat else None
        end = pos + 12 + length
        if end > n:
            return None
        if cid == b"IDAT":
            idat = True
        elif not idat and cid != b"IHDR":
            need = _PNG_BEFORE_IDAT.get(cid, -1)
            if need == -1 or (need is not None and length != need):
                return None
        if crc32(data[pos + 4 : end - 4]) != struct.unpack(">I", data[end - 4 : end])[0]:
            return None
        pos = end


def _jpeg_fast(head: bytes) -> tuple[int, int] | None:
    """(w, h) of a baseline/progressive 8-bit JPEG made of JFIF, DQT, DHT, DRI, COM and one SOF before its scan,
    every segment well formed as Pillow parses it; None for anything else (EXIF included)."""
    if head[:2] != b"\xff\xd8":
        return None
    pos, n, size = 2, len(head), None
    while True:
        if pos + 4 > n or head[pos] != 0xFF:
            return None
        m = head[pos + 1]
        length = (head[pos + 2] << 8) | head[pos + 3]
        seg = head[pos + 4 : pos + 2 + length]
        if length < 2 or len(seg) != length - 2:
            return None
        if m == 0xDA:
            return size
        if m == 0xE0:
            if seg[:5] != b"JFIF\x00" or len(seg) < 12:
                return None
        elif m == 0xDB:
            k = 0
            while k < len(seg):
                prec = 1 if seg[k] >> 4 == 0 else 2
                if len(seg) - k < 1 + 64 * prec:
                    return None
                k += 1 + 64 * prec
        elif m in (0xC0, 0xC1, 0xC2):
            if size is not None or len(seg) < 6 or seg[0] != 8 or seg[5] not in (1, 3) or len(seg) < 6 + 3 * seg[5]:
                return None
            h, w = (seg[1] << 8) | seg[2], (seg[3] << 8) | seg[4]
            if not (w > 0 and h > 0) or w * h > _max_pixels():
                return None
            size = (w, h)
        elif m not in (0xC4, 0xDD, 0xFE):
            return None
        pos += 2 + length


def _fast(path: str, version: int, fmt_ok) -> tuple[int, int] | str | None:
    """The fast verdict for a plain PNG or JPEG (see above); None: ask Pillow."""
    with open(path, "rb") as f:
        head = f.read(_JPEG_HEAD)
        if head[:8] == _PNG_SIG:
            if "png" not in fmt_ok:
                return None
            data = head if len(head) < _JPEG_HEAD else head + f.read()
            wh = _png_fast(data)
        elif head[:2] == b"\xff\xd8" and "jpeg" in fmt_ok:
            wh = _jpeg_fast(head)
            if wh is not None:
                f.seek(-2, 2)
                if f.read(2) != b"\xff\xd9":
                    return None  # Pillow decides (decoding it)
        else:
            return None
    if wh is None:
        return None
    w, h = wh
    if not (h > 9 and w > 9) or w > MAX_IMAGE_SIDE or h > MAX_IMAGE_SIDE:
        return None  # Pillow's path words the reason
    return wh


def verify_image(path: str, version: int = 8) -> tuple[int, int] | str:
    """``(width, height)`` of a valid image, or the reason the trainer skips it (see module docstring)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "no such image file"
    except (OSError, ValueError) as e:
        return f"cannot read image: {getattr(e, 'strerror', None) or e}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (devices, FIFOs, sockets and directories are refused)"
    try:
        got = _fast(path, version, FORMATS[version])
    except OSError:
        got = None
    if got is not None:
        return got
    try:
        with open(path, "rb") as f:
            im = _open(f, path)
            fmt = (im.format or "").lower()
            im.verify()
            w, h = _size(im, version)
            if not (h > 9 and w > 9):
                return f"image size {w} x {h} below 10 px"
            if fmt not in FORMATS[version]:
                return f"invalid image format {im.format}"
            if w > MAX_IMAGE_SIDE or h > MAX_IMAGE_SIDE:
                return f"image size {w} x {h} above imbalance's limit of {MAX_IMAGE_SIDE:,} px per side"
            if fmt == "jpeg":
                f.seek(-2, 2)
                if f.read(2) != b"\xff\xd9":
                    why = _jpeg_decodes(path)
                    if why is not None:
                        return why
    except Exception as e:  # noqa: BLE001 - whatever Pillow raises makes the image corrupt, as in the trainers
        from PIL import UnidentifiedImageError

        if isinstance(e, UnidentifiedImageError):
            return "cannot identify the image file (not an image format Pillow reads)"
        return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return w, h


def verify_images(paths: list[str], version: int = 8, threads: int | None = None) -> list:
    """:func:`verify_image` of many images, in a thread pool from :data:`THREAD_THRESHOLD` images (or ``threads``)."""
    if len(paths) < THREAD_THRESHOLD and not threads:
        return [verify_image(p, version) for p in paths]
    workers = threads or min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(lambda p: verify_image(p, version), paths, chunksize=256))
