-- The change loop: apply, verify, roll back, dismiss, with an audit trail.
--
-- CREATE/DROP INDEX CONCURRENTLY cannot run inside a function, so apply() and
-- rollback() only record intent: a row in _changes (the audit trail) and, for
-- via => 'sidecar', an 'apply'/'rollback' job a sidecar runs at top level.
-- Without a sidecar, via => 'psql' hands the DBA the exact statement and
-- applied() records the outcome from the catalog. Every transition of a
-- recommendation happens here, under a row lock, so two callers can never
-- apply the same recommendation twice.
--
-- Public functions are thin SECURITY INVOKER wrappers: they check that the
-- caller is an OptiSchema admin (see grant_usage() in 90_roles.sql) and say
-- how to become one, then call a SECURITY DEFINER internal that does the work.

INSERT INTO optischema.setting_defs (key, type, default_value, min_value, max_value, allowed, description) VALUES
('ddl_lock_timeout', 'interval', '10 seconds', NULL, NULL, NULL,
 'lock_timeout for the CREATE/DROP INDEX CONCURRENTLY a change runs: it fails rather than queue behind long locks (0: wait forever).'),
('ddl_statement_timeout', 'interval', '6 hours', NULL, NULL, NULL,
 'statement_timeout for the DDL a change runs (0: no limit).'),
('regression_threshold', 'numeric', '10', 0, 1000, NULL,
 'Percent increase of mean time, after a change, that verify() flags as a regression.'),
('auto_rollback', 'boolean', 'false', NULL, NULL, NULL,
 'When verify() finds a regression, roll the change back automatically.'),
('verify_window', 'interval', '1 day', NULL, NULL, NULL,
 'How long after a change its timings are compared (and how far back the "before" window reaches).'),
('verify_min_calls', 'integer', '10', 1, 1000000000, NULL,
 'Calls of a query needed after a change before its timing is judged.')
ON CONFLICT (key) DO UPDATE SET (type, default_value, min_value, max_value, allowed, description)
    = (EXCLUDED.type, EXCLUDED.default_value, EXCLUDED.min_value, EXCLUDED.max_value, EXCLUDED.allowed, EXCLUDED.description);

CREATE TABLE IF NOT EXISTS optischema._changes (
    id                bigserial PRIMARY KEY,
    recommendation_id bigint NOT NULL REFERENCES optischema._recommendations (id),
    action            text NOT NULL CHECK (action IN ('apply', 'rollback')),
    via               text NOT NULL CHECK (via IN ('sidecar', 'psql')),
    ddl               text NOT NULL,        -- exactly what is run
    index_schema      name,                 -- the index, or the table maintenance acts on (NULL: a setting)
    index_name        name,
    prior_status      text NOT NULL,        -- the recommendation's status before; restored on cancel
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    job_id            bigint,               -- no foreign key: finished jobs are purged, the audit trail is not
    requested_by      text NOT NULL,
    requested_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    duration_ms       double precision,
    executed_by       text,
    error             text,
    detail            jsonb NOT NULL DEFAULT '{}',
    plan_check        text CHECK (plan_check IN ('pending', 'verified', 'not_used', 'skipped', 'unchanged')),
    plan_evidence     jsonb,
    timing_verdict    text CHECK (timing_verdict IN ('improved', 'neutral', 'regressed', 'insufficient_data')),
    timing            jsonb,
    verified_at       timestamptz,
    -- maintenance/config: what the apply found (_action_state()), which its rollback restores
    prior_state       jsonb
);
CREATE INDEX IF NOT EXISTS _changes_recommendation_idx ON optischema._changes (recommendation_id, id);
SELECT pg_catalog.pg_extension_config_dump('optischema._changes', '');
SELECT pg_catalog.pg_extension_config_dump('optischema._changes_id_seq', '');

CREATE OR REPLACE VIEW optischema.changes AS
SELECT c.id, c.recommendation_id, r.title, c.action, c.via, c.ddl, c.status AS outcome,
       c.requested_by, c.requested_at, c.started_at, c.finished_at, c.duration_ms, c.executed_by,
       c.error, c.plan_check, c.timing_verdict, c.verified_at, c.job_id, c.detail,
       CASE WHEN NOT v.visible AND c.plan_evidence IS NOT NULL THEN '"<insufficient privilege>"' ELSE c.plan_evidence END
           AS plan_evidence, c.timing, c.prior_state
FROM optischema._changes c
JOIN optischema._recommendations r ON r.id = c.recommendation_id
JOIN optischema._recommendation_texts v ON v.id = c.recommendation_id;

-- Who asked: inside SECURITY DEFINER current_user is the owner, so take the
-- role the session acts as.
CREATE OR REPLACE FUNCTION optischema._caller() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN current_setting('role') <> 'none' THEN current_setting('role') ELSE session_user::text END
$$;

-- Raises a clear error unless the calling role may act (apply, roll back,
-- dismiss, verify, change settings): that is, it was given
-- optischema.grant_usage(role, 'admin') (or 'sidecar'). p_action says what it tried.
CREATE OR REPLACE FUNCTION optischema._require_admin(p_action text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT has_function_privilege('optischema._request_change(bigint, text, text)', 'EXECUTE') THEN
        RAISE EXCEPTION 'role % may not %', current_user, p_action
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('A superuser grants it with: SELECT optischema.grant_usage(%L, ''admin'');', current_user);
    END IF;
END
$$;

-- Whether a change builds an index or drops one: applying a create or
-- rolling back a drop builds.
CREATE OR REPLACE FUNCTION optischema._change_op(p_action text, p_kind text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN (p_action = 'apply') = (p_kind = 'create_index') THEN 'create' ELSE 'drop' END
$$;

-- The statement a change runs, built now from the recommendation's
-- description (sql/09_index_ddl.sql, sql/12_actions.sql) and the catalog, and
-- where its index (or the table maintenance acts on) is: op 'create' or
-- 'drop' for an index, 'run' or 'reload' for maintenance and settings
-- (_action_statement()). p_requester is the role that asked for the change.
-- Rolling back a create drops the index its apply built, found in the catalog
-- by the name its change recorded; rolling back a setting restores what its
-- apply found.
CREATE OR REPLACE FUNCTION optischema._action_ddl(p_rec optischema._recommendations, p_action text, p_requester text,
                                                  OUT op text, OUT ddl text, OUT index_schema name, OUT index_name name)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_spec  jsonb := p_rec.index_spec;
    v_index oid;
    s       record;
BEGIN
    IF p_rec.kind IN ('maintenance', 'config') AND p_action IN ('apply', 'rollback') THEN
        IF p_rec.kind = 'config' AND optischema._setting_refusal(p_requester, p_rec.action_spec) IS NOT NULL THEN
            RAISE EXCEPTION 'refusing to change the setting: %', optischema._setting_refusal(p_requester, p_rec.action_spec)
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'A role that may change it asks for it, or runs its ddl itself.';
        END IF;
        s := optischema._action_statement(p_rec.kind, p_rec.action_spec, p_action,
            (SELECT c.prior_state FROM optischema._changes c
             WHERE p_action = 'rollback' AND c.recommendation_id = p_rec.id AND c.action = 'apply' AND c.status = 'succeeded'
             ORDER BY c.id DESC LIMIT 1));
        op := s.op;
        ddl := s.ddl;
        index_schema := s.target_schema;
        index_name := s.target_name;
        RETURN;
    END IF;
    IF p_rec.kind NOT IN ('create_index', 'drop_index') OR p_action NOT IN ('apply', 'rollback') THEN
        RAISE EXCEPTION 'no index statement for action % of a % recommendation', p_action, p_rec.kind
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    op := optischema._change_op(p_action, p_rec.kind);
    IF p_rec.kind = 'create_index' AND p_action = 'rollback' THEN
        SELECT c.index_schema, c.index_name INTO index_schema, index_name
        FROM optischema._changes c
        WHERE c.recommendation_id = p_rec.id AND c.action = 'apply' AND c.status = 'succeeded'
        ORDER BY c.id DESC LIMIT 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'recommendation % was never applied: there is no index to drop', p_rec.id
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        SELECT x.oid INTO v_index
        FROM pg_catalog.pg_class x JOIN pg_catalog.pg_namespace n ON n.oid = x.relnamespace
        JOIN pg_catalog.pg_index i ON i.indexrelid = x.oid
        WHERE n.nspname = index_schema AND x.relname = index_name
          AND (v_spec IS NULL OR i.indrelid = optischema._index_oid(v_spec -> 'table'));
        -- Gone already: the statement is a no-op the executor need not run.
        ddl := CASE WHEN v_index IS NULL THEN format('DROP INDEX CONCURRENTLY IF EXISTS %I.%I', index_schema, index_name)
                    ELSE optischema._index_ddl('drop', jsonb_build_object('index', v_index::bigint)) END;
        RETURN;
    END IF;
    IF v_spec IS NULL OR (p_rec.kind = 'drop_index' AND NOT v_spec ? 'keys') THEN
        RAISE EXCEPTION 'recommendation % has no index description OptiSchema can build from', p_rec.id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = CASE WHEN v_spec IS NULL THEN 'It was made before OptiSchema 0.2.0, which builds every statement from a description.'
                                ELSE 'The index has expressions or a predicate OptiSchema could not describe, so it could not restore it after dropping it.' END,
                  HINT = CASE WHEN p_action = 'rollback' THEN 'Review its rollback_ddl and run it yourself.'
                              WHEN v_spec IS NULL THEN 'SELECT * FROM optischema.recommend(); refreshes it; or review its ddl and run it yourself.'
                              ELSE 'Review its ddl and run it yourself, then dismiss it: SELECT optischema.dismiss(' || p_rec.id || ', ''dropped by hand'');' END;
    END IF;
    IF op = 'create' THEN
        ddl := optischema._index_create_script(v_spec - 'index', p_requester);
        SELECT n.nspname INTO index_schema FROM pg_catalog.pg_class t JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
        WHERE t.oid = optischema._index_oid(v_spec -> 'table');
        index_name := v_spec ->> 'name';
    ELSE
        ddl := optischema._index_ddl('drop', v_spec);
        SELECT n.nspname, x.relname INTO index_schema, index_name
        FROM pg_catalog.pg_class x JOIN pg_catalog.pg_namespace n ON n.oid = x.relnamespace
        WHERE x.oid = optischema._index_oid(v_spec -> 'index');
    END IF;
END
$$;

-- What the sidecar's executor runs for a change, built at the moment it runs:
-- never the stored text. Raises when the description no longer checks out,
-- or no longer names the index the change recorded.
CREATE OR REPLACE FUNCTION optischema._change_ddl(p_change bigint, OUT op text, OUT ddl text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c optischema._changes;
    r optischema._recommendations;
    a record;
BEGIN
    SELECT * INTO c FROM optischema._changes x WHERE x.id = p_change;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'change % does not exist', coalesce(p_change::text, 'NULL') USING ERRCODE = 'no_data_found';
    END IF;
    SELECT * INTO r FROM optischema._recommendations x WHERE x.id = c.recommendation_id;
    IF optischema._action_advice_only(r.kind, r.action_spec) IS NOT NULL THEN
        RAISE EXCEPTION '%', optischema._action_advice_only(r.kind, r.action_spec) USING ERRCODE = 'feature_not_supported';
    END IF;
    a := optischema._action_ddl(r, c.action, c.requested_by);
    -- A setting or storage parameter changed by someone else since the apply was
    -- requested: its rollback would restore a state nobody saw. (Already done: a retry.)
    IF c.action = 'apply' AND (c.prior_state ? 'set' OR c.prior_state ? 'options') THEN
        IF optischema._action_state(r.kind, r.action_spec) IS DISTINCT FROM c.prior_state
           AND NOT optischema._action_done(r.kind, r.action_spec, 'apply', c.prior_state) THEN
            RAISE EXCEPTION 'change %: % changed since the apply was requested (it was %, it is %)', p_change,
                coalesce(r.action_spec ->> 'setting', quote_ident(c.index_schema) || '.' || quote_ident(c.index_name)),
                c.prior_state, optischema._action_state(r.kind, r.action_spec)
                USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Request it again: its rollback restores what it finds then.';
        END IF;
    END IF;
    IF (a.index_schema, a.index_name) IS DISTINCT FROM (c.index_schema, c.index_name) THEN
        RAISE EXCEPTION 'change % was requested for index %.%, its recommendation now describes %.%', p_change,
            quote_ident(c.index_schema), quote_ident(c.index_name), quote_ident(a.index_schema), quote_ident(a.index_name)
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Request it again.';
    END IF;
    op := a.op;
    ddl := a.ddl;
END
$$;

-- A change that builds an index on a partitioned table runs in steps
-- (_index_steps()): the sidecar's executor runs them one by one, each checked
-- against the catalog first so that a retry resumes. No rows for any other change.
CREATE OR REPLACE FUNCTION optischema._change_steps(p_change bigint)
RETURNS TABLE (step integer, kind text, table_oid oid, index_schema name, index_name name, create_ddl text, attach_ddl text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a record := optischema._change_ddl(p_change);       -- every check of the change's statement
BEGIN
    IF a.op = 'create' THEN
        RETURN QUERY
        SELECT s.* FROM optischema._changes c
        JOIN optischema._recommendations r ON r.id = c.recommendation_id
        CROSS JOIN LATERAL optischema._index_steps(r.index_spec - 'index', c.requested_by) s
        WHERE c.id = p_change AND r.kind IN ('create_index', 'drop_index')
        ORDER BY s.step;
    END IF;
END
$$;

-- What a failed build of change p_change on a partitioned table left behind,
-- as the statements that remove it (_index_leftovers()).
CREATE OR REPLACE FUNCTION optischema._change_leftovers(p_change bigint)
RETURNS TABLE (step integer, ddl text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.* FROM optischema._changes c
    JOIN optischema._recommendations r ON r.id = c.recommendation_id
    CROSS JOIN LATERAL optischema._index_leftovers(r.index_spec - 'index') l
    WHERE c.id = p_change AND r.index_spec IS NOT NULL
      AND optischema._change_op(c.action, r.kind) = 'create' AND r.kind IN ('create_index', 'drop_index')
    ORDER BY l.step
$$;

-- The statements of a change, one a row, built now as its ddl is: for psql's
-- \gexec, which runs each row on its own (as CREATE INDEX CONCURRENTLY needs),
-- where a partitioned table's index takes several statements.
CREATE OR REPLACE FUNCTION optischema.change_statements(change_id bigint)
RETURNS TABLE (step integer, statement text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._require_admin('read the statements of OptiSchema changes');
    RETURN QUERY SELECT * FROM optischema._change_statements(change_id);
END
$$;

CREATE OR REPLACE FUNCTION optischema._change_statements(p_change bigint)
RETURNS TABLE (step integer, statement text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c optischema._changes;
BEGIN
    SELECT * INTO c FROM optischema._changes x WHERE x.id = p_change;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'change % does not exist', coalesce(p_change::text, 'NULL')
            USING ERRCODE = 'no_data_found', HINT = 'SELECT * FROM optischema.changes ORDER BY id DESC;';
    END IF;
    IF c.status NOT IN ('pending', 'running') THEN
        RAISE EXCEPTION 'change % is %: there is nothing left to run', p_change, c.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'SELECT * FROM optischema.changes WHERE id = ' || p_change || ';';
    END IF;
    IF EXISTS (SELECT 1 FROM optischema._change_steps(p_change)) THEN
        RETURN QUERY
        SELECT (2 * s.step + k)::integer, x.ddl
        FROM optischema._change_steps(p_change) s
        CROSS JOIN LATERAL (VALUES (0, s.create_ddl), (1, s.attach_ddl)) x(k, ddl)
        WHERE x.ddl IS NOT NULL
        ORDER BY 1;
    ELSE
        RETURN QUERY SELECT 0, (optischema._change_ddl(p_change)).ddl;
    END IF;
END
$$;

-- Records the request to apply or roll back recommendation p_id and, via the
-- sidecar, queues the job that runs it. Returns the change id.
CREATE OR REPLACE FUNCTION optischema._request_change(p_id bigint, p_action text, p_via text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r        optischema._recommendations;
    a        record;
    v_change bigint;
    v_job    bigint;
BEGIN
    IF p_id IS NULL THEN
        RAISE EXCEPTION 'recommendation id cannot be NULL'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'SELECT id, status, title FROM optischema.recommendations;';
    END IF;
    IF p_via IS NULL OR p_via NOT IN ('sidecar', 'psql') THEN
        RAISE EXCEPTION 'via must be ''sidecar'' or ''psql'', got %', coalesce(quote_literal(p_via), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = '''sidecar'' queues a job for optischema-sidecar; ''psql'' returns the statement for you to run.';
    END IF;
    SELECT * INTO r FROM optischema._recommendations x WHERE x.id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'recommendation % does not exist', p_id
            USING ERRCODE = 'no_data_found', HINT = 'SELECT id, status, title FROM optischema.recommendations;';
    END IF;
    IF r.kind NOT IN ('create_index', 'drop_index', 'maintenance', 'config') THEN
        RAISE EXCEPTION 'recommendation % is a % recommendation: OptiSchema does not apply those', p_id, r.kind
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Review its ddl and explanation and run it yourself; then optischema.dismiss(' || p_id || ', reason) hides it.';
    END IF;
    IF r.kind IN ('maintenance', 'config') AND r.action_spec IS NULL THEN
        RAISE EXCEPTION 'recommendation % is advice only: OptiSchema does not run it', p_id
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Its explanation says what to run yourself, and at what cost; then optischema.dismiss(' || p_id || ', reason) hides it.';
    END IF;
    IF optischema._action_advice_only(r.kind, r.action_spec) IS NOT NULL THEN
        RAISE EXCEPTION 'recommendation %: %', p_id, optischema._action_advice_only(r.kind, r.action_spec)
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Its ddl is the statement to run yourself before a restart; then optischema.dismiss(' || p_id || ', reason) hides it.';
    END IF;

    IF p_action = 'apply' THEN
        IF r.status NOT IN ('open', 'failed') THEN
            RAISE EXCEPTION 'recommendation % is %: only open or failed recommendations can be applied', p_id, r.status
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = CASE r.status
                          WHEN 'applying' THEN 'It is being applied: SELECT * FROM optischema.changes WHERE recommendation_id = ' || p_id || ';'
                          WHEN 'applied' THEN 'It is applied already; optischema.rollback(' || p_id || ') undoes it.'
                          WHEN 'rolling_back' THEN 'It is being rolled back: SELECT * FROM optischema.changes WHERE recommendation_id = ' || p_id || ';'
                          ELSE 'SELECT * FROM optischema.recommend(); lists the current ones.' END;
        END IF;
    ELSIF p_action = 'rollback' THEN
        IF r.status <> 'applied' THEN
            RAISE EXCEPTION 'recommendation % is %: only an applied recommendation can be rolled back', p_id, r.status
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'SELECT * FROM optischema.changes WHERE recommendation_id = ' || p_id || ' shows what happened to it.';
        END IF;
    ELSE
        RAISE EXCEPTION 'unknown action %', coalesce(quote_literal(p_action), 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Built and checked now; via the sidecar, built and checked again when it runs.
    a := optischema._action_ddl(r, p_action, optischema._caller());
    IF (a.index_schema IS NULL OR a.index_name IS NULL) AND r.kind IN ('create_index', 'drop_index') THEN
        RAISE EXCEPTION 'recommendation % names no resolvable index', p_id
            USING ERRCODE = 'undefined_table', HINT = 'The table may have been dropped or renamed: refresh with SELECT * FROM optischema.recommend();';
    END IF;

    INSERT INTO optischema._changes (recommendation_id, action, via, ddl, index_schema, index_name, prior_status, requested_by,
                                     prior_state)
    VALUES (p_id, p_action, p_via, a.ddl, a.index_schema, a.index_name, r.status, optischema._caller(),
            CASE WHEN p_action = 'apply' AND r.kind IN ('maintenance', 'config') THEN optischema._action_state(r.kind, r.action_spec) END)
    RETURNING id INTO v_change;
    IF p_via = 'sidecar' THEN
        v_job := optischema.enqueue(p_action, jsonb_build_object('change_id', v_change));
        UPDATE optischema._changes SET job_id = v_job WHERE id = v_change;
    END IF;
    UPDATE optischema._recommendations
    SET status = CASE p_action WHEN 'apply' THEN 'applying' ELSE 'rolling_back' END,
        status_changed_at = now(), updated_at = now()
    WHERE id = p_id;
    RETURN v_change;
END
$$;

-- Tells the DBA what happens next, for either path.
CREATE OR REPLACE FUNCTION optischema._announce(p_change bigint) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c optischema._changes;
BEGIN
    SELECT * INTO c FROM optischema._changes WHERE id = p_change;
    IF c.via = 'psql' AND strpos(c.ddl, E';\n') > 0 THEN
        -- an index on a partitioned table: statements that must each run on their own
        RAISE NOTICE 'change % recorded: run each of these statements on its own at top level (autocommit): SELECT statement FROM optischema.change_statements(%) ORDER BY step \gexec then SELECT optischema.applied(%);',
            p_change, p_change, p_change
            USING DETAIL = c.ddl;
    ELSIF c.via = 'psql' THEN
        RAISE NOTICE 'change % recorded: run this at top level (autocommit), then SELECT optischema.applied(%);', p_change, p_change
            USING DETAIL = c.ddl;
    ELSE
        RAISE NOTICE 'change % queued as job %: a sidecar runs it once this transaction commits; CALL optischema.wait(%); waits for the outcome', p_change, c.job_id, p_change;
    END IF;
    RETURN p_change;
END
$$;

CREATE OR REPLACE FUNCTION optischema.apply(id bigint, via text DEFAULT 'sidecar') RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._require_admin('apply OptiSchema recommendations');
    RETURN optischema._announce(optischema._request_change(id, 'apply', via));
END
$$;

CREATE OR REPLACE FUNCTION optischema.rollback(id bigint, via text DEFAULT 'sidecar') RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._require_admin('roll back OptiSchema recommendations');
    RETURN optischema._announce(optischema._request_change(id, 'rollback', via));
END
$$;

-- Sets a change's outcome and moves its recommendation on. Only a change that
-- is still pending or running can finish: a second report is an error.
CREATE OR REPLACE FUNCTION optischema._finish_change(p_change bigint, p_status text, p_error text DEFAULT NULL,
                                          p_detail jsonb DEFAULT '{}', p_duration_ms double precision DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c optischema._changes;
    v_kind text;
BEGIN
    SELECT * INTO c FROM optischema._changes WHERE id = p_change FOR UPDATE;
    IF NOT FOUND OR c.status NOT IN ('pending', 'running') THEN
        RAISE EXCEPTION 'change % is %: its outcome is recorded already', p_change, coalesce(c.status, 'unknown')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'SELECT * FROM optischema.changes WHERE id = ' || coalesce(p_change::text, 'NULL') || ';';
    END IF;
    SELECT kind INTO v_kind FROM optischema._recommendations WHERE id = c.recommendation_id;
    UPDATE optischema._changes
    SET status = p_status, error = p_error, detail = detail || coalesce(p_detail, '{}'),
        finished_at = now(), started_at = coalesce(started_at, now()),
        duration_ms = coalesce(p_duration_ms, duration_ms),
        executed_by = coalesce(executed_by, optischema._caller()),
        -- A new index is checked against the plans of the queries it was made for;
        -- maintenance and settings against the evidence they rest on (sidecar/verify.py).
        plan_check = CASE WHEN p_status = 'succeeded' AND c.action = 'apply' AND v_kind IN ('create_index', 'maintenance', 'config')
                          THEN 'pending' END
    WHERE id = p_change;
    UPDATE optischema._recommendations
    SET status = CASE
            WHEN p_status = 'cancelled' THEN c.prior_status
            WHEN c.action = 'apply' THEN CASE p_status WHEN 'succeeded' THEN 'applied' ELSE 'failed' END
            ELSE CASE p_status WHEN 'succeeded' THEN 'rolled_back' ELSE 'applied' END END,
        status_changed_at = now(), updated_at = now()
    WHERE id = c.recommendation_id;
END
$$;

-- A job failed for good or was cancelled (sql/10_jobs.sql): the apply or
-- rollback change it never finished ends with it, so no recommendation stays
-- "applying" forever.
CREATE OR REPLACE FUNCTION optischema._job_ended(p_job optischema.jobs, p_status text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_change bigint := CASE WHEN p_job.payload->>'change_id' ~ '^[0-9]{1,18}$' THEN (p_job.payload->>'change_id')::bigint END;
BEGIN
    IF p_job.kind IN ('apply', 'rollback') AND EXISTS (
            SELECT 1 FROM optischema._changes c WHERE c.id = v_change AND c.status IN ('pending', 'running')) THEN
        PERFORM optischema._finish_change(v_change, p_status,
            CASE p_status WHEN 'cancelled' THEN format('job %s was cancelled by %s', p_job.id, coalesce(p_job.cancel_requested_by, optischema._caller()))
                          ELSE format('job %s failed: %s', p_job.id, p_job.error) END);
    END IF;
END
$$;

-- The sidecar's executor starts (or, after a crash, resumes) a change.
-- Returns the change as it is; a finished change is returned unchanged.
CREATE OR REPLACE FUNCTION optischema._start_change(p_change bigint, p_worker text) RETURNS optischema._changes
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c optischema._changes;
BEGIN
    UPDATE optischema._changes
    SET status = 'running', started_at = now(), executed_by = p_worker
    WHERE id = p_change AND status IN ('pending', 'running') AND via = 'sidecar'
    RETURNING * INTO c;
    IF NOT FOUND THEN
        SELECT * INTO c FROM optischema._changes WHERE id = p_change;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'change % does not exist', coalesce(p_change::text, 'NULL') USING ERRCODE = 'no_data_found';
        END IF;
    END IF;
    RETURN c;
END
$$;

-- The plan check right after apply: did the affected queries' plans pick the index?
CREATE OR REPLACE FUNCTION optischema._record_plan_check(p_change bigint, p_verdict text, p_evidence jsonb) RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE optischema._changes SET plan_check = p_verdict, plan_evidence = p_evidence, verified_at = now()
    WHERE id = p_change
$$;

-- Without a sidecar: after running a change's statement from psql, this
-- records the outcome by looking at the catalog, the same way the sidecar does.
CREATE OR REPLACE FUNCTION optischema._applied(p_change bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c       optischema._changes;
    v_kind  text;
    v_valid boolean;
    v_op    text;
    v_ok    boolean;
    v_error text;
    r       optischema._recommendations;
    v_prior jsonb;
BEGIN
    SELECT * INTO c FROM optischema._changes WHERE id = p_change FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'change % does not exist', coalesce(p_change::text, 'NULL')
            USING ERRCODE = 'no_data_found', HINT = 'SELECT * FROM optischema.changes ORDER BY id DESC;';
    END IF;
    IF c.via <> 'psql' OR c.status NOT IN ('pending', 'running') THEN
        RAISE EXCEPTION 'change % is % (via %): applied() records only a pending change requested with via => ''psql''',
            p_change, c.status, c.via
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'SELECT * FROM optischema.changes WHERE id = ' || p_change || ';';
    END IF;
    SELECT * INTO r FROM optischema._recommendations x WHERE x.id = c.recommendation_id;
    v_kind := r.kind;
    IF v_kind IN ('maintenance', 'config') THEN
        v_prior := CASE WHEN c.action = 'apply' THEN c.prior_state
                        ELSE (SELECT a.prior_state FROM optischema._changes a
                              WHERE a.recommendation_id = r.id AND a.action = 'apply' AND a.status = 'succeeded'
                              ORDER BY a.id DESC LIMIT 1) END;
        v_ok := optischema._action_done(v_kind, r.action_spec, c.action, v_prior);
        -- ALTER SYSTEM takes effect at the next reload: the one thing psql's \gexec did not run.
        IF v_ok AND r.action_spec ->> 'scope' = 'system' THEN
            PERFORM pg_catalog.pg_reload_conf();
        END IF;
        PERFORM optischema._finish_change(p_change, CASE WHEN v_ok THEN 'succeeded' ELSE 'failed' END,
            CASE WHEN NOT v_ok THEN format('the catalog does not show it done: the statement was not run or failed (%s)', c.ddl) END,
            jsonb_build_object('recorded_by', 'applied()'));
        IF v_ok AND c.action = 'apply' THEN
            PERFORM optischema._record_effect(p_change, NULL);
            PERFORM optischema.enqueue('verify', jsonb_build_object('change_id', p_change));
        END IF;
        RETURN CASE WHEN v_ok THEN 'succeeded' ELSE 'failed' END;
    END IF;
    v_op := optischema._change_op(c.action, v_kind);
    SELECT i.indisvalid INTO v_valid
    FROM pg_class x JOIN pg_namespace n ON n.oid = x.relnamespace JOIN pg_index i ON i.indexrelid = x.oid
    WHERE n.nspname = c.index_schema AND x.relname = c.index_name;
    IF v_op = 'create' THEN
        v_ok := coalesce(v_valid, false);
        v_error := CASE WHEN v_valid IS NULL THEN format('index %I.%I does not exist: the statement was not run or failed%s', c.index_schema, c.index_name,
                                                         CASE WHEN strpos(c.ddl, E';\n') > 0 THEN ' (its statements must each run on their own: '
                                                              || format('SELECT statement FROM optischema.change_statements(%s) ORDER BY step \gexec)', p_change) ELSE '' END)
                        WHEN NOT v_valid THEN format('index %I.%I is INVALID (its build failed%s): run %s; then apply again',
                                                     c.index_schema, c.index_name,
                                                     CASE WHEN EXISTS (SELECT 1 FROM optischema._change_leftovers(p_change))
                                                          THEN ', or not every partition has its index attached' ELSE '' END,
                                                     coalesce((SELECT string_agg(l.ddl, '; ' ORDER BY l.step) FROM optischema._change_leftovers(p_change) l),
                                                              format('DROP INDEX CONCURRENTLY IF EXISTS %I.%I', c.index_schema, c.index_name))) END;
    ELSE
        v_ok := v_valid IS NULL;
        v_error := CASE WHEN NOT v_ok THEN format('index %I.%I still exists: the statement was not run or failed', c.index_schema, c.index_name) END;
    END IF;
    PERFORM optischema._finish_change(p_change, CASE WHEN v_ok THEN 'succeeded' ELSE 'failed' END, v_error,
                                      jsonb_build_object('recorded_by', 'applied()'));
    -- A sidecar, if one runs later, checks the plans.
    IF v_ok AND v_op = 'create' AND c.action = 'apply' THEN
        PERFORM optischema.enqueue('verify', jsonb_build_object('change_id', p_change));
    END IF;
    RETURN CASE WHEN v_ok THEN 'succeeded' ELSE 'failed' END;
END
$$;

CREATE OR REPLACE FUNCTION optischema.applied(change_id bigint) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._require_admin('record changes to OptiSchema recommendations');
    RETURN optischema._applied(change_id);
END
$$;

CREATE OR REPLACE FUNCTION optischema._dismiss(p_id bigint, p_reason text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r optischema._recommendations;
BEGIN
    IF p_id IS NULL THEN
        RAISE EXCEPTION 'recommendation id cannot be NULL'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'SELECT id, status, title FROM optischema.recommendations;';
    END IF;
    IF p_reason IS NULL OR btrim(p_reason) = '' THEN
        RAISE EXCEPTION 'a reason is required to dismiss recommendation %', p_id
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Say why, for the next DBA: optischema.dismiss(' || p_id || ', ''writes matter more than this report'').';
    END IF;
    IF length(btrim(p_reason)) > 1000 THEN
        RAISE EXCEPTION 'a dismissal reason is at most 1,000 characters, this one has %', length(btrim(p_reason))
            USING ERRCODE = 'string_data_right_truncation',
                  HINT = 'Say it in short; a link to the ticket or document with the details fits.';
    END IF;
    SELECT * INTO r FROM optischema._recommendations WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'recommendation % does not exist', p_id
            USING ERRCODE = 'no_data_found', HINT = 'SELECT id, status, title FROM optischema.recommendations;';
    END IF;
    IF r.status NOT IN ('open', 'failed', 'rolled_back', 'superseded') THEN
        RAISE EXCEPTION 'recommendation % is %: only open, failed, rolled back or superseded recommendations can be dismissed', p_id, r.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = CASE WHEN r.status = 'applied' THEN 'Roll it back first: SELECT optischema.rollback(' || p_id || ');'
                              WHEN r.status = 'dismissed' THEN 'It is dismissed already: ' || coalesce(r.dismissed_reason, '')
                              ELSE 'Wait for its change to finish: SELECT * FROM optischema.changes WHERE recommendation_id = ' || p_id || ';' END;
    END IF;
    UPDATE optischema._recommendations
    SET status = 'dismissed', dismissed_reason = btrim(p_reason), status_changed_at = now(), updated_at = now()
    WHERE id = p_id;
END
$$;

CREATE OR REPLACE FUNCTION optischema.dismiss(id bigint, reason text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._require_admin('dismiss OptiSchema recommendations');
    PERFORM optischema._dismiss(id, reason);
END
$$;

-- Measured timing of the affected queries before and after the latest applied
-- change of recommendation p_id, from the snapshots. One row per query and a
-- last row (queryid NULL) for all of them, weighted by calls after. The
-- verdict lands in the change log; a regression beyond regression_threshold is
-- rolled back when auto_rollback is on.
CREATE OR REPLACE FUNCTION optischema._verify(p_id bigint)
RETURNS TABLE (queryid bigint, calls_before bigint, mean_ms_before numeric, calls_after bigint,
               mean_ms_after numeric, change_pct numeric, verdict text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r           optischema._recommendations;
    c           optischema._changes;
    v_threshold numeric := optischema.setting('regression_threshold')::numeric;
    v_min_calls bigint := optischema.setting('verify_min_calls')::bigint;
    v_window    interval := optischema.setting('verify_window')::interval;
    v_b_from    bigint;
    v_b_to      bigint;
    v_a_from    bigint;
    v_a_to      bigint;
    v_rows      jsonb;
    v_pct       numeric;
    v_verdict   text;
    v_rollback  bigint;
BEGIN
    IF p_id IS NULL THEN
        RAISE EXCEPTION 'recommendation id cannot be NULL' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'SELECT recommendation_id FROM optischema.changes WHERE outcome = ''succeeded'';';
    END IF;
    SELECT * INTO r FROM optischema._recommendations x WHERE x.id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'recommendation % does not exist', p_id
            USING ERRCODE = 'no_data_found', HINT = 'SELECT id, status, title FROM optischema.recommendations;';
    END IF;
    -- a rewrite is the application's to apply: its statements before and after (sql/32_rewrites.sql)
    IF r.kind = 'rewrite' THEN
        RETURN QUERY SELECT * FROM optischema._verify_rewrite(r);
        RETURN;
    END IF;
    SELECT * INTO c FROM optischema._changes x
    WHERE x.recommendation_id = p_id AND x.action = 'apply' AND x.status = 'succeeded'
    ORDER BY x.id DESC LIMIT 1;
    IF NOT FOUND OR r.status <> 'applied' THEN
        RAISE EXCEPTION 'recommendation % is % and has no applied change to verify', p_id, r.status
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Apply it first: SELECT optischema.apply(' || p_id || ');';
    END IF;

    -- Before: up to the last snapshot before the request. After: from the
    -- first snapshot taken once the index existed.
    v_b_to := optischema._snapshot_before(c.requested_at);
    v_b_from := optischema._snapshot_before(c.requested_at - v_window);
    SELECT min(s.id) INTO v_a_from FROM optischema.snapshots s WHERE s.taken_at >= c.finished_at;
    SELECT max(s.id) INTO v_a_to FROM optischema.snapshots s;

    WITH q AS (SELECT DISTINCT unnest(r.queryids) AS queryid),
    b AS (SELECT w.queryid, w.calls, w.total_ms, w.temp_blks_written FROM optischema._query_window(v_b_from, v_b_to) w),
    a AS (SELECT w.queryid, w.calls, w.total_ms, w.temp_blks_written FROM optischema._query_window(v_a_from, v_a_to) w
          WHERE v_a_from < v_a_to),
    m AS (
        SELECT q.queryid, coalesce(b.calls, 0) AS cb, b.total_ms / nullif(b.calls, 0) AS mb,
               coalesce(a.calls, 0) AS ca, a.total_ms / nullif(a.calls, 0) AS ma,
               b.temp_blks_written::numeric / nullif(b.calls, 0) AS tb, a.temp_blks_written::numeric / nullif(a.calls, 0) AS ta
        FROM q LEFT JOIN b USING (queryid) LEFT JOIN a USING (queryid)
    ), v AS (
        SELECT m.*, CASE WHEN m.cb > 0 AND m.ca >= v_min_calls AND m.mb > 0
                         THEN round((100 * (m.ma - m.mb) / m.mb)::numeric, 2) END AS pct
        FROM m
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'queryid', v.queryid, 'calls_before', v.cb, 'mean_ms_before', round(v.mb::numeric, 3),
               'calls_after', v.ca, 'mean_ms_after', round(v.ma::numeric, 3), 'change_pct', v.pct,
               'temp_blks_per_call_before', round(v.tb, 1), 'temp_blks_per_call_after', round(v.ta, 1),
               'verdict', CASE WHEN v.pct IS NULL THEN 'insufficient_data' WHEN v.pct > v_threshold THEN 'regressed'
                               WHEN v.pct < -v_threshold THEN 'improved' ELSE 'neutral' END) ORDER BY v.queryid), '[]'),
           round((100 * (sum(v.ca * v.ma) FILTER (WHERE v.pct IS NOT NULL)
                         - sum(v.ca * v.mb) FILTER (WHERE v.pct IS NOT NULL))
                  / nullif(sum(v.ca * v.mb) FILTER (WHERE v.pct IS NOT NULL), 0))::numeric, 2)
    INTO v_rows, v_pct
    FROM v;
    v_verdict := CASE WHEN v_pct IS NULL THEN 'insufficient_data' WHEN v_pct > v_threshold THEN 'regressed'
                      WHEN v_pct < -v_threshold THEN 'improved' ELSE 'neutral' END;

    UPDATE optischema._changes x
    SET timing_verdict = v_verdict, verified_at = now(),
        timing = jsonb_build_object('snapshots_before', jsonb_build_array(v_b_from, v_b_to),
                                    'snapshots_after', jsonb_build_array(v_a_from, v_a_to),
                                    'threshold_pct', v_threshold, 'change_pct', v_pct, 'queries', v_rows)
                 -- maintenance and settings: the evidence they rest on, measured again
                 || CASE WHEN r.kind IN ('maintenance', 'config')
                         THEN jsonb_build_object('evidence_now', optischema._action_measure(c.id))
                         ELSE '{}' END
    WHERE x.id = c.id;
    IF v_verdict = 'regressed' THEN
        IF optischema.setting('auto_rollback')::boolean THEN
            v_rollback := optischema._request_change(p_id, 'rollback', 'sidecar');
            UPDATE optischema._changes x SET detail = x.detail || jsonb_build_object('auto_rollback_change', v_rollback)
            WHERE x.id = c.id;
            UPDATE optischema._changes x SET detail = x.detail || jsonb_build_object('reason', format('auto rollback: mean time +%s%% after change %s', v_pct, c.id))
            WHERE x.id = v_rollback;
        ELSE
            RAISE WARNING '%', format('recommendation %s: mean time of its queries rose %s%% after change %s (threshold %s%%)',
                                      p_id, v_pct, c.id, v_threshold)
                USING HINT = 'Roll it back with SELECT optischema.rollback(' || p_id || '); or set auto_rollback: SELECT optischema.set_setting(''auto_rollback'', ''on'');';
        END IF;
    END IF;

    RETURN QUERY
    SELECT (e->>'queryid')::bigint, (e->>'calls_before')::bigint, (e->>'mean_ms_before')::numeric,
           (e->>'calls_after')::bigint, (e->>'mean_ms_after')::numeric, (e->>'change_pct')::numeric, e->>'verdict'
    FROM jsonb_array_elements(v_rows) e
    UNION ALL
    SELECT NULL::bigint, NULL::bigint, NULL::numeric, NULL::bigint, NULL::numeric, v_pct, v_verdict;
END
$$;

CREATE OR REPLACE FUNCTION optischema.verify(id bigint)
RETURNS TABLE (queryid bigint, calls_before bigint, mean_ms_before numeric, calls_after bigint,
               mean_ms_after numeric, change_pct numeric, verdict text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._require_admin('verify OptiSchema recommendations');
    RETURN QUERY SELECT * FROM optischema._verify(id);
END
$$;

-- After each scheduled snapshot: the timing check of every change applied
-- within verify_window. Returns how many were checked.
CREATE OR REPLACE FUNCTION optischema._verify_recent() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
    n    integer := 0;
BEGIN
    FOR v_id IN
        SELECT DISTINCT c.recommendation_id
        FROM optischema._changes c JOIN optischema._recommendations r ON r.id = c.recommendation_id
        WHERE c.action = 'apply' AND c.status = 'succeeded' AND r.status = 'applied'
          AND c.finished_at > now() - optischema.setting('verify_window')::interval
    LOOP
        PERFORM optischema._verify(v_id);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

-- Waits, from psql, for a change to finish: CALL optischema.wait(7);
-- A procedure, so that it can COMMIT between polls: the caller's apply() row
-- becomes visible to the sidecar and the sidecar's outcome becomes visible
-- here. Procedures that COMMIT may not have a SET clause, so search_path is
-- pinned with set_config after each commit instead.
CREATE OR REPLACE PROCEDURE optischema.wait(change_id bigint, timeout interval DEFAULT '5 minutes', INOUT outcome text DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    v_deadline timestamptz := pg_catalog.clock_timestamp() + coalesce(timeout, interval '5 minutes');
    v_error    text;
    v_via      text;
    v_seen     boolean;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    -- Inside a transaction block that wrote (say, the apply() itself) the
    -- sidecar could never see the change: say so instead of timing out.
    IF pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'CALL optischema.wait() must run outside a transaction block'
            USING ERRCODE = 'active_sql_transaction',
                  HINT = 'COMMIT first (the sidecar cannot see an uncommitted apply()), then CALL optischema.wait(' || coalesce(change_id::text, 'NULL') || ');';
    END IF;
    LOOP
        SELECT c.outcome, c.error, c.via INTO outcome, v_error, v_via FROM optischema.changes c WHERE c.id = change_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'change % does not exist', coalesce(change_id::text, 'NULL')
                USING ERRCODE = 'no_data_found', HINT = 'SELECT * FROM optischema.changes ORDER BY id DESC;';
        END IF;
        EXIT WHEN outcome NOT IN ('pending', 'running');
        IF v_via = 'psql' THEN
            RAISE EXCEPTION 'change % was requested with via => ''psql'': no sidecar runs it', change_id
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Run its ddl from optischema.changes at top level, then SELECT optischema.applied(' || change_id || ');';
        END IF;
        IF v_seen IS NULL THEN
            v_seen := EXISTS (SELECT 1 FROM optischema.sidecars s
                              WHERE s.last_seen > now() - optischema.setting('sidecar_timeout')::interval);
            IF NOT v_seen THEN
                RAISE WARNING 'no sidecar has been seen recently: change % stays % until one runs', change_id, outcome
                    USING HINT = 'Start optischema-sidecar, or cancel its job with optischema.cancel_job() and apply with via => ''psql''.';
            END IF;
        END IF;
        IF pg_catalog.clock_timestamp() > v_deadline THEN
            RAISE WARNING 'change % is still % after %', change_id, outcome, timeout
                USING HINT = 'It goes on in the background: SELECT * FROM optischema.changes WHERE id = ' || change_id || ';';
            RETURN;
        END IF;
        COMMIT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        PERFORM pg_catalog.pg_sleep(0.2);
    END LOOP;
    IF outcome = 'succeeded' THEN
        RAISE NOTICE 'change % succeeded', change_id;
    ELSE
        RAISE WARNING 'change % %: %', change_id, outcome, coalesce(v_error, 'no error recorded');
    END IF;
END
$$;
