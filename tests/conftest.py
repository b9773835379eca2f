"""Shared test paths. Real data lives in examples/data (see its NOTICE.md); converted fixtures in tests/data."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "examples" / "data"
FIXTURES = Path(__file__).resolve().parent / "data"
COCO_VAL = REAL / "coco-mini_instances_val2017.json.gz"
COCO_TRAIN = REAL / "coco-mini_instances_train2017.json.gz"
LVIS_V05 = REAL / "lvis_v0.5_val_100.json.gz"
LVIS_V1_CATS = REAL / "lvis_v1_train_cat_info.json.gz"
VOC_XML = REAL / "VOC2007_Annotations_000001.xml"


@pytest.fixture
def coco_val_path():
    return COCO_VAL


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test (and every subprocess it starts) uses a private columnar cache, never the home directory."""
    monkeypatch.setenv("IMBALANCE_CACHE", str(tmp_path_factory.mktemp("imbalance-cache")))
    # no phase lines on stderr unless a test asks for them: whether a phase outlasts the default 1 s depends on
    # the machine's load, and tests compare stderr exactly (tests/test_progress.py sets its own delays)
    monkeypatch.setenv("IMBALANCE_PHASE_DELAY", "3600")
    # no advice ("What to change": a time-bounded anchor fit, about 1 s a run) unless a test asks for it
    # (tests/test_gallery_advice.py and the report pages test set IMBALANCE_ADVICE=on)
    monkeypatch.setenv("IMBALANCE_ADVICE", "off")
