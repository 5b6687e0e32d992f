"""Rewrite proposals. The original statement and the model's rewrite are both attacker-
controlled text: the model's rewrite gets the same proof as the advisor's own
(optischema_engine.proof: one SELECT each, read by PostgreSQL's parser; resolved, planned
and run only as a role that sent the statement; only side-effect-free built-ins; cheaper
with the same parameters; the same rows for several representative parameter sets, each
run READ ONLY with statement_timeout), on a new connection that is rolled back and closed
(sidecar/proof_session.py)."""
from __future__ import annotations

import hashlib

import psycopg
from optischema_engine.proof import Statement, prove

from ..proof_session import proof_session
from .context import Target
from .models import RewriteProposal
from .verdict import Draft, Rejected, Verdict, rejected


def _target(p: RewriteProposal, targets: list[Target]) -> Target:
    if p.queryid is None and len(targets) == 1:
        return targets[0]
    for t in targets:
        if p.queryid is not None and str(t.queryid) == p.queryid.strip():
            return t
    raise Rejected(f"queryid {p.queryid!r} is not a statement of this analysis")


def check(conn: psycopg.Connection, p: RewriteProposal, targets: list[Target], timeout_ms: int) -> Verdict:
    try:
        target = _target(p, targets)
        with proof_session(conn, "rewrite check") as db:
            proof = prove(db, Statement(target.queryid, target.query, target.rows_per_call), p.sql, timeout_ms)
    except Rejected as e:
        return rejected(e)
    before, after, n = proof.cost_before, proof.cost_after, len(proof.runs)
    saved = target.calls * before * proof.reduction
    digest = hashlib.sha1(proof.rewrite.encode()).hexdigest()[:12]
    draft = Draft(
        kind="rewrite", key=f"rewrite:{target.queryid}:{digest}",
        title=(f"Rewrite query {target.queryid}: same results on {n} parameter "
               f"set{'s' if n != 1 else ''}, cost {before:g} -> {after:g}"),
        ddl=proof.rewrite, rollback_ddl=None, queryids=[target.queryid],
        benefit={"cost_before": round(before, 2), "cost_after": round(after, 2),
                 "reduction_pct": round(100 * proof.reduction, 1), "cost_saved_per_window": round(saved, 2)},
        evidence=proof.evidence(), score=round(saved, 2))
    return Verdict(True, f"same results on {n} parameter sets as {proof.sender}; cost {before:g} -> {after:g}",
                   proof.evidence(), draft)
