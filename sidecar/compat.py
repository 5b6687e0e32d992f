"""Which OptiSchema schemas this sidecar serves: the one of its own release
(major.minor), as the SQL side's optischema._sidecar_serves() decides too. A
sidecar never runs one version's code against another version's SQL."""
from __future__ import annotations

import psycopg

from optischema_sidecar import __version__


def _release(version: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(p) for p in version.split(".")[:3])
    except ValueError:
        return None


def installed(conn: psycopg.Connection) -> tuple[str | None, bool]:
    """The version of OptiSchema installed in the database (None: not installed),
    and whether it is a plain install (optischema-sidecar install: no extension)."""
    row = conn.execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'optischema'").fetchone()
    if row:
        return row[0], False
    if conn.execute("SELECT pg_catalog.to_regclass('optischema.installed') IS NULL").fetchone()[0]:
        return None, False
    row = conn.execute("SELECT version FROM optischema.installed").fetchone()
    return (row[0] if row else None), True


def schema_version(conn: psycopg.Connection) -> str | None:
    """The installed version, extension or plain, or None when it is not installed."""
    return installed(conn)[0]


def serves(version: str | None) -> bool:
    ours, theirs = _release(__version__), _release(version or "")
    return ours is not None and theirs is not None and ours[:2] == theirs[:2]


def refusal(database: str, version: str | None) -> str | None:
    """None when this sidecar serves the database; otherwise why not, and the fix."""
    if version is None:
        return (f"OptiSchema is not installed in {database}: run CREATE EXTENSION optischema CASCADE; "
                "in that database (see README, Install), or where PL/Python is not available (a managed "
                "service): optischema-sidecar install --dsn ... (README, Managed databases)")
    if serves(version):
        return None
    head = f"{database} has OptiSchema {version}, and this sidecar ({__version__}) serves only {__version__}"
    if (_release(version) or ()) < (_release(__version__) or ()):
        return (f"{head}: run make install of OptiSchema {__version__}, then in that database: ALTER EXTENSION optischema UPDATE; "
                f"(a plain install: optischema-sidecar upgrade --dsn ...)")
    return f"{head}: upgrade the sidecar to OptiSchema {version} (pip install optischema=={version}) and restart it"


def newer(version: str | None) -> bool:
    """The database's schema is newer than this sidecar: its health() can show us."""
    return (_release(version or "") or ()) > (_release(__version__) or ())
