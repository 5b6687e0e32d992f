"""Runs a change's statement at top level and records the outcome in the
change log (sql/11_changes.sql): CREATE/DROP INDEX CONCURRENTLY, and for
maintenance and settings VACUUM, ANALYZE, REINDEX INDEX CONCURRENTLY,
ALTER TABLE ... SET/RESET (...), ALTER ROLE/DATABASE ... SET, and ALTER
SYSTEM followed by pg_reload_conf().

The statement is built by the database when it is about to run
(optischema._change_ddl(): from the recommendation's structured description,
checked in the catalog), never taken from stored text. Every step is
idempotent, because a job may run again after its sidecar died at any point:
an index that already exists (valid) is done, an INVALID one left by a failed
or interrupted build is dropped before building again and after a failure,
and a backend orphaned by a killed sidecar is terminated. An index on a
partitioned table is built in steps (optischema._change_steps(): ON ONLY the
table, CONCURRENTLY on each partition, ATTACH PARTITION), each skipped when the
catalog shows it done; after a failure what the steps built is removed
(optischema._change_leftovers()). A job cancelled
while it runs (optischema.cancel_job()) has its statement cancelled: the
change ends 'cancelled', not 'failed'."""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from optischema_sidecar.queue import Job, JobCancelled, JobError

log = logging.getLogger(__name__)


def _index_valid(conn: psycopg.Connection, schema: str, name: str) -> bool | None:
    """True: a valid index of that name exists; False: an INVALID one; None: none."""
    row = conn.execute(
        "SELECT i.indisvalid FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid"
        " WHERE n.nspname = %s AND c.relname = %s", (schema, name)).fetchone()
    return None if row is None else bool(row[0])


def _drop_invalid(conn: psycopg.Connection, schema: str, name: str) -> bool:
    """Drops the index if it is INVALID; True when none is left behind."""
    if _index_valid(conn, schema, name) is not False:
        return True
    with _bounded(conn, statement=False):
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}.{}").format(sql.Identifier(schema), sql.Identifier(name)))
    log.info("dropped INVALID index", extra={"index": f"{schema}.{name}"})
    return True


def _index_on(conn: psycopg.Connection, table: int, schema: str, name: str) -> tuple[bool | None, bool]:
    """(valid: as _index_valid(), attached to a partitioned index) of that index of table `table`."""
    row = conn.execute(
        "SELECT i.indisvalid, c.relispartition FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid"
        " WHERE n.nspname = %s AND c.relname = %s AND i.indrelid = %s::oid", (schema, name, table)).fetchone()
    return (None, False) if row is None else (bool(row[0]), bool(row[1]))


def _remove_leftovers(conn: psycopg.Connection, change_id: int) -> int:
    """Removes what a failed build on a partitioned table left: its partitions'
    unattached indexes, then its own index (with the attached ones). Returns how many
    statements that took (0: nothing was left, or not a partitioned table)."""
    rows = conn.execute("SELECT ddl FROM optischema._change_leftovers(%s)", (change_id,)).fetchall()
    for (ddl,) in rows:
        with _bounded(conn, statement=False):
            conn.execute(ddl)
    if rows:
        log.info("removed a partial partitioned index", extra={"change_id": change_id, "statements": len(rows)})
    return len(rows)


def _run_steps(conn: psycopg.Connection, job: Job, steps: list[dict], ran: list[str]) -> None:
    """The steps of a build on a partitioned table, each skipped when done already
    (a retry resumes): create the index unless it exists (an INVALID leaf index of an
    earlier attempt is built again), attach it unless attached. `ran` gets each
    statement before it runs: its last one is the one that failed."""
    for s in steps:
        if job["attempts"] > 1:
            _terminate_orphans(conn, s["create_ddl"])
        valid, attached = _index_on(conn, s["table_oid"], s["index_schema"], s["index_name"])
        if s["kind"] == "leaf" and valid is False:
            _drop_invalid(conn, s["index_schema"], s["index_name"])
            valid = None
        if valid is None:
            ran.append(s["create_ddl"])
            with _bounded(conn):
                conn.execute(s["create_ddl"])
        if s["attach_ddl"] and not attached:
            ran.append(s["attach_ddl"])
            with _bounded(conn):
                conn.execute(s["attach_ddl"])


def _terminate_orphans(conn: psycopg.Connection, ddl: str) -> int:
    """A previous attempt's backend may still run the same DDL (its sidecar
    was killed): it would hold the locks and keep the index INVALID."""
    row = conn.execute(
        "SELECT count(pg_catalog.pg_terminate_backend(a.pid, 10000)) FROM pg_catalog.pg_stat_activity a"
        " WHERE a.datname = pg_catalog.current_database() AND a.pid <> pg_catalog.pg_backend_pid()"
        " AND a.application_name LIKE 'optischema-sidecar%%' AND a.state = 'active' AND a.query = %s",
        (ddl,)).fetchone()
    return row[0] if row else 0


@contextmanager
def _bounded(conn: psycopg.Connection, statement: bool = True) -> Iterator[None]:
    """The statements of the block under the database's ddl_lock_timeout and, for the
    change's own statement, ddl_statement_timeout (session level: autocommit). Only
    those: the executor's catalog reads and bookkeeping around them are not the build."""
    conn.execute(
        "SELECT pg_catalog.set_config('lock_timeout', (extract(epoch FROM optischema.setting('ddl_lock_timeout')::interval) * 1000)::bigint::text, false),"
        " pg_catalog.set_config('statement_timeout', CASE WHEN %s THEN (extract(epoch FROM optischema.setting('ddl_statement_timeout')::interval) * 1000)::bigint::text ELSE '0' END, false)",
        (statement,))
    try:
        yield
    finally:
        if not conn.closed and not conn.broken:
            conn.execute("RESET lock_timeout")
            conn.execute("RESET statement_timeout")


def _finish(conn: psycopg.Connection, change_id: int, status: str, error: str | None,
            detail: dict[str, Any], duration_ms: float | None) -> None:
    conn.execute("SELECT optischema._finish_change(%s, %s, %s, %s, %s)",
                 (change_id, status, error, Jsonb(detail), duration_ms))


def run_change(conn: psycopg.Connection, job: Job) -> dict[str, Any]:
    """The 'apply' and 'rollback' jobs: payload {"change_id": n}."""
    change_id = job["payload"].get("change_id")
    if not isinstance(change_id, int):
        raise JobError(f"payload needs an integer change_id, got {job['payload']!r}", retry=False)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM optischema._start_change(%s, %s)", (change_id, job["worker_id"]))
        change = cur.fetchone()
    assert change is not None
    schema, name = change["index_schema"], change["index_name"]
    if change["status"] in ("succeeded", "cancelled"):
        return {"change_id": change_id, "outcome": change["status"], "note": "already finished"}
    if change["status"] == "failed":
        # A retry after a failed build whose INVALID index could not be dropped then.
        _cleanup_or_retry(conn, change_id, schema, name, change["error"])
        return {"change_id": change_id, "outcome": "failed", "cleanup": "done"}
    try:
        op, ddl = conn.execute("SELECT op, ddl FROM optischema._change_ddl(%s)", (change_id,)).fetchone()
        with conn.cursor(row_factory=dict_row) as cur:
            steps = cur.execute("SELECT * FROM optischema._change_steps(%s)", (change_id,)).fetchall()
    except psycopg.Error as e:
        if conn.broken:
            raise
        error = f"refusing to run change {change_id}: {_describe(e)}"
        _finish(conn, change_id, "failed", error, {"sqlstate": e.sqlstate}, None)
        raise JobError(error, retry=False) from e
    if job["attempts"] > 1 and (n := _terminate_orphans(conn, ddl)):
        log.warning("terminated backends of an earlier attempt", extra={"change_id": change_id, "backends": n})
    if op in ("run", "reload"):
        return _run_statement(conn, job, change_id, op, ddl, schema, name)
    state = _index_valid(conn, schema, name)
    if op == "create" and state is True:
        _finish(conn, change_id, "succeeded", None, {"note": "the index already existed"}, 0.0)
        return {"change_id": change_id, "outcome": "succeeded", "note": "already existed"}
    if op == "drop" and state is None:
        _finish(conn, change_id, "succeeded", None, {"note": "the index did not exist"}, 0.0)
        return {"change_id": change_id, "outcome": "succeeded", "note": "already absent"}
    if op == "create" and state is False and not steps:
        _drop_invalid(conn, schema, name)
    t0 = time.monotonic()
    ran: list[str] = []
    try:
        if steps:
            _run_steps(conn, job, steps, ran)
        else:
            with _bounded(conn):
                conn.execute(ddl)
    except psycopg.Error as e:
        if conn.broken or job["release_requested"].is_set() or job["cancel_requested"].is_set():
            # The connection is gone, or the sidecar is stopping: the
            # change stays running and the job's next attempt resumes it.
            # Or the job was cancelled: the change ends with it.
            if not conn.broken:
                _remove_leftovers(conn, change_id)
                _drop_invalid(conn, schema, name)
            if job["cancel_requested"].is_set() and not conn.broken:
                raise JobCancelled(_describe(e)) from e
            raise
        ms = (time.monotonic() - t0) * 1000
        error = _describe(e)
        detail: dict[str, Any] = {"sqlstate": e.sqlstate}
        if steps:
            detail["failed_statement"] = ran[-1] if ran else None
            error = f"{error} (running: {ran[-1] if ran else 'the first step'}); what the build made is removed"
        _finish(conn, change_id, "failed", error, detail, ms)
        log.warning("change failed", extra={"change_id": change_id, "error": error})
        _cleanup_or_retry(conn, change_id, schema, name, error)
        raise JobError(error, retry=False) from e
    ms = (time.monotonic() - t0) * 1000
    if op == "create" and _index_valid(conn, schema, name) is not True:
        error = f"index {schema}.{name} is not valid after the build"
        _finish(conn, change_id, "failed", error, {}, ms)
        _cleanup_or_retry(conn, change_id, schema, name, error)
        raise JobError(error, retry=False)
    _finish(conn, change_id, "succeeded", None, {}, ms)
    log.info("change succeeded", extra={"change_id": change_id, "duration_ms": round(ms, 1)})
    return {"change_id": change_id, "outcome": "succeeded", "duration_ms": ms}


def _run_statement(conn: psycopg.Connection, job: Job, change_id: int, op: str, ddl: str,
                   schema: str | None, name: str | None) -> dict[str, Any]:
    """Maintenance and settings. Running one again after an interrupted attempt
    is harmless (a VACUUM vacuums again, a setting is set to the same value);
    an ALTER SYSTEM takes effect with pg_reload_conf() (op 'reload')."""
    t0 = time.monotonic()
    try:
        with _bounded(conn):
            conn.execute(ddl)
        if op == "reload":
            conn.execute("SELECT pg_catalog.pg_reload_conf()")
    except psycopg.Error as e:
        if conn.broken or job["release_requested"].is_set():
            raise
        if ddl.startswith("REINDEX"):
            _drop_reindex_leftovers(conn, schema, name)
        if job["cancel_requested"].is_set():
            raise JobCancelled(_describe(e)) from e
        ms = (time.monotonic() - t0) * 1000
        error = _describe(e)
        _finish(conn, change_id, "failed", error, {"sqlstate": e.sqlstate}, ms)
        log.warning("change failed", extra={"change_id": change_id, "error": error})
        raise JobError(error, retry=False) from e
    ms = (time.monotonic() - t0) * 1000
    _finish(conn, change_id, "succeeded", None, {}, ms)
    log.info("change succeeded", extra={"change_id": change_id, "duration_ms": round(ms, 1)})
    return {"change_id": change_id, "outcome": "succeeded", "duration_ms": ms}


def _drop_reindex_leftovers(conn: psycopg.Connection, schema: str | None, name: str | None) -> None:
    """A failed or cancelled REINDEX CONCURRENTLY leaves its new copy behind,
    INVALID, as <index>_ccnew (or _ccnew1, ...): dropped, like a failed build's."""
    leftovers = conn.execute(
        "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid"
        " WHERE n.nspname = %s::text AND NOT i.indisvalid"
        " AND pg_catalog.left(c.relname, pg_catalog.length(%s::text) + 6) = %s::text || '_ccnew'"
        " AND pg_catalog.substr(c.relname, pg_catalog.length(%s::text) + 7) ~ '^[0-9]*$'",
        (schema, name, name, name)).fetchall()
    for (leftover,) in leftovers:
        _drop_invalid(conn, schema, leftover)


def _cleanup_or_retry(conn: psycopg.Connection, change_id: int, schema: str, name: str, error: str | None) -> None:
    """Drops an INVALID leftover (on a partitioned table: all that its build left);
    when that fails too (the same locks are still held), the job is retried later to
    finish the cleanup."""
    try:
        _remove_leftovers(conn, change_id)
        _drop_invalid(conn, schema, name)
    except psycopg.Error as e:
        if conn.broken:
            raise
        raise JobError(f"{error}; the INVALID index {schema}.{name} it left could not be dropped yet "
                       f"({_describe(e)}): retrying the cleanup", retry=True) from e


def _describe(e: psycopg.Error) -> str:
    diag = e.diag
    text = diag.message_primary or str(e)
    if e.sqlstate == "55P03":
        text += " (another session holds a conflicting lock: retry when it is gone, or raise optischema.set_setting('ddl_lock_timeout', ...))"
    elif e.sqlstate == "57014":
        text += " (statement_timeout: the build took longer than the setting ddl_statement_timeout, or it was cancelled)"
    if diag.message_detail:
        text += f" DETAIL: {diag.message_detail}"
    return text
