-- Indexes on partitioned tables (sql/09_index_ddl.sql, sql/11_changes.sql):
-- ON ONLY the parent, CONCURRENTLY on each leaf, ATTACH PARTITION; the
-- partitions' index names; what a failed build leaves; drops; and
-- change_statements(), the statements psql's \gexec runs one by one.
BEGIN;
SET client_min_messages = warning;
SELECT plan(27);

CREATE SCHEMA "h1;s";
CREATE TABLE "h1;s".ev (id bigint, tenant int, created date) PARTITION BY RANGE (created);
CREATE TABLE "h1;s".ev_1 PARTITION OF "h1;s".ev FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
-- a partition numbering its columns differently from its parent
CREATE TABLE "h1;s".ev_2 (dropped int, id bigint, tenant int, created date);
ALTER TABLE "h1;s".ev_2 DROP COLUMN dropped;
ALTER TABLE "h1;s".ev ATTACH PARTITION "h1;s".ev_2 FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
-- a partition partitioned in turn, with a long name
CREATE TABLE "h1;s"."ev_3_with_a_name_long_enough_to_need_cutting_short_here_surely" PARTITION OF "h1;s".ev
    FOR VALUES FROM ('2026-03-01') TO ('2026-04-01') PARTITION BY HASH (id);
CREATE TABLE "h1;s".ev_3a PARTITION OF "h1;s"."ev_3_with_a_name_long_enough_to_need_cutting_short_here_surely" FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE "h1;s".ev_3b PARTITION OF "h1;s"."ev_3_with_a_name_long_enough_to_need_cutting_short_here_surely" FOR VALUES WITH (MODULUS 2, REMAINDER 1);

-- <index>_<partition> is 67 bytes: cut to 54 and ended by a hash of both
CREATE FUNCTION pg_temp.cut() RETURNS text LANGUAGE sql AS $$
    SELECT 'ev_t_ev_3_with_a_name_long_enough_to_need_cutting_shor_'
           || left(md5('ev_t/ev_3_with_a_name_long_enough_to_need_cutting_short_here_surely'), 8)
$$;
CREATE FUNCTION pg_temp.d(p_name text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('table', '"h1;s".ev'::regclass::oid::bigint, 'name', p_name, 'method', 'btree',
                              'keys', jsonb_build_array(jsonb_build_object('column', 'tenant', 'attnum', 2)))
$$;

-- The parent's own index: ON ONLY, never CONCURRENTLY
SELECT is(optischema._index_ddl('create', pg_temp.d('ev_t')),
    'CREATE INDEX ev_t ON ONLY "h1;s".ev USING btree (tenant)', 'a partitioned table''s own index is built ON ONLY it');

-- The steps: parents before their partitions, each partition's index attached to its parent's
SELECT results_eq($$SELECT step, kind, index_name::text COLLATE "default", create_ddl, attach_ddl FROM optischema._index_steps(pg_temp.d('ev_t'))$$,
    $$VALUES (0, 'parent', 'ev_t', 'CREATE INDEX ev_t ON ONLY "h1;s".ev USING btree (tenant)', NULL),
             (1, 'leaf', 'ev_t_ev_1', 'CREATE INDEX CONCURRENTLY ev_t_ev_1 ON "h1;s".ev_1 USING btree (tenant)',
              'ALTER INDEX "h1;s".ev_t ATTACH PARTITION "h1;s".ev_t_ev_1'),
             (2, 'leaf', 'ev_t_ev_2', 'CREATE INDEX CONCURRENTLY ev_t_ev_2 ON "h1;s".ev_2 USING btree (tenant)',
              'ALTER INDEX "h1;s".ev_t ATTACH PARTITION "h1;s".ev_t_ev_2'),
             (3, 'partitioned', pg_temp.cut(),
              'CREATE INDEX ' || pg_temp.cut() || ' ON ONLY "h1;s".ev_3_with_a_name_long_enough_to_need_cutting_short_here_surely USING btree (tenant)',
              'ALTER INDEX "h1;s".ev_t ATTACH PARTITION "h1;s".' || pg_temp.cut()),
             (4, 'leaf', 'ev_t_ev_3a', 'CREATE INDEX CONCURRENTLY ev_t_ev_3a ON "h1;s".ev_3a USING btree (tenant)',
              'ALTER INDEX "h1;s".' || pg_temp.cut() || ' ATTACH PARTITION "h1;s".ev_t_ev_3a'),
             (5, 'leaf', 'ev_t_ev_3b', 'CREATE INDEX CONCURRENTLY ev_t_ev_3b ON "h1;s".ev_3b USING btree (tenant)',
              'ALTER INDEX "h1;s".' || pg_temp.cut() || ' ATTACH PARTITION "h1;s".ev_t_ev_3b')$$,
    'ON ONLY the parent and each partitioned partition, CONCURRENTLY on each leaf (by name: columns numbered otherwise), each attached; long names cut and hashed');
SELECT ok((SELECT bool_and(octet_length(index_name) <= 63) FROM optischema._index_steps(pg_temp.d(repeat('n', 63)))),
    'every partition''s index name fits in 63 bytes');
SELECT is((SELECT count(DISTINCT index_name)::int FROM optischema._index_steps(pg_temp.d(repeat('n', 63)))), 6,
    'and no two are the same');
SELECT is((SELECT count(*)::int FROM optischema._index_steps(jsonb_build_object('table', '"h1;s".ev_1'::regclass::oid::bigint,
           'name', 'x', 'keys', '[{"column": "tenant"}]'::jsonb))), 0, 'no steps for a table that is not partitioned');
SELECT throws_ok($$SELECT * FROM optischema._index_steps(pg_temp.d('ev_t') || '{"keys": [{"column": "nosuch"}]}')$$, '42703', NULL,
    'the description is checked against the parent');

-- The script a recommendation shows, and its rollback
SELECT is((SELECT ddl FROM optischema._index_texts('create_index', pg_temp.d('ev_t'))),
    (SELECT string_agg(create_ddl || coalesce(E';\n' || attach_ddl, ''), E';\n' ORDER BY step) FROM optischema._index_steps(pg_temp.d('ev_t'))),
    'a recommendation shows every statement, one a line');
SELECT is((SELECT rollback_ddl FROM optischema._index_texts('create_index', pg_temp.d('ev_t'))),
    'DROP INDEX IF EXISTS "h1;s".ev_t', 'its rollback drops the parent''s index (a partitioned index cannot be dropped concurrently)');

-- A name taken before the build started is refused, not taken over
CREATE INDEX ev_t_ev_2 ON "h1;s".ev_2 (id);
SELECT throws_ok($$SELECT * FROM optischema._index_steps(pg_temp.d('ev_t'))$$, '42P07',
    'refusing to build the index: the name "h1;s".ev_t_ev_2, for the index on partition "h1;s".ev_2, is taken', 'a partition''s index name that is taken');
DROP INDEX "h1;s".ev_t_ev_2;

-- A foreign partition cannot have the index
CREATE FOREIGN DATA WRAPPER h1_fdw;
CREATE SERVER h1_srv FOREIGN DATA WRAPPER h1_fdw;
CREATE FOREIGN TABLE "h1;s".ev_9 PARTITION OF "h1;s".ev FOR VALUES FROM ('2026-09-01') TO ('2026-10-01') SERVER h1_srv;
SELECT throws_ok($$SELECT * FROM optischema._index_steps(pg_temp.d('ev_t'))$$, '42809', NULL, 'a foreign partition is refused');
DROP FOREIGN TABLE "h1;s".ev_9;

-- Half built: the parent's index and two leaves', one attached
CREATE INDEX ev_t ON ONLY "h1;s".ev (tenant);
CREATE INDEX ev_t_ev_1 ON "h1;s".ev_1 (tenant);
ALTER INDEX "h1;s".ev_t ATTACH PARTITION "h1;s".ev_t_ev_1;
CREATE INDEX ev_t_ev_2 ON "h1;s".ev_2 (tenant);
SELECT lives_ok($$SELECT * FROM optischema._index_steps(pg_temp.d('ev_t'))$$, 'once started, its own names are no conflict (a retry resumes)');
SELECT results_eq($$SELECT ddl FROM optischema._index_leftovers(pg_temp.d('ev_t'))$$,
    $$VALUES ('DROP INDEX CONCURRENTLY IF EXISTS "h1;s".ev_t_ev_2'), ('DROP INDEX IF EXISTS "h1;s".ev_t')$$,
    'what it left: the unattached index, then the parent''s (which takes the attached ones along)');
SELECT is((SELECT count(*)::int FROM optischema._index_leftovers(pg_temp.d('other'))), 0, 'nothing for an index never built');

-- Drops: a partition's index only with its parent's, which is dropped without CONCURRENTLY
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'drop', jsonb_build_object('index', '"h1;s".ev_t_ev_1'::regclass::oid::bigint)),
    '2BP01', 'refusing to build the index: index "h1;s".ev_t_ev_1 is a partition of index "h1;s".ev_t: only that one can be dropped (with all its partitions)',
    'a partition''s index is never dropped alone');
SELECT is(optischema._index_ddl('drop', jsonb_build_object('index', '"h1;s".ev_t'::regclass::oid::bigint)),
    'DROP INDEX IF EXISTS "h1;s".ev_t', 'a partitioned index is dropped with a plain DROP INDEX');

-- Complete: nothing left over
ALTER INDEX "h1;s".ev_t ATTACH PARTITION "h1;s".ev_t_ev_2;
CREATE INDEX ev_t_ev_3 ON ONLY "h1;s"."ev_3_with_a_name_long_enough_to_need_cutting_short_here_surely" (tenant);
ALTER INDEX "h1;s".ev_t ATTACH PARTITION "h1;s".ev_t_ev_3;
CREATE INDEX ev_t_ev_3a ON "h1;s".ev_3a (tenant);
CREATE INDEX ev_t_ev_3b ON "h1;s".ev_3b (tenant);
ALTER INDEX "h1;s".ev_t_ev_3 ATTACH PARTITION "h1;s".ev_t_ev_3a;
ALTER INDEX "h1;s".ev_t_ev_3 ATTACH PARTITION "h1;s".ev_t_ev_3b;
SELECT ok((SELECT indisvalid FROM pg_index WHERE indexrelid = '"h1;s".ev_t'::regclass), 'the parent''s index is valid once every partition''s is attached');
SELECT is((SELECT count(*)::int FROM optischema._index_leftovers(pg_temp.d('ev_t'))), 0, 'and then nothing counts as left over');
DROP INDEX "h1;s".ev_t;

-- change_statements(): one statement a row, built now
INSERT INTO optischema._recommendations (key, kind, source, title, table_name, index_name, queryids, index_spec)
VALUES ('tap:ev', 'create_index', 'advisor', 'Index ev(tenant)', 'h1;s.ev', 'ev_t', '{}', pg_temp.d('ev_t')),
       ('tap:plain', 'create_index', 'advisor', 'Index ev_1(id)', 'h1;s.ev_1', 'ev_1_id_idx', '{}',
        jsonb_build_object('table', '"h1;s".ev_1'::regclass::oid::bigint, 'name', 'ev_1_id_idx', 'keys', '[{"column": "id"}]'::jsonb));
SELECT optischema.apply(id, via => 'psql') AS c_ev FROM optischema._recommendations WHERE key = 'tap:ev' \gset
SELECT optischema.apply(id, via => 'psql') AS c_plain FROM optischema._recommendations WHERE key = 'tap:plain' \gset
SELECT is((SELECT ddl FROM optischema.changes WHERE id = :c_ev), (SELECT ddl FROM optischema._index_texts('create_index', pg_temp.d('ev_t'))),
    'the change records the whole script');
SELECT results_eq(format('SELECT step, statement FROM optischema.change_statements(%s)', :c_ev),
    $$SELECT 2 * s.step + k, x FROM optischema._index_steps(pg_temp.d('ev_t')) s,
             LATERAL (VALUES (0, s.create_ddl), (1, s.attach_ddl)) v(k, x) WHERE x IS NOT NULL ORDER BY 1$$,
    'change_statements() gives each statement of a partitioned build on its own row');
SELECT results_eq(format('SELECT step, statement FROM optischema.change_statements(%s)', :c_plain),
    $$VALUES (0, 'CREATE INDEX CONCURRENTLY ev_1_id_idx ON "h1;s".ev_1 USING btree (id)')$$, 'and the one statement of any other change');
SELECT throws_ok($$SELECT * FROM optischema.change_statements(-1)$$, 'P0002', 'change -1 does not exist', 'an unknown change');
SELECT throws_ok($$SELECT * FROM optischema.change_statements(NULL)$$, 'P0002', 'change NULL does not exist', 'a NULL change');
SELECT lives_ok(format('SELECT optischema._finish_change(%s, %L, %L)', :c_plain, 'failed', 'not run'), 'a change ends');
SELECT throws_ok(format('SELECT * FROM optischema.change_statements(%s)', :c_plain), '55000',
    format('change %s is failed: there is nothing left to run', :c_plain), 'a finished change has nothing left to run');
CREATE ROLE h1_tap_reader;
SELECT alike(optischema.grant_usage('h1_tap_reader'), '%reader%', 'a reader');
SET LOCAL ROLE h1_tap_reader;
SELECT throws_ok(format('SELECT * FROM optischema.change_statements(%s)', :c_ev), '42501',
    'role h1_tap_reader may not read the statements of OptiSchema changes', 'a reader may not');
RESET ROLE;
SELECT is((SELECT outcome FROM optischema.changes WHERE id = :c_ev), 'pending', 'none of which changed the change');

SELECT * FROM finish();
ROLLBACK;
