"""The examples a new user runs must keep working."""

import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_api_example_runs(tmp_path):
    out = tmp_path / "rep"
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "api_example.py"),
            str(ROOT / "examples" / "data" / "coco-mini_instances_val2017.json.gz"),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "valid boxes 619" in r.stdout  # 624 annotations - 5 crowd (NOTICE facts)
    assert (out / "stats.json").exists() and (out / "report.html").exists()
