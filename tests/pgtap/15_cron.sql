BEGIN;
SELECT plan(11);

SELECT is((SELECT count(*)::int FROM optischema.cron_commands()), 4, 'one pg_cron statement per schedule');
SELECT is((SELECT c FROM optischema.cron_commands() c LIMIT 1),
    format('SELECT cron.schedule_in_database(%L, %L, %L, %L);', 'optischema-snapshot-' || current_database(), '*/5 * * * *',
           'SELECT optischema.snapshot(); SELECT optischema._verify_recent();', current_database()),
    'the snapshot every snapshot_interval, in this database');
SELECT is((SELECT c FROM optischema.cron_commands() c OFFSET 1 LIMIT 1),
    format('SELECT cron.schedule_in_database(%L, %L, %L, %L);', 'optischema-sample-' || current_database(), '* * * * *',
           'SELECT optischema.sample_running()', current_database()),
    'statements running now sampled every minute, between snapshots');
SELECT ok((SELECT bool_and(c LIKE 'SELECT cron.schedule_in_database(%') FROM optischema.cron_commands() c), 'all are cron.schedule_in_database calls');
SELECT optischema.set_setting('recommend_interval', '0');
SELECT is((SELECT count(*)::int FROM optischema.cron_commands()), 3, 'a schedule turned off is left out');
SELECT optischema.set_setting('snapshot_interval', '0');
SELECT is((SELECT count(*)::int FROM optischema.cron_commands()), 1, 'no snapshots: no samples between them either');
SELECT is(optischema.sample_running(), 0, 'sample_running(): nothing of this database runs longer than running_min_duration');

SELECT is(optischema._cron_schedule('30 seconds'), '* * * * *', 'under a minute: every minute (pg_cron 1.4 has no seconds)');
SELECT is(optischema._cron_schedule('7 minutes'), '*/6 * * * *', 'minutes round to a divisor of the hour');
SELECT is(optischema._cron_schedule('1 hour'), '0 * * * *', 'hourly');
SELECT is(optischema._cron_schedule('3 days'), '0 0 * * *', 'longer: daily');

SELECT * FROM finish();
ROLLBACK;
