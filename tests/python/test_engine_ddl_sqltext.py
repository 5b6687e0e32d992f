"""DDL builder and query-text lexing."""
from __future__ import annotations

import engine_helpers  # noqa: F401  (puts the engine on sys.path)

from optischema_engine import advisor, ddl, sqltext
from optischema_engine.candidates import Candidate, KeyPart
from optischema_engine.params import parse_constvalue


def test_quote_ident_only_when_needed():
    assert ddl.quote_ident("orders") == "orders"
    assert ddl.quote_ident("Orders") == '"Orders"'
    assert ddl.quote_ident("order") == '"order"'              # reserved word
    assert ddl.quote_ident('we"ird') == '"we""ird"'
    assert ddl.qualified("public", "user") == 'public."user"'


def test_index_name_is_deterministic_short_and_unique():
    assert ddl.index_name("orders", ["customer_id", "created_at"], "x") == "orders_customer_id_created_at_idx"
    long = ddl.index_name("t" * 40, ["c" * 30, "d" * 30], "identity-1")
    assert len(long.encode()) <= 63 and long.endswith("_idx")
    assert long == ddl.index_name("t" * 40, ["c" * 30, "d" * 30], "identity-1")
    assert long != ddl.index_name("t" * 40, ["c" * 30, "d" * 30], "identity-2")
    taken = ddl.index_name("orders", ["customer_id"], "x", taken={"orders_customer_id_idx"})
    assert taken != "orders_customer_id_idx" and taken.startswith("orders_customer_id_")
    multibyte = ddl.index_name("ü" * 40, ["é" * 20], "id")
    assert len(multibyte.encode()) <= 63


def test_a_set_never_names_two_indexes_alike() -> None:
    """TPC-H: lineitem (l_shipdate) INCLUDE (l_discount, l_extendedprice, l_quantity) and
    (l_shipdate) INCLUDE (l_orderkey, ...) in one set were both lineitem_l_shipdate_idx, and
    the second CREATE INDEX failed. Each gets its own name, in whichever order they come."""
    class NoTables:
        def tables(self) -> list:
            return []
    a = Candidate("public", "lineitem", (KeyPart("l_shipdate"),), include=("l_quantity",))
    b = Candidate("public", "lineitem", (KeyPart("l_shipdate"),), include=("l_orderkey",))
    other = Candidate("public", "lineitem", (KeyPart("l_partkey"),))
    names = advisor.set_names([a, b, other], NoTables())
    assert len(set(names.values())) == 3 and names[other] == "lineitem_l_partkey_idx"
    assert names == advisor.set_names([other, b, a], NoTables())


def test_create_and_drop_ddl():
    c = Candidate("public", "Orders", (KeyPart("created_at"),), predicate=("status", "=", "it's"))
    sql = ddl.create_index("orders_x_idx", c.schema, c.table, c.key_sql(), [], c.predicate_sql())
    assert sql == ("CREATE INDEX CONCURRENTLY orders_x_idx ON public.\"Orders\" USING btree (created_at) "
                   "WHERE status = 'it''s'")
    assert c.hypo_ddl() == "CREATE INDEX ON public.\"Orders\" USING btree (created_at) WHERE status = 'it''s'"
    e = Candidate("s", "customers", (KeyPart("email", func="lower"), KeyPart("sku", opclass="text_pattern_ops")))
    assert e.key_sql() == ["lower(email)", "sku text_pattern_ops"]
    assert ddl.drop_index("public", "x_idx") == "DROP INDEX CONCURRENTLY IF EXISTS public.x_idx"
    assert ddl.concurrent_indexdef("CREATE UNIQUE INDEX a ON public.t USING btree (x)") == \
        "CREATE UNIQUE INDEX CONCURRENTLY a ON public.t USING btree (x)"


def test_single_statement_guard():
    assert sqltext.single_statement("SELECT 1") is None
    assert sqltext.single_statement("SELECT ';' AS x;") is None
    assert sqltext.single_statement("SELECT $$;$$, 'a;b' -- ;\n") is None
    assert sqltext.single_statement("SELECT 1; DROP TABLE x") == "more than one statement"
    assert "utility" in sqltext.single_statement("CREATE ROLE r PASSWORD 'x'")
    assert "utility" in sqltext.single_statement("VACUUM t")
    assert sqltext.single_statement("/* c */ ") == "empty statement"


def test_update_set_columns_and_limit_params():
    assert sqltext.update_set_columns("UPDATE orders SET status = $1, updated_at = now() WHERE id = $2") == \
        {"status", "updated_at"}
    assert sqltext.update_set_columns('UPDATE t SET (a, "B") = (1, 2), c = f(x, y) FROM u WHERE z = 1') == \
        {"a", "B", "c"}
    assert sqltext.update_set_columns("SELECT 1") == set()
    assert sqltext.limit_params("SELECT 1 FROM t ORDER BY x LIMIT $2 OFFSET $3") == {2, 3}
    assert sqltext.param_numbers("SELECT '$5', $1, $$ $7 $$, $2") == [1, 2]


def test_quote_literal_and_qualstats_constants():
    assert sqltext.quote_literal("a'b") == "'a''b'"
    assert sqltext.quote_literal("a\\b") == "E'a\\\\b'"
    assert parse_constvalue("'pen''ding'::text") == ["pen'ding"]
    assert parse_constvalue("42::integer") == ["42"]
    assert parse_constvalue("'{todo,\"in progress\",NULL}'::text[]") == ["todo", "in progress"]
    assert parse_constvalue("now()") == []


def test_identifiers_are_the_names_a_text_mentions():
    assert sqltext.identifiers('SELECT e.id FROM public.EV e JOIN "Ev_1" x ON x.id = e.id WHERE e.note = \'ev_2\' -- ev_3') \
        == {"select", "e", "id", "from", "public", "ev", "join", "Ev_1", "x", "on", "where", "note"}


def test_explained_statement_of_an_explain_text():
    explained = sqltext.explained
    assert explained("EXPLAIN (VERBOSE, FORMAT JSON) select l_shipmode from lineitem") == "select l_shipmode from lineitem"
    assert explained("explain analyze verbose SELECT 1") == "SELECT 1"
    assert explained("/* x */ EXPLAIN SELECT '(' FROM t") == "SELECT '(' FROM t"
    assert explained("SELECT 1") == "SELECT 1" and explained("EXPLAIN") == "EXPLAIN"
