"""Use imbalance from Python: load a dataset, analyse it, read the numbers, write the report.

    python examples/api_example.py [ANNOTATIONS] [OUT_DIR]

Defaults to the bundled real COCO val2017 subset and ./api_report.
"""

import sys
from pathlib import Path

import imbalance_cli as im
from imbalance_cli.stats.counts import class_counts_from
from imbalance_cli.stats.margins import effective_class_margins

HERE = Path(__file__).resolve().parent
path = sys.argv[1] if len(sys.argv) > 1 else HERE / "data" / "coco-mini_instances_val2017.json.gz"
out = sys.argv[2] if len(sys.argv) > 2 else "api_report"

ds = im.load(path)  # columnar Dataset: numpy arrays, no object per box
print(ds)

report = im.analyze(ds, anchors="retinanet")  # torchvision RetinaNet anchors and matcher
d = report.to_dict()
a = d["anchors"]
print(f"valid boxes {d['dataset']['boxes']}, classes used {d['dataset']['categories_used']}")
print(f"Gini of the class long tail {d['measures']['gini']:.3f}")
print(
    f"anchors per image {a['per_image']['anchors']:.0f}: foreground {a['per_image']['foreground']:.1f}, "
    f"background {a['per_image']['background']:.1f} (1 : {1 / a['pos_neg_ratio']:.0f})"
)
print(report.classes.head(5).to_string(index=False))

# Effective Class-Margins with the background count measured by the same anchor engine
counts = class_counts_from(ds)
margins = effective_class_margins(counts, fg_bg_ratio=a["background"] / a["foreground"])
rarest = sorted(margins["classes"], key=lambda c: -c["m_neg"])[:3]
print("largest ECM negative margins m-:", [(c["name"], round(c["m_neg"], 2)) for c in rarest])

written = report.save(out)  # stats.json, CSV tables, figures, report.html (atomic writes)
print(f"wrote {len(written)} files to {out}/")
