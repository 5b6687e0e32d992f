BEGIN;
SELECT plan(12);

SELECT throws_ok($$SELECT * FROM optischema.top_queries(NULL)$$, '22023',
    'since must be a positive interval, got NULL', 'NULL since is a clear error');
SELECT throws_ok($$SELECT * FROM optischema.top_queries('-1 hour')$$, '22023',
    'since must be a positive interval, got -01:00:00', 'a negative window is a clear error');
SELECT throws_ok($$SELECT * FROM optischema.top_queries('1 hour', -5)$$, '22023',
    'n must be a positive number of rows, got -5', 'negative n is a clear error');
SELECT throws_ok($$SELECT * FROM optischema.top_queries('1 hour', NULL)$$, '22023',
    'n must be a positive number of rows, got NULL', 'NULL n is a clear error');
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

SELECT * FROM finish();
ROLLBACK;
