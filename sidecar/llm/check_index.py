"""Index proposals: table and columns resolved in the catalog, described the way the
advisor describes its candidates (optischema_engine.indexspec: the SQL side builds the
statement from that description when it runs), and the gain proven with a HypoPG what-if
plan of the statements it is meant for. No gain, no recommendation."""
from __future__ import annotations

import psycopg
from optischema_engine import ddl, senders
from optischema_engine.advisor import WELL_SERVED_MIN_SAVING, counts_for, hypothetical, index_size
from optischema_engine.candidates import Candidate, KeyPart, covered_by_existing
from optischema_engine.catalog import Catalog, Table
from optischema_engine.db import PsycopgDatabase
from optischema_engine.indexspec import Unbuildable
from optischema_engine.params import ValueSource
from optischema_engine.probes import ProbeReads
from optischema_engine.sqltext import single_statement, tokens
from optischema_engine.whatif import Unplannable, WhatIf

from ..db import own_prepared_statements
from . import costing, names
from .context import Target
from .models import IndexProposal
from .verdict import Draft, Rejected, Verdict, rejected

# Expression keys OptiSchema builds from a proposal (the case-insensitive lookups models suggest).
EXPRESSION_FUNCTIONS = frozenset({"lower", "upper"})


def _predicate(t: Table, where: str | None) -> tuple[str, str, str] | None:
    """The one partial-index shape OptiSchema builds: `column = constant`."""
    if where is None or not where.strip():
        return None
    toks = tokens(where)
    shape_ok = (len(toks) == 3 and toks[1].text == "=" and toks[0].kind in ("word", "ident")
                and (toks[2].kind == "number"
                     or (toks[2].kind == "string" and toks[2].text.startswith("'"))
                     or (toks[2].kind == "word" and toks[2].text.lower() in ("true", "false"))))
    if not shape_ok:
        raise Rejected(f"partial-index predicate {where!r} is not of the form column = constant")
    col = names.columns(t, [toks[0].text])[0]
    value = toks[2].text[1:-1].replace("''", "'") if toks[2].kind == "string" else toks[2].text.lower()
    return col, "=", value


def _key(t: Table, text: str) -> KeyPart:
    """A column, or one of the few expressions built for it: lower(column), upper(column)."""
    toks = tokens(text)
    if len(toks) == 4 and toks[0].kind == "word" and toks[1].text == "(" and toks[3].text == ")":
        func = toks[0].text.lower()
        if func not in EXPRESSION_FUNCTIONS:
            raise Rejected(f"expression key {text!r}: only "
                           f"{' and '.join(f + '(column)' for f in sorted(EXPRESSION_FUNCTIONS))} are built")
        return KeyPart(names.columns(t, [toks[2].text])[0], func=func)
    return KeyPart(names.columns(t, [text])[0])


def candidate(db: PsycopgDatabase, catalog: Catalog, p: IndexProposal) -> tuple[Table, Candidate]:
    if p.method != "btree":
        raise Rejected(f"{p.method} indexes cannot be what-if checked (HypoPG plans btree only)")
    t = names.table(db, catalog, p.table)
    keys = tuple(_key(t, k) for k in p.columns)
    if len(set(keys)) != len(keys):
        raise Rejected("a key is named twice")
    include = names.columns(t, p.include)
    if {k.column for k in keys if k.func is None} & set(include):
        raise Rejected("a column is both a key and an INCLUDE column")
    c = Candidate(t.schema, t.name, keys, _predicate(t, p.where), tuple(include))
    if covered_by_existing(c, t):
        raise Rejected(f"an existing index on {t.schema}.{t.name} already starts with ({', '.join(c.key_sql())})")
    return t, c


def _what_if(db: PsycopgDatabase, planning: senders.Planning, catalog: Catalog, table: Table, c: Candidate,
             targets: list[Target], min_reduction: float) -> tuple[list[dict], int]:
    """Cost of each target without and with the hypothetical index (created, like the
    target is planned, as the target's sender; with it, as the advisor counts it:
    ProbeReads.credited), and whether the index counts for it (the advisor's rule,
    advisor.counts_for); and its estimated size (advisor.index_size)."""
    ident = c.identity()
    per_query: list[dict] = []
    wi = WhatIf(db, planning)
    values = ValueSource(db, [], use_qualstats=False)
    probes = ProbeReads(db, catalog, values,
                        lambda i: hypothetical(wi, values, c, table) if i == ident else None)
    size = 0
    try:
        for t in targets:
            why = single_statement(t.query)
            if why:
                per_query.append({"queryid": t.queryid, "skipped": why})
                continue
            try:
                wi.activate({})
                prepared = costing.prepare(db, wi, t)
                before, plans_before = prepared.cost(wi)
                wi.activate({ident: (c.hypo_ddl(), wi.sender(prepared.name))})
                after = probes.credited(*prepared.cost(wi), probes.cold_extra(plans_before))
                size = index_size(wi, values, c, table, wi.sender(prepared.name))
                uses = wi.uses(ident)
                per_query.append({"queryid": t.queryid, "calls": t.calls, "cost_before": round(before, 2),
                                  "cost_after": round(after, 2), "uses_index": uses,
                                  "reduction_pct": round(100 * (1 - after / before), 1) if before else 0.0,
                                  "counts": uses and counts_for(before, after, plans_before, c, min_reduction),
                                  "parameter_sets": len(prepared.samples) or "generic plan"})
            except Unplannable as e:
                per_query.append({"queryid": t.queryid, "skipped": str(e)})
    finally:
        wi.close()
    return per_query, size


def check(conn: psycopg.Connection, p: IndexProposal, targets: list[Target], min_reduction: float) -> Verdict:
    db = PsycopgDatabase(conn)
    catalog = Catalog(db)
    try:
        t, c = candidate(db, catalog, p)
        with own_prepared_statements(conn), conn.transaction(force_rollback=True), \
                senders.planning(db) as planning:
            per_query, size = _what_if(db, planning, catalog, t, c, targets, min_reduction)
        evidence = {"hypothetical_index": c.hypo_ddl(), "queries": per_query,
                    "min_cost_reduction": min_reduction, "estimated_size_bytes": size}
        served = [q for q in per_query if q.get("counts")]
        if not served:
            raise Rejected(f"no gain: the what-if plan of no statement gets {min_reduction:.0%} cheaper with it"
                           f" (and, where existing indexes serve it, {WELL_SERVED_MIN_SAVING:g} cost units a call)",
                           evidence)
    except Rejected as e:
        return rejected(e)

    taken = {ix.name for ix in t.indexes}
    name = ddl.index_name(c.table, c.name_parts(), c.identity(), taken)
    try:
        spec = c.spec(db, t, name)
    except Unbuildable as e:
        return rejected(Rejected(str(e), evidence))
    saved = sum(q["calls"] * (q["cost_before"] - q["cost_after"]) for q in served)
    best = max(served, key=lambda q: q["reduction_pct"])
    title = (f"Index {c.table}({', '.join(c.key_sql())})"
             + (f" WHERE {c.predicate_sql()}" if c.predicate else "")
             + f" for {len(served)} {'query' if len(served) == 1 else 'queries'}"
             + f" (LLM proposal, what-if cost {best['cost_before']:g} -> {best['cost_after']:g})")
    draft = Draft(
        kind="create_index", key=f"create_index:{c.identity()}", title=title,
        ddl=ddl.create_index(name, c.schema, c.table, c.key_sql(), [ddl.quote_ident(x) for x in c.include],
                             c.predicate_sql()),
        rollback_ddl=ddl.drop_index(c.schema, name),
        queryids=sorted(q["queryid"] for q in served),
        benefit={"queries": served, "cost_saved_per_window": round(saved, 2)},
        evidence=evidence, score=round(saved, 2), table_name=f"{c.schema}.{c.table}", index_name=name,
        estimated_size_bytes=size, index_spec=spec)
    return Verdict(True, f"what-if: cost {best['cost_before']:g} -> {best['cost_after']:g}"
                         f" ({best['reduction_pct']:g}% less) for query {best['queryid']}", evidence, draft)
