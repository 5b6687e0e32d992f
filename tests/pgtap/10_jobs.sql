BEGIN;
SELECT plan(63);

SELECT ok((SELECT array_agg(kind) FROM optischema.job_kinds)
          @> ARRAY['apply', 'rollback', 'verify', 'snapshot', 'recommend', 'purge', 'llm_analysis'],
          'every job kind of the contract is known');

-- enqueue
SELECT ok(optischema.enqueue('noop', '{"n": 1}') > 0, 'enqueue returns the job id');
SELECT results_eq($$SELECT kind, payload, status, attempts, max_attempts FROM optischema.jobs$$,
    $$VALUES ('noop', '{"n": 1}'::jsonb, 'pending', 0, 5)$$, 'the job is pending with its payload');
SELECT ok(optischema.enqueue('noop') > 0, 'the payload defaults to {}');
SELECT throws_ok($$SELECT optischema.enqueue('bogus')$$, '22023', 'unknown job kind "bogus"', 'an unknown kind is a clear error');
SELECT throws_ok($$SELECT optischema.enqueue(NULL)$$, '22023', 'unknown job kind "NULL"', 'a NULL kind is a clear error');
SELECT throws_ok($$SELECT optischema.enqueue('noop', '[1]')$$, '22023', 'job payload must be a JSON object, got array', 'the payload must be an object');
SELECT throws_ok($$SELECT optischema.enqueue('noop', NULL)$$, '22023', 'job payload must be a JSON object, got NULL', 'a NULL payload is a clear error');
SELECT is((SELECT count(*)::int FROM optischema.jobs), 2, 'failed enqueues inserted nothing');
DELETE FROM optischema.jobs;

-- A payload the sidecar could never use is refused (an apply of a missing change was retried forever).
INSERT INTO optischema._recommendations (key, kind, source, title) VALUES ('tap:jobs', 'create_index', 'advisor', 'Index t(a)');
INSERT INTO optischema._changes (recommendation_id, action, via, ddl, index_schema, index_name, prior_status, requested_by, status)
SELECT r.id, x.action, x.via, 'CREATE INDEX CONCURRENTLY t_a_idx ON public.t (a)', 'public', 't_a_idx', 'open', 'tap', x.status
FROM optischema._recommendations r,
     (VALUES (1, 'apply', 'sidecar', 'pending'), (2, 'apply', 'psql', 'pending'), (3, 'apply', 'sidecar', 'succeeded')) x (n, action, via, status)
WHERE r.key = 'tap:jobs' ORDER BY x.n;
SELECT min(id) AS ch_sidecar, min(id) + 1 AS ch_psql, min(id) + 2 AS ch_done FROM optischema._changes \gset
SELECT throws_ok($$SELECT optischema.enqueue('apply', '{}')$$, '22023',
    'apply job payload needs "change_id": the id of a change, got {}', 'an apply job needs a change_id');
SELECT throws_ok($$SELECT optischema.enqueue('rollback', '{"change_id": "12"}')$$, '22023',
    'rollback job payload needs "change_id": the id of a change, got {"change_id": "12"}', 'a number');
SELECT throws_ok($$SELECT optischema.enqueue('verify', '{"change_id": 1.5}')$$, '22023', NULL, 'an integer');
SELECT throws_ok($$SELECT optischema.enqueue('apply', '{"change_id": 999999}')$$, '22023', 'change 999999 does not exist',
    'of a change that exists');
SELECT throws_ok(format('SELECT optischema.enqueue(%L, %L)', 'rollback', jsonb_build_object('change_id', :ch_sidecar)), '22023',
    format('change %s is apply via sidecar: rollback jobs run only rollback changes requested with via => ''sidecar''', :ch_sidecar),
    'an apply change is no rollback job');
SELECT throws_ok(format('SELECT optischema.enqueue(%L, %L)', 'apply', jsonb_build_object('change_id', :ch_psql)), '22023', NULL,
    'a change requested via psql is run from psql, not by a sidecar');
SELECT throws_ok(format('SELECT optischema.enqueue(%L, %L)', 'verify', jsonb_build_object('change_id', :ch_sidecar)), '22023',
    format('change %s is pending apply: the plan check is for a succeeded apply', :ch_sidecar), 'the plan check needs a built index');
SELECT throws_ok($$SELECT optischema.enqueue('llm_analysis', '{"scope": "table"}')$$, '22023',
    'llm_analysis job payload "scope" must be "query" or "workload", got "table"', 'an analysis has a known scope');
SELECT throws_ok($$SELECT optischema.enqueue('llm_analysis', '{"queryid": "x1"}')$$, '22023', NULL, 'a query analysis needs a queryid');
SELECT throws_ok($$SELECT optischema.enqueue('llm_analysis', '{"scope": "query", "queryid": 4242}')$$, '22023',
    'queryid 4242 was never captured', 'of a captured statement');
INSERT INTO optischema.queries (queryid, query, own, first_seen) VALUES
    (4243, 'CREATE ROLE r PASSWORD ''<redacted>''', false, 1), (4244, 'SELECT optischema.snapshot()', true, 1),
    (4245, 'SELECT a FROM t WHERE b = $1', false, 1);
SELECT throws_ok($$SELECT optischema.enqueue('llm_analysis', '{"queryid": 4243}')$$, '22023',
    'queryid 4243 is a utility statement: it is never sent to a model', 'that is no utility statement');
SELECT throws_ok($$SELECT optischema.enqueue('llm_analysis', '{"queryid": "4244"}')$$, '22023',
    'queryid 4244 is one of OptiSchema''s own statements: it is never sent to a model', 'nor one of OptiSchema''s own');
SELECT throws_ok($$SELECT optischema.enqueue('noop', '{"sleep": "soon"}')$$, '22023',
    'noop job payload "sleep" must be 0 to 3600 seconds, got "soon"', 'noop sleeps a number of seconds');
SELECT throws_ok($$SELECT optischema.enqueue('noop', '{"sleep": 3601}')$$, '22023', NULL, 'up to an hour');
SELECT is((SELECT count(*)::int FROM optischema.jobs), 0, 'refused payloads queued nothing');
SELECT lives_ok(format('SELECT optischema.enqueue(%L, %L)', 'apply', jsonb_build_object('change_id', :ch_sidecar)),
    'an apply job of a change requested via the sidecar is queued');
SELECT lives_ok(format('SELECT optischema.enqueue(%L, %L)', 'verify', jsonb_build_object('change_id', :ch_done)),
    'the plan check of a succeeded apply is queued');
SELECT lives_ok($$SELECT optischema.enqueue('llm_analysis', '{"scope": "query", "queryid": "4245"}')$$,
    'an analysis of a captured statement is queued');
SELECT lives_ok($$SELECT optischema.enqueue('llm_analysis', '{"scope": "workload"}') + optischema.enqueue('noop', '{"sleep": 0.5, "n": 1}')$$,
    'so are a workload analysis and a noop');
DELETE FROM optischema.jobs;
DELETE FROM optischema._changes;
DELETE FROM optischema.queries;

-- claim, complete: only sidecars that announced a version this schema serves get work
SELECT throws_ok($$SELECT optischema._claim_job('w1', NULL, '1 minute')$$, '55000',
    'sidecar w1 has not announced itself: it gets no job before its first heartbeat', 'a sidecar that never beat gets no job');
SELECT is(optischema._heartbeat('old', 'host', 1, '0.1.0', '1 hour'), 0, 'a 0.1.0 sidecar is recorded but renews nothing');
SELECT throws_ok($$SELECT optischema._claim_job('old', NULL, '1 minute')$$, '55000',
    'sidecar old is version 0.1.0, and this database''s OptiSchema is 0.2.0: it gets no job', 'a 0.1.0 sidecar gets no job');
SELECT results_eq($$SELECT ok, fix FROM optischema.health() WHERE "check" = 'sidecar version'$$,
    $$VALUES (false, 'Upgrade the sidecar to OptiSchema 0.2.0 (pip install optischema==0.2.0, or the package of this release) and restart it.')$$,
    'health() names the sidecar of another version and the fix');
SELECT is(optischema._sidecar_fix('0.3.1'), 'Install OptiSchema 0.3.1 (make install), then in this database: ALTER EXTENSION optischema UPDATE;',
    'a newer sidecar is told to update the database');
SELECT ok(optischema._sidecar_serves('0.2.7') AND NOT optischema._sidecar_serves('0.20.0') AND NOT optischema._sidecar_serves(NULL),
    'a sidecar serves the schema of its own major.minor release');
DELETE FROM optischema.sidecars;
SELECT is(optischema._heartbeat(w, 'host', 1, '0.2.0', '1 hour'), 0, 'sidecars of this release announce themselves')
FROM unnest(ARRAY['w1', 'w2', 'w3']) w;
SELECT results_eq($$SELECT ok FROM optischema.health() WHERE "check" = 'sidecar version'$$, $$VALUES (true)$$,
    'health() is content with sidecars of this release');

SELECT optischema.enqueue('noop', '{"n": 1}') AS j1 \gset
SELECT optischema.enqueue('snapshot') AS j2 \gset
SELECT results_eq($$SELECT id, status, attempts, worker_id FROM optischema._claim_job('w1', ARRAY['noop'], '1 minute')$$,
    format('VALUES (%s::bigint, %L, 1, %L)', :j1, 'running', 'w1'), 'a worker claims the oldest job of its kinds');
SELECT is((SELECT count(*)::int FROM optischema._claim_job('w2', ARRAY['noop'], '1 minute')), 0, 'a running job is not claimed again');
SELECT ok((SELECT lease_expires_at > now() FROM optischema.jobs WHERE id = :j1), 'the claim holds a lease');
SELECT is(optischema._complete_job(:j1, 'w2', '{}'), false, 'another worker cannot complete it');
SELECT is(optischema._complete_job(:j1, 'w1', '{"ok": true}'), true, 'its worker completes it');
SELECT results_eq(format('SELECT status, result, lease_expires_at IS NULL, finished_at IS NOT NULL FROM optischema.jobs WHERE id = %s', :j1),
    $$VALUES ('done', '{"ok": true}'::jsonb, true, true)$$, 'done, with its result');
SELECT throws_ok($$SELECT optischema._claim_job(NULL, NULL, '1 minute')$$, '22023', NULL, 'claiming needs a worker');

-- failure, retry with backoff
SELECT is((SELECT id FROM optischema._claim_job('w1', NULL, '1 minute')), :j2::bigint, 'NULL kinds claim any kind');
SELECT is(optischema._fail_job(:j2, 'w1', 'boom'), 'pending', 'a failed attempt goes back to pending');
SELECT results_eq(format('SELECT error, run_after > now() FROM optischema.jobs WHERE id = %s', :j2),
    $$VALUES ('boom', true)$$, 'with its error and a backoff');
SELECT is((SELECT count(*)::int FROM optischema._claim_job('w1', NULL, '1 minute')), 0, 'not claimable during the backoff');
UPDATE optischema.jobs SET run_after = now(), attempts = 4 WHERE id = :j2;
SELECT is((SELECT attempts FROM optischema._claim_job('w1', NULL, '1 minute')), 5, 'claimable again after it');
SELECT is(optischema._fail_job(:j2, 'w1', 'boom again'), 'failed', 'the last attempt fails for good');
SELECT is(optischema._fail_job(:j2, 'w1', 'late'), NULL, 'a finished job takes no more failures');

-- no retry
SELECT optischema.enqueue('noop') AS j3 \gset
SELECT is((SELECT id FROM optischema._claim_job('w1', NULL, '1 minute')), :j3::bigint, 'claimed');
SELECT is(optischema._fail_job(:j3, 'w1', 'bad payload', false), 'failed', 'retry => false fails at once');

-- lease expiry: takeover, and a job that keeps killing sidecars
SELECT optischema.enqueue('noop') AS j4 \gset
SELECT is((SELECT id FROM optischema._claim_job('w1', NULL, '1 minute')), :j4::bigint, 'w1 claims');
UPDATE optischema.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :j4;
SELECT results_eq($$SELECT worker_id, attempts FROM optischema._claim_job('w2', NULL, '1 minute')$$,
    $$VALUES ('w2', 2)$$, 'after the lease expires another worker takes the job over');
UPDATE optischema.jobs SET lease_expires_at = now() - interval '1 second', attempts = 5 WHERE id = :j4;
SELECT is((SELECT count(*)::int FROM optischema._claim_job('w3', NULL, '1 minute')), 0, 'an expired job on its last attempt is not retried');
SELECT alike((SELECT error FROM optischema.jobs WHERE id = :j4), 'lease expired on attempt 5 of 5%', 'it failed, saying why');

-- release, heartbeat
SELECT optischema.enqueue('noop') AS j5 \gset
SELECT is((SELECT id FROM optischema._claim_job('w1', NULL, '1 second')), :j5::bigint, 'claimed with a short lease');
SELECT is(optischema._heartbeat('w1', 'host', 1, '0.2.0', '1 hour'), 1, 'the heartbeat renews the leases of the worker''s jobs');
SELECT ok((SELECT last_seen IS NOT NULL FROM optischema.sidecars WHERE worker_id = 'w1'), 'and announces the sidecar');
SELECT is(optischema._release_job(:j5, 'w1'), true, 'a worker releases its job');
SELECT ok((SELECT status = 'pending' AND attempts = 0 FROM optischema.jobs WHERE id = :j5),
    'a released job is pending again and the attempt does not count');

SELECT * FROM finish();
ROLLBACK;
