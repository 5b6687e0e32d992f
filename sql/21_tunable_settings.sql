-- The PostgreSQL settings OptiSchema may propose, and the values it may
-- propose for each: an allow-list, so that a model's answer (or, later, advice
-- from the workload's evidence) can never turn off autovacuum, fsync or a
-- planner method for a whole database, or size WAL or memory past what a
-- server survives. A setting not listed is never proposed. One table, read by
-- the sidecar's LLM check and by anything in the database that proposes or
-- applies settings, so that there is one list.
--
-- Bounds are written as in postgresql.conf ('64MB', '5min'); numbers and
-- units are read against pg_settings.unit of the running server. Whether a
-- setting needs a restart is not listed: pg_settings.context = 'postmaster'
-- says so, and such a setting is only ever advice.
CREATE TABLE IF NOT EXISTS optischema.tunable_settings (
    name      text PRIMARY KEY,         -- as in pg_settings
    min_value text,                     -- numeric settings: the range that may be proposed
    max_value text,
    allowed   text[],                   -- boolean and enum settings: the values that may be proposed
    why       text NOT NULL,            -- what the bounds protect: shown when a proposal is rejected
    CHECK ((min_value IS NULL) = (max_value IS NULL)),
    CHECK ((min_value IS NULL) <> (allowed IS NULL))
);

WITH shipped (name, min_value, max_value, allowed, why) AS (
    VALUES
    ('work_mem', '1MB', '1GB', NULL::text[],
     'memory for each sort or hash step of each query of each connection: past 1GB a few concurrent queries exhaust the server''s memory'),
    ('maintenance_work_mem', '64MB', '4GB', NULL,
     'memory of each VACUUM, CREATE INDEX and autovacuum worker: past 4GB concurrent maintenance exhausts memory'),
    ('effective_cache_size', '128MB', '1TB', NULL,
     'a planner estimate of the cache (nothing is allocated); the bounds keep it plausible'),
    ('random_page_cost', '1', '10', NULL,
     'below seq_page_cost (1) or far above it, the planner''s choice between index and sequential scans stops making sense'),
    ('effective_io_concurrency', '1', '512', NULL,
     'concurrent prefetch requests of a bitmap heap scan'),
    ('default_statistics_target', '50', '1000', NULL,
     'higher makes ANALYZE and planning slower; lower makes estimates worse'),
    ('jit', NULL, NULL, '{on,off}',
     'JIT compilation; turning it off is a common fix for short queries'),
    ('max_parallel_workers_per_gather', '0', '8', NULL,
     'workers per parallel query: more multiplies the memory and CPU one query takes'),
    ('max_wal_size', '1GB', '64GB', NULL,
     'WAL kept between checkpoints: it must fit the WAL disk, and past 64GB crash recovery takes long'),
    ('min_wal_size', '80MB', '16GB', NULL,
     'WAL segments recycled rather than removed: disk space held back'),
    ('checkpoint_timeout', '5min', '1h', NULL,
     'past 1 hour crash recovery takes long; below 5 minutes full-page writes multiply'),
    ('checkpoint_completion_target', '0.5', '0.9', NULL,
     'how much of the checkpoint interval a checkpoint''s writes are spread over'),
    ('autovacuum', NULL, NULL, '{on}',
     'autovacuum is never turned off: dead rows pile up, statistics go stale and transaction ID wraparound stops the database'),
    ('autovacuum_vacuum_scale_factor', '0.001', '0.2', NULL,
     'never vacuums less often than the default (0.2)'),
    ('autovacuum_vacuum_insert_scale_factor', '0.001', '0.2', NULL,
     'never vacuums less often than the default (0.2)'),
    ('autovacuum_analyze_scale_factor', '0.001', '0.1', NULL,
     'never analyses less often than the default (0.1)'),
    ('autovacuum_vacuum_threshold', '25', '5000', NULL,
     'dead rows before a table is vacuumed: within a sane range of the default (50)'),
    ('autovacuum_vacuum_insert_threshold', '100', '100000', NULL,
     'inserted rows before a table is vacuumed: within a sane range of the default (1000)'),
    ('autovacuum_analyze_threshold', '25', '5000', NULL,
     'changed rows before a table is analysed: within a sane range of the default (50)'),
    ('autovacuum_vacuum_cost_limit', '200', '10000', NULL,
     'never throttles autovacuum more than the default (vacuum_cost_limit, 200)'),
    ('autovacuum_vacuum_cost_delay', '0', '2ms', NULL,
     'never throttles autovacuum more than the default (2ms)'),
    ('autovacuum_naptime', '15s', '1min', NULL,
     'never looks for work less often than the default (1min)'),
    ('autovacuum_max_workers', '3', '16', NULL,
     'needs a restart: advice only'),
    ('shared_buffers', '128MB', '256GB', NULL,
     'needs a restart: advice only; past a quarter or so of the memory it competes with the OS cache'),
    ('fsync', NULL, NULL, '{on}',
     'never turned off: a crash can corrupt the whole cluster'),
    ('full_page_writes', NULL, NULL, '{on}',
     'never turned off: a crash can leave torn pages that cannot be recovered'),
    ('synchronous_commit', NULL, NULL, '{on,remote_apply,remote_write,local}',
     'never turned off: a crash loses transactions that were reported committed')
    UNION ALL
    -- planner method switches only ever back on: off, for a whole database, slows every
    -- statement that needs the method (it is a tool for diagnosing one query, with SET LOCAL)
    SELECT s.name, NULL, NULL, '{on}',
           'a planner method is never turned off for a whole database: every statement that needs it gets slower (turning it off is for diagnosing one query, with SET LOCAL)'
    FROM pg_catalog.pg_settings s WHERE s.name LIKE 'enable\_%' AND s.vartype = 'bool'
), gone AS (
    DELETE FROM optischema.tunable_settings t WHERE t.name NOT IN (SELECT name FROM shipped)
)
INSERT INTO optischema.tunable_settings (name, min_value, max_value, allowed, why)
SELECT name, min_value, max_value, allowed, why FROM shipped
ON CONFLICT (name) DO UPDATE SET (min_value, max_value, allowed, why)
    = (EXCLUDED.min_value, EXCLUDED.max_value, EXCLUDED.allowed, EXCLUDED.why);

-- The allow-list's row of setting p_name; invalid_parameter_value for a
-- setting not listed. The one check of sql/12_actions.sql's setting functions.
CREATE OR REPLACE FUNCTION optischema._tunable(p_name text) RETURNS optischema.tunable_settings
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t optischema.tunable_settings;
BEGIN
    SELECT * INTO t FROM optischema.tunable_settings x WHERE x.name = p_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION '% is not a setting OptiSchema proposes (see optischema.tunable_settings)', coalesce(p_name, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN t;
END
$$;
