"""optischema.llm_calls: one row per request to a model, committed at once (on the job loop's
autocommit connection) so that the token budget and the audit hold whatever happens to the
job afterwards."""
from __future__ import annotations

from dataclasses import dataclass

import psycopg

_RECORD = "SELECT optischema._llm_record_call(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"


@dataclass(frozen=True)
class Subject:
    """What a call is about: the job, and the statement (None for the whole workload)."""
    job_id: int | None
    scope: str                  # 'query' | 'workload'
    queryid: int | None


@dataclass(frozen=True)
class CallRecord:
    model: str
    attempt: int
    payload_sha256: str | None
    payload_bytes: int | None
    outcome: str
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float | None = None
    http_status: int | None = None
    error: str | None = None


def record(conn: psycopg.Connection, subject: Subject, rec: CallRecord) -> int:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_RECORD, (subject.job_id, subject.scope, subject.queryid, rec.model, rec.attempt,
                              rec.payload_sha256, rec.payload_bytes, rec.tokens_in, rec.tokens_out,
                              rec.latency_ms, rec.outcome, rec.http_status, rec.error))
        return int(cur.fetchone()[0])


def tokens_last_hour(conn: psycopg.Connection) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT optischema.llm_tokens_used('1 hour')")
        return int(cur.fetchone()[0])
