"""pg_dump of one test database restored into a new one: the round trip a
DBA's backup takes. The extension's own objects come from CREATE EXTENSION;
what pg_extension_config_dump registered comes back as data."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import make_conninfo

PGBIN = "/usr/lib/postgresql/15/bin"


@contextmanager
def restored_copy(server_dsn: str, dsn: str) -> Iterator[str]:
    """The DSN of a new database restored from a pg_dump of dsn; dropped afterwards."""
    dump = subprocess.run([f"{PGBIN}/pg_dump", "--dbname", dsn],
                          check=True, capture_output=True, text=True).stdout
    target = "opt_restore_" + os.urandom(4).hex()
    with psycopg.connect(server_dsn, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{target}"')
    try:
        target_dsn = make_conninfo(server_dsn, dbname=target)
        subprocess.run([f"{PGBIN}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target_dsn],
                       input=dump, check=True, capture_output=True, text=True)
        yield target_dsn
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
