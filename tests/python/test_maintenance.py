"""Maintenance and configuration advice (issue 11) on a real cluster, through the change loop
with a real sidecar: each finding reproduced (stale statistics after a bulk load, dead rows
after a mass update, a bloated index, sorts spilling under a small work_mem, checkpoints
requested by WAL volume, transaction ID age on a cluster with a low
autovacuum_freeze_max_age), then applied, verified against its evidence and rolled back
(or refused a rollback where there is nothing to undo). A healthy database gets none.

Autovacuum must not race the tests: tables under test either have autovacuum_enabled off,
or another session holds SHARE UPDATE EXCLUSIVE on them (autovacuum skips a table it
cannot lock at once) while the evidence is gathered. Roles are cluster-wide: mnt_<what>_<random>."""
from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row
from test_sidecar_support import change, one, rows, start_sidecar, wait_change, wait_for, wait_job  # noqa: F401

CLUSTER = str(Path(__file__).resolve().parents[2] / "scripts" / "cluster.sh")


def flushed(conn: psycopg.Connection) -> None:
    """This session's table counters reach pg_stat_user_tables now, not within a second."""
    conn.execute("SELECT pg_stat_force_next_flush()")


def recommend(dsn: str) -> list[dict]:
    """Refreshes, and returns the open maintenance and config recommendations with their keys."""
    one(dsn, "SELECT count(*) FROM optischema.recommend(100)")
    return rows(dsn, "SELECT r.*, x.key FROM optischema.recommendations r JOIN optischema._recommendations x USING (id)"
                     " WHERE r.status = 'open' AND r.kind IN ('maintenance', 'config') ORDER BY x.key")


def rec(dsn: str, key: str) -> dict | None:
    found = rows(dsn, "SELECT r.*, x.key FROM optischema.recommendations r JOIN optischema._recommendations x USING (id)"
                      " WHERE x.key = %s", (key,))
    return found[0] if found else None


def apply(dsn: str, rec_id: int, action: str = "apply") -> dict:
    """Applies (or rolls back) through the sidecar; the change once its job, which checks its
    effect after running it, is over."""
    change_id = one(dsn, f"SELECT optischema.{action}(%s)", (rec_id,))
    wait_job(dsn, wait_change(dsn, change_id)["job_id"])
    return change(dsn, change_id)


def lookups(dsn: str, table: str, ids: list[int]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in ids:
            conn.execute(f"SELECT * FROM public.{table} WHERE customer_id = %s", (i,)).fetchall()


def stale_table(dsn: str, table: str, options: str = "autovacuum_enabled = off") -> None:
    """1,000 rows with 10 customers, analysed; then a bulk load of 200,000 rows with a customer
    each: the statistics still say 10 customers."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE public.{table} (id int, customer_id int, payload text) WITH ({options})")
        conn.execute(f"INSERT INTO public.{table} SELECT g, g % 10, 'x' FROM generate_series(1, 1000) g")
        flushed(conn)
        conn.execute(f"ANALYZE public.{table}")


def bulk_load(dsn: str, table: str, sql: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"INSERT INTO public.{table} {sql}")
        flushed(conn)


@pytest.fixture
def make_role(server_dsn: str, db_dsn: str) -> Iterator[Callable[..., str]]:
    """make_role(what, options) -> name of a new LOGIN role mnt_<what>_<random>; dropped afterwards."""
    made: list[str] = []

    def make(what: str, options: str = "") -> str:
        name = f"mnt_{what}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{name}" LOGIN {options}')
        made.append(name)
        return name

    yield make
    for name in made:
        with psycopg.connect(db_dsn, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{name}"')
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{name}"')


def test_stale_statistics_are_analysed_and_the_estimates_verified(db_dsn: str, start_sidecar) -> None:
    stale_table(db_dsn, "orders")
    bulk_load(db_dsn, "orders", "SELECT g, g, 'x' FROM generate_series(1001, 201000) g")
    lookups(db_dsn, "orders", [5001, 5002, 5003, 5004])

    found = recommend(db_dsn)
    assert [r["key"] for r in found] == ["maintenance:analyze:public.orders"], found
    r = found[0]
    assert r["title"].startswith("ANALYZE public.orders: 200,000 rows changed since its last analyze (autovacuum would analyse after ")
    assert "rows misestimated up to" in r["title"] and "by 1 statement" in r["title"]
    assert r["ddl"] == "ANALYZE public.orders"
    assert r["rollback_ddl"].startswith("-- none: ANALYZE only refreshes the planner's statistics")
    assert r["action_spec"] == {"action": "analyze", "table": one(db_dsn, "SELECT 'public.orders'::regclass::oid::bigint")}
    ev = r["evidence"]
    assert ev["n_mod_since_analyze"] == 200000 and ev["autovacuum"] is False
    [stmt] = ev["statements"]
    assert stmt["rows_per_call"] == 1 and stmt["plan_rows"] > 1000 and stmt["factor"] >= 10
    assert r["queryids"] == [int(stmt["queryid"])]
    assert "Autovacuum is off for public.orders" in r["explanation"]
    # Refreshing again: the same row, nothing twice.
    again = recommend(db_dsn)
    assert [(x["id"], x["key"]) for x in again] == [(r["id"], r["key"])]

    start_sidecar()
    done = apply(db_dsn, r["id"])
    assert done["outcome"] == "succeeded" and done["ddl"] == "ANALYZE public.orders"
    # Right after: the statement is planned again, as its sender, and now estimates its rows.
    assert done["plan_check"] == "verified", done["plan_evidence"]
    [after] = done["plan_evidence"]["statements"]
    assert after["factor"] >= 10 and after["factor_now"] < 10 and after["plan_rows_now"] < 10
    assert done["plan_evidence"]["now"]["n_mod_since_analyze"] == 0

    # Nothing to roll back, and it says so; the recommendation stays applied.
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="ANALYZE has no rollback"):
        one(db_dsn, "SELECT optischema.rollback(%s)", (r["id"],))
    assert recommend(db_dsn) == []
    assert rec(db_dsn, r["key"])["status"] == "applied"

    # The statements' times after, from snapshots.
    one(db_dsn, "SELECT optischema.snapshot()")
    lookups(db_dsn, "orders", [6001, 6002, 6003, 6004, 6005, 6006, 6007, 6008, 6009, 6010])
    one(db_dsn, "SELECT optischema.snapshot()")
    verdicts = rows(db_dsn, "SELECT * FROM optischema.verify(%s)", (r["id"],))
    assert verdicts[0]["queryid"] == int(stmt["queryid"]) and verdicts[0]["calls_after"] == 10
    timing = change(db_dsn, done["id"])["timing"]
    assert timing["evidence_now"]["n_mod_since_analyze"] == 0


def test_stale_again_after_an_analyze_becomes_a_per_table_setting(db_dsn: str, start_sidecar) -> None:
    """Autovacuum on, as in production: a lock it cannot take keeps it away while the test
    gathers the evidence. The table had its own scale factor, which the rollback restores."""
    stale_table(db_dsn, "events", "autovacuum_analyze_scale_factor = 0.08")
    holder = psycopg.connect(db_dsn)
    try:
        holder.execute("LOCK TABLE public.events IN SHARE UPDATE EXCLUSIVE MODE")
        bulk_load(db_dsn, "events", "SELECT g, g, 'x' FROM generate_series(1001, 201000) g")
        lookups(db_dsn, "events", [5001, 5002, 5003])
        [first] = recommend(db_dsn)
        assert first["key"] == "maintenance:analyze:public.events"
        holder.rollback()

        start_sidecar()
        assert apply(db_dsn, first["id"])["outcome"] == "succeeded"

        # Stale again: 200,000 rows of one customer the statistics have never seen.
        holder.execute("LOCK TABLE public.events IN SHARE UPDATE EXCLUSIVE MODE")
        bulk_load(db_dsn, "events", "SELECT g, 7, 'x' FROM generate_series(201001, 401000) g")
        lookups(db_dsn, "events", [7, 7, 7])
        found = recommend(db_dsn)
        holder.rollback()
    finally:
        holder.close()
    assert [r["key"] for r in found] == ["maintenance:autovacuum_analyze:public.events"], found
    r = found[0]
    assert r["title"].startswith("Analyse public.events more often: autovacuum_analyze_scale_factor 0.08 -> 0.02 (stale again since OptiSchema's ANALYZE of change ")
    assert r["ddl"] == "ALTER TABLE public.events SET (autovacuum_analyze_scale_factor = '0.02')"
    assert r["rollback_ddl"] == "ALTER TABLE public.events SET (autovacuum_analyze_scale_factor = '0.08')"
    assert r["evidence"]["current_scale_factor"] == {"value": 0.08, "source": "table"}
    assert rec(db_dsn, "maintenance:analyze:public.events")["status"] == "applied"

    done = apply(db_dsn, r["id"])
    assert (done["outcome"], done["plan_check"]) == ("succeeded", "verified")
    assert done["prior_state"] == {"options": {"autovacuum_analyze_scale_factor": "0.08"}}
    reloptions = "SELECT reloptions FROM pg_class WHERE oid = 'public.events'::regclass"
    assert one(db_dsn, reloptions) == ["autovacuum_analyze_scale_factor=0.02"]
    undone = apply(db_dsn, r["id"], "rollback")
    assert undone["outcome"] == "succeeded"
    assert undone["ddl"] == "ALTER TABLE public.events SET (autovacuum_analyze_scale_factor = '0.08')"
    assert one(db_dsn, reloptions) == ["autovacuum_analyze_scale_factor=0.08"]
    assert rec(db_dsn, r["key"])["status"] == "rolled_back"


def test_stale_statistics_and_dead_rows_are_one_vacuum_analyze(db_dsn: str) -> None:
    """VACUUM (ANALYZE) refreshes the statistics too: one finding for the table, not two."""
    stale_table(db_dsn, "orders")
    bulk_load(db_dsn, "orders", "SELECT g, g, 'x' FROM generate_series(1001, 201000) g")
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("UPDATE public.orders SET payload = 'y'")
        flushed(conn)
    lookups(db_dsn, "orders", [5001, 5002, 5003])
    [r] = recommend(db_dsn)
    assert r["key"] == "maintenance:vacuum:public.orders" and r["ddl"] == "VACUUM (ANALYZE) public.orders"
    assert "; rows misestimated up to " in r["title"] and r["title"].endswith("by 1 statement")
    assert r["evidence"]["statements"][0]["factor"] >= 10


def dead_table(dsn: str, table: str = "tickets", rows_: int = 100_000, autovacuum: str = "off") -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE public.{table} (id int PRIMARY KEY, customer_id int, state text)"
                     f" WITH (autovacuum_enabled = {autovacuum})")
        conn.execute(f"INSERT INTO public.{table} SELECT g, g %% 100, 'open' FROM generate_series(1, %s) g", (rows_,))
        flushed(conn)       # before VACUUM reports: pending counts flushed after it would count again
        conn.execute(f"VACUUM ANALYZE public.{table}")


def mass_update(dsn: str, table: str = "tickets") -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"UPDATE public.{table} SET state = 'closed'")
        flushed(conn)


def test_dead_rows_are_vacuumed_and_a_held_snapshot_is_reported(db_dsn: str, start_sidecar) -> None:
    dead_table(db_dsn)
    # A transaction that still sees the rows as they were: VACUUM cannot remove them.
    old = psycopg.connect(db_dsn)
    old.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    old.execute("SELECT count(*) FROM public.tickets").fetchone()
    mass_update(db_dsn)
    lookups(db_dsn, "tickets", [1, 2, 3])

    [r] = recommend(db_dsn)
    assert r["key"] == "maintenance:vacuum:public.tickets"
    assert r["title"].startswith("VACUUM (ANALYZE) public.tickets: 100,000 dead rows (50% of its rows; autovacuum would vacuum after 20,050)")
    assert r["ddl"] == "VACUUM (ANALYZE) public.tickets"
    ev = r["evidence"]
    assert ev["n_dead_tup"] == 100000 and ev["dead_fraction"] == 0.5
    assert "VACUUM cannot remove rows that the oldest open transaction, backend" in r["explanation"]
    assert ev["xmin_horizon"]["held_by"].startswith("backend")
    assert ev["churn"]["updates"] == 100000

    start_sidecar()
    done = apply(db_dsn, r["id"])
    assert done["outcome"] == "succeeded"
    # It ran, and the evidence did not move: said as it is, with the reason.
    assert done["plan_check"] == "unchanged", done["plan_evidence"]
    assert done["plan_evidence"]["why"].startswith("VACUUM could not remove or freeze rows that backend")
    old.close()

    # The evidence is still there: the applied VACUUM opens again, and this time it works.
    [again] = recommend(db_dsn)
    assert (again["id"], again["status"]) == (r["id"], "open")
    done = apply(db_dsn, r["id"])
    assert (done["outcome"], done["plan_check"]) == ("succeeded", "verified")
    assert done["plan_evidence"]["now"]["n_dead_tup"] == 0
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="VACUUM has no rollback"):
        one(db_dsn, "SELECT optischema.rollback(%s)", (r["id"],))
    assert recommend(db_dsn) == []


def test_a_high_churn_table_gets_its_own_vacuum_setting(db_dsn: str, start_sidecar) -> None:
    """Dead rows past the threshold again soon after OptiSchema's VACUUM: the table's own
    autovacuum_vacuum_scale_factor, a quarter of the server's; rolled back by RESET."""
    dead_table(db_dsn, "sessions", 20_000, autovacuum="on")
    holder = psycopg.connect(db_dsn)
    try:
        holder.execute("LOCK TABLE public.sessions IN SHARE UPDATE EXCLUSIVE MODE")
        mass_update(db_dsn, "sessions")
        [first] = recommend(db_dsn)
        assert first["key"] == "maintenance:vacuum:public.sessions"
        holder.rollback()
        start_sidecar()
        assert apply(db_dsn, first["id"])["outcome"] == "succeeded"
        holder.execute("LOCK TABLE public.sessions IN SHARE UPDATE EXCLUSIVE MODE")
        mass_update(db_dsn, "sessions")
        [r] = recommend(db_dsn)
        holder.rollback()
    finally:
        holder.close()
    assert r["key"] == "maintenance:autovacuum_vacuum:public.sessions"
    assert r["title"].startswith("Vacuum public.sessions more often: autovacuum_vacuum_scale_factor 0.2 -> 0.05 (20,000 dead rows again since OptiSchema's VACUUM of change ")
    assert r["ddl"] == "ALTER TABLE public.sessions SET (autovacuum_vacuum_scale_factor = '0.05')"
    assert r["rollback_ddl"] == "ALTER TABLE public.sessions RESET (autovacuum_vacuum_scale_factor)"
    done = apply(db_dsn, r["id"])
    assert (done["outcome"], done["plan_check"]) == ("succeeded", "verified")
    assert apply(db_dsn, r["id"], "rollback")["outcome"] == "succeeded"
    assert one(db_dsn, "SELECT reloptions FROM pg_class WHERE oid = 'public.sessions'::regclass") == ["autovacuum_enabled=on"]


def test_many_tables_behind_autovacuum_get_the_server_setting(db_dsn: str) -> None:
    names = ["a1", "a2", "a3"]
    for name in names:
        dead_table(db_dsn, name, 5_000, autovacuum="on")
    holder = psycopg.connect(db_dsn)
    try:
        holder.execute("LOCK TABLE public.a1, public.a2, public.a3 IN SHARE UPDATE EXCLUSIVE MODE")
        for name in names:
            mass_update(db_dsn, name)
        found = {r["key"]: r for r in recommend(db_dsn)}
    finally:
        holder.close()
    assert set(found) == {"config:system:autovacuum_vacuum_scale_factor"} | {f"maintenance:vacuum:public.{n}" for n in names}
    r = found["config:system:autovacuum_vacuum_scale_factor"]
    assert r["title"] == "Set autovacuum_vacuum_scale_factor = 0.1 (now 0.2): 3 tables have dead rows past what autovacuum tolerates"
    assert r["ddl"] == "ALTER SYSTEM SET autovacuum_vacuum_scale_factor = '0.1'"
    assert r["rollback_ddl"].startswith("ALTER SYSTEM ") and r["evidence"]["advice_only"] is False


def test_a_running_vacuum_is_cancelled(db_dsn: str, start_sidecar) -> None:
    """A long VACUUM (here: waiting for a lock) is stopped by cancel_job(): its sidecar cancels
    the statement at its next heartbeat; the change ends cancelled, the advice is open again."""
    dead_table(db_dsn)
    mass_update(db_dsn)
    [r] = recommend(db_dsn)
    one(db_dsn, "SELECT optischema.set_setting('ddl_lock_timeout', '0')")
    holder = psycopg.connect(db_dsn)
    try:
        holder.execute("LOCK TABLE public.tickets IN SHARE UPDATE EXCLUSIVE MODE")
        start_sidecar()
        change_id = one(db_dsn, "SELECT optischema.apply(%s)", (r["id"],))
        job_id = change(db_dsn, change_id)["job_id"]
        wait_for(lambda: one(db_dsn, "SELECT count(*) FROM pg_stat_activity WHERE query = 'VACUUM (ANALYZE) public.tickets'"
                                     " AND wait_event_type = 'Lock'"), "the VACUUM to wait for the lock")
        one(db_dsn, "SELECT optischema.cancel_job(%s)", (job_id,))
        cancelled = wait_job(db_dsn, job_id, ("cancelled", "done", "failed"))
    finally:
        holder.close()
    assert cancelled["status"] == "cancelled" and cancelled["error"] == "cancelled by optischema_test while it ran"
    c = change(db_dsn, change_id)
    assert c["outcome"] == "cancelled" and c["error"] == f"job {job_id} was cancelled by optischema_test"
    assert rec(db_dsn, r["key"])["status"] == "open"
    assert one(db_dsn, "SELECT count(*) FROM pg_stat_activity WHERE query = 'VACUUM (ANALYZE) public.tickets'") == 0


def test_a_bloated_index_is_rebuilt_and_table_bloat_is_advice(db_dsn: str, start_sidecar) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.log (a int, b int) WITH (autovacuum_enabled = off)")
        conn.execute("INSERT INTO public.log SELECT g, g FROM generate_series(1, 200000) g")
        conn.execute("CREATE INDEX log_a ON public.log (a)")
        conn.execute("DELETE FROM public.log WHERE a % 10 <> 0")
        flushed(conn)
        conn.execute("VACUUM ANALYZE public.log")
        flushed(conn)
    one(db_dsn, "SELECT optischema.set_setting('bloat_min_mb', '1')")
    found = {r["key"]: r for r in recommend(db_dsn)}
    assert set(found) == {"maintenance:bloat:public.log", "maintenance:reindex:public.log_a"}, found
    ix = found["maintenance:reindex:public.log_a"]
    assert ix["ddl"] == "REINDEX INDEX CONCURRENTLY public.log_a"
    assert ix["evidence"]["bloat"]["method"].startswith("estimate from pg_stats") and ix["evidence"]["bloat"]["fraction"] > 0.8
    advice = found["maintenance:bloat:public.log"]
    assert advice["action_spec"] is None and advice["evidence"]["advice_only"] is True
    assert "ACCESS EXCLUSIVE lock" in advice["explanation"] and "pg_repack" in advice["explanation"]
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="is advice only: OptiSchema does not run it"):
        one(db_dsn, "SELECT optischema.apply(%s)", (advice["id"],))
    # With pgstattuple installed, bloat is measured rather than estimated.
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pgstattuple")
    measured = {r["key"]: r for r in recommend(db_dsn)}
    assert measured[ix["key"]]["evidence"]["bloat"]["method"] == "pgstatindex"
    assert measured["maintenance:bloat:public.log"]["evidence"]["bloat"]["method"] == "pgstattuple_approx"

    start_sidecar()
    done = apply(db_dsn, ix["id"])
    assert (done["outcome"], done["plan_check"]) == ("succeeded", "verified"), done
    assert done["plan_evidence"]["now"]["size_bytes"] < done["plan_evidence"]["before"]["bloat"]["size_bytes"] / 4
    assert one(db_dsn, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.log_a'::regclass") is True
    assert one(db_dsn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'log_a_ccnew%%'") == 0


def test_work_mem_for_the_role_whose_sorts_spill(db_dsn: str, start_sidecar, make_role) -> None:
    app = make_role("app", "CONNECTION LIMIT 5")
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.sorted (a int, b text)")
        conn.execute("INSERT INTO public.sorted SELECT g, md5(g::text) FROM generate_series(1, 200000) g")
        flushed(conn)
        conn.execute("VACUUM ANALYZE public.sorted")
        conn.execute(f'GRANT SELECT ON public.sorted TO "{app}"')
    app_dsn = make_conninfo(db_dsn, user=app)
    sort = "SELECT a, b FROM public.sorted ORDER BY b OFFSET 199999"

    def workload() -> None:
        with psycopg.connect(app_dsn, autocommit=True) as conn:      # a new session: the role's settings
            for _ in range(3):
                conn.execute(sort).fetchall()

    workload()
    [r] = recommend(db_dsn)
    assert r["key"] == f"config:role:{app}:work_mem"
    ev = r["evidence"]
    assert ev["current"] == "4MB" and ev["current_source"] == "default" and ev["scope"] == "role" and ev["role"] == app
    proposed = ev["proposed"]
    assert one(db_dsn, "SELECT (optischema._setting_value('work_mem', %s)).own > 4096", (proposed,))
    assert r["title"].startswith(f"Set work_mem = {proposed} for role {app} in this database (now 4MB, from default): 1 statement writes up to ")
    db = one(db_dsn, "SELECT current_database()")
    assert r["ddl"] == f"ALTER ROLE {app} IN DATABASE {db} SET work_mem = '{proposed}'"
    assert r["rollback_ddl"] == f"ALTER ROLE {app} IN DATABASE {db} RESET work_mem"
    # Checked against the memory budget of the role's connections, and by the what-if as the role.
    budget = ev["budget"]
    assert budget["connections_of_role"] == 5 and budget["server_memory_source"].startswith("assumed")
    assert one(db_dsn, "SELECT (optischema._setting_value('work_mem', %s)).own <= (optischema._setting_value('work_mem', %s)).own",
               (proposed, budget["max_work_mem"]))
    [what_if] = r["benefit"]["what_if"]
    assert what_if["cost_proposed"] < what_if["cost_current"]

    start_sidecar()
    done = apply(db_dsn, r["id"])
    assert (done["outcome"], done["plan_check"]) == ("succeeded", "verified")
    assert done["prior_state"] == {"set": False, "value": None}
    one(db_dsn, "SELECT optischema.snapshot()")
    workload()
    one(db_dsn, "SELECT optischema.snapshot()")
    [q, overall] = rows(db_dsn, "SELECT * FROM optischema.verify(%s)", (r["id"],))
    timing = change(db_dsn, done["id"])["timing"]
    [t] = timing["queries"]
    assert t["calls_after"] == 3 and t["temp_blks_per_call_before"] > 100 and t["temp_blks_per_call_after"] == 0
    assert timing["evidence_now"]["value"] == proposed

    undone = apply(db_dsn, r["id"], "rollback")
    assert undone["outcome"] == "succeeded" and undone["ddl"] == r["rollback_ddl"]
    assert one(db_dsn, "SELECT count(*) FROM pg_db_role_setting WHERE setrole = %s::regrole", (app,)) == 0
    assert rec(db_dsn, r["key"])["status"] == "rolled_back"


def test_a_refresh_plans_no_statement_as_a_role_it_cannot_become(db_dsn: str, make_role) -> None:
    """The misestimate check plans captured text as its sender, with the caller's rights: an
    admin that is no member of the application's role gets no finding that rests on planning
    its statements, and the skip is recorded with the reason."""
    app, dba = make_role("app"), make_role("dba")
    one(db_dsn, "SELECT optischema.grant_usage(%s, 'admin')", (dba,))
    stale_table(db_dsn, "orders")
    bulk_load(db_dsn, "orders", "SELECT g, g, 'x' FROM generate_series(1001, 201000) g")
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(f'GRANT SELECT ON public.orders TO "{app}"')
    lookups(make_conninfo(db_dsn, user=app), "orders", [5001, 5002, 5003])
    assert recommend(make_conninfo(db_dsn, user=dba)) == []
    skipped = one(db_dsn, "SELECT skipped FROM optischema.analyses ORDER BY id DESC LIMIT 1")
    assert any(s["reason"].startswith(f"not planned: sent by {app}: {dba} is not a member of it") for s in skipped), skipped
    assert [r["key"] for r in recommend(db_dsn)] == ["maintenance:analyze:public.orders"]


def test_a_healthy_database_gets_no_maintenance_or_configuration_advice(db_dsn: str) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.accounts (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO public.accounts SELECT g, md5(g::text) FROM generate_series(1, 50000) g")
        flushed(conn)
        conn.execute("VACUUM ANALYZE public.accounts")
        for i in range(20):
            conn.execute("SELECT * FROM public.accounts WHERE id = %s", (i,)).fetchall()
            conn.execute("UPDATE public.accounts SET name = name WHERE id = %s", (i,))
        flushed(conn)
    assert recommend(db_dsn) == []
    assert one(db_dsn, "SELECT stats ->> 'maintenance_findings' FROM optischema.analyses ORDER BY id DESC LIMIT 1") == "0"


# -- a cluster of its own: transaction ID age and checkpoints are the cluster's -----------------

@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second cluster whose autovacuum_freeze_max_age (100,000) a test reaches in seconds,
    with autovacuum off (only a table past that age would be vacuumed by force), a
    max_wal_size of 32MB that a bulk load outgrows and 16MB of shared_buffers, all in
    postgresql.conf."""
    data = Path(os.environ.get("TMPDIR", "/tmp")) / f"optischema-{os.getuid()}-mnt" / "data"
    env = dict(os.environ, OPTISCHEMA_PGPORT="55461", OPTISCHEMA_PGDATA=str(data))
    subprocess.run([CLUSTER, "destroy"], env=env, check=True, capture_output=True)
    subprocess.run([CLUSTER, "start"], env=env, check=True, capture_output=True)
    subprocess.run([CLUSTER, "stop"], env=env, check=True, capture_output=True)
    with open(data / "postgresql.conf", "a") as conf:
        conf.write("autovacuum = off\nautovacuum_freeze_max_age = 100000\nmax_wal_size = 32MB\nmin_wal_size = 32MB\n"
                   "shared_buffers = 16MB\n")
    subprocess.run([CLUSTER, "start"], env=env, check=True, capture_output=True)
    dsn = subprocess.run([CLUSTER, "dsn"], env=env, check=True, capture_output=True, text=True).stdout.strip()
    try:
        yield dsn
    finally:
        subprocess.run([CLUSTER, "destroy"], env=env, check=True, capture_output=True)


def own_db(server: str) -> str:
    name = "mnt_" + uuid.uuid4().hex[:8]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    dsn = make_conninfo(server, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION hypopg")
        conn.execute("CREATE EXTENSION optischema CASCADE")
    return dsn


def test_wraparound_risk_gets_vacuum_freeze_with_its_urgency(own_cluster: str, start_sidecar) -> None:
    dsn = own_db(own_cluster)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.ledger (id int)")
        conn.execute("INSERT INTO public.ledger SELECT generate_series(1, 1000)")
        flushed(conn)
        # 60,000 transactions after the table was made: its age passes half of autovacuum_freeze_max_age
        conn.execute("DO $$ BEGIN FOR i IN 1..60000 LOOP PERFORM txid_current(); COMMIT; END LOOP; END $$")
    assert recommend(dsn) == []                      # under wraparound_warn_fraction (0.8)
    one(dsn, "SELECT optischema.set_setting('wraparound_warn_fraction', '0.5')")
    [r] = recommend(dsn)
    assert r["key"] == "maintenance:vacuum_freeze:public.ledger"
    ev = r["evidence"]
    assert ev["urgency"] == "moderate" and ev["autovacuum_freeze_max_age"] == 100000 and 60000 <= ev["xid_age"] < 70000
    assert r["title"].startswith(f"VACUUM (FREEZE) public.ledger, urgency moderate: transaction ID age {ev['xid_age']:,} is 6")
    assert "of autovacuum_freeze_max_age 100,000" in r["title"] and "before PostgreSQL stops writes" in r["title"]
    assert r["ddl"] == "VACUUM (FREEZE) public.ledger"

    start_sidecar(dsns=[dsn])
    done = apply(dsn, r["id"])
    assert (done["outcome"], done["plan_check"]) == ("succeeded", "verified")
    assert done["plan_evidence"]["now"]["xid_age"] < 100
    assert recommend(dsn) == []


def test_autovacuum_off_gets_autovacuum_on(own_cluster: str) -> None:
    dsn = own_db(own_cluster)          # autovacuum = off in its postgresql.conf
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.queue (id int, state text)")
        conn.execute("INSERT INTO public.queue SELECT g, 'new' FROM generate_series(1, 5000) g")
        flushed(conn)
        conn.execute("VACUUM ANALYZE public.queue")
        conn.execute("UPDATE public.queue SET state = 'done'")
        flushed(conn)
    found = {r["key"]: r for r in recommend(dsn)}
    assert set(found) == {"maintenance:vacuum:public.queue", "config:system:autovacuum"}
    r = found["config:system:autovacuum"]
    assert r["title"] == "Set autovacuum = on (now off): 1 table with stale statistics or dead rows (public.queue)"
    assert r["ddl"] == "ALTER SYSTEM SET autovacuum = 'on'" and r["rollback_ddl"] == "ALTER SYSTEM RESET autovacuum"
    assert r["evidence"]["current_source"].endswith("postgresql.conf")


def test_restart_only_settings_are_advice(own_cluster: str) -> None:
    """shared_buffers needs a restart: proposed (with a known server memory and a cache hit
    ratio under 99%), never applied. A table larger than the cluster's 16MB of shared_buffers
    is read from outside them."""
    db_dsn = own_db(own_cluster)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.archive (id int, pad text)")
        conn.execute("INSERT INTO public.archive SELECT g, repeat('x', 200) FROM generate_series(1, 150000) g")
        flushed(conn)
        conn.execute("VACUUM ANALYZE public.archive")
    one(db_dsn, "SELECT optischema.snapshot()")
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        for _ in range(3):
            conn.execute("SELECT count(*) FROM public.archive WHERE pad <> %s", ("y",)).fetchone()
    assert recommend(db_dsn) == []            # the server's memory is unknown: no advice
    one(db_dsn, "SELECT optischema.set_setting('server_memory_mb', '16384')")
    [r] = recommend(db_dsn)
    assert r["key"] == "config:system:shared_buffers"
    assert r["title"].startswith("Set shared_buffers = 4GB (now 16MB; ") and "needs restart: advice only, never applied by OptiSchema" in r["title"]
    assert r["evidence"]["advice_only"] is True and r["evidence"]["restart_required"] is True
    assert r["ddl"] == "ALTER SYSTEM SET shared_buffers = '4GB'"
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="needs a server restart"):
        one(db_dsn, "SELECT optischema.apply(%s)", (r["id"],))


def test_checkpoints_requested_by_wal_get_max_wal_size_set_and_reset(own_cluster: str, start_sidecar) -> None:
    dsn = own_db(own_cluster)
    one(dsn, "SELECT optischema.snapshot()")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.big (id int, pad text)")
        conn.execute("INSERT INTO public.big SELECT g, repeat('x', 400) FROM generate_series(1, 300000) g")
        flushed(conn)
        conn.execute("VACUUM ANALYZE public.big")
    [r] = recommend(dsn)
    assert r["key"] == "config:system:max_wal_size"
    ev = r["evidence"]
    assert ev["current"] == "32MB" and ev["current_source"].endswith("postgresql.conf") and ev["proposed"] == "1GB"
    assert ev["checkpoints_requested"] >= 3 and ev["checkpoints_requested"] > ev["checkpoints_timed"]
    assert r["title"].startswith(f"Set max_wal_size = 1GB (now 32MB): {ev['checkpoints_requested']} of the window's ")
    assert r["ddl"] == "ALTER SYSTEM SET max_wal_size = '1GB'" and r["rollback_ddl"] == "ALTER SYSTEM RESET max_wal_size"

    start_sidecar(dsns=[dsn])
    done = apply(dsn, r["id"])
    assert (done["outcome"], done["plan_check"]) == ("succeeded", "verified"), done
    assert done["prior_state"] == {"set": False, "value": None}
    wait_for(lambda: one(dsn, "SHOW max_wal_size") == "1GB", "the reloaded max_wal_size")
    undone = apply(dsn, r["id"], "rollback")
    assert undone["outcome"] == "succeeded" and undone["ddl"] == "ALTER SYSTEM RESET max_wal_size"
    wait_for(lambda: one(dsn, "SHOW max_wal_size") == "32MB", "max_wal_size back from postgresql.conf")
    assert one(dsn, "SELECT count(*) FROM pg_file_settings WHERE name = 'max_wal_size' AND sourcefile LIKE '%%auto.conf'") == 0
