#!/usr/bin/python3
"""The official DAMO-YOLO pre/post-processing recipe, timed per stage.

Decode: PIL Image.open(path).convert('RGB') (tools/demo.py). Preprocess: cv2.resize
INTER_LINEAR to S×S (stretch), HWC→CHW, float32, batch dim (transform_img). Postprocess on
the golden network outputs: score > conf candidates (multi-label), torchvision batched_nms,
top 500, per-axis scaling (damo/utils/boxes.py postprocess + BoxList.resize).

usage: official_prepost.py FIXTURES_DIR REPEATS  → one JSON line per (model, image)
"""
import json
import os
import sys
import time

import cv2
import numpy as np
import torch
import torchvision
from PIL import Image

torch.set_num_threads(1)
cv2.setNumThreads(1)

fixtures, repeats = sys.argv[1], int(sys.argv[2])
MODELS = {"damoyolo_T_640": (640, 0.05, 0.7), "damoyolo_Ns_416": (416, 0.03, 0.65)}
IMAGES = ["astronaut_png", "camera_png", "chelsea_jpg", "chelsea_png", "coffee_png"]


def timed(fn):
    best = []
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best.append((time.perf_counter() - t) * 1e3)
    best.sort()
    return out, best[len(best) // 2], best[0]


for model, (size, conf, iou) in MODELS.items():
    for image in IMAGES:
        stem, ext = image.rsplit("_", 1)
        path = os.path.join(fixtures, "images", f"{stem}.{ext}")
        golden = os.path.join(fixtures, "golden", model, image)
        img, dec_med, dec_min = timed(lambda: np.asarray(Image.open(path).convert("RGB")))
        h0, w0 = img.shape[:2]

        def preprocess():
            r = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
            return torch.from_numpy(np.ascontiguousarray(r.transpose(2, 0, 1))).float().unsqueeze(0)

        _, pre_med, pre_min = timed(preprocess)
        meta = json.load(open(os.path.join(golden, "outputs.json")))
        a = meta[0]["dims"][1]
        scores = torch.from_numpy(np.fromfile(os.path.join(golden, "out0.f32"), np.float32).reshape(1, a, -1))
        boxes = torch.from_numpy(np.fromfile(os.path.join(golden, "out1.f32"), np.float32).reshape(1, a, 4))

        def postprocess():
            s, b = scores[0], boxes[0]
            anchor, cls = (s > conf).nonzero(as_tuple=True)
            cand_boxes, cand_scores = b[anchor], s[anchor, cls]
            keep = torchvision.ops.batched_nms(cand_boxes, cand_scores, cls, iou)[:500]
            out = cand_boxes[keep].clone()
            out[:, 0::2] *= w0 / size
            out[:, 1::2] *= h0 / size
            return out, cand_scores[keep], cls[keep]

        (kept, _, _), post_med, post_min = timed(postprocess)
        print(json.dumps({"model": model, "image": image, "decode_ms": dec_med, "preprocess_ms": pre_med,
                          "postprocess_ms": post_med, "decode_min": dec_min, "preprocess_min": pre_min,
                          "postprocess_min": post_min, "detections": int(kept.shape[0])}), flush=True)
