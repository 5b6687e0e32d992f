"""Fixtures shared by the pytest suites: real databases on the throwaway
cluster that `make test` starts (scripts/cluster.sh), one per test that asks."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo


@pytest.fixture(scope="session")
def server_dsn() -> str:
    dsn = os.environ.get("OPTISCHEMA_TEST_DSN")
    if not dsn:
        pytest.skip("OPTISCHEMA_TEST_DSN is not set: run through `make test`")
    return dsn


def _create_db(server_dsn: str, extensions: tuple[str, ...]) -> str:
    name = "opt_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = make_conninfo(server_dsn, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for ext in extensions:
            conn.execute(f"CREATE EXTENSION {ext} CASCADE")
    return dsn


def _drop_db(server_dsn: str, dsn: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_dsn(server_dsn: str) -> Iterator[str]:
    """A new database with hypopg and optischema installed, dropped afterwards."""
    dsn = _create_db(server_dsn, ("hypopg", "optischema"))
    try:
        yield dsn
    finally:
        _drop_db(server_dsn, dsn)


@pytest.fixture
def conn(db_dsn: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to db_dsn: table statistics are only flushed at commit."""
    with psycopg.connect(db_dsn, autocommit=True) as c:
        yield c
