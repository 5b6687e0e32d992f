BEGIN;
SET client_min_messages = warning;
SELECT plan(16);

-- Bad input: clear errors, and nothing taken.
SELECT throws_ok($$SELECT optischema.report_data(NULL)$$, '22023', NULL, 'report_data: NULL since is a clear error');
SELECT throws_ok($$SELECT optischema.report('-1 hour')$$, '22023', NULL, 'report: a negative window is a clear error');
SELECT throws_ok($$SELECT optischema.render_report(NULL)$$, '22023',
    'plpy.Error: report data must be a JSON object, as optischema.report_data() returns', 'render_report: NULL is a clear error');
SELECT throws_ok($$SELECT optischema.render_report('[1, 2]')$$, '22023',
    'plpy.Error: report data must be a JSON object, as optischema.report_data() returns', 'so is a JSON array');
SELECT throws_ok($$SELECT optischema.render_report('{"format": 2}')$$, '22023',
    'plpy.Error: report data is of format 2; this renderer draws format 1', 'and data of another format');
SELECT throws_ok($$SELECT optischema.render_report('{"format": 1, "statements": "x"}')$$, '22023',
    'plpy.Error: report data: ''statements'' must be a list of objects', 'and a section of the wrong type');
SELECT is((SELECT count(*)::int FROM optischema.snapshots), 0, 'bad input took no snapshot');

CREATE TABLE rep_r (a int);
INSERT INTO rep_r SELECT generate_series(1, 100);
SELECT optischema.snapshot();
-- The window starts after it: the statements other tests ran before are not in it.
UPDATE optischema.snapshots SET taken_at = now() - interval '2 hours';
SELECT count(*) AS "<b>rep</b>" FROM rep_r;
SELECT optischema.snapshot();

SELECT is((SELECT optischema.report_data('1 hour') -> 'format'), '1'::jsonb, 'report_data() says its format');
SELECT ok((SELECT d ?& ARRAY['statements', 'recommendations', 'changes', 'tables', 'indexes', 'capture', 'health', 'texts']
           FROM optischema.report_data('1 hour') d), 'and has every part');
SELECT is((SELECT optischema.report_data('1 hour') ->> 'role'), current_user::text, 'for the role that asked');
SELECT ok((SELECT bool_or(s ->> 'query' = 'SELECT count(*) AS "<b>rep</b>" FROM rep_r')
           FROM jsonb_array_elements(optischema.report_data('1 hour') -> 'statements') s),
          'the statements of the window are in it');
SELECT ok((SELECT r LIKE '<!DOCTYPE html>%' AND r LIKE '%<section id="statements">%' AND r LIKE '%<section id="health">%'
                  AND r LIKE '%&lt;b&gt;rep&lt;/b&gt;%' AND r NOT LIKE '%<b>rep</b>%'
           FROM optischema.report('1 hour') r), 'report() is the page, its texts escaped');
SELECT is(optischema.render_report(optischema.report_data('1 hour')) LIKE '<!DOCTYPE html>%', true,
          'render_report() draws what report_data() returns');

CREATE ROLE rep_tap_reader;
CREATE ROLE rep_tap_nobody;
SELECT optischema.grant_usage('rep_tap_reader');
SET ROLE rep_tap_reader;
SELECT ok((SELECT optischema.report('1 hour') LIKE '<!DOCTYPE html>%'), 'a reader gets the report');
SELECT ok((SELECT optischema.report('1 hour') NOT LIKE '%&lt;b&gt;rep&lt;/b&gt;%'),
          'without the texts of statements it may not read in pg_stat_statements');
RESET ROLE;
SET ROLE rep_tap_nobody;
SELECT throws_ok($$SELECT optischema.report()$$, '42501', NULL, 'a role without OptiSchema privileges does not');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
