#!/usr/bin/env bash
# Show that the README's first command runs the daemon on a fresh Debian 12
# machine that has only the Rust toolchain: make a minimal Debian 12 root
# with debootstrap (Debian's own packages, no compiler), bind-mount this
# machine's Rust toolchain into it, clone the repository there, run
# scripts/serve.sh inside, and check from outside that the daemon answers
# C-ECHO, stores an instance and serves /healthz. Then stop it and remove
# the root. Root only (debootstrap, chroot, mounts); takes about ten
# minutes on two cores (the whole release build).
#
#   tools/fresh-machine.sh [ROOT]     (default: a new folder under /var/tmp)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
root=${1:-$(mktemp -d /var/tmp/triaged-fresh.XXXXXX)}
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
cargo_home=${CARGO_HOME:-$HOME/.cargo}
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
command -v echoscu >/dev/null || apt-get install -y -qq dcmtk >/dev/null

serve_pid=
cleanup() {
  # The daemon (cargo run's child, inside the chroot) is in serve.sh's
  # process group: stop the whole group and wait for it before unmounting.
  if [ -n "$serve_pid" ]; then
    kill -TERM -- "-$serve_pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 -- "-$serve_pid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$serve_pid" 2>/dev/null || true
  fi
  for m in root/.cargo root/.rustup dev proc; do
    mountpoint -q "$root/$m" && umount "$root/$m"
  done
  [ -n "${KEEP:-}" ] || rm -rf "$root"
}
trap cleanup EXIT

[ -x "$root/usr/bin/apt-get" ] || debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mkdir -p "$root/root/.rustup" "$root/root/.cargo"
mount --bind -o ro "$rustup_home" "$root/root/.rustup"
mount --bind "$cargo_home" "$root/root/.cargo"
rm -rf "$root/src"
git clone -q "$repo" "$root/src"
echo "fresh root: Debian $(cat "$root/etc/debian_version"), $(chroot "$root" dpkg -l | grep -c '^ii') packages, C compiler: $(chroot "$root" sh -c 'command -v cc || echo none')"

setsid chroot "$root" /usr/bin/env -i PATH=/root/.cargo/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
  /bin/bash -c 'cd /src && exec scripts/serve.sh' >"$root/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 1 3600); do
  grep -q "triaged ready" "$root/serve.log" 2>/dev/null && break
  if ! kill -0 "$serve_pid" 2>/dev/null; then
    tail -30 "$root/serve.log"
    echo "fresh-machine: scripts/serve.sh ended before the daemon was ready" >&2
    exit 1
  fi
  sleep 1
done
grep -q "triaged ready" "$root/serve.log" || { tail -30 "$root/serve.log"; exit 1; }
echo "after scripts/serve.sh: $(chroot "$root" dpkg -l | grep -c '^ii') packages; $(grep -o 'Finished .*' "$root/serve.log")"
echoscu -aec TRIAGED 127.0.0.1 11112
storescu -aec TRIAGED 127.0.0.1 11112 "$repo/fixtures/generated/ct-small.dcm"
curl -fsS http://127.0.0.1:8642/healthz >/dev/null
chroot "$root" /bin/sh -c 'cd /src && target/release/triaged studies list' | grep -q "1.3.6.1.4.1.5962" 
echo "fresh-machine: the daemon built and ran on a fresh Debian 12 root: C-ECHO, C-STORE (indexed) and /healthz answered"
