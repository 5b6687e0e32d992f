BEGIN;
SET client_min_messages = warning;
SELECT plan(19);

SELECT is((SELECT count(*)::int FROM pg_proc p
           WHERE p.pronamespace = 'optischema'::regnamespace
             AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))), 0,
          'PUBLIC may execute no OptiSchema routine');

CREATE ROLE optischema_tap_reader;
CREATE ROLE optischema_tap_admin;
CREATE ROLE optischema_tap_nobody;
SELECT alike(optischema.grant_usage('optischema_tap_reader'), '%reader%', 'grant_usage makes a reader');
SELECT alike(optischema.grant_usage('optischema_tap_admin', admin => true), '%admin%', 'and an admin');
SELECT throws_ok($$SELECT optischema.grant_usage('optischema_tap_nosuch')$$, '42704', NULL, 'an unknown role is a clear error');
SELECT throws_ok($$SELECT optischema.grant_usage(NULL)$$, '42704', NULL, 'a NULL role is a clear error');
SELECT throws_ok($$SELECT optischema.grant_usage('optischema_tap_nobody', NULL)$$, '22004', NULL, 'admin NULL is a clear error');

CREATE TABLE public.t (a int);
INSERT INTO optischema._recommendations (key, kind, source, title, ddl, rollback_ddl, table_name, index_name) VALUES
('tap:role', 'create_index', 'advisor', 'Index t(a)', 'CREATE INDEX CONCURRENTLY t_a_idx ON public.t USING btree (a)',
 'DROP INDEX CONCURRENTLY IF EXISTS public.t_a_idx', 'public.t', 't_a_idx');
SELECT id AS r FROM optischema._recommendations WHERE key = 'tap:role' \gset

SET ROLE optischema_tap_reader;
SELECT is((SELECT count(*)::int FROM optischema.recommendations), 1, 'a reader sees recommendations');
SELECT lives_ok($$SELECT * FROM optischema.changes$$, 'and the change log');
SELECT lives_ok($$SELECT * FROM optischema.health()$$, 'and calls health()');
SELECT throws_ok(format('SELECT optischema.apply(%s)', :r), '42501', 'role optischema_tap_reader may not apply OptiSchema recommendations',
    'a reader may not apply, and is told why');
SELECT throws_ok(format('SELECT optischema.dismiss(%s, %L)', :r, 'x'), '42501', NULL, 'nor dismiss');
SELECT throws_ok(format('SELECT optischema.rollback(%s)', :r), '42501', NULL, 'nor roll back');
SELECT throws_ok($$SELECT optischema.enqueue('noop')$$, '42501', NULL, 'nor queue jobs');
SELECT throws_ok(format('SELECT optischema._request_change(%s, %L, %L)', :r, 'apply', 'sidecar'), '42501', NULL,
    'nor call the internals');
RESET ROLE;
SELECT is((SELECT status FROM optischema._recommendations WHERE id = :r), 'open', 'the reader changed nothing');

SET ROLE optischema_tap_admin;
SELECT lives_ok(format('SELECT optischema.apply(%s)', :r), 'an admin applies');
SELECT is((SELECT requested_by FROM optischema.changes), 'optischema_tap_admin', 'and the change log names the admin');
RESET ROLE;

SELECT alike(optischema.revoke_usage('optischema_tap_reader'), '%no OptiSchema privileges%', 'revoke_usage');
SET ROLE optischema_tap_reader;
SELECT throws_ok($$SELECT * FROM optischema.recommendations$$, '42501', NULL, 'a revoked role sees nothing');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
