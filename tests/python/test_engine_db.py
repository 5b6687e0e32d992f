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


class CostByArgsPlanning:
    """Runs a sender's statements without a database: EXPLAIN answers with a cost that
    depends on the arguments (NULLs, the generic plan, cost 10; anything else 99)."""

    def __init__(self) -> None:
        self.explains = 0
        self.calls = 0

    def run_groups(self, who, groups, deallocate=()):
        self.calls += 1
        out = []
        for group in groups:
            rows = []
            for sql, _ in group:
                if "pg_prepared_statements" in sql:
                    rows.append([{"t": ["pg_catalog.int4"]}])
                elif sql.startswith("EXPLAIN"):
                    self.explains += 1
                    cost = 10.0 if "(NULL)" in sql else 99.0
                    rows.append([{"QUERY PLAN": [{"Plan": {"Node Type": "Result", "Total Cost": cost}}]}])
                else:
                    rows.append([])
            out.append(rows)
        return out


def test_whatif_costs_are_cached_per_parameter_set_and_batched_per_sender():
    from optischema_engine.senders import Sender
    from optischema_engine.whatif import WhatIf
    planning = CostByArgsPlanning()
    wi = WhatIf(None, planning)
    me = Sender(1, "app", "public, pg_temp")
    name, types = wi.prepare("SELECT $1", me)
    assert types == ["pg_catalog.int4"]
    assert wi.cost(name, [])[0] == 10.0
    assert wi.cost(name, [["1"]])[0] == 99.0, "custom-plan samples are not the generic plan"
    assert wi.cost(name, [["1"]])[0] == 99.0 and planning.explains == 2, "and each is cached"
    other, _ = wi.prepare("SELECT $1 + 1", me)
    calls = planning.calls
    costs = wi.costs([(name, [["2"]]), (other, [["3"], ["4"]])])
    assert [c[0] for c in costs.values()] == [99.0, 99.0]
    assert planning.calls == calls + 1, "one call for the statements of one sender"
