-- Query rewrite advice (sql/32_rewrites.sql): enqueue_rewrite_checks() queues one
-- 'rewrites' job for the sidecar; _record_rewrites() records what it proved.
BEGIN;
SELECT plan(18);
DELETE FROM optischema.jobs;

SELECT ok(optischema.enqueue_rewrite_checks() > 0, 'a rewrites job is queued');
SELECT is(optischema.enqueue_rewrite_checks(), NULL, 'not a second one while it waits');
SELECT is((SELECT count(*)::int FROM optischema.jobs WHERE kind = 'rewrites' AND status = 'pending'), 1, 'one job');
UPDATE optischema.jobs SET status = 'done', finished_at = now();
SELECT optischema.set_setting('rewrite_advice', 'false');
SELECT is(optischema.enqueue_rewrite_checks(), NULL, 'rewrite_advice off: nothing queued');
SELECT is((SELECT count(*)::int FROM optischema.jobs WHERE status = 'pending'), 0, 'no job');
SELECT optischema.reset_setting('rewrite_advice');
SELECT ok((SELECT description <> '' FROM optischema.job_kinds WHERE kind = 'rewrites'), 'the job kind is documented');

-- what the sidecar proved
SELECT is(cardinality(optischema._record_rewrites(ARRAY[77]::bigint[], '[{"key": "rewrite:77:not_in:abc", "title": "Rewrite query 77",
    "sql": "SELECT 1", "queryids": [77], "benefit": {"cost_before": 10, "cost_after": 1}, "evidence": {"runs": []},
    "explanation": "why", "score": 9}]')), 1,
    'a proven rewrite is recorded');
SELECT results_eq($$SELECT kind, source, status, ddl, queryids, explanation FROM optischema._recommendations WHERE key = 'rewrite:77:not_in:abc'$$,
    $$VALUES ('rewrite', 'advisor', 'open', 'SELECT 1', ARRAY[77]::bigint[], 'why')$$, 'as an open advisor rewrite');
SELECT throws_ok($$SELECT optischema.apply((SELECT id FROM optischema._recommendations WHERE key = 'rewrite:77:not_in:abc'))$$,
    '0A000', NULL, 'OptiSchema does not apply a rewrite: it is the application''s code');
SELECT lives_ok($$SELECT optischema.dismiss((SELECT id FROM optischema._recommendations WHERE key = 'rewrite:77:not_in:abc'), 'ORM')$$,
    'it can be dismissed');
SELECT optischema._record_rewrites(ARRAY[77]::bigint[], '[{"key": "rewrite:77:not_in:abc", "title": "t2", "sql": "SELECT 2",
    "queryids": [77], "benefit": {}, "evidence": {}, "explanation": "", "score": 1}]');
SELECT is((SELECT status || ' ' || ddl FROM optischema._recommendations WHERE key = 'rewrite:77:not_in:abc'), 'dismissed SELECT 1',
    'proven again, a dismissed rewrite stays as the DBA left it');
SELECT optischema._record_rewrites(ARRAY[78]::bigint[], '[{"key": "rewrite:78:x:1", "title": "t", "sql": "SELECT 3",
    "queryids": [78], "benefit": {}, "evidence": {}, "explanation": "", "score": 1}]');
SELECT optischema._record_rewrites(ARRAY[78]::bigint[], '[]');
SELECT is((SELECT status FROM optischema._recommendations WHERE key = 'rewrite:78:x:1'), 'superseded',
    'checked again and no longer proven: superseded');
SELECT throws_ok($$SELECT optischema._record_rewrites(ARRAY[1]::bigint[], '{}')$$, '22023',
    'rewrite advice must be a JSON array, got object', 'bad input is a clear error');
SELECT throws_ok($$SELECT optischema._record_rewrites(ARRAY[1]::bigint[], NULL)$$, '22023',
    'rewrite advice must be a JSON array, got NULL', 'NULL is a clear error');
SELECT is((SELECT count(*)::int FROM optischema._recommendations), 2, 'failed calls recorded nothing');

-- verify() of a rewrite the application does not run yet, then does
SELECT throws_ok(format('SELECT * FROM optischema.verify(%s)', (SELECT id FROM optischema._recommendations WHERE key = 'rewrite:77:not_in:abc')),
    '55000', NULL, 'a rewrite no captured statement runs yet has nothing to verify');
SELECT optischema._record_rewrites(ARRAY[]::bigint[], '[]', '{"rewrite:77:not_in:abc": [88], "rewrite:nosuch": [1]}');
SELECT is((SELECT evidence -> 'adopted_by' FROM optischema._recommendations WHERE key = 'rewrite:77:not_in:abc'), '[88]'::jsonb,
    'the statement that runs it is recorded');
SELECT throws_ok(format('SELECT * FROM optischema.verify(%s)', (SELECT id FROM optischema._recommendations WHERE key = 'rewrite:77:not_in:abc')),
    '55000', NULL, 'until a snapshot has its figures');

SELECT * FROM finish();
ROLLBACK;
