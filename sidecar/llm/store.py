"""Writes what validation decided, through the extension's SECURITY DEFINER functions (the
sidecar's role only reads tables): every proposal with its verdict (llm_proposals) and the
accepted ones as recommendations (source 'llm'). An advisor recommendation is never
overwritten: the model's explanation only fills its empty explanation."""
from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from .verdict import Draft, Verdict


def recommend(conn: psycopg.Connection, draft: Draft, explanation: str) -> tuple[int, bool]:
    """(recommendation id, whether an 'llm' row was written now rather than left as it was)."""
    with conn.cursor() as cur:
        cur.execute("SELECT rec_id, written FROM optischema._llm_recommend("
                    "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (draft.key, draft.kind, draft.title, draft.ddl, draft.rollback_ddl, draft.table_name,
                     draft.index_name, draft.queryids, Jsonb(draft.benefit), Jsonb(draft.evidence),
                     draft.estimated_size_bytes, draft.score, explanation,
                     None if draft.index_spec is None else Jsonb(draft.index_spec),
                     None if draft.action_spec is None else Jsonb(draft.action_spec)))
        rec_id, written = cur.fetchone()
        return int(rec_id), bool(written)


def explain_advisor(conn: psycopg.Connection, queryids: list[int], explanation: str) -> list[int]:
    """Fills the empty explanation of open advisor recommendations for these statements."""
    with conn.cursor() as cur:
        cur.execute("SELECT optischema._llm_explain_advisor(%s::bigint[], %s)", (queryids, explanation))
        return list(cur.fetchone()[0])


def proposal(conn: psycopg.Connection, call_id: int, queryid: int | None, kind: str, body: dict,
             verdict: Verdict, recommendation_id: int | None) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT optischema._llm_record_proposal(%s, %s, %s, %s, %s, %s, %s, %s)",
                    (call_id, queryid, kind, Jsonb(body), verdict.accepted, verdict.reason,
                     Jsonb(verdict.evidence), recommendation_id))
