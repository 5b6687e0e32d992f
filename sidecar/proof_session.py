"""The connection a rewrite's proof runs on (optischema_engine.proof): a new connection of
the sidecar's login, in one transaction that is always rolled back, closed afterwards: no
lock, setting, prepared statement or LISTEN outlives the check. A client connection, so that
statement_timeout bounds each run."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from optischema_engine.db import PsycopgDatabase


@contextmanager
def proof_session(conn: psycopg.Connection, purpose: str) -> Iterator[PsycopgDatabase]:
    # prepare_threshold=None: psycopg's own prepared statements would look left behind
    session = psycopg.connect(conn.info.dsn, password=conn.info.password or None, autocommit=True,
                              prepare_threshold=None, application_name=f"optischema-sidecar {purpose}")
    try:
        session.execute("SET search_path = pg_catalog, pg_temp")
        with session.transaction(force_rollback=True):
            yield PsycopgDatabase(session)
    finally:
        session.close()
