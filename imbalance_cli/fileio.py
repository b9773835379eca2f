"""Atomic output of single files, one-line write errors, output-folder manifests and JSON serialisation.

Every file is written to a temporary sibling (a short fixed-length hidden name, so any valid target
name works), then renamed into place, so a killed run never leaves a half-written file: either the
old file (or none) or the complete new one is there. Whole report directories are swapped in by
:func:`imbalance_cli.report.writer.write_report`, which builds on :func:`write_bytes_fsync` and on
the manifest helpers here. Every ``OSError`` while writing becomes a :class:`WriteError`: one line
naming the user's path (never a temporary one), the system's reason and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from imbalance_cli.errors import InputError

#: The file in an output folder that lists what this tool wrote there (``{"files": {name: kind}}``).
MANIFEST = ".imbalance-manifest.json"
MANIFEST_SCHEMA = "imbalance.manifest/1"
_MANIFEST_MAX_BYTES = 1 << 22

_ADVICE = {
    errno.EACCES: "you may not write there: fix the permissions or choose another {option}",
    errno.EPERM: "you may not write there: fix the permissions or choose another {option}",
    errno.EROFS: "the file system is read-only: choose another {option}",
    errno.ENOSPC: "the disk is full: free some space or choose another {option}",
    errno.EDQUOT: "your disk quota is used up: free some space or choose another {option}",
    errno.EFBIG: "the file is too large for this file system: choose another {option}",
    errno.ENAMETOOLONG: "a name is too long for this file system: choose a shorter {option}",
    errno.EXDEV: "it is on another file system than its parent folder (a mount point?): name a folder inside it "
    "or choose another {option}",
    errno.EBUSY: "it is in use (a mount point?): name a folder inside it or choose another {option}",
    errno.EIO: "the device reported an I/O error: check the disk or choose another {option}",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another {option}",
    errno.EISDIR: "it is a folder: name a file or choose another {option}",
    errno.ENOENT: "it cannot be created there: choose another {option}",
}


class WriteError(InputError, OSError):
    """An output could not be written (full or read-only disk, permissions, a name too long...): one line, exit 2.

    Also an ``OSError`` carrying the original ``errno``, so code that catches ``OSError`` still does.
    """


class OutputWarning(UserWarning):
    """An optional output (the load cache) could not be written and was skipped; the CLI prints it as one line."""


def os_reason(exc: OSError) -> str:
    """``No space left on device (ENOSPC)``: the system's reason for ``exc`` with its errno name."""
    code = exc.errno if isinstance(exc.errno, int) else None
    reason = exc.strerror or str(exc) or type(exc).__name__
    name = errno.errorcode.get(code, "") if code is not None else ""
    return f"{reason} ({name})" if name else reason


def write_error(path: str | os.PathLike, exc: OSError, what: str = "the file", option: str = "--out") -> WriteError:
    """The one-line :class:`WriteError` for ``exc`` raised while writing ``what`` at the user's ``path``.

    Names ``path`` (never the temporary file the error may carry), the system's reason with its errno name
    (``No space left on device (ENOSPC)``) and what to do, in terms of the option that named the path.
    """
    if isinstance(exc, WriteError):  # already one line naming the user's path
        return exc
    hint = _ADVICE.get(exc.errno, "choose another {option}").format(option=option)
    err = WriteError(f"cannot write {what}: {os_reason(exc)}; {hint}", path=os.fspath(path))
    err.errno = exc.errno
    return err


@contextlib.contextmanager
def replaced_atomically(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block succeeds, rename it onto ``path``.

    The one way a file is replaced whole (a reader sees the old file or the new one, never a part). On any
    exception the temporary file is removed, ``path`` is left untouched and the exception passes on
    (an ``OSError`` as the system raised it: :func:`atomic_path` turns it into a :class:`WriteError`).
    """
    path = Path(path)
    tmp_path = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".imbalance-", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode a plain open() would
        yield tmp_path
        os.replace(tmp_path, path)
        tmp_path = None
    finally:
        if tmp_path is not None:
            with contextlib.suppress(OSError):
                tmp_path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, what: str = "the file", option: str = "--out") -> Iterator[Path]:
    """:func:`replaced_atomically`, with an ``OSError`` (from the caller's writing or the rename) turned into a
    :class:`WriteError` naming ``path``."""
    try:
        with replaced_atomically(path) as tmp:
            yield tmp
    except OSError as e:
        raise write_error(path, e, what, option) from None


class _ErrorRecorder:
    """A binary file whose ``write`` remembers the ``OSError`` it raised (a library may replace it by its own error)."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        """Write ``data`` to the file, remembering a failure."""
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def __getattr__(self, name):
        return getattr(self.f, name)


def write_via(
    path: str | os.PathLike, write: Callable[[Any], None], what: str = "the file", option: str = "--out"
) -> Path:
    """Write ``path`` atomically through ``write(binary file)`` (e.g. ``torch.save``), flushed and fsync'ed.

    A library that turns the system's error into its own (``torch.save`` raises a ``RuntimeError``
    about an "unexpected pos" on a full disk) still gives the one-line :class:`WriteError` naming ``path``.
    """
    with atomic_path(path, what, option) as tmp, open(tmp, "wb") as f:
        rec = _ErrorRecorder(f)
        try:
            write(rec)
        except OSError:
            raise
        except Exception:
            if rec.error is not None:
                raise rec.error from None
            raise
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def make_dirs(path: str | os.PathLike, what: str = "the output folder", option: str = "--out") -> Path:
    """Create the folder ``path`` (and its parents) and check that a file can be created in it.

    An existing file at ``path`` or at one of its parents, and any ``OSError`` (read-only or full
    file system, permissions, a name too long), is one :class:`WriteError` naming ``path``: call it
    before any work, so a run never computes what it cannot write.
    """
    path = Path(path)
    for p in (path, *path.parents):
        if os.path.lexists(p):
            if not p.is_dir():
                where = "it is an existing file" if p == path else f"{p} is a file"
                raise WriteError(f"{what} must be a folder, but {where}: choose another {option}", path=str(path))
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".imbalance-", suffix=".tmp", dir=path)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise write_error(path, e, what, option) from None
    return path


def append_text(path: str | os.PathLike, text: str, what: str = "the file", option: str = "--out") -> None:
    """Append UTF-8 ``text`` to ``path`` (created if missing); a failed append is undone where the file allows.

    Any ``OSError`` becomes a :class:`WriteError` naming ``path``; the file is cut back to its previous
    length (best effort: ``/dev/full`` and pipes cannot be cut), so a full disk leaves no half-written tail.
    """
    data = memoryview(text.encode("utf-8"))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as e:
        raise write_error(path, e, what, option) from None
    try:
        start = os.fstat(fd).st_size
        try:
            while data:
                data = data[os.write(fd, data) :]
        except OSError:
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    os.ftruncate(fd, start)
            raise
    except OSError as e:
        raise write_error(path, e, what, option) from None
    finally:
        os.close(fd)


def check_append_target(path: str | os.PathLike, what: str = "the file", option: str = "--out") -> None:
    """Refuse, before any work, a file that cannot be appended to: a folder, or one whose folder is missing."""
    p = Path(path)
    problem = (
        "it is a folder: name a file"
        if p.is_dir()
        else None
        if p.parent.is_dir()
        else f"its folder {p.parent} does not exist: create it"
    )
    if problem:
        raise WriteError(f"cannot write {what}: {problem} or choose another {option}", path=os.fspath(path))


class AppendFile:
    """A text file opened for appending (a log) whose write errors are one :class:`WriteError` naming it."""

    def __init__(self, path: str | os.PathLike, what: str = "the log", option: str = "--out"):
        self.path, self.what, self.option = path, what, option
        try:
            self.f = open(path, "a", encoding="utf-8")
        except OSError as e:
            raise write_error(path, e, what, option) from None

    def write(self, text: str) -> None:
        """Append ``text`` (buffered)."""
        self._call(self.f.write, text)

    def flush(self) -> None:
        """Push the buffered lines to the file."""
        self._call(self.f.flush)

    def _call(self, fn, *args):
        try:
            fn(*args)
        except OSError as e:
            raise write_error(self.path, e, self.what, self.option) from None

    def __enter__(self) -> "AppendFile":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._call(self.f.close)
        else:  # the first error is the one to report
            with contextlib.suppress(OSError):
                self.f.close()


def read_manifest(folder: str | os.PathLike) -> dict[str, str] | None:
    """The manifest of an output folder: ``{relative file name: kind of output}``, or None when there is none.

    Names are plain (``stats.json``) or one folder deep (``train/stats.json``). A manifest that is not
    a small regular JSON file of that shape raises :class:`InputError` naming it (never guessed at:
    it decides which files a run may replace).
    """
    path = Path(folder) / MANIFEST
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise InputError(f"cannot read the output manifest: {e.strerror}", path=str(path)) from None
    problem = None
    if not stat.S_ISREG(st.st_mode) or st.st_size > _MANIFEST_MAX_BYTES:
        problem = "not a regular file of at most 4 MiB"
    else:
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError) as e:
            doc, problem = None, f"unreadable ({e})"
        files = doc.get("files") if isinstance(doc, dict) else None
        if problem is None and (not isinstance(files, dict) or doc.get("schema") != MANIFEST_SCHEMA):
            problem = f'not {{"schema": "{MANIFEST_SCHEMA}", "files": {{...}}}}'
        elif problem is None:
            bad = [k for k, v in files.items() if not (isinstance(v, str) and v and _plain_rel(k))]
            if bad:
                problem = f"bad entry {bad[0]!r}"
    if problem:
        raise InputError(
            f"not a valid output manifest ({problem}): it decides which files a run may replace; "
            "repair or remove it only if the folder holds nothing of yours",
            path=str(path),
        )
    return dict(files)


def _plain_rel(name: Any) -> bool:
    """A file name, or ``folder/name``: no empty part, no ``.``/``..``, no backslash or NUL."""
    if not isinstance(name, str):
        return False
    parts = name.split("/")
    return 1 <= len(parts) <= 2 and all(p and p not in (".", "..") and "\\" not in p and "\0" not in p for p in parts)


def manifest_bytes(files: dict[str, str]) -> bytes:
    """The manifest file's content for ``{relative file name: kind}``."""
    doc = {"schema": MANIFEST_SCHEMA, "files": dict(sorted(files.items()))}
    return (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def claim_files(
    folder: str | os.PathLike,
    kind: str,
    names: Iterable[str],
    legacy: Iterable[str] = (),
    markers: Iterable[str] | None = None,
    option: str = "--out",
    record: bool = True,
) -> None:
    """Record in ``folder``'s manifest that this tool writes ``names`` there, refusing to take over a file of yours.

    For folders written file by file (``train``, ``bench``). A file with one of ``names`` that the manifest
    does not list is the user's: refused with one line (nothing is overwritten). A folder from an earlier
    version (no manifest) is taken over only when it holds one of ``markers`` (default ``names[0]``: what
    every such run writes first) and every entry in it matches ``names`` or the glob patterns ``legacy``
    (what such a run left there). The manifest itself is replaced atomically; with ``record=False`` only the
    refusals are checked and nothing is written (a run checks early, and records just before its first write).
    """
    import fnmatch

    folder, names = Path(folder), list(names)
    markers = list(names[:1] if markers is None else markers)
    manifest = read_manifest(folder)
    taken = [n for n in names if os.path.lexists(folder / n) and (manifest is None or n not in manifest)]
    if taken and manifest is None:
        ours = (*names, *legacy)
        foreign = sorted(e for e in os.listdir(folder) if not any(fnmatch.fnmatchcase(e, p) for p in ours))
        marked = any(os.path.lexists(folder / m) for m in markers)
        if not foreign and marked:
            taken = []
        else:
            why = f"'{foreign[0]}', which it does not" if foreign else f"no '{markers[0]}', which it always does"
            raise InputError(
                f"holds '{taken[0]}', which {kind} writes, and {why}, but no {MANIFEST} of an earlier "
                f"run: move your files or choose another {option}",
                path=str(folder),
            )
    if taken:
        raise InputError(
            f"holds '{taken[0]}', which {kind} writes but no earlier run wrote (not in {MANIFEST}): "
            f"move it or choose another {option}",
            path=str(folder),
        )
    files = dict(manifest or {})
    if not record or all(files.get(n) == kind for n in names):
        return
    files.update(dict.fromkeys(names, kind))
    write_bytes(folder / MANIFEST, manifest_bytes(files), what="the output manifest", option=option)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_fsync(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a new file ``path`` (not atomically), flushed and fsync'ed to disk."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def fsync_file(path: str | os.PathLike) -> None:
    """Flush an already written file to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes, what: str = "the file", option: str = "--out") -> Path:
    """Write ``data`` to ``path`` atomically and return the path (a :class:`WriteError` on failure)."""
    with atomic_path(path, what, option) as tmp:
        write_bytes_fsync(tmp, data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and paths into plain JSON-compatible Python."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        obj = float(obj)
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None  # JSON has no NaN/inf
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def dumps_json(obj: Any, indent: bool = True) -> str:
    """Serialise ``obj`` (after :func:`to_jsonable`) to a JSON string."""
    return json.dumps(to_jsonable(obj), indent=2 if indent else None, ensure_ascii=False) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return write_text(path, dumps_json(obj))


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically, then close it (if pyplot made it).

    Kept for the training plots; report directories go through
    :func:`imbalance_cli.report.writer.write_report`. Imports no matplotlib itself.
    """
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)
    return Path(path)
