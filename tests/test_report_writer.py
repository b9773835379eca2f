"""Report directories (imbalance_cli.report.writer): swapped in whole, never mixed, never a file of the user's lost.

Ownership is by record: the manifest lists what the tool wrote; every other file is kept whatever its name (the
issue's report-like names: anchors_todo.csv, fig_mine.png, figure_draft.png, scale_plan.csv). Every OSError while
writing is one WriteError naming the user's path, the previous report intact and no temporary entry left.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imbalance_cli.errors import InputError
from imbalance_cli.fileio import MANIFEST, WriteError
from imbalance_cli.report import writer
from imbalance_cli.report.writer import check_out_dir, clean_stale, write_report

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "data" / "coco-mini_instances_val2017.json.gz"
STATS_OWN = ("stats.json", "classes.csv", "scale_*.csv", "anchors_*.csv", "fig*.png")
#: The issue's user files: names that look like report files, which a name-pattern writer deleted.
USER_FILES = {
    "anchors_todo.csv": b"todo\n",
    "fig_mine.png": b"my png",
    "figure_draft.png": b"draft",
    "scale_plan.csv": b"plan\n",
    "README.md": b"mine",
    ".hidden": b"h",
}
#: Every errno the issue lists for a write.
ERRNOS = ("EACCES", "EROFS", "ENOSPC", "EDQUOT", "ENAMETOOLONG", "EXDEV", "EIO")


def _tree(d: Path) -> dict:
    """Every file under ``d`` (one folder level), manifest included: ``{relative name: bytes}``."""
    out = {}
    for p in sorted(d.iterdir()):
        if p.is_dir():
            out.update({f"{p.name}/{c.name}": c.read_bytes() for c in sorted(p.iterdir())})
        else:
            out[p.name] = p.read_bytes()
    return out


def _files(d: Path) -> dict:
    return {k: v for k, v in _tree(d).items() if k != MANIFEST}


def _manifest(d: Path) -> dict:
    doc = json.loads((d / MANIFEST).read_text())
    assert doc["schema"] == "imbalance.manifest/1"
    return doc["files"]


def _temp_entries(parent: Path) -> list[str]:
    return sorted(
        p.name
        for p in parent.iterdir()
        if "imbalance-tmp" in p.name or "imbalance-old" in p.name or p.name.endswith(".tmp")
    )


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


OLD = {"stats.json": b'{"old": 1}', "classes.csv": b"old\n", "fig4a_foreground_background.png": b"old png"}


def _old_report(out: Path) -> None:
    """A report directory as the tool writes it: with its manifest."""
    write_report(out, OLD, own=STATS_OWN, kind="stats")


def _legacy_report(out: Path) -> None:
    """A report directory of an earlier version: report files only, no manifest."""
    out.mkdir()
    for name, data in OLD.items():
        (out / name).write_bytes(data)


def _one_line(res) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


# --------------------------------------------------------------------------------------------------------------------
# ownership by record
# --------------------------------------------------------------------------------------------------------------------
def test_fresh_directory_gets_a_manifest_of_exactly_its_files(tmp_path):
    out = tmp_path / "a" / "report"
    paths = write_report(
        out, {"stats.json": '{"x": 1}\n', "b.bin": b"\x00\x01", "c.txt": lambda p: p.write_text("c")}, kind="stats"
    )
    assert paths == [out / "stats.json", out / "b.bin", out / "c.txt"]
    assert _files(out) == {"b.bin": b"\x00\x01", "c.txt": b"c", "stats.json": b'{"x": 1}\n'}
    assert _manifest(out) == {"b.bin": "stats", "c.txt": "stats", "stats.json": "stats"}
    assert _temp_entries(out.parent) == []


def test_user_files_with_report_like_names_are_kept_byte_for_byte(tmp_path):
    out = tmp_path / "report"
    _old_report(out)
    for name, data in USER_FILES.items():
        (out / name).write_bytes(data)
    inodes = {name: (out / name).stat().st_ino for name in USER_FILES}
    # the next run writes fewer files: its own stale figure goes, every file of the user's stays, unchanged
    write_report(out, {"stats.json": "new", "classes.csv": "new"}, own=STATS_OWN, kind="stats")
    assert _files(out) == {**USER_FILES, "classes.csv": b"new", "stats.json": b"new"}
    assert {name: (out / name).stat().st_ino for name in USER_FILES} == inodes  # carried as hard links, not copies
    assert _manifest(out) == {"classes.csv": "stats", "stats.json": "stats"}
    assert _temp_entries(tmp_path) == []


def test_other_kinds_of_report_in_the_same_directory_are_kept(tmp_path):
    out = tmp_path / "report"
    write_report(out, {"stats.json": "s", "fig5a.png": "f"}, own=STATS_OWN, kind="stats")
    write_report(out, {"margins.json": "m", "margins.csv": "m"}, own=("margins.*",), kind="margins")
    assert _files(out) == {"fig5a.png": b"f", "margins.csv": b"m", "margins.json": b"m", "stats.json": b"s"}
    write_report(out, {"stats.json": "s2"}, own=STATS_OWN, kind="stats")  # drops its own figure only
    assert _files(out) == {"margins.csv": b"m", "margins.json": b"m", "stats.json": b"s2"}
    assert _manifest(out) == {"margins.csv": "margins", "margins.json": "margins", "stats.json": "stats"}


def test_a_file_of_yours_named_like_a_new_report_file_is_refused(tmp_path):
    out = tmp_path / "report"
    write_report(out, {"stats.json": "s"}, own=STATS_OWN, kind="stats")
    (out / "classes.csv").write_bytes(b"my classes")
    before = _tree(out)
    with pytest.raises(InputError, match="holds 'classes.csv', which this stats report writes but no earlier run"):
        write_report(out, {"stats.json": "s2", "classes.csv": "c"}, own=STATS_OWN, kind="stats")
    assert _tree(out) == before and _temp_entries(tmp_path) == []


def test_directory_without_manifest_refused_when_it_holds_other_files(tmp_path):
    out = tmp_path / "project"
    out.mkdir()
    (out / "notes.txt").write_bytes(b"mine")
    (out / "figure_draft.png").write_bytes(b"draft")
    for call in (
        lambda: check_out_dir(out, own=STATS_OWN),  # before any work (the CLI's check_out)
        lambda: write_report(out, {"stats.json": "x"}, own=STATS_OWN, kind="stats"),
    ):
        with pytest.raises(
            InputError, match=f"has no {MANIFEST}.*'notes.txt', which (a stats|this) report does not write"
        ):
            call()
    assert _tree(out) == {"figure_draft.png": b"draft", "notes.txt": b"mine"}
    assert _temp_entries(tmp_path) == []


def test_report_of_an_earlier_version_is_taken_over_keeping_what_it_does_not_rewrite(tmp_path):
    out = tmp_path / "report"
    _legacy_report(out)
    (out / ".classes.csv.k3j_x9a2.tmp").write_bytes(b"stray temporary file of an older version")
    check_out_dir(out, own=STATS_OWN)
    write_report(out, {"stats.json": "new", "classes.csv": "new"}, own=STATS_OWN, kind="stats")
    # rewritten names replaced; the figure (the earlier run's or the user's: no record says) kept; the stray gone
    assert _files(out) == {"classes.csv": b"new", "fig4a_foreground_background.png": b"old png", "stats.json": b"new"}
    assert _manifest(out) == {
        "classes.csv": "stats",
        "fig4a_foreground_background.png": "legacy",
        "stats.json": "stats",
    }
    write_report(out, {"stats.json": "n2"}, own=STATS_OWN, kind="stats")  # a legacy file is never removed...
    assert "fig4a_foreground_background.png" in _files(out)
    write_report(out, {"stats.json": "n3", "fig4a_foreground_background.png": b"png"}, own=STATS_OWN, kind="stats")
    assert _manifest(out)["fig4a_foreground_background.png"] == "stats"  # ...but replaced when written again
    empty = tmp_path / "empty"
    empty.mkdir()
    write_report(empty, {"stats.json": "x"}, own=STATS_OWN, kind="stats")
    assert _files(empty) == {"stats.json": b"x"}


def test_folders_of_yours_are_refused_and_split_folders_keep_your_files(tmp_path):
    out = tmp_path / "report"
    _old_report(out)
    (out / "data").mkdir()
    with pytest.raises(InputError, match="folder 'data'"):
        write_report(out, {"stats.json": "new"}, own=STATS_OWN, kind="stats")
    assert (out / "stats.json").read_bytes() == OLD["stats.json"] and _temp_entries(tmp_path) == []
    splits = tmp_path / "splits"
    write_report(splits, {"train/stats.json": "t", "val/stats.json": "v", "splits.json": "s"}, kind="splits")
    (splits / "train" / "notes.txt").write_bytes(b"mine")
    (splits / "val" / "sub").mkdir()
    with pytest.raises(InputError, match="folder 'val/sub'"):
        write_report(splits, {"train/stats.json": "t2", "splits.json": "s2"}, kind="splits")
    (splits / "val" / "sub").rmdir()
    write_report(splits, {"train/stats.json": "t2", "splits.json": "s2"}, kind="splits")  # the val split is gone
    assert _files(splits) == {"splits.json": b"s2", "train/notes.txt": b"mine", "train/stats.json": b"t2"}


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"schema": "imbalance.manifest/1", "files": {"../x": "stats"}}',
        b'{"schema": "other", "files": {}}',
        b'{"schema": "imbalance.manifest/1", "files": {"a": 3}}',
        b"[]",
    ],
)
def test_damaged_manifest_is_refused_naming_it(tmp_path, content):
    out = tmp_path / "report"
    _old_report(out)
    (out / MANIFEST).write_bytes(content)
    before = _tree(out)
    with pytest.raises(InputError, match=f"{MANIFEST}: not a valid output manifest"):
        write_report(out, {"stats.json": "new"}, own=STATS_OWN, kind="stats")
    assert _tree(out) == before and _temp_entries(tmp_path) == []


def test_manifest_that_is_a_symlink_is_refused(tmp_path):
    out = tmp_path / "report"
    _old_report(out)
    real = tmp_path / "elsewhere.json"
    os.replace(out / MANIFEST, real)
    os.symlink(real, out / MANIFEST)
    with pytest.raises(InputError, match="not a regular file"):
        write_report(out, {"stats.json": "new"}, own=STATS_OWN, kind="stats")


# --------------------------------------------------------------------------------------------------------------------
# --out resolved before any work
# --------------------------------------------------------------------------------------------------------------------
def test_working_directory_its_parents_home_root_and_input_parents_refused(tmp_path, monkeypatch):
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data" / "train.json").write_text("{}")
    (work / "figure_draft.png").write_bytes(b"draft")
    os.symlink(".", work / "here")
    os.symlink(work / "data", work / "data-link")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    for target in (".", "here", str(work), str(tmp_path), "here/../.."):
        with pytest.raises(InputError, match="working directory or one of its parents"):
            write_report(target, {"stats.json": "x"})
    with pytest.raises(InputError, match="home directory"):
        write_report(tmp_path / "home", {"stats.json": "x"})
    os.symlink("/", work / "root-link")
    for target in ("/", "root-link"):
        with pytest.raises(InputError, match="must not be the root directory"):
            write_report(target, {"stats.json": "x"})
    for target in ("data", "data-link", "data/train.json"):
        with pytest.raises(InputError, match="input data/train.json or a folder holding it"):
            check_out_dir(target, inputs=["data/train.json"])
    assert sorted(p.name for p in work.iterdir()) == ["data", "data-link", "figure_draft.png", "here", "root-link"]
    assert write_report("sub", {"a": "1"}) == [Path("sub") / "a"] and (work / "sub" / "a").read_text() == "1"


def test_out_file_and_path_below_a_file_refused(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(InputError, match="not an existing file"):
        write_report(target, {"a": "1"})
    with pytest.raises(InputError, match=f"cannot be made below the file {target}"):
        write_report(target / "sub", {"a": "1"})
    assert target.read_text() == "x"
    with pytest.raises(ValueError):
        write_report(tmp_path / "r", {"../escape": "1"})
    with pytest.raises(ValueError):
        write_report(tmp_path / "r", {MANIFEST: "{}"})


def test_cli_symlink_to_working_directory_refused_and_user_file_kept(tmp_path, monkeypatch):
    from imbalance_cli.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "figure_draft.png").write_bytes(b"draft")
    os.symlink(".", tmp_path / "here")
    res = CliRunner().invoke(app, ["stats", str(DATA), "-o", "here", "--anchors", "none", "-q"])
    assert res.exit_code == 2
    line = _one_line(res)
    assert line.startswith("error: here: --out must not be the working directory") and str(tmp_path) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure_draft.png", "here"]
    assert (tmp_path / "figure_draft.png").read_bytes() == b"draft"


@pytest.mark.slow
def test_cli_user_files_survive_reruns(tmp_path):
    from imbalance_cli.cli import app

    out = tmp_path / "rep"
    runner = CliRunner()
    res = runner.invoke(app, ["stats", str(DATA), "-o", str(out), "--anchors", "ssd300", "-q"])
    assert res.exit_code == 0, res.output
    assert (out / "fig4a_foreground_background.png").exists() and (out / "anchors_summary.csv").exists()
    for name, data in USER_FILES.items():
        (out / name).write_bytes(data)
    res = runner.invoke(app, ["stats", str(DATA), "-o", str(out), "--anchors", "none", "-q"])
    assert res.exit_code == 0, res.output
    files = _files(out)
    assert {name: files.get(name) for name in USER_FILES} == USER_FILES
    # the earlier run's anchor files are gone (the manifest listed them), nothing of the user's is
    assert not any(n.startswith(("anchors_summary", "fig4", "fig12", "fig14")) for n in files)
    assert set(_manifest(out)) == set(files) - set(USER_FILES)
    assert _temp_entries(tmp_path) == []


# --------------------------------------------------------------------------------------------------------------------
# write errors: one line naming the user's path, previous report intact, no temporary entry
# --------------------------------------------------------------------------------------------------------------------
def _failing_write(monkeypatch, code: int, after: int = 1):
    """Make the writer's one file-writing call fail with ``code`` after ``after`` successful files."""
    real, calls = writer.write_bytes_fsync, []

    def failing(path, data):
        calls.append(Path(path).name)
        if len(calls) > after:
            raise OSError(code, os.strerror(code), str(path))  # the temporary path, as the system gives it
        return real(path, data)

    monkeypatch.setattr(writer, "write_bytes_fsync", failing)
    return calls


@pytest.mark.parametrize("name", ERRNOS)
@pytest.mark.parametrize("existing", [True, False])
def test_every_write_errno_is_one_line_naming_the_out_path(tmp_path, monkeypatch, name, existing):
    code = getattr(errno, name)
    out = tmp_path / "report"
    if existing:
        _old_report(out)
    before = _tree(out) if existing else None
    _failing_write(monkeypatch, code)
    with pytest.raises(WriteError) as info:
        write_report(out, {"stats.json": "new", "classes.csv": "new"}, own=STATS_OWN, kind="stats")
    msg = str(info.value)
    assert msg.startswith(f"{out}: cannot write the report: {os.strerror(code)} ({name}); ") and "\n" not in msg
    assert "imbalance-tmp" not in msg and info.value.errno == code and isinstance(info.value, OSError)
    assert (_tree(out) == before) if existing else not out.exists()
    assert _temp_entries(tmp_path) == []


def test_errors_of_the_other_steps_are_one_line_too(tmp_path, monkeypatch):
    out = tmp_path / "report"
    _old_report(out)
    before = _tree(out)
    real_mkdir = Path.mkdir

    def no_temp_dir(self, *a, **k):  # the parent folder cannot take the hidden new copy (e.g. read-only)
        if "imbalance-tmp" in self.name:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", no_temp_dir)
    with pytest.raises(
        WriteError,
        match=rf"^{out}: cannot write the report \(it is built in a hidden folder in "
        rf"{tmp_path}, then swapped in\): Read-only file system \(EROFS\)",
    ):
        write_report(out, {"stats.json": "new"}, own=STATS_OWN, kind="stats")
    monkeypatch.setattr(Path, "mkdir", real_mkdir)

    def no_swap(a, b):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(a))

    monkeypatch.setattr(writer, "_exchange", no_swap)
    with pytest.raises(WriteError, match=r"Invalid cross-device link \(EXDEV\); it is on another file system"):
        write_report(out, {"stats.json": "new"}, own=STATS_OWN, kind="stats")
    monkeypatch.undo()
    (out / "mine.txt").write_bytes(b"mine")
    before = _tree(out)

    def no_link(*a, **k):
        raise OSError(errno.EMLINK, os.strerror(errno.EMLINK))

    def no_copy(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writer.os, "link", no_link)
    monkeypatch.setattr(writer.shutil, "copy2", no_copy)
    with pytest.raises(WriteError, match=r"No space left on device \(ENOSPC\)"):
        write_report(out, {"stats.json": "new"}, own=STATS_OWN, kind="stats")
    assert _tree(out) == before and _temp_entries(tmp_path) == []


def test_a_folder_that_cannot_take_a_report_is_named_not_the_temporary():
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc on this system")
    with pytest.raises(WriteError) as info:
        write_report("/proc/imbalance-out", {"stats.json": "x"})
    assert str(info.value).startswith(
        "/proc/imbalance-out: cannot write the report (it is built in a hidden folder in /proc, then swapped in): "
    ) and "imbalance-tmp" not in str(info.value)


def test_hard_links_refused_fall_back_to_copies(tmp_path, monkeypatch):
    out = tmp_path / "report"
    _old_report(out)
    (out / "mine.txt").write_bytes(b"mine")

    def no_link(*a, **k):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(writer.os, "link", no_link)
    write_report(out, {"stats.json": "new"}, own=STATS_OWN, kind="stats")
    assert _files(out) == {"mine.txt": b"mine", "stats.json": b"new"}


@pytest.mark.parametrize("length", [250, 255])
def test_longest_valid_directory_names_work(tmp_path, length):
    out = tmp_path / ("d" * length)
    write_report(out, {"stats.json": "x"}, kind="stats")
    write_report(out, {"stats.json": "y"}, kind="stats")  # the swap with an existing report too
    assert _files(out) == {"stats.json": b"y"} and _temp_entries(tmp_path) == []
    assert len(writer._tmp_name(out, writer._OLD_TAG)) <= 50


def test_a_name_too_long_for_the_file_system_is_one_line(tmp_path):
    out = tmp_path / ("d" * 256)
    with pytest.raises(WriteError, match=r"File name too long \(ENAMETOOLONG\); .*choose a shorter --out"):
        write_report(out, {"stats.json": "x"})
    assert _temp_entries(tmp_path) == []


@pytest.mark.parametrize(
    "command", [["stats", str(DATA), "--anchors", "none"], ["check", str(DATA)], ["margins", str(DATA), "--one-stage"]]
)
@pytest.mark.slow
def test_cli_250_character_out_names_work(tmp_path, monkeypatch, command):
    from imbalance_cli.cli import app

    monkeypatch.chdir(tmp_path)
    name = "r" * 250
    res = CliRunner().invoke(app, [*command, "-o", name, "-q"])
    assert res.exit_code in (0, 1) and "Traceback" not in res.output, res.output
    assert (tmp_path / name / MANIFEST).is_file() and _temp_entries(tmp_path) == []


@pytest.mark.slow
def test_cli_full_disk_on_existing_report_is_one_line_and_keeps_it(tmp_path, monkeypatch):
    from imbalance_cli.cli import app

    out = tmp_path / "rep"
    runner = CliRunner()
    _old_report(out)  # an earlier stats report (written directly: one CLI run is enough here)
    before = _tree(out)
    _failing_write(monkeypatch, errno.ENOSPC, after=3)
    res = runner.invoke(app, ["stats", str(DATA), "-o", str(out), "--anchors", "none", "-q"])
    assert res.exit_code == 2
    assert _one_line(res) == (
        f"error: {out}: cannot write the report: No space left on device (ENOSPC); the disk "
        "is full: free some space or choose another --out"
    )
    assert _tree(out) == before and _temp_entries(tmp_path) == []


def test_cli_refuses_a_foreign_directory_before_any_work(tmp_path, monkeypatch):
    from imbalance_cli.cli import app
    from imbalance_cli.commands import stats as stats_cmd

    out = tmp_path / "project"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    monkeypatch.setattr(stats_cmd, "load", lambda *a, **k: pytest.fail("loaded before refusing --out"))
    res = CliRunner().invoke(app, ["stats", str(DATA), "-o", str(out), "-q"])
    assert res.exit_code == 2 and "'thesis.tex', which this report does not write" in _one_line(res)


# --------------------------------------------------------------------------------------------------------------------
# killed runs: stale temporaries (current and older names) cleaned, a set-aside report restored
# --------------------------------------------------------------------------------------------------------------------
def test_killed_run_leaves_previous_report_and_next_run_cleans(tmp_path):
    out = tmp_path / "report"
    _old_report(out)
    before = _tree(out)
    script = textwrap.dedent(f"""
        import os, signal
        from imbalance_cli.report.writer import write_report

        def die(path):  # killed after two of three files are on disk
            os.kill(os.getpid(), signal.SIGKILL)

        write_report({str(out)!r}, {{"stats.json": "new", "classes.csv": "new", "report.html": die}}, kind="stats")
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", script], env=env)
    assert res.returncode == -9
    assert _tree(out) == before  # the previous complete report, not a mix
    stale = _temp_entries(tmp_path)
    assert len(stale) == 1 and stale[0].startswith(".imbalance-tmp-") and len(stale[0]) <= 50
    assert {p.name for p in (tmp_path / stale[0]).iterdir()} == {"stats.json", "classes.csv"}
    legacy_stale = tmp_path / f".report.imbalance-tmp-{_dead_pid()}-beef"  # the naming of earlier versions
    legacy_stale.mkdir()
    other = tmp_path / f".imbalance-tmp-{writer._name_hash(tmp_path / 'other')}-{_dead_pid()}-0000beef"
    other.mkdir()  # another report's temporary: left for that report's next run
    write_report(out, {"stats.json": "newer"}, own=STATS_OWN, kind="stats")
    assert _files(out) == {"stats.json": b"newer"}
    assert _temp_entries(tmp_path) == [other.name]


def test_live_process_temp_dir_is_not_removed(tmp_path):
    out = tmp_path / "report"
    busy = tmp_path / writer._tmp_name(out, writer._TMP_TAG).replace(f"-{os.getpid()}-", f"-{os.getppid()}-")
    busy.mkdir()  # a running process (our parent)
    write_report(out, {"a": "1"})
    assert busy.exists()


def test_fallback_swap_and_restore_after_kill_between_renames(tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "_exchange", lambda a, b: False)  # a system without renameat2
    out = tmp_path / "report"
    _old_report(out)
    (out / "mine.txt").write_bytes(b"mine")
    write_report(out, {"stats.json": "new"}, own=STATS_OWN, kind="stats")
    assert _files(out) == {"mine.txt": b"mine", "stats.json": b"new"}
    assert _temp_entries(tmp_path) == []
    # a kill between "out -> aside" and "tmp -> out": out is missing, the aside copy is complete
    before = _tree(out)
    aside = tmp_path / f".imbalance-old-{writer._name_hash(out)}-{_dead_pid()}-00000001"
    os.rename(out, aside)
    assert clean_stale(out) == [aside]
    assert _tree(out) == before and not aside.exists()


def test_exchange_is_atomic_on_linux(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    if not writer._exchange(a, b):
        pytest.skip("renameat2(RENAME_EXCHANGE) not available on this system (the fallback is tested above)")
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"


def test_files_added_by_the_user_while_the_report_is_written_are_kept(tmp_path):
    out = tmp_path / "report"
    _old_report(out)

    def late(path):  # the user saves a file into the report directory while this run writes
        (out / "late.txt").write_bytes(b"late")
        path.write_bytes(b"html")

    write_report(out, {"stats.json": "new", "report.html": late}, own=STATS_OWN, kind="stats")
    assert _files(out) == {"late.txt": b"late", "report.html": b"html", "stats.json": b"new"}
