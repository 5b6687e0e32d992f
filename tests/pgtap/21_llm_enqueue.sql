-- optischema.enqueue_llm_analyses(): which statements get an LLM analysis job; and
-- optischema.workload_context(), what the workload analysis sends, on the same workload.
BEGIN;
SELECT plan(16);

-- A known workload in the window, nothing else (the real capture is tested elsewhere).
-- One-offs are part of the workload by default (min_calls 1); here they are not.
SELECT optischema.set_setting('min_calls', '2');
DELETE FROM optischema.query_stats;
DELETE FROM optischema._query_state;
DELETE FROM optischema.queries;
DELETE FROM optischema.snapshots;
DELETE FROM optischema.jobs;
INSERT INTO optischema.snapshots (id, taken_at) VALUES (1, now() - interval '1 hour');
INSERT INTO optischema.queries (queryid, query, own, first_seen) VALUES
 (9101, 'SELECT * FROM t WHERE a = $1', false, 1),
 (9102, 'SELECT * FROM t WHERE b = $1', false, 1),
 (9103, 'CREATE ROLE r PASSWORD ''hunter2''', false, 1),
 (9104, 'SELECT * FROM t WHERE c = $1', false, 1),
 (9105, 'SELECT optischema.snapshot()', true, 1),
 (9106, 'SELECT 1', false, 1),
 (9107, 'SELECT * FROM t WHERE d = $1', false, 1);
INSERT INTO optischema._query_state (queryid, last_snapshot_id, pgss_calls, pgss_total_ms, pgss_rows, pgss_blks_hit,
                                     pgss_blks_read, pgss_temp_blks, calls, total_ms, rows, blks_hit, blks_read,
                                     temp_blks_written)
SELECT q, 1, c, ms, 0, 0, 0, 0, c, ms, 0, 0, 0, 0
FROM (VALUES (9101, 10, 5000.0), (9102, 10, 4000.0), (9103, 1, 9000.0), (9104, 10, 8000.0),
             (9105, 100, 10000.0), (9106, 10, 10.0), (9107, 1, 20000.0)) v (q, c, ms);
INSERT INTO optischema.query_stats (queryid, calls, total_ms, rows, blks_hit, blks_read, temp_blks_written, snapshot_id)
SELECT queryid, calls, total_ms, 0, 0, 0, 0, 1 FROM optischema._query_state;
-- 9104 already has an advisor recommendation: it comes after the uncovered ones.
INSERT INTO optischema._recommendations (key, kind, source, title, queryids)
VALUES ('create_index:test', 'create_index', 'advisor', 'test', '{9104}');

CREATE TEMP VIEW llm_jobs AS
SELECT (payload ->> 'queryid')::bigint AS queryid, payload ->> 'scope' AS scope
FROM optischema.jobs WHERE kind = 'llm_analysis' AND status = 'pending';

SELECT set_eq($$SELECT (s ->> 'queryid')::bigint FROM jsonb_array_elements(optischema.workload_context() -> 'heaviest_statements') s$$,
              ARRAY[9101, 9102, 9104, 9106]::bigint[], 'workload_context() lists the repeated statements');
SELECT ok(position('hunter2' IN optischema.workload_context()::text) = 0 AND position('snapshot' IN optischema.workload_context()::text) = 0,
          'but never a utility statement (a password) nor OptiSchema''s own');
SELECT is((optischema.workload_context(1) -> 'heaviest_statements' -> 0 ->> 'queryid')::bigint, 9104::bigint,
          'n limits it to the heaviest');

SELECT is(optischema.enqueue_llm_analyses(2), 3, 'two statements and the workload are enqueued');
SELECT set_eq($$SELECT queryid FROM llm_jobs WHERE scope = 'query'$$, ARRAY[9101, 9102]::bigint[],
              'the heaviest statements no advisor recommendation covers come first');
SELECT is((SELECT count(*)::int FROM llm_jobs WHERE scope = 'workload' AND queryid IS NULL), 1, 'one workload analysis');
SELECT is(optischema.enqueue_llm_analyses(2), 2, 'pending analyses are not enqueued twice');
SELECT set_eq($$SELECT queryid FROM llm_jobs WHERE scope = 'query'$$, ARRAY[9101, 9102, 9104, 9106]::bigint[],
              'then the covered and the light statements');
SELECT is(optischema.enqueue_llm_analyses(10), 0, 'nothing is left to enqueue');
SELECT is((SELECT count(*)::int FROM llm_jobs WHERE queryid IN (9103, 9105, 9107)), 0,
          'utility statements, OptiSchema''s own and one-offs (fewer than min_calls calls) are never analysed');

-- Analysed recently: skipped until llm_reanalyze_after has passed.
UPDATE optischema.jobs SET status = 'done', finished_at = now();
INSERT INTO optischema.llm_calls (scope, queryid, model, outcome, tokens_in, tokens_out)
VALUES ('query', 9101, 'm', 'ok', 10, 10), ('workload', NULL, 'm', 'ok', 10, 10), ('query', 9102, 'm', 'timeout', 0, 0);
SELECT is(optischema.enqueue_llm_analyses(1), 1, 'a statement analysed recently is skipped, a failed one is not');
SELECT set_eq($$SELECT queryid FROM llm_jobs$$, ARRAY[9102]::bigint[], 'the failed one is enqueued again');

UPDATE optischema.jobs SET status = 'done', finished_at = now();
SELECT optischema.set_setting('llm_enabled', 'false');
SELECT is(optischema.enqueue_llm_analyses(5), 0, 'llm_enabled off: nothing is enqueued');
SELECT optischema.reset_setting('llm_enabled');

SELECT throws_ok($$SELECT optischema.enqueue_llm_analyses(-1)$$, '22023',
    'n must be zero or a positive number of statements, got -1', 'a negative n is a clear error');
SELECT throws_ok($$SELECT optischema.enqueue_llm_analyses(NULL)$$, '22023',
    'n must be zero or a positive number of statements, got NULL', 'NULL is a clear error');
SELECT is(optischema.llm_tokens_used(), 40::bigint, 'llm_tokens_used() sums the last hour''s audit');

SELECT * FROM finish();
ROLLBACK;
