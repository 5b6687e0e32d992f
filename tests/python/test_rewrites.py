"""Query rewrite advice without an LLM (issue 12), on a real cluster: each pattern found in a
captured statement, proven (same rows, lower cost, as the statement's sender, READ ONLY,
rolled back, with statement_timeout) and shown; and the traps, rewrites that look right but
are not equal, never shown."""
from __future__ import annotations

import psycopg
import pytest

from optischema_engine import senders
from optischema_engine.proof import Statement, prove
from optischema_engine.rewrites import candidates
from optischema_engine.safe_select import Rejected
from optischema_sidecar.handlers import HANDLERS
from optischema_sidecar.proof_session import proof_session
from optischema_sidecar.rewrites import check

APP = "h3_rewrite_app"

STATEMENTS = {
    "day": "SELECT count(*) FROM events WHERE created_at::date = %s::date",
    "q17": "SELECT sum(l.l_extendedprice) / 7.0 AS avg_yearly FROM lineitem l, part p"
           " WHERE p.p_partkey = l.l_partkey AND p.p_brand = %s"
           " AND l.l_quantity < (SELECT 0.2 * avg(l2.l_quantity) FROM lineitem l2 WHERE l2.l_partkey = p.p_partkey)",
    "not_in": "SELECT count(*) FROM orders WHERE customer_id NOT IN (SELECT id FROM customers WHERE region = %s)",
    "not_in_nullable": "SELECT count(*) FROM orders WHERE ref NOT IN (SELECT id FROM customers WHERE region = %s)",
}


@pytest.fixture
def app(conn: psycopg.Connection, db_dsn: str):
    """Tables owned by a non-superuser application role, its statements run as it (so they
    are proven as it), two snapshots around them. Yields (conn, {name: queryid})."""
    conn.execute(f"DROP ROLE IF EXISTS {APP}")
    conn.execute(f"CREATE ROLE {APP}")
    try:
        conn.execute(f"GRANT CREATE ON SCHEMA public TO {APP}")
        conn.execute(f"ALTER DATABASE {conn.info.dbname} SET timezone = 'Europe/Berlin'")
        # NOT IN's subquery no longer fits in memory: it is run again for every outer row
        conn.execute(f"ALTER DATABASE {conn.info.dbname} SET work_mem = '64kB'")
        conn.execute("SET timezone = 'Europe/Berlin'")
        conn.execute(f"SET ROLE {APP}")
        conn.execute("CREATE TABLE events (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, kind text)")
        # every 10 minutes of March and April 2024: the days around the change to summer time included
        conn.execute("INSERT INTO events SELECT g, timestamptz '2024-03-01 00:05 Europe/Berlin' + g * interval '10 minutes',"
                     " 'k' || g % 5 FROM generate_series(0, 8783) g")
        conn.execute("CREATE INDEX ON events (created_at)")
        conn.execute("CREATE TABLE part (p_partkey int PRIMARY KEY, p_brand text NOT NULL)")
        conn.execute("CREATE TABLE lineitem (l_partkey int NOT NULL, l_quantity numeric NOT NULL,"
                     " l_extendedprice numeric NOT NULL)")
        conn.execute("INSERT INTO part SELECT g, 'Brand#' || g % 25 FROM generate_series(1, 400) g")
        conn.execute("INSERT INTO lineitem SELECT g % 400 + 1, (g / 400) % 50 + 1, g % 1000 FROM generate_series(1, 10000) g")
        conn.execute("CREATE TABLE customers (id int PRIMARY KEY, region text NOT NULL)")
        conn.execute("CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, ref int)")
        conn.execute("INSERT INTO customers SELECT g, 'r' || g % 7 FROM generate_series(1, 30000) g")
        conn.execute("INSERT INTO orders SELECT g, g % 40000 + 1, CASE WHEN g % 9 <> 0 THEN g % 40000 + 1 END"
                     " FROM generate_series(1, 1000) g")
        conn.execute("ANALYZE events, part, lineitem, customers, orders")
        conn.execute("RESET ROLE")
        conn.execute("SELECT optischema.snapshot()")
        conn.execute(f"SET ROLE {APP}")
        for i in range(3):
            conn.execute(STATEMENTS["day"], (f"2024-03-{29 + i}",))
            conn.execute(STATEMENTS["q17"], (f"Brand#{i + 1}",))
            conn.execute(STATEMENTS["not_in"], (f"r{i}",))
            conn.execute(STATEMENTS["not_in_nullable"], (f"r{i}",))
        conn.execute("RESET ROLE")
        conn.execute("SELECT optischema.snapshot()")
        ids = {}
        for name, marker in (("day", "created_at::date"), ("q17", "avg_yearly"),
                             ("not_in", "customer_id NOT IN"), ("not_in_nullable", "ref NOT IN")):
            ids[name] = conn.execute("SELECT queryid FROM optischema.queries WHERE strpos(query, %s) > 0",
                                     (marker,)).fetchone()[0]
        yield conn, ids
    finally:
        conn.execute("RESET ROLE")
        conn.execute(f"DROP OWNED BY {APP}")
        conn.execute(f"DROP ROLE {APP}")


def rewrites(conn: psycopg.Connection) -> dict[int, tuple]:
    return {r[0]: r[1:] for r in conn.execute(
        "SELECT queryids[1], status, ddl, benefit, evidence, explanation, title FROM optischema.recommendations"
        " WHERE kind = 'rewrite' AND source = 'advisor' ORDER BY id")}


def text(conn: psycopg.Connection, queryid: int) -> str:
    return conn.execute("SELECT query FROM optischema.queries WHERE queryid = %s", (queryid,)).fetchone()[0]


def test_patterns_are_proven_and_shown(app) -> None:
    conn, ids = app
    result = check(conn)
    got = rewrites(conn)
    by_pattern = {(c["queryid"], c["pattern"]): c for c in result["candidates"]}

    # a cast over an indexed timestamptz column: a range on the column, which the index serves
    status, sql, benefit, evidence, explanation, title = got[ids["day"]]
    assert status == "open" and title.startswith(f"Rewrite query {ids['day']}: a range")
    assert sql == "SELECT count(*) FROM events WHERE created_at >= CAST($1 AS date) AND created_at < (CAST($1 AS date) + 1)"
    assert benefit["cost_after"] < benefit["cost_before"]
    assert evidence["run_as"] == APP and evidence["pattern"] == "cast_over_column"
    assert any(n.get("index") for n in evidence["plan_after"]) and not any(n.get("index") for n in evidence["plan_before"])
    assert len(evidence["runs"]) >= 2 and all(r["same"] for r in evidence["runs"])
    assert sum(r["rows"]["original"] for r in evidence["runs"]) > 0      # the proof compared real rows

    # TPC-H Q17's shape: the correlated subquery as a grouped LEFT JOIN
    status, sql, benefit, evidence, explanation, _ = got[ids["q17"]]
    # (pg_stat_statements took the constants 7.0 and 0.2 out: $2 and $3)
    assert "LEFT JOIN (SELECT l2.l_partkey AS optischema_k1, $3 * avg(l2.l_quantity) AS optischema_v FROM lineitem AS l2" \
           " GROUP BY l2.l_partkey) AS optischema_s1 ON optischema_s1.optischema_k1 = p.p_partkey" in sql
    assert "l.l_quantity < optischema_s1.optischema_v" in sql and "NULL where no row matches" in explanation
    assert benefit["cost_after"] < benefit["cost_before"] / 2

    # NOT IN over NOT NULL columns, whose subquery does not fit in work_mem: NOT EXISTS
    assert by_pattern[(ids["not_in"], "not_in")]["accepted"], by_pattern[(ids["not_in"], "not_in")]
    status, sql, benefit, evidence, explanation, _ = got[ids["not_in"]]
    assert sql == "SELECT count(*) FROM orders WHERE NOT EXISTS (SELECT 1 FROM customers WHERE region = $1" \
                  " AND orders.customer_id = id)"
    assert "both columns are NOT NULL" in explanation and benefit["cost_after"] < benefit["cost_before"]
    # a nullable column: never proposed
    assert not any(c["queryid"] == ids["not_in_nullable"] for c in result["candidates"])
    assert ids["not_in_nullable"] not in got

    # what ran left nothing behind, and the shown SQL is the statement's own text, rewritten
    assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0
    assert result["proven"] == len(got) and result["recommendation_ids"]


def test_rewrites_are_not_applied_but_dismissed_and_superseded(app) -> None:
    conn, ids = app
    check(conn)
    rec = conn.execute("SELECT id FROM optischema.recommendations WHERE kind = 'rewrite' AND %s = ANY (queryids)",
                       (ids["day"],)).fetchone()[0]
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="does not apply those"):
        conn.execute("SELECT optischema.apply(%s)", (rec,))
    conn.execute("SELECT optischema.dismiss(%s, 'the ORM writes this one')", (rec,))
    check(conn)                         # proven again: stays dismissed
    assert conn.execute("SELECT status FROM optischema.recommendations WHERE id = %s", (rec,)).fetchone()[0] == "dismissed"
    # the index the range uses is gone: the rewrite no longer costs less and is superseded
    q17 = conn.execute("SELECT id FROM optischema.recommendations WHERE kind = 'rewrite' AND %s = ANY (queryids)",
                       (ids["q17"],)).fetchone()[0]
    conn.execute("SELECT optischema.set_setting('rewrite_advice', 'off')")
    assert conn.execute("SELECT optischema.enqueue_rewrite_checks()").fetchone()[0] is None
    conn.execute("SELECT optischema.reset_setting('rewrite_advice')")
    conn.execute("DROP TABLE part CASCADE")
    result = check(conn)
    assert conn.execute("SELECT status FROM optischema.recommendations WHERE id = %s", (q17,)).fetchone()[0] == "superseded"
    assert result["statements_checked"] >= 1


def test_recommend_queues_the_job_and_the_sidecar_runs_it(app) -> None:
    conn, ids = app
    conn.execute("SELECT count(*) FROM optischema.recommend()")
    job = conn.execute("SELECT id FROM optischema.jobs WHERE kind = 'rewrites' AND status = 'pending'").fetchone()
    assert job is not None
    conn.execute("SELECT count(*) FROM optischema.recommend()")        # one waiting job is enough
    assert conn.execute("SELECT count(*) FROM optischema.jobs WHERE kind = 'rewrites'").fetchone()[0] == 1
    assert "rewrites" in HANDLERS


def test_not_in_with_nulls_is_rejected_by_the_proof(app) -> None:
    """The trap: NOT EXISTS looks like NOT IN, but a NULL in orders.ref makes them differ."""
    conn, ids = app
    st = Statement(ids["not_in_nullable"], text(conn, ids["not_in_nullable"]))
    wrong = "SELECT count(*) FROM orders WHERE NOT EXISTS (SELECT 1 FROM customers WHERE region = $1 AND orders.ref = id)"
    with proof_session(conn, "test") as db, pytest.raises(Rejected, match="different results|does not cost less"):
        prove(db, st, wrong, 5000, extra_sets=[["'r1'::text"]])
    # with the cost rule out of the way, the results alone reject it
    with proof_session(conn, "test") as db, pytest.raises(Rejected, match="different results for parameter set"):
        from optischema_engine import proof
        saved = proof._cost
        proof._cost = lambda wi, key, samples, what: (1.0, saved(wi, key, samples, what)[1]) \
            if what == "the rewrite" else (2.0, saved(wi, key, samples, what)[1])
        try:
            prove(db, st, wrong, 5000, extra_sets=[["'r1'::text"]])
        finally:
            proof._cost = saved


def test_a_day_as_24_hours_fails_across_the_change_to_summer_time(app) -> None:
    """The trap: `created_at < $1 + interval '24 hours'` is the same day except on 2024-03-31 in
    Europe/Berlin (23 hours); the advisor's `$1::date + 1` is right on that day too."""
    conn, ids = app
    st = Statement(ids["day"], text(conn, ids["day"]))
    dst = [["'2024-03-31'::date"]]
    wrong = ("SELECT count(*) FROM events WHERE created_at >= $1::date"
             " AND created_at < $1::date::timestamptz + interval '24 hours'")
    with proof_session(conn, "test") as db, pytest.raises(Rejected, match="different results for parameter set"):
        prove(db, st, wrong, 5000, extra_sets=dst)
    right = "SELECT count(*) FROM events WHERE created_at >= $1::date AND created_at < ($1::date + 1)"
    with proof_session(conn, "test") as db:
        proof = prove(db, st, right, 5000, extra_sets=dst)
    assert proof.runs[-1]["parameters"] == dst[0] and proof.runs[-1]["same"]


def test_the_proof_runs_as_the_sender_and_refuses_side_effects(app) -> None:
    conn, ids = app
    st = Statement(ids["day"], text(conn, ids["day"]))
    with proof_session(conn, "test") as db, pytest.raises(Rejected, match="pg_sleep"):
        prove(db, st, "SELECT count(*) FROM events WHERE created_at >= $1::date AND pg_sleep(0) IS NOT NULL", 5000)
    # a table the original does not read
    conn.execute("CREATE TABLE secret (x int)")
    with proof_session(conn, "test") as db, pytest.raises(Rejected, match="reads public.secret, which the original does not"):
        prove(db, st, "SELECT count(*) FROM events, secret WHERE created_at >= $1::date", 5000)
    # run as the sender, which may not read it: refused before anything runs
    conn.execute(f"REVOKE ALL ON events FROM {APP}; ALTER TABLE events OWNER TO CURRENT_USER")
    with proof_session(conn, "test") as db, pytest.raises(Rejected, match="permission denied"):
        prove(db, st, "SELECT count(*) FROM events WHERE created_at >= $1::date AND created_at < $1::date + 1", 5000)
    # a check that runs too long is stopped by statement_timeout, and says so
    with proof_session(conn, "test") as db, pytest.raises(Rejected, match=r"exceeded statement_timeout \(1 ms\)"):
        prove(db, Statement(ids["q17"], text(conn, ids["q17"])), text(conn, ids["q17"]), 1)


def test_verify_compares_the_rewritten_statement_once_the_application_runs_it(app) -> None:
    conn, ids = app
    check(conn)
    rec = conn.execute("SELECT id FROM optischema.recommendations WHERE kind = 'rewrite' AND %s = ANY (queryids)",
                       (ids["day"],)).fetchone()[0]
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="no captured statement runs yet"):
        conn.execute("SELECT * FROM optischema.verify(%s)", (rec,))
    # the application's own spelling of the rewrite, with its own constants
    conn.execute(f"SET ROLE {APP}")
    for day in ("2024-03-29", "2024-03-30", "2024-03-31"):
        conn.execute("SELECT count(*) FROM events WHERE created_at >= %s::date AND created_at < %s::date + 1", (day, day))
    conn.execute("RESET ROLE")
    conn.execute("SELECT optischema.snapshot()")
    check(conn)
    new = conn.execute("SELECT queryid FROM optischema.queries WHERE strpos(query, 'created_at >= $1::date') > 0"
                       ).fetchone()[0]
    adopted = conn.execute("SELECT evidence -> 'adopted_by' FROM optischema._recommendations WHERE id = %s",
                           (rec,)).fetchone()[0]
    assert adopted == [new]
    rows = conn.execute("SELECT queryid, calls_before, calls_after, verdict FROM optischema.verify(%s)", (rec,)).fetchall()
    assert (ids["day"], 3, None, "replaced") in rows and (new, None, 3, "rewrite") in rows
    assert rows[-1] == (None, 3, 3, "insufficient_data")         # verify_min_calls (10) calls after
    conn.execute("SELECT optischema.set_setting('verify_min_calls', '3')")
    total = conn.execute("SELECT * FROM optischema.verify(%s)", (rec,)).fetchall()[-1]
    assert total[5] is not None and total[6] in ("improved", "neutral", "regressed")


RANGE_REWRITE = ("SELECT count(*) FROM accounts WHERE id <= CASE WHEN CAST($1 AS numeric) >= -9223372036854775808"
                 " THEN CAST(LEAST(pg_catalog.floor(CAST($1 AS numeric)), 9223372036854775807) AS bigint) END")


@pytest.fixture
def mismatch(conn: psycopg.Connection):
    """A bigint key queried with the value bound as numeric, as its application role:
    (conn, queryid of the equality, queryid of the range)."""
    conn.execute("DROP ROLE IF EXISTS h7_rewrite_app")
    conn.execute("CREATE ROLE h7_rewrite_app")
    try:
        conn.execute("GRANT CREATE ON SCHEMA public TO h7_rewrite_app")
        conn.execute("SET ROLE h7_rewrite_app")
        conn.execute("CREATE TABLE accounts (id bigint PRIMARY KEY, balance int NOT NULL)")
        conn.execute("INSERT INTO accounts SELECT g, g % 1000 FROM generate_series(1, 20000) g")
        conn.execute("ANALYZE accounts")
        conn.execute("RESET ROLE")
        conn.execute("SELECT optischema.snapshot()")
        conn.execute("SET ROLE h7_rewrite_app")
        for i in range(3):
            conn.execute("SELECT balance FROM accounts WHERE id = %s::numeric", (100 + i,))
            conn.execute("SELECT count(*) FROM accounts WHERE id <= %s::numeric", (50 + i,))
        conn.execute("RESET ROLE")
        conn.execute("SELECT optischema.snapshot()")
        yield conn, *(conn.execute("SELECT queryid FROM optischema.queries WHERE strpos(query, %s) > 0",
                                   (marker,)).fetchone()[0] for marker in ("id = $1::numeric", "id <= $1::numeric"))
    finally:
        conn.execute("RESET ROLE")
        conn.execute("DROP OWNED BY h7_rewrite_app")
        conn.execute("DROP ROLE h7_rewrite_app")


def test_an_integer_key_bound_as_numeric_is_compared_as_its_type(mismatch) -> None:
    conn, qid, qrange = mismatch
    result = check(conn)
    assert any(c["queryid"] == qid and c["pattern"] == "type_mismatch" and c["accepted"] for c in result["candidates"])
    status, sql, benefit, evidence, explanation, title = rewrites(conn)[qid]
    assert status == "open" and title.startswith(f"Rewrite query {qid}: the value as the column's integer type")
    assert sql.startswith("SELECT balance FROM accounts WHERE id = CASE WHEN CAST($1 AS numeric) = "
                          "pg_catalog.trunc(CAST($1 AS numeric))")
    assert sql.endswith("THEN CAST(CAST($1 AS numeric) AS bigint) END")
    assert benefit["cost_after"] < benefit["cost_before"] and evidence["run_as"] == "h7_rewrite_app"
    assert any(n.get("index") for n in evidence["plan_after"]) and not any(n.get("index") for n in evidence["plan_before"])
    assert "bind the parameter as bigint in the application" in explanation
    # a range is found too (today no statistic gives `id::numeric <= $1` values to prove it with: below, given ones)
    assert any(c["queryid"] == qrange and c["pattern"] == "type_mismatch" for c in result["candidates"])


def test_a_fraction_or_a_value_out_of_range_gives_no_row_and_no_error(mismatch) -> None:
    """The traps: `id = $1::bigint` rounds 100.5 to 101 (a row the original does not return)
    and fails on 1e30 (the original returns no row); the advisor's CASE does neither."""
    conn, qid, qrange = mismatch
    st = Statement(qid, text(conn, qid))
    odd = [["'100.5'::numeric"], ["'1e30'::numeric"], ["'-9223372036854775809'::numeric"], ["'NaN'::numeric"],
           ["NULL::numeric"], ["'100.000'::numeric"]]
    with proof_session(conn, "test") as db, pytest.raises(Rejected, match="different results for parameter set"):
        prove(db, st, "SELECT balance FROM accounts WHERE id = $1::numeric::bigint", 5000, extra_sets=odd[:1])
    with proof_session(conn, "test") as db, pytest.raises(Rejected, match="failed with SQLSTATE 22003"):
        prove(db, st, "SELECT balance FROM accounts WHERE id = $1::numeric::bigint"
                      " AND $1::numeric = trunc($1::numeric)", 5000, extra_sets=odd[1:2])
    check(conn)
    with proof_session(conn, "test") as db:
        proof = prove(db, st, rewrites(conn)[qid][1], 5000, extra_sets=odd)
    assert [r["rows"] for r in proof.runs[-len(odd):]] == [{"original": n, "rewrite": n} for n in (0, 0, 0, 0, 0, 1)]
    # a range: `id <= 50.5` is `id <= 50`, not 51; every id for 1e30 and NaN, none for -1e30 and NULL
    st = Statement(qrange, text(conn, qrange))
    with proof_session(conn, "test") as db, pytest.raises(Rejected, match="different results for parameter set"):
        prove(db, st, "SELECT count(*) FROM accounts WHERE id <= $1::numeric::bigint", 5000, extra_sets=[["'50.5'::numeric"]])
    odd = [["'50.5'::numeric"], ["'1e30'::numeric"], ["'-1e30'::numeric"], ["'NaN'::numeric"], ["NULL::numeric"]]
    with proof_session(conn, "test") as db:
        proof = prove(db, st, RANGE_REWRITE, 5000, extra_sets=odd)
    assert all(r["same"] for r in proof.runs) and len(proof.runs) == len(odd)   # the counts compared in the digest
    assert proof.cost_after < proof.cost_before


OVER = "h12_over_app"


@pytest.fixture
def over_column(conn: psycopg.Connection):
    """Columns an index leads with, hidden from it by a no-op, coalesce() or extract(year),
    queried as an application role in Europe/Berlin: (conn, {name: queryid}). Readings every
    2 hours from 2015-01-01 00:30 in Berlin (23:30 UTC the day before)."""
    conn.execute(f"DROP ROLE IF EXISTS {OVER}")
    conn.execute(f"CREATE ROLE {OVER}")
    try:
        conn.execute(f"GRANT CREATE ON SCHEMA public TO {OVER}")
        conn.execute(f"ALTER DATABASE {conn.info.dbname} SET timezone = 'Europe/Berlin'")
        conn.execute("SET timezone = 'Europe/Berlin'")
        conn.execute(f"SET ROLE {OVER}")
        conn.execute("CREATE TABLE readings (id bigint PRIMARY KEY, taken_at timestamptz NOT NULL, amount bigint,"
                     " code text, ratio real, created date)")
        conn.execute("INSERT INTO readings SELECT g, timestamptz '2015-01-01 00:30 Europe/Berlin' + g * interval '2 hours',"
                     " CASE WHEN g % 10 <> 0 THEN g % 5000 END, 'c' || g % 3000, (g % 1000)::real / 8,"
                     " date '2015-01-01' + g / 12 FROM generate_series(0, 39999) g")
        for col in ("taken_at", "amount", "code", "ratio", "created"):
            conn.execute(f"CREATE INDEX ON readings ({col})")
        conn.execute("ANALYZE readings")
        conn.execute("RESET ROLE")
        conn.execute("SELECT optischema.snapshot()")
        conn.execute(f"SET ROLE {OVER}")
        for i in range(3):
            conn.execute("SELECT id FROM readings WHERE coalesce(amount, %s) = %s", (0, 77 + i))
            conn.execute(f"SELECT id FROM readings WHERE amount + 0 = {77 + i}")
            conn.execute(f"SELECT id FROM readings WHERE code || '' = 'c{77 + i}'")
            conn.execute(f"SELECT id FROM readings WHERE extract(year FROM taken_at) = {2019 + i}")
            conn.execute(f"SELECT id FROM readings WHERE date_part('year', created) = {2019 + i}")
            conn.execute(f"SELECT id FROM readings WHERE ratio + 0 = {1 + i}")
        conn.execute("RESET ROLE")
        conn.execute("SELECT optischema.snapshot()")
        ids = {name: conn.execute("SELECT queryid FROM optischema.queries WHERE strpos(query, %s) > 0",
                                  (marker,)).fetchone()[0]
               for name, marker in (("coalesce", "coalesce(amount"), ("amount", "amount + $1"), ("code", "code ||"),
                                    ("year", "extract($1 FROM taken_at)"), ("date_part", "date_part($1, created)"),
                                    ("ratio", "ratio + $1"))}
        yield conn, ids
    finally:
        conn.execute("RESET ROLE")
        conn.execute(f"DROP OWNED BY {OVER}")
        conn.execute(f"DROP ROLE {OVER}")


def advised(conn: psycopg.Connection, qid: int, sql: str, extra_sets=None) -> dict[str, tuple]:
    """The rewrites the advisor finds in `sql` (an execution's text, constants included, as
    pg_stat_activity shows a statement seen running) and their proofs, by pattern, as the
    sidecar's job makes them: as the sender of statement `qid`."""
    with proof_session(conn, "test") as db:
        who = senders.resolve_one(db, [qid]).sender
        with senders.planning(db) as planning:
            found, why = candidates(planning, who, sql)
    assert why is None
    out = {}
    for c in found:
        with proof_session(conn, "test") as db:
            out[c.pattern] = (c, prove(db, Statement(qid, sql), c.sql, 5000, extra_sets=extra_sets,
                                       derive=c.derive))
    return out


def test_coalesce_of_an_indexed_column_is_proven_and_shown(over_column) -> None:
    """pg_stat_statements shows `coalesce(amount, $1) = $2`: the rewrite holds for every $1."""
    conn, ids = over_column
    result = check(conn)
    qid = ids["coalesce"]
    assert [(c["pattern"], c["accepted"]) for c in result["candidates"] if c["queryid"] == qid] == \
        [("coalesce_over_column", True)], result
    # extract(year ...) and `amount + 0` as pg_stat_statements shows them: a field and an addend
    # that are parameters, of any value: not proposed (an execution's text is, below)
    assert not any(c["queryid"] in (ids["year"], ids["amount"]) for c in result["candidates"])
    status, sql, benefit, evidence, explanation, title = rewrites(conn)[qid]
    assert title.startswith(f"Rewrite query {qid}: the column itself or NULL instead of coalesce()")
    assert sql == ("SELECT id FROM readings WHERE amount = $2 OR (amount IS NULL AND"
                   " COALESCE(amount, $1) = $2)")
    assert benefit["cost_after"] < benefit["cost_before"] and evidence["run_as"] == OVER
    assert any(n.get("index") for n in evidence["plan_after"]) and not any(n.get("index") for n in evidence["plan_before"])
    # NULL for either, and the NULL rows found through $1 = $2, on the same rows
    st = Statement(qid, text(conn, qid))
    odd = [["'0'::bigint", "'0'::bigint"], ["NULL::bigint", "'77'::bigint"], ["'0'::bigint", "NULL::bigint"],
           ["'5'::bigint", "'77'::bigint"]]
    with proof_session(conn, "test") as db:
        proof = prove(db, st, sql, 5000, extra_sets=odd)
    assert [r["rows"]["original"] for r in proof.runs[-4:]] == [4000, 8, 0, 8] and all(r["same"] for r in proof.runs)
    # the trap: the column's rows alone miss the NULL rows coalesce() gives $1 for
    with proof_session(conn, "test") as db, pytest.raises(Rejected, match="different results for parameter set"):
        prove(db, st, "SELECT id FROM readings WHERE coalesce(amount, $1) = $2 AND amount IS NOT NULL", 5000,
              extra_sets=odd[:1])


def test_a_no_op_over_an_indexed_column_is_taken_away(over_column) -> None:
    conn, ids = over_column
    (c, proof), = advised(conn, ids["amount"], "SELECT id FROM readings WHERE amount + 0 = 77").values()
    assert c.pattern == "no_op_over_column" and proof.rewrite == "SELECT id FROM readings WHERE amount = 77"
    assert proof.cost_after < proof.cost_before and proof.runs[0]["rows"]["original"] == 8 and proof.runs[0]["same"]
    assert "hides the column from its index" in c.explanation
    (c, proof), = advised(conn, ids["code"], "SELECT id FROM readings WHERE code || '' = 'c77'").values()
    assert proof.rewrite == "SELECT id FROM readings WHERE code = 'c77'" and proof.cost_after < proof.cost_before
    # real + 0 is a double precision: not the column's own type, so not proposed ...
    assert advised(conn, ids["ratio"], "SELECT id FROM readings WHERE ratio + 0 = $1") == {}
    # ... and where a driver binds the value for it, the two do not take the same parameter
    with proof_session(conn, "test") as db, pytest.raises(Rejected, match="parameters"):
        prove(db, Statement(ids["ratio"], "SELECT id FROM readings WHERE ratio + 0 = $1"),
              "SELECT id FROM readings WHERE ratio = $1", 5000)


def test_a_year_of_an_indexed_column_becomes_a_range_in_the_session_time_zone(over_column) -> None:
    conn, ids = over_column
    sql = "SELECT id FROM readings WHERE extract(year FROM taken_at) = $1"
    odd = [["'2020'::numeric"], ["'2020.5'::numeric"], ["'0'::numeric"], ["'-1'::numeric"], ["'NaN'::numeric"],
           ["'Infinity'::numeric"], ["'1e30'::numeric"], ["NULL::numeric"], ["'294276'::numeric"]]
    (c, proof), = advised(conn, ids["year"], sql, extra_sets=odd).values()
    assert c.pattern == "cast_over_column" and "make_date(CAST(CAST($1 AS numeric) AS integer), 1, 1)" in proof.rewrite
    assert proof.cost_after < proof.cost_before and any(n.get("index") for n in proof.plan_after)
    # 2020 in Berlin: 4392 readings, the first at 00:30 on New Year's Day (23:30 UTC)
    assert [r["rows"]["original"] for r in proof.runs[-len(odd):]] == [4392, 0, 0, 0, 0, 0, 0, 0, 0]
    assert all(r["same"] for r in proof.runs)
    # the traps: a year in UTC is not the session's; a fraction rounded is a year
    st = Statement(ids["year"], sql)
    utc = ("SELECT id FROM readings WHERE taken_at >= make_timestamptz($1::numeric::int, 1, 1, 0, 0, 0, 'UTC')"
           " AND taken_at < make_timestamptz($1::numeric::int + 1, 1, 1, 0, 0, 0, 'UTC')")
    rounded = ("SELECT id FROM readings WHERE taken_at >= make_date($1::numeric::int, 1, 1)"
               " AND taken_at < make_date($1::numeric::int + 1, 1, 1)")
    for wrong, sets in ((utc, odd[:1]), (rounded, odd[1:2])):
        with proof_session(conn, "test") as db, pytest.raises(Rejected, match="different results for parameter set"):
            prove(db, st, wrong, 5000, extra_sets=sets)
    # date_part() of a date column: the same
    (c, proof), = advised(conn, ids["date_part"], "SELECT id FROM readings WHERE date_part('year', created) = 2020"
                          ).values()
    assert proof.runs[0]["rows"]["original"] == 366 * 12 and proof.cost_after < proof.cost_before
    # a month is no one range (the same statement for pg_stat_statements: the field is a constant)
    assert advised(conn, ids["year"], "SELECT id FROM readings WHERE extract(month FROM taken_at) = 1") == {}


PAGES = "h12_pages_app"


@pytest.fixture
def pages(conn: psycopg.Connection):
    """200,000 posts, four to a minute (created_at alone has ties), an index on (created_at,
    id), a nullable note; read page by page by an application role: (conn, queryid of one of
    its statements)."""
    conn.execute(f"DROP ROLE IF EXISTS {PAGES}")
    conn.execute(f"CREATE ROLE {PAGES}")
    try:
        conn.execute(f"GRANT CREATE ON SCHEMA public TO {PAGES}")
        conn.execute(f"SET ROLE {PAGES}")
        conn.execute("CREATE TABLE posts (id bigint PRIMARY KEY, created_at timestamptz NOT NULL,"
                     " author int NOT NULL, note text)")
        conn.execute("INSERT INTO posts SELECT g, timestamptz '2024-01-01 00:00+00' + (g / 4) * interval '1 minute',"
                     " g % 97, CASE WHEN g % 3 <> 0 THEN 'n' || g % 10 END FROM generate_series(1, 200000) g")
        conn.execute("CREATE INDEX ON posts (created_at, id)")
        conn.execute("ANALYZE posts")
        conn.execute("RESET ROLE")
        conn.execute("SELECT optischema.snapshot()")
        conn.execute(f"SET ROLE {PAGES}")
        for page in (7000, 7001):
            conn.execute("SELECT id, author FROM posts WHERE author <> 3 ORDER BY created_at, id LIMIT 20 OFFSET %s",
                         (20 * page,))
        conn.execute("RESET ROLE")
        conn.execute("SELECT optischema.snapshot()")
        yield conn, conn.execute("SELECT queryid FROM optischema.queries WHERE strpos(query, 'FROM posts') > 0"
                                 ).fetchone()[0]
    finally:
        conn.execute("RESET ROLE")
        conn.execute(f"DROP OWNED BY {PAGES}")
        conn.execute(f"DROP ROLE {PAGES}")


def test_a_deep_offset_becomes_keyset_pagination_proven_on_the_rows(pages) -> None:
    conn, qid = pages
    sql = "SELECT id, author FROM posts WHERE author <> 3 ORDER BY created_at, id LIMIT 20 OFFSET 140000"
    (c, proof), = advised(conn, qid, sql).values()
    assert c.pattern == "keyset_pagination"
    assert proof.rewrite == ("SELECT id, author FROM posts WHERE author <> 3 AND (created_at, id) > ($1, $2)"
                             " ORDER BY created_at, id LIMIT 20")
    assert "$1, $2 are the created_at, id of the previous page's last row (row 140000" in c.explanation
    assert "the first page is the statement without `(created_at, id) > ($1, $2)`" in c.explanation
    # the rewrite's parameters: the key of row 140000 of the original order, read as the sender
    last = conn.execute("SELECT created_at::text, id FROM posts WHERE author <> 3 ORDER BY created_at, id"
                        " OFFSET 139999 LIMIT 1").fetchone()
    (run,) = proof.runs
    assert run["parameters"] == [] and run["same"] and run["rows"] == {"original": 20, "rewrite": 20}
    assert run["rewrite_parameters"] == [f"'{last[0]}'::pg_catalog.timestamptz", f"'{last[1]}'::pg_catalog.int8"], run
    assert proof.sources == {"1": "derived: from the original's rows, as its sender",
                             "2": "derived: from the original's rows, as its sender"}
    assert proof.cost_after * 100 < proof.cost_before
    assert any(n.get("index") for n in proof.plan_after)
    # descending, one column: `<`; row 100000 from the top is id 100001
    (c, proof), = advised(conn, qid, "SELECT id FROM posts ORDER BY id DESC LIMIT 50 OFFSET 100000").values()
    assert proof.rewrite == "SELECT id FROM posts WHERE id < $1 ORDER BY id DESC LIMIT 50"
    assert proof.runs[0]["rewrite_parameters"] == ["'100001'::pg_catalog.int8"] and proof.runs[0]["same"]


@pytest.mark.parametrize("sql", [
    "SELECT id FROM posts ORDER BY created_at LIMIT 20 OFFSET 140000",          # ties: no unique key
    "SELECT id FROM posts ORDER BY note, id LIMIT 20 OFFSET 140000",            # a nullable column
    "SELECT id FROM posts ORDER BY created_at, id LIMIT 20 OFFSET 100",         # five pages in: shallow
    "SELECT id::text FROM posts ORDER BY id LIMIT 20 OFFSET 140000",            # sorts the text output
    "SELECT id FROM posts ORDER BY created_at DESC, id LIMIT 20 OFFSET 140000",  # two directions
])
def test_no_keyset_pagination_where_the_order_has_ties_or_nulls_or_the_offset_is_shallow(pages, sql: str) -> None:
    conn, qid = pages
    assert advised(conn, qid, sql) == {}


def test_a_wrong_derived_key_fails_the_proof(pages) -> None:
    """The traps: the key of the page's own first row (a row skipped), or `>=` (a row
    repeated): both are one row off, and the proof, comparing in order, rejects them."""
    conn, qid = pages
    sql = "SELECT id, author FROM posts WHERE author <> 3 ORDER BY created_at, id LIMIT 20 OFFSET 140000"
    (c, _), = advised(conn, qid, sql).values()
    st = Statement(qid, sql)
    for rewrite, derive in ((c.sql, c.derive.replace("OFFSET 139999", "OFFSET 140000")),
                            (c.sql.replace(") > (", ") >= ("), c.derive)):
        with proof_session(conn, "test") as db, pytest.raises(Rejected, match="different results for parameter set 1"):
            prove(db, st, rewrite, 5000, derive=derive)
    # and a rewrite taking more parameters than the original without a way to derive them
    with proof_session(conn, "test") as db, pytest.raises(Rejected, match="parameters"):
        prove(db, st, c.sql, 5000)

