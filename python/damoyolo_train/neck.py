"""GiraffeNeckV2 (facts doc §2.5) with its CSPStage / BasicBlock_3x3_Reverse parts (§2.1)."""
import math

import torch
import torch.nn as nn

from .ops import ConvBNAct, DepthwiseConv, MobileV3Block, RepConv, make_divisible


class BasicBlockReverse(nn.Module):
    """Non-depthwise: RepConv(c -> c*ratio, act) -> 3x3 ConvBNAct(-> c, act), plus the input.
    Depthwise: one MobileV3Block(c -> c) with expansion 3.0 (ratio ignored)."""

    def __init__(self, c, ratio, act, depthwise):
        super().__init__()
        self.depthwise = depthwise
        if depthwise:
            self.block = MobileV3Block(c, c, make_divisible(math.ceil(c * 3.0)), 1, act=act)
        else:
            mid = int(c * ratio)
            self.rep = RepConv(c, mid, 1, act=act)
            self.conv = ConvBNAct(mid, c, 3, 1, act=act)

    def forward(self, x):
        if self.depthwise:
            return self.block(x)  # MobileV3Block adds its own residual (stride 1, c == c)
        return x + self.conv(self.rep(x))


class CSPStage(nn.Module):
    """Two 1x1 convs split the input into y1 (ch_out//2) and y2 (the rest); y2 runs through n blocks in
    sequence; concat [y1, out_1, ..., out_n] (y2 itself is not kept) -> 1x1 -> ch_out."""

    def __init__(self, cin, cout, n, ratio, act, depthwise):
        super().__init__()
        c_first = cout // 2
        c_mid = cout - c_first
        self.conv1 = ConvBNAct(cin, c_first, 1, act=act)
        self.conv2 = ConvBNAct(cin, c_mid, 1, act=act)
        self.blocks = nn.ModuleList([BasicBlockReverse(c_mid, ratio, act, depthwise) for _ in range(n)])
        self.conv3 = ConvBNAct(c_first + n * c_mid, cout, 1, act=act)

    def forward(self, x):
        outs = [self.conv1(x)]
        y = self.conv2(x)
        for b in self.blocks:
            y = b(y)
            outs.append(y)
        return self.conv3(torch.cat(outs, 1))


class GiraffeNeckV2(nn.Module):
    def __init__(self, in_channels, out_channels, depth=1.0, hidden_ratio=1.0, act='relu', depthwise=False):
        super().__init__()
        in0, in1, in2 = in_channels
        o0, o1, o2 = out_channels
        n = round(3 * depth)  # Python's round-half-even, as upstream: 1.5 -> 2, 4.5 -> 4

        def down(c):
            if depthwise:
                return DepthwiseConv(c, c, 3, 2, act=act)
            return ConvBNAct(c, c, 3, 2, act=act)

        def csp(cin, cout):
            return CSPStage(cin, cout, n, hidden_ratio, act, depthwise)

        self.up = nn.Upsample(scale_factor=2, mode='nearest')
        self.down_x1 = down(in1)
        self.merge_3 = csp(in2 + in1, in2)
        self.down_x2 = down(in0)
        self.merge_4 = csp(in1 + in0 + in2, in1)
        self.merge_5 = csp(in0 + in1, o0)
        self.down_x5 = down(o0)
        self.merge_7 = csp(in1 + o0, o1)
        self.down_x4 = down(in1)
        self.down_x7 = down(o1)
        self.merge_6 = csp(in2 + in1 + o1, o2)

    def forward(self, feats):
        x2, x1, x0 = feats  # strides 8, 16, 32
        # The statement order below fixes the order of nodes in the exported graph; it matches the order the
        # Conv nodes appear in the unsimplified Ns fixture.
        x3 = self.merge_3(torch.cat([x0, self.down_x1(x1)], 1))
        x4 = self.merge_4(torch.cat([x1, self.down_x2(x2), self.up(x3)], 1))
        x5 = self.merge_5(torch.cat([x2, self.up(x4)], 1))
        x7 = self.merge_7(torch.cat([x4, self.down_x5(x5)], 1))
        x6 = self.merge_6(torch.cat([x3, self.down_x4(x4), self.down_x7(x7)], 1))
        return [x5, x7, x6]
