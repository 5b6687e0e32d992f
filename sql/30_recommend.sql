-- recommend(): refreshes the analysis, keeps the advisor's results in
-- _recommendations (one row per distinct piece of advice) and queues LLM
-- analyses for what remains.

CREATE OR REPLACE FUNCTION optischema.recommend(n integer DEFAULT 20)
RETURNS SETOF optischema.recommendations
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_to       bigint;
    v_from     bigint;
    v_analysis bigint;
    v_result   jsonb;
BEGIN
    PERFORM optischema._check_count(n, 1, 'rows', 'SELECT * FROM optischema.recommend(20)');
    PERFORM optischema._hypopg_schema();
    -- One analysis at a time: two would write the same recommendations.
    PERFORM optischema._xact_lock('recommend');
    -- The analysis covers the workload up to now, not up to the last scheduled snapshot.
    PERFORM optischema.snapshot();
    SELECT w.p_from, w.p_to INTO v_from, v_to FROM optischema._analysis_window() w;
    INSERT INTO optischema.analyses (from_snapshot, to_snapshot) VALUES (v_from, v_to) RETURNING id INTO v_analysis;

    v_result := optischema._advise(v_from, v_to);

    -- The same advice keeps its row (and id). Only open or superseded rows
    -- take the new figures; what a DBA applied, dismissed or rolled back stays as they left it.
    INSERT INTO optischema._recommendations AS r
        (key, kind, source, title, ddl, rollback_ddl, table_name, index_name, queryids, benefit,
         evidence, estimated_size_bytes, write_overhead, score)
    SELECT x.key, x.kind, 'advisor', x.title, x.ddl, x.rollback_ddl, x."table", x.index_name,
           ARRAY(SELECT jsonb_array_elements_text(x.queryids)::bigint), x.benefit, x.evidence,
           x.estimated_size_bytes, x.write_overhead, x.score
    FROM jsonb_to_recordset(v_result -> 'recommendations') AS x(
        key text, kind text, title text, ddl text, rollback_ddl text, "table" text, index_name text,
        queryids jsonb, benefit jsonb, evidence jsonb, estimated_size_bytes bigint, write_overhead jsonb,
        score double precision)
    ON CONFLICT (key) DO UPDATE
    SET title = EXCLUDED.title, ddl = EXCLUDED.ddl, rollback_ddl = EXCLUDED.rollback_ddl,
        table_name = EXCLUDED.table_name, index_name = EXCLUDED.index_name, queryids = EXCLUDED.queryids,
        benefit = EXCLUDED.benefit, evidence = EXCLUDED.evidence,
        estimated_size_bytes = EXCLUDED.estimated_size_bytes, write_overhead = EXCLUDED.write_overhead,
        score = EXCLUDED.score, updated_at = now(),
        status = 'open',
        status_changed_at = CASE WHEN r.status = 'open' THEN r.status_changed_at ELSE now() END
    WHERE r.status IN ('open', 'superseded');

    -- Advice whose reason is gone (the index exists now, the query stopped) is superseded.
    UPDATE optischema._recommendations r
    SET status = 'superseded', status_changed_at = now(), updated_at = now()
    WHERE r.source = 'advisor' AND r.status = 'open'
      AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(v_result -> 'recommendations') e
                      WHERE e ->> 'key' = r.key);

    UPDATE optischema.analyses
    SET finished_at = clock_timestamp(), stats = v_result -> 'stats', skipped = v_result -> 'skipped',
        recommendations = jsonb_array_length(v_result -> 'recommendations')
    WHERE id = v_analysis;

    -- What the advisor cannot fix (rewrites, settings) goes to the LLM, when enabled.
    PERFORM optischema.enqueue_llm_analyses();

    RETURN QUERY
    SELECT * FROM optischema.recommendations r
    WHERE r.status = 'open'
    ORDER BY r.score DESC, r.id
    LIMIT n;
END
$$;
