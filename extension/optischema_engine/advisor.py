"""advise(): workload -> explained queries -> candidates -> what-if costs -> chosen set,
validated together -> recommendations (create and drop)."""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from . import ddl, indexsize, running, senders, sqltext
from .candidates import FEW_VALUES_FRACTION, Candidate, covered_by_existing, for_table, merged, usage_by_alias
from .catalog import Catalog, Table
from .db import Database
from .drops import drop_advice
from .indexspec import Unbuildable, existing
from .model import Activity, AdviceResult, Recommendation, Settings, Skipped, WorkloadQuery
from .params import ParamPlan, ValueSource, plan_params
from .plans import PlanFacts, Relation, facts, summary, walk
from .probes import Hypothetical, ProbeReads
from .selection import IndexWrites, Option, Problem, TableWrites, WriteStmt, greedy, objective, upkeep, upkeep_delta
from .senders import Sender
from .whatif import Unplannable, WhatIf

# A statement that reaches a table only through existing indexes is well served there: a
# new index counts for it only if it saves at least this much per call (25 random page reads
# at the default random_page_cost). Below that the estimate is mostly heap pages of rows
# filtered out, which the index scan it has already finds in the cache: the cost model's
# noise, not a gain a DBA would build an index for.
WELL_SERVED_MIN_SAVING = 100.0
# The share of a plan's cost its new indexes must make it dearer built (ProbeReads.built_cost),
# and one cost unit at least, for the advisor to look for the plan the planner would take
# instead (_as_built): a lookup's B-tree descent (0.375) changes no plan.
REPLAN_SHARE = 0.01
INDEX_SCANS = {"Index Scan", "Index Only Scan", "Bitmap Heap Scan"}
COMPANIONS = 3                # per statement and table read whole, the candidates costed again (_companions)

_USER_TABLES_SQL = """
SELECT n.nspname AS schema, c.relname AS name
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
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
    base_extra: float = 0.0        # what base_plans' index probes cost more with a cold cache (probes.py)
    sampled: str = ""              # its text is an execution's, constants included: where from (running.py)
    alone: dict[str, float] = field(default_factory=dict)     # candidate -> what its plans cost with it alone

    def credited(self, cost: float, plans: list[dict], probes: ProbeReads) -> float:
        """What this statement's plans with new indexes, of mean cost `cost`, count at."""
        return probes.credited(cost, plans, self.base_extra)


def _group(workload: list[WorkloadQuery]) -> list[tuple[str, list[int], int, float, int]]:
    """Entries with the same text (e.g. parameters bound as int4 and int8) are one statement.
    Heaviest first, and in the same order on every run."""
    groups: dict[str, list] = {}
    for w in workload:
        g = groups.setdefault(" ".join(w.query.split()), [[], 0, 0.0, 0])
        g[0].append(w.queryid)
        g[1] += w.calls
        g[2] += w.total_ms
        g[3] += w.rows
    return sorted(((t, *g) for t, g in groups.items()), key=lambda g: (-g[3], g[0]))


def select_workload(workload: list[WorkloadQuery], s: Settings):
    """(statements to analyse, skipped, statement time of the window, what was left out:
    {statements, time_ms}). Reads are analysed heaviest first until they cover
    statement_coverage of the read time, max_queries at most; writes are kept whatever
    their time: they decide what index upkeep costs. Text that cannot be planned (a utility
    statement) is no part of the read time."""
    groups = _group(workload)
    total = sum(g[3] for g in groups) or 1.0
    unplannable = {g[0]: sqltext.single_statement(g[0]) for g in groups}
    is_write = {g[0]: sqltext.verb(g[0]) in ("INSERT", "UPDATE", "DELETE") for g in groups}
    read_ms = sum(g[3] for g in groups if not is_write[g[0]] and g[2] >= s.min_calls and unplannable[g[0]] is None)
    keep, skipped, reads, covered = [], [], 0, 0.0
    left = {"statements": 0, "time_ms": 0.0}
    for text, qids, calls, ms, rows in groups:
        if calls < s.min_calls:
            skipped += [Skipped(q, f"{calls} calls < min_calls {s.min_calls}") for q in qids]
            continue
        if is_write[text] and calls < s.min_write_calls:
            skipped += [Skipped(q, f"a write run {calls} time(s) < min_write_calls {s.min_write_calls}: "
                                   "not charged as recurring index upkeep") for q in qids]
            continue
        if unplannable[text] is not None:
            skipped += [Skipped(q, unplannable[text]) for q in qids]
            continue
        if not is_write[text]:
            why = None
            if covered >= s.statement_coverage * read_ms:
                why = f"beyond statement_coverage {s.statement_coverage:g}: the heavier statements " \
                      f"cover {covered / read_ms:.1%} of read time"
            elif reads >= s.max_queries:
                why = f"beyond max_queries {s.max_queries}"
            if why is not None:
                skipped += [Skipped(q, why) for q in qids]
                left["statements"] += 1
                left["time_ms"] += ms
                continue
            reads += 1
            covered += ms
        keep.append((text, qids, calls, ms, rows))
    return keep, skipped, total, left


def advise(db: Database, workload: list[WorkloadQuery], activity: Activity,
           settings: Settings | None = None) -> AdviceResult:
    s = settings or Settings()
    started = time.monotonic()
    sampled = {w.queryid for w in workload if w.sampled}
    keep, skipped, total_ms, left = select_workload(workload, s)
    catalog = Catalog(db)
    stats: dict = {"queries_in_workload": len(workload), "statements_analysed": 0,
                   "statements_left_out": left["statements"], "time_left_out_ms": round(left["time_ms"], 1),
                   "time_left_out_share": round(left["time_ms"] / total_ms, 4)}
    # Every text is planned as a role that sent it, inside a block that is rolled back.
    with senders.planning(db) as planning:
        wi = WhatIf(db, planning)
        try:
            values = ValueSource(db, [q for k in keep for q in k[1]], s.use_pg_qualstats)
            stats["pg_qualstats"] = values.qualstats
            phase = _Phases(started)
            analysed = _explain_all(wi, catalog, values, keep, s, skipped)
            phase.done("explain")
            stats["statements_analysed"] = len(analysed)
            for a in analysed:
                if not a.sampled and not sampled.isdisjoint(a.queryids):
                    a.sampled = running.SEEN_RUNNING
            stats["planned_text"] = _planned_texts(wi, analysed)
            reads = [a for a in analysed if a.facts.write is None]
            writes = _writes(analysed, catalog, values)
            group_of = _table_groups(reads)
            options, cands, origin, probes, targets = _evaluate(wi, catalog, values, reads, s, started, stats, group_of)
            phase.done("evaluate")
            problem = Problem({a.key: a.calls for a in reads}, {a.key: a.base_cost for a in reads}, writes,
                              s.write_cost_per_entry, s.size_cost_per_mb, s.max_indexes_per_table,
                              s.min_index_gain, s.index_budget or None)
            taken = greedy(problem, options)
            if _companions(wi, catalog, values, options, cands, origin, [i for i, _ in taken], targets, probes,
                           group_of, s, started, stats):
                taken = greedy(problem, options, taken)
            picked = [ident for ident, _ in taken]
            phase.done("select")
            final, joint = _validate(wi, reads, problem, options, cands, origin, picked, group_of, probes)
            phase.done("validate")
            stats["phase_ms"] = phase.ms
            by_key = {a.key: a for a in reads}
            recs = []
            names = set_names([cands[i] for i in final], catalog)
            for i in final:
                try:
                    recs.append(_create_rec(cands[i], names[cands[i]], options, final, joint, by_key, problem,
                                            total_ms, catalog))
                except Unbuildable as e:
                    stats.setdefault("unbuildable", []).append(f"{i}: {e}")
            recs.sort(key=lambda r: -r.score)
            # the set's total size, in every row recommend() returns for it too
            stats["new_indexes"] = {"count": len(recs), "bytes": sum(r.estimated_size_bytes for r in recs),
                                    "budget_bytes": int(s.index_budget) or None}
            for r in recs:
                r.benefit["new_indexes"] = stats["new_indexes"]
            recs += _drop_recs(db, catalog, activity, s, writes, values)
            stats["candidates"] = len(cands)
            stats["workload_cost_before"] = round(_workload_cost(reads, writes, s), 2)
            stats["workload_cost_after"] = round(objective(problem, _joint_options(options, final, joint), final)
                                                 + _workload_cost([], writes, s), 2)
        finally:
            wi.close()
    if planning.findings:
        # the code of a statement's sender left session state behind (and it was repaired)
        stats["session_state_repaired"] = planning.findings
    stats.update(explain_calls=wi.explain_calls, cache_hits=wi.cache_hits, hypo_indexes=wi.hypo_created,
                 sender_calls=planning.calls,
                 elapsed_ms=round((time.monotonic() - started) * 1000, 1))
    skipped = [Skipped(k.queryid, running.NOT_PLANNED) if k.queryid in sampled and k.reason.startswith("cannot be")
               else k for k in skipped]
    return AdviceResult(recs, skipped, stats)


class _Phases:
    """Milliseconds each phase of advise() took (analyses.stats.phase_ms)."""

    def __init__(self, started: float):
        self.last, self.ms = started, {}

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.ms[name] = round((now - self.last) * 1000, 1)
        self.last = now


def _explain_all(wi: WhatIf, catalog: Catalog, values: ValueSource, keep, s: Settings,
                 skipped: list[Skipped]) -> list[Analysed]:
    """Every statement prepared, planned generically, then costed with its parameter samples:
    each step a few calls per sender, whatever the number of statements."""
    who = senders.resolve(wi.db, {k[0]: k[1] for k in keep})
    todo = []
    for k in keep:                      # (select_workload() kept only single plannable statements)
        if who[k[0]].sender is None:
            skipped += [Skipped(q, f"not planned: {who[k[0]].reason}") for q in k[1]]
        else:
            todo.append(k)
    prepared = wi.prepare_many([(sqltext.strip_semicolon(k[0]), who[k[0]].sender) for k in todo])
    sampled_kind = _plan_sampled_texts(wi, todo, prepared, who, s)
    ok = []
    for k, r in zip(todo, prepared):
        if isinstance(r, Unplannable):
            skipped += [Skipped(q, f"cannot be re-planned: {r}") for q in k[1]]
        else:
            ok.append((k, r))
    generic = wi.costs([(key, []) for _, (key, _) in ok])
    out = []
    for (text, qids, calls, ms, rows), (key, types) in ok:
        g = generic[key]
        if isinstance(g, Unplannable):
            # an error planning a sampled text could quote its constants
            why = running.NOT_PLANNED if key in sampled_kind else f"cannot be re-planned: {g}"
            skipped += [Skipped(q, why) for q in qids]
            continue
        a = _explain_one(wi, catalog, values, key, types, g[0], g[1], qids, calls, ms, rows, s)
        a.sampled = sampled_kind.get(key, "")
        wi.set_scope(key, {f"{t.schema}.{t.name}" for t in a.tables.values()})
        out.append(a)
    _cost_executions(wi, catalog, values, out, s)
    sampled = [a for a in out if a.params.samples and a.facts.write is None]
    costs = wi.costs([(a.key, a.params.samples) for a in sampled])
    for a in sampled:
        r = costs[a.key]
        if isinstance(r, Unplannable):
            a.params = ParamPlan([], a.params.fixed, a.params.source)      # the generic plan it is
        else:
            a.base_cost, a.base_plans = r[0], r[1]
    return out


def _cost_executions(wi: WhatIf, catalog: Catalog, values: ValueSource, out: list[Analysed], s: Settings) -> None:
    """A read statement with a parameter no value can be given to (`d < $1::date + $2::interval`:
    pg_qualstats saw only the sum) would be costed with the generic plan's guesses; it is
    costed with the text of one of its executions instead (running.sampled_texts(), its
    constants included), as its sender, where there is one: `out` is updated in place."""
    todo = [a for a in out if a.types and not a.params.samples and a.facts.write is None and not a.sampled]
    texts = running.sampled_texts(wi.db, [q for a in todo for q in a.queryids], s.use_pg_qualstats)
    alts = [(a, alt) for a in todo
            if (alt := next((texts[q] for q in a.queryids if q in texts
                             and sqltext.verb(texts[q][0]) == sqltext.verb(a.text)), None)) is not None]
    prepared = wi.prepare_many([(sqltext.strip_semicolon(text), a.sender) for a, (text, _) in alts])
    ok = [(a, kind, r) for (a, (_, kind)), r in zip(alts, prepared) if not isinstance(r, Unplannable)]
    generic = wi.costs([(key, []) for _, _, (key, _) in ok])
    for a, kind, (key, types) in ok:
        g = generic[key]
        if isinstance(g, Unplannable):
            continue                    # the normalized text's generic plan it stays
        b = _explain_one(wi, catalog, values, key, types, g[0], g[1], a.queryids, a.calls, a.total_ms, a.rows, s)
        b.sampled = kind
        wi.set_scope(key, {f"{t.schema}.{t.name}" for t in b.tables.values()})
        out[out.index(a)] = b


def _plan_sampled_texts(wi: WhatIf, todo, prepared: list, who, s: Settings) -> dict[str, str]:
    """A statement whose normalized text does not prepare, even rewritten, is prepared from
    the text of one of its executions instead (running.sampled_texts()), as its sender:
    `prepared` is updated in place. Returns {statement key: where its text comes from}."""
    failed = [n for n, r in enumerate(prepared) if isinstance(r, Unplannable)]
    texts = running.sampled_texts(wi.db, [q for n in failed for q in todo[n][1]], s.use_pg_qualstats)
    retry = []
    for n in failed:
        text, qids = todo[n][0], todo[n][1]
        alt = next((texts[q] for q in qids if q in texts and sqltext.verb(texts[q][0]) == sqltext.verb(text)), None)
        if alt is not None:
            retry.append((n, alt))
    again = wi.prepare_many([(sqltext.strip_semicolon(t), who[todo[n][0]].sender) for n, (t, _) in retry])
    kinds = {}
    for (n, (_, kind)), r in zip(retry, again):
        if not isinstance(r, Unplannable):
            prepared[n] = r
            kinds[r[0]] = kind
    return kinds


def _explain_one(wi, catalog, values, name, types, generic_cost, generic_plans, qids, calls, ms, rows, s) -> Analysed:
    """The statement's plan facts and parameter samples, from its generic plan."""
    text = wi.planned(name).text
    sender = wi.sender(name)
    f = facts(generic_plans[0])
    tables, scanned = {}, {}
    names = sqltext.identifiers(text)
    for alias, rel in f.relations.items():
        t = catalog.table(rel.schema, rel.name)
        if t is not None:
            scanned[alias] = t.oid                  # a partition's values are its own
            tables[alias] = _partitioned_parent(catalog, t, names)
    pp = plan_params(types, f, scanned, sqltext.limit_params(text),
                     rows / max(calls, 1), values, qids, s.param_samples, sender.oid, wi.planned(name).given)
    return Analysed(name, text, sender, qids, calls, ms, rows, types, pp, f, tables, generic_cost, generic_plans)


def _partitioned_parent(catalog: Catalog, t: Table, names: set[str]) -> Table:
    """The table an index for a scan of partition `t` belongs on: the farthest partitioned
    ancestor the statement names (an index there is built on every partition, the ones
    added later too); `t` itself when the statement names none (it reads the partition)."""
    for schema, name in reversed(t.ancestors):
        if name in names and (parent := catalog.table(schema, name)) is not None:
            return parent
    return t


def index_size(wi: WhatIf, values: ValueSource, c: Candidate, t: Table, sender: Sender) -> int:
    """Candidate c's estimated size (its hypothetical index is active): indexsize.py's model
    where pg_stats tells (a partial index holds its predicate's share of the rows), else
    HypoPG's estimate. HypoPG sizes an index on a partitioned
    table from that table's own row count, which only an ANALYZE of it sets (autovacuum
    analyzes the partitions only): until then, its partitions' indexes, summed. The
    advisor and the LLM's index check both size by it."""
    modelled = indexsize.estimate(c, t, values, _share(values, c, t))
    if modelled is not None:
        return modelled
    if not t.partitioned or t.reltuples > 0:
        return wi.size(c.identity())
    return wi.measure([replace(c, schema=schema, table=name).hypo_ddl() for schema, name in t.leaves], sender)


def hypothetical(wi: WhatIf, values: ValueSource, c: Candidate, t: Table) -> Hypothetical:
    """Candidate c on table t (its hypothetical index created in this run) as ProbeReads
    prices its plans built. The advisor and the LLM's index check both describe it so."""
    share = _share(values, c, t)
    hypo = wi.size(c.identity()) / indexsize.PAGE
    built = indexsize.estimate(c, t, values, share)
    return Hypothetical(c.keys[0].column if c.keys[0].func is None else None, max(t.reltuples, 0.0) * share,
                        hypo, built / indexsize.PAGE if built else hypo)


def _writes(analysed: list[Analysed], catalog: Catalog, values: ValueSource) -> dict[str, TableWrites]:
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
            out[key] = TableWrites(_existing_writes(values, t))
        out[key].stmts.append(WriteStmt(op, a.calls, a.rows / max(a.calls, 1),
                                        frozenset(sqltext.update_set_columns(a.text))))
    return out


def _existing_writes(values: ValueSource, t: Table, but: int | None = None) -> list[IndexWrites]:
    """The table's valid indexes (but the one of oid `but`) as its writes pay for them."""
    return [IndexWrites(ix.columns, 1.0, _appends(values, t, ix.keys[0] if ix.keys else ""))
            for ix in t.indexes if ix.valid and ix.oid != but]


def _appends(values: ValueSource, t: Table, column: str) -> bool:
    """Whether an INSERT's entry in an index led by `column` goes at its end: the column's
    values follow the table's physical order (a serial, an insertion time), or no statistics
    say otherwise. An expression or a column of random position (an id of another table)
    lands anywhere."""
    if column not in t.columns:
        return False
    st = values.stats(Relation(t.schema, t.name), column)
    return st is None or st.correlation is None or st.correlation >= 0.9


def _few_values(values: ValueSource, t: Table, column: str) -> bool:
    st = values.stats(Relation(t.schema, t.name), column)
    f = st.mean_fraction(t.reltuples) if st is not None else None
    return f is not None and f >= FEW_VALUES_FRACTION


def _workload_cost(reads: list[Analysed], writes: dict[str, TableWrites], s: Settings) -> float:
    return sum(a.calls * a.base_cost for a in reads) + \
        sum(upkeep(tw, [], s.write_cost_per_entry) for tw in writes.values())


def _fraction(values: ValueSource, t: Table, column: str, op: str, value: str) -> float:
    """Share of the table's rows with `column op value` (op '=' or '<>'), from pg_stats
    (1.0 if unknown)."""
    st = values.stats(Relation(t.schema, t.name), column)
    if st is None:
        return 1.0
    if value in st.mcv:
        equal = st.freqs[st.mcv.index(value)]
    else:
        rest = 1.0 - sum(st.freqs)
        equal = min(rest, st.freqs[-1]) if st.freqs else rest
    # NULLs are neither equal nor unequal
    return equal if op == "=" else max(0.0, 1.0 - equal - st.null_frac)


def _share(values: ValueSource, c: Candidate, t: Table) -> float:
    """The share of table t's rows candidate c holds: its predicate's, 1 without one."""
    return _fraction(values, t, *c.predicate) if c.predicate else 1.0


def _table_key(t: Table) -> str:
    return f"{t.schema}.{t.name}"


def _table_groups(reads: list[Analysed]) -> dict[str, str]:
    """Table -> its group: tables read by one statement are in one group. Indexes in
    different groups cannot change each other's value (no statement sees both)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a in reads:
        keys = sorted({_table_key(t) for t in a.tables.values()})
        for k in keys[1:]:
            ra, rb = find(keys[0]), find(k)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        if keys:
            find(keys[0])
    return {t: find(t) for t in parent}


def _evaluate(wi: WhatIf, catalog: Catalog, values: ValueSource, reads: list[Analysed], s: Settings, started: float,
              stats: dict, group_of: dict[str, str]) \
        -> tuple[dict[str, Option], dict[str, Candidate], dict[str, Sender], ProbeReads]:
    """Each candidate alone, over every read statement that uses a column of its leading key
    (or, where none does, of its predicate: a partial index keyed by the primary key).
    Candidates of different table groups cannot meet in a statement: each round costs one
    candidate of every group at once. Also returns, per candidate, the sender of the first
    statement it came from: its hypothetical index is created as that role; and the
    ProbeReads that credits the statements' plans with the candidates (Analysed.credited)."""
    tables: dict[str, Table] = {}
    cands: dict[str, Candidate] = {}
    origin: dict[str, Sender] = {}
    uses: dict[str, dict[str, set[str]]] = {}      # query key -> table key -> columns used
    for a in reads:
        # one execution's constants are no predicate a partial index could rely on
        for alias, u in usage_by_alias(a.facts, a.params.fixed, constants_fixed=not a.sampled).items():
            t = a.tables.get(alias)
            if t is None:
                continue
            tkey = _table_key(t)
            tables[tkey] = t
            uses.setdefault(a.key, {}).setdefault(tkey, set()).update(
                u.eq + u.ordered + u.like + [c for _, c in u.exprs])
            ok = lambda col, op, val, t=t: _fraction(values, t, col, op, val) <= s.partial_max_fraction
            few = lambda col, t=t: _few_values(values, t, col)
            for c in for_table(t, u, s.max_key_columns, ok, few):
                cands.setdefault(c.identity(), c)
                origin.setdefault(c.identity(), a.sender)
    for c, base in sorted(merged(list(cands.values())).items(), key=lambda m: m[0].identity()):
        if c.identity() not in cands and not covered_by_existing(c, tables[f"{c.schema}.{c.table}"]):
            cands[c.identity()] = c
            origin[c.identity()] = origin[base.identity()]      # its key and predicate are base's
    known: dict[str, Hypothetical] = {}

    def described(ident: str) -> Hypothetical | None:
        if ident not in cands:
            return None
        if ident not in known:
            c = cands[ident]
            known[ident] = hypothetical(wi, values, c, tables[f"{c.schema}.{c.table}"])
        return known[ident]
    probes = ProbeReads(wi.db, catalog, values, described)
    for a in reads:
        a.base_extra = probes.cold_extra(a.base_plans)
    users: dict[tuple[str, str], list[Analysed]] = {}     # (table key, column) -> statements using it
    for a in reads:
        for tkey, cols in uses.get(a.key, {}).items():
            for col in cols:
                users.setdefault((tkey, col), []).append(a)
    targets: dict[str, list[Analysed]] = {}
    for ident, c in sorted(cands.items()):
        tkey = f"{c.schema}.{c.table}"
        targets[ident] = users.get((tkey, c.keys[0].column), []) or \
            (users.get((tkey, c.predicate[0]), []) if c.predicate else [])
    options: dict[str, Option] = {}
    rounds = _Rounds(wi, cands, origin, {i: t for i, t in targets.items() if t}, group_of, [], started, s, stats)
    for ident, planned in rounds:
        c = cands[ident]
        costs = {}
        for a, res in planned:
            if isinstance(res, Unplannable):
                continue
            if ident not in res[2]:
                a.alone[ident] = a.base_cost                # a plan without it
                continue
            after = a.alone[ident] = a.credited(res[0], res[1], probes)
            if counts_for(a.base_cost, after, a.base_plans, c, s.min_cost_reduction):
                costs[a.key] = after
        if costs:
            options[ident] = _option(wi, values, c, tables[f"{c.schema}.{c.table}"], origin[ident], costs)
    stats["evaluation_rounds"] = rounds.count
    _extends(options, cands)
    wi.activate({})
    return options, cands, origin, probes, targets


class _Rounds:
    """The candidates of `targets` costed for their statements there, with the indexes
    `beside` active too. Candidates of different table groups cannot meet in a statement:
    each round costs one candidate of every group at once, until the time budget runs out.
    Iterates (candidate, [(statement, its what-if result)]); `count` is the rounds planned."""

    def __init__(self, wi: WhatIf, cands: dict[str, Candidate], origin: dict[str, Sender],
                 targets: dict[str, list[Analysed]], group_of: dict[str, str], beside: list[str], started: float,
                 s: Settings, stats: dict):
        self.queues: dict[str, list[str]] = {}
        for ident in sorted(targets):
            tkey = f"{cands[ident].schema}.{cands[ident].table}"
            self.queues.setdefault(group_of.get(tkey, tkey), []).append(ident)
        self.count = max((len(q) for q in self.queues.values()), default=0)
        self.wi, self.cands, self.origin, self.targets, self.beside = wi, cands, origin, targets, beside
        self.started, self.s, self.stats = started, s, stats

    def __iter__(self) -> Iterator[tuple[str, list[tuple[Analysed, object]]]]:
        for r in range(self.count):
            if time.monotonic() - self.started > self.s.time_budget_s:
                self.stats["time_budget_exhausted"] = True
                return
            batch = [q[r] for q in self.queues.values() if r < len(q)]
            active = self.beside + batch
            failed = self.wi.activate({i: (self.cands[i].hypo_ddl(), self.origin[i]) for i in active},
                                      _tables_of(self.cands, active))
            batch = [i for i in batch if i not in failed]
            results = self.wi.costs([(a.key, a.params.samples) for i in batch for a in self.targets[i]])
            for ident in batch:
                yield ident, [(a, results[a.key]) for a in self.targets[ident]]


def _option(wi: WhatIf, values: ValueSource, c: Candidate, t: Table, sender: Sender, costs: dict[str, float]) -> Option:
    appends = c.keys[0].func is None and _appends(values, t, c.keys[0].column)
    return Option(c.identity(), _table_key(t), frozenset(c.columns()), _share(values, c, t),
                  index_size(wi, values, c, t, sender), costs, appends=appends)


def _extends(options: dict[str, Option], cands: dict[str, Candidate]) -> None:
    for o in options.values():
        o.extends = frozenset(x for x in options if cands[o.ident].extends(cands[x]))


def _companions(wi: WhatIf, catalog: Catalog, values: ValueSource, options: dict[str, Option],
                cands: dict[str, Candidate], origin: dict[str, Sender], picked: list[str],
                targets: dict[str, list[Analysed]], probes: ProbeReads, group_of: dict[str, str], s: Settings,
                started: float, stats: dict) -> bool:
    """Each candidate was costed alone, against plans without any new index: an index for the
    other side of a join can be worth nothing until the first side has its own. A customer's
    orders summed by customer country and signup date: alone, an index on customers still
    leaves orders read whole and saves little; next to orders (customer_id) it is what turns
    the scan of every customer into a lookup. So, with the chosen set in place, the
    candidates on a table that a statement it serves still reads whole (a Seq Scan of a
    tenth of its cost at least), the COMPANIONS of them that did best alone, are costed for
    that statement again; where one counts (counts_for), its option records
    that cost, and the selection goes on from the chosen set. Returns whether any did."""
    if not picked:
        return False
    wi.activate({i: (cands[i].hypo_ddl(), origin[i]) for i in picked}, _tables_of(cands, picked))
    served = {a.key: a for i in picked for a in targets.get(i, []) if a.key in options[i].costs}
    results = wi.costs([(a.key, a.params.samples) for a in served.values()])
    now: dict[str, tuple[float, list[dict]]] = {}
    scanned: dict[str, set[str]] = {}          # query key -> tables its plans with the set read whole
    for q, a in served.items():
        r = results[q]
        if isinstance(r, Unplannable):
            continue
        now[q] = (a.credited(r[0], r[1], probes), r[1])
        # only a scan that costs what an index must save (min_cost_reduction) is worth an index
        scanned[q] = {f"{n.get('Schema', 'public')}.{n['Relation Name']}" for p in r[1] for n in walk(p)
                      if n["Node Type"] in ("Seq Scan", "Parallel Seq Scan") and "Relation Name" in n
                      and float(n.get("Total Cost", 0.0)) >= s.min_cost_reduction * float(p.get("Total Cost", 0.0))}
    # per statement and table, the COMPANIONS candidates that did best alone
    best: dict[tuple[str, str], list[tuple[float, str]]] = {}
    for ident, c in sorted(cands.items()):
        tkey = f"{c.schema}.{c.table}"
        for a in targets.get(ident, []):
            if ident not in picked and ident in a.alone and a.key in now and tkey in scanned[a.key]:
                best.setdefault((a.key, tkey), []).append((a.alone[ident], ident))
    pairs: dict[str, list[Analysed]] = {}
    for (q, _), ranked in sorted(best.items()):
        for _, ident in sorted(ranked)[:COMPANIONS]:
            pairs.setdefault(ident, []).append(served[q])
    found = False
    for ident, planned in _Rounds(wi, cands, origin, pairs, group_of, picked, started, s, stats):
        c = cands[ident]
        for a, res in planned:
            if isinstance(res, Unplannable) or ident not in res[2]:
                continue
            after = a.credited(res[0], res[1], probes)
            if not counts_for(now[a.key][0], after, now[a.key][1], c, s.min_cost_reduction):
                continue
            if ident not in options:
                options[ident] = _option(wi, values, c, catalog.table(c.schema, c.table), origin[ident], {})
            options[ident].costs[a.key] = min(after, options[ident].costs.get(a.key, after))
            found = True
    stats["companion_pairs"] = sum(len(v) for v in pairs.values())
    if found:
        _extends(options, cands)
    wi.activate({})
    return found


def counts_for(before: float, after: float, plans_before: list[dict], c: Candidate, min_reduction: float) -> bool:
    """Whether candidate c, which takes a statement's plan cost from `before` to `after`, counts
    for it: the cost falls by min_reduction, and by WELL_SERVED_MIN_SAVING at least where the
    statement is well served (plans_before reach c's table only through existing indexes).
    The advisor and the LLM's index check both judge by it."""
    if after > before * (1 - min_reduction):
        return False
    if before - after >= WELL_SERVED_MIN_SAVING:
        return True
    scans = [n["Node Type"] for p in plans_before for n in walk(p)
             if n.get("Relation Name") == c.table and n.get("Schema", c.schema) == c.schema]
    return not scans or not all(t in INDEX_SCANS for t in scans)


def _validate(wi: WhatIf, reads: list[Analysed], p: Problem, options: dict[str, Option],
              cands: dict[str, Candidate], origin: dict[str, Sender], picked: list[str],
              group_of: dict[str, str], probes: ProbeReads):
    """Create the chosen set together and re-cost the statements on its tables; then, per
    table group (indexes of different groups cannot interact), drop the index whose
    removal loses least if that is less than it must save (interactions the single-index
    costs could not see), or, where the set leaves a statement costlier than with no new
    index (its plan probes what only a warm cache makes cheap: Analysed.credited), the one
    of those its plan uses whose removal loses least; until none. Removing an index
    re-costs only the statements whose plans used it, one index of every group at once.
    Returns (final idents, {ident: {query key: cost}} measured together)."""
    final = list(picked)
    by_key = {a.key: a for a in reads}
    pending = {group_of[options[i].table] for i in final}
    while True:
        joint, cost_now = _joint_costs(wi, reads, options, cands, origin, final, probes)
        comps: dict[str, list[str]] = {}
        for i in final:
            comps.setdefault(group_of[options[i].table], []).append(i)
        loss: dict[str, tuple[float, bool] | None] = {}
        for k in range(max((len(comps[g]) for g in pending if g in comps), default=0)):
            removed = [comps[g][k] for g in sorted(pending) if g in comps and k < len(comps[g])]
            rest = [i for i in final if i not in removed]
            wi.activate({i: (cands[i].hypo_ddl(), origin[i]) for i in rest}, _tables_of(cands, rest))
            results = wi.costs([(by_key[q].key, by_key[q].params.samples) for i in removed for q in joint[i]])
            for i in removed:
                without = {q: r if isinstance(r, Unplannable) else by_key[q].credited(r[0], r[1], probes)
                           for q, r in results.items()}
                loss[i] = _removal_loss(p, options, comps[group_of[options[i].table]], i, joint[i], cost_now, without)
        # statements the set makes costlier (a cold-cache extra; a cost unit of rounding aside)
        worse = {q for q, c in cost_now.items() if c > by_key[q].base_cost + 1.0}
        drops = []
        for g in sorted(pending):
            weak = min(((loss[i][0], i) for i in comps.get(g, []) if loss.get(i) is not None and not loss[i][1]),
                       default=None) or \
                min(((loss[i][0], i) for i in comps.get(g, []) if loss.get(i) is not None and worse & set(joint[i])),
                    default=None)
            if weak is not None:
                drops.append(weak[1])
        if not drops:
            return final, joint
        final = [i for i in final if i not in drops]
        pending = {group_of[options[i].table] for i in drops}


def _removal_loss(p: Problem, options: dict[str, Option], comp: list[str], ident: str, served: dict[str, float],
                  cost_now: dict[str, float], without: dict[str, float | Unplannable]) -> tuple[float, bool] | None:
    """(what removing `ident` from the chosen set loses, whether that is at least what it
    must save: it pays for itself next to the others); None if a statement could not be
    re-planned without it."""
    o = options[ident]
    saved = then = 0.0
    for q in served:
        r = without[q]
        if isinstance(r, Unplannable):
            return None
        saved += p.calls[q] * (r - cost_now[q])
        then += p.calls[q] * r
    mine = [options[x] for x in comp if options[x].table == o.table]
    net = saved - upkeep_delta(p, o.table, [x for x in mine if x.ident != ident], mine) \
        - p.size_cost_per_mb * o.size_bytes / 2**20
    return net, net > 0 and net >= p.min_gain * then


def _tables_of(cands: dict[str, Candidate], idents: list[str]) -> dict[str, str]:
    return {i: f"{cands[i].schema}.{cands[i].table}" for i in idents}


def _joint_costs(wi: WhatIf, reads: list[Analysed], options: dict[str, Option], cands: dict[str, Candidate],
                 origin: dict[str, Sender], chosen: list[str], probes: ProbeReads):
    """({ident: {query key: cost}}, {query key: cost}): with all `chosen` active, each
    statement's cost (as Analysed.credited), credited to the chosen indexes its plans use."""
    wi.activate({i: (cands[i].hypo_ddl(), origin[i]) for i in chosen}, _tables_of(cands, chosen))
    tables = {options[i].table for i in chosen}
    out: dict[str, dict[str, float]] = {i: {} for i in chosen}
    now: dict[str, float] = {}
    affected = [a for a in reads if any(_table_key(t) in tables for t in a.tables.values())]
    results = wi.costs([(a.key, a.params.samples) for a in affected])
    results.update(_as_built(wi, affected, results, chosen, cands, origin, probes))
    for a in affected:
        r = results[a.key]
        if isinstance(r, Unplannable):
            continue
        now[a.key] = a.credited(r[0], r[1], probes)
        for i in r[2]:
            if i in out:
                out[i][a.key] = now[a.key]
    return out, now


def _as_built(wi: WhatIf, affected: list[Analysed], results: dict, chosen: list[str], cands: dict[str, Candidate],
              origin: dict[str, Sender], probes: ProbeReads) -> dict:
    """The statements whose plan the planner would leave once the chosen indexes are
    built, with the plan it would take. A plan its new indexes make dearer built
    (ProbeReads.built_cost) by REPLAN_SHARE of its cost is planned again without them; the
    planner takes that one if it is cheaper built. On TPC-H SF1, Q7's probes by order key,
    dearer by their B-tree descents, give way to probes by supplier through an index
    smaller than HypoPG makes it, which a cold cache makes three times slower."""
    retry: dict[frozenset[str], list[Analysed]] = {}
    for a in affected:
        r = results[a.key]
        if not isinstance(r, Unplannable) and r[2] and \
                probes.built_cost(r[0], r[1]) - r[0] >= max(REPLAN_SHARE * r[0], 1.0):
            retry.setdefault(r[2], []).append(a)
    out = {}
    for used, stmts in sorted(retry.items(), key=lambda kv: sorted(kv[0])):
        rest = [i for i in chosen if i not in used]
        wi.activate({i: (cands[i].hypo_ddl(), origin[i]) for i in rest}, _tables_of(cands, rest))
        alt = wi.costs([(a.key, a.params.samples) for a in stmts])
        for a in stmts:
            r, other = results[a.key], alt[a.key]
            if not isinstance(other, Unplannable) and \
                    probes.built_cost(other[0], other[1]) < probes.built_cost(r[0], r[1]):
                out[a.key] = other
    return out


def _joint_options(options: dict[str, Option], chosen: list[str], joint) -> dict[str, Option]:
    return {i: Option(i, options[i].table, options[i].columns, options[i].share, options[i].size_bytes,
                      joint.get(i, {}), appends=options[i].appends) for i in chosen}


def set_names(chosen: list[Candidate], catalog: Catalog) -> dict[Candidate, str]:
    """The name of each index of a set: its plain name (ddl.index_name) unless an existing
    index has it, or another of the set would (one key, two INCLUDE lists): then each of
    them the hashed form, whatever order they come in."""
    plain = Counter((c.schema, ddl.index_name(c.table, c.name_parts(), c.identity())) for c in chosen)
    out = {}
    for c in chosen:
        taken = {ix.name for tb in catalog.tables() if tb.schema == c.schema for ix in tb.indexes}
        taken |= {name for (schema, name), n in plain.items() if schema == c.schema and n > 1}
        out[c] = ddl.index_name(c.table, c.name_parts(), c.identity(), taken)
    return out


def _create_rec(c: Candidate, name: str, options: dict[str, Option], final: list[str], joint,
                by_key: dict[str, Analysed], p: Problem, total_ms: float, catalog: Catalog) -> Recommendation:
    o = options[c.identity()]
    t = catalog.table(c.schema, c.table)
    served = [by_key[q] for q in joint.get(o.ident, {})]
    spec = c.spec(catalog.db, t, name)
    per_query, saved = [], 0.0
    for a in served:
        after = joint[o.ident][a.key]
        saved += a.calls * (a.base_cost - after)
        per_query.append({"queryid": a.queryids[0], "queryids": a.queryids, "calls": a.calls,
                          "cost_before": round(a.base_cost, 2), "cost_after": round(after, 2),
                          "reduction_pct": round(100 * (1 - after / a.base_cost), 1) if a.base_cost else 0.0})
    tw = p.writes.get(o.table)
    others = [options[i].writes() for i in final if i != o.ident and options[i].table == o.table]
    overhead = 0.0
    if tw is not None:
        overhead = upkeep(tw, others + [o.writes()], p.write_cost) - upkeep(tw, others, p.write_cost)
    share = sum(a.total_ms for a in served) / total_ms if total_ms else 0.0
    cols = ", ".join(c.key_sql())
    title = f"Index {c.table}({cols})" + (f" WHERE {c.predicate_sql()}" if c.predicate else "") + \
        f" for {len(served)} {'query' if len(served) == 1 else 'queries'}, {share:.0%} of DB time"
    evidence = {"hypothetical_index": c.hypo_ddl(), "queries": [
        {"queryid": a.queryids[0], "before": summary(a.base_plans[0]) if a.base_plans else [],
         "parameters": a.params.source} for a in served],
        "statistics": {"reltuples": t.reltuples if t else None, "size_estimate": "btree model from pg_stats, else hypopg_relation_size"}}
    write = {"cost_per_window": round(overhead, 2), "write_statements": [
        {"op": w.op, "calls": w.calls, "rows_per_call": round(w.rows_per_call, 2),
         "breaks_hot": bool(w.op == "Update" and w.set_columns & o.columns)} for w in (tw.stmts if tw else [])],
        "key_appends": o.appends}
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
               writes: dict[str, TableWrites], values: ValueSource) -> list[Recommendation]:
    tables = [t for r in db.query(_USER_TABLES_SQL) if (t := catalog.table(r["schema"], r["name"])) is not None]
    scans = {oid: ia.idx_scan for oid, ia in activity.indexes.items()}
    out = []
    for d in drop_advice(tables, scans, activity.window_seconds, s.drop_unused_min_window_s):
        t, ix = d.table, d.index
        tw = writes.get(f"{t.schema}.{t.name}")
        saved = 0.0
        if tw is not None:
            rest = TableWrites(_existing_writes(values, t, but=ix.oid), tw.stmts)
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


def _planned_texts(wi: WhatIf, analysed: list[Analysed]) -> dict[str, str]:
    """Per queryid, which text was planned: the normalized one, or it rewritten (and how;
    the kinds of change only: stats are no place for statement text)."""
    out = {}
    for a in analysed:
        p = wi.planned(a.key)
        kind = a.sampled or (f"rewritten: {', '.join(p.rewrites)}" if p.rewritten else "normalized")
        for q in a.queryids:
            out[str(q)] = kind
    return out
