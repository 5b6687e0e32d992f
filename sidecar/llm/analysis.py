"""The 'llm_analysis' job: context -> prompt -> model -> validated proposals -> recommendations.

The job loop calls run_analysis(conn, job, settings) on an autocommit connection. Transient
failures (timeouts, rate limits, no free slot) raise LLMUnavailable so that the queue retries
the job later; a bad payload or a refused request raises JobError(retry=False). Every request
is audited in optischema.llm_calls before anything else can go wrong."""
from __future__ import annotations

from typing import Any

import psycopg
from optischema_engine.whatif import Unplannable

from ..db import own_prepared_statements
from ..queue import JobError
from . import audit, check_config, check_index, check_rewrite, client, config, prompt, store
from .context import Target, load, targets
from .models import ConfigProposal, ExplanationProposal, IndexProposal, Proposal, RewriteProposal
from .slots import NoSlot, llm_slot
from .verdict import Verdict

SKIP_NO_ENDPOINT = "skipped: set OPENAI_API_KEY or OPENAI_BASE_URL"


def _subject(job: dict) -> audit.Subject:
    payload = job.get("payload") or {}
    scope = payload.get("scope", "query")
    if scope not in ("query", "workload"):
        raise JobError(f"llm_analysis payload scope must be 'query' or 'workload', got {scope!r}", retry=False)
    queryid = payload.get("queryid")
    if scope == "query" and not str(queryid).lstrip("-").isdigit():
        raise JobError(f"llm_analysis payload needs a numeric queryid for scope 'query', got {queryid!r}",
                       retry=False)
    return audit.Subject(job.get("id"), scope, int(queryid) if scope == "query" else None)


def _verdict(conn: psycopg.Connection, p: Proposal, found: list[Target], cfg: config.LLMConfig) -> Verdict:
    if isinstance(p, IndexProposal):
        return check_index.check(conn, p, found, cfg.min_cost_reduction)
    if isinstance(p, RewriteProposal):
        return check_rewrite.check(conn, p, found, cfg.check_timeout_ms)
    if isinstance(p, ConfigProposal):
        return check_config.check(conn, p, found)
    raise TypeError(type(p).__name__)


def _apply(conn: psycopg.Connection, call_id: int, subject: audit.Subject, p: Proposal,
           found: list[Target], cfg: config.LLMConfig) -> dict:
    """Validates one proposal and records it; returns its line of the job result."""
    rec_id = None
    if isinstance(p, ExplanationProposal):
        # a workload-wide explanation is about no single statement's recommendation
        explained = store.explain_advisor(conn, [t.queryid for t in found], p.explanation) \
            if subject.scope == "query" else []
        verdict = Verdict(True, f"explanation added to advisor recommendations {explained}" if explained
                          else "explanation recorded")
    else:
        try:
            with conn.transaction():        # a check that breaks undoes only itself
                verdict = _verdict(conn, p, found, cfg)
        except (psycopg.Error, Unplannable) as e:     # one proposal's failure is its own verdict
            verdict = Verdict(False, f"could not be checked: {str(e).strip().splitlines()[0]}")
        if verdict.draft is not None:
            rec_id, written = store.recommend(conn, verdict.draft, p.explanation)
            if not written:
                verdict = Verdict(True, f"{verdict.reason}; same as recommendation {rec_id}, left as it is",
                                  verdict.evidence, verdict.draft)
    store.proposal(conn, call_id, subject.queryid, p.kind, p.model_dump(), verdict, rec_id)
    return {"kind": p.kind, "accepted": verdict.accepted, "reason": verdict.reason, "recommendation_id": rec_id}


def run_analysis(conn: psycopg.Connection, job: dict, settings: Any = None) -> dict:
    subject = _subject(job)
    cfg = config.load(conn, settings)
    if not cfg.enabled:
        return {"status": "skipped", "reason": "setting llm_enabled is off"}
    if not config.endpoint_configured():
        return {"status": "skipped", "reason": SKIP_NO_ENDPOINT}
    try:
        context = load(conn, subject.scope, subject.queryid)
    except (psycopg.errors.NoDataFound, psycopg.errors.WrongObjectType) as e:
        return {"status": "skipped", "reason": e.diag.message_primary}
    found = targets(subject.scope, context)
    try:
        with llm_slot(conn, cfg.max_concurrent, wait_s=cfg.timeout_s):
            reply = client.complete(conn, client.make_client(), cfg, subject, prompt.messages(subject.scope, context))
    except NoSlot as e:
        raise client.LLMUnavailable(str(e)) from None
    if reply.analysis is None:
        return {"status": reply.outcome, "call_id": reply.call_id, "reason": reply.error}
    with own_prepared_statements(conn), conn.transaction():
        lines = [_apply(conn, reply.call_id, subject, p, found, cfg) for p in reply.analysis.proposals]
    return {"status": "ok", "call_id": reply.call_id, "model": cfg.model,
            "accepted": sum(1 for x in lines if x["accepted"]),
            "rejected": sum(1 for x in lines if not x["accepted"]), "proposals": lines}
