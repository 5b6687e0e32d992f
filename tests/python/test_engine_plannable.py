"""Normalized text made plannable (optischema_engine.plannable): unit tests of the rewrite,
then PostgreSQL itself: the texts pg_stat_statements makes of literal statements do not
prepare as captured and do once rewritten; recommend() (the engine in PL/Python, with
Debian's python3-pglast) analyses literal statements that ran once."""
from __future__ import annotations

import engine_helpers  # noqa: F401  (puts the engine on sys.path)
import psycopg
import pytest

from optischema_engine.plannable import plannable, variants


# ---------------------------------------------------------------- the rewrite, alone

def test_typed_literals_become_casts_and_nothing_else_moves():
    text = ("select l_returnflag -- flag\nfrom lineitem where l_shipdate <= date $1 - interval $2 day\n"
            "  and l_commitdate > timestamp with time zone $3 and x = 'date $9' /* date $8 */")
    p = plannable(text)
    assert p.text == ("select l_returnflag -- flag\nfrom lineitem where l_shipdate <= $1::date - $2::interval day\n"
                      "  and l_commitdate > $3::timestamp with time zone and x = 'date $9' /* date $8 */")
    assert p.rewrites == ("typed literal as a cast",) and p.rewritten


def test_a_comment_inside_a_typed_literal_does_not_swallow_the_rest():
    p = plannable("select 1 from t where d >= date -- start\n $1 and d < date /* end */ $2")
    assert p.text == "select 1 from t where d >= $1::date and d < $2::date"


def test_quoted_and_multibyte_text_keeps_its_offsets():
    p = plannable('select \'é\', "Ünïcode" $1, interval (3) $2 from "tàble" where c = $3')
    assert p.text == 'select \'é\', $1::"Ünïcode", $2::interval (3) from "tàble" where c = $3'


def test_extract_field_becomes_the_functions_argument_with_a_value():
    p = plannable("select extract($1 from o_orderdate), date_part($2, d), date_trunc($3, d) from orders")
    assert p.text == "select pg_catalog.extract($1::text, o_orderdate), date_part($2, d), date_trunc($3, d) from orders"
    assert p.given == {1: "epoch", 2: "epoch", 3: "day"}
    assert plannable("select extract(year from d) from t").text == "select extract(year from d) from t"


def test_constants_whose_type_was_their_spelling_become_integers():
    p = plannable("select sum(case when p = $1 then $2 else $3 end), $4 + $5 * $6 from t "
                  "where q <= $7 + $8 and r between $9 - $10 and $11 and s = $12::int + $13 limit $14")
    assert p.text == ("select sum(case when p = $1 then $2::integer else $3::integer end), "
                      "$4::integer + $5::integer * $6::integer from t "
                      "where q <= $7::integer + $8::integer and r between $9::integer - $10::integer and $11 "
                      "and s = $12::int + $13 limit $14")
    # a string CASE is left to PostgreSQL (it is text), as is arithmetic with a typed side
    assert plannable("select case when a then $1 else $2 end || x, n * $3 from t").rewrites == ()


def test_numbers_variant_only_when_the_first_would_differ():
    (only,) = variants("select * from t where s = $1 and d > $2::date")
    assert only.text == "select * from t where s = $1 and d > $2::date"
    first, second = variants("select * from t where d > current_date - $1 and id = any(array[$2, $3])")
    assert first.text == "select * from t where d > current_date - $1 and id = any(array[$2, $3])"
    assert second.text == ("select * from t where d > current_date - $1::integer "
                           "and id = any(array[$2::integer, $3::integer])")


@pytest.mark.parametrize("text", [
    "select 1; select 2",                       # two statements: single_statement() says why
    "select date $1 from",                      # does not parse: PREPARE says why
    "select * from t where a = $1",             # already plannable
    "select $1",
    "",
])
def test_text_it_cannot_or_need_not_improve_is_left_as_it_is(text):
    assert plannable(text).text == text and not plannable(text).rewritten


# ---------------------------------------------------------------- PostgreSQL's verdict

LITERAL = [
    # (literal statement as psql or a BI tool sends it, parameter types once rewritten)
    ("SELECT id, price FROM lit_orders WHERE shipped = date '1995-03-15'", ["date"]),
    ("SELECT count(*) FROM lit_orders WHERE shipped <= date '1998-12-01' - interval '90' day",
     ["date", "interval"]),
    ("SELECT extract(year FROM shipped) AS y, sum(price * (1 - discount)) FROM lit_orders "
     "WHERE shipped BETWEEN date '1995-01-01' AND date '1996-12-31' GROUP BY 1",
     ["text", "numeric", "date", "date"]),
    ("SELECT sum(CASE WHEN priority = '1-URGENT' THEN 1 ELSE 0 END) FROM lit_orders "
     "WHERE shipped >= timestamp '1994-01-01 00:00' AND qty <= 1 + 10",
     ["text", "integer", "integer", "timestamp without time zone", "integer", "integer"]),
    ("SELECT count(*) FROM lit_orders WHERE discount BETWEEN 0.06 - 0.01 AND 0.06 + 0.01",
     ["integer", "integer", "integer", "integer"]),
    ("SELECT count(*) FROM lit_orders WHERE shipped > current_date - 7 AND id = any(array[1, 2, 3])",
     ["integer", "integer", "integer", "integer"]),
]


@pytest.fixture
def literal_db(conn: psycopg.Connection) -> psycopg.Connection:
    conn.execute("CREATE TABLE lit_orders (id int, shipped date, price numeric, discount numeric(15,2), "
                 "qty int, priority text)")
    conn.execute("INSERT INTO lit_orders SELECT g, date '1992-01-01' + g % 2500, g % 1000, (g % 11) / 100.0, "
                 "g % 50, (g % 5 + 1) || '-X' FROM generate_series(1, 60000) g")
    conn.execute("ANALYZE lit_orders")
    return conn


def normalized(conn: psycopg.Connection, sql: str) -> str:
    """The text pg_stat_statements keeps of `sql`, run once."""
    conn.execute(sql).fetchall()
    qid = conn.execute(f"EXPLAIN (VERBOSE, FORMAT JSON) {sql}").fetchone()[0][0]["Query Identifier"]
    return conn.execute("SELECT query FROM pg_stat_statements WHERE queryid = %s", (qid,)).fetchone()[0]


def prepared_types(conn: psycopg.Connection, text: str) -> list[str]:
    conn.execute(f"PREPARE lit AS {text}")
    try:
        return conn.execute("SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = 'lit'"
                            ).fetchone()[0]
    finally:
        conn.execute("DEALLOCATE lit")


@pytest.mark.parametrize("sql, types", LITERAL)
def test_normalized_literal_statements_prepare_once_rewritten(literal_db: psycopg.Connection, sql, types):
    conn = literal_db
    text = normalized(conn, sql)
    with pytest.raises(psycopg.Error):              # as captured, PostgreSQL cannot prepare it
        prepared_types(conn, text)
    for p in variants(text):                        # the order WhatIf tries them in
        try:
            assert prepared_types(conn, p.text) == types
            break
        except psycopg.Error:
            continue
    else:
        pytest.fail(f"no variant of {text!r} prepares")


# ---------------------------------------------------------------- recommend(), in the database

def test_recommend_analyses_literal_statements_run_once(literal_db: psycopg.Connection):
    conn = literal_db
    role = "cov_lit_" + conn.info.dbname[-8:]
    conn.execute(f"CREATE ROLE {role} LOGIN")
    try:
        conn.execute(f"GRANT SELECT ON lit_orders TO {role}")
        conn.execute("SELECT optischema.set_setting('statement_coverage', '1')")   # every one, however light
        conn.execute("SELECT optischema.snapshot()")
        # each statement once, sent by an application role: planned as that role
        with psycopg.connect(conn.info.dsn, user=role, autocommit=True) as app:
            qids = []
            for sql, _ in LITERAL:
                app.execute(sql).fetchall()
                qids.append(app.execute(f"EXPLAIN (VERBOSE, FORMAT JSON) {sql}").fetchone()[0][0]["Query Identifier"])
        recs = conn.execute("SELECT kind, ddl, queryids FROM optischema.recommend(50)").fetchall()
        stats, skipped = conn.execute("SELECT stats, skipped FROM optischema.analyses ORDER BY id DESC LIMIT 1"
                                      ).fetchone()
    finally:
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")
    assert [s for s in skipped if s["queryid"] in qids] == []
    assert all(stats["planned_text"][str(q)].startswith("rewritten: ") for q in qids), stats["planned_text"]
    assert "typed literal as a cast" in stats["planned_text"][str(qids[0])]
    served = {q for kind, _, queryids in recs if kind == "create_index" for q in queryids}
    assert qids[0] in served, recs              # one day of 2500: worth an index on shipped
