"""The pg_cron alternative to the sidecar's schedules, for real: pg_cron
accepts the statements cron_commands() prints, and the commands they
schedule work in the monitored database."""
from __future__ import annotations

import re

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from test_sidecar_support import one, rows


def test_cron_commands_are_accepted_by_pg_cron(server_dsn: str, db_dsn: str) -> None:
    with psycopg.connect(server_dsn, autocommit=True) as cron:
        if "pg_cron" not in cron.execute("SHOW shared_preload_libraries").fetchone()[0]:
            pytest.skip("pg_cron is not preloaded on this cluster")
        if cron.execute("SHOW cron.database_name").fetchone()[0] != conninfo_to_dict(server_dsn)["dbname"]:
            pytest.skip("OPTISCHEMA_TEST_DSN does not name pg_cron's database")
        cron.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        commands = [r["cron_commands"] for r in rows(db_dsn, "SELECT * FROM optischema.cron_commands()")]
        database = conninfo_to_dict(db_dsn)["dbname"]
        try:
            for command in commands:
                cron.execute(command)
            jobs = {r[0]: r[1:] for r in cron.execute(
                "SELECT jobname, schedule, database, command FROM cron.job WHERE jobname LIKE %s", (f"optischema-%-{database}",))}
        finally:
            cron.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname LIKE %s", (f"optischema-%-{database}",))
    assert jobs[f"optischema-snapshot-{database}"][:2] == ("*/5 * * * *", database)
    assert jobs[f"optischema-recommend-{database}"][0] == "0 * * * *"
    # What pg_cron will run, run now in the monitored database.
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        for _, _, command in jobs.values():
            for statement in filter(None, (s.strip() for s in re.split(r";\s*", command))):
                conn.execute(statement)
    assert one(db_dsn, "SELECT count(*) FROM optischema.snapshots") >= 1
