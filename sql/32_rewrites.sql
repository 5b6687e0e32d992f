-- Query rewrite advice without an LLM (kind 'rewrite', source 'advisor').
-- recommend() queues a 'rewrites' job; the sidecar finds the rewrites a
-- statement's parse tree allows (a function or cast over a column, a
-- correlated scalar subquery, NOT IN over NOT NULL columns), proves each one
-- as the statement's sender (READ ONLY, rolled back, statement_timeout: same
-- rows on every representative parameter set, lower what-if cost) and records
-- the proven ones here. The proof needs a client connection: statement_timeout
-- bounds what a client sends, not what a function runs. A rewrite is the
-- application's code: OptiSchema never applies it (apply() refuses it);
-- dismiss() works as for any recommendation.

INSERT INTO optischema.setting_defs (key, type, default_value, min_value, max_value, allowed, description) VALUES
('rewrite_advice', 'boolean', 'true', NULL, NULL, NULL,
 'recommend() queues the sidecar''s proof of query rewrites (kind rewrite, source advisor).'),
('rewrite_max_queries', 'integer', '50', 0, 100000, NULL,
 'The heaviest statements of the analysis window whose rewrites the sidecar looks for and proves.'),
('rewrite_check_timeout', 'interval', '5 seconds', NULL, NULL, NULL,
 'statement_timeout of each run of the original and the rewrite while a rewrite is proven.')
ON CONFLICT (key) DO UPDATE SET (type, default_value, min_value, max_value, allowed, description)
    = (EXCLUDED.type, EXCLUDED.default_value, EXCLUDED.min_value, EXCLUDED.max_value, EXCLUDED.allowed, EXCLUDED.description);

INSERT INTO optischema.job_kinds (kind, description) VALUES
('rewrites', 'Find and prove query rewrites of the heaviest statements (optischema_sidecar.rewrites); queued by recommend().')
ON CONFLICT (kind) DO UPDATE SET description = EXCLUDED.description;

-- Queues a 'rewrites' job unless one is waiting or running, or rewrite_advice
-- is off. Returns the job's id, or NULL when none was queued.
CREATE OR REPLACE FUNCTION optischema.enqueue_rewrite_checks() RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT optischema.setting('rewrite_advice')::boolean THEN
        RETURN NULL;
    END IF;
    PERFORM optischema._xact_lock('enqueue_rewrite_checks');
    IF EXISTS (SELECT 1 FROM optischema.jobs j WHERE j.kind = 'rewrites' AND j.status IN ('pending', 'running')) THEN
        RETURN NULL;
    END IF;
    RETURN optischema.enqueue('rewrites', '{}');
END
$$;

-- The sidecar records a 'rewrites' job's outcome: p_advice is the proven
-- rewrites (key, title, sql, queryids, benefit, evidence, explanation, score),
-- p_checked the statements it looked at. The same rewrite keeps its row;
-- what a DBA dismissed stays dismissed; an open advisor rewrite of a checked
-- statement that was not proven again is superseded. p_adopted: per rewrite
-- (key), the captured statements with its text (the same parse tree, constants
-- aside: the application runs it now), kept in evidence.adopted_by for verify().
-- Returns the ids written.
CREATE OR REPLACE FUNCTION optischema._record_rewrites(p_checked bigint[], p_advice jsonb,
                                                       p_adopted jsonb DEFAULT '{}') RETURNS bigint[]
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ids bigint[];
BEGIN
    IF p_advice IS NULL OR jsonb_typeof(p_advice) <> 'array' THEN
        RAISE EXCEPTION 'rewrite advice must be a JSON array, got %', coalesce(jsonb_typeof(p_advice), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH w AS (
        INSERT INTO optischema._recommendations AS r
            (key, kind, source, title, ddl, queryids, benefit, evidence, score, explanation)
        SELECT x.key, 'rewrite', 'advisor', x.title, x.sql, ARRAY(SELECT jsonb_array_elements_text(x.queryids)::bigint),
               x.benefit, x.evidence, x.score, x.explanation
        FROM jsonb_to_recordset(p_advice) AS x(key text, title text, sql text, queryids jsonb, benefit jsonb,
                                               evidence jsonb, score double precision, explanation text)
        ON CONFLICT (key) DO UPDATE
        SET title = EXCLUDED.title, ddl = EXCLUDED.ddl, queryids = EXCLUDED.queryids, benefit = EXCLUDED.benefit,
            evidence = EXCLUDED.evidence, score = EXCLUDED.score, explanation = EXCLUDED.explanation,
            updated_at = now(), status = 'open',
            status_changed_at = CASE WHEN r.status = 'open' THEN r.status_changed_at ELSE now() END
        WHERE r.source = 'advisor' AND r.kind = 'rewrite' AND r.status IN ('open', 'superseded')
        RETURNING r.id)
    SELECT coalesce(array_agg(w.id ORDER BY w.id), '{}') INTO v_ids FROM w;

    PERFORM optischema._supersede_gone(ARRAY['rewrite'], p_advice, coalesce(p_checked, '{}'));

    UPDATE optischema._recommendations r
    SET evidence = r.evidence || jsonb_build_object('adopted_by', a.value), updated_at = now()
    FROM jsonb_each(coalesce(p_adopted, '{}')) a
    WHERE r.key = a.key AND r.kind = 'rewrite' AND jsonb_typeof(a.value) = 'array'
      AND r.evidence -> 'adopted_by' IS DISTINCT FROM a.value;
    RETURN v_ids;
END
$$;

-- verify() of a rewrite: the statement it replaces (queryids) before the
-- application ran the rewritten one (evidence.adopted_by, first seen in
-- snapshot F), over verify_window up to the snapshot before F, against the
-- rewritten statement from then on. One row per statement (the replaced ones
-- with their figures before, the new ones with theirs after) and a last row
-- (queryid NULL) comparing mean times, weighted by calls.
CREATE OR REPLACE FUNCTION optischema._verify_rewrite(r optischema._recommendations)
RETURNS TABLE (queryid bigint, calls_before bigint, mean_ms_before numeric, calls_after bigint,
               mean_ms_after numeric, change_pct numeric, verdict text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_new       bigint[] := ARRAY(SELECT jsonb_array_elements_text(
                                      CASE WHEN jsonb_typeof(r.evidence -> 'adopted_by') = 'array'
                                           THEN r.evidence -> 'adopted_by' ELSE '[]' END)::bigint);
    v_threshold numeric := optischema.setting('regression_threshold')::numeric;
    v_min_calls bigint := optischema.setting('verify_min_calls')::bigint;
    v_first     bigint;
    v_b_from    bigint;
    v_b_to      bigint;
    v_last      bigint := (SELECT max(s.id) FROM optischema.snapshots s);
BEGIN
    SELECT min(s.snapshot_id) INTO v_first FROM optischema.query_stats s WHERE s.queryid = ANY (v_new);
    IF v_first IS NULL THEN
        RAISE EXCEPTION 'recommendation % is a rewrite no captured statement runs yet', r.id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Once the application runs the rewritten statement, a snapshot and the next rewrites job '
                         '(queued by recommend()) find it; then verify again.';
    END IF;
    v_b_to := (SELECT max(s.id) FROM optischema.snapshots s WHERE s.id < v_first);
    v_b_from := coalesce(optischema._snapshot_before((SELECT s.taken_at FROM optischema.snapshots s WHERE s.id = v_b_to)
                                                     - optischema.setting('verify_window')::interval),
                         (SELECT min(s.id) FROM optischema.snapshots s));
    RETURN QUERY
    WITH b AS (SELECT w.queryid, w.calls, w.total_ms FROM optischema._query_window(v_b_from, v_b_to) w
               WHERE w.queryid = ANY (r.queryids) AND v_b_to IS NOT NULL AND w.calls > 0),
         a AS (SELECT w.queryid, w.calls, w.total_ms FROM optischema._query_window(coalesce(v_b_to, v_first), v_last) w
               WHERE w.queryid = ANY (v_new) AND w.calls > 0),
         t AS (SELECT (SELECT sum(b.calls) FROM b)::bigint AS cb, (SELECT sum(b.total_ms) / sum(b.calls) FROM b)::numeric AS mb,
                      (SELECT sum(a.calls) FROM a)::bigint AS ca, (SELECT sum(a.total_ms) / sum(a.calls) FROM a)::numeric AS ma),
         p AS (SELECT t.*, CASE WHEN t.cb > 0 AND t.ca >= v_min_calls AND t.mb > 0
                                THEN round(100 * (t.ma - t.mb) / t.mb, 2) END AS pct FROM t)
    SELECT b.queryid, b.calls, round((b.total_ms / b.calls)::numeric, 3), NULL::bigint, NULL::numeric, NULL::numeric,
           'replaced'::text FROM b
    UNION ALL
    SELECT a.queryid, NULL::bigint, NULL::numeric, a.calls, round((a.total_ms / a.calls)::numeric, 3), NULL::numeric,
           'rewrite'::text FROM a
    UNION ALL
    SELECT NULL::bigint, p.cb, round(p.mb, 3), p.ca, round(p.ma, 3), p.pct,
           CASE WHEN p.pct IS NULL THEN 'insufficient_data' WHEN p.pct > v_threshold THEN 'regressed'
                WHEN p.pct < -v_threshold THEN 'improved' ELSE 'neutral' END
    FROM p;
END
$$;
