"""Sidecar benchmark: trivial jobs one sidecar claims and completes per
second, and the time from apply() to a verified index on a table of 1M rows.

    .venv/bin/python -m bench.sidecar_bench [--jobs 5000] [--rows 1000000]

On the throwaway cluster (scripts/cluster.sh), in a database of its own."""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.common import ROOT, fresh_database, server_dsn

SIDECAR = ROOT / ".venv" / "bin" / "optischema-sidecar"
DATABASE = "optischema_bench_sidecar"


def _start_sidecar(dsn: str, concurrency: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([str(SIDECAR), "--dsn", dsn, "--no-schedule", "--metrics-port", "0",
                                 "--concurrency", str(concurrency), "--log-level", "WARNING",
                                 "--worker-id", f"bench-{concurrency}"], stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)


def _wait(conn: psycopg.Connection, query: str, params: tuple[Any, ...] = (), timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not conn.execute(query, params).fetchone()[0]:
        if time.monotonic() > deadline:
            raise SystemExit(f"sidecar_bench: timed out waiting for: {query}")
        time.sleep(0.01)


def jobs_per_second(dsn: str, jobs: int, concurrency: int, log: Path) -> float:
    """Jobs are queued first, so the figure is the claim + complete loop alone,
    from the first claim to the last completion as the database recorded them."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM optischema.jobs")
        conn.execute("SELECT optischema.enqueue('noop') FROM generate_series(1, %s)", (jobs,))
        proc = _start_sidecar(dsn, concurrency, log)
        try:
            _wait(conn, "SELECT count(*) = 0 FROM optischema.jobs WHERE status <> 'done'")
        finally:
            _stop(proc)
        seconds = conn.execute("SELECT extract(epoch FROM max(finished_at) - min(started_at)) FROM optischema.jobs").fetchone()[0]
    return jobs / float(seconds)


def apply_to_verified(dsn: str, rows: int, log: Path) -> tuple[float, float, str]:
    """(seconds from apply() to the recorded plan check, seconds of the build, plan check verdict)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.bench_t (id bigint, customer_id int, note text)")
        conn.execute("INSERT INTO public.bench_t SELECT g, g %% 50000, md5(g::text) FROM generate_series(1, %s) g", (rows,))
        conn.execute("ANALYZE public.bench_t")
        for n in range(5):
            conn.execute("SELECT * FROM public.bench_t WHERE customer_id = %s", (n,))
        conn.execute("SELECT optischema.snapshot()")
        queryid = conn.execute("SELECT queryid FROM optischema.queries"
                               " WHERE query LIKE 'SELECT * FROM public.bench_t WHERE customer_id = $1%%'").fetchone()[0]
        # A recommendation as the advisor writes it: the description the statement is built from.
        rec = conn.execute(
            "INSERT INTO optischema._recommendations (key, kind, source, title, table_name, index_name, queryids, index_spec)"
            " VALUES ('bench', 'create_index', 'advisor', 'Index bench_t(customer_id)', 'public.bench_t',"
            " 'bench_t_customer_id_idx', ARRAY[%s]::bigint[], jsonb_build_object('table', 'public.bench_t'::regclass::oid::bigint,"
            " 'name', 'bench_t_customer_id_idx', 'keys', '[{\"column\": \"customer_id\"}]'::jsonb)) RETURNING id",
            (queryid,)).fetchone()[0]
        proc = _start_sidecar(dsn, 2, log)
        try:
            _wait(conn, "SELECT count(*) > 0 FROM optischema.sidecars")
            t0 = time.monotonic()
            change = conn.execute("SELECT optischema.apply(%s)", (rec,)).fetchone()[0]
            _wait(conn, "SELECT plan_check <> 'pending' OR outcome = 'failed' FROM optischema.changes WHERE id = %s", (change,))
            elapsed = time.monotonic() - t0
        finally:
            _stop(proc)
        outcome, build_ms, verdict = conn.execute(
            "SELECT outcome, duration_ms, plan_check FROM optischema.changes WHERE id = %s", (change,)).fetchone()
    if outcome != "succeeded":
        raise SystemExit(f"sidecar_bench: the apply failed ({outcome}); see {log}")
    return elapsed, build_ms / 1000, verdict


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=5000)
    p.add_argument("--rows", type=int, default=1_000_000)
    args = p.parse_args(argv)
    dsn = fresh_database(DATABASE)
    logdir = Path(tempfile.mkdtemp(prefix="sidecar_bench_"))
    try:
        for concurrency in (1, 2):
            rate = jobs_per_second(dsn, args.jobs, concurrency, logdir / f"jobs-{concurrency}.log")
            print(f"sidecar: {rate:.0f} jobs/s (noop, {args.jobs} jobs, one sidecar, concurrency {concurrency})")
        elapsed, build, verdict = apply_to_verified(dsn, args.rows, logdir / "apply.log")
        print(f"sidecar: apply() to verified index on {args.rows} rows in {elapsed:.2f} s "
              f"(CREATE INDEX CONCURRENTLY {build:.2f} s, plan check: {verdict})")
    finally:
        with psycopg.connect(server_dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
