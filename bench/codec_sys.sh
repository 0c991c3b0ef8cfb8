#!/usr/bin/env bash
# Which C codecs to link: Debian's shared OpenJPEG and CharLS against the
# same libraries compiled from source by the maintained -sys crates
# (openjpeg-sys, charls-sys, linked statically). The imaging crate's decode
# benchmark runs on the same files in two copies of the workspace at BASE,
# the last commit that linked both of Debian's libraries: as it was, and with
# its `#[link]` attributes and build.rs probe removed and the -sys crates
# added. Prints the median decode + xrv time per file, one thread. (Since
# then triaged links charls-sys, faster here, and keeps Debian's OpenJPEG,
# as fast here: docs/performance.md.)
#
#   bench/codec_sys.sh
#   CALLGRIND=1 bench/codec_sys.sh   # instruction counts, not times
# Needs cmake and g++ for charls-sys (BUILD_PACKAGES).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
source scripts/packages.sh
install_missing "${BUILD_PACKAGES[@]}" >/dev/null
install_missing libcharls-dev >/dev/null
export RUNS=${RUNS:-7} J2K_THREADS=1
BASE=${BASE:-88dcefe}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/triaged-codec-sys.XXXXXX")
trap 'for t in debian sys; do git worktree remove --force "$WORK/$t" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

D="$PWD/fixtures/generated/imaging"
# JPEG-LS versions of the two uncompressed images (DCMTK's encoder), so that
# CharLS decodes a radiograph and a CT slice, not only a 64² MR.
dcmcjpls "$D/RG1_UNCI.dcm" "$WORK/RG1_JLSL.dcm"
dcmcjpls "$D/693_UNCI.dcm" "$WORK/693_JLSL.dcm"
FILES=("$D/RG1_J2KR.dcm" "$D/693_J2KR.dcm" "$WORK/RG1_JLSL.dcm" "$WORK/693_JLSL.dcm" "$D/MR_small_jpeg_ls_lossless.dcm")

git worktree add -q --detach "$WORK/debian" "$BASE"
git worktree add -q --detach "$WORK/sys" "$BASE"
(
  cd "$WORK/sys/crates/imaging"
  sed -i 's/^#\[link(name = "openjp2")\]$//; s/^#\[link(name = "charls")\]$//' src/jpeg2k.rs src/jpegls.rs
  printf 'fn main() {}\n' > build.rs
  cat >> Cargo.toml <<'TOML'

[dependencies.openjpeg-sys]
version = "1.0.12"
[dependencies.charls-sys]
version = "2.4.5"
features = ["static"]
TOML
  printf '\nuse charls_sys as _;\nuse openjpeg_sys as _;\n' >> src/lib.rs
)
# Milliseconds per file; with CALLGRIND=1, instructions executed instead
# (valgrind's count: the same for the same binary and input however busy
# the machine is).
bench() {
  (cd "$WORK/$1" && CARGO_TARGET_DIR="$WORK/target-$1" cargo bench -q -p triaged-imaging --bench decode --no-run 2>/dev/null)
  local bin f
  bin=$(ls -t "$WORK/target-$1"/release/deps/decode-* | grep -v '\.d$' | head -1)
  if [ "${CALLGRIND:-0}" = 1 ]; then
    for f in "${FILES[@]}"; do
      printf '%s\t%s\n' "$(basename "$f")" "$(RUNS=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$f" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')"
    done
  else
    "$bin" "${FILES[@]}"
  fi
}
debian=$(bench debian)
sys=$(bench sys)
unit=ms; [ "${CALLGRIND:-0}" = 1 ] && unit=Ir
ver() { grep -A1 "name = \"$1\"" "$WORK/sys/Cargo.lock" | sed -n 's/version = "\(.*\)"/\1/p'; }
echo "Debian: OpenJPEG $(pkg-config --modversion libopenjp2), CharLS $(pkg-config --modversion charls); -sys crates: openjpeg-sys $(ver openjpeg-sys), charls-sys $(ver charls-sys)"
printf '%-30s %14s %14s %10s\n' file "Debian $unit" "-sys $unit" "sys/Debian"
join -t $'\t' <(echo "$debian" | sort) <(echo "$sys" | sort) |
  while IFS=$'\t' read -r name a b; do
    printf '%-30s %14s %14s %10s\n' "$name" "$a" "$b" "$(python3 -c "print(f'{$b/$a:.2f}')")"
  done
