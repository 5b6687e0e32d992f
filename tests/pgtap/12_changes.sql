BEGIN;
SET client_min_messages = warning;
SELECT plan(58);

CREATE TABLE public.t (a int, b int);
-- A recommendation's description, as the advisor makes it (sql/09_index_ddl.sql).
CREATE FUNCTION pg_temp.spec(p_table regclass, p_name text, p_key jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('table', p_table::oid::bigint, 'name', p_name, 'method', 'btree', 'keys', jsonb_build_array(p_key))
$$;
INSERT INTO optischema._recommendations (key, kind, source, title, table_name, index_name, queryids, index_spec) VALUES
('tap:a', 'create_index', 'advisor', 'Index t(a)', 'public.t', 't_a_idx', '{42}', pg_temp.spec('public.t', 't_a_idx', '{"column": "a"}')),
('tap:rw', 'rewrite', 'llm', 'Rewrite q', NULL, NULL, '{}', NULL),
-- an expression calling a function that is not IMMUTABLE: it would run as the table's owner
('tap:evil', 'create_index', 'advisor', 'Evil', 'public.t', 'x', '{}',
 pg_temp.spec('public.t', 'x', jsonb_build_object('expr', jsonb_build_object('func', 'pg_catalog.timeofday()'::regprocedure::oid::bigint, 'args', '[]'::jsonb)))),
('tap:noidx', 'create_index', 'advisor', 'No table', 'public.gone', 'y', '{}', pg_temp.spec(0::oid::regclass, 'y', '{"column": "a"}')),
('tap:old', 'create_index', 'advisor', 'Made by 0.1.0', 'public.t', 't_a_idx', '{}', NULL),
('tap:b', 'create_index', 'advisor', 'Index t(b)', 'public.t', 't_b_idx', '{}', pg_temp.spec('public.t', 't_b_idx', '{"column": "b"}'));
UPDATE optischema._recommendations r SET (ddl, rollback_ddl) = (SELECT t.ddl, t.rollback_ddl FROM optischema._index_texts(r.kind, r.index_spec) t);
SELECT id AS ra FROM optischema._recommendations WHERE key = 'tap:a' \gset
SELECT id AS rw FROM optischema._recommendations WHERE key = 'tap:rw' \gset
SELECT id AS evil FROM optischema._recommendations WHERE key = 'tap:evil' \gset
SELECT id AS rb FROM optischema._recommendations WHERE key = 'tap:b' \gset

-- apply: bad input changes nothing
SELECT throws_ok($$SELECT optischema.apply(NULL)$$, '22004', 'recommendation id cannot be NULL', 'NULL id');
SELECT throws_ok($$SELECT optischema.apply(-1)$$, 'P0002', 'recommendation -1 does not exist', 'unknown id');
SELECT throws_ok(format('SELECT optischema.apply(%s)', :rw), '0A000',
    format('recommendation %s is a rewrite recommendation: OptiSchema does not apply those', :rw), 'a rewrite is not applied');
SELECT throws_ok(format('SELECT optischema.apply(%s, via => %L)', :ra, 'ssh'), '22023', NULL, 'unknown via');
SELECT throws_ok(format('SELECT optischema.apply(%s)', :evil), '42501',
    'refusing to build the index: function timeofday() is not IMMUTABLE', 'an index calling a function that is not IMMUTABLE is refused');
SELECT throws_ok(format('SELECT optischema.apply(%s)', (SELECT id FROM optischema._recommendations WHERE key = 'tap:noidx')),
    '42P01', 'refusing to build the index: table 0 does not exist (any more)', 'a recommendation whose table cannot be resolved is refused');
SELECT throws_ok(format('SELECT optischema.apply(%s)', (SELECT id FROM optischema._recommendations WHERE key = 'tap:old')),
    '55000', format('recommendation %s has no index description OptiSchema can build from', (SELECT id FROM optischema._recommendations WHERE key = 'tap:old')),
    'one made before 0.2.0 (no description) is refused, not run from its stored text');
SELECT is((SELECT ddl FROM optischema.recommendations WHERE id = :evil), NULL, 'and shows no ddl');
SELECT is((SELECT count(*)::int FROM optischema._changes), 0, 'no change recorded by failed calls');
SELECT is((SELECT count(*)::int FROM optischema.jobs), 0, 'no job queued by failed calls');
SELECT is((SELECT status FROM optischema._recommendations WHERE id = :evil), 'open', 'the refused recommendation stays open');

-- apply via the sidecar
SELECT optischema.apply(:ra) AS c1 \gset
SELECT is((SELECT status FROM optischema._recommendations WHERE id = :ra), 'applying', 'the recommendation is applying');
SELECT results_eq(format('SELECT action, via, ddl, outcome, requested_by FROM optischema.changes WHERE id = %s', :c1),
    format('VALUES (%L, %L, %L, %L, %L)', 'apply', 'sidecar', 'CREATE INDEX CONCURRENTLY t_a_idx ON public.t USING btree (a)',
           'pending', current_user), 'the change log says what will run and who asked');
SELECT results_eq(format('SELECT kind, payload FROM optischema.jobs WHERE id = (SELECT job_id FROM optischema._changes WHERE id = %s)', :c1),
    format('VALUES (%L, %L::jsonb)', 'apply', json_build_object('change_id', :c1)), 'an apply job is queued for it');
SELECT throws_ok(format('SELECT optischema.apply(%s)', :ra), '55000',
    format('recommendation %s is applying: only open or failed recommendations can be applied', :ra), 'no second apply while applying');
SELECT is((SELECT count(*)::int FROM optischema._changes), 1, 'and no second change');
SELECT throws_ok(format('SELECT optischema.dismiss(%s, %L)', :ra, 'no'), '55000', NULL, 'an applying recommendation cannot be dismissed');

-- the sidecar's side
SELECT is((optischema._start_change(:c1, 'w1')).status, 'running', 'the executor starts the change');
SELECT lives_ok(format('SELECT optischema._finish_change(%s, %L, NULL, %L, 12.5)', :c1, 'succeeded', '{}'), 'and records success');
SELECT results_eq(format('SELECT outcome, executed_by, duration_ms, plan_check FROM optischema.changes WHERE id = %s', :c1),
    $$VALUES ('succeeded', 'w1', 12.5::float8, 'pending')$$, 'outcome, executor and duration are logged; the plan check is pending');
SELECT is((SELECT status FROM optischema._recommendations WHERE id = :ra), 'applied', 'the recommendation is applied');
SELECT throws_ok(format('SELECT optischema._finish_change(%s, %L)', :c1, 'failed'), '55000', NULL, 'an outcome is recorded once');
SELECT is((optischema._start_change(:c1, 'w2')).status, 'succeeded', 'a finished change is not restarted');
SELECT lives_ok(format('SELECT optischema._record_plan_check(%s, %L, %L)', :c1, 'verified', '{"queries": []}'), 'the plan check is recorded');
SELECT is((SELECT plan_check FROM optischema.changes WHERE id = :c1), 'verified', 'and shown');

-- rollback
SELECT throws_ok(format('SELECT optischema.rollback(%s)', :rb), '55000',
    format('recommendation %s is open: only an applied recommendation can be rolled back', :rb), 'an open recommendation cannot be rolled back');
SELECT throws_ok($$SELECT optischema.rollback(-1)$$, 'P0002', NULL, 'rollback of an unknown id');
SELECT throws_ok($$SELECT optischema.rollback(NULL)$$, '22004', NULL, 'rollback of NULL');
SELECT throws_ok(format('SELECT optischema.dismiss(%s, %L)', :ra, 'no'), '55000', NULL, 'an applied recommendation cannot be dismissed');
SELECT optischema.rollback(:ra) AS c2 \gset
SELECT results_eq(format('SELECT action, ddl, outcome FROM optischema.changes WHERE id = %s', :c2),
    $$VALUES ('rollback', 'DROP INDEX CONCURRENTLY IF EXISTS public.t_a_idx', 'pending')$$, 'the rollback runs the saved rollback_ddl');
SELECT is((SELECT status FROM optischema._recommendations WHERE id = :ra), 'rolling_back', 'rolling back');
SELECT lives_ok(format('SELECT optischema._finish_change(%s, %L, %L)', :c2, 'failed', 'lock timeout'), 'a failed rollback');
SELECT is((SELECT status FROM optischema._recommendations WHERE id = :ra), 'applied', 'leaves the recommendation applied');
SELECT optischema.rollback(:ra) AS c3 \gset
SELECT lives_ok(format('SELECT optischema._finish_change(%s, %L)', :c3, 'succeeded'), 'a successful rollback');
SELECT is((SELECT status FROM optischema._recommendations WHERE id = :ra), 'rolled_back', 'rolls it back');

-- apply from psql, recorded from the catalog
SELECT optischema.apply(:rb, via => 'psql') AS c4 \gset
SELECT is((SELECT job_id FROM optischema._changes WHERE id = :c4), NULL, 'via psql queues no job');
SELECT is(optischema.applied(:c4), 'failed', 'applied() before the index exists records a failure');
SELECT alike((SELECT error FROM optischema.changes WHERE id = :c4), '%does not exist%', 'saying the index does not exist');
SELECT is((SELECT status FROM optischema._recommendations WHERE id = :rb), 'failed', 'the recommendation failed');
SELECT optischema.apply(:rb, via => 'psql') AS c5 \gset
CREATE INDEX t_b_idx ON public.t (b);  -- what the DBA ran (CONCURRENTLY, outside this test's transaction)
SELECT is(optischema.applied(:c5), 'succeeded', 'a failed recommendation can be applied again; applied() sees the index');
SELECT is((SELECT count(*)::int FROM optischema.jobs WHERE kind = 'verify' AND payload = jsonb_build_object('change_id', :c5)), 1,
    'a verify job is queued for the plan check');
SELECT throws_ok(format('SELECT optischema.applied(%s)', :c5), '55000', NULL, 'applied() records a change once');
SELECT throws_ok(format('SELECT optischema.applied(%s)', :c1), '55000', NULL, 'applied() refuses a sidecar change');
SELECT throws_ok($$SELECT optischema.applied(-1)$$, 'P0002', 'change -1 does not exist', 'applied() of an unknown change');

-- cancelling the job of a queued change restores the recommendation
UPDATE optischema._recommendations SET status = 'open' WHERE id = :evil;
UPDATE optischema._recommendations SET index_spec = pg_temp.spec('public.t', 'x', '{"column": "a"}') WHERE id = :evil;
SELECT optischema.apply(:evil) AS c6 \gset
SELECT lives_ok(format('SELECT optischema.cancel_job(%s)', (SELECT job_id FROM optischema._changes WHERE id = :c6)), 'cancel the apply job');
SELECT is((SELECT outcome FROM optischema.changes WHERE id = :c6), 'cancelled', 'the change is cancelled');
SELECT is((SELECT status FROM optischema._recommendations WHERE id = :evil), 'open', 'the recommendation is open again');

-- a job that fails for good fails its change
SELECT optischema.apply(:evil) AS c7 \gset
UPDATE optischema.jobs SET status = 'running', worker_id = 'w9', attempts = 1
WHERE id = (SELECT job_id FROM optischema._changes WHERE id = :c7);
SELECT is(optischema._fail_job((SELECT job_id FROM optischema._changes WHERE id = :c7), 'w9', 'boom', false), 'failed', 'the job fails for good');
SELECT results_eq(format('SELECT outcome, error FROM optischema.changes WHERE id = %s', :c7),
    format('VALUES (%L, %L)', 'failed', format('job %s failed: boom', (SELECT job_id FROM optischema._changes WHERE id = :c7))),
    'so does its change, saying why');
SELECT is((SELECT status FROM optischema._recommendations WHERE id = :evil), 'failed', 'and the recommendation can be applied again');

-- dismiss
SELECT throws_ok(format('SELECT optischema.dismiss(%s, NULL)', :evil), '22004', NULL, 'a NULL reason');
SELECT throws_ok(format('SELECT optischema.dismiss(%s, %L)', :evil, '  '), '22004', NULL, 'an empty reason');
SELECT throws_ok($$SELECT optischema.dismiss(-1, 'x')$$, 'P0002', NULL, 'an unknown id');
SELECT throws_ok(format('SELECT optischema.dismiss(%s, %L)', :evil, repeat('x', 1001)), '22001',
    'a dismissal reason is at most 1,000 characters, this one has 1001', 'a reason longer than 1,000 characters');
SELECT is((SELECT status FROM optischema._recommendations WHERE id = :evil), 'failed', 'bad dismissals changed nothing');
SELECT lives_ok(format('SELECT optischema.dismiss(%s, %L)', :evil, ' writes matter more ' || repeat(' ', 2000)), 'dismiss with a reason');
SELECT results_eq(format('SELECT status, dismissed_reason FROM optischema.recommendations WHERE id = %s', :evil),
    $$VALUES ('dismissed', 'writes matter more')$$, 'dismissed, reason kept');
SELECT throws_ok(format('SELECT optischema.dismiss(%s, %L)', :evil, 'again'), '55000', NULL, 'dismissing twice is an error');

SELECT * FROM finish();
ROLLBACK;
