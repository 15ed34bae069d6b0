"""Building blocks of the DAMO-YOLO architecture (facts doc §2.1)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# Every BatchNorm in DAMO-YOLO uses eps 1e-3 (set by Detector.init_bn upstream). The value matters for
# BN folding and RepConv fusion, so it is a module-level constant used by every BN we create.
BN_EPS = 1e-3
BN_MOMENTUM = 0.03


def bn(c):
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class SiLU(nn.Module):
    """x * sigmoid(x). Export writes it out as Sigmoid + Mul (the official converter does the same
    replacement; the runtime expects that pair, not a fused SiLU op). Training and eager inference use the
    fused F.silu: the same function, but one pass over the activation forward and one backward instead of
    three plus a saved sigmoid: 1.51 -> 1.20 s per training step of Ns at 320, batch 16 (damoyolo_train.stepbench)."""

    def forward(self, x):
        if torch.onnx.is_in_onnx_export():
            return x * torch.sigmoid(x)
        return F.silu(x)


def get_activation(name):
    if name == 'relu':
        return nn.ReLU(inplace=True)
    if name == 'silu':
        return SiLU()
    if name in ('identity', None):
        return nn.Identity()
    raise ValueError(f'unknown activation {name!r}')


def make_divisible(v, divisor=8):
    """Round channel counts to multiples of 8 the way the nano models do (facts §2.1)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNAct(nn.Module):
    """Conv (no bias, 'same' padding) -> BN -> activation."""

    def __init__(self, cin, cout, k=1, stride=1, groups=1, act='relu'):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False)
        self.bn = bn(cout)
        self.act = get_activation(act)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


def _fuse_conv_bn(conv_weight, bn_mod):
    std = torch.sqrt(bn_mod.running_var + bn_mod.eps)
    scale = bn_mod.weight / std
    w = conv_weight * scale.reshape(-1, 1, 1, 1)
    b = bn_mod.bias - bn_mod.running_mean * scale
    return w, b


class RepConv(nn.Module):
    """3x3 conv+BN plus 1x1 conv+BN (same stride), summed, then the activation. No identity branch
    (upstream's rbr_identity is always None). switch_to_deploy() folds both into one 3x3 conv with bias so
    the exported graph has a single Conv per RepConv, like the released models."""

    def __init__(self, cin, cout, stride=1, act='relu'):
        super().__init__()
        self.cin, self.cout, self.stride = cin, cout, stride
        self.conv3 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn3 = bn(cout)
        self.conv1 = nn.Conv2d(cin, cout, 1, stride, 0, bias=False)
        self.bn1 = bn(cout)
        self.act = get_activation(act)
        self.fused = None

    def forward(self, x):
        if self.fused is not None:
            return self.act(self.fused(x))
        return self.act(self.bn3(self.conv3(x)) + self.bn1(self.conv1(x)))

    @torch.no_grad()
    def switch_to_deploy(self):
        if self.fused is not None:
            return
        w3, b3 = _fuse_conv_bn(self.conv3.weight, self.bn3)
        w1, b1 = _fuse_conv_bn(self.conv1.weight, self.bn1)
        # A 1x1 kernel is the centre tap of a zero-padded 3x3 kernel (same stride, padding 1 vs 0).
        w = w3 + F.pad(w1, [1, 1, 1, 1])
        fused = nn.Conv2d(self.cin, self.cout, 3, self.stride, 1, bias=True)
        fused.weight.copy_(w)
        fused.bias.copy_(b3 + b1)
        self.fused = fused
        for name in ('conv3', 'bn3', 'conv1', 'bn1'):
            delattr(self, name)


class Focus(nn.Module):
    """Space-to-depth in the phase order [ee, oe, eo, oo] (row parity first), then a stride-1 ConvBNAct."""

    def __init__(self, cin, cout, k=3, act='relu'):
        super().__init__()
        self.conv = ConvBNAct(cin * 4, cout, k, 1, act=act)

    def forward(self, x):
        return self.conv(torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1))


class SPPBottleneck(nn.Module):
    """1x1 (c -> c/2), max-pools 5/9/13 stride 1, concat [x, p5, p9, p13], 1x1 -> cout. SiLU always (upstream
    default argument), even inside ReLU backbones."""

    def __init__(self, cin, cout, ks=(5, 9, 13), act='silu'):
        super().__init__()
        hidden = cin // 2
        self.conv1 = ConvBNAct(cin, hidden, 1, act=act)
        self.pools = nn.ModuleList([nn.MaxPool2d(k, 1, k // 2) for k in ks])
        self.conv2 = ConvBNAct(hidden * (len(ks) + 1), cout, 1, act=act)

    def forward(self, x):
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [p(x) for p in self.pools], 1))


class MobileV3Block(nn.Module):
    """Inverted bottleneck: 1x1 expand (BN, act) -> depthwise 5x5 (stride, BN, act) -> 1x1 project (BN, no
    act); residual when stride 1 and cin == cout. SE is disabled in every released config."""

    def __init__(self, cin, cout, expand, stride=1, act='silu', k=5):
        super().__init__()
        self.expand = ConvBNAct(cin, expand, 1, act=act)
        self.dw = ConvBNAct(expand, expand, k, stride, groups=expand, act=act)
        self.project = ConvBNAct(expand, cout, 1, act='identity')
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.dw(self.expand(x)))
        return x + y if self.residual else y


class DepthwiseConv(nn.Module):
    """Downsampling conv of the nano neck: dw kxk (stride) -> BN -> act -> pw 1x1 -> BN -> act."""

    def __init__(self, cin, cout, k=3, stride=1, act='silu'):
        super().__init__()
        self.dw = ConvBNAct(cin, cin, k, stride, groups=cin, act=act)
        self.pw = ConvBNAct(cin, cout, 1, act=act)

    def forward(self, x):
        return self.pw(self.dw(x))


def switch_to_deploy(model):
    for m in model.modules():
        if isinstance(m, RepConv):
            m.switch_to_deploy()
    return model
