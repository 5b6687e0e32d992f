"""optischema_engine.rewrites without a database: which statements get which rewrite, and
which never do (the catalog's answers given here)."""
from __future__ import annotations

import pytest
from pglast import parse_sql

from optischema_engine import rewrites

COLUMNS = {
    "lineitem": {"l_partkey": ("integer", True), "l_suppkey": ("integer", True), "l_quantity": ("numeric", True),
                 "l_extendedprice": ("numeric", True), "l_shipdate": ("date", True)},
    "part": {"p_partkey": ("integer", True), "p_brand": ("text", True)},
    "events": {"id": ("bigint", True), "created_at": ("timestamp with time zone", True),
               "day": ("date", True), "ref": ("integer", False)},
    "customers": {"id": ("integer", True), "region": ("text", True)},
    # (type, NOT NULL, the first key of a btree index)
    "items": {"i": ("integer", True, True), "b": ("bigint", False, True), "n": ("numeric", False, True),
              "f": ("double precision", False, True), "r": ("real", False, True), "s": ("smallint", False, True),
              "x": ("text", False, True), "v": ("character varying", False, True), "d": ("date", False, True),
              "ts": ("timestamp with time zone", False, True), "u": ("integer", False, False),
              "ud": ("date", False, False)},
}


class _Catalog(rewrites._Catalog):
    def __init__(self):
        self._cache = {}

    def columns(self, rv):
        return {k: rewrites.Column(*v) for k, v in COLUMNS.get(rv.relname, {}).items()}


def found(sql: str) -> list[rewrites.Candidate]:
    tree = parse_sql(sql)[0].stmt
    out = []
    for find in (rewrites._function_ranges, rewrites._correlated, rewrites._not_in, rewrites._type_mismatch,
                 rewrites._no_ops, rewrites._coalesces):
        out += find(tree, _Catalog())
    return out


@pytest.mark.parametrize("where, rewritten", [
    ("created_at::date = $1", "created_at >= CAST($1 AS date) AND created_at < (CAST($1 AS date) + 1)"),
    ("date(e.created_at) = $1::date", "e.created_at >= CAST($1 AS date) AND e.created_at < (CAST($1 AS date) + 1)"),
    ("date_trunc('day', created_at) = $1",
     "created_at >= $1 AND created_at < ($1 + CAST('1 day' AS interval)) AND $1 = pg_catalog.date_trunc('day', $1)"),
])
def test_a_day_of_a_timestamp_becomes_a_range(where: str, rewritten: str) -> None:
    (c,) = found(f"SELECT count(*) FROM events AS e WHERE {where} AND id > 0")
    assert c.pattern == "cast_over_column" and rewritten in c.sql and c.sql.endswith("AND id > 0")


@pytest.mark.parametrize("sql", [
    "SELECT 1 FROM events WHERE day::date = $1",                    # a date already: nothing to gain
    "SELECT 1 FROM events WHERE created_at::date = ref",            # compared with a column
    "SELECT 1 FROM events WHERE created_at::date = $1 OR id = 2",   # not a conjunct of the WHERE
    "SELECT 1 FROM events, (SELECT 1 AS created_at) s WHERE created_at::date = $1",   # cannot resolve it
    "SELECT 1 FROM nosuchtable WHERE created_at::date = $1",
])
def test_no_day_range_where_it_would_not_be_the_same_or_not_help(sql: str) -> None:
    assert found(sql) == []


def test_q17_correlated_average_becomes_a_grouped_left_join() -> None:
    (c,) = found("SELECT sum(l_extendedprice) / 7.0 FROM lineitem, part WHERE p_partkey = l_partkey AND p_brand = $1"
                 " AND l_quantity < (SELECT 0.2 * avg(l_quantity) FROM lineitem WHERE l_partkey = p_partkey)")
    assert c.pattern == "correlated_subquery"
    assert c.sql == ("SELECT sum(l_extendedprice) / 7.0 FROM lineitem, part LEFT JOIN (SELECT l_partkey AS optischema_k1,"
                     " 0.2 * avg(l_quantity) AS optischema_v FROM lineitem GROUP BY l_partkey) AS optischema_s1"
                     " ON optischema_s1.optischema_k1 = part.p_partkey WHERE p_partkey = l_partkey AND p_brand = $1"
                     " AND l_quantity < optischema_s1.optischema_v")


@pytest.mark.parametrize("sub", [
    "SELECT count(*) FROM lineitem WHERE l_partkey = p_partkey",              # 0, not NULL, over no rows
    "SELECT coalesce(avg(l_quantity), 0) FROM lineitem WHERE l_partkey = p_partkey",
    "SELECT avg(l_quantity) FROM lineitem WHERE l_partkey > p_partkey",       # not an equality
    "SELECT avg(l_quantity) FROM lineitem WHERE l_partkey = p_partkey LIMIT 1",
    "SELECT avg(l_quantity) FROM lineitem WHERE l_partkey = p_partkey GROUP BY l_suppkey",
    "SELECT avg(l_quantity) FROM lineitem",                                   # not correlated
    "SELECT l_quantity FROM lineitem WHERE l_partkey = p_partkey",            # not an aggregate
])
def test_no_join_where_the_subquery_is_not_a_per_key_aggregate_null_over_no_rows(sub: str) -> None:
    assert found(f"SELECT 1 FROM lineitem, part WHERE p_partkey = l_partkey AND l_quantity < ({sub})") == []


def test_not_in_becomes_not_exists_only_over_not_null_columns() -> None:
    (c,) = found("SELECT id FROM events WHERE id NOT IN (SELECT id FROM customers WHERE region = $1)")
    assert c.pattern == "not_in" and c.sql == \
        "SELECT id FROM events WHERE NOT EXISTS (SELECT 1 FROM customers WHERE region = $1 AND events.id = id)"
    # a nullable column on either side, an outer join, or the same name inside and outside: never
    assert found("SELECT id FROM events WHERE ref NOT IN (SELECT id FROM customers)") == []
    assert found("SELECT 1 FROM customers c LEFT JOIN events e ON e.ref = c.id"
                 " WHERE e.id NOT IN (SELECT id FROM customers)") == []
    assert found("SELECT id FROM events WHERE id NOT IN (SELECT ref FROM events)") == []
    assert found("SELECT id FROM events WHERE id NOT IN (SELECT id FROM customers LIMIT 5)") == []


_BIGINT = ("CASE WHEN CAST($1 AS numeric) = pg_catalog.trunc(CAST($1 AS numeric))"
           " AND CAST($1 AS numeric) >= -9223372036854775808 AND CAST($1 AS numeric) < 9223372036854775808"
           " THEN CAST(CAST($1 AS numeric) AS bigint) END")


@pytest.mark.parametrize("where, rewritten", [
    ("id = $1::numeric", f"id = {_BIGINT}"),
    ("$1::numeric = e.id", f"e.id = {_BIGINT}"),
    ("ref = 7.5::decimal", "ref = CASE WHEN CAST(7.5 AS numeric) = pg_catalog.trunc(CAST(7.5 AS numeric))"
                           " AND CAST(7.5 AS numeric) >= -2147483648 AND CAST(7.5 AS numeric) < 2147483648"
                           " THEN CAST(CAST(7.5 AS numeric) AS integer) END"),
])
def test_an_integer_column_against_a_numeric_gets_the_value_as_its_type(where: str, rewritten: str) -> None:
    (c,) = found(f"SELECT count(*) FROM events AS e WHERE {where} AND kind = 'x'")
    assert c.pattern == "type_mismatch" and c.sql == f"SELECT count(*) FROM events AS e WHERE {rewritten} AND kind = 'x'"
    assert "in the application" in c.explanation


@pytest.mark.parametrize("where, rewritten", [
    ("id > $1::numeric", "id >= CASE WHEN CAST($1 AS numeric) < 9223372036854775807 THEN"
                         " CAST(GREATEST(pg_catalog.floor(CAST($1 AS numeric)) + 1, -9223372036854775808) AS bigint) END"),
    ("$1::numeric > id", "id <= CASE WHEN CAST($1 AS numeric) > -9223372036854775808"
                         " THEN CAST(LEAST(pg_catalog.ceil(CAST($1 AS numeric)) - 1, 9223372036854775807) AS bigint) END"),
    ("ref >= $1::numeric", "ref >= CASE WHEN CAST($1 AS numeric) <= 2147483647"
                           " THEN CAST(GREATEST(pg_catalog.ceil(CAST($1 AS numeric)), -2147483648) AS integer) END"),
    ("ref <= $1::numeric", "ref <= CASE WHEN CAST($1 AS numeric) >= -2147483648"
                           " THEN CAST(LEAST(pg_catalog.floor(CAST($1 AS numeric)), 2147483647) AS integer) END"),
])
def test_a_range_of_an_integer_column_against_a_numeric_gets_a_whole_bound(where: str, rewritten: str) -> None:
    (c,) = found(f"SELECT count(*) FROM events WHERE {where}")
    assert c.pattern == "type_mismatch" and c.sql == f"SELECT count(*) FROM events WHERE {rewritten}"


@pytest.mark.parametrize("sql", [
    "SELECT 1 FROM events WHERE id = $1",                           # the column's own type
    "SELECT 1 FROM events WHERE id = $1::float8",                   # a bigint as float8 loses digits: not equal
    "SELECT 1 FROM events WHERE id <> $1::numeric",                 # no index serves <> anyway
    "SELECT 1 FROM events WHERE id = ref::numeric",                 # a column, not a value
    "SELECT 1 FROM events WHERE id = $1::numeric OR ref = 2",       # not a conjunct of the WHERE
    "SELECT 1 FROM events WHERE created_at = $1::numeric",          # not an integer column
    "SELECT 1 FROM events WHERE id = NULL::numeric",
])
def test_no_type_mismatch_rewrite_where_it_is_not_the_same(sql: str) -> None:
    assert found(sql) == []


@pytest.mark.parametrize("where, rewritten", [
    ("i + 0 = $1", "i = $1"), ("0 + i = $1", "i = $1"), ("$1 < b * 1", "$1 < b"), ("n - 0 >= 5", "n >= 5"),
    ("f + 0 = $1", "f = $1"), ("x || '' = $1", "x = $1"), ("'' || x > $1", "x > $1"), ("d - 0 = $1", "d = $1"),
])
def test_a_no_op_over_an_indexed_column_is_taken_away(where: str, rewritten: str) -> None:
    (c,) = found(f"SELECT 1 FROM items WHERE {where} AND u > 0")
    assert c.pattern == "no_op_over_column" and c.sql == f"SELECT 1 FROM items WHERE {rewritten} AND u > 0"


@pytest.mark.parametrize("where", [
    "s + 0 = $1",           # smallint + 0 is an integer: $1 would change type
    "r + 0 = $1",           # real + 0 is a double precision
    "v || '' = $1",         # varchar || '' is text
    "0 - i = $1", "i + 1 = $1", "i * 0 = $1", "i + '0' = $1", "i + 0.0 = $1",
    "u + 0 = $1",           # no index leads with u: nothing to gain
    "i + 0 = u",            # compared with a column
    "i + 0 <> $1",          # no index serves <>
])
def test_no_no_op_rewrite_where_the_type_or_the_value_would_change(where: str) -> None:
    assert found(f"SELECT 1 FROM items WHERE {where}") == []


@pytest.mark.parametrize("where, rewritten", [
    ("coalesce(b, 0) = $1", "b = $1 OR (b IS NULL AND COALESCE(b, 0) = $1)"),
    ("$1 < coalesce(n, 1.5)", "$1 < n OR (n IS NULL AND $1 < COALESCE(n, 1.5))"),
    ("coalesce(s, $2) = $1", "s = $1 OR (s IS NULL AND COALESCE(s, $2) = $1)"),
    ("coalesce(x, 'none') = 'none'", "x = 'none' OR (x IS NULL AND COALESCE(x, 'none') = 'none')"),
])
def test_coalesce_of_an_indexed_column_becomes_an_or_of_the_column(where: str, rewritten: str) -> None:
    (c,) = found(f"SELECT 1 FROM items WHERE {where} AND i > 0")
    assert c.pattern == "coalesce_over_column" and c.sql == f"SELECT 1 FROM items WHERE ({rewritten}) AND i > 0"


@pytest.mark.parametrize("where", [
    "coalesce(s, 0) = $1",              # smallint and an integer: coalesce() is an integer
    "coalesce(i, 1.5) = $1",            # an integer and a numeric: a numeric
    "coalesce(b, $2) = $1 AND i = $2",  # $2 typed elsewhere: coalesce() may not be of b's type
    "coalesce(b, NULL) = $1", "coalesce(b, i) = $1", "coalesce(b, 0, 1) = $1",
    "coalesce(i, 0) = random()::int",   # evaluated twice in the rewrite
    "coalesce(u, 0) = $1",              # no index leads with u
])
def test_no_coalesce_rewrite_where_its_type_could_differ_or_no_index_serves_it(where: str) -> None:
    assert found(f"SELECT 1 FROM items WHERE {where}") == []


def _year(col: str, last: int, end: str) -> str:
    n = "CAST($1 AS numeric)"
    whole = f"{n} = pg_catalog.trunc({n}) AND {n} >= -4713 AND {n} <= {last} AND {n} <> 0"
    return (f"{col} >= CASE WHEN {whole} THEN pg_catalog.make_date(CAST({n} AS integer), 1, 1)"
            f" ELSE CAST('-infinity' AS pg_catalog.date) END AND {col} <= CASE WHEN {whole}"
            f" THEN pg_catalog.make_date(CAST({n} AS integer), 12, 31){end} ELSE CAST('infinity' AS pg_catalog.date) END")


@pytest.mark.parametrize("where, rewritten", [
    ("extract(year from ts) = $1", f"EXTRACT(YEAR FROM ts) = $1 AND {_year('ts', 294275, ' + 1')}"),
    ("$1 = date_part('YEAR', d)", f"$1 = date_part('YEAR', d) AND {_year('d', 5874897, '')}"),
])
def test_a_year_of_an_indexed_column_gets_a_range_besides_it(where: str, rewritten: str) -> None:
    (c,) = found(f"SELECT 1 FROM items WHERE {where}")
    assert c.pattern == "cast_over_column" and c.sql == f"SELECT 1 FROM items WHERE {rewritten}"


@pytest.mark.parametrize("where", [
    "extract(month from ts) = $1",      # a month is no one range
    "extract(year from ts) > $1",
    "extract(year from ud) = $1",       # no index leads with ud
    "date_part('years', d) = $1",
    "extract(year from ts) = i",
])
def test_no_year_range_for_another_field_or_without_an_index(where: str) -> None:
    assert found(f"SELECT 1 FROM items WHERE {where}") == []


class _Keys(_Catalog):
    """`events` with a primary key on id; generate_series returns a set."""

    def unique_keys(self, rv):
        return [frozenset({"id"})] if rv.relname == "events" else []

    def returns_sets(self, names):
        return "generate_series" in names


def keyset(sql: str) -> list[rewrites.Candidate]:
    return rewrites._keyset(parse_sql(sql)[0].stmt, _Keys())


def test_a_deep_offset_becomes_keyset_pagination_with_new_parameters_after_its_own() -> None:
    (c,) = keyset("SELECT * FROM events WHERE day = $1 ORDER BY created_at, id LIMIT 20 OFFSET 5000")
    assert c.pattern == "keyset_pagination"
    assert c.sql == "SELECT * FROM events WHERE day = $1 AND (created_at, id) > ($2, $3) ORDER BY created_at, id LIMIT 20"
    # row 5000 of the original order, its key as text, the ORDER BY qualified (a bare name
    # would sort by the text output of that name)
    assert c.derive == ("SELECT CAST(events.created_at AS pg_catalog.text) AS optischema_k1,"
                        " CAST(events.id AS pg_catalog.text) AS optischema_k2 FROM events WHERE day = $1"
                        " ORDER BY events.created_at, events.id LIMIT 1 OFFSET 4999")
    (c,) = keyset("SELECT id FROM events e WHERE ref = 1 OR id < 9 ORDER BY e.id DESC FETCH FIRST 10 ROWS ONLY"
                  " OFFSET 3000000000")
    assert c.sql == "SELECT id FROM events AS e WHERE (ref = 1 OR id < 9) AND e.id < $1 ORDER BY e.id DESC LIMIT 10"
    assert c.derive.endswith("ORDER BY e.id DESC LIMIT 1 OFFSET 2999999999")


@pytest.mark.parametrize("sql", [
    "SELECT id FROM events ORDER BY created_at LIMIT 20 OFFSET 5000",           # no unique key among them
    "SELECT id FROM events ORDER BY ref, id LIMIT 20 OFFSET 5000",              # ref is nullable
    "SELECT id FROM events ORDER BY id LIMIT 20 OFFSET 199",                    # under ten pages
    "SELECT id FROM events ORDER BY id LIMIT $1 OFFSET $2",                     # how deep is not known
    "SELECT id FROM events ORDER BY created_at DESC, id LIMIT 20 OFFSET 5000",  # two directions
    "SELECT id::text FROM events ORDER BY id LIMIT 20 OFFSET 5000",             # sorts the output: text
    "SELECT day AS id FROM events ORDER BY id LIMIT 20 OFFSET 5000",            # another column's alias
    "SELECT id, generate_series(1, 2) FROM events ORDER BY id LIMIT 20 OFFSET 5000",   # rows per key
    "SELECT id, row_number() OVER () FROM events ORDER BY id LIMIT 20 OFFSET 5000",
    "SELECT DISTINCT id FROM events ORDER BY id LIMIT 20 OFFSET 5000",
    "SELECT id FROM events ORDER BY id FETCH FIRST 20 ROWS WITH TIES OFFSET 5000",
    "SELECT id FROM events, customers ORDER BY events.id LIMIT 20 OFFSET 5000",  # two relations
    "SELECT id FROM customers ORDER BY id LIMIT 20 OFFSET 5000",                 # no unique index
    "SELECT id FROM events ORDER BY id USING > LIMIT 20 OFFSET 5000",
])
def test_no_keyset_pagination_where_the_order_is_not_total_or_rows_are_not_the_keys(sql: str) -> None:
    assert keyset(sql) == []
