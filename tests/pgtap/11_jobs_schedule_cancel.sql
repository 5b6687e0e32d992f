BEGIN;
SELECT plan(13);

-- cancel_job
SELECT optischema.enqueue('noop') AS j \gset
SELECT lives_ok(format('SELECT optischema.cancel_job(%s)', :j), 'a pending job can be cancelled');
SELECT is((SELECT status FROM optischema.jobs WHERE id = :j), 'cancelled', 'it is cancelled');
SELECT throws_ok(format('SELECT optischema.cancel_job(%s)', :j), '55000', format('job %s is cancelled, only a pending or running job can be cancelled', :j),
    'a finished job cannot be cancelled');
SELECT throws_ok($$SELECT optischema.cancel_job(-1)$$, 'P0002', 'job -1 does not exist', 'unknown job');
SELECT throws_ok($$SELECT optischema.cancel_job(NULL)$$, 'P0002', 'job NULL does not exist', 'NULL job');

-- schedules: one job per kind and interval, however many sidecars ask
DELETE FROM optischema.jobs;
SELECT is((SELECT count(*)::int FROM optischema._schedule_due()), 3, 'snapshot, recommend and purge are due at first');
SELECT is((SELECT count(*)::int FROM optischema._schedule_due()), 0, 'not again while they are pending');
UPDATE optischema.jobs SET status = 'done', created_at = now() - interval '10 minutes';
SELECT is((SELECT count(*)::int FROM optischema._schedule_due()), 1, 'after snapshot_interval one job is due again');
SELECT is((SELECT array_agg(kind) FROM optischema.jobs WHERE status = 'pending'), ARRAY['snapshot'], 'the snapshot');
SELECT optischema.set_setting('recommend_interval', '0');
DELETE FROM optischema.jobs;
SELECT is((SELECT count(*)::int FROM optischema._schedule_due()), 2, 'an interval of 0 turns a schedule off');

-- purge of old jobs
UPDATE optischema.jobs SET status = 'done', finished_at = now() - interval '31 days';
SELECT is(optischema.purge(), 2::bigint, 'finished jobs older than job_retention are removed');
INSERT INTO optischema.llm_calls (scope, model, outcome, created_at)
VALUES ('workload', 'm', 'ok', now() - interval '40 days'), ('workload', 'm', 'ok', now());
SELECT is(optischema.purge(), 1::bigint, 'the LLM audit older than job_retention is removed');
SELECT is((SELECT count(*)::int FROM optischema.llm_calls), 1, 'recent calls stay');

SELECT * FROM finish();
ROLLBACK;
