"""What a plan's nested-loop probes cost more with a cold cache (probes.py): PostgreSQL's
own page-fetch formula, with shared_buffers in place of effective_cache_size. The plans
are TPC-H SF1's shapes (lineitem 112,503 pages, 6 million rows) on the figures of the
machine that measured them: Q7 probing lineitem by supplier ran 3.4 times slower than
with no index, Q5 probing it by order key in the table's order did not."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "extension"))
from optischema_engine.catalog import Column, ExistingIndex, Table  # noqa: E402
from optischema_engine.params import ColumnStats  # noqa: E402
from optischema_engine.probes import ProbeReads, pages_fetched  # noqa: E402

PAGES, ROWS = 112_503.0, 6_001_215.0


class _Db:
    def query(self, sql, args=None):
        return [{"warm": 524_288.0, "cold": 32_768.0, "rpc": 4.0}]       # 4 GB, 256 MB, 4


class _Catalog:
    def __init__(self, *tables: Table):
        self._t = {(t.schema, t.name): t for t in tables}

    def table(self, schema, name):
        return self._t.get((schema, name))


class _Values:
    def __init__(self, stats: dict[str, ColumnStats]):
        self._s = stats

    def stats(self, rel, column, reader=None):
        return self._s.get(column)


def _index(name: str, key: str) -> ExistingIndex:
    return ExistingIndex(1, name, "", (key,), (), None, False, False, False, True, None, "btree", 0,
                         frozenset({key}), ("btree", (key,), (), None, "0", "0"))


LINEITEM = Table(1, "public", "lineitem", ROWS, {c: Column(c, k + 1, "integer", True)
                                                 for k, c in enumerate(("l_orderkey", "l_suppkey", "l_partkey"))},
                 [_index("li_supp", "l_suppkey"), _index("li_order", "l_orderkey")], pages=PAGES)
SUPPLIER = Table(2, "public", "supplier", 10_000.0, {}, pages=222.0)
STATS = _Values({"l_suppkey": ColumnStats(n_distinct=10_000, correlation=0.0),
                 "l_orderkey": ColumnStats(n_distinct=-0.25, correlation=1.0),
                 "l_partkey": ColumnStats(n_distinct=200_000, correlation=0.0)})


def _probes() -> ProbeReads:
    return ProbeReads(_Db(), _Catalog(LINEITEM, SUPPLIER), STATS, lambda name: None)


def _nested_loop(outer_rows: float, inner: dict) -> dict:
    outer = {"Node Type": "Seq Scan", "Relation Name": "supplier", "Schema": "public", "Alias": "supplier",
             "Plan Rows": outer_rows}
    return {"Node Type": "Nested Loop", "Plan Rows": outer_rows * inner["Plan Rows"], "Plans": [outer, inner]}


def _scan(node_type: str, index: str, rows: float, **more) -> dict:
    return {"Node Type": node_type, "Relation Name": "lineitem", "Schema": "public", "Alias": "lineitem",
            "Index Name": index, "Plan Rows": rows, **more}


def test_the_page_fetch_formula_is_postgres_own() -> None:
    assert pages_fetched(100, 1000, 5000) == 96                  # cached: 2TN/(2T+N)
    assert pages_fetched(10**7, 1000, 5000) == 1000              # at most the table, once cached
    assert pages_fetched(10**7, 1000, 100) > 9 * 10**6           # past the cache, each fetch is a read again


def test_scattered_probes_into_a_large_table_cost_more_cold() -> None:
    """800 suppliers, 183 scattered lineitem rows each (Q7): reads a warm cache hides."""
    plan = _nested_loop(800, _scan("Index Scan", "li_supp", 183, **{"Index Cond": "(lineitem.l_suppkey = supplier.s_suppkey)"}))
    extra = _probes().cold_extra([plan])
    assert extra > 50_000
    assert _probes().credited(50_000.0, [plan], 0.0) == 50_000.0 + extra
    assert _probes().credited(50_000.0, [plan], extra) == 50_000.0, "the base plans' own extra is no new cost"


def test_index_only_probes_and_probes_in_table_order_keep_their_gain() -> None:
    only = _nested_loop(800, _scan("Index Only Scan", "li_supp", 183))
    assert _probes().cold_extra([only]) == 0.0
    ordered = _nested_loop(20_000, _scan("Index Scan", "li_order", 4))       # Q5: orders, then their lines
    scattered = _nested_loop(20_000, _scan("Index Scan", "li_supp", 4))
    assert _probes().cold_extra([ordered]) < _probes().cold_extra([scattered]) / 2


def test_a_filtered_probe_reads_what_its_index_condition_selects() -> None:
    """A probe by part keeping one supplier's row (Q9) reads the part's 30 rows."""
    kept = _scan("Index Scan", "li_part", 1, **{"Index Cond": "(lineitem.l_partkey = supplier.s_suppkey)",
                                                "Filter": "(lineitem.l_suppkey = supplier.s_suppkey)"})
    unfiltered = dict(kept)
    del unfiltered["Filter"]
    assert _probes().cold_extra([_nested_loop(17_000, kept)]) > 5 * _probes().cold_extra([_nested_loop(17_000, unfiltered)])


def test_nothing_changes_where_shared_buffers_hold_the_table() -> None:
    small = Table(3, "public", "lineitem", 60_000.0, LINEITEM.columns, LINEITEM.indexes, pages=1_125.0)
    p = ProbeReads(_Db(), _Catalog(small, SUPPLIER), STATS, lambda name: None)
    assert p.cold_extra([_nested_loop(800, _scan("Index Scan", "li_supp", 183))]) == 0.0
