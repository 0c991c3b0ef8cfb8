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


def main(out):
    os.makedirs(out, exist_ok=True)
    for name, source in FILES.items():
        path = get_testdata_file(source)
        if path is None:
            sys.exit(f"fixtures: {source} not found (is pydicom-data installed?)")
        dest = os.path.join(out, name)
        if not os.path.exists(dest) or os.path.getsize(dest) != os.path.getsize(path):
            shutil.copyfile(path, dest)
    print(f"fixtures: {len(FILES)} files in {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fixtures/generated")
