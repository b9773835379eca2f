#!/usr/bin/env python3
"""Hold the plain reading of ``tests/test_yolo_property.py`` to Ultralytics' own code (never run by CI).

    python tools/yolo_property_oracle.py labels 3000     # main venv; runs Ultralytics in /work/venvs/ultralytics
    python tools/yolo_property_oracle.py datasets 400

``labels N`` writes N label files made by the property test's mutation strategy (hypothesis, random seeds), runs
Ultralytics' ``verify_image_label`` on each (beside one valid 64 x 48 PNG, 3 classes) and compares its verdict and
kept rows (float32) with the test's ``_label_rows``. ``datasets N`` writes N mutated datasets (image lists and
data.yaml, the test's strategies), builds Ultralytics' ``YOLODataset`` for every split (``check_det_dataset``
first; the working directory is the example's folder, as in the test) and compares the images listed and kept and
the label rows kept with the test's ``_expected``. Both print how many differ (last run: labels 3000 files,
1726 corrupt for Ultralytics, 0 differ; datasets 400, 524 splits read by both, 0 differ).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ULTRALYTICS = "/work/venvs/ultralytics/bin/python"

_VERIFY = r"""
import json, shutil, sys
from pathlib import Path
from PIL import Image
from ultralytics.data.utils import verify_image_label
src, work = Path(sys.argv[1]), Path(sys.argv[2])
(work / "images").mkdir(parents=True); (work / "labels").mkdir()
Image.new("L", (64, 48), 100).save(work / "images" / "x.png")
out = {}
for f in sorted(src.iterdir()):
    shutil.copy(f, work / "labels" / "x.txt")
    lb = verify_image_label((str(work / "images" / "x.png"), str(work / "labels" / "x.txt"), "", False, 3, 0, 0,
                             False))[1]
    out[f.name] = None if lb is None else [[float(v) for v in row] for row in lb]
print(json.dumps(out))
"""

_SCAN = r"""
import json, logging, os, sys
from pathlib import Path
from ultralytics.utils import LOGGER
LOGGER.setLevel(logging.CRITICAL)
from ultralytics.cfg import get_cfg
from ultralytics.data.dataset import YOLODataset
from ultralytics.data.utils import check_det_dataset
out = {}
for base in sorted(Path(sys.argv[1]).iterdir()):
    os.chdir(base)
    try:
        data = check_det_dataset(str(base / "ds" / "data.yaml"), autodownload=False)
    except BaseException as e:
        out[base.name] = f"refused: {type(e).__name__}"
        continue
    res = {}
    for split in ("train", "val", "test"):
        if data.get(split):
            try:
                ds = YOLODataset(img_path=data[split], data=data, task="detect", augment=False, hyp=get_cfg(),
                                 imgsz=64, batch_size=1, rect=False, prefix="")
                res[split] = {"listed": len(ds.get_img_files(data[split])), "images": len(ds.labels),
                              "annotations": int(sum(len(lb["cls"]) for lb in ds.labels))}
            except BaseException as e:
                res[split] = f"refused: {type(e).__name__}"
    out[base.name] = res
print(json.dumps(out))
"""


def _strategy_runs(n: int, make) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=n, deadline=None, derandomize=False, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data):
        make(data)

    run()


def labels(n: int) -> None:
    """Label files: the test's ``_label_rows`` against ``verify_image_label``."""
    import numpy as np
    import test_yolo_property as t

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "labels"
        src.mkdir()
        count = [0]

        def make(data):
            raw = t._mutate_label(data.draw(t.st.sampled_from([*t.LABELS.values(), ""])), data)
            (src / f"{count[0]:05d}.txt").write_bytes(raw)
            count[0] += 1

        _strategy_runs(n, make)
        theirs = json.loads(
            subprocess.run(
                [ULTRALYTICS, "-c", _VERIFY, str(src), str(Path(tmp) / "work")],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        differ = 0
        for name, rows in sorted(theirs.items()):
            mine = t._label_rows((src / name).read_bytes(), 3)
            a = None if mine is None else sorted(map(tuple, mine.tolist()))
            b = None if rows is None else sorted(map(tuple, np.array(rows, np.float32).tolist()))
            if a != b:
                differ += 1
                print("differs:", (src / name).read_bytes()[:120], a, b)
        print(
            f"{len(theirs)} label files, {sum(v is None for v in theirs.values())} corrupt for Ultralytics, "
            f"{differ} differ"
        )


def datasets(n: int) -> None:
    """Mutated image lists and data.yaml files: the test's ``_expected`` against Ultralytics' ``YOLODataset``."""
    import test_yolo_property as t

    with tempfile.TemporaryDirectory() as tmp:
        out, expected, count = Path(tmp), {}, [0]

        def make(data):  # every draw first: an example hypothesis abandons half-drawn leaves no folder behind
            base = out / f"{count[0]:05d}"
            root = base / "ds"
            if data.draw(t.st.booleans()):
                name, raw = "val.txt", t._mutate_list(root, data)
            else:
                d = dict(t.DATA)
                for _ in range(data.draw(t.st.integers(1, 3))):
                    key = data.draw(t.st.sampled_from(sorted(t._VALUES)))
                    if data.draw(t.st.integers(0, 5)) == 0:
                        d.pop(key, None)
                    else:
                        d[key] = data.draw(t.st.sampled_from(t._VALUES[key]))
                name, raw = "data.yaml", t._yaml_text(d, data)
            count[0] += 1
            base.mkdir()
            t._dataset(base)
            (root / name).write_bytes(raw)
            try:
                expected[base.name] = t._in(base, lambda: t._expected(root / "data.yaml"))
            except Exception:  # noqa: BLE001 - a file the plain reading cannot read (imbalance refuses it too)
                expected[base.name] = None

        _strategy_runs(n, make)
        theirs = json.loads(
            subprocess.run([ULTRALYTICS, "-c", _SCAN, str(out)], capture_output=True, text=True, check=True).stdout
        )
        both = differ = 0
        for name, splits in sorted(theirs.items()):
            if isinstance(splits, str) or expected[name] is None:
                continue
            for split, u in splits.items():
                if isinstance(u, str):
                    continue
                both += 1
                mine = expected[name].get(split)
                if mine is None or [mine[k] for k in ("listed", "images", "annotations")] != [
                    u[k] for k in ("listed", "images", "annotations")
                ]:
                    differ += 1
                    print("differs:", name, split, mine, u)
        print(f"{len(theirs)} datasets, {both} splits read by both, {differ} differ")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    cmd, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    {"labels": labels, "datasets": datasets}[cmd](count)
