-- refresh() and recommend() with the extension: the engine is here, nothing is
-- queued for a sidecar. (The plain install, where the sidecar refreshes, is
-- tested in tests/python/test_managed.py.)
BEGIN;
SELECT plan(7);

SELECT is(optischema._plain_install(), false, 'the extension is not a plain install');
SELECT is(optischema._refreshed_by_sidecar(), false, 'so recommend() analyses in this backend');

SAVEPOINT no_hypopg;
DROP EXTENSION hypopg;
SELECT throws_ok($$CALL optischema.refresh()$$, '55000',
    'extension hypopg is not installed in database ' || current_database() || ': recommend() needs it for what-if plans',
    'without HypoPG refresh() says what to install');
ROLLBACK TO SAVEPOINT no_hypopg;

CREATE TABLE ref_t (id int PRIMARY KEY, k int NOT NULL);
INSERT INTO ref_t SELECT g, g % 100 FROM generate_series(1, 20000) g;
ANALYZE ref_t;
SELECT count(*) AS n FROM ref_t WHERE k = 7 \gset

SELECT lives_ok($$CALL optischema.refresh()$$, 'refresh() runs the analysis in this session');
SELECT is((SELECT count(*)::int FROM optischema.analyses), 1, 'and records it');
SELECT is((SELECT count(*)::int FROM optischema.jobs WHERE kind = 'recommend'), 0, 'queueing nothing');
SELECT throws_like($$SELECT optischema._take_result('advice')$$, '%no advice was computed in this transaction',
    'what it computed was recorded once, and cannot be recorded again');

SELECT * FROM finish();
ROLLBACK;
