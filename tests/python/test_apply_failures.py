"""The change loop when things go wrong: a lock that does not go away, a build
that outlasts its statement timeout, and a sidecar killed in the middle of
CREATE INDEX CONCURRENTLY."""
from __future__ import annotations

import psycopg
from test_sidecar_support import (create_table, indexes, job, one, recommendation, rows, start_sidecar,  # noqa: F401
                                  wait_change, wait_for)


def _blocker(dsn: str) -> psycopg.Connection:
    """An open transaction that wrote to t: CREATE INDEX CONCURRENTLY waits for it to end."""
    conn = psycopg.connect(dsn)
    conn.execute("INSERT INTO public.t VALUES (0, 'blocker')")
    return conn


def test_lock_timeout_fails_cleanly_and_leaves_no_invalid_index(db_dsn: str, start_sidecar) -> None:
    create_table(db_dsn, n=1000)
    one(db_dsn, "SELECT optischema.set_setting('ddl_lock_timeout', '1s')")
    one(db_dsn, "SELECT optischema.set_setting('job_backoff', '1s')")
    rec = recommendation(db_dsn)
    start_sidecar()
    with _blocker(db_dsn) as blocker:
        failed = wait_change(db_dsn, one(db_dsn, "SELECT optischema.apply(%s)", (rec,)))
        assert failed["outcome"] == "failed" and "lock timeout" in failed["error"]
        assert "ddl_lock_timeout" in failed["error"], "the error says what to do"
        assert one(db_dsn, "SELECT status FROM optischema.recommendations WHERE id = %s", (rec,)) == "failed"
        blocker.rollback()
    # The build left an INVALID index behind. Dropping it needs the same lock:
    # the job is retried (with backoff) until the drop succeeds.
    wait_for(lambda: indexes(db_dsn) == [], "the INVALID index to be dropped")
    finished = wait_for(lambda: (j := job(db_dsn, failed["job_id"]))["status"] in ("done", "failed") and j, "the job")
    assert finished["status"] == "done" or "lock timeout" in finished["error"]

    again = wait_change(db_dsn, one(db_dsn, "SELECT optischema.apply(%s)", (rec,)))
    assert again["outcome"] == "succeeded"
    assert indexes(db_dsn) == [{"name": "t_a_idx", "valid": True}]


def test_a_sidecar_killed_mid_build_is_taken_over(db_dsn: str, start_sidecar) -> None:
    create_table(db_dsn, n=1000)
    one(db_dsn, "SELECT optischema.set_setting('ddl_lock_timeout', '0')")  # wait as long as it takes
    rec = recommendation(db_dsn)
    first = start_sidecar(worker_id="doomed")
    with _blocker(db_dsn) as blocker:
        change_id = one(db_dsn, "SELECT optischema.apply(%s)", (rec,))
        ddl = one(db_dsn, "SELECT ddl FROM optischema.changes WHERE id = %s", (change_id,))
        wait_for(lambda: one(db_dsn, "SELECT count(*) FROM pg_stat_activity WHERE query = %s AND state = 'active'"
                                     " AND wait_event_type = 'Lock'", (ddl,)) == 1, "the build to wait for the lock")
        first.kill()  # SIGKILL: no goodbye, the lease runs out
        second = start_sidecar(worker_id="heir")
        job_id = one(db_dsn, "SELECT job_id FROM optischema.changes WHERE id = %s", (change_id,))
        wait_for(lambda: (j := job(db_dsn, job_id))["worker_id"] == "heir" and j["attempts"] == 2,
                 "the second sidecar to take the job over after the lease")
        blocker.commit()
    done = wait_change(db_dsn, change_id)
    assert done["outcome"] == "succeeded" and done["executed_by"] == "heir"
    assert indexes(db_dsn) == [{"name": "t_a_idx", "valid": True}], "one valid index, no INVALID leftover, no duplicate"
    assert job(db_dsn, job_id)["status"] == "done"
    assert one(db_dsn, "SELECT count(*) FROM pg_stat_activity WHERE query = %s AND state = 'active'", (ddl,)) == 0
    assert second.proc.poll() is None
    assert rows(db_dsn, "SELECT worker_id FROM optischema.sidecars ORDER BY 1") == [{"worker_id": "doomed"}, {"worker_id": "heir"}]


def test_statement_timeout_fails_the_build_and_removes_what_it_left(db_dsn: str, start_sidecar) -> None:
    """ddl_statement_timeout bounds the build; a cancelled CREATE INDEX CONCURRENTLY leaves
    an INVALID index, which the executor drops. (1 ms is far below what building an index
    on 200,000 rows takes, whatever the machine.)"""
    create_table(db_dsn, n=200_000)
    one(db_dsn, "SELECT optischema.set_setting('ddl_statement_timeout', '1ms')")
    rec = recommendation(db_dsn)
    start_sidecar()
    failed = wait_change(db_dsn, one(db_dsn, "SELECT optischema.apply(%s)", (rec,)))
    assert failed["outcome"] == "failed" and "statement timeout" in failed["error"]
    assert one(db_dsn, "SELECT status FROM optischema.recommendations WHERE id = %s", (rec,)) == "failed"
    wait_for(lambda: indexes(db_dsn) == [], "no index left behind, valid or not")

    one(db_dsn, "SELECT optischema.reset_setting('ddl_statement_timeout')")
    again = wait_change(db_dsn, one(db_dsn, "SELECT optischema.apply(%s)", (rec,)))
    assert again["outcome"] == "succeeded"
    assert indexes(db_dsn) == [{"name": "t_a_idx", "valid": True}]
