"""torchrun's settings checked before anything runs, in one line; a rendezvous that never completes ends.

A process started with torchrun's variables but no peers used to wait until killed; an invalid ``MASTER_PORT``
raised a ValueError traceback; ``RANK`` 5 of 2 waited; ``IMBALANCE_DIST_LOAD=garbage`` was ignored in one process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from conftest import COCO_VAL, ROOT
from typer.testing import CliRunner

from imbalance_cli import dist
from imbalance_cli.cli import app
from imbalance_cli.errors import InputError

runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_env(monkeypatch, **values):
    base = {
        "WORLD_SIZE": "2",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
    }
    for k in ("LOCAL_WORLD_SIZE", dist.LOAD_ENV, dist.TIMEOUT_ENV):
        monkeypatch.delenv(k, raising=False)
    for k, v in {**base, **values}.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)


@pytest.mark.parametrize(
    "values, needle",
    [
        (dict(MASTER_PORT="abc"), "MASTER_PORT='abc': must be an integer in [1, 65535]"),
        (dict(MASTER_PORT="99999"), "MASTER_PORT='99999'"),
        (dict(MASTER_PORT="0"), "MASTER_PORT='0'"),
        (dict(RANK="5"), "RANK='5': must be an integer in [0, 1]"),
        (dict(RANK="-1"), "RANK='-1'"),
        (dict(WORLD_SIZE="0"), "WORLD_SIZE='0'"),
        (dict(WORLD_SIZE="two"), "WORLD_SIZE='two'"),
        (dict(LOCAL_WORLD_SIZE="2", LOCAL_RANK="2"), "LOCAL_RANK='2': must be an integer in [0, 1]"),
        (dict(LOCAL_WORLD_SIZE="3"), "LOCAL_WORLD_SIZE='3'"),
        (dict(MASTER_ADDR="no-such-host.invalid"), "MASTER_ADDR='no-such-host.invalid' does not resolve"),
        ({dist.TIMEOUT_ENV: "0"}, "IMBALANCE_DIST_TIMEOUT must be a number of seconds"),
        ({dist.TIMEOUT_ENV: "nan"}, "IMBALANCE_DIST_TIMEOUT"),
        ({dist.LOAD_ENV: "garbage"}, "IMBALANCE_DIST_LOAD must be each or broadcast"),
    ],
)
@pytest.mark.slow
@pytest.mark.parametrize("command", ["stats", "check", "groups"])
def test_bad_torchrun_settings_one_line_before_any_work(monkeypatch, values, needle, command):
    _torchrun_env(monkeypatch, **values)
    r = runner.invoke(app, [command, str(COCO_VAL)])
    err = r.stderr.strip()
    assert r.exit_code == 2 and "\n" not in err and needle in err and "Traceback" not in r.output, r.output


@pytest.mark.parametrize("values", [{dist.LOAD_ENV: "garbage"}, {dist.TIMEOUT_ENV: "-5"}])
def test_settings_checked_in_one_process_too(monkeypatch, values):
    _torchrun_env(
        monkeypatch, WORLD_SIZE=None, RANK=None, LOCAL_RANK=None, MASTER_ADDR=None, MASTER_PORT=None, **values
    )
    r = runner.invoke(app, ["groups", str(COCO_VAL)])
    assert r.exit_code == 2 and list(values)[0] in r.stderr and "\n" not in r.stderr.strip()


@pytest.mark.slow
def test_rendezvous_without_peers_ends_with_what_it_waited_for(monkeypatch, capfd):
    # rank 0 (serving the store) and rank 1 (connecting to nobody), in this process, with a short limit
    for rank in ("0", "1"):
        _torchrun_env(monkeypatch, RANK=rank, LOCAL_RANK=rank, **{dist.TIMEOUT_ENV: "1.5"})
        monkeypatch.setattr(dist, "WAIT_NOTICE_SECONDS", 0.2)
        t0 = time.perf_counter()
        with pytest.raises(InputError) as e:
            dist.init()
        assert time.perf_counter() - t0 < 30
        msg = str(e.value)
        assert (
            f"gave up after 1.5 s waiting for all 2 torchrun processes (this is rank {rank}) to join at "
            f"127.0.0.1:{os.environ['MASTER_PORT']}"
            in msg
            and "IMBALANCE_DIST_TIMEOUT" in msg
        )
        err = capfd.readouterr().err
        # the notice, and nothing of c10d's retry log with its C++ frames
        assert err.strip() == (
            f"waiting up to 1.5 s for all 2 torchrun processes (this is rank {rank}) to join at "
            f"127.0.0.1:{os.environ['MASTER_PORT']} (IMBALANCE_DIST_TIMEOUT sets the limit)"
        ), err


@pytest.mark.slow
def test_stray_torchrun_variables_end_in_one_line(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "WORLD_SIZE": "2",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        dist.TIMEOUT_ENV: "2",
    }
    r = subprocess.run(
        [sys.executable, "-m", "imbalance_cli", "stats", str(COCO_VAL), "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    lines = r.stderr.strip().splitlines()
    assert (
        r.returncode == 2 and len(lines) == 1 and "gave up after 2 s waiting for all 2 torchrun processes" in lines[0]
    )


def test_default_rendezvous_timeout_and_its_bounds(monkeypatch):
    monkeypatch.delenv(dist.TIMEOUT_ENV, raising=False)
    assert dist.rendezvous_timeout() == dist.DEFAULT_RENDEZVOUS_TIMEOUT == 300.0
    monkeypatch.setenv(dist.TIMEOUT_ENV, "604800")
    assert dist.rendezvous_timeout() == 604800.0
    for bad in ("604801", "inf", "-1", "x"):
        monkeypatch.setenv(dist.TIMEOUT_ENV, bad)
        with pytest.raises(InputError):
            dist.rendezvous_timeout()
