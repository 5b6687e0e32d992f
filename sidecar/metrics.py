"""Prometheus metrics and the /metrics + /healthz (+ /report) endpoint."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from optischema_sidecar.report import Reports

JOBS_CLAIMED = Counter("optischema_sidecar_jobs_claimed_total", "Jobs claimed", ["database", "kind"])
JOBS_FINISHED = Counter("optischema_sidecar_jobs_finished_total",
                        "Jobs finished, by outcome (done, retry, failed, released, lost)", ["database", "kind", "outcome"])
JOB_SECONDS = Histogram("optischema_sidecar_job_duration_seconds", "Time to run a job", ["database", "kind"])
DATABASE_UP = Gauge("optischema_sidecar_database_up", "1 when the last heartbeat reached the database", ["database"])
LAST_HEARTBEAT = Gauge("optischema_sidecar_last_heartbeat_timestamp_seconds", "Time of the last heartbeat", ["database"])


class Health:
    """Per database, when a heartbeat last succeeded. Healthy: every database
    answered within `stale_after` seconds."""

    def __init__(self, stale_after: float) -> None:
        self._stale_after = stale_after
        self._last_ok: dict[str, float] = {}
        self._lock = threading.Lock()

    def register(self, database: str) -> None:
        with self._lock:
            self._last_ok.setdefault(database, 0.0)

    def beat(self, database: str, ok: bool) -> None:
        now = time.time()
        with self._lock:
            if ok:
                self._last_ok[database] = now
        DATABASE_UP.labels(database).set(1 if ok else 0)
        if ok:
            LAST_HEARTBEAT.labels(database).set(now)

    def report(self) -> tuple[bool, dict[str, bool]]:
        now = time.time()
        with self._lock:
            status = {db: now - t <= self._stale_after for db, t in self._last_ok.items()}
        return all(status.values()), status


def serve(host: str, port: int, health: Health, reports: Reports | None = None) -> ThreadingHTTPServer:
    """Starts the endpoint in a daemon thread and returns the server (shutdown() stops it).
    With reports, it also answers GET /report (see optischema_sidecar.report)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path, _, query = self.path.partition("?")
            if path == "/report" and reports is not None:
                code, ctype, body = reports.page(query)
            elif self.path == "/metrics":
                body, ctype, code = generate_latest(), CONTENT_TYPE_LATEST, 200
            elif self.path == "/healthz":
                ok, databases = health.report()
                body = json.dumps({"ok": ok, "databases": databases}).encode()
                ctype, code = "application/json", 200 if ok else 503
            else:
                body, ctype, code = b"not found: /metrics or /healthz\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # scrapes are not news
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
