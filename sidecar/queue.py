"""The job queue's SQL interface (sql/10_jobs.sql), one call per operation."""
from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg.rows import dict_row

from optischema_sidecar import __version__

Job = dict[str, Any]


class JobCancelled(Exception):
    """The job was cancelled while it ran (optischema.cancel_job()) and its statement was stopped."""


class JobError(Exception):
    """A failure the handler understood. retry=False fails the job at once
    (bad payload, missing module); otherwise it is retried with backoff."""

    def __init__(self, message: str, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


def claim(conn: psycopg.Connection, worker: str, kinds: list[str] | None, lease: float) -> Job | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM optischema._claim_job(%s, %s, %s)", (worker, kinds, timedelta(seconds=lease)))
        return cur.fetchone()


def complete(conn: psycopg.Connection, job_id: int, worker: str, result: dict[str, Any]) -> bool:
    row = conn.execute("SELECT optischema._complete_job(%s, %s, %s)",
                       (job_id, worker, Jsonb(result))).fetchone()
    return bool(row and row[0])


def fail(conn: psycopg.Connection, job_id: int, worker: str, error: str, retry: bool) -> str | None:
    """Records a failed attempt; returns the job's new status (pending: it will be retried)."""
    row = conn.execute("SELECT optischema._fail_job(%s, %s, %s, %s)", (job_id, worker, error, retry)).fetchone()
    return row[0] if row else None


def release(conn: psycopg.Connection, job_id: int, worker: str) -> bool:
    row = conn.execute("SELECT optischema._release_job(%s, %s)", (job_id, worker)).fetchone()
    return bool(row and row[0])


def cancel_requests(conn: psycopg.Connection, worker: str) -> list[int]:
    """This worker's running jobs that optischema.cancel_job() asked to stop."""
    return [r[0] for r in conn.execute("SELECT optischema._cancel_requests(%s)", (worker,)).fetchall()]


def cancelled(conn: psycopg.Connection, job_id: int, worker: str) -> bool:
    """Records that a running job was stopped as asked (its change ends 'cancelled')."""
    row = conn.execute("SELECT optischema._job_cancelled(%s, %s)", (job_id, worker)).fetchone()
    return bool(row and row[0])


def heartbeat(conn: psycopg.Connection, worker: str, lease: float) -> int:
    """Announces the sidecar and renews the lease of its running jobs."""
    row = conn.execute("SELECT optischema._heartbeat(%s, %s, %s, %s, %s)",
                       (worker, socket.gethostname(), os.getpid(), __version__, timedelta(seconds=lease))).fetchone()
    return row[0] if row else 0


def sign_off(conn: psycopg.Connection, worker: str) -> None:
    conn.execute("SELECT optischema._sign_off(%s)", (worker,))


def schedule_due(conn: psycopg.Connection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT optischema._schedule_due()").fetchall()]
