-- Sidecars announce themselves here; health() reads the heartbeat.
CREATE TABLE IF NOT EXISTS optischema.sidecars (
    worker_id   text PRIMARY KEY,
    host        text NOT NULL,
    pid         integer NOT NULL,
    version     text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_seen   timestamptz NOT NULL DEFAULT pg_catalog.now()
);

INSERT INTO optischema.setting_defs (key, type, default_value, min_value, max_value, allowed, description) VALUES
('sidecar_timeout', 'interval', '2 minutes', NULL, NULL, NULL,
 'A sidecar not seen for this long is considered gone; its jobs are taken over when their lease expires.')
ON CONFLICT (key) DO UPDATE SET (type, default_value, min_value, max_value, allowed, description)
    = (EXCLUDED.type, EXCLUDED.default_value, EXCLUDED.min_value, EXCLUDED.max_value, EXCLUDED.allowed, EXCLUDED.description);

-- A sidecar runs the jobs of the schema of its own release (major.minor):
-- sidecar 0.2.x serves this SQL, 0.2.0. Any other would run one version's
-- code against another's tables and functions.
CREATE OR REPLACE FUNCTION optischema._sidecar_serves(p_version text) RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(substring(p_version FROM '^[0-9]+\.[0-9]+\.') = substring('@EXTVERSION@' FROM '^[0-9]+\.[0-9]+\.'), false)
$$;

-- What a sidecar of another version must do: update the database's SQL, or the sidecar.
CREATE OR REPLACE FUNCTION optischema._sidecar_fix(p_version text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN string_to_array(substring(p_version FROM '^[0-9]+(?:\.[0-9]+)*'), '.')::int[]
                     > string_to_array('@EXTVERSION@', '.')::int[]
                THEN 'Install OptiSchema ' || p_version || ' (make install), then in this database: ALTER EXTENSION optischema UPDATE;'
                ELSE 'Upgrade the sidecar to OptiSchema @EXTVERSION@ (pip install optischema==@EXTVERSION@, or the package of this release) and restart it.' END
$$;
