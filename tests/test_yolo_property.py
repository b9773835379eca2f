"""Property tests (issue 24 item 7): mutated ``data.yaml``, label files and image-list files of a small YOLO dataset
hold the loaders' guarantees through ``imbalance stats``.

Mutations: for ``data.yaml``, values swapped for values of other types and out of range (names as lists, dicts with
odd keys, scalars; ``nc`` beside or instead of ``names``; splits missing, duplicated, pointing elsewhere or nowhere;
``path`` keys), deep nesting, anchors and aliases, and byte-level damage; for label files, fields swapped for other
numbers and non-numbers (NaN, inf, values around Ultralytics' 1% tolerance, classes out of range or not integral,
exotic digits), lines duplicated, deleted, reordered, split into segments or shortened, other line breaks, a BOM,
NUL and invalid UTF-8 bytes, truncation; for image-list files, lines duplicated, deleted, reordered, with other
prefixes (``./``, ``../``, absolute, relative to the working directory), suffixes, spaces and line breaks, a BOM,
NUL and invalid UTF-8 bytes.

Every mutant exits 0 with sane numbers, or exits 2 with one line naming the file (never a traceback), a second
(cached) run gives the same report, and no run allocates more than 256 MiB (tracemalloc). "Sane" is checked
independently: per split, the images listed, the images kept, the label rows kept and the instances per class of
the valid boxes equal those of a plain reading of the surviving files written here from Ultralytics 8.x's rules
(``check_det_dataset``, ``get_img_files``, ``img2label_paths``, ``verify_image_label``: the README's list) and the
valid-box definition of :mod:`imbalance_cli.data.dataset`. That plain reading is itself held to Ultralytics' own code
by ``tools/yolo_property_oracle.py`` (not in CI: it needs the Ultralytics venv): on 3,000 label files from the same
strategy, and 400 mutated datasets, its verdicts, rows and counts equal ``verify_image_label``'s and
``YOLODataset``'s, file for file.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from imbalance_cli.cli import app

runner = CliRunner()
_SETTINGS = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
MEMORY_BOUND = 256 * 2**20
#: Ultralytics 8.x's image suffixes (``IMG_FORMATS`` in ``ultralytics/data/utils.py``; the README lists them).
FORMATS = {"avif", "bmp", "dng", "heic", "heif", "jp2", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp"}

# ---- the dataset every example starts from -----------------------------------------------------------------------
#: Image (relative to the dataset folder) -> (width, height).
IMAGES = {
    "images/train/a.png": (64, 48),
    "images/train/b.png": (100, 20),
    "images/train/c.png": (30, 90),
    "images/train/d.png": (50, 50),
    "images/listed/l1.png": (40, 40),
    "images/listed/l2.png": (70, 35),
    "images/listed/l3.png": (12, 80),
}
LABELS = {
    "labels/train/a.txt": "0 0.5 0.5 0.2 0.4\n1 0.25 0.5 0.5 1.0\n",
    "labels/train/b.txt": "2 0.1 0.2 0.3 0.7 0.5 0.4\n",  # a segment: 3 points
    "labels/train/c.txt": "0 0.5 0.5 1 1\n1 0.3 0.3 0.1 0.1\n2 0.7 0.7 0.2 0.2\n",
    # d.png has no label file: a background image
    "labels/listed/l1.txt": "1 0.5 0.5 0.5 0.5\n",
    "labels/listed/l2.txt": "",
    "labels/listed/l3.txt": "2 0.5 0.5 0.9 0.9\n0 0.5 0.5 0.9 0.9\n",
}
VAL_LIST = "./images/listed/l1.png\n./images/listed/l2.png\nds/images/listed/l3.png\n"  # the last: working dir
DATA = {"train": "images/train", "val": "val.txt", "names": ["a", "b", "c"]}
_PNG: dict = {}


def _png(wh) -> bytes:
    if wh not in _PNG:
        buf = io.BytesIO()
        Image.new("L", wh, 100).save(buf, format="PNG")
        _PNG[wh] = buf.getvalue()
    return _PNG[wh]


def _dataset(base: Path) -> Path:
    """The dataset under ``base/ds`` (``base`` is the working directory of the run)."""
    root = base / "ds"
    for rel, wh in IMAGES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(_png(wh))
    for rel, text in LABELS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "val.txt").write_text(VAL_LIST)
    (root / "data.yaml").write_text(yaml.safe_dump(DATA))
    return root


# ---- the plain reading: Ultralytics 8.x's rules, written here ----------------------------------------------------
def _label_rows(raw: bytes, nc: int) -> np.ndarray | None:
    """The float32 rows ``(class, cx, cy, w, h)`` the trainer keeps from one label file, or None: image dropped."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    text = text.removeprefix("\ufeff")
    rows = [ln.split() for ln in text.splitlines() if ln.strip()]
    if not rows:
        return np.zeros((0, 5), np.float32)
    segment = any(len(r) > 6 for r in rows)
    with np.errstate(all="ignore"):  # "1e400" overflows to inf and "inf" % 1 is NaN: both refused below
        return _checked_rows(rows, segment, nc)


def _checked_rows(rows: list[list[str]], segment: bool, nc: int) -> np.ndarray | None:
    """:func:`_label_rows` of the split lines: parsed, checked, duplicates removed (None: the image is dropped)."""
    try:
        if segment:
            if any(len(r) == 5 for r in rows):
                return None  # segment and box rows mixed
            cls = np.array([r[0] for r in rows], np.float32)
            pts = [np.array(r[1:], np.float32).reshape(-1, 2) for r in rows]
            lo = [p.min(axis=0) for p in pts]  # ValueError for a segment without points
            hi = [p.max(axis=0) for p in pts]
            box = np.array(
                [[(a[0] + b[0]) / 2, (a[1] + b[1]) / 2, b[0] - a[0], b[1] - a[1]] for a, b in zip(lo, hi)], np.float32
            )
            lb = np.concatenate([cls[:, None], box], axis=1)
            keys = [c.tobytes() + p.tobytes() for c, p in zip(cls, pts)]  # a segment repeats when bytes repeat
        else:
            if any(len(r) != 5 for r in rows):
                return None
            lb = np.array(rows, np.float32)
            keys = [tuple(float(v) for v in row) for row in lb]  # a row repeats when equal in float32 (-0 == 0)
    except (ValueError, OverflowError):
        return None
    if not lb[:, 1:].max() <= 1.01:  # NaN fails too
        return None
    low = lb.min()
    if not (low >= 0 or (low >= -0.01 and lb[:, 3:5].min() >= 0)):
        return None
    if not (lb[:, 0] % 1 == 0).all() or not lb[:, 0].max() < nc:
        return None
    seen, keep = set(), []
    for i, k in enumerate(keys):
        if k not in seen:
            seen.add(k)
            keep.append(i)
    return lb[keep]


def _valid(row: np.ndarray, w: int, h: int) -> bool:
    """imbalance's valid box (finite, positive size, overlapping the image) of a row clipped to its image."""
    cx, cy, bw, bh = (float(v) for v in row[1:])
    x1, x2 = min(max((cx - bw / 2) * w, 0), w), min(max((cx + bw / 2) * w, 0), w)
    y1, y2 = min(max((cy - bh / 2) * h, 0), h), min(max((cy + bh / 2) * h, 0), h)
    return x2 > x1 and y2 > y1 and x2 > 0 and y2 > 0 and x1 < w and y1 < h


def _label_path(image: str) -> str:
    i = image.rfind(f"{os.sep}images{os.sep}")
    if i >= 0:
        image = f"{image[:i]}{os.sep}labels{os.sep}{image[i + 8 :]}"
    return image.rsplit(".", 1)[0] + ".txt"


def _listed(source: Path) -> list[str]:
    if source.is_dir():
        out = []
        for d, dirs, files in os.walk(source, followlinks=True):
            dirs[:] = [x for x in dirs if not x.startswith(".")]
            out += [os.path.join(d, f) for f in files if not f.startswith(".") and "." in f]
        return out
    text = source.read_bytes().decode("utf-8")
    text = text.removeprefix("\ufeff")
    parent = str(source.parent) + os.sep
    return [x.replace("./", parent, 1) if x.startswith("./") else x for x in text.strip().splitlines()]


def _expected(yaml_path: Path) -> dict:
    """Per split: images listed and kept, label rows kept, instances per class of the valid boxes."""
    d = yaml.safe_load(yaml_path.read_bytes().decode("utf-8-sig"))
    names, nc = d.get("names"), d.get("nc")
    nc = len(names) if names is not None else int(float(nc))
    root = yaml_path.parent if d.get("path") in (None, "") else Path(d["path"])
    sizes = {str((yaml_path.parent / rel).resolve()): wh for rel, wh in IMAGES.items()}
    out = {}
    for key in ("train", "val", "test"):
        if not d.get(key):
            continue
        entries = d[key] if isinstance(d[key], list) else [d[key]]
        files = []
        for e in entries:
            q = (root / e).resolve()
            if not q.exists() and isinstance(d[key], str) and e.startswith("../"):
                q = (root / e[3:]).resolve()
            files += _listed(q)
        files = sorted(f for f in files if f.rpartition(".")[-1].lower() in FORMATS)
        kept = rows_kept = 0
        instances: dict[int, int] = {}
        for f in files:
            wh = sizes.get(os.path.realpath(f)) if os.path.isfile(f) else None
            if wh is None:
                continue  # missing: corrupt
            lab = _label_path(f)
            rows = _label_rows(Path(lab).read_bytes(), nc) if os.path.isfile(lab) else np.zeros((0, 5), np.float32)
            if rows is None:
                continue
            kept += 1
            rows_kept += len(rows)
            for row in rows:
                if _valid(row, *wh):
                    instances[int(row[0])] = instances.get(int(row[0]), 0) + 1
        out[key] = {"listed": len(files), "images": kept, "annotations": rows_kept, "instances": instances}
    return out


# ---- running the command -----------------------------------------------------------------------------------------
def _invoke(yaml_path: Path) -> tuple[int, str, str]:
    r = runner.invoke(app, ["stats", str(yaml_path), "--anchors", "none", "--json"])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code in (0, 2), (r.exit_code, r.output)
    return r.exit_code, r.stdout, r.stderr


def _run(yaml_path: Path, named: list[Path]) -> dict | None:
    """``imbalance stats`` twice (label cache cold, then warm): the report, or None after exit 2 with one line naming
    one of ``named``; never a traceback; peak memory of the first (uncached) run bounded."""
    tracemalloc.start()
    try:
        first = _invoke(yaml_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"peak {peak / 2**20:.0f} MiB"
    outs = [first, _invoke(yaml_path)]  # (tracemalloc makes a run 4x slower: the cached one runs without it)
    assert outs[0][:2] == outs[1][:2], "the cached run differs"
    code, out, err = outs[0]
    if code == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and "Traceback" not in out + err, err
        assert any(str(p) in lines[0] for p in named), lines[0]
        return None
    return json.loads(out)


def _check(report: dict, expected: dict) -> None:
    per_split = report["splits"] if "splits" in report else {next(iter(expected)): report}
    assert set(per_split) == set(expected)
    counts = report["labels"]["split_counts"]
    for name, exp in expected.items():
        rep = per_split[name]
        got = {c["id"]: c["instances"] for c in rep["classes"] if c["instances"]}
        assert (counts[name]["images_listed"], rep["dataset"]["images"], rep["dataset"]["annotations"], got) == (
            exp["listed"],
            exp["images"],
            exp["annotations"],
            exp["instances"],
        ), name


def _fresh(tmp_path: Path) -> Path:
    """A new folder for one example (the label cache is keyed by path: no example sees another's entries)."""
    return Path(tempfile.mkdtemp(dir=tmp_path))


def _in(base: Path, fn):
    cwd = os.getcwd()
    os.chdir(base)  # a list line without ./ and a relative 'path' are relative to the working directory
    try:
        return fn()
    finally:
        os.chdir(cwd)


def test_the_unmutated_dataset_is_read_as_the_plain_reading(tmp_path):
    base = _fresh(tmp_path)
    root = _dataset(base)
    y = root / "data.yaml"
    report = _in(base, lambda: _run(y, [y]))
    exp = _in(base, lambda: _expected(y))
    assert exp == {
        "train": {"listed": 4, "images": 4, "annotations": 6, "instances": {0: 2, 1: 2, 2: 2}},
        "val": {"listed": 3, "images": 3, "annotations": 3, "instances": {0: 1, 1: 1, 2: 1}},
    }
    _check(report, exp)


# ---- label files -------------------------------------------------------------------------------------------------
_TOKENS = [
    "0",
    "1",
    "2",
    "3",
    "-1",
    "-0",
    "1.0",
    "2.",
    "1.5",
    "2e0",
    "1e-40",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "abc",
    "0x1",
    "1_0",
    "+1",
    "\uff11",
    "\u0661",
    "0.5",
    "0.999",
    "1",
    "1.01",
    "1.0100001",
    "1.02",
    "-0.01",
    "-0.0100001",
    "-0.02",
    "-0.005",
    "0.00",
    "3.4e38",
    "3.5e38",
    "1e400",
    ".5",
    ".",
    "",
    " ",
    "0 0",
    "1,5",
]
_BREAKS = ["\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028"]


def _mutate_label(text: str, data) -> bytes:
    lines = [ln.split(" ") for ln in text.splitlines()] or [["0", "0.5", "0.5", "0.5", "0.5"]]
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(
            st.sampled_from(
                ["token", "token", "token", "duplicate", "delete", "swap", "blank", "segment", "short", "long", "many"]
            )
        )
        i = data.draw(st.integers(0, len(lines) - 1)) if lines else 0
        if op == "token" and lines and lines[i]:
            lines[i][data.draw(st.integers(0, len(lines[i]) - 1))] = data.draw(st.sampled_from(_TOKENS))
        elif op == "duplicate" and lines:
            lines.insert(data.draw(st.integers(0, len(lines))), list(lines[i]))
        elif op == "delete" and lines:
            del lines[i]
        elif op == "swap" and len(lines) > 1:
            lines[0], lines[-1] = lines[-1], lines[0]
        elif op == "blank":
            lines.insert(data.draw(st.integers(0, len(lines))), [data.draw(st.sampled_from(["", " ", "\t", "  "]))])
        elif op == "segment":  # class + points: 1 to 5 points, sometimes an odd coordinate count
            n = data.draw(st.integers(1, 10))
            pts = [data.draw(st.sampled_from(["0.1", "0.5", "0.9", "0.25", "1.005", "-0.005", "0"])) for _ in range(n)]
            lines.insert(data.draw(st.integers(0, len(lines))), [data.draw(st.sampled_from(["0", "1", "2"]))] + pts)
        elif op == "short" and lines and lines[i]:
            lines[i] = lines[i][: data.draw(st.integers(0, len(lines[i]) - 1))]
        elif op == "long" and lines:
            lines[i] = lines[i] + [data.draw(st.sampled_from(_TOKENS))]
        elif op == "many" and lines:
            lines = lines[:i] + [list(lines[i]) for _ in range(data.draw(st.sampled_from([2, 50, 3000])))] + lines[i:]
    sep = data.draw(st.sampled_from(_BREAKS))
    raw = (sep.join(" ".join(f) for f in lines) + data.draw(st.sampled_from([sep, ""]))).encode("utf-8")
    return _damage(raw, data, [b"\x00", b"\xff", b"\xc3", b"\t", b"\xef\xbb\xbf", b"#"])


def _damage(raw: bytes, data, inserts: list[bytes]) -> bytes:
    """Mostly nothing; else a leading BOM, a truncation, or one of ``inserts`` put anywhere."""
    op = data.draw(st.sampled_from(["none", "none", "none", "bom", "truncate", "insert"]))
    if op == "bom":
        return b"\xef\xbb\xbf" + raw
    if op == "truncate":
        return raw[: data.draw(st.integers(0, len(raw)))]
    if op == "insert":
        at = data.draw(st.integers(0, len(raw)))
        return raw[:at] + data.draw(st.sampled_from(inserts)) + raw[at:]
    return raw


@pytest.mark.slow
@_SETTINGS
@given(data=st.data())
def test_mutated_label_files_count_as_the_plain_reading(data, tmp_path):
    base = _fresh(tmp_path)
    root = _dataset(base)
    changed = []
    for _ in range(data.draw(st.integers(1, 2))):
        rel = data.draw(st.sampled_from(sorted(LABELS) + ["labels/train/d.txt"]))
        p = root / rel
        p.write_bytes(_mutate_label(p.read_bytes().decode("utf-8", "replace") if p.exists() else "", data))
        changed.append(p)
    y = root / "data.yaml"
    report = _in(base, lambda: _run(y, [y, *changed]))
    assert report is not None  # a bad label file drops its image; it never stops the run
    _check(report, _in(base, lambda: _expected(y)))


# ---- image-list files --------------------------------------------------------------------------------------------
_LIST_LINES = [
    "./images/listed/l1.png",
    "./images/listed/l2.png",
    "ds/images/listed/l3.png",
    "images/listed/l1.png",
    "./images/listed/nothere.png",
    "./images/listed/l1.PNG",
    "./images/listed/l1.png ",
    " ./images/listed/l1.png",
    "././images/listed/l2.png",
    "./images/listed/../listed/l3.png",
    "./images/train/a.png",
    "./labels/listed/l1.txt",
    "./images/listed",
    "# a comment",
    "",
    "   ",
    "x.jpg",
    "../ds/images/listed/l2.png",
    "ds/images/train/b.png",
    "./images/listed/l1.png\t",
]


def _mutate_list(root: Path, data) -> bytes:
    lines = VAL_LIST.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["add", "add", "duplicate", "delete", "reverse", "absolute"]))
        i = data.draw(st.integers(0, len(lines) - 1)) if lines else 0
        if op == "add":
            lines.insert(data.draw(st.integers(0, len(lines))), data.draw(st.sampled_from(_LIST_LINES)))
        elif op == "duplicate" and lines:
            lines.insert(i, lines[i])
        elif op == "delete" and lines:
            del lines[i]
        elif op == "reverse":
            lines.reverse()
        elif op == "absolute":
            lines.append(str(root / data.draw(st.sampled_from(sorted(IMAGES)))))
    sep = data.draw(st.sampled_from(["\n", "\r\n", "\r", "\u2028"]))
    return _damage(sep.join(lines).encode("utf-8"), data, [b"\x00", b"\xff", b"\n", b" ", b"./"])


@pytest.mark.slow
@_SETTINGS
@given(data=st.data())
def test_mutated_image_lists_count_as_the_plain_reading(data, tmp_path):
    base = _fresh(tmp_path)
    root = _dataset(base)
    lst = root / "val.txt"
    lst.write_bytes(_mutate_list(root, data))
    y = root / "data.yaml"
    report = _in(base, lambda: _run(y, [y, lst]))
    if report is not None:
        _check(report, _in(base, lambda: _expected(y)))


# ---- data.yaml ---------------------------------------------------------------------------------------------------
_VALUES = {
    "names": [
        ["a", "b"],
        ["a", "b", "c", "d"],
        {0: "a", 1: "b", 2: "c"},
        {"0": "a", "1": "b", "2": "c"},
        {0: "a", 2: "c"},
        {0.0: "a", 1: "b", 2: "c"},
        {True: "a", 0: "b"},
        "abc",
        [["a"], "b", "c"],
        [],
        None,
        42,
        [str(i) for i in range(1000)],
        ["a", 1, 2.5],
    ],
    "nc": [3, 2, 4, "3", 3.0, 3.5, 0, -1, True, 10**12, "x", None, [3]],
    "train": [
        "images/train",
        "images/listed",
        "val.txt",
        "nothere",
        ["images/train", "val.txt"],
        ["images/train", "images/train"],
        [],
        5,
        None,
        "",
        "../ds/images/train",
        "./images/train",
        "images",
        "../nothere/images/train",
    ],
    "val": ["val.txt", "images/listed", "nothere.txt", ["val.txt", "images/listed"], None, "", 7, "data.yaml"],
    "test": ["images/listed", "nothere", None],
    "path": ["", ".", "ds", "nothere", 5, ["x"], "ds/"],
}


def _yaml_text(d: dict, data) -> bytes:
    text = yaml.safe_dump(d, allow_unicode=True)
    op = data.draw(st.sampled_from(["none", "none", "none", "alias", "deep", "flow"]))
    if op == "alias":  # names through an anchor and an alias (accepted), or many aliases (refused)
        many = data.draw(st.sampled_from([1, 2000]))
        text = (
            "base: &n [a, b, c]\n"
            + "".join(f"k{i}: *n\n" for i in range(many))
            + "".join(ln + "\n" for ln in text.splitlines() if not ln.startswith(("names", "- ")))
        )
        text += "names: *n\n"
    elif op == "deep":
        depth = data.draw(st.sampled_from([10, 70, 5000]))
        text += f"extra: {'[' * depth}1{']' * depth}\n"
    elif op == "flow":
        text = json.dumps(d) + "\n"
    return _damage(
        text.encode("utf-8"),
        data,
        [b"\t", b":", b"[", b"{", b"&", b"*", b"\xff", b"\x00", b"%", b"---\n", b"- ", b"'", b'"'],
    )


@pytest.mark.slow
@_SETTINGS
@given(data=st.data())
def test_mutated_data_yaml_counts_as_the_plain_reading(data, tmp_path):
    base = _fresh(tmp_path)
    root = _dataset(base)
    d = dict(DATA)
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(sorted(_VALUES)))
        if data.draw(st.integers(0, 5)) == 0:
            d.pop(key, None)
        else:
            d[key] = data.draw(st.sampled_from(_VALUES[key]))
    y = root / "data.yaml"
    y.write_bytes(_yaml_text(d, data))
    report = _in(base, lambda: _run(y, [y]))
    if report is not None:
        _check(report, _in(base, lambda: _expected(y)))
