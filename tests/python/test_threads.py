"""One Detector (and one Session) used from several Python threads at once:
every result equals the single-threaded one, and the GIL is released."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import damoyolo
from conftest import DEMO_MODEL
from helpers import assert_same_detections


def test_detector_from_threads_equals_serial(demo_image):
    det = damoyolo.Detector(DEMO_MODEL, threads=1)
    images = [demo_image, demo_image[::-1], np.ascontiguousarray(demo_image[:, ::-1]), demo_image[40:380, 30:420]]
    serial = [det(a) for a in images]
    jobs = [i % len(images) for i in range(24)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: (i, det(images[i])), jobs))
    for i, r in got:
        assert_same_detections(r, serial[i])
    s = det.stats()
    assert 1 <= s["detectors"] <= 4 and s["idle"] == s["detectors"]


def test_session_from_threads(fixtures):
    s = damoyolo.Session(DEMO_MODEL, threads=1)
    rng = np.random.default_rng(1)
    xs = [rng.random((1, 3, 320, 320), dtype=np.float32) * 255 for _ in range(3)]
    want = [s.run({"images": x}) for x in xs]
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(lambda i: (i, s.run({"images": xs[i % 3]})), range(12)))
    for i, out in got:
        for k in want[i % 3]:
            np.testing.assert_array_equal(out[k], want[i % 3][k])


def test_gil_is_released_during_inference(demo_image):
    # A pure-Python counter thread keeps counting while the main thread is
    # inside one long native call (32 images in one batched call). Were the
    # GIL held, it could count only around the call (a switch interval or
    # two, <= 10 ms of a >= 150 ms call), not through it; released, it counts
    # at a third of its idle rate or more even on 2 busy cores (measured).
    det = damoyolo.Detector(DEMO_MODEL, threads=1)
    batch = [demo_image] * 32
    det(batch)
    stop = threading.Event()
    ticks = [0]

    def spin():
        while not stop.is_set():
            ticks[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        c0, s = ticks[0], time.perf_counter()
        time.sleep(0.1)  # the counter's own rate, the main thread idle
        rate = (ticks[0] - c0) / (time.perf_counter() - s)
        c0, s = ticks[0], time.perf_counter()
        det(batch)
        during, dur = ticks[0] - c0, time.perf_counter() - s
    finally:
        stop.set()
        t.join()
    assert dur > 0.15
    assert during > 0.15 * rate * dur, f"{during} ticks in {dur * 1e3:.0f} ms at {rate:.0f}/s"
