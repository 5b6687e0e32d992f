"""The check right after a change. An index: do the queries it was made for
now plan with it? Maintenance and settings: did the evidence move (dead rows
gone, age down, setting in place; after an ANALYZE, do the statements that
misestimated now estimate their rows)? optischema._record_effect() measures
the catalog; the statements are re-planned here, as their senders. Each query's normalized text is re-planned as a generic
plan (PREPARE + plan_cache_mode = force_generic_plan + EXPLAIN EXECUTE with
NULL parameters), never executed, as a role that sent it (never as the sidecar's
role: planning runs code of the sender's choosing). The timing check (before/after means from
snapshots) is SQL: optischema.verify() and the snapshot job."""
from __future__ import annotations

import logging
from typing import Any

import psycopg
from optischema_engine.db import PsycopgDatabase
from optischema_engine.maintenance import estimated_rows
from optischema_engine.plans import index_names
from optischema_engine.whatif import generic_plan
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .db import own_prepared_statements

log = logging.getLogger(__name__)


def explain_generic(conn: psycopg.Connection, queryid: int, query: str) -> tuple[dict | None, str | None]:
    """(top plan node, None), or (None, why the text could not be re-planned).
    The engine's own what-if planning (one PREPARE/EXPLAIN path for the advisor
    and the sidecar), in a transaction that is rolled back, as the most recent
    sender of statement `queryid` the sidecar's role may act as, under that
    role's search_path."""
    try:
        with own_prepared_statements(conn), conn.transaction(force_rollback=True):
            conn.execute("SET LOCAL statement_timeout = '10s'")
            return generic_plan(PsycopgDatabase(conn), queryid, query)
    except psycopg.Error as e:
        if conn.broken:
            raise
        return None, (e.diag.message_primary or str(e))


def check(conn: psycopg.Connection, change_id: int) -> dict[str, Any]:
    """The check of a succeeded apply, by the kind of its recommendation."""
    row = conn.execute("SELECT r.kind FROM optischema._changes c JOIN optischema._recommendations r"
                       " ON r.id = c.recommendation_id WHERE c.id = %s", (change_id,)).fetchone()
    if row is not None and row[0] in ("maintenance", "config"):
        return effect_check(conn, change_id)
    return plan_check(conn, change_id)


def effect_check(conn: psycopg.Connection, change_id: int) -> dict[str, Any]:
    """Maintenance or a setting: the evidence measured again (optischema._record_effect()),
    with the estimates of the statements that misestimated (ANALYZE, VACUUM (ANALYZE)),
    planned as their senders."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT r.kind, r.evidence FROM optischema._changes c"
                    " JOIN optischema._recommendations r ON r.id = c.recommendation_id WHERE c.id = %s", (change_id,))
        rec = cur.fetchone()
    plans = None
    statements = (rec["evidence"] or {}).get("statements") if rec and rec["kind"] == "maintenance" else None
    if statements:
        ids = [int(s["queryid"]) for s in statements]
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute("SELECT queryid, query FROM optischema.queries WHERE queryid = ANY (%s)", (ids,))
            texts = {r["queryid"]: r["query"] for r in cur.fetchall()}
        plans = []
        for queryid in ids:
            plan, reason = (explain_generic(conn, queryid, texts[queryid]) if queryid in texts
                            else (None, "query text not captured"))
            plans.append({"queryid": str(queryid), "plan_rows": estimated_rows(plan)} if plan is not None
                         else {"queryid": str(queryid), "skipped": reason})
    verdict = conn.execute("SELECT optischema._record_effect(%s, %s)",
                           (change_id, None if plans is None else Jsonb(plans))).fetchone()[0]
    log.info("effect check", extra={"change_id": change_id, "plan_check": verdict})
    return {"plan_check": verdict, **({"replanned": len(plans)} if plans is not None else {})}


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
        # On a partitioned table the plans scan the partitions' indexes, attached to it.
        cur.execute("SELECT c.relname FROM pg_catalog.pg_partition_tree(pg_catalog.to_regclass("
                    "pg_catalog.quote_ident(%s) || '.' || pg_catalog.quote_ident(%s))) p"
                    " JOIN pg_catalog.pg_class c ON c.oid = p.relid", (change["index_schema"], change["index_name"]))
        names = {change["index_name"]} | {r["relname"] for r in cur.fetchall()}
    queries = []
    for queryid in change["queryids"]:
        entry: dict[str, Any] = {"queryid": queryid}
        if queryid not in texts:
            entry["skipped"] = "query text not captured (no snapshot has seen it yet)"
        else:
            plan, reason = explain_generic(conn, queryid, texts[queryid])
            if plan is None:
                entry["skipped"] = reason
            else:
                entry["uses_index"] = not names.isdisjoint(index_names(plan))
                entry["plan"] = plan
        queries.append(entry)
    explained = [q for q in queries if "uses_index" in q]
    verdict = ("skipped" if not explained
               else "verified" if any(q["uses_index"] for q in explained) else "not_used")
    evidence = {"index": f"{change['index_schema']}.{change['index_name']}", "queries": queries}
    conn.execute("SELECT optischema._record_plan_check(%s, %s, %s)", (change_id, verdict, Jsonb(evidence)))
    log.info("plan check", extra={"change_id": change_id, "plan_check": verdict})
    return {"plan_check": verdict, "explained": len(explained), "skipped": len(queries) - len(explained)}
