"""The database adapters, without a database."""
from __future__ import annotations

import subprocess
from pathlib import Path
import sys


from optischema_engine.db import PlpyDatabase


class FakePlpy:
    def __init__(self):
        self.prepared, self.executed = [], []

    def prepare(self, sql, types):
        self.prepared.append((sql, types))
        return ("plan", sql)

    def execute(self, what, params=None):
        self.executed.append((what, params))
        return [{"x": 1}]

    def subtransaction(self):
        return "subxact"


def test_plpy_adapter_prepares_once_per_sql_and_passes_text():
    plpy = FakePlpy()
    db = PlpyDatabase(plpy)
    assert db.query("SELECT $1::int AS x", [5]) == [{"x": 1}]
    db.query("SELECT $1::int AS x", [None])
    assert plpy.prepared == [("SELECT $1::int AS x", ["text"])]
    assert plpy.executed[0] == (("plan", "SELECT $1::int AS x"), ["5"])
    assert plpy.executed[1][1] == [None]
    db.query("SELECT 1")
    assert plpy.executed[-1] == ("SELECT 1", None)
    assert db.subtransaction() == "subxact"


def test_engine_imports_without_psycopg():
    code = ("import sys; sys.modules['psycopg'] = None; sys.path.insert(0, sys.argv[1]); "
            "import optischema_engine, optischema_engine.db; print('ok')")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).resolve().parents[2] / "extension")], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


class CostByArgsDb:
    """Answers EXPLAIN with a cost that depends on the arguments: NULLs (the generic
    plan) cost 10, anything else 99."""

    def __init__(self) -> None:
        self.explains = 0

    def query(self, sql: str, params=()):
        if sql.startswith("SELECT pg_catalog.current_setting"):
            return [{"m": "auto"}]
        if "pg_prepared_statements" in sql:
            return [{"t": ["pg_catalog.int4"]}]
        if sql.startswith("EXPLAIN"):
            self.explains += 1
            return [{"QUERY PLAN": [{"Plan": {"Node Type": "Result", "Total Cost": 10.0 if "(NULL)" in sql else 99.0}}]}]
        return []

    def subtransaction(self):
        import contextlib
        return contextlib.nullcontext()


def test_whatif_costs_are_cached_per_parameter_set():
    from optischema_engine.whatif import WhatIf
    db = CostByArgsDb()
    wi = WhatIf(db)
    name, types = wi.prepare("SELECT $1")
    assert wi.cost(name, "SELECT $1", [], 1)[0] == 10.0
    assert wi.cost(name, "SELECT $1", [["1"]], 1)[0] == 99.0, "custom-plan samples are not the generic plan"
    assert wi.cost(name, "SELECT $1", [["1"]], 1)[0] == 99.0 and db.explains == 2, "and each is cached"
