"""Statements seen running (snapshot() samples pg_stat_activity, sql/03_snapshots.sql) in the
advisor's workload. A statement cancelled or timed out never reaches pg_stat_statements, yet
it is often the slowest of all: its executions are weighed by the time they had run when last
seen. One pg_stat_statements counts too gets them added to its figures; one it never counted
is planned from the text an execution was sent with, its constants included (as its sender,
like every text: senders.py). Such a text stays in the database: only the kind of text
planned is recorded, never the text or an error that could quote it."""
from __future__ import annotations

from dataclasses import dataclass

from . import ddl, sqltext
from .db import Database
from .model import Skipped, WorkloadQuery
from .params import _QUALSTATS_SCHEMA_SQL

TRUNCATED = ("its text, sampled from pg_stat_activity while it ran, is cut at track_activity_query_size: "
             "see optischema.health() for the fix")
NOT_PLANNED = ("cannot be re-planned: the text sampled while it ran (its error is not recorded: "
               "it could quote the statement's constants)")
SEEN_RUNNING = "sampled: the text of an execution seen running"
QUALSTATS_EXAMPLE = "sampled: pg_qualstats' example query"

# The latest execution's text the caller may read (row security: pg_stat_activity's rule).
_RUNNING_TEXT_SQL = """
SELECT DISTINCT ON (x.queryid) x.queryid::text AS queryid, x.query
FROM optischema.running_statements x
WHERE x.queryid = ANY ($1::bigint[]) AND NOT x.truncated
ORDER BY x.queryid, x.last_seen DESC, x.query_start DESC"""
# {schema}: pg_qualstats' schema, catalog-resolved and quoted
_EXAMPLE_SQL = """
SELECT e.queryid::text AS queryid, e.query FROM {schema}.pg_qualstats_example_queries() e
WHERE e.queryid = ANY ($1::bigint[])"""


@dataclass
class Unfinished:
    """A statement's executions seen running that pg_stat_statements did not count."""
    queryid: int
    query: str | None       # the latest one's text; None when the caller may not read it
    executions: int
    total_ms: float
    truncated: bool


def merge(workload: list[WorkloadQuery], unfinished: list[Unfinished], hidden: set[int]) \
        -> tuple[list[WorkloadQuery], list[Skipped], list[Unfinished]]:
    """(the workload with the unfinished executions, the statements skipped, those whose text
    the caller may not read). `hidden`: queryids of the window whose normalized text the caller
    may not read (skipped already)."""
    by_id = {w.queryid: w for w in workload}
    out = list(workload)
    skipped: list[Skipped] = []
    unreadable: list[Unfinished] = []
    for u in unfinished:
        if u.queryid in hidden:
            continue
        w = by_id.get(u.queryid)
        if w is not None:
            w.calls += u.executions
            w.total_ms += u.total_ms
        elif u.query is None:
            unreadable.append(u)
        elif u.truncated:
            skipped.append(Skipped(u.queryid, TRUNCATED))
        else:
            out.append(WorkloadQuery(u.queryid, u.query, u.executions, u.total_ms, 0, sampled=True))
    return out, skipped, unreadable


def sampled_texts(db: Database, queryids: list[int], use_qualstats: bool) -> dict[int, tuple[str, str]]:
    """For statements whose normalized text does not plan even rewritten: per queryid, the
    text of one of its executions, constants included, and where it comes from (an execution
    seen running, else pg_qualstats' example query). Only a single statement of the same
    verb as it: the caller plans it as the statement's sender, like the normalized text."""
    if not queryids:
        return {}
    array = "{" + ",".join(str(q) for q in queryids) + "}"
    rows = db.query(_RUNNING_TEXT_SQL, [array])
    found = {int(r["queryid"]): (r["query"], SEEN_RUNNING) for r in rows}
    if use_qualstats and len(found) < len(set(queryids)):
        schema = db.query(_QUALSTATS_SCHEMA_SQL)
        if schema:
            for r in db.query(_EXAMPLE_SQL.format(schema=ddl.quote_ident(schema[0]["schema"])), [array]):
                # the first execution pg_qualstats saw, maybe inside an EXPLAIN
                found.setdefault(int(r["queryid"]), (sqltext.explained(r["query"] or ""), QUALSTATS_EXAMPLE))
    return {q: (text, kind) for q, (text, kind) in found.items()
            if text and sqltext.single_statement(text) is None}
