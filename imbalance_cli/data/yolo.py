"""YOLO / Ultralytics datasets (``data.yaml`` + ``labels/*.txt``) -> :class:`Dataset`,
counted as the trainer reads them.

Two entry points, both through :func:`load`:

* a ``data.yaml``: ``path`` (the dataset root), ``train`` / ``val`` / ``test`` each a directory of
  images, a text file listing image paths, or a list of either (relative to the root), ``names`` (a
  list, or a dict ``{index: name}``) and/or ``nc``. Every split found is loaded; the images of all
  splits are concatenated in the order train, val, test and ``Dataset.info["splits"]`` maps each
  split to its ``[first, end)`` image rows;
* a bare folder of label files (``labels/train/*.txt``) or of images, class names from ``classes=``
  (one per line), else a ``classes.txt`` beside the labels, else the indices.

By default every rule is Ultralytics 8.x's (``ultralytics/data/utils.py`` ``check_det_dataset``,
``verify_image_label``; ``ultralytics/data/base.py`` ``get_img_files``); ``version=5``
(``--yolo-version 5``) applies YOLOv5 7.0's (``utils/dataloaders.py``, ``utils/general.py``):

* the root: a relative ``path`` is relative to the **working directory** (it must exist there;
  Ultralytics would then look in its ``datasets_dir`` setting, which imbalance does not read);
  without ``path`` the YAML's folder. A split string that does not exist and starts with ``../`` is
  retried without it. (YOLOv5 resolves a relative root against its own package folder; imbalance
  applies Ultralytics' rule under ``--yolo-version 5`` too.)
* names: ``nc`` alone names the classes ``class_0``, ``class_1``, ... (YOLOv5: ``class0``, ...);
  a dict needs integer keys ``0..n-1`` (float and bool keys refused); ``nc`` must equal the names'
  count; at most :data:`MAX_CLASSES` classes;
* images: a directory is searched recursively as ``glob('**/*.*')`` does (names starting with a dot
  skipped); a list file is read as UTF-8 (a byte-order mark dropped; YOLOv5 keeps it, which spoils
  the first line), lines as they are (only the file's ends stripped), a line starting with ``./``
  relative to the list's folder (the first ``./`` replaced) and **any other relative line relative
  to the working directory**; only the image suffixes of
  :data:`imbalance_cli.data.yolo_images.SUFFIXES` count (case-insensitive); each split's images are
  sorted as strings;
* each image is verified (:mod:`imbalance_cli.data.yolo_images`) and its label file
  (``img2label_paths``: the last ``/images/`` becomes ``/labels/``, the suffix ``.txt``) parsed
  (:mod:`imbalance_cli.data.yolo_rules`); a corrupt image or label drops the **whole image**, as the
  trainer skips it; every one is listed as ``file[:line]: reason`` in ``info["corrupt"]``. A missing
  label file, or one without rows, makes a background image. A label file that is not a regular
  file makes its image corrupt (Ultralytics reads it as missing);
* boxes become pixel ``(x1, y1, x2, y2)`` of the (EXIF-oriented) image, clipped to the image (the
  trainer's transforms clip the boxes its 1% tolerance lets through); category ids are the class
  indices ``0..nc-1``; the image id is the file stem when every stem is a unique number, else the
  row number + 1.

A label cache (:mod:`imbalance_cli.data.yolo_cache`) keeps every verdict keyed by each file's size
and mtime, so a second run on an unchanged dataset opens no label file and no image.
"""

from __future__ import annotations

import gc
import os
import stat
import threading
import time
from pathlib import Path

import numpy as np

from imbalance_cli import progress
from imbalance_cli.data import yolo_cache
from imbalance_cli.data._io import BOM, check_regular
from imbalance_cli.data.arrays import unique_ints
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.data.yolo_images import SUFFIXES, verify_images
from imbalance_cli.data.yolo_rules import MAX_LABEL_BYTES, VERSIONS, LabelResult, parse_labels
from imbalance_cli.errors import InputError
from imbalance_cli.values import is_int

#: Image suffixes of the default trainer (Ultralytics 8.x).
IMG_FORMATS = tuple(sorted(SUFFIXES[8]))
#: Split keys read from a data.yaml, in this order.
SPLIT_KEYS = ("train", "val", "test")
#: Largest data.yaml, image-list or class-names file read (bytes).
MAX_YAML_BYTES = 16 * 1024 * 1024
MAX_LIST_BYTES = 1024 * 1024 * 1024
MAX_NAMES_BYTES = 64 * 1024 * 1024
#: Most classes (``nc`` or names) accepted, checked before any name is made.
MAX_CLASSES = 1_000_000
#: Deepest nesting and most aliases a data.yaml may use (a "billion laughs" file is refused, not expanded).
MAX_YAML_DEPTH = 64
MAX_YAML_ALIASES = 1_000
MAX_YAML_NODES = 2_000_000


#: Text files :func:`is_yolo_path` reads the start of, at most, to find a label file in a folder without images.
SNIFF_FILES = 50
SNIFF_BYTES = 4096


def _looks_like_labels(path: Path) -> bool:
    """Whether a ``.txt`` file reads as a YOLO label file: empty (an image without boxes) or its first non-blank line
    an integer class then numbers (a malformed row still counts: the trainer's rules then report it). A
    ``notes.txt`` or a class-name list does not."""
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError:
        return False
    for line in head.decode("utf-8", "replace").lstrip("\ufeff").splitlines():
        fields = line.split()
        if not fields:
            continue
        try:
            int(fields[0])
            [float(v) for v in fields[1:]]
        except ValueError:
            return False
        return len(fields) >= 2
    return True


def is_yolo_path(path: str | os.PathLike) -> bool:
    """True for a ``.yaml``/``.yml`` file, or a directory without ``.xml`` files holding images or ``.txt`` files
    that read as YOLO labels (:func:`_looks_like_labels`, the first :data:`SNIFF_FILES` of them): a folder of notes
    is not taken for a labels folder."""
    p = Path(path)
    if p.is_file():
        return p.suffix.lower() in (".yaml", ".yml")
    if not p.is_dir():
        return False
    has_labels = has_img = False
    sniffed = 0
    suffixes = SUFFIXES[8] | SUFFIXES[5]
    for f in p.rglob("*"):
        s = f.suffix.lower()
        if s == ".xml":
            return False
        if s == ".txt" and not has_labels and sniffed < SNIFF_FILES and f.is_file():
            sniffed += 1
            has_labels = _looks_like_labels(f)
        elif s[1:] in suffixes:
            has_img = True
    return has_labels or has_img


def img2label_path(image_path: str) -> str:
    """The label file of an image as ``img2label_paths``: last ``/images/`` -> ``/labels/``, suffix -> ``.txt``."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return sb.join(image_path.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt"


def label2img_stem(label_path: str) -> str:
    """The inverse mapping without suffix: last ``/labels/`` -> ``/images/``, ``.txt`` removed."""
    sa, sb = f"{os.sep}labels{os.sep}", f"{os.sep}images{os.sep}"
    return sb.join(label_path.rsplit(sa, 1)).rsplit(".", 1)[0]


def _version(version) -> int:
    v = int(version) if isinstance(version, (int, str)) and str(version).strip() in ("5", "8") else None
    if v not in VERSIONS:
        raise InputError(f"--yolo-version must be 8 (Ultralytics 8.x, the default) or 5 (YOLOv5 7.0), got {version!r}")
    return v


# --------------------------------------------------------------------------------------------- small files
def _read_text(path: str | os.PathLike, limit: int, what: str, sig: bool = True) -> str:
    """A whole regular file of at most ``limit`` bytes as UTF-8 (a BOM dropped when ``sig``); InputError otherwise."""
    p = Path(path)
    st = check_regular(p)
    if st.st_size > limit:
        raise InputError(f"{what} is larger than the {limit:,} bytes imbalance reads", path=p)
    try:
        with open(p, "rb") as f:
            data = _read_upto(f, limit, st.st_size)
    except OSError as e:
        raise InputError(f"cannot read {what}: {e.strerror or e}", path=p) from None
    if len(data) > limit:
        raise InputError(f"{what} is larger than the {limit:,} bytes imbalance reads", path=p)
    if sig and data.startswith(BOM):
        data = data[len(BOM) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(f"{what} is not UTF-8 text (byte {e.start})", path=p, record=f"line {line}") from None


def _read_upto(f, limit: int, size: int) -> bytes:
    """The bytes of the open file ``f``, at most ``limit + 1`` (one more than allowed: the caller refuses it).

    Read in steps sized by the file's stated ``size``, not ``f.read(limit + 1)``: a read reserves the memory it
    asks for before reading, so a 1 GiB limit made every small list file a 1 GiB allocation (and every label file
    one of 16 MiB). A file that grew after it was stat-ed is read on in 1 MiB steps, up to the limit.
    """
    parts, total, want = [], 0, min(limit, max(size, 0)) + 1
    while total <= limit:
        want = min(want, limit + 1 - total)
        chunk = f.read(want)
        parts.append(chunk)
        total += len(chunk)
        if len(chunk) < want:  # a short read of a regular file: its end
            break
        want = 1 << 20
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_names(path: str | os.PathLike) -> list[str]:
    """Class names from a text file, one per line (blank lines ignored)."""
    text = _read_text(path, MAX_NAMES_BYTES, "class names file")
    names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not names:
        raise InputError("class names file is empty", path=path)
    if len(names) > MAX_CLASSES:
        raise InputError(f"{len(names):,} class names: more than the {MAX_CLASSES:,} imbalance accepts", path=path)
    return names


def _yaml_loader():
    import yaml

    class Bounded(yaml.SafeLoader):
        """SafeLoader that refuses deep nesting and many aliases before composing them (billion laughs)."""

        def __init__(self, stream):
            super().__init__(stream)
            self._depth = 0
            self._aliases = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                self._aliases += 1
                if self._aliases > MAX_YAML_ALIASES:
                    raise yaml.YAMLError(
                        f"more than {MAX_YAML_ALIASES} aliases (refused: they can expand without bound)"
                    )
            self._depth += 1
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.YAMLError(f"nested deeper than {MAX_YAML_DEPTH} levels")
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    return Bounded


def _expanded_size(obj, limit: int) -> int:
    """Nodes of ``obj`` with aliases expanded, counted up to ``limit`` (a shared list counts at every use)."""
    count, stack = 0, [obj]
    while stack:
        x = stack.pop()
        count += 1
        if count > limit:
            return count
        if isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return count


def read_yaml(path: str | os.PathLike) -> dict:
    """A data.yaml as a dict: regular file, bounded size, depth, aliases and expanded size; InputError otherwise."""
    import yaml

    p = Path(path)
    text = _read_text(p, MAX_YAML_BYTES, "data.yaml")
    try:
        d = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else None
        raise InputError(f"malformed YAML: {getattr(e, 'problem', None) or e}", path=p, record=where) from None
    except RecursionError:
        raise InputError(f"malformed YAML: nested deeper than {MAX_YAML_DEPTH} levels", path=p) from None
    if not isinstance(d, dict):
        raise InputError("a data.yaml must be a mapping with train/val and names", path=p)
    if _expanded_size(d, MAX_YAML_NODES) > MAX_YAML_NODES:
        raise InputError(
            f"data.yaml expands to more than {MAX_YAML_NODES:,} values through its aliases (refused)", path=p
        )
    return d


def names_from_yaml(d: dict, where, version: int = 8) -> list[str]:
    """Class names from a data.yaml's ``names`` / ``nc`` by the trainer's rules (see module docstring)."""
    names, nc = d.get("names"), d.get("nc")
    if nc is not None:
        ok = not isinstance(nc, bool)
        if ok and not isinstance(nc, int):
            try:  # Ultralytics accepts integer-like values ('10', 10.0)
                f = float(nc)
                ok = f == int(f)
                nc = int(f)
            except (TypeError, ValueError, OverflowError):
                ok = False
        if not ok or nc < 1:
            raise InputError(f"'nc' must be a positive integer, got {d.get('nc')!r}", path=where, record="nc")
        if nc > MAX_CLASSES:
            raise InputError(
                f"'nc' is {nc:,}: more than the {MAX_CLASSES:,} classes imbalance accepts", path=where, record="nc"
            )
    if names is None:
        if nc is None:
            raise InputError("data.yaml needs 'names' (a list or a dict index: name) or 'nc'", path=where)
        return [f"class_{i}" if version == 8 else f"class{i}" for i in range(nc)]
    if isinstance(names, (dict, list)) and len(names) > MAX_CLASSES:
        raise InputError(
            f"'names' has {len(names):,} entries: more than the {MAX_CLASSES:,} imbalance accepts",
            path=where,
            record="names",
        )
    if isinstance(names, dict):
        keys = []
        for k in names:
            if not (is_int(k) or isinstance(k, str)):
                raise InputError(
                    f"'names' keys must be integers (class index: name), got {k!r}", path=where, record="names"
                )
            try:
                keys.append(int(k))
            except ValueError:
                raise InputError(
                    f"'names' keys must be integers (class index: name), got {k!r}", path=where, record="names"
                ) from None
        if sorted(keys) != list(range(len(keys))):
            raise InputError(
                f"'names' keys must be 0..{len(keys) - 1} without gaps or repeats, got {sorted(keys)[:10]}",
                path=where,
                record="names",
            )
        by_int = dict(zip(keys, names.values()))
        out = [_name(by_int[i], where) for i in range(len(keys))]
    elif isinstance(names, list):
        out = [_name(n, where) for n in names]
    else:
        raise InputError(f"'names' must be a list or a dict, got {type(names).__name__}", path=where, record="names")
    if not out:
        raise InputError("'names' is empty", path=where, record="names")
    if nc is not None and nc != len(out):
        raise InputError(f"'nc' is {nc} but 'names' has {len(out)} entries", path=where, record="nc")
    return out


def _name(v, where) -> str:
    if isinstance(v, (dict, list)):
        raise InputError(f"a class name must be text, got a {type(v).__name__}", path=where, record="names")
    return str(v)


def _root(d: dict, p: Path) -> Path:
    root = d.get("path")
    if root in (None, ""):
        return p.parent
    if not isinstance(root, str):
        raise InputError(f"'path' must be text, got {type(root).__name__}", path=p, record="path")
    r = Path(root)
    if not r.is_absolute() and not r.exists():
        raise InputError(
            f"'path: {root}' does not exist relative to the working directory {os.getcwd()} (Ultralytics "
            "resolves a relative 'path' there, then in its datasets_dir setting): run from that folder, "
            "make 'path' absolute, or remove it to use the data.yaml's folder",
            path=p,
            record="path",
        )
    return r


# --------------------------------------------------------------------------------------------- listing
def _walk_images(top: str, suffixes) -> tuple[list[str], list[str]]:
    """``glob(top/**/*.*, recursive=True)`` filtered by suffix (hidden names skipped, symlinked folders followed):
    ``(files, folders visited)``."""
    out, dirs, stack = [], [], [top]
    join = os.path.join
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        dirs.append(d)
        with it:
            for e in it:
                name = e.name
                if name[0] == ".":
                    continue
                dot = name.rfind(".")
                if dot > 0 and name[dot + 1 :].lower() in suffixes:
                    out.append(join(d, name))
                try:
                    if e.is_dir():
                        stack.append(join(d, name))
                except OSError:
                    pass
    return out, dirs


def _glob_images(top: str, suffixes, cache: bool = False) -> list[str]:
    """:func:`_walk_images`' files, reused from the listing cache while no folder's mtime has changed (adding,
    removing or renaming a file changes its folder's mtime; a folder changed within 2 s of the listing is walked
    again, as a file system may keep coarse timestamps)."""
    if not cache:
        return _walk_images(top, suffixes)[0]
    path = yolo_cache.listing_path(top, suffixes)
    hit = yolo_cache.load_listing(path)
    if hit is not None:
        dirs, mtimes, written, files = hit
        now = _dir_mtimes(dirs)
        if np.array_equal(now, mtimes) and (now < written - 2_000_000_000).all():
            return files
    t0 = time.time_ns()
    files, dirs = _walk_images(top, suffixes)
    files.sort()  # kept sorted: the split's sort then costs one comparison per file (0.05 s per 100,000 saved)
    yolo_cache.save_listing(path, dirs, _dir_mtimes(dirs), t0, files)
    return files


def _dir_mtimes(dirs: list[str]) -> np.ndarray:
    out = np.full(len(dirs), -1, np.int64)
    for i, d in enumerate(dirs):
        try:
            out[i] = os.stat(d).st_mtime_ns
        except OSError:
            pass
    return out


def _list_file(p: Path, version: int, suffixes) -> list[str]:
    text = _read_text(p, MAX_LIST_BYTES, "image list", sig=version == 8)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise InputError("NUL byte in an image path", path=p, record=f"line {line}")
    parent = str(p.parent) + os.sep
    out = []
    for x in text.strip().splitlines():
        if x.rpartition(".")[2].lower() in suffixes:
            out.append(x.replace("./", parent, 1) if x.startswith("./") else x)
    return out


def image_files(sources: list[Path], where, key: str, version: int, cache: bool = False) -> list[str]:
    """Image paths of one split (see module docstring), sorted as strings (folder listings cached with ``cache``)."""
    suffixes = SUFFIXES[version]
    files: list[str] = []
    for s in sources:
        if s.is_dir():
            files.extend(_glob_images(str(s), suffixes, cache))
        elif s.exists():
            files.extend(_list_file(s, version, suffixes))
        else:
            raise InputError(f"split '{key}': no such directory or image list file: {s}", path=where, record=key)
    if os.sep != "/":
        files = [f.replace("/", os.sep) for f in files]
    files.sort()
    if not files:
        raise InputError(f"split '{key}' has no images ({', '.join(sorted(suffixes))})", path=where, record=key)
    return files


# --------------------------------------------------------------------------------------------- scanning
#: Paths from which :func:`_stat_pairs` stats on :data:`STAT_THREADS` threads, when a core is idle
#: (:func:`_stat_threads`): ``os.stat`` releases the GIL, so one thread's system call runs while another builds
#: its result. With every core busy the threads only contend for the GIL: on the shared 2-core machine at load
#: average 4-5, 200,000 stats took 1.5-1.9 s on one thread (1.0 s CPU, no context switch) and 1.4-2.6 s on three
#: (1.1-1.8 s CPU, 2,000-8,000 context switches; up to 20,000 in a whole run). A few threads with one long slice
#: each: a pool of 16 threads over small chunks spent more in starting threads (on the loaded machine a start
#: waited up to 20 ms) and handing chunks over than it saved.
STAT_THREADS_FROM = 16_384
STAT_THREADS = 3


def _stat_threads() -> int:
    """:data:`STAT_THREADS` when at least one core of this process's is idle (load average below the cores less
    one), else 1."""
    try:
        cores = len(os.sched_getaffinity(0))
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # platforms without them: the threads
        return STAT_THREADS
    return STAT_THREADS if cores > 1 and load <= cores - 1 else 1


def _stat_pairs(paths: list[str]) -> np.ndarray:
    """``(size, mtime_ns)`` per path; ``(-1, -1)`` missing, ``(-2, -2)`` not a regular file or unreadable."""
    n = _stat_threads() if len(paths) >= STAT_THREADS_FROM else 1
    if n == 1:
        return _stat_chunk(paths)
    step = -(-len(paths) // n)
    parts: list = [None] * n

    def work(k: int) -> None:
        try:
            parts[k] = _stat_chunk(paths[k * step : (k + 1) * step])
        except BaseException as e:  # noqa: BLE001 - raised again below, in the caller's thread
            parts[k] = e

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(1, n)]
    for t in threads:
        t.start()
    work(0)
    for t in threads:
        t.join()
    for part in parts:
        if isinstance(part, BaseException):
            raise part
    return np.concatenate(parts)


def _stat_chunk(paths: list[str], step: int = 1024) -> np.ndarray:
    out = np.empty((len(paths), 2), np.int64)
    for a in range(0, len(paths), step):  # small steps: the stat results' memory is reused, not faulted in afresh
        part = paths[a : a + step]
        try:  # every path there (the common case): one tight pass
            sts = list(map(os.stat, part))
            n = len(sts)
            mode = np.fromiter((s.st_mode for s in sts), np.int64, n)
            if ((mode & 0o170000) == stat.S_IFREG).all():
                out[a : a + n, 0] = np.fromiter((s.st_size for s in sts), np.int64, n)
                out[a : a + n, 1] = np.fromiter((s.st_mtime_ns for s in sts), np.int64, n)
                continue
        except (OSError, ValueError):
            pass
        out[a : a + len(part)] = _stat_each(part)
    return out


def _stat_each(paths: list[str]) -> np.ndarray:
    out = np.empty((len(paths), 2), np.int64)
    st_reg = stat.S_ISREG
    for i, p in enumerate(paths):
        try:
            st = os.stat(p)
        except FileNotFoundError:
            out[i] = -1
            continue
        except (OSError, ValueError):
            out[i] = -2
            continue
        out[i] = (st.st_size, st.st_mtime_ns) if st_reg(st.st_mode) else (-2, -2)
    return out


def _bad(reason: str) -> LabelResult:
    return LabelResult(np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros(0, np.int64), bad=(None, reason))


def _label_bytes(path: str, st) -> bytes | LabelResult | None:
    """A label file's bytes; None when it does not exist (a background image); a bad :class:`LabelResult` when
    it cannot be read (not a regular file, over :data:`MAX_LABEL_BYTES`, an I/O error)."""
    if st[0] == -1:
        return None
    if st[0] == -2:
        return _bad("label file is not a regular file (devices, FIFOs and directories are refused)")
    if st[0] > MAX_LABEL_BYTES:
        return _bad(f"label file larger than {MAX_LABEL_BYTES:,} bytes (imbalance's limit)")
    try:
        with open(path, "rb") as f:
            data = _read_upto(f, MAX_LABEL_BYTES, st[0])
    except FileNotFoundError:
        return None
    except OSError as e:
        return _bad(f"cannot read label file: {e.strerror or e}")
    if len(data) > MAX_LABEL_BYTES:
        return _bad(f"label file larger than {MAX_LABEL_BYTES:,} bytes (imbalance's limit)")
    return data


def _any_exists(paths: list[str]) -> bool:
    """Whether any path exists, from one listing per folder (a million missing images answer in about a second)."""
    if os.path.exists(paths[0]):
        return True
    by_dir: dict[str, list[str]] = {}
    for p in paths:
        i = p.rfind(os.sep)
        d = p[:i] if i > 0 else (os.sep if i == 0 else ".")
        by_dir.setdefault(d, []).append(p[i + 1 :])
    for d, names in by_dir.items():
        try:
            listed = set(os.listdir(d))
        except FileNotFoundError:
            continue
        except OSError:
            return True  # an unlistable folder: its files are stat-ed one by one
        if not listed.isdisjoint(names):
            return True
    return False


def _read_labels(paths: list[str], stats, nc: int | None, version: int) -> list:
    """The verdicts of many label files (None: missing), plain files parsed together (``parse_labels``)."""
    raw = [_label_bytes(p, s) for p, s in zip(paths, stats)]
    idx = [i for i, r in enumerate(raw) if isinstance(r, bytes)]
    for i, res in zip(idx, parse_labels([raw[i] for i in idx], nc, version)):
        raw[i] = res
    return raw


def _clean(s: str) -> str:
    return " ".join(str(s).replace("\0", "").split())


def scan(files: list[str], nc: int | None, version: int, source: str | None, cache: bool = True) -> dict:
    """Verify the images and parse the label files of one split, reusing the label cache for unchanged files.

    Returns the table :mod:`imbalance_cli.data.yolo_cache` stores (arrays per image and per kept row,
    strings as blobs) plus ``paths`` (the image paths) and ``labels`` (their label files).
    """
    cpath = yolo_cache.cache_path(source, version, nc) if cache and source else None
    old = yolo_cache.load(cpath) if cpath is not None else None
    try:
        old_paths = yolo_cache.split_strings(old["paths_blob"], old["paths_off"]) if old is not None else []
    except (ValueError, UnicodeDecodeError):
        old, old_paths = None, []
    if old is not None and old_paths == files:
        labels = yolo_cache.split_strings(old["labels_blob"], old["labels_off"])
    else:
        labels = [img2label_path(f) for f in files]
    if len(files) and not _any_exists(files):
        raise InputError(
            f"none of the {len(files):,} images listed exists (first: {files[0]}); list lines without "
            "'./' are relative to the working directory",
            path=source,
        )
    both = _stat_pairs(files + labels)
    img_st, lab_st = both[: len(files)], both[len(files) :]
    if (
        old is not None
        and old_paths == files
        and np.array_equal(old["img_st"], img_st)
        and np.array_equal(old["lab_st"], lab_st)
    ):
        old["paths"], old["labels"] = files, labels
        return old
    img_res, lab_res, todo_img, todo_lab = _cached_results(files, old, old_paths, img_st, lab_st)
    if todo_img:
        with progress.counter(len(todo_img), "verifying images") as bar:
            step = 4096
            for a in range(0, len(todo_img), step):
                part = todo_img[a : a + step]
                for i, r in zip(part, verify_images([files[i] for i in part], version)):
                    img_res[i] = r
                bar.advance(len(part))
    step = 8192
    for a in range(0, len(todo_lab), step):
        part = todo_lab[a : a + step]
        for i, r in zip(part, _read_labels([labels[i] for i in part], lab_st[part], nc, version)):
            lab_res[i] = r
    table = _assemble(files, labels, img_st, lab_st, img_res, lab_res, old)
    if cpath is not None:
        yolo_cache.save(cpath, {k: v for k, v in table.items() if k not in ("paths", "labels")})
    table["paths"], table["labels"] = files, labels
    return table


def _cached_results(files: list[str], old: dict | None, old_paths: list[str], img_st, lab_st) -> tuple:
    """``(image results, label results, images to verify, labels to read)``: a file whose stat matches the
    cache's takes its cached result (labels as ``("cached", row)``); the others are listed to do."""
    index = {p: j for j, p in enumerate(old_paths)}
    n = len(files)
    img_res: list = [None] * n
    lab_res: list = [None] * n
    todo_img, todo_lab = [], []
    if old is not None:
        o_img_msg = yolo_cache.split_strings(old["img_msg_blob"], old["img_msg_off"])
    for i, f in enumerate(files):
        j = index.get(f)
        if j is not None and (old["img_st"][j] == img_st[i]).all() and img_st[i, 0] >= 0:
            img_res[i] = tuple(old["wh"][j].tolist()) if old["wh"][j, 0] >= 0 else o_img_msg[j]
        else:
            todo_img.append(i)
        if j is not None and (old["lab_st"][j] == lab_st[i]).all() and lab_st[i, 0] != -2:
            lab_res[i] = ("cached", j)
        else:
            todo_lab.append(i)
    return img_res, lab_res, todo_img, todo_lab


def _stem_ids(files: list[str]) -> np.ndarray:
    """Each file stem as an integer when it is all digits (COCO-style ``000000397133.jpg``), else -1."""
    out = np.full(len(files), -1, np.int64)
    for i, f in enumerate(files):
        stem = f[f.rfind(os.sep) + 1 : f.rfind(".")]
        if stem.isdigit() and len(stem) < 19:
            out[i] = int(stem)
    return out


# long: one pass over the images filling the cache table's parallel columns, one branch per source of a file's result
def _assemble(files, labels, img_st, lab_st, img_res, lab_res, old) -> dict:
    n = len(files)
    wh = np.full((n, 2), -1, np.int64)
    kind = np.zeros(n, np.int8)  # 0 rows, 1 missing, 2 empty, 3 bad
    img_msg, lab_msg, fatal = [""] * n, [""] * n, [""] * n
    cls, xywhn, lines, counts, dups, dcounts = [], [], [], np.zeros(n, np.int64), [], np.zeros(n, np.int64)
    segments = np.zeros(n, np.int64)
    if old is not None:
        o_lab_msg = yolo_cache.split_strings(old["lab_msg_blob"], old["lab_msg_off"])
        o_fatal = yolo_cache.split_strings(old["fatal_blob"], old["fatal_off"])
    for i in range(n):
        r = img_res[i]
        if isinstance(r, str):
            img_msg[i] = _clean(r)
        else:
            wh[i] = r
        lr = lab_res[i]
        if isinstance(lr, tuple):  # from the cache
            j = lr[1]
            kind[i] = old["lab_kind"][j]
            lab_msg[i], fatal[i] = o_lab_msg[j], o_fatal[j]
            a, b = int(old["row_off"][j]), int(old["row_off"][j + 1])
            cls.append(old["cls"][a:b])
            xywhn.append(old["xywhn"][a:b])
            lines.append(old["lines"][a:b])
            counts[i] = b - a
            a, b = int(old["dup_off"][j]), int(old["dup_off"][j + 1])
            dups.append(old["dups"][a:b])
            dcounts[i] = b - a
            segments[i] = old["segments"][j]
            continue
        if lr is None:
            kind[i] = 1
            continue
        if lr.bad is not None:
            kind[i] = 3
            lab_msg[i] = f"{'' if lr.bad[0] is None else lr.bad[0]}\t{_clean(lr.bad[1])}"
            continue
        if lr.empty:
            kind[i] = 2
            continue
        cls.append(lr.cls)
        xywhn.append(lr.xywhn)
        lines.append(lr.lines)
        counts[i] = len(lr.cls)
        if lr.duplicates:
            dups.append(np.asarray(lr.duplicates, np.int64).reshape(-1, 2))
            dcounts[i] = len(lr.duplicates)
        segments[i] = lr.segments
        if lr.fatal is not None:
            fatal[i] = f"{lr.fatal[0]}\t{_clean(lr.fatal[1])}"
    row_off = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=row_off[1:])
    dup_off = np.zeros(n + 1, np.int64)
    np.cumsum(dcounts, out=dup_off[1:])
    t = {
        "img_st": img_st,
        "lab_st": lab_st,
        "wh": wh,
        "lab_kind": kind,
        "row_off": row_off,
        "cls": np.concatenate(cls) if cls else np.zeros(0, np.int64),
        "xywhn": np.concatenate(xywhn) if xywhn else np.zeros((0, 4), np.float32),
        "lines": np.concatenate(lines) if lines else np.zeros(0, np.int64),
        "dup_off": dup_off,
        "dups": np.concatenate(dups) if dups else np.zeros((0, 2), np.int64),
        "segments": segments,
        "stem_id": _stem_ids(files),
    }
    for name, items in (
        ("paths", files),
        ("labels", labels),
        ("img_msg", img_msg),
        ("lab_msg", lab_msg),
        ("fatal", fatal),
    ):
        t[name + "_blob"], t[name + "_off"] = yolo_cache.join_strings(items)
    return t


# --------------------------------------------------------------------------------------------- building
def _report(table: dict) -> tuple[np.ndarray, dict]:
    """Kept-image mask and the label findings of one scanned split (messages as ``file[:line]: reason``)."""
    files, labels = table["paths"], table["labels"]
    wh, kind = table["wh"], table["lab_kind"]
    img_bad = wh[:, 0] < 0
    lab_bad = (kind == 3) & ~img_bad
    keep = ~img_bad & ~lab_bad
    img_msg = yolo_cache.split_strings(table["img_msg_blob"], table["img_msg_off"]) if img_bad.any() else None
    lab_msg = yolo_cache.split_strings(table["lab_msg_blob"], table["lab_msg_off"]) if lab_bad.any() else None
    corrupt, bad_lines, unreadable = [], [], []
    corrupt_files = [files[i] for i in np.flatnonzero(img_bad | lab_bad).tolist()]
    for i in np.flatnonzero(img_bad | lab_bad).tolist():
        if img_bad[i]:
            s = f"{files[i]}: {img_msg[i]}"
            unreadable.append(s)
        else:
            line, _, why = lab_msg[i].partition("\t")
            s = f"{labels[i]}:{line}: {why}" if line else f"{labels[i]}: {why}"
            bad_lines.append(s)
        corrupt.append(s)
    duplicates = []
    d_off, d = table["dup_off"], table["dups"]
    for i in np.flatnonzero(np.diff(d_off) > 0).tolist():
        if keep[i]:
            for line, first in d[d_off[i] : d_off[i + 1]].tolist():
                duplicates.append(f"{labels[i]}:{line}: duplicate of line {first} (removed)")
    fatal = []
    if int(table["fatal_off"][-1]):
        fm = yolo_cache.split_strings(table["fatal_blob"], table["fatal_off"])
        for i in np.flatnonzero(keep).tolist():
            if fm[i]:
                line, _, why = fm[i].partition("\t")
                fatal.append(f"{labels[i]}:{line}: {why}")
    missing = [labels[i] for i in np.flatnonzero((kind == 1) & keep).tolist()]
    counts = {
        "images_listed": len(files),
        "images": int(keep.sum()),
        "corrupt_images": len(corrupt),
        "label_files_found": int(((kind != 1) & ~img_bad).sum()),
        "label_files_missing": int(((kind == 1) & keep).sum()),
        "label_files_empty": int(((kind == 2) & keep).sum()),
        "boxes": int(np.diff(table["row_off"])[keep].sum()),
        "duplicate_labels": len(duplicates),
        "segment_lines": int(table["segments"][keep].sum()),
    }
    return keep, {
        "counts": counts,
        "corrupt": corrupt,
        "bad_lines": bad_lines,
        "unreadable": unreadable,
        "duplicates": duplicates,
        "fatal": fatal,
        "corrupt_files": corrupt_files,
        "missing": missing,
    }


#: What :func:`_report` lists per split (its key) and the dataset's ``info`` key holding every split's entries.
_REPORT_LISTS = (
    ("corrupt", "corrupt"),
    ("bad_lines", "bad_lines"),
    ("unreadable", "unreadable_image_files"),
    ("duplicates", "duplicates"),
    ("fatal", "fatal"),
    ("corrupt_files", "corrupt_files"),
    ("missing", "missing_labels"),
)


def _build(
    tables: list[tuple[str | None, dict]], names: list[str], path: str, nc_known: bool, version: int, strict: bool
) -> Dataset:
    files, whs, parts, stem_ids = [], [], [], []
    splits: dict[str, list[int]] = {}
    info = _empty_info(version)
    totals: dict[str, int] = {}
    n_img = 0
    for split, t in tables:
        keep, rep = _report(t)
        if strict and rep["corrupt"]:
            raise InputError(f"corrupt image or label (--strict makes it fatal): {rep['corrupt'][0]}")
        rows = np.flatnonzero(keep)
        counts = np.diff(t["row_off"])
        sel = None if len(rows) == len(keep) else np.repeat(keep, counts)  # None: every row kept
        parts.append((t, n_img, counts[rows], sel))
        paths = t["paths"]
        files.extend(paths if len(rows) == len(paths) else [paths[i] for i in rows.tolist()])
        whs.append(t["wh"][rows])
        stem_ids.append(t["stem_id"][rows])
        lists = {key: rep[k] for k, key in _REPORT_LISTS}
        if split is not None:
            splits[split] = [n_img, n_img + len(rows)]
            info["split_counts"][split] = rep["counts"]
            info["split_lists"][split] = lists
        n_img += len(rows)
        for k, v in rep["counts"].items():
            totals[k] = totals.get(k, 0) + v
        for key, entries in lists.items():
            info[key].extend(entries)
    cls, xywh, bimg, lines = _kept_rows(parts)
    wh = np.concatenate(whs).astype(np.float64) if whs else np.zeros((0, 2))
    W, H = wh[:, 0], wh[:, 1]
    boxes = _pixel_boxes(xywh, bimg, W, H, clip=version == 8)
    if not nc_known and len(cls) and int(cls.max()) >= len(names):
        names = names + [str(k) for k in range(len(names), int(cls.max()) + 1)]
    if len(cls) and int(cls.max()) >= len(names):  # YOLOv5 keeps them, then train.py stops: listed in info["fatal"]
        ok = cls < len(names)
        info["fatal_boxes"] = int((~ok).sum())
        cls, boxes, bimg, lines = cls[ok], boxes[ok], bimg[ok], lines[ok]
    has_sizes = n_img > 0
    _finish_info(info, totals, splits)
    return Dataset(
        image_ids=_image_ids(stem_ids, n_img),
        widths=W.copy(),
        heights=H.copy(),
        file_names=np.array(files, dtype=object),
        boxes=boxes,
        box_image=bimg,
        box_category=cls,
        category_ids=np.arange(len(names)),
        category_names=np.array(names, dtype=object),
        format="yolo",
        path=path,
        has_image_sizes=has_sizes,
        info=info,
        label_lines=lines,
    )


def _empty_info(version: int) -> dict:
    """The dataset's ``info`` before any split is read: the trainer it is read as and empty problem lists."""
    return {
        "yolo_version": version,
        "trainer": "Ultralytics 8.x" if version == 8 else "YOLOv5 7.0",
        "corrupt": [],
        "corrupt_files": [],
        "bad_lines": [],
        "unreadable_image_files": [],
        "duplicates": [],
        "fatal": [],
        "missing_labels": [],
        "split_counts": {},
        "split_lists": {},
    }


def _finish_info(info: dict, totals: dict, splits: dict) -> None:
    """Add the totals over every split, the split ranges and the problem counts to ``info``."""
    info.update(totals)
    info.update(
        {
            "splits": splits,
            "background_images": totals.get("label_files_missing", 0) + totals.get("label_files_empty", 0),
            "bad_line_count": len(info["bad_lines"]),
            "unreadable_images": len(info["unreadable_image_files"]),
            "corrupt_image_count": len(info["corrupt"]),
        }
    )


def _image_ids(stem_ids: list, n_img: int) -> np.ndarray:
    """The file stems as image ids when they are unique non-negative integers; else 1..n in file order."""
    ids = np.concatenate(stem_ids) if stem_ids else np.zeros(0, np.int64)
    if n_img and (ids >= 0).all() and ((np.diff(ids) > 0).all() or len(unique_ints(ids)) == n_img):
        return ids
    return np.arange(1, n_img + 1, dtype=np.int64)


def _kept_rows(parts: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Class, float32 ``(cx, cy, w, h)``, image row and 1-based label-file line of every kept label row of the
    scanned splits ``parts`` (``(table, first image row, rows per kept image, row mask or None for all)``), in one
    array each."""
    n = sum(len(t["cls"]) if sel is None else int(np.count_nonzero(sel)) for t, _, _, sel in parts)
    cls, xywh, bimg = np.empty(n, np.int64), np.empty((n, 4), np.float32), np.empty(n, np.int64)
    lines = np.empty(n, np.int64)
    o = 0
    for t, first, counts, sel in parts:
        c, x, ln = (
            (t["cls"], t["xywhn"], t["lines"]) if sel is None else (t["cls"][sel], t["xywhn"][sel], t["lines"][sel])
        )
        cls[o : o + len(c)], xywh[o : o + len(c)], lines[o : o + len(c)] = c, x, ln
        bimg[o : o + len(c)] = np.repeat(np.arange(first, first + len(counts)), counts)
        o += len(c)
    return cls, xywh, bimg, lines


#: Rows per block in :func:`_pixel_boxes`: its temporaries stay small and are reused block after block
#: (whole-column temporaries would be fresh memory, zero-filled by the kernel: up to 0.2 s of system time at
#: 700,000 boxes, measured).
BOX_BLOCK = 1 << 16


def _pixel_boxes(xywh: np.ndarray, img: np.ndarray, W: np.ndarray, H: np.ndarray, clip: bool) -> np.ndarray:
    """Pixel ``(x1, y1, x2, y2)`` (float64) of normalised float32 ``(cx, cy, w, h)`` rows in images ``img`` of
    ``W`` x ``H`` pixels; with ``clip`` clipped to the image, as Ultralytics' transforms clip what its 1%
    tolerance lets through (``Instances.clip``)."""
    boxes = np.empty((len(xywh), 4))
    for a in range(0, len(xywh), BOX_BLOCK):
        x = xywh[a : a + BOX_BLOCK].astype(np.float64)
        sw, sh = W[img[a : a + BOX_BLOCK]], H[img[a : a + BOX_BLOCK]]
        out = boxes[a : a + BOX_BLOCK]
        out[:, 0] = (x[:, 0] - x[:, 2] / 2) * sw
        out[:, 1] = (x[:, 1] - x[:, 3] / 2) * sh
        out[:, 2] = (x[:, 0] + x[:, 2] / 2) * sw
        out[:, 3] = (x[:, 1] + x[:, 3] / 2) * sh
        if clip:
            np.clip(out, 0, np.stack([sw, sh, sw, sh], axis=1), out=out)
    return boxes


def load_yaml(path: str | os.PathLike, *, strict: bool = False, cache: bool = True, version: int = 8) -> Dataset:
    """Load every split of a ``data.yaml`` (see module docstring) into one :class:`Dataset`."""
    version = _version(version)
    p = Path(path)
    d = read_yaml(p)
    names = names_from_yaml(d, p, version)
    root = _root(d, p)
    keys = [k for k in SPLIT_KEYS if d.get(k)]
    if not keys:
        raise InputError("data.yaml names no split: give 'train' and/or 'val' (and optionally 'test')", path=p)
    tables = []
    for k in keys:
        entries = d[k] if isinstance(d[k], list) else [d[k]]
        if len(entries) > 10_000:
            raise InputError(f"split '{k}' lists {len(entries):,} sources (at most 10,000)", path=p, record=k)
        sources = []
        for e in entries:
            if not isinstance(e, str):
                raise InputError(f"split '{k}' entries must be paths, got {type(e).__name__}", path=p, record=k)
            q = (root / e).resolve()
            if not q.exists() and isinstance(d[k], str) and e.startswith("../"):
                q = (root / e[3:]).resolve()
            sources.append(q)
        files = image_files(sources, p, k, version, cache)
        tables.append((k, scan(files, len(names), version, f"{p.resolve()}#{k}", cache)))
    ds = _build(tables, names, str(p), True, version, strict)
    ds.info["names_generated"] = d.get("names") is None  # 'nc' alone: class_0, class_1, ... name nothing
    return ds


def load_dir(
    path: str | os.PathLike,
    *,
    classes: str | os.PathLike | None = None,
    strict: bool = False,
    cache: bool = True,
    version: int = 8,
) -> Dataset:
    """Load a bare folder of YOLO label files, or of images whose labels follow ``img2label_paths``.

    A folder holding images is read as a split of them. A folder of labels only: each label's image is
    looked for by the inverse mapping (``/labels/`` -> ``/images/``, any image suffix); when every label
    has its image the dataset is read through the images; otherwise image sizes are unknown, boxes stay
    normalised (``has_image_sizes=False``) and each label file is still parsed by the trainer's rules.
    """
    version = _version(version)
    p = Path(path)
    suffixes = SUFFIXES[version]
    images = sorted(_glob_images(str(p), suffixes, cache))
    if classes is not None:
        names, known = read_names(classes), True
    elif (p / "classes.txt").is_file():
        names, known = read_names(p / "classes.txt"), True
    else:
        names, known = [], False
    nc = len(names) if known else None
    if not images:
        labels = sorted(str(f) for f in p.rglob("*.txt") if f.is_file() and f.name != "classes.txt")
        if not labels:
            raise InputError("no YOLO label (.txt) or image files found in directory", path=p)
        index: dict[str, str] = {}
        for root in {os.path.dirname(label2img_stem(lf)) for lf in labels}:
            if os.path.isdir(root):
                for f in sorted(os.listdir(root)):
                    stem, _, suf = f.rpartition(".")
                    if suf.lower() in suffixes:
                        index.setdefault(os.path.join(root, stem), os.path.join(root, f))
        found = [index.get(label2img_stem(lf)) for lf in labels]
        if all(found):
            images = sorted(found)
        else:
            return _labels_only(labels, names, known, str(p), version, strict)
    table = scan(images, nc, version, str(p.resolve()), cache)
    ds = _build([(None, table)], names, str(p), known, version, strict)
    ds.info["names_generated"] = not known
    return ds


def _labels_only(labels: list[str], names: list[str], known: bool, path: str, version: int, strict: bool) -> Dataset:
    """Label files without images: sizes unknown, boxes normalised; corrupt labels listed as usual."""
    nc = len(names) if known else None
    st = _stat_pairs(labels)
    res = _read_labels(labels, st, nc, version)
    table = _assemble(labels, labels, st, st, [(1, 1)] * len(labels), res, None)
    table["paths"], table["labels"] = labels, labels
    ds = _build([(None, table)], names, path, known, version, strict)
    ds.widths[:] = np.nan
    ds.heights[:] = np.nan
    ds.has_image_sizes = False
    ds.info["names_generated"] = not known
    return ds


def load(
    path: str | os.PathLike,
    *,
    classes: str | os.PathLike | None = None,
    strict: bool = False,
    cache: bool = True,
    version: int = 8,
) -> Dataset:
    """Load a ``data.yaml`` or a bare YOLO labels/images folder (see module docstring).

    ``cache``: keep every verdict in the label cache (:mod:`imbalance_cli.data.yolo_cache`);
    ``version``: 8 (Ultralytics 8.x, default) or 5 (YOLOv5 7.0) rules."""
    # The cyclic collector is off while loading: the scan makes ~10^5 short-lived tracked objects (stat results,
    # rows) that hold no cycle, and the ~200 collections they triggered per 100,000 images walked them for nothing
    # (about 4% of a cached run's CPU time in perf samples). Reference counting still frees everything.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _load(path, classes=classes, strict=strict, cache=cache, version=version)
    finally:
        if was_enabled:
            gc.enable()


def _load(path, *, classes, strict: bool, cache: bool, version: int) -> Dataset:
    p = Path(path)
    if not p.exists():
        raise InputError("no such file or directory", path=p)
    if p.is_dir():
        return load_dir(p, classes=classes, strict=strict, cache=cache, version=version)
    if classes is not None:
        raise InputError("--classes applies to a bare YOLO labels folder; a data.yaml has its own 'names'", path=p)
    check_regular(p)
    if p.suffix.lower() not in (".yaml", ".yml"):
        head = _read_head(p)
        if head[:1] in (b"{", b"[", b"<", b"\x1f"):
            raise InputError("not a YOLO data.yaml (looks like JSON, XML or gzip)", path=p)
    return load_yaml(p, strict=strict, cache=cache, version=version)


def _read_head(p: Path) -> bytes:
    try:
        with open(p, "rb") as f:
            return f.read(64).lstrip()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", path=p) from None


#: The loader's label-file findings every report carries under ``labels`` (one definition for all outputs).
LABEL_KEYS = (
    "trainer",
    "yolo_version",
    "images_listed",
    "images",
    "corrupt_image_count",
    "corrupt",
    "bad_line_count",
    "bad_lines",
    "unreadable_images",
    "unreadable_image_files",
    "label_files_found",
    "label_files_missing",
    "missing_labels",
    "label_files_empty",
    "background_images",
    "segment_lines",
    "duplicate_labels",
    "duplicates",
    "fatal",
    "split_counts",
)


def label_summary(dataset: Dataset) -> dict:
    """The ``labels`` block of a report: what the trainer's rules found in the label files and images (all listed)."""
    return {k: dataset.info[k] for k in LABEL_KEYS if k in dataset.info}


def _own_split_info(sub: dict, whole: dict, name: str) -> None:
    """A split's ``info``: its own label lists and counts (the whole dataset's hold every split's)."""
    lists = (whole.get("split_lists") or {}).get(name)
    counts = (whole.get("split_counts") or {}).get(name)
    sub.pop("split_lists", None)
    sub.pop("split_counts", None)
    if lists is None or counts is None:
        return
    sub.update({k: list(v) for k, v in lists.items()})
    sub.update(counts)
    sub.update(
        {
            "background_images": counts.get("label_files_missing", 0) + counts.get("label_files_empty", 0),
            "bad_line_count": len(lists["bad_lines"]),
            "unreadable_images": len(lists["unreadable_image_files"]),
            "corrupt_image_count": len(lists["corrupt"]),
        }
    )
    if not lists["fatal"]:  # (boxes whose class exceeds nc are counted over the whole file)
        sub.pop("fatal_boxes", None)


def split_datasets(dataset: Dataset) -> dict[str, Dataset]:
    """The per-split :class:`Dataset` s of a data.yaml load (``info["splits"]``), in file order; {} if none."""
    out = {}
    by_image = bool(len(dataset.box_image) < 2 or (np.diff(dataset.box_image) >= 0).all())  # as _build makes it
    for name, (a, b) in (dataset.info.get("splits") or {}).items():
        if by_image:
            sub = dataset.image_range(int(a), int(b))
        else:
            sub = dataset.subset_images(np.arange(int(a), int(b)))
        sub.path = f"{dataset.path}[{name}]"
        sub.info.pop("splits", None)
        _own_split_info(sub.info, dataset.info, name)
        out[name] = sub
    return out
