# The peers of the compose files (Orthanc, PostgreSQL, HAProxy), each from
# Debian 12's own package: the same versions the test suite runs against
# (scripts/packages.sh), built on the one base image the triaged image runs
# on, so nothing but debian:bookworm-slim comes from a registry (and
# deploy/offline-base-images.sh makes that one from a Debian mirror).
# A compose file picks one with `target:`.

# Orthanc 1.10 with Lua (the routing script), configured by one file.
FROM debian:bookworm-slim AS orthanc
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends orthanc curl >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/orthanc/db && chown -R orthanc:orthanc /var/lib/orthanc
USER orthanc
VOLUME ["/var/lib/orthanc/db"]
EXPOSE 4242 8042
HEALTHCHECK --interval=2s --timeout=5s --retries=30 \
  CMD curl -fsS http://127.0.0.1:8042/system >/dev/null || exit 1
CMD ["Orthanc", "/etc/orthanc/orthanc.json"]

# PostgreSQL 15: a cluster made on first start from POSTGRES_USER,
# POSTGRES_PASSWORD and POSTGRES_DB, as the official image does.
FROM debian:bookworm-slim AS postgres
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /run/postgresql \
 && chown postgres:postgres /var/lib/postgresql/data /run/postgresql \
 && chmod 700 /var/lib/postgresql/data
COPY deploy/docker/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["bash", "/usr/local/bin/postgres-entrypoint"]

# HAProxy 2.6, in the foreground, configured by one file.
FROM debian:bookworm-slim AS haproxy
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null \
 && rm -rf /var/lib/apt/lists/*
USER haproxy
STOPSIGNAL SIGUSR1
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
