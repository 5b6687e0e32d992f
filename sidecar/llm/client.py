"""One analysis request to an OpenAI-compatible endpoint through the official client:
timeouts, retries with exponential backoff honouring 429 Retry-After, the hourly token
budget, and an audit row for every request. Retries are ours (the client's own are off)
so that each attempt is audited and counted against the budget."""
from __future__ import annotations

import email.utils
import hashlib
import json
import os
import random
import time
from dataclasses import dataclass
from typing import Any

import openai
import psycopg
from pydantic import ValidationError

from ..queue import JobError
from . import audit
from .config import LLMConfig
from .models import Analysis, response_format

MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 120.0


class LLMUnavailable(JobError):
    """No usable answer this time (timeouts, rate limits, server or connection errors, no
    free slot): the job fails this attempt and the queue retries it with its backoff."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retry=True)


@dataclass(frozen=True)
class Reply:
    call_id: int
    outcome: str                    # 'ok' | 'invalid_answer' | 'budget_exceeded'
    analysis: Analysis | None
    error: str | None = None


def make_client() -> openai.OpenAI:
    """The client reads OPENAI_API_KEY and OPENAI_BASE_URL itself. A local server named by
    OPENAI_BASE_URL alone needs no key, but the client insists on one: give it a placeholder."""
    key = None if os.environ.get("OPENAI_API_KEY") else "unused"
    return openai.OpenAI(api_key=key, max_retries=0)


def _retry_after(response: Any) -> float | None:
    """Seconds from Retry-After (seconds or HTTP date) or retry-after-ms, if present."""
    if response is None:
        return None
    ms = response.headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _backoff(attempt: int) -> float:
    base = min(MAX_BACKOFF_S, 2.0 ** (attempt - 1))
    return base + random.uniform(0, base / 4)


def _payload(model: str, messages: list[dict]) -> bytes:
    return json.dumps({"model": model, "messages": messages, "response_format": response_format()},
                      sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class _Attempt:
    """What one HTTP request gave, before anything is recorded."""
    outcome: str                    # an llm_calls outcome
    latency_ms: float
    http_status: int | None = None
    error: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    analysis: Analysis | None = None
    retry_after: float | None = None
    retryable: bool = True


def _attempt(client: openai.OpenAI, cfg: LLMConfig, messages: list[dict]) -> _Attempt:
    t0 = time.monotonic()
    try:
        resp = client.chat.completions.create(model=cfg.model, messages=messages,
                                              response_format=response_format(), timeout=cfg.timeout_s)
    except openai.APITimeoutError:
        return _Attempt("timeout", _ms(t0), error=f"no answer within {cfg.timeout_s:g}s (llm_timeout)")
    except openai.RateLimitError as e:
        return _Attempt("rate_limited", _ms(t0), 429, f"rate limited (429): {e.message}",
                        retry_after=_retry_after(e.response))
    except openai.APIConnectionError as e:
        return _Attempt("connection_error", _ms(t0), error=f"connection failed: {e.message}")
    except openai.APIStatusError as e:
        # other 4xx: the request or the credentials are wrong, and retrying cannot help
        return _Attempt("http_error", _ms(t0), e.status_code, f"HTTP {e.status_code}: {e.message}",
                        retryable=e.status_code >= 500 or e.status_code in (408, 409))
    tokens = {"tokens_in": resp.usage.prompt_tokens if resp.usage else 0,
              "tokens_out": resp.usage.completion_tokens if resp.usage else 0}
    message = resp.choices[0].message if resp.choices else None
    if message is not None and message.refusal:
        return _Attempt("invalid_answer", _ms(t0), 200, f"the model refused: {message.refusal}",
                        retryable=False, **tokens)
    content = message.content if message is not None else None
    try:
        analysis = Analysis.model_validate_json(content or "")
    except ValidationError as e:
        error = "answer does not match the schema: " + "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'answer'}: {err['msg']}" for err in e.errors()[:5])
        return _Attempt("invalid_answer", _ms(t0), 200, error, retryable=False, **tokens)
    return _Attempt("ok", _ms(t0), 200, analysis=analysis, **tokens)


def complete(conn: psycopg.Connection, client: openai.OpenAI, cfg: LLMConfig,
             subject: audit.Subject, messages: list[dict]) -> Reply:
    """Asks until an answer (valid or not) arrives, the budget is spent or retries run out.
    An invalid answer is not retried: the same prompt would spend the same tokens again."""
    body = _payload(cfg.model, messages)
    digest, size = hashlib.sha256(body).hexdigest(), len(body)
    a: _Attempt | None = None
    for attempt in range(1, cfg.max_retries + 2):
        used = audit.tokens_last_hour(conn)
        if used >= cfg.tokens_per_hour:
            error = f"token budget spent: {used} of {cfg.tokens_per_hour} tokens in the last hour (llm_tokens_per_hour)"
            call_id = audit.record(conn, subject, audit.CallRecord(cfg.model, attempt, digest, size,
                                                                   "budget_exceeded", error=error))
            return Reply(call_id, "budget_exceeded", None, error)
        a = _attempt(client, cfg, messages)
        call_id = audit.record(conn, subject, audit.CallRecord(
            cfg.model, attempt, digest, size, a.outcome, a.tokens_in, a.tokens_out, a.latency_ms, a.http_status,
            a.error))
        if a.outcome in ("ok", "invalid_answer"):
            return Reply(call_id, a.outcome, a.analysis, a.error)
        if not a.retryable:
            raise JobError(a.error or a.outcome, retry=False)
        if attempt <= cfg.max_retries:
            time.sleep(min(a.retry_after, MAX_RETRY_AFTER_S) if a.retry_after is not None else _backoff(attempt))
    raise LLMUnavailable(f"{a.error} (after {cfg.max_retries + 1} attempts)")


def _ms(t0: float) -> float:
    return (time.monotonic() - t0) * 1000.0
