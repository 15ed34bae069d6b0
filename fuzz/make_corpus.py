#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/), small and
deterministic: tiny images made with PIL, tiny ONNX models made with the onnx
package, tiny COCO JSON. The files are committed; rerun this (Debian's
python3-pil and python3-onnx) only to change them:

    /usr/bin/python3 fuzz/make_corpus.py
"""
import io
import json
import os
import shutil

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def out(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pixels(w, h, mode="RGB"):
    rng = np.random.default_rng(w * 100 + h)
    if mode == "RGB":
        return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    if mode == "RGBA":
        return Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
    if mode == "L":
        return Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L")
    raise ValueError(mode)


def save(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def exif(orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()


def images():
    t = "decode_image"
    out(t, "png_rgb8_3x2.png", save(pixels(3, 2), "PNG"))
    out(t, "png_rgba8_2x2_exif6.png", save(pixels(2, 2, "RGBA"), "PNG", exif=exif(6)))
    out(t, "png_gray16_2x2.png",
        save(Image.fromarray(np.array([[0, 300], [40000, 65535]], dtype=np.uint16)), "PNG"))
    out(t, "png_palette_4x2.png", save(pixels(4, 2).convert("P", palette=Image.ADAPTIVE, colors=4), "PNG"))
    out(t, "png_gray1_9x2.png", save(pixels(9, 2, "L").convert("1"), "PNG"))
    out(t, "jpeg_420_8x8.jpg", save(pixels(8, 8), "JPEG", quality=50, optimize=True))
    out(t, "jpeg_444_progressive_16x8.jpg",
        save(pixels(16, 8), "JPEG", quality=50, subsampling=0, progressive=True, optimize=True))
    out(t, "jpeg_gray_8x8.jpg", save(pixels(8, 8, "L"), "JPEG", quality=50, optimize=True))
    out(t, "jpeg_cmyk_8x8.jpg", save(pixels(8, 8).convert("CMYK"), "JPEG", quality=50, optimize=True))
    out(t, "jpeg_exif6_8x16.jpg", save(pixels(8, 16), "JPEG", quality=50, optimize=True, exif=exif(6)))
    out(t, "bmp_rgb24_3x2.bmp", save(pixels(3, 2), "BMP"))
    out(t, "bmp_rgba32_2x3.bmp", save(pixels(2, 3, "RGBA"), "BMP"))


def model_bytes(nodes, inputs, outputs, inits=(), opset=11):
    g = helper.make_graph(nodes, "fuzz_seed", inputs, outputs, list(inits))
    m = helper.make_model(g, producer_name="damoyolo-fuzz", opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7
    onnx.checker.check_model(m)
    return m.SerializeToString()


def f32(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def models():
    t = "onnx_session"
    out(t, "identity.onnx", model_bytes([helper.make_node("Identity", ["x"], ["y"])],
                                        [f32("x", [1, 3, 4, 4])], [f32("y", [1, 3, 4, 4])]))
    w = np.linspace(-1, 1, 3 * 2 * 3 * 3, dtype=np.float32).reshape(3, 2, 3, 3)
    out(t, "conv_bias_relu.onnx", model_bytes(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
         helper.make_node("Relu", ["c"], ["y"])],
        [f32("x", [1, 2, 5, 5])], [f32("y", [1, 3, 3, 3])],
        [init("w", w), init("b", np.array([0.5, -0.5, 0], dtype=np.float32))]))
    out(t, "add_sigmoid_mul.onnx", model_bytes(
        [helper.make_node("Add", ["x", "c"], ["a"]), helper.make_node("Sigmoid", ["a"], ["s"]),
         helper.make_node("Mul", ["a", "s"], ["y"])],
        [f32("x", [1, 3, 2, 2])], [f32("y", [1, 3, 2, 2])],
        [init("c", np.array([1, 2, 3], dtype=np.float32).reshape(3, 1, 1))]))
    # The shape arithmetic of DAMO-YOLO's head: Reshape, Transpose, Slice,
    # Concat, Softmax, ReduceSum, Resize.
    out(t, "head_shapes.onnx", model_bytes(
        [helper.make_node("Reshape", ["x", "shape"], ["r"]),
         helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
         helper.make_node("Slice", ["t", "starts", "ends", "axes", "steps"], ["s"]),
         helper.make_node("Concat", ["s", "s"], ["c"], axis=1),
         helper.make_node("Softmax", ["c"], ["sm"], axis=-1),
         helper.make_node("ReduceSum", ["sm"], ["y"], axes=[2], keepdims=1)],
        [f32("x", [1, 4, 2, 2])], [f32("y", [1, 4, 1])],
        [init("shape", np.array([1, 4, 4], dtype=np.int64)), init("starts", np.array([0], dtype=np.int64)),
         init("ends", np.array([4], dtype=np.int64)), init("axes", np.array([1], dtype=np.int64)),
         init("steps", np.array([2], dtype=np.int64))]))
    out(t, "resize_maxpool.onnx", model_bytes(
        [helper.make_node("Resize", ["x", "roi", "scales"], ["r"], mode="nearest"),
         helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
        [f32("x", [1, 1, 2, 2])], [f32("y", [1, 1, 2, 2])],
        [init("roi", np.array([], dtype=np.float32)), init("scales", np.array([1, 1, 2, 2], dtype=np.float32))]))


def coco():
    t = "coco_json"
    ds = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
                   {"id": 2, "file_name": "b.jpg", "width": 32, "height": 32}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 3, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 30, 20], "area": 600, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [10.5, 4, 8, 8.25], "area": 66, "iscrowd": 1},
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [0, 0, 32, 32]},
        ],
    }
    out(t, "dataset.json", json.dumps(ds, separators=(",", ":")).encode())
    res = [{"image_id": 1, "category_id": 1, "bbox": [1.25, 2, 29, 20.5], "score": 0.9},
           {"image_id": 2, "category_id": 3, "bbox": [0, 0, 31, 30], "score": 0.25},
           {"image_id": 1, "category_id": 3, "bbox": [10, 4, 8, 8], "score": 1e-3}]
    out(t, "results.json", json.dumps(res, separators=(",", ":")).encode())
    out(t, "results_empty.json", b"[]")


def http_requests():
    t = "http_request"
    jpeg = save(pixels(8, 8), "JPEG", quality=50, optimize=True)
    out(t, "get_ready.http", b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
    body = (b"--B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
            b"Content-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n--B--\r\n")
    out(t, "post_multipart.http",
        b"POST /v1/detect?conf=0.5&classes=0,2 HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: multipart/form-data; boundary=B\r\nContent-Length: " + str(len(body)).encode() +
        b"\r\n\r\n" + body)
    out(t, "post_chunked.http",
        b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n"
        + format(len(jpeg), "x").encode() + b"\r\n" + jpeg + b"\r\n0\r\n\r\n")
    v2json = json.dumps({"id": "1", "parameters": {"conf": 0.3, "timeout": 1000},
                         "inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": ["/9j/4A=="]}],
                         "outputs": [{"name": "boxes"}, {"name": "counts", "parameters": {"binary_data": True}}]},
                        separators=(",", ":")).encode()
    out(t, "v2_json.http", b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(v2json)).encode() + b"\r\n\r\n" + v2json)
    elem = len(jpeg).to_bytes(4, "little") + jpeg
    head = json.dumps({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                                   "parameters": {"binary_data_size": len(elem)}},
                                  ]}, separators=(",", ":")).encode()
    tensor = json.dumps({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 3, 2, 2],
                                     "parameters": {"binary_data_size": 12}}]}, separators=(",", ":")).encode()
    for name, h, b in (("v2_binary.http", head, elem), ("v2_tensor.http", tensor, bytes(range(12)))):
        out(t, name, b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            b"Inference-Header-Content-Length: " + str(len(h)).encode() + b"\r\nContent-Length: " +
            str(len(h) + len(b)).encode() + b"\r\n\r\n" + h + b)


if __name__ == "__main__":
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    images()
    models()
    coco()
    http_requests()
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(CORPUS) for f in fs)
    print(f"fuzz/corpus: {total} bytes")
