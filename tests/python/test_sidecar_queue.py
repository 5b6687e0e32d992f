"""The job loop with real sidecar processes: claims, races, retries,
shutdown, lost connections, several databases, schedules, observability."""
from __future__ import annotations

import json
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
from conftest import _create_db, _drop_db
from test_sidecar_support import (SIDECAR, Sidecar, enqueue, free_port, job, one, rows, start_sidecar,  # noqa: F401
                                  wait_for, wait_job)


def test_runs_jobs_reports_health_and_stops_cleanly(db_dsn: str, start_sidecar) -> None:
    port = free_port()
    # The cluster trusts local connections: the password is never checked, only never to be shown.
    sidecar: Sidecar = start_sidecar("--metrics-port", str(port), dsns=[db_dsn + " password=s3cret-pw"])
    done = wait_job(db_dsn, enqueue(db_dsn, "noop"))
    assert done["status"] == "done" and done["attempts"] == 1 and done["worker_id"] == sidecar.worker_id

    health = json.loads(wait_for(lambda: _get(port, "/healthz"), "/healthz"))
    assert health["ok"] is True and list(health["databases"].values()) == [True]
    metrics = _get(port, "/metrics")
    assert 'optischema_sidecar_jobs_finished_total{' in metrics and 'kind="noop",outcome="done"' in metrics
    beat = rows(db_dsn, "SELECT ok, detail FROM optischema.health() WHERE \"check\" = 'sidecar heartbeat'")[0]
    assert beat["ok"] and sidecar.worker_id in beat["detail"]

    assert sidecar.terminate() == 0
    assert one(db_dsn, "SELECT count(*) FROM optischema.sidecars") == 0, "a clean stop signs off"
    for line in sidecar.output().splitlines():
        assert json.loads(line)["level"], "every log line is a JSON object"
    assert "s3cret-pw" not in sidecar.output() + metrics, "DSN passwords are never logged"


def _get(port: int, path: str) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None


def test_two_sidecars_never_run_a_job_twice(db_dsn: str, start_sidecar) -> None:
    a = start_sidecar("--concurrency", "3", worker_id="racer-a")
    b = start_sidecar("--concurrency", "3", worker_id="racer-b")
    wait_for(lambda: one(db_dsn, "SELECT count(*) FROM optischema.sidecars") == 2, "both sidecars")
    with psycopg.connect(db_dsn) as conn:  # one commit: every job appears at once, for both
        ids = [conn.execute("SELECT optischema.enqueue('noop', '{\"sleep\": 0.02}')").fetchone()[0] for _ in range(200)]
    wait_for(lambda: one(db_dsn, "SELECT count(*) FROM optischema.jobs WHERE status = 'done'") == len(ids),
             "all jobs done")
    jobs = rows(db_dsn, "SELECT attempts, worker_id, result->>'worker_id' AS ran_by FROM optischema.jobs")
    assert all(j["attempts"] == 1 for j in jobs), "no job was claimed twice"
    assert all(j["ran_by"] == j["worker_id"] for j in jobs), "each job ran where it was claimed"
    assert {j["worker_id"] for j in jobs} == {a.worker_id, b.worker_id}, "both sidecars took part"
    finished = sum(s.output().count('"msg": "job finished"') for s in (a, b))
    assert finished == len(ids), "the sidecars ran exactly as many jobs as there are"


def test_failures_are_recorded_and_retried_with_backoff(db_dsn: str, start_sidecar) -> None:
    one(db_dsn, "SELECT optischema.set_setting('job_backoff', '0')")
    # enqueue() refuses both payloads (tests/pgtap/10_jobs.sql); a row written
    # around it (by hand, or by OptiSchema 0.1.0) must still fail cleanly.
    bad = one(db_dsn, "INSERT INTO optischema.jobs (kind, payload) VALUES ('noop', '{\"sleep\": \"soon\"}') RETURNING id")
    missing = one(db_dsn, "INSERT INTO optischema.jobs (kind, payload, max_attempts)"
                          " VALUES ('apply', '{\"change_id\": 999999}', 3) RETURNING id")
    start_sidecar()
    bad_job = wait_job(db_dsn, bad)
    assert bad_job["status"] == "failed" and bad_job["attempts"] == 1, "a bad payload is not retried"
    assert "sleep must be 0 to 3600 seconds" in bad_job["error"]
    missing_job = wait_job(db_dsn, missing)
    assert missing_job["status"] == "failed" and missing_job["attempts"] == 3, "retried up to max_attempts"
    assert "change 999999 does not exist" in missing_job["error"]


def test_sigterm_finishes_a_short_job(db_dsn: str, start_sidecar) -> None:
    sidecar = start_sidecar("--shutdown-grace", "30")
    job_id = enqueue(db_dsn, "noop", '{"sleep": 2}')
    wait_for(lambda: job(db_dsn, job_id)["status"] == "running", "the job to start")
    assert sidecar.terminate() == 0
    assert job(db_dsn, job_id)["status"] == "done"


def test_sigterm_releases_a_long_job(db_dsn: str, start_sidecar) -> None:
    sidecar = start_sidecar("--shutdown-grace", "1")
    job_id = enqueue(db_dsn, "noop", '{"sleep": 600}')
    wait_for(lambda: job(db_dsn, job_id)["status"] == "running", "the job to start")
    assert sidecar.terminate(timeout=30) == 0
    released = job(db_dsn, job_id)
    assert released["status"] == "pending" and released["attempts"] == 0, "given back untouched"


def test_reconnects_after_its_connections_are_terminated(db_dsn: str, start_sidecar) -> None:
    sidecar = start_sidecar()
    wait_job(db_dsn, enqueue(db_dsn, "noop"))
    killed = one(db_dsn, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                         " WHERE datname = current_database() AND application_name LIKE 'optischema-sidecar%%'")
    assert killed >= 3  # listen, heartbeat, workers
    after = wait_job(db_dsn, enqueue(db_dsn, "noop"))
    assert after["status"] == "done" and after["worker_id"] == sidecar.worker_id
    assert sidecar.proc.poll() is None


def test_one_sidecar_serves_many_databases(server_dsn: str, db_dsn: str, start_sidecar) -> None:
    other = _create_db(server_dsn, ("hypopg", "optischema"))
    try:
        sidecar = start_sidecar(dsns=[db_dsn, other])
        for dsn in (db_dsn, other):
            done = wait_job(dsn, enqueue(dsn, "snapshot"))
            assert done["status"] == "done" and done["worker_id"] == sidecar.worker_id
            assert one(dsn, "SELECT count(*) FROM optischema.snapshots") == 1, "each database keeps its own data"
        assert sidecar.terminate() == 0
    finally:
        _drop_db(server_dsn, other)


def test_schedules_make_one_job_per_interval_across_sidecars(db_dsn: str, start_sidecar) -> None:
    for n in range(2):
        start_sidecar("--schedule", "--schedule-tick", "0.5", worker_id=f"scheduler-{n}")
    wait_for(lambda: one(db_dsn, "SELECT count(*) FROM optischema.jobs WHERE kind = 'snapshot' AND status = 'done'") == 1,
             "the scheduled snapshot")
    wait_for(lambda: one(db_dsn, "SELECT count(*) FROM optischema.jobs WHERE kind = 'purge' AND status = 'done'") == 1,
             "the scheduled purge")
    # Both sidecars kept checking every 0.5 s meanwhile; the intervals (5 min, 1 hour) have not passed.
    counts = rows(db_dsn, "SELECT kind, count(*) AS n FROM optischema.jobs"
                          " WHERE kind IN ('snapshot', 'recommend', 'purge') GROUP BY kind")
    assert {r["kind"]: r["n"] for r in counts} == {"purge": 1, "recommend": 1, "snapshot": 1}


def test_statements_running_between_snapshots_are_sampled(db_dsn: str, start_sidecar) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as conn, psycopg.connect(db_dsn, autocommit=True) as app:
        conn.execute("SELECT optischema.set_setting('snapshot_interval', '0')")
        conn.execute("SELECT optischema.set_setting('running_min_duration', '0')")
        start_sidecar("--schedule", "--sample-interval", "0.3")
        # the scheduled recommend() takes a snapshot: the statement starts after it
        wait_for(lambda: one(db_dsn, "SELECT count(*) FROM optischema.jobs WHERE kind = 'recommend' AND status = 'done'"),
                 "the scheduled recommend")
        snapshots = one(db_dsn, "SELECT count(*) FROM optischema.snapshots")
        conn.execute("SELECT pg_advisory_lock(4242)")
        waiter = threading.Thread(target=lambda: app.execute("SELECT 1 FROM pg_advisory_lock_shared(4242)"))
        waiter.start()
        try:
            wait_for(lambda: one(db_dsn, "SELECT count(*) FROM optischema.running_statements"
                                         " WHERE pid = %s AND first_seen = 0", (app.info.backend_pid,)) == 1,
                     "the sample of the statement waiting on the lock")
        finally:
            conn.execute("SELECT pg_advisory_unlock(4242)")
            waiter.join(30)
    assert one(db_dsn, "SELECT count(*) FROM optischema.snapshots") == snapshots


def test_bad_configuration_is_a_clear_error(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SIDECAR), *args], capture_output=True, text=True, timeout=30,
                              env={"PATH": "/usr/bin:/bin"})

    no_dsn = run()
    assert no_dsn.returncode == 2 and "no database to serve" in no_dsn.stderr
    bad = run("--dsn", "dbname=x", "--concurrency", "0")
    assert bad.returncode == 2 and "concurrency" in bad.stderr
    missing = run("--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    short_lease = run("--dsn", "dbname=x", "--lease", "5", "--heartbeat-interval", "10")
    assert short_lease.returncode == 2 and "lease" in short_lease.stderr


def test_config_file_and_environment(db_dsn: str, tmp_path: Path) -> None:
    config = tmp_path / "sidecar.toml"
    config.write_text(f'dsn = [{json.dumps(db_dsn)}]\nworker_id = "from-file"\nmetrics_port = 0\nschedule = false\n'
                      'heartbeat_interval = 1\nlease = 5\n')
    sidecar = subprocess.Popen([str(SIDECAR), "--config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={"PATH": "/usr/bin:/bin", "OPTISCHEMA_WORKER_ID": "from-env"})
    try:
        done = wait_job(db_dsn, enqueue(db_dsn, "noop"))
        assert done["worker_id"] == "from-env", "the environment overrides the file"
    finally:
        sidecar.send_signal(signal.SIGTERM)
        assert sidecar.wait(60) == 0


def test_a_job_longer_than_the_lease_is_not_taken_over(db_dsn: str, start_sidecar) -> None:
    """Heartbeats renew the lease (5 s here) of a job that runs for longer."""
    first = start_sidecar(worker_id="busy")
    job_id = enqueue(db_dsn, "noop", '{"sleep": 8}')
    wait_for(lambda: job(db_dsn, job_id)["status"] == "running", "the job to start")
    start_sidecar(worker_id="idle")
    done = wait_job(db_dsn, job_id)
    assert (done["status"], done["attempts"], done["worker_id"]) == ("done", 1, first.worker_id)


def test_survives_a_database_restart(db_dsn: str, start_sidecar) -> None:
    """The whole cluster restarts under a running sidecar (the throwaway test
    cluster: pytest runs its tests one after another, so nothing else is cut)."""
    sidecar = start_sidecar()
    wait_job(db_dsn, enqueue(db_dsn, "noop"))
    subprocess.run([str(Path(__file__).resolve().parents[2] / "scripts" / "cluster.sh"), "restart"],
                   check=True, capture_output=True)
    after = wait_for(lambda: _try_enqueue(db_dsn), "the restarted server to accept connections")
    done = wait_job(db_dsn, after)
    assert done["status"] == "done" and done["worker_id"] == sidecar.worker_id
    assert sidecar.proc.poll() is None, "the sidecar reconnected instead of exiting"


def _try_enqueue(dsn: str) -> int | None:
    try:
        return enqueue(dsn, "noop")
    except psycopg.OperationalError:
        return None
