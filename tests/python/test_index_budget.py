"""index_budget: the total size of the new indexes recommend() proposes, respected by the
selection (a size or a share of the database), and the set's total size reported."""
from __future__ import annotations

import psycopg
import pytest


@pytest.fixture
def workload(conn: psycopg.Connection) -> psycopg.Connection:
    """Three statements, each served by an index on its own table: a small one, a middling
    one and a large one, worth about the same per byte."""
    for name, rows in (("bud_small", 20000), ("bud_mid", 80000), ("bud_big", 320000)):
        conn.execute(f"CREATE TABLE {name} (id int, k int, pad text)")
        conn.execute(f"INSERT INTO {name} SELECT g, g, 'x' FROM generate_series(1, {rows}) g")
        conn.execute(f"ANALYZE {name}")
    conn.execute("SELECT optischema.snapshot()")
    for i in range(20):
        for name in ("bud_small", "bud_mid", "bud_big"):
            conn.execute(f"SELECT pad FROM {name} WHERE k = {i * 7 + 1}").fetchall()
    return conn


def advice(conn: psycopg.Connection) -> tuple[list[tuple[str, int]], dict]:
    """(create_index rows recommend() returns: table and size, the set's total as each reports it)."""
    rows = conn.execute("SELECT table_name, estimated_size_bytes, benefit -> 'new_indexes' FROM optischema.recommend(50)"
                        " WHERE kind = 'create_index'").fetchall()
    stats = conn.execute("SELECT stats FROM optischema.analyses ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert all(r[2] == stats["new_indexes"] for r in rows), "every row reports the set's total"
    return sorted(r[:2] for r in rows), stats["new_indexes"]


def test_no_budget_proposes_every_index_and_reports_the_total(workload: psycopg.Connection) -> None:
    rows, total = advice(workload)
    assert [t for t, _ in rows] == ["public.bud_big", "public.bud_mid", "public.bud_small"]
    assert total == {"count": 3, "bytes": sum(b for _, b in rows), "budget_bytes": None}


def test_the_selection_keeps_within_the_budget(workload: psycopg.Connection) -> None:
    conn = workload
    full, _ = advice(conn)
    size = dict(full)
    # room for the middling and the small index, not for the large one
    budget = size["public.bud_mid"] + size["public.bud_small"] + 8192
    conn.execute("SELECT optischema.set_setting('index_budget', %s)", (f"{budget} bytes",))
    rows, total = advice(conn)
    assert [t for t, _ in rows] == ["public.bud_mid", "public.bud_small"]
    assert total["bytes"] <= budget == total["budget_bytes"]
    # the large index was proposed before: superseded now, not silently kept open
    assert conn.execute("SELECT status FROM optischema.recommendations WHERE table_name = 'public.bud_big'"
                        ).fetchone()[0] == "superseded"


def test_a_share_of_the_database(workload: psycopg.Connection) -> None:
    conn = workload
    full, _ = advice(conn)
    db = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    smallest = min(b for _, b in full)
    share = 100 * (smallest + 8192) / db          # room for the smallest index only
    conn.execute("SELECT optischema.set_setting('index_budget', %s)", (f"{share:.6f}%",))
    rows, total = advice(conn)
    assert [t for t, _ in rows] == ["public.bud_small"]
    assert total["bytes"] <= total["budget_bytes"] < 2 * (smallest + 8192)

