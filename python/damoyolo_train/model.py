"""DAMO-YOLO model assembly and the configurations used here (facts doc §2.4)."""
import torch
import torch.nn as nn

from .backbone import STRUCTURE_NS, STRUCTURE_T, TinyNASMob, TinyNASRes
from .head import ZeroHead
from .neck import GiraffeNeckV2
from .ops import switch_to_deploy

CONFIGS = {
    # T: TinyNAS_res L20 k1kx, Focus, ReLU, RepConv; neck 64/128/256 depth 1.0 ReLU; R=16, 3x3 head.
    'T': dict(backbone='res', structure=STRUCTURE_T, act='relu', focus=True, reparam=True,
              neck_out=(64, 128, 256), depth=1.0, hidden_ratio=1.0, neck_act='relu', depthwise=False,
              reg_max=16, head_kernel=3, img_size=640, nms_conf=0.05, nms_iou=0.7),
    # Ns: TinyNAS_mob nano_small, 3x3 s2 stem, SiLU; depthwise neck 40/80/160 depth 0.5; R=7, 1x1 head.
    'Ns': dict(backbone='mob', structure=STRUCTURE_NS, act='silu', focus=False, reparam=False,
               neck_out=(40, 80, 160), depth=0.5, hidden_ratio=0.5, neck_act='silu', depthwise=True,
               reg_max=7, head_kernel=1, img_size=416, nms_conf=0.03, nms_iou=0.65),
}


class DamoYolo(nn.Module):
    def __init__(self, name='Ns', num_classes=80, img_size=None):
        super().__init__()
        cfg = dict(CONFIGS[name])
        self.name = name
        self.cfg = cfg
        self.num_classes = num_classes
        self.img_size = img_size or cfg['img_size']
        if cfg['backbone'] == 'res':
            self.backbone = TinyNASRes(cfg['structure'], act=cfg['act'], reparam=cfg['reparam'],
                                       use_focus=cfg['focus'])
        else:
            self.backbone = TinyNASMob(cfg['structure'], act=cfg['act'], use_focus=cfg['focus'])
        self.neck = GiraffeNeckV2(self.backbone.out_channels, cfg['neck_out'], cfg['depth'], cfg['hidden_ratio'],
                                  cfg['neck_act'], cfg['depthwise'])
        self.head = ZeroHead(cfg['neck_out'], num_classes, cfg['reg_max'], cfg['head_kernel'])
        # 'train' returns raw per-level maps; 'export' the two-output decode; 'benchmark' six raw maps.
        self.mode = 'train'

    def forward(self, x):
        feats = self.neck(self.backbone(x))
        if self.mode == 'export':
            return self.head.forward_export(feats, self.img_size)
        if self.mode == 'benchmark':
            return tuple(self.head.forward_benchmark(feats))
        return self.head.forward_raw(feats)

    def deploy(self):
        """Fold RepConv branches (BN folding of plain convs is done by the ONNX exporter in eval mode)."""
        switch_to_deploy(self)
        return self


def build_model(name='Ns', num_classes=80, img_size=None):
    return DamoYolo(name, num_classes, img_size)
