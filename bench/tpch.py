"""TPC-H benchmark (issue 10, item 7): the index-selection literature's yardstick.

`make bench-tpch` (not part of `make test` or `make bench`). Loads TPC-H (tpchgen-cli, the
dbgen generator rewritten; scale factor 1 by default) into a database of its own, kept
between runs; replays the 19 queries of the literature (all but Q2, Q17, Q20) once as
literal text with a statement_timeout, as a DBA's psql or a BI tool would; asks OptiSchema
for advice like a DBA (CREATE EXTENSION, snapshot, workload, snapshot, recommend(50)); and
scores the advice the way Kossmann et al. (PVLDB 2020) do: the sum of EXPLAIN total cost of
the queries with the set as HypoPG indexes ÷ the same sum with none; plus the set's size and
count, and (--real) the queries' real time, median of 3, with the set built and without.

Index sets from elsewhere (another advisor, a hand-written baseline) are scored the same way
with --indexes NAME=FILE (a file of CREATE INDEX statements).

The schema is the literature's: Kossmann et al.'s harness strips the primary keys from
dbgen's DDL and creates no other index or foreign key, so "no index" means none at all.
--keys pk adds the specification's primary keys (no foreign keys either way).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from pglast import parse_sql
from pglast.ast import IndexStmt
from psycopg.conninfo import make_conninfo

from bench.common import server_dsn
from bench.tpch_queries import LITERATURE, PRIMARY_KEYS, QUERIES, ROWS_SF1, TABLES

ADVISOR = "optischema"
SLOWER = 1.10          # a query this much slower with a set than without is flagged
GOAL = "[goal: 19/19 analysed; relative cost <= 49.5% at <= 1.3 GiB; recommend() <= 5 s; no query > 10% slower]"


@dataclass
class Run:
    """What one query did in one pass: elapsed ms, or None when it hit the timeout."""
    ms: float | None


@dataclass
class IndexSet:
    name: str
    ddl: list[str]
    hypo_cost: dict[int, float] = field(default_factory=dict)
    hypo_bytes: int = 0
    errors: list[str] = field(default_factory=list)
    built_bytes: int | None = None
    built_cost: dict[int, float] = field(default_factory=dict)
    build_s: float | None = None
    ms: dict[int, float | None] = field(default_factory=dict)


# ---------------------------------------------------------------- data

def tpchgen() -> str:
    exe = Path(sys.executable).with_name("tpchgen-cli")
    found = str(exe) if exe.exists() else shutil.which("tpchgen-cli")
    if not found:
        sys.exit("bench.tpch: tpchgen-cli not found: run `.venv/bin/pip install -e '.[bench]'` "
                 "(make bench-tpch does)")
    return found


def database_name(scale: float) -> str:
    return "tpch_sf" + f"{scale:g}".replace(".", "_")


def marker(scale: float) -> str:
    # Written as the database's comment once everything is loaded and analysed: a database
    # without it was interrupted and is loaded again.
    return f"optischema bench.tpch: TPC-H scale factor {scale:g}, loaded, analysed, frozen"


def ensure_loaded(scale: float) -> str:
    name = database_name(scale)
    with psycopg.connect(server_dsn(), autocommit=True) as conn:
        row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                           (name,)).fetchone()
        dsn = make_conninfo(server_dsn(), dbname=name)
        if row is not None and row[0] == marker(scale):
            print(f"database {name}: reused (loaded by an earlier run)")
            return dsn
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    load(dsn, scale)
    with psycopg.connect(server_dsn(), autocommit=True) as conn:
        conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{marker(scale)}'")
    return dsn


def load(dsn: str, scale: float) -> None:
    gen = tpchgen()
    version = subprocess.run([gen, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"loading TPC-H scale factor {scale:g} with {version} (COPY, csv) ...", flush=True)
    t_all = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table, columns in TABLES.items():
            # Read-only benchmark data: an autovacuum ANALYZE at a random moment would change
            # the statistics, hence every estimated cost, between two runs.
            conn.execute(f"CREATE TABLE {table} ({columns}) WITH (autovacuum_enabled = off)")
        for table in TABLES:
            t0 = time.perf_counter()
            with subprocess.Popen([gen, "csv", "-s", f"{scale:g}", "-T", table, "--stdout"],
                                  stdout=subprocess.PIPE) as proc:
                assert proc.stdout is not None
                with conn.cursor().copy(f"COPY {table} FROM STDIN (FORMAT csv, HEADER true)") as copy:
                    while chunk := proc.stdout.read(1 << 20):
                        copy.write(chunk)
            if proc.returncode:
                sys.exit(f"bench.tpch: tpchgen-cli failed for {table} (exit {proc.returncode})")
            rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            print(f"  {table:<9} {rows:>10,} rows  {time.perf_counter() - t0:6.1f} s", flush=True)
            if scale == 1 and rows != ROWS_SF1[table]:
                sys.exit(f"bench.tpch: {table} has {rows} rows, TPC-H SF1 has {ROWS_SF1[table]}")
        t0 = time.perf_counter()
        conn.execute("ANALYZE")
        # After ANALYZE: VACUUM reads every page, so reltuples becomes the exact count (ANALYZE
        # extrapolates it from a sample), the value CREATE INDEX would set anyway; otherwise
        # building a set for real would move the costs of every later run. It also sets the
        # visibility map, as on any table that has been vacuumed once (index-only scans).
        conn.execute("VACUUM (FREEZE)")
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
    print(f"  ANALYZE + VACUUM {time.perf_counter() - t0:.1f} s; loaded in {time.perf_counter() - t_all:.0f} s, "
          f"database {size}", flush=True)


def ensure_keys(conn: psycopg.Connection, keys: str) -> None:
    have = {r[0] for r in conn.execute(
        "SELECT conrelid::regclass::text FROM pg_constraint WHERE contype = 'p' AND connamespace = 'public'::regnamespace")}
    for table, cols in PRIMARY_KEYS.items():
        if keys == "pk" and table not in have:
            conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({', '.join(cols)})")
        elif keys == "none" and table in have:
            conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")


def drop_leftovers(conn: psycopg.Connection) -> None:
    """Indexes left by an interrupted --real run (the keys are constraints, not leftovers)."""
    rows = conn.execute("""
        SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE c.relnamespace = 'public'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)""").fetchall()
    for (name,) in rows:
        print(f"dropping {name}, left by an interrupted run")
        conn.execute(f"DROP INDEX {name}")


# ---------------------------------------------------------------- queries

def explain(conn: psycopg.Connection, q: int, verbose: bool = False) -> dict:
    opts = "VERBOSE, FORMAT JSON" if verbose else "FORMAT JSON"
    return conn.execute(f"EXPLAIN ({opts}) {QUERIES[q]}").fetchone()[0][0]


def costs(conn: psycopg.Connection, qs: list[int]) -> dict[int, float]:
    return {q: explain(conn, q)["Plan"]["Total Cost"] for q in qs}


def run_once(conn: psycopg.Connection, q: int) -> Run:
    t0 = time.perf_counter()
    try:
        conn.execute(QUERIES[q]).fetchall()
    except psycopg.errors.QueryCanceled:
        return Run(None)
    return Run((time.perf_counter() - t0) * 1000)


def connect_timed(dsn: str, timeout_s: float) -> psycopg.Connection:
    # The timeout as a connection option, not a SET: nothing but the queries reaches
    # pg_stat_statements from this session.
    return psycopg.connect(dsn, autocommit=True, options=f"-c statement_timeout={int(timeout_s * 1000)}")


def time_queries(dsn: str, qs: list[int], timeout_s: float, reps: int = 3) -> dict[int, float | None]:
    """Median ms of `reps` runs per query; None if it timed out (not repeated then)."""
    out: dict[int, float | None] = {}
    with connect_timed(dsn, timeout_s) as conn:
        for q in qs:
            samples = []
            for _ in range(reps):
                run = run_once(conn, q)
                if run.ms is None:
                    break
                samples.append(run.ms)
            out[q] = statistics.median(samples) if len(samples) == reps else None
            print(f"  Q{q:<2} {fmt_ms(out[q], timeout_s):>10}", flush=True)
    return out


# ---------------------------------------------------------------- index sets

def split_create_index(text: str, origin: str) -> list[str]:
    """The CREATE INDEX statements of `text`, each as written; anything else is refused."""
    raw = text.encode()
    out = []
    for stmt in parse_sql(text):
        end = stmt.stmt_location + stmt.stmt_len if stmt.stmt_len else len(raw)
        sql = raw[stmt.stmt_location:end].decode().strip()
        if not isinstance(stmt.stmt, IndexStmt):
            sys.exit(f"bench.tpch: {origin}: only CREATE INDEX statements are scored, not: {sql[:80]}")
        out.append(sql)
    return out


def read_index_file(spec: str) -> IndexSet:
    name, sep, path = spec.partition("=")
    if not sep:
        name, path = Path(spec).stem, spec
    return IndexSet(name, split_create_index(Path(path).read_text(), path))


def score_hypothetical(conn: psycopg.Connection, s: IndexSet, qs: list[int]) -> None:
    conn.execute("SELECT hypopg_reset()")
    try:
        for ddl in s.ddl:
            try:
                oid = conn.execute("SELECT indexrelid FROM hypopg_create_index(%s)", (ddl,)).fetchone()[0]
                s.hypo_bytes += conn.execute("SELECT hypopg_relation_size(%s)", (oid,)).fetchone()[0]
            except psycopg.Error as e:
                s.errors.append(f"{ddl}: {e.diag.message_primary}")
        s.hypo_cost = costs(conn, qs)
    finally:
        conn.execute("SELECT hypopg_reset()")


def index_oids(conn: psycopg.Connection) -> set[int]:
    return {r[0] for r in conn.execute(
        "SELECT c.oid FROM pg_class c WHERE c.relkind = 'i' AND c.relnamespace = 'public'::regnamespace")}


@contextmanager
def built(conn: psycopg.Connection, ddl: list[str], errors: list[str]) -> Iterator[set[int]]:
    """The set built for real (its statements as given; a failure goes to `errors`), and
    dropped again on the way out. Yields the indexes built."""
    before = index_oids(conn)
    try:
        for d in ddl:
            try:
                conn.execute(d)
            except psycopg.Error as e:
                errors.append(f"built: {d}: {e.diag.message_primary}")
        yield index_oids(conn) - before
    finally:
        for oid in index_oids(conn) - before:
            name = conn.execute("SELECT %s::regclass::text", (oid,)).fetchone()[0]
            conn.execute(f"DROP INDEX {name}")


def score_real(dsn: str, s: IndexSet, qs: list[int], timeout_s: float) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        t0 = time.perf_counter()
        with built(conn, s.ddl, s.errors) as oids:
            s.build_s = time.perf_counter() - t0
            s.built_bytes = sum(conn.execute("SELECT pg_relation_size(%s)", (oid,)).fetchone()[0] for oid in oids)
            s.built_cost = costs(conn, qs)
            print(f"{s.name}: {len(oids)} indexes built in {s.build_s:.1f} s; timing the queries", flush=True)
            s.ms = time_queries(dsn, qs, timeout_s)


# ---------------------------------------------------------------- OptiSchema as a DBA uses it

@dataclass
class Advice:
    workload: dict[int, Run]
    recommend_s: float
    ddl: list[str]
    other_kinds: dict[str, int]
    stats: dict
    skipped: list[dict]
    captured: set[int]
    served: dict[int, list[str]]


class Snapshots:
    """What a scheduler (the sidecar) does while the workload runs: optischema.sample_running()
    every `sample_every` seconds (the sidecar's sample_interval, 10 by default), and a snapshot
    every `every` seconds (0: only the snapshots before and after the workload). A statement
    that times out is seen only by a sample or a snapshot taken while it runs."""

    def __init__(self, dsn: str, every: float, sample_every: float = 10.0):
        self.dsn, self.every, self.sample_every, self.taken, self.samples = dsn, every, sample_every, 0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        ticks = [t for t in (self.every, self.sample_every) if t > 0]
        next_snapshot, next_sample = self.every, self.sample_every
        elapsed = 0.0
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.wait(min(ticks)):
                elapsed += min(ticks)
                if self.every > 0 and elapsed >= next_snapshot:
                    conn.execute("SELECT optischema.snapshot()")
                    self.taken += 1
                    next_snapshot += self.every
                if self.sample_every > 0 and elapsed >= next_sample:
                    conn.execute("SELECT optischema.sample_running()")
                    self.samples += 1
                    next_sample += self.sample_every

    def __enter__(self) -> "Snapshots":
        if self.every > 0 or self.sample_every > 0:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()


def advise(dsn: str, qs: list[int], timeout_s: float, settings: dict[str, str], rounds: int,
           snapshot_every: float = 0, sample_every: float = 10.0, plain: bool = False) -> Advice:
    with psycopg.connect(dsn, autocommit=True) as conn:
        # A fresh install of what `make install` put on this machine: no analysis,
        # recommendation or setting of an earlier run survives.
        conn.execute("DROP EXTENSION IF EXISTS optischema CASCADE")
        conn.execute("DROP SCHEMA IF EXISTS optischema CASCADE")        # a plain install of an earlier run
        conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_qualstats")     # the constants the literal text ran with
        if plain:
            # no extension, the engine in the sidecar (README, "Managed databases")
            subprocess.run([str(Path(sys.executable).with_name("optischema-sidecar")), "install", "--dsn", dsn],
                           check=True, stdout=subprocess.DEVNULL)
        else:
            conn.execute("CREATE EXTENSION optischema CASCADE")
        for key, value in settings.items():
            conn.execute("SELECT optischema.set_setting(%s, %s)", (key, value))
        # The cluster is the benchmark's own: a clean pg_stat_statements, as after a restart.
        conn.execute("SELECT pg_stat_statements_reset()")
        conn.execute("SELECT pg_qualstats_reset()")
        conn.execute("SELECT optischema.snapshot()")
        print(f"workload: {len(qs)} queries x {rounds}, statement_timeout {timeout_s:g} s"
              + (f", a snapshot every {snapshot_every:g} s" if snapshot_every > 0 else "")
              + f", running statements sampled every {sample_every:g} s", flush=True)
        workload: dict[int, Run] = {}
        with connect_timed(dsn, timeout_s) as wconn, Snapshots(dsn, snapshot_every, sample_every):
            for _ in range(rounds):
                for q in qs:
                    workload[q] = run_once(wconn, q)
                    print(f"  Q{q:<2} {fmt_ms(workload[q].ms, timeout_s):>10}", flush=True)
        conn.execute("SELECT optischema.snapshot()")
        t0 = time.perf_counter()
        if plain:
            from optischema_sidecar import refresh
            refresh.run(conn)                  # the sidecar's recommend job, which recommend() queues
        recs = conn.execute("SELECT kind, ddl, queryids FROM optischema.recommend(50)").fetchall()
        recommend_s = time.perf_counter() - t0
        stats, skipped = conn.execute(
            "SELECT stats, skipped FROM optischema.analyses ORDER BY id DESC LIMIT 1").fetchone()
        captured = {r[0] for r in conn.execute(
            "SELECT queryid FROM pg_stat_statements(false) WHERE dbid = (SELECT oid FROM pg_database "
            "WHERE datname = current_database())")}
    ddl, other, served = [], {}, {}
    for kind, text, qids in recs:
        if kind == "create_index":
            stmts = split_create_index(text, "recommend()")
            ddl += stmts
            for qid in qids or []:
                served.setdefault(qid, []).extend(stmts)
        else:
            other[kind] = other.get(kind, 0) + 1
    return Advice(workload, recommend_s, ddl, other, stats or {}, skipped or [], captured, served)


def rewrites(dsn: str, qids: dict[int, int], timeout_s: float) -> dict[int, dict]:
    """After advise(): the rewrites job as the sidecar runs it (optischema_sidecar.rewrites),
    each proof run bounded by the workload's timeout. Per query: the proven rewrite and its
    measured speedup, median of 3: the proof is run twice more (each run executes the original
    and the rewrite once per parameter set), and the speedup is the median of the three
    original ms over the median of the three rewrite ms, summed over the parameter sets; or
    why there is none."""
    from optischema_engine.proof import Statement, prove
    from optischema_sidecar.proof_session import proof_session
    from optischema_sidecar.rewrites import check
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT optischema.set_setting('rewrite_check_timeout', %s)", (f"{timeout_s:g} seconds",))
        t0 = time.perf_counter()
        result = check(conn)
        elapsed = time.perf_counter() - t0
        recs = {r[0]: r[1:] for r in conn.execute(
            "SELECT r.queryids[1], r.evidence, r.ddl, t.query FROM optischema.recommendations r"
            " JOIN optischema.query_texts t ON t.queryid = r.queryids[1]"
            " WHERE r.kind = 'rewrite' AND r.source = 'advisor' AND r.status = 'open'")}
        by_qid = {qid: q for q, qid in qids.items()}
        out: dict[int, dict] = {}
        for line in result["candidates"]:
            q = by_qid.get(line["queryid"])
            if q is None:
                continue
            item = out.setdefault(q, {"candidates": []})
            item["candidates"].append({k: line[k] for k in ("pattern", "accepted", "reason")})
            if line["accepted"] and line["queryid"] in recs:
                evidence, sql, text = recs[line["queryid"]]
                totals = [{k: sum(r["ms"][k] for r in evidence["runs"]) for k in ("original", "rewrite")}]
                for _ in range(2):
                    with proof_session(conn, "bench") as db:
                        runs = prove(db, Statement(line["queryid"], text), sql, int(timeout_s * 1000)).runs
                    totals.append({k: sum(r["ms"][k] for r in runs) for k in ("original", "rewrite")})
                ms = {k: statistics.median(t[k] for t in totals) for k in ("original", "rewrite")}
                item.update(proven=True, pattern=evidence["pattern"], sql=sql, ms=ms, sets=len(evidence["runs"]),
                            speedup=ms["original"] / max(ms["rewrite"], 0.001), totals=totals)
    print(f"\n== rewrite advice: {result['statements_checked']} statements checked in {elapsed:.1f} s, "
          f"{result['proven']} proven, {result['rejected']} rejected (proof timeout {timeout_s:g} s)")
    for q in sorted(out):
        item = out[q]
        if item.get("proven"):
            print(f"Q{q:<3} proven  {item['pattern']:<20} speedup x{item['speedup']:.1f}: original "
                  f"{item['ms']['original']:,.1f} ms, rewrite {item['ms']['rewrite']:,.1f} ms (median of 3, "
                  f"{item['sets']} parameter set{'s' if item['sets'] != 1 else ''} each)")
        for c in item["candidates"]:
            if not c["accepted"]:
                print(f"Q{q:<3} rejected {c['pattern']:<20} {c['reason']}")
    return out


def advisor_status(qid: int, advice: Advice) -> str:
    reasons = [s.get("reason", "?") for s in advice.skipped if s.get("queryid") == qid]
    if reasons:
        return "skipped: " + "; ".join(reasons)
    planned = advice.stats.get("planned_text", {}).get(str(qid))     # normalized, rewritten: ..., sampled: ...
    if planned is not None:
        return "analysed" + ("" if planned == "normalized" else f" ({planned.split(':')[0]} text)")
    if qid in advice.captured:
        return "analysed"
    if qid in advice.served:
        return "analysed (not in pg_stat_statements)"
    return "not captured: never reached pg_stat_statements"


# ---------------------------------------------------------------- report

def fmt_ms(ms: float | None, timeout_s: float) -> str:
    return f">{timeout_s * 1000:.0f} (timeout)" if ms is None else f"{ms:.1f}"


def mib(b: int | None) -> str:
    return "-" if b is None else f"{b / 2**20:,.0f} MiB"


def ratio(a: float | None, b: float | None) -> str:
    if a is None and b is None:
        return "-"
    if a is None:
        return "<1"      # timed out without the set, finished with it
    if b is None:
        return ">1"
    return f"{b / a:.2f}"


def report_set(s: IndexSet, base_cost: dict[int, float], base_ms: dict[int, float | None] | None,
               qs: list[int], timeout_s: float) -> dict:
    print(f"\n== {s.name}: {len(s.ddl)} indexes")
    for ddl in s.ddl:
        print(f"  {ddl}")
    for err in s.errors:
        print(f"  ERROR {err}")
    real = base_ms is not None and bool(s.ms)
    head = f"{'query':<6}{'est. cost none':>16}{'with set':>14}{'ratio':>7}"
    if real:
        head += f"  |{'ms none':>18}{'ms with set':>18}{'ratio':>7}"
    print(head)
    slower = []
    for q in qs:
        line = f"Q{q:<5}{base_cost[q]:>16,.0f}{s.hypo_cost[q]:>14,.0f}{s.hypo_cost[q] / base_cost[q]:>7.3f}"
        if real:
            a, b = base_ms[q], s.ms.get(q)
            flag = ""
            if b is None and a is not None or (a is not None and b is not None and b > a * SLOWER):
                # The same plan with and without the set: the difference is the machine's noise.
                same = s.built_cost.get(q) == base_cost[q]
                flag = "  SLOWER (same plan: noise)" if same else "  SLOWER"
                if not same:
                    slower.append(q)
            line += f"  |{fmt_ms(a, timeout_s):>18}{fmt_ms(b, timeout_s):>18}{ratio(a, b):>7}{flag}"
        print(line)
    total_base, total_set = sum(base_cost[q] for q in qs), sum(s.hypo_cost[q] for q in qs)
    rel = total_set / total_base
    print(f"{s.name}: relative cost {rel:.1%} (sum of EXPLAIN total cost {total_set:,.0f} / {total_base:,.0f} "
          f"with no index)")
    print(f"{s.name}: {len(s.ddl)} indexes, {mib(s.hypo_bytes)} (hypopg estimate)"
          + (f", {mib(s.built_bytes)} built in {s.build_s:.1f} s" if s.built_bytes is not None else ""))
    out = {"name": s.name, "ddl": s.ddl, "errors": s.errors, "relative_cost": rel, "cost": s.hypo_cost,
           "hypo_bytes": s.hypo_bytes, "built_bytes": s.built_bytes, "ms": s.ms}
    if real:
        done = [q for q in qs if base_ms[q] is not None and s.ms.get(q) is not None]
        a, b = sum(base_ms[q] for q in done), sum(s.ms[q] for q in done)
        note = "" if len(done) == len(qs) else f" (the {len(done)} queries that finished both times)"
        pct = ", ".join(f"Q{q} ({ratio(base_ms[q], s.ms.get(q))}x)" for q in slower) or "none"
        print(f"{s.name}: real time {a / 1000:.1f} s -> {b / 1000:.1f} s ({b / a:.2f}x){note}; "
              f"more than {SLOWER - 1:.0%} slower with another plan: {pct}")
        same = [s.ms[q] / base_ms[q] for q in done if s.built_cost.get(q) == base_cost[q]]
        if same:
            print(f"{s.name}: noise: the {len(same)} queries whose plan the set does not change ran "
                  f"{min(same):.2f}x to {max(same):.2f}x their time without it")
        out.update(real_ratio=b / a, slower=slower, built_cost=s.built_cost)
    return out


def main(argv: list[str] | None = None) -> None:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m bench.tpch", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=float(env("TPCH_SCALE", "1")), help="TPC-H scale factor (1)")
    p.add_argument("--keys", choices=("none", "pk"), default=env("TPCH_KEYS", "none"),
                   help="none: no index at all, as in the literature (default); pk: the specification's primary keys")
    p.add_argument("--timeout", type=float, default=float(env("TPCH_TIMEOUT", "60")),
                   help="statement_timeout of every query, seconds (60)")
    p.add_argument("--queries", default=env("TPCH_QUERIES", "literature"),
                   help="literature (the 19: all but Q2, Q17, Q20), all, or a list such as 1,3,21")
    p.add_argument("--rounds", type=int, default=int(env("TPCH_ROUNDS", "1")),
                   help="times the workload is replayed before recommend() (1)")
    p.add_argument("--snapshot-every", type=float, default=float(env("TPCH_SNAPSHOT_EVERY", "0")), metavar="SECONDS",
                   help="also take a snapshot this often while the workload runs, as a scheduler would "
                        "(0: only before and after it; a statement that times out is seen only by one taken while it runs)")
    p.add_argument("--sample-every", type=float, default=float(env("TPCH_SAMPLE_EVERY", "10")), metavar="SECONDS",
                   help="sample the statements running now this often, as the sidecar does (10, its default; 0: never)")
    p.add_argument("--plain", action="store_true",
                   help="a plain install (optischema-sidecar install) with the engine run by the sidecar, "
                        "instead of the extension")
    p.add_argument("--set", action="append", default=[s for s in env("TPCH_SETTINGS", "").split(",") if s],
                   metavar="KEY=VALUE", help="an OptiSchema setting for the run (repeatable; default: none)")
    p.add_argument("--indexes", action="append", default=[s for s in env("TPCH_INDEXES", "").split(",") if s],
                   metavar="[NAME=]FILE", help="also score this set of CREATE INDEX statements (repeatable)")
    p.add_argument("--skip-advisor", action="store_true", help="score only the --indexes sets")
    p.add_argument("--real", action="store_true", default=env("TPCH_REAL", "") not in ("", "0"),
                   help="also build each set and time the queries, median of 3, with and without it (long)")
    p.add_argument("--rewrites", action="store_true", default=env("TPCH_REWRITES", "") not in ("", "0"),
                   help="also run the rewrite advice (the sidecar's rewrites job), without an index and again "
                        "with the advised set built, and report each proven rewrite's measured speedup (median of 3)")
    p.add_argument("--json", type=Path, help="also write every figure to this file")
    a = p.parse_args(argv)

    qs = (list(LITERATURE) if a.queries == "literature" else sorted(QUERIES) if a.queries == "all"
          else [int(x) for x in a.queries.split(",")])
    settings = dict(kv.split("=", 1) for kv in a.set)
    sets = [read_index_file(spec) for spec in a.indexes]

    print(f"== TPC-H scale factor {a.scale:g}: {len(qs)} queries ({a.queries}), literal text, "
          f"statement_timeout {a.timeout:g} s, keys: {a.keys} {GOAL if a.queries == 'literature' else ''}")
    dsn = ensure_loaded(a.scale)
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_keys(conn, a.keys)
        drop_leftovers(conn)
        conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
        plans = {q: explain(conn, q, verbose=True) for q in qs}
        qids = {q: plans[q]["Query Identifier"] for q in qs}
        base_cost = {q: plans[q]["Plan"]["Total Cost"] for q in qs}

    result: dict = {"scale": a.scale, "keys": a.keys, "timeout_s": a.timeout, "queries": qs,
                    "settings": settings, "base_cost": base_cost}
    advice = None
    if not a.skip_advisor:
        advice = advise(dsn, qs, a.timeout, settings, a.rounds, a.snapshot_every, a.sample_every, a.plain)
        sets.insert(0, IndexSet(ADVISOR, advice.ddl))
    with psycopg.connect(dsn, autocommit=True) as conn:
        for s in sets:
            score_hypothetical(conn, s, qs)
    base_ms = None
    if a.real:
        print("real time without any index (median of 3):", flush=True)
        base_ms = time_queries(dsn, qs, a.timeout)
        for s in sets:
            score_real(dsn, s, qs, a.timeout)

    if advice is not None:
        print(f"\n== OptiSchema as a DBA uses it{' (settings: ' + str(settings) + ')' if settings else ''}")
        print(f"{'query':<6}{'queryid':>21}{'workload ms':>20}  advisor")
        for q in qs:
            print(f"Q{q:<5}{qids[q]:>21}{fmt_ms(advice.workload[q].ms, a.timeout):>20}  "
                  f"{advisor_status(qids[q], advice)}")
        status = {q: advisor_status(qids[q], advice) for q in qs}
        analysed = sum(s.startswith("analysed") for s in status.values())
        timeouts = [q for q in qs if advice.workload[q].ms is None]
        st = advice.stats
        print(f"analysed: {analysed}/{len(qs)} statements "
              f"(the advisor's stats: {st.get('statements_analysed', '?')} analysed of "
              f"{st.get('queries_in_workload', '?')} in the window)")
        print(f"workload timeouts: {', '.join(f'Q{q}' for q in timeouts) or 'none'}"
              + (" (a timed-out statement never reaches pg_stat_statements)" if timeouts else ""))
        size = (st.get("new_indexes") or {}).get("bytes")
        print(f"recommend(50): {advice.recommend_s:.2f} s, {len(advice.ddl)} create_index"
              + (f" ({mib(size)} by its estimate)" if size is not None else "")
              + "".join(f", {n} {k}" for k, n in sorted(advice.other_kinds.items()))
              + f"; stats: {json.dumps({k: v for k, v in st.items() if not isinstance(v, (dict, list))})}")
        result["advisor"] = {"queryids": qids, "status": status, "analysed": analysed, "timeouts": timeouts,
                             "workload_ms": {q: advice.workload[q].ms for q in qs},
                             "recommend_s": advice.recommend_s, "stats": st, "skipped": advice.skipped}

    if advice is not None and a.rewrites:
        result["rewrites"] = {"no index": rewrites(dsn, qids, a.timeout)}
        # as a DBA would go on: a correlated subquery whose original never finishes without
        # an index cannot be proven equal; with the advised indexes built it may
        with psycopg.connect(dsn, autocommit=True) as conn, built(conn, advice.ddl, []) as oids:
            print(f"\n== the rewrite advice again, with OptiSchema's {len(oids)} indexes built")
            result["rewrites"]["with the advised set"] = rewrites(dsn, qids, a.timeout)

    total_base = sum(base_cost.values())
    print(f"\n== no index{' but the primary keys' if a.keys == 'pk' else ''}: "
          f"sum of EXPLAIN total cost {total_base:,.0f}"
          + (f"; real time {sum(v for v in base_ms.values() if v is not None) / 1000:.1f} s"
             + (f", timed out: {', '.join(f'Q{q}' for q, v in base_ms.items() if v is None)}"
                if None in base_ms.values() else "") if base_ms else ""))
    result["base_ms"] = base_ms
    result["sets"] = [report_set(s, base_cost, base_ms, qs, a.timeout) for s in sets]
    if a.json:
        a.json.write_text(json.dumps(result, indent=1, default=str))
        print(f"\nfigures written to {a.json}")


if __name__ == "__main__":
    main()
