-- Roles. The install script creates none; a superuser gives existing roles
-- one of two levels:
--   reader: sees recommendations, changes, settings, jobs and sidecars, and
--           calls top_queries() and health() (which take a snapshot when the
--           data is stale, as their definer).
--   admin:  everything, including apply(), rollback(), dismiss(), verify(),
--           recommend() and enqueue(). The sidecar's login role is an admin.
-- This file must stay last: it revokes EXECUTE from PUBLIC on every routine
-- the files before it created.

-- What a reader may call. The action wrappers are included so that a reader
-- who tries one is told how to become an admin instead of a bare "permission denied".
CREATE OR REPLACE FUNCTION optischema._reader_routines() RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY['FUNCTION optischema.top_queries(interval, integer)',
                 'FUNCTION optischema.health()',
                 'FUNCTION optischema.setting(text)',
                 'FUNCTION optischema._require_admin(text)',
                 'FUNCTION optischema.apply(bigint, text)',
                 'FUNCTION optischema.rollback(bigint, text)',
                 'FUNCTION optischema.dismiss(bigint, text)',
                 'FUNCTION optischema.applied(bigint)',
                 'FUNCTION optischema.verify(bigint)',
                 'PROCEDURE optischema.wait(bigint, interval, text)']
$$;

CREATE OR REPLACE FUNCTION optischema._reader_relations() RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY['optischema.recommendations', 'optischema.changes', 'optischema.settings',
                 'optischema.jobs', 'optischema.sidecars']
$$;

-- Raises a clear error unless p_role exists and the caller may grant on the schema.
CREATE OR REPLACE FUNCTION optischema._check_grantee(p_role name) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_role IS NULL OR to_regrole(quote_ident(p_role)) IS NULL THEN
        RAISE EXCEPTION 'role % does not exist', coalesce(quote_literal(p_role), 'NULL')
            USING ERRCODE = 'undefined_object', HINT = 'Create it first, e.g. CREATE ROLE dba_team;';
    END IF;
    IF NOT pg_has_role((SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = 'optischema'), 'USAGE') THEN
        RAISE EXCEPTION 'role % may not grant OptiSchema privileges', current_user
            USING ERRCODE = 'insufficient_privilege', HINT = 'Run it as a superuser (the owner of schema optischema).';
    END IF;
END
$$;

-- Gives p_role read access, or (admin) full control of OptiSchema. Returns what was granted.
CREATE OR REPLACE FUNCTION optischema.grant_usage(role name, admin boolean DEFAULT false) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    x text;
BEGIN
    PERFORM optischema._check_grantee(role);
    IF admin IS NULL THEN
        RAISE EXCEPTION 'admin must be true or false' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA optischema TO %I', role);
    FOREACH x IN ARRAY optischema._reader_relations() LOOP
        EXECUTE format('GRANT SELECT ON %s TO %I', x, role);
    END LOOP;
    FOREACH x IN ARRAY optischema._reader_routines() LOOP
        EXECUTE format('GRANT EXECUTE ON %s TO %I', x, role);
    END LOOP;
    IF admin THEN
        EXECUTE format('GRANT EXECUTE ON ALL ROUTINES IN SCHEMA optischema TO %I', role);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA optischema TO %I', role);
        RETURN format('%s is an OptiSchema admin: it may read everything, apply, roll back and dismiss', role);
    END IF;
    RETURN format('%s is an OptiSchema reader: recommendations, changes, top_queries() and health()', role);
END
$$;

-- Takes back everything grant_usage() gave.
CREATE OR REPLACE FUNCTION optischema.revoke_usage(role name) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._check_grantee(role);
    EXECUTE format('REVOKE ALL ON ALL ROUTINES IN SCHEMA optischema FROM %I', role);
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA optischema FROM %I', role);
    EXECUTE format('REVOKE ALL ON SCHEMA optischema FROM %I', role);
    RETURN format('%s has no OptiSchema privileges any more', role);
END
$$;

-- Last: nothing is callable by PUBLIC; grant_usage() hands out what is needed.
REVOKE ALL ON ALL ROUTINES IN SCHEMA optischema FROM PUBLIC;
