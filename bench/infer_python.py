#!/usr/bin/env python3
"""PyTorch and onnxruntime forward-pass times for the same models and
weights as crates/infer/benches/forward.rs (formula weights from
tools/infer_reference.py). Prints `runtime<TAB>model<TAB>size<TAB>batch<TAB>ms`
(median of RUNS after one warm-up). The exported graph is kept as
ONNX_DIR/MODEL-SIZE.onnx when ONNX_DIR is set (benches/forward.rs runs it
on tract).
Usage: infer_python.py THREADS BATCH SIZE MODEL[,MODEL]"""
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
from infer_reference import densenet121_xrv, resnet50_xrv, uniform  # noqa: E402

BUILD = {"densenet121": densenet121_xrv, "resnet50": resnet50_xrv}


def timed(f, runs):
    f()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main():
    threads, batch, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    models = sys.argv[4].split(",")
    runs = int(os.environ.get("RUNS", "5"))
    torch.set_num_threads(threads)
    x = uniform("input", batch * size * size).reshape(batch, 1, size, size) * np.float32(2048)
    for name in models:
        model = BUILD[name](0)  # gain 0, as benches/forward.rs (FormulaBackend::default)
        xt = torch.from_numpy(x)
        with torch.no_grad():
            ms = timed(lambda: model(xt), runs)
        print(f"pytorch\t{name}\t{size}\t{batch}\t{ms:.1f}")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.onnx")
            torch.onnx.export(model, xt, path, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "n"}}, dynamo=False)
            if os.environ.get("ONNX_DIR"):
                shutil.copy(path, os.path.join(os.environ["ONNX_DIR"], f"{name}-{size}.onnx"))
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            ms = timed(lambda: sess.run(None, {"x": x}), runs)
        print(f"onnxruntime\t{name}\t{size}\t{batch}\t{ms:.1f}")


if __name__ == "__main__":
    main()
