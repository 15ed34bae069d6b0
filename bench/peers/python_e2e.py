"""End to end from Python, per image: damoyolo's Detector against ONNX Runtime and
OpenVINO driven by the official recipe's pre/post-processing in NumPy.

    bench/peers/python_e2e.sh MODEL [--threads N] [--seconds S]   (makes the venv, then runs this)

Per image and runtime, the median wall time of: decode (PIL convert('RGB') for
the peers, as the official demo; damoyolo's own decoder), preprocess (cv2.resize
INTER_LINEAR stretch, HWC->CHW float32), the network, and the official
post-processing (every (anchor, class) with score > conf, class-aware NMS at
IoU, top 500, per-axis scaling) written here in NumPy (the official code uses
torchvision's batched_nms; the boxes kept are the same set). Also checks that
every runtime keeps the same number of detections. Each runtime runs in a
process of its own (idle worker threads of one would slow the next), in
alternating rounds; short runs: --seconds per image, runtime and round.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

import cv2
import numpy as np
from PIL import Image

import damoyolo

def nms_numpy(boxes, scores, iou):
    # Greedy NMS, torchvision's rule: suppress IoU > iou, areas without +1.
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1) * (y2 - y1)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        order = rest[inter / (area[i] + area[rest] - inter) <= iou]
    return np.array(keep, dtype=np.int64)


def official_post(scores, boxes, conf, iou, w0, h0, size):
    # scores [A, C], boxes [A, 4] in network pixels.
    a, c = np.nonzero(scores > conf)
    s = scores[a, c]
    b = boxes[a]
    # Class-aware: offset each class's boxes apart (batched_nms's trick).
    off = b + (c.astype(np.float32) * (b.max() + 1))[:, None]
    keep = nms_numpy(off, s, iou)[:500]
    out = b[keep] * np.array([w0 / size, h0 / size, w0 / size, h0 / size], np.float32)
    return out, s[keep], c[keep]


def official_pre(path, size):
    img = np.asarray(Image.open(path).convert("RGB"))
    x = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    x = np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)
    return img.shape[1], img.shape[0], x


def make_runner(name, model, threads):
    """(run(path) -> (detections kept, network ms), label, thresholds) for one runtime."""
    det = damoyolo.Detector(model, threads=threads)
    size = det.input_size[0]
    conf, iou = det.conf, det.iou
    if name == "damoyolo":
        def run_ours(p):
            r = det(p)
            return len(r), r.timings["inference"]
        return run_ours, "damoyolo", (conf, iou)
    del det
    if name == "ort":
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0].name

        def run_ort(p):
            w0, h0, x = official_pre(p, size)
            t = time.perf_counter()
            scores, boxes = sess.run(None, {inp: x})[:2]
            net = (time.perf_counter() - t) * 1e3
            return len(official_post(scores[0], boxes[0], conf, iou, w0, h0, size)[1]), net
        return run_ort, f"onnxruntime {ort.__version__}", (conf, iou)
    import openvino as ov
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                      "INFERENCE_PRECISION_HINT": "f32"})
    req = compiled.create_infer_request()

    def run_ov(p):
        w0, h0, x = official_pre(p, size)
        t = time.perf_counter()
        res = req.infer({0: x})
        net = (time.perf_counter() - t) * 1e3
        scores, boxes = res[compiled.outputs[0]], res[compiled.outputs[1]]
        return len(official_post(scores[0], boxes[0], conf, iou, w0, h0, size)[1]), net
    return run_ov, f"openvino {ov.__version__.split('-')[0]}", (conf, iou)


def measure(a):
    # One runtime in this process: its idle threads (OpenMP teams, ORT's
    # spinning pool, OpenVINO's TBB workers) must not steal the cores of
    # another runtime measured after it.
    run, label, _ = make_runner(a.only, a.model, a.threads)
    out = {"label": label, "images": {}}
    for p in a.images:
        n, _ = run(p)  # warm-up, and the detection count
        times, nets = [], []
        end = time.perf_counter() + a.seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            nets.append(run(p)[1])
            times.append((time.perf_counter() - t) * 1e3)
        out["images"][p] = {"ms": statistics.median(times), "net": statistics.median(nets), "kept": n}
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("images", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0, help="per image, runtime and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", help=argparse.SUPPRESS)
    a = ap.parse_args()
    cv2.setNumThreads(1)
    if a.only:
        return measure(a)
    names = ["damoyolo", "ort", "ov"]
    results = {n: [] for n in names}
    for _ in range(a.rounds):  # alternating rounds: every runtime sees the same machine conditions
        for n in names:
            cmd = [sys.executable, __file__, a.model, *a.images, "--threads", str(a.threads), "--seconds",
                   str(a.seconds), "--only", n]
            results[n].append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
    labels = {n: results[n][0]["label"] for n in names}
    print(f"model {a.model}, {a.threads} inference thread(s); median ms per image over {a.rounds} round(s), "
          "end to end (decode, preprocess, network, postprocess) / network alone; [detections kept]")
    print(f"{'image':<16}" + "".join(f"{labels[n]:>28}" for n in names))
    per = {n: [] for n in names}
    pernet = {n: [] for n in names}
    for p in a.images:
        row = f"{p.rsplit('/', 1)[-1]:<16}"
        for n in names:
            m = statistics.median(r["images"][p]["ms"] for r in results[n])
            k = statistics.median(r["images"][p]["net"] for r in results[n])
            per[n].append(m)
            pernet[n].append(k)
            row += f"{m:12.2f} / {k:7.2f} [{results[n][0]['images'][p]['kept']:3d}]"
        print(row)
    base = statistics.median(per["damoyolo"])
    nbase = statistics.median(pernet["damoyolo"])
    print("median over images, end to end: " + ", ".join(
        f"{labels[n]} {statistics.median(per[n]):.2f} ms ({statistics.median(per[n]) / base:.2f}x)" for n in names))
    print("median over images, network:    " + ", ".join(
        f"{labels[n]} {statistics.median(pernet[n]):.2f} ms ({statistics.median(pernet[n]) / nbase:.2f}x)"
        for n in names))


if __name__ == "__main__":
    main()
