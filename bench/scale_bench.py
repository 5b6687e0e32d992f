"""Scale benchmark (issue 15): a generated application of N tables of ~20k rows, each
queried by 10 statement shapes (7 want an index, one is served by the primary key, one
is a HOT update, one aggregates a range), each statement run a few times by an
application role. Prints the recommendations, the tables they cover, the estimated
workload cost after/before, the what-if EXPLAIN calls and the time of recommend().

Goals: 50 tables / 500 statements: indexes on >= 40 tables, cost after <= 0.40 x before,
recommend() <= 10 s. 200 tables / 2,000 statements: recommend() <= 60 s, same quality
per table. `python -m bench.scale_bench [--keep] [TABLES ...]` (default 50; --keep leaves
the database and reuses it next time, without loading or replaying again)."""
from __future__ import annotations

import random
import sys
import time
from datetime import datetime, timedelta, timezone

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.types.numeric import Int4

from bench.common import fresh_database, server_dsn

ROWS = 20000
RUNS = 3                    # times each statement is run
APP_ROLE = "optischema_bench_app"
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)

# (sql with {t} for the table, parameters drawn from a Random)
SHAPES: list[tuple[str, object]] = [
    ("SELECT id, amount FROM {t} WHERE acct = %s", lambda r: (Int4(r.randrange(2000)),)),
    ("SELECT * FROM {t} WHERE ref = %s ORDER BY created DESC LIMIT 10", lambda r: (Int4(r.randrange(20000)),)),
    ("SELECT count(*) FROM {t} WHERE created >= %s AND created < %s",
     lambda r: (lambda s: (s, s + timedelta(hours=2)))(EPOCH + timedelta(minutes=r.randrange(20000)))),
    ("SELECT id FROM {t} WHERE code = %s", lambda r: (f"C{r.randrange(20000):05d}",)),
    ("SELECT sum(amount) FROM {t} WHERE grp = %s AND status = %s", lambda r: (Int4(r.randrange(50)), Int4(r.randrange(5)))),
    ("SELECT * FROM {t} WHERE acct = %s AND created > %s",
     lambda r: (Int4(r.randrange(2000)), EPOCH + timedelta(minutes=r.randrange(20000)))),
    ("SELECT id, code FROM {t} WHERE code LIKE %s LIMIT 20", lambda r: (f"C{r.randrange(200):03d}%",)),
    ("SELECT * FROM {t} WHERE id = %s", lambda r: (r.randrange(1, ROWS),)),
    ("UPDATE {t} SET amount = amount + 1 WHERE id = %s", lambda r: (r.randrange(1, ROWS),)),
    ("SELECT status, count(*) FROM {t} WHERE ref BETWEEN %s AND %s GROUP BY status",
     lambda r: (lambda x: (Int4(x), Int4(x + 20)))(r.randrange(20000))),
]


def table(i: int) -> str:
    return f"app.t{i:03d}"


def load(dsn: str, tables: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not _role_exists(conn):
            conn.execute(f"CREATE ROLE {APP_ROLE} LOGIN")
        conn.execute(f"CREATE SCHEMA app AUTHORIZATION {APP_ROLE}")
        for i in range(tables):
            conn.execute(f"""CREATE TABLE {table(i)} (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, acct int NOT NULL, grp int NOT NULL,
                ref int NOT NULL, created timestamptz NOT NULL, code text NOT NULL, status int NOT NULL,
                amount numeric NOT NULL, note text)""")
            conn.execute(f"""INSERT INTO {table(i)} (acct, grp, ref, created, code, status, amount, note)
                SELECT (g * 7 + {i}) % 2000, g % 50, (g * 7919 + {i}) % 20000,
                       timestamptz '{EPOCH.isoformat()}' + g * interval '1 minute',
                       'C' || lpad(((g * 104729 + {i}) % 20000)::text, 5, '0'), (g / 7) % 5,
                       (g % 1000) / 10.0, repeat('x', 40)
                FROM generate_series(1, {ROWS}) g""")
            conn.execute(f"ALTER TABLE {table(i)} OWNER TO {APP_ROLE}")
        conn.execute("VACUUM ANALYZE")


def _role_exists(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone() is not None


def replay(dsn: str, tables: int) -> int:
    """Every statement RUNS times, in a shuffled order, as the application role."""
    rng = random.Random(15)
    work = [(i, s) for i in range(tables) for s in range(len(SHAPES))] * RUNS
    rng.shuffle(work)
    app = make_conninfo(dsn, user=APP_ROLE)
    with psycopg.connect(app, autocommit=True) as conn:
        for i, s in work:
            sql, params = SHAPES[s]
            conn.execute(sql.format(t=table(i)), params(rng))
    return len(work)


def run(tables: int, keep: bool = False) -> dict:
    """keep: leave the database (and reuse it when it is there: no load, no replay)."""
    name = f"optischema_bench_scale_{tables}"
    print(f"== scale: {tables} tables x {len(SHAPES)} statement shapes, {ROWS} rows each, each statement run {RUNS} times")
    dsn = make_conninfo(server_dsn(), dbname=name)
    with psycopg.connect(server_dsn(), autocommit=True) as conn:
        reuse = keep and conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if not reuse:
        dsn = fresh_database(name)
        t0 = time.perf_counter()
        load(dsn, tables)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not reuse:
            conn.execute("SELECT optischema.snapshot()")
            n = replay(dsn, tables)
            print(f"loaded in {time.perf_counter() - t0:.0f} s; replayed {n} statements as {APP_ROLE}")
        # the sidecar snapshots every few minutes: recommend()'s own snapshot finds little new
        t1 = time.perf_counter()
        conn.execute("SELECT optischema.snapshot()")
        snapshot = time.perf_counter() - t1
        t1 = time.perf_counter()
        rows = conn.execute("SELECT kind, table_name FROM optischema.recommend(100000)").fetchall()
        elapsed = time.perf_counter() - t1
        stats = conn.execute("SELECT stats FROM optischema.analyses ORDER BY id DESC LIMIT 1").fetchone()[0]
    creates = [t for k, t in rows if k == "create_index"]
    covered = len(set(creates))
    before, after = stats.get("workload_cost_before") or 0, stats.get("workload_cost_after") or 0
    rel = after / before if before else 1.0
    print(f"snapshot() after the replay: {snapshot:.1f} s")
    print(f"recommend(): {elapsed:.1f} s (advisor {stats.get('elapsed_ms', 0) / 1000:.1f} s)  "
          f"[goal <= {10 if tables <= 50 else 60} s]")
    print(f"  {len(creates)} indexes proposed on {covered} of {tables} tables ({len(creates) / max(covered, 1):.1f} "
          f"per table)  [goal >= {int(tables * 0.8)}]")
    print(f"  estimated workload cost {before:.0f} -> {after:.0f} = {rel:.3f} x before  [goal <= 0.40]")
    print(f"  {stats.get('statements_analysed')} statements analysed of {stats.get('queries_in_workload')}, "
          f"{stats.get('statements_left_out', 0)} left out ({stats.get('time_left_out_share', 0):.1%} of statement time); "
          f"{stats.get('candidates')} candidates")
    print(f"  {stats.get('explain_calls')} what-if EXPLAIN calls, {stats.get('cache_hits', 0)} cache hits, "
          f"{stats.get('hypo_indexes')} hypothetical indexes, {stats.get('sender_calls')} sandbox calls, "
          f"{stats.get('evaluation_rounds')} evaluation rounds; phases (ms): {stats.get('phase_ms')}")
    if not keep:
        with psycopg.connect(server_dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return {"tables": tables, "seconds": elapsed, "covered": covered, "relative_cost": rel, "stats": stats}


def main(sizes: tuple[int, ...] = (50,), keep: bool = False) -> None:
    for n in sizes:
        run(n, keep)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(tuple(int(a) for a in args if a != "--keep") or (50,), "--keep" in args)
