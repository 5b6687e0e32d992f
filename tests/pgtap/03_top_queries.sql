BEGIN;
SELECT plan(33);

SELECT throws_ok($$SELECT * FROM optischema.top_queries(NULL)$$, '22023',
    'since must be a positive interval, got NULL', 'NULL since is a clear error');
SELECT throws_ok($$SELECT * FROM optischema.top_queries('-1 hour')$$, '22023',
    'since must be a positive interval, got -01:00:00', 'a negative window is a clear error');
SELECT throws_ok($$SELECT * FROM optischema.top_queries('1 hour', -5)$$, '22023',
    'n must be a positive number of rows, got -5', 'negative n is a clear error');
SELECT throws_ok($$SELECT * FROM optischema.top_queries('1 hour', NULL)$$, '22023',
    'n must be a positive number of rows, got NULL', 'NULL n is a clear error');
SELECT throws_ok($$SELECT * FROM optischema.top_queries('1000000 years')$$, '22023',
    'since must be at most 1000 years, got 1000000 years', 'a window beyond any timestamp says what is accepted');
SELECT is((SELECT count(*)::int FROM optischema.snapshots), 0, 'bad input took no snapshot');

CREATE TABLE tq_probe (a int);
INSERT INTO tq_probe SELECT generate_series(1, 1000);
SELECT count(*) FROM tq_probe WHERE a < 10;
SELECT sum(a) FROM tq_probe;

-- Right after install with no snapshot at all: top_queries() takes one and shows everything.
SELECT ok(EXISTS (SELECT 1 FROM optischema.top_queries() WHERE query = 'SELECT sum(a) FROM tq_probe' AND calls = 1),
          'a single-call statement appears right after install');
SELECT is((SELECT count(*)::int FROM optischema.snapshots), 1, 'top_queries() took the first snapshot itself');
SELECT ok(NOT EXISTS (SELECT 1 FROM optischema.top_queries('1 hour', 100) WHERE query ~ 'optischema\.'),
          'OptiSchema''s own statements are not listed');
SELECT is((SELECT round(sum(share_pct)) FROM optischema.top_queries('1 hour', 1000)), 100::numeric,
          'shares of DB time add up to 100%');
SELECT is((SELECT count(*)::int FROM optischema.top_queries('1 hour', 2)), 2, 'n limits the rows');
SELECT ok((SELECT bool_and(total_ms >= coalesce(next_ms, 0)) FROM (
               SELECT total_ms, lead(total_ms) OVER () AS next_ms FROM optischema.top_queries('1 hour', 1000)) t),
          'ranked by total time');
SELECT ok((SELECT cache_hit_pct BETWEEN 0 AND 100 AND mean_ms = round(total_ms / calls, 3)
           FROM optischema.top_queries() WHERE query = 'SELECT sum(a) FROM tq_probe'),
          'mean and cache hit % are consistent');
SELECT is((SELECT state FROM optischema.top_queries() WHERE query = 'SELECT sum(a) FROM tq_probe'), 'finished',
          'a statement pg_stat_statements counted finished (running ones: tests/python/test_running_statements.py)');

SELECT ok(EXISTS (SELECT 1 FROM optischema.top_queries('1000 years') WHERE query = 'SELECT sum(a) FROM tq_probe'),
          'the longest window accepted reaches back to the first snapshot');

-- Texts are shown as pg_stat_statements shows them; figures to every reader.
CREATE ROLE cap_tap_app;
CREATE ROLE cap_tap_reader;
GRANT SELECT ON tq_probe TO cap_tap_app;
SELECT optischema.grant_usage('cap_tap_reader');
SET ROLE cap_tap_app;
SELECT max(a) FROM tq_probe WHERE a > 500;
RESET ROLE;
SELECT optischema.snapshot();
SELECT queryid AS su_q FROM optischema.queries WHERE query = 'SELECT sum(a) FROM tq_probe' \gset
SELECT queryid AS app_q FROM optischema.queries WHERE query = 'SELECT max(a) FROM tq_probe WHERE a > $1' \gset

SET ROLE cap_tap_reader;
SELECT results_eq(format('SELECT query, calls FROM optischema.top_queries(''1 hour'', 1000) WHERE queryid IN (%s, %s) ORDER BY calls, query', :su_q, :app_q),
    $$VALUES ('<insufficient privilege>', 1::bigint), ('<insufficient privilege>', 1::bigint)$$,
    'a reader sees the figures of other roles'' statements, not their texts');
SELECT ok((SELECT bool_and(query = '<insufficient privilege>') FROM pg_stat_statements WHERE userid = session_user::regrole),
          'as pg_stat_statements shows them');
SELECT results_eq('SELECT query, visible FROM optischema.query_texts WHERE queryid = ' || :app_q,
    $$VALUES ('<insufficient privilege>', false)$$, 'query_texts says so too');
SELECT throws_ok('SELECT * FROM optischema.queries', '42501', NULL, 'the table of texts is not a reader''s');
RESET ROLE;

GRANT cap_tap_app TO cap_tap_reader;
SET ROLE cap_tap_reader;
SELECT is((SELECT query FROM optischema.top_queries('1 hour', 1000) WHERE queryid = :app_q),
          'SELECT max(a) FROM tq_probe WHERE a > $1', 'a member of the role that sent a statement sees its text');
SELECT is((SELECT query FROM optischema.top_queries('1 hour', 1000) WHERE queryid = :su_q),
          '<insufficient privilege>', 'but not the texts of other roles');
RESET ROLE;
-- After a restore into another cluster the OID may name another role: it counts only under its recorded name.
UPDATE optischema.query_roles SET rolname = 'cap_tap_someone_else' WHERE queryid = :app_q;
SET ROLE cap_tap_reader;
SELECT is((SELECT query FROM optischema.top_queries('1 hour', 1000) WHERE queryid = :app_q),
          '<insufficient privilege>', 'a sender recorded under another name is not this role');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM optischema._senders(:app_q) s WHERE s = 'cap_tap_app'::regrole), 0,
          'and nothing is planned as it');
UPDATE optischema.query_roles SET rolname = 'cap_tap_app' WHERE queryid = :app_q;
SET ROLE cap_tap_app;
SELECT throws_ok('SELECT * FROM optischema.top_queries()', '42501', NULL, 'a role without OptiSchema access calls nothing');
RESET ROLE;

GRANT pg_read_all_stats TO cap_tap_reader;
SET ROLE cap_tap_reader;
SELECT is((SELECT query FROM optischema.top_queries('1 hour', 1000) WHERE queryid = :su_q),
          'SELECT sum(a) FROM tq_probe', 'a member of pg_read_all_stats sees every text');
RESET ROLE;

-- What is made of texts is shown only where they are.
INSERT INTO optischema._recommendations (key, kind, source, title, ddl, queryids, evidence, explanation) VALUES
('tap:rewrite', 'rewrite', 'llm', 'Rewrite query', 'SELECT sum(a) FROM tq_probe WHERE true', ARRAY[:su_q]::bigint[],
 jsonb_build_object('original', 'SELECT sum(a) FROM tq_probe'), 'sum(a) over tq_probe reads every row'),
('tap:mine', 'rewrite', 'llm', 'Rewrite mine', 'SELECT max(a) FROM tq_probe WHERE a > $1 AND true', ARRAY[:app_q]::bigint[],
 '{}', 'max(a) reads half'),
('tap:drop', 'drop_index', 'advisor', 'Drop an index', 'DROP INDEX CONCURRENTLY x', '{}', '{}', 'unused');
INSERT INTO optischema._changes (recommendation_id, action, via, ddl, index_schema, index_name, prior_status,
                                 requested_by, plan_check, plan_evidence)
SELECT r.id, 'apply', 'psql', 'CREATE INDEX CONCURRENTLY x ON tq_probe (a)', 'public', 'x', 'open', 'tap', 'verified',
       jsonb_build_object('queries', jsonb_build_array(jsonb_build_object('queryid', r.queryids[1], 'plan', 'Filter: (a > 500)')))
FROM optischema._recommendations r
WHERE r.key IN ('tap:rewrite', 'tap:mine');
REVOKE pg_read_all_stats FROM cap_tap_reader;
SET ROLE cap_tap_reader;
SELECT results_eq($$SELECT title, plan_check, plan_evidence::text FROM optischema.changes ORDER BY title$$,
    $$VALUES ('Rewrite mine', 'verified', '{"queries": [{"plan": "Filter: (a > 500)", "queryid": $$ || :app_q || $$}]}'),
             ('Rewrite query', 'verified', '"<insufficient privilege>"')$$,
    'the plans of the plan check are shown where the statements are; the verdict everywhere');
SELECT results_eq($$SELECT ddl, evidence, explanation FROM optischema.recommendations WHERE title = 'Rewrite query'$$,
    $$VALUES ('<insufficient privilege>', '"<insufficient privilege>"'::jsonb, '<insufficient privilege>')$$,
    'a rewrite of a statement the reader may not see shows neither the statement nor the explanation');
SELECT results_eq($$SELECT ddl, explanation FROM optischema.recommendations WHERE title = 'Rewrite mine'$$,
    $$VALUES ('SELECT max(a) FROM tq_probe WHERE a > $1 AND true', 'max(a) reads half')$$,
    'one of its own statements is shown whole');
SELECT results_eq($$SELECT ddl, explanation FROM optischema.recommendations WHERE title = 'Drop an index'$$,
    $$VALUES ('DROP INDEX CONCURRENTLY x', 'unused')$$, 'advice about no statement is shown whole');
RESET ROLE;
SELECT is((SELECT explanation FROM optischema.recommendations WHERE title = 'Rewrite query'),
          'sum(a) over tq_probe reads every row', 'a superuser sees it all');
SELECT is((SELECT count(*)::int FROM optischema.changes WHERE plan_evidence ? 'queries'), 2, 'the plans too');

-- An admin reads optischema.queries (recommend() and context() run with its
-- rights), and there too only the rows whose text it could read in pg_stat_statements.
CREATE ROLE cap_tap_admin;
SELECT optischema.grant_usage('cap_tap_admin', 'admin');
SET ROLE cap_tap_admin;
SELECT is((SELECT count(*)::int FROM optischema.queries WHERE queryid IN (:su_q, :app_q)), 0,
          'an admin reads no text of another role''s statement from the table');
RESET ROLE;
GRANT cap_tap_app TO cap_tap_admin;
SET ROLE cap_tap_admin;
SELECT results_eq('SELECT queryid FROM optischema.queries WHERE queryid IN (' || :su_q || ', ' || :app_q || ')',
    ARRAY[:app_q::bigint], 'but those of the roles it is a member of');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
