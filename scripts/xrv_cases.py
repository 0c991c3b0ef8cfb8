#!/usr/bin/env python3
"""The two radiographs of the torchxrayvision preprocessing parity check,
written to OUT_DIR: rg1.dcm (pydicom-data's RG1_UNCI, a 1955 x 1841 15-bit
MONOCHROME1 chest CR, as scripts/setup.sh copies it) and rg1-odd.dcm (its
top-left 1000 x 777 pixels: an even height and an odd side, where
XRayCenterCrop starts one row earlier than a symmetric crop). Used by
tools/infer_reference.py (expected outputs) and tests/models_cli.rs (the
same files, remade).

    python scripts/xrv_cases.py OUT_DIR
"""
import os
import shutil
import sys

import pydicom

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
src = os.path.join(root, "fixtures/generated/imaging/RG1_UNCI.dcm")
shutil.copy(src, os.path.join(out, "rg1.dcm"))
ds = pydicom.dcmread(src)
crop = ds.pixel_array[:1000, :777].copy()
ds.PixelData = crop.tobytes()
ds.Rows, ds.Columns = crop.shape
ds.SOPInstanceUID = ds.SOPInstanceUID + ".1"
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
ds.save_as(os.path.join(out, "rg1-odd.dcm"))
