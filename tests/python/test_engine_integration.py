"""Engine-level integration tests against a real cluster (OPTISCHEMA_TEST_DSN, with hypopg
available). Each test builds its own small schema in a throwaway database and drops it."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import engine_helpers  # noqa: F401
import pytest

from optischema_engine import Activity, Settings, WorkloadQuery, advise
from optischema_engine.db import PsycopgDatabase

psycopg = pytest.importorskip("psycopg")
from psycopg.conninfo import make_conninfo  # noqa: E402


@pytest.fixture
def engine_conn() -> Iterator:
    dsn = os.environ.get("OPTISCHEMA_TEST_DSN")
    if not dsn:
        pytest.skip("OPTISCHEMA_TEST_DSN is not set: engine integration tests need a PostgreSQL 15 with hypopg")
    name = "opt_engine_" + uuid.uuid4().hex[:10]
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(make_conninfo(dsn, dbname=name), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION hypopg")
            # who sent each statement: the engine plans it as that role (here: this test's)
            conn.execute("CREATE SCHEMA optischema")
            conn.execute("CREATE TABLE optischema.query_roles (queryid bigint, userid oid, rolname name, first_seen bigint,"
                         " last_seen bigint, PRIMARY KEY (queryid, userid))")
            yield conn
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(conn, queries, settings=None, window=3600.0):
    """advise() on (text, calls, total_ms, rows) tuples; checks the session is left as found."""
    wl = [WorkloadQuery(k + 1, q, calls, ms, rows) for k, (q, calls, ms, rows) in enumerate(queries)]
    conn.execute("INSERT INTO optischema.query_roles SELECT g, current_user::regrole, current_user, 1, 1 FROM generate_series(1, %s) g"
                 " ON CONFLICT DO NOTHING", (len(wl),))
    with conn.transaction():
        result = advise(PsycopgDatabase(conn), wl, Activity(window), settings or Settings(min_calls=1))
        # psycopg prepares its own frequent statements (from_sql = false): only ours must be gone
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements WHERE from_sql").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM hypopg_list_indexes").fetchone()[0] == 0
    result.to_dict()                                   # JSON-ready
    return result


def creates(result):
    return [r for r in result.recommendations if r.kind == "create_index"]


def setup(conn, sql):
    conn.execute(sql)
    conn.execute("ANALYZE")


ORDERS = """
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL,
                     created_at timestamptz NOT NULL, email text NOT NULL, note text);
INSERT INTO orders SELECT g, g % 5000, CASE WHEN g % 200 = 0 THEN 'pending' ELSE 'done' END,
       '2024-01-01'::timestamptz + g * interval '1 minute', 'User' || g || '@Example.com', 'n'
FROM generate_series(1, 200000) g;
"""


def test_equality_column_first_then_order(engine_conn):
    setup(engine_conn, ORDERS)
    r = run(engine_conn, [("SELECT id FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT $2",
                           1000, 5000.0, 10000)])
    (rec,) = creates(r)
    assert "(customer_id" in rec.ddl and rec.ddl.startswith("CREATE INDEX CONCURRENTLY orders_customer_id")
    assert rec.rollback_ddl == f"DROP INDEX CONCURRENTLY IF EXISTS public.{rec.index_name}"
    assert rec.benefit["queries"][0]["cost_after"] < rec.benefit["queries"][0]["cost_before"]
    assert r.stats["explain_calls"] > 0


def test_partial_index_for_a_selective_constant(engine_conn):
    setup(engine_conn, ORDERS)
    r = run(engine_conn, [("SELECT id FROM orders WHERE status = 'pending' ORDER BY created_at LIMIT $1",
                           1000, 5000.0, 50000)])
    (rec,) = creates(r)
    assert rec.ddl.endswith("WHERE status = 'pending'")


def test_expression_index(engine_conn):
    setup(engine_conn, ORDERS)
    r = run(engine_conn, [("SELECT id FROM orders WHERE lower(email) = lower($1)", 1000, 5000.0, 1000)])
    (rec,) = creates(r)
    assert "(lower(email))" in rec.ddl


def test_like_prefix_uses_pattern_ops_under_non_c_collation(engine_conn):
    setup(engine_conn, ORDERS)
    collate = engine_conn.execute("SELECT datcollate FROM pg_database WHERE datname = current_database()").fetchone()[0]
    r = run(engine_conn, [("SELECT id FROM orders WHERE email LIKE $1", 1000, 5000.0, 1000)])
    (rec,) = creates(r)
    assert ("text_pattern_ops" in rec.ddl) == (collate not in ("C", "POSIX"))


def test_covered_by_existing_index_gets_nothing(engine_conn):
    setup(engine_conn, ORDERS + "CREATE INDEX orders_cust_created ON orders (customer_id, created_at);")
    r = run(engine_conn, [("SELECT id FROM orders WHERE customer_id = $1", 1000, 5000.0, 40000)])
    assert creates(r) == []


def test_write_heavy_table_gets_no_index_for_a_rare_query(engine_conn):
    setup(engine_conn, ORDERS)
    query = ("SELECT id FROM orders WHERE customer_id = $1 AND note = $2", 2, 50.0, 80)
    insert = ("INSERT INTO orders (id, customer_id, status, created_at, email) VALUES ($1, $2, $3, $4, $5)",
              2_000_000, 900.0, 2_000_000)
    assert creates(run(engine_conn, [query, insert])) == []
    assert creates(run(engine_conn, [query, insert[:1] + (2, 0.1, 2)]))      # same query, few inserts


def test_unreplannable_text_is_skipped_not_fatal(engine_conn):
    setup(engine_conn, ORDERS)
    r = run(engine_conn, [("SELECT id FROM orders WHERE created_at > no_such_function($1)", 100, 900.0, 100),
                          ("SELECT id FROM orders WHERE customer_id = $1; DROP TABLE orders", 100, 900.0, 100),
                          ("CREATE ROLE x PASSWORD $1", 100, 900.0, 100),
                          ("SELECT id FROM orders WHERE customer_id = $1", 1000, 5000.0, 40000)])
    reasons = {s.queryid: s.reason for s in r.skipped}
    assert "cannot be re-planned" in reasons[1] and reasons[2] == "more than one statement"
    assert "utility" in reasons[3]
    assert len(creates(r)) == 1
    assert engine_conn.execute("SELECT to_regclass('orders') IS NOT NULL").fetchone()[0]


def test_drop_advice_duplicate_prefix_and_unused(engine_conn):
    setup(engine_conn, ORDERS + """
        CREATE INDEX a_status ON orders (status);
        CREATE INDEX b_status ON orders (status);
        CREATE INDEX c_cust ON orders (customer_id);
        CREATE INDEX d_cust_created ON orders (customer_id, created_at);
        CREATE INDEX e_note ON orders (note);""")
    oid = lambda n: engine_conn.execute("SELECT %s::regclass::oid", (n,)).fetchone()[0]
    from optischema_engine import IndexActivity
    activity = Activity(30 * 86400.0, indexes={oid(n): IndexActivity(0 if n == "e_note" else 5)
                                               for n in ("a_status", "b_status", "c_cust", "d_cust_created", "e_note")})
    with engine_conn.transaction():
        r = advise(PsycopgDatabase(engine_conn), [], activity, Settings(drop_unused_min_window_s=86400.0))
    drops = {d.index_name: d for d in r.recommendations if d.kind == "drop_index"}
    assert set(drops) == {"b_status", "c_cust", "e_note"}
    assert drops["b_status"].rollback_ddl.startswith("CREATE INDEX CONCURRENTLY b_status ON public.orders")
    assert drops["c_cust"].ddl == "DROP INDEX CONCURRENTLY IF EXISTS public.c_cust"
    assert drops["e_note"].evidence["reason"] == "unused"
