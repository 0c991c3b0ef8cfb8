# Every Debian 12 package triaged needs, in one place. Sourced by
# scripts/serve.sh (build and run), scripts/setup.sh (the test suite) and
# deploy/docker/Dockerfile; deploy/systemd/README.md names RUN_PACKAGES.
#
#   BUILD_PACKAGES  compile and link the binary: a C compiler and linker
#                   (rustc links with cc; cargo compiles SQLite's
#                   amalgamation and ring, the TLS crypto), CMake with make and a C++
#                   compiler (charls-sys builds CharLS, for JPEG-LS), and
#                   OpenJPEG (JPEG 2000) with pkg-config to find it;
#   RUN_PACKAGES    the shared libraries the built binary loads (CharLS's
#                   C++ runtime among them);
#   TEST_PACKAGES   the real peers and tools of the test suite: DCMTK,
#                   Orthanc, dicom3tools, sqlite3, Chromium and a font, curl,
#                   Python's venv, procps, openssl (the TLS test's
#                   certificates), rsyslog (the audit trail's syslog
#                   collector), orthanc-dicomweb (Orthanc's DICOMweb
#                   plugin: the DICOMweb peer), postgresql (the cluster's
#                   database: the suite runs a second time on a server of
#                   its own, scripts/postgres.sh), haproxy (in front of
#                   a cluster's nodes, tests/cluster.rs). Node.js for the browser test's driver
#                   comes from PyPI into .venv (scripts/setup.sh): Debian
#                   12's nodejs 18 is older than playwright-core supports.

BUILD_PACKAGES=(gcc g++ make cmake libc6-dev pkg-config libopenjp2-7-dev ca-certificates)
RUN_PACKAGES=(libopenjp2-7 libstdc++6)
TEST_PACKAGES=(dcmtk orthanc dicom3tools sqlite3 chromium fonts-dejavu-core curl python3-venv procps openssl rsyslog orthanc-dicomweb postgresql haproxy)

# install_missing PACKAGE...: apt-get install those not installed yet.
install_missing() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing from Debian: ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
