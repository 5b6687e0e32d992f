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
