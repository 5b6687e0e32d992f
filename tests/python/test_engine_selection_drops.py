"""Workload filtering, selection with write upkeep and HOT, drop advice."""
from __future__ import annotations

import engine_helpers  # noqa: F401

from optischema_engine.advisor import select_workload
from optischema_engine.catalog import ExistingIndex, Table
from optischema_engine.drops import drop_advice
from optischema_engine.model import Settings, WorkloadQuery
from optischema_engine.selection import (RANDOM_ENTRY_FACTOR, IndexWrites, Option, Problem, TableWrites, WriteStmt,
                                         greedy, objective, upkeep)


def problem(writes=None, **kw) -> Problem:
    args = dict(calls={"q1": 100, "q2": 10}, base={"q1": 1000.0, "q2": 1000.0}, writes=writes or {},
                write_cost=2.0, size_cost_per_mb=0.0, max_per_table=4, min_gain=0.05)
    args.update(kw)
    return Problem(**args)


def test_upkeep_insert_and_hot_rule():
    tw = TableWrites([(frozenset({"id"}), 1.0)], [WriteStmt("Update", 10, 1.0, frozenset({"status"}))])
    assert upkeep(tw, [], 2.0) == 0.0                                     # HOT: no index mentions status
    assert upkeep(tw, [(frozenset({"created_at"}), 1.0)], 2.0) == 0.0
    assert upkeep(tw, [(frozenset({"status"}), 1.0)], 2.0) == \
        10 * 2 * 2.0 * RANDOM_ENTRY_FACTOR                          # HOT broken: every index pays
    ins = TableWrites([(frozenset({"id"}), 1.0)], [WriteStmt("Insert", 60, 1.0, frozenset())])
    assert upkeep(ins, [(frozenset({"a"}), 0.1)], 2.0) == 60 * 1.1 * 2.0     # partial index: its share


def test_upkeep_of_a_random_key_insert_is_dearer_than_an_append():
    ins = TableWrites([IndexWrites(frozenset({"id"}), 1.0, True)], [WriteStmt("Insert", 60, 1.0, frozenset())])
    assert upkeep(ins, [], 2.0) == 60 * 2.0
    assert upkeep(ins, [IndexWrites(frozenset({"created_at"}), 1.0, True)], 2.0) == 60 * 2 * 2.0
    assert upkeep(ins, [IndexWrites(frozenset({"customer_id"}), 1.0, False)], 2.0) == \
        60 * (1 + RANDOM_ENTRY_FACTOR) * 2.0
    upd = TableWrites([IndexWrites(frozenset({"id"}), 1.0, True)], [WriteStmt("Update", 10, 1.0, frozenset({"c"}))])
    assert upkeep(upd, [IndexWrites(frozenset({"c"}), 1.0, True)], 2.0) == 10 * 2 * 2.0 * RANDOM_ENTRY_FACTOR, \
        "a non-HOT update writes every index where the row's entries are, appending key or not"


def test_insert_heavy_table_takes_the_append_index_not_the_random_one():
    """Same saving, same size: on a table of many inserts the index whose key appends pays
    for itself, the one of random key positions does not."""
    writes = {"t": TableWrites([IndexWrites(frozenset({"id"}), 1.0, True)],
                               [WriteStmt("Insert", 1500, 1.0, frozenset())])}
    opts = {"time": Option("time", "t", frozenset({"created_at"}), 1.0, 1 << 20, {"q1": 500.0}, appends=True),
            "cust": Option("cust", "t", frozenset({"customer_id"}), 1.0, 1 << 20, {"q2": 500.0}, appends=False)}
    # each saves 10 x 500 per window; 1500 inserts cost it 1500 x 2 as an append, twice that if not
    assert [i for i, _ in greedy(problem(writes, calls={"q1": 10, "q2": 10}), opts)] == ["time"]


def test_greedy_prefers_wider_index_that_serves_both_queries():
    opts = {"a": Option("a", "t", frozenset({"a"}), 1.0, 10 << 20, {"q1": 10.0}),
            "ab": Option("ab", "t", frozenset({"a", "b"}), 1.0, 12 << 20, {"q1": 10.0, "q2": 10.0},
                         extends=frozenset({"a"}))}
    assert [i for i, _ in greedy(problem(), opts)] == ["ab"]


def test_no_index_whose_key_a_chosen_one_starts_with():
    """Chosen first, (a, b) INCLUDE (c) serves what (a) INCLUDE (c) would: the narrower
    one is never added beside it (drop advice would call it redundant), whatever it saves."""
    opts = {"ab": Option("ab", "t", frozenset("abc"), 1.0, 1 << 20, {"q1": 10.0, "q2": 10.0},
                         extends=frozenset({"a"})),
            "a": Option("a", "t", frozenset("ac"), 1.0, 4 << 20, {"q1": 5.0})}
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


def test_greedy_respects_the_per_table_limit_and_has_no_total_limit():
    opts = {f"i{k}": Option(f"i{k}", "t", frozenset({f"c{k}"}), 1.0, 1 << 20, {f"q{k}": 1.0}) for k in range(5)}
    p = problem(calls={f"q{k}": 10 for k in range(5)}, base={f"q{k}": 1000.0 for k in range(5)}, max_per_table=2)
    assert len(greedy(p, opts)) == 2
    many = {f"i{k}": Option(f"i{k}", f"t{k}", frozenset({"c"}), 1.0, 1 << 20, {f"q{k}": 1.0}) for k in range(300)}
    p = problem(calls={f"q{k}": 10 for k in range(300)}, base={f"q{k}": 1000.0 for k in range(300)}, max_per_table=2)
    assert len(greedy(p, many)) == 300


def _app(n_tables: int, first: int = 0, calls: int = 3, writes: int = 0):
    """Options and problem of a generated application: per table an index for a cheap
    lookup, a wider one that extends it, an HOT-breaking one, and a marginal one."""
    opts, calls_of, base, tw = {}, {}, {}, {}
    for k in range(first, first + n_tables):
        t = f"s.t{k}"
        for q, b in (("a", 500.0), ("ab", 520.0), ("c", 480.0), ("d", 60.0)):
            calls_of[f"{t}:{q}"], base[f"{t}:{q}"] = calls, b
        opts[f"{t}:a"] = Option(f"{t}:a", t, frozenset({"a"}), 1.0, 400_000, {f"{t}:a": 8.0, f"{t}:ab": 40.0})
        opts[f"{t}:ab"] = Option(f"{t}:ab", t, frozenset({"a", "b"}), 1.0, 500_000,
                                 {f"{t}:a": 8.5, f"{t}:ab": 9.0}, extends=frozenset({f"{t}:a"}))
        opts[f"{t}:c"] = Option(f"{t}:c", t, frozenset({"c"}), 1.0, 400_000, {f"{t}:c": 12.0})
        opts[f"{t}:d"] = Option(f"{t}:d", t, frozenset({"d"}), 1.0, 400_000, {f"{t}:d": 58.0})   # 3%: too little
        if writes:
            tw[t] = TableWrites([(frozenset({"id"}), 1.0)], [WriteStmt("Update", writes, 1.0, frozenset({"c"}))])
    return opts, calls_of, base, tw


def test_unrelated_tables_do_not_change_the_advice_for_a_table():
    small_opts, calls, base, tw = _app(2, writes=300)
    alone = greedy(problem(tw, calls=calls, base=base), small_opts)
    assert sorted(i for i, _ in alone) == ["s.t0:ab", "s.t1:ab"]       # c breaks HOT for 300 updates
    # 500 more tables, each heavier than the first two: the first two get the same advice
    more_opts, more_calls, more_base, more_tw = _app(500, first=2, calls=50)
    wide = problem({**tw, **more_tw}, calls={**calls, **more_calls}, base={**base, **more_base})
    chosen = dict(greedy(wide, {**small_opts, **more_opts}))
    assert {i: g for i, g in chosen.items() if i.startswith(("s.t0:", "s.t1:"))} == dict(alone)
    assert len(chosen) == 2 + 500 * 2
    # the statements of the first two tables are 0.2% of the workload's cost; the old bar
    # (1% of the whole workload per index) would have given them nothing
    share = sum(calls[q] * base[q] for q in calls) / objective(wide, {}, [])
    assert share < 0.002


def test_an_index_must_save_min_gain_of_what_its_statements_cost():
    opts = {"x": Option("x", "t", frozenset({"x"}), 1.0, 1 << 20, {"q1": 960.0})}      # 4% of q1
    assert greedy(problem(), opts) == []
    assert [i for i, _ in greedy(problem(min_gain=0.03), opts)] == ["x"]


def test_size_is_charged_against_the_gain():
    opts = {"x": Option("x", "t", frozenset({"x"}), 1.0, 100 << 20, {"q2": 500.0})}    # saves 10 x 500
    assert [i for i, _ in greedy(problem(size_cost_per_mb=40.0), opts)] == ["x"]
    assert greedy(problem(size_cost_per_mb=60.0), opts) == []


def test_budget_takes_the_best_value_per_byte_first():
    opts = {"big": Option("big", "t1", frozenset({"a"}), 1.0, 10 << 20, {"q1": 10.0}),
            "small": Option("small", "t2", frozenset({"b"}), 1.0, 1 << 20, {"q2": 10.0})}
    assert [i for i, _ in greedy(problem(budget_bytes=5 << 20), opts)] == ["small"]
    assert sorted(i for i, _ in greedy(problem(), opts)) == ["big", "small"]


def test_a_budget_spent_per_byte_is_swapped_for_what_saves_most() -> None:
    """Best per byte, the small index takes the budget's first megabyte and the big one no
    longer fits; swapped, the big one saves ten times as much."""
    opts = {"big": Option("big", "t1", frozenset({"a"}), 1.0, 10 << 20, {"q1": 50.0}),     # 95,000 for 10 MB
            "small": Option("small", "t2", frozenset({"b"}), 1.0, 1 << 20, {"q2": 10.0})}  # 9,900 for 1 MB
    p = problem(budget_bytes=10 << 20)
    picked = greedy(p, opts)
    assert [i for i, _ in picked] == ["big"]
    assert objective(p, opts, []) - objective(p, opts, ["big"]) == __import__("pytest").approx(picked[0][1])
    assert sorted(i for i, _ in greedy(problem(budget_bytes=11 << 20), opts)) == ["big", "small"]


def test_a_swap_is_the_best_pair_as_costing_every_pair_whole_finds_it() -> None:
    """_swap() costs a pair from the removal's loss and the move's gain, and a move apart from
    the removed index (another table, no statement in common) from its gain on the whole set:
    the pair it takes lowers the objective exactly as much as the best of every pair costed
    whole."""
    import random
    from optischema_engine.selection import _fill, _State, _swap
    rnd = random.Random(7)
    calls = {f"q{i}": rnd.randint(1, 20) for i in range(120)}
    tw = {f"t{k}": TableWrites([], [WriteStmt("Insert", 50, 1.0, frozenset()),
                                     WriteStmt("Update", 20, 1.0, frozenset({"c1"}))]) for k in range(6)}
    opts = {f"o{i}": Option(f"o{i}", f"t{i % 6}", frozenset({f"c{i % 4}"}), 1.0, rnd.choice([1, 2, 3, 60, 90]) << 20,
                            {f"q{q}": rnd.uniform(10, 900) for q in rnd.sample(range(120), 3)}) for i in range(150)}
    p = problem(tw, calls=calls, base={q: 1000.0 for q in calls}, size_cost_per_mb=0.5, max_per_table=50,
                budget_bytes=100 << 20)
    st = _State(p, opts)
    _fill(st, sorted(opts), {})
    best = None
    for out in st.chosen:
        rest = _State.of(p, opts, [x for x in st.chosen if x != out])
        for into in opts:
            if into not in st.chosen and (m := rest.move(into)) is not None:
                then = objective(p, opts, [x for x in rest.chosen if x not in m.replaced] + [into])
                best = min(best or then, then)
    out, into, m = _swap(st)
    kept = [x for x in st.chosen if x != out and x not in m.replaced]
    assert best < objective(p, opts, st.chosen)
    assert objective(p, opts, kept + [into]) == __import__("pytest").approx(best)


def test_greedy_matches_a_full_recomputation():
    """The incremental greedy takes the same steps as re-evaluating every move on the
    whole objective would: gains add up to the objective's fall."""
    opts, calls, base, tw = _app(30, writes=40)
    p = problem(tw, calls=calls, base=base)
    picked = greedy(p, opts)
    assert objective(p, opts, []) - objective(p, opts, [i for i, _ in picked]) == \
        __import__("pytest").approx(sum(g for _, g in picked))


def test_workload_filter_groups_same_text_and_keeps_writes():
    wl = [WorkloadQuery(1, "SELECT * FROM t WHERE a = $1", 50, 500.0, 50),
          WorkloadQuery(2, "SELECT *  FROM t WHERE a = $1", 50, 500.0, 50),        # same text, other types
          WorkloadQuery(3, "SELECT 2", 100, 0.1, 100),                             # beyond the coverage
          WorkloadQuery(4, "INSERT INTO t VALUES ($1)", 100, 0.1, 100),           # write: always kept
          WorkloadQuery(5, "SELECT 3", 1, 300.0, 1)]                               # one call
    keep, skipped, total, left = select_workload(wl, Settings(statement_coverage=0.99, min_calls=2))
    assert [(k[1], k[2]) for k in keep] == [([1, 2], 100), ([4], 100)]
    assert {s.queryid for s in skipped} == {3, 5}
    assert left == {"statements": 1, "time_ms": 0.1} and round(total, 1) == 1300.2


def test_workload_is_analysed_until_the_coverage_then_the_ceiling():
    wl = [WorkloadQuery(k, f"SELECT {k} FROM t", 2, 100.0 - k, 2) for k in range(40, 0, -1)]      # 3180 ms
    keep, skipped, _, left = select_workload(wl, Settings(statement_coverage=0.5))
    covered = sum(k[3] for k in keep)
    assert covered >= 0.5 * 3180 > covered - keep[-1][3]            # the last one kept crosses 50%
    assert [k[1][0] for k in keep] == list(range(1, len(keep) + 1))   # heaviest first
    assert left["statements"] == 40 - len(keep) and left["time_ms"] == 3180 - covered
    assert all("statement_coverage 0.5" in s.reason for s in skipped)
    keep, skipped, _, left = select_workload(wl, Settings(statement_coverage=1.0, max_queries=10))
    assert len(keep) == 10 and left["statements"] == 30 and "max_queries 10" in skipped[0].reason
    # a utility statement takes no share of the read time: nothing it could be indexed for
    vacuum = WorkloadQuery(99, "VACUUM t", 2, 100000.0, 0)
    keep2, skipped, _, left2 = select_workload(wl + [vacuum], Settings(statement_coverage=0.5))
    assert keep2 == select_workload(wl, Settings(statement_coverage=0.5))[0]
    assert [s.reason for s in skipped if s.queryid == 99] == ["utility statement (VACUUM) cannot be explained"]


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


def test_a_partitions_index_is_never_advised_alone():
    """An index attached to a partitioned index cannot be dropped by itself: not as a
    duplicate, a prefix, unused or invalid; a plain index next to it can."""
    t = Table(1, "public", "ev_1", 1000.0)
    t.indexes = [ix(1, "ev_1_a_idx", ["a"]), ix(2, "ev_1_a_dup", ["a"]), ix(3, "ev_1_a_b_idx", ["a", "b"]),
                 ix(4, "ev_1_c_idx", ["c"]), ix(5, "ev_1_d_idx", ["d"], valid=False)]
    for i in t.indexes[1:]:
        i.partition = True
    advice = {d.index.name: d.reason for d in drop_advice([t], {1: 0, 2: 0, 3: 0, 4: 0}, 30 * 86400.0, 86400.0)}
    assert advice == {"ev_1_a_idx": "duplicate"}      # of the attached ev_1_a_dup, which stays


def test_a_read_run_once_is_the_workload_a_write_run_once_is_not():
    """min_calls 1: a 20-second report run once is analysed; a data load run once is no
    recurring index upkeep (min_write_calls 2)."""
    wl = [WorkloadQuery(1, "SELECT * FROM t WHERE a = $1", 1, 20000.0, 10),
          WorkloadQuery(2, "INSERT INTO t SELECT g FROM generate_series($1, $2) g", 1, 5000.0, 1000000),
          WorkloadQuery(3, "INSERT INTO t VALUES ($1)", 2, 1.0, 2)]
    keep, skipped, _, _ = select_workload(wl, Settings())
    assert [k[1] for k in keep] == [[1], [3]]
    assert [(s.queryid, s.reason) for s in skipped] == [
        (2, "a write run 1 time(s) < min_write_calls 2: not charged as recurring index upkeep")]
