-- OptiSchema 0.1.0 -> 0.2.0: the steps that re-running sql/ cannot do. The
-- build puts every file of sql/ at the @SOURCES@ line (scripts/build-sql.sh);
-- tests/python/test_upgrade.py checks that the result equals a fresh install.
--
-- Before the sources: what CREATE OR REPLACE and IF NOT EXISTS cannot change
-- (new columns of existing tables, changed constraints, functions whose
-- signature or result changed, views whose columns changed).

-- @SOURCES@

-- After the sources: data that needs the new functions.
