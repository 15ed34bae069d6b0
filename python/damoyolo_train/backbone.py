"""TinyNAS backbones (facts doc §2.2-2.3).

The structure lists use the fields of upstream's structure text files (class/in/out/btn/k/s/L). The released
text files are not in the facts doc, so the two structures below were read off the fixture ONNX graphs
(Conv weight shapes, strides and groups, in graph order):
  * STRUCTURE_T  <- damoyolo_T_640.onnx  (TinyNAS_res, K1KX blocks, Focus stem)
  * STRUCTURE_NS <- damoyolo_Ns_416.onnx (TinyNAS_mob; 'btn' and 'k' are ignored by the mob backbone, the
    expansion comes from the stage index, see mob_expansion()).
"""
import math

import torch.nn as nn

from .ops import ConvBNAct, Focus, MobileV3Block, RepConv, SPPBottleneck, get_activation, make_divisible

STRUCTURE_T = [
    dict(cls='ConvKXBNRELU', inc=3, out=24, s=1, k=3),
    dict(cls='SuperResConvK1KX', inc=24, out=64, btn=24, k=3, s=2, L=2),
    dict(cls='SuperResConvK1KX', inc=64, out=96, btn=64, k=3, s=2, L=2),
    dict(cls='SuperResConvK1KX', inc=96, out=192, btn=96, k=3, s=2, L=2),
    dict(cls='SuperResConvK1KX', inc=192, out=192, btn=152, k=3, s=1, L=2),
    dict(cls='SuperResConvK1KX', inc=192, out=384, btn=192, k=3, s=2, L=1),
]

STRUCTURE_NS = [
    dict(cls='ConvKXBNRELU', inc=3, out=16, s=1, k=3),
    dict(cls='SuperResConvK1KX', inc=16, out=24, btn=None, k=5, s=2, L=1),
    dict(cls='SuperResConvK1KX', inc=24, out=40, btn=None, k=5, s=2, L=2),
    dict(cls='SuperResConvK1KX', inc=40, out=64, btn=None, k=5, s=2, L=2),
    dict(cls='SuperResConvK1KX', inc=64, out=80, btn=None, k=5, s=1, L=2),
    dict(cls='SuperResConvK1KX', inc=80, out=160, btn=None, k=5, s=2, L=2),
]


class ResConvBlock(nn.Module):
    """conv1 (1x1 for K1KX / kxk for KXKX, in->btn, BN, act) -> conv2 (kxk, btn->out, stride; RepConv with
    identity activation when reparam) -> + residual (only when stride != 2) -> act."""

    def __init__(self, cin, cout, btn, k, stride, act, reparam, kind):
        super().__init__()
        k1 = 1 if kind == 'SuperResConvK1KX' else k
        self.conv1 = ConvBNAct(cin, btn, k1, 1, act=act)
        if reparam:
            assert k == 3, 'RepConv is 3x3 only'
            self.conv2 = RepConv(btn, cout, stride, act='identity')
        else:
            self.conv2 = ConvBNAct(btn, cout, k, stride, act='identity')
        self.has_residual = stride != 2
        self.proj = ConvBNAct(cin, cout, 1, act='identity') if (self.has_residual and cin != cout) else None
        self.act = get_activation(act)

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        if self.has_residual:
            y = y + (self.proj(x) if self.proj is not None else x)
        return self.act(y)


class TinyNASRes(nn.Module):
    def __init__(self, structure, act='relu', reparam=True, use_focus=True, with_spp=True,
                 out_indices=(2, 4, 5)):
        super().__init__()
        self.out_indices = out_indices
        blocks = nn.ModuleList()
        stem = structure[0]
        if use_focus:
            blocks.append(Focus(stem['inc'], stem['out'], stem['k'], act=act))
        else:
            blocks.append(ConvBNAct(stem['inc'], stem['out'], stem['k'], stem['s'], act=act))
        last = len(structure) - 1
        for i, st in enumerate(structure[1:], start=1):
            layers = []
            for j in range(st['L']):
                cin = st['inc'] if j == 0 else st['out']
                stride = st['s'] if j == 0 else 1
                layers.append(ResConvBlock(cin, st['out'], st['btn'], st['k'], stride, act, reparam, st['cls']))
                if with_spp and i == last and j == 0:
                    layers.append(SPPBottleneck(st['out'], st['out']))
            blocks.append(nn.Sequential(*layers))
        self.blocks = blocks
        self.out_channels = [structure[i]['out'] for i in out_indices]

    def forward(self, x):
        outs = []
        for i, b in enumerate(self.blocks):
            x = b(x)
            if i in self.out_indices:
                outs.append(x)
        return outs


def mob_expansion(stage_index, cout):
    """Expansion width of the mob stages: ratio 3.5 for stage 1, +0.5 per later stage (facts §2.3).
    Checked against Ns: 24->88, 40->160, 64->288, 80->400, 160->880."""
    return make_divisible(math.ceil(cout * (3.5 + 0.5 * (stage_index - 1))))


class TinyNASMob(nn.Module):
    def __init__(self, structure, act='silu', use_focus=False, with_spp=True, out_indices=(2, 4, 5)):
        super().__init__()
        self.out_indices = out_indices
        stem = structure[0]
        blocks = nn.ModuleList()
        if use_focus:
            blocks.append(Focus(stem['inc'], stem['out'], stem['k'], act=act))
        else:
            # Without Focus the stem stride is hard-coded to 2 (the file's s=1 is overridden).
            blocks.append(ConvBNAct(stem['inc'], stem['out'], 3, 2, act=act))
        last = len(structure) - 1
        for i, st in enumerate(structure[1:], start=1):
            e = mob_expansion(i, st['out'])
            layers = []
            for j in range(st['L']):
                cin = st['inc'] if j == 0 else st['out']
                layers.append(MobileV3Block(cin, st['out'], e, st['s'] if j == 0 else 1, act=act))
                if with_spp and i == last and j == 0:
                    layers.append(SPPBottleneck(st['out'], st['out']))
            blocks.append(nn.Sequential(*layers))
        self.blocks = blocks
        self.out_channels = [structure[i]['out'] for i in out_indices]

    def forward(self, x):
        outs = []
        for i, b in enumerate(self.blocks):
            x = b(x)
            if i in self.out_indices:
                outs.append(x)
        return outs
