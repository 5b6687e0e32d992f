"""Rewrite proposals. The text must be one SELECT calling no function the original does not
call (beyond a few pure built-ins), plan, cost less than the original, and return the same
rows for several representative parameter sets. It only ever runs inside a READ ONLY
transaction with statement_timeout, wrapped in OptiSchema's own row-hashing query, and
that transaction is always rolled back."""
from __future__ import annotations

import hashlib
import uuid

import psycopg
from optischema_engine.db import PsycopgDatabase
from optischema_engine.plans import walk
from optischema_engine.sqltext import single_statement, tokens, verb
from optischema_engine.whatif import Unplannable, WhatIf

from . import costing
from .context import Target
from .models import RewriteProposal
from .verdict import Draft, Rejected, Verdict, rejected

# Words of data-changing statements (a data-modifying CTE, SELECT INTO): refused before
# anything is prepared. The READ ONLY transaction and the plan check stand behind this.
FORBIDDEN = frozenset("insert update delete merge into copy truncate drop alter create grant revoke".split())
# Words that precede '(' without being a function call.
SYNTAX = frozenset("""in exists any all some values over filter within as using on lateral not and or cast row
array when then else select from where join case extract interval numeric decimal varchar char character
varying timestamp time bit""".split())
PURE = frozenset("""count sum avg min max coalesce nullif greatest least lower upper length abs round floor ceil
date_trunc substring position trim btrim concat row_number rank dense_rank lag lead first_value last_value
string_agg array_agg bool_and bool_or""".split())
# The whole row, qualified: a bare alias would name an output column of the same name.
_HASH_SQL = ("SELECT count(*) AS n, pg_catalog.md5(coalesce(pg_catalog.string_agg(ROW(optischema_r.*)::text, "
             "E'\\n' ORDER BY ROW(optischema_r.*)::text), '')) AS h FROM ({}) optischema_r")


def _called(sql: str) -> set[str]:
    toks = tokens(sql)
    return {a.text.lower() for a, b in zip(toks, toks[1:]) if a.kind == "word" and b.text == "("} - SYNTAX


def _strip_comments(conn: psycopg.Connection, sql: str) -> str:
    with conn.cursor() as cur:
        cur.execute("SELECT optischema._strip_comments(%s)", (sql,))
        return cur.fetchone()[0]


def _lexical(original: str, rewrite: str) -> None:
    if verb(original) != "SELECT":
        raise Rejected("only SELECT statements are rewritten; the original is a " + (verb(original) or "?"))
    why = single_statement(rewrite)
    if why:
        raise Rejected(f"the rewrite is not a single plannable statement: {why}")
    if verb(rewrite) not in ("SELECT", "WITH"):
        raise Rejected(f"the rewrite is not a SELECT but {verb(rewrite) or '?'}")
    words = {t.text.lower() for t in tokens(rewrite) if t.kind == "word"}
    if words & FORBIDDEN:
        raise Rejected("the rewrite contains " + ", ".join(sorted(w.upper() for w in words & FORBIDDEN)))
    foreign = _called(rewrite) - _called(original) - PURE
    if foreign:
        raise Rejected("the rewrite calls functions the original does not: " + ", ".join(sorted(foreign)))


def _costs(db: PsycopgDatabase, target: Target, rewrite: str) -> tuple[float, float, costing.Prepared]:
    """(original cost, rewrite cost, the original's parameter sets), with the same parameters."""
    wi = WhatIf(db)
    try:
        try:
            original = costing.prepare(db, wi, target)
        except Unplannable as e:
            raise Rejected(f"the original cannot be planned: {e}") from None
        try:
            rname, rtypes = wi.prepare(rewrite)
        except Unplannable as e:
            raise Rejected(f"the rewrite does not plan: {e}") from None
        if rtypes != original.types:
            raise Rejected(f"the rewrite's parameters {rtypes} differ from the original's {original.types}")
        if original.types and not original.samples:
            raise Rejected("no representative parameter values to compare results with (no statistics)")
        before, _ = original.cost(wi, target.query)
        after, plans = costing.Prepared(rname, rtypes, original.samples, original.sources).cost(wi, rewrite)
        if any(node.get("Node Type") == "ModifyTable" for p in plans for node in walk(p)):
            raise Rejected("the rewrite modifies data")
        return before, after, original
    finally:
        wi.close()


def _same_results(conn: psycopg.Connection, original: str, rewrite: str, samples: list[list[str]],
                  timeout_ms: int) -> list[dict]:
    run = uuid.uuid4().hex[:8]
    names = {"original": f"optischema_eq_{run}_o", "rewrite": f"optischema_eq_{run}_r"}
    results: list[dict] = []
    try:
        with conn.transaction(force_rollback=True), conn.cursor() as cur:
            cur.execute("SET LOCAL transaction_read_only = on")
            cur.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            for role, text in (("original", original), ("rewrite", rewrite)):
                cur.execute(f"PREPARE {names[role]} AS " + _HASH_SQL.format(text))
            for args in samples:
                arglist = f"({', '.join(args)})" if args else ""
                got = {}
                for role in ("original", "rewrite"):
                    cur.execute(f"EXECUTE {names[role]}{arglist}")
                    n, h = cur.fetchone()
                    got[role] = {"rows": int(n), "sha": h}
                results.append({"parameters": args, **got})
                if got["original"] != got["rewrite"]:
                    raise Rejected(f"different results for parameters ({', '.join(args)}): original "
                                   f"{got['original']['rows']} rows, rewrite {got['rewrite']['rows']} rows",
                                   {"runs": results})
    except psycopg.errors.QueryCanceled:
        raise Rejected(f"the equivalence check exceeded statement_timeout ({timeout_ms} ms)",
                       {"runs": results}) from None
    except psycopg.Error as e:
        raise Rejected(f"the equivalence check failed: {str(e).strip().splitlines()[0]}", {"runs": results}) from None
    finally:
        with conn.cursor() as cur:
            for name in names.values():
                cur.execute("SELECT name FROM pg_catalog.pg_prepared_statements WHERE name = %s", (name,))
                if cur.fetchone():
                    cur.execute(f"DEALLOCATE {name}")
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
        rewrite = _strip_comments(conn, p.sql)
        _lexical(target.query, rewrite)
        with conn.transaction():            # the what-if's SET LOCALs need one transaction
            before, after, original = _costs(PsycopgDatabase(conn), target, rewrite)
        samples = original.samples or [[]]      # no parameters: one run says it all
        evidence = {"original": target.query, "cost_before": round(before, 2), "cost_after": round(after, 2),
                    "parameter_sources": {str(k): v for k, v in original.sources.items()}}
        if after >= before:
            raise Rejected(f"the rewrite does not cost less (original {before:g}, rewrite {after:g})", evidence)
        evidence["runs"] = _same_results(conn, target.query, rewrite, samples, timeout_ms)
    except Rejected as e:
        return rejected(e)
    saved = target.calls * (before - after)
    digest = hashlib.sha1(rewrite.encode()).hexdigest()[:12]
    draft = Draft(
        kind="rewrite", key=f"rewrite:{target.queryid}:{digest}",
        title=(f"Rewrite query {target.queryid}: same results on {len(samples)} parameter "
               f"set{'s' if len(samples) != 1 else ''}, cost {before:g} -> {after:g}"),
        ddl=rewrite, rollback_ddl=None, queryids=[target.queryid],
        benefit={"cost_before": round(before, 2), "cost_after": round(after, 2),
                 "reduction_pct": round(100 * (1 - after / before), 1), "cost_saved_per_window": round(saved, 2)},
        evidence=evidence, score=round(saved, 2))
    return Verdict(True, f"same results on {len(samples)} parameter sets; cost {before:g} -> {after:g}",
                   evidence, draft)
