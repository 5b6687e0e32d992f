"""`make demo`: a help-desk database, its workload, and what OptiSchema makes of it.

Runs against the throwaway cluster `make demo` started (scripts/cluster.sh);
every step prints what a DBA would type in psql and its answer."""
from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Iterator

import psycopg
from psycopg.conninfo import make_conninfo

from bench.common import ROOT, fresh_database
from demo import workload
from optischema_sidecar.llm.demo import run_once as llm_demo

DB = "optischema_demo"
# The application's role (it owns the tables and sends the workload) and the sidecar's
# least-privilege login role (README, Roles). Roles are cluster-wide: made once, kept.
APP_ROLE = "optischema_demo_app"
SIDECAR_ROLE = "optischema_demo_sidecar"
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


def scalar(dsn: str, sql: str) -> object:
    """Runs one statement in autocommit, as psql does, and shows it."""
    print(f"{DB}=# {sql}", flush=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        value = conn.execute(sql).fetchone()[0]
    print(f" {value}\n", flush=True)
    return value


def roles(dsn: str) -> None:
    """The application owns its tables; the sidecar is no superuser: the sidecar level,
    other roles' statistics, and membership in the role that owns (and queries) the tables."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        missing = [r for r in (APP_ROLE, SIDECAR_ROLE)
                   if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (r,)).fetchone()]
        tables = [r[0] for r in conn.execute("SELECT c.oid::regclass::text FROM pg_class c"
                                             " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'"
                                             " ORDER BY 1")]
    for role in missing:
        psql(dsn, f"CREATE ROLE {role} LOGIN")
    # An index is created in its table's schema: its owner needs CREATE there (public has none for PUBLIC).
    psql(dsn, "; ".join([f"ALTER TABLE {t} OWNER TO {APP_ROLE}" for t in tables]
                        + [f"GRANT CREATE ON SCHEMA public TO {APP_ROLE}"]))
    psql(dsn, f"SELECT optischema.grant_usage('{SIDECAR_ROLE}', 'sidecar')")
    psql(dsn, f"GRANT pg_read_all_stats, {APP_ROLE} TO {SIDECAR_ROLE}")


@contextmanager
def sidecar(dsn: str) -> Iterator[None]:
    """A real sidecar for the demo's database. LLM jobs are left to the demo's
    own LLM step, which prints what it does."""
    kinds = "apply,rollback,verify,snapshot,recommend,purge"
    cmd = [str(ROOT / ".venv" / "bin" / "optischema-sidecar"), "--dsn", make_conninfo(dsn, user=SIDECAR_ROLE),
           "--kinds", kinds, "--metrics-port", "0", "--no-schedule", "--poll-interval", "1", "--log-level", "WARNING"]
    print(f"$ optischema-sidecar --dsn 'dbname={DB} user={SIDECAR_ROLE}' --kinds " + kinds, flush=True)
    proc = subprocess.Popen(cmd)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while not conn.execute("SELECT count(*) FROM optischema.sidecars").fetchone()[0]:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the sidecar did not start; see its output above")
                time.sleep(0.2)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def change_loop(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        rec = conn.execute("SELECT id FROM optischema.recommendations WHERE status = 'open'"
                           " AND kind = 'create_index' ORDER BY score DESC LIMIT 1").fetchone()
    if rec is None:
        print("no index to apply")
        return
    rec_id = rec[0]
    with sidecar(dsn):
        step(f"Apply recommendation {rec_id}: the sidecar runs CREATE INDEX CONCURRENTLY at top level")
        change = scalar(dsn, f"SELECT optischema.apply({rec_id})")
        psql(dsn, f"CALL optischema.wait({change})")
        psql(dsn, "SELECT id, action, outcome, round(duration_ms::numeric, 1) AS ms, plan_check, executed_by, ddl"
                  f" FROM optischema.changes WHERE id = {change}")

        step("The application runs on; measured before and after")
        # The measured "after" starts at the first snapshot taken once the index exists.
        psql(dsn, "SELECT optischema.snapshot()")
        print(f"{workload.run(make_conninfo(dsn, user=APP_ROLE), WORKLOAD_SECONDS / 2)} statements")
        psql(dsn, "SELECT optischema.snapshot()")
        psql(dsn, f"SELECT * FROM optischema.verify({rec_id})")

        step("Roll it back")
        change = scalar(dsn, f"SELECT optischema.rollback({rec_id})")
        psql(dsn, f"CALL optischema.wait({change})")
        psql(dsn, "SELECT c.id, c.action, c.outcome, round(c.duration_ms::numeric, 1) AS ms, r.status AS recommendation, c.ddl"
                  " FROM optischema.changes c JOIN optischema.recommendations r ON r.id = c.recommendation_id"
                  " ORDER BY c.id")
        psql(dsn, "SELECT * FROM optischema.health() WHERE \"check\" = 'sidecar heartbeat'")


EXPORT = "SELECT id, ticket_id, created_at FROM ticket_events ORDER BY created_at OFFSET 299999"


def weekly_export(dsn: str) -> None:
    """The application's weekly export, three times, each in a new session (a role's
    settings reach new sessions only)."""
    print(f"{DB}=> -- as {APP_ROLE}, three times: {EXPORT}", flush=True)
    for _ in range(3):
        with psycopg.connect(make_conninfo(dsn, user=APP_ROLE), autocommit=True) as conn:
            conn.execute(EXPORT).fetchall()


def maintenance_and_config(dsn: str) -> None:
    """One maintenance and one configuration finding end to end: a VACUUM through the
    sidecar, a role's work_mem through psql (the sidecar's role may not ALTER ROLE)."""
    step("Maintenance: a backfill ran while autovacuum was off for tickets (a migration habit)")
    psql(dsn, "ALTER TABLE tickets SET (autovacuum_enabled = off); UPDATE tickets SET updated_at = updated_at;"
              " SELECT pg_stat_force_next_flush()")
    step("Configuration: the weekly export sorts 300,000 rows; under work_mem 4MB the sort spills to disk")
    weekly_export(dsn)
    # The memory budget of work_mem is checked against the server's RAM.
    psql(dsn, "SELECT optischema.set_setting('server_memory_mb', '16384')")
    step("recommend(): findings from the evidence, no LLM needed")
    psql(dsn, "SELECT id, kind, title FROM optischema.recommend() WHERE kind IN ('maintenance', 'config')")
    with psycopg.connect(dsn) as conn:
        found = dict(conn.execute("SELECT kind, id FROM optischema.recommendations WHERE status = 'open'"
                                  " AND (action_spec ->> 'action' = 'vacuum' OR action_spec ->> 'setting' = 'work_mem')"
                                  " ORDER BY score").fetchall())
    psql(dsn, "SELECT id, ddl, rollback_ddl, jsonb_pretty(evidence - 'statements' - 'budget') AS evidence"
              " FROM optischema.recommendations WHERE status = 'open' AND kind IN ('maintenance', 'config')")
    if "maintenance" in found:
        with sidecar(dsn):
            step(f"Apply {found['maintenance']}: the sidecar runs the VACUUM at top level, then measures the dead rows again")
            change = scalar(dsn, f"SELECT optischema.apply({found['maintenance']})")
            psql(dsn, f"CALL optischema.wait({change})")
            with psycopg.connect(dsn) as conn:      # the effect check follows the VACUUM in the same job
                while conn.execute("SELECT plan_check = 'pending' FROM optischema.changes WHERE id = %s",
                                   (change,)).fetchone()[0]:
                    conn.commit()
                    time.sleep(0.2)
            psql(dsn, "SELECT id, outcome, plan_check, plan_evidence -> 'before' -> 'n_dead_tup' AS dead_before,"
                      f" plan_evidence -> 'now' -> 'n_dead_tup' AS dead_now, ddl FROM optischema.changes WHERE id = {change}")
    if "config" in found:
        rec_id = found["config"]
        step(f"Apply {rec_id} from psql: apply(via => 'psql') hands over the statement, applied() records it")
        change = scalar(dsn, f"SELECT optischema.apply({rec_id}, via => 'psql')")
        ddl = scalar(dsn, f"SELECT ddl FROM optischema.changes WHERE id = {change}")
        psql(dsn, ddl)
        scalar(dsn, f"SELECT optischema.applied({change})")
        step("The export runs again, in new sessions; measured before and after")
        psql(dsn, "SELECT optischema.snapshot()")
        weekly_export(dsn)
        psql(dsn, "SELECT optischema.snapshot()")
        # The export runs three times here, not the ten verify_min_calls asks for.
        psql(dsn, "SELECT optischema.set_setting('verify_min_calls', '3')")
        psql(dsn, f"SELECT queryid, calls_before, mean_ms_before, calls_after, mean_ms_after, verdict FROM optischema.verify({rec_id})")
        psql(dsn, "SELECT q ->> 'queryid' AS queryid, q -> 'temp_blks_per_call_before' AS temp_blocks_before,"
                  " q -> 'temp_blks_per_call_after' AS temp_blocks_after"
                  f" FROM optischema.changes c, jsonb_array_elements(c.timing -> 'queries') q WHERE c.id = {change}")
        step("Roll it back: the role's setting as it was before (here: none, so RESET)")
        change = scalar(dsn, f"SELECT optischema.rollback({rec_id}, via => 'psql')")
        ddl = scalar(dsn, f"SELECT ddl FROM optischema.changes WHERE id = {change}")
        psql(dsn, ddl)
        scalar(dsn, f"SELECT optischema.applied({change})")
    psql(dsn, "ALTER TABLE tickets RESET (autovacuum_enabled)")


def main() -> None:
    step("A fresh database with the extension: CREATE EXTENSION optischema CASCADE")
    dsn = fresh_database(DB)
    load(dsn)

    step(f"Roles: the application owns its tables; the sidecar logs in as {SIDECAR_ROLE}, no superuser")
    roles(dsn)
    psql(dsn, "SELECT optischema.snapshot() AS first_snapshot")

    step(f"The application ({APP_ROLE}) runs for {WORKLOAD_SECONDS:.0f} s")
    statements = workload.run(make_conninfo(dsn, user=APP_ROLE), WORKLOAD_SECONDS)
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
        change_loop(dsn)
        maintenance_and_config(dsn)

    step("LLM analyses (any OpenAI-compatible endpoint; the model's proposals are checked, never run)")
    llm_demo(make_conninfo(dsn, user=SIDECAR_ROLE))

    step("The report: one HTML page, charts drawn by the server (no script, no network; reads on a phone)")
    report = Path(tempfile.gettempdir()) / f"{DB}_report.html"
    query = "SELECT optischema.report(since => '1 hour', bucket => '10 seconds')"
    print(f'$ psql -At -c "{query}" > {report}', flush=True)
    with open(report, "w") as out:
        subprocess.run([PSQL, "-X", "-At", "-d", dsn, "-c", query], stdout=out, check=True)
    print(f"wrote {report} ({report.stat().st_size // 1024} kB); a sidecar serves the same page on"
          " http://127.0.0.1:9187/report")


if __name__ == "__main__":
    main()
