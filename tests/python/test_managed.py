"""OptiSchema on a database set up the way a managed service sets it up (issue 13):
pg_stat_statements preloaded and created, hypopg created by a superuser beforehand,
pg_cron preloaded (created in its own database); plpython3u not created, and not
creatable by the installing role, which is no superuser and has CREATE on the
database and pg_read_all_stats. The plain install (optischema-sidecar install)
runs there, and the whole loop works with the engine in the sidecar: snapshots,
top_queries(), CALL refresh() and recommend(), apply / verify / rollback of an
index, a maintenance finding, an LLM analysis, install again, and health() with and
without each grant. Roles are cluster-wide: h4_<what>_<random>, dropped afterwards."""
from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from conftest import _create_db, _drop_db
from fake_llm import FakeLLM, answer, fake_llm  # noqa: F401 - fake_llm is a fixture
from psycopg.conninfo import make_conninfo
from test_sidecar_support import SIDECAR, Sidecar, change, one, rows, wait_change, wait_job

from optischema_sidecar.llm.analysis import run_analysis

LOOKUP = "SELECT * FROM public.orders WHERE customer_id = %s"


@dataclass
class Managed:
    dsn: str            # as the installing role, which owns schema optischema
    app_dsn: str        # as the application's role, which owns the tables
    admin_dsn: str      # as a superuser: the provider's own account
    owner: str
    app: str


def _sidecar_cmd(command: str, dsn: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SIDECAR), command, "--dsn", dsn], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def managed(server_dsn: str) -> Iterator[Managed]:
    tag = uuid.uuid4().hex[:8]
    owner, app = f"h4_owner_{tag}", f"h4_app_{tag}"
    admin_dsn = _create_db(server_dsn, ("pg_stat_statements", "hypopg"))
    with psycopg.connect(server_dsn, autocommit=True) as c:
        c.execute(f'CREATE ROLE "{owner}" LOGIN NOSUPERUSER')
        c.execute(f'CREATE ROLE "{app}" LOGIN NOSUPERUSER')
        c.execute(f'GRANT pg_read_all_stats TO "{owner}"')
        # the owner plans the application's statements as their sender and indexes its tables
        c.execute(f'GRANT "{app}" TO "{owner}"')
        c.execute(f'GRANT CREATE ON DATABASE "{psycopg.conninfo.conninfo_to_dict(admin_dsn)["dbname"]}" TO "{owner}"')
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        c.execute("CREATE TABLE public.orders (id bigint PRIMARY KEY, customer_id int NOT NULL, total numeric NOT NULL)")
        c.execute("INSERT INTO public.orders SELECT g, g % 5000, g % 97 FROM generate_series(1, 100000) g")
        c.execute("CREATE TABLE public.stale (id int, customer_id int, payload text) WITH (autovacuum_enabled = off)")
        c.execute("INSERT INTO public.stale SELECT g, g % 10, 'x' FROM generate_series(1, 1000) g")
        c.execute("ANALYZE public.orders, public.stale")
        c.execute("INSERT INTO public.stale SELECT g, g, 'x' FROM generate_series(1001, 201000) g")
        c.execute("SELECT pg_stat_force_next_flush()")
        for t in ("orders", "stale"):
            c.execute(f'ALTER TABLE public.{t} OWNER TO "{app}"')
        c.execute(f'GRANT CREATE ON SCHEMA public TO "{app}"')
    m = Managed(make_conninfo(admin_dsn, user=owner), make_conninfo(admin_dsn, user=app), admin_dsn, owner, app)
    try:
        yield m
    finally:
        _drop_db(server_dsn, admin_dsn)
        with psycopg.connect(server_dsn, autocommit=True) as c:
            for role in (owner, app):
                c.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture(scope="module")
def installed(managed: Managed) -> Managed:
    done = _sidecar_cmd("install", managed.dsn)
    assert done.returncode == 0 and "OptiSchema 0.2.0 installed (plain" in done.stdout, done.stderr
    return managed


@pytest.fixture
def sidecar(installed: Managed, tmp_path: Path) -> Iterator[Sidecar]:
    s = Sidecar([installed.dsn], tmp_path / "sidecar.log", f"h4-managed-{uuid.uuid4().hex[:6]}", [])
    try:
        yield s
    finally:
        if s.proc.poll() is None:
            s.kill()


def _execute(dsn: str, sql: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(sql)


def _workload(dsn: str, ids: range) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        for i in ids:
            c.execute(LOOKUP, (i,)).fetchall()
            c.execute("SELECT * FROM public.stale WHERE customer_id = %s", (5000 + i,)).fetchall()
        c.execute("SELECT pg_stat_force_next_flush()")


def _notices(dsn: str, sql: str) -> tuple[list, list[str]]:
    with psycopg.connect(dsn, autocommit=True) as c:
        seen: list[str] = []
        c.add_notice_handler(lambda d: seen.append(f"{d.severity}: {d.message_primary}"))
        c.execute("SET client_min_messages = notice")     # make test runs with PGOPTIONS=...warning
        cur = c.execute(sql)
        return (cur.fetchall() if cur.description else []), seen


def test_the_installing_role_cannot_have_plpython(managed: Managed) -> None:
    with psycopg.connect(managed.dsn, autocommit=True) as c:
        assert not c.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("CREATE EXTENSION plpython3u")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("CREATE EXTENSION optischema CASCADE")


def test_install_is_a_plain_schema_and_again_a_no_op(installed: Managed) -> None:
    m = installed
    assert one(m.dsn, "SELECT version FROM optischema.installed") == "0.2.0"
    assert one(m.dsn, "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'optischema'") == m.owner
    assert one(m.dsn, "SELECT count(*) FROM pg_extension WHERE extname IN ('optischema', 'plpython3u')") == 0
    assert one(m.dsn, "SELECT count(*) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
                      " WHERE p.pronamespace = 'optischema'::regnamespace AND l.lanname LIKE 'plpython%%'") == 0
    before = rows(m.dsn, "SELECT p.oid::regprocedure::text AS f, p.xmin::text AS x FROM pg_proc p"
                         " WHERE p.pronamespace = 'optischema'::regnamespace ORDER BY 1")
    for command in ("install", "upgrade"):
        again = _sidecar_cmd(command, m.dsn)
        assert again.returncode == 0 and "nothing to" in again.stdout, again
    # nothing was re-created: the same rows, not even rewritten
    assert rows(m.dsn, "SELECT p.oid::regprocedure::text AS f, p.xmin::text AS x FROM pg_proc p"
                       " WHERE p.pronamespace = 'optischema'::regnamespace ORDER BY 1") == before
    # the functions the PL/Python ones are elsewhere say where the engine runs
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="the HTML report is drawn by the sidecar"):
        one(m.dsn, "SELECT optischema.report()")


def test_install_and_upgrade_refuse_what_they_cannot_do(installed: Managed, db_dsn: str, server_dsn: str) -> None:
    m = installed
    _execute(m.dsn, "UPDATE optischema.installed SET version = '0.1.0'")
    try:
        again = _sidecar_cmd("install", m.dsn)
        assert again.returncode == 1 and "OptiSchema 0.1.0 is installed: run optischema-sidecar upgrade" in again.stderr
        up = _sidecar_cmd("upgrade", m.dsn)
        assert up.returncode == 1 and "no upgrade from OptiSchema 0.1.0 to 0.2.0 in this sidecar" in up.stderr
    finally:
        _execute(m.dsn, "UPDATE optischema.installed SET version = '0.2.0'")
    extension = _sidecar_cmd("install", db_dsn)
    assert extension.returncode == 1 and "installed as an extension" in extension.stderr
    assert "ALTER EXTENSION optischema UPDATE" in _sidecar_cmd("upgrade", db_dsn).stderr
    other = _create_db(server_dsn, ())
    try:
        assert "not installed: run optischema-sidecar install" in _sidecar_cmd("upgrade", other).stderr
        _execute(other, "CREATE SCHEMA optischema")
        taken = _sidecar_cmd("install", other)
        assert taken.returncode == 1 and "schema optischema exists and is not an OptiSchema install" in taken.stderr
        assert one(other, "SELECT count(*) FROM pg_class WHERE relnamespace = 'optischema'::regnamespace") == 0
    finally:
        _drop_db(server_dsn, other)


def test_the_sidecar_checks_the_installed_version(installed: Managed) -> None:
    from optischema_sidecar import compat
    with psycopg.connect(installed.dsn, autocommit=True) as c:
        assert compat.installed(c) == ("0.2.0", True)
    with psycopg.connect(installed.admin_dsn, dbname="postgres", autocommit=True) as c:
        assert compat.installed(c) == (None, False)


def test_refresh_without_a_sidecar_says_so(installed: Managed) -> None:
    _, seen = _notices(installed.dsn, "CALL optischema.refresh()")
    assert any(s.startswith("WARNING: no sidecar serving this database has been seen recently") for s in seen), seen
    # the request stays queued for the sidecar that comes
    assert one(installed.dsn, "SELECT count(*) FROM optischema.jobs WHERE kind = 'recommend' AND status = 'pending'") == 1


def test_refresh_in_a_transaction_block_is_refused_and_queues_nothing(installed: Managed) -> None:
    m = installed
    before = one(m.dsn, "SELECT count(*) FROM optischema.jobs")
    with psycopg.connect(m.dsn) as c:        # not autocommit: a transaction block
        with pytest.raises(psycopg.errors.InvalidTransactionTermination):
            c.execute("CALL optischema.refresh()")
    assert one(m.dsn, "SELECT count(*) FROM optischema.jobs") == before


def test_nothing_is_recorded_that_was_not_kept_in_the_same_transaction(installed: Managed) -> None:
    m = installed
    before = one(m.dsn, "SELECT count(*) FROM optischema.analyses")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="no advice was computed in this transaction"):
        one(m.dsn, "SELECT optischema._record_advice()")
    with psycopg.connect(m.dsn, autocommit=True) as c:
        c.execute("SELECT optischema._keep_result('advice', NULL, 1, '{\"recommendations\": []}')")
        # kept in its own transaction (autocommit): another transaction does not take it
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
            c.execute("SELECT optischema._record_advice()")
    assert one(m.dsn, "SELECT count(*) FROM optischema.analyses") == before


def test_an_admin_cannot_keep_a_result(installed: Managed) -> None:
    m = installed
    admin = f"h4_admin_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(m.admin_dsn, autocommit=True) as c:
        c.execute(f'CREATE ROLE "{admin}" LOGIN')
    try:
        one(m.dsn, "SELECT optischema.grant_usage(%s, 'admin')", (admin,))
        with psycopg.connect(make_conninfo(m.dsn, user=admin), autocommit=True) as c:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute("SELECT optischema._keep_result('advice', NULL, 1, '{}')")
            # recommend() and refresh() are an admin's, as with the extension
            c.execute("SELECT count(*) FROM optischema.recommend()")
    finally:
        one(m.dsn, "SELECT optischema.revoke_usage(%s)", (admin,))
        with psycopg.connect(m.admin_dsn, autocommit=True) as c:
            c.execute(f'DROP ROLE "{admin}"')


def test_the_loop_through_the_sidecar(installed: Managed, sidecar: Sidecar) -> None:
    m = installed
    one(m.dsn, "SELECT optischema.snapshot()")
    _workload(m.app_dsn, range(1, 30))
    assert one(m.dsn, "SELECT optischema.snapshot()") > 0
    top = rows(m.dsn, "SELECT * FROM optischema.top_queries()")
    assert any("FROM public.orders WHERE customer_id" in (t["query"] or "") for t in top), top

    # refresh(): queued, committed, run by the sidecar with the engine over psycopg
    _, seen = _notices(m.dsn, "CALL optischema.refresh()")
    assert any(s.startswith("NOTICE: recommendations refreshed by the sidecar") for s in seen), (seen, sidecar.output())
    job = rows(m.dsn, "SELECT * FROM optischema.jobs WHERE kind = 'recommend' ORDER BY id DESC LIMIT 1")[0]
    assert job["status"] == "done" and job["result"]["open_recommendations"] >= 1, job
    analysis = rows(m.dsn, "SELECT * FROM optischema.analyses ORDER BY id DESC LIMIT 1")[0]
    assert analysis["id"] == job["result"]["analysis_id"]

    # recommend(): the current ones, no refresh queued while they are fresh
    recs, seen = _notices(m.dsn, "SELECT id, kind, ddl FROM optischema.recommend()")
    assert not any("queued" in s for s in seen), seen
    index = [r for r in recs if r[1] == "create_index" and "orders USING btree (customer_id)" in (r[2] or "")]
    assert len(index) == 1, recs
    index = index[0]
    maintenance = [r for r in recs if r[1] == "maintenance" and r[2] == "ANALYZE public.stale"]
    assert maintenance, recs

    # apply, verify, rollback of the index: built by the sidecar as the owner, a member of the table's owner
    change_id = one(m.dsn, "SELECT optischema.apply(%s)", (index[0],))
    done = wait_change(m.dsn, change_id)
    assert done["outcome"] == "succeeded", (done["error"], sidecar.output()[-3000:])
    wait_job(m.dsn, done["job_id"])
    assert change(m.dsn, change_id)["plan_check"] == "verified"
    assert one(m.dsn, "SELECT count(*) FROM pg_indexes WHERE tablename = 'orders' AND indexdef LIKE '%%btree (customer_id%%'") == 1
    back = wait_change(m.dsn, one(m.dsn, "SELECT optischema.rollback(%s)", (index[0],)))
    assert back["outcome"] == "succeeded", back
    assert one(m.dsn, "SELECT count(*) FROM pg_indexes WHERE tablename = 'orders' AND indexdef LIKE '%%btree (customer_id%%'") == 0

    # the maintenance finding through the same loop
    change_id = one(m.dsn, "SELECT optischema.apply(%s)", (maintenance[0][0],))
    done = wait_change(m.dsn, change_id)
    assert done["outcome"] == "succeeded" and done["ddl"] == "ANALYZE public.stale", done
    assert one(m.dsn, "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'stale'") == 0


def test_an_llm_analysis(installed: Managed, fake_llm: FakeLLM) -> None:  # noqa: F811
    m = installed
    qid = one(m.dsn, "SELECT queryid FROM optischema.queries WHERE strpos(query, 'FROM public.orders WHERE customer_id = $1') > 0")
    one(m.dsn, "SELECT optischema.set_setting('llm_max_retries', '0')")
    fake_llm.script(answer({"proposals": [
        {"kind": "index", "table": "public.orders", "columns": ["customer_id"], "method": "btree", "where": None,
         "include": [], "explanation": "Each call scans all orders."}]}))
    with psycopg.connect(m.dsn, autocommit=True) as c:
        c.execute("SET search_path = pg_catalog, pg_temp")
        result = run_analysis(c, {"id": None, "kind": "llm_analysis", "payload": {"scope": "query", "queryid": str(qid)}},
                              None)
    assert result["status"] == "ok" and result["accepted"] == 1, result["proposals"]
    # checked by the engine over psycopg, as its sender; recorded (or the advisor's same index, noted)
    rec_id = result["proposals"][0]["recommendation_id"]
    assert one(m.dsn, "SELECT ddl FROM optischema.recommendations WHERE id = %s", (rec_id,)) == \
        "CREATE INDEX CONCURRENTLY orders_customer_id_idx ON public.orders USING btree (customer_id)"


def test_a_stale_analysis_is_refreshed_by_recommend(installed: Managed, sidecar: Sidecar) -> None:
    m = installed
    one(m.dsn, "SELECT optischema.set_setting('recommend_interval', '1 second')")
    try:
        one(m.dsn, "SELECT pg_sleep(1.1)")
        _, seen = _notices(m.dsn, "SELECT * FROM optischema.recommend()")
        assert any(s.startswith("NOTICE: recommendations are from ") and "a refresh is queued for the sidecar" in s
                   for s in seen), seen
        job_id = one(m.dsn, "SELECT max(id) FROM optischema.jobs WHERE kind = 'recommend'")
        assert wait_job(m.dsn, job_id)["status"] == "done"
    finally:
        one(m.dsn, "SELECT optischema.reset_setting('recommend_interval')")


def test_statements_of_a_role_the_owner_cannot_become_are_skipped(installed: Managed) -> None:
    m = installed
    stranger = f"h4_stranger_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(m.admin_dsn, autocommit=True) as c:
        c.execute(f'CREATE ROLE "{stranger}" LOGIN')
        c.execute(f'GRANT SELECT ON public.orders TO "{stranger}"')
    try:
        with psycopg.connect(make_conninfo(m.dsn, user=stranger), autocommit=True) as c:
            for i in range(3):
                c.execute("SELECT total FROM public.orders WHERE customer_id = %s AND total > 1", (i,)).fetchall()
        from optischema_sidecar import refresh
        with psycopg.connect(m.dsn, autocommit=True) as c:
            c.execute("SET search_path = pg_catalog, pg_temp")
            result = refresh.run(c)
        skipped = one(m.dsn, "SELECT skipped FROM optischema.analyses WHERE id = %s", (result["analysis_id"],))
        assert any(f"sent by {stranger}: {m.owner} is not a member of it" in s["reason"] for s in skipped), skipped
    finally:
        with psycopg.connect(m.admin_dsn, autocommit=True) as c:
            c.execute(f'DROP OWNED BY "{stranger}"')
            c.execute(f'DROP ROLE "{stranger}"')


def _health(dsn: str) -> dict[str, dict]:
    return {h["check"]: h for h in rows(dsn, "SELECT * FROM optischema.health()")}


def test_health_names_each_missing_grant(installed: Managed) -> None:
    m = installed
    h = _health(m.dsn)
    for check in ("pg_stat_statements preloaded", "pg_stat_statements created", "hypopg", "plpython3u",
                  "pg_read_all_stats", "table owners", "pg_cron"):
        assert h[check]["ok"], h[check]
    assert "a plain install" in h["plpython3u"]["detail"]
    assert "not readable by" in h["pg_stat_statements preloaded"]["detail"]
    with psycopg.connect(m.admin_dsn, autocommit=True) as c:
        c.execute(f'REVOKE pg_read_all_stats FROM "{m.owner}"')
        c.execute(f'REVOKE "{m.app}" FROM "{m.owner}"')
        c.execute("DROP EXTENSION hypopg")
        c.execute("ALTER DATABASE " + c.info.dbname + " SET track_io_timing = off")
    try:
        h = _health(m.dsn)
        assert not h["pg_read_all_stats"]["ok"]
        assert h["pg_read_all_stats"]["fix"].startswith(f"GRANT pg_read_all_stats TO {m.owner};")
        assert not h["table owners"]["ok"]
        assert h["table owners"]["fix"] == f"GRANT CREATE ON SCHEMA public TO {m.owner}; GRANT {m.app} TO {m.owner};"
        assert f"the tables of {m.app} (2 tables)" in h["table owners"]["detail"]
        assert not h["hypopg"]["ok"] and h["hypopg"]["fix"] == "CREATE EXTENSION hypopg;"
        assert not h["track_io_timing"]["ok"]
        assert ("set track_io_timing = on in its console (Amazon RDS/Aurora: the DB parameter group"
                in h["track_io_timing"]["fix"])
    finally:
        with psycopg.connect(m.admin_dsn, autocommit=True) as c:
            c.execute(f'GRANT pg_read_all_stats TO "{m.owner}"')
            c.execute(f'GRANT "{m.app}" TO "{m.owner}"')
            c.execute("CREATE EXTENSION hypopg")
            c.execute("ALTER DATABASE " + c.info.dbname + " RESET track_io_timing")
    assert all(_health(m.dsn)[c]["ok"] for c in ("pg_read_all_stats", "table owners", "hypopg"))
