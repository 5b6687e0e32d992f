BEGIN;
SET client_min_messages = warning;
SELECT plan(52);

-- Bad input: clear errors, and nothing taken or changed.
SELECT throws_ok($$SELECT * FROM optischema.query_history(NULL)$$, '22023',
    'since must be a positive interval of at most 1000 years, got NULL', 'NULL since is a clear error');
SELECT throws_ok($$SELECT * FROM optischema.table_history('-1 hour')$$, '22023',
    'since must be a positive interval of at most 1000 years, got -01:00:00', 'a negative window is a clear error');
SELECT throws_ok($$SELECT * FROM optischema.index_history('1000000 years')$$, '22023',
    'since must be a positive interval of at most 1000 years, got 1000000 years', 'an endless window is a clear error');
SELECT throws_ok($$SELECT * FROM optischema.query_history('1 day', 0)$$, '22023',
    'n must be a positive number of statements, got 0', 'n = 0 is a clear error');
SELECT throws_ok($$SELECT * FROM optischema.table_history('1 day', NULL)$$, '22023',
    'n must be a positive number of tables, got NULL', 'NULL n is a clear error');
SELECT throws_ok($$SELECT * FROM optischema.snapshot_history('1 day', bucket => '0')$$, '22023',
    'bucket must be at least 1 second and given in days, hours, minutes or seconds, got 00:00:00', 'a zero bucket is a clear error');
SELECT throws_ok($$SELECT * FROM optischema.query_history('1 year', bucket => '1 month')$$, '22023',
    'bucket must be at least 1 second and given in days, hours, minutes or seconds, got 1 mon',
    'a bucket in months (date_bin cannot cut those) is a clear error');
SELECT throws_ok($$SELECT * FROM optischema.query_history('1 day', bucket => '1 second')$$, '22023',
    'bucket 00:00:01 cuts the window into more than 10000 buckets', 'too many buckets is a clear error');
SELECT throws_ok($$SELECT * FROM optischema.query_history('1 day', query_id => 42)$$, 'P0002',
    'statement 42 is not in OptiSchema''s history', 'an unknown statement is a clear error');
SELECT throws_ok($$SELECT * FROM optischema.table_history('1 day', relation => 'pg_class')$$, '42809',
    'pg_class is not a table whose activity OptiSchema records', 'a catalog table is a clear error');
SELECT throws_ok($$SELECT * FROM optischema.table_history('1 day', relation => 'optischema.snapshots')$$, '42809',
    'optischema.snapshots is not a table whose activity OptiSchema records', 'so is one of OptiSchema''s own');
SELECT throws_ok($$SELECT * FROM optischema.index_history('1 day', relation => 'rep_no_such_table')$$, '42P01',
    NULL, 'a relation that does not exist is PostgreSQL''s own clear error');
SELECT throws_ok($$SELECT * FROM optischema.change_history(NULL)$$, 'P0002',
    'change NULL does not exist', 'a NULL change is a clear error');
SELECT throws_ok($$SELECT * FROM optischema.change_history(424242)$$, 'P0002',
    'change 424242 does not exist', 'an unknown change is a clear error');
SELECT is((SELECT count(*)::int FROM optischema.snapshots), 0, 'bad input took no snapshot');

-- No snapshot at all: empty histories, not errors.
SELECT is((SELECT count(*)::int FROM optischema.query_history()), 0, 'no snapshot: no statement history');
SELECT is((SELECT count(*)::int FROM optischema.table_history()), 0, 'no table history');
SELECT is((SELECT count(*)::int FROM optischema.index_history()), 0, 'no index history');
SELECT is((SELECT count(*)::int FROM optischema.snapshot_history()), 0, 'no capture history');

CREATE TABLE rep_h (a int PRIMARY KEY);
INSERT INTO rep_h SELECT generate_series(1, 100);
SELECT count(*) FROM rep_h WHERE a < 5;

-- One snapshot: it is where history begins, so there is nothing to chart yet.
SELECT optischema.snapshot() AS s1 \gset
SELECT queryid AS q FROM optischema.queries WHERE query = 'SELECT count(*) FROM rep_h WHERE a < $1' \gset
SELECT is((SELECT count(*)::int FROM optischema.query_history('1 day')), 0, 'one snapshot: no statement history');
SELECT is((SELECT count(*)::int FROM optischema.query_history('1 day', query_id => :q)), 1,
          'a statement asked for by id gets its one bucket');
SELECT is((SELECT calls FROM optischema.query_history('1 day', query_id => :q)), NULL::bigint,
          'with no figure: the snapshot it holds is only the baseline');
SELECT is((SELECT sum(snapshots)::int FROM optischema.snapshot_history('1 day')), 0,
          'the capture history counts no snapshot in the window yet');

-- Four snapshots an hour or more apart, one hour with none (a gap), and the
-- statement's pg_stat_statements entry reset between the second and third
-- (only this database's entry: other tests share the cluster), which the
-- third snapshot also sees as a reset of all of pg_stat_statements.
SELECT count(*) FROM rep_h WHERE a < 6;
SELECT count(*) FROM rep_h WHERE a < 7;
SELECT count(*) FROM rep_h WHERE a < 8;
SELECT optischema.snapshot() AS s2 \gset
SELECT count(*) FROM rep_h WHERE a < 9;
SELECT count(*) FROM rep_h WHERE a < 9;
SELECT count(*) FROM rep_h WHERE a < 9;
SELECT count(*) FROM rep_h WHERE a < 9;
SELECT count(*) FROM rep_h WHERE a < 9;
SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), :q);
UPDATE optischema.snapshots SET pgss_reset = '2000-01-01' WHERE id = :s2;
SELECT count(*) FROM rep_h WHERE a < 10;
SELECT count(*) FROM rep_h WHERE a < 10;
SELECT optischema.snapshot() AS s3 \gset
SELECT count(*) FROM rep_h WHERE a < 11;
SELECT count(*) FROM rep_h WHERE a < 11;
SELECT count(*) FROM rep_h WHERE a < 11;
SELECT count(*) FROM rep_h WHERE a < 11;
SELECT optischema.snapshot() AS s4 \gset
UPDATE optischema.snapshots SET taken_at = now() - CASE id WHEN :s1 THEN interval '4 hours' WHEN :s2 THEN interval '3 hours'
                                                           WHEN :s3 THEN interval '1 hour' ELSE interval '0' END;
SELECT optischema.set_setting('top_queries_refresh', '0');

SELECT is((SELECT reset_detected FROM optischema.snapshots WHERE id = :s3), true, 'the third snapshot saw the reset');
SELECT is((SELECT array_agg(calls ORDER BY bucket_start)
           FROM optischema.query_history('4 hours', query_id => :q, bucket => '1 hour')),
          ARRAY[NULL, 3, NULL, 2, 4]::bigint[],
          'calls per hour: none known before the first snapshot, none in the hour without one, and only what ran since the reset');
SELECT is((SELECT sum(calls) FROM optischema.query_history('4 hours', query_id => :q, bucket => '1 hour')),
          (SELECT sum(calls) FROM optischema.top_queries('4 hours', 1000) WHERE queryid = :q),
          'the buckets add up to what top_queries() counts for the window');
SELECT is((SELECT sum(calls)::int FROM optischema.query_history('30 minutes', query_id => :q, bucket => '1 hour')), 4,
          'a shorter window starts after the snapshot before it');
-- (total_ms and mean_ms are each rounded to 3 decimals)
SELECT ok((SELECT bool_and(abs(mean_ms - total_ms / calls) <= 0.001 AND bucket_end = bucket_start + interval '1 hour')
           FROM optischema.query_history('4 hours', query_id => :q, bucket => '1 hour') WHERE calls > 0),
          'mean time is total time over calls, and buckets are an hour long');
SELECT ok((SELECT bool_and(calls >= 0 AND total_ms >= 0 AND rows >= 0 AND temp_blks_written >= 0)
           FROM optischema.query_history('4 hours', 1000, bucket => '1 hour')),
          'across the reset no statement has a negative figure');
SELECT is((SELECT array_agg(DISTINCT queryid ORDER BY queryid) FROM optischema.query_history('4 hours', 3)),
          (SELECT array_agg(queryid ORDER BY queryid) FROM optischema.top_queries('4 hours', 3)),
          'the top n are top_queries()''s top n');
SELECT is((SELECT (array_agg(queryid ORDER BY bucket_start))[1] FROM optischema.query_history('4 hours', 1)),
          (SELECT queryid FROM optischema.top_queries('4 hours', 1)), 'heaviest first');
SELECT is((SELECT DISTINCT bucket_end - bucket_start FROM optischema.query_history('4 hours', 1)), interval '10 minutes',
          'without a bucket, 4 hours of 5-minute snapshots are cut into 10 minutes (room for a late snapshot)');
SELECT is((SELECT DISTINCT bucket_end - bucket_start FROM optischema.query_history('30 days', 1)), interval '10 minutes',
          'a window reaching back past the first snapshot starts there: 30 days of which 4 hours are known, in 10 minutes');
SELECT is((SELECT DISTINCT bucket_end - bucket_start FROM optischema.snapshot_history('30 days')
           WHERE (SELECT count(*) FROM optischema.snapshot_history('30 days')) > 0), interval '10 minutes',
          'every history cuts the same window the same way');
SELECT is((SELECT array_agg(snapshots ORDER BY bucket_start) || array_agg(resets ORDER BY bucket_start)
           FROM optischema.snapshot_history('4 hours', bucket => '1 hour')),
          ARRAY[0, 1, 0, 1, 1, 0, 0, 0, 1, 0],
          'capture history: snapshots per hour (the gap shows) and the reset');

-- Tables and indexes: deltas as snapshot() stores them (written here, since
-- table counters reach pg_stat_user_tables only when a transaction ends).
DELETE FROM optischema.table_stats WHERE relid = 'rep_h'::regclass;
INSERT INTO optischema.table_stats (snapshot_id, relid, seq_scan, idx_scan, n_tup_ins, n_tup_upd, n_tup_del,
                                    n_tup_hot_upd, n_live_tup, n_mod_since_analyze, n_dead_tup) VALUES
    (:s1, 'rep_h'::regclass, 1, 0, 100, 0, 0, 0, 100, 100, 0),
    (:s2, 'rep_h'::regclass, 7, 2, 0, 10, 5, 4, 95, 15, 15),
    (:s4, 'rep_h'::regclass, 1, 0, 0, 0, 0, 0, 95, 0, 0);
SELECT is((SELECT array_agg(seq_scan ORDER BY bucket_start) FROM optischema.table_history('4 hours', relation => 'rep_h', bucket => '1 hour')),
          ARRAY[NULL, 7, NULL, 0, 1]::bigint[], 'table scans per hour: summed deltas, NULL where nothing is known');
SELECT is((SELECT array_agg(n_dead_tup ORDER BY bucket_start) FROM optischema.table_history('4 hours', relation => 'rep_h', bucket => '1 hour')),
          ARRAY[0, 15, 15, 15, 0]::bigint[], 'dead rows are a level: carried from the last snapshot that saw the table');
SELECT is((SELECT table_name FROM optischema.table_history('4 hours', 1, bucket => '1 hour') LIMIT 1), 'public.rep_h',
          'the busiest table first, by name');

DELETE FROM optischema.index_stats WHERE indexrelid = 'rep_h_pkey'::regclass;
INSERT INTO optischema.index_stats (snapshot_id, indexrelid, relid, idx_scan) VALUES
    (:s2, 'rep_h_pkey'::regclass, 'rep_h'::regclass, 5), (:s3, 'rep_h_pkey'::regclass, 'rep_h'::regclass, 2);
UPDATE optischema._index_state SET first_seen = :s1 WHERE indexrelid = 'rep_h_pkey'::regclass;
SELECT is((SELECT array_agg(idx_scan ORDER BY bucket_start) FROM optischema.index_history('4 hours', relation => 'rep_h', bucket => '1 hour')),
          ARRAY[NULL, 5, NULL, 2, 0]::bigint[], 'index scans per hour: zero once it stopped being used');
SELECT is((SELECT array_agg(idx_scan ORDER BY bucket_start) FROM optischema.index_history('4 hours', relation => 'rep_h_pkey', bucket => '1 hour')),
          ARRAY[NULL, 5, NULL, 2, 0]::bigint[], 'an index asked for by name');
UPDATE optischema._index_state SET first_seen = :s3 WHERE indexrelid = 'rep_h_pkey'::regclass;
SELECT is((SELECT array_agg(idx_scan ORDER BY bucket_start) FROM optischema.index_history('4 hours', relation => 'rep_h', bucket => '1 hour')),
          ARRAY[NULL, NULL, NULL, 2, 0]::bigint[], 'before snapshot() first saw an index, its scans are unknown');
SELECT is((SELECT index_name || ' on ' || table_name FROM optischema.index_history('4 hours', 1) LIMIT 1),
          'public.rep_h_pkey on public.rep_h', 'the most scanned index first, with its table');
CREATE TABLE rep_gone (a int);
CREATE INDEX rep_gone_a ON rep_gone (a);
INSERT INTO optischema.table_stats (snapshot_id, relid, seq_scan, idx_scan, n_tup_ins, n_tup_upd, n_tup_del,
                                    n_tup_hot_upd, n_live_tup, n_mod_since_analyze, n_dead_tup)
VALUES (:s2, 'rep_gone'::regclass, 50, 50, 0, 0, 0, 0, 1, 0, 0);
INSERT INTO optischema.index_stats (snapshot_id, indexrelid, relid, idx_scan) VALUES (:s2, 'rep_gone_a'::regclass, 'rep_gone'::regclass, 50);
SELECT 'rep_gone'::regclass::oid AS gone_t, 'rep_gone_a'::regclass::oid AS gone_i \gset
DROP TABLE rep_gone;
SELECT is((SELECT DISTINCT index_name || ' on ' || table_name FROM optischema.index_history('4 hours', 1)),
          :'gone_i' || ' on ' || :'gone_t', 'a dropped index keeps its history, named by its oid');
SELECT is((SELECT DISTINCT table_name FROM optischema.table_history('4 hours', 1)), :'gone_t',
          'and so does a dropped table');

-- A change's before and after: requested between the second and third snapshots.
INSERT INTO optischema._recommendations (key, kind, source, title, ddl, rollback_ddl, table_name, index_name, queryids)
VALUES ('rep:h', 'create_index', 'advisor', 'Index rep_h(a)', 'CREATE INDEX CONCURRENTLY rep_h_pkey ON public.rep_h (a)',
        'DROP INDEX CONCURRENTLY public.rep_h_pkey', 'public.rep_h', 'rep_h_pkey', ARRAY[:q]::bigint[]);
INSERT INTO optischema._changes (recommendation_id, action, via, ddl, index_schema, index_name, prior_status, status,
                                 requested_by, requested_at, finished_at)
SELECT id, 'apply', 'psql', ddl, 'public', 'rep_h_pkey', 'open', 'succeeded', 'tap', now() - interval '2 hours',
       now() - interval '2 hours' + interval '1 minute'
FROM optischema._recommendations WHERE key = 'rep:h'
RETURNING id AS c \gset
SELECT is((SELECT array_agg(coalesce(phase, '-') ORDER BY bucket_start) FROM optischema.change_history(:c, bucket => '1 hour')),
          ARRAY['-', 'before', '-', 'during', 'after'],
          'phases: before the request, during (the first snapshot after it is where "after" starts), after');
SELECT is((SELECT array_agg(calls ORDER BY bucket_start) FROM optischema.change_history(:c, bucket => '1 hour')),
          ARRAY[NULL, 3, NULL, 2, 4]::bigint[], 'the recommendation''s statements, per bucket');
SELECT is((SELECT array_agg(index_scans ORDER BY bucket_start) FROM optischema.change_history(:c, bucket => '1 hour')),
          ARRAY[NULL, NULL, NULL, 2, 0]::bigint[], 'and the scans of its index, from when snapshot() first saw it');
SELECT ok((SELECT bool_and(abs(mean_ms - total_ms / calls) <= 0.001) FROM optischema.change_history(:c, bucket => '1 hour') WHERE calls > 0),
          'mean time of the statements together');

-- A reader may call them; a role without OptiSchema privileges may not.
CREATE ROLE rep_tap_reader;
CREATE ROLE rep_tap_nobody;
SELECT optischema.grant_usage('rep_tap_reader');
SET ROLE rep_tap_reader;
SELECT is((SELECT sum(calls)::int FROM optischema.query_history('4 hours', query_id => :q, bucket => '1 hour')), 9,
          'a reader reads statement history');
SELECT lives_ok($$SELECT * FROM optischema.table_history() UNION ALL SELECT NULL, NULL, index_name, NULL, NULL, NULL, NULL,
                         NULL, NULL, NULL, NULL FROM optischema.index_history()$$, 'and table and index history');
SELECT lives_ok(format('SELECT * FROM optischema.change_history(%s)', :c), 'and a change''s before and after');
RESET ROLE;
SET ROLE rep_tap_nobody;
SELECT throws_ok($$SELECT * FROM optischema.query_history()$$, '42501', NULL, 'a role without OptiSchema privileges may not');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
