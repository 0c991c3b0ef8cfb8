# Helpers the benchmark scripts share; source it from the repository root.

# The daemon caps its own glibc malloc arenas at two (daemon::malloc) unless
# MALLOC_ARENA_MAX is set; DAEMON_ARENAS=N runs it with MALLOC_ARENA_MAX=N
# instead, DAEMON_ARENAS=0 with glibc's default (8 per core). Start it as
# "${daemon_env[@]}" "$bin" ... (env execs it: $! is the daemon's pid). The
# peers keep their own defaults.
case "${DAEMON_ARENAS:-}" in
  "") daemon_env=(env -u MALLOC_ARENA_MAX) ;;
  0) daemon_env=(env MALLOC_ARENA_MAX=$((8 * $(nproc)))) ;;
  *) daemon_env=(env MALLOC_ARENA_MAX="$DAEMON_ARENAS") ;;
esac

# The release daemon, built now; prints its path.
release_triaged() {
  cargo build --release -q -p triaged
  local target
  target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  echo "$target/release/triaged"
}

# A free loopback TCP port.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The median of the arguments, to 3 decimals.
median() { python3 -c 'import sys,statistics; print(f"{statistics.median(map(float,sys.argv[1:])):.3f}")' "$@"; }

# peak_rss: the daemon's ($daemon) peak resident set, and what it holds now split
# into heap and other private memory (anon) and pages of files, mostly
# the binary's own code (file: shared and dropped first under pressure).
peak_rss() {
  awk '/^VmHWM/ {p = $2} /^RssAnon/ {a = $2} /^RssFile/ {f = $2}
       END {printf "%d MB (now %d MB anon, %d MB file)", p / 1024, a / 1024, f / 1024}' "/proc/$daemon/status"
}
