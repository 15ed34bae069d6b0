"""NumPy input: read in place (zero-copy) at any row stride and channel order,
copied once only for layouts the C++ ImageView cannot describe; batching."""

import json
import tracemalloc

import numpy as np
import pytest

import damoyolo
from conftest import DEMO_MODEL
from helpers import assert_same_detections


def addr(a):
    return a.__array_interface__["data"][0]


def test_contiguous_array_is_read_in_place(demo_detector, demo_image):
    before = demo_detector.stats()["input_copies"]
    r = demo_detector(demo_image)
    s = demo_detector.stats()
    assert s["input_copies"] == before and not r.input_copied
    # The C++ view starts at the array's own first byte.
    assert s["last_view_data"] == addr(demo_image)
    assert r.orig_img is demo_image  # kept by reference, not copied
    assert len(r) > 0


@pytest.mark.parametrize("view", ["crop", "flipud", "bgr_reversed", "padded_rows", "readonly_crop"])
def test_strided_views_are_read_in_place(demo_detector, demo_image, view):
    img = demo_image
    if view == "crop":
        a, ch, expect = img[30:400, 25:410], "rgb", None  # row stride > width * 3
    elif view == "flipud":
        a, ch, expect = img[::-1], "rgb", None  # negative row stride
    elif view == "bgr_reversed":
        # An RGB buffer seen as BGR through a reversed channel axis: the view
        # reads the same bytes as RGB, starting 2 bytes before a[0, 0, 0].
        a, ch, expect = np.ascontiguousarray(img[:, :, ::-1])[:, :, ::-1], "bgr", -2
    elif view == "readonly_crop":
        # Read-only memory (np.frombuffer over bytes): read in place too.
        ro = np.frombuffer(img.tobytes(), np.uint8).reshape(img.shape)
        assert not ro.flags["WRITEABLE"]
        a, ch, expect = ro[10:300], "rgb", None
        a = a[:, :400]
    else:
        big = np.zeros((img.shape[0], img.shape[1] + 13, 3), np.uint8)
        big[:, :img.shape[1]] = img
        a, ch, expect = big[:, :img.shape[1]], "rgb", None
    assert not a.flags["C_CONTIGUOUS"]
    before = demo_detector.stats()["input_copies"]
    r = demo_detector(a, channels=ch)
    s = demo_detector.stats()
    assert s["input_copies"] == before, "a layout ImageView can express was copied"
    assert s["last_view_data"] == addr(a) + (expect or 0)
    ref = demo_detector(np.ascontiguousarray(a), channels=ch)
    assert_same_detections(r, ref)


def test_bgr_keyword_equals_rgb(demo_detector, demo_image):
    bgr = np.ascontiguousarray(demo_image[:, :, ::-1])
    assert_same_detections(demo_detector(bgr, bgr=True), demo_detector(demo_image))
    assert_same_detections(demo_detector(bgr, channels="bgr"), demo_detector(demo_image))


def test_column_step_is_copied_once_and_counted(demo_detector, demo_image):
    a = demo_image[::2, ::2]
    before = demo_detector.stats()["input_copies"]
    r = demo_detector(a)
    assert r.input_copied and demo_detector.stats()["input_copies"] == before + 1
    assert_same_detections(r, demo_detector(np.ascontiguousarray(a)))


def test_no_image_sized_python_allocation(demo_detector):
    # A 12 MB image: had anything on the Python side copied it (e.g. an
    # np.ascontiguousarray in the wrapper), tracemalloc (which sees NumPy's
    # buffers) would report a peak of at least its size.
    rng = np.random.default_rng(0)
    big = rng.integers(0, 255, (2000, 2000, 3), dtype=np.uint8)
    views = [big, big[::-1], big[100:1900, 50:1950], np.ascontiguousarray(big[:, :, ::-1])[:, :, ::-1]]
    demo_detector(big)  # warm-up: first-call allocations in C++ are not traced anyway
    tracemalloc.start()
    try:
        for v in views:
            demo_detector(v, channels="rgb" if v is not views[3] else "bgr")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < big.nbytes // 20, f"peak traced allocation {peak} bytes for a {big.nbytes}-byte image"


def test_gray_and_rgba(demo_detector, demo_image):
    gray = np.ascontiguousarray(demo_image[:, :, 1])
    rg = demo_detector(gray)
    assert rg.orig_shape == gray.shape and len(rg) >= 0
    assert_same_detections(demo_detector(gray[:, :, None]), rg)
    rgba = np.concatenate([demo_image, np.full(demo_image.shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert_same_detections(demo_detector(rgba, channels="rgba"), demo_detector(demo_image))
    assert_same_detections(demo_detector(np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]]), channels="bgra"),
                           demo_detector(demo_image))


def test_list_is_batched_and_equals_single_calls(demo_image):
    images = [demo_image, demo_image[::-1], np.ascontiguousarray(demo_image[50:300, 60:400])]
    single = damoyolo.Detector(DEMO_MODEL)
    batched = damoyolo.Detector(DEMO_MODEL, batch=2)
    assert batched.batch == 2
    ones = [single(a) for a in images]
    for det in (single, batched):
        many = det(images)
        assert isinstance(many, list) and len(many) == 3
        for a, b in zip(many, ones):
            # batch 2 runs another oneDNN plan: the same detections to float noise
            assert_same_detections(a, b, box_tol=1e-2, score_tol=1e-5)


def test_paths_bytes_directory_glob(demo_detector, tmp_path, demo_image):
    from conftest import DEMO_IMAGE
    data = DEMO_IMAGE.read_bytes()
    ref = demo_detector(demo_image)
    assert_same_detections(demo_detector(data), ref)
    assert_same_detections(demo_detector(str(DEMO_IMAGE)), ref)
    for name in ("b.jpg", "a.jpg"):
        (tmp_path / name).write_bytes(data)
    (tmp_path / "notes.txt").write_text("not an image")
    rs = demo_detector(tmp_path)
    assert [r.path.rsplit("/", 1)[-1] for r in rs] == ["a.jpg", "b.jpg"]
    rs = demo_detector.predict(str(tmp_path / "*.jpg"))
    assert len(rs) == 2
    one = demo_detector(str(tmp_path / "a*.jpg"))  # a glob is a list even with one match
    assert isinstance(one, list) and len(one) == 1
    assert isinstance(demo_detector(tmp_path / "a.jpg"), damoyolo.Results)
    for r in rs:
        assert_same_detections(r, ref)
        assert r.orig_img.shape == demo_image.shape
    gen = demo_detector.predict([str(tmp_path / "a.jpg"), demo_image, data], stream=True)
    assert not isinstance(gen, list)
    assert [len(r) for r in gen] == [len(ref)] * 3


def test_results_fields_plot_and_json(demo_detector, demo_image):
    r = demo_detector(demo_image)
    assert r.xyxy.dtype == np.float32 and r.xyxy.shape == (len(r), 4)
    assert r.confidence.dtype == np.float32 and np.all(np.diff(r.confidence) <= 0)
    assert r.class_id.dtype == np.int64
    assert r.class_name[0] == demo_detector.names[r.class_id[0]]
    assert set(r.timings) == {"decode", "preprocess", "inference", "postprocess", "total"}
    assert r.orig_shape == demo_image.shape[:2]
    d = json.loads(r.to_json())
    assert set(d) == {"file", "width", "height", "decode", "detections", "timings_ms"}
    assert set(d["detections"][0]) == {"box", "score", "class_id", "class_name"}
    snapshot = demo_image.copy()
    p = r.plot(conf=0.25)
    assert p.shape == demo_image.shape and p.dtype == np.uint8
    assert np.array_equal(demo_image, snapshot), "plot() drew on the input"
    assert (p != demo_image).any()
    x1, y1, x2, y2 = (int(round(v)) for v in r.xyxy[0])
    assert (p[y1, x1:x2] != demo_image[y1, x1:x2]).any()  # the top edge of the best box


def test_classes_filter_by_id_and_name(demo_image):
    all_ = damoyolo.Detector(DEMO_MODEL)(demo_image)
    only = damoyolo.Detector(DEMO_MODEL, classes=["ring", 9])(demo_image)
    assert len(only) > 0 and set(only.class_id.tolist()) <= {5, 9}
    keep = np.isin(all_.class_id, [5, 9])
    np.testing.assert_array_equal(only.confidence, all_.confidence[keep])
