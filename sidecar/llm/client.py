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

from . import audit
from .config import LLMConfig
from .models import Analysis, response_format

MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 120.0


class LLMUnavailable(RuntimeError):
    """No usable answer this time (timeouts, rate limits, server or connection errors):
    the job fails this attempt and the queue retries it later."""


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
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _backoff(attempt: int) -> float:
    base = min(MAX_BACKOFF_S, 2.0 ** (attempt - 1))
    return base + random.uniform(0, base / 4)


def _payload(model: str, messages: list[dict]) -> bytes:
    return json.dumps({"model": model, "messages": messages, "response_format": response_format()},
                      sort_keys=True, separators=(",", ":")).encode()


def complete(conn: psycopg.Connection, client: openai.OpenAI, cfg: LLMConfig,
             subject: audit.Subject, messages: list[dict]) -> Reply:
    body = _payload(cfg.model, messages)
    digest, size = hashlib.sha256(body).hexdigest(), len(body)
    last_error = ""
    for attempt in range(1, cfg.max_retries + 2):
        def rec(outcome: str, **kw) -> int:
            return audit.record(conn, subject, audit.CallRecord(cfg.model, attempt, digest, size, outcome, **kw))

        used = audit.tokens_last_hour(conn)
        if used >= cfg.tokens_per_hour:
            error = f"token budget spent: {used} of {cfg.tokens_per_hour} tokens in the last hour (llm_tokens_per_hour)"
            return Reply(rec("budget_exceeded", error=error), "budget_exceeded", None, error)

        t0 = time.monotonic()
        wait: float | None = None
        try:
            resp = client.chat.completions.create(model=cfg.model, messages=messages,
                                                  response_format=response_format(), timeout=cfg.timeout_s)
        except openai.APITimeoutError:
            last_error = f"no answer within {cfg.timeout_s:g}s (llm_timeout)"
            rec("timeout", latency_ms=_ms(t0), error=last_error)
        except openai.RateLimitError as e:
            last_error = f"rate limited (429): {e.message}"
            wait = _retry_after(e.response)
            rec("rate_limited", latency_ms=_ms(t0), http_status=429, error=last_error)
        except openai.APIConnectionError as e:
            last_error = f"connection failed: {e.message}"
            rec("connection_error", latency_ms=_ms(t0), error=last_error)
        except openai.APIStatusError as e:
            last_error = f"HTTP {e.status_code}: {e.message}"
            rec("http_error", latency_ms=_ms(t0), http_status=e.status_code, error=last_error)
            if e.status_code < 500 and e.status_code not in (408, 409):
                raise LLMUnavailable(last_error) from None    # our request is wrong: retrying cannot help
        else:
            usage = resp.usage
            tokens = {"tokens_in": usage.prompt_tokens if usage else 0,
                      "tokens_out": usage.completion_tokens if usage else 0}
            content = resp.choices[0].message.content if resp.choices else None
            try:
                analysis = Analysis.model_validate_json(content or "")
            except ValidationError as e:
                error = "answer does not match the schema: " + "; ".join(
                    f"{'.'.join(map(str, err['loc'])) or 'answer'}: {err['msg']}" for err in e.errors()[:5])
                return Reply(rec("invalid_answer", latency_ms=_ms(t0), http_status=200, error=error, **tokens),
                             "invalid_answer", None, error)
            return Reply(rec("ok", latency_ms=_ms(t0), http_status=200, **tokens), "ok", analysis)
        if attempt <= cfg.max_retries:
            time.sleep(min(wait, MAX_RETRY_AFTER_S) if wait is not None else _backoff(attempt))
    raise LLMUnavailable(f"{last_error} (after {cfg.max_retries + 1} attempts)")


def _ms(t0: float) -> float:
    return (time.monotonic() - t0) * 1000.0
