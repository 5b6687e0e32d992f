BEGIN;
SET client_min_messages = error;
SELECT plan(15);

CREATE TABLE public.t (a int);
INSERT INTO optischema._recommendations (key, kind, source, title, table_name, index_name, queryids, index_spec) VALUES
('tap:v', 'create_index', 'advisor', 'Index t(a)', 'public.t', 't_a_idx', '{42, 43}',
 jsonb_build_object('table', 'public.t'::regclass::oid::bigint, 'name', 't_a_idx', 'keys', '[{"column": "a"}]'::jsonb));
SELECT id AS r FROM optischema._recommendations WHERE key = 'tap:v' \gset

SELECT throws_ok($$SELECT * FROM optischema.verify(NULL)$$, '22004', NULL, 'verify(NULL)');
SELECT throws_ok($$SELECT * FROM optischema.verify(-1)$$, 'P0002', 'recommendation -1 does not exist', 'verify of an unknown id');
SELECT throws_ok(format('SELECT * FROM optischema.verify(%s)', :r), '55000',
    format('recommendation %s is open and has no applied change to verify', :r), 'verify before apply');

-- Measured history, written by hand: two snapshots before the change (query
-- 42: 200 calls at 1 ms) and two after it (100 calls at 3 ms); query 43 ran
-- too little afterwards to be judged.
INSERT INTO optischema.snapshots (id, taken_at) VALUES
(1001, now() - interval '2 hours'), (1002, now() - interval '1 hour'),
(1003, now() + interval '1 minute'), (1004, now() + interval '2 minutes');
INSERT INTO optischema.query_stats (queryid, calls, total_ms, rows, blks_hit, blks_read, temp_blks_written, snapshot_id) VALUES
(42, 100, 100, 0, 0, 0, 0, 1001), (42, 200, 200, 0, 0, 0, 0, 1002),
(42, 300, 400, 0, 0, 0, 0, 1003), (42, 400, 700, 0, 0, 0, 0, 1004),
(43, 100, 1000, 0, 0, 0, 0, 1002), (43, 105, 1001, 0, 0, 0, 0, 1004);
INSERT INTO optischema._query_state (queryid, last_snapshot_id, pgss_calls, pgss_total_ms, pgss_rows, pgss_blks_hit,
    pgss_blks_read, pgss_temp_blks, calls, total_ms, rows, blks_hit, blks_read, temp_blks_written) VALUES
(42, 1004, 400, 700, 0, 0, 0, 0, 400, 700, 0, 0, 0, 0),
(43, 1004, 105, 1001, 0, 0, 0, 0, 105, 1001, 0, 0, 0, 0);

SELECT optischema.apply(:r) AS c \gset
SELECT optischema._finish_change(:c, 'succeeded');

SELECT results_eq(format('SELECT queryid, calls_before, mean_ms_before, calls_after, mean_ms_after, change_pct, verdict FROM optischema.verify(%s)', :r),
    $$VALUES (42::bigint, 200::bigint, 1.000::numeric, 100::bigint, 3.000::numeric, 200.00::numeric, 'regressed'),
             (43::bigint, 100::bigint, 10.000::numeric, 5::bigint, 0.200::numeric, NULL::numeric, 'insufficient_data'),
             (NULL::bigint, NULL::bigint, NULL::numeric, NULL::bigint, NULL::numeric, 200.00::numeric, 'regressed')$$,
    'per query and overall: mean time before and after, and the verdict');
SELECT results_eq(format('SELECT timing_verdict, (timing->>%L)::numeric FROM optischema.changes WHERE id = %s', 'change_pct', :c),
    $$VALUES ('regressed', 200.00::numeric)$$, 'the verdict lands in the change log');
SELECT is((SELECT status FROM optischema._recommendations WHERE id = :r), 'applied', 'without auto_rollback the change stays');
SELECT is((SELECT count(*)::int FROM optischema._changes WHERE action = 'rollback'), 0, 'and no rollback is queued');

SELECT optischema.set_setting('regression_threshold', '250');
SELECT is((SELECT verdict FROM optischema.verify(:r) WHERE queryid IS NULL), 'neutral', 'regression_threshold is honoured');

SELECT optischema.set_setting('regression_threshold', '10');
SELECT optischema.set_setting('auto_rollback', 'on');
SELECT is(optischema._verify_recent(), 1, 'the snapshot job verifies recent changes');
SELECT is((SELECT status FROM optischema._recommendations WHERE id = :r), 'rolling_back', 'with auto_rollback a regression is rolled back');
SELECT results_eq($$SELECT action, via, outcome, detail->>'reason' LIKE 'auto rollback:%' FROM optischema.changes WHERE action = 'rollback'$$,
    $$VALUES ('rollback', 'sidecar', 'pending', true)$$, 'by a rollback change that says why');
SELECT is((SELECT count(*)::int FROM optischema.jobs WHERE kind = 'rollback'), 1, 'queued for the sidecar');

-- An improvement
UPDATE optischema._recommendations SET status = 'applied' WHERE id = :r;
DELETE FROM optischema._changes WHERE action = 'rollback';
UPDATE optischema.query_stats SET total_ms = 250 WHERE queryid = 42 AND snapshot_id = 1003;
UPDATE optischema.query_stats SET total_ms = 260 WHERE queryid = 42 AND snapshot_id = 1004;
SELECT is((SELECT verdict FROM optischema.verify(:r) WHERE queryid IS NULL), 'improved', 'a faster query is an improvement');

-- wait() refuses to run inside a transaction block (the sidecar could not see the change)
SELECT throws_ok(format('CALL optischema.wait(%s)', :c), '25001', 'CALL optischema.wait() must run outside a transaction block',
    'wait() inside a transaction block is a clear error');
SELECT has_function('optischema', 'verify', ARRAY['bigint'], 'verify(bigint) exists');

SELECT * FROM finish();
ROLLBACK;
