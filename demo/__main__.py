"""`make demo`: a help-desk database, its workload, and what OptiSchema makes of it.

Runs against the throwaway cluster `make demo` started (scripts/cluster.sh);
every step prints what a DBA would type in psql and its answer."""
from __future__ import annotations

import os
import subprocess
import time

import psycopg

from bench.common import ROOT, fresh_database
from demo import workload

DB = "optischema_demo"
PSQL = "/usr/lib/postgresql/15/bin/psql"
WORKLOAD_SECONDS = float(os.environ.get("DEMO_SECONDS", "20"))


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def psql(dsn: str, sql: str) -> None:
    """Shows a statement and its result the way psql would."""
    print(f"{DB}=# {sql}", flush=True)
    subprocess.run([PSQL, "-X", "-P", "pager=off", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", sql], check=True)


def load(dsn: str) -> None:
    t0 = time.monotonic()
    for name in ("schema.sql", "data.sql"):
        subprocess.run([PSQL, "-X", "-q", "-o", "/dev/null", "-v", "ON_ERROR_STOP=1", "-d", dsn,
                        "-f", str(ROOT / "demo" / name)],
                       check=True)
    print(f"loaded the help-desk schema and data in {time.monotonic() - t0:.1f} s")


def main() -> None:
    step("A fresh database with the extension: CREATE EXTENSION optischema CASCADE")
    dsn = fresh_database(DB)
    load(dsn)
    psql(dsn, "SELECT optischema.snapshot() AS first_snapshot")

    step(f"The application runs for {WORKLOAD_SECONDS:.0f} s")
    statements = workload.run(dsn, WORKLOAD_SECONDS)
    print(f"{statements} statements from {len(workload.TEMPLATES)} templates")
    psql(dsn, "SELECT optischema.snapshot() AS second_snapshot")

    step("What the database spends its time on")
    # The window starts at the first snapshot, taken after the data load.
    psql(dsn, "SELECT t.queryid, left(regexp_replace(t.query, '\\s+', ' ', 'g'), 60) AS query, t.calls, t.total_ms,"
              " t.mean_ms, t.share_pct, t.cache_hit_pct FROM optischema.snapshots s,"
              " optischema.top_queries(now() - s.taken_at, 10) t WHERE s.id = 1")

    step("What is missing, and how to fix it")
    psql(dsn, "SELECT * FROM optischema.health()")

    with psycopg.connect(dsn) as conn:
        has_recommend = conn.execute(
            "SELECT to_regprocedure('optischema.recommend(integer)') IS NOT NULL").fetchone()[0]
    if has_recommend:
        step("What to change: specific, what-if checked recommendations")
        # A demo's window is minutes long; unused indexes normally need a week of evidence.
        psql(dsn, "SELECT optischema.set_setting('drop_unused_min_window', '10 seconds')")
        psql(dsn, "SELECT id, kind, title, ddl FROM optischema.recommend()")
        psql(dsn, "SELECT id, rollback_ddl, jsonb_pretty(benefit -> 'queries') AS per_query"
                  " FROM optischema.recommendations WHERE status = 'open' ORDER BY score DESC LIMIT 1")


if __name__ == "__main__":
    main()
