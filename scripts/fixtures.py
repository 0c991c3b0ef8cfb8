#!/usr/bin/env python3
"""Copy the sample DICOM files the tests use into a folder.

Sources: pydicom's test files (MIT) and pydicom-data (MIT), both installed
from PyPI by scripts/setup.sh; all synthetic or anonymised public samples.
"""
import os
import shutil
import sys

from pydicom.data import get_testdata_file

FILES = {
    # 512x512 CT head, explicit VR little endian, 526 KB
    "ct-693.dcm": "693_UNCI.dcm",
    # 128x128 CT, explicit VR little endian, 39 KB
    "ct-small.dcm": "CT_small.dcm",
    # JPEG 2000 (lossy) secondary capture
    "j2k.dcm": "JPEG2000.dcm",
    # deflated explicit VR little endian
    "deflate.dcm": "image_dfl.dcm",
    # MR, explicit VR little endian
    "mr-small.dcm": "MR_small.dcm",
}


# The imaging crate's reference set (scripts/imaging_reference.py): every
# transfer syntax, photometric interpretation and LUT case the samples cover.
IMAGING_FILES = [
    "CT_small.dcm", "MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm",
    "MR_small_implicit.dcm", "MR_small_padded.dcm", "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "JPEG2000.dcm",
    "JPGExtended.dcm", "image_dfl.dcm", "RG1_UNCI.dcm", "RG1_J2KR.dcm", "RG1_J2KI.dcm",
    "693_UNCI.dcm", "693_J2KR.dcm", "eCT_Supplemental.dcm", "emri_small.dcm",
    "emri_small_RLE.dcm", "emri_small_big_endian.dcm", "emri_small_jpeg_2k_lossless.dcm",
    "emri_small_jpeg_ls_lossless.dcm", "JPEGLSNearLossless_08.dcm", "JPEGLSNearLossless_16.dcm",
    "SC_rgb_jls_lossy_line.dcm", "SC_rgb_jls_lossy_sample.dcm",
    "examples_ybr_color.dcm", "US1_UNCI.dcm",
    "SC_rgb_rle.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_ybr_full_uncompressed.dcm", "OT-PAL-8-face.dcm",
    "JPEG-LL.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "SC_rgb_jpeg_gdcm.dcm", "JPEG2000_UNC.dcm",
    "SC_ybr_full_422_uncompressed.dcm",
]


# Samples stored as bare data sets: given a file meta header (implicit VR
# little endian, as they are encoded) so that they are Part 10 files.
NO_FILE_META = {"OT-PAL-8-face.dcm"}


def add_file_meta(path, dest):
    from pydicom import dcmread
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ImplicitVRLittleEndian

    ds = dcmread(path, force=True)
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ImplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta = meta
    ds.save_as(dest, enforce_file_format=True)


def main(out):
    os.makedirs(out, exist_ok=True)
    for name, source in FILES.items():
        path = get_testdata_file(source)
        if path is None:
            sys.exit(f"fixtures: {source} not found (is pydicom-data installed?)")
        dest = os.path.join(out, name)
        if not os.path.exists(dest) or os.path.getsize(dest) != os.path.getsize(path):
            shutil.copyfile(path, dest)
    imaging = os.path.join(out, "imaging")
    os.makedirs(imaging, exist_ok=True)
    for name in IMAGING_FILES:
        path = get_testdata_file(name)
        if path is None:
            sys.exit(f"fixtures: {name} not found (is pydicom-data installed?)")
        dest = os.path.join(imaging, name)
        if name in NO_FILE_META:
            if not os.path.exists(dest):
                add_file_meta(path, dest)
        elif not os.path.exists(dest) or os.path.getsize(dest) != os.path.getsize(path):
            shutil.copyfile(path, dest)
    print(f"fixtures: {len(FILES)} files in {out}, {len(IMAGING_FILES)} in {imaging}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fixtures/generated")
