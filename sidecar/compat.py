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


def schema_version(conn: psycopg.Connection) -> str | None:
    """The installed extension's version, or None when it is not installed."""
    row = conn.execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'optischema'").fetchone()
    return row[0] if row else None


def serves(version: str | None) -> bool:
    ours, theirs = _release(__version__), _release(version or "")
    return ours is not None and theirs is not None and ours[:2] == theirs[:2]


def refusal(database: str, version: str | None) -> str | None:
    """None when this sidecar serves the database; otherwise why not, and the fix."""
    if version is None:
        return (f"OptiSchema is not installed in {database}: run CREATE EXTENSION optischema CASCADE; "
                "in that database (see README, Install)")
    if serves(version):
        return None
    head = f"{database} has OptiSchema {version}, and this sidecar ({__version__}) serves only {__version__}"
    if (_release(version) or ()) < (_release(__version__) or ()):
        return f"{head}: run make install of OptiSchema {__version__}, then in that database: ALTER EXTENSION optischema UPDATE;"
    return f"{head}: upgrade the sidecar to OptiSchema {version} (pip install optischema=={version}) and restart it"


def newer(version: str | None) -> bool:
    """The database's schema is newer than this sidecar: its health() can show us."""
    return (_release(version or "") or ()) > (_release(__version__) or ())
