"""Post-processing (official semantics, facts doc §5) and a COCO-style bbox AP evaluator.

pycocotools is not packaged for Debian here, so AP is computed by a compact re-implementation of the
COCOeval 'bbox' protocol for the case this dataset needs (no crowd, area range 'all'): per category, dets
sorted by score, greedy matching to the best-IoU unmatched GT at each IoU threshold 0.50:0.05:0.95,
maxDets 100 per (image, category), 101-point interpolated precision, categories without GT skipped.
"""
import numpy as np
import torch
import torchvision


def postprocess(scores, boxes, conf=0.03, iou=0.65, max_det=500):
    """scores [A,C] (sigmoid), boxes [A,4] xyxy -> (boxes [K,4], scores [K], labels [K]).
    Multi-label candidates (score > conf), class-aware NMS, sorted by score, capped at max_det."""
    a, c = (scores > conf).nonzero(as_tuple=True)
    b, s = boxes[a], scores[a, c]
    keep = torchvision.ops.batched_nms(b, s, c, iou)[:max_det]
    return b[keep], s[keep], c[keep]


def _iou_xywh(d, g):
    dx2, dy2 = d[:, 0] + d[:, 2], d[:, 1] + d[:, 3]
    gx2, gy2 = g[:, 0] + g[:, 2], g[:, 1] + g[:, 3]
    iw = np.clip(np.minimum(dx2[:, None], gx2[None]) - np.maximum(d[:, None, 0], g[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(dy2[:, None], gy2[None]) - np.maximum(d[:, None, 1], g[None, :, 1]), 0, None)
    inter = iw * ih
    return inter / (d[:, 2:3] * d[:, 3:4] + (g[:, 2] * g[:, 3])[None] - inter + 1e-12)


def coco_ap(gt_anns, dets, cat_ids, max_dets=100):
    """gt_anns: list of {image_id, category_id, bbox xywh}; dets: list of {image_id, category_id, bbox, score}.
    Returns dict AP, AP50, AP75 and per-category AP."""
    thrs = np.linspace(0.5, 0.95, 10)
    rec_pts = np.linspace(0, 1, 101)
    per_cat = {}
    for cat in cat_ids:
        g_by_img, d_by_img = {}, {}
        for g in gt_anns:
            if g['category_id'] == cat:
                g_by_img.setdefault(g['image_id'], []).append(g['bbox'])
        for d in dets:
            if d['category_id'] == cat:
                d_by_img.setdefault(d['image_id'], []).append((d['score'], d['bbox']))
        n_gt = sum(len(v) for v in g_by_img.values())
        if n_gt == 0:
            continue
        scores, matched = [], []
        for img, dl in d_by_img.items():
            dl = sorted(dl, key=lambda t: -t[0])[:max_dets]
            db = np.array([b for _, b in dl], np.float64).reshape(-1, 4)
            gb = np.array(g_by_img.get(img, []), np.float64).reshape(-1, 4)
            m = np.zeros((len(thrs), len(dl)), bool)
            if len(gb):
                ious = _iou_xywh(db, gb)
                for t, thr in enumerate(thrs):
                    used = np.zeros(len(gb), bool)
                    for i in range(len(dl)):
                        cand = np.where(~used & (ious[i] >= thr), ious[i], -1)
                        j = int(cand.argmax())
                        if cand[j] >= 0:
                            used[j] = True
                            m[t, i] = True
            scores.extend(s for s, _ in dl)
            matched.append(m)
        if not scores:
            per_cat[cat] = np.zeros(len(thrs))
            continue
        order = np.argsort(-np.array(scores), kind='mergesort')
        m = np.concatenate(matched, 1)[:, order]
        ap = np.zeros(len(thrs))
        for t in range(len(thrs)):
            tp = np.cumsum(m[t])
            fp = np.cumsum(~m[t])
            rec = tp / n_gt
            prec = tp / np.maximum(tp + fp, 1e-12)
            prec = np.maximum.accumulate(prec[::-1])[::-1]  # precision envelope
            idx = np.searchsorted(rec, rec_pts, side='left')
            q = np.where(idx < len(prec), prec[np.minimum(idx, len(prec) - 1)], 0.0)
            ap[t] = q.mean()
        per_cat[cat] = ap
    allap = np.array(list(per_cat.values()))
    return {'AP': float(allap.mean()), 'AP50': float(allap[:, 0].mean()), 'AP75': float(allap[:, 5].mean()),
            'per_category_AP': {int(k): float(v.mean()) for k, v in per_cat.items()}}
