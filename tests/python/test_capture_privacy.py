"""Captured statements and who sees them, through real roles and sessions:
secrets sent in utility statements are stored nowhere, each statement
remembers the roles that sent it, and a role sees other roles' texts through
OptiSchema only where pg_stat_statements would show them to it."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator

import psycopg
import pytest
from conftest import _create_db, _drop_db
from dump import PGBIN
from psycopg import sql
from psycopg.conninfo import make_conninfo

HIDDEN = "<insufficient privilege>"


@pytest.fixture
def make_role(server_dsn: str, db_dsn: str) -> Iterator[Callable[..., str]]:
    """Creates LOGIN roles named cap_<what>_<random> (the cluster is shared),
    members of the given roles; drops them, and what they own or were granted
    in db_dsn, afterwards."""
    made: list[str] = []

    def make(what: str, *member_of: str) -> str:
        name = f"cap_{what}_{os.urandom(4).hex()}"
        with psycopg.connect(db_dsn, autocommit=True) as c:
            c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
            made.append(name)
            for group in member_of:
                c.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(name)))
        return name

    yield make
    for dsn in (db_dsn, server_dsn):
        with psycopg.connect(dsn, autocommit=True) as c:
            for name in made:
                if dsn == db_dsn:
                    c.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                else:
                    c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def as_role(dsn: str, role: str) -> psycopg.Connection:
    return psycopg.connect(make_conninfo(dsn, user=role), autocommit=True)


def holding(conn: psycopg.Connection, needle: str) -> list[str]:
    """Every table of schema optischema with a row whose text holds needle."""
    tables = [r[0] for r in conn.execute(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'optischema' AND c.relkind IN ('r', 'p')")]
    assert "optischema.queries" in tables
    return [t for t in tables
            if conn.execute(sql.SQL("SELECT count(*) FROM {} x WHERE strpos(x::text, %s) > 0")
                            .format(sql.SQL(t)), (needle,)).fetchone()[0]]


def test_passwords_sent_in_statements_are_stored_nowhere(db_dsn: str, make_role) -> None:
    secret = "hunter2" + os.urandom(4).hex()
    role = make_role("pw")
    w = f"cap_w_{os.urandom(4).hex()}"
    with psycopg.connect(db_dsn, autocommit=True) as c:
        # A real session, as a DBA types them (psycopg sends the text as is: no parameters).
        c.execute(f"CREATE ROLE {role}_2 PASSWORD '{secret}-create'")
        c.execute(f"DROP ROLE {role}_2")
        c.execute(f"ALTER ROLE {role} PASSWORD '{secret}-alter'")
        c.execute(f"ALTER ROLE {role} WITH PASSWORD E'{secret}-e\\'' VALID UNTIL 'infinity'")
        c.execute(f"ALTER ROLE {role} PASSWORD $pw${secret}-dollar$pw$")
        c.execute(f"CREATE FOREIGN DATA WRAPPER {w}")
        c.execute(f"CREATE SERVER {w}_s FOREIGN DATA WRAPPER {w}")
        c.execute(f"CREATE USER MAPPING FOR {role} SERVER {w}_s OPTIONS (user 'app', password '{secret}-mapping')")
        c.execute(f"ALTER USER MAPPING FOR {role} SERVER {w}_s OPTIONS (SET password '{secret}-mapping2')")
        c.execute(f"SET application_name = '{secret}-set'")
        c.execute(f"/* {secret}-comment */ SELECT count(*) FROM pg_class WHERE relname = 'x'")
        assert c.execute("SELECT count(*) FROM pg_stat_statements WHERE strpos(query, %s) > 0",
                         (secret,)).fetchone()[0] == 8, "pg_stat_statements holds the secrets verbatim"
        c.execute("SELECT optischema.snapshot()")

        assert holding(c, secret) == [], "no table of OptiSchema holds a secret"
        stored = [r[0] for r in c.execute("SELECT query FROM optischema.queries WHERE query ~ 'PASSWORD|MAPPING'")]
        assert f"ALTER ROLE {role} PASSWORD '<redacted>'" in stored, "the statements are captured, redacted"
        assert f"ALTER USER MAPPING FOR {role} SERVER {w}_s OPTIONS (SET password '<redacted>')" in stored
        top = [str(r) for r in c.execute("SELECT t FROM optischema.top_queries('1 hour', 100000) t")]
        assert any("<redacted>" in t for t in top) and not any(secret in t for t in top), "top_queries() shows none"
        c.execute(f"DROP SERVER {w}_s CASCADE")
        c.execute(f"DROP FOREIGN DATA WRAPPER {w}")

    dump = subprocess.run([f"{PGBIN}/pg_dump", "--dbname", db_dsn], check=True, capture_output=True, text=True).stdout
    assert f"ALTER ROLE {role} PASSWORD '<redacted>'" in dump, "the dump holds the captured texts"
    assert secret not in dump, "and no secret"


def _texts(dsn: str, role: str, queryids: dict[str, int]) -> dict[str, str]:
    with as_role(dsn, role) as c:
        shown = dict(c.execute("SELECT queryid, query FROM optischema.top_queries('1 hour', 100000)").fetchall())
        assert set(queryids.values()) <= shown.keys(), "every reader sees every statement's figures"
        view = dict(c.execute("SELECT queryid, query FROM optischema.query_texts").fetchall())
    assert all(view[q] == shown[q] for q in queryids.values()), "query_texts shows the same"
    return {who: shown[q] for who, q in queryids.items()}


def test_a_role_sees_the_texts_pg_stat_statements_would_show_it(db_dsn: str, make_role) -> None:
    app = make_role("app")
    other = make_role("other")
    reader = make_role("reader")
    member = make_role("member", app)
    stats = make_role("stats", "pg_read_all_stats")
    with psycopg.connect(db_dsn, autocommit=True) as c:
        c.execute("CREATE TABLE cap_t (a int)")
        c.execute(sql.SQL("GRANT SELECT ON cap_t TO {}, {}").format(sql.Identifier(app), sql.Identifier(other)))
        for r in (reader, member, stats, app):
            c.execute("SELECT optischema.grant_usage(%s)", (r,))
    texts = {"app": "SELECT count(*) FROM cap_t WHERE a = $1", "other": "SELECT sum(a) FROM cap_t"}
    with as_role(db_dsn, app) as c:
        c.execute("SELECT count(*) FROM cap_t WHERE a = 1")
    with as_role(db_dsn, other) as c:
        c.execute("SELECT sum(a) FROM cap_t")
    with psycopg.connect(db_dsn, autocommit=True) as c:
        c.execute("SELECT optischema.snapshot()")
        queryids = {who: c.execute("SELECT queryid FROM optischema.queries WHERE query = %s", (t,)).fetchone()[0]
                    for who, t in texts.items()}

    with as_role(db_dsn, reader) as c:
        assert c.execute("SELECT count(*) FROM pg_stat_statements WHERE query = ANY (%s)",
                         (list(texts.values()),)).fetchone()[0] == 0, "pg_stat_statements hides both from a reader"
    assert _texts(db_dsn, reader, queryids) == {"app": HIDDEN, "other": HIDDEN}, "and so does OptiSchema"
    assert _texts(db_dsn, app, queryids) == {"app": texts["app"], "other": HIDDEN}, "the sender sees its own"
    assert _texts(db_dsn, member, queryids) == {"app": texts["app"], "other": HIDDEN}, "so does a member of it"
    assert _texts(db_dsn, stats, queryids) == texts, "pg_read_all_stats sees them all"
    with as_role(db_dsn, reader) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT query FROM optischema.queries")


def test_each_statement_remembers_its_senders(db_dsn: str, make_role) -> None:
    first = make_role("first")
    second = make_role("second")
    with psycopg.connect(db_dsn, autocommit=True) as c:
        c.execute("CREATE TABLE cap_s (a int)")
        c.execute(sql.SQL("GRANT SELECT ON cap_s TO {}, {}").format(sql.Identifier(first), sql.Identifier(second)))
    statement = "SELECT max(a) FROM cap_s"
    with as_role(db_dsn, first) as c:
        c.execute(statement)
    with psycopg.connect(db_dsn, autocommit=True) as su:
        su.execute("SELECT optischema.snapshot()")
        queryid = su.execute("SELECT queryid FROM optischema.queries WHERE query = %s", (statement,)).fetchone()[0]
        senders = "SELECT s::regrole::text FROM optischema._senders(%s) s"
        assert [r[0] for r in su.execute(senders, (queryid,))] == [first]
        with as_role(db_dsn, second) as c:
            c.execute(statement)
        su.execute("SELECT optischema.snapshot()")
        assert [r[0] for r in su.execute(senders, (queryid,))] == [second, first], "the latest sender comes first"
        assert su.execute("SELECT count(*) FROM optischema.query_roles r JOIN optischema.queries q USING (queryid)"
                          " WHERE q.own").fetchone()[0] == 0, "OptiSchema's own statements have no senders"


@pytest.fixture
def old_dsn(server_dsn: str) -> Iterator[str]:
    dsn = _create_db(server_dsn, ("hypopg", "optischema VERSION '0.1.0'"))
    try:
        yield dsn
    finally:
        _drop_db(server_dsn, dsn)


def test_the_upgrade_redacts_0_1_0_texts_and_records_their_senders(server_dsn: str, old_dsn: str) -> None:
    secret = "hunter2" + os.urandom(4).hex()
    role = f"cap_up_{os.urandom(4).hex()}"
    try:
        with psycopg.connect(old_dsn, autocommit=True) as c:
            c.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{secret}'")
            c.execute("CREATE TABLE cap_u (a int)")
            c.execute(f"GRANT SELECT ON cap_u TO {role}")
        with as_role(old_dsn, role) as c:
            c.execute("SELECT count(*) FROM cap_u WHERE a = 1")
        with psycopg.connect(old_dsn, autocommit=True) as c:
            c.execute("SELECT optischema.snapshot()")
            assert holding(c, secret) == ["optischema.queries"], "0.1.0 stored the password"
            c.execute("ALTER EXTENSION optischema UPDATE")
            assert holding(c, secret) == [], "the upgrade redacted it"
            assert c.execute(f"SELECT count(*) FROM optischema.queries WHERE query = 'CREATE ROLE {role} LOGIN PASSWORD ''<redacted>'''"
                             ).fetchone()[0] == 1
            assert c.execute("SELECT array_agg(s::regrole::text) FROM optischema.queries q, optischema._senders(q.queryid) s"
                             " WHERE q.query = 'SELECT count(*) FROM cap_u WHERE a = $1'").fetchone()[0] == [role], \
                "the senders of 0.1.0's statements are taken from pg_stat_statements"
    finally:
        with psycopg.connect(old_dsn, autocommit=True) as c:
            c.execute(f"DROP OWNED BY {role}")
            c.execute(f"DROP ROLE {role}")
