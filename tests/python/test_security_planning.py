"""Issue 9, finding 1: every captured statement text is planned with no more rights than
the role that sent it, or skipped with the reason. An attacker role with CREATE on the
database hides code in an IMMUTABLE function the planner folds; recommend(), context() and
the sidecar's plan check must run it as the attacker only, and the legitimate paths
(a superuser, a member of the application's role) must still work."""
from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from optischema_engine import senders
from optischema_engine.db import PsycopgDatabase
from psycopg.conninfo import make_conninfo
from test_sidecar_support import change, recommendation, start_sidecar, wait_for  # noqa: F401

# Tries the ways back to the caller's rights that SET ROLE would leave open, reports who
# it runs as (a NOTICE reaches the caller's client even when everything is rolled back;
# the probe table keeps what was committed), and makes its role a superuser if it can.
PWN = """
CREATE FUNCTION {s}.pwn() RETURNS int LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    BEGIN RESET ROLE; EXCEPTION WHEN OTHERS THEN NULL; END;
    BEGIN SET SESSION AUTHORIZATION DEFAULT; EXCEPTION WHEN OTHERS THEN NULL; END;
    RAISE NOTICE 'probe: current_user=% session_user=%', current_user, session_user;
    BEGIN
        INSERT INTO {s}.probe VALUES (current_user, session_user);
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
        BEGIN
            EXECUTE 'ALTER ROLE {r} SUPERUSER';
        EXCEPTION WHEN OTHERS THEN NULL;
        END;
    END IF;
    RETURN 1;
END $$;
CREATE FUNCTION {s}.k() RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT {s}.pwn()';
-- The same tries, but an error unless it runs as its owner: a plan (with k2() folded to 1)
-- is the proof that it ran, and as whom, where no notice reaches the test.
CREATE FUNCTION {s}.canary() RETURNS int LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    BEGIN RESET ROLE; EXCEPTION WHEN OTHERS THEN NULL; END;
    BEGIN SET SESSION AUTHORIZATION DEFAULT; EXCEPTION WHEN OTHERS THEN NULL; END;
    IF current_user <> '{r}' THEN
        RAISE EXCEPTION 'probe: ran as %', current_user;
    END IF;
    RETURN 1;
END $$;
CREATE FUNCTION {s}.k2() RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT {s}.canary()';
"""
UPDATE = "UPDATE {s}.t SET v = v WHERE id = {s}.k()"
SELECT = "SELECT v FROM {s}.t WHERE id = {s}.k()"
CANARY = "SELECT v FROM {s}.t WHERE id = {s}.k2()"


@dataclass
class Roles:
    dsn: str
    suffix: str
    created: list[str]

    def create(self, prefix: str, options: str = "LOGIN") -> str:
        name = f"plan_{prefix}_{self.suffix}"
        with psycopg.connect(self.dsn, autocommit=True) as c:
            c.execute(f"CREATE ROLE {name} {options}")
        self.created.append(name)
        return name

    def connect(self, role: str) -> psycopg.Connection:
        return psycopg.connect(make_conninfo(self.dsn, user=role), autocommit=True)


@pytest.fixture
def roles(db_dsn: str) -> Iterator[Roles]:
    r = Roles(db_dsn, uuid.uuid4().hex[:8], [])
    try:
        yield r
    finally:
        with psycopg.connect(db_dsn, autocommit=True) as c:
            for name in reversed(r.created):
                c.execute(f"DROP OWNED BY {name} CASCADE")
                c.execute(f"DROP ROLE {name}")


@dataclass
class Attacker:
    role: str
    schema: str

    def sql(self, template: str) -> str:
        return template.format(s=self.schema, r=self.role)


@pytest.fixture
def attacker(roles: Roles) -> Attacker:
    """The reproduction: a role with CREATE on the database, its schema, the functions,
    and its statements run three times each; its own runs' traces are then cleared."""
    role = roles.create("att")
    with psycopg.connect(roles.dsn, autocommit=True) as c:
        c.execute(f"GRANT CREATE ON DATABASE {c.info.dbname} TO {role}")
    a = Attacker(role, role)
    with roles.connect(role) as c:
        c.execute(f"CREATE SCHEMA {a.schema}")
        c.execute(a.sql("CREATE TABLE {s}.probe (cu text, su text)"))
        c.execute(a.sql("GRANT INSERT ON {s}.probe TO PUBLIC"))
        c.execute(a.sql("CREATE TABLE {s}.t (id int PRIMARY KEY, v int)"))
        c.execute(a.sql("INSERT INTO {s}.t SELECT g, g FROM generate_series(1, 1000) g"))
        c.execute(a.sql("ANALYZE {s}.t"))
        c.execute(a.sql(PWN))
        for _ in range(3):
            for text in (UPDATE, SELECT, CANARY):
                c.execute(a.sql(text))
        c.execute(a.sql("TRUNCATE {s}.probe"))
    return a


def queryid(conn: psycopg.Connection, text: str) -> int:
    conn.execute("SELECT optischema.snapshot()")
    return conn.execute("SELECT queryid FROM optischema.queries WHERE query = %s", (text,)).fetchone()[0]


def notices(conn: psycopg.Connection) -> list[str]:
    conn.execute("SET client_min_messages = notice")     # make test runs with PGOPTIONS=...warning
    seen: list[str] = []
    conn.add_notice_handler(lambda d: seen.append(d.message_primary or ""))
    return seen


def runs_as(seen: list[str]) -> set[str]:
    """The current_user of every run of pwn() the notices report."""
    return {m.group(1) for n in seen if (m := re.match(r"probe: current_user=(\S+)", n))}


def assert_only_attacker_ran(conn: psycopg.Connection, a: Attacker, seen: list[str]) -> None:
    assert runs_as(seen) == {a.role}, f"the attacker's code ran as {runs_as(seen)}"
    probe = conn.execute(a.sql("SELECT DISTINCT cu FROM {s}.probe")).fetchall()
    assert probe in ([], [(a.role,)]), f"the probe recorded {probe}"
    assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (a.role,)).fetchone()[0] is False


def test_recommend_runs_planning_code_as_the_sender_only(db_dsn: str, attacker: Attacker) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as dba:
        seen = notices(dba)
        assert dba.execute("SELECT count(*) FROM optischema.recommend()").fetchone()[0] >= 0
        assert_only_attacker_ran(dba, attacker, seen)
        skipped = dba.execute("SELECT skipped FROM optischema.analyses").fetchone()[0]
        update = queryid(dba, attacker.sql(UPDATE))
        assert all(s["queryid"] != update for s in skipped), "a superuser plans it, as its sender"
        assert dba.execute("SELECT current_user, current_setting('search_path')").fetchone() == \
            ("optischema_test", '"$user", public'), "the session is as it was"
        assert dba.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0


def test_context_plans_as_the_sender(db_dsn: str, roles: Roles, attacker: Attacker) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as dba:
        qid = queryid(dba, attacker.sql(SELECT))
        seen = notices(dba)
        ctx = dba.execute("SELECT optischema.context(%s)", (qid,)).fetchone()[0]
        assert ctx["plan"] is not None and "id = 1)" in str(ctx["plan"]), "planned (k() folded), as the sender"
        assert_only_attacker_ran(dba, attacker, seen)
        # A sidecar role that is no member of the attacker's role gets no plan, and runs nothing.
        sidecar = roles.create("sc")
        dba.execute("SELECT optischema.grant_usage(%s, 'sidecar')", (sidecar,))
        dba.execute(f"GRANT pg_read_all_stats TO {sidecar}")   # it reads every text, as set up (README, Roles)
    with roles.connect(sidecar) as sc:
        seen = notices(sc)
        ctx = sc.execute("SELECT optischema.context(%s)", (qid,)).fetchone()[0]
        assert ctx["plan"] is None and seen == []
        assert ctx["plan_unavailable_reason"] == \
            f"not planned: sent by {attacker.role}: {sidecar} is not a member of it, so it cannot plan it as its sender"


def test_sidecar_plan_check_plans_as_the_sender(db_dsn: str, attacker: Attacker, start_sidecar) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as dba:
        qid = queryid(dba, attacker.sql(CANARY))
    rec = recommendation(db_dsn, key="test:att_t_v", table="t", column="v", queryids=[qid], schema=attacker.schema)
    start_sidecar()
    with psycopg.connect(db_dsn, autocommit=True) as dba:
        change_id = dba.execute("SELECT optischema.apply(%s)", (rec,)).fetchone()[0]
    done = wait_for(lambda: (c := change(db_dsn, change_id))["plan_evidence"] is not None and c, "the plan check")
    assert done["outcome"] == "succeeded", done
    entry = done["plan_evidence"]["queries"][0]
    assert "skipped" not in entry, f"the canary ran as someone else: {entry}"
    assert "id = 1)" in str(entry["plan"]), "k2() was folded: it ran, as its owner"


def test_a_member_of_the_application_role_refreshes_and_others_are_skipped(db_dsn: str, roles: Roles,
                                                                          attacker: Attacker) -> None:
    app = roles.create("app")
    member = roles.create("dba")
    outsider = roles.create("out")
    with psycopg.connect(db_dsn, autocommit=True) as su:
        su.execute(f"GRANT {app} TO {member}")
        for r in (member, outsider):
            su.execute("SELECT optischema.grant_usage(%s, 'admin')", (r,))
        su.execute("CREATE TABLE public.orders (id int, customer int, note text)")
        su.execute(f"ALTER TABLE public.orders OWNER TO {app}")
        su.execute("INSERT INTO public.orders SELECT g, g % 5000, md5(g::text) FROM generate_series(1, 100000) g")
        su.execute("ANALYZE public.orders")
    with roles.connect(app) as c:
        for n in range(20):
            c.execute("SELECT * FROM public.orders WHERE customer = %s", (n,))
    text = "SELECT * FROM public.orders WHERE customer = $1"

    with roles.connect(outsider) as c:
        c.execute("SELECT count(*) FROM optischema.recommend()")
        skipped = c.execute("SELECT skipped FROM optischema.analyses ORDER BY id DESC LIMIT 1").fetchone()[0]
        # it may not read the text either (as in pg_stat_statements): the row is not its
        assert c.execute("SELECT count(*) FROM optischema.queries WHERE query = %s", (text,)).fetchone()[0] == 0
    with psycopg.connect(db_dsn, autocommit=True) as su:
        qid = su.execute("SELECT queryid FROM optischema.queries WHERE query = %s", (text,)).fetchone()[0]
    with roles.connect(outsider) as c:
        assert {"queryid": qid, "reason": f"not planned: sent by {app}: {outsider} is not a member of it, "
                                          "so it cannot plan it as its sender"} in skipped
        assert c.execute("SELECT count(*) FROM optischema.recommendations WHERE kind = 'create_index'"
                         ).fetchone()[0] == 0

    with roles.connect(member) as c:
        seen = notices(c)
        ddl = [r[0] for r in c.execute("SELECT ddl FROM optischema.recommend() WHERE kind = 'create_index'")]
        assert any("public.orders USING btree (customer)" in d for d in ddl), ddl
        assert seen == [], "the attacker's statements are skipped: the member cannot become the attacker"
        skipped = c.execute("SELECT skipped FROM optischema.analyses ORDER BY id DESC LIMIT 1").fetchone()[0]
        assert any(attacker.role in s["reason"] and f"{member} is not a member" in s["reason"] for s in skipped)


def test_writes_of_recommend_record_only_the_engines_result(db_dsn: str, roles: Roles) -> None:
    admin = roles.create("adm")
    with psycopg.connect(db_dsn, autocommit=True) as su:
        su.execute("SELECT optischema.grant_usage(%s, 'admin')", (admin,))
    with roles.connect(admin) as c:
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="no advice was computed"):
            c.execute("SELECT optischema._record_advice()")
        assert c.execute("SELECT count(*) FROM optischema.analyses").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT * FROM optischema._take_result('advice')")


# -- the sandbox itself, through the engine's own adapter ---------------------------------
ESCAPES = """
CREATE FUNCTION {s}.escape() RETURNS text LANGUAGE plpgsql AS $$
DECLARE f regprocedure;
BEGIN
    BEGIN RESET ROLE; EXCEPTION WHEN OTHERS THEN NULL; END;
    BEGIN SET SESSION AUTHORIZATION DEFAULT; EXCEPTION WHEN OTHERS THEN NULL; END;
    -- its own sandbox, the next call's: invoker rights, please
    FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
             WHERE p.pronamespace = pg_catalog.pg_my_temp_schema() AND p.proowner = current_user::regrole LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY INVOKER', f);
    END LOOP;
    PERFORM pg_catalog.set_config('search_path', '{s}, pg_catalog', false);
    PERFORM pg_catalog.set_config('work_mem', '77MB', false);
    PERFORM pg_catalog.pg_advisory_lock(4242);
    EXECUTE 'DEALLOCATE client_stmt';
    EXECUTE 'PREPARE client_stmt AS SELECT 1 AS evil';
    EXECUTE 'PREPARE left_behind AS SELECT 2';
    CREATE TEMP TABLE planted (x int);     -- in the caller's pg_temp
    RETURN current_user;
END $$;
"""


def test_sender_code_cannot_escape_or_leave_state_behind(db_dsn: str, roles: Roles, attacker: Attacker) -> None:
    with roles.connect(attacker.role) as c:
        c.execute(attacker.sql(ESCAPES))
        c.execute(f"ALTER ROLE {attacker.role} IN DATABASE {c.info.dbname} SET search_path = {attacker.schema}, public")
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("PREPARE client_stmt AS SELECT 0 AS mine")
        db = PsycopgDatabase(conn)
        who = senders.sender(db, attacker.role)
        assert who.search_path == f"{attacker.schema}, public, pg_temp"
        with conn.transaction():
            with senders.acting_as(db, who, read_only=False) as a:
                assert a.query(attacker.sql("SELECT {s}.escape() AS u")) == [{"u": attacker.role}]
                assert a.query("SELECT current_user AS u, current_setting('work_mem') AS w, "
                               "current_setting('search_path') AS p") == \
                    [{"u": attacker.role, "w": "4MB", "p": f"{attacker.schema}, public, pg_temp"}], \
                    "the next call: still the sender, with nothing of the previous call's left"
                assert conn.execute("SELECT to_regclass('pg_temp.planted')").fetchone()[0] is None
                assert conn.execute("SELECT current_user, current_setting('search_path'), "
                                    "current_setting('work_mem')").fetchone() == \
                    ("optischema_test", "pg_catalog, pg_temp", "4MB")
        assert conn.execute("SELECT current_setting('search_path')").fetchone()[0] == '"$user", public'
        assert sorted(a.planning.findings) == [
            "prepared statement client_stmt was replaced: removed",
            "prepared statement left_behind was left behind: removed",
            "session advisory lock 0,4242,1 (ExclusiveLock) was left behind: released"]
        assert conn.execute("SELECT name FROM pg_prepared_statements").fetchall() == [], \
            "the client's statement that was replaced is gone, not the attacker's run in its place"
        assert conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                            "AND pid = pg_backend_pid()").fetchone()[0] == 0


def test_a_role_the_caller_is_not_a_member_of_is_refused(db_dsn: str, roles: Roles, attacker: Attacker) -> None:
    other = roles.create("oth")
    with roles.connect(other) as conn:
        db = PsycopgDatabase(conn)
        with pytest.raises(senders.Refused, match=f"{other} is not a member of role {attacker.role}"):
            senders.sender(db, attacker.role)
        with conn.transaction(), senders.planning(db) as p:
            forged = senders.Sender(0, attacker.role, "pg_catalog")
            with pytest.raises(senders.Refused, match=f"cannot act as role {attacker.role}: must be member"):
                p.query(forged, "SELECT 1")


def test_a_prepared_statement_of_the_same_name_is_an_error_not_run(db_dsn: str, monkeypatch) -> None:
    """The engine's prepared names are not guessable; and should one exist already, PREPARE
    fails: the statement is skipped, the other one is never explained or run."""
    from optischema_engine import whatif
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.t (a int)")
        conn.execute("INSERT INTO optischema.query_roles VALUES (1, current_user::regrole, current_user, 1, 1)")
        conn.execute("PREPARE optischema_00000000_1 AS SELECT pg_catalog.pg_sleep(30)")
        monkeypatch.setattr(whatif, "statement_name", lambda: "optischema_00000000_1")
        with conn.transaction():
            plan, reason = whatif.generic_plan(PsycopgDatabase(conn), 1, "SELECT * FROM public.t")
        assert plan is None and reason == 'prepared statement "optischema_00000000_1" already exists'
        assert conn.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements").fetchall() \
            == [("PREPARE optischema_00000000_1 AS SELECT pg_catalog.pg_sleep(30)", 0)]


def test_a_failed_call_leaves_none_of_its_prepared_statements(db_dsn: str, roles: Roles, attacker: Attacker) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        db = PsycopgDatabase(conn)
        name = senders.statement_name()
        with conn.transaction(), senders.acting_as(db, senders.sender(db, attacker.role)) as a:
            with pytest.raises(senders.Failed, match="division by zero") as failed:
                a.run([(f"PREPARE {name} AS SELECT 1 / $1", False), (f"EXPLAIN EXECUTE {name}(0)", True),
                       (f"EXECUTE {name}(0)", True), (f"DEALLOCATE {name}", False)], deallocate=[name])
            assert failed.value.sqlstate == "22012"
            assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0
        assert a.planning.findings == []
