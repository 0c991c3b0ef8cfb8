#!/usr/bin/env python3
"""Reference results for crates/imaging, computed with pydicom + numpy.

An independent implementation of what the imaging crate computes, for the
sample files in IMAGING_FILES (copied to fixtures/generated/imaging by
scripts/fixtures.py). Writes fixtures/imaging/reference.json (small:
statistics, a SHA-256 of the decoded samples, and coarse block means).

Decoding is pydicom 3 with pylibjpeg (openjpeg, libjpeg) and pyjpegls, all
installed by scripts/setup.sh. Regenerate after changing a definition:

    .venv/bin/python scripts/imaging_reference.py
"""
import hashlib
import json
import os
import sys

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.pixels.processing import apply_windowing

sys.path.insert(0, os.path.dirname(__file__))
from fixtures import IMAGING_FILES  # noqa: E402

LOSSY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81",
         "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.203"}
XRV_SIZE = 224
CT_WINDOWS = [(40.0, 80.0), (80.0, 200.0), (600.0, 2800.0)]
CT_SIZE = 64
# The imagenet spec: torchvision's ImageNet statistics on the VOI grey.
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
IMAGENET_SIZE = 64


def blocks(plane, n):
    """Means of an n x n grid of blocks; edges at floor(i * size / n)."""
    h, w = plane.shape
    ey = [i * h // n for i in range(n + 1)]
    ex = [j * w // n for j in range(n + 1)]
    return [[float(plane[ey[i]:ey[i + 1], ex[j]:ex[j + 1]].mean()) for j in range(n)] for i in range(n)]


def grid(frame, n=16):
    """Decoded samples of frame 0 (after palette and YBR conversion, every
    channel) at an n x n grid of pixels, row-major, channels interleaved:
    pixel-level evidence for lossy and colour files, whose whole-frame hash
    cannot match."""
    h, w, _ = frame.shape
    ys = sorted({int(round(v)) for v in np.linspace(0, h - 1, min(n, h))})
    xs = sorted({int(round(v)) for v in np.linspace(0, w - 1, min(n, w))})
    return {"rows": ys, "columns": xs, "values": frame[np.ix_(ys, xs)].astype(int).ravel().tolist()}


def stats(plane, n):
    plane = np.asarray(plane, dtype=np.float64)
    return {"mean": float(plane.mean()), "min": float(plane.min()), "max": float(plane.max()),
            "blocks": blocks(plane, n)}


def area_weights(n_in, n_out):
    """Area-averaging weights, the same definition as crates/imaging."""
    scale = n_in / n_out
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        start, end = o * scale, (o + 1) * scale
        for i in range(int(np.floor(start)), min(int(np.ceil(end)), n_in)):
            lo, hi = max(start, i), min(end, i + 1)
            if hi > lo:
                m[o, i] = (hi - lo) / scale
    return m


def crop_resize(plane, size):
    h, w = plane.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    sq = plane[top:top + side, left:left + side]
    wy = area_weights(side, size)
    return wy @ sq @ wy.T


def linear_exact(x, c, w):
    return np.clip((x - c) / w + 0.5, 0.0, 1.0) * ((x > c - w / 2) & (x <= c + w / 2)) + (x > c + w / 2)


def reference(path):
    ds = pydicom.dcmread(path)
    ts = str(ds.file_meta.TransferSyntaxUID)
    out = {"transfer_syntax": ts, "lossy": ts in LOSSY}
    try:
        arr = ds.pixel_array
    except Exception as e:  # noqa: BLE001 - recorded, compared as "unsupported"
        out["error"] = f"{type(e).__name__}: {e}"
        return out
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.SamplesPerPixel)
    pi = str(ds.PhotometricInterpretation)
    bits_stored = int(ds.BitsStored)
    if pi == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut
        arr = apply_color_lut(arr, ds)
        pi, spp, bits_stored = "RGB", 3, arr.dtype.itemsize * 8
    if pi.startswith("YBR") and spp == 3:
        # pydicom 3's pixel_array already converts YBR to RGB (as_rgb), for
        # uncompressed data too, as the crate does.
        if ts in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.5"):
            # Rounding conventions may differ (float32 in pydicom): not a
            # bit-exact comparison, like a lossy decode.
            out["lossy"] = True
        pi = "RGB"
    a = arr.reshape(frames, int(ds.Rows), int(ds.Columns), spp).astype(np.int64)
    out.update(rows=int(ds.Rows), columns=int(ds.Columns), frames=frames, samples_per_pixel=spp,
               photometric=pi, bits_stored=bits_stored)
    out["samples_sha256"] = hashlib.sha256(a.astype("<i4").tobytes()).hexdigest()
    out["grid"] = grid(a[0])
    f0 = a[0].astype(np.float64)
    grey = f0.mean(axis=2) if spp == 3 else f0[:, :, 0]
    out["raw"] = stats(grey, 8)

    # xrv: stored values, (2x/maxval - 1) * 1024, MONOCHROME1 inverted.
    maxval = 2 ** bits_stored - 1
    x = maxval - grey if pi == "MONOCHROME1" else grey
    out["xrv"] = stats(crop_resize((2 * x / maxval - 1) * 1024, XRV_SIZE), 16)

    if spp == 1 and pi.startswith("MONOCHROME"):
        frame0 = arr.reshape(frames, ds.Rows, ds.Columns)[0]
        mod = apply_modality_lut(frame0, ds).astype(np.float64)
        seq = frame_groups(ds, "PixelValueTransformationSequence")
        if seq is not None and "RescaleSlope" not in ds:
            # Enhanced objects: frame 0's rescale from the functional groups.
            mod = frame0.astype(np.float64) * float(seq.RescaleSlope) + float(seq.RescaleIntercept)
        out["modality"] = stats(mod, 8)
        unit = voi_unit(ds, mod)
        gain = voi_gain(ds, mod)
        if gain is not None:
            out["voi_gain"] = gain
        if unit is not None:
            if pi == "MONOCHROME1":
                unit = 1.0 - unit
            out["voi_unit"] = stats(unit, 8)
            grey = crop_resize(unit, IMAGENET_SIZE)
            out["imagenet"] = [stats((grey - m) / s, 8) for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
        if str(ds.get("Modality", "")) == "CT":
            out["ct_window"] = [stats(crop_resize(linear_exact(mod, c, w), CT_SIZE), 8) for c, w in CT_WINDOWS]
    return out


def frame_groups(ds, keyword):
    """The first item of a functional group macro for frame 0 (per-frame,
    else shared), or None."""
    for seq in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        if seq in ds and len(ds[seq].value) > 0 and keyword in ds[seq].value[0]:
            return ds[seq].value[0][keyword].value[0]
    return None


def voi_gain(ds, mod):
    """How far the VOI output in [0, 1] moves per stored grey level (the
    slope of a linear window, or of the min-max stretch), so a tolerance in
    grey levels becomes one in VOI units; None for a VOI LUT table."""
    if "VOILUTSequence" in ds or frame_groups(ds, "FrameVOILUTSequence") is not None:
        return None
    slope = float(ds.get("RescaleSlope", 1.0))
    if "WindowCenter" in ds and "WindowWidth" in ds:
        width = ds.WindowWidth
        width = float(width[0] if isinstance(width, pydicom.multival.MultiValue) else width)
        return abs(slope) / max(width - 1.0, 1.0)
    lo, hi = float(mod.min()), float(mod.max())
    return abs(slope) / (hi - lo) if hi > lo else None


def voi_unit(ds, mod):
    """VOI to [0, 1]: pydicom's own VOI, divided by its output range."""
    frame_voi = frame_groups(ds, "FrameVOILUTSequence")
    if frame_voi is not None and "WindowCenter" not in ds:
        # Enhanced objects: the window of frame 0, on a dataset pydicom's
        # windowing reads.
        flat = pydicom.Dataset()
        for kw in ("BitsStored", "PixelRepresentation", "PhotometricInterpretation"):
            setattr(flat, kw, ds[kw].value)
        for kw in ("WindowCenter", "WindowWidth", "VOILUTFunction"):
            if kw in frame_voi:
                setattr(flat, kw, frame_voi[kw].value)
        pvt = frame_groups(ds, "PixelValueTransformationSequence")
        if pvt is not None:
            flat.RescaleSlope, flat.RescaleIntercept = pvt.RescaleSlope, pvt.RescaleIntercept
        ds = flat
    if "VOILUTSequence" in ds:
        item = ds.VOILUTSequence[0]
        bits = int(item.LUTDescriptor[2])
        return apply_voi_lut(mod.copy(), ds, index=0, prefer_lut=True) / (2 ** bits - 1)
    has_window = "WindowCenter" in ds and "WindowWidth" in ds
    if not has_window:
        lo, hi = mod.min(), mod.max()
        return (mod - lo) / (hi - lo if hi > lo else 1.0)
    if ds.get("VOILUTFunction", "LINEAR") not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        return None
    y = apply_windowing(mod.copy(), ds, index=0)
    # The output range pydicom maps the window onto.
    ends = apply_windowing(np.array([-1e12, 1e12]), ds, index=0)
    return (y - ends[0]) / (ends[1] - ends[0])


def main():
    root = os.path.join(os.path.dirname(__file__), "..")
    src = os.path.join(root, "fixtures/generated/imaging")
    result = {"generator": "scripts/imaging_reference.py", "pydicom": pydicom.__version__,
              "xrv_size": XRV_SIZE, "ct_windows": CT_WINDOWS, "ct_size": CT_SIZE,
              "imagenet_mean": IMAGENET_MEAN, "imagenet_std": IMAGENET_STD, "imagenet_size": IMAGENET_SIZE,
              "files": {}}
    for name in IMAGING_FILES:
        result["files"][name] = reference(os.path.join(src, name))
        print(name, "error" if "error" in result["files"][name] else "ok", file=sys.stderr)
    dest = os.path.join(root, "fixtures/imaging/reference.json")
    with open(dest, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    print(f"wrote {dest} ({os.path.getsize(dest)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
