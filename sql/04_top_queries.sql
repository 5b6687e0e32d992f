-- The workload "dashboard", in SQL. Every statement that ran in the window
-- is there, single-call ones included: no thresholds hide anything.

-- The snapshot a window starting at p_since begins after (NULL: the window
-- reaches back past the first snapshot).
CREATE OR REPLACE FUNCTION optischema._snapshot_before(p_since timestamptz) RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT max(id) FROM optischema.snapshots WHERE taken_at <= p_since
$$;

CREATE OR REPLACE FUNCTION optischema.top_queries(since interval DEFAULT '1 hour', n integer DEFAULT 20)
RETURNS TABLE (queryid bigint, query text, calls bigint, total_ms numeric, mean_ms numeric,
               rows bigint, share_pct numeric, cache_hit_pct numeric, temp_blks_written bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_to bigint;
BEGIN
    IF since IS NULL OR since <= interval '0' THEN
        RAISE EXCEPTION 'since must be a positive interval, got %', coalesce(since::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example: optischema.top_queries(''1 hour'').';
    END IF;
    PERFORM optischema._check_count(n, 1, 'rows', 'optischema.top_queries(''1 hour'', 20)');
    v_to := optischema._refresh_snapshot();

    RETURN QUERY
    SELECT w.queryid, q.query, w.calls,
           round(w.total_ms::numeric, 3),
           round((w.total_ms / nullif(w.calls, 0))::numeric, 3),
           w.rows,
           round((100 * w.total_ms / nullif(sum(w.total_ms) OVER (), 0))::numeric, 2),
           round((100.0 * w.blks_hit / nullif(w.blks_hit + w.blks_read, 0))::numeric, 2),
           w.temp_blks_written
    FROM optischema._query_window(optischema._snapshot_before(now() - since), v_to) w
    JOIN optischema.queries q ON q.queryid = w.queryid
    ORDER BY w.total_ms DESC, w.queryid
    LIMIT n;
END
$$;
