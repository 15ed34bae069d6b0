"""What the Python layer costs, and what threads gain (docs/python.md).

    build/python/venv/bin/python bench/python/bench_bindings.py MODEL [IMAGE] [--seconds S]

1. Binding overhead per image: the wall time of `det(array)` from Python
   minus the time the C++ pipeline itself reports for the call (its decode +
   preprocess + inference + postprocess stage timings), i.e. argument
   conversion, GIL release/reacquire, the detector pool lease, and building
   the NumPy arrays and the Results object. Medians over the run.
2. What a layout the C++ ImageView cannot describe costs: a 1920x1080 view
   read in place (row stride twice its width) against a column-step view
   (a[:, ::2], copied once in C++), as time outside the C++ stages (min of 20),
   beside NumPy's own np.ascontiguousarray of the same view.
3. Throughput of one Detector from 1 and 2 Python threads, with the
   inference team at 1 thread and at every core, so the effect of OpenMP teams
   per calling thread (libgomp keeps one per thread) is measured, not assumed.
Short runs only: each measurement lasts --seconds (default 4).
"""

import argparse
import statistics
import sys
import threading
import time

import numpy as np

import damoyolo


def overhead(det, img, seconds):
    det(img)
    walls, natives = [], []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        r = det(img)
        walls.append((time.perf_counter() - t) * 1e3)
        natives.append(r.timings["total"])
    w, n = statistics.median(walls), statistics.median(natives)
    return w, n, statistics.median([a - b for a, b in zip(walls, natives)]), len(walls)


def copy_cost(det):
    big = np.random.default_rng(0).integers(0, 255, (1080, 1920 * 2, 3), dtype=np.uint8)
    out = {}
    for name, a in (("in place", big[:, :1920]), ("copied", big[:, ::2])):
        det(a)
        ov = []
        for _ in range(20):
            t = time.perf_counter()
            r = det(a)
            ov.append((time.perf_counter() - t) * 1e3 - r.timings["total"])
        out[name] = min(ov)
    c = []
    for _ in range(20):
        t = time.perf_counter()
        np.ascontiguousarray(big[:, ::2])
        c.append((time.perf_counter() - t) * 1e3)
    out["numpy"] = min(c)
    return out


def throughput(model, img, py_threads, omp_threads, seconds):
    det = damoyolo.Detector(model, threads=omp_threads)
    barrier = threading.Barrier(py_threads)
    counts = [0] * py_threads

    def work(i):
        det(img)  # warm-up: this thread's detector, plan and OpenMP team
        barrier.wait()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            det(img)
            counts[i] += 1

    ts = [threading.Thread(target=work, args=(i,)) for i in range(py_threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / seconds, det.stats()["detectors"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("image", nargs="?")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--threads", type=int, nargs="*", default=None,
                    help="inference threads to try (default: 1 and all)")
    a = ap.parse_args()
    img = damoyolo.decode_image(a.image) if a.image else \
        np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    det = damoyolo.Detector(a.model)
    w, n, o, k = overhead(det, img, a.seconds)
    print(f"model {a.model}, image {img.shape[1]}x{img.shape[0]}")
    print(f"per image: Python wall {w:.3f} ms, C++ stages {n:.3f} ms, binding overhead {o:.3f} ms "
          f"({100 * o / w:.2f} %), {k} calls")
    c = copy_cost(det)
    print(f"1920x1080 view, time outside the C++ stages: read in place {c['in place']:.2f} ms, column step "
          f"copied in C++ {c['copied']:.2f} ms (np.ascontiguousarray of it: {c['numpy']:.2f} ms)")
    for omp in (a.threads if a.threads is not None else [1, 0]):
        for py in (1, 2):
            ips, dets = throughput(a.model, img, py, omp, a.seconds)
            print(f"inference threads {omp or 'all'}, {py} Python thread(s): {ips:.1f} images/s "
                  f"({dets} C++ detector(s))")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
