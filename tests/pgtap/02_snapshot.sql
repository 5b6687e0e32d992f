BEGIN;
SELECT plan(17);

CREATE TABLE snap_probe (a int, b text);
INSERT INTO snap_probe SELECT g, 'x' || g FROM generate_series(1, 100) g;

SELECT isnt(optischema.snapshot(), NULL, 'snapshot() returns the new id');
SELECT count(*) FROM snap_probe WHERE a = 42;
SELECT count(*) FROM snap_probe WHERE a = 43;
SELECT optischema.snapshot() AS s1 \gset

SELECT is((SELECT query FROM optischema.queries WHERE query LIKE 'SELECT count(*) FROM snap_probe WHERE a = $1'),
          'SELECT count(*) FROM snap_probe WHERE a = $1', 'the normalized text is stored once');
SELECT is((SELECT s.calls FROM optischema.query_stats s JOIN optischema.queries q USING (queryid)
           WHERE q.query LIKE '%snap_probe WHERE a = $1' AND s.snapshot_id = :s1), 2::bigint,
          'two calls since the previous snapshot');
SELECT ok(NOT EXISTS (SELECT 1 FROM optischema.query_stats s JOIN optischema.queries q USING (queryid) WHERE q.own),
          'OptiSchema''s own statements store no figures');
SELECT ok((SELECT bool_and(own) FROM optischema.queries WHERE query ~ 'optischema\.snapshot\('),
          'calls of optischema functions are marked as its own');
PREPARE optischema_0123abcd_7 AS SELECT count(*) FROM snap_probe WHERE b = $1;
EXECUTE optischema_0123abcd_7('x1');
DEALLOCATE optischema_0123abcd_7;
SELECT optischema.snapshot();
SELECT is((SELECT bool_and(own) FROM optischema.queries WHERE query ~ 'optischema_0123abcd_7'), true,
          'the what-if statements the engine prepares are its own too');
SELECT cmp_ok((SELECT statements FROM optischema.snapshots WHERE id = :s1), '>=', 2, 'the snapshot counts the statements it saw');
SELECT ok((SELECT duration_ms >= 0 FROM optischema.snapshots WHERE id = :s1), 'and records its own duration');

-- Unchanged statements store nothing.
SELECT optischema.snapshot() AS s2 \gset
SELECT is((SELECT count(*)::int FROM optischema.query_stats s JOIN optischema.queries q USING (queryid)
           WHERE q.query LIKE '%snap_probe WHERE a = $1' AND s.snapshot_id = :s2), 0,
          'a statement that did not run stores no row');

SELECT count(*) FROM snap_probe WHERE a = 44;
SELECT optischema.snapshot() AS s3 \gset
SELECT is((SELECT s.calls FROM optischema.query_stats s JOIN optischema.queries q USING (queryid)
           WHERE q.query LIKE '%snap_probe WHERE a = $1' AND s.snapshot_id = :s3), 3::bigint,
          'stored figures are running totals');
SELECT is((SELECT w.calls FROM optischema._query_window(:s1, :s3) w JOIN optischema.queries q USING (queryid)
           WHERE q.query LIKE '%snap_probe WHERE a = $1'), 1::bigint,
          'a window''s figures are the difference of two snapshots');

-- A reset of pg_stat_statements is detected; counting goes on from the last totals.
SELECT pg_stat_statements_reset();
SELECT count(*) FROM snap_probe WHERE a = 45;
SELECT count(*) FROM snap_probe WHERE a = 46;
SELECT optischema.snapshot() AS s4 \gset
SELECT ok((SELECT reset_detected FROM optischema.snapshots WHERE id = :s4), 'the reset is detected');
SELECT is((SELECT s.calls FROM optischema.query_stats s JOIN optischema.queries q USING (queryid)
           WHERE q.query LIKE '%snap_probe WHERE a = $1' AND s.snapshot_id = :s4), 5::bigint,
          'calls after the reset are added to the running total');
SELECT is((SELECT w.calls FROM optischema._query_window(:s3, :s4) w JOIN optischema.queries q USING (queryid)
           WHERE q.query LIKE '%snap_probe WHERE a = $1'), 2::bigint,
          'the window across the reset holds only the new calls');

-- Retention: old snapshots go, each statement keeps the row later windows start from.
UPDATE optischema.snapshots SET taken_at = now() - interval '30 days' WHERE id <= :s3;
SELECT cmp_ok(optischema.purge(), '>', 0::bigint, 'purge() removes old rows');
SELECT is((SELECT count(*)::int FROM optischema.snapshots WHERE id < :s3), 0, 'snapshots older than the retention are gone');
SELECT is((SELECT w.calls FROM optischema._query_window(:s3, :s4) w JOIN optischema.queries q USING (queryid)
           WHERE q.query LIKE '%snap_probe WHERE a = $1'), 2::bigint,
          'windows after the cutoff give the same figures');

SELECT * FROM finish();
ROLLBACK;
