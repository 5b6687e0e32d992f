#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the demo, the tests and the benchmark.
#
#   scripts/cluster.sh start [--no-preload]   initdb if needed, start (idempotent)
#   scripts/cluster.sh stop | status | destroy
#   scripts/cluster.sh psql [ARGS]             psql as the cluster's superuser
#   scripts/cluster.sh dsn [DB]                a libpq connection string
#
# Environment: OPTISCHEMA_PGDATA (default $TMPDIR/optischema-$USER/data),
# OPTISCHEMA_PGPORT (default 55432), OPTISCHEMA_PGBIN (default PG 15's bindir),
# OPTISCHEMA_OSUSER (the OS user that runs the server when we are root; default
# postgres: PostgreSQL refuses to run as root).
set -euo pipefail

PGBIN=${OPTISCHEMA_PGBIN:-/usr/lib/postgresql/15/bin}
PGDATA_DIR=${OPTISCHEMA_PGDATA:-${TMPDIR:-/tmp}/optischema-$(id -un)/data}
PORT=${OPTISCHEMA_PGPORT:-55432}
SUPERUSER=optischema_test

die() { echo "cluster.sh: $*" >&2; exit 1; }

if [ "$(id -u)" = 0 ]; then
    OSUSER=${OPTISCHEMA_OSUSER:-postgres}
    as_owner() { runuser -u "$OSUSER" -- "$@"; }
else
    OSUSER=$(id -un)
    as_owner() { "$@"; }
fi

is_running() { [ -f "$PGDATA_DIR/PG_VERSION" ] && as_owner "$PGBIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; }

init_cluster() {
    local preload=$1
    [ -f "$PGDATA_DIR/PG_VERSION" ] && return 0
    if [ "$(id -u)" = 0 ]; then
        id "$OSUSER" >/dev/null 2>&1 ||
            useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$OSUSER"
        install -d -m 0755 "$(dirname "$PGDATA_DIR")"
        install -d -o "$OSUSER" -m 0700 "$PGDATA_DIR"
    else
        install -d -m 0700 "$PGDATA_DIR"
    fi
    # C.UTF-8 is a non-C collation for PostgreSQL 15, like production locales:
    # LIKE 'prefix%' needs text_pattern_ops there, and the advisor must know it.
    as_owner "$PGBIN/initdb" -D "$PGDATA_DIR" -U "$SUPERUSER" -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=trust >/dev/null
    {
        echo "listen_addresses = 'localhost'"
        if [ "$preload" = yes ]; then
            echo "shared_preload_libraries = 'pg_stat_statements,pg_qualstats,pg_cron'"
            # every statement, not 1 in max_connections: tests and benchmarks run each once
            echo "pg_qualstats.sample_rate = 1"
            # room for every test database's statements (the cluster is shared; `make test`
            # fills 10,000 by mid-run): in a full store each new example query evicts another
            echo "pg_qualstats.max = 30000"
            echo "cron.database_name = 'postgres'"
        fi
        echo "compute_query_id = on"
        echo "pg_stat_statements.max = 10000"
        echo "pg_stat_statements.track = top"
        echo "track_io_timing = on"
        echo "shared_buffers = 256MB"
        echo "max_connections = 60"
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
        echo "jit = off"
        echo "timezone = 'UTC'"
        echo "log_min_messages = warning"
    } | as_owner tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
start)
    preload=yes
    [ "${1:-}" = --no-preload ] && preload=no
    [ -x "$PGBIN/initdb" ] || die "PostgreSQL 15 server not found in $PGBIN: run 'make deps'"
    init_cluster "$preload"
    if is_running; then
        echo "cluster.sh: running ($PGDATA_DIR, port $PORT)"
    else
        as_owner "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w -t 120 \
            -o "-p $PORT -k '$PGDATA_DIR'" start >/dev/null ||
            die "server did not start; see $PGDATA_DIR/server.log"
        echo "cluster.sh: started ($PGDATA_DIR, port $PORT)"
    fi
    ;;
stop)
    if is_running; then
        as_owner "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 120 stop >/dev/null
        echo "cluster.sh: stopped"
    fi
    ;;
restart)
    is_running && as_owner "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 120 \
        -o "-p $PORT -k '$PGDATA_DIR'" restart >/dev/null
    ;;
destroy)
    "$0" stop
    rm -rf "$PGDATA_DIR"
    ;;
status)
    is_running && echo "running: $PGDATA_DIR port $PORT" || { echo "not running: $PGDATA_DIR"; exit 3; }
    ;;
psql)
    exec "$PGBIN/psql" -X -h "$PGDATA_DIR" -p "$PORT" -U "$SUPERUSER" -d "${PGDATABASE:-postgres}" "$@"
    ;;
dsn)
    echo "host=$PGDATA_DIR port=$PORT user=$SUPERUSER dbname=${1:-postgres}"
    ;;
*)
    echo "usage: $0 start [--no-preload]|stop|restart|destroy|status|psql [args]|dsn [db]" >&2
    exit 2
    ;;
esac
