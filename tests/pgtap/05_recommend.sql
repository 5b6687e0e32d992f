BEGIN;
SELECT plan(22);

SELECT throws_ok($$SELECT * FROM optischema.recommend(0)$$, '22023',
    'n must be a positive number of rows, got 0', 'n = 0 is a clear error');
SELECT throws_ok($$SELECT * FROM optischema.recommend(NULL)$$, '22023',
    'n must be a positive number of rows, got NULL', 'NULL n is a clear error');

SAVEPOINT no_hypopg;
DROP EXTENSION hypopg;
SELECT throws_ok($$SELECT * FROM optischema.recommend()$$, '55000',
    'extension hypopg is not installed in database ' || current_database() || ': recommend() needs it for what-if plans',
    'without HypoPG recommend() says what to install');
SELECT is((SELECT count(*)::int FROM optischema.analyses), 0, 'and records no analysis');
ROLLBACK TO SAVEPOINT no_hypopg;

CREATE TABLE rec_orders (id int PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL,
                         created_at timestamptz NOT NULL, note text);
INSERT INTO rec_orders
SELECT g, g % 5000, CASE WHEN g % 50 = 0 THEN 'pending' ELSE 'done' END,
       '2026-01-01'::timestamptz + g * interval '1 minute', repeat('n', 50)
FROM generate_series(1, 100000) g;
ANALYZE rec_orders;

SELECT id FROM rec_orders WHERE customer_id = 17 ORDER BY created_at DESC LIMIT 10;
SELECT id FROM rec_orders WHERE customer_id = 18 ORDER BY created_at DESC LIMIT 10;
SELECT id FROM rec_orders WHERE customer_id = 19 ORDER BY created_at DESC LIMIT 10;
SELECT id FROM rec_orders WHERE id = 5;
SELECT id FROM rec_orders WHERE id = 6;
-- Cannot be re-planned from its normalized text: generate_series(unknown, unknown) is ambiguous.
SELECT count(*) FROM rec_orders WHERE customer_id IN (SELECT generate_series(1, 5));
SELECT count(*) FROM rec_orders WHERE customer_id IN (SELECT generate_series(6, 9));

SELECT set_config('plan_cache_mode', 'auto', true);
-- (pg_qualstats' example query of it, with its constants, would plan)
SELECT optischema.set_setting('use_pg_qualstats', 'false');
CREATE TEMP TABLE recs AS SELECT * FROM optischema.recommend();

SELECT is((SELECT count(*)::int FROM recs WHERE kind = 'create_index' AND table_name = 'public.rec_orders'), 1,
          'one index is proposed for rec_orders');
SELECT matches((SELECT ddl FROM recs WHERE table_name = 'public.rec_orders'),
    '^CREATE INDEX CONCURRENTLY \S+ ON public\.rec_orders USING btree \(customer_id, created_at',
    'equality column first, then the ORDER BY column');
SELECT matches((SELECT rollback_ddl FROM recs WHERE table_name = 'public.rec_orders'),
    '^DROP INDEX CONCURRENTLY IF EXISTS public\.\S+$', 'with its exact rollback');
SELECT matches((SELECT title FROM recs WHERE table_name = 'public.rec_orders'),
    '^Index rec_orders\(customer_id, created_at.*\) for 1 query, \d+% of DB time$', 'the title names table, columns, queries and share');
SELECT ok((SELECT (q ->> 'cost_after')::float < (q ->> 'cost_before')::float
           FROM recs, jsonb_array_elements(benefit -> 'queries') q WHERE table_name = 'public.rec_orders'),
          'the what-if plan is cheaper');
SELECT ok((SELECT cardinality(queryids) = 1 AND source = 'advisor' AND status = 'open' AND evidence ? 'queries'
           FROM recs WHERE table_name = 'public.rec_orders'), 'queryids, source, status and evidence are filled in');
SELECT ok(NOT EXISTS (SELECT 1 FROM recs WHERE ddl ~ '\(id\)'), 'nothing for the query the primary key serves');

SELECT ok((SELECT EXISTS (SELECT 1 FROM jsonb_array_elements(skipped) s
                           WHERE s ->> 'reason' = 'cannot be re-planned: function generate_series(unknown, unknown) is not unique'
                             AND (s ->> 'queryid')::bigint = (SELECT queryid FROM pg_stat_statements
                                                              WHERE query LIKE '%rec_orders WHERE customer_id IN%'
                                                                AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())))
           FROM optischema.analyses ORDER BY id DESC LIMIT 1),
          'the text that cannot be re-planned is skipped with a recorded reason');

-- The caller's session is as it was.
SELECT is((SELECT count(*)::int FROM hypopg_list_indexes), 0, 'no hypothetical index is left behind');
SELECT is((SELECT count(*)::int FROM pg_prepared_statements), 0, 'no prepared statement is left behind');
SELECT is(current_setting('plan_cache_mode'), 'auto', 'plan_cache_mode is restored');

-- Re-running updates the same recommendation.
SELECT is((SELECT id FROM optischema.recommend() WHERE table_name = 'public.rec_orders'),
          (SELECT id FROM recs WHERE table_name = 'public.rec_orders'), 're-running keeps the same id');
SELECT is((SELECT count(*)::int FROM optischema.recommendations WHERE table_name = 'public.rec_orders'), 1,
          'and adds no copy');

-- Once the index exists, the advice is superseded.
CREATE INDEX rec_orders_customer_created ON rec_orders (customer_id, created_at);
SELECT is((SELECT count(*)::int FROM optischema.recommend() WHERE table_name = 'public.rec_orders'), 0,
          'an index the table has already is not proposed');
SELECT is((SELECT status FROM optischema.recommendations WHERE id = (SELECT id FROM recs WHERE table_name = 'public.rec_orders')),
          'superseded', 'the earlier advice is marked superseded');

-- So is the maintenance and configuration advice the refresh no longer finds;
-- the model's advice and the rewrites have their own life.
INSERT INTO optischema._recommendations (key, kind, source, title) VALUES
    ('tap:gone:maintenance', 'maintenance', 'advisor', 'VACUUM a table that is clean now'),
    ('tap:gone:config', 'config', 'advisor', 'A setting no longer advised'),
    ('tap:gone:llm', 'config', 'llm', 'The model''s setting advice');
SELECT lives_ok($$SELECT * FROM optischema.recommend()$$, 'recommend() refreshes again');
SELECT results_eq($$SELECT key, status FROM optischema._recommendations WHERE key LIKE 'tap:gone:%' ORDER BY key$$,
    $$VALUES ('tap:gone:config', 'superseded'), ('tap:gone:llm', 'open'), ('tap:gone:maintenance', 'superseded')$$,
    'maintenance and config findings that are gone are superseded, the model''s advice stays open');
SELECT isnt((SELECT status_changed_at FROM optischema._recommendations WHERE key = 'tap:gone:maintenance'), NULL,
            'with the time of the change');

SELECT * FROM finish();
ROLLBACK;
