"""Issue 9, finding 3, on a real cluster with real roles: an OptiSchema admin may not reach
the rights of the tables' owners through the sidecar. The internal functions are closed to
it, and what the sidecar builds comes from a description checked in the catalog when it
runs: an expression calling a function of the admin's own, on a table it cannot read, is
never built, and its code never runs (the probe records current_user of whoever runs it).
The legitimate paths still work: apply and rollback through a least-privilege sidecar
role and through psql, with names holding `;`, `--` and `$`."""
from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from conftest import _create_db, _drop_db
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb
from test_sidecar_support import one, recommendation, rows, start_sidecar, wait_change  # noqa: F401

# Every internal SECURITY DEFINER routine outside the admin's and readers' entry points, with a call of it
# (% doubled: psycopg reads the text for placeholders).
_INTERNAL_CALLS = r"""
SELECT p.proname::text AS name,
       format('%%s %%s(%%s)', CASE p.prokind WHEN 'p' THEN 'CALL' ELSE 'SELECT' END, p.oid::regproc,
              (SELECT string_agg('NULL::' || format_type(u.t, NULL), ', ' ORDER BY u.n)
               FROM unnest(p.proargtypes) WITH ORDINALITY u(t, n))) AS call
FROM pg_proc p
WHERE p.pronamespace = 'optischema'::regnamespace AND p.prosecdef AND p.proname LIKE '\_%%'
  AND p.oid <> ALL (SELECT to_regprocedure(regexp_replace(x, '^(FUNCTION|PROCEDURE) ', ''))
                    FROM unnest(optischema._admin_routines() || optischema._reader_routines()) x)
ORDER BY 1"""


@pytest.fixture
def roles(db_dsn: str) -> Iterator[dict[str, str]]:
    """The application's table owner (app.secrets, app.orders, app."adm;t--$x"), an
    OptiSchema admin owning a schema with a probe, and the sidecar's least-privilege login
    role (README, Roles): all with the adm_ prefix and a random suffix, dropped afterwards."""
    r = uuid.uuid4().hex[:8]
    names = {"owner": f"adm_o_{r}", "admin": f"adm_a_{r}", "sidecar": f"adm_s_{r}"}
    o, a, s = (sql.Identifier(names[k]) for k in ("owner", "admin", "sidecar"))
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN; CREATE ROLE {} LOGIN; CREATE ROLE {} LOGIN").format(o, a, s))
        try:
            conn.execute(sql.SQL("CREATE SCHEMA app AUTHORIZATION {}").format(o))
            conn.execute(sql.SQL("SET ROLE {}").format(o))
            conn.execute("CREATE TABLE app.secrets (id int, secret text)")
            conn.execute("INSERT INTO app.secrets SELECT g, md5(g::text) FROM generate_series(1, 1000) g")
            conn.execute("CREATE TABLE app.orders (id int, customer_id int)")
            conn.execute("INSERT INTO app.orders SELECT g, g % 100 FROM generate_series(1, 1000) g")
            conn.execute('CREATE TABLE app."adm;t--$x" (a int, "b;--$c" text)')
            conn.execute('INSERT INTO app."adm;t--$x" SELECT g, md5(g::text) FROM generate_series(1, 1000) g')
            conn.execute("RESET ROLE")
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA app TO {}; GRANT SELECT ON app.orders, app.\"adm;t--$x\" TO {}")
                         .format(a, a))
            # The attacker's schema: k() is IMMUTABLE, and calls pwn(), which records who runs it.
            conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(a, a))
            conn.execute(sql.SQL("SET ROLE {}").format(a))
            conn.execute(sql.SQL("""
                CREATE TABLE {a}.probe (who name);
                GRANT USAGE ON SCHEMA {a} TO PUBLIC;
                GRANT INSERT ON {a}.probe TO PUBLIC;
                CREATE FUNCTION {a}.pwn() RETURNS int LANGUAGE plpgsql VOLATILE
                    AS $$BEGIN INSERT INTO {a}.probe VALUES (current_user); RETURN 1; END$$;
                CREATE FUNCTION {a}.k(int) RETURNS int LANGUAGE sql IMMUTABLE AS $$SELECT $1 + {a}.pwn()$$;
                """).format(a=a))
            conn.execute("RESET ROLE")
            conn.execute("SELECT optischema.grant_usage(%s, 'admin')", (names["admin"],))
            # The sidecar's role, exactly as the README says.
            conn.execute("SELECT optischema.grant_usage(%s, 'sidecar')", (names["sidecar"],))
            conn.execute(sql.SQL("GRANT pg_read_all_stats TO {}; GRANT {} TO {}").format(s, o, s))
            yield names
        finally:
            conn.execute(sql.SQL("DROP OWNED BY {}, {}, {} CASCADE").format(o, a, s))
            conn.execute(sql.SQL("DROP ROLE {}, {}, {}").format(o, a, s))


def _as(db_dsn: str, role: str) -> psycopg.Connection:
    return psycopg.connect(make_conninfo(db_dsn, user=role), autocommit=True)


def _forged(db_dsn: str, key: str, expr: dict) -> int:
    """A recommendation with an expression key on app.secrets, written straight into the
    table: as if some path still let an admin store one."""
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        table = conn.execute("SELECT 'app.secrets'::regclass::oid::bigint").fetchone()[0]
        spec = {"table": table, "name": f"{key}_idx", "keys": [{"expr": expr}]}
        return conn.execute(
            "INSERT INTO optischema._recommendations (key, kind, source, title, table_name, index_name, index_spec)"
            " VALUES (%s, 'create_index', 'llm', 'forged', 'app.secrets', %s, %s) RETURNING id",
            (key, f"{key}_idx", Jsonb(spec))).fetchone()[0]


def test_an_admin_cannot_reach_the_table_owners_rights(db_dsn: str, roles: dict[str, str], start_sidecar) -> None:
    admin = roles["admin"]
    probe = f'SELECT count(*) FROM "{admin}".probe'
    calls = rows(db_dsn, _INTERNAL_CALLS)
    assert {"_llm_recommend", "_finish_change", "_claim_job", "_heartbeat", "_start_change",
            "_complete_job", "_record_plan_check"} <= {c["name"] for c in calls}
    with _as(db_dsn, admin) as conn:
        for c in calls:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for"):
                conn.execute(c["call"])
        for internal in ("SELECT optischema._change_ddl(1)", "SELECT optischema._index_ddl('create', '{}')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(internal)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO optischema._recommendations (key, kind, source, title) VALUES ('x', 'create_index', 'llm', 'x')")

    # Forged anyway: the admin's function on a table it cannot read. apply() refuses it.
    k = one(db_dsn, "SELECT %s::regprocedure::oid::bigint", (f'"{admin}".k(int)',))
    rec = _forged(db_dsn, "adm_k", {"func": k, "args": [{"column": "id"}]})
    with _as(db_dsn, admin) as conn:
        for via in ("sidecar", "psql"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="is neither built in nor owned by the table's owner"):
                conn.execute("SELECT optischema.apply(%s, via => %s)", (rec, via))
    # Built-in functions only, but over a column the admin cannot read: an error of the
    # build (a cast that fails, say) could show it a value. Refused too.
    lower = one(db_dsn, "SELECT 'pg_catalog.lower(text)'::regprocedure::oid::bigint")
    leak = _forged(db_dsn, "adm_leak", {"func": lower, "args": [{"column": "secret"}]})
    with _as(db_dsn, admin) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f"role {admin} may not read column secret"):
            conn.execute("SELECT optischema.apply(%s)", (leak,))
    assert one(db_dsn, "SELECT count(*) FROM optischema._changes") == 0

    # Queued regardless (as a pre-0.2.0 admin could): the sidecar builds from the
    # description when it runs, and refuses.
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        change = conn.execute(
            "INSERT INTO optischema._changes (recommendation_id, action, via, ddl, index_schema, index_name,"
            " prior_status, requested_by) VALUES (%s, 'apply', 'sidecar', 'CREATE INDEX CONCURRENTLY adm_k_idx"
            " ON app.secrets ((k(id)))', 'app', 'adm_k_idx', 'open', %s) RETURNING id", (rec, admin)).fetchone()[0]
        job = conn.execute("SELECT optischema.enqueue('apply', jsonb_build_object('change_id', %s::bigint))", (change,)).fetchone()[0]
        conn.execute("UPDATE optischema._changes SET job_id = %s WHERE id = %s", (job, change))
        conn.execute("UPDATE optischema._recommendations SET status = 'applying' WHERE id = %s", (rec,))
    start_sidecar(dsns=[make_conninfo(db_dsn, user=roles["sidecar"])])
    refused = wait_change(db_dsn, change)
    assert refused["outcome"] == "failed", refused
    assert "refusing to run" in refused["error"] and "is neither built in nor owned" in refused["error"]
    assert one(db_dsn, probe) == 0, "no code of the admin's ran, as anyone"
    assert one(db_dsn, "SELECT count(*) FROM pg_index WHERE indrelid = 'app.secrets'::regclass") == 0, "nothing was built"


def test_a_least_privilege_sidecar_applies_and_rolls_back(db_dsn: str, roles: dict[str, str], start_sidecar) -> None:
    admin = roles["admin"]
    plain = recommendation(db_dsn, key="adm:orders", schema="app", table="orders", column="customer_id")
    odd = recommendation(db_dsn, key="adm:odd", schema="app", table="adm;t--$x", column="b;--$c")
    sidecar = start_sidecar(dsns=[make_conninfo(db_dsn, user=roles["sidecar"])])
    with _as(db_dsn, admin) as conn:
        applied = [conn.execute("SELECT optischema.apply(%s)", (r,)).fetchone()[0] for r in (plain, odd)]
    for change in applied:
        done = wait_change(db_dsn, change)
        assert done["outcome"] == "succeeded" and done["executed_by"] == sidecar.worker_id, done
    assert one(db_dsn, "SELECT ddl FROM optischema.changes WHERE id = %s", (applied[1],)) == \
        'CREATE INDEX CONCURRENTLY "adm;t--$x_b;--$c_idx" ON app."adm;t--$x" USING btree ("b;--$c")'
    assert rows(db_dsn, "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                        " WHERE i.indrelid = 'app.\"adm;t--$x\"'::regclass") == \
        [{"relname": "adm;t--$x_b;--$c_idx", "indisvalid": True}]

    # A drop of that index, by its OID; and its rollback builds it again from its description.
    drop = recommendation(db_dsn, key="adm:drop", schema="app", table="adm;t--$x", column="b;--$c", kind="drop_index")
    with _as(db_dsn, admin) as conn:
        rolled = [conn.execute("SELECT optischema.rollback(%s)", (plain,)).fetchone()[0],
                  conn.execute("SELECT optischema.apply(%s)", (drop,)).fetchone()[0]]
    for change in rolled:
        assert wait_change(db_dsn, change)["outcome"] == "succeeded"
    assert one(db_dsn, "SELECT count(*) FROM pg_index WHERE indrelid IN ('app.orders'::regclass, 'app.\"adm;t--$x\"'::regclass)") == 0
    with _as(db_dsn, admin) as conn:
        restore = conn.execute("SELECT optischema.rollback(%s)", (drop,)).fetchone()[0]
    assert wait_change(db_dsn, restore)["outcome"] == "succeeded"
    assert one(db_dsn, "SELECT pg_get_indexdef('app.\"adm;t--$x_b;--$c_idx\"'::regclass)") == \
        'CREATE INDEX "adm;t--$x_b;--$c_idx" ON app."adm;t--$x" USING btree ("b;--$c")'


def test_the_psql_path_with_quoted_names(db_dsn: str) -> None:
    """What a DBA types, with \\gexec running the statement at top level, on names that hold
    `;`, `--` and `$` (which the old prefix check of stored text refused)."""
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "adm;s--$"')
        conn.execute('CREATE TABLE "adm;s--$"."adm;t--$x" (a int, "b;--$c" text)')
    rec = recommendation(db_dsn, key="adm:psql", schema="adm;s--$", table="adm;t--$x", column="b;--$c")
    script = (f"SELECT optischema.apply({rec}, via => 'psql') AS change_id \\gset\n"
              "SELECT ddl FROM optischema.changes WHERE id = :change_id \\gexec\n"
              "SELECT optischema.applied(:change_id);\n"
              f"SELECT optischema.rollback({rec}, via => 'psql') AS change_id \\gset\n"
              "SELECT ddl FROM optischema.changes WHERE id = :change_id \\gexec\n"
              "SELECT optischema.applied(:change_id);\n")
    out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", db_dsn], input=script,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["succeeded", "succeeded"]
    assert [r["ddl"] for r in rows(db_dsn, "SELECT ddl FROM optischema.changes ORDER BY id")] == [
        'CREATE INDEX CONCURRENTLY "adm;t--$x_b;--$c_idx" ON "adm;s--$"."adm;t--$x" USING btree ("b;--$c")',
        'DROP INDEX CONCURRENTLY IF EXISTS "adm;s--$"."adm;t--$x_b;--$c_idx"']
    assert one(db_dsn, "SELECT status FROM optischema.recommendations WHERE id = %s", (rec,)) == "rolled_back"


def test_the_update_from_0_1_0_takes_the_internal_functions_back(server_dsn: str) -> None:
    """0.1.0 gave its admins EXECUTE on every routine: after ALTER EXTENSION UPDATE each role
    has its level again (reader or admin), as grants a dump keeps, and an index
    recommendation 0.1.0 stored as text only is refused, never run from that text."""
    r = uuid.uuid4().hex[:8]
    reader, admin = f"adm_r_{r}", f"adm_a_{r}"
    dsn = _create_db(server_dsn, ("hypopg", "optischema VERSION '0.1.0'"))
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN; CREATE ROLE {} LOGIN").format(sql.Identifier(reader), sql.Identifier(admin)))
            conn.execute("SELECT optischema.grant_usage(%s)", (reader,))
            conn.execute("SELECT optischema.grant_usage(%s, admin => true)", (admin,))
            conn.execute("CREATE TABLE public.t (a int)")
            conn.execute(sql.SQL("GRANT SELECT ON public.t TO {}").format(sql.Identifier(admin)))
            rec = conn.execute(
                "INSERT INTO optischema._recommendations (key, kind, source, title, ddl, rollback_ddl, table_name, index_name)"
                " VALUES ('k', 'create_index', 'llm', 'made by 0.1.0', 'CREATE INDEX CONCURRENTLY t_a_idx ON public.t (a)',"
                " 'DROP INDEX CONCURRENTLY IF EXISTS public.t_a_idx', 'public.t', 't_a_idx') RETURNING id").fetchone()[0]
            assert conn.execute("SELECT has_function_privilege(%s, 'optischema._claim_job(text, text[], interval)', 'EXECUTE')",
                                (admin,)).fetchone()[0], "0.1.0's admin could claim jobs"
            warnings: list[str] = []
            conn.add_notice_handler(lambda d: warnings.append(f"{d.message_primary} {d.message_hint}"))
            conn.execute("ALTER EXTENSION optischema UPDATE")
            assert [w for w in warnings if admin in w and "grant_usage('" + admin + "', 'sidecar')" in w], warnings
            internal = conn.execute(
                "SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'optischema'::regnamespace AND p.proname LIKE '\\_%%'"
                " AND p.prosecdef AND has_function_privilege(%s, p.oid, 'EXECUTE')"
                " AND p.oid <> ALL (SELECT to_regprocedure(regexp_replace(x, '^(FUNCTION|PROCEDURE) ', ''))"
                "                   FROM unnest(optischema._admin_routines() || optischema._reader_routines()) x)",
                (admin,)).fetchone()[0]
            assert internal == 0
            assert conn.execute("SELECT has_function_privilege(%s, 'optischema.set_setting(text, text)', 'EXECUTE')"
                                " AND NOT has_function_privilege(%s, 'optischema.enqueue(text, jsonb)', 'EXECUTE')",
                                (admin, reader)).fetchone()[0], "each kept its level"
            # Grants made by the update script are not "initial privileges", which pg_dump leaves out.
            assert conn.execute("SELECT count(*) FROM pg_init_privs i, aclexplode(i.initprivs) a"
                                " WHERE a.grantee IN (%s::regrole, %s::regrole)", (reader, admin)).fetchone()[0] == 0
        with _as(dsn, admin) as conn:
            assert conn.execute("SELECT optischema.set_setting('retention', '9 days')").fetchone()[0] == "9 days"
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="has no index description"):
                conn.execute("SELECT optischema.apply(%s)", (rec,))
        with _as(dsn, reader) as conn:
            assert conn.execute("SELECT count(*) FROM optischema.recommendations").fetchone()[0] == 1
    finally:
        _drop_db(server_dsn, dsn)
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}, {}").format(sql.Identifier(reader), sql.Identifier(admin)))
