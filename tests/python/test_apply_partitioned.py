"""Indexes on a partitioned table, end to end: the advisor proposes them on the
partitioned parent (not on the partition that happened to hold the data), and
apply builds them without blocking writes (ON ONLY the parent, CONCURRENTLY on
each partition, ATTACH PARTITION), through the sidecar and through psql;
rollback drops them from every partition; a build that fails half-way leaves
nothing behind."""
from __future__ import annotations

import subprocess

import psycopg
from optischema_engine.advisor import _partitioned_parent
from optischema_engine.catalog import Table
from psycopg.types.json import Jsonb
from test_sidecar_support import change, one, rows, start_sidecar, wait_for, wait_job  # noqa: F401

PARTITIONS = ["ev_2026_01", "ev_2026_02", "ev_2026_03", "ev_2026_04"]     # the last one empty
QUERY = "SELECT id, created FROM public.ev WHERE tenant = %s"


def test_a_partitions_scan_is_lifted_to_the_partitioned_table_the_statement_names() -> None:
    ev = Table(1, "public", "ev", 0.0, partitioned=True)
    ev_3 = Table(2, "public", "ev_3", 0.0, partitioned=True, ancestors=[("public", "ev")])
    ev_3a = Table(3, "public", "ev_3a", 0.0, ancestors=[("public", "ev_3"), ("public", "ev")])

    class Catalog:
        def table(self, schema: str, name: str) -> Table | None:
            return {"ev": ev, "ev_3": ev_3, "ev_3a": ev_3a}.get(name)

    assert _partitioned_parent(Catalog(), ev_3a, {"select", "from", "ev", "tenant"}) is ev
    assert _partitioned_parent(Catalog(), ev_3a, {"select", "from", "ev_3", "tenant"}) is ev_3
    assert _partitioned_parent(Catalog(), ev_3a, {"select", "from", "ev_3a", "tenant"}) is ev_3a
    plain = Table(4, "public", "t", 0.0)
    assert _partitioned_parent(Catalog(), plain, {"t", "ev"}) is plain


def _create_events(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.ev (id bigint, tenant int, created date, payload text)"
                     " PARTITION BY RANGE (created)")
        for n, name in enumerate(PARTITIONS, start=1):
            conn.execute(f"CREATE TABLE public.{name} PARTITION OF public.ev"
                         f" FOR VALUES FROM ('2026-{n:02}-01') TO ('2026-{n + 1:02}-01')")
        # 90 days over the first three partitions; tenant 0 only in February's
        conn.execute("INSERT INTO public.ev SELECT g, CASE WHEN g % 89 = 0 AND g % 90 BETWEEN 31 AND 58 THEN 0"
                     " ELSE 1 + g % 2000 END, date '2026-01-01' + g % 90, md5(g::text)"
                     " FROM generate_series(1, 240000) g")
        for name in PARTITIONS:         # as autovacuum does: never the partitioned table itself
            conn.execute(f"ANALYZE public.{name}")


def _workload(dsn: str, calls: int = 30) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for n in range(calls):
            conn.execute(QUERY, (1 + n * 37,))


def _index_tree(dsn: str, name: str) -> list[dict]:
    """The index and its partitions': table, validity, the index each is attached to."""
    return rows(dsn, "SELECT t.relname AS table, x.relname AS index, i.indisvalid AS valid,"
                     " (SELECT h.inhparent::regclass::text FROM pg_inherits h WHERE h.inhrelid = x.oid) AS parent"
                     " FROM pg_partition_tree(to_regclass('public.' || quote_ident(%s))) p"
                     " JOIN pg_class x ON x.oid = p.relid JOIN pg_index i ON i.indexrelid = x.oid"
                     " JOIN pg_class t ON t.oid = i.indrelid ORDER BY p.level, t.relname", (name,))


def _indexes_on_events(dsn: str) -> list[str]:
    return [r["relname"] for r in rows(
        dsn, "SELECT x.relname FROM pg_partition_tree('public.ev') p JOIN pg_index i ON i.indrelid = p.relid"
             " JOIN pg_class x ON x.oid = i.indexrelid ORDER BY 1")]


def _wait(dsn: str, change_id: int) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("CALL optischema.wait(%s, '120 seconds')", (change_id,)).fetchone()[0]


def _advice(dsn: str) -> dict:
    """recommend() over the captured workload: the one index it proposes for ev."""
    one(dsn, "SELECT optischema.snapshot()")
    _workload(dsn)
    one(dsn, "SELECT optischema.snapshot()")
    recs = rows(dsn, "SELECT id, kind, title, ddl, rollback_ddl, table_name, index_name, estimated_size_bytes"
                     " FROM optischema.recommend() WHERE kind = 'create_index'")
    on_events = [r for r in recs if "tenant" in r["title"]]
    assert len(on_events) == 1, recs
    return on_events[0]


def test_advice_applied_and_rolled_back_on_every_partition(db_dsn: str, start_sidecar) -> None:
    _create_events(db_dsn)
    rec = _advice(db_dsn)
    name = rec["index_name"]
    # On the parent, not on ev_2026_0x: the partitions made later get it too.
    assert rec["table_name"] == "public.ev", rec
    lines = rec["ddl"].split(";\n")
    keys = lines[0].split(" USING btree ", 1)[1]             # (tenant), with INCLUDE columns or not
    assert keys.startswith("(tenant)") and lines[0] == f"CREATE INDEX {name} ON ONLY public.ev USING btree {keys}"
    assert lines[1:] == [s for p in PARTITIONS for s in (
        f"CREATE INDEX CONCURRENTLY {name}_{p} ON public.{p} USING btree {keys}",
        f"ALTER INDEX public.{name} ATTACH PARTITION public.{name}_{p}")], rec["ddl"]
    assert rec["rollback_ddl"] == f"DROP INDEX IF EXISTS public.{name}"
    # sized as its partitions' indexes (hypopg would size it from ev's own row count: none yet)
    assert rec["estimated_size_bytes"] > 240_000 * 8, rec

    start_sidecar()
    change_id = one(db_dsn, "SELECT optischema.apply(%s)", (rec["id"],))
    assert _wait(db_dsn, change_id) == "succeeded", change(db_dsn, change_id)
    tree = _index_tree(db_dsn, name)
    assert [r["table"] for r in tree] == ["ev"] + PARTITIONS
    assert all(r["valid"] for r in tree), tree
    assert [r["parent"] for r in tree] == [None] + [f"{name}"] * len(PARTITIONS)
    # The plan check finds the partitions' indexes in the plans.
    assert wait_for(lambda: change(db_dsn, change_id)["plan_check"] not in (None, "pending"), "the plan check")
    applied = change(db_dsn, change_id)
    assert applied["plan_check"] == "verified", applied["plan_evidence"]

    # The timing check reads the same query before and after.
    _workload(db_dsn)
    one(db_dsn, "SELECT optischema.snapshot()")
    overall = rows(db_dsn, "SELECT * FROM optischema.verify(%s)", (rec["id"],))[-1]
    assert overall["queryid"] is None and overall["verdict"] is not None
    assert change(db_dsn, change_id)["timing_verdict"] == overall["verdict"]

    rollback_id = one(db_dsn, "SELECT optischema.rollback(%s)", (rec["id"],))
    assert _wait(db_dsn, rollback_id) == "succeeded", change(db_dsn, rollback_id)
    assert change(db_dsn, rollback_id)["ddl"] == f"DROP INDEX IF EXISTS public.{name}"
    assert _indexes_on_events(db_dsn) == []
    assert one(db_dsn, "SELECT status FROM optischema.recommendations WHERE id = %s", (rec["id"],)) == "rolled_back"


def _recommendation(dsn: str, name: str, key: dict) -> int:
    """A create_index recommendation for an index of ev on one key, as the advisor records it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        spec = {"table": one(dsn, "SELECT 'public.ev'::regclass::oid::bigint"), "name": name, "method": "btree",
                "keys": [key]}
        return conn.execute(
            "INSERT INTO optischema._recommendations (key, kind, source, title, ddl, rollback_ddl, table_name,"
            " index_name, queryids, index_spec) SELECT %s, 'create_index', 'advisor', %s,"
            " t.ddl, t.rollback_ddl, 'public.ev', %s, '{}', %s"
            " FROM optischema._index_texts('create_index', %s) t RETURNING id",
            (f"test:{name}", f"Index {name}", name, Jsonb(spec), Jsonb(spec))).fetchone()[0]


def _failing_recommendation(dsn: str) -> int:
    """An index on 1000 / tenant: its build divides by zero in February's partition only."""
    op = one(dsn, "SELECT '/(integer,integer)'::regoperator::oid::bigint")
    return _recommendation(dsn, "ev_share_idx", {"expr": {"op": op, "args": [{"const": "1000", "type": 23},
                                                                             {"column": "tenant", "attnum": 2}]}})


def test_partitions_partitioned_in_turn(db_dsn: str, start_sidecar) -> None:
    """ON ONLY at every partitioned level, each level's index attached to the one above."""
    _create_events(db_dsn)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.ev_2026_05 PARTITION OF public.ev FOR VALUES FROM ('2026-05-01')"
                     " TO ('2026-06-01') PARTITION BY HASH (id)")
        for r in range(2):
            conn.execute(f"CREATE TABLE public.ev_2026_05_{r} PARTITION OF public.ev_2026_05"
                         f" FOR VALUES WITH (MODULUS 2, REMAINDER {r})")
        conn.execute("INSERT INTO public.ev SELECT g, g % 100, date '2026-05-01' + g % 31, '' FROM generate_series(1, 1000) g")
    rec = _recommendation(db_dsn, "ev_id_idx", {"column": "id", "attnum": 1})
    start_sidecar()
    assert _wait(db_dsn, one(db_dsn, "SELECT optischema.apply(%s)", (rec,))) == "succeeded"
    tree = {r["table"]: r for r in _index_tree(db_dsn, "ev_id_idx")}
    assert set(tree) == {"ev", "ev_2026_05", "ev_2026_05_0", "ev_2026_05_1", *PARTITIONS}
    assert all(r["valid"] for r in tree.values()), tree
    assert tree["ev_2026_05"]["parent"] == "ev_id_idx"
    assert tree["ev_2026_05_0"]["parent"] == tree["ev_2026_05_1"]["parent"] == "ev_id_idx_ev_2026_05"
    assert _wait(db_dsn, one(db_dsn, "SELECT optischema.rollback(%s)", (rec,))) == "succeeded"
    assert _indexes_on_events(db_dsn) == []


def test_a_build_that_fails_half_way_leaves_nothing(db_dsn: str, start_sidecar) -> None:
    _create_events(db_dsn)
    rec = _failing_recommendation(db_dsn)
    start_sidecar()
    change_id = one(db_dsn, "SELECT optischema.apply(%s)", (rec,))
    assert _wait(db_dsn, change_id) == "failed"
    failed = change(db_dsn, change_id)
    assert "division by zero" in failed["error"], failed
    assert "CREATE INDEX CONCURRENTLY ev_share_idx_ev_2026_02 ON public.ev_2026_02" in failed["error"], failed
    assert failed["detail"]["failed_statement"].startswith("CREATE INDEX CONCURRENTLY ev_share_idx_ev_2026_02 ")
    wait_job(db_dsn, failed["job_id"])
    # January's index was built and attached before February's failed: all of it is gone,
    # and February's INVALID one too.
    assert _indexes_on_events(db_dsn) == []
    assert one(db_dsn, "SELECT status FROM optischema.recommendations WHERE id = %s", (rec,)) == "failed"


def _psql(dsn: str, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["psql", "-X", "-q", "-At", dsn], input=script, capture_output=True, text=True, timeout=120)


def test_psql_path_runs_the_steps_one_by_one(db_dsn: str) -> None:
    """Without a sidecar: change_statements() gives psql's \\gexec one statement a row."""
    _create_events(db_dsn)
    rec = _advice(db_dsn)
    name = rec["index_name"]
    out = _psql(db_dsn, f"\\set ON_ERROR_STOP 1\nSELECT optischema.apply({rec['id']}, via => 'psql') AS change_id \\gset\n"
                        "SELECT statement FROM optischema.change_statements(:change_id) ORDER BY step \\gexec\n"
                        "SELECT optischema.applied(:change_id);\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "succeeded"
    tree = _index_tree(db_dsn, name)
    assert len(tree) == 1 + len(PARTITIONS) and all(r["valid"] for r in tree), tree

    out = _psql(db_dsn, f"\\set ON_ERROR_STOP 1\nSELECT optischema.rollback({rec['id']}, via => 'psql') AS change_id \\gset\n"
                        "SELECT statement FROM optischema.change_statements(:change_id) ORDER BY step \\gexec\n"
                        "SELECT optischema.applied(:change_id);\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "succeeded"
    assert _indexes_on_events(db_dsn) == []


def test_psql_path_failure_says_how_to_clean_up(db_dsn: str) -> None:
    _create_events(db_dsn)
    rec = _failing_recommendation(db_dsn)
    # psql goes on after the failed statement (no ON_ERROR_STOP), as a DBA pasting would
    out = _psql(db_dsn, f"SELECT optischema.apply({rec}, via => 'psql') AS change_id \\gset\n"
                        "SELECT statement FROM optischema.change_statements(:change_id) ORDER BY step \\gexec\n"
                        "SELECT optischema.applied(:change_id);\n")
    assert "division by zero" in out.stderr
    assert out.stdout.strip().splitlines()[-1] == "failed"
    error = rows(db_dsn, "SELECT error FROM optischema.changes ORDER BY id DESC LIMIT 1")[0]["error"]
    assert "not every partition has its index attached" in error, error
    # (psql attached February's INVALID index too: dropping the parent's takes it along)
    cleanup = error.split("run ", 1)[1].rsplit("; then apply again", 1)[0]
    assert cleanup.endswith("DROP INDEX IF EXISTS public.ev_share_idx"), error
    assert len(_indexes_on_events(db_dsn)) == 1 + len(PARTITIONS)
    for statement in cleanup.split("; "):
        out = _psql(db_dsn, statement)
        assert out.returncode == 0, out.stderr
    assert _indexes_on_events(db_dsn) == []


def test_a_lock_timeout_on_one_partition_is_reported_and_cleaned_up(db_dsn: str, start_sidecar) -> None:
    """A session holding a lock on March's partition: its build times out; what was built
    on January and February is removed, once the lock is gone if the cleanup needs it."""
    _create_events(db_dsn)
    rec = _advice(db_dsn)
    one(db_dsn, "SELECT optischema.set_setting('ddl_lock_timeout', '300 milliseconds')")
    start_sidecar()
    with psycopg.connect(db_dsn) as holder:
        holder.execute("LOCK TABLE public.ev_2026_03 IN SHARE MODE")       # reads go on, builds wait
        change_id = one(db_dsn, "SELECT optischema.apply(%s)", (rec["id"],))
        assert _wait(db_dsn, change_id) == "failed"
        failed = change(db_dsn, change_id)
        assert "lock timeout" in failed["error"] and "ddl_lock_timeout" in failed["error"], failed
        assert f"CREATE INDEX CONCURRENTLY {rec['index_name']}_ev_2026_03 ON public.ev_2026_03" in failed["error"]
        holder.rollback()
    wait_job(db_dsn, failed["job_id"], ("done", "failed"))
    assert wait_for(lambda: _indexes_on_events(db_dsn) == [], "the partial index to be removed")
    assert one(db_dsn, "SELECT status FROM optischema.recommendations WHERE id = %s", (rec["id"],)) == "failed"
