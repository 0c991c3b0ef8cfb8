#!/usr/bin/env bash
# A throwaway PostgreSQL server for the test suite (Debian's postgresql):
#
#   scripts/postgres.sh start DIR   initdb in DIR, start on a free loopback
#                                   port, print `export TRIAGED_TEST_POSTGRES=…`;
#                                   a DIR that holds a stopped server starts it
#                                   again, on the port it had
#   scripts/postgres.sh stop DIR    stop it (DIR stays; delete it yourself)
#
# POSTGRES_TLS=on (or a file DIR/tls): the server also speaks TLS, with a
# certificate for 127.0.0.1 from a throwaway CA whose certificate is DIR/ca.pem.
#
# PostgreSQL refuses to run as root: as root the server runs as the
# `postgres` user, on a DIR it owns. Trust authentication on loopback only;
# fsync off (the suite kills triaged, never the machine; POSTGRES_FSYNC=on for
# a benchmark).
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?DIR}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/postgres" ] || { echo "postgres.sh: PostgreSQL is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "$cmd" in
  start)
    if [ -f "$dir/port" ]; then
      port=$(cat "$dir/port")
    else
      mkdir -p "$dir"
      [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
      as_owner "$bin/initdb" -D "$dir/data" -A trust -U triaged -E UTF8 --no-locale >/dev/null
      port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      echo "$port" > "$dir/port"
    fi
    tls=""
    if [ "${POSTGRES_TLS:-off}" = on ] || [ -f "$dir/tls" ]; then
      if [ ! -f "$dir/server.key" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=triaged test CA" \
          -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
          -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > "$dir/server.ext"
        openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
          -CAcreateserial -days 7 -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null
        chmod 600 "$dir/server.key"
        [ "$(id -u)" -eq 0 ] && chown postgres "$dir/server.key" "$dir/server.pem"
      fi
      tls="-c ssl=on -c ssl_cert_file=$dir/server.pem -c ssl_key_file=$dir/server.key"
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
      "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=${POSTGRES_FSYNC:-off} -c max_connections=600 -c shared_buffers=64MB $tls" >/dev/null
    echo "export TRIAGED_TEST_POSTGRES=postgres://triaged@127.0.0.1:$port"
    ;;
  stop)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
