"""The checks of the model's rewrite and config proposals against an attacker who controls
the model's answer (prompt injection) and the statements in pg_stat_statements.

A rewrite check runs the original statement and the rewrite; it must never run anything
with side effects (sleep, locks, signals, settings, large objects, files, user code), never
with more rights than the statement's sender, and never leave anything on a connection.
Probes are side effects, never timing: advisory locks in pg_locks, a backend still alive,
executions in pg_stat_statements (and by whom), a sequence that IMMUTABLE probe code
advances when it runs (nextval() survives a rollback), and what row-level security lets
each role see."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fake_llm import FakeLLM, answer, fake_llm  # noqa: F401 - fake_llm is a fixture
from psycopg import sql
from test_llm_analysis import fast, job, llm_recs, proposals, seed_workload  # noqa: F401 - fast is a fixture

from optischema_engine import safe_select
from optischema_sidecar.llm.analysis import run_analysis
from optischema_sidecar.llm.verdict import Rejected

GOOD = "SELECT o.id, o.total FROM orders o WHERE o.customer_id = $1"


def rewrite(text: str) -> dict:
    return {"kind": "rewrite", "queryid": None, "sql": text, "explanation": "x"}


def config(name: str, value: str, scope: str = "system") -> dict:
    return {"kind": "config", "name": name, "value": value, "scope": scope, "explanation": "x"}


@pytest.fixture
def tracked(fast: psycopg.Connection) -> psycopg.Connection:
    """pg_stat_statements sees nested statements too (the checks run inside a function),
    in this database's new sessions and in this one."""
    fast.execute(sql.SQL("ALTER DATABASE {} SET pg_stat_statements.track = 'all'").format(
        sql.Identifier(fast.info.dbname)))
    fast.execute("SET pg_stat_statements.track = 'all'")
    return fast


def executed(conn: psycopg.Connection, needle: str) -> int:
    """Executions in this database of a rewrite check's row-hashing query containing `needle`."""
    return conn.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
                        " WHERE d.datname = current_database() AND strpos(s.query, 'optischema_r') > 0"
                        " AND strpos(s.query, %s) > 0", (needle,)).fetchone()[0]


def advisory_locks(dsn: str, key: int) -> int:
    with psycopg.connect(dsn, autocommit=True) as other:
        return other.execute("SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                             " WHERE l.locktype = 'advisory' AND l.objid = %s AND d.datname = current_database()",
                             (key,)).fetchone()[0]


# -- the text, read by PostgreSQL's parser ------------------------------------------------------

@pytest.mark.parametrize("text, reason", [
    ("SELECT 1; SELECT 2", "is 2 statements, not one"),
    ("SELECT * INTO stolen FROM orders", "SELECT INTO, which creates a table"),
    ("SELECT * FROM orders FOR UPDATE", "locks rows"),
    ("SELECT * FROM (SELECT * FROM orders FOR SHARE) s", "locks rows"),
    ("WITH gone AS (DELETE FROM orders RETURNING *) SELECT * FROM gone", "data-modifying statement (DELETE)"),
    ("WITH x AS (UPDATE orders SET total = 0 RETURNING id) SELECT 1", "data-modifying statement (UPDATE)"),
    ("VACUUM orders", "not a SELECT but VACUUM"),
    ('SELECT (SELECT "pg_sleep"(2))', "calls pg_sleep, which sleeps"),
    ('SELECT pg_catalog."pg_advisory_lock"(4242)', "takes advisory locks"),
    ('SELECT "set_config"(\'work_mem\', \'1GB\', false)', "changes settings"),
    ("SELECT lo_import('/etc/passwd')", "uses large objects"),
    ("SELECT att.pwn()", "calls att.pwn, which is not a built-in function"),
    ("SELECT count(*) FROM orders WHERE id = ANY($1)", None),
    ("SELEC 1", "does not parse"),
])
def test_the_text_is_one_select_read_by_the_parser(text: str, reason: str | None) -> None:
    if reason is None:
        assert safe_select.parse(text, "the rewrite").text == text
        return
    with pytest.raises(Rejected) as raised:
        safe_select.parse(text, "the rewrite")
    assert reason in raised.value.reason


def test_checked_text_is_the_text_the_parser_read() -> None:
    select = safe_select.parse('SELECT o.id FROM orders o /* ) x; DROP TABLE orders; -- */ WHERE o.id = $1', "x")
    assert select.text == "SELECT o.id FROM orders AS o WHERE o.id = $1"


# -- finding 4: the bypasses of the old word-counting check ------------------------------------

def test_quoted_built_ins_with_side_effects_are_rejected_and_never_run(tracked: psycopg.Connection,
                                                                       fake_llm: FakeLLM, db_dsn: str) -> None:
    fast = tracked
    ids = seed_workload(fast)
    with psycopg.connect(db_dsn, autocommit=True) as victim:
        pid = victim.info.backend_pid
        fake_llm.script(answer({"proposals": [
            rewrite(GOOD + ' AND (SELECT "pg_sleep"(0.01)) IS NOT NULL'),
            rewrite(GOOD + ' AND (SELECT "pg_advisory_lock"(4242)) IS NOT NULL'),
            rewrite(GOOD + f' AND (SELECT "pg_terminate_backend"({pid})) IS NOT NULL'),
            rewrite(GOOD + " AND (SELECT \"set_config\"('work_mem', '1GB', false)) IS NOT NULL"),
            rewrite(GOOD + " AND (SELECT \"lo_import\"('/etc/hostname')) IS NOT NULL"),
            rewrite(GOOD),
        ]}))
        result = run_analysis(fast, job(ids["semi_join"]), None)

        # nothing ran: no execution recorded, no lock held, the other session alive
        assert advisory_locks(db_dsn, 4242) == 0
        assert victim.execute("SELECT 1").fetchone() == (1,)
        for name in ("pg_sleep", "pg_advisory_lock", "pg_terminate_backend", "set_config", "lo_import"):
            assert executed(fast, name) == 0, name
        assert executed(fast, "orders") > 0           # the probe sees the good rewrite's runs
        verdicts = proposals(fast)
        assert [v[1] for v in verdicts] == [False] * 5 + [True], verdicts
        for (_, _, reason), name, why in zip(verdicts, ["pg_sleep", "pg_advisory_lock", "pg_terminate_backend",
                                                        "set_config", "lo_import"],
                                             ["sleeps", "takes advisory locks", "signals other sessions",
                                              "changes settings", "uses large objects"]):
            assert reason == f"the rewrite calls {name}, which {why}: OptiSchema never runs it"
        assert result["accepted"] == 1 and len(llm_recs(fast)) == 1


def test_user_code_is_never_planned_or_run(fast: psycopg.Connection, fake_llm: FakeLLM) -> None:
    """User functions, operators and domains are resolved by the server before anything is
    planned: an IMMUTABLE function is otherwise run by the planner (constant folding). The
    probe is a sequence: nextval() is not undone by a rollback."""
    ids = seed_workload(fast)
    fast.execute("CREATE SEQUENCE probe_seq")
    fast.execute("CREATE FUNCTION probe(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS"
                 " $$BEGIN PERFORM nextval('public.probe_seq'); RETURN $1; END$$")
    fast.execute("CREATE FUNCTION probe_eq(int, int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS"
                 " $$BEGIN PERFORM nextval('public.probe_seq'); RETURN $1 = $2; END$$")
    fast.execute("CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = probe_eq)")
    fast.execute("CREATE DOMAIN probed AS int CHECK (probe(VALUE) IS NOT NULL)")
    fake_llm.script(answer({"proposals": [
        rewrite('SELECT o.id, o.total FROM orders o WHERE o.customer_id = "probe"($1)'),
        rewrite(GOOD + " AND $1 === $1"),
        rewrite("SELECT o.id, o.total FROM orders o WHERE o.customer_id = CAST($1 AS probed)"),
        rewrite(GOOD + " AND (SELECT count(*) FROM pg_catalog.pg_authid) > 0"),
    ]}))
    run_analysis(fast, job(ids["semi_join"]), None)

    assert fast.execute("SELECT is_called FROM probe_seq").fetchone() == (False,)
    reasons = [r for _, accepted, r in proposals(fast) if not accepted]
    assert len(reasons) == 4, proposals(fast)
    assert "calls public.probe(integer), which is not a built-in function" in reasons[0]
    assert "uses operator public.===(integer, integer), which is not built in" in reasons[1]
    assert "uses type public.probed, which is not built in" in reasons[2]
    assert reasons[3] == "the rewrite reads pg_authid, which the original does not"
    assert llm_recs(fast) == []


def test_a_statement_that_calls_volatile_functions_is_not_run_again(tracked: psycopg.Connection,
                                                                     fake_llm: FakeLLM) -> None:
    fast = tracked
    seed_workload(fast)
    for _ in range(3):
        fast.execute("SELECT o.id FROM orders o WHERE o.customer_id IN (SELECT c.id FROM customers c WHERE c.id = %s)"
                     " AND random() >= 0", (1,))
    fast.execute("SELECT optischema.snapshot()")
    queryid = fast.execute("SELECT queryid FROM optischema.queries WHERE strpos(query, 'random()') > 0").fetchone()[0]
    fake_llm.script(answer({"proposals": [
        rewrite("SELECT o.id FROM orders o WHERE o.customer_id = $1 AND random() >= $2")]}))
    run_analysis(fast, job(queryid), None)
    assert executed(fast, "random()") == 0
    (_, accepted, reason), = proposals(fast)
    assert not accepted and "the original calls pg_catalog.random(), which is volatile" in reason


# -- who runs it ------------------------------------------------------------------------------

@pytest.fixture
def app(fast: psycopg.Connection) -> Iterator[dict]:
    """An application role whose statement is analysed: it owns schema shop (on its own
    search_path only) and sees only its own notes (row-level security, forced)."""
    role = f"llm_app_{uuid.uuid4().hex[:8]}"
    ident = sql.Identifier(role)
    fast.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(ident))
    try:
        fast.execute(sql.SQL("CREATE SCHEMA shop AUTHORIZATION {}").format(ident))
        fast.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path = shop").format(
            ident, sql.Identifier(fast.info.dbname)))
        fast.execute("CREATE TABLE shop.notes (id int PRIMARY KEY, owner name NOT NULL, body text NOT NULL)")
        fast.execute("INSERT INTO shop.notes SELECT g, CASE WHEN g %% 3 = 0 THEN %s ELSE 'someone_else' END,"
                     " 'note ' || g FROM generate_series(1, 30000) g", (role,))
        fast.execute(sql.SQL("ALTER TABLE shop.notes OWNER TO {}").format(ident))
        fast.execute("ALTER TABLE shop.notes ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
        fast.execute("CREATE POLICY own ON shop.notes USING (owner = current_user)")
        fast.execute("ANALYZE shop.notes")
        fast.execute("SELECT optischema.snapshot()")
        fast.execute(sql.SQL("SET ROLE {}").format(ident))
        fast.execute("SET search_path = shop")
        # no constants, so no parameters: statistics are not used as parameter values where
        # row-level security hides rows from the statement's role
        for _ in range(3):
            fast.execute("SELECT n.id FROM notes n WHERE n.id IN (SELECT m.id FROM notes m WHERE m.owner IS NOT NULL)")
        fast.execute("RESET ROLE")
        fast.execute("RESET search_path")
        fast.execute("SELECT optischema.snapshot()")
        queryid, = fast.execute("SELECT queryid FROM optischema.queries WHERE strpos(query, 'FROM notes n') > 0"
                                ).fetchone()
        yield {"role": role, "queryid": queryid}
    finally:
        fast.execute("RESET ROLE")
        fast.execute("DROP SCHEMA IF EXISTS shop CASCADE")
        fast.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        fast.execute(sql.SQL("DROP ROLE {}").format(ident))


REWRITE_NOTES = "SELECT n.id FROM notes n WHERE n.owner IS NOT NULL"


def test_original_and_rewrite_run_as_the_sender(tracked: psycopg.Connection, fake_llm: FakeLLM, app: dict) -> None:
    fast = tracked
    fake_llm.script(answer({"proposals": [rewrite(REWRITE_NOTES)]}))
    result = run_analysis(fast, job(app["queryid"]), None)
    assert result["accepted"] == 1, proposals(fast)

    runs, run_as = fast.execute("SELECT evidence -> 'runs', evidence ->> 'run_as' FROM optischema.recommendations"
                                " WHERE kind = 'rewrite'").fetchone()
    # row-level security: the sender sees its third of the rows, the sidecar (a superuser) all
    assert [{k: v for k, v in r.items() if k != "ms"} for r in runs] == \
        [{"parameters": [], "rows": {"original": 10000, "rewrite": 10000}, "same": True}]
    assert set(runs[0]["ms"]) == {"original", "rewrite"}      # each side timed
    assert run_as == app["role"]
    assert fast.execute("SELECT count(*) FROM shop.notes").fetchone()[0] == 30000
    # every run was the sender's: pg_stat_statements records who executed
    runners = fast.execute("SELECT DISTINCT userid::regrole::text FROM pg_stat_statements s JOIN pg_database d"
                           " ON d.oid = s.dbid WHERE d.datname = current_database()"
                           " AND strpos(s.query, 'optischema_r') > 0").fetchall()
    assert runners == [(app["role"],)]


def test_a_sidecar_that_cannot_become_the_sender_rejects(tracked: psycopg.Connection, fake_llm: FakeLLM, app: dict,
                                                         db_dsn: str) -> None:
    fast = tracked
    sidecar = f"llm_sidecar_{uuid.uuid4().hex[:8]}"
    ident = sql.Identifier(sidecar)
    fast.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
    try:
        fast.execute("SELECT optischema.grant_usage(%s, 'sidecar')", (sidecar,))
        fast.execute(sql.SQL("GRANT pg_read_all_stats TO {}").format(ident))
        fake_llm.script(answer({"proposals": [rewrite(REWRITE_NOTES)]}), answer({"proposals": [rewrite(REWRITE_NOTES)]}))
        with psycopg.connect(db_dsn, user=sidecar, autocommit=True) as conn:
            run_analysis(conn, job(app["queryid"]), None)
            (_, accepted, reason), = proposals(fast)
            assert not accepted and reason == (
                f"not checked: sent by {app['role']}: {sidecar} is not a member of it, so it cannot plan it as its sender")
            assert executed(fast, "notes") == 0
            fast.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(app["role"]), ident))
            assert run_analysis(conn, job(app["queryid"]), None)["accepted"] == 1, proposals(fast)
    finally:
        fast.execute("SELECT optischema.revoke_usage(%s)", (sidecar,))
        fast.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        fast.execute(sql.SQL("DROP ROLE {}").format(ident))


# -- one proposal's failure is its own verdict --------------------------------------------------

def test_an_unplannable_proposal_is_rejected_and_the_next_still_checked(fast: psycopg.Connection,
                                                                         fake_llm: FakeLLM) -> None:
    ids = seed_workload(fast)
    fake_llm.script(answer({"proposals": [
        rewrite(GOOD + " AND 1 / 0 = 1"),                     # folded by the planner: division by zero
        rewrite("SELEC o.id FROM orders o"),
        rewrite("SELECT o.id, o.total FROM orders o WHERE o.no_such_column = $1"),
        rewrite(GOOD),
    ]}))
    result = run_analysis(fast, job(ids["semi_join"]), None)
    verdicts = proposals(fast)
    assert [v[1] for v in verdicts] == [False, False, False, True], verdicts
    assert verdicts[0][2] == "the rewrite does not plan: division by zero"
    assert verdicts[1][2].startswith("the rewrite does not parse: syntax error")
    assert 'column o.no_such_column does not exist' in verdicts[2][2]
    assert result["status"] == "ok" and result["accepted"] == 1


# -- finding 5: config proposals ----------------------------------------------------------------

def test_unsafe_settings_are_rejected_and_restart_settings_are_advice_only(fast: psycopg.Connection,
                                                                          fake_llm: FakeLLM) -> None:
    ids = seed_workload(fast)
    fake_llm.script(answer({"proposals": [
        config("autovacuum", "off"),
        config("huge_pages", "on"),
        config("max_wal_size", "2TB"),
        config("checkpoint_timeout", "1d"),
        config("enable_indexscan", "off", "database"),
        config("fsync", "off"),
        config("synchronous_commit", "off", "database"),
        config("full_page_writes", "off"),
        config("work_mem", "2GB", "database"),
        config("autovacuum_vacuum_cost_delay", "20ms"),
        config("shared_buffers", "1GB"),
        config("max_wal_size", "4GB"),
        config("enable_partitionwise_join", "on", "database"),
    ]}))
    run_analysis(fast, job(ids["by_customer"]), None)

    verdicts = proposals(fast)
    assert [v[1] for v in verdicts] == [False] * 10 + [True] * 3, verdicts
    reasons = [v[2] for v in verdicts]
    assert reasons[0].startswith("autovacuum = off is not proposed by OptiSchema (only on): autovacuum is never turned off")
    assert reasons[1] == "huge_pages is not a setting OptiSchema proposes (see optischema.tunable_settings)"
    assert reasons[2].startswith("max_wal_size = 2TB is outside the range OptiSchema proposes, 1GB to 64GB")
    assert reasons[3].startswith("checkpoint_timeout = 1d is outside the range OptiSchema proposes, 5min to 1h")
    assert reasons[4].startswith("enable_indexscan = off is not proposed by OptiSchema (only on): a planner method")
    assert reasons[5].startswith("fsync = off is not proposed")
    assert reasons[6].startswith("synchronous_commit = off is not proposed")
    assert reasons[7].startswith("full_page_writes = off is not proposed")
    assert reasons[8].startswith("work_mem = 2GB is outside the range OptiSchema proposes, 1MB to 1GB")
    assert reasons[9].startswith("autovacuum_vacuum_cost_delay = 20ms is outside the range")
    assert reasons[10].endswith("needs a server restart: advice only")

    rows = fast.execute("SELECT id, ddl, title, evidence FROM optischema.recommendations WHERE kind = 'config'"
                        " ORDER BY id").fetchall()
    assert [r[1] for r in rows] == ["ALTER SYSTEM SET shared_buffers = '1GB'", "ALTER SYSTEM SET max_wal_size = '4GB'",
                                    f"ALTER DATABASE {fast.info.dbname} SET enable_partitionwise_join = 'on'"]
    advice = rows[0]
    assert "needs restart: advice only, never applied by OptiSchema" in advice[2]
    assert advice[3]["restart_required"] and advice[3]["advice_only"]
    assert not rows[1][3]["advice_only"]
    with pytest.raises(psycopg.errors.FeatureNotSupported):      # never applied by OptiSchema
        fast.execute("SELECT optischema.apply(%s)", (advice[0],))


def test_the_allow_list_is_sound_on_this_server(conn: psycopg.Connection) -> None:
    """Every listed setting exists; its bounds read as values the server accepts, the lower
    first; and the durability, autovacuum and planner-method switches allow only the safe way."""
    rows = conn.execute(
        "SELECT s.name, s.enumvals, t.allowed,"
        " CASE WHEN t.allowed IS NULL THEN (optischema._setting_value(s.name, t.min_value)).own"
        "      <= (optischema._setting_value(s.name, t.max_value)).own END"
        " FROM optischema.tunable_settings t LEFT JOIN pg_settings s USING (name)").fetchall()
    assert len(rows) > 40 and all(r[0] for r in rows)
    for name, enumvals, allowed, ordered in rows:
        if allowed is None:
            assert ordered, name
        else:
            assert set(allowed) <= set(enumvals or ["on", "off"]), name
    only_on = dict(conn.execute("SELECT name, allowed FROM optischema.tunable_settings"
                                " WHERE name IN ('autovacuum', 'fsync', 'full_page_writes', 'enable_seqscan',"
                                " 'enable_indexscan', 'enable_nestloop')").fetchall())
    assert only_on == {n: ["on"] for n in ("autovacuum", "fsync", "full_page_writes", "enable_seqscan",
                                           "enable_indexscan", "enable_nestloop")}
    assert conn.execute("SELECT count(*) FROM optischema.tunable_settings WHERE name IN"
                        " ('huge_pages', 'archive_command', 'shared_preload_libraries', 'data_directory')"
                        ).fetchone()[0] == 0
