#!/usr/bin/env python3
"""OpenVINO's own INT8: post-training quantisation of a float DAMO-YOLO ONNX export with NNCF
(PyPI `nncf`), saved as an OpenVINO IR for ov_bench.py / run.sh --precision int8. A benchmark
peer only — never a product dependency.

usage: bench/peers/.venv/bin/python bench/peers/ov_nncf.py MODEL.onnx CALIB_DIR OUT.xml [--subset N]
                                                          [--preset mixed|performance]

Calibration images go through the official DAMO-YOLO preprocessing, the one damoyolo reproduces
(docs: damo-yolo-facts.md §4.1; bench/peers/official_prepost.py): PIL decode to RGB, cv2.resize
INTER_LINEAR stretch to the model's input H×W, HWC→CHW float32 with values 0–255, no
normalisation, batch 1.

Preset: `mixed` by default — symmetric per-channel int8 weights, asymmetric uint8 activations.
That is the scheme `damoyolo quantize` writes (docs/quantization.md), so both engines run the same
kind of INT8 network, and it is NNCF's recommendation for non-ReLU CNNs (SiLU in the nano models
and every SPP block gives negative activations, which a symmetric activation range would spend half
its codes on). `performance` (symmetric activations too) is OpenVINO's fastest preset; pass it to
see what the activation zero points cost. model_type stays None (a CNN; TRANSFORMER would add
transformer-specific rules).
"""
import argparse
import os
import sys
import time

try:
    import cv2
    import nncf
    import numpy as np
    import openvino as ov
    from PIL import Image
except ImportError as e:  # a .venv made by an older run.sh has openvino only
    sys.exit(f"{e}: run with bench/peers/.venv/bin/python; to add what this needs to an existing venv: "
             "bench/peers/.venv/bin/pip install nncf==3.4.0 opencv-python-headless==4.14.0.94 pillow==13.0.0")

EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".webp", ".tif", ".tiff")


def preprocess(path, height, width):
    rgb = np.asarray(Image.open(path).convert("RGB"))
    resized = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(resized.transpose(2, 0, 1)).astype(np.float32)[None]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("calib_dir")
    ap.add_argument("out")
    ap.add_argument("--subset", type=int, default=0, help="calibration images to use (0 = all, sorted by name)")
    ap.add_argument("--preset", choices=("mixed", "performance"), default="mixed")
    args = ap.parse_args()
    if not args.out.endswith(".xml"):
        sys.exit("OUT must end in .xml (the .bin is written beside it)")

    core = ov.Core()
    model = core.read_model(args.model)
    if len(model.inputs) != 1:
        sys.exit(f"expected one input, the model has {len(model.inputs)}")
    shape = model.input(0).get_partial_shape()
    if shape.is_dynamic or len(shape) != 4 or shape[1].get_length() != 3:
        sys.exit(f"need a static [N,3,H,W] input, the model has {shape}")
    height, width = shape[2].get_length(), shape[3].get_length()

    images = sorted(os.path.join(args.calib_dir, f) for f in os.listdir(args.calib_dir) if f.lower().endswith(EXTS))
    if args.subset > 0:
        images = images[:args.subset]
    if not images:
        sys.exit(f"no images in {args.calib_dir}")
    t0 = time.perf_counter()
    tensors = [preprocess(p, height, width) for p in images]
    prep_s = time.perf_counter() - t0

    preset = {"mixed": nncf.QuantizationPreset.MIXED, "performance": nncf.QuantizationPreset.PERFORMANCE}[args.preset]
    t0 = time.perf_counter()
    quantized = nncf.quantize(model, nncf.Dataset(tensors), preset=preset, subset_size=len(tensors),
                              target_device=nncf.TargetDevice.CPU, model_type=None)
    quant_s = time.perf_counter() - t0
    # compress_to_fp16=False: the parts left in float (head post-processing, biases) stay exactly
    # as in the f32 model; the quantised weights are stored as int8 either way.
    ov.save_model(quantized, args.out, compress_to_fp16=False)

    ops = quantized.get_ops()
    fq = [op for op in ops if op.get_type_name() == "FakeQuantize"]
    # NNCF stores quantised weights as int8 constants (no FakeQuantize); any FakeQuantize fed by
    # a constant would be a weight left in fake-quantised form.
    fq_const = sum(op.input_value(0).get_node().get_type_name() == "Constant" for op in fq)
    convs = sum(op.get_type_name() in ("Convolution", "GroupConvolution") for op in ops)
    print(f"nncf {nncf.__version__}, openvino {ov.get_version().split('-')[0]}, preset {args.preset}, "
          f"{len(tensors)} calibration images at {width}x{height} (preprocessing {prep_s:.1f} s)")
    print(f"quantisation took {quant_s:.1f} s; {len(fq)} FakeQuantize nodes "
          f"({fq_const} on constants), {convs} convolutions; wrote {args.out}")


if __name__ == "__main__":
    main()
