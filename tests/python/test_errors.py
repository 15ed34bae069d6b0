"""Library errors arrive as Python exceptions with the library's message,
classed by code (FileNotFoundError, ValueError, damoyolo.Error)."""

import numpy as np
import pytest

import damoyolo
from conftest import DEMO_MODEL


def test_missing_model(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        damoyolo.Detector(tmp_path / "none.onnx")
    assert isinstance(e.value, damoyolo.NotFoundError) and isinstance(e.value, damoyolo.Error)
    assert e.value.code == "NotFound" and "none.onnx" in str(e.value)
    with pytest.raises(damoyolo.NotFoundError):
        damoyolo.Session(tmp_path / "none.onnx")


def test_corrupt_model(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(damoyolo.Error) as e:
        damoyolo.Detector(bad)
    assert "bad.onnx" in str(e.value)


@pytest.mark.parametrize("kwargs", [dict(precision="fp64"), dict(threads=-1), dict(engine="gpu"),
                                    dict(classes=[99]), dict(classes=["unicorn"]), dict(batch=-2)])
def test_bad_options_are_value_errors(kwargs):
    with pytest.raises(ValueError):
        damoyolo.Detector(DEMO_MODEL, **kwargs)


def test_bad_arrays(demo_detector, demo_image):
    with pytest.raises(ValueError, match="uint8"):
        demo_detector(demo_image.astype(np.float32))
    with pytest.raises(ValueError, match="channels"):
        demo_detector(demo_image, channels="rgba")
    with pytest.raises(ValueError):
        demo_detector(np.zeros((4, 4, 3, 2), np.uint8))
    with pytest.raises(ValueError):
        demo_detector(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(ValueError):
        demo_detector(demo_image, bgr=True, channels="rgb")
    with pytest.raises(ValueError):
        demo_detector(12345)


def test_bad_images(demo_detector, tmp_path):
    from conftest import DEMO_IMAGE
    with pytest.raises(FileNotFoundError):
        demo_detector(str(tmp_path / "missing.jpg"))
    truncated = DEMO_IMAGE.read_bytes()[:2000]
    with pytest.raises(damoyolo.ParseError) as e:
        demo_detector(truncated)
    assert isinstance(e.value, ValueError) and e.value.code == "ParseError"
    with pytest.raises(damoyolo.UnsupportedError):
        demo_detector(b"GIF89a" + b"\x00" * 100)
    d = tmp_path / "empty"
    d.mkdir()
    with pytest.raises(ValueError):
        demo_detector(d)


def test_session_bad_input():
    s = damoyolo.Session(DEMO_MODEL)
    with pytest.raises(ValueError) as e:
        s.run({"images": np.zeros((1, 3, 32, 32), np.float32)})
    assert "images" in str(e.value)
