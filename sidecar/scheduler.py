"""Schedules, as jobs: every tick, each database queues the periodic jobs
that are due (optischema._schedule_due(): snapshot, recommend, purge at the
intervals in its own settings). Any sidecar may run them, and several
sidecars on one database still make one job per interval.

Between snapshots, a sample of the statements running now, every
sample_interval seconds, not as a job: a statement cancelled by its timeout
before the next snapshot is otherwise never seen. Several sidecars sampling
one database only sample it more often."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import psycopg
from apscheduler.schedulers.background import BackgroundScheduler

from optischema_sidecar import db, queue
from optischema_sidecar.config import Settings

log = logging.getLogger(__name__)


def _tick(dsn: str, settings: Settings) -> None:
    database = db.describe(dsn)
    try:
        with db.connect(dsn, settings, "scheduler") as conn:
            queued = queue.schedule_due(conn)
    except psycopg.Error as e:
        log.warning("schedule check failed", extra={"database": database, "error": db.error_text(e)})
        return
    if queued:
        log.info("scheduled jobs queued", extra={"database": database, "job_ids": queued})


def _sample(dsn: str, settings: Settings) -> None:
    try:
        with db.connect(dsn, settings, "sampler") as conn:
            conn.execute("SELECT optischema.sample_running()")
    except psycopg.Error as e:
        log.warning("sample of running statements failed", extra={"database": db.describe(dsn), "error": db.error_text(e)})


def start(settings: Settings) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    for n, dsn in enumerate(settings.dsn):
        # First check right away; a slow database delays only its own next tick.
        scheduler.add_job(_tick, "interval", args=(dsn, settings), seconds=settings.schedule_tick,
                          next_run_time=datetime.now(timezone.utc),
                          max_instances=1, coalesce=True, id=f"schedule-{n}")
        if settings.sample_interval > 0:
            scheduler.add_job(_sample, "interval", args=(dsn, settings), seconds=settings.sample_interval,
                              max_instances=1, coalesce=True, id=f"sample-{n}")
    scheduler.start()
    return scheduler
