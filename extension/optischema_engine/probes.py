"""What a plan over hypothetical indexes costs for real: as the planner prices it once they
are built, and with the repeated probes of its nested loops reading a table not cached.

HypoPG gives the planner a hypothetical B-tree without a tree height, and its own size
estimate. btcostestimate() charges a real index (tree height + 1) x 50 x cpu_operator_cost
per scan for the descent, which a hypothetical one escapes; genericcostestimate() counts
the index pages a scan reads from the index's size, where HypoPG's can be four times the
built one (indexsize.py). On TPC-H SF1, a probe of lineitem by order key costs 0.78
hypothetical and 1.15 built: 18,750 over Q7's 50,000 probes, enough for the planner to
prefer, with the indexes built, probes by supplier that the what-if plan never showed.
built_delta() is that difference for a plan.

Then the cache. The planner prices the table pages an index scan reads with the
Mackert-Lohman estimate (costsize.c, index_pages_fetched): over all the loops of a nested
loop, a page read once is taken to stay cached as long as the table fits in
effective_cache_size, and a parameterized scan's reads are amortized over its loop count,
the rows of the relation its parameter comes from, however few of them reach the loop. A
nested loop whose every probe reads a few rows scattered over a large table is then cheap
in the estimate, and slow for real once the table is bigger than shared_buffers: a probe
that misses them is a read and a buffer replacement. On TPC-H SF1 (effective_cache_size
4 GB, shared_buffers 256 MB), with lineitem (l_suppkey, l_partkey) built, Q7's plan is
estimated at half the cost of its plan without the index and runs 3.4 times slower.

cold_extra() is what the plan's reads cost more under the same formula, over the scans the
plan runs and with shared_buffers in place of effective_cache_size, than the planner
charged. credited() is what the advisor (and the LLM's index check) counts a plan with new
indexes at: its cost built, plus its cold extra beyond the plan without them. An index is
then not chosen for probes only a warm cache makes cheap; an index-only scan, a hash join,
or probes in the table's physical order (a correlated key) read few pages and keep their
gain.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

from .catalog import Catalog, Table
from .db import Database
from .indexsize import downlinks
from .params import ValueSource
from .plans import HYPOTHETICAL, Relation, conditions

_SETTINGS_SQL = """
SELECT max(s.setting::float8) FILTER (WHERE s.name OPERATOR(pg_catalog.=) 'effective_cache_size') AS warm,
       max(s.setting::float8) FILTER (WHERE s.name OPERATOR(pg_catalog.=) 'shared_buffers') AS cold,
       max(s.setting::float8) FILTER (WHERE s.name OPERATOR(pg_catalog.=) 'random_page_cost') AS rpc,
       max(s.setting::float8) FILTER (WHERE s.name OPERATOR(pg_catalog.=) 'cpu_operator_cost') AS cpu_op
FROM pg_catalog.pg_settings s
WHERE s.name IN ('effective_cache_size', 'shared_buffers', 'random_page_cost', 'cpu_operator_cost')"""

_HEAP_SCANS = {"Index Scan", "Bitmap Heap Scan"}
_BLOCKING = {"Sort", "Hash", "SetOp"}       # and a hashed or plain Aggregate: they read their input whole
DESCENT_PER_PAGE = 50             # selfuncs.c DEFAULT_PAGE_CPU_MULTIPLIER, in cpu_operator_cost
FANOUT = downlinks(8)             # of an inner page, for an 8-byte key


class Hypothetical(NamedTuple):
    """A hypothetical index, as what its plans cost built depends on it."""
    lead: str | None              # its leading column (None: an expression)
    tuples: float                 # its entries
    hypo_pages: float             # its size as HypoPG gives it to the planner
    pages: float                  # its size built (indexsize.py)


class _Plan(NamedTuple):
    """A plan as its pricing reads it, walked once."""
    runs: list[tuple[dict, float, float]]   # every node, how many times it runs, its parallel divisor (_runs)
    aliases: dict[str, Table]               # the tables it scans, by alias
    rows: dict[str, float]                  # their rows, by alias (_alias_rows)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def pages_fetched(tuples: float, pages: float, cache: float) -> float:
    """costsize.c's index_pages_fetched(): table pages read to fetch `tuples` rows at
    random from a table of `pages` pages with `cache` pages of it cached."""
    t, b = max(pages, 1.0), max(cache, 1.0)
    if t <= b:
        return min(math.ceil(2 * t * tuples / (2 * t + tuples)), t)
    lim = 2 * t * b / (2 * t - b)
    if tuples <= lim:
        return math.ceil(2 * t * tuples / (2 * t + tuples))
    return math.ceil(b + (tuples - lim) * (t - b) / t)


class ProbeReads:
    """built_cost() and cold_extra() for the plans of one advise() or check.
    `hypothetical(identity)` describes the hypothetical index a plan node scans (WhatIf
    marks it with its identity: plans.HYPOTHETICAL); an existing index's leading column is
    read from the catalog."""

    def __init__(self, db: Database, catalog: Catalog, values: ValueSource,
                 hypothetical: Callable[[str], Hypothetical | None]):
        row = db.query(_SETTINGS_SQL)[0]
        self.warm, self.cold, self.rpc = float(row["warm"]), float(row["cold"]), float(row["rpc"])
        self.cpu_op = float(row["cpu_op"])
        self.catalog, self.values, self.hypothetical = catalog, values, hypothetical

    def credited(self, cost: float, plans: list[dict], base_extra: float) -> float:
        """What a statement's plans with new indexes, of mean cost `cost`, are counted at:
        their built_cost(), plus their cold_extra() beyond `base_extra` (its plans' without them)."""
        read = [self._read(p) for p in plans]
        built = cost + _mean([self._delta(r) for r in read])
        return max(built, built + self._cold(read) - base_extra)

    def built_cost(self, cost: float, plans: list[dict]) -> float:
        """The planner's estimate of plans of mean cost `cost` once their hypothetical
        indexes are built: `cost` plus their mean built_delta()."""
        return cost + _mean([self.built_delta(p) for p in plans])

    def built_delta(self, plan: dict) -> float:
        """What the planner prices `plan` at more (or less) with its hypothetical indexes
        built: per scan of one, the B-tree descent, and the index pages read counted on the
        built size rather than HypoPG's, amortized over a parameterized scan's loops as
        genericcostestimate() does."""
        return self._delta(self._read(plan))

    def cold_extra(self, plans: list[dict]) -> float:
        """Mean over the plans of what their table reads through indexes cost more with
        only shared_buffers cached than the planner charged (_extra)."""
        return self._cold([self._read(p) for p in plans])

    def _read(self, plan: dict) -> _Plan:
        runs = list(_runs(plan, 1.0, 1.0))
        aliases = {}
        for n, _, _ in runs:
            if "Relation Name" in n and (t := self.catalog.table(n.get("Schema", "public"), n["Relation Name"])):
                aliases[n.get("Alias", n["Relation Name"])] = t
        return _Plan(runs, aliases, _alias_rows(runs))

    def _hypothetical(self, node: dict) -> Hypothetical | None:
        return self.hypothetical(node[HYPOTHETICAL]) if HYPOTHETICAL in node else None

    def _delta(self, plan: _Plan) -> float:
        delta = 0.0
        for node, loops, divisor in plan.runs:
            h = self._hypothetical(node)
            if h is None:
                continue
            entries = self._index_entries(node, plan.aliases) * (divisor if node.get("Parallel Aware") else 1.0)
            fraction = min(entries / max(h.tuples, 1.0), 1.0)
            count = _loop_count(node, plan.rows, loops) if loops > 1 else 1.0
            hypo, built = (self._index_pages(fraction, pages, count) for pages in (h.hypo_pages, h.pages))
            delta += loops * ((_height(h.pages) + 1) * DESCENT_PER_PAGE * self.cpu_op + self.rpc * (built - hypo))
        return delta

    def _cold(self, plans: list[_Plan]) -> float:
        return 0.0 if self.cold >= self.warm else _mean([self._extra(p) for p in plans])

    def _index_pages(self, fraction: float, pages: float, loop_count: float) -> float:
        """Index pages one of `loop_count` scans reading `fraction` of an index of `pages`
        pages is counted at (genericcostestimate)."""
        per_scan = math.ceil(fraction * max(pages, 1.0))
        return per_scan if loop_count <= 1 else pages_fetched(per_scan * loop_count, pages, self.warm) / loop_count

    def _index_entries(self, node: dict, aliases: dict[str, Table]) -> float:
        """Index entries one run of a scan reads."""
        t = self.catalog.table(node.get("Schema", "public"), node["Relation Name"]) if "Relation Name" in node else None
        return self._fetched(node, t, aliases) if t is not None else max(float(node.get("Plan Rows", 1.0)), 1.0)

    def _extra(self, plan: _Plan) -> float:
        """What the plan's table reads through indexes cost more with only shared_buffers
        cached than the planner charged for them. The planner charges a parameterized
        scan's reads amortized over its loop count (_loop_count), which can be many times
        the scans the nested loop runs: TPC-H Q8 probes lineitem by order key for 91,000
        orders, amortized as if for all 460,000 of its date range. The reads themselves are
        counted over every worker's scans together: they share one cache."""
        total = sum(t.pages for t in {(t.schema, t.name): t for t in plan.aliases.values()}.values()) or 1.0
        extra = 0.0
        for node, loops, divisor in plan.runs:
            if node["Node Type"] not in _HEAP_SCANS:
                continue
            t = self.catalog.table(node.get("Schema", "public"), node["Relation Name"])
            if t is None or t.pages <= 0 or self.cold * t.pages / total >= t.pages:
                continue                        # shared_buffers hold it: its reads are hits
            rows = self._fetched(node, t, plan.aliases)
            corr = self._correlation(node, t) if node["Node Type"] == "Index Scan" else 0.0
            per_page = max(t.reltuples / t.pages, 1.0)

            def read(scans: float, cache: float) -> float:
                """Table pages `scans` runs of the scan read, `cache` pages cached in all."""
                b = cache * t.pages / total          # the table's share of the cache, as the planner prorates it
                most = pages_fetched(rows * scans, t.pages, b)
                least = pages_fetched(math.ceil(rows / per_page) * scans, t.pages, b)
                return most + corr * corr * (least - most)
            count = _loop_count(node, plan.rows, loops) if loops > 1 else 1.0
            charged = read(count, self.warm) / count * loops * divisor
            extra += self.rpc * max(read(loops * divisor, self.cold) - charged, 0.0) / divisor
        return extra

    def _fetched(self, node: dict, t: Table, tables: dict[str, Table]) -> float:
        """Rows one run of the scan reads from the table: its estimated rows, or more where
        the equalities of its Index Cond select more: when a Filter drops some of them (a
        join probe by part that keeps one supplier's rows reads all the part's), or when
        they take two columns or more of one other table (`tables`: the plan's, by alias),
        which the planner multiplies as independent where the join follows a reference to
        that table: TPC-H's lineitem probed by partsupp's (supplier, part) pairs reads
        6,001,215 / 800,000 rows a pair, not 1."""
        rows = max(float(node.get("Plan Rows", 1.0)), 1.0)
        if "Index Cond" not in node:
            return rows
        alias = node.get("Alias", t.name)
        selected = None                     # a range alone: what it reads, the plan does not say
        columns_of: dict[str, int] = {}     # other alias -> columns of it the equalities take
        for c in conditions(node["Index Cond"]):
            sides = [o for o in (c.left, c.right) if o.kind == "column" and o.alias in (alias, None)]
            if c.op != "=" or not sides or sides[0].column not in t.columns:
                continue
            for o in (c.left, c.right):
                if o.kind == "column" and o.alias not in (alias, None):
                    columns_of[o.alias] = columns_of.get(o.alias, 0) + 1
            st = self.values.stats(Relation(t.schema, t.name), sides[0].column)
            distinct = (st.n_distinct if st.n_distinct > 0 else -st.n_distinct * t.reltuples) if st else 0.0
            if distinct >= 1:
                selected = (t.reltuples if selected is None else selected) / distinct
        referenced = [tables[a].reltuples for a, n in columns_of.items() if n > 1 and a in tables]
        if selected is None or ("Filter" not in node and not referenced):
            return rows
        if referenced:
            selected = max(selected, t.reltuples / max(min(referenced), 1.0))
        return max(rows, min(selected, t.reltuples))

    def _correlation(self, node: dict, t: Table) -> float:
        h = self._hypothetical(node)
        column = h.lead if h is not None else None
        if h is None:
            ix = next((ix for ix in t.indexes if ix.name == node.get("Index Name")), None)
            column = ix.keys[0] if ix is not None and ix.keys and ix.keys[0] in t.columns else None
        st = self.values.stats(Relation(t.schema, t.name), column) if column else None
        return min(abs(st.correlation), 1.0) if st is not None and st.correlation is not None else 0.0


def _height(pages: float) -> int:
    """Levels above the leaves of a B-tree of `pages` pages (its tree height)."""
    return 0 if pages <= 1 else math.ceil(math.log(pages) / math.log(FANOUT))


def _alias_rows(runs: list[tuple[dict, float, float]]) -> dict[str, float]:
    """The rows of each relation a plan scans, by alias (a parallel scan's of all workers)."""
    return {n["Alias"]: float(n.get("Plan Rows", 1.0)) * (d if n.get("Parallel Aware") else 1.0)
            for n, _, d in runs if "Alias" in n and "Relation Name" in n}


def _loop_count(node: dict, rows: dict[str, float], loops: float) -> float:
    """The loop count the planner amortized a parameterized scan's index pages over: the
    rows of the relation its Index Cond takes the parameter from (indxpath.c
    get_loop_count), not the `loops` the nested loop runs it, unless no such relation shows."""
    alias = node.get("Alias")
    outer = {o.alias for c in conditions(node.get("Index Cond", "")) for o in (c.left, c.right)
             if o.kind == "column" and o.alias not in (alias, None)}
    counts = [rows[a] for a in outer if a in rows]
    return max(min(counts), 1.0) if counts else loops


def _runs(node: dict, loops: float, divisor: float, share: float = 1.0) -> Iterator[tuple[dict, float, float]]:
    """(plan node, how many times it runs, the parallel divisor of the workers running
    it): the inner side of a nested loop runs once per outer row, unless a Memoize or a
    Materialize keeps its rows (then about once: those probes are left alone). A
    parallel-aware node's rows are each worker's share (costsize.c get_parallel_divisor).
    Under a Limit a node runs only in part, its `share` of its rows: a scan in index order
    that stops after 20 rows reads 20 rows' pages, and the plan's cost counts that part of
    its cost (costsize.c adjust_limit_rows_costs); a node that reads all of its input
    before it returns a row (a Sort, a Hash, a hashed or plain Aggregate) reads it whole."""
    yield node, loops * share, divisor
    children = node.get("Plans", [])
    if "Workers Planned" in node:
        workers = float(node["Workers Planned"])
        divisor = workers + max(1.0 - 0.3 * workers, 0.0)
    kind = node["Node Type"]
    if kind == "Limit" and children:
        returned, below = (max(float(n.get("Plan Rows", 1.0)), 1.0) for n in (node, children[0]))
        share *= min(returned / below, 1.0)
    elif kind in _BLOCKING or (kind == "Aggregate" and node.get("Strategy") != "Sorted"):
        share = 1.0
    if kind == "Nested Loop" and len(children) == 2:
        outer, inner = children
        yield from _runs(outer, loops, divisor, share)
        kept = inner["Node Type"] in ("Memoize", "Materialize")
        yield from _runs(inner, loops if kept else loops * max(float(outer.get("Plan Rows", 1.0)), 1.0), divisor, share)
        return
    for child in children:
        yield from _runs(child, loops, divisor, share)
