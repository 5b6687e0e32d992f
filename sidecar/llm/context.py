"""Reads what an analysis is about from the database: optischema.context(queryid) for one
statement, optischema.workload_context() for the whole workload. Both are built in SQL,
so that what may leave the database is defined (and tested) in one place."""
from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Target:
    """A statement a proposal is checked against."""
    queryid: int
    query: str                 # normalized text, comments stripped
    calls: int                 # in the analysis window
    total_ms: float            # its DB time in the analysis window
    rows_per_call: float       # sizes LIMIT parameters when the rewrite check runs it


def load(conn: psycopg.Connection, scope: str, queryid: int | None) -> dict:
    with conn.cursor() as cur:
        if scope == "query":
            cur.execute("SELECT optischema.context(%s)", (queryid,))
        else:
            cur.execute("SELECT optischema.workload_context()")
        return cur.fetchone()[0]


def targets(scope: str, context: dict) -> list[Target]:
    if scope == "query":
        return [_target(context["queryid"], context["query"], context.get("statistics") or {})]
    return [_target(s["queryid"], s["query"], s) for s in context["heaviest_statements"]]


def _target(queryid, query: str, stats: dict) -> Target:
    calls = float(stats.get("calls") or 0)
    return Target(int(queryid), query, int(calls), float(stats.get("total_ms") or 0.0),
                  float(stats.get("rows") or 0) / calls if calls else 1.0)
