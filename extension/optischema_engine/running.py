"""Statements seen running (snapshot() samples pg_stat_activity, sql/03_snapshots.sql) in the
advisor's workload. A statement cancelled or timed out never reaches pg_stat_statements, yet
it is often the slowest of all: its executions are weighed by the time they had run when last
seen. One pg_stat_statements counts too gets them added to its figures; one it never counted
is planned from the text an execution was sent with, its constants included (as its sender,
like every text: senders.py). Such a text stays in the database: only the kind of text
planned is recorded, never the text or an error that could quote it."""
from __future__ import annotations

from dataclasses import dataclass

from .model import Skipped, WorkloadQuery

TRUNCATED = ("its text, sampled from pg_stat_activity while it ran, is cut at track_activity_query_size: "
             "see optischema.health() for the fix")
NOT_PLANNED = ("cannot be re-planned: the text sampled while it ran (its error is not recorded: "
               "it could quote the statement's constants)")


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
