"""The bindings give the C++ library's detections: equal to the CLI's JSON, and
to the fixtures' golden official outputs."""

import json
import subprocess

import numpy as np
import pytest

import damoyolo
from conftest import DEMO_IMAGE, DEMO_MODEL
from helpers import match_detections

IMAGES = ["chelsea.png", "coffee.png", "camera.png", "chelsea.jpg"]


def run_cli(cli, tmp_path, model, images, *extra):
    out = tmp_path / "cli.json"
    subprocess.run([str(cli), "detect", "-m", str(model), *map(str, images), "--no-draw", "--json", str(out),
                    "-q", *extra], check=True)
    return json.loads(out.read_text())


@pytest.mark.parametrize("model", ["damoyolo_T_640.onnx", "damoyolo_Ns_416.onnx", "damoyolo_Ns_416_benchmark.onnx"])
def test_fixture_models_equal_cli(cli, fixtures, tmp_path, model):
    images = [fixtures / "images" / i for i in IMAGES]
    ref = run_cli(cli, tmp_path, fixtures / "models" / model, images, "--official", "--full-precision")
    det = damoyolo.Detector(fixtures / "models" / model)  # defaults: the official thresholds and 500 boxes
    ours = det.predict(images)
    assert len(ours) == len(ref) == len(images)
    for r, rec in zip(ours, ref):
        assert r.orig_shape == (rec["height"], rec["width"])
        d = r.to_dict(full_precision=True)
        assert d["decode"] == rec["decode"]
        assert len(d["detections"]) == len(rec["detections"]) > 0
        for a, b in zip(d["detections"], rec["detections"]):
            assert a["class_id"] == b["class_id"] and a["class_name"] == b["class_name"]
            # The same library on the same pixels: the same floats.
            assert a["score"] == pytest.approx(b["score"], abs=1e-6)
            assert a["box"] == pytest.approx(b["box"], abs=1e-3)


def test_bundled_model_json_equals_cli(cli, tmp_path):
    # The CLI's defaults for people (conf 0.25, 300 boxes); the rounded JSON
    # records must be the same text, field for field.
    ref = run_cli(cli, tmp_path, DEMO_MODEL, [DEMO_IMAGE])
    det = damoyolo.Detector(DEMO_MODEL, conf=0.25, max_det=300)
    r = det(str(DEMO_IMAGE))
    ours = json.loads(r.to_json())
    for key in ("file", "width", "height", "decode", "detections"):
        assert ours[key] == ref[0][key], key
    assert set(ours["timings_ms"]) == set(ref[0]["timings_ms"])
    assert r.class_name[:4] == ["ring", "glyph_Z", "glyph_Z", "square"]  # README's demo output
    assert len(r) == 6


@pytest.mark.parametrize("image", ["chelsea_png", "coffee_png", "camera_png"])
def test_golden_official_detections(fixtures, image):
    golden = json.loads((fixtures / "golden" / "damoyolo_T_640" / image / "detections.json").read_text())
    det = damoyolo.Detector(fixtures / "models" / "damoyolo_T_640.onnx")
    r = det(fixtures / "images" / golden["image"])
    assert len(r) == len(golden["detections"])
    ours = list(zip(r.xyxy.tolist(), r.confidence.tolist(), r.class_id.tolist()))
    theirs = [(d["box"], d["score"], d["class_id"]) for d in golden["detections"]]
    match_detections(ours, theirs)


def test_session_equals_golden_outputs(fixtures):
    s = damoyolo.Session(fixtures / "models" / "damoyolo_Ns_416.onnx")
    (name, dtype, dims), = s.inputs
    assert (dtype, dims) == ("float32", (1, 3, 416, 416))
    g = fixtures / "golden" / "damoyolo_Ns_416" / "chelsea_png"
    x = np.fromfile(g / "input.u8", dtype=np.uint8).reshape(dims).astype(np.float32)
    out = s.run({name: x})
    meta = json.loads((g / "outputs.json").read_text())
    outputs = meta if isinstance(meta, list) else meta.get("outputs", meta)
    for o in outputs:
        want = np.fromfile(g / f"out{o['index']}.f32", dtype=np.float32).reshape(o["dims"])
        got = out[o["name"]]
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=0.05 if o["index"] == 1 else 1e-5)
