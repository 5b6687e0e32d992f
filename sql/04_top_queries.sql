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

-- Whether p_role may read the text of statement p_queryid, as
-- pg_stat_statements decides for its own view: a member of pg_read_all_stats
-- (or a superuser) reads every text, others only those of statements sent by
-- a role they are a member of. The one rule behind query_texts and the row
-- security of optischema.queries. Definer's rights, to read query_roles; it
-- tells no more than pg_auth_members does.
CREATE OR REPLACE FUNCTION optischema._text_visible(p_queryid bigint, p_role name) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.pg_has_role(p_role, 'pg_read_all_stats', 'MEMBER')
           OR EXISTS (SELECT 1 FROM optischema.query_roles r JOIN pg_catalog.pg_roles a
                             ON a.oid = r.userid AND a.rolname = r.rolname
                      WHERE r.queryid = p_queryid AND pg_catalog.pg_has_role(p_role, r.userid, 'MEMBER'))
$$;

-- Captured statement texts as pg_stat_statements shows them to the current
-- user; the others read '<insufficient privilege>'. Readers are granted this
-- view, never the table: a view reads it as its owner, while current_user in
-- it stays the reader.
-- A statement pg_stat_statements never counted (it never finished) has the
-- text of its latest execution seen running (optischema.running_statements),
-- constants included, shown as pg_stat_activity shows it: to members of the
-- role that ran it.
CREATE OR REPLACE VIEW optischema.query_texts WITH (security_barrier) AS
SELECT q.queryid, CASE WHEN v.visible THEN q.query ELSE '<insufficient privilege>' END AS query, v.visible
FROM optischema.queries q
CROSS JOIN LATERAL (SELECT optischema._text_visible(q.queryid, CURRENT_USER) AS visible) v
UNION ALL
SELECT r.queryid, CASE WHEN v.visible THEN r.query ELSE '<insufficient privilege>' END, v.visible
FROM (SELECT DISTINCT ON (x.queryid) x.* FROM optischema.running_statements x
      WHERE NOT EXISTS (SELECT 1 FROM optischema.queries q WHERE q.queryid = x.queryid)
      ORDER BY x.queryid, x.last_seen DESC, x.query_start DESC) r
CROSS JOIN LATERAL (
    SELECT pg_catalog.pg_has_role(CURRENT_USER, 'pg_read_all_stats', 'MEMBER')
           OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles a WHERE a.oid = r.userid AND a.rolname = r.rolname
                      AND pg_catalog.pg_has_role(CURRENT_USER, a.oid, 'MEMBER')) AS visible) v;

-- Roles that read optischema.queries itself (admins: recommend() and context()
-- run with their rights) get only the rows whose text they may read; the
-- owner's functions (snapshot()) see every row.
ALTER TABLE optischema.queries ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS queries_visible ON optischema.queries;
CREATE POLICY queries_visible ON optischema.queries FOR SELECT
    USING (optischema._text_visible(queryid, CURRENT_USER));

-- The figures of top_queries(), without texts: they are everyone's to see
-- (pg_stat_statements shows them too). Definer's rights: it may take a
-- snapshot and reads the tables.
-- Executions seen running that pg_stat_statements has not counted are in
-- calls and total_ms (at the time they had run when last seen); state says
-- 'running' (one is now), 'never finished' (one was cancelled, timed out or
-- lost its session) or 'finished'.
CREATE OR REPLACE FUNCTION optischema._top_queries(since interval, n integer)
RETURNS TABLE (queryid bigint, calls bigint, total_ms numeric, mean_ms numeric,
               rows bigint, share_pct numeric, cache_hit_pct numeric, temp_blks_written bigint, state text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_to   bigint;
    v_from bigint;
BEGIN
    IF since IS NULL OR since <= interval '0' THEN
        RAISE EXCEPTION 'since must be a positive interval, got %', coalesce(since::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example: optischema.top_queries(''1 hour'').';
    END IF;
    -- now() - since must stay a timestamp
    IF since > interval '1000 years' THEN
        RAISE EXCEPTION 'since must be at most 1000 years, got %', since
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Everything captured so far: optischema.top_queries(''1000 years'').';
    END IF;
    PERFORM optischema._check_count(n, 1, 'rows', 'optischema.top_queries(''1 hour'', 20)');
    v_to := optischema._refresh_snapshot();
    v_from := optischema._snapshot_before(now() - since);

    RETURN QUERY
    SELECT j.queryid, j.calls,
           round(j.total_ms::numeric, 3),
           round((j.total_ms / nullif(j.calls, 0))::numeric, 3),
           j.rows,
           round((100 * j.total_ms / nullif(sum(j.total_ms) OVER (), 0))::numeric, 2),
           round((100.0 * j.blks_hit / nullif(j.blks_hit + j.blks_read, 0))::numeric, 2),
           j.temp_blks_written, j.state
    FROM (SELECT coalesce(w.queryid, u.queryid) AS queryid,
                 coalesce(w.calls, 0) + coalesce(u.executions, 0) AS calls,
                 coalesce(w.total_ms, 0) + coalesce(u.total_ms, 0) AS total_ms,
                 w.rows, w.blks_hit, w.blks_read, w.temp_blks_written,
                 CASE WHEN u.running THEN 'running' WHEN u.queryid IS NOT NULL THEN 'never finished'
                      ELSE 'finished' END AS state
          FROM optischema._query_window(v_from, v_to) w
          FULL JOIN optischema._unfinished_window(v_from, v_to) u ON u.queryid = w.queryid) j
    ORDER BY j.total_ms DESC, j.queryid
    LIMIT n;
END
$$;

-- The caller's rights: texts come through query_texts, which shows the
-- caller what pg_stat_statements would. Read one statement after the
-- figures, so that a snapshot _top_queries() just took is seen.
CREATE OR REPLACE FUNCTION optischema.top_queries(since interval DEFAULT '1 hour', n integer DEFAULT 20)
RETURNS TABLE (queryid bigint, query text, calls bigint, total_ms numeric, mean_ms numeric,
               rows bigint, share_pct numeric, cache_hit_pct numeric, temp_blks_written bigint, state text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT * FROM optischema._top_queries(since, n) LOOP
        queryid := f.queryid;
        query := (SELECT t.query FROM optischema.query_texts t WHERE t.queryid = f.queryid);
        calls := f.calls;
        total_ms := f.total_ms;
        mean_ms := f.mean_ms;
        rows := f.rows;
        share_pct := f.share_pct;
        cache_hit_pct := f.cache_hit_pct;
        temp_blks_written := f.temp_blks_written;
        state := f.state;
        RETURN NEXT;
    END LOOP;
END
$$;
