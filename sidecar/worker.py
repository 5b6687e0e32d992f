"""The job loop of one database: a LISTEN thread that wakes the workers, a
heartbeat thread (announces the sidecar, renews the leases of its jobs,
stops those optischema.cancel_job() cancelled while they run) and
`concurrency` worker threads, each with its own connection, that claim and
run jobs. Every thread reconnects on its own after a connection loss."""
from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import TypeVar

import psycopg

from optischema_sidecar import compat, db, metrics, queue
from optischema_sidecar.config import Settings
from optischema_sidecar.handlers import HANDLERS, Handler
from optischema_sidecar.queue import Job, JobCancelled, JobError

log = logging.getLogger(__name__)
T = TypeVar("T")


class Wakeup:
    """A generation counter: a worker that found the queue empty waits for
    the next NOTIFY, or the poll interval, without missing one that arrived
    between its claim and its wait."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0

    def generation(self) -> int:
        with self._cond:
            return self._generation

    def notify(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._generation != seen, timeout)


class _Connection:
    """A connection that is re-opened, with backoff, after it breaks."""

    def __init__(self, dsn: str, settings: Settings, purpose: str, stop: threading.Event) -> None:
        self._dsn, self._settings, self._purpose, self._stop = dsn, settings, purpose, stop
        self.database = db.describe(dsn)
        self._conn: psycopg.Connection | None = None

    def get(self) -> psycopg.Connection | None:
        """The open connection, or None once stopping."""
        delay = 0.5
        while self._conn is None or self._conn.broken or self._conn.closed:
            if self._stop.is_set():
                return None
            try:
                self._conn = db.connect(self._dsn, self._settings, self._purpose)
                log.info("connected", extra={"database": self.database, "purpose": self._purpose})
            except psycopg.Error as e:
                log.warning("cannot connect, retrying", extra={"database": self.database, "error": db.error_text(e),
                                                                "retry_in_s": delay})
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)
        return self._conn

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()

    def cancel(self) -> None:
        """Cancels the statement running on the connection (from another thread)."""
        if self._conn is not None and not self._conn.closed:
            self._conn.cancel_safe()


class DatabaseRunner:
    def __init__(self, dsn: str, settings: Settings, health: metrics.Health) -> None:
        self.dsn, self.settings, self.health = dsn, settings, health
        self.database = db.describe(dsn)
        self.stop = threading.Event()
        self.wakeup = Wakeup()
        self.kinds = settings.kinds or sorted(HANDLERS)
        # Set while the database's schema is one this sidecar serves (checked
        # before every heartbeat): workers claim nothing otherwise.
        self.serving = threading.Event()
        self._refused: str | None = None
        self._threads: list[threading.Thread] = []
        self._workers: list[_Worker] = []
        health.register(self.database)

    def start(self) -> None:
        self._spawn("listen", self._listen)
        self._spawn("heartbeat", self._heartbeat)
        for n in range(self.settings.concurrency):
            worker = _Worker(self)
            self._workers.append(worker)
            self._spawn(f"worker-{n}", worker.run)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=f"{self.database}/{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def request_stop(self) -> None:
        self.stop.set()
        self.wakeup.notify()

    def finish(self, grace: float) -> None:
        """After request_stop: lets running jobs finish for `grace` seconds,
        then cancels and releases the rest, and signs off."""
        deadline = time.monotonic() + grace
        for worker in self._workers:
            worker.wait_stopped(max(deadline - time.monotonic(), 0))
        for worker in self._workers:
            worker.release_current()
        for thread in self._threads:
            thread.join(timeout=15)
        try:
            with db.connect(self.dsn, self.settings, "sign-off") as conn:
                queue.sign_off(conn, self.settings.worker_id)
        except psycopg.Error as e:
            log.warning("could not sign off", extra={"database": self.database, "error": db.error_text(e)})

    def _listen(self) -> None:
        conn = _Connection(self.dsn, self.settings, "listen", self.stop)
        while not self.stop.is_set() and (c := conn.get()) is not None:
            try:
                c.execute("LISTEN optischema_jobs")
                self.wakeup.notify()  # jobs queued while we were not listening
                while not self.stop.is_set():
                    for _ in c.notifies(timeout=1.0, stop_after=1):
                        self.wakeup.notify()
            except psycopg.Error as e:
                if not self.stop.is_set():
                    log.warning("listen connection lost", extra={"database": self.database, "error": db.error_text(e)})
            except Exception:  # noqa: BLE001 - the thread must outlive surprises; polling still works meanwhile
                log.exception("listener failed", extra={"database": self.database})
                self.stop.wait(self.settings.poll_interval)
        conn.close()

    def _heartbeat(self) -> None:
        conn = _Connection(self.dsn, self.settings, "heartbeat", self.stop)
        while not self.stop.is_set() and (c := conn.get()) is not None:
            try:
                self._check_schema(c)
                self.health.beat(self.database, self.serving.is_set())
                if self.serving.is_set():
                    for job_id in queue.cancel_requests(c, self.settings.worker_id):
                        for worker in self._workers:
                            worker.cancel_job(job_id)
            except psycopg.Error as e:
                self.health.beat(self.database, False)
                log.warning("heartbeat failed", extra={"database": self.database, "error": db.error_text(e)})
            except Exception:  # noqa: BLE001 - without heartbeats our leases lapse: keep beating
                self.health.beat(self.database, False)
                log.exception("heartbeat failed", extra={"database": self.database})
            self.stop.wait(self.settings.heartbeat_interval)
        conn.close()


    def _check_schema(self, conn: psycopg.Connection) -> None:
        """Heartbeats only into a schema this sidecar serves, or into a newer
        one (whose health() then names this sidecar and the fix); says once,
        at each change, why it serves a database or not. After ALTER
        EXTENSION optischema UPDATE it serves again without a restart."""
        version = compat.schema_version(conn)
        refused = compat.refusal(self.database, version)
        if refused is None or compat.newer(version):
            queue.heartbeat(conn, self.settings.worker_id, self.settings.lease)
        if refused != self._refused:
            if refused is None:
                log.info("serving", extra={"database": self.database, "schema_version": version})
            else:
                log.error("not serving this database", extra={"database": self.database, "error": refused})
            self._refused = refused
        if refused is None:
            self.serving.set()
        else:
            self.serving.clear()


class _Worker:
    def __init__(self, runner: DatabaseRunner) -> None:
        self.runner = runner
        self.conn = _Connection(runner.dsn, runner.settings, f"worker {runner.settings.worker_id}", runner.stop)
        self._job: Job | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()

    def wait_stopped(self, timeout: float) -> None:
        self._done.wait(timeout)

    def release_current(self) -> None:
        """Shutdown grace is over: cancel the running statement; run() gives the job back."""
        with self._lock:
            job = self._job
            if job is None:
                return
            job["release_requested"].set()
        self.conn.cancel()

    def cancel_job(self, job_id: int) -> None:
        """optischema.cancel_job() asked to stop this job: cancel its statement; run() records it cancelled."""
        with self._lock:
            job = self._job
            if job is None or job["id"] != job_id or job["cancel_requested"].is_set():
                return
            job["cancel_requested"].set()
        log.info("cancelling job", extra={"database": self.runner.database, "job_id": job_id})
        self.conn.cancel()

    def run(self) -> None:
        r = self.runner
        try:
            while not r.stop.is_set():
                seen = r.wakeup.generation()
                if not r.serving.wait(r.settings.poll_interval):
                    continue
                conn = self.conn.get()
                if conn is None:
                    break
                try:
                    job = queue.claim(conn, r.settings.worker_id, r.kinds, r.settings.lease)
                except psycopg.Error as e:
                    log.warning("claim failed", extra={"database": r.database, "error": db.error_text(e)})
                    r.stop.wait(r.settings.poll_interval)
                    continue
                if job is None:
                    r.wakeup.wait(seen, r.settings.poll_interval)
                    continue
                self._run(conn, job)
        finally:
            self.conn.close()
            self._done.set()

    def _run(self, conn: psycopg.Connection, job: Job) -> None:
        r = self.runner
        kind, job_id = job["kind"], job["id"]
        ctx = {"database": r.database, "job_id": job_id, "kind": kind, "attempt": job["attempts"]}
        metrics.JOBS_CLAIMED.labels(r.database, kind).inc()
        log.info("job claimed", extra=ctx)
        job["release_requested"] = threading.Event()
        job["cancel_requested"] = threading.Event()
        with self._lock:
            self._job = job
        t0 = time.monotonic()
        outcome = "done"
        try:
            handler: Handler | None = HANDLERS.get(kind)
            if handler is None:
                raise JobError(f"this sidecar has no handler for job kind {kind!r}", retry=False)
            result = handler(conn, job, r.settings)
            if not self._record(lambda c: queue.complete(c, job_id, r.settings.worker_id, result or {})):
                outcome = "lost"
        except Exception as e:  # noqa: BLE001 - every failure is recorded on the job
            if job["release_requested"].is_set():
                outcome = "released" if self._record(lambda c: queue.release(c, job_id, r.settings.worker_id)) else "lost"
            elif job["cancel_requested"].is_set() or isinstance(e, JobCancelled):
                outcome = "cancelled" if self._record(lambda c: queue.cancelled(c, job_id, r.settings.worker_id)) else "lost"
            else:
                retry = e.retry if isinstance(e, JobError) else True
                error = db.error_text(e)
                if not isinstance(e, (JobError, psycopg.Error)):
                    log.error("handler crashed", extra={**ctx, "traceback": traceback.format_exc()})
                status = self._record(lambda c: queue.fail(c, job_id, r.settings.worker_id, error, retry))
                outcome = {"pending": "retry", "failed": "failed"}.get(status or "", "lost")
                log.warning("job failed", extra={**ctx, "error": error, "status": status})
        finally:
            with self._lock:
                self._job = None
        elapsed = time.monotonic() - t0
        metrics.JOBS_FINISHED.labels(r.database, kind, outcome).inc()
        metrics.JOB_SECONDS.labels(r.database, kind).observe(elapsed)
        log.info("job finished", extra={**ctx, "outcome": outcome, "seconds": round(elapsed, 3)})

    def _record(self, op: Callable[[psycopg.Connection], T]) -> T | None:
        """Runs a queue update, on a fresh connection if the job broke ours.
        None when the database cannot be reached: the lease expires and the
        job is taken over."""
        for _ in range(3):
            conn = self.conn.get()
            if conn is None:
                break
            try:
                return op(conn)
            except psycopg.errors.QueryCanceled:
                # A cancel sent to stop the job's statement can land on the next one
                # instead (cancel requests are asynchronous): that one is run again.
                continue
            except psycopg.Error as e:
                log.warning("cannot record job outcome", extra={"database": self.runner.database, "error": db.error_text(e)})
                if not conn.broken:
                    break
        return None

