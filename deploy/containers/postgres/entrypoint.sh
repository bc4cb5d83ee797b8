#!/bin/sh
# Entrypoint of localhost/octollm/postgres:15 (built by `cargo xtask images`).
#
# First start (empty $PGDATA): initdb as user postgres with the superuser
# $POSTGRES_USER (default postgres) and password $POSTGRES_PASSWORD, creates
# $POSTGRES_DB (default: the user name) in single-user mode, and allows
# password (scram-sha-256) logins from any address.
# Every start: execs the postmaster as user postgres in the foreground, so it
# is pid 1 and receives the stop signal (the image sets STOPSIGNAL SIGINT:
# fast shutdown). No temporary server is ever started, so
# "database system is ready to accept connections" is logged exactly once per
# start, when the real server accepts connections.
# Extra arguments are passed to postgres, e.g. `-c fsync=off`.
set -eu

PGBIN=/usr/lib/postgresql/15/bin
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
export PGDATA

as_postgres() {
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
}

mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
chmod 2775 /var/run/postgresql

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "octollm-postgres: POSTGRES_PASSWORD must be set for the first start" >&2
        exit 1
    fi
    pwfile="$(mktemp)"
    trap 'rm -f "$pwfile"' EXIT
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    chown postgres:postgres "$pwfile"
    as_postgres "$PGBIN/initdb" \
        --pgdata="$PGDATA" \
        --username="$POSTGRES_USER" \
        --pwfile="$pwfile" \
        --encoding=UTF8 \
        --locale=C.UTF-8 \
        --auth-local=trust \
        --auth-host=scram-sha-256 >&2
    rm -f "$pwfile"
    trap - EXIT

    cat >>"$PGDATA/postgresql.conf" <<'CONF'

# octollm container settings
listen_addresses = '*'
port = 5432
unix_socket_directories = '/var/run/postgresql'
# LLVM is stripped from the image to keep it small.
jit = off
CONF
    cat >>"$PGDATA/pg_hba.conf" <<'HBA'

# octollm container: password logins from anywhere
host all all 0.0.0.0/0 scram-sha-256
host all all ::/0 scram-sha-256
HBA

    if [ "$POSTGRES_DB" != "postgres" ]; then
        quoted="$(printf '%s' "$POSTGRES_DB" | sed 's/"/""/g')"
        printf 'CREATE DATABASE "%s";\n' "$quoted" |
            as_postgres "$PGBIN/postgres" --single -D "$PGDATA" postgres >/dev/null
    fi
    echo "octollm-postgres: initialised $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)" >&2
fi

exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$PGBIN/postgres" -D "$PGDATA" "$@"
