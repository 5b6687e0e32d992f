"""What each job kind does: kind -> handler(conn, job, settings) -> result.
The connection is the worker's own, in autocommit; the result lands in
optischema.jobs.result. Raise queue.JobError for a failure with a clear
message (retry=False when trying again cannot help)."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import psycopg

from optischema_sidecar import executor, refresh, verify
from optischema_sidecar.config import Settings
from optischema_sidecar.queue import Job, JobError

Handler = Callable[[psycopg.Connection, Job, Settings], dict[str, Any]]


def _scalar(conn: psycopg.Connection, query: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def noop(conn: psycopg.Connection, job: Job, settings: Settings) -> dict[str, Any]:
    """Nothing, or payload {"sleep": seconds} on the server (tests: a job that takes time and can be cancelled)."""
    seconds = job["payload"].get("sleep", 0)
    if not isinstance(seconds, (int, float)) or not 0 <= seconds <= 3600:
        raise JobError(f"noop: sleep must be 0 to 3600 seconds, got {seconds!r}", retry=False)
    if seconds:
        conn.execute("SELECT pg_catalog.pg_sleep(%s)", (seconds,))
    return {"worker_id": job["worker_id"]}


def snapshot(conn: psycopg.Connection, job: Job, settings: Settings) -> dict[str, Any]:
    snapshot_id = _scalar(conn, "SELECT optischema.snapshot()")
    # With a new snapshot, recently applied changes have more "after" timings.
    verified = _scalar(conn, "SELECT optischema._verify_recent()")
    return {"snapshot_id": snapshot_id, "changes_verified": verified}


def recommend(conn: psycopg.Connection, job: Job, settings: Settings) -> dict[str, Any]:
    """recommend() where the engine is in the database; in a plain install (no
    PL/Python) the same analysis, run here (CALL optischema.refresh() waits for it)."""
    if _scalar(conn, "SELECT optischema._plain_install()"):
        return refresh.run(conn)
    return {"open_recommendations": _scalar(conn, "SELECT count(*) FROM optischema.recommend()")}


def purge(conn: psycopg.Connection, job: Job, settings: Settings) -> dict[str, Any]:
    return {"rows_purged": _scalar(conn, "SELECT optischema.purge()")}


def rewrite_advice(conn: psycopg.Connection, job: Job, settings: Settings) -> dict[str, Any]:
    """The 'rewrites' job: proven query rewrites (optischema_sidecar.rewrites)."""
    return rewrites.check(conn)


def _change_id(job: Job) -> int:
    change_id = job["payload"].get("change_id")
    if not isinstance(change_id, int):
        raise JobError(f"{job['kind']}: payload needs an integer change_id, got {job['payload']!r}", retry=False)
    return change_id


def apply(conn: psycopg.Connection, job: Job, settings: Settings) -> dict[str, Any]:
    """Runs the change; a new index is then checked against the plans of its queries,
    maintenance or a setting against its evidence."""
    result = executor.run_change(conn, job)
    change_id = _change_id(job)
    if _scalar(conn, "SELECT plan_check = 'pending' FROM optischema._changes WHERE id = %s", (change_id,)):
        result.update(verify.check(conn, change_id))
    return result


def rollback(conn: psycopg.Connection, job: Job, settings: Settings) -> dict[str, Any]:
    return executor.run_change(conn, job)


def check_plans(conn: psycopg.Connection, job: Job, settings: Settings) -> dict[str, Any]:
    """The 'verify' job: the check of a change applied from psql (optischema.applied())."""
    return verify.check(conn, _change_id(job))


def llm_analysis(conn: psycopg.Connection, job: Job, settings: Settings) -> dict[str, Any]:
    # Imported on first use: the LLM client and its dependencies load only where analyses run.
    try:
        analysis = importlib.import_module("optischema_sidecar.llm.analysis")
    except ModuleNotFoundError as e:
        raise JobError(f"llm_analysis is not available in this sidecar ({e}): install a version that "
                       "ships optischema_sidecar.llm.analysis, or cancel the job", retry=False) from e
    return analysis.run_analysis(conn, job, settings)


HANDLERS: dict[str, Handler] = {
    "apply": apply,
    "rollback": rollback,
    "verify": check_plans,
    "snapshot": snapshot,
    "recommend": recommend,
    "purge": purge,
    "llm_analysis": llm_analysis,
    "rewrites": rewrite_advice,
    "noop": noop,
}
