"""The plan check right after a change: do the queries the index was made
for now plan with it? Each query's normalized text is re-planned as a generic
plan (PREPARE + plan_cache_mode = force_generic_plan + EXPLAIN EXECUTE with
NULL parameters), never executed. The timing check (before/after means from
snapshots) is SQL: optischema.verify() and the snapshot job."""
from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

log = logging.getLogger(__name__)

_STATEMENT = "optischema_plan_check"


def _index_names(plan: Any) -> set[str]:
    """Every "Index Name" in an EXPLAIN (FORMAT JSON) plan tree."""
    found: set[str] = set()
    stack = [plan]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("Index Name"), str):
                found.add(node["Index Name"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _deallocate(conn: psycopg.Connection) -> None:
    # Prepared statements outlive the rolled-back transaction they were made in.
    if conn.execute("SELECT 1 FROM pg_catalog.pg_prepared_statements WHERE name = %s", (_STATEMENT,)).fetchone():
        conn.execute(sql.SQL("DEALLOCATE {}").format(sql.Identifier(_STATEMENT)))


def explain_generic(conn: psycopg.Connection, query: str, schema: str) -> tuple[Any | None, str | None]:
    """(plan, None), or (None, why the text could not be re-planned). Runs in
    a read-only transaction that is rolled back, as the sidecar's role."""
    path = sql.SQL("{}, public").format(sql.Identifier(schema)).as_string(conn)
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("SET LOCAL transaction_read_only = on")
            conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            conn.execute("SET LOCAL statement_timeout = '10s'")
            conn.execute("SELECT pg_catalog.set_config('search_path', %s, true)", (path,))
            # prepare=True: sent with the extended protocol, which refuses a
            # text holding a second statement instead of running it.
            conn.execute(sql.SQL("PREPARE {} AS {}").format(sql.Identifier(_STATEMENT), sql.SQL(query)), prepare=True)
            row = conn.execute("SELECT pg_catalog.cardinality(parameter_types) FROM pg_catalog.pg_prepared_statements"
                               " WHERE name = %s", (_STATEMENT,)).fetchone()
            nulls = sql.SQL(", ").join([sql.NULL] * (row[0] if row else 0))
            explain = sql.SQL("EXPLAIN (FORMAT JSON) EXECUTE {}").format(sql.Identifier(_STATEMENT))
            if row and row[0]:
                explain = sql.SQL("{}({})").format(explain, nulls)
            plan = conn.execute(explain).fetchone()[0]
    except psycopg.Error as e:
        if conn.broken:
            raise
        return None, (e.diag.message_primary or str(e))
    finally:
        if not conn.broken:
            _deallocate(conn)
    return plan, None


def plan_check(conn: psycopg.Connection, change_id: int) -> dict[str, Any]:
    """Re-plans the affected queries of an applied create_index change and
    records 'verified' (some plan uses the index), 'not_used' or 'skipped'."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT c.index_schema, c.index_name, r.queryids FROM optischema._changes c"
            " JOIN optischema._recommendations r ON r.id = c.recommendation_id WHERE c.id = %s", (change_id,))
        change = cur.fetchone()
        if change is None:
            return {"plan_check": "skipped", "reason": f"change {change_id} does not exist"}
        cur.execute("SELECT queryid, query FROM optischema.queries WHERE queryid = ANY (%s)", (change["queryids"],))
        texts = {r["queryid"]: r["query"] for r in cur.fetchall()}
    queries = []
    for queryid in change["queryids"]:
        entry: dict[str, Any] = {"queryid": queryid}
        if queryid not in texts:
            entry["skipped"] = "query text not captured (no snapshot has seen it yet)"
        else:
            plan, reason = explain_generic(conn, texts[queryid], change["index_schema"])
            if plan is None:
                entry["skipped"] = reason
            else:
                entry["uses_index"] = change["index_name"] in _index_names(plan)
                entry["plan"] = plan
        queries.append(entry)
    explained = [q for q in queries if "uses_index" in q]
    verdict = ("skipped" if not explained
               else "verified" if any(q["uses_index"] for q in explained) else "not_used")
    evidence = {"index": f"{change['index_schema']}.{change['index_name']}", "queries": queries}
    conn.execute("SELECT optischema._record_plan_check(%s, %s, %s)", (change_id, verdict, Jsonb(evidence)))
    log.info("plan check", extra={"change_id": change_id, "plan_check": verdict})
    return {"plan_check": verdict, "explained": len(explained), "skipped": len(queries) - len(explained)}
