#!/usr/bin/env bash
# Runs every suite against the throwaway cluster (scripts/cluster.sh, started
# by `make test`): pgTAP files in tests/pgtap through pg_prove, each in a
# fresh database, then pytest. Fails when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export PGHOST=${PGHOST:-$(scripts/cluster.sh dsn | sed -E 's/.*host=([^ ]+).*/\1/')}
export PGPORT=${PGPORT:-${OPTISCHEMA_PGPORT:-55432}}
export PGUSER=${PGUSER:-optischema_test}
export PGOPTIONS="-c client_min_messages=warning"
DB=optischema_pgtap_$$

status=0
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
psql -X -q -d "$DB" -v ON_ERROR_STOP=1 \
    -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION hypopg" -c "CREATE EXTENSION optischema CASCADE"
pg_prove -d "$DB" --ext .sql -r tests/pgtap || status=1
psql -X -q -d postgres -c "DROP DATABASE $DB WITH (FORCE)"

export OPTISCHEMA_TEST_DSN="host=$PGHOST port=$PGPORT user=$PGUSER dbname=postgres"
.venv/bin/python -m pytest -q tests/python "$@" || status=1
exit $status
