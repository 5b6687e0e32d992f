"""Writes what validation decided: every proposal with its verdict (llm_proposals) and the
accepted ones as recommendations (source 'llm'). An advisor recommendation is never
overwritten: the model's explanation only fills its empty explanation."""
from __future__ import annotations

from dataclasses import asdict

import psycopg
from psycopg.types.json import Jsonb

from .verdict import Draft, Verdict

_UPSERT = """
INSERT INTO optischema._recommendations AS r
    (key, kind, source, title, ddl, rollback_ddl, table_name, index_name, queryids, benefit, evidence,
     estimated_size_bytes, score, explanation)
VALUES (%(key)s, %(kind)s, 'llm', %(title)s, %(ddl)s, %(rollback_ddl)s, %(table_name)s, %(index_name)s,
        %(queryids)s, %(benefit)s, %(evidence)s, %(estimated_size_bytes)s, %(score)s, %(explanation)s)
ON CONFLICT (key) DO UPDATE
SET title = EXCLUDED.title, ddl = EXCLUDED.ddl, rollback_ddl = EXCLUDED.rollback_ddl,
    queryids = EXCLUDED.queryids, benefit = EXCLUDED.benefit, evidence = EXCLUDED.evidence,
    estimated_size_bytes = EXCLUDED.estimated_size_bytes, score = EXCLUDED.score,
    explanation = EXCLUDED.explanation, updated_at = pg_catalog.now()
WHERE r.source = 'llm' AND r.status = 'open'
RETURNING id"""
_EXISTING = "SELECT id FROM optischema._recommendations WHERE key = %s"
_EXPLAIN_ADVISOR = """
UPDATE optischema._recommendations
SET explanation = %(explanation)s, updated_at = pg_catalog.now()
WHERE source = 'advisor' AND status = 'open' AND coalesce(explanation, '') = ''
  AND (%(key)s::text IS NULL OR key = %(key)s) AND queryids && %(queryids)s::bigint[]
RETURNING id"""
_PROPOSAL = """
INSERT INTO optischema.llm_proposals (call_id, queryid, kind, proposal, accepted, reason, evidence, recommendation_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"""


def recommend(conn: psycopg.Connection, draft: Draft, explanation: str) -> tuple[int, bool]:
    """(recommendation id, whether it is an LLM row written now). When the key belongs to an
    advisor row (the same index) or to one already acted on, that row is left as it is,
    apart from an empty advisor explanation."""
    with conn.cursor() as cur:
        cur.execute(_UPSERT, {**asdict(draft), "benefit": Jsonb(draft.benefit), "evidence": Jsonb(draft.evidence),
                              "explanation": explanation})
        row = cur.fetchone()
        if row:
            return int(row[0]), True
        cur.execute(_EXPLAIN_ADVISOR, {"explanation": explanation, "key": draft.key, "queryids": draft.queryids})
        cur.execute(_EXISTING, (draft.key,))
        return int(cur.fetchone()[0]), False


def explain_advisor(conn: psycopg.Connection, queryids: list[int], explanation: str) -> list[int]:
    """Fills the empty explanation of open advisor recommendations for these statements."""
    with conn.cursor() as cur:
        cur.execute(_EXPLAIN_ADVISOR, {"explanation": explanation, "key": None, "queryids": queryids})
        return [int(r[0]) for r in cur.fetchall()]


def proposal(conn: psycopg.Connection, call_id: int, queryid: int | None, kind: str, body: dict,
             verdict: Verdict, recommendation_id: int | None) -> None:
    with conn.cursor() as cur:
        cur.execute(_PROPOSAL, (call_id, queryid, kind, Jsonb(body), verdict.accepted, verdict.reason,
                                Jsonb(verdict.evidence), recommendation_id))
