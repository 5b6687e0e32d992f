"""advise(): workload -> explained queries -> candidates -> what-if costs -> chosen set,
validated together -> recommendations (create and drop)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from . import ddl, senders, sqltext
from .candidates import Candidate, for_table, usage_by_alias
from .catalog import Catalog, Table
from .db import Database
from .drops import drop_advice
from .indexspec import Unbuildable, existing
from .model import Activity, AdviceResult, Recommendation, Settings, Skipped, WorkloadQuery
from .params import ParamPlan, ValueSource, plan_params
from .plans import PlanFacts, Relation, facts, summary
from .selection import Option, Problem, TableWrites, WriteStmt, greedy, objective, upkeep
from .senders import Sender
from .whatif import Unplannable, WhatIf

_USER_TABLES_SQL = """
SELECT n.nspname AS schema, c.relname AS name
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2"""


@dataclass
class Analysed:
    """One distinct statement text of the workload, explained."""
    key: str                       # WhatIf's key of the statement
    text: str
    sender: Sender                 # the role it is planned as
    queryids: list[int]
    calls: int
    total_ms: float
    rows: int
    types: list[str]
    params: ParamPlan
    facts: PlanFacts
    tables: dict[str, Table] = field(default_factory=dict)     # alias -> table
    base_cost: float = 0.0
    base_plans: list[dict] = field(default_factory=list)


def _group(workload: list[WorkloadQuery]) -> list[tuple[str, list[int], int, float, int]]:
    """Entries with the same text (e.g. parameters bound as int4 and int8) are one statement."""
    groups: dict[str, list] = {}
    for w in workload:
        g = groups.setdefault(" ".join(w.query.split()), [[], 0, 0.0, 0])
        g[0].append(w.queryid)
        g[1] += w.calls
        g[2] += w.total_ms
        g[3] += w.rows
    return sorted(((t, *g) for t, g in groups.items()), key=lambda g: -g[3])


def select_workload(workload: list[WorkloadQuery], s: Settings):
    """(statements to analyse, skipped). Writes are kept whatever their share: they decide
    what index upkeep costs."""
    groups = _group(workload)
    total = sum(g[3] for g in groups) or 1.0
    keep, skipped, reads = [], [], 0
    for text, qids, calls, ms, rows in groups:
        is_write = sqltext.verb(text) in ("INSERT", "UPDATE", "DELETE")
        if calls < s.min_calls:
            skipped += [Skipped(q, f"{calls} calls < min_calls {s.min_calls}") for q in qids]
        elif not is_write and ms / total < s.min_query_share:
            skipped += [Skipped(q, f"{ms / total:.4%} of DB time < min_query_share") for q in qids]
        elif not is_write and reads >= s.max_queries:
            skipped += [Skipped(q, f"beyond max_queries {s.max_queries}") for q in qids]
        else:
            reads += not is_write
            keep.append((text, qids, calls, ms, rows))
    return keep, skipped, total


def advise(db: Database, workload: list[WorkloadQuery], activity: Activity,
           settings: Settings | None = None) -> AdviceResult:
    s = settings or Settings()
    started = time.monotonic()
    keep, skipped, total_ms = select_workload(workload, s)
    catalog = Catalog(db)
    stats: dict = {"queries_in_workload": len(workload), "statements_analysed": 0}
    # Every text is planned as a role that sent it, inside a block that is rolled back.
    with senders.planning(db) as planning:
        wi = WhatIf(db, planning)
        try:
            values = ValueSource(db, [q for k in keep for q in k[1]], s.use_pg_qualstats)
            stats["pg_qualstats"] = values.qualstats
            analysed = _explain_all(wi, catalog, values, keep, s, skipped)
            stats["statements_analysed"] = len(analysed)
            reads = [a for a in analysed if a.facts.write is None]
            writes = _writes(analysed, catalog)
            options, cands, origin = _evaluate(wi, values, reads, s, started, stats)
            problem = Problem({a.key: a.calls for a in reads}, {a.key: a.base_cost for a in reads}, writes,
                              s.write_cost_per_entry, s.size_cost_per_mb, s.max_indexes_per_table,
                              s.max_new_indexes, s.min_workload_gain)
            picked = [ident for ident, _ in greedy(problem, options)]
            final, joint = _validate(wi, reads, problem, options, cands, origin, picked)
            recs = []
            for i in final:
                try:
                    recs.append(_create_rec(cands[i], options, final, joint, reads, problem, total_ms, catalog))
                except Unbuildable as e:
                    stats.setdefault("unbuildable", []).append(f"{i}: {e}")
            recs.sort(key=lambda r: -r.score)
            recs += _drop_recs(db, catalog, activity, s, writes)
            stats["candidates"] = len(cands)
            stats["workload_cost_before"] = round(_workload_cost(reads, writes, s), 2)
            stats["workload_cost_after"] = round(objective(problem, _joint_options(options, final, joint), final)
                                                 + _workload_cost([], writes, s), 2)
        finally:
            wi.close()
    if planning.findings:
        # the code of a statement's sender left session state behind (and it was repaired)
        stats["session_state_repaired"] = planning.findings
    stats.update(explain_calls=wi.explain_calls, hypo_indexes=wi.hypo_created, sender_calls=planning.calls,
                 elapsed_ms=round((time.monotonic() - started) * 1000, 1))
    return AdviceResult(recs, skipped, stats)


def _explain_all(wi: WhatIf, catalog: Catalog, values: ValueSource, keep, s: Settings,
                 skipped: list[Skipped]) -> list[Analysed]:
    out = []
    who = senders.resolve(wi.db, {k[0]: k[1] for k in keep})
    for text, qids, calls, ms, rows in keep:
        reason = sqltext.single_statement(text)
        if reason is None and who[text].sender is None:
            reason = f"not planned: {who[text].reason}"
        if reason is None:
            try:
                out.append(_explain_one(wi, catalog, values, sqltext.strip_semicolon(text), who[text].sender,
                                        qids, calls, ms, rows, s))
                continue
            except Unplannable as e:
                reason = f"cannot be re-planned: {e}"
        skipped += [Skipped(q, reason) for q in qids]
    return out


def _explain_one(wi, catalog, values, text, sender, qids, calls, ms, rows, s) -> Analysed:
    name, types = wi.prepare(text, sender)
    generic_cost, generic_plans = wi.cost(name, [])
    f = facts(generic_plans[0])
    tables = {}
    for alias, rel in f.relations.items():
        t = catalog.table(rel.schema, rel.name)
        if t is not None:
            tables[alias] = t
    pp = plan_params(types, f, {a: t.oid for a, t in tables.items()}, sqltext.limit_params(text),
                     rows / max(calls, 1), values, qids, s.param_samples, sender.oid)
    a = Analysed(name, text, sender, qids, calls, ms, rows, types, pp, f, tables, generic_cost, generic_plans)
    if pp.samples and f.write is None:
        try:
            a.base_cost, a.base_plans = wi.cost(name, pp.samples)
        except Unplannable:
            a.params = ParamPlan([], pp.fixed, pp.source)      # the generic plan it is
    return a


def _writes(analysed: list[Analysed], catalog: Catalog) -> dict[str, TableWrites]:
    out: dict[str, TableWrites] = {}
    for a in analysed:
        if a.facts.write is None:
            continue
        op, rel = a.facts.write
        t = catalog.table(rel.schema, rel.name)
        if t is None:
            continue
        key = f"{t.schema}.{t.name}"
        if key not in out:
            out[key] = TableWrites([(ix.columns, 1.0) for ix in t.indexes if ix.valid])
        out[key].stmts.append(WriteStmt(op, a.calls, a.rows / max(a.calls, 1),
                                        frozenset(sqltext.update_set_columns(a.text))))
    return out


def _workload_cost(reads: list[Analysed], writes: dict[str, TableWrites], s: Settings) -> float:
    return sum(a.calls * a.base_cost for a in reads) + \
        sum(upkeep(tw, [], s.write_cost_per_entry) for tw in writes.values())


def _fraction(values: ValueSource, t: Table, column: str, value: str) -> float:
    """Share of the table's rows with column = value, from pg_stats (1.0 if unknown)."""
    st = values.stats(Relation(t.schema, t.name), column)
    if st is None:
        return 1.0
    if value in st.mcv:
        return st.freqs[st.mcv.index(value)]
    rest = 1.0 - sum(st.freqs)
    return min(rest, st.freqs[-1]) if st.freqs else rest


def _evaluate(wi: WhatIf, values: ValueSource, reads: list[Analysed], s: Settings, started: float,
              stats: dict) -> tuple[dict[str, Option], dict[str, Candidate], dict[str, Sender]]:
    """Each candidate alone, over every read statement that uses a column of its leading key.
    Also returns, per candidate, the sender of the first statement it came from: its
    hypothetical index is created as that role."""
    tables: dict[str, Table] = {}
    cands: dict[str, Candidate] = {}
    origin: dict[str, Sender] = {}
    uses: dict[str, dict[str, set[str]]] = {}      # query key -> table key -> columns used
    for a in reads:
        for alias, u in usage_by_alias(a.facts, a.params.fixed).items():
            t = a.tables.get(alias)
            if t is None:
                continue
            tkey = f"{t.schema}.{t.name}"
            tables[tkey] = t
            uses.setdefault(a.key, {}).setdefault(tkey, set()).update(
                u.eq + u.ordered + u.like + [c for _, c in u.exprs])
            ok = lambda col, val, t=t: _fraction(values, t, col, val) <= s.partial_max_fraction
            for c in for_table(t, u, s.max_key_columns, ok):
                cands.setdefault(c.identity(), c)
                origin.setdefault(c.identity(), a.sender)
    options: dict[str, Option] = {}
    for ident, c in sorted(cands.items()):
        if time.monotonic() - started > s.time_budget_s:
            stats["time_budget_exhausted"] = True
            break
        tkey = f"{c.schema}.{c.table}"
        lead = c.keys[0].column
        targets = [a for a in reads if lead in uses.get(a.key, {}).get(tkey, set())]
        if not targets:
            continue
        try:
            wi.activate({ident: (c.hypo_ddl(), origin[ident])})
        except Unplannable:
            continue
        costs = {}
        results = wi.costs([(a.key, a.params.samples) for a in targets])
        for a in targets:
            r = results[a.key]
            if not isinstance(r, Unplannable) and ident in r[2] and r[0] <= a.base_cost * (1 - s.min_cost_reduction):
                costs[a.key] = r[0]
        if costs:
            share = _fraction(values, tables[tkey], *c.predicate) if c.predicate else 1.0
            options[ident] = Option(ident, tkey, frozenset(c.columns()), share, wi.size(ident), costs)
    for o in options.values():
        o.extends = frozenset(x for x in options if cands[o.ident].extends(cands[x]))
    wi.activate({})
    return options, cands, origin


def _validate(wi: WhatIf, reads: list[Analysed], p: Problem, options: dict[str, Option],
              cands: dict[str, Candidate], origin: dict[str, Sender], picked: list[str]):
    """Create the chosen set together and re-cost every affected statement; then drop, one at a
    time, any index whose removal costs less than min_gain of the objective (interactions the single-index costs
    could not see). Returns (final idents, {ident: {query key: cost}} measured together)."""
    final = list(picked)
    while True:
        joint = _joint_costs(wi, reads, options, cands, origin, final)
        current = objective(p, _joint_options(options, final, joint), final)
        weakest = None
        for ident in final:
            rest = [x for x in final if x != ident]
            loss = objective(p, _joint_options(options, rest, _joint_costs(wi, reads, options, cands, origin, rest)), rest) - current
            if loss < p.min_gain * current and (weakest is None or loss < weakest[0]):
                weakest = (loss, ident)
        if weakest is None:
            return final, joint
        final.remove(weakest[1])


def _joint_costs(wi: WhatIf, reads: list[Analysed], options: dict[str, Option], cands: dict[str, Candidate],
                 origin: dict[str, Sender], chosen: list[str]):
    """{ident: {query key: cost}}: with all `chosen` active, each statement's cost is credited
    to the chosen indexes its plans use."""
    wi.activate({i: (cands[i].hypo_ddl(), origin[i]) for i in chosen})
    tables = {options[i].table for i in chosen}
    out: dict[str, dict[str, float]] = {i: {} for i in chosen}
    affected = [a for a in reads if any(f"{t.schema}.{t.name}" in tables for t in a.tables.values())]
    results = wi.costs([(a.key, a.params.samples) for a in affected])
    for a in affected:
        r = results[a.key]
        if isinstance(r, Unplannable):
            continue
        for i in chosen:
            if i in r[2]:
                out[i][a.key] = r[0]
    return out


def _joint_options(options: dict[str, Option], chosen: list[str], joint) -> dict[str, Option]:
    return {i: Option(i, options[i].table, options[i].columns, options[i].share, options[i].size_bytes,
                      joint.get(i, {})) for i in chosen}


def _create_rec(c: Candidate, options: dict[str, Option], final: list[str], joint, reads: list[Analysed],
                p: Problem, total_ms: float, catalog: Catalog) -> Recommendation:
    o = options[c.identity()]
    t = catalog.table(c.schema, c.table)
    served = [a for a in reads if a.key in joint.get(o.ident, {})]
    taken = {ix.name for tb in catalog.tables() if tb.schema == c.schema for ix in tb.indexes}
    parts = [k.name_part() for k in c.keys] + (["where", c.predicate[0], c.predicate[1]] if c.predicate else [])
    name = ddl.index_name(c.table, parts, c.identity(), taken)
    spec = c.spec(catalog.db, t, name)
    per_query, saved = [], 0.0
    for a in served:
        after = joint[o.ident][a.key]
        saved += a.calls * (a.base_cost - after)
        per_query.append({"queryid": a.queryids[0], "queryids": a.queryids, "calls": a.calls,
                          "cost_before": round(a.base_cost, 2), "cost_after": round(after, 2),
                          "reduction_pct": round(100 * (1 - after / a.base_cost), 1) if a.base_cost else 0.0})
    tw = p.writes.get(o.table)
    others = [(options[i].columns, options[i].share) for i in final
              if i != o.ident and options[i].table == o.table]
    overhead = 0.0
    if tw is not None:
        overhead = upkeep(tw, others + [(o.columns, o.share)], p.write_cost) - upkeep(tw, others, p.write_cost)
    share = sum(a.total_ms for a in served) / total_ms if total_ms else 0.0
    cols = ", ".join(c.key_sql())
    title = f"Index {c.table}({cols})" + (f" WHERE {c.predicate_sql()}" if c.predicate else "") + \
        f" for {len(served)} {'query' if len(served) == 1 else 'queries'}, {share:.0%} of DB time"
    evidence = {"hypothetical_index": c.hypo_ddl(), "queries": [
        {"queryid": a.queryids[0], "before": summary(a.base_plans[0]) if a.base_plans else [],
         "parameters": a.params.source} for a in served],
        "statistics": {"reltuples": t.reltuples if t else None, "size_estimate": "hypopg_relation_size"}}
    write = {"cost_per_window": round(overhead, 2), "write_statements": [
        {"op": w.op, "calls": w.calls, "rows_per_call": round(w.rows_per_call, 2),
         "breaks_hot": bool(w.op == "Update" and w.set_columns & o.columns)} for w in (tw.stmts if tw else [])]}
    return Recommendation(
        kind="create_index", key=f"create_index:{c.identity()}", title=title,
        ddl=ddl.create_index(name, c.schema, c.table, c.key_sql(), [ddl.quote_ident(x) for x in c.include],
                             c.predicate_sql()),
        rollback_ddl=ddl.drop_index(c.schema, name), table=f"{c.schema}.{c.table}", index_name=name,
        queryids=sorted({q for a in served for q in a.queryids}),
        benefit={"queries": per_query, "cost_saved_per_window": round(saved, 2), "db_time_share": round(share, 4),
                 "write_overhead_cost": round(overhead, 2)},
        estimated_size_bytes=o.size_bytes, write_overhead=write, evidence=evidence, score=round(saved - overhead, 2),
        index_spec=spec)


def _drop_recs(db: Database, catalog: Catalog, activity: Activity, s: Settings,
               writes: dict[str, TableWrites]) -> list[Recommendation]:
    tables = [t for r in db.query(_USER_TABLES_SQL) if (t := catalog.table(r["schema"], r["name"])) is not None]
    scans = {oid: ia.idx_scan for oid, ia in activity.indexes.items()}
    out = []
    for d in drop_advice(tables, scans, activity.window_seconds, s.drop_unused_min_window_s):
        t, ix = d.table, d.index
        tw = writes.get(f"{t.schema}.{t.name}")
        saved = 0.0
        if tw is not None:
            rest = TableWrites([(x.columns, 1.0) for x in t.indexes if x.valid and x.oid != ix.oid], tw.stmts)
            saved = upkeep(tw, [], s.write_cost_per_entry) - upkeep(rest, [], s.write_cost_per_entry)
        out.append(Recommendation(
            kind="drop_index", key=f"drop_index:{t.schema}.{ix.name}",
            title=f"Drop {d.reason} index {t.schema}.{ix.name} on {t.name} (frees {_mb(ix.size_bytes)})",
            ddl=ddl.drop_index(t.schema, ix.name), rollback_ddl=ddl.concurrent_indexdef(ix.definition),
            table=f"{t.schema}.{t.name}", index_name=ix.name, queryids=[],
            benefit={"freed_bytes": ix.size_bytes, "write_cost_saved_per_window": round(saved, 2)},
            estimated_size_bytes=ix.size_bytes, write_overhead={"cost_per_window": round(-saved, 2)},
            evidence={"reason": d.reason, "detail": d.detail, "definition": ix.definition,
                      "idx_scan_in_window": scans.get(ix.oid), "window_seconds": activity.window_seconds},
            score=round(saved, 2), index_spec=existing(db, ix.oid)))
    return out


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{max(n, 8192) // 1024} kB"
