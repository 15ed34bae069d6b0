"""Export a DamoYolo model to ONNX with the official conventions (facts doc §3): opset 11, input `images`
[1,3,S,S] float RGB 0-255, RepConv in deploy form, SiLU as x*sigmoid(x), static shapes, batch 1.

  default form : outputs `output` scores [1,A,C] (sigmoid) and `boxes` [1,A,4] xyxy input pixels
  --benchmark  : six outputs cls_s8, cls_s16, cls_s32 (sigmoid), reg_s8, reg_s16, reg_s32 (raw bin logits)

Usage: /usr/bin/python3 -m damoyolo_train.export --ckpt CKPT --out DIR [--benchmark] [--name NAME]
"""
import argparse
import copy
import json
import os
import warnings

import torch

from .model import build_model


def export_onnx(model, path, benchmark=False, batch=1):
    m = copy.deepcopy(model).cpu().eval().to(memory_format=torch.contiguous_format)
    m.deploy()
    m.mode = 'benchmark' if benchmark else 'export'
    dummy = torch.zeros(batch, 3, m.img_size, m.img_size)
    if benchmark:
        names = ['output'] + [f'cls_s{s}' for s in (16, 32)] + [f'reg_s{s}' for s in (8, 16, 32)]
    else:
        # Upstream names only the first output and the second gets an auto id (issue #60); consumers bind by
        # index. We name it 'boxes' for readability - index binding still works.
        names = ['output', 'boxes']
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with torch.no_grad():
            torch.onnx.export(m, dummy, path, opset_version=11, input_names=['images'], output_names=names,
                              do_constant_folding=True)
    return path


def load_checkpoint(path):
    ck = torch.load(path, map_location='cpu')
    model = build_model(ck['arch'], ck['num_classes'], ck['img_size'])
    state = ck.get('ema') or ck['model']
    model.load_state_dict(state)
    return model, ck


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--ckpt', required=True)
    ap.add_argument('--out', required=True, help='output directory')
    ap.add_argument('--name', default=None, help='base file name (default damoyolo_<arch>_synth_<size>)')
    args = ap.parse_args(argv)
    model, ck = load_checkpoint(args.ckpt)
    os.makedirs(args.out, exist_ok=True)
    base = args.name or f"damoyolo_{ck['arch']}_synth_{ck['img_size']}"
    p1 = export_onnx(model, os.path.join(args.out, base + '.onnx'))
    p2 = export_onnx(model, os.path.join(args.out, base + '_benchmark.onnx'), benchmark=True)
    labels = os.path.join(args.out, base + '.labels.txt')
    with open(labels, 'w') as f:
        f.write('\n'.join(ck['class_names']) + '\n')
    print(json.dumps({'onnx': p1, 'onnx_benchmark': p2, 'labels': labels}))


if __name__ == '__main__':
    main()
