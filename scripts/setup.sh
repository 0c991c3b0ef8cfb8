#!/usr/bin/env bash
# Install everything the test suite needs, idempotently:
#   - Debian packages: DCMTK and Orthanc (real DICOM peers), dicom3tools,
#     SQLite (linked by sqlx), clang (sqlx's SQLite bindings), CharLS
#     (JPEG-LS) and OpenJPEG (JPEG 2000), linked by crates/imaging; OpenSSL
#     (DICOM over TLS, linked by crates/dimse; the CLI makes the TLS test's
#     certificates); curl;
#     Chromium and a font for the browser test of the worklist page;
#   - playwright-core from npm (tests/browser; it drives Debian's Chromium
#     and downloads no browser of its own);
#   - a Python venv (.venv) with pydicom, pydicom-data and pynetdicom;
#   - fixtures/generated/: the sample files the tests use, copied from those
#     packages (synthetic or openly licensed; nothing is downloaded by tests).
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(dcmtk orthanc dicom3tools libsqlite3-dev libcharls-dev libopenjp2-7-dev libssl-dev openssl pkg-config libclang-dev curl python3-venv procps
      chromium fonts-dejavu-core sqlite3)
command -v npm >/dev/null || DEBS+=(nodejs npm)
missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The orthanc package starts a system service on 4242/8042; tests run their
  # own instances on other ports, so it may stay or go.
fi

# pydicom and friends: fixtures, an independent DICOM peer, and the imaging
# reference (numpy, pylibjpeg codecs, pyjpegls).
PY_PKGS=(pydicom==3.0.2 pydicom-data==1.0.0 pynetdicom==3.0.4 numpy==2.4.6
         pylibjpeg==2.1.0 pylibjpeg-openjpeg==2.6.0 pylibjpeg-libjpeg==2.5.0 pyjpegls==1.5.1)
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import pydicom, pynetdicom, data_store, numpy, pylibjpeg, openjpeg, libjpeg, jpeg_ls" 2>/dev/null; then
  echo "setup: creating .venv with ${PY_PKGS[*]}"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "${PY_PKGS[@]}"
fi

.venv/bin/python scripts/fixtures.py fixtures/generated

if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "setup: installing playwright-core for the browser test"
  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi
