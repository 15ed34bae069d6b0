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
    # A pure-Python counter keeps running while another thread is inside
    # native inference; with the GIL held it would stall for the whole call.
    det = damoyolo.Detector(DEMO_MODEL, threads=1)
    det(demo_image)
    stop = threading.Event()
    ticks = [0]

    def spin():
        while not stop.is_set():
            ticks[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.05)
        t0 = ticks[0]
        for _ in range(5):
            det(demo_image)
        advanced = ticks[0] - t0
    finally:
        stop.set()
        t.join()
    assert advanced > 1000, f"the Python thread advanced only {advanced} ticks during 5 inferences"
