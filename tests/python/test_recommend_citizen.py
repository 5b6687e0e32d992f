"""recommend() as a good citizen of the caller's session: cancelled by
statement_timeout at whatever point, it leaves no hypothetical index, no
prepared statement and no half-written analysis behind."""
from __future__ import annotations

import psycopg
import pytest


@pytest.fixture
def workload(conn: psycopg.Connection) -> psycopg.Connection:
    conn.execute("CREATE TABLE cit (id int PRIMARY KEY, a int, b int, c text)")
    conn.execute("INSERT INTO cit SELECT g, g % 1000, g % 77, 'c' || g FROM generate_series(1, 50000) g")
    conn.execute("ANALYZE cit")
    for i in range(3):
        conn.execute("SELECT id FROM cit WHERE a = %s ORDER BY b LIMIT 5", (i,))
        conn.execute("SELECT count(*) FROM cit WHERE b = %s AND a > %s", (i, i))
        conn.execute("SELECT id FROM cit WHERE c = %s", (f"c{i}",))
    return conn


def session_leftovers(conn: psycopg.Connection) -> tuple[int, int]:
    return conn.execute("SELECT (SELECT count(*) FROM hypopg_list_indexes),"
                        " (SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'optischema%%')").fetchone()


@pytest.mark.parametrize("timeout_ms", [1, 20, 60, 150])
def test_cancelled_recommend_leaves_the_session_clean(workload: psycopg.Connection, timeout_ms: int) -> None:
    conn = workload
    conn.execute(f"SET statement_timeout = {timeout_ms}")
    try:
        conn.execute("SELECT count(*) FROM optischema.recommend()")
        finished = True
    except psycopg.errors.QueryCanceled:
        finished = False
    conn.execute("RESET statement_timeout")
    assert session_leftovers(conn) == (0, 0)
    assert conn.execute("SHOW plan_cache_mode").fetchone()[0] == "auto"
    analyses = conn.execute("SELECT count(*) FROM optischema.analyses").fetchone()[0]
    assert analyses == (1 if finished else 0), "a cancelled run writes nothing"
    if not finished:
        assert conn.execute("SELECT count(*) FROM optischema.recommendations").fetchone()[0] == 0


def test_recommend_changes_no_user_schema(workload: psycopg.Connection) -> None:
    conn = workload
    before = conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'").fetchone()[0]
    recs = conn.execute("SELECT kind, ddl FROM optischema.recommend()").fetchall()
    assert any(kind == "create_index" and "public.cit" in ddl for kind, ddl in recs)
    assert conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'").fetchone()[0] == before
    assert session_leftovers(conn) == (0, 0)
