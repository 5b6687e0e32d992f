BEGIN;
SELECT plan(22);

SELECT is(optischema.setting('retention'), '7 days', 'retention defaults to 7 days');
SELECT is(optischema.set_setting('retention', '14 days'), '14 days', 'set_setting returns the canonical value');
SELECT is((SELECT value FROM optischema.settings WHERE key = 'retention'), '14 days', 'the settings view shows the new value');
SELECT is((SELECT set_by FROM optischema.settings WHERE key = 'retention'), current_user, 'who set it is recorded');

SELECT throws_ok($$SELECT optischema.set_setting('retension', '1 day')$$, '42704',
    'unknown setting "retension"', 'an unknown key is a clear error');
SELECT throws_ok($$SELECT optischema.set_setting('retention', 'banana')$$, '22023',
    'invalid value "banana" for setting "retention"', 'a malformed value is a clear error');
SELECT throws_ok($$SELECT optischema.set_setting('retention', '-1 day')$$, '22023',
    'invalid value "-1 day" for setting "retention"', 'a negative interval is rejected');
SELECT throws_ok($$SELECT optischema.set_setting('retention', NULL)$$, '22004',
    'setting "retention" cannot be NULL', 'NULL is rejected');
SELECT is(optischema.setting('retention'), '14 days', 'failed writes changed nothing');
SELECT throws_ok($$SELECT optischema.setting('nope')$$, '42704', 'unknown setting "nope"', 'reading an unknown key is an error');

SELECT is(optischema.reset_setting('retention'), '7 days', 'reset_setting restores the default');
SELECT is((SELECT count(*)::int FROM optischema.settings_set WHERE key = 'retention'), 0, 'and forgets the override');
SELECT throws_ok($$SELECT optischema.reset_setting('nope')$$, '42704', 'unknown setting "nope"', 'resetting an unknown key is an error');

SELECT ok((SELECT bool_and(description <> '') FROM optischema.settings), 'every setting is documented');

-- A size setting: a size, a share of the database, or 0 for none; the engine gets bytes.
SELECT is((optischema._engine_settings() ->> 'index_budget')::bigint, 0::bigint, 'index_budget: none by default');
SELECT is(optischema.set_setting('index_budget', ' 2GB '), '2GB', 'a size is kept as written');
SELECT is((optischema._engine_settings() ->> 'index_budget')::bigint, 2147483648::bigint, 'and reaches the engine in bytes');
SELECT is(optischema.set_setting('index_budget', '25%'), '25%', 'a share of the database');
SELECT is((optischema._engine_settings() ->> 'index_budget')::bigint,
          round(pg_database_size(current_database()) / 4.0)::bigint, 'is a quarter of the database''s size in bytes');
SELECT throws_ok($$SELECT optischema.set_setting('index_budget', 'two gigs')$$, '22023',
    'invalid value "two gigs" for setting "index_budget"', 'a malformed size is a clear error');
SELECT throws_ok($$SELECT optischema.set_setting('index_budget', '-5%')$$, '22023',
    'invalid value "-5%" for setting "index_budget"', 'a negative share is rejected');
SELECT is(optischema.setting('index_budget'), '25%', 'failed writes changed nothing');

SELECT * FROM finish();
ROLLBACK;
