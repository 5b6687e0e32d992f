-- Maintenance and configuration changes (sql/12_actions.sql): setting values read as
-- PostgreSQL reads them, the allow-list, statements built from a description, their exact
-- rollback, the change loop's refusals, cancelling a running job, and the finding helpers
-- (sql/31_maintenance.sql). Everything a role does here is rolled back at the end.
BEGIN;
SELECT plan(114);

-- Setting values (these were the LLM check's own, in Python; now the one check in SQL).
SELECT is((SELECT row(value, own)::text FROM optischema._setting_value('work_mem', '64MB')), '(64MB,65536)', 'work_mem 64MB is 65536 kB');
SELECT is((SELECT row(value, own)::text FROM optischema._setting_value('work_mem', '2048')), '(2048,2048)', 'no unit: the setting''s own');
SELECT is((SELECT row(value, own)::text FROM optischema._setting_value('shared_buffers', '1GB')), '(1GB,131072)', '8kB units');
SELECT is((SELECT row(value, own)::text FROM optischema._setting_value('statement_timeout', '1.5s')), '(1.5s,1500)', 'time units');
SELECT is((SELECT row(value, own)::text FROM optischema._setting_value('random_page_cost', '1.1')), '(1.1,1.1)', 'a real');
SELECT is((SELECT row(value, own)::text FROM optischema._setting_value('jit', 'TRUE')), '(on,)', 'a boolean, canonical');
SELECT is((SELECT row(value, own)::text FROM optischema._setting_value('plan_cache_mode', 'Auto')), '(auto,)', 'an enum, canonical');
SELECT throws_ok($$SELECT optischema._setting_value('work_mem', '32')$$, '22023', '''32'' is out of range for work_mem: 64 to 2147483647 kB', 'below the server''s minimum');
SELECT throws_like($$SELECT optischema._setting_value('work_mem', '1.5kB')$$, '%not a whole number of kB%', 'a fraction of the unit');
SELECT throws_ok($$SELECT optischema._setting_value('work_mem', '64 ms')$$, '22023', 'unit ''ms'' does not fit work_mem (unit kB); use one of B, kB, MB, GB, TB', 'a unit of another kind');
SELECT throws_like($$SELECT optischema._setting_value('work_mem', 'lots')$$, '%not a number with an optional unit%', 'not a number');
SELECT throws_ok($$SELECT optischema._setting_value('jit', 'maybe')$$, '22023', '''maybe'' is not a boolean', 'not a boolean');
SELECT throws_ok($$SELECT optischema._setting_value('random_page_cost', '2MB')$$, '22023', 'random_page_cost takes no unit', 'no unit allowed');
SELECT throws_ok($$SELECT optischema._setting_value('no_such_setting', '1')$$, '22023', '''no_such_setting'' is not a PostgreSQL setting (pg_settings)', 'unknown setting');
SELECT throws_ok($$SELECT optischema._setting_value('work_mem', NULL)$$, '22023', 'a value of work_mem cannot be NULL', 'NULL value');
SELECT is(optischema._setting_text('work_mem', 65536), '64MB', 'shown in the largest whole unit');
SELECT is(optischema._setting_text('shared_buffers', 16384), '128MB', '8kB pages shown as memory');
SELECT is(optischema._setting_text('max_wal_size', 1024), '1GB', 'MB units');
SELECT is(optischema._setting_text('statement_timeout', 1500), '1500ms', 'time');

-- The allow-list check (also the LLM's).
SELECT is((SELECT row(name, value, advice_only)::text FROM optischema._setting_proposal('work_mem', '64MB', 'system')),
          '(work_mem,64MB,f)', 'work_mem may be proposed');
SELECT is((SELECT advice_only FROM optischema._setting_proposal('shared_buffers', '1GB', 'system')), true,
          'shared_buffers needs a restart: advice only');
SELECT throws_ok($$SELECT optischema._setting_proposal('huge_pages', 'on', 'system')$$, '22023',
                 'huge_pages is not a setting OptiSchema proposes (see optischema.tunable_settings)', 'not on the allow-list');
SELECT throws_ok($$SELECT optischema._setting_at('huge_pages', 'system')$$, '22023',
                 'huge_pages is not a setting OptiSchema proposes (see optischema.tunable_settings)', 'where it stands: only allow-listed settings');
SELECT throws_ok($$SELECT optischema._setting_effective('huge_pages')$$, '22023',
                 'huge_pages is not a setting OptiSchema proposes (see optischema.tunable_settings)', 'what sessions get: the same');
SELECT throws_ok($$SELECT optischema._setting_effective(NULL)$$, '22023',
                 'NULL is not a setting OptiSchema proposes (see optischema.tunable_settings)', 'a NULL name says so');
SELECT throws_like($$SELECT optischema._setting_proposal('autovacuum', 'off', 'system')$$,
                   'autovacuum = off is not proposed by OptiSchema (only on): %', 'autovacuum only on');
SELECT throws_like($$SELECT optischema._setting_proposal('max_wal_size', '2TB', 'system')$$,
                   'max_wal_size = 2TB is outside the range OptiSchema proposes, 1GB to 64GB: %', 'outside the bounds');
SELECT throws_ok($$SELECT optischema._setting_proposal('max_wal_size', '2GB', 'database')$$, '22023',
                 'max_wal_size (context sighup) can only be set for the whole server (scope system)', 'sighup: system only');
SELECT throws_ok($$SELECT optischema._setting_proposal('work_mem', '64MB', 'cluster')$$, '22023',
                 'scope must be system, database or role, got ''cluster''', 'unknown scope');
SELECT throws_ok($$SELECT optischema._setting_proposal('work_mem', '64MB', 'role', 0)$$, '42704',
                 'role 0 does not exist (any more)', 'a role that does not exist');
SELECT is((SELECT is_current FROM optischema._setting_proposal('work_mem', (optischema._setting_effective('work_mem')).value, 'system')),
          true, 'the current value is recognised as such');

-- Statements built from descriptions, with catalog names quoted.
CREATE SCHEMA "s$1";
CREATE TABLE "s$1"."we;ird" (a int, b text) WITH (autovacuum_analyze_scale_factor = 0.08);
CREATE INDEX "we;ird_a" ON "s$1"."we;ird" (a);
CREATE VIEW "s$1".v AS SELECT 1 AS x;
SELECT '"s$1"."we;ird"'::regclass::oid AS t, '"s$1"."we;ird_a"'::regclass::oid AS i, '"s$1".v'::regclass::oid AS v \gset
SELECT is((optischema._action_statement('maintenance', format('{"action": "analyze", "table": %s}', :t)::jsonb)).ddl,
          'ANALYZE "s$1"."we;ird"', 'ANALYZE, quoted');
SELECT is((SELECT row(op, ddl, target_schema, target_name)::text
           FROM optischema._action_statement('maintenance', format('{"action": "vacuum", "table": %s}', :t)::jsonb)),
          '(run,"VACUUM (ANALYZE) ""s$1"".""we;ird""",s$1,we;ird)', 'VACUUM (ANALYZE), and the table it acts on');
SELECT is((optischema._action_statement('maintenance', format('{"action": "vacuum_freeze", "table": %s}', :t)::jsonb)).ddl,
          'VACUUM (FREEZE) "s$1"."we;ird"', 'VACUUM (FREEZE)');
SELECT is((optischema._action_statement('maintenance', format('{"action": "reindex", "index": %s}', :i)::jsonb)).ddl,
          'REINDEX INDEX CONCURRENTLY "s$1"."we;ird_a"', 'REINDEX INDEX CONCURRENTLY');
SELECT is((optischema._action_statement('maintenance', format('{"action": "set_reloptions", "table": %s, "options": {"autovacuum_analyze_scale_factor": "0.02"}}', :t)::jsonb)).ddl,
          'ALTER TABLE "s$1"."we;ird" SET (autovacuum_analyze_scale_factor = ''0.02'')', 'per-table autovacuum setting');
SELECT is((optischema._action_statement('maintenance', format('{"action": "set_reloptions", "table": %s, "options": {"autovacuum_analyze_scale_factor": "0.02", "autovacuum_vacuum_threshold": "100"}}', :t)::jsonb,
                                        'rollback', optischema._action_state('maintenance', format('{"action": "set_reloptions", "table": %s, "options": {"autovacuum_analyze_scale_factor": "0.02", "autovacuum_vacuum_threshold": "100"}}', :t)::jsonb))).ddl,
          'ALTER TABLE "s$1"."we;ird" SET (autovacuum_analyze_scale_factor = ''0.08''), RESET (autovacuum_vacuum_threshold)',
          'its rollback restores the old value and resets what was not set');
SELECT throws_ok(format($$SELECT optischema._action_statement('maintenance', '{"action": "analyze", "table": %s}', 'rollback')$$, :t),
                 '0A000', 'ANALYZE has no rollback: it only refreshed the planner''s statistics', 'ANALYZE has no rollback');
SELECT throws_like(format($$SELECT optischema._action_statement('maintenance', '{"action": "vacuum", "table": %s}', 'rollback')$$, :t),
                   'VACUUM has no rollback: %', 'nor VACUUM');
SELECT alike((optischema._action_texts('maintenance', format('{"action": "vacuum", "table": %s}', :t)::jsonb)).rollback_ddl,
            '-- none: VACUUM only removes dead rows%', 'its rollback_ddl says so');

SELECT is((SELECT row(op, ddl)::text FROM optischema._action_statement('config', '{"setting": "work_mem", "value": "64MB", "scope": "system"}')),
          '(reload,"ALTER SYSTEM SET work_mem = ''64MB''")', 'ALTER SYSTEM, then a reload');
SELECT is((optischema._action_statement('config', '{"setting": "work_mem", "value": "64MB", "scope": "system"}', 'rollback', '{"set": false, "value": null}')).ddl,
          'ALTER SYSTEM RESET work_mem', 'rollback: RESET when it was not in postgresql.auto.conf');
SELECT is((optischema._action_statement('config', '{"setting": "work_mem", "value": "64MB", "scope": "system"}', 'rollback', '{"set": true, "value": "8MB"}')).ddl,
          'ALTER SYSTEM SET work_mem = ''8MB''', 'rollback: the old value otherwise');
SELECT throws_ok($$SELECT optischema._action_statement('config', '{"setting": "work_mem", "value": "64MB", "scope": "system"}', 'rollback')$$,
                 '55000', 'no record of work_mem''s value before the change: nothing to restore', 'no rollback without what apply found');
SELECT is((optischema._action_statement('config', '{"setting": "work_mem", "value": "64MB", "scope": "database"}')).ddl,
          format('ALTER DATABASE %I SET work_mem = ''64MB''', current_database()), 'a database''s setting');
CREATE ROLE "mnt_tap;role";
SELECT '"mnt_tap;role"'::regrole::oid AS r \gset
SELECT is((SELECT row(op, ddl)::text FROM optischema._action_statement('config', format('{"setting": "work_mem", "value": "64MB", "scope": "role", "role": %s}', :r)::jsonb)),
          format('(run,"ALTER ROLE ""mnt_tap;role"" IN DATABASE %s SET work_mem = ''64MB''")', quote_ident(current_database())), 'a role''s setting in this database');

-- Descriptions that do not build: refused with the reason.
SELECT throws_like($$SELECT optischema._action_statement('maintenance', NULL)$$, '%has no description of what to run', 'no description');
SELECT throws_like($$SELECT optischema._action_statement('maintenance', '{"action": "vacuum_full", "table": 1}')$$,
                   '%action "vacuum_full" is not one of analyze, vacuum, vacuum_freeze, reindex, set_reloptions', 'VACUUM FULL is never built');
SELECT throws_like(format($$SELECT optischema._action_statement('maintenance', '{"action": "analyze", "table": %s, "sql": "DROP TABLE x"}')$$, :t),
                   '%takes exactly the fields action, table', 'an extra field');
SELECT throws_ok($$SELECT optischema._action_statement('maintenance', '{"action": "analyze", "table": 4294967295}')$$,
                 '42P01', 'refusing to build the statement: relation 4294967295 does not exist (any more)', 'a table that is gone');
SELECT throws_ok($$SELECT optischema._action_statement('maintenance', '{"action": "analyze", "table": "pg_class"}')$$,
                 '42P01', 'refusing to build the statement: relation "pg_class" does not exist (any more)', 'a name instead of an OID');
SELECT throws_ok($$SELECT optischema._action_statement('maintenance', '{"action": "vacuum", "table": 1259}')$$,
                 '42501', 'refusing to build the statement: pg_class belongs to the system or to OptiSchema', 'a system table');
SELECT throws_like($$SELECT optischema._action_statement('maintenance', format('{"action": "vacuum", "table": %s}', 'optischema.jobs'::regclass::oid)::jsonb)$$,
                   '%belongs to the system or to OptiSchema', 'OptiSchema''s own table');
SELECT throws_ok(format($$SELECT optischema._action_statement('maintenance', '{"action": "analyze", "table": %s}')$$, :v),
                 '42809', 'refusing to build the statement: "s$1".v is not a table', 'a view');
SELECT throws_ok(format($$SELECT optischema._action_statement('maintenance', '{"action": "reindex", "index": %s}')$$, :t),
                 '42809', 'refusing to build the statement: "s$1"."we;ird" is not an index', 'a table as an index');
SELECT throws_like(format($$SELECT optischema._action_statement('maintenance', '{"action": "set_reloptions", "table": %s, "options": {"fillfactor": "50"}}')$$, :t),
                   '%fillfactor is not a storage parameter OptiSchema sets%', 'a storage parameter not on the list');
SELECT throws_like(format($$SELECT optischema._action_statement('maintenance', '{"action": "set_reloptions", "table": %s, "options": {"autovacuum_vacuum_scale_factor": "0.5"}}')$$, :t),
                   'autovacuum_vacuum_scale_factor = 0.5 is outside the range OptiSchema proposes%', 'a per-table value outside the allow-list');
SELECT throws_like(format($$SELECT optischema._action_statement('maintenance', '{"action": "set_reloptions", "table": %s, "options": {"autovacuum_vacuum_scale_factor": 0.1}}')$$, :t),
                   '%must be a JSON string', 'a value that is not a string');
SELECT throws_like($$SELECT optischema._action_statement('config', '{"setting": "archive_command", "value": "rm -rf /", "scope": "system"}')$$,
                   'archive_command is not a setting OptiSchema proposes%', 'a setting not on the list');
SELECT throws_like($$SELECT optischema._action_statement('config', '{"setting": "work_mem", "value": "64MB", "scope": "system", "role": 10}')$$,
                   '%takes exactly the fields setting, value, scope', 'a role for a system setting');
SELECT throws_like($$SELECT optischema._action_statement('config', '{"setting": "work_mem", "value": 64, "scope": "system"}')$$,
                   '%setting and value must be JSON strings', 'a number for a value');
SELECT throws_like($$SELECT optischema._action_statement('create_index', '{}')$$, '%kind ''create_index'' has no action description', 'an index kind');

-- The change loop: refusals change nothing.
INSERT INTO optischema._recommendations (key, kind, source, title, action_spec)
VALUES ('t:advice', 'config', 'advisor', 'shared_buffers', '{"setting": "shared_buffers", "value": "1GB", "scope": "system"}'),
       ('t:bloat', 'maintenance', 'advisor', 'bloat', NULL),
       ('t:analyze', 'maintenance', 'advisor', 'analyze', format('{"action": "analyze", "table": %s}', :t)::jsonb),
       ('t:role', 'config', 'advisor', 'role', format('{"setting": "work_mem", "value": "64MB", "scope": "role", "role": %s}', :r)::jsonb),
       ('t:reloptions', 'maintenance', 'advisor', 'reloptions', format('{"action": "set_reloptions", "table": %s, "options": {"autovacuum_analyze_scale_factor": "0.02"}}', :t)::jsonb),
       ('t:gone', 'maintenance', 'advisor', 'gone', '{"action": "vacuum", "table": 4294967295}');
SELECT id AS advice FROM optischema._recommendations WHERE key = 't:advice' \gset
SELECT id AS bloat FROM optischema._recommendations WHERE key = 't:bloat' \gset
SELECT id AS an FROM optischema._recommendations WHERE key = 't:analyze' \gset
SELECT id AS role_rec FROM optischema._recommendations WHERE key = 't:role' \gset
SELECT id AS relopt FROM optischema._recommendations WHERE key = 't:reloptions' \gset
SELECT id AS gone FROM optischema._recommendations WHERE key = 't:gone' \gset
SELECT throws_ok(format('SELECT optischema.apply(%s)', :advice), '0A000',
                 format('recommendation %s: shared_buffers needs a server restart (pg_settings.context postmaster): advice only, never applied by OptiSchema', :advice),
                 'a restart-only setting is never applied');
SELECT throws_ok(format('SELECT optischema.apply(%s, via => ''psql'')', :advice), '0A000', NULL, 'not even through psql');
SELECT throws_ok(format('SELECT optischema.apply(%s)', :bloat), '0A000',
                 format('recommendation %s is advice only: OptiSchema does not run it', :bloat), 'advice without a description is not run');
SELECT throws_ok(format('SELECT optischema.apply(%s)', :gone), '42P01', NULL, 'a table that is gone: refused when applied');
SELECT is((SELECT count(*) FROM optischema._changes), 0::bigint, 'and no change was recorded');
SELECT is((SELECT array_agg(status ORDER BY id) FROM optischema._recommendations), '{open,open,open,open,open,open}', 'nor a status changed');

-- psql path: ANALYZE (it may run in a transaction), recorded from the statistics.
SELECT optischema.apply(:an, via => 'psql') AS c \gset
SELECT is((SELECT ddl FROM optischema.changes WHERE id = :c), 'ANALYZE "s$1"."we;ird"', 'the statement handed to the DBA');
SELECT is((SELECT (prior_state ->> 'analyze_count')::int FROM optischema._changes WHERE id = :c), 0, 'what apply found is recorded');
SELECT is(optischema.applied(:c), 'failed', 'not run yet: applied() says it failed');
SELECT optischema.apply(:an, via => 'psql') AS c \gset
ANALYZE "s$1"."we;ird";
SELECT is(optischema.applied(:c), 'succeeded', 'run: applied() sees it in the statistics');
SELECT is((SELECT plan_check FROM optischema._changes WHERE id = :c), 'pending', 'the estimates are re-planned by a sidecar''s verify job');
SELECT is((SELECT count(*) FROM optischema.jobs WHERE kind = 'verify' AND (payload ->> 'change_id')::bigint = :c), 1::bigint, 'which is queued');
SELECT throws_ok(format('SELECT optischema.rollback(%s)', :an), '0A000', 'ANALYZE has no rollback: it only refreshed the planner''s statistics',
                 'an ANALYZE is not rolled back');
SELECT is((SELECT status FROM optischema._recommendations WHERE id = :an), 'applied', 'and stays applied');

-- psql path: a role's setting, applied and rolled back to exactly what it was.
SELECT format('ALTER ROLE %I IN DATABASE %I SET work_mem = %L', 'mnt_tap;role', current_database(), '2MB') \gexec
SELECT optischema.apply(:role_rec, via => 'psql') AS c \gset
SELECT is((SELECT prior_state FROM optischema._changes WHERE id = :c), '{"set": true, "value": "2MB"}', 'the role''s old value is recorded');
SELECT ddl FROM optischema.changes WHERE id = :c \gexec
SELECT is(optischema.applied(:c), 'succeeded', 'ALTER ROLE ... SET applied');
SELECT is((optischema._setting_at('work_mem', 'role', :r)).value, '64MB', 'the role gets the new value');
SELECT is((SELECT plan_check FROM optischema._changes WHERE id = :c), 'verified', 'its effect is checked: the setting is in place');
SELECT optischema.rollback(:role_rec, via => 'psql') AS c \gset
SELECT is((SELECT ddl FROM optischema.changes WHERE id = :c),
          format('ALTER ROLE "mnt_tap;role" IN DATABASE %s SET work_mem = ''2MB''', quote_ident(current_database())), 'its rollback restores 2MB');
SELECT ddl FROM optischema.changes WHERE id = :c \gexec
SELECT is(optischema.applied(:c), 'succeeded', 'rolled back');
SELECT is((optischema._setting_at('work_mem', 'role', :r)).value, '2MB', 'the role has its old value again');
SELECT is((SELECT status FROM optischema._recommendations WHERE id = :role_rec), 'rolled_back', 'the recommendation is rolled back');

-- psql path: a table's storage parameter, and its exact rollback.
SELECT optischema.apply(:relopt, via => 'psql') AS c \gset
SELECT ddl FROM optischema.changes WHERE id = :c \gexec
SELECT is(optischema.applied(:c), 'succeeded', 'storage parameter set');
SELECT ok('autovacuum_analyze_scale_factor=0.02' = ANY ((SELECT reloptions FROM pg_class WHERE oid = :t)::text[]), 'it is on the table');
SELECT optischema.rollback(:relopt, via => 'psql') AS c \gset
SELECT ddl FROM optischema.changes WHERE id = :c \gexec
SELECT is(optischema.applied(:c), 'succeeded', 'rolled back');
SELECT is((SELECT reloptions FROM pg_class WHERE oid = :t), '{autovacuum_analyze_scale_factor=0.08}', 'the table has exactly its old parameters');

-- Via the sidecar: what runs is built and checked again when it runs.
UPDATE optischema._recommendations SET status = 'open' WHERE id = :role_rec;
SELECT optischema.apply(:role_rec) AS c \gset
SELECT is((SELECT ddl FROM optischema._change_ddl(:c)),
          format('ALTER ROLE "mnt_tap;role" IN DATABASE %s SET work_mem = ''64MB''', quote_ident(current_database())), 'the sidecar gets the statement');
SELECT format('ALTER ROLE %I IN DATABASE %I SET work_mem = %L', 'mnt_tap;role', current_database(), '3MB') \gexec
SELECT throws_like(format('SELECT * FROM optischema._change_ddl(%s)', :c), format('change %s: work_mem changed since the apply was requested%%', :c),
                   'a setting changed by someone else since the request is not overwritten');
UPDATE optischema.tunable_settings SET max_value = '32MB' WHERE name = 'work_mem';
SELECT format('ALTER ROLE %I IN DATABASE %I SET work_mem = %L', 'mnt_tap;role', current_database(), '2MB') \gexec
SELECT throws_like(format('SELECT * FROM optischema._change_ddl(%s)', :c), 'work_mem = 64MB is outside the range OptiSchema proposes, 1MB to 32MB%',
                   'the allow-list is checked again when it runs');
UPDATE optischema.tunable_settings SET max_value = '1GB' WHERE name = 'work_mem';

-- A running job is cancelled by its sidecar: it asks at its heartbeat, and records it.
SELECT optischema._heartbeat('tap-worker', 'h', 1, (SELECT extversion FROM pg_extension WHERE extname = 'optischema'), '1 minute');
SELECT job_id AS j FROM optischema._changes WHERE id = :c \gset
SELECT is((SELECT id FROM optischema._claim_job('tap-worker', ARRAY['apply'], '1 minute')), :'j'::bigint, 'the apply job is claimed');
SELECT is((SELECT array_agg(x) FROM optischema._cancel_requests('tap-worker') x), NULL, 'no cancel asked yet');
SELECT lives_ok(format('SELECT optischema.cancel_job(%s)', :j), 'a running job can be cancelled');
SELECT is((SELECT status FROM optischema.jobs WHERE id = :j), 'running', 'it runs until its sidecar stops it');
SELECT is((SELECT array_agg(x) FROM optischema._cancel_requests('tap-worker') x), ARRAY[:'j'::bigint], 'its sidecar sees the request');
SELECT is((SELECT array_agg(x) FROM optischema._cancel_requests('other-worker') x), NULL, 'no other sidecar does');
SELECT is(optischema._job_cancelled(:j, 'other-worker'), false, 'only its own sidecar records it');
SELECT is(optischema._job_cancelled(:j, 'tap-worker'), true, 'its sidecar records it stopped');
SELECT is((SELECT row(j.status, c.status, r.status)::text FROM optischema.jobs j, optischema._changes c, optischema._recommendations r
           WHERE j.id = :j AND c.id = :c AND r.id = :role_rec), '(cancelled,cancelled,open)',
          'the job and its change are cancelled, the recommendation open again');
SELECT alike((SELECT error FROM optischema._changes WHERE id = :c), format('job %s was cancelled by %s', :j, current_user), 'who cancelled it is recorded');

-- An admin cannot have the sidecar change a setting it could not change itself.
CREATE ROLE mnt_tap_admin;
SELECT optischema.grant_usage('mnt_tap_admin', 'admin');
INSERT INTO optischema._recommendations (key, kind, source, title, action_spec)
VALUES ('t:system', 'config', 'advisor', 'system', '{"setting": "max_wal_size", "value": "2GB", "scope": "system"}');
SELECT id AS sys FROM optischema._recommendations WHERE key = 't:system' \gset
UPDATE optischema._recommendations SET status = 'open' WHERE id = :role_rec;
SET ROLE mnt_tap_admin;
SELECT throws_ok(format('SELECT optischema.apply(%s)', :sys), '42501',
                 'refusing to change the setting: role mnt_tap_admin may not ALTER SYSTEM SET max_wal_size itself', 'not a server setting');
SELECT throws_ok(format('SELECT optischema.apply(%s)', :role_rec), '42501',
                 'refusing to change the setting: role mnt_tap_admin may not set work_mem for role "mnt_tap;role" itself (that takes CREATEROLE, or being that role)',
                 'nor another role''s');
RESET ROLE;
GRANT ALTER SYSTEM ON PARAMETER max_wal_size TO mnt_tap_admin;
SET ROLE mnt_tap_admin;
SELECT lives_ok(format('SELECT optischema.apply(%s)', :sys), 'with ALTER SYSTEM on the parameter, it may');
RESET ROLE;
SELECT is((SELECT count(*) FROM optischema._changes WHERE recommendation_id IN (:sys, :role_rec) AND requested_by = 'mnt_tap_admin'), 1::bigint,
          'only the allowed change was recorded');

-- Finding helpers.
SELECT is(optischema._wraparound_urgency(100, 1000, 0.8), NULL, 'young: no finding');
SELECT is(optischema._wraparound_urgency(800, 1000, 0.8), 'moderate', 'past the warning fraction: moderate');
SELECT is(optischema._wraparound_urgency(1000, 1000, 0.8), 'high', 'past autovacuum_freeze_max_age: high');
SELECT is(optischema._wraparound_urgency(1600000000, 2000000000, 0.8), 'critical', 'past 1.5 billion: critical');
SELECT optischema.set_setting('server_memory_mb', '2048');
SELECT is((optischema._work_mem_budget(NULL)).max_kb,
          floor((2048 * 1024 - (SELECT setting::numeric * 8 FROM pg_settings WHERE name = 'shared_buffers'))
                / current_setting('hash_mem_multiplier')::numeric / current_setting('max_connections')::numeric),
          'the server''s work_mem budget: connections x work_mem x hash_mem_multiplier beside shared_buffers');
ALTER ROLE "mnt_tap;role" CONNECTION LIMIT 2;
SELECT cmp_ok((optischema._work_mem_budget(:r)).max_kb, '>', (optischema._work_mem_budget(NULL)).max_kb,
              'a role with fewer connections may get more');
SELECT is((optischema._work_mem_budget(NULL)).budget ->> 'server_memory_source', 'setting server_memory_mb', 'the budget says where its figure comes from');
SELECT is((SELECT count(*) FROM optischema.recommend() WHERE kind IN ('maintenance', 'config')), 0::bigint,
          'a database with nothing wrong gets no maintenance or configuration advice');
SELECT throws_ok('SELECT optischema._record_effect(-1, NULL)', '55000', 'change -1 is no succeeded apply of a maintenance or config recommendation',
                 'effect check of an unknown change');

SELECT * FROM finish();
ROLLBACK;
