"""synthetic-lt: determinism, the long-tail profile, LVIS r/c/f rule, boxes on the rendered objects."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from imbalance_cli.detector.synthetic import (
    COLOURS,
    SyntheticConfig,
    class_attributes,
    class_names,
    generate,
    tail_counts,
    write_synthetic_lt,
)

SMALL = SyntheticConfig(train_images=30, val_images=8, tail="exp", max_instances=12, min_instances=1)
CAT_INFO = Path(__file__).resolve().parents[1] / "examples" / "data" / "lvis_v1_train_cat_info.json.gz"


def _digest(out: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(out.rglob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = write_synthetic_lt(tmp_path / "a", SMALL)
    b = write_synthetic_lt(tmp_path / "b", SMALL)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    c = write_synthetic_lt(tmp_path / "c", SyntheticConfig(**{**SMALL.__dict__, "seed": 1}))
    assert (
        json.loads(Path(a["train"]).read_text())["annotations"]
        != json.loads(Path(c["train"]).read_text())["annotations"]
    )
    assert Path(b["images"]).is_dir()


def test_exp_tail_counts_by_formula():
    got = tail_counts(24, "exp", max_instances=900, min_instances=3)
    want = [round(900 * (3 / 900) ** (k / 23)) for k in range(24)]
    assert got.tolist() == want
    assert tail_counts(5, "uniform", max_instances=7).tolist() == [7] * 5
    with pytest.raises(ValueError):
        tail_counts(5, "zipf")


def test_lvis_tail_follows_the_real_lvis_curve():
    with gzip.open(CAT_INFO, "rt") as f:
        info = json.load(f)
    inst = np.array([c["instance_count"] for c in info], dtype=float)
    per_image = inst.sum() / sum(c["image_count"] for c in info)
    curve = np.sort(inst)[::-1]
    idx = np.round(np.linspace(0, 1202, 24)).astype(int)
    v = curve[idx] / per_image
    got = tail_counts(24, "lvis", max_instances=900, min_instances=3, knee=150)
    # below the knee: the LVIS counts themselves (per class-image), clamped at the minimum
    tail = v <= 150
    assert np.array_equal(got[tail], np.maximum(3, np.round(v[tail])).astype(int))
    assert got[0] == 900 and np.all(np.diff(got) <= 0)
    # the head keeps LVIS's order of magnitude ratios: log-linear compression above the knee
    g = np.log(900 / 150) / np.log(v[0] / 150)
    assert got[1] == round(150 * (v[1] / 150) ** g)


def test_split_json_counts_frequencies_and_boxes(tmp_path):
    paths = write_synthetic_lt(tmp_path, SMALL)
    train = json.loads(Path(paths["train"]).read_text())
    val = json.loads(Path(paths["val"]).read_text())
    C = SMALL.num_classes
    counts = np.zeros(C, int)
    img_sets = [set() for _ in range(C)]
    for a in train["annotations"]:
        counts[a["category_id"] - 1] += 1
        img_sets[a["category_id"] - 1].add(a["image_id"])
    # the multiset of per-class counts is exactly the tail profile
    assert sorted(counts.tolist(), reverse=True) == tail_counts(C, "exp", 12, 1).tolist()
    for k, cat in enumerate(train["categories"]):
        assert cat["instance_count"] == counts[k]
        assert cat["image_count"] == len(img_sets[k])
        n = len(img_sets[k])
        assert cat["frequency"] == ("r" if n <= 10 else "c" if n <= 100 else "f")  # LVIS rule
        assert val["categories"][k]["frequency"] == cat["frequency"]  # from the training split
        assert cat["name"] == class_names()[k]
    # held-out split draws classes uniformly
    vc = np.bincount([a["category_id"] - 1 for a in val["annotations"]], minlength=C)
    assert vc.max() - vc.min() <= 1
    # exhaustive annotation: neg_category_ids are exactly the absent classes
    present = {}
    for a in val["annotations"]:
        present.setdefault(a["image_id"], set()).add(a["category_id"])
    for im in val["images"]:
        assert set(im["neg_category_ids"]) == set(range(1, C + 1)) - present.get(im["id"], set())


def test_objects_have_their_class_colour_inside_their_box():
    cfg = SyntheticConfig(
        train_images=12, val_images=4, tail="uniform", max_instances=2, min_instances=1, distractors=0
    )
    data = generate(cfg)
    layouts, images, boxes = data["train"]
    for cls, img, b in zip(layouts, images, boxes):
        for k, (x1, y1, x2, y2) in zip(cls, b):
            assert 0 <= x1 < x2 <= cfg.image_size and 0 <= y1 < y2 <= cfg.image_size
            _, colour, _ = class_attributes(k)
            patch = img[int(y1) : int(y2), int(x1) : int(x2)].reshape(-1, 3).astype(float)
            ref = np.asarray(COLOURS[colour], dtype=float)
            # some pixel of the box is close (in direction) to the class colour
            cos = patch @ ref / (np.linalg.norm(patch, axis=1) * np.linalg.norm(ref) + 1e-9)
            assert cos.max() > 0.97
