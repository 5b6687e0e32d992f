"""optischema.llm_calls: one row per request to a model, committed at once so that the
token budget and the audit hold whatever happens to the job afterwards."""
from __future__ import annotations

from dataclasses import dataclass

import psycopg

_INSERT = """
INSERT INTO optischema.llm_calls (job_id, scope, queryid, model, attempt, payload_sha256, payload_bytes,
                                  tokens_in, tokens_out, latency_ms, outcome, http_status, error)
VALUES (%(job_id)s, %(scope)s, %(queryid)s, %(model)s, %(attempt)s, %(payload_sha256)s, %(payload_bytes)s,
        %(tokens_in)s, %(tokens_out)s, %(latency_ms)s, %(outcome)s, %(http_status)s, %(error)s)
RETURNING id"""


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
        cur.execute(_INSERT, {"job_id": subject.job_id, "scope": subject.scope, "queryid": subject.queryid,
                              "model": rec.model, "attempt": rec.attempt,
                              "payload_sha256": rec.payload_sha256, "payload_bytes": rec.payload_bytes,
                              "tokens_in": rec.tokens_in, "tokens_out": rec.tokens_out,
                              "latency_ms": rec.latency_ms, "outcome": rec.outcome,
                              "http_status": rec.http_status, "error": rec.error and rec.error[:2000]})
        return int(cur.fetchone()[0])


def tokens_last_hour(conn: psycopg.Connection) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT optischema.llm_tokens_used('1 hour')")
        return int(cur.fetchone()[0])
