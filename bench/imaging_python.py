#!/usr/bin/env python3
"""The Python reference path, timed: pydicom (+ pylibjpeg codecs) decode and
torchxrayvision-style preprocessing in numpy, as scripts/imaging_reference.py
defines it. Prints `name<TAB>ms` (median of RUNS runs) per file."""
import os
import sys
import time

import numpy as np
import pydicom

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
from imaging_reference import crop_resize  # noqa: E402


def xrv(path):
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array.astype(np.float64)
    if arr.ndim == 3 and int(ds.get("NumberOfFrames", 1) or 1) > 1:
        arr = arr[0]
    maxval = 2 ** int(ds.BitsStored) - 1
    if ds.PhotometricInterpretation == "MONOCHROME1":
        arr = maxval - arr
    return crop_resize((2 * arr / maxval - 1) * 1024, 224)


def main():
    runs = int(os.environ.get("RUNS", "5"))
    for path in sys.argv[1:]:
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            xrv(path)
            times.append((time.perf_counter() - t) * 1000)
        print(f"{os.path.basename(path)}\t{sorted(times)[len(times) // 2]:.2f}")


if __name__ == "__main__":
    main()
