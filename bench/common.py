"""What every benchmark needs: the throwaway cluster's DSN and a fresh database."""
from __future__ import annotations

import statistics
import subprocess
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent


def server_dsn() -> str:
    return subprocess.run([str(ROOT / "scripts" / "cluster.sh"), "dsn"], check=True,
                          capture_output=True, text=True).stdout.strip()


def fresh_database(name: str, extensions: tuple[str, ...] = ("hypopg", "pg_qualstats", "optischema")) -> str:
    """Drops and recreates database `name` with the extensions; returns its DSN."""
    with psycopg.connect(server_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = make_conninfo(server_dsn(), dbname=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for ext in extensions:
            conn.execute(f"CREATE EXTENSION IF NOT EXISTS {ext} CASCADE")
    return dsn


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples):.1f} ms (min {min(samples):.1f}, max {max(samples):.1f}, n={len(samples)})"
