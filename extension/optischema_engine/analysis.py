"""The analyses of recommend() over a window of snapshots, as JSON-ready dicts: what
the PL/Python functions _advise() and _maintenance_plans() return in the database,
and what the sidecar computes over psycopg where there is no PL/Python (a plain
install). Either way the caller's rights are what plans a statement: only as a role
that sent it, which the caller must be able to become (senders.py)."""
from __future__ import annotations

import json
from typing import Any

from . import running, senders
from .advisor import advise
from .db import Database
from .maintenance import plan_facts
from .model import Activity, IndexActivity, Settings, Skipped, TableActivity, WorkloadQuery


def _json(db: Database, sql: str, params: list[object]) -> Any:
    """One jsonb value, read as text: plpy and psycopg give jsonb different Python types."""
    return json.loads(db.query(sql, params)[0]["j"])


def window_workload(db: Database, p_from: int | None, p_to: int) -> tuple[list[WorkloadQuery], list[Skipped]]:
    """The statements of the window p_from..p_to (the index advice's and the rewrite advice's
    workload), and those skipped, saying why."""
    window = [p_from, p_to]
    # The caller reads only the texts it may read in pg_stat_statements (row
    # security of optischema.queries); it could not plan the others as their
    # senders either: they are skipped, saying why.
    rows = db.query("SELECT w.queryid, q.query, w.calls, w.total_ms, w.rows"
                    " FROM optischema._query_window($1::bigint, $2::bigint) w"
                    " LEFT JOIN optischema.queries q ON q.queryid = w.queryid", window)
    workload = [WorkloadQuery(r["queryid"], r["query"], r["calls"], r["total_ms"], r["rows"]) for r in rows
                if r["query"] is not None]
    # Executions seen running that pg_stat_statements never counted (cancelled,
    # timed out, still running): weighed by the time they had run; a statement
    # known only from them is planned from the text it was sent with.
    unfinished = [running.Unfinished(r["queryid"], r["query"], r["executions"], r["total_ms"], r["truncated"])
                  for r in db.query("SELECT u.queryid, r.query, u.executions, u.total_ms, u.truncated"
                                    " FROM optischema._unfinished_window($1::bigint, $2::bigint) u"
                                    " LEFT JOIN optischema.running_statements r"
                                    " ON r.pid = u.pid AND r.query_start = u.query_start", window)]
    workload, cut, unreadable = running.merge(workload, unfinished, {r["queryid"] for r in rows if r["query"] is None})
    hidden = [Skipped(q, "not planned: " + (senders.resolve_one(db, [q]).reason
                                            or "its text is not readable by this role"))
              for q in [r["queryid"] for r in rows if r["query"] is None] + [u.queryid for u in unreadable]] + cut
    return workload, hidden


def advise_window(db: Database, p_from: int | None, p_to: int) -> dict[str, Any]:
    """The index advice (AdviceResult.to_dict()) for the window p_from..p_to."""
    window = [p_from, p_to]
    workload, hidden = window_workload(db, p_from, p_to)
    act = _json(db, "SELECT optischema._activity($1::bigint, $2::bigint)::text AS j", window)
    activity = Activity(
        window_seconds=float(act["window_seconds"] or 0),
        tables={int(k): TableActivity(**v) for k, v in act["tables"].items()},
        indexes={int(k): IndexActivity(**v) for k, v in act["indexes"].items()},
        first_snapshot_at=act["first_snapshot_at"])
    settings = Settings.from_dict(_json(db, "SELECT optischema._engine_settings()::text AS j", []))
    advice = advise(db, workload, activity, settings)
    advice.skipped += hidden
    return advice.to_dict()


def maintenance_window(db: Database, p_from: int | None, p_to: int) -> dict[str, Any]:
    """The plans the maintenance and configuration findings rest on
    (optischema._maintenance_targets(), planned by maintenance.plan_facts())."""
    targets = _json(db, "SELECT optischema._maintenance_targets($1::bigint, $2::bigint)::text AS j", [p_from, p_to])
    facts = plan_facts(db, targets)
    facts["targets"] = targets
    return facts
