"""A compact RetinaNet-style one-stage detector that trains from scratch on a CPU.

* backbone: five stride-2 stages of 3x3 conv + BatchNorm + ReLU (no pretrained weights),
  giving C3/C4/C5 at strides 8/16/32;
* FPN (Lin et al., 2017): 1x1 laterals, nearest-neighbour top-down sum, 3x3 smoothing -> P3-P5;
* heads shared over levels (Lin et al., RetinaNet, 2017): a classification tower and a box
  tower of ``tower_depth`` 3x3 convs (+ GroupNorm + ReLU), then ``A * L`` class logits and
  ``A * 4`` box deltas per location, where ``L`` is the number of logits one anchor needs
  (``C`` for sigmoid heads, ``C + 1`` for softmax heads, ``C + groups`` for grouped softmax).
* the sigmoid head's bias starts at ``-log((1 - pi) / pi)`` (prior probability pi = 0.01);
  softmax heads start with the background logit ``log(C (1 - pi) / pi)`` above the others,
  which gives the foreground a total prior pi, split evenly over the C classes; a loss can pass
  its own ``bias_init`` (BAGS' grouped head; ECM, whose scored probability ``sigmoid(2f + m)``
  starts at pi with ``b = (logit(pi) - m) / 2``: see ``ClsObjective.bias_init``).

Outputs are flattened in (level, y, x, anchor) order, matching
:func:`imbalance_cli.anchors.grid_anchors`.
Box coding is the standard R-CNN parameterisation (``dx, dy, dw, dh``) of
:func:`imbalance_cli.losses.encode_deltas` / :func:`~imbalance_cli.losses.decode_deltas`.
P6 and P7 (for presets with five levels) are RetinaNet's extra stride-2 convs on P5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from imbalance_cli.boxes import box_iou
from imbalance_cli.losses.regression import decode_deltas as decode


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the compact detector (plain data)."""

    widths: tuple[int, ...] = (24, 32, 64, 96, 128)  # stage widths, strides 2..32
    fpn_channels: int = 64
    tower_depth: int = 2
    prior_prob: float = 0.01
    num_levels: int = 3  # P3..P(2 + num_levels), at most 5


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Backbone(nn.Module):
    """Five stride-2 stages (each: a stride-2 conv then a stride-1 conv); returns C3, C4, C5."""

    def __init__(self, widths: tuple[int, ...]):
        super().__init__()
        stages, cin = [], 3
        for w in widths:
            stages.append(nn.Sequential(_conv_bn(cin, w, 2), _conv_bn(w, w, 1)))
            cin = w
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Feature maps at strides 8, 16 and 32."""
        feats = []
        for s in self.stages:
            x = s(x)
            feats.append(x)
        return feats[2:]


class FPN(nn.Module):
    """Feature pyramid: laterals + top-down nearest upsampling + 3x3 output convs."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, 1, 1) for _ in in_channels)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        """P3..P5 from C3..C5."""
        lat = [conv(f) for conv, f in zip(self.lateral, feats)]
        for i in range(len(lat) - 2, -1, -1):
            lat[i] = lat[i] + F.interpolate(lat[i + 1], size=lat[i].shape[-2:], mode="nearest")
        return [o(x) for o, x in zip(self.output, lat)]


def _tower(channels: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Conv2d(channels, channels, 3, 1, 1), nn.GroupNorm(8, channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class Detector(nn.Module):
    """Backbone + FPN + shared heads.

    Parameters
    ----------
    num_logits:
        Classification outputs per anchor (``C``, ``C + 1`` or ``C + groups``).
    num_anchors:
        Anchors per location (the same on every level).
    head:
        ``"sigmoid"``, ``"softmax"`` (background last) or ``"grouped"`` (bias left at 0 except as
        given by ``bias_init``).
    bias_init:
        Optional explicit initial bias per logit (length ``num_logits``); overrides ``head``'s rule.
    """

    def __init__(
        self,
        num_logits: int,
        num_anchors: int,
        head: str = "sigmoid",
        config: ModelConfig | None = None,
        bias_init: Tensor | None = None,
    ):
        super().__init__()
        cfg = config or ModelConfig()
        self.config = cfg
        self.num_logits = int(num_logits)
        self.num_anchors = int(num_anchors)
        self.head = head
        self.backbone = Backbone(cfg.widths)
        self.fpn = FPN(tuple(cfg.widths[2:]), cfg.fpn_channels)
        ch = cfg.fpn_channels
        self.extra = nn.ModuleList(nn.Conv2d(ch, ch, 3, 2, 1) for _ in range(max(0, cfg.num_levels - 3)))
        self.cls_tower = _tower(ch, cfg.tower_depth)
        self.box_tower = _tower(ch, cfg.tower_depth)
        self.cls_out = nn.Conv2d(ch, num_anchors * num_logits, 3, 1, 1)
        self.box_out = nn.Conv2d(ch, num_anchors * 4, 3, 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01) if m in (self.cls_out, self.box_out) else nn.init.kaiming_normal_(
                    m.weight, nonlinearity="relu"
                )
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        with torch.no_grad():
            if bias_init is not None:
                self.cls_out.bias.copy_(torch.as_tensor(bias_init, dtype=torch.float32).repeat(num_anchors))
            elif head == "sigmoid":
                self.cls_out.bias.fill_(-math.log((1 - cfg.prior_prob) / cfg.prior_prob))
            elif head == "softmax":
                b = torch.zeros(num_logits)
                b[-1] = math.log((num_logits - 1) * (1 - cfg.prior_prob) / cfg.prior_prob)
                self.cls_out.bias.copy_(b.repeat(num_anchors))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, list[tuple[int, int]]]:
        """Return ``(logits (B, A_total, L), deltas (B, A_total, 4), level sizes [(h, w), ...])``."""
        feats = self.fpn(self.backbone(images))[: self.config.num_levels]
        for i, conv in enumerate(self.extra):
            feats.append(conv(feats[-1] if i == 0 else F.relu(feats[-1])))
        B = images.shape[0]
        logits, deltas, sizes = [], [], []
        for p in feats:
            h, w = p.shape[-2:]
            sizes.append((int(h), int(w)))
            c = self.cls_out(self.cls_tower(p))  # (B, A*L, h, w)
            r = self.box_out(self.box_tower(p))
            logits.append(c.permute(0, 2, 3, 1).reshape(B, h * w * self.num_anchors, self.num_logits))
            deltas.append(r.permute(0, 2, 3, 1).reshape(B, h * w * self.num_anchors, 4))
        return torch.cat(logits, 1), torch.cat(deltas, 1), sizes

    def classifier_weight_norms(self) -> Tensor:
        """L2 norm of the final classifier's weights per logit (averaged over anchor shapes), (L,).

        The quantity of the BAGS paper's Fig. 1 (Li et al., Balanced Group Softmax, CVPR 2020):
        head classes grow larger norms.
        """
        w = self.cls_out.weight.detach().reshape(self.num_anchors, self.num_logits, -1)
        return w.norm(dim=2).mean(dim=0)


# -------------------------------------------------------------------------------------------
# NMS and post-processing
# -------------------------------------------------------------------------------------------


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression; indices of kept boxes, by decreasing score.

    Same result as ``torchvision.ops.nms``: a box is dropped when its IoU with a kept,
    higher-scoring box exceeds ``iou_threshold``. The IoU matrix is computed once
    (vectorised); the greedy pass walks it with one boolean row operation per kept box.
    """

    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    b = boxes[order]
    over = box_iou(b, b) > iou_threshold
    n = len(order)
    suppressed = torch.zeros(n, dtype=torch.bool, device=boxes.device)
    over_cpu = over.cpu()
    supp = suppressed.cpu()
    keep = []
    for i in range(n):
        if supp[i]:
            continue
        keep.append(i)
        supp |= over_cpu[i]
    return order[torch.as_tensor(keep, dtype=torch.int64, device=boxes.device)]


def batched_nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float) -> Tensor:
    """Class-aware NMS: boxes of different classes never suppress each other.

    Vectorised by offsetting each class's boxes by ``class * (max coordinate + 1)`` so boxes of
    different classes cannot overlap, then one :func:`nms` call.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    offset = classes.to(boxes.dtype) * (boxes.max() + 1)
    return nms(boxes + offset[:, None], scores, iou_threshold)


@dataclass(frozen=True)
class PostProcess:
    """Inference settings: score threshold, candidates per level, NMS IoU, detections per image."""

    score_threshold: float = 0.05
    topk_candidates: int = 1000
    nms_iou: float = 0.5
    max_detections: int = 100


def postprocess(
    scores: Tensor,
    deltas: Tensor,
    anchors: Tensor,
    level_counts: list[int],
    image_size: tuple[int, int],
    cfg: PostProcess = PostProcess(),
) -> tuple[Tensor, Tensor, Tensor]:
    """Detections of one image from per-anchor class scores ``(A, C)`` (probabilities).

    Per level: keep (anchor, class) pairs with score > threshold, the ``topk_candidates``
    best; decode their boxes, clip to the image; then class-aware NMS over all levels and the
    ``max_detections`` best. Returns ``(boxes (n, 4) xyxy, scores (n,), classes (n,))``.
    """

    H, W = image_size
    all_b, all_s, all_c = [], [], []
    start = 0
    C = scores.shape[1]
    for n in level_counts:
        s = scores[start : start + n].reshape(-1)
        keep = torch.nonzero(s > cfg.score_threshold).squeeze(1)
        if keep.numel() > cfg.topk_candidates:
            top = torch.topk(s[keep], cfg.topk_candidates).indices
            keep = keep[top]
        a_idx = keep // C + start
        cls = keep % C
        b = decode(anchors[a_idx], deltas[a_idx])
        b[:, 0::2] = b[:, 0::2].clamp(0, W)
        b[:, 1::2] = b[:, 1::2].clamp(0, H)
        all_b.append(b)
        all_s.append(s[keep])
        all_c.append(cls)
        start += n
    boxes, sc, cl = torch.cat(all_b), torch.cat(all_s), torch.cat(all_c)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, sc, cl = boxes[valid], sc[valid], cl[valid]
    keep = batched_nms(boxes, sc, cl, cfg.nms_iou)[: cfg.max_detections]
    return boxes[keep], sc[keep], cl[keep]
