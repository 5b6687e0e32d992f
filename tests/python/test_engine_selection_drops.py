"""Workload filtering, selection with write upkeep and HOT, drop advice."""
from __future__ import annotations

import engine_helpers  # noqa: F401

from optischema_engine.advisor import select_workload
from optischema_engine.catalog import ExistingIndex, Table
from optischema_engine.drops import drop_advice
from optischema_engine.model import Settings, WorkloadQuery
from optischema_engine.selection import Option, Problem, TableWrites, WriteStmt, greedy, upkeep


def problem(writes=None, **kw) -> Problem:
    args = dict(calls={"q1": 100, "q2": 10}, base={"q1": 1000.0, "q2": 1000.0}, writes=writes or {},
                write_cost=2.0, size_cost_per_mb=0.0, max_per_table=4, max_total=10, min_gain=0.01)
    args.update(kw)
    return Problem(**args)


def test_upkeep_insert_and_hot_rule():
    tw = TableWrites([(frozenset({"id"}), 1.0)], [WriteStmt("Update", 10, 1.0, frozenset({"status"}))])
    assert upkeep(tw, [], 2.0) == 0.0                                     # HOT: no index mentions status
    assert upkeep(tw, [(frozenset({"created_at"}), 1.0)], 2.0) == 0.0
    assert upkeep(tw, [(frozenset({"status"}), 1.0)], 2.0) == 10 * 2 * 2.0   # HOT broken: every index pays
    ins = TableWrites([(frozenset({"id"}), 1.0)], [WriteStmt("Insert", 60, 1.0, frozenset())])
    assert upkeep(ins, [(frozenset({"a"}), 0.1)], 2.0) == 60 * 1.1 * 2.0     # partial index: its share


def test_greedy_prefers_wider_index_that_serves_both_queries():
    opts = {"a": Option("a", "t", frozenset({"a"}), 1.0, 10 << 20, {"q1": 10.0}),
            "ab": Option("ab", "t", frozenset({"a", "b"}), 1.0, 12 << 20, {"q1": 10.0, "q2": 10.0},
                         extends=frozenset({"a"}))}
    assert [i for i, _ in greedy(problem(), opts)] == ["ab"]


def test_insert_heavy_table_rejects_index_for_rare_query():
    writes = {"t": TableWrites([(frozenset({"id"}), 1.0)], [WriteStmt("Insert", 6000, 1.0, frozenset())])}
    opts = {"x": Option("x", "t", frozenset({"x"}), 1.0, 1 << 20, {"q2": 500.0})}    # saves 10 x 500
    assert greedy(problem(writes), opts) == []
    writes["t"].stmts = [WriteStmt("Insert", 10, 1.0, frozenset())]
    assert [i for i, _ in greedy(problem(writes), opts)] == ["x"]


def test_hot_breaking_index_pays_for_every_index():
    writes = {"t": TableWrites([(frozenset({"id"}), 1.0), (frozenset({"a"}), 1.0)],
                               [WriteStmt("Update", 1000, 1.0, frozenset({"last_login"}))])}
    safe = Option("safe", "t", frozenset({"tenant"}), 1.0, 1 << 20, {"q2": 500.0})
    trap = Option("trap", "t", frozenset({"last_login"}), 1.0, 1 << 20, {"q2": 100.0})
    assert [i for i, _ in greedy(problem(writes), {"safe": safe, "trap": trap})] == ["safe"]


def test_greedy_respects_per_table_and_total_limits():
    opts = {f"i{k}": Option(f"i{k}", "t", frozenset({f"c{k}"}), 1.0, 1 << 20, {f"q{k}": 1.0}) for k in range(5)}
    p = problem(calls={f"q{k}": 10 for k in range(5)}, base={f"q{k}": 1000.0 for k in range(5)}, max_per_table=2)
    assert len(greedy(p, opts)) == 2


def test_workload_filter_groups_same_text_and_keeps_writes():
    wl = [WorkloadQuery(1, "SELECT * FROM t WHERE a = $1", 50, 500.0, 50),
          WorkloadQuery(2, "SELECT *  FROM t WHERE a = $1", 50, 500.0, 50),        # same text, other types
          WorkloadQuery(3, "SELECT 2", 100, 0.1, 100),                             # negligible share
          WorkloadQuery(4, "INSERT INTO t VALUES ($1)", 100, 0.1, 100),           # write: always kept
          WorkloadQuery(5, "SELECT 3", 1, 300.0, 1)]                               # one call
    keep, skipped, _ = select_workload(wl, Settings(min_query_share=0.01, min_calls=2))
    assert [(k[1], k[2]) for k in keep] == [([1, 2], 100), ([4], 100)]
    assert {s.queryid for s in skipped} == {3, 5}


def ix(oid, name, keys, unique=False, constraint=None, valid=True, predicate=None):
    return ExistingIndex(oid, name, f"CREATE INDEX {name} ON public.t USING btree ({', '.join(keys)})",
                         tuple(keys), (), predicate, unique, constraint == "p", False, valid, constraint, "btree",
                         8192 * oid, frozenset(keys), ("btree", tuple(keys), (), predicate, ",".join("0" * len(keys)),
                                                      ",".join("0" * len(keys))))


def test_drop_duplicates_prefixes_invalid_and_unused():
    t = Table(1, "public", "t", 1000.0)
    t.indexes = [ix(1, "t_pkey", ["id"], unique=True, constraint="p"),
                 ix(2, "t_a_idx", ["a"]), ix(3, "t_a_dup", ["a"]),
                 ix(4, "t_a_b_idx", ["a", "b"]),
                 ix(5, "t_c_idx", ["c"]), ix(6, "t_d_idx", ["d"], valid=False),
                 ix(7, "t_fk_idx", ["fk"]), ix(8, "t_id_u", ["id"], unique=True)]
    t.fk_columns = [("fk",)]
    scans = {2: 5, 3: 5, 4: 5, 5: 0, 7: 0, 8: 0}
    short = {d.index.name: d.reason for d in drop_advice([t], scans, 3600.0, 86400.0)}
    assert short == {"t_a_dup": "duplicate", "t_a_idx": "prefix", "t_d_idx": "invalid"}
    long = {d.index.name: d.reason for d in drop_advice([t], scans, 30 * 86400.0, 86400.0)}
    assert long["t_c_idx"] == "unused"
    assert "t_fk_idx" not in long and "t_id_u" not in long and "t_pkey" not in long


def test_the_index_a_prefix_defers_to_is_not_dropped_as_unused():
    t = Table(1, "public", "t", 1000.0)
    t.indexes = [ix(1, "t_email_idx", ["email"]), ix(2, "t_email_created_idx", ["email", "created"])]
    advice = {d.index.name: d.reason for d in drop_advice([t], {1: 0, 2: 0}, 30 * 86400.0, 86400.0)}
    assert advice == {"t_email_idx": "prefix"}
