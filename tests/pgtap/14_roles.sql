BEGIN;
SET client_min_messages = warning;
SELECT plan(46);

SELECT is((SELECT count(*)::int FROM pg_proc p
           WHERE p.pronamespace = 'optischema'::regnamespace
             AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))), 0,
          'PUBLIC may execute no OptiSchema routine');

CREATE ROLE optischema_tap_reader;
CREATE ROLE optischema_tap_admin;
CREATE ROLE optischema_tap_sidecar;
CREATE ROLE optischema_tap_nobody;
SELECT alike(optischema.grant_usage('optischema_tap_reader'), '%reader%', 'grant_usage makes a reader');
SELECT alike(optischema.grant_usage('optischema_tap_admin', 'admin'), '%admin%', 'an admin');
SELECT alike(optischema.grant_usage('optischema_tap_sidecar', 'sidecar'), '%sidecar%', 'and the sidecar''s role');
SELECT throws_ok($$SELECT optischema.grant_usage('optischema_tap_nosuch')$$, '42704', NULL, 'an unknown role is a clear error');
SELECT throws_ok($$SELECT optischema.grant_usage(NULL)$$, '42704', NULL, 'a NULL role is a clear error');
SELECT throws_ok($$SELECT optischema.grant_usage('optischema_tap_nobody', NULL)$$, '22023',
    'level must be ''reader'', ''admin'' or ''sidecar'', got NULL', 'a NULL level is a clear error');
SELECT throws_ok($$SELECT optischema.grant_usage('optischema_tap_nobody', 'root')$$, '22023',
    'level must be ''reader'', ''admin'' or ''sidecar'', got ''root''', 'an unknown level is a clear error');
SELECT ok(NOT has_schema_privilege('optischema_tap_nobody', 'optischema', 'USAGE'), 'and grants nothing');

-- Internal functions: the owner's and the sidecar's, apart from the entry points an admin's public functions need.
SELECT is(ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p
                WHERE p.pronamespace = 'optischema'::regnamespace AND p.proname LIKE '\_%'
                  AND has_function_privilege('optischema_tap_admin', p.oid, 'EXECUTE')
                  AND p.oid <> ALL (SELECT to_regprocedure(regexp_replace(x, '^(FUNCTION|PROCEDURE) ', ''))
                                    FROM unnest(optischema._admin_routines() || optischema._reader_routines()) x)
                ORDER BY 1), '{}'::text[],
          'an admin may execute no internal routine besides the listed entry points');
SELECT is(ARRAY(SELECT x FROM unnest(optischema._admin_routines() || optischema._reader_routines()) x
                WHERE to_regprocedure(regexp_replace(x, '^(FUNCTION|PROCEDURE) ', '')) IS NULL), '{}'::text[],
          'every listed routine exists');
SELECT ok(NOT has_function_privilege('optischema_tap_admin', 'optischema._llm_recommend(text, text, text, text, text, text, text, bigint[], jsonb, jsonb, bigint, double precision, text, jsonb, jsonb)', 'EXECUTE')
          AND NOT has_function_privilege('optischema_tap_admin', 'optischema._finish_change(bigint, text, text, jsonb, double precision)', 'EXECUTE')
          AND NOT has_function_privilege('optischema_tap_admin', 'optischema._claim_job(text, text[], interval)', 'EXECUTE')
          AND NOT has_function_privilege('optischema_tap_admin', 'optischema._change_ddl(bigint)', 'EXECUTE'),
          'in particular not _llm_recommend, _finish_change, _claim_job or _change_ddl');
SELECT ok((SELECT bool_and(has_function_privilege('optischema_tap_sidecar', p.oid, 'EXECUTE'))
           FROM pg_proc p WHERE p.pronamespace = 'optischema'::regnamespace), 'the sidecar''s role may execute every routine');
SELECT ok((SELECT bool_and(has_function_privilege('optischema_tap_admin', p.oid, 'EXECUTE'))
           FROM pg_proc p WHERE p.pronamespace = 'optischema'::regnamespace AND p.proname NOT LIKE '\_%'),
          'an admin may execute every public routine');
-- Every internal routine a public SECURITY INVOKER routine calls (directly, or through
-- another such routine) runs with its caller's rights: an admin must be able to execute it.
SELECT is(ARRAY(
    WITH RECURSIVE calls AS (
        SELECT p.oid FROM pg_proc p
        WHERE p.pronamespace = 'optischema'::regnamespace AND p.proname NOT LIKE '\_%' AND NOT p.prosecdef
          AND p.proname NOT IN ('grant_usage', 'revoke_usage')
        UNION
        SELECT q.oid FROM calls c JOIN pg_proc p ON p.oid = c.oid
        CROSS JOIN LATERAL regexp_matches(p.prosrc, 'optischema\.(_[a-z0-9_]+)\s*\(', 'g') m
        JOIN pg_proc q ON q.pronamespace = 'optischema'::regnamespace AND q.proname = m[1]
        WHERE NOT p.prosecdef)
    SELECT c.oid::regprocedure::text FROM calls c
    WHERE NOT has_function_privilege('optischema_tap_admin', c.oid, 'EXECUTE') ORDER BY 1), '{}'::text[],
    'an admin may execute what the public functions it calls call with its rights');

CREATE TABLE public.t (a int);
GRANT SELECT ON public.t TO optischema_tap_admin;
INSERT INTO optischema._recommendations (key, kind, source, title, table_name, index_name, index_spec) VALUES
('tap:role', 'create_index', 'advisor', 'Index t(a)', 'public.t', 't_a_idx',
 jsonb_build_object('table', 'public.t'::regclass::oid::bigint, 'name', 't_a_idx', 'keys', '[{"column": "a"}]'::jsonb));
SELECT id AS r FROM optischema._recommendations WHERE key = 'tap:role' \gset

SET ROLE optischema_tap_reader;
SELECT is((SELECT count(*)::int FROM optischema.recommendations), 1, 'a reader sees recommendations');
SELECT lives_ok($$SELECT * FROM optischema.changes$$, 'and the change log');
SELECT lives_ok($$SELECT * FROM optischema.health()$$, 'and calls health()');
SELECT is(optischema.setting('retention'), '7 days', 'and reads a setting');
SELECT throws_ok($$SELECT optischema.setting('nope')$$, '42704', 'unknown setting "nope"', 'an unknown one with a clear error');
SELECT throws_ok(format('SELECT optischema.apply(%s)', :r), '42501', 'role optischema_tap_reader may not apply OptiSchema recommendations',
    'a reader may not apply, and is told why');
SELECT throws_ok(format('SELECT optischema.dismiss(%s, %L)', :r, 'x'), '42501', NULL, 'nor dismiss');
SELECT throws_ok(format('SELECT optischema.rollback(%s)', :r), '42501', NULL, 'nor roll back');
SELECT throws_ok($$SELECT optischema.set_setting('retention', '1 day')$$, '42501',
    'role optischema_tap_reader may not change OptiSchema settings', 'nor change a setting, and is told why');
SELECT throws_ok($$SELECT optischema.reset_setting('retention')$$, '42501', NULL, 'nor reset one');
SELECT throws_ok($$SELECT optischema.enqueue('noop')$$, '42501', NULL, 'nor queue jobs');
SELECT throws_ok($$SELECT optischema.sample_running()$$, '42501', NULL, 'nor sample running statements');
SELECT throws_ok(format('SELECT optischema._request_change(%s, %L, %L)', :r, 'apply', 'sidecar'), '42501', NULL,
    'nor call the internals');
RESET ROLE;
SELECT is((SELECT status FROM optischema._recommendations WHERE id = :r), 'open', 'the reader changed nothing');
SELECT is((SELECT count(*)::int FROM optischema.settings_set), 0, 'not even a setting');

SET ROLE optischema_tap_admin;
SELECT is(optischema.set_setting('retention', '14 days'), '14 days', 'an admin changes a setting');
SELECT is((SELECT set_by FROM optischema.settings WHERE key = 'retention'), 'optischema_tap_admin', 'the settings name the admin');
SELECT throws_ok($$SELECT optischema.set_setting('retension', '1 day')$$, '42704', 'unknown setting "retension"',
    'an admin''s typo is a clear error');
SELECT is(optischema.reset_setting('retention'), '7 days', 'an admin resets a setting');
SELECT throws_ok($$SELECT optischema._finish_change(1, 'succeeded')$$, '42501', NULL, 'an admin may not record an outcome');
SELECT throws_ok($$SELECT * FROM optischema._claim_job('w', NULL, '1 minute')$$, '42501', NULL, 'nor claim a job');
SELECT throws_ok($$SELECT * FROM optischema._llm_recommend('k', 'create_index', 't', NULL, NULL, NULL, NULL, '{}', '{}', '{}', NULL, 0, NULL, '{}', NULL)$$,
    '42501', NULL, 'nor write a recommendation');
SELECT throws_ok($$INSERT INTO optischema._recommendations (key, kind, source, title) VALUES ('k', 'create_index', 'llm', 't')$$,
    '42501', NULL, 'not even into the table');
SELECT lives_ok(format('SELECT optischema.apply(%s)', :r), 'an admin applies');
SELECT is((SELECT requested_by FROM optischema.changes), 'optischema_tap_admin', 'and the change log names the admin');
RESET ROLE;

-- An admin builds only indexes over columns it may read: an error of the build could show it their values.
REVOKE SELECT ON public.t FROM optischema_tap_admin;
UPDATE optischema._recommendations SET status = 'open' WHERE id = :r;
SET ROLE optischema_tap_admin;
SELECT throws_ok(format('SELECT optischema.apply(%s)', :r), '42501',
    'refusing to build the index: role optischema_tap_admin may not read column a of public.t, which the index reads',
    'an admin may not index columns it cannot read');
RESET ROLE;

SET ROLE optischema_tap_sidecar;
SELECT lives_ok($$SELECT optischema._sign_off('tap')$$, 'the sidecar''s role runs the internal functions');
RESET ROLE;

SELECT alike(optischema.grant_usage('optischema_tap_sidecar', 'reader'), '%reader%', 'a level can be lowered');
SELECT ok(NOT has_function_privilege('optischema_tap_sidecar', 'optischema._claim_job(text, text[], interval)', 'EXECUTE')
          AND NOT has_function_privilege('optischema_tap_sidecar', 'optischema.enqueue(text, jsonb)', 'EXECUTE'),
          'and what the higher one gave is taken back');
SELECT alike(optischema.revoke_usage('optischema_tap_reader'), '%no OptiSchema privileges%', 'revoke_usage');
SET ROLE optischema_tap_reader;
SELECT throws_ok($$SELECT * FROM optischema.recommendations$$, '42501', NULL, 'a revoked role sees nothing');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
