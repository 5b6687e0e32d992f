"""Connections to the monitored databases."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict

from optischema_sidecar.config import Settings


def describe(dsn: str) -> str:
    """A name for logs and metrics: dbname@host:port, never the password."""
    params = conninfo_to_dict(dsn)
    host = params.get("host") or params.get("hostaddr") or "localhost"
    return f"{params.get('dbname') or params.get('user') or '?'}@{host}:{params.get('port') or 5432}"


def connect(dsn: str, settings: Settings, purpose: str) -> psycopg.Connection:
    """An autocommit connection: CREATE INDEX CONCURRENTLY runs at top level,
    and every queue operation is its own short transaction."""
    conn = psycopg.connect(dsn, autocommit=True, connect_timeout=settings.connect_timeout,
                           application_name=f"optischema-sidecar {purpose}")
    # A backend notices its sidecar is gone (killed mid-CREATE INDEX) within
    # seconds instead of running on: the job's next owner finds no orphan.
    conn.execute("SET client_connection_check_interval = '2s'")
    # Built-ins first, and nothing a role with CREATE on the database could put in
    # "$user" or public: the engine's catalog queries name functions unqualified.
    conn.execute("SET search_path = pg_catalog, pg_temp")
    return conn


def error_text(e: Exception) -> str:
    """One line for jobs.error: PostgreSQL's message and hint, without the
    caret diagram psycopg's str() adds."""
    if isinstance(e, (psycopg.errors.InvalidSchemaName, psycopg.errors.UndefinedFunction)) and "optischema." in str(e):
        return (f"{e.diag.message_primary}: OptiSchema is not installed (or is older) in this database; "
                "run CREATE EXTENSION optischema CASCADE (or ALTER EXTENSION optischema UPDATE)")
    if isinstance(e, psycopg.Error) and e.diag.message_primary:
        text = e.diag.message_primary
        if e.diag.message_hint:
            text += f" (hint: {e.diag.message_hint})"
        return text
    return str(e).strip() or type(e).__name__


@contextmanager
def own_prepared_statements(conn: psycopg.Connection) -> Iterator[None]:
    """Keeps the connection safe for the engine's PREPAREd what-if statements.

    psycopg prepares frequent queries by itself, and once it has, a ROLLBACK
    (including ROLLBACK TO SAVEPOINT, which every failed what-if step ends with)
    makes it send DEALLOCATE ALL: the engine's prepared statements would vanish
    mid-check. For the length of the block, psycopg's are dropped and it prepares
    no more."""
    saved = conn.prepare_threshold
    conn.prepare_threshold = None
    conn.execute("DEALLOCATE ALL")          # psycopg sees it and forgets its own as well
    try:
        yield
    finally:
        conn.prepare_threshold = saved
