-- Sidecars announce themselves here; health() reads the heartbeat.
CREATE TABLE optischema.sidecars (
    worker_id   text PRIMARY KEY,
    host        text NOT NULL,
    pid         integer NOT NULL,
    version     text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_seen   timestamptz NOT NULL DEFAULT pg_catalog.now()
);

INSERT INTO optischema.setting_defs (key, type, default_value, min_value, max_value, allowed, description) VALUES
('sidecar_timeout', 'interval', '2 minutes', NULL, NULL, NULL,
 'A sidecar not seen for this long is considered gone; its jobs are taken over when their lease expires.');
