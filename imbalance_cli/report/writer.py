"""The one writer of report directories: all or nothing, and never a file of the user's lost.

Every renderer builds its files in memory (``{file name: bytes or str}``) and hands them to
:func:`write_report`, which

1. resolves ``<out>`` (symbolic links followed) and refuses the working directory, its parents,
   the home directory and ``/`` (:func:`resolve_out`);
2. reads the directory's manifest (``.imbalance-manifest.json``: which files this tool wrote there,
   by kind of report) and decides which entries are the report's own (:func:`_plan`): only the files
   the manifest lists for this kind of report, or that this run writes again, are replaced or
   removed; every other entry is kept, whatever its name. A non-empty directory without a manifest
   is refused unless it holds only files this kind of report writes (a report of an earlier
   version): then only the files this run writes are replaced and the others are kept;
3. writes the files and the new manifest into a fresh hidden sibling directory with a short
   fixed-length name (``.imbalance-tmp-<hash of the name>-<pid>-<random>``, so any valid ``<out>``
   name works), each file flushed and fsync'ed;
4. carries over, as hard links, every entry of the existing ``<out>`` that is not the report's own;
5. swaps the new directory into place with one atomic rename (``renameat2(RENAME_EXCHANGE)`` on
   Linux; elsewhere two renames, the old directory kept aside as ``.imbalance-old-...`` until the new
   one is in place and restored by the next run if a kill fell in between);
6. removes the previous report directory.

A kill at any moment therefore leaves either the previous complete report or the new complete
one under ``<out>``, never a mix. Temporary or set-aside directories of a killed run (their
process no longer alive) are removed, or restored, by the next run that writes a report next to
them. Any ``OSError`` on the way (read-only or full disk, permissions, a name too long, a mount
point) is one :class:`~imbalance_cli.fileio.WriteError` naming the user's path, with the previous
report intact and no temporary entry left.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fnmatch
import hashlib
import os
import re
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Union

from imbalance_cli.errors import InputError
from imbalance_cli.fileio import MANIFEST, fsync_file, manifest_bytes, read_manifest, write_bytes_fsync, write_error

#: A file's content: bytes, text (written as UTF-8), or a function that writes the file at the path it is given.
FileContent = Union[bytes, str, Callable[[Path], None]]

_TMP_TAG = "imbalance-tmp"
_OLD_TAG = "imbalance-old"
_NAME_RE = re.compile(r"\.(imbalance-tmp|imbalance-old)-([0-9a-f]{12})-([0-9]+)-[0-9a-f]{8}")
#: Temporary files of the per-file atomic writes of earlier versions (``.<name>.<8 random>.tmp``).
_STRAY_TMP_RE = re.compile(r"\.(.+)\.[A-Za-z0-9_]{8}\.tmp")
#: Manifest kind of files found in a report directory of an earlier version (no manifest): replaced when a
#: run writes the same name, never removed otherwise.
LEGACY = "legacy"


def _name_hash(out: Path) -> str:
    return hashlib.blake2b(os.fsencode(out.name), digest_size=6).hexdigest()


def _tmp_name(out: Path, tag: str) -> str:
    """``.<tag>-<12 hex of out's name>-<pid>-<8 hex>``: at most 50 bytes, whatever the length of ``out``'s name."""
    return f".{tag}-{_name_hash(out)}-{os.getpid()}-{secrets.token_hex(4)}"


def _stale_of(name: str, out: Path) -> tuple[str, int] | None:
    """``(tag, pid)`` when ``name`` is a temporary entry of a report written to ``out`` (current or older naming)."""
    m = _NAME_RE.fullmatch(name)
    if m:
        return (m.group(1), int(m.group(3))) if m.group(2) == _name_hash(out) else None
    for tag in (_TMP_TAG, _OLD_TAG):  # before the fixed-length names: .<out>.<tag>-<pid>-<random>
        prefix = f".{out.name}.{tag}-"
        if name.startswith(prefix):
            pid = name[len(prefix) :].split("-", 1)[0]
            return (tag, int(pid)) if pid.isdigit() else None
    return None


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
        with contextlib.suppress(OSError):
            path.unlink()


def clean_stale(out: str | os.PathLike) -> list[Path]:
    """Remove temporary directories a killed run left beside ``out``; restore a set-aside report.

    A directory counts as stale when the process id in its name is no longer alive. When
    ``out`` is missing and a stale set-aside copy (``.imbalance-old-*`` of ``out``) exists, the kill
    fell between the two renames of the fallback swap: that copy is the previous complete report
    and is renamed back (a failure to do so raises, so no new report ever replaces it unseen).
    Returns the paths removed or restored.
    """
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return []
    done = []
    for name in names:
        found = _stale_of(name, out)
        if found is None or _alive(found[1]):
            continue
        entry = parent / name
        if found[0] == _OLD_TAG and not os.path.lexists(out):
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


def _realpath(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


def resolve_out(out_dir: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """The real path of ``out_dir`` (symbolic links followed), refused when replacing it
    could touch what is not a report.

    Refused with one line: the working directory or one of its parents, the home directory, ``/``,
    and an input (or a folder holding one) of ``inputs``.
    """
    real = _realpath(out_dir)
    shown = f" (it resolves to {real})" if Path(os.path.abspath(out_dir)) != real else ""
    cwd = _realpath(os.getcwd())
    try:
        home = _realpath(Path.home())
    except (RuntimeError, KeyError):
        home = None
    if real.parent == real:
        what = "the root directory"
    elif real == home:
        what = "the home directory"
    elif real == cwd or real in cwd.parents:
        what = "the working directory or one of its parents"
    else:
        what = next(
            (
                f"the input {p} or a folder holding it"
                for p in inputs
                if real == _realpath(p) or real in _realpath(p).parents
            ),
            None,
        )
    if what is not None:
        raise InputError(
            f"--out must not be {what}{shown}: the report directory is swapped in whole; name a new subdirectory",
            path=os.fspath(out_dir),
        )
    return real


def check_out_dir(
    out_dir: str | os.PathLike, own: Iterable[str] | None = None, inputs: Iterable[str | os.PathLike] = ()
) -> Path:
    """Check ``--out`` before any work; return its real path.

    Refuses (:class:`InputError`, one line) what :func:`resolve_out` refuses, an existing file, a path
    below a file and, given the report's ``own`` file patterns, an existing directory whose files this
    tool cannot tell from the user's (no manifest and a file no such report writes) or whose
    manifest is damaged. The write itself checks all of it again.
    """
    real = resolve_out(out_dir, inputs)
    for p in (real, *real.parents):
        if os.path.lexists(p):
            if not p.is_dir():
                why = "not an existing file" if p == real else f"and cannot be made below the file {p}"
                raise InputError(f"--out must be a directory, {why}", path=os.fspath(out_dir))
            break
    if own is not None and real.is_dir():
        own = tuple(own)
        if read_manifest(real) is None:
            entries = [rel for rel, is_dir in _scan(real, depth=1) if not is_dir]  # folders: checked when written
            _refuse_foreign(entries, own, set(), out_dir, kind=None)
    return real


def _scan(out: Path, depth: int = 2) -> list[tuple[str, bool]]:
    """``(relative name, is a folder)`` of every entry of ``out`` but the manifest, and one level inside its folders."""
    found = []
    with os.scandir(out) as it:
        for e in it:
            if e.name == MANIFEST:
                continue
            is_dir = e.is_dir(follow_symlinks=False)
            found.append((e.name, is_dir))
            if is_dir and depth > 1:
                with os.scandir(e.path) as inner:
                    found += [(f"{e.name}/{c.name}", c.is_dir(follow_symlinks=False)) for c in inner]
    return sorted(found)


def _matches(rel: str, own: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(rel, pat) for pat in own)


def _stray_tmp(rel: str, own: tuple[str, ...]) -> bool:
    """A temporary file of an earlier version's per-file atomic write of one of the report's files."""
    head, _, name = rel.rpartition("/")
    m = _STRAY_TMP_RE.fullmatch(name)
    return bool(m) and _matches(f"{head}/{m.group(1)}" if head else m.group(1), own)


def _refuse_foreign(entries: list[str], own: tuple[str, ...], new: set[str], out_dir, kind: str | None) -> None:
    """Refuse a directory without manifest holding an entry that is not a file this kind of report writes."""
    foreign = [rel for rel in entries if rel not in new and not _matches(rel, own) and not _stray_tmp(rel, own)]
    if foreign:
        what = f"a {kind} report" if kind else "this report"
        raise InputError(
            f"is not empty and has no {MANIFEST} (the list of files this tool wrote there), so its "
            f"files cannot be told from yours: it holds '{foreign[0]}', which {what} does not write; "
            "name a new or empty directory (a report directory of an earlier version holding only "
            "report files is taken over)",
            path=os.fspath(out_dir),
        )


@dataclass
class _Plan:
    carry: list[str]  # entries of the old directory kept (hard-linked into the new one)
    drop: set[str]  # entries of the old directory that are the report's own: replaced or removed
    manifest: dict[str, str]  # the new directory's manifest


def _plan(out: Path, files: Mapping[str, FileContent], own: tuple[str, ...], kind: str, out_dir) -> _Plan:
    """Decide, from the existing directory's manifest, which of its entries this run replaces and which it keeps."""
    new = set(files)
    new_dirs = {n.split("/")[0] for n in new if "/" in n}
    entries = _scan(out)
    owned = read_manifest(out)
    dirs = {rel for rel, is_dir in entries if is_dir}
    if owned is None:  # a report of an earlier version, or refused
        own_dirs = own + tuple(sorted(new_dirs))
        _refuse_foreign([rel for rel in dirs if "/" not in rel], own_dirs, new, out_dir, kind)
        _refuse_foreign([rel for rel, is_dir in entries if not is_dir], own, new, out_dir, kind)
        owned = {rel: LEGACY for rel, is_dir in entries if not is_dir}
        drop = {rel for rel in owned if rel in new or _stray_tmp(rel, own)}
    else:
        drop = {rel for rel, k in owned.items() if k == kind or rel in new}
    known = set(owned) | new
    for rel in sorted(dirs):
        if "/" in rel or rel in new or not any(p.startswith(rel + "/") for p in known):
            raise InputError(
                f"holds a folder '{rel}' that this report does not write (the report directory is "
                "swapped in whole and carries files, not folders): move it or use a dedicated "
                "directory",
                path=os.fspath(out_dir),
            )
    carry = [rel for rel, is_dir in entries if not is_dir and rel not in drop]
    clash = [rel for rel in carry if rel in new or rel in new_dirs]
    if clash:
        raise InputError(
            f"holds '{clash[0]}', which this {kind} report writes but no earlier run wrote there (it is "
            f"not in {MANIFEST}): move it or choose another --out",
            path=os.fspath(out_dir),
        )
    kept = {rel: owned[rel] for rel in carry if rel in owned}
    return _Plan(carry, drop, {**kept, **dict.fromkeys(files, kind)})


def _link(src: Path, dst: Path) -> None:
    """Put ``src`` at ``dst`` without copying data where possible: a hard link (a symbolic link is recreated)."""
    st = os.lstat(src)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
        return
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:  # no hard links here (or not allowed to this user): a copy
        shutil.copy2(src, dst, follow_symlinks=False)


def _rescue(old: Path, out: Path, drop: set[str]) -> None:
    """Move into ``out`` the user's entries that appeared in the previous directory while this run was writing."""
    try:
        entries = _scan(old)
    except OSError:
        return
    for rel, is_dir in entries:
        if not is_dir and rel not in drop and not os.path.lexists(out / rel):
            with contextlib.suppress(OSError):
                os.rename(old / rel, out / rel)


def write_report(
    out_dir: str | os.PathLike, files: Mapping[str, FileContent], own: Iterable[str] = (), kind: str = "report"
) -> list[Path]:
    """Write ``files`` as the report directory ``out_dir``, all or nothing; return the final paths.

    ``files`` maps file names to their content; a name may hold one folder level
    (``train/stats.json``: a per-split sub-report; ``str`` is written as UTF-8, a callable is given
    the path to write), in the order returned. ``kind`` names the report in the directory's manifest
    (``stats``, ``margins``...): the files the manifest lists for ``kind`` are replaced or removed,
    the others (another kind's, the user's) are kept. ``own`` lists glob patterns of every file name
    this kind of report may write (e.g. ``fig*.png``); they only decide whether a directory without a
    manifest is a report of an earlier version. Raises :class:`InputError` when ``out_dir`` is refused
    (see :func:`check_out_dir`), and :class:`~imbalance_cli.fileio.WriteError` on any ``OSError``; on
    any error the previous directory is left as it was and no temporary entry remains.
    """
    for name in files:
        parts = name.split("/")
        if len(parts) > 2 or name == MANIFEST or any(not p or os.sep in p or p in (".", "..") for p in parts):
            raise ValueError(f"report file names must be plain names or folder/name, got {name!r}")
    out = check_out_dir(out_dir)
    try:
        _write(out, files, tuple(own), kind, out_dir)
    except OSError as e:
        raise write_error(out_dir, e, "the report") from None
    return [Path(out_dir) / name for name in files]  # the caller's spelling: relative stays relative


def _write(out: Path, files: Mapping[str, FileContent], own: tuple[str, ...], kind: str, out_dir) -> None:
    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out)
    plan = _plan(out, files, own, kind, out_dir) if out.is_dir() else _Plan([], set(), dict.fromkeys(files, kind))
    tmp = parent / _tmp_name(out, _TMP_TAG)
    try:
        tmp.mkdir()
    except OSError as e:
        raise write_error(
            out_dir, e, f"the report (it is built in a hidden folder in {parent}, then swapped in)"
        ) from None
    try:
        _fill(tmp, files, plan, out)
        if out.is_dir():
            with contextlib.suppress(OSError):
                os.chmod(tmp, stat.S_IMODE(os.stat(out).st_mode))
            if not _exchange(tmp, out):
                aside = parent / _tmp_name(out, _OLD_TAG)
                os.rename(out, aside)
                try:
                    os.rename(tmp, out)
                except BaseException:
                    os.rename(aside, out)
                    raise
                tmp = aside
            _rescue(tmp, out, plan.drop)  # tmp now holds the previous report
        else:
            os.rename(tmp, out)
            tmp = None
    finally:
        if tmp is not None:
            _remove(tmp)
    _fsync_dir(parent)


def _fill(tmp: Path, files: Mapping[str, FileContent], plan: _Plan, out: Path) -> None:
    """Write the new files, the kept entries (hard links) and the manifest into the new directory ``tmp``."""
    for name, content in files.items():
        if "/" in name:
            (tmp / name).parent.mkdir(exist_ok=True)
        if callable(content):
            content(tmp / name)
            fsync_file(tmp / name)
        else:
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            write_bytes_fsync(tmp / name, data)
    for rel in plan.carry:
        if "/" in rel:
            (tmp / rel).parent.mkdir(exist_ok=True)
        _link(out / rel, tmp / rel)
    write_bytes_fsync(tmp / MANIFEST, manifest_bytes(plan.manifest))


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
