"""The one writer of report directories: all or nothing.

Every renderer builds its files in memory (``{file name: bytes or str}``) and hands them to
:func:`write_report`, which

1. writes them into a fresh hidden sibling directory ``.<out>.imbalance-tmp-<pid>-<random>``
   (each file flushed and fsync'ed);
2. carries over, as hard links, every entry of an existing ``<out>`` that is *not* the report's
   own (the user's files: a README, a script), so nothing of the user's is lost or moved;
3. swaps the new directory into place with one atomic rename (``renameat2(RENAME_EXCHANGE)`` on
   Linux; elsewhere two renames, the old directory kept aside as ``.<out>.imbalance-old-...``
   until the new one is in place and restored by the next run if a kill fell in between);
4. removes the previous report directory.

A kill at any moment therefore leaves either the previous complete report or the new complete
one under ``<out>``, never a mix. Temporary or set-aside directories of a killed run (their
process no longer alive) are removed, or restored, by the next run that writes a report next to
them. The report's own files in an existing directory are those its renderer names
(``own`` glob patterns) plus stray ``.*.tmp`` files of older versions; they are replaced as a
whole, so a file the previous run wrote and this one does not (an anchor figure after
``--anchors none``) does not survive. An existing entry that is a directory and not the
report's own is refused (the report cannot carry a folder over atomically): use a dedicated
output directory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fnmatch
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Callable, Iterable, Mapping, Union

from imbalance_cli.errors import InputError
from imbalance_cli.fileio import fsync_file, write_bytes_fsync

#: A file's content: bytes, text (written as UTF-8), or a function that writes the file at the path it is given.
FileContent = Union[bytes, str, Callable[[Path], None]]

_TMP_TAG = "imbalance-tmp"
_OLD_TAG = "imbalance-old"
#: Temporary files of the per-file atomic writes of earlier versions (``.<name>.<random>.tmp``).
_STRAY_TMP = ".*.tmp"


def _tmp_name(out: Path, tag: str) -> str:
    return f".{out.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}"


def _pid_of(name: str, out: Path, tag: str) -> int | None:
    prefix = f".{out.name}.{tag}-"
    if not name.startswith(prefix):
        return None
    pid = name[len(prefix):].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def clean_stale(out: str | os.PathLike) -> list[Path]:
    """Remove temporary directories a killed run left beside ``out``; restore a set-aside report.

    A directory counts as stale when the process id in its name is no longer alive. When
    ``out`` is missing and a stale set-aside copy (``.<out>.imbalance-old-*``) exists, the kill
    fell between the two renames of the fallback swap: that copy is the previous complete report
    and is renamed back. Returns the paths removed or restored.
    """
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        return []
    done = []
    for entry in sorted(parent.iterdir()):
        for tag in (_OLD_TAG, _TMP_TAG):
            pid = _pid_of(entry.name, out, tag)
            if pid is None or _alive(pid):
                continue
            if tag == _OLD_TAG and not os.path.lexists(out):
                os.rename(entry, out)
            else:
                _remove(entry)
            done.append(entry)
    return done


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux ``renameat2(RENAME_EXCHANGE)``; False if unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), os.fspath(a))


def _is_own(name: str, own: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pat) for pat in own) or fnmatch.fnmatchcase(name, _STRAY_TMP)


def _carry_over(old: Path, new: Path, names: set[str], own: tuple[str, ...]) -> None:
    """Hard-link the entries of ``old`` that are not the report's own into ``new``."""
    for entry in old.iterdir():
        if entry.name in names or _is_own(entry.name, own):
            continue
        st = entry.lstat()
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(entry), new / entry.name)
        elif stat.S_ISDIR(st.st_mode):
            raise InputError(f"--out holds a folder '{entry.name}' that this report does not write; "
                             "use a dedicated output directory", path=str(old))
        else:
            try:
                os.link(entry, new / entry.name, follow_symlinks=False)
            except OSError:
                shutil.copy2(entry, new / entry.name, follow_symlinks=False)


def check_out_dir(out_dir: str | os.PathLike) -> None:
    """Raise :class:`InputError` when ``out_dir`` exists and is not a directory (cheap; call before rendering)."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError("--out must be a directory, not an existing file", path=str(out_dir))


def write_report(out_dir: str | os.PathLike, files: Mapping[str, FileContent], own: Iterable[str] = ()) -> list[Path]:
    """Write ``files`` as the report directory ``out_dir``, all or nothing; return the final paths.

    ``files`` maps file names to their content; a name may hold one folder level
    (``train/stats.json``: a per-split sub-report) whose folder is then the report's own (``str`` is written as UTF-8,
    a callable is given the path to write), in the order returned. ``own`` lists glob patterns of
    every file name this kind of report may write (e.g. ``fig*.png``), so files an earlier run
    wrote and this one does not are dropped instead of kept as the user's. Raises :class:`InputError` when ``out_dir`` is an
    existing file or cannot be created; on any error the previous directory is left as it was
    and no temporary entry remains.
    """
    out = Path(os.path.abspath(out_dir))
    cwd = Path(os.getcwd())
    if out == cwd or out in cwd.parents:
        raise InputError("--out must not be the current directory or one of its parents (the report directory is "
                         "replaced as a whole): name a subdirectory", path=str(out_dir))
    for name in files:
        parts = name.split("/")
        if len(parts) > 2 or any(not p or os.sep in p or p in (".", "..") for p in parts):
            raise ValueError(f"report file names must be plain names or folder/name, got {name!r}")
    check_out_dir(out)
    if out.is_symlink():
        out = out.resolve()  # swap the directory the link points to; the link stays
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:
        raise InputError(f"cannot create output directory: {e.strerror or e}", path=str(out)) from None
    clean_stale(out)
    own = tuple(own)
    tmp = parent / _tmp_name(out, _TMP_TAG)
    tmp.mkdir()
    try:
        for name, content in files.items():
            if "/" in name:
                (tmp / name).parent.mkdir(exist_ok=True)
            if callable(content):
                content(tmp / name)
                fsync_file(tmp / name)
            else:
                data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
                write_bytes_fsync(tmp / name, data)
        if out.is_dir():
            _carry_over(out, tmp, {name.split("/")[0] for name in files}, own)
            if not _exchange(tmp, out):
                aside = parent / _tmp_name(out, _OLD_TAG)
                os.rename(out, aside)
                try:
                    os.rename(tmp, out)
                except BaseException:
                    os.rename(aside, out)
                    raise
                tmp = aside
            # tmp now holds the previous report
        else:
            os.rename(tmp, out)
            tmp = None
    finally:
        if tmp is not None:
            _remove(tmp)
    _fsync_dir(parent)
    return [Path(out_dir) / name for name in files]  # the caller's spelling: relative stays relative


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
