"""`imbalance stats` end to end with typer's CliRunner."""

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imbalance_cli.cli import app
from imbalance_cli.stats.schema import REQUIRED, SCHEMA, validate

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
COCO_VAL = DATA / "coco-mini_instances_val2017.json.gz"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, ["stats", *map(str, args)])


def test_json_output_carries_schema_keys():
    res = invoke(COCO_VAL, "--anchors", "none", "--json")
    assert res.exit_code == 0, res.stderr
    d = json.loads(res.stdout)  # stdout holds only the JSON
    validate(d)
    assert d["schema"] == SCHEMA
    for key in {k.split(".")[0] for k in REQUIRED} | {"verdicts", "frequency_disagreements", "bags_edges"}:
        assert key in d
    assert "anchors" not in d
    assert d["dataset"]["images"] == 79 and d["dataset"]["annotations"] == 624 and d["dataset"]["crowd"] == 5
    assert len(d["classes"]) == 80 and d["location"]["bins"] == 20
    assert len(d["location"]["counts"]) == 20 and all(len(r) == 20 for r in d["location"]["counts"])


def test_options_reach_the_report():
    res = invoke(
        COCO_VAL,
        "--anchors",
        "none",
        "--json",
        "--location-bins",
        "7",
        "--per-class-location",
        "--bags-edges",
        "0,5,50,inf",
        "--hist-bins",
        "16",
        "--quiet",
    )
    assert res.exit_code == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["location"]["bins"] == 7 and len(d["location"]["counts"]) == 7
    used = {str(c["id"]) for c in d["classes"] if c["instances"]}
    assert set(d["location"]["per_class"]) == used
    assert d["bags_edges"] == [0, 5, 50, None]
    assert {c["bags_group"] for c in d["classes"]} <= {1, 2, 3}
    person = next(c for c in d["classes"] if c["name"] == "person")
    assert person["bags_group"] == 3  # 117 instances >= 50
    assert len(d["scale"]["relative_area"]["counts"]) == 16


@pytest.mark.slow
def test_terminal_summary_and_out_dir(tmp_path):
    out = tmp_path / "report"
    res = invoke(COCO_VAL, "--anchors", "none", "--out", out)
    assert res.exit_code == 0, res.stderr
    assert "person" in res.stdout and "Verdicts" in res.stdout
    d = json.loads((out / "stats.json").read_text())
    validate(d)
    assert d["dataset"]["boxes"] == 619
    assert (out / "report.html").stat().st_size > 1000 and (out / "classes.csv").exists()


def _write_coco(path: Path, boxes):
    doc = {
        "images": [{"id": 1, "width": 100, "height": 80, "file_name": "a.jpg"}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [
            {"id": 10 + i, "image_id": 1, "category_id": 1 + i % 2, "bbox": b, "area": 1.0, "iscrowd": 0}
            for i, b in enumerate(boxes)
        ],
    }
    path.write_text(json.dumps(doc))
    return path


def test_strict_names_first_invalid_record(tmp_path):
    f = _write_coco(tmp_path / "bad.json", [[1, 1, 10, 10], [5, 5, 0, 4], [200, 5, 3, 3]])
    res = invoke(f, "--anchors", "none", "--json")
    assert res.exit_code == 0
    d = json.loads(res.stdout)
    assert d["dataset"]["invalid_by_reason"] == {"non_finite": 0, "non_positive_size": 1, "outside_image": 1}
    res = invoke(f, "--anchors", "none", "--strict")
    assert res.exit_code == 2
    err = res.stderr.strip()
    assert err.count("\n") == 0 and "bad.json" in err and "annotation id 11" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--bags-edges", "0,ten,inf"], "--bags-edges"),
        (["--bags-edges", "10,5"], "--bags-edges"),
        (["--bags-edges", "5,10"], "--bags-edges"),
        (["--location-bins", "0"], "--location-bins"),
        (["--negative-iou-sample", "-3"], "--negative-iou-sample"),
        (["--format", "darknet"], "--format"),
        (["--matcher", "best"], "--matcher"),
        (["--device", "tpu"], "--device"),
    ],
)
def test_bad_options_exit_2(args, needle):
    res = invoke(COCO_VAL, "--anchors", "none", *args)
    assert res.exit_code == 2, (res.stdout, res.stderr)
    assert needle in res.stderr and res.stderr.count("\n") == 1


def test_bad_files_exit_2(tmp_path):
    res = invoke(tmp_path / "missing.json", "--anchors", "none")
    assert res.exit_code == 2 and "missing.json" in res.stderr
    trunc = tmp_path / "trunc.json"
    trunc.write_text(gzip.decompress(COCO_VAL.read_bytes()).decode()[:5000])
    res = invoke(trunc, "--anchors", "none")
    assert res.exit_code == 2 and "trunc.json" in res.stderr and "Traceback" not in res.stderr


def test_open_images_without_sizes_refuses_anchors(tmp_path):
    boxes = tmp_path / "boxes.csv"
    boxes.write_text(
        "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside\n"
        "img1,xclick,/m/01,1,0.1,0.51,0.2,0.6,0,0,0,0,0\n"
        "img1,xclick,/m/02,1,0.6,0.9,0.1,0.3,0,0,1,0,0\n"
    )
    (tmp_path / "class-descriptions-boxable.csv").write_text("/m/01,Cat\n/m/02,Dog\n")
    res = invoke(boxes, "--anchors", "retinanet")
    assert res.exit_code == 2 and "anchor statistics need image sizes" in res.stderr
    res = invoke(boxes, "--anchors", "none", "--json")
    assert res.exit_code == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["dataset"]["boxes"] == 1 and d["dataset"]["crowd"] == 1  # IsGroupOf = crowd
    assert d["scale"]["size_groups"] is None
    assert d["scale"]["relative_width"]["counts"][20] == 1  # w = 0.41 -> bin [0.4, 0.42)
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("ImageID,Width,Height\nimg1,200,100\n")
    res = invoke(boxes, "--anchors", "none", "--json", "--image-sizes", sizes)
    d = json.loads(res.stdout)
    assert d["scale"]["size_groups"] == {"small": 0, "medium": 1, "large": 0}  # 82 x 40 = 3280 px


def test_default_anchors_and_pass_through(tmp_path):
    f = _write_coco(tmp_path / "two.json", [[10, 10, 40, 30], [50, 20, 30, 50]])
    res = invoke(f, "--json")  # --anchors retinanet is the default
    assert res.exit_code == 0, res.stderr
    d = json.loads(res.stdout)
    validate(d)
    a = d["anchors"]
    assert a["preset"] == "retinanet" and a["matcher"] == "torchvision" and a["images"] == 1
    assert a["foreground"] + a["background"] + a["ignored"] == a["anchors"]
    fb = next(v for v in d["verdicts"] if v["type"] == "foreground_background")
    assert fb["value"] == pytest.approx(a["background"] / a["foreground"])
    res = invoke(
        f,
        "--json",
        "--matcher",
        "mmdet",
        "--pos-iou",
        "0.6",
        "--neg-iou",
        "0.3",
        "--negative-iou-sample",
        "all",
        "--device",
        "cpu",
    )
    assert res.exit_code == 0, res.stderr
    a2 = json.loads(res.stdout)["anchors"]
    assert a2["matcher"] == "mmdet" and a2["device"] == "cpu" and a2["anchors"] == a["anchors"]
    assert a2["foreground"] <= a["foreground"]  # a stricter positive threshold never adds positives


def test_anchor_dict_stored_unchanged():
    import numpy as np

    from imbalance_cli.data.dataset import Dataset
    from imbalance_cli.stats import analyze
    from imbalance_cli.stats.anchors import anchor_statistics

    ds = Dataset(
        image_ids=[1],
        widths=[120],
        heights=[90],
        boxes=[[10, 10, 60, 50]],
        box_image=[0],
        box_category=[0],
        category_ids=[1],
        category_names=["a"],
    )
    got = analyze(ds, anchors="retinanet", negative_iou_sample="all").to_dict()["anchors"]
    want = json.loads(
        json.dumps(
            anchor_statistics(ds, "retinanet", negative_iou_sample="all"),
            default=lambda o: o.tolist() if isinstance(o, np.ndarray) else o.item(),
        )
    )
    got.pop("seconds", None), want.pop("seconds", None)
    assert got == want
