"""All-or-nothing report directories (imbalance_cli.report.writer): swapped in whole, never mixed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from imbalance_cli.errors import InputError
from imbalance_cli.report import writer
from imbalance_cli.report.writer import clean_stale, write_report

REPO = Path(__file__).resolve().parents[1]


def _tree(d: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def _temp_entries(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if "imbalance-tmp" in p.name or "imbalance-old" in p.name
                  or p.name.endswith(".tmp"))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


OLD = {"stats.json": b'{"old": 1}', "classes.csv": b"old\n", "fig4a_foreground_background.png": b"old png"}


def _old_report(out: Path) -> None:
    out.mkdir()
    for name, data in OLD.items():
        (out / name).write_bytes(data)


def test_fresh_directory(tmp_path):
    out = tmp_path / "a" / "report"
    paths = write_report(out, {"stats.json": '{"x": 1}\n', "b.bin": b"\x00\x01", "c.txt": lambda p: p.write_text("c")})
    assert paths == [out / "stats.json", out / "b.bin", out / "c.txt"]
    assert _tree(out) == {"b.bin": b"\x00\x01", "c.txt": b"c", "stats.json": b'{"x": 1}\n'}
    assert _temp_entries(out.parent) == []


def test_replaces_own_files_keeps_users_files(tmp_path):
    out = tmp_path / "report"
    _old_report(out)
    (out / "README.md").write_text("mine")
    (out / ".fig7_scale.png.abc123.tmp").write_bytes(b"stray temp file of an older version")
    write_report(out, {"stats.json": "new", "classes.csv": "new"}, own=("stats.json", "classes.csv", "fig*.png"))
    # the anchor figure of the previous run does not survive; the user's README does, unchanged
    assert _tree(out) == {"README.md": b"mine", "classes.csv": b"new", "stats.json": b"new"}
    assert _temp_entries(tmp_path) == []


def test_failure_mid_write_leaves_previous_report_and_no_temp(tmp_path, monkeypatch):
    out = tmp_path / "report"
    _old_report(out)
    calls = []
    real = writer.write_bytes_fsync

    def failing(path, data):
        calls.append(Path(path).name)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(writer, "write_bytes_fsync", failing)
    with pytest.raises(OSError, match="No space"):
        write_report(out, {"stats.json": "new", "classes.csv": "new", "report.html": "new"}, own=("*",))
    assert calls == ["stats.json", "classes.csv"]
    assert _tree(out) == OLD
    assert _temp_entries(tmp_path) == []


def test_killed_run_leaves_previous_report_and_next_run_cleans(tmp_path):
    out = tmp_path / "report"
    _old_report(out)
    script = textwrap.dedent(f"""
        import os, signal
        from imbalance_cli.report.writer import write_report

        def die(path):  # killed after two of three files are on disk
            os.kill(os.getpid(), signal.SIGKILL)

        write_report({str(out)!r}, {{"stats.json": "new", "classes.csv": "new", "report.html": die}}, own=("*",))
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", script], env=env)
    assert res.returncode == -9
    assert _tree(out) == OLD  # the previous complete report, not a mix
    stale = _temp_entries(tmp_path)
    assert len(stale) == 1 and "imbalance-tmp" in stale[0]
    assert {p.name for p in (tmp_path / stale[0]).iterdir()} == {"stats.json", "classes.csv"}
    write_report(out, {"stats.json": "newer"}, own=("*",))
    assert _tree(out) == {"stats.json": b"newer"}
    assert _temp_entries(tmp_path) == []


def test_live_process_temp_dir_is_not_removed(tmp_path):
    out = tmp_path / "report"
    busy = tmp_path / f".report.imbalance-tmp-{os.getppid()}-beef"  # a running process (our parent)
    busy.mkdir()
    write_report(out, {"a": "1"})
    assert busy.exists()


def test_fallback_swap_and_restore_after_kill_between_renames(tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "_exchange", lambda a, b: False)  # a system without renameat2
    out = tmp_path / "report"
    _old_report(out)
    write_report(out, {"stats.json": "new"}, own=("*",))
    assert _tree(out) == {"stats.json": b"new"}
    assert _temp_entries(tmp_path) == []
    # a kill between "out -> aside" and "tmp -> out": out is missing, the aside copy is complete
    aside = tmp_path / f".report.imbalance-old-{_dead_pid()}-0001"
    os.rename(out, aside)
    assert clean_stale(out) == [aside]
    assert _tree(out) == {"stats.json": b"new"} and not aside.exists()


def test_exchange_is_atomic_on_linux(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    if not writer._exchange(a, b):
        pytest.skip("renameat2(RENAME_EXCHANGE) not available on this system (the fallback is tested above)")
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"


def test_foreign_folder_refused_and_out_file_refused(tmp_path):
    out = tmp_path / "report"
    _old_report(out)
    (out / "data").mkdir()
    with pytest.raises(InputError, match="folder 'data'"):
        write_report(out, {"stats.json": "new"}, own=("*.json",))
    assert (out / "stats.json").read_bytes() == OLD["stats.json"] and _temp_entries(tmp_path) == []
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(InputError, match="directory"):
        write_report(target, {"a": "1"})
    with pytest.raises(ValueError):
        write_report(out, {"../escape": "1"})


def test_stats_cli_rerun_drops_stale_anchor_files(tmp_path):
    from typer.testing import CliRunner

    from imbalance_cli.cli import app

    data = REPO / "examples" / "data" / "coco-mini_instances_val2017.json.gz"
    out = tmp_path / "r"
    runner = CliRunner()
    res = runner.invoke(app, ["stats", str(data), "-o", str(out), "--anchors", "ssd300", "-q"])
    assert res.exit_code == 0, res.output
    assert (out / "fig4a_foreground_background.png").exists() and (out / "anchors_summary.csv").exists()
    (out / "notes.txt").write_text("mine")
    res = runner.invoke(app, ["stats", str(data), "-o", str(out), "--anchors", "none", "-q"])
    assert res.exit_code == 0, res.output
    names = {p.name for p in out.iterdir()}
    assert "notes.txt" in names and "stats.json" in names
    assert not any(n.startswith(("anchor", "fig4", "fig12", "fig14")) for n in names)
    assert _temp_entries(tmp_path) == []


def test_current_directory_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.json").write_text("{}")
    for target in (".", str(tmp_path), str(tmp_path.parent)):
        with pytest.raises(InputError, match="current directory"):
            write_report(target, {"stats.json": "x"})
    assert _tree(tmp_path) == {"data.json": b"{}"}
    assert write_report("sub", {"a": "1"}) == [Path("sub") / "a"] and (tmp_path / "sub" / "a").read_text() == "1"
