"""Rewrite proposals. The original statement and the model's rewrite are both attacker-
controlled text, and checking a rewrite means planning and running both. So, in order:

1. Each text is one SELECT (no INTO, no FOR UPDATE/SHARE, no data-modifying WITH), read by
   PostgreSQL's parser (safe_select.parse); what runs from here on is the text re-written
   from that tree.
2. Everything runs as a role that sent the statement (optischema_engine.senders: inside a
   SECURITY DEFINER sandbox owned by that role, with its search_path, in savepoints that are
   rolled back): never with more rights than the sender. A sidecar that cannot act as any
   of the statement's senders rejects the proposal.
3. Before anything is planned, the server resolves what both texts use (safe_select):
   only side-effect-free built-ins, and the rewrite reads no relation the original does not.
4. Then the rewrite must plan with the original's parameters, cost less, and return the
   same rows for several representative parameter sets, each run READ ONLY with
   statement_timeout.
All of it happens on a new connection of the sidecar's login, in one transaction that is
rolled back, and the connection is closed: no lock, setting, prepared statement or LISTEN
outlives the check."""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import psycopg
from optischema_engine import senders
from optischema_engine.db import PsycopgDatabase
from optischema_engine.plans import walk
from optischema_engine.senders import Planning, Refused, Sender
from optischema_engine.whatif import Unplannable, WhatIf

from . import costing, safe_select
from .context import Target
from .models import RewriteProposal
from .safe_select import Select, Uses
from .verdict import Draft, Rejected, Verdict, rejected

# The whole row, qualified: a bare alias would name an output column of the same name. Every
# name is qualified too: it runs under the sender's search_path.
_HASH_SQL = ("SELECT pg_catalog.count(*) AS n, pg_catalog.md5(COALESCE(pg_catalog.string_agg("
             "ROW(optischema_r.*)::pg_catalog.text, E'\\n' ORDER BY ROW(optischema_r.*)::pg_catalog.text), '')) AS h "
             "FROM ({}) optischema_r")


@contextmanager
def _session(conn: psycopg.Connection) -> Iterator[PsycopgDatabase]:
    """A new connection of the sidecar's login in one transaction that is always rolled
    back; closed afterwards, whatever ran on it."""
    # prepare_threshold=None: psycopg's own prepared statements would look left behind
    session = psycopg.connect(conn.info.dsn, password=conn.info.password or None, autocommit=True,
                              prepare_threshold=None, application_name="optischema-sidecar rewrite check")
    try:
        with session.transaction(force_rollback=True):
            yield PsycopgDatabase(session)
    finally:
        session.close()


def _prepare(wi: WhatIf, select: Select, who: Sender, what: str) -> tuple[str, list[str]]:
    """(WhatIf key, parameter types) of `select` as `who`: PREPARE is parse analysis only."""
    try:
        return wi.prepare(select.text, who)
    except Unplannable as e:
        raise Rejected(f"{what} cannot be prepared: {e}") from None


def _uses(db: PsycopgDatabase, planning: Planning, who: Sender, select: Select, types: list[str],
          what: str) -> Uses:
    """What `select` uses as `who` resolves it, refused unless all of it passes the allow rule."""
    try:
        uses = safe_select.resolve(planning, who, select, types)
    except (Rejected, Refused) as e:
        raise Rejected(f"{what} {getattr(e, 'reason', e)}") from None
    why = safe_select.refusals(db, uses)
    if why:
        raise Rejected(f"{what} {'; '.join(why)}: OptiSchema runs only SELECTs of side-effect-free built-ins")
    return uses


def _costs(db: PsycopgDatabase, wi: WhatIf, target: Target, rkey: str,
           types: list[str]) -> tuple[float, float, costing.Prepared]:
    """(original cost, rewrite cost, the original's parameter sets), with the same parameters."""
    try:
        original = costing.prepare(db, wi, target)
        before, _ = original.cost(wi)
    except Unplannable as e:
        raise Rejected(f"the original cannot be planned: {e}") from None
    if original.types and not original.samples:
        raise Rejected("no representative parameter values to compare results with (no statistics)")
    try:
        after, plans = costing.Prepared(rkey, types, original.samples, original.sources).cost(wi)
    except Unplannable as e:
        raise Rejected(f"the rewrite does not plan: {e}") from None
    if any(node.get("Node Type") == "ModifyTable" for p in plans for node in walk(p)):
        raise Rejected("the rewrite modifies data")
    return before, after, original


def _same_results(db: PsycopgDatabase, planning: Planning, who: Sender, original: str, rewrite: str,
                  samples: list[list[str]], timeout_ms: int) -> list[dict]:
    """Both texts run as `who` for each parameter set, READ ONLY (planning's calls), each pair
    bounded by statement_timeout. Only row counts are kept: a hash of a few rows would tell
    their values."""
    results: list[dict] = []
    try:
        with db.subtransaction():
            db.query(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            for args in samples:
                o, r = senders.statement_name(), senders.statement_name()
                arglist = f"({', '.join(args)})" if args else ""
                rows = planning.run(who, [(f"PREPARE {o} AS " + _HASH_SQL.format(original), False),
                                          (f"PREPARE {r} AS " + _HASH_SQL.format(rewrite), False),
                                          (f"EXECUTE {o}{arglist}", True), (f"EXECUTE {r}{arglist}", True),
                                          (f"DEALLOCATE {o}", False), (f"DEALLOCATE {r}", False)],
                                    deallocate=[o, r])
                got = {"original": rows[2][0], "rewrite": rows[3][0]}
                same = got["original"] == got["rewrite"]
                results.append({"parameters": args, "rows": {k: int(v["n"]) for k, v in got.items()}, "same": same})
                if not same:
                    raise Rejected(f"different results for parameters ({', '.join(args)}): original "
                                   f"{got['original']['n']} rows, rewrite {got['rewrite']['n']} rows", {"runs": results})
    except psycopg.errors.QueryCanceled:
        raise Rejected(f"the equivalence check exceeded statement_timeout ({timeout_ms} ms)",
                       {"runs": results}) from None
    except psycopg.Error as e:
        # the condition only: an error message can quote the data that caused it
        raise Rejected(f"the equivalence check failed with SQLSTATE {e.sqlstate} ({type(e).__name__})",
                       {"runs": results}) from None
    return results


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
        original = safe_select.parse(target.query, "the original")
        rewrite = safe_select.parse(p.sql, "the rewrite")
        with _session(conn) as db:
            who = senders.resolve_one(db, [target.queryid])
            if who.sender is None:
                raise Rejected(f"not checked: {who.reason}")
            # resolving creates a temporary function, refused in a READ ONLY call: a block of its own
            with senders.planning(db, read_only=False) as planning:
                wi = WhatIf(db, planning)
                _, types = _prepare(wi, original, who.sender, "the original")
                _, rtypes = _prepare(wi, rewrite, who.sender, "the rewrite")
                reads = _uses(db, planning, who.sender, original, types, "the original").relations
                extra = _uses(db, planning, who.sender, rewrite, rtypes, "the rewrite").relations - reads
            if rtypes != types:
                raise Rejected(f"the rewrite's parameters {rtypes} differ from the original's {types}")
            if extra:
                names = db.query("SELECT pg_catalog.string_agg(x::pg_catalog.regclass::text, ', ' ORDER BY x) AS n"
                                 " FROM pg_catalog.unnest($1::oid[]) x", ["{" + ",".join(map(str, sorted(extra))) + "}"])
                raise Rejected(f"the rewrite reads {names[0]['n']}, which the original does not")
            with senders.planning(db) as planning:
                wi = WhatIf(db, planning)
                rkey, _ = _prepare(wi, rewrite, who.sender, "the rewrite")
                before, after, prepared = _costs(db, wi, replace(target, query=original.text), rkey, types)
                samples = prepared.samples or [[]]      # no parameters: one run says it all
                evidence = {"original": original.text, "run_as": who.sender.name, "cost_before": round(before, 2),
                            "cost_after": round(after, 2),
                            "parameter_sources": {str(k): v for k, v in prepared.sources.items()}}
                if after >= before:
                    raise Rejected(f"the rewrite does not cost less (original {before:g}, rewrite {after:g})", evidence)
                evidence["runs"] = _same_results(db, planning, who.sender, original.text, rewrite.text, samples,
                                                 timeout_ms)
    except Rejected as e:
        return rejected(e)
    saved = target.calls * (before - after)
    digest = hashlib.sha1(rewrite.text.encode()).hexdigest()[:12]
    draft = Draft(
        kind="rewrite", key=f"rewrite:{target.queryid}:{digest}",
        title=(f"Rewrite query {target.queryid}: same results on {len(samples)} parameter "
               f"set{'s' if len(samples) != 1 else ''}, cost {before:g} -> {after:g}"),
        ddl=rewrite.text, rollback_ddl=None, queryids=[target.queryid],
        benefit={"cost_before": round(before, 2), "cost_after": round(after, 2),
                 "reduction_pct": round(100 * (1 - after / before), 1), "cost_saved_per_window": round(saved, 2)},
        evidence=evidence, score=round(saved, 2))
    return Verdict(True, f"same results on {len(samples)} parameter sets as {who.sender.name}; "
                         f"cost {before:g} -> {after:g}", evidence, draft)
