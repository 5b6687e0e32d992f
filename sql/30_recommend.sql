-- recommend(): refreshes the analysis, keeps the advisor's results in
-- _recommendations (one row per distinct piece of advice) and queues LLM
-- analyses for what remains.
--
-- SECURITY INVOKER: the advisor plans every captured statement as a role that
-- sent it, and only a caller that can become that role may (a superuser, or a
-- member of the application's roles); statements of other roles are skipped,
-- with the reason, in optischema.analyses.skipped. What it writes goes through
-- _record_advice(), which records only what the engine computed.

-- The steps of a refresh around the engine's, shared by recommend() and, on a
-- plain install, the sidecar's recommend job (sidecar/refresh.py), which runs
-- the engine in between: the window to analyse, then what follows the advice.
CREATE OR REPLACE FUNCTION optischema._refresh_begin(OUT p_from bigint, OUT p_to bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._hypopg_schema();
    -- One analysis at a time: two would write the same recommendations.
    PERFORM optischema._xact_lock('recommend');
    -- The analysis covers the workload up to now, not up to the last scheduled snapshot.
    PERFORM optischema.snapshot();
    SELECT w.p_from, w.p_to INTO p_from, p_to FROM optischema._analysis_window() w;
END
$$;

CREATE OR REPLACE FUNCTION optischema._refresh_end() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Query rewrites are proven by the sidecar, which can bound each run with
    -- statement_timeout (sql/32_rewrites.sql).
    PERFORM optischema.enqueue_rewrite_checks();
    -- What the advisor cannot fix (rewrites, settings) goes to the LLM, when enabled.
    PERFORM optischema.enqueue_llm_analyses();
END
$$;

CREATE OR REPLACE FUNCTION optischema.recommend(n integer DEFAULT 20)
RETURNS SETOF optischema.recommendations
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_to       bigint;
    v_from     bigint;
BEGIN
    PERFORM optischema._check_count(n, 1, 'rows', 'SELECT * FROM optischema.recommend(20)');
    -- A plain install has no engine here: the current ones, the sidecar refreshes (sql/34_refresh.sql).
    IF optischema._refreshed_by_sidecar() THEN
        RETURN QUERY SELECT * FROM optischema.recommendations r WHERE r.status = 'open' ORDER BY r.score DESC, r.id LIMIT n;
        RETURN;
    END IF;
    SELECT w.p_from, w.p_to INTO v_from, v_to FROM optischema._refresh_begin() w;
    PERFORM optischema._advise(v_from, v_to);
    PERFORM optischema._record_advice();
    -- Maintenance and configuration advice (sql/31_maintenance.sql), planned the same way.
    PERFORM optischema._maintenance_plans(v_from, v_to);
    PERFORM optischema._record_maintenance();
    PERFORM optischema._refresh_end();

    RETURN QUERY
    SELECT * FROM optischema.recommendations r
    WHERE r.status = 'open'
    ORDER BY r.score DESC, r.id
    LIMIT n;
END
$$;

-- The advisor's open advice of the kinds p_kinds that a refresh no longer gives
-- (no element of p_advice has its key) is superseded: its reason is gone.
-- p_queryids: only the advice for these statements (the ones looked at).
-- For _record_advice(), _record_maintenance() and _record_rewrites(), which
-- run as the owner.
CREATE OR REPLACE FUNCTION optischema._supersede_gone(p_kinds text[], p_advice jsonb,
                                                      p_queryids bigint[] DEFAULT NULL) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE optischema._recommendations r
    SET status = 'superseded', status_changed_at = now(), updated_at = now()
    WHERE r.source = 'advisor' AND r.status = 'open' AND r.kind = ANY (p_kinds)
      AND (p_queryids IS NULL OR r.queryids && p_queryids)
      AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p_advice) e WHERE e ->> 'key' = r.key)
$$;

-- Records what _advise() computed in this transaction: the recommendations and
-- the analysis. It takes no advice as an argument, so that its callers (every
-- caller of recommend()) can record only what the engine found.
CREATE OR REPLACE FUNCTION optischema._record_advice() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_from     bigint;
    v_to       bigint;
    v_result   jsonb;
    v_analysis bigint;
BEGIN
    PERFORM optischema._xact_lock('recommend');
    SELECT a.p_from, a.p_to, a.result INTO v_from, v_to, v_result FROM optischema._take_result('advice') a;

    -- The same advice keeps its row (and id). Only open or superseded rows
    -- take the new figures; what a DBA applied, dismissed or rolled back stays as they left it.
    -- The ddl shown is built from the description by the same function that builds what runs.
    INSERT INTO optischema._recommendations AS r
        (key, kind, source, title, ddl, rollback_ddl, table_name, index_name, queryids, benefit,
         evidence, estimated_size_bytes, write_overhead, score, index_spec)
    SELECT x.key, x.kind, 'advisor', x.title, t.ddl, t.rollback_ddl, x."table", x.index_name,
           ARRAY(SELECT jsonb_array_elements_text(x.queryids)::bigint), x.benefit, x.evidence,
           x.estimated_size_bytes, x.write_overhead, x.score, x.index_spec
    FROM jsonb_to_recordset(v_result -> 'recommendations') AS x(
        key text, kind text, title text, "table" text, index_name text,
        queryids jsonb, benefit jsonb, evidence jsonb, estimated_size_bytes bigint, write_overhead jsonb,
        score double precision, index_spec jsonb)
    CROSS JOIN LATERAL optischema._index_texts(x.kind, x.index_spec) t
    ON CONFLICT (key) DO UPDATE
    SET title = EXCLUDED.title, ddl = EXCLUDED.ddl, rollback_ddl = EXCLUDED.rollback_ddl, index_spec = EXCLUDED.index_spec,
        table_name = EXCLUDED.table_name, index_name = EXCLUDED.index_name, queryids = EXCLUDED.queryids,
        benefit = EXCLUDED.benefit, evidence = EXCLUDED.evidence,
        estimated_size_bytes = EXCLUDED.estimated_size_bytes, write_overhead = EXCLUDED.write_overhead,
        score = EXCLUDED.score, updated_at = now(),
        status = 'open',
        status_changed_at = CASE WHEN r.status = 'open' THEN r.status_changed_at ELSE now() END
    -- (and a failed one made before 0.2.0: it has no description to apply again from)
    WHERE r.status IN ('open', 'superseded') OR (r.status = 'failed' AND r.index_spec IS NULL);

    -- Advice whose reason is gone (the index exists now, the query stopped) is superseded.
    PERFORM optischema._supersede_gone(ARRAY['create_index', 'drop_index'], v_result -> 'recommendations');

    INSERT INTO optischema.analyses (from_snapshot, to_snapshot, finished_at, recommendations, stats, skipped)
    VALUES (v_from, v_to, clock_timestamp(), jsonb_array_length(v_result -> 'recommendations'),
            v_result -> 'stats', v_result -> 'skipped')
    RETURNING id INTO v_analysis;
    RETURN v_analysis;
END
$$;
