"""Capture benchmark (issue 2): snapshot() with 5,000 changed statements,
bytes stored per changed statement, and top_queries() over a day of 5-minute
snapshots of 5,000 statements.

Goals: snapshot <= 30 ms median; unchanged statements store nothing;
<= 150 bytes per stored row including its index; top_queries <= 200 ms."""
from __future__ import annotations

import itertools
import time

import psycopg

from bench.common import fresh_database, median_ms

STATEMENTS = 5000
ROUNDS = 15
COLUMNS = [f"c{i}" for i in range(13)]


def distinct_statements(n: int) -> list[str]:
    """n statements with n different query ids: one per subset of columns."""
    subsets = itertools.chain.from_iterable(
        itertools.combinations(COLUMNS, k) for k in range(1, len(COLUMNS) + 1))
    return [f"SELECT {', '.join(cols)} FROM snap_bench WHERE c0 = 1"
            for cols in itertools.islice(subsets, n)]


def run_workload(conn: psycopg.Connection, statements: list[str]) -> None:
    with conn.pipeline():
        for sql in statements:
            conn.execute(sql)


def timed_snapshot(conn: psycopg.Connection) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    sid = conn.execute("SELECT optischema.snapshot()").fetchone()[0]
    wall = (time.perf_counter() - t0) * 1000
    server_ms, changed = conn.execute(
        "SELECT duration_ms, changed FROM optischema.snapshots WHERE id = %s", (sid,)).fetchone()
    return wall, server_ms, changed


def capture(dsn: str) -> None:
    statements = distinct_statements(STATEMENTS)
    with psycopg.connect(dsn, autocommit=True) as conn:
        cols = ", ".join(f"{c} int" for c in COLUMNS)
        conn.execute(f"CREATE TABLE snap_bench ({cols})")
        conn.execute(f"INSERT INTO snap_bench SELECT {', '.join('g' for _ in COLUMNS)} FROM generate_series(1, 10) g")
        # A throwaway cluster: make room for the 5,000 (OptiSchema itself never resets).
        conn.execute("SELECT pg_stat_statements_reset()")
        run_workload(conn, statements)
        wall, server_ms, changed = timed_snapshot(conn)
        print(f"first snapshot (reads {changed} texts): {wall:.1f} ms")
        walls, servers = [], []
        for _ in range(ROUNDS):
            run_workload(conn, statements)
            wall, server_ms, changed = timed_snapshot(conn)
            walls.append(wall)
            servers.append(server_ms)
        print(f"snapshot with {changed} changed statements: median {median_ms(walls)} from the client, "
              f"{median_ms(servers)} inside snapshot()  [goal <= 30 ms]")
        _, _, unchanged = timed_snapshot(conn)
        print(f"snapshot with nothing run since the previous one: {unchanged} rows stored  [goal 0]")
        rows, heap, index = conn.execute(
            "SELECT count(*), pg_relation_size('optischema.query_stats'),"
            " pg_relation_size('optischema.query_stats_pkey') FROM optischema.query_stats").fetchone()
        print(f"bytes per stored statement row: {(heap + index) / rows:.1f} "
              f"(heap {heap / rows:.1f} + index {index / rows:.1f}, {rows} rows)  [goal <= 150]")


def synthesize_day(conn: psycopg.Connection, snapshots: int, statements: int) -> None:
    """A day of 5-minute snapshots, every statement changing in every one:
    the worst case for a reader, written directly (replaying it would take a day)."""
    conn.execute("""
        INSERT INTO optischema.snapshots (id, taken_at, statements, changed)
        SELECT s, now() - (%(n)s - s) * interval '5 minutes', %(q)s, %(q)s FROM generate_series(1, %(n)s) s""",
                 {"n": snapshots, "q": statements})
    conn.execute("SELECT setval('optischema.snapshots_id_seq', %s)", (snapshots,))
    conn.execute("""
        INSERT INTO optischema.queries (queryid, query, own, first_seen)
        SELECT q, 'SELECT synthetic_' || q, false, 1 FROM generate_series(1, %s) q""", (statements,))
    conn.execute("""
        INSERT INTO optischema.query_stats
        SELECT q, s * (q %% 7 + 1), s * (q %% 13 + 0.5), s * 10, s * 100, s, 0, s
        FROM generate_series(1, %(n)s) s, generate_series(1, %(q)s) q""", {"n": snapshots, "q": statements})
    conn.execute("""
        INSERT INTO optischema._query_state
        SELECT q, %(n)s, 0, 0, 0, 0, 0, 0, %(n)s * (q %% 7 + 1), %(n)s * (q %% 13 + 0.5), %(n)s * 10, %(n)s * 100, %(n)s, 0
        FROM generate_series(1, %(q)s) q""", {"n": snapshots, "q": statements})
    conn.execute("VACUUM ANALYZE optischema.query_stats")
    conn.execute("VACUUM ANALYZE optischema._query_state")


def read_path(dsn: str) -> None:
    snapshots = 288
    with psycopg.connect(dsn, autocommit=True) as conn:
        t0 = time.perf_counter()
        synthesize_day(conn, snapshots, STATEMENTS)
        print(f"synthesized {snapshots} snapshots x {STATEMENTS} statements in {time.perf_counter() - t0:.1f} s")
        conn.execute("SELECT optischema.set_setting('top_queries_refresh', '0')")
        for since in ("1 day", "1 hour"):
            samples = []
            for _ in range(7):
                t0 = time.perf_counter()
                rows = conn.execute("SELECT * FROM optischema.top_queries(%s, 20)", (since,)).fetchall()
                samples.append((time.perf_counter() - t0) * 1000)
            assert len(rows) == 20
            print(f"top_queries('{since}', 20) over {snapshots} x {STATEMENTS}: median {median_ms(samples)}  [goal <= 200 ms]")


def main() -> None:
    print("== capture: snapshot(), storage, top_queries()")
    capture(fresh_database("optischema_bench_capture"))
    read_path(fresh_database("optischema_bench_topq"))


if __name__ == "__main__":
    main()
