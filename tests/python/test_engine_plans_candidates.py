"""Candidate generation from recorded generic plans of the bench workloads."""
from __future__ import annotations

from engine_helpers import recorded_plans

from optischema_engine.candidates import (FEW_VALUES_FRACTION, Candidate, KeyPart, Usage, covered_by_existing, for_table,
                                          led_by_unique_key,
                                          merged, usage_by_alias)
from optischema_engine.catalog import Column, ExistingIndex, Table
from optischema_engine.params import ColumnStats, by_weight
from optischema_engine.plans import conditions, facts, root

SHOP = recorded_plans("shop_generic_plans.json")
SAAS = recorded_plans("saas_generic_plans.json")


def table(name: str, cols: list[str], c_collation: bool = False, indexes=()) -> Table:
    t = Table(1, "public", name, 1000.0, {c: Column(c, k + 1, "text", c_collation) for k, c in enumerate(cols)})
    t.indexes = list(indexes)
    return t


def btree(name: str, keys: tuple[str, ...], predicate: str | None = None, unique: bool = False) -> ExistingIndex:
    return ExistingIndex(1, name, "", keys, (), predicate, unique, False, False, True, None, "btree", 8192,
                         frozenset(keys), ("btree", keys, (), predicate, "0", "0"))


def keysets(cands: set[Candidate]) -> set[tuple[str, ...]]:
    return {tuple(c.key_sql()) for c in cands if c.predicate is None}


def test_condition_parser_reads_params_columns_casts_and_in_lists():
    (c,) = conditions("(lower((customers.email)::text) = lower($1))")
    assert (c.left.kind, c.left.func, c.left.column, c.op, c.right.param) == ("expr", "lower", "email", "=", 1)
    (c,) = conditions("(t.status = ANY (ARRAY[$2, $3, $4]))")
    assert c.op == "= ANY" and c.right.kind == "array" and c.right.params == (2, 3, 4)
    cs = conditions("(products.active AND (products.price >= $2) AND (products.price <= $3))")
    assert [(x.left.column, x.op) for x in cs] == [("active", "="), ("price", ">="), ("price", "<=")]
    (c,) = conditions("($1 < o.created_at)")      # constant on the left is flipped
    assert (c.left.column, c.op) == ("created_at", ">")


def test_equality_then_order_by_under_limit():
    f = facts(root(SHOP["customer_recent_orders"]["plan"]))
    u = usage_by_alias(f, {})["orders"]
    assert u.eq == ["customer_id"] and u.ordered == ["created_at"]
    t = table("orders", ["id", "customer_id", "created_at", "status", "total"])
    keys = keysets(for_table(t, u, 3, lambda c, o, v: True))
    assert ("customer_id", "created_at") in keys
    assert ("created_at", "customer_id") not in keys           # range/sort column never first before equality


def test_expression_candidate_for_lower_email():
    f = facts(root(SHOP["customer_by_email"]["plan"]))
    u = usage_by_alias(f, {})["customers"]
    t = table("customers", ["id", "email"])
    assert keysets(for_table(t, u, 3, lambda c, o, v: True)) == {("lower(email)",)}


def test_join_key_of_the_inner_side_becomes_a_candidate():
    f = facts(root(SHOP["product_buyers"]["plan"]))
    usage = usage_by_alias(f, {})
    assert "product_id" in usage["oi"].eq
    assert "id" in usage["o"].eq                               # the join key on the other side


def test_like_uses_pattern_ops_only_under_a_non_c_collation():
    f = facts(root(SHOP["sku_prefix_search"]["plan"]))
    u = usage_by_alias(f, {})["products"]
    assert keysets(for_table(table("products", ["sku"], c_collation=False), u, 3, lambda c, o, v: True)) == \
        {("sku text_pattern_ops",)}
    assert keysets(for_table(table("products", ["sku"], c_collation=True), u, 3, lambda c, o, v: True)) == {("sku",)}


def test_partial_index_only_for_a_fixed_and_selective_value():
    f = facts(root(SAAS["my_open_tasks"]["plan"]))
    u = usage_by_alias(f, {})["tasks"]
    assert u.in_list == ["status"]
    t = table("tasks", ["id", "assignee_id", "status", "due_date"])
    cands = for_table(t, u, 3, lambda c, o, v: True)
    assert not any(c.predicate for c in cands)                 # no fixed value: no partial index
    keys = keysets(cands)
    assert ("assignee_id", "status") in keys and ("status", "assignee_id") not in keys   # IN list after '='
    u.fixed = [("status", "=", "blocked")]
    partial = {tuple(c.key_sql()) for c in for_table(t, u, 3, lambda c, o, v: v == "blocked") if c.predicate}
    assert ("due_date",) in partial
    assert not {c for c in for_table(t, u, 3, lambda c, o, v: False) if c.predicate}   # not selective: none


def test_never_propose_what_an_existing_index_covers():
    t = table("orders", ["customer_id", "created_at"], indexes=[btree("o_idx", ("customer_id", "created_at"))])
    assert covered_by_existing(Candidate("public", "orders", (KeyPart("customer_id"),)), t)
    assert covered_by_existing(Candidate("public", "orders", (KeyPart("customer_id"), KeyPart("created_at"))), t)
    assert not covered_by_existing(Candidate("public", "orders", (KeyPart("created_at"),)), t)
    assert not covered_by_existing(
        Candidate("public", "orders", (KeyPart("customer_id"),), predicate=("status", "=", "x")), t)


def test_never_propose_an_index_led_by_a_unique_key():
    """(id, country, created_at) INCLUDE (email) next to the primary key (id): a lookup by id
    finds its row already; the copy would only spare reading it from the table."""
    t = table("customers", ["id", "country", "created_at", "email", "a", "b"],
              indexes=[btree("customers_pkey", ("id",), unique=True), btree("ab_key", ("a", "b"), unique=True)])
    led = lambda *keys, **kw: led_by_unique_key(Candidate("public", "customers", tuple(KeyPart(k) for k in keys), **kw), t)
    assert led("id", "country", "created_at") and led("id") and led("b", "a", "id")
    assert not led("country", "id")                        # a country's rows, in id order
    assert not led("a") and not led("a", "id")             # half of (a, b) finds many rows
    assert not led("id", predicate=("country", "=", "DE"))  # the rows of one country, listed
    t.indexes[0] = btree("customers_id_idx", ("id",))     # not unique: many rows per id
    assert not led("id", "country")
    u = Usage(eq=["id", "country"], ordered=["created_at"], reads={"email"})
    leads = lambda *ix: {c.keys[0].column for c in for_table(table("customers", list(t.columns), indexes=ix), u, 3,
                                                             lambda c, o, v: True)}
    assert leads() == {"id", "country", "created_at"}
    assert leads(btree("customers_pkey", ("id",), unique=True)) == {"country", "created_at"}


def test_write_statement_facts():
    f = facts(root(SHOP["update_order_status"]["plan"]))
    assert f.write is not None and f.write[0] == "Update" and f.write[1].name == "orders"


def test_candidate_extends_prefix_with_same_predicate_only():
    a = Candidate("public", "t", (KeyPart("a"),))
    ab = Candidate("public", "t", (KeyPart("a"), KeyPart("b")))
    ab_p = Candidate("public", "t", (KeyPart("a"), KeyPart("b")), predicate=("s", "=", "x"))
    assert ab.extends(a) and not a.extends(ab) and not ab_p.extends(a)


def test_include_variants_for_few_extra_columns_only():
    """The equality key, it with the sort column, and every key of one or two columns (what
    a nested loop probes by) each INCLUDE what else the query reads or compares (status of
    the IN list is a key column already)."""
    f = facts(root(SAAS["my_open_tasks"]["plan"]))
    u = usage_by_alias(f, {})["tasks"]
    t = table("tasks", ["id", "title", "assignee_id", "status", "due_date", "body"])
    inc = {(tuple(c.key_sql()), c.include) for c in for_table(t, u, 3, lambda c, o, v: True) if c.include}
    assert inc == {(("assignee_id", "status", "due_date"), ("id", "title")),
                   (("assignee_id", "status"), ("due_date", "id", "title")),
                   (("assignee_id", "due_date"), ("id", "status", "title")),
                   (("status", "due_date"), ("assignee_id", "id", "title")),
                   (("assignee_id",), ("due_date", "id", "status", "title")),
                   (("status",), ("assignee_id", "due_date", "id", "title")),
                   (("due_date",), ("assignee_id", "id", "status", "title"))}
    assert any("INCLUDE (id, title)" in c.hypo_ddl() for c in for_table(t, u, 3, lambda c, o, v: True))
    five = Usage(eq=["a"], reads=set("bcdef"))              # TPC-H Q9 reads 5 more of lineitem's columns
    assert [c for c in for_table(table("w", list("abcdefgh")), five, 3, lambda c, o, v: True) if c.include]
    wide = Usage(eq=["a"], reads=set("bcdefg"))                            # 6 other columns: none
    assert not [c for c in for_table(table("w", list("abcdefgh")), wide, 3, lambda c, o, v: True) if c.include]


def test_covering_candidate_includes_filtered_columns():
    """count(*), sum(total) of a customer's orders but the cancelled: (customer_id) INCLUDE
    (status, total) answers it from the index alone; status is only compared, never returned."""
    u = Usage(eq=["customer_id"], reads={"total"}, filtered={"customer_id", "status"})
    t = table("orders", ["id", "customer_id", "status", "total", "created_at"])
    cands = for_table(t, u, 3, lambda c, o, v: True)
    assert {(tuple(c.key_sql()), c.include) for c in cands if c.include} == {(("customer_id",), ("status", "total"))}


def test_a_column_of_few_values_leads_no_index():
    """status (3 values) is an equality column next to account_id: it comes second, never
    first; its selective constant becomes a partial index's predicate instead."""
    few = lambda c: c == "status"
    u = Usage(eq=["status", "account_id"], ordered=["created_at"], fixed=[("status", "=", "blocked")])
    t = table("tickets", ["id", "status", "account_id", "created_at"])
    cands = for_table(t, u, 3, lambda c, o, v: True, few)
    assert cands and all(c.keys[0].column != "status" for c in cands)
    assert ("account_id", "status") in keysets(cands)
    assert ("account_id", "status", "created_at") in keysets(cands)
    partial = {(tuple(c.key_sql()), c.predicate) for c in cands if c.predicate}
    assert (("created_at",), ("status", "=", "blocked")) in partial
    assert ("status",) in keysets(for_table(t, u, 3, lambda c, o, v: True)), "without the statistic it would lead"
    # the constant is all the query selects by: the partial index is keyed by the primary key
    pkey = ExistingIndex(2, "tickets_pkey", "", ("id",), (), None, True, True, False, True, "p", "btree", 8192,
                         frozenset({"id"}), ("btree", ("id",), (), None, "0", "0"))
    alone = Usage(eq=["status"], reads={"id", "account_id"}, filtered={"status"}, fixed=[("status", "=", "blocked")])
    cands = for_table(table("tickets", ["id", "status", "account_id", "created_at"], indexes=[pkey]), alone, 3,
                      lambda c, o, v: True, few)
    assert {(tuple(c.key_sql()), c.predicate) for c in cands} == {(("id",), ("status", "=", "blocked"))}


def test_mean_fraction_of_a_column():
    assert ColumnStats(["t", "f"], [0.5, 0.5], n_distinct=2).mean_fraction(1000) == 0.5
    status = ColumnStats(["done", "todo", "review"], [0.6, 0.3, 0.09], n_distinct=4).mean_fraction(1000)
    assert abs(status - (0.36 + 0.09 + 0.0081 + 0.0001)) < 1e-9 and status >= FEW_VALUES_FRACTION
    assert ColumnStats(n_distinct=-1.0).mean_fraction(1e6) == 1e-6              # unique
    countries = ColumnStats(["US", "DE", "GB", "FR"], [0.2, 0.1, 0.1, 0.1], n_distinct=14).mean_fraction(1000)
    assert countries < FEW_VALUES_FRACTION                                       # (country, created_at) may be
    assert ColumnStats().mean_fraction(1000) is None


def test_aggregate_gets_a_group_ordered_covering_candidate():
    """GROUP BY status with count(DISTINCT account_id) over a date range: the key
    (status, account_id, created_at) is scanned index-only in group order, no sort."""
    plan = recorded_plans("aggregate_plans.json")["status_distinct_accounts"]["plan"]
    u = usage_by_alias(facts(root(plan)), {})["tickets"]
    t = table("tickets", ["id", "account_id", "status", "created_at", "subject"])
    assert ("status", "account_id", "created_at") in keysets(for_table(t, u, 3, lambda c, o, v: True))
    assert ("status", "account_id", "created_at") not in keysets(for_table(t, u, 2, lambda c, o, v: True)), \
        "only when the whole key fits max_key_columns"
    # status has few values: it leads the key read whole in group order, and no other
    few = keysets(for_table(t, u, 3, lambda c, o, v: True, lambda c: c == "status"))
    assert [k for k in few if k[0] == "status"] == [("status", "account_id", "created_at")]
    u.eq = ["status"]                                            # status = $1 too: a filter first
    assert not [k for k in keysets(for_table(t, u, 3, lambda c, o, v: True, lambda c: c == "status"))
                if k[0] == "status"]


def test_range_bounds_are_paired_by_rank():
    """Executions over 90-day windows: the nearest upper bound above a start date is mostly
    another execution's end; the same rank is the execution's own."""
    from optischema_engine.params import pair_by_rank
    starts = ["2024-07-05", "2024-07-20", "2024-08-11", "2024-09-17"]
    ends = ["2024-10-03", "2024-10-18", "2024-11-09", "2024-12-16"]
    assert pair_by_rank(starts, ends) == dict(zip(starts, ends))
    assert pair_by_rank(["5", "50"], ["1", "60"]) == {"5": "60", "50": "60"}, "never an empty range"
    assert pair_by_rank(["5"], []) == {}


def test_a_constant_of_one_execution_is_a_key_but_no_predicate():
    """In a text sampled from pg_stat_activity, `status = 'pending'` is what one execution
    asked: an equality key, not a partial-index predicate every execution shares."""
    plan = {"Node Type": "Seq Scan", "Relation Name": "orders", "Schema": "public", "Alias": "orders",
            "Total Cost": 100.0, "Plan Rows": 5, "Output": ["id"], "Filter": "(orders.status = 'pending'::text)"}
    f = facts(root([{"Plan": plan}]))
    assert usage_by_alias(f, {})["orders"].fixed == [("status", "=", "pending")]
    u = usage_by_alias(f, {}, constants_fixed=False)["orders"]
    assert u.fixed == [] and u.eq == ["status"]


def test_parameter_samples_stand_for_equal_shares_of_the_executions():
    """The most used constants of a skewed parameter are its outliers (the biggest customer):
    each sample stands for a third of the executions instead, a dominant value more than once."""
    seen = [("1", 50.0)] + [(str(k), 10.0) for k in range(2, 7)]
    assert by_weight(seen, 3) == [0, 1, 4]
    assert by_weight([(str(k), 1.0) for k in range(6)], 3) == [1, 3, 5]
    assert by_weight([("a", 90.0), ("b", 5.0), ("c", 5.0)], 3) == [0, 0, 0]
    assert by_weight([("a", 1.0)], 1) == [0]


def test_candidates_of_two_statements_merge_into_one_covering_index():
    """(l_orderkey) INCLUDE (l_quantity) for one statement, (l_orderkey, l_shipdate) for
    another: (l_orderkey, l_shipdate) INCLUDE (l_quantity) serves both, and extends both."""
    a = Candidate("public", "lineitem", (KeyPart("l_orderkey"),), include=("l_quantity",))
    b = Candidate("public", "lineitem", (KeyPart("l_orderkey"), KeyPart("l_shipdate")))
    other = Candidate("public", "lineitem", (KeyPart("l_partkey"),), include=("l_quantity",))
    m = merged([a, b, other])
    assert m == {Candidate("public", "lineitem", b.keys, include=("l_quantity",)): b}
    (c,) = m
    assert c.extends(a) and c.extends(b)
    assert merged([b, Candidate("public", "lineitem", (KeyPart("l_orderkey"),))]) == {}, "nothing to include: no merge"


def test_an_inequality_with_one_value_every_time_is_a_partial_predicate():
    """`status <> $3`, $3 always 'done' (pg_qualstats): where most tasks are done, the open
    ones are a partial index's rows, `WHERE status <> 'done'`; a parameter seen with `=`
    is no `<>` predicate, and a selectivity check that says no leaves none."""
    plan = {"Node Type": "Seq Scan", "Relation Name": "tasks", "Schema": "public", "Alias": "tasks",
            "Total Cost": 100.0, "Plan Rows": 5, "Output": ["id"],
            "Filter": "((tasks.due_date < $2) AND (tasks.status <> $3) AND (tasks.tenant_id = $1))"}
    f = facts(root([{"Plan": plan}]))
    u = usage_by_alias(f, {3: ("<>", "done")})["tasks"]
    assert u.fixed == [("status", "<>", "done")]
    assert usage_by_alias(f, {3: ("=", "done")})["tasks"].fixed == []
    t = table("tasks", ["id", "tenant_id", "status", "due_date"])
    asked = []
    cands = for_table(t, u, 3, lambda c, o, v: asked.append((c, o, v)) or True, lambda c: c == "status")
    assert asked and set(asked) == {("status", "<>", "done")}
    partial = {c for c in cands if c.predicate}
    (c,) = [c for c in partial if c.key_sql() == ["tenant_id", "due_date"]]
    assert c.hypo_ddl() == "CREATE INDEX ON public.tasks USING btree (tenant_id, due_date) WHERE status <> 'done'"
    assert c.name_parts() == ["tenant_id", "due_date", "where", "status", "not", "done"]
    assert c.identity() == "public.tasks:tenant_id,due_date:where=status <> 'done'"
    assert not [c for c in for_table(t, u, 3, lambda c, o, v: False) if c.predicate]
    # a constant written in the text is the same predicate
    plan["Filter"] = "((tasks.status <> 'done'::text) AND (tasks.tenant_id = $1))"
    assert usage_by_alias(facts(root([{"Plan": plan}])), {})["tasks"].fixed == [("status", "<>", "done")]


def test_an_index_counts_for_a_well_served_statement_only_beyond_the_noise():
    """advisor.counts_for, which the advisor and the LLM's index check share: a statement whose
    plans reach the table through existing indexes only (here a bitmap scan of orders) counts
    a new index only for a saving of WELL_SERVED_MIN_SAVING a call; one that scans the table
    counts any saving of min_cost_reduction."""
    from optischema_engine.advisor import WELL_SERVED_MIN_SAVING, counts_for
    c = Candidate("public", "orders", (KeyPart("customer_id"),), predicate=("status", "<>", "done"))
    scan = lambda node, customers="Seq Scan": [{"Node Type": "Nested Loop", "Plans": [
        {"Node Type": customers, "Relation Name": "customers", "Schema": "public"},
        {"Node Type": node, "Relation Name": "orders", "Schema": "public"}]}]
    assert not counts_for(116.1, 39.5, scan("Bitmap Heap Scan"), c, 0.1)       # saas's project_board
    assert counts_for(116.1, 39.5, scan("Seq Scan"), c, 0.1)
    assert counts_for(116.1 + WELL_SERVED_MIN_SAVING, 116.1, scan("Index Scan"), c, 0.1)
    assert not counts_for(1000.0, 950.0, scan("Seq Scan"), c, 0.1)              # less than min_cost_reduction
    other = Candidate("public", "customers", (KeyPart("name"),))
    assert counts_for(116.1, 39.5, scan("Bitmap Heap Scan"), other, 0.1), "only the candidate's table counts"
    assert not counts_for(116.1, 39.5, scan("Seq Scan", customers="Index Only Scan"), other, 0.1)

