BEGIN;
SELECT plan(29);

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

-- Senders: each statement remembers the roles pg_stat_statements saw send it.
SELECT is((SELECT array_agg(r.userid::regrole::text) FROM optischema.query_roles r JOIN optischema.queries q USING (queryid)
           WHERE q.query LIKE '%snap_probe WHERE a = $1'), ARRAY[current_user::text], 'the role that sent a statement is recorded');
SELECT ok(NOT EXISTS (SELECT 1 FROM optischema.query_roles r JOIN optischema.queries q USING (queryid) WHERE q.own),
          'OptiSchema''s own statements have no senders');
SELECT queryid AS probe FROM optischema.queries WHERE query LIKE '%snap_probe WHERE a = $1' \gset
CREATE ROLE cap_tap_sender;
GRANT SELECT ON snap_probe TO cap_tap_sender;
SET ROLE cap_tap_sender;
SELECT count(*) FROM snap_probe WHERE a = 47;
RESET ROLE;
SELECT optischema.snapshot() AS s5 \gset
SELECT is(ARRAY(SELECT s::regrole::text FROM optischema._senders(:probe) s), ARRAY['cap_tap_sender', current_user::text],
          'a new sender is recorded at once, and comes first');
SELECT is((SELECT first_seen FROM optischema.query_roles WHERE queryid = :probe AND userid = 'cap_tap_sender'::regrole),
          :s5::bigint, 'first_seen is the snapshot that saw it first');
SELECT count(*) FROM snap_probe WHERE a = 48;
SELECT optischema.snapshot() AS s6 \gset
SELECT is((SELECT last_seen FROM optischema.query_roles WHERE queryid = :probe AND userid = current_user::regrole),
          :s5::bigint, 'last_seen is not rewritten by every snapshot');
UPDATE optischema.snapshots SET taken_at = taken_at - interval '2 hours';
SELECT count(*) FROM snap_probe WHERE a = 49;
SELECT optischema.snapshot() AS s7 \gset
SELECT is((SELECT last_seen FROM optischema.query_roles WHERE queryid = :probe AND userid = current_user::regrole),
          :s7::bigint, 'but once it is an hour old');
DROP OWNED BY cap_tap_sender;
DROP ROLE cap_tap_sender;
SELECT is(ARRAY(SELECT s::regrole::text FROM optischema._senders(:probe) s), ARRAY[current_user::text],
          'a dropped role is no sender any more');
SELECT is((SELECT count(*)::int FROM optischema._senders(NULL)), 0, 'no statement, no sender');

-- Secrets: utility statements are kept verbatim by pg_stat_statements, never stored so.
CREATE ROLE cap_tap_pw PASSWORD 'tap-hunter2';
ALTER ROLE cap_tap_pw PASSWORD 'tap-hunter3' VALID UNTIL 'infinity';
SET application_name = 'tap-hunter4';
/* tap-hunter5 */ SELECT count(*) FROM snap_probe WHERE b = 'x' AND a > 0;
SELECT optischema.snapshot();
SELECT is((SELECT count(*)::int FROM optischema.queries WHERE query ~ 'tap-hunter'), 0, 'no literal or comment is stored');
SELECT is((SELECT query FROM optischema.queries WHERE query LIKE 'CREATE ROLE cap_tap_pw%'),
          'CREATE ROLE cap_tap_pw PASSWORD ''<redacted>''', 'a utility statement is stored with its literals redacted');
SELECT is((SELECT query FROM optischema.queries WHERE query LIKE 'ALTER ROLE cap_tap_pw%'),
          'ALTER ROLE cap_tap_pw PASSWORD ''<redacted>'' VALID UNTIL ''<redacted>''', 'every literal of it');
SELECT is((SELECT query FROM optischema.queries WHERE query LIKE '%snap_probe WHERE b = $1 AND a > $2'),
          'SELECT count(*) FROM snap_probe WHERE b = $1 AND a > $2', 'comments go too');

SELECT * FROM finish();
ROLLBACK;
