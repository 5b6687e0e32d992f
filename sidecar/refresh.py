"""The 'recommend' job of a plain install (no PL/Python in the database): what
optischema.recommend() does with the extension, with the engine run here over
psycopg, in one transaction, recorded by the same SQL functions.

The connection's role plans each statement as a role that sent it, as recommend()'s
caller does in the database (optischema_engine.senders): statements of roles it is
not a member of are skipped, with the reason, in optischema.analyses.skipped. What
the engine computed reaches _record_advice() and _record_maintenance() through
_keep_result(), which only the schema's owner and the sidecar's role may call."""
from __future__ import annotations

import json
from typing import Any

import psycopg

from optischema_engine.analysis import advise_window, maintenance_window
from optischema_engine.db import PsycopgDatabase

from .db import own_prepared_statements


def run(conn: psycopg.Connection) -> dict[str, Any]:
    with own_prepared_statements(conn), conn.transaction():
        # what the PL/Python functions' SET clauses give them in the database
        conn.execute("SET LOCAL search_path = pg_catalog, pg_temp")
        conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        # the steps around the engine's are recommend()'s own (sql/30_recommend.sql)
        p_from, p_to = conn.execute("SELECT w.p_from, w.p_to FROM optischema._refresh_begin() w").fetchone()
        db = PsycopgDatabase(conn)
        advice = advise_window(db, p_from, p_to)
        _keep(conn, "advice", p_from, p_to, advice)
        analysis_id = conn.execute("SELECT optischema._record_advice()").fetchone()[0]
        _keep(conn, "maintenance", p_from, p_to, maintenance_window(db, p_from, p_to))
        conn.execute("SELECT optischema._record_maintenance()")
        conn.execute("SELECT optischema._refresh_end()")
        open_count = conn.execute("SELECT count(*) FROM optischema.recommendations r WHERE r.status = 'open'").fetchone()[0]
    return {"analysis_id": analysis_id, "snapshot_id": p_to, "open_recommendations": open_count,
            "skipped": len(advice.get("skipped") or [])}


def _keep(conn: psycopg.Connection, what: str, p_from: int | None, p_to: int, result: dict[str, Any]) -> None:
    conn.execute("SELECT optischema._keep_result(%s, %s, %s, %s::jsonb)", (what, p_from, p_to, json.dumps(result)))
