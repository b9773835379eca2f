"""The gallery of ``report.html``: images drawn as the detector sees them, with their boxes and anchors.

:func:`render_gallery` turns a plan of :func:`imbalance_cli.stats.gallery.gallery_plan` into thumbnail files and
the page's "Gallery" section:

* each chosen image is decoded once (Pillow, on a few threads; JPEG decoded at reduced size), resized as the
  preset resizes it (YOLOv5: letterboxed) and pasted into the padded input; without pixels (no ``--images`` for a
  COCO-style file) the same drawing is made on a blank canvas of the image's resized size;
* the worst images: ground-truth boxes coloured by status (positive / ignored-only / none, :data:`COLOURS`) and,
  for each box not covered at the positive threshold, its best anchor (blue) labelled with its IoU;
* one image per pyramid level: that level's positive anchors over the boxes;
* per class, tail first, a strip of crops of its boxes (uncovered ones first) framed by status.

A file that is missing, unreadable, outside ``--images`` or not a regular file is listed (never fatal) and drawn
on a blank canvas. The thumbnails are files of the report directory (``gallery_*.jpg``, ``gallery_*.png`` on blank
canvases), referenced by the page, so the HTML stays light; they are written with the rest of the report, all or
nothing.
"""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html import escape
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

from imbalance_cli import dist, vocabulary
from imbalance_cli.data._io import MAX_IMAGE_SIDE, confined_image_path
from imbalance_cli.errors import InputError
from imbalance_cli.report.page import Section
from imbalance_cli.stats.gallery import DEFAULT_IMAGES, gallery_plan

if TYPE_CHECKING:
    from PIL.Image import Image


@dataclass(frozen=True)
class GalleryOptions:
    """What ``--gallery N`` and ``--images DIR`` ask for: at most ``images`` images (0: no gallery), pixels from
    ``images_dir`` (COCO-style files; YOLO datasets list their image files)."""

    images: int = DEFAULT_IMAGES
    images_dir: Path | None = None


#: Box colours by status (positive, ignored-only, none) and the best-anchor colour.
COLOURS = ((26, 127, 55), (255, 140, 0), (207, 34, 46))
ANCHOR = (59, 91, 219)
LIGHT = (120, 150, 235)
BLANK = (236, 238, 243)
WORST_SIDE, LEVEL_SIDE, CROP_HEIGHT = 720, 420, 96
THREADS = 4


def _source(entry: dict, images_dir: Path | None, own_paths: bool) -> tuple[Path | None, str | None]:
    """The image file of an entry, or ``(None, reason)`` when it cannot be read from where it must be."""
    name = entry.get("file_name")
    if own_paths:  # YOLO datasets list their image files
        return (Path(name), None) if name else (None, "no file name")
    if images_dir is None:
        return None, None
    if not name:
        return None, "no file_name in the annotation file"
    try:
        return confined_image_path(images_dir, name, None, f"image id {entry['image_id']}"), None
    except InputError as e:
        return None, e.message


def _decode(path: Path, size: tuple[int, int], exif: bool):
    """The image at ``path`` as RGB of ``size`` (w, h), or a one-line reason it cannot be read."""
    from PIL import Image, ImageOps

    try:
        st = os.stat(path)
    except OSError as e:
        return f"{path}: cannot read ({e.strerror or e})"
    if not stat.S_ISREG(st.st_mode):
        return f"{path}: not a regular file"
    try:
        with Image.open(path) as im:
            w, h = im.size
            if not (1 <= w <= MAX_IMAGE_SIDE and 1 <= h <= MAX_IMAGE_SIDE):
                return f"{path}: image header says {w} x {h} pixels (sides must be 1 to {MAX_IMAGE_SIDE:,})"
            im.draft("RGB", size)  # JPEG: decode at a reduced scale when that is enough
            out = im.convert("RGB")
            if exif:
                out = ImageOps.exif_transpose(out)
            return out.resize(size, Image.BILINEAR)
    except Exception as e:  # noqa: BLE001 - any decoder failure is the file's (Pillow raises many kinds)
        first = (str(e).strip().splitlines() or [""])[0][:160]
        return f"{path}: unreadable ({type(e).__name__}: {first})"


def _view(entry: dict, pixels, fill):
    """The padded detector input of an entry: the resized image (or a blank canvas) pasted at its offset."""
    from PIL import Image

    pw, ph = entry["padded"]
    canvas = Image.new("RGB", (pw, ph), tuple(fill))
    img = pixels if pixels is not None else Image.new("RGB", tuple(entry["resized"]), BLANK)
    canvas.paste(img, tuple(entry["offset"]))
    return canvas


def _scaled(box, f: float, dx: float = 0.0, dy: float = 0.0):
    return [box[0] * f - dx, box[1] * f - dy, box[2] * f - dx, box[3] * f - dy]


def _label(draw, xy, text: str, colour) -> None:
    x, y = xy
    w = 6 * len(text) + 4
    draw.rectangle([x, y - 11, x + w, y], fill=colour)
    draw.text((x + 2, y - 11), text, fill=(255, 255, 255))


def _visible(box, f: float, least: float = 4.0):
    """A box scaled by ``f``, grown about its centre to at least ``least`` pixels a side (tiny boxes stay visible)."""
    x1, y1, x2, y2 = _scaled(box, f)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    hw, hh = max((x2 - x1) / 2, least / 2), max((y2 - y1) / 2, least / 2)
    return [cx - hw, cy - hh, cx + hw, cy + hh]


def _worst(view, entry: dict) -> "Image":
    """The image with its boxes by status; best anchors of boxes trained only by low-quality matches (light), then
    of boxes without a positive (blue, labelled with their IoU); boxes without a positive drawn last, on top."""
    from PIL import ImageDraw

    f = min(1.0, WORST_SIDE / max(view.size))
    thumb = view.resize((max(1, round(view.width * f)), max(1, round(view.height * f))))
    draw = ImageDraw.Draw(thumb)
    low = [b for b in entry["boxes"] if b["status"] == 0 and b["best_anchor"] is not None]
    bad = [b for b in entry["boxes"] if b["status"] != 0]
    for b in low:
        draw.rectangle(_scaled(b["best_anchor"], f), outline=LIGHT, width=1)
    for b in entry["boxes"]:
        if b["status"] == 0:
            draw.rectangle(_visible(b["xyxy"], f), outline=COLOURS[0], width=2)
    for b in low:
        a = _scaled(b["best_anchor"], f)
        _label(draw, (max(0.0, a[0]), max(11.0, a[1])), f"{b['best_iou']:.2f}", LIGHT)
    for b in bad:
        if b["best_anchor"] is not None:
            a = _scaled(b["best_anchor"], f)
            draw.rectangle(a, outline=ANCHOR, width=2)
            _label(draw, (max(0.0, a[0]), max(11.0, a[1])), f"{b['best_iou']:.2f}", ANCHOR)
    for b in bad:
        draw.rectangle(_visible(b["xyxy"], f, 6.0), outline=COLOURS[b["status"]], width=3)
    return thumb


def _levels(view, entry: dict) -> dict:
    from PIL import Image, ImageDraw

    f = min(1.0, LEVEL_SIDE / max(view.size))
    base = view.resize((max(1, round(view.width * f)), max(1, round(view.height * f))))
    out = {}
    for name, anchors in (entry.get("positives") or {}).items():
        layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        for a in anchors:
            draw.rectangle(_scaled(a, f), outline=ANCHOR + (170,), width=1)
        panel = Image.alpha_composite(base.convert("RGBA"), layer).convert("RGB")
        d = ImageDraw.Draw(panel)
        for b in entry["boxes"]:
            d.rectangle(_scaled(b["xyxy"], f), outline=COLOURS[b["status"]], width=2)
        _label(d, (2, 13), f"{name}: {len(anchors)} positive anchors", ANCHOR)
        out[name] = panel
    return out


def _crop(view, box: dict) -> "Image":
    from PIL import ImageDraw

    x1, y1, x2, y2 = box["xyxy"]
    pts = [box["xyxy"]] + ([box["best_anchor"]] if box["best_anchor"] is not None else [])
    mx = max(8.0, 0.5 * (x2 - x1))
    my = max(8.0, 0.5 * (y2 - y1))
    lo_x = max(0.0, min(p[0] for p in pts) - mx)
    lo_y = max(0.0, min(p[1] for p in pts) - my)
    hi_x = min(float(view.width), max(p[2] for p in pts) + mx)
    hi_y = min(float(view.height), max(p[3] for p in pts) + my)
    if hi_x - lo_x < 2 or hi_y - lo_y < 2:
        lo_x, lo_y, hi_x, hi_y = 0.0, 0.0, float(view.width), float(view.height)
    region = view.crop((int(lo_x), int(lo_y), int(hi_x + 0.999), int(hi_y + 0.999)))
    f = CROP_HEIGHT / region.height
    if region.width * f > 3 * CROP_HEIGHT:
        f = 3 * CROP_HEIGHT / region.width
    crop = region.resize((max(1, round(region.width * f)), max(1, round(region.height * f))))
    draw = ImageDraw.Draw(crop)
    ox, oy = int(lo_x) * f, int(lo_y) * f
    if box["best_anchor"] is not None:
        draw.rectangle(_scaled(box["best_anchor"], f, ox, oy), outline=ANCHOR, width=1)
    draw.rectangle(_scaled(box["xyxy"], f, ox, oy), outline=COLOURS[box["status"]], width=2)
    return crop


def _strip(crops: list, boxes: list[dict]) -> "Image":
    from PIL import Image, ImageDraw

    gap, label = 6, 14
    width = sum(c.width + 6 for c in crops) + gap * (len(crops) + 1)
    strip = Image.new("RGB", (max(width, 1), CROP_HEIGHT + 6 + label + 2 * gap), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    x = gap
    for c, b in zip(crops, boxes):
        colour = COLOURS[b["status"]]
        draw.rectangle([x, gap, x + c.width + 5, gap + c.height + 5], fill=colour)
        strip.paste(c, (x + 3, gap + 3))
        draw.text((x, gap + CROP_HEIGHT + 8), f"{b['best_iou']:.2f} {b['best_level']}", fill=(60, 60, 60))
        x += c.width + 6 + gap
    return strip


def _encode(image, photo: bool) -> tuple[bytes, str]:
    buf = BytesIO()
    if photo:
        image.save(buf, "JPEG", quality=85, optimize=True)
        return buf.getvalue(), "jpg"
    image.save(buf, "PNG", optimize=True)
    return buf.getvalue(), "png"


def render_gallery(
    plan: dict, *, images_dir: Path | None = None, own_paths: bool = False, threads: int = THREADS
) -> tuple[dict, Section | None, dict]:
    """``(files, section, summary)``: the thumbnail files ``{name: bytes}``, the page's section, and what the
    JSON report records (images drawn, decoded, blank, the problems listed)."""
    entries = plan.get("images") or []
    if not entries:
        return {}, None, {"images": 0, "decoded": 0, "blank": 0, "problems": []}
    with ThreadPoolExecutor(max(1, min(threads, len(entries)))) as pool:
        views = list(pool.map(lambda e: _prepare(e, images_dir, own_paths, plan["fill"]), entries))
    problems = [w for _v, _p, w in views if w]
    files: dict[str, bytes] = {}
    parts = [_legend(plan, images_dir is not None or own_paths)]
    entries_toc = []
    if plan["worst"]:
        parts.append(_worst_section(plan, entries, views, files))
        entries_toc.append(("gallery-worst", "worst images"))
    if plan.get("levels") is not None and entries[plan["levels"]].get("positives"):
        parts.append(_levels_section(entries[plan["levels"]], views[plan["levels"]], files))
        entries_toc.append(("gallery-levels", "anchors per level"))
    if plan["classes"]:
        parts.append(_classes_section(plan, entries, views, files))
        entries_toc.append(("gallery-classes", "boxes per class"))
    decoded = sum(1 for _v, p, _w in views if p)
    if problems:
        parts.append(
            f'<h3 id="gallery-problems">Images not drawn from their file ({len(problems)})</h3>'
            "<pre>" + escape("\n".join(problems)) + "</pre>"
        )
        entries_toc.append(("gallery-problems", "images not read"))
    summary = {
        "images": len(entries),
        "decoded": decoded,
        "blank": len(entries) - decoded,
        "problems": problems,
        "files": list(files),
    }
    return (
        files,
        Section("gallery", "Gallery: the images as the detector sees them", "".join(parts), entries_toc),
        summary,
    )


def _prepare(e: dict, images_dir: Path | None, own_paths: bool, fill) -> tuple:
    """``(view, decoded, problem)`` of one image entry: its pixels when its file decodes, else a blank view and why."""
    path, why = _source(e, images_dir, own_paths)
    pixels = None
    if path is not None:
        got = _decode(path, tuple(e["resized"]), exif=own_paths)
        if isinstance(got, str):
            why = got
        else:
            pixels = got
    elif why is not None:
        why = f"{e.get('file_name')}: {why}"
    return _view(e, pixels, fill), pixels is not None, why


def _classes_section(plan: dict, entries: list, views: list, files: dict) -> str:
    """The per-class table, tail first, one strip of crops per class (its image added to ``files``)."""
    rows = []
    for n, c in enumerate(plan["classes"], 1):
        boxes = [entries[i]["boxes"][b] for i, b in c["crops"]]
        cell = '<td class="m">no image within --gallery</td>'
        if boxes:
            crops = [_crop(views[i][0], entries[i]["boxes"][b]) for i, b in c["crops"]]
            photo = any(views[i][1] for i, _b in c["crops"])
            data, ext = _encode(_strip(crops, boxes), photo)
            fname = f"gallery_class_{n:03d}.{ext}"
            files[fname] = data
            cell = f'<td><img src="{fname}" alt="{escape(c["category"])} boxes" class="strip"></td>'
        rows.append(
            f'<tr><td>{escape(c["category"])}</td><td class="n">{c["instances"]:,}</td>'
            f'<td class="n">{c["without_positive"]:,}</td>{cell}</tr>'
        )
    return (
        '<h3 id="gallery-classes">Boxes per class, tail first</h3><div class="wide"><table><thead><tr>'
        f'<th>class</th><th class="n">instances</th><th class="n">'
        f"{escape(vocabulary.term('boxes_without_positive').column)}</th><th>boxes (crops: uncovered "
        "first, then lowest best IoU; below each its best IoU and the level of its best anchor)</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _worst_section(plan: dict, entries: list, views: list, files: dict) -> str:
    """HTML of the worst images (most boxes without a positive anchor); their thumbnails are added to ``files``."""
    figs = []
    for n, k in enumerate(plan["worst"], 1):
        view, photo, _ = views[k]
        data, ext = _encode(_worst(view, entries[k]), photo)
        name = f"gallery_worst_{n:02d}.{ext}"
        files[name] = data
        e = entries[k]
        counts = [sum(1 for b in e["boxes"] if b["status"] == s) for s in range(3)]
        cap = f"{e.get('file_name') or e['image_id']} (image {e['image_id']}): " + ", ".join(
            f"{c} {s}" for c, s in zip(counts, plan["statuses"]) if c
        )
        figs.append(_figure(name, cap))
    return (
        '<h3 id="gallery-worst">Images with the most boxes without a positive anchor</h3>'
        f'<div class="gallery">{"".join(figs)}</div>'
    )


def _levels_section(entry: dict, prepared: tuple, files: dict) -> str:
    """HTML of one image's positive anchors, a panel per pyramid level; the panels are added to ``files``."""
    view, photo, _ = prepared
    figs = []
    for name, panel in _levels(view, entry).items():
        data, ext = _encode(panel, photo)
        fname = f"gallery_level_{_safe(name)}.{ext}"
        files[fname] = data
        figs.append(_figure(fname, f"{name}: {len(entry['positives'][name])} positive anchors"))
    return (
        f'<h3 id="gallery-levels">Positive anchors per pyramid level: '
        f"{escape(str(entry.get('file_name') or entry['image_id']))}</h3>"
        f'<div class="gallery">{"".join(figs)}</div>'
    )


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in str(name)) or "level"


def _figure(src: str, caption: str) -> str:
    return (
        f'<figure><img src="{escape(src)}" alt="{escape(caption)}"><figcaption>{escape(caption)}</figcaption></figure>'
    )


def _legend(plan: dict, pixels: bool) -> str:
    sw = "".join(
        f'<span class="swatch" style="border-color: rgb{c}"></span>{escape(s)} '
        for c, s in zip(COLOURS, plan["statuses"])
    )
    what = (
        "pixels from the image files"
        if pixels
        else "a blank canvas of each image's size (no image files: pass --images DIR to draw the pixels)"
    )
    metric = plan.get("metric", "IoU")
    anchors = (
        f'<span class="swatch" style="border-color: rgb{ANCHOR}"></span>best anchor of a box without a '
        f"positive, labelled with its {metric}"
    )
    if plan.get("pos_iou") is not None:
        anchors += (
            f'<span class="swatch" style="border-color: rgb{LIGHT}"></span>best anchor of a box below the '
            f"positive IoU ({plan['pos_iou']:g}), trained only through low-quality matches"
        )
    return (
        f'<p class="sub">Preset <b>{escape(plan["preset"])}</b>: each image resized and padded as the preset '
        f"does (padding in {escape(plan.get('fill_meaning', ''))}), drawn on {escape(what)}. Boxes by status: "
        f"{sw}{anchors}.</p>"
    )


def gallery_files(box_table, options: GalleryOptions | None) -> tuple[dict, Section | None, dict | None]:
    """The gallery of a report: ``(files, section, summary)`` for ``box_table``
    (:class:`imbalance_cli.stats.boxes.BoxTable`) under ``options``; nothing when either is missing or the gallery
    is off. The plan's images are labelled by this rank alone (under ``torchrun`` only rank 0 writes)."""
    if box_table is None or options is None or options.images <= 0 or not len(box_table):
        return {}, None, None
    with dist.alone():
        plan = gallery_plan(box_table, options.images)
    own = box_table.dataset.format == "yolo"
    return render_gallery(plan, images_dir=None if own else options.images_dir, own_paths=own)
