#!/usr/bin/env python3
"""Reference COCO bbox numbers for tests/eval: prints the 12 COCOeval stats.

    coco_reference.py [--reference auto|pycocotools|numpy] [--summary FILE] GT.json RESULTS.json

--reference pycocotools runs the real COCOeval (iouType='bbox') and prints
"pycocotools VERSION" on the first line; it exits non-zero when pycocotools
is not importable. --reference numpy runs an independent numpy
re-implementation of COCOeval's definition written for this project and
prints "numpy-reference". auto (the default) takes pycocotools when it is
importable. Both then print the 12 stats, one repr() per line. --summary
writes what pycocotools' summarize() printed (pycocotools only).

The numpy version is deliberately written in the style of the original
(numpy arrays, argsort(kind='mergesort'), searchsorted, np.mean) and not like
the C++ code, so that numpy's own semantics (stable sort, side='left',
pairwise summation, linspace values) are what the C++ side is checked against.
"""
import json
import sys

import numpy as np


def run_pycocotools(gt_path, dt_path, summary_path=None):
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_path)
        with open(dt_path) as f:
            dets = json.load(f)
        dt = gt.loadRes(dets)  # needs a non-empty list
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        ev.summarize()
    if summary_path:
        with open(summary_path, "w") as f:
            f.write(summary.getvalue())
    return list(ev.stats)


def iou_matrix(dts, gts):
    """maskUtils.iou for [x,y,w,h] boxes: [len(dts), len(gts)]."""
    out = np.zeros((len(dts), len(gts)))
    for j, g in enumerate(gts):
        gx, gy, gw, gh = (float(v) for v in g["bbox"])
        ga = gw * gh
        for i, d in enumerate(dts):
            dx, dy, dw, dh = (float(v) for v in d["bbox"])
            da = dw * dh
            w = min(dw + dx, gw + gx) - max(dx, gx)
            if w <= 0:
                continue
            h = min(dh + dy, gh + gy) - max(dy, gy)
            if h <= 0:
                continue
            inter = w * h
            union = da if g["iscrowd"] else da + ga - inter
            out[i, j] = inter / union
    return out


def run_numpy(gt_path, dt_path):
    with open(gt_path) as f:
        gtjson = json.load(f)
    with open(dt_path) as f:
        dets = json.load(f)
    iou_thrs = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
    rec_thrs = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
    max_dets = [1, 10, 100]
    area_rngs = [[0**2, 1e5**2], [0**2, 32**2], [32**2, 96**2], [96**2, 1e5**2]]
    img_ids = sorted(set(im["id"] for im in gtjson["images"]))
    cat_ids = sorted(set(c["id"] for c in gtjson["categories"]))
    img_set = set(img_ids)
    cat_set = set(cat_ids)
    assert all(d["image_id"] in img_set for d in dets), "result image ids must be in the ground truth"

    gts, dts = {}, {}
    for a in gtjson["annotations"]:
        a = dict(a)
        a.setdefault("iscrowd", 0)
        if "area" not in a:
            a["area"] = a["bbox"][2] * a["bbox"][3]
        if a["image_id"] in img_set and a["category_id"] in cat_set:
            gts.setdefault((a["image_id"], a["category_id"]), []).append(a)
    for n, d in enumerate(dets):
        d = dict(d)
        d["id"] = n + 1
        d["area"] = d["bbox"][2] * d["bbox"][3]
        if d["category_id"] in cat_set:
            dts.setdefault((d["image_id"], d["category_id"]), []).append(d)

    T, R, K, A, M = len(iou_thrs), len(rec_thrs), len(cat_ids), len(area_rngs), len(max_dets)

    def eval_img(g_all, d_all, rng, ious_sorted_dt):
        if not g_all and not d_all:
            return None
        g_ign = np.array([1 if (g["iscrowd"] or g["area"] < rng[0] or g["area"] > rng[1]) else 0 for g in g_all],
                         dtype=np.int64)
        gorder = np.argsort(g_ign, kind="mergesort")
        gs = [g_all[i] for i in gorder]
        g_ign = g_ign[gorder]
        ds = d_all  # already sorted and cut
        ious = ious_sorted_dt[:, gorder] if ious_sorted_dt.size else ious_sorted_dt
        crowd = [bool(g["iscrowd"]) for g in gs]
        G, D = len(gs), len(ds)
        gtm = np.zeros((T, G))
        dtm = np.zeros((T, D))
        dt_ig = np.zeros((T, D), dtype=bool)
        if ious.size:
            for ti, thr in enumerate(iou_thrs):
                for di in range(D):
                    best = min(thr, 1 - 1e-10)
                    m = -1
                    for gi in range(G):
                        if gtm[ti, gi] > 0 and not crowd[gi]:
                            continue
                        if m > -1 and g_ign[m] == 0 and g_ign[gi] == 1:
                            break
                        if ious[di, gi] < best:
                            continue
                        best = ious[di, gi]
                        m = gi
                    if m == -1:
                        continue
                    dt_ig[ti, di] = bool(g_ign[m])
                    dtm[ti, di] = gs[m]["id"]
                    gtm[ti, m] = ds[di]["id"]
        out_of_rng = np.array([d["area"] < rng[0] or d["area"] > rng[1] for d in ds], dtype=bool).reshape(1, D)
        dt_ig = np.logical_or(dt_ig, np.logical_and(dtm == 0, np.repeat(out_of_rng, T, 0)))
        return {"scores": np.array([d["score"] for d in ds], dtype=np.float64), "dtm": dtm, "dtig": dt_ig,
                "gtig": g_ign}

    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    for k, cat in enumerate(cat_ids):
        per_area = [[] for _ in range(A)]
        for img in img_ids:
            g_all = gts.get((img, cat), [])
            d_all = dts.get((img, cat), [])
            if not g_all and not d_all:
                continue
            order = np.argsort([-d["score"] for d in d_all], kind="mergesort")
            d_sorted = [d_all[i] for i in order][: max_dets[-1]]
            ious = iou_matrix(d_sorted, g_all) if (d_sorted and g_all) else np.zeros((0, 0))
            for a, rng in enumerate(area_rngs):
                e = eval_img(g_all, d_sorted, rng, ious)
                if e is not None:
                    per_area[a].append(e)
        for a in range(A):
            E = per_area[a]
            if not E:
                continue
            for m, md in enumerate(max_dets):
                scores = np.concatenate([e["scores"][:md] for e in E])
                inds = np.argsort(-scores, kind="mergesort")
                dtm = np.concatenate([e["dtm"][:, :md] for e in E], axis=1)[:, inds]
                dtig = np.concatenate([e["dtig"][:, :md] for e in E], axis=1)[:, inds]
                gtig = np.concatenate([e["gtig"] for e in E])
                npig = np.count_nonzero(gtig == 0)
                if npig == 0:
                    continue
                tps = np.logical_and(dtm, np.logical_not(dtig))
                fps = np.logical_and(np.logical_not(dtm), np.logical_not(dtig))
                tp_sum = np.cumsum(tps, axis=1).astype(np.float64)
                fp_sum = np.cumsum(fps, axis=1).astype(np.float64)
                for t in range(T):
                    tp, fp = tp_sum[t], fp_sum[t]
                    nd = len(tp)
                    rc = tp / npig
                    pr = tp / (fp + tp + np.spacing(1))
                    recall[t, k, a, m] = rc[-1] if nd else 0
                    pr = pr.tolist()
                    for i in range(nd - 1, 0, -1):
                        if pr[i] > pr[i - 1]:
                            pr[i - 1] = pr[i]
                    q = np.zeros(R)
                    idx = np.searchsorted(rc, rec_thrs, side="left")
                    for ri, pi in enumerate(idx):
                        if pi >= nd:
                            break
                        q[ri] = pr[pi]
                    precision[t, :, k, a, m] = q

    def mean_defined(s):
        s = s[s > -1]
        return -1.0 if s.size == 0 else float(np.mean(s))

    t50 = np.where(iou_thrs == 0.5)[0]
    t75 = np.where(iou_thrs == 0.75)[0]
    stats = [
        mean_defined(precision[:, :, :, 0, 2]),
        mean_defined(precision[t50][:, :, :, 0, 2]),
        mean_defined(precision[t75][:, :, :, 0, 2]),
        mean_defined(precision[:, :, :, 1, 2]),
        mean_defined(precision[:, :, :, 2, 2]),
        mean_defined(precision[:, :, :, 3, 2]),
        mean_defined(recall[:, :, 0, 0]),
        mean_defined(recall[:, :, 0, 1]),
        mean_defined(recall[:, :, 0, 2]),
        mean_defined(recall[:, :, 1, 2]),
        mean_defined(recall[:, :, 2, 2]),
        mean_defined(recall[:, :, 3, 2]),
    ]
    return stats


def main():
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", choices=["auto", "pycocotools", "numpy"], default="auto")
    ap.add_argument("--summary", help="write pycocotools' summarize() output here")
    ap.add_argument("gt")
    ap.add_argument("results")
    args = ap.parse_args()
    reference = args.reference
    if reference != "numpy":
        try:
            import pycocotools.cocoeval  # noqa: F401
        except ImportError as e:
            if reference == "pycocotools":
                sys.exit(f"coco_reference.py: pycocotools is not importable by {sys.executable} ({e}); "
                         "scripts/python-env.sh installs it into build/pyvenv")
            reference = "numpy"
    if reference != "numpy":
        import importlib.metadata

        stats = run_pycocotools(args.gt, args.results, args.summary)
        print("pycocotools", importlib.metadata.version("pycocotools"))
    else:
        if args.summary:
            sys.exit("coco_reference.py: --summary needs pycocotools")
        stats = run_numpy(args.gt, args.results)
        print("numpy-reference")
    for v in stats:
        print(repr(float(v)))


if __name__ == "__main__":
    main()
