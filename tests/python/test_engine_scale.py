"""Advice at scale (issue 15), on a real cluster: thresholds judged against the statements
an index serves, so unrelated tables change nothing; no global cap; statements left out
reported; the what-if work grows with candidates + statements."""
from __future__ import annotations

import time

import engine_helpers  # noqa: F401
import pytest
from test_engine_integration import creates, engine_conn, run  # noqa: F401 - engine_conn is a fixture

from optischema_engine import Settings

# The table whose advice must not move, and its statements: (text, calls, total_ms, rows).
ORDERS = """
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, sku text NOT NULL,
                     created_at timestamptz NOT NULL, amount numeric NOT NULL);
INSERT INTO orders SELECT g, g % 3000, 'S' || lpad((g * 7919 % 20000)::text, 5, '0'),
       '2024-01-01'::timestamptz + g * interval '1 minute', g % 500
FROM generate_series(1, 20000) g;
"""
ORDERS_WORKLOAD = [
    ("SELECT id, amount FROM orders WHERE customer_id = $1", 3, 30.0, 21),
    ("SELECT * FROM orders WHERE sku = $1", 3, 31.0, 3),
    ("SELECT * FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 5", 3, 32.0, 15),
    ("UPDATE orders SET amount = $1 WHERE id = $2", 3, 0.3, 3),
]
UNRELATED = 60


def unrelated_schema() -> str:
    return "".join(f"""
CREATE TABLE u{k} (id bigint PRIMARY KEY, a int NOT NULL, b int NOT NULL, c text NOT NULL);
INSERT INTO u{k} SELECT g, g % 100, g % 7, 'c' || g FROM generate_series(1, 2000) g;""" for k in range(UNRELATED))


def unrelated_workload() -> list[tuple[str, int, float, int]]:
    """Per table 3 statements, each run far more often than the orders statements: together
    they make almost all of the workload's cost."""
    out = []
    for k in range(UNRELATED):
        out += [(f"SELECT * FROM u{k} WHERE a = $1", 200, 20.0, 4000),
                (f"SELECT count(*) FROM u{k} WHERE b = $1 AND a = $2", 200, 20.0, 200),
                (f"SELECT id FROM u{k} WHERE c = $1", 200, 20.0, 200)]
    return out


def setup(conn, sql: str) -> None:
    """Tables created, vacuumed until every page is all-visible, and left alone by autovacuum.
    VACUUM cannot mark pages whose rows a concurrent snapshot may not see (an autovacuum
    worker analysing the next table holds one): the visibility map it leaves, and so the
    cost of an index-only scan, would differ between two runs of the test."""
    conn.execute(sql)
    conn.execute("""DO $$DECLARE t regclass; BEGIN
        FOR t IN SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' LOOP
            EXECUTE format('ALTER TABLE %s SET (autovacuum_enabled = off)', t);
        END LOOP; END$$""")
    for _ in range(50):
        conn.execute("VACUUM ANALYZE")
        if conn.execute("SELECT bool_and(relallvisible = relpages) FROM pg_class"
                        " WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'").fetchone()[0]:
            return
        time.sleep(0.2)
    raise AssertionError("the tables' pages never all became all-visible")


def _orders_advice(result) -> dict[str, list]:
    return {r.ddl: [(q["cost_before"], q["cost_after"]) for q in r.benefit["queries"]]
            for r in creates(result) if r.table == "public.orders"}


def test_unrelated_tables_do_not_change_the_advice_for_a_table(engine_conn):
    setup(engine_conn, ORDERS + unrelated_schema())
    alone = run(engine_conn, ORDERS_WORKLOAD, Settings(min_calls=1))
    wide = run(engine_conn, ORDERS_WORKLOAD + unrelated_workload(), Settings(min_calls=1))
    advice = _orders_advice(alone)
    assert advice and _orders_advice(wide) == advice
    assert {r.table for r in creates(alone)} == {"public.orders"}
    # no global cap: every unrelated table gets its indexes too
    assert {r.table for r in creates(wide)} == {"public.orders"} | {f"public.u{k}" for k in range(UNRELATED)}
    # The orders statements are a sliver of the workload's cost: a bar relative to the
    # whole workload (0.1.0: 1% of it per index) would have given them nothing.
    orders_cost = sum(q["calls"] * q["cost_before"] for r in creates(wide) if r.table == "public.orders"
                      for q in r.benefit["queries"])
    assert orders_cost < 0.01 * wide.stats["workload_cost_before"]


def test_what_if_work_grows_with_candidates_plus_statements(engine_conn):
    # solo gets one index: left out, its statement costs what it cost with none (cached)
    setup(engine_conn, ORDERS + unrelated_schema() + """
CREATE TABLE solo (id bigint PRIMARY KEY, a int NOT NULL);
INSERT INTO solo SELECT g, g % 1000 FROM generate_series(1, 20000) g;""")
    s = Settings(min_calls=1)
    r = run(engine_conn, ORDERS_WORKLOAD + unrelated_workload() + [("SELECT id FROM solo WHERE a = $1", 200, 20.0, 4000)], s)
    st = r.stats
    statements, candidates = st["statements_analysed"], st["candidates"]
    # each statement: a generic plan and its samples; each candidate: its statements with
    # their samples; the joint check: the statements on the chosen tables, and again those
    # an index served, when it is left out (cached when nothing else on its tables changed)
    per = s.param_samples + 1
    assert st["explain_calls"] <= 4 * per * (statements + candidates)
    assert st["cache_hits"] > 0
    # side by side: one round per candidate of the table with the most, not one per candidate
    assert st["evaluation_rounds"] < candidates / 10


def test_statements_left_out_are_reported(engine_conn):
    setup(engine_conn, ORDERS)
    workload = ORDERS_WORKLOAD + [("SELECT * FROM orders WHERE created_at > $1", 3, 0.5, 3)]
    r = run(engine_conn, workload, Settings(min_calls=1, statement_coverage=0.9))
    left = [s for s in r.skipped if s.queryid == 5]
    assert left and "statement_coverage 0.9" in left[0].reason
    assert r.stats["statements_left_out"] == 1 and r.stats["time_left_out_ms"] == 0.5
    assert r.stats["time_left_out_share"] == pytest.approx(0.5 / 93.8, abs=1e-4)


def test_statistics_loaded_a_table_at_a_time_only_for_columns_the_reader_may_read(engine_conn):
    """Parameter samples come from pg_stats, read one query per table: a role still gets
    only the statistics of columns it may select, and none of a table whose rows row
    security hides from it."""
    import uuid

    from optischema_engine.db import PsycopgDatabase
    from optischema_engine.params import ValueSource
    from optischema_engine.plans import Relation

    role = "scl_reader_" + uuid.uuid4().hex[:8]
    setup(engine_conn, "CREATE TABLE pub (a int, secret int); INSERT INTO pub SELECT g % 10, g % 7 FROM generate_series(1, 1000) g;"
                       "CREATE TABLE rls (a int); INSERT INTO rls SELECT g % 10 FROM generate_series(1, 1000) g;"
                       "ALTER TABLE rls ENABLE ROW LEVEL SECURITY")
    engine_conn.execute(f"CREATE ROLE {role}")
    try:
        engine_conn.execute(f"GRANT SELECT (a) ON pub TO {role}; GRANT SELECT ON rls TO {role}")
        oid = engine_conn.execute("SELECT %s::regrole::oid", (role,)).fetchone()[0]
        values = ValueSource(PsycopgDatabase(engine_conn), [], False)
        assert values.stats(Relation("public", "pub"), "a", oid).mcv
        assert values.stats(Relation("public", "pub"), "secret", oid) is None
        assert values.stats(Relation("public", "pub"), "secret").mcv              # the engine itself may
        assert values.stats(Relation("public", "rls"), "a", oid) is None
    finally:
        engine_conn.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
