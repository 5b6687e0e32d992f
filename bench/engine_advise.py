#!/usr/bin/env python3
"""Dev runner: the engine's advice for the bench database, as DDL lines on stdout.

  BENCH_DSN=... python3 bench/engine_advise.py [--json OUT] [--no-drops] [--window-seconds N]

Workload: pg_stat_statements (top-level statements of the current database, this
session's own statements excluded). Activity: pg_stat_user_tables / pg_stat_user_indexes
counters, read as deltas from zero (the bench database is freshly loaded, so the counters
cover the load and the replay). The engine runs through PsycopgDatabase, inside one
transaction that is rolled back: nothing is left behind.
"""
import argparse
import json
import os
import sys
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "extension"))
from optischema_engine import (Activity, IndexActivity, Settings, TableActivity,  # noqa: E402
                               WorkloadQuery, advise)
from optischema_engine.db import PsycopgDatabase  # noqa: E402

WORKLOAD_SQL = """
SELECT queryid, query, calls, total_exec_time AS total_ms, rows
FROM pg_stat_statements(true)
WHERE toplevel AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND queryid IS NOT NULL AND query NOT ILIKE '%pg_stat_statements%' AND query NOT ILIKE '%pg_qualstats%'
  AND query !~* '^\\s*(SET|RESET|SHOW|BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|PREPARE|DEALLOCATE|EXPLAIN)\\M'"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", default=os.environ.get("BENCH_DSN"))
    ap.add_argument("--json", help="write the full AdviceResult here")
    ap.add_argument("--no-drops", action="store_true")
    ap.add_argument("--window-seconds", type=float, default=None,
                    help="analysis window for unused-index advice (default: since the stats reset)")
    args = ap.parse_args()
    conn = psycopg.connect(args.dsn, autocommit=True)
    for setting in ("pg_stat_statements.track = none", "pg_qualstats.enabled = off"):
        try:
            conn.execute(f"SET {setting}")
        except psycopg.Error:
            pass
    workload = [WorkloadQuery(int(r[0]), r[1], int(r[2]), float(r[3]), int(r[4]))
                for r in conn.execute(WORKLOAD_SQL)]
    tables = {int(r[0]): TableActivity(*[int(x or 0) for x in r[1:]]) for r in conn.execute(
        "SELECT relid, seq_scan, idx_scan, n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd, n_live_tup "
        "FROM pg_stat_user_tables")}
    indexes = {int(r[0]): IndexActivity(int(r[1])) for r in conn.execute(
        "SELECT indexrelid, idx_scan FROM pg_stat_user_indexes")}
    window = args.window_seconds
    if window is None:
        window = float(conn.execute("SELECT extract(epoch FROM now() - coalesce(stats_reset, "
                                    "pg_postmaster_start_time())) FROM pg_stat_database "
                                    "WHERE datname = current_database()").fetchone()[0])
    settings = Settings.from_dict(json.loads(os.environ.get("ENGINE_SETTINGS", "{}")))
    with conn.transaction(force_rollback=True):
        result = advise(PsycopgDatabase(conn), workload, Activity(window, tables, indexes), settings)
    conn.close()
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2, default=str))
    for r in result.recommendations:
        if r.kind == "create_index" or not args.no_drops:
            print(r.ddl + ";")
    st = result.stats
    print(f"engine: {len(result.recommendations)} recommendations, {st.get('explain_calls')} EXPLAINs, "
          f"{st.get('hypo_indexes')} hypothetical indexes, {st.get('elapsed_ms')} ms, "
          f"cost {st.get('workload_cost_before')} -> {st.get('workload_cost_after')}", file=sys.stderr)
    for s in result.skipped:
        print(f"engine: skipped {s.queryid}: {s.reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
