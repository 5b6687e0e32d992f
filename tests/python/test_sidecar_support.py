"""Shared by the sidecar and apply suites: real optischema-sidecar processes
on a test database, and helpers to wait for what they do. (No tests here.)"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from optischema_engine.db import PsycopgDatabase
from optischema_engine.indexspec import existing
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parents[2]
SIDECAR = ROOT / ".venv" / "bin" / "optischema-sidecar"
TIMEOUT = 60.0  # generous: nothing here should take more than a few seconds


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def rows(dsn: str, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def one(dsn: str, query: str, params: tuple[Any, ...] = ()) -> Any:
    """The first column of the first row."""
    result = rows(dsn, query, params)
    return next(iter(result[0].values())) if result else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sidecar:
    """One optischema-sidecar process, its output in a log file."""

    def __init__(self, dsns: list[str], log: Path, worker_id: str, args: list[str]) -> None:
        self.worker_id = worker_id
        self.log = log
        cmd = [str(SIDECAR), "--worker-id", worker_id, "--metrics-port", "0", "--poll-interval", "0.5",
               "--heartbeat-interval", "1", "--lease", "5", "--no-schedule", "--shutdown-grace", "5"]
        for dsn in dsns:
            cmd += ["--dsn", dsn]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(cmd + args, stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = TIMEOUT) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(TIMEOUT)


@pytest.fixture
def start_sidecar(db_dsn: str, tmp_path: Path) -> Iterator[Callable[..., Sidecar]]:
    """start_sidecar(*extra_args, dsns=[db_dsn], worker_id=...) -> Sidecar; all are stopped afterwards."""
    started: list[Sidecar] = []

    def start(*args: str, dsns: list[str] | None = None, worker_id: str | None = None) -> Sidecar:
        name = worker_id or f"test-sidecar-{len(started)}"
        sidecar = Sidecar(dsns or [db_dsn], tmp_path / f"{name}.log", name, list(args))
        started.append(sidecar)
        return sidecar

    yield start
    for sidecar in started:
        if sidecar.proc.poll() is None:
            sidecar.kill()


def job(dsn: str, job_id: int) -> dict[str, Any]:
    return rows(dsn, "SELECT * FROM optischema.jobs WHERE id = %s", (job_id,))[0]


def wait_job(dsn: str, job_id: int, statuses: tuple[str, ...] = ("done", "failed")) -> dict[str, Any]:
    return wait_for(lambda: (j := job(dsn, job_id))["status"] in statuses and j, f"job {job_id} to be {statuses}")


def enqueue(dsn: str, kind: str, payload: str = "{}") -> int:
    return one(dsn, "SELECT optischema.enqueue(%s, %s::jsonb)", (kind, payload))


def create_table(dsn: str, name: str = "t", n: int = 100_000) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE public.{name} (a int, b text)")
        conn.execute(f"INSERT INTO public.{name} SELECT g, md5(g::text) FROM generate_series(1, %s) g", (n,))
        conn.execute(f"ANALYZE public.{name}")


def recommendation(dsn: str, key: str = "test:t_a", table: str = "t", column: str = "a",
                   queryids: list[int] | None = None, kind: str = "create_index", schema: str = "public") -> int:
    """A recommendation as the advisor writes it: a description of the index, resolved in
    the catalog (optischema_engine.indexspec), and the ddl shown built from it. A
    drop_index recommendation describes the existing index {table}_{column}_idx."""
    index = f"{table}_{column}_idx"
    with psycopg.connect(dsn, autocommit=True) as conn:
        if kind == "drop_index":
            oid = conn.execute("SELECT to_regclass(format('%%I.%%I', %s::text, %s::text))::oid", (schema, index)).fetchone()[0]
            spec = existing(PsycopgDatabase(conn), oid)
        else:
            table_oid, attnum = conn.execute(
                "SELECT a.attrelid::bigint, a.attnum::int FROM pg_attribute a"
                " WHERE a.attrelid = to_regclass(format('%%I.%%I', %s::text, %s::text)) AND a.attname = %s",
                (schema, table, column)).fetchone()
            spec = {"table": table_oid, "name": index, "method": "btree",
                    "keys": [{"column": column, "attnum": attnum}]}
        return conn.execute(
            "INSERT INTO optischema._recommendations (key, kind, source, title, ddl, rollback_ddl, table_name,"
            " index_name, queryids, index_spec) SELECT %s, %s, 'advisor', %s, t.ddl, t.rollback_ddl, %s, %s, %s, %s"
            " FROM optischema._index_texts(%s, %s) t RETURNING id",
            (key, kind, f"Index {table}({column})", f"{schema}.{table}", index, queryids or [], Jsonb(spec),
             kind, Jsonb(spec))).fetchone()[0]


def indexes(dsn: str, table: str = "t") -> list[dict[str, Any]]:
    return rows(dsn, "SELECT c.relname AS name, i.indisvalid AS valid FROM pg_index i"
                     " JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass ORDER BY 1",
                (f"public.{table}",))


def change(dsn: str, change_id: int) -> dict[str, Any]:
    return rows(dsn, "SELECT * FROM optischema.changes WHERE id = %s", (change_id,))[0]


def wait_change(dsn: str, change_id: int) -> dict[str, Any]:
    return wait_for(lambda: (c := change(dsn, change_id))["outcome"] not in ("pending", "running") and c,
                    f"change {change_id} to finish")
