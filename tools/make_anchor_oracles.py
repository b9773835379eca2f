"""Anchor oracles from mmdetection's and detectron2's own pipelines (the ``anchors`` step of make_framework_oracles.py).

For every image of the bundled COCO subsets and of small synthetic files (integer boxes, the issue's
examples, exact ATSS distance ties, tiny, degenerate and border boxes, an image without boxes) it
runs, per preset:

* ``detectron2-retinanet`` (detectron2's source, ``detectron2._C`` stubbed): ``load_coco_json`` ->
  the ``DatasetMapper`` annotation path (crowd left out, ``ResizeShortestEdge(800, 1333)``,
  ``transform_instance_annotations``, ``annotations_to_instances``, ``filter_empty_instances``) ->
  ``ImageList.from_tensors(size_divisibility=32)`` -> ``DefaultAnchorGenerator`` (RetinaNet sizes,
  ratios 0.5/1/2, offset 0) -> ``Matcher([0.4, 0.5], [0, -1, 1], allow_low_quality_matches=True)``
  on ``pairwise_iou``;
* ``mmdet-retinanet``, ``atss``, ``fcos`` (mmdetection 3.3.0): ``CocoDataset`` (no image filter) ->
  ``LoadAnnotations`` -> ``Resize(scale=(1333, 800), keep_ratio=True)`` on a blank image -> pad to 32
  -> ``AnchorGenerator`` / ``MlvlPointGenerator`` -> ``MaxIoUAssigner(0.5, 0.4, min_pos_iou=0)``,
  ``ATSSAssigner(topk=9)`` or ``FCOSHead._get_targets_single`` (centre sampling, radius 1.5).

Feature map sizes are ``ceil(padded / stride)`` (what a ResNet-FPN gives on a padded image; the
torchvision oracle makes the same assumption). Each image is a batch of one. Written per image:
resized and padded size, boxes kept, anchors, foreground, ignored, background and positives per
category id.
"""

from __future__ import annotations

import gzip
import json
import math
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SUBSETS = ("val", "train")
STRIDES = (8, 16, 32, 64, 128)


# ------------------------------------------------------------------------------------------ inputs
def _coco(images, anns, cats=((1, "a"), (2, "b"))):
    return {
        "images": [{"id": i, "width": w, "height": h, "file_name": f"{i}.jpg"} for i, w, h in images],
        "annotations": [
            {"id": k + 1, "image_id": im, "category_id": c, "bbox": b, "iscrowd": cr, "area": float(b[2]) * float(b[3])}
            for k, (im, c, b, cr) in enumerate(anns)
        ],
        "categories": [{"id": i, "name": n} for i, n in cats],
    }


def synthetic() -> dict:
    """Small COCO files for the edge cases, written into the fixture so the tests load the same bytes."""
    out = {}
    # the detectron2 example: one 567 x 1234 image, an all-integer bbox, and the same as floats
    out["issue-integer-bbox"] = _coco([(1, 567, 1234)], [(1, 1, [201, 1123, 45, 755], 0)])
    out["issue-float-bbox"] = _coco([(1, 567, 1234)], [(1, 1, [201.0, 1123.0, 45.0, 755.0], 0)])
    # integer boxes of every kind: border, tiny (1 px), beyond the image, mixed int/float, crowd, degenerate
    out["integer-boxes"] = _coco(
        [(1, 640, 480), (2, 500, 375), (3, 1333, 800), (4, 333, 1000), (5, 37, 1999)],
        [
            (1, 1, [0, 0, 640, 480], 0),
            (1, 2, [5, 7, 1, 1], 0),
            (1, 1, [600, 440, 60, 60], 0),
            (1, 2, [13, 17, 3, 2], 0),
            (2, 1, [1, 1, 498, 373], 0),
            (2, 2, [250, 187, 1, 2], 0),
            (2, 1, [120, 30, 77, 41.5], 0),
            (2, 2, [33, 44, 55, 66], 1),
            (3, 1, [0, 790, 1333, 10], 0),
            (3, 2, [1332, 0, 1, 800], 0),
            (3, 1, [400, 300, 0, 20], 0),
            (4, 1, [10, 10, 313, 979], 0),
            (4, 2, [166, 499, 1, 1], 0),
            (5, 1, [0, 0, 37, 1999], 0),
            (5, 2, [3, 1000, 30, 3], 0),
            (5, 1, [18, 18, 1, 1], 0),
        ],
    )
    # the ATSS tie: one 1333 x 800 image, two boxes whose centres tie at the 9th candidate
    out["issue-atss-tie"] = _coco([(1, 1333, 800)], [(1, 1, [240, 0, 192, 216], 0), (1, 2, [228, 0, 216, 192], 0)])
    # more exact ties: boxes centred on anchor-cell corners and midpoints, squares and their transposes
    images, anns = [], []
    for k, (cx, cy, w, h) in enumerate(
        [
            (64, 64, 32, 32),
            (100, 36, 40, 24),
            (96, 96, 48, 48),
            (400, 400, 100, 60),
            (256, 128, 64, 64),
            (40, 40, 16, 16),
            (640, 384, 256, 256),
            (8, 8, 16, 16),
        ]
    ):
        im = k // 2 + 1
        if k % 2 == 0:
            images.append((im, 1333, 800))
        anns.append((im, 1 + k % 2, [cx - w / 2, cy - h / 2, w, h], 0))
        anns.append((im, 2 - k % 2, [cx - h / 2, cy - w / 2, h, w], 0))
    out["atss-ties"] = _coco(images, anns)
    # tiny, thin and float border boxes, duplicates, and an image without annotations
    out["tiny-border-empty"] = _coco(
        [(1, 800, 600), (2, 1024, 683), (3, 300, 300)],
        [
            (1, 1, [0.0, 0.0, 0.5, 0.5], 0),
            (1, 2, [799.2, 599.1, 0.8, 0.9], 0),
            (1, 1, [10.3, 20.7, 700.1, 2.2], 0),
            (1, 1, [10.3, 20.7, 700.1, 2.2], 0),
            (1, 2, [-5.5, 100.0, 40.0, 40.0], 0),
            (2, 1, [0.01, 0.02, 1023.9, 682.9], 0),
            (2, 2, [511.5, 341.5, 1.0, 1.0], 0),
            (2, 1, [300.25, 200.75, 0.0, 10.0], 0),
        ],
    )
    return out


def bundled() -> dict:
    return {
        f"coco-mini_instances_{s}2017": json.loads(
            gzip.open(ROOT / "examples" / "data" / f"coco-mini_instances_{s}2017.json.gz").read()
        )
        for s in SUBSETS
    }


def _record(counts: dict, cat_ids, matched_labels, fg, ignored, n):
    per_class = {}
    for lab in np.asarray(matched_labels).tolist():
        key = str(int(lab if cat_ids is None else cat_ids[lab]))
        per_class[key] = per_class.get(key, 0) + 1
    counts.update(
        anchors=int(n),
        foreground=int(fg),
        ignored=int(ignored),
        background=int(n - fg - ignored),
        per_class_positive=per_class,
    )
    return counts


# ------------------------------------------------------------------------------------------ detectron2
def detectron2_modules(src: Path):
    sys.path.insert(0, "/work/shared/tools")
    import tvshim  # noqa: F401  (torchvision's pure-Python parts on a CPU torch without its C ops)

    sys.path.insert(0, str(src))
    sys.modules["detectron2._C"] = types.ModuleType("detectron2._C")
    from detectron2.data import detection_utils as utils
    from detectron2.data import transforms as T
    from detectron2.data.datasets.coco import load_coco_json
    from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
    from detectron2.modeling.matcher import Matcher
    from detectron2.structures import ImageList, pairwise_iou

    return types.SimpleNamespace(
        utils=utils,
        T=T,
        load_coco_json=load_coco_json,
        DefaultAnchorGenerator=DefaultAnchorGenerator,
        Matcher=Matcher,
        ImageList=ImageList,
        pairwise_iou=pairwise_iou,
    )


def detectron2_dataset(torch, d2, coco: dict) -> list:
    sizes = [[x, x * 2 ** (1.0 / 3), x * 2 ** (2.0 / 3)] for x in [32, 64, 128, 256, 512]]
    gen = d2.DefaultAnchorGenerator(sizes=sizes, aspect_ratios=[[0.5, 1.0, 2.0]], strides=list(STRIDES), offset=0.0)
    matcher = d2.Matcher([0.4, 0.5], [0, -1, 1], allow_low_quality_matches=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(coco, f)
    records = d2.load_coco_json(f.name, "", dataset_name=None)
    Path(f.name).unlink()
    out = []
    for rec in records:
        h, w = rec["height"], rec["width"]
        aug = d2.T.ResizeShortestEdge(800, 1333, "choice")
        tf = aug.get_transform(np.zeros((h, w, 1), dtype=np.uint8))
        nh, nw = tf.new_h, tf.new_w
        annos = [
            d2.utils.transform_instance_annotations(obj, [tf], (nh, nw))
            for obj in rec.get("annotations", [])
            if obj.get("iscrowd", 0) == 0
        ]
        inst = d2.utils.filter_empty_instances(d2.utils.annotations_to_instances(annos, (nh, nw)))
        images = d2.ImageList.from_tensors([torch.zeros(1, nh, nw)], size_divisibility=32)
        ph, pw = images.tensor.shape[-2:]
        feats = [torch.zeros(1, 1, math.ceil(ph / s), math.ceil(pw / s)) for s in STRIDES]
        anchors = torch.cat([b.tensor for b in gen(feats)])
        row = {"image_id": rec["image_id"], "resized": [nh, nw], "padded": [int(ph), int(pw)], "boxes": len(inst)}
        n = len(anchors)
        if len(inst) == 0:
            out.append({**row, "detectron2-retinanet": _record({}, None, [], 0, 0, n)})
            continue
        from detectron2.structures import Boxes

        iou = d2.pairwise_iou(inst.gt_boxes, Boxes(anchors))
        idx, labels = matcher(iou)
        fg = labels == 1
        cats = inst.gt_classes[idx[fg]]
        out.append(
            {**row, "detectron2-retinanet": _record({}, None, cats, int(fg.sum()), int((labels == -1).sum()), n)}
        )
    return out


# ------------------------------------------------------------------------------------------ mmdetection
def mmdet_dataset(torch, coco: dict) -> list:
    from mmdet.datasets import CocoDataset
    from mmdet.datasets.transforms import LoadAnnotations, Resize
    from mmdet.models.dense_heads import FCOSHead
    from mmdet.models.task_modules.assigners import ATSSAssigner, MaxIoUAssigner
    from mmdet.models.task_modules.prior_generators import AnchorGenerator, MlvlPointGenerator
    from mmengine.structures import InstanceData

    names = tuple(c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"]))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(coco, f)
    ds = CocoDataset(
        ann_file=f.name,
        data_prefix=dict(img=""),
        metainfo=dict(classes=names),
        pipeline=[],
        filter_cfg=None,
        test_mode=False,
    )
    Path(f.name).unlink()
    label_to_cat = {v: k for k, v in ds.cat2label.items()}
    retina_gen = AnchorGenerator(
        octave_base_scale=4, scales_per_octave=3, ratios=[0.5, 1.0, 2.0], strides=list(STRIDES)
    )
    atss_gen = AnchorGenerator(ratios=[1.0], octave_base_scale=8, scales_per_octave=1, strides=list(STRIDES))
    points_gen = MlvlPointGenerator(list(STRIDES), offset=0.5)
    max_iou = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0, ignore_iof_thr=-1)
    atss = ATSSAssigner(topk=9)
    fcos = FCOSHead(
        num_classes=len(names),
        in_channels=32,
        feat_channels=32,
        stacked_convs=1,
        center_sampling=True,
        center_sample_radius=1.5,
        strides=list(STRIDES),
    )
    ranges = ((-1, 64), (64, 128), (128, 256), (256, 512), (512, 1e8))
    load, resize = LoadAnnotations(with_bbox=True), Resize(scale=(1333, 800), keep_ratio=True)
    out = []
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        h, w = info["height"], info["width"]
        res = load(dict(info, img=np.zeros((h, w, 1), dtype=np.uint8), img_shape=(h, w), ori_shape=(h, w)))
        res = resize(res)
        nh, nw = res["img_shape"]
        ph, pw = -(-nh // 32) * 32, -(-nw // 32) * 32
        keep = ~res["gt_ignore_flags"]
        boxes = res["gt_bboxes"].tensor[torch.as_tensor(keep)]
        labels = torch.as_tensor(res["gt_bboxes_labels"][keep], dtype=torch.long)
        gt = InstanceData(bboxes=boxes, labels=labels)
        fsz = [(math.ceil(ph / s), math.ceil(pw / s)) for s in STRIDES]
        row = {
            "image_id": info["img_id"],
            "resized": [int(nh), int(nw)],
            "padded": [int(ph), int(pw)],
            "boxes": len(boxes),
        }
        cats = [label_to_cat[k] for k in range(len(names))]
        for name, gen in (("mmdet-retinanet", retina_gen), ("atss", atss_gen)):
            levels = gen.grid_priors(fsz, device="cpu")
            priors = torch.cat(levels)
            n = len(priors)
            if len(boxes) == 0:
                row[name] = _record({}, cats, [], 0, 0, n)
                continue
            pred = InstanceData(priors=priors)
            if name == "atss":
                r = atss.assign(pred, [len(x) for x in levels], gt)
            else:
                r = max_iou.assign(pred, gt)
            pos = r.gt_inds > 0
            row[name] = _record({}, cats, r.labels[pos], int(pos.sum()), int((r.gt_inds == -1).sum()), n)
        points = points_gen.grid_priors(fsz, device="cpu")
        n = sum(len(p) for p in points)
        if len(boxes) == 0:
            row["fcos"] = _record({}, cats, [], 0, 0, n)
        else:
            rr = torch.cat([points[k].new_tensor(ranges[k])[None].expand(len(points[k]), 2) for k in range(5)])
            lab, _ = fcos._get_targets_single(gt, torch.cat(points), rr, [len(p) for p in points])
            pos = lab < len(names)
            row["fcos"] = _record({}, cats, lab[pos], int(pos.sum()), 0, n)
        out.append(row)
    return out


# ------------------------------------------------------------------------------------------ main
def anchors(torch, args) -> None:
    from make_framework_oracles import AUTHORS, commit_of, versions, write_json

    src = Path(args.detectron2_src) if getattr(args, "detectron2_src", None) else None
    if src is None:
        src = Path(tempfile.mkdtemp(prefix="detectron2-src-"))
        gd = args.sources / AUTHORS["detectron2"][0] / "repo"
        gd = gd / ".git" if (gd / ".git").is_dir() else gd
        tar = subprocess.run(
            ["git", "--git-dir", str(gd), "archive", commit_of(args.sources, "detectron2"), "detectron2"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=tar, check=True)
    d2 = detectron2_modules(src)
    files = {**bundled(), **synthetic()}
    made = versions(torch, args.sources, ["detectron2"])
    conventions = (
        "each image a batch of one; feature maps ceil(padded / stride); crowd boxes left out; no image "
        "filters; no random flip; detectron2's single 800 short side"
    )
    d2_out = {"made_by": made, "conventions": conventions, "datasets": {}}
    mm_out = {"made_by": made, "conventions": conventions, "datasets": {}}
    for name, coco in files.items():
        inline = None if name.startswith("coco-mini") else coco
        d2_out["datasets"][name] = {"coco": inline, "images": detectron2_dataset(torch, d2, coco)}
        mm_out["datasets"][name] = {"coco": inline, "images": mmdet_dataset(torch, coco)}
        print(name, "done")
    write_json(args.out / "detectron2-oracle" / "anchors.json", d2_out)
    write_json(args.out / "mmdet-oracle" / "anchors.json", mm_out)


# ------------------------------------------------------------------------------------------ torchvision models
def _torchvision_boxes(torch, coco: dict):
    """Per image: float32 xyxy boxes and category ids as torchvision's references build them.

    The same rule as ``shared/tools/make_torchvision_oracle.py`` (which holds ``retinanet``): x2 = float32 x1 +
    float32 w, crowd boxes and boxes with w <= 0 or h <= 0 left out, not clipped.
    """
    by = {}
    for a in coco["annotations"]:
        by.setdefault(a["image_id"], []).append(a)
    for im in coco["images"]:
        boxes, cats = [], []
        for a in by.get(im["id"], []):
            if a.get("iscrowd", 0):
                continue
            x, y, w, h = a["bbox"]
            if not (w > 0 and h > 0):
                continue
            t = torch.tensor([x, y, w, h], dtype=torch.float32)
            t[2:] += t[:2]
            boxes.append(t.tolist())
            cats.append(a["category_id"])
        yield im, torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), cats


def torchvision_dataset(torch, tv, coco: dict) -> list:
    """``rpn`` and ``ssd300`` labels per image from torchvision's own models, built without weights.

    rpn: ``fasterrcnn_resnet50_fpn``'s ``transform`` (800 / 1333, pad 32), its backbone run on the padded
    image for the feature map sizes, ``rpn.anchor_generator`` and ``rpn.assign_targets_to_anchors``
    (``box_iou`` + ``Matcher(0.7, 0.3, allow_low_quality_matches=True)``: 1 foreground, 0 background,
    -1 discarded). ssd300: ``ssd300_vgg16``'s ``transform`` (fixed 300 x 300), its VGG backbone's feature
    maps, ``anchor_generator`` (``DefaultBoxGenerator``) and ``proposal_matcher`` (``SSDMatcher(0.5)``) on
    ``box_iou``, foreground ``matched_idxs >= 0`` as ``SSD.compute_loss`` takes it (no ignored zone).
    """
    out = []
    feats_cache: dict = {}

    def features(model, key, tensors):
        shape = tuple(tensors.shape[-2:])
        if (key, shape) not in feats_cache:
            with torch.no_grad():
                f = model.backbone(tensors)
            f = list(f.values()) if isinstance(f, dict) else [f]
            feats_cache[(key, shape)] = [torch.zeros(1, 1, *x.shape[-2:]) for x in f]
        return feats_cache[(key, shape)]

    for im, boxes, cats in _torchvision_boxes(torch, coco):
        h, w = im["height"], im["width"]
        row = {"image_id": im["id"], "boxes": len(cats)}
        for name, model in (("rpn", tv.frcnn), ("ssd300", tv.ssd)):
            target = [{"boxes": boxes.clone(), "labels": torch.zeros(len(cats), dtype=torch.int64)}]
            images, targets = model.transform([torch.zeros(3, h, w)], target)
            feats = features(model, name, images.tensors)
            if name == "rpn":
                anchors = model.rpn.anchor_generator(images, feats)
                labels, _ = model.rpn.assign_targets_to_anchors(anchors, targets)
                labels = labels[0]
                fg, ign = labels == 1, labels == -1
                idx = (
                    model.rpn.proposal_matcher(model.rpn.box_similarity(targets[0]["boxes"], anchors[0]))
                    if len(cats)
                    else None
                )
            else:
                anchors = model.anchor_generator(images, feats)
                if len(cats):
                    idx = model.proposal_matcher(tv.box_iou(targets[0]["boxes"], anchors[0]))
                else:
                    idx = torch.full((len(anchors[0]),), -1, dtype=torch.int64)
                fg, ign = idx >= 0, torch.zeros(len(idx), dtype=torch.bool)
            n = len(anchors[0])
            matched = [cats[k] for k in idx[fg].tolist()] if len(cats) else []
            row[name] = _record(
                {
                    "resized": list(images.image_sizes[0]),
                    "padded": list(images.tensors.shape[-2:]),
                    "feature_maps": [list(f.shape[-2:]) for f in feats],
                },
                None,
                matched,
                int(fg.sum()),
                int(ign.sum()),
                n,
            )
        out.append(row)
    return out


def torchvision_anchors(torch, args) -> None:
    """The ``torchvision`` step: ``tests/data/torchvision-models-oracle/anchors.json`` for ``rpn`` and ``ssd300``."""
    sys.path.insert(0, "/work/shared/tools")
    import torchvision
    import tvshim  # noqa: F401  (torchvision's pure-Python parts on a CPU torch without its C ops)
    from make_framework_oracles import write_json
    from torchvision.models.detection import fasterrcnn_resnet50_fpn, ssd300_vgg16
    from torchvision.ops import box_iou

    torch.manual_seed(0)
    tv = types.SimpleNamespace(
        frcnn=fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).train(),
        ssd=ssd300_vgg16(weights=None, weights_backbone=None).train(),
        box_iou=box_iou,
    )
    files = {**bundled(), **{k: v for k, v in synthetic().items() if k in ("integer-boxes", "tiny-border-empty")}}
    res = {
        "made_by": {
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "python": sys.version.split()[0],
        },
        "tool": "tools/make_framework_oracles.py torchvision",
        "conventions": (
            "boxes as torchvision's references build them (float32 x1 + float32 w; crowd, w <= 0 and "
            "h <= 0 left out; not clipped); each image a batch of one through the model's own "
            "GeneralizedRCNNTransform in training mode; feature map sizes from the model's own "
            "backbone on the padded image (random weights); rpn: rpn.anchor_generator + "
            "rpn.assign_targets_to_anchors (ignored = label -1); ssd300: anchor_generator + "
            "proposal_matcher on box_iou, foreground = matched_idxs >= 0"
        ),
        "datasets": {},
    }
    with torch.no_grad():
        for name, coco in files.items():
            inline = None if name.startswith("coco-mini") else coco
            res["datasets"][name] = {"coco": inline, "images": torchvision_dataset(torch, tv, coco)}
            print(name, "done")
    write_json(args.out / "torchvision-models-oracle" / "anchors.json", res)
