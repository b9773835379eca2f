"""Write the reference anchor reports the chunked-pass test holds the engine to.

Made with the project's code at commit 17c0ee0 (before the anchor pass was split into chunks and
worker processes): ``git worktree add /tmp/ref 17c0ee0 && PYTHONPATH=/tmp/ref python
tests/data/anchor_reports/make_reference.py``. Inputs are the bundled real subsets (see
examples/data/NOTICE.md and tests/data/make_fixtures.py for their sources and licences). The
``seconds`` field (wall time) is dropped. If the anchor *geometry* changes on purpose (resize
arithmetic, strides), rerun this script with the new code and chunk size "all", workers 1, and
say so in the commit. Regenerated once so far: when the torchvision presets moved to torchvision
0.28's own resize and stride rule (issue 10); the retinanet totals on the COCO val subset then
equal the torchvision oracle's (14,574 foreground, 27,276 ignored; tests/data/torchvision-oracle/).
"""

import gzip
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
OUT = Path(__file__).resolve().parent

CASES = [
    # (name, data file, preset, options)
    (
        "coco_val_retinanet",
        "examples/data/coco-mini_instances_val2017.json.gz",
        "retinanet",
        {"negative_iou_sample": "all"},
    ),
    (
        "coco_val_retinanet_mmdet",
        "examples/data/coco-mini_instances_val2017.json.gz",
        "retinanet",
        {"matcher": "mmdet", "negative_iou_sample": 7, "seed": 3},
    ),
    ("coco_train_rpn", "examples/data/coco-mini_instances_train2017.json.gz", "rpn", {"pos_iou": 0.6, "neg_iou": 0.3}),
    ("coco_val_ssd300", "examples/data/coco-mini_instances_val2017.json.gz", "ssd300", {}),
    ("lvis_val_retinanet", "examples/data/lvis_v0.5_val_100.json.gz", "retinanet", {"spatial_bins": 16}),
    ("objects365_retinanet", "tests/data/objects365_from_coco_val.json", "retinanet", {}),
]


def main() -> None:
    from imbalance_cli import load
    from imbalance_cli.stats.anchors import anchor_statistics

    out = {}
    for name, path, preset, opts in CASES:
        ds = load(str(ROOT / path))
        s = anchor_statistics(ds, preset, device="cpu", **opts)
        s.pop("seconds")
        out[name] = {"file": path, "preset": preset, "options": opts, "report": s}
        print(name, s["foreground"], s["ignored"], s["negative_iou"]["zero"])
    with gzip.open(OUT / "reference.json.gz", "wt") as f:
        json.dump(out, f, sort_keys=True)


if __name__ == "__main__":
    main()
