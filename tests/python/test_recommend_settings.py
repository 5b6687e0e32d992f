"""The advisor's knobs exist twice by necessity: as SQL settings a DBA changes
and as the engine's Settings defaults (used by the sidecar path and the unit
tests). They must not drift apart."""
from __future__ import annotations

import dataclasses

import psycopg

from optischema_engine import Settings


def test_sql_settings_reach_the_engine_with_the_engines_defaults(conn: psycopg.Connection) -> None:
    passed = conn.execute("SELECT optischema._engine_settings()").fetchone()[0]
    defaults = dataclasses.asdict(Settings())
    assert set(defaults) <= set(passed), f"no SQL setting for {sorted(set(defaults) - set(passed))}"
    assert {k: float(passed[k]) for k in defaults} == {k: float(v) for k, v in defaults.items()}


def test_a_changed_setting_reaches_the_engine_typed(conn: psycopg.Connection) -> None:
    conn.execute("SELECT optischema.set_setting('use_pg_qualstats', 'off')")
    conn.execute("SELECT optischema.set_setting('time_budget', '90 seconds')")
    s = Settings.from_dict(conn.execute("SELECT optischema._engine_settings()").fetchone()[0])
    assert s.use_pg_qualstats is False
    assert s.time_budget_s == 90.0
