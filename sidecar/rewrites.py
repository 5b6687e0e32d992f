"""The 'rewrites' job: query rewrite advice without an LLM. recommend() queues it
(optischema.enqueue_rewrite_checks()); here, on the sidecar's own connection, the heaviest
statements of the analysis window are read (those that never finished too, by the text an
execution was sent with), the engine finds the rewrites their parse tree
and catalog allow (optischema_engine.rewrites), and each one is proven (optischema_engine.proof,
the same proof a model's rewrite gets) on a new connection, as the statement's sender, READ
ONLY, rolled back, with statement_timeout: an in-database function cannot bound a statement
it runs, a client connection can. Proven rewrites become recommendations (kind 'rewrite',
source 'advisor') through optischema._record_rewrites(); the rejected ones are listed, with
the reason, in the job's result, and are not shown. A rewrite the application runs now (a
captured statement with its parse tree) is recorded for verify()."""
from __future__ import annotations

import hashlib
from typing import Any

import psycopg
from optischema_engine import rewrites, running, senders, sqltext
from optischema_engine.analysis import window_workload
from optischema_engine.model import WorkloadQuery
from optischema_engine.proof import Statement, prove
from optischema_engine.safe_select import Rejected
from pglast.parser import ParseError, fingerprint
from psycopg.types.json import Jsonb

from optischema_sidecar.proof_session import proof_session

_SHARED = "not checked: known only by the text of one execution (its constants), and sent by more than one role"
# Statements more than one role sent: an execution's text (its constants) is one role's to see.
_SHARED_SQL = ("SELECT r.queryid::text AS queryid FROM optischema.query_roles r WHERE r.queryid = ANY ($1::bigint[])"
               " GROUP BY r.queryid HAVING count(DISTINCT r.userid) > 1")
_LIMITS_SQL = ("SELECT w.p_from, w.p_to, optischema.setting('min_calls')::bigint AS min_calls,"
               " optischema.setting('rewrite_max_queries')::integer AS max_queries"
               " FROM optischema._analysis_window() w")
# Every statement of the window, and every rewrite shown: which rewrite the application runs now.
_WINDOW_SQL = """
SELECT x.queryid, q.query
FROM optischema._analysis_window() w
CROSS JOIN LATERAL optischema._query_window(w.p_from, w.p_to) x
JOIN optischema.queries q ON q.queryid = x.queryid
WHERE NOT q.own AND x.calls > 0"""
_REWRITES_SQL = "SELECT key, ddl, queryids FROM optischema._recommendations WHERE kind = 'rewrite' AND ddl IS NOT NULL"
_PATTERNS = {"cast_over_column": "a range instead of a function of the column",
             "correlated_subquery": "the correlated subquery as a grouped join",
             "not_in": "NOT IN as NOT EXISTS",
             "type_mismatch": "the value as the column's integer type",
             "no_op_over_column": "the column itself instead of a no-op on it",
             "coalesce_over_column": "the column itself or NULL instead of coalesce()",
             "keyset_pagination": "keyset pagination instead of a deep OFFSET"}


def _timeout_ms(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT extract(epoch FROM optischema.setting('rewrite_check_timeout')::interval)").fetchone()
    return max(1, int(1000 * float(row[0])))


def _found(conn: psycopg.Connection, st: Statement) -> tuple[list[rewrites.Candidate], str | None]:
    """The statement's candidate rewrites, its columns resolved as its sender."""
    with proof_session(conn, "rewrite advice") as db:
        who = senders.resolve_one(db, [st.queryid])
        if who.sender is None:
            return [], f"not checked: {who.reason}"
        with senders.planning(db) as planning:
            return rewrites.candidates(planning, who.sender, st.text)


def _advice(st: Statement, calls: int, c: rewrites.Candidate, conn: psycopg.Connection, timeout_ms: int,
            source: str | None) -> dict:
    """`source`: where st.text comes from when it is an execution's, constants included; the
    advice is then shown only as pg_stat_activity shows that execution, to its role's members
    (sql/07_recommendations.sql)."""
    with proof_session(conn, "rewrite proof") as db:
        proof = prove(db, st, c.sql, timeout_ms, derive=c.derive)
    before, after, n = proof.cost_before, proof.cost_after, len(proof.runs)
    saved = calls * before * proof.reduction
    return {
        # the parse tree's, constants aside: an execution's text rewritten is the same advice
        "key": f"rewrite:{st.queryid}:{c.pattern}:"
               f"{hashlib.sha1((_fingerprint(proof.rewrite) or proof.rewrite).encode()).hexdigest()[:12]}",
        "title": (f"Rewrite query {st.queryid}: {_PATTERNS[c.pattern]}; same results on {n} parameter "
                  f"set{'s' if n != 1 else ''}, " + (f"cost {before:g} -> {after:g}" if not proof.measured else
                                                    f"{proof.measured['original']:.0f} ms -> "
                                                    f"{proof.measured['rewrite']:.0f} ms measured")),
        "sql": proof.rewrite, "queryids": [st.queryid],
        "benefit": {"cost_before": round(before, 2), "cost_after": round(after, 2),
                    "reduction_pct": round(100 * proof.reduction, 1),
                    "cost_saved_per_window": round(saved, 2)},
        "evidence": {"pattern": c.pattern, **proof.evidence(), **({"sampled_text": source} if source else {})},
        "explanation": c.explanation + (f" (found in the text of one execution, its constants included: "
                                        f"{source.removeprefix('sampled: ')})" if source else ""),
        "score": round(saved, 2)}


def _figures(evidence: dict) -> dict:
    """What a rejected proof measured, without the parameter values (data) or any text: the
    job's result is readable by every reader."""
    out = {k: evidence[k] for k in ("cost_before", "cost_after", "parameter_sources") if k in evidence}
    if "runs" in evidence:
        out["runs"] = [{k: r[k] for k in ("rows", "same", "ms") if k in r} for r in evidence["runs"]]
    return out


def _fingerprint(sql: str) -> str | None:
    """libpg_query's fingerprint: the parse tree, constants and parameter numbers aside, so
    the application's spelling of a rewrite (`x::date`, `$2`) matches OptiSchema's."""
    try:
        return fingerprint(sql)
    except ParseError:
        return None


def adopted(conn: psycopg.Connection) -> dict[str, list[int]]:
    """Per rewrite (key): the captured statements of the window with its text, other than
    the ones it replaces."""
    seen: dict[str, list[int]] = {}
    for queryid, text in conn.execute(_WINDOW_SQL).fetchall():
        fp = _fingerprint(text)
        if fp is not None:
            seen.setdefault(fp, []).append(int(queryid))
    out = {}
    for key, ddl, queryids in conn.execute(_REWRITES_SQL).fetchall():
        found = sorted(q for q in seen.get(_fingerprint(ddl) or "", []) if q not in queryids)
        if found:
            out[key] = found
    return out


def _heaviest(conn: psycopg.Connection) -> tuple[list[WorkloadQuery], set[int]]:
    """The heaviest statements of the analysis window, as the index advice sees them: those
    seen running that never finished included, known by the text they were sent with; and
    of those, the ones sent by more than one role."""
    with proof_session(conn, "rewrite advice") as db:
        w = db.query(_LIMITS_SQL)[0]
        workload, _ = window_workload(db, w["p_from"], w["p_to"])
        workload = sorted((q for q in workload if q.total_ms > 0 and q.calls >= w["min_calls"]
                           and sqltext.single_statement(q.query) is None),
                          key=lambda q: (-q.total_ms, q.queryid))[:w["max_queries"]]
        shared = {int(r["queryid"]) for r in db.query(
            _SHARED_SQL, ["{" + ",".join(str(q.queryid) for q in workload) + "}"])} if workload else set()
    return workload, shared


def _candidates(conn: psycopg.Connection, q: WorkloadQuery, shared: set[int]) \
        -> tuple[Statement, list[rewrites.Candidate], str | None, str | None]:
    """(the statement as checked, its candidate rewrites, why it is not checked, where its
    text comes from: None for the normalized one). Where the normalized text gives none
    (the constant that makes the pattern, `date_trunc('day', col)`, `col + 0`, is a
    parameter there), the text of one of its executions, where one role sent it."""
    st = Statement(int(q.queryid), q.query, 1.0 if q.sampled else float(q.rows) / q.calls)
    if q.queryid in shared and q.sampled:
        return st, [], _SHARED, None
    found, why = _found(conn, st)
    if found or why is not None or q.sampled or q.queryid in shared:
        return st, found, why, running.SEEN_RUNNING if q.sampled else None
    with proof_session(conn, "rewrite advice") as db:
        use = db.query("SELECT optischema.setting('use_pg_qualstats')::boolean AS u")[0]["u"]
        text, kind = running.sampled_texts(db, [st.queryid], use).get(st.queryid, (None, None))
    if text is None or sqltext.verb(text) != sqltext.verb(st.text):
        return st, [], None, None
    execution = Statement(st.queryid, text, st.rows_per_call)
    found, why = _found(conn, execution)
    return (execution, found, None, kind) if found and why is None else (st, [], None, None)


def check(conn: psycopg.Connection) -> dict[str, Any]:
    """Find, prove and record; returns every candidate with its verdict (no statement text)."""
    timeout_ms = _timeout_ms(conn)
    checked, advice, lines, skipped = [], [], [], []
    workload, shared = _heaviest(conn)
    for q in workload:
        try:
            st, found, why, source = _candidates(conn, q, shared)
        except (psycopg.Error, senders.Refused, senders.Failed) as e:
            st, found, why, source = Statement(int(q.queryid), q.query), [], f"not checked: {senders.first_line(e)}", None
        if why is not None:
            skipped.append({"queryid": st.queryid, "reason": why})
            continue
        checked.append(st.queryid)
        for c in found:
            try:
                advice.append(_advice(st, int(q.calls), c, conn, timeout_ms, source))
                lines.append({"queryid": st.queryid, "pattern": c.pattern, "accepted": True,
                              "reason": f"proven: cost {advice[-1]['benefit']['cost_before']:g} -> "
                                        f"{advice[-1]['benefit']['cost_after']:g}"})
            except Rejected as e:
                lines.append({"queryid": st.queryid, "pattern": c.pattern, "accepted": False, "reason": e.reason,
                              **_figures(e.evidence)})
            except psycopg.Error as e:
                lines.append({"queryid": st.queryid, "pattern": c.pattern, "accepted": False,
                              "reason": f"could not be checked: SQLSTATE {e.sqlstate}"})
    ids = conn.execute("SELECT optischema._record_rewrites(%s::bigint[], %s, %s)",
                       (checked, Jsonb(advice), Jsonb(adopted(conn)))).fetchone()[0]
    return {"statements_checked": len(checked), "proven": len(advice),
            "rejected": sum(1 for x in lines if not x["accepted"]), "recommendation_ids": list(ids or []),
            "candidates": lines, "skipped": skipped}
