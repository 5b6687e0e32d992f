"""What a plan's repeated index probes would cost if the table they read were not cached.

The planner prices the table pages an index scan reads with the Mackert-Lohman estimate
(costsize.c, index_pages_fetched): over all the loops of a nested loop, a page read once
is taken to stay cached as long as the table fits in effective_cache_size. A nested loop
whose every probe reads a few rows scattered over a large table is then cheap in the
estimate, and slow for real once the table is bigger than shared_buffers: a probe that
misses them is a read and a buffer replacement. On TPC-H SF1 (effective_cache_size 4 GB,
shared_buffers 256 MB), with lineitem (l_suppkey, l_partkey) built, Q7's plan is estimated
at half the cost of its plan without the index and runs 3.4 times slower.

cold_extra() is what the same plan costs more under the same formula with shared_buffers in
place of effective_cache_size. credited() is what the advisor (and the LLM's index check)
counts a plan with new indexes at: its cost plus its cold extra beyond the plan without
them. An index is then not chosen for probes only a warm cache makes cheap; an index-only
scan, a hash join, or probes in the table's physical order (a correlated key) read few
pages and keep their gain.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from .catalog import Catalog, Table
from .db import Database
from .params import ValueSource
from .plans import Relation, conditions, walk

_SETTINGS_SQL = """
SELECT max(s.setting::float8) FILTER (WHERE s.name OPERATOR(pg_catalog.=) 'effective_cache_size') AS warm,
       max(s.setting::float8) FILTER (WHERE s.name OPERATOR(pg_catalog.=) 'shared_buffers') AS cold,
       max(s.setting::float8) FILTER (WHERE s.name OPERATOR(pg_catalog.=) 'random_page_cost') AS rpc
FROM pg_catalog.pg_settings s
WHERE s.name IN ('effective_cache_size', 'shared_buffers', 'random_page_cost')"""

_HEAP_SCANS = {"Index Scan", "Bitmap Heap Scan"}


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
    """cold_extra() for the plans of one advise() or check. `lead(index name)` names the
    leading column of a hypothetical index (None if it has none or is not one); an existing
    index's is read from the catalog."""

    def __init__(self, db: Database, catalog: Catalog, values: ValueSource, lead: Callable[[str], str | None]):
        row = db.query(_SETTINGS_SQL)[0]
        self.warm, self.cold, self.rpc = float(row["warm"]), float(row["cold"]), float(row["rpc"])
        self.catalog, self.values, self.lead = catalog, values, lead

    def credited(self, cost: float, plans: list[dict], base_extra: float) -> float:
        """What a statement's plans with new indexes, of mean cost `cost`, are counted at:
        the cost, plus their cold_extra() beyond `base_extra` (its plans' without them)."""
        return max(cost, cost + self.cold_extra(plans) - base_extra)

    def cold_extra(self, plans: list[dict]) -> float:
        """Mean over the plans of what their repeated table reads cost more with only
        shared_buffers cached (0 when it is not smaller than effective_cache_size)."""
        if not plans or self.cold >= self.warm:
            return 0.0
        return sum(self._extra(p) for p in plans) / len(plans)

    def _extra(self, plan: dict) -> float:
        tables = {(n.get("Schema", "public"), n["Relation Name"]) for n in walk(plan) if "Relation Name" in n}
        total = sum(t.pages for key in tables if (t := self.catalog.table(*key)) is not None) or 1.0
        extra = 0.0
        for node, loops in _probed(plan, 1.0):
            t = self.catalog.table(node.get("Schema", "public"), node["Relation Name"])
            if t is None or t.pages <= 0:
                continue
            rows = self._fetched(node, t)
            corr = self._correlation(node, t) if node["Node Type"] == "Index Scan" else 0.0
            per_page = max(t.reltuples / t.pages, 1.0)
            io = []
            for cache in (self.warm, self.cold):
                b = cache * t.pages / total          # the table's share of the cache, as the planner prorates it
                most = pages_fetched(rows * loops, t.pages, b)
                least = pages_fetched(math.ceil(rows / per_page) * loops, t.pages, b)
                io.append(most + corr * corr * (least - most))
            extra += self.rpc * max(io[1] - io[0], 0.0)
        return extra

    def _fetched(self, node: dict, t: Table) -> float:
        """Rows one run of the scan reads from the table: its estimated rows, or, when a
        Filter drops some of them, what the equalities of its Index Cond select (a join
        probe by part that keeps one supplier's rows reads all the part's)."""
        rows = max(float(node.get("Plan Rows", 1.0)), 1.0)
        if "Filter" not in node or "Index Cond" not in node:
            return rows
        alias = node.get("Alias", t.name)
        selected = t.reltuples
        for c in conditions(node["Index Cond"]):
            sides = [o for o in (c.left, c.right) if o.kind == "column" and o.alias in (alias, None)]
            if c.op != "=" or not sides or sides[0].column not in t.columns:
                continue
            st = self.values.stats(Relation(t.schema, t.name), sides[0].column)
            distinct = (st.n_distinct if st.n_distinct > 0 else -st.n_distinct * t.reltuples) if st else 0.0
            if distinct >= 1:
                selected /= distinct
        return max(rows, min(selected, t.reltuples))

    def _correlation(self, node: dict, t: Table) -> float:
        name = node.get("Index Name", "")
        column = self.lead(name)
        if column is None:
            ix = next((ix for ix in t.indexes if ix.name == name), None)
            column = ix.keys[0] if ix is not None and ix.keys and ix.keys[0] in t.columns else None
        st = self.values.stats(Relation(t.schema, t.name), column) if column else None
        return min(abs(st.correlation), 1.0) if st is not None and st.correlation is not None else 0.0


def _probed(node: dict, loops: float) -> Iterator[tuple[dict, float]]:
    """(scan node reading table pages through an index, how many times it runs): the inner
    side of a nested loop runs once per outer row, unless a Memoize or a Materialize keeps
    its rows (then about once: those probes are left alone)."""
    if node["Node Type"] in _HEAP_SCANS:
        yield node, loops
        return                          # below a Bitmap Heap Scan: its index, no table page
    children = node.get("Plans", [])
    if node["Node Type"] == "Nested Loop" and len(children) == 2:
        outer, inner = children
        yield from _probed(outer, loops)
        kept = inner["Node Type"] in ("Memoize", "Materialize")
        yield from _probed(inner, loops if kept else loops * max(float(outer.get("Plan Rows", 1.0)), 1.0))
        return
    for child in children:
        yield from _probed(child, loops)
