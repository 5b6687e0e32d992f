"""Workload capture through real sessions: table and index activity (flushed
by PostgreSQL only at commit, so not testable inside one pgTAP transaction),
pg_dump of the extension's data, and a cluster without pg_stat_statements."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from dump import restored_copy

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = str(ROOT / "scripts" / "cluster.sh")


def flush_stats(conn: psycopg.Connection) -> None:
    """This session's table counters reach pg_stat_user_tables at most once a second unless asked."""
    conn.execute("SELECT pg_stat_force_next_flush()")


def test_table_and_index_activity_is_stored_as_deltas(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE act (id int PRIMARY KEY, v int)")
    conn.execute("INSERT INTO act SELECT g, g FROM generate_series(1, 500) g")
    flush_stats(conn)
    first = conn.execute("SELECT optischema.snapshot()").fetchone()[0]
    conn.execute("UPDATE act SET v = v + 1 WHERE id <= 10")
    for i in range(3):
        conn.execute("SELECT v FROM act WHERE id = %s", (i + 1,))
    flush_stats(conn)
    second = conn.execute("SELECT optischema.snapshot()").fetchone()[0]

    ins, upd = conn.execute(
        "SELECT n_tup_ins, n_tup_upd FROM optischema.table_stats WHERE relid = 'act'::regclass AND snapshot_id = %s",
        (first,)).fetchone()
    assert (ins, upd) == (500, 0)
    ins, upd, live = conn.execute(
        "SELECT n_tup_ins, n_tup_upd, n_live_tup FROM optischema.table_stats"
        " WHERE relid = 'act'::regclass AND snapshot_id = %s", (second,)).fetchone()
    assert (ins, upd, live) == (0, 10, 500)
    scans = conn.execute(
        "SELECT idx_scan FROM optischema.index_stats WHERE indexrelid = 'act_pkey'::regclass AND snapshot_id = %s",
        (second,)).fetchone()[0]
    assert scans >= 3

    third = conn.execute("SELECT optischema.snapshot()").fetchone()[0]
    assert conn.execute("SELECT count(*) FROM optischema.table_stats WHERE relid = 'act'::regclass"
                        " AND snapshot_id = %s", (third,)).fetchone()[0] == 0, "an idle table stores nothing"


def test_pg_dump_keeps_the_extensions_data(server_dsn: str, db_dsn: str) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as c:
        c.execute("SELECT optischema.set_setting('retention', '30 days')")
        c.execute("SELECT optischema.snapshot()")
    with restored_copy(server_dsn, db_dsn) as target_dsn, psycopg.connect(target_dsn) as c:
        assert c.execute("SELECT optischema.setting('retention')").fetchone()[0] == "30 days"
        assert c.execute("SELECT count(*) FROM optischema.snapshots").fetchone()[0] == 1
        assert c.execute("SELECT count(*) FROM optischema.queries").fetchone()[0] > 0


@pytest.fixture(scope="module")
def bare_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second cluster whose shared_preload_libraries lacks pg_stat_statements."""
    env = dict(os.environ, OPTISCHEMA_PGPORT="55439",
               OPTISCHEMA_PGDATA=str(Path(os.environ.get("TMPDIR", "/tmp")) / f"optischema-{os.getuid()}-bare" / "data"))
    subprocess.run([CLUSTER, "destroy"], env=env, check=True, capture_output=True)
    subprocess.run([CLUSTER, "start", "--no-preload"], env=env, check=True, capture_output=True)
    dsn = subprocess.run([CLUSTER, "dsn"], env=env, check=True, capture_output=True, text=True).stdout.strip()
    try:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("CREATE EXTENSION optischema CASCADE")
        yield dsn
    finally:
        subprocess.run([CLUSTER, "destroy"], env=env, check=True, capture_output=True)


@pytest.mark.parametrize("call", ["SELECT optischema.snapshot()", "SELECT * FROM optischema.top_queries()"])
def test_without_preload_capture_fails_with_the_fix(bare_cluster: str, call: str) -> None:
    with psycopg.connect(bare_cluster, autocommit=True) as c:
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as err:
            c.execute(call)
        assert "pg_stat_statements is not loaded" in err.value.diag.message_primary
        assert "shared_preload_libraries = 'pg_stat_statements'" in err.value.diag.message_hint
        assert c.execute("SELECT count(*) FROM optischema.snapshots").fetchone()[0] == 0


def test_without_preload_health_says_what_to_do(bare_cluster: str) -> None:
    with psycopg.connect(bare_cluster, autocommit=True) as c:
        ok, fix = c.execute("SELECT ok, fix FROM optischema.health()"
                            " WHERE \"check\" = 'pg_stat_statements preloaded'").fetchone()
        qs_ok, qs_detail, qs_fix = c.execute("SELECT ok, detail, fix FROM optischema.health()"
                                             " WHERE \"check\" = 'pg_qualstats'").fetchone()
    assert ok is False
    assert fix.startswith("postgresql.conf: shared_preload_libraries = '") and "pg_stat_statements" in fix
    assert qs_ok is False and qs_detail.startswith("not in shared_preload_libraries")
    assert qs_fix.startswith("postgresql.conf: shared_preload_libraries = '") and "'pg_stat_statements,pg_qualstats'" in qs_fix \
        and qs_fix.endswith("CREATE EXTENSION pg_qualstats;")
