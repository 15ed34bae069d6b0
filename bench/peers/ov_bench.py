#!/usr/bin/env python3
"""OpenVINO (PyPI `openvino`) on the same model, input pattern and thread count
as `damoyolo bench`, printing the same JSON fields. A benchmark peer only —
never a product dependency.

usage: ov_bench.py MODEL THREADS ITERS WARMUP [fp32|bf16|int8]

fp32 pins OpenVINO's CPU plugin to f32 arithmetic (INFERENCE_PRECISION_HINT):
on a CPU with AVX512-BF16/AMX its default would be bf16, which is not the
same comparison. bf16 asks for bf16 explicitly.
int8 expects a quantised model (the IR from ov_nncf.py: FakeQuantize nodes).
The hint only sets the precision of the *float* operations; the quantised
convolutions run on the int8 kernels whatever it says. It stays f32 here, so
what runs in float (the head's post-processing; in the nano-style demo model
the CPU plugin also keeps the depthwise convolutions in f32) runs in f32 as in
damoyolo and ONNX Runtime, not in bf16 (the default on AMX). The JSON then
also counts the convolutions the compiled model runs in int8 (int8_convs of
convs), from the runtime graph.
"""
import json
import resource
import sys
import time

import numpy as np
import openvino as ov


def main():
    model, threads, iters, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    precision = sys.argv[5] if len(sys.argv) > 5 else "fp32"
    core = ov.Core()
    t0 = time.perf_counter()
    compiled = core.compile_model(model, "CPU", {
        "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
    })
    load_ms = (time.perf_counter() - t0) * 1e3
    extra = {}
    if precision == "int8":
        convs = int8 = 0
        for op in compiled.get_runtime_model().get_ops():
            rt = op.get_rt_info()
            if rt["layerType"].astype(str) == "Convolution":
                convs += 1
                int8 += rt["runtimePrecision"].astype(str) in ("i8", "u8")
        extra = {"int8_convs": int8, "convs": convs}
    port = compiled.input(0)
    dims = [int(d) for d in port.get_shape()]
    n = int(np.prod(dims))
    # The same deterministic pattern as damoyolo bench: (i * 2654435761) mod 2^32 mod 256.
    i = np.arange(n, dtype=np.uint64)
    data = ((i * np.uint64(2654435761)) % np.uint64(1 << 32) % np.uint64(256)).astype(np.float32).reshape(dims)
    request = compiled.create_infer_request()
    request.set_input_tensor(ov.Tensor(data))  # shares the array's memory
    for _ in range(warmup):
        request.infer()
    ms = []
    for _ in range(iters):
        s = time.perf_counter()
        request.infer()
        ms.append((time.perf_counter() - s) * 1e3)
    ms.sort()
    median = ms[len(ms) // 2]
    print(json.dumps({
        "model": model, "engine": "openvino " + ov.get_version().split("-")[0], "threads": threads,
        "precision": precision, "batch": dims[0], "iters": iters,
        "latency_ms": {"min": ms[0], "median": median, "max": ms[-1]},
        "throughput_ips": dims[0] * 1000 / median,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_ms": load_ms,
        **extra,
    }))


if __name__ == "__main__":
    main()
