"""optischema-sidecar: runs the jobs of one or many OptiSchema databases.

    optischema-sidecar --dsn "host=db1 dbname=app user=optischema_sidecar" [--dsn ...]
    optischema-sidecar install|upgrade --dsn ...   OptiSchema without the extension
                                                   (no PL/Python: README, Managed databases)

Every flag has an environment variable (OPTISCHEMA_<NAME>, e.g.
OPTISCHEMA_DSN with one connection string per line) and a key in the
optional TOML file given with --config. Passwords: PGPASSWORD, ~/.pgpass,
or a DSN in the environment or the file; never on the command line, where
`ps` shows them."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from optischema_sidecar import __version__, config, install, metrics, report, scheduler
from optischema_sidecar import logging as jsonlog
from optischema_sidecar.db import describe
from optischema_sidecar.handlers import HANDLERS
from optischema_sidecar.worker import DatabaseRunner

log = logging.getLogger("optischema_sidecar")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="optischema-sidecar", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=__version__)
    p.add_argument("--config", type=Path, help="TOML file with any of the settings below")
    p.add_argument("--dsn", action="append", help="libpq connection string of a database to serve (repeat for more)")
    p.add_argument("--worker-id", help="name in optischema.sidecars and jobs.worker_id (default host:pid:random)")
    p.add_argument("--concurrency", type=int, help="jobs run at once per database (default 2)")
    p.add_argument("--kinds", help="comma-separated job kinds to run (default all)")
    p.add_argument("--poll-interval", type=float, help="seconds between polls when no NOTIFY arrives (default 5)")
    p.add_argument("--lease", type=float, help="seconds a job stays claimed without a heartbeat (default 60)")
    p.add_argument("--heartbeat-interval", type=float, help="seconds between heartbeats (default 10)")
    p.add_argument("--schedule", dest="schedule", action="store_const", const=True,
                   help="queue the scheduled snapshot/recommend/purge jobs (the default)")
    p.add_argument("--no-schedule", dest="schedule", action="store_const", const=False,
                   help="do not queue scheduled jobs (pg_cron does, or only other sidecars should)")
    p.add_argument("--schedule-tick", type=float, help="seconds between checks for due scheduled jobs (default 30)")
    p.add_argument("--sample-interval", type=float,
                   help="seconds between samples of the statements running now; 0: only at snapshots (default 10)")
    p.add_argument("--metrics-host", help="address of /metrics and /healthz (default 127.0.0.1)")
    p.add_argument("--metrics-port", type=int, help="port of /metrics and /healthz; 0 turns them off (default 9187)")
    p.add_argument("--shutdown-grace", type=float, help="seconds a running job may finish after SIGTERM (default 30)")
    p.add_argument("--connect-timeout", type=int, help="seconds (default 10)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("install", "upgrade"):
        return install.main(argv[0], argv[1:])
    args = vars(_parser().parse_args(argv))
    config_file = args.pop("config")
    flags: dict[str, Any] = {k: v for k, v in args.items() if v is not None}
    try:
        settings = config.load(flags, config_file)
    except (ValidationError, ValueError) as e:
        print(f"optischema-sidecar: invalid configuration: {e}", file=sys.stderr)
        return 2
    unknown = sorted(set(settings.kinds or ()) - set(HANDLERS))
    if unknown:
        print(f"optischema-sidecar: unknown job kinds {', '.join(unknown)}; known: {', '.join(sorted(HANDLERS))}",
              file=sys.stderr)
        return 2
    if not settings.dsn:
        print("optischema-sidecar: no database to serve: pass --dsn, set OPTISCHEMA_DSN, or dsn = [...] in --config",
              file=sys.stderr)
        return 2
    jsonlog.setup(settings.log_level)

    stop = threading.Event()
    # SIGTERM/SIGINT only set a flag: the main thread then drains the workers.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    health = metrics.Health(stale_after=3 * settings.heartbeat_interval)
    # The report shows statement texts: never on an address beyond this host.
    reports = report.Reports(settings) if report.is_loopback(settings.metrics_host) else None
    server = metrics.serve(settings.metrics_host, settings.metrics_port, health, reports) if settings.metrics_port else None
    runners = [DatabaseRunner(dsn, settings, health) for dsn in settings.dsn]
    log.info("starting", extra={"worker_id": settings.worker_id, "databases": [describe(d) for d in settings.dsn],
                                "concurrency": settings.concurrency, "version": __version__,
                                "metrics_port": settings.metrics_port, "report": reports is not None})
    for runner in runners:
        runner.start()
    sched = scheduler.start(settings) if settings.schedule else None

    stop.wait()
    log.info("stopping: finishing running jobs", extra={"grace_s": settings.shutdown_grace})
    if sched is not None:
        sched.shutdown(wait=False)
    for runner in runners:
        runner.request_stop()
    # The grace period is shared: runners finish side by side.
    finishers = [threading.Thread(target=r.finish, args=(settings.shutdown_grace,)) for r in runners]
    for t in finishers:
        t.start()
    for t in finishers:
        t.join()
    if server is not None:
        server.shutdown()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
