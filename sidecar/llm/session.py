"""Keeps the job connection safe for PREPAREd what-if statements.

psycopg prepares frequent queries by itself, and once it has, a ROLLBACK (including
ROLLBACK TO SAVEPOINT, which every failed what-if step and every equivalence run ends with)
makes it send DEALLOCATE ALL: the what-if's own prepared statements would vanish mid-check.
For the length of an analysis, psycopg's are dropped and it prepares no more."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


@contextmanager
def own_prepared_statements(conn: psycopg.Connection) -> Iterator[None]:
    saved = conn.prepare_threshold
    conn.prepare_threshold = None
    conn.execute("DEALLOCATE ALL")          # psycopg sees it and forgets its own as well
    try:
        yield
    finally:
        conn.prepare_threshold = saved
