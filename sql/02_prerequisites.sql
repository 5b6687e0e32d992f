-- pg_stat_statements can be created in any schema and works only when it is
-- preloaded. Every reader goes through _pgss_schema(), which fails with the
-- exact fix instead of pg_stat_statements' own less helpful message.

-- shared_preload_libraries, or NULL where the role may not read it (it needs
-- pg_read_all_settings, which a managed database's owner often lacks).
CREATE OR REPLACE FUNCTION optischema._preload_libraries() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN pg_catalog.pg_has_role('pg_read_all_settings', 'USAGE')
                THEN pg_catalog.current_setting('shared_preload_libraries') END
$$;

-- Without shared_preload_libraries to read: a loaded library has defined its
-- settings (a setting of a library not loaded is a placeholder of context
-- user); pg_cron, whose settings only a superuser sees, runs its launcher.
CREATE OR REPLACE FUNCTION optischema._preloaded(p_library text) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(p_library = ANY (string_to_array(replace(optischema._preload_libraries(), ' ', ''), ',')),
                    CASE p_library
                        WHEN 'pg_cron' THEN EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a WHERE a.backend_type = 'pg_cron launcher')
                        ELSE EXISTS (SELECT 1 FROM pg_catalog.pg_settings s
                                     WHERE s.context <> 'user' AND s.name LIKE replace(p_library, '_', '\_') || '.%') END)
$$;

CREATE OR REPLACE FUNCTION optischema._pgss_schema() RETURNS name
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s name;
BEGIN
    IF NOT optischema._preloaded('pg_stat_statements') THEN
        RAISE EXCEPTION 'pg_stat_statements is not loaded: OptiSchema cannot see the workload'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add to postgresql.conf: shared_preload_libraries = ''pg_stat_statements'' (keep any libraries already listed), then restart PostgreSQL.';
    END IF;
    SELECT n.nspname INTO s FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_stat_statements';
    IF s IS NULL THEN
        RAISE EXCEPTION 'extension pg_stat_statements is not installed in database %', current_database()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run: CREATE EXTENSION pg_stat_statements;';
    END IF;
    RETURN s;
END
$$;

-- Where HypoPG lives, or a clear error; recommend() needs it.
CREATE OR REPLACE FUNCTION optischema._hypopg_schema() RETURNS name
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s name;
BEGIN
    SELECT n.nspname INTO s FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'hypopg';
    IF s IS NULL THEN
        RAISE EXCEPTION 'extension hypopg is not installed in database %: recommend() needs it for what-if plans', current_database()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run: CREATE EXTENSION hypopg;  (Debian/Ubuntu package: postgresql-15-hypopg)';
    END IF;
    RETURN s;
END
$$;

-- Serializes work that must not overlap across sessions and sidecars (a
-- database lock: no process-local state), released at transaction end.
CREATE OR REPLACE FUNCTION optischema._xact_lock(p_name text) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_advisory_xact_lock(hashtextextended('optischema.' || p_name, 0))
$$;

-- The one check of every "how many rows" argument: a clear error, with an example.
CREATE OR REPLACE FUNCTION optischema._check_count(p_n integer, p_min integer, p_what text, p_example text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_n IS NULL OR p_n < p_min THEN
        RAISE EXCEPTION 'n must be % number of %, got %',
                        CASE WHEN p_min > 0 THEN 'a positive' ELSE 'zero or a positive' END, p_what, coalesce(p_n::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example: ' || p_example || '.';
    END IF;
END
$$;
