#!/usr/bin/env bash
# Builds one install or upgrade script of the extension (called by make).
#
#   scripts/build-sql.sh install  OUT                  sql/*.sql, the current version
#   scripts/build-sql.sh upgrade  OUT sql/upgrades/A--B.sql
#   scripts/build-sql.sh frozen   OUT sql/releases/optischema--X.sql
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
# Environment: ENGINE_BASE (where the engine packages are installed),
# EXTVERSION (the current version).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${ENGINE_BASE:?}" "${EXTVERSION:?}"
mode=$1 out=$2

sources() {
    local f
    for f in $(ls sql/*.sql | LC_ALL=C sort); do echo; echo "-- $f"; cat "$f"; done
}

case "$mode" in
install)
    { echo "-- Built from sql/*.sql by make; edit those, not this file."
      printf '%s\n' '\echo Use "CREATE EXTENSION optischema CASCADE" to load this file. \quit'
      sources; } | sed -e "s|@EXTVERSION@|$EXTVERSION|g" -e "s|@ENGINE_DIR@|$ENGINE_BASE|g" > "$out"
    ;;
upgrade)
    steps=$3
    grep -qx -- '-- @SOURCES@' "$steps" || { echo "build-sql.sh: $steps has no '-- @SOURCES@' line" >&2; exit 1; }
    { echo "-- Built by make from $steps and sql/*.sql; edit those, not this file."
      printf '%s\n' '\echo Use "ALTER EXTENSION optischema UPDATE" to load this file. \quit'
      while IFS= read -r line; do
          if [ "$line" = '-- @SOURCES@' ]; then sources; else printf '%s\n' "$line"; fi
      done < "$steps"; } | sed -e "s|@EXTVERSION@|$EXTVERSION|g" -e "s|@ENGINE_DIR@|$ENGINE_BASE|g" > "$out"
    ;;
frozen)
    sed -e "s|@ENGINE_DIR@|$ENGINE_BASE|g" "$3" > "$out"
    ;;
*)
    echo "usage: $0 install|upgrade|frozen OUT [SOURCE]" >&2; exit 2
    ;;
esac
