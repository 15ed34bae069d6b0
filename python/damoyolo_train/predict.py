"""PyTorch predictions on a COCO-format split, written as a COCO results file, with the official pipeline.

This is the reference the C++ runtime is measured against: the same checkpoint, run by PyTorch with the
official recipe (PIL `convert('RGB')`, cv2 INTER_LINEAR stretch to S×S, float 0-255, the default export's
scores and boxes, official post-processing: score > conf candidates, class-aware NMS, top 500, per-axis scaling),
so `damoyolo eval --results` scores PyTorch and the C++ pipeline with one evaluator.

Usage: /usr/bin/python3 -m damoyolo_train.predict --ckpt CKPT --val-dir DIR --out results.json [--conf 0.03 --iou 0.65]
"""
import argparse
import copy
import json
import os

import cv2
import numpy as np
import torch
from PIL import Image

from .evaluate import postprocess
from .export import load_checkpoint


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--ckpt', required=True)
    ap.add_argument('--val-dir', required=True, help='folder with instances_val.json and images/')
    ap.add_argument('--out', required=True)
    ap.add_argument('--conf', type=float, default=0.03)
    ap.add_argument('--iou', type=float, default=0.65)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    model, ck = load_checkpoint(args.ckpt)
    m = copy.deepcopy(model).eval().to(memory_format=torch.contiguous_format)
    m.deploy()
    m.mode = 'export'  # the default export's two outputs: scores [1,A,C], boxes [1,A,4]
    size = ck['img_size']
    with open(os.path.join(args.val_dir, 'instances_val.json')) as f:
        coco = json.load(f)
    cat_ids = [c['id'] for c in coco['categories']]  # contiguous class i -> category id, same order as the labels
    results = []
    with torch.no_grad():
        for im in coco['images']:
            rgb = np.asarray(Image.open(os.path.join(args.val_dir, 'images', im['file_name'])).convert('RGB'))
            h0, w0 = rgb.shape[:2]
            x = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR)
            x = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))).float().unsqueeze(0)
            scores, boxes = m(x)
            b, s, lab = postprocess(scores[0], boxes[0], args.conf, args.iou)
            b = b.clone()
            b[:, [0, 2]] *= w0 / size
            b[:, [1, 3]] *= h0 / size
            for bb, ss, ll in zip(b.tolist(), s.tolist(), lab.tolist()):
                results.append({'image_id': im['id'], 'category_id': cat_ids[ll], 'score': ss,
                                'bbox': [bb[0], bb[1], bb[2] - bb[0], bb[3] - bb[1]]})
    with open(args.out, 'w') as f:
        json.dump(results, f)
    print(json.dumps({'images': len(coco['images']), 'detections': len(results), 'out': args.out}))


if __name__ == '__main__':
    main()
