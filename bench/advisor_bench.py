"""Advisor benchmark (issue 3): recommend() time and what-if EXPLAIN calls on
the demo's 25-template help-desk workload (goal: <= 5 s)."""
from __future__ import annotations

import time

import psycopg

from bench.common import fresh_database, median_ms
from demo import workload
from demo.__main__ import load

WORKLOAD_SECONDS = 30


def main() -> None:
    print(f"== advisor: recommend() on the {len(workload.TEMPLATES)}-template demo workload")
    dsn = fresh_database("optischema_bench_advisor")
    load(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT optischema.snapshot()")
        statements = workload.run(dsn, WORKLOAD_SECONDS)
        conn.execute("SELECT optischema.snapshot()")
        print(f"replayed {statements} statements in {WORKLOAD_SECONDS} s")
        samples = []
        for _ in range(3):
            t0 = time.perf_counter()
            recs = conn.execute("SELECT count(*) FROM optischema.recommend(100)").fetchone()[0]
            samples.append((time.perf_counter() - t0) * 1000)
        stats = conn.execute("SELECT stats FROM optischema.analyses ORDER BY id DESC LIMIT 1").fetchone()[0]
        print(f"recommend(): median {median_ms(samples)}  [goal <= 5000 ms]")
        print(f"  {recs} recommendations, {stats['statements_analysed']} statements analysed, "
              f"{stats['explain_calls']} what-if EXPLAIN calls, {stats['hypo_indexes']} hypothetical indexes, "
              f"{stats['candidates']} candidates")
        print(f"  estimated workload cost: {stats['workload_cost_before']:.0f} -> {stats['workload_cost_after']:.0f}")


if __name__ == "__main__":
    main()
