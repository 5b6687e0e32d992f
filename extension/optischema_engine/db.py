"""The narrow database interface of the engine, and its two adapters.

SQL uses PostgreSQL's own `$1, $2 ...` placeholders; every parameter is passed as text
(or None) and the SQL casts it explicitly (`$1::oid`). Errors surface as exceptions; a
statement that may fail runs inside `subtransaction()` so that the caller's transaction
survives it.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol, Sequence


class Database(Protocol):
    def query(self, sql: str, params: Sequence[object] = ()) -> list[dict]:
        """Run one statement; return its rows as dicts (empty list if it returns none)."""

    def subtransaction(self) -> AbstractContextManager[Any]:
        """Savepoint: an exception inside rolls back only what ran inside, then propagates."""


def _text(params: Sequence[object]) -> list[str | None]:
    return [None if p is None else str(p) for p in params]


class PlpyDatabase:
    """Adapter for PL/Python's `plpy` module (inside the database)."""

    def __init__(self, plpy: Any):
        self._plpy = plpy
        self._plans: dict[tuple[str, int], Any] = {}

    def query(self, sql: str, params: Sequence[object] = ()) -> list[dict]:
        if not params:
            result = self._plpy.execute(sql)
        else:
            key = (sql, len(params))
            plan = self._plans.get(key)
            if plan is None:
                plan = self._plans[key] = self._plpy.prepare(sql, ["text"] * len(params))
            result = self._plpy.execute(plan, _text(params))
        return [dict(row) for row in result]

    def subtransaction(self) -> AbstractContextManager[Any]:
        return self._plpy.subtransaction()


class PsycopgDatabase:
    """Adapter for a psycopg 3 connection (sidecar, dev tools).

    Uses psycopg's RawCursor, which sends `$n` placeholders to the server unchanged
    (server-side binding), so no client-side rewriting of the SQL text is needed and `$`
    or `%` inside literals or dollar quotes cannot be misread. Text parameters are sent
    with the `text` type; the SQL casts them.
    """

    def __init__(self, conn: Any):
        self._conn = conn

    def query(self, sql: str, params: Sequence[object] = ()) -> list[dict]:
        import psycopg  # deferred: the engine must import without psycopg (PL/Python)
        from psycopg.types.string import StrDumper

        with psycopg.RawCursor(self._conn) as cur:
            cur.adapters.register_dumper(str, StrDumper)   # 'text', not 'unknown'
            # never a server-side prepared statement of psycopg's: code run as a statement's
            # sender (senders.py) could replace it before its next use
            cur.execute(sql, _text(params) if params else None, prepare=False)
            if cur.description is None:
                return []
            names = [d.name for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    def subtransaction(self) -> AbstractContextManager[Any]:
        return self._conn.transaction()
