"""ZeroHead (facts doc §2.6): per level one gfl_cls conv (sigmoid) and one gfl_reg conv times a learned
Scale; distribution regression over R+1 bins; anchor points at (j*s, i*s) without a +0.5 offset."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Scale(nn.Module):
    def __init__(self, value=1.0):
        super().__init__()
        # rank-0 parameter: exports as a Mul by a scalar initializer, like the fixtures
        self.scale = nn.Parameter(torch.tensor(value, dtype=torch.float32))

    def forward(self, x):
        return x * self.scale


def make_priors(img_size, strides):
    """Anchor points (px, py) and per-anchor stride, levels s8 -> s16 -> s32, row-major inside a level."""
    pts, strd = [], []
    for s in strides:
        h = w = img_size // s
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing='ij')
        pts.append(torch.stack([xs.reshape(-1) * s, ys.reshape(-1) * s], 1))
        strd.append(torch.full((h * w,), float(s)))
    return torch.cat(pts), torch.cat(strd)


class ZeroHead(nn.Module):
    def __init__(self, in_channels, num_classes, reg_max, kernel=3, strides=(8, 16, 32), prior_prob=0.01):
        super().__init__()
        self.num_classes = num_classes
        self.reg_max = reg_max
        self.strides = strides
        pad = (kernel - 1) // 2
        self.gfl_cls = nn.ModuleList([nn.Conv2d(c, num_classes, kernel, 1, pad) for c in in_channels])
        self.gfl_reg = nn.ModuleList([nn.Conv2d(c, 4 * (reg_max + 1), kernel, 1, pad) for c in in_channels])
        self.scales = nn.ModuleList([Scale(1.0) for _ in in_channels])
        # Why: with sigmoid scores and ~2k anchors, a 0.01 prior keeps the initial focal loss from being
        # dominated by easy negatives (standard for GFL/QFL heads).
        bias = -math.log((1 - prior_prob) / prior_prob)
        for conv in self.gfl_cls:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.constant_(conv.bias, bias)
        for conv in self.gfl_reg:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.constant_(conv.bias, 0.0)
        self.register_buffer('proj', torch.arange(reg_max + 1, dtype=torch.float32), persistent=False)

    def forward_raw(self, feats):
        """Per level: cls logits [N,C,H,W] and reg bin logits [N,4(R+1),H,W] (after Scale).
        reg is computed before cls: that is the node order in the fixture graphs."""
        cls_out, reg_out = [], []
        for i, x in enumerate(feats):
            reg_out.append(self.scales[i](self.gfl_reg[i](x)))
            cls_out.append(self.gfl_cls[i](x))
        return cls_out, reg_out

    def forward_benchmark(self, feats):
        """The `--benchmark` export: three sigmoid class maps, then three raw bin-logit maps."""
        cls_out, reg_out = self.forward_raw(feats)
        return [torch.sigmoid(c) for c in cls_out] + reg_out

    def forward_export(self, feats, img_size):
        """The default export: scores [N,A,C] (sigmoid) and boxes [N,A,4] xyxy in input pixels.
        Shapes come from img_size as Python ints, so the graph carries constant shapes (no Shape ops)."""
        # int(): under tracing the batch becomes a constant, i.e. the exported batch is static (as upstream)
        n = int(feats[0].shape[0])
        R1 = self.reg_max + 1
        scores, dists = [], []
        for i, x in enumerate(feats):
            s = self.strides[i]
            hw = (img_size // s) ** 2
            h = img_size // s
            reg = self.scales[i](self.gfl_reg[i](x))
            cls = torch.sigmoid(self.gfl_cls[i](x))
            reg = F.softmax(reg.reshape(n, 4, R1, h, h), dim=2)
            dists.append(reg.reshape(n, 4, R1, hw).permute(0, 3, 1, 2))
            scores.append(cls.reshape(n, self.num_classes, hw).permute(0, 2, 1))
        scores = torch.cat(scores, 1)
        prob = torch.cat(dists, 1)                                       # [N,A,4,R+1]
        a = sum((img_size // s) ** 2 for s in self.strides)
        d = torch.matmul(prob.reshape(-1, R1), self.proj.reshape(R1, 1)).reshape(n, a, 4)
        pts, strd = make_priors(img_size, self.strides)
        d = d * strd.reshape(1, a, 1)
        px = pts[:, 0].reshape(1, a)
        py = pts[:, 1].reshape(1, a)
        boxes = torch.stack([px - d[..., 0], py - d[..., 1], px + d[..., 2], py + d[..., 3]], -1)
        return scores, boxes
