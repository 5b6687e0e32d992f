"""The concurrency limit of LLM calls, held in the database: a call runs while its session
holds one of N advisory locks (slots). The limit thus spans every sidecar of a database,
and a crashed sidecar's slot is freed with its session."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

# First key of the advisory lock pair; the second is the slot number. Advisory locks are
# per database, like every other piece of OptiSchema state.
_LOCK_SQL = "SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtext('optischema.llm_slot'), %s)"
_UNLOCK_SQL = "SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('optischema.llm_slot'), %s)"


class NoSlot(Exception):
    """Every slot stayed taken for the whole wait."""


def _try(conn: psycopg.Connection, limit: int) -> int | None:
    with conn.cursor() as cur:
        for slot in range(limit):
            cur.execute(_LOCK_SQL, (slot,))
            if cur.fetchone()[0]:
                return slot
    return None


@contextmanager
def llm_slot(conn: psycopg.Connection, limit: int, wait_s: float, poll_s: float = 0.5) -> Iterator[int]:
    deadline = time.monotonic() + wait_s
    slot = _try(conn, limit)
    while slot is None:
        if time.monotonic() >= deadline:
            raise NoSlot(f"all {limit} LLM slots stayed busy for {wait_s:.0f}s (setting llm_max_concurrent)")
        time.sleep(poll_s)
        slot = _try(conn, limit)
    try:
        yield slot
    finally:
        with conn.cursor() as cur:
            cur.execute(_UNLOCK_SQL, (slot,))
