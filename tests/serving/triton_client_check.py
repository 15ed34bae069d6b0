"""Triton's own Python HTTP client (tritonclient.http, from PyPI) against a
running `damoyolo serve`: the Open Inference Protocol as those clients speak
it, unchanged — server and model metadata, readiness, and inference with
BYTES images and the binary tensor extension both ways, plus JSON outputs.

    triton_client_check.py HOST:PORT MODEL_NAME IMAGE EXPECTED_COUNT

EXPECTED_COUNT: the detections the library finds on IMAGE with the server's
options (the ctest wrapper takes it from `damoyolo detect --json`). Exits 1
with a message on any difference.
"""
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def fail(msg):
    print("triton_client_check: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    url, model, image_path, expected = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    client = httpclient.InferenceServerClient(url=url)
    if not client.is_server_live() or not client.is_server_ready():
        fail("server not live/ready")
    if not client.is_model_ready(model):
        fail("model not ready")
    meta = client.get_server_metadata()
    if meta["name"] != "damoyolo" or "binary_tensor_data" not in meta["extensions"]:
        fail(f"server metadata: {meta}")
    mmeta = client.get_model_metadata(model)
    if [o["name"] for o in mmeta["outputs"]] != ["boxes", "scores", "classes", "counts"]:
        fail(f"model metadata: {mmeta}")

    data = open(image_path, "rb").read()
    for binary_out in (True, False):
        images = np.array([data, data], dtype=np.object_)
        inp = httpclient.InferInput("IMAGE", [2], "BYTES")
        inp.set_data_from_numpy(images, binary_data=True)
        outs = [httpclient.InferRequestedOutput(n, binary_data=binary_out)
                for n in ("boxes", "scores", "classes", "counts")]
        res = client.infer(model, [inp], outputs=outs, request_id="check-1")
        counts = res.as_numpy("counts")
        boxes, scores, classes = res.as_numpy("boxes"), res.as_numpy("scores"), res.as_numpy("classes")
        if counts is None or list(counts) != [expected, expected]:
            fail(f"counts {counts}, expected [{expected}, {expected}] (binary outputs: {binary_out})")
        if boxes.shape != (2, expected, 4) or scores.shape != (2, expected) or classes.shape != (2, expected):
            fail(f"shapes {boxes.shape} {scores.shape} {classes.shape}")
        if boxes.dtype != np.float32 or classes.dtype != np.int32:
            fail(f"dtypes {boxes.dtype} {classes.dtype}")
        if not np.array_equal(boxes[0], boxes[1]) or not np.all(np.diff(scores[0]) <= 0):
            fail("the two images differ, or scores are not descending")
        if res.get_response()["id"] != "check-1":
            fail("request id not echoed")

    # Request parameters pass through the client unchanged.
    inp = httpclient.InferInput("IMAGE", [1], "BYTES")
    inp.set_data_from_numpy(np.array([data], dtype=np.object_), binary_data=True)
    res = client.infer(model, [inp], parameters={"max_det": 1})
    if list(res.as_numpy("counts")) != [min(1, expected)]:
        fail(f"max_det=1 gave counts {res.as_numpy('counts')}")

    # Errors come back as the client's exception carrying the server's message.
    bad = httpclient.InferInput("IMAGE", [1], "BYTES")
    bad.set_data_from_numpy(np.array([b"not an image"], dtype=np.object_), binary_data=True)
    try:
        client.infer(model, [bad])
        fail("a corrupt image was accepted")
    except InferenceServerException as e:
        if "unrecognised image format" not in str(e):
            fail(f"error message: {e}")
    try:
        client.get_model_metadata("no_such_model")
        fail("an unknown model was found")
    except InferenceServerException as e:
        if "no_such_model" not in str(e):
            fail(f"error message: {e}")
    print(f"triton_client_check: ok (tritonclient {getattr(httpclient, '__version__', '')}, {expected} detections)")


if __name__ == "__main__":
    main()
