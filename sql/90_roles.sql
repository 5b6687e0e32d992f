-- Roles. The install script creates none; a superuser gives existing roles
-- one of three levels with optischema.grant_usage(role, level):
--   reader:  sees recommendations, changes, settings, jobs and sidecars, and
--            calls top_queries() and health() (which take a snapshot when the
--            data is stale, as their definer).
--   admin:   also every public function: apply(), rollback(), dismiss(),
--            verify(), set_setting(), recommend(), enqueue(), ...
--   sidecar: the sidecar's login role: an admin that may also run the
--            internal functions (names starting with _) through which the
--            sidecar claims jobs, records outcomes and writes LLM results.
-- Internal functions are the owner's and the sidecar's alone: an admin who
-- could call them could forge what the sidecar runs with the rights of the
-- tables' owners. The exceptions, in _admin_routines(), are the narrow entry
-- points a public SECURITY INVOKER function needs its caller to have.
-- This file must stay last: it revokes EXECUTE from PUBLIC on every routine
-- the files before it created.

-- What a reader may call. The action wrappers are included so that a reader
-- who tries one is told how to become an admin instead of a bare "permission denied".
CREATE OR REPLACE FUNCTION optischema._reader_routines() RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY['FUNCTION optischema.top_queries(interval, integer)',
                 'FUNCTION optischema._top_queries(interval, integer)',     -- its figures, no texts
                 'FUNCTION optischema._text_visible(bigint, name)',        -- query_texts and the rows of queries
                 'FUNCTION optischema.health()',
                 'FUNCTION optischema.query_history(interval, integer, bigint, interval)', 'FUNCTION optischema.table_history(interval, integer, regclass, interval)', 'FUNCTION optischema.index_history(interval, integer, regclass, interval)', 'FUNCTION optischema.snapshot_history(interval, interval)', 'FUNCTION optischema.change_history(bigint, interval)', 'FUNCTION optischema.report_data(interval, interval)', 'FUNCTION optischema.render_report(jsonb)', 'FUNCTION optischema.report(interval, interval)',
                 'FUNCTION optischema.setting(text)',
                 'FUNCTION optischema._require_admin(text)',
                 'FUNCTION optischema.apply(bigint, text)',
                 'FUNCTION optischema.rollback(bigint, text)',
                 'FUNCTION optischema.dismiss(bigint, text)',
                 'FUNCTION optischema.applied(bigint)',
                 'FUNCTION optischema.change_statements(bigint)',
                 'FUNCTION optischema.verify(bigint)',
                 'FUNCTION optischema.set_setting(text, text)',
                 'FUNCTION optischema.reset_setting(text)',
                 'PROCEDURE optischema.wait(bigint, interval, text)']
$$;

-- The internal routines an admin may call besides every public one: those a
-- public SECURITY INVOKER function calls with its caller's rights. Each one
-- does no more than the public function it serves lets an admin do anyway.
CREATE OR REPLACE FUNCTION optischema._admin_routines() RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY[
        -- apply(), rollback(), applied(), dismiss(), verify()
        'FUNCTION optischema._request_change(bigint, text, text)',
        'FUNCTION optischema._announce(bigint)',
        'FUNCTION optischema._applied(bigint)',
        'FUNCTION optischema._change_statements(bigint)',
        'FUNCTION optischema._dismiss(bigint, text)',
        'FUNCTION optischema._verify(bigint)',
        -- set_setting(), reset_setting()
        'FUNCTION optischema._set_setting(text, text)',
        'FUNCTION optischema._reset_setting(text)',
        -- cron_commands() and the snapshot command it schedules
        'FUNCTION optischema._cron_schedule(interval)',
        'FUNCTION optischema._verify_recent()',
        -- recommend(): it plans as the statements' senders with its caller's rights, and
        -- writes only through _record_advice(), which records what _advise() computed
        'FUNCTION optischema._hypopg_schema()',
        'FUNCTION optischema._refresh_begin()',
        'FUNCTION optischema._refresh_end()',
        'FUNCTION optischema._advise(bigint, bigint)',
        'FUNCTION optischema._load_engine()',
        'FUNCTION optischema._activity(bigint, bigint)',
        'FUNCTION optischema._engine_settings()',
        'FUNCTION optischema._size_bytes(text)',
        'FUNCTION optischema._unfinished_window(bigint, bigint)',
        'FUNCTION optischema._record_advice()',
        -- ... or, in a plain install, queues the sidecar's analysis, as refresh() does (sql/34_refresh.sql)
        'FUNCTION optischema._refreshed_by_sidecar()',
        'FUNCTION optischema._plain_install()',
        'FUNCTION optischema._refresh_job()',
        'FUNCTION optischema._sidecar_serves(text)',
        -- ... and its maintenance and configuration advice, the same way (sql/31_maintenance.sql)
        'FUNCTION optischema._maintenance_plans(bigint, bigint)',
        'FUNCTION optischema._maintenance_targets(bigint, bigint)',
        'FUNCTION optischema._record_maintenance()',
        'FUNCTION optischema._senders(bigint)',
        'FUNCTION optischema._av_param(text[], text)',
        'FUNCTION optischema._work_mem_budget(oid)',
        'FUNCTION optischema._setting_effective(text, oid)',
        'FUNCTION optischema._setting_value(text, text)',
        'FUNCTION optischema._setting_text(text, numeric)',
        'FUNCTION optischema._setting_units(text)',
        -- context(): the plan, as the statement's sender
        'FUNCTION optischema._generic_plan(bigint, text)',
        -- context(), workload_context(), enqueue_llm_analyses(): read-only helpers
        'FUNCTION optischema._analysis_window()',
        'FUNCTION optischema._snapshot_before(timestamp with time zone)',
        'FUNCTION optischema._query_window(bigint, bigint)',
        'FUNCTION optischema._check_count(integer, integer, text, text)',
        'FUNCTION optischema._xact_lock(text)',
        'FUNCTION optischema._is_utility(text)',
        'FUNCTION optischema._strip_comments(text)',
        'FUNCTION optischema._scrub(text, boolean)',
        'FUNCTION optischema._llm_settings()',
        'FUNCTION optischema._llm_table_context(oid, bigint, double precision, boolean)']
$$;

CREATE OR REPLACE FUNCTION optischema._reader_relations() RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY['optischema.recommendations', 'optischema.changes', 'optischema.settings',
                 'optischema.jobs', 'optischema.sidecars', 'optischema.query_texts']
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

-- Gives role exactly one level: 'reader', 'admin' or 'sidecar' (what it had
-- before is taken back first, so a level can also be lowered). Returns what
-- was granted.
CREATE OR REPLACE FUNCTION optischema.grant_usage(role name, level text DEFAULT 'reader') RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    x text;
BEGIN
    PERFORM optischema._check_grantee(role);
    IF level IS NULL OR level NOT IN ('reader', 'admin', 'sidecar') THEN
        RAISE EXCEPTION 'level must be ''reader'', ''admin'' or ''sidecar'', got %', coalesce(quote_literal(level), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'reader: read recommendations; admin: apply, roll back, dismiss, change settings; sidecar: the role optischema-sidecar logs in as.';
    END IF;
    PERFORM optischema.revoke_usage(role);
    EXECUTE format('GRANT USAGE ON SCHEMA optischema TO %I', role);
    FOREACH x IN ARRAY optischema._reader_relations() LOOP
        EXECUTE format('GRANT SELECT ON %s TO %I', x, role);
    END LOOP;
    FOREACH x IN ARRAY optischema._reader_routines() LOOP
        EXECUTE format('GRANT EXECUTE ON %s TO %I', x, role);
    END LOOP;
    IF level = 'reader' THEN
        RETURN format('%s is an OptiSchema reader: recommendations, changes, top_queries() and health()', role);
    END IF;

    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA optischema TO %I', role);
    IF level = 'sidecar' THEN
        EXECUTE format('GRANT EXECUTE ON ALL ROUTINES IN SCHEMA optischema TO %I', role);
        RETURN format('%s is the OptiSchema sidecar''s role: an admin that also runs the internal functions; '
                      'it also needs pg_read_all_stats and membership in the roles owning the tables it indexes (README, Roles)', role);
    END IF;
    FOR x IN
        SELECT format('ROUTINE %s', p.oid::regprocedure) FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = 'optischema'::regnamespace AND left(p.proname, 1) <> '_'
        UNION ALL
        SELECT unnest(optischema._admin_routines())
    LOOP
        EXECUTE format('GRANT EXECUTE ON %s TO %I', x, role);
    END LOOP;
    RETURN format('%s is an OptiSchema admin: it may read everything, apply, roll back, dismiss and change settings', role);
END
$$;

-- Last: nothing is callable by PUBLIC; grant_usage() hands out what is needed.
REVOKE ALL ON ALL ROUTINES IN SCHEMA optischema FROM PUBLIC;
