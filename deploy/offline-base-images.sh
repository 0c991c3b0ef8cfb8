#!/usr/bin/env bash
# The two base images deploy/'s Dockerfiles start from, made without Docker
# Hub: for a build host that reaches only a Debian mirror and crates.io (an
# air-gapped hospital network, or this project's build machines).
#
#   debian:bookworm-slim   debootstrap's minimal Debian 12 from the mirror;
#   rust:1.95-bookworm     that image plus this host's Rust 1.95 toolchain
#                          (rustup's, under ~/.rustup), laid out as the
#                          official image lays it out (/usr/local/cargo/bin).
#
# This host's own certificate authorities (/usr/local/share/ca-certificates,
# such as a proxy's that inspects TLS on the way to crates.io) go into both
# images, where Debian's ca-certificates package trusts them once installed.
#
# Where Docker Hub is reachable, skip this: `docker compose ... --build`
# pulls the official images of the same names.
#   bash deploy/offline-base-images.sh [MIRROR]
set -euo pipefail
mirror=${1:-http://deb.debian.org/debian}
docker=${DOCKER:-docker}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v debootstrap >/dev/null || {
  echo "debootstrap is missing: apt-get install debootstrap" >&2
  exit 1
}

echo "debian:bookworm-slim from $mirror" >&2
debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" ||
  { tail -20 "$work/debootstrap.log" >&2; exit 1; }
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
mkdir -p "$work/rootfs/usr/local/share/ca-certificates"
cp /usr/local/share/ca-certificates/*.crt "$work/rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
tar -C "$work/rootfs" -c . | $docker import -c 'CMD ["bash"]' - debian:bookworm-slim

toolchain=${TOOLCHAIN:-$(rustup run 1.95.0 rustc --print sysroot 2>/dev/null || rustc --print sysroot)}
[ -x "$toolchain/bin/cargo" ] || {
  echo "no Rust 1.95 toolchain found (set TOOLCHAIN=/path/to/toolchain)" >&2
  exit 1
}
"$toolchain/bin/rustc" --version | grep -q '^rustc 1\.95\.' || {
  echo "$toolchain is not Rust 1.95: $("$toolchain/bin/rustc" --version)" >&2
  exit 1
}
echo "rust:1.95-bookworm with $toolchain" >&2
mkdir -p "$work/rust"
cp -a "$toolchain/bin" "$toolchain/lib" "$toolchain/libexec" "$work/rust/"
cat >"$work/Dockerfile" <<'EOF'
FROM debian:bookworm-slim
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY rust /usr/local/rust
ENV CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
RUN mkdir -p /usr/local/cargo/bin \
 && for b in /usr/local/rust/bin/*; do ln -s "$b" /usr/local/cargo/bin/; done \
 && cargo --version && rustc --version
EOF
$docker build -q -t rust:1.95-bookworm "$work"
