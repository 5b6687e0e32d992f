-- Settings: one documented list of keys (setting_defs, shipped by the
-- extension) and the values a DBA changed (settings_set, dumped by pg_dump).
-- The view optischema.settings shows both; optischema.set_setting() writes,
-- validating key and value, so a typo is an error and not a silent no-op.

CREATE TABLE IF NOT EXISTS optischema.setting_defs (
    key         text PRIMARY KEY,
    type        text NOT NULL CHECK (type IN ('interval', 'integer', 'numeric', 'boolean', 'text', 'size')),
    default_value text NOT NULL,
    min_value   numeric,
    max_value   numeric,
    allowed     text[],
    description text NOT NULL
);

CREATE TABLE IF NOT EXISTS optischema.settings_set (
    key     text PRIMARY KEY REFERENCES optischema.setting_defs (key),
    value   text NOT NULL,
    set_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    set_by  name NOT NULL DEFAULT CURRENT_USER
);
SELECT pg_catalog.pg_extension_config_dump('optischema.settings_set', '');

INSERT INTO optischema.setting_defs (key, type, default_value, min_value, max_value, allowed, description) VALUES
('retention', 'interval', '7 days', NULL, NULL, NULL,
 'How long snapshot data is kept; optischema.purge() removes older rows.'),
('top_queries_refresh', 'interval', '1 minute', NULL, NULL, NULL,
 'top_queries() takes a snapshot first when the latest one is older than this (0 turns it off).'),
('snapshot_interval', 'interval', '5 minutes', NULL, NULL, NULL,
 'How often the sidecar takes a snapshot; health() calls snapshots older than twice this stale.'),
('recommend_interval', 'interval', '1 hour', NULL, NULL, NULL,
 'How often the sidecar refreshes recommendations.'),
('analysis_window', 'interval', '7 days', NULL, NULL, NULL,
 'Workload window recommend() analyses.')
ON CONFLICT (key) DO UPDATE SET (type, default_value, min_value, max_value, allowed, description)
    = (EXCLUDED.type, EXCLUDED.default_value, EXCLUDED.min_value, EXCLUDED.max_value, EXCLUDED.allowed, EXCLUDED.description);

-- The bytes a 'size' setting stands for: a size, or a share ('20%') of this
-- database as it is now.
CREATE OR REPLACE FUNCTION optischema._size_bytes(p_value text) RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN pg_catalog.btrim(p_value) LIKE '%\%'
                THEN pg_catalog.round(pg_catalog.rtrim(pg_catalog.btrim(p_value), '%')::numeric / 100
                                      * pg_catalog.pg_database_size(pg_catalog.current_database()))::bigint
                ELSE pg_catalog.pg_size_bytes(p_value) END
$$;

-- Raises a clear error unless value is valid for key; returns the value in its canonical text form.
CREATE OR REPLACE FUNCTION optischema._check_setting(p_key text, p_value text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d optischema.setting_defs;
    n numeric;
BEGIN
    SELECT * INTO d FROM optischema.setting_defs WHERE key = p_key;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown setting "%"', p_key
            USING ERRCODE = 'undefined_object',
                  HINT = 'Known settings: ' || (SELECT string_agg(key, ', ' ORDER BY key) FROM optischema.setting_defs) || '.';
    END IF;
    IF p_value IS NULL THEN
        RAISE EXCEPTION 'setting "%" cannot be NULL', p_key
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Use optischema.reset_setting(''' || p_key || ''') to restore the default.';
    END IF;
    BEGIN
        CASE d.type
        WHEN 'interval' THEN
            IF p_value::interval < interval '0' THEN RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value'; END IF;
            RETURN p_value::interval::text;
        WHEN 'boolean' THEN
            RETURN p_value::boolean::text;
        WHEN 'integer', 'numeric' THEN
            n := CASE d.type WHEN 'integer' THEN p_value::bigint ELSE p_value::numeric END;
            IF n < d.min_value OR n > d.max_value THEN RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value'; END IF;
            RETURN n::text;
        WHEN 'size' THEN
            IF optischema._size_bytes(p_value) < 0 THEN RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value'; END IF;
            RETURN pg_catalog.btrim(p_value);
        ELSE
            IF d.allowed IS NOT NULL AND NOT p_value = ANY (d.allowed) THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value';
            END IF;
            RETURN p_value;
        END CASE;
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION 'invalid value "%" for setting "%"', p_value, p_key
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = d.description,
                  HINT = 'Expected ' || CASE
                      WHEN d.allowed IS NOT NULL THEN 'one of ' || array_to_string(d.allowed, ', ')
                      WHEN d.type = 'interval' THEN 'a non-negative interval such as ''' || d.default_value || ''''
                      WHEN d.type = 'size' THEN 'a size such as ''2GB'' or ''500MB'', a share of the database such as ''20%'', or 0 for none'
                      WHEN d.min_value IS NOT NULL THEN format('%s %s to %s', CASE d.type WHEN 'integer' THEN 'an integer' ELSE 'a number' END, d.min_value, d.max_value)
                      ELSE 'a ' || d.type END || '.';
    END;
END
$$;

CREATE OR REPLACE VIEW optischema.settings AS
SELECT d.key, coalesce(s.value, d.default_value) AS value, d.default_value, d.type,
       d.description, s.set_at, s.set_by
FROM optischema.setting_defs d
LEFT JOIN optischema.settings_set s USING (key);

-- The effective value of a setting (errors on an unknown key). Definer's
-- rights: readers see settings through the view, not the tables behind it.
CREATE OR REPLACE FUNCTION optischema.setting(p_key text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN d.key IS NULL THEN optischema._check_setting(p_key, NULL)
                ELSE coalesce(s.value, d.default_value) END
    FROM (SELECT p_key AS key) k
    LEFT JOIN optischema.setting_defs d USING (key)
    LEFT JOIN optischema.settings_set s USING (key)
$$;

-- Changing a setting is an admin's action (grant_usage(role, 'admin')): the
-- public functions check that and say how to become one; the internal ones
-- write the row as the extension's owner, naming the caller.
CREATE OR REPLACE FUNCTION optischema._set_setting(p_key text, p_value text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v text := optischema._check_setting(p_key, p_value);
BEGIN
    INSERT INTO optischema.settings_set (key, value, set_by) VALUES (p_key, v, optischema._caller())
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, set_at = EXCLUDED.set_at, set_by = EXCLUDED.set_by;
    RETURN v;
END
$$;

CREATE OR REPLACE FUNCTION optischema._reset_setting(p_key text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._check_setting(p_key, (SELECT default_value FROM optischema.setting_defs WHERE key = p_key));
    DELETE FROM optischema.settings_set WHERE key = p_key;
    RETURN optischema.setting(p_key);
END
$$;

CREATE OR REPLACE FUNCTION optischema.set_setting(p_key text, p_value text) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._require_admin('change OptiSchema settings');
    RETURN optischema._set_setting(p_key, p_value);
END
$$;

CREATE OR REPLACE FUNCTION optischema.reset_setting(p_key text) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._require_admin('change OptiSchema settings');
    RETURN optischema._reset_setting(p_key);
END
$$;
