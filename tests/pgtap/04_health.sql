BEGIN;
SELECT plan(15);

SELECT is((SELECT array_agg("check" ORDER BY "check") FROM optischema.health()),
    ARRAY['compute_query_id', 'hypopg', 'pg_cron', 'pg_qualstats', 'pg_read_all_stats', 'pg_stat_statements created', 'pg_stat_statements evictions',
          'pg_stat_statements preloaded', 'pg_stat_statements.track', 'plpython3u', 'sidecar heartbeat', 'sidecar version',
          'snapshot freshness', 'table owners', 'track_activity_query_size', 'track_io_timing'],
    'health() runs every check');
SELECT ok((SELECT bool_and(fix IS NULL) FROM optischema.health() WHERE ok), 'a passing check has no fix');
SELECT ok((SELECT bool_and(fix IS NOT NULL AND detail IS NOT NULL) FROM optischema.health() WHERE NOT ok),
          'a failing check says what is wrong and how to fix it');
SELECT ok((SELECT ok FROM optischema.health() WHERE "check" = 'pg_stat_statements preloaded'), 'the test cluster preloads pg_stat_statements');
SELECT is((SELECT detail FROM optischema.health() WHERE "check" = 'sidecar heartbeat'), 'no sidecar seen', 'no sidecar yet');
SELECT is((SELECT detail FROM optischema.health() WHERE "check" = 'snapshot freshness'), 'no snapshot taken yet', 'no snapshot yet');
SELECT optischema.snapshot();
SELECT ok((SELECT ok FROM optischema.health() WHERE "check" = 'snapshot freshness'), 'a fresh snapshot passes');

-- A captured text longer than pg_stat_activity keeps: asks for room for it with its constants.
SELECT ok((SELECT ok FROM optischema.health() WHERE "check" = 'track_activity_query_size'), 'short texts fit');
INSERT INTO optischema.queries (queryid, query, own, first_seen)
VALUES (-77, 'SELECT ' || repeat('a', 1500) || ' FROM t WHERE x = $1', false, 1);
SELECT is((SELECT fix FROM optischema.health() WHERE "check" = 'track_activity_query_size'),
          'ALTER SYSTEM SET track_activity_query_size = 4096; then restart PostgreSQL (bytes)',
          'a text pg_stat_activity would cut comes with the setting that keeps it whole');

-- pg_qualstats is preloaded in the test cluster but not created in this database.
SELECT is((SELECT fix FROM optischema.health() WHERE "check" = 'pg_qualstats'), 'CREATE EXTENSION pg_qualstats;',
          'pg_qualstats preloaded but not created comes with the statement that creates it');
CREATE EXTENSION pg_qualstats;
SELECT ok((SELECT ok FROM optischema.health() WHERE "check" = 'pg_qualstats'), 'pg_qualstats preloaded and created passes');
DROP EXTENSION pg_qualstats;
SELECT optischema.set_setting('use_pg_qualstats', 'false');
SELECT results_eq($$SELECT ok, detail FROM optischema.health() WHERE "check" = 'pg_qualstats'$$,
    $$VALUES (true, 'not used (setting use_pg_qualstats is off)')$$, 'pg_qualstats is not asked for when it is not used');

DROP EXTENSION hypopg;
SELECT is((SELECT fix FROM optischema.health() WHERE "check" = 'hypopg'), 'CREATE EXTENSION hypopg;',
          'a missing HypoPG comes with the statement that installs it');

INSERT INTO optischema.snapshots (pgss_dealloc, evicted) VALUES (0, 250);
SELECT ok((SELECT NOT ok AND fix LIKE 'postgresql.conf: pg_stat_statements.max = %' FROM optischema.health()
           WHERE "check" = 'pg_stat_statements evictions'), 'evictions are reported with a larger max');
-- pg_stat_statements_info.dealloc counts rounds, each evicting 5% of pg_stat_statements.max entries.
SELECT ok((SELECT detail ~ '^pg_stat_statements ran out of room \d+ times, each time evicting its least-used 5% of entries \(about \d+ statements in all\): pg_stat_statements.max = 10000 is too small'
                  AND substring(detail FROM 'room (\d+) times')::bigint >= 250
                  AND substring(detail FROM 'about (\d+) statements')::bigint = 500 * substring(detail FROM 'room (\d+) times')::bigint
           FROM optischema.health() WHERE "check" = 'pg_stat_statements evictions'),
          'the eviction rounds are counted as rounds, and the statements they evicted estimated');

SELECT * FROM finish();
ROLLBACK;
