"""History benchmark (issue 14): the chartable history functions and the
report over a month of 5-minute snapshots (8,640), written directly: 5,000
statements (20 heavy ones in every snapshot, the rest once a day), 50 tables
and 100 indexes changing in every snapshot, a change mid-month.

Goals: <= 200 ms per call for one statement, table or index over the month
and for a day; the busiest tables or indexes of the month read every row of
the month, so their goal is a small multiple of a plain scan of those rows
(printed first: on a loaded machine every figure grows with it); the whole
report (report_data() and drawing it) <= 2 s."""
from __future__ import annotations

import time

import psycopg

from bench.common import fresh_database, median_ms

SNAPSHOTS = 30 * 288
STATEMENTS = 5000
HEAVY = 20
TABLES = 50


def synthesize_month(conn: psycopg.Connection) -> None:
    conn.execute("""
        INSERT INTO optischema.snapshots (id, taken_at, duration_ms, statements, changed)
        SELECT s, now() - (%(n)s - s) * interval '5 minutes', 20, %(q)s, %(h)s FROM generate_series(1, %(n)s) s""",
                 {"n": SNAPSHOTS, "q": STATEMENTS, "h": HEAVY})
    conn.execute("SELECT setval('optischema.snapshots_id_seq', %s)", (SNAPSHOTS,))
    conn.execute("""
        INSERT INTO optischema.queries (queryid, query, own, first_seen)
        SELECT q, 'SELECT synthetic_' || q, false, 1 FROM generate_series(1, %s) q""", (STATEMENTS,))
    # Running totals: heavy statements grow in every snapshot, the rest once a day.
    conn.execute("""
        INSERT INTO optischema.query_stats
        SELECT q, s * (q %% 7 + 1), s * (q %% 13 + 0.5), s * 10, s * 100, s, 0, s
        FROM generate_series(1, %(h)s) q, generate_series(1, %(n)s) s
        UNION ALL
        SELECT q, s * (q %% 7 + 1), s * (q %% 13 + 0.5), s * 10, s * 100, s, 0, s
        FROM generate_series(%(h)s + 1, %(q)s) q, generate_series(q %% 288 + 1, %(n)s, 288) s""",
                 {"h": HEAVY, "n": SNAPSHOTS, "q": STATEMENTS})
    conn.execute("""
        INSERT INTO optischema._query_state
        SELECT x.queryid, x.snapshot_id, 0, 0, 0, 0, 0, 0, x.calls, x.total_ms, x.rows, x.blks_hit, x.blks_read, 0
        FROM (SELECT DISTINCT ON (queryid) * FROM optischema.query_stats ORDER BY queryid, snapshot_id DESC) x""")
    for t in range(1, TABLES + 1):
        conn.execute(f"CREATE TABLE hist_bench_{t} (id int PRIMARY KEY, v int)")
        conn.execute(f"CREATE INDEX ON hist_bench_{t} (v)")
    conn.execute("""
        INSERT INTO optischema.table_stats
        SELECT s, c.oid, s %% 3, s %% 11, s %% 5, s %% 7, s %% 2, s %% 7, 1000, s %% 100, s %% 50
        FROM pg_class c, generate_series(1, %s) s
        WHERE c.relname LIKE 'hist_bench_%%' AND c.relkind = 'r'""", (SNAPSHOTS,))
    conn.execute("""
        INSERT INTO optischema.index_stats
        SELECT s, i.indexrelid, i.indrelid, (s + i.indexrelid::int) %% 13 + 1
        FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid, generate_series(1, %s) s
        WHERE c.relname LIKE 'hist_bench_%%'""", (SNAPSHOTS,))
    conn.execute("""
        INSERT INTO optischema._index_state
        SELECT i.indexrelid, 0, 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
        WHERE c.relname LIKE 'hist_bench_%%'""")
    rec = conn.execute("""
        INSERT INTO optischema._recommendations (key, kind, source, title, queryids)
        VALUES ('bench', 'create_index', 'advisor', 'Index hist_bench_1(v)', '{1,2,3}') RETURNING id""").fetchone()[0]
    conn.execute("""
        INSERT INTO optischema._changes (recommendation_id, action, via, ddl, index_schema, index_name, prior_status,
                                         status, requested_by, requested_at, finished_at)
        VALUES (%s, 'apply', 'psql', 'CREATE INDEX CONCURRENTLY hist_bench_1_v_idx ON public.hist_bench_1 (v)', 'public',
                'hist_bench_1_v_idx', 'open', 'succeeded', 'bench', now() - interval '15 days',
                now() - interval '15 days' + interval '1 minute')""", (rec,))
    for table in ("snapshots", "query_stats", "_query_state", "table_stats", "index_stats", "_index_state"):
        conn.execute(f"VACUUM ANALYZE optischema.{table}")


CALLS = [
    ("query_history('30 days', 5)", "SELECT count(*) FROM optischema.query_history('30 days', 5)", "200 ms"),
    ("query_history('30 days', query_id => 1)", "SELECT count(*) FROM optischema.query_history('30 days', query_id => 1)", "200 ms"),
    ("query_history('1 day', 5)", "SELECT count(*) FROM optischema.query_history('1 day', 5)", "200 ms"),
    ("table_history('30 days', 5)", "SELECT count(*) FROM optischema.table_history('30 days', 5)", "3 x floor"),
    ("table_history('30 days', relation => t)", "SELECT count(*) FROM optischema.table_history('30 days', relation => 'hist_bench_1')", "200 ms"),
    ("index_history('30 days', 10)", "SELECT count(*) FROM optischema.index_history('30 days', 10)", "3 x floor"),
    ("index_history('30 days', relation => t)", "SELECT count(*) FROM optischema.index_history('30 days', relation => 'hist_bench_1')", "200 ms"),
    ("snapshot_history('30 days')", "SELECT count(*) FROM optischema.snapshot_history('30 days')", "200 ms"),
    ("change_history(change mid-month)", "SELECT count(*) FROM optischema.change_history((SELECT max(id) FROM optischema._changes))", "200 ms"),
    ("report_data('30 days')", "SELECT length(optischema.report_data('30 days')::text)", "2 s"),
    ("report('30 days'): data and page", "SELECT length(optischema.report('30 days'))", "2 s"),
]


def main() -> None:
    print("== history: the chartable history functions and the report over a month of 5-minute snapshots")
    dsn = fresh_database("optischema_bench_history")
    with psycopg.connect(dsn, autocommit=True) as conn:
        t0 = time.perf_counter()
        synthesize_month(conn)
        rows = conn.execute("SELECT (SELECT count(*) FROM optischema.query_stats), (SELECT count(*) FROM optischema.table_stats),"
                            " (SELECT count(*) FROM optischema.index_stats)").fetchone()
        print(f"synthesized {SNAPSHOTS} snapshots, {STATEMENTS} statements ({rows[0]} rows), {TABLES} tables ({rows[1]} rows),"
              f" {2 * TABLES} indexes ({rows[2]} rows) in {time.perf_counter() - t0:.1f} s")
        conn.execute("SELECT optischema.set_setting('top_queries_refresh', '0')")
        conn.execute(CALLS[-1][1])      # the engine is imported once per session
        floor = []
        for _ in range(5):
            t0 = time.perf_counter()
            conn.execute("SELECT indexrelid, sum(idx_scan) FROM optischema.index_stats GROUP BY 1").fetchall()
            floor.append((time.perf_counter() - t0) * 1000)
        print(f"floor: a plain pass over the month's index rows: median {median_ms(floor)}")
        for name, query, goal in CALLS:
            samples = []
            for _ in range(5):
                t0 = time.perf_counter()
                conn.execute(query).fetchone()
                samples.append((time.perf_counter() - t0) * 1000)
            print(f"{name}: median {median_ms(samples)}  [goal <= {goal}]")


if __name__ == "__main__":
    main()
