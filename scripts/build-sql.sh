#!/usr/bin/env bash
# Builds one install or upgrade script of the extension (called by make).
#
#   scripts/build-sql.sh install  OUT                  sql/*.sql, the current version
#   scripts/build-sql.sh upgrade  OUT sql/upgrades/A--B.sql
#   scripts/build-sql.sh frozen   OUT sql/releases/optischema--X.sql
#   scripts/build-sql.sh plain    OUT                  the plain install (no extension)
#   scripts/build-sql.sh plain-upgrade OUT sql/upgrades/A--B.sql
#
# An upgrade script is its hand-written steps (what cannot be re-run: new
# columns, changed constraints, dropped or re-typed functions) followed by
# every file of sql/, which is written to be re-run on an installed database
# (CREATE OR REPLACE, IF NOT EXISTS, ON CONFLICT): so a function changed in
# sql/ reaches installed databases without a second copy. A line
# "-- @SOURCES@" in the hand-written file places them; steps after it run
# once the new functions exist. The upgrade test checks that an upgraded
# database equals a fresh install. A released script is frozen in
# sql/releases/ and only its engine directory is filled in.
#
# Two packagings of the same sources: the extension leaves out sql/*_plain.sql,
# the plain install (schema optischema created by an ordinary role, the engine
# run by the sidecar: optischema-sidecar install) leaves out sql/*_plpython.sql
# and the calls only CREATE EXTENSION may make (pg_extension_config_dump).
# Upgrade steps from a version that had a plain install run in both: no
# superuser-only statement there.
#
# Environment: ENGINE_BASE (where the engine packages are installed),
# EXTVERSION (the current version).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${ENGINE_BASE:?}" "${EXTVERSION:?}"
mode=$1 out=$2

# sources extension|plain: the files of that packaging, in order.
sources() {
    local f
    for f in $(ls sql/*.sql | LC_ALL=C sort); do
        case "$1:$f" in extension:*_plain.sql|plain:*_plpython.sql) continue ;; esac
        echo; echo "-- $f"
        if [ "$1" = plain ]; then grep -v '^SELECT pg_catalog.pg_extension_config_dump(' "$f" || true; else cat "$f"; fi
    done
}

# upgrade_steps extension|plain STEPS: the hand-written steps with the sources at -- @SOURCES@.
upgrade_steps() {
    local line
    grep -qx -- '-- @SOURCES@' "$2" || { echo "build-sql.sh: $2 has no '-- @SOURCES@' line" >&2; exit 1; }
    while IFS= read -r line; do
        if [ "$line" = '-- @SOURCES@' ]; then sources "$1"; else printf '%s\n' "$line"; fi
    done < "$2"
}

# The session CREATE EXTENSION gives its script: function bodies are checked
# when they run (one may name a table a later file creates), objects are created
# in schema optischema.
plain_session() {
    echo "SET check_function_bodies = off;"
    echo "SET search_path = optischema, pg_temp;"
}

substitute() {
    sed -e "s|@EXTVERSION@|$EXTVERSION|g" -e "s|@ENGINE_DIR@|$ENGINE_BASE|g"
}

case "$mode" in
install)
    { echo "-- Built from sql/*.sql by make; edit those, not this file."
      printf '%s\n' '\echo Use "CREATE EXTENSION optischema CASCADE" to load this file. \quit'
      sources extension; } | substitute > "$out"
    ;;
upgrade)
    { echo "-- Built by make from $3 and sql/*.sql; edit those, not this file."
      printf '%s\n' '\echo Use "ALTER EXTENSION optischema UPDATE" to load this file. \quit'
      upgrade_steps extension "$3"; } | substitute > "$out"
    ;;
plain)
    { echo "-- The plain install of OptiSchema $EXTVERSION, built from sql/*.sql; run by optischema-sidecar install."
      plain_session; sources plain; } | substitute > "$out"
    ;;
plain-upgrade)
    { echo "-- The plain upgrade $(basename "$3" .sql), built from $3 and sql/*.sql; run by optischema-sidecar upgrade."
      plain_session; upgrade_steps plain "$3"; } | substitute > "$out"
    ;;
frozen)
    sed -e "s|@ENGINE_DIR@|$ENGINE_BASE|g" "$3" > "$out"
    ;;
*)
    echo "usage: $0 install|upgrade|frozen|plain|plain-upgrade OUT [SOURCE]" >&2; exit 2
    ;;
esac
