-- The report: one self-contained HTML page (no script, no network, charts as
-- inline SVG) with the heaviest statements and their trend, the open
-- recommendations with their evidence, recent changes with their measured
-- before and after, table and index activity, and health findings.
--
--   psql -At -c "SELECT optischema.report(since => '1 day')" > report.html
--
-- bucket: the charts' time step (default: chosen from the window, as the
-- history functions choose it; a change's chart spans its own window, so
-- its step is always chosen).
--
-- report_data() gathers the content as JSON with the caller's rights, only
-- through what the caller may read in SQL anyway: top_queries() and
-- query_texts show statement texts as pg_stat_statements would show them to
-- the caller; recommendations and changes are the reader views. It never
-- reads pg_stats, and leaves out what the LLM wrote (titles, DDL and
-- explanations of its proposals: model output can quote data values). The
-- engine's report module draws it, here through render_report() and in the
-- sidecar (GET /report on its loopback port) from report_data() directly.

CREATE OR REPLACE FUNCTION optischema.report_data(since interval DEFAULT '1 day', bucket interval DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_statements jsonb;
    v_recs       jsonb;
    v_changes    jsonb;
    v_ids        bigint[];
BEGIN
    -- First, so that every part below sees the snapshot it may take.
    v_statements := (SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.total_ms DESC, t.queryid), '[]')
                     FROM optischema.top_queries(since, 10) t);
    -- Their history: the same ten, but for a window that reaches back before
    -- the first snapshot, where top_queries() also counts statements that
    -- ran only before it, at times unknown (they have none).
    v_statements := (
        SELECT coalesce(jsonb_agg(s || jsonb_build_object('history', coalesce(h.rows, '[]')) ORDER BY s.n), '[]')
        FROM jsonb_array_elements(v_statements) WITH ORDINALITY s (s, n)
        LEFT JOIN (SELECT h.queryid, jsonb_agg(jsonb_build_object('t', h.bucket_start, 'calls', h.calls,
                                                                  'total_ms', h.total_ms, 'mean_ms', h.mean_ms)
                                               ORDER BY h.bucket_start) AS rows
                   FROM optischema.query_history(since, 10, bucket => bucket) h GROUP BY h.queryid) h
               ON h.queryid = (s ->> 'queryid')::bigint);

    v_recs := (
        SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'id', r.id, 'kind', r.kind, 'source', r.source,
                   'title', CASE WHEN r.source = 'advisor' THEN r.title END,
                   'ddl', CASE WHEN r.source = 'advisor' THEN r.ddl END,
                   'table', r.table_name, 'score', r.score, 'estimated_size_bytes', r.estimated_size_bytes,
                   'db_time_share', r.benefit -> 'db_time_share', 'freed_bytes', r.benefit -> 'freed_bytes',
                   'reason', CASE WHEN r.source = 'advisor' THEN r.evidence -> 'reason' END,
                   'created_at', r.created_at,
                   'queries', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                   'queryid', e -> 'queryid', 'calls', e -> 'calls', 'cost_before', e -> 'cost_before',
                                   'cost_after', e -> 'cost_after', 'reduction_pct', e -> 'reduction_pct')), '[]')
                               FROM jsonb_array_elements(CASE WHEN jsonb_typeof(r.benefit -> 'queries') = 'array'
                                                              THEN r.benefit -> 'queries' ELSE '[]' END) e))
                   ORDER BY r.score DESC, r.id), '[]')
        FROM (SELECT * FROM optischema.recommendations x WHERE x.status = 'open'
              ORDER BY x.score DESC, x.id LIMIT 10) r);

    v_changes := (
        SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'id', c.id, 'recommendation_id', c.recommendation_id, 'kind', r.kind, 'source', r.source,
                   'title', CASE WHEN r.source = 'advisor' THEN c.title END,
                   'ddl', CASE WHEN r.source = 'advisor' THEN c.ddl END,
                   'action', c.action, 'via', c.via, 'outcome', c.outcome, 'error', c.error,
                   'requested_at', c.requested_at, 'finished_at', c.finished_at, 'duration_ms', c.duration_ms,
                   'plan_check', c.plan_check, 'timing_verdict', c.timing_verdict,
                   'change_pct', c.timing -> 'change_pct',
                   'mean_ms_before', m.before, 'mean_ms_after', m.after,
                   'history', (SELECT coalesce(jsonb_agg(jsonb_build_object('t', h.bucket_start, 'phase', h.phase,
                                                   'calls', h.calls, 'mean_ms', h.mean_ms, 'index_scans', h.index_scans)
                                                 ORDER BY h.bucket_start), '[]')
                               FROM optischema.change_history(c.id) h))
                   ORDER BY c.id DESC), '[]')
        FROM (SELECT * FROM optischema.changes x WHERE x.requested_at > now() - since ORDER BY x.id DESC LIMIT 10) c
        JOIN optischema.recommendations r ON r.id = c.recommendation_id
        -- verify()'s figures: the statements it could judge, weighted by their calls after
        CROSS JOIN LATERAL (
            SELECT round(sum(ca * mb) / nullif(sum(ca), 0), 3) AS before, round(sum(ca * ma) / nullif(sum(ca), 0), 3) AS after
            FROM jsonb_array_elements(CASE WHEN jsonb_typeof(c.timing -> 'queries') = 'array' THEN c.timing -> 'queries' ELSE '[]' END) q,
                 LATERAL (SELECT (q ->> 'calls_after')::numeric AS ca, (q ->> 'mean_ms_before')::numeric AS mb,
                                 (q ->> 'mean_ms_after')::numeric AS ma) v
            WHERE q ->> 'change_pct' IS NOT NULL) m);

    -- Statements the recommendations and changes name beyond the heaviest: their texts, as the caller may see them.
    v_ids := ARRAY(SELECT DISTINCT (e ->> 'queryid')::bigint
                   FROM jsonb_array_elements(v_recs) r, jsonb_array_elements(r -> 'queries') e
                   WHERE jsonb_typeof(e -> 'queryid') = 'number');

    RETURN jsonb_build_object(
        'format', 1,
        'version', '@EXTVERSION@',
        'database', current_database(),
        'role', current_user,
        'since', since::text,
        'since_s', extract(epoch FROM since),
        'generated_at', now(),
        'statements', v_statements,
        'texts', (SELECT coalesce(jsonb_object_agg(t.queryid::text, t.query), '{}')
                  FROM optischema.query_texts t WHERE t.queryid = ANY (v_ids)),
        'recommendations', v_recs,
        'changes', v_changes,
        'tables', (SELECT coalesce(jsonb_agg(jsonb_build_object('name', h.table_name, 'history', h.rows) ORDER BY h.first), '[]')
                   FROM (SELECT t.table_name, min(t.ord) AS first,
                                jsonb_agg(jsonb_build_object('t', t.bucket_start, 'seq_scan', t.seq_scan, 'idx_scan', t.idx_scan,
                                              'n_tup_ins', t.n_tup_ins, 'n_tup_upd', t.n_tup_upd, 'n_tup_del', t.n_tup_del,
                                              'n_live_tup', t.n_live_tup, 'n_dead_tup', t.n_dead_tup) ORDER BY t.bucket_start) AS rows
                         FROM optischema.table_history(since, 5, bucket => bucket) WITH ORDINALITY t (bucket_start, bucket_end, table_name, seq_scan,
                              idx_scan, n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd, n_live_tup, n_dead_tup, ord)
                         GROUP BY t.table_name) h),
        'indexes', (SELECT coalesce(jsonb_agg(jsonb_build_object('name', h.index_name, 'table', h.table_name, 'history', h.rows)
                                              ORDER BY h.first), '[]')
                    FROM (SELECT i.index_name, i.table_name, min(i.ord) AS first,
                                 jsonb_agg(jsonb_build_object('t', i.bucket_start, 'idx_scan', i.idx_scan) ORDER BY i.bucket_start) AS rows
                          FROM optischema.index_history(since, 8, bucket => bucket) WITH ORDINALITY i (bucket_start, bucket_end, index_name, table_name,
                               idx_scan, ord)
                          GROUP BY i.index_name, i.table_name) h),
        'capture', (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.bucket_start), '[]') FROM optischema.snapshot_history(since, bucket) s),
        'health', (SELECT coalesce(jsonb_agg(to_jsonb(h)), '[]') FROM optischema.health() h));
END
$$;

CREATE OR REPLACE FUNCTION optischema.report(since interval DEFAULT '1 day', bucket interval DEFAULT NULL) RETURNS text
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT optischema.render_report(optischema.report_data(since, bucket))
$$;
