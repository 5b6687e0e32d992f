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
