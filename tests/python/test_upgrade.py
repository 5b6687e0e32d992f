"""ALTER EXTENSION optischema UPDATE from 0.1.0, on a database that holds
real 0.1.0 data made through the public functions: afterwards its catalog is
that of a fresh install, the data is all there, and the public functions
work on it (a window across the upgrade, the change log, rolling back a
change applied before it), also after a pg_dump round trip."""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from catalog import catalog, difference
from conftest import _create_db, _drop_db
from dump import restored_copy
from psycopg.rows import dict_row
from test_sidecar_support import one, start_sidecar, wait_for  # noqa: F401 (a fixture)

RELEASED_ENGINE = Path(__file__).parent / "fixtures" / "optischema_engine-0.1.0.tar.gz"
LOOKUP = "SELECT * FROM public.orders WHERE customer_id = %s"
# The tables whose rows are the user's data (pg_extension_config_dump in 0.1.0).
USER_TABLES = ["settings_set", "snapshots", "queries", "query_stats", "_query_state", "table_stats",
               "_table_state", "index_stats", "_index_state", "_recommendations", "analyses", "jobs",
               "_changes", "llm_calls", "llm_proposals"]


@pytest.fixture
def released_engine() -> Iterator[str]:
    """0.1.0's engine, as released (git archive of the 0.1.0 commit), readable
    by the server's OS user. make install replaced it with one that only says
    to update, which is what a DBA's 0.1.0 database gets; the test needs the
    real one to make 0.1.0 data with recommend()."""
    where = tempfile.mkdtemp(prefix="optischema-engine-0.1.0-")
    try:
        with tarfile.open(RELEASED_ENGINE) as tar:
            tar.extractall(where, filter="data")
        for d, _, files in os.walk(where):
            os.chmod(d, 0o755)
            for f in files:
                os.chmod(os.path.join(d, f), 0o644)
        yield os.path.join(where, "extension")
    finally:
        shutil.rmtree(where)


@pytest.fixture
def old_dsn(server_dsn: str) -> Iterator[str]:
    dsn = _create_db(server_dsn, ("hypopg", "optischema VERSION '0.1.0'"))
    try:
        yield dsn
    finally:
        _drop_db(server_dsn, dsn)


def _use_engine(conn: psycopg.Connection, where: str) -> None:
    """Puts `where` before the directory 0.1.0's SQL imports its engine from, in this session."""
    base = conn.execute(r"""SELECT substring(prosrc FROM $r$sys\.path\.insert\(0, '([^']+)'\)$r$)
                            FROM pg_proc WHERE oid = 'optischema._advise(bigint, bigint)'::regprocedure""").fetchone()[0]
    assert base, "0.1.0's _advise() names the engine directory"
    conn.execute(f"DO $do$\nimport sys\nsys.path[:0] = [{where!r}, {base!r}]\n$do$ LANGUAGE plpython3u")


def _workload(conn: psycopg.Connection, calls: int) -> None:
    for n in range(calls):
        conn.execute(LOOKUP, (n * 7 % 5000,))
    conn.execute("SELECT pg_stat_force_next_flush()")


def _rows(conn: psycopg.Connection, table: str) -> list[dict]:
    """Every row of the table as JSON, in primary key order."""
    key = conn.execute("""SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.n)
                          FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(attnum, n), pg_attribute a
                          WHERE i.indrelid = %s::regclass AND i.indisprimary
                            AND a.attrelid = i.indrelid AND a.attnum = k.attnum""",
                       (f"optischema.{table}",)).fetchone()[0]
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(f"SELECT to_jsonb(t) AS r FROM optischema.{table} t ORDER BY {key}").fetchall()


def _user_data(conn: psycopg.Connection) -> dict[str, list[dict]]:
    return {t: [r["r"] for r in _rows(conn, t)] for t in USER_TABLES}


def _kept(before: dict[str, list[dict]], after: dict[str, list[dict]]) -> list[str]:
    """Rows of 0.1.0 missing or changed after the upgrade (columns 0.2.0 adds are not compared)."""
    lost = []
    for table, rows in before.items():
        now = after[table]
        if len(now) < len(rows):
            lost.append(f"{table}: {len(rows)} rows before, {len(now)} after")
            continue
        for old, new in zip(rows, now):
            changed = {k: (v, new.get(k)) for k, v in old.items() if new.get(k) != v}
            if changed:
                lost.append(f"{table}: {changed}")
    return lost


def _make_010_data(conn: psycopg.Connection) -> int:
    """Real 0.1.0 data through the public functions; returns the id of the
    recommendation whose index was applied through the psql path."""
    conn.execute("CREATE TABLE public.orders (id bigint PRIMARY KEY, customer_id int NOT NULL, note text)")
    conn.execute("INSERT INTO public.orders SELECT g, g % 5000, md5(g::text) FROM generate_series(1, 100000) g")
    conn.execute("ANALYZE public.orders")
    conn.execute("SELECT optischema.snapshot()")
    _workload(conn, 30)
    conn.execute("SELECT optischema.snapshot()")
    recs = conn.execute("SELECT id, ddl FROM optischema.recommend() WHERE kind = 'create_index'").fetchall()
    assert recs, "0.1.0's recommend() proposes the index on orders(customer_id)"
    rec = recs[0][0]
    change_id = conn.execute("SELECT optischema.apply(%s, via => 'psql')", (rec,)).fetchone()[0]
    ddl = conn.execute("SELECT ddl FROM optischema.changes WHERE id = %s", (change_id,)).fetchone()[0]
    conn.execute(ddl)
    assert conn.execute("SELECT optischema.applied(%s)", (change_id,)).fetchone()[0] == "succeeded"
    conn.execute("SELECT optischema.set_setting('retention', '30 days')")
    conn.execute("SELECT optischema.enqueue('noop', '{\"n\": 1}')")
    call = conn.execute("SELECT optischema._llm_record_call(NULL, 'query', 1, 'm', 1, 'sha', 10, 5, 6, 7.5,"
                        " 'ok', 200, NULL)").fetchone()[0]
    conn.execute("SELECT optischema._llm_record_proposal(%s, 1, 'index', '{}', false, 'not better', '{}', NULL)",
                 (call,))
    _workload(conn, 10)
    conn.execute("SELECT optischema.snapshot()")
    return rec


def test_upgrade_from_0_1_0_equals_a_fresh_install_and_keeps_the_data(
        server_dsn: str, old_dsn: str, db_dsn: str, released_engine: str) -> None:
    with psycopg.connect(old_dsn, autocommit=True) as conn:
        _use_engine(conn, released_engine)
        rec = _make_010_data(conn)
        before = _user_data(conn)
        calls_before = conn.execute("SELECT sum(calls) FROM optischema.top_queries('1 day', 100)"
                                    " WHERE query LIKE 'SELECT * FROM public.orders WHERE customer_id = $1%%'"
                                    ).fetchone()[0]
        assert calls_before == 40

        # In the same session: the engine of 0.1.0 is still imported in this
        # backend, and 0.2.0's SQL must not run with it.
        conn.execute("ALTER EXTENSION optischema UPDATE")
        assert conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'optischema'").fetchone()[0] == "0.2.0"
        assert conn.execute("SELECT optischema._load_engine()").fetchone()[0] == "0.2.0"

    with psycopg.connect(old_dsn, autocommit=True) as up, psycopg.connect(db_dsn, autocommit=True) as fresh:
        # (a) the catalog of a fresh install
        assert difference(catalog(up), catalog(fresh)) == []
        # (b) every row of 0.1.0 is still there, as it was (texts redacted: test_capture_privacy)
        for q in before["queries"]:
            q["query"] = up.execute("SELECT optischema._redact(%s)", (q["query"],)).fetchone()[0]
        assert _kept(before, _user_data(up)) == []

        # The public functions work on it: a window across the upgrade sees both sides.
        _workload(up, 5)
        up.execute("SELECT optischema.snapshot()")
        calls = up.execute("SELECT sum(calls) FROM optischema.top_queries('1 day', 100)"
                           " WHERE query LIKE 'SELECT * FROM public.orders WHERE customer_id = $1%%'").fetchone()[0]
        assert calls == 45
        assert up.execute("SELECT optischema.setting('retention')").fetchone()[0] == "30 days"
        assert up.execute("SELECT count(*) FROM optischema.recommend()").fetchone()[0] >= 0

        # The change applied before the upgrade is in the log and rolls back.
        log = up.execute("SELECT action, outcome FROM optischema.changes WHERE recommendation_id = %s", (rec,)).fetchall()
        assert log == [("apply", "succeeded")]
        change_id = up.execute("SELECT optischema.rollback(%s, via => 'psql')", (rec,)).fetchone()[0]
        up.execute(up.execute("SELECT ddl FROM optischema.changes WHERE id = %s", (change_id,)).fetchone()[0])
        assert up.execute("SELECT optischema.applied(%s)", (change_id,)).fetchone()[0] == "succeeded"
        assert up.execute("SELECT status FROM optischema.recommendations WHERE id = %s", (rec,)).fetchone()[0] \
            == "rolled_back"
        assert up.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'orders'").fetchone()[0] == 1

        # The comparison can fail: one forgotten ALTER is reported, by name.
        up.execute("ALTER TABLE optischema.jobs ALTER COLUMN max_attempts SET DEFAULT 6")
        assert [line for line in difference(catalog(up), catalog(fresh)) if "jobs.max_attempts" in line]
        up.execute("ALTER TABLE optischema.jobs ALTER COLUMN max_attempts SET DEFAULT 5")

    # A backup of the upgraded database restores with all of its data.
    with psycopg.connect(old_dsn, autocommit=True) as up:
        upgraded = _user_data(up)
    with restored_copy(server_dsn, old_dsn) as copy_dsn, psycopg.connect(copy_dsn, autocommit=True) as copy, \
            psycopg.connect(db_dsn, autocommit=True) as fresh:
        assert difference(catalog(copy), catalog(fresh)) == []
        assert _kept(upgraded, _user_data(copy)) == []
        assert copy.execute("SELECT count(*) FROM optischema.changes").fetchone()[0] == 2


def test_a_database_left_at_0_1_0_is_told_to_update(old_dsn: str) -> None:
    """After make install of 0.2.0, the SQL of 0.1.0 never runs with the engine of 0.2.0."""
    with psycopg.connect(old_dsn, autocommit=True) as conn:
        conn.execute("SELECT optischema.snapshot()")
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
            conn.execute("SELECT count(*) FROM optischema.recommend()")
        assert "is version 0.1.0, but the installed package is 0.2.0" in e.value.diag.message_primary
        assert e.value.diag.message_hint == "Run in this database: ALTER EXTENSION optischema UPDATE;"


def test_the_sidecar_serves_a_database_only_at_its_own_version(old_dsn: str, start_sidecar) -> None:
    """A 0.2.0 sidecar refuses a 0.1.0 database, saying how to update it, runs
    none of its jobs, and serves it once it is updated, without a restart."""
    job = one(old_dsn, "SELECT optischema.enqueue('noop')")
    sidecar = start_sidecar(dsns=[old_dsn])
    wait_for(lambda: "ALTER EXTENSION optischema UPDATE" in sidecar.output(), "the sidecar to refuse the database")
    assert "has OptiSchema 0.1.0, and this sidecar (0.2.0) serves only 0.2.0" in sidecar.output()
    assert one(old_dsn, "SELECT status FROM optischema.jobs WHERE id = %s", (job,)) == "pending"
    assert one(old_dsn, "SELECT count(*) FROM optischema.sidecars") == 0, "0.1.0's health() would call it fine"

    with psycopg.connect(old_dsn, autocommit=True) as conn:
        conn.execute("ALTER EXTENSION optischema UPDATE")
    wait_for(lambda: one(old_dsn, "SELECT status FROM optischema.jobs WHERE id = %s", (job,)) == "done",
             "the job to run after the update")
    assert one(old_dsn, "SELECT ok FROM optischema.health() WHERE \"check\" = 'sidecar version'") is True
    assert sidecar.terminate() == 0


def test_one_version_everywhere() -> None:
    """The control file's version is the engine's, the sidecar's and the package's."""
    import tomllib

    import optischema_engine
    import optischema_sidecar
    root = Path(__file__).resolve().parents[2]
    control = (root / "extension" / "optischema.control").read_text()
    version = control.split("default_version = '")[1].split("'")[0]
    package = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    assert optischema_engine.__version__ == optischema_sidecar.__version__ == package == version


@pytest.mark.parametrize(("schema", "fix"), [
    (None, "CREATE EXTENSION optischema CASCADE"),
    ("0.1.0", "ALTER EXTENSION optischema UPDATE"),
    ("0.3.0", "upgrade the sidecar to OptiSchema 0.3.0"),
])
def test_the_sidecar_says_what_to_do_with_another_schema(schema: str | None, fix: str) -> None:
    from optischema_sidecar import compat
    assert fix in compat.refusal("db@h:5432", schema)
    assert compat.refusal("db@h:5432", "0.2.0") is None and compat.refusal("db@h:5432", "0.2.9") is None
