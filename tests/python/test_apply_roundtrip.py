"""The change loop end to end, with a real sidecar: apply -> plan check ->
timing check -> rollback, the psql path without a sidecar, drops, and the
executor running only what the recommendation's description builds."""
from __future__ import annotations

import subprocess

import psycopg
from test_sidecar_support import (change, create_table, indexes, one, recommendation, rows, start_sidecar,  # noqa: F401
                                  wait_change, wait_job)

QUERY = "SELECT * FROM public.t WHERE a = %s"


def _workload(dsn: str, calls: int = 20) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for n in range(calls):
            conn.execute(QUERY, (n * 37,))


def _queryid(dsn: str) -> int:
    one(dsn, "SELECT optischema.snapshot()")
    return one(dsn, "SELECT queryid FROM optischema.queries WHERE query LIKE 'SELECT * FROM public.t WHERE a = $1%%'")


def _wait(dsn: str, change_id: int) -> str:
    # What a DBA types in psql after SELECT optischema.apply(...) in autocommit.
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("CALL optischema.wait(%s, '60 seconds')", (change_id,)).fetchone()[0]


def test_apply_verify_rollback_round_trip(db_dsn: str, start_sidecar) -> None:
    create_table(db_dsn)
    _workload(db_dsn)
    rec = recommendation(db_dsn, queryids=[_queryid(db_dsn)])
    sidecar = start_sidecar()

    change_id = one(db_dsn, "SELECT optischema.apply(%s)", (rec,))
    assert _wait(db_dsn, change_id) == "succeeded"
    applied = change(db_dsn, change_id)
    assert applied["executed_by"] == sidecar.worker_id and applied["duration_ms"] > 0 and applied["error"] is None
    assert indexes(db_dsn) == [{"name": "t_a_idx", "valid": True}]
    assert one(db_dsn, "SELECT status FROM optischema.recommendations WHERE id = %s", (rec,)) == "applied"
    # Right after the build, the plan of the query it was made for uses it.
    assert applied["plan_check"] == "verified"
    assert applied["plan_evidence"]["queries"][0]["uses_index"] is True

    # Later snapshots measure it: the same query, before and after.
    one(db_dsn, "SELECT optischema.snapshot()")
    _workload(db_dsn)
    one(db_dsn, "SELECT optischema.snapshot()")
    verdicts = rows(db_dsn, "SELECT * FROM optischema.verify(%s)", (rec,))
    overall = verdicts[-1]
    assert overall["queryid"] is None and overall["verdict"] == "improved", verdicts
    assert verdicts[0]["calls_before"] >= 20 and verdicts[0]["calls_after"] == 20
    assert change(db_dsn, change_id)["timing_verdict"] == "improved"

    rollback_id = one(db_dsn, "SELECT optischema.rollback(%s)", (rec,))
    assert _wait(db_dsn, rollback_id) == "succeeded"
    assert indexes(db_dsn) == []
    assert one(db_dsn, "SELECT status FROM optischema.recommendations WHERE id = %s", (rec,)) == "rolled_back"
    trail = rows(db_dsn, "SELECT action, outcome, ddl, requested_by FROM optischema.changes ORDER BY id")
    assert [(c["action"], c["outcome"]) for c in trail] == [("apply", "succeeded"), ("rollback", "succeeded")]
    assert trail[1]["ddl"] == "DROP INDEX CONCURRENTLY IF EXISTS public.t_a_idx"
    assert all(c["requested_by"] == "optischema_test" for c in trail)


def test_apply_from_psql_without_a_sidecar(db_dsn: str, start_sidecar) -> None:
    """The documented recipe, in psql itself: \\gexec runs the DDL at top level."""
    create_table(db_dsn)
    _workload(db_dsn)
    rec = recommendation(db_dsn, queryids=[_queryid(db_dsn)])
    script = (f"SELECT optischema.apply({rec}, via => 'psql') AS change_id \\gset\n"
              "SELECT ddl FROM optischema.changes WHERE id = :change_id \\gexec\n"
              "SELECT optischema.applied(:change_id);\n")
    out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", db_dsn], input=script,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "succeeded"
    assert indexes(db_dsn) == [{"name": "t_a_idx", "valid": True}]
    recorded = rows(db_dsn, "SELECT * FROM optischema.changes")[0]
    assert recorded["via"] == "psql" and recorded["outcome"] == "succeeded" and recorded["plan_check"] == "pending"

    # A sidecar started later runs the plan check applied() queued.
    start_sidecar()
    verify_job = one(db_dsn, "SELECT id FROM optischema.jobs WHERE kind = 'verify'")
    assert wait_job(db_dsn, verify_job)["status"] == "done"
    assert change(db_dsn, recorded["id"])["plan_check"] == "verified"


def test_an_existing_index_is_done_and_a_drop_rolls_back(db_dsn: str, start_sidecar) -> None:
    create_table(db_dsn)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("CREATE INDEX CONCURRENTLY t_a_idx ON public.t (a)")
        conn.execute("CREATE INDEX CONCURRENTLY t_b_idx ON public.t (b)")
    start_sidecar()
    create = recommendation(db_dsn, key="k:a")
    done = wait_change(db_dsn, one(db_dsn, "SELECT optischema.apply(%s)", (create,)))
    assert done["outcome"] == "succeeded" and done["detail"]["note"] == "the index already existed"

    drop = recommendation(db_dsn, key="k:b", column="b", kind="drop_index")
    dropped = wait_change(db_dsn, one(db_dsn, "SELECT optischema.apply(%s)", (drop,)))
    assert dropped["outcome"] == "succeeded" and dropped["plan_check"] is None
    assert indexes(db_dsn) == [{"name": "t_a_idx", "valid": True}]
    restored = wait_change(db_dsn, one(db_dsn, "SELECT optischema.rollback(%s)", (drop,)))
    assert restored["outcome"] == "succeeded"
    assert restored["ddl"] == "CREATE INDEX CONCURRENTLY t_b_idx ON public.t USING btree (b)"
    assert indexes(db_dsn) == [{"name": "t_a_idx", "valid": True}, {"name": "t_b_idx", "valid": True}]


def test_the_executor_runs_what_the_description_builds_never_stored_text(db_dsn: str, start_sidecar) -> None:
    create_table(db_dsn, n=10)
    rec = recommendation(db_dsn)
    change_id = one(db_dsn, "SELECT optischema.apply(%s)", (rec,))
    # Stored text tampered with after apply(): it is only shown, never run.
    one(db_dsn, "UPDATE optischema._changes SET ddl = ddl || '; DROP TABLE public.t' WHERE id = %s RETURNING id", (change_id,))
    forged = recommendation(db_dsn, key="k:b", column="b")
    forged_change = one(db_dsn, "SELECT optischema.apply(%s)", (forged,))
    # A description tampered with after apply(): checked again when it runs.
    one(db_dsn, "UPDATE optischema._recommendations SET index_spec = jsonb_set(index_spec, '{keys,0,column}', '\"nosuch\"')"
                " WHERE id = %s RETURNING id", (forged,))
    start_sidecar()
    built = wait_change(db_dsn, change_id)
    assert built["outcome"] == "succeeded", built
    assert one(db_dsn, "SELECT to_regclass('public.t') IS NOT NULL"), "the stored text did not run"
    refused = wait_change(db_dsn, forged_change)
    assert refused["outcome"] == "failed" and "refusing to run" in refused["error"], refused
    assert "column nosuch does not exist" in refused["error"]
    assert indexes(db_dsn) == [{"name": "t_a_idx", "valid": True}]
    job = rows(db_dsn, "SELECT status, attempts FROM optischema.jobs WHERE id = %s", (refused["job_id"],))[0]
    assert job == {"status": "failed", "attempts": 1}


def test_wait_without_a_sidecar_says_so(db_dsn: str) -> None:
    create_table(db_dsn, n=10)
    rec = recommendation(db_dsn)
    change_id = one(db_dsn, "SELECT optischema.apply(%s)", (rec,))
    warnings: list[str] = []
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.add_notice_handler(lambda d: warnings.append(d.message_primary or ""))
        outcome = conn.execute("CALL optischema.wait(%s, '1 second')", (change_id,)).fetchone()[0]
    assert outcome == "pending"
    assert any("no sidecar has been seen" in w for w in warnings), warnings
    assert any("is still pending after" in w for w in warnings), warnings

    psql_change = one(db_dsn, "SELECT optischema.apply(%s, via => 'psql')",
                      (recommendation(db_dsn, key="k:b", column="b"),))
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        try:
            conn.execute("CALL optischema.wait(%s)", (psql_change,))
            raise AssertionError("wait() on a psql change must fail")
        except psycopg.errors.ObjectNotInPrerequisiteState as e:
            assert "optischema.applied(" in (e.diag.message_hint or "")


def test_plan_check_skips_text_it_cannot_replan(db_dsn: str) -> None:
    from optischema_sidecar.verify import explain_generic

    create_table(db_dsn, n=10)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        # each text is planned as its sender: statements 1-5, sent by this test's role
        conn.execute("INSERT INTO optischema.query_roles SELECT g, current_user::regrole, current_user, 1, 1"
                     " FROM generate_series(1, 5) g")
        plan, reason = explain_generic(conn, 1, "SELECT * FROM t WHERE a = $1")
        assert reason is None and plan["Node Type"]
        for n, text in enumerate(("SELECT no_such_function($1)", "SELECT 1; SELECT 2", "SELECT * FROM missing_table"), 2):
            plan, reason = explain_generic(conn, n, text)
            assert plan is None and reason, text
        plan, reason = explain_generic(conn, 5, "INSERT INTO t VALUES ($1, $2)")
        assert reason is None, "EXPLAIN never runs the statement"
        plan, reason = explain_generic(conn, 6, "SELECT * FROM t")
        assert plan is None and reason == "not planned: its sender is unknown (captured before OptiSchema recorded senders)"
        assert one(db_dsn, "SELECT count(*) FROM public.t") == 10
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'optischema%'"
                            ).fetchone()[0] == 0, "nothing left prepared"
