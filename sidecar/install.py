"""optischema-sidecar install | upgrade: OptiSchema without the extension, for a
database where CREATE EXTENSION optischema is not possible (a managed service: no
PL/Python, no superuser). The installing role needs CREATE on the database; it
owns schema optischema. The SQL is the extension's, built from the same sources
without the PL/Python functions (scripts/build-sql.sh plain); the engine runs in
this sidecar. The installed version is recorded in optischema.installed, which the
sidecar checks as it checks an extension's version.

    optischema-sidecar install --dsn "host=... dbname=app user=app_admin"
    optischema-sidecar upgrade --dsn "..."

Both are safe to repeat: what is installed at this version is left as it is."""
from __future__ import annotations

import argparse
import os
import sys
from importlib import resources

import psycopg

from optischema_sidecar import __version__, compat
from optischema_sidecar.db import describe


class InstallError(Exception):
    pass


def _script(name: str) -> str:
    path = resources.files("optischema_sidecar") / "sql" / name
    if not path.is_file():
        raise InstallError(f"this optischema-sidecar has no {name}: build it with make in the OptiSchema "
                           "source (or pip install OptiSchema from its source), then retry")
    return path.read_text()


def _run(conn: psycopg.Connection, script: str) -> None:
    # the whole script (no parameters: psycopg sends it as it is) in the caller's transaction
    conn.execute(script.encode())


def _installed_locked(conn: psycopg.Connection) -> tuple[str | None, bool]:
    """What is installed, read after taking the lock that serializes installs."""
    conn.execute("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('optischema.install', 0))")
    version, plain = compat.installed(conn)
    if version is not None and not plain:
        raise InstallError(f"OptiSchema {version} is installed as an extension in {describe(conn.info.dsn)}: "
                           "upgrade it with make install and ALTER EXTENSION optischema UPDATE;")
    if version is None and conn.execute("SELECT pg_catalog.to_regnamespace('optischema') IS NOT NULL").fetchone()[0]:
        raise InstallError("schema optischema exists and is not an OptiSchema install: rename or drop it first")
    return version, plain


def install(conn: psycopg.Connection) -> str:
    with conn.transaction():
        version, _ = _installed_locked(conn)
        if version == __version__:
            return f"OptiSchema {__version__} is already installed: nothing to do"
        if version is not None:
            raise InstallError(f"OptiSchema {version} is installed: run optischema-sidecar upgrade")
        _run(conn, _script(f"optischema--{__version__}.sql"))
    return f"OptiSchema {__version__} installed (plain: the engine runs in optischema-sidecar)"


def upgrade(conn: psycopg.Connection) -> str:
    with conn.transaction():
        version, _ = _installed_locked(conn)
        if version is None:
            raise InstallError("OptiSchema is not installed: run optischema-sidecar install")
        if version == __version__:
            return f"OptiSchema {__version__} is installed: nothing to upgrade"
        try:
            steps = _script(f"optischema--{version}--{__version__}.sql")
        except InstallError:
            raise InstallError(f"no upgrade from OptiSchema {version} to {__version__} in this sidecar") from None
        _run(conn, steps)
    return f"OptiSchema upgraded from {version} to {__version__}"


def main(command: str, argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog=f"optischema-sidecar {command}", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dsn", action="append",
                   help="libpq connection string of the database (repeat for more; default: OPTISCHEMA_DSN, one per line)")
    args = p.parse_args(argv)
    dsns = args.dsn or [d for d in os.environ.get("OPTISCHEMA_DSN", "").splitlines() if d.strip()]
    if not dsns:
        print(f"optischema-sidecar {command}: no database: pass --dsn or set OPTISCHEMA_DSN", file=sys.stderr)
        return 2
    status = 0
    for dsn in dsns:
        try:
            with psycopg.connect(dsn, autocommit=True, application_name=f"optischema-sidecar {command}") as conn:
                print(f"{describe(dsn)}: {(install if command == 'install' else upgrade)(conn)}")
        except (InstallError, psycopg.Error) as e:
            print(f"{describe(dsn)}: {command} failed: {str(e).strip()}", file=sys.stderr)
            status = 1
    return status
