"""The LLM settings of one database (optischema.settings), read once per analysis."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import psycopg

_SQL = """
SELECT key, value FROM optischema.settings
WHERE key IN ('llm_enabled', 'llm_model', 'llm_max_concurrent', 'llm_tokens_per_hour', 'llm_timeout',
              'llm_max_retries', 'llm_check_timeout', 'min_cost_reduction')"""


@dataclass(frozen=True)
class LLMConfig:
    enabled: bool
    model: str
    max_concurrent: int
    tokens_per_hour: int
    timeout_s: float
    max_retries: int
    check_timeout_ms: int
    min_cost_reduction: float


def _seconds(conn: psycopg.Connection, interval_text: str) -> float:
    with conn.cursor() as cur:
        cur.execute("SELECT extract(epoch FROM %s::interval)::float8", (interval_text,))
        return float(cur.fetchone()[0])


def load(conn: psycopg.Connection, sidecar_settings: Any = None) -> LLMConfig:
    """Settings from the database; the sidecar's settings may only override the model."""
    with conn.cursor() as cur:
        cur.execute(_SQL)
        values = dict(cur.fetchall())
    model = getattr(sidecar_settings, "llm_model", None) or values["llm_model"]
    return LLMConfig(
        enabled=values["llm_enabled"] == "true",
        model=model,
        max_concurrent=int(values["llm_max_concurrent"]),
        tokens_per_hour=int(values["llm_tokens_per_hour"]),
        timeout_s=_seconds(conn, values["llm_timeout"]),
        max_retries=int(values["llm_max_retries"]),
        # 0 would mean no statement_timeout at all: the equivalence runs always have one
        check_timeout_ms=max(1, int(1000 * _seconds(conn, values["llm_check_timeout"]))),
        min_cost_reduction=float(values["min_cost_reduction"]),     # the advisor's threshold, shared
    )


def endpoint_configured() -> bool:
    """A model is only called when the environment names one (the openai client reads both)."""
    return bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))
