-- Chartable history: set-returning functions with one row per time bucket
-- (and statement, table or index), for pgAdmin's graph visualiser, Grafana's
-- PostgreSQL data source, psql, and report().
--
-- Statements are stored as running totals, so a bucket's figures are the
-- differences of each statement's totals at the bucket's edges; resets and
-- evictions of pg_stat_statements were folded into those totals at capture,
-- the way top_queries() sees them. Table and index activity is stored as
-- deltas and summed per bucket. What ran between two snapshots counts in the
-- bucket of the later one. A bucket in which no snapshot was taken has NULL
-- figures, not zeros: nothing is known about it (a gap in capture). History
-- begins at the first snapshot: what that one holds ran at unknown times.

-- The start of a window that reaches back `since` from now, or a clear error.
CREATE OR REPLACE FUNCTION optischema._history_since(p_since interval, p_example text) RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_since IS NULL OR p_since <= interval '0' OR p_since > interval '1000 years' THEN
        RAISE EXCEPTION 'since must be a positive interval of at most 1000 years, got %', coalesce(p_since::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example: ' || p_example || '.';
    END IF;
    RETURN now() - p_since;
END
$$;

-- The window of a history from p_start to p_end: the snapshot it starts
-- after (the first one when p_start is before it), the last one taken by
-- p_end, when the first bucket starts, and the bucket size: p_bucket, or the
-- smallest step of the ladder that gives at most 120 buckets and is at least
-- twice snapshot_interval (so that a snapshot taken a little late leaves no
-- bucket empty). buckets and counts: every bucket's start and how many
-- snapshots were taken in it. firsts and starts: the first snapshot of each
-- bucket that has one, and that bucket's start; snapshot ids grow with time,
-- so starts[width_bucket(snapshot_id, firsts)] is the bucket of a snapshot
-- without a join (table and index history read a row per table or index and
-- snapshot). from_id is NULL when there is no snapshot.
CREATE OR REPLACE FUNCTION optischema._history_window(p_start timestamptz, p_end timestamptz, p_bucket interval,
    p_example text, OUT from_id bigint, OUT to_id bigint, OUT start_at timestamptz, OUT end_at timestamptz,
    OUT step interval, OUT origin timestamptz, OUT buckets timestamptz[], OUT counts integer[],
    OUT firsts bigint[], OUT starts timestamptz[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_first   optischema.snapshots;
    v_seconds double precision;
BEGIN
    IF p_bucket IS NOT NULL AND (p_bucket < interval '1 second' OR extract(year FROM p_bucket) <> 0
                                 OR extract(month FROM p_bucket) <> 0) THEN
        RAISE EXCEPTION 'bucket must be at least 1 second and given in days, hours, minutes or seconds, got %', p_bucket
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example: ' || p_example || ' with bucket => ''1 hour'', or leave bucket out to have it chosen from the window.';
    END IF;
    -- Bucket edges are multiples of the step from a Monday midnight, local
    -- time: days start at midnight, weeks on Monday.
    origin := '2000-01-03 00:00'::timestamp::timestamptz;
    v_seconds := greatest(extract(epoch FROM p_end - p_start), 1);
    IF v_seconds / extract(epoch FROM p_bucket) > 10000 THEN
        RAISE EXCEPTION 'bucket % cuts the window into more than 10000 buckets', p_bucket
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('Use a bucket of at least %s, or leave it out to have it chosen from the window.',
                                justify_interval(make_interval(secs => ceil(v_seconds / 10000))));
    END IF;

    SELECT * INTO v_first FROM optischema.snapshots s ORDER BY s.id LIMIT 1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    from_id := optischema._snapshot_before(p_start);
    start_at := p_start;
    IF from_id IS NULL THEN
        from_id := v_first.id;
        start_at := greatest(p_start, v_first.taken_at);
    END IF;
    end_at := greatest(p_end, start_at);
    to_id := greatest((SELECT max(s.id) FROM optischema.snapshots s WHERE s.taken_at <= end_at), from_id);
    v_seconds := greatest(extract(epoch FROM end_at - start_at), 1);

    IF p_bucket IS NOT NULL THEN
        step := p_bucket;
    ELSE
        step := coalesce(
            (SELECT l.s FROM unnest('{1 minute,5 minutes,10 minutes,15 minutes,30 minutes,1 hour,2 hours,3 hours,6 hours,12 hours,1 day,2 days,7 days,14 days,28 days,84 days,364 days}'::interval[]) l (s)
             WHERE l.s >= 2 * optischema.setting('snapshot_interval')::interval
               AND v_seconds / extract(epoch FROM l.s) <= 120
             ORDER BY l.s LIMIT 1),
            interval '364 days');
    END IF;
    SELECT array_agg(b.bucket_start ORDER BY b.bucket_start), array_agg(b.n ORDER BY b.bucket_start),
           array_agg(b.first ORDER BY b.bucket_start) FILTER (WHERE b.n > 0),
           array_agg(b.bucket_start ORDER BY b.bucket_start) FILTER (WHERE b.n > 0)
    INTO buckets, counts, firsts, starts
    FROM (SELECT h.bucket_start, count(h.snapshot_id)::integer AS n, min(h.snapshot_id) AS first
          FROM optischema._history_buckets(from_id, to_id, start_at, end_at, step, origin) h
          GROUP BY h.bucket_start) b;
END
$$;

-- The buckets of a window, from the one its start falls in to the one its
-- end falls in, each with the snapshots taken in it (one row per snapshot;
-- one row with snapshot_id NULL for a bucket without any).
CREATE OR REPLACE FUNCTION optischema._history_buckets(p_from bigint, p_to bigint, p_start timestamptz,
                                                      p_end timestamptz, p_step interval, p_origin timestamptz)
RETURNS TABLE (bucket_start timestamptz, snapshot_id bigint)
LANGUAGE sql STABLE ROWS 10000
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT g.g, s.id
    FROM generate_series(date_bin(p_step, p_start, p_origin), date_bin(p_step, p_end, p_origin), p_step) g (g)
    LEFT JOIN optischema.snapshots s
           ON s.id > p_from AND s.id <= p_to AND date_bin(p_step, s.taken_at, p_origin) = g.g
$$;

-- What statements p_ids did per bucket of a window (see _history_window()),
-- in the buckets they ran in. Running totals never decrease, so a bucket's
-- largest is the total at its end, and the bucket's figure is the difference
-- from the previous bucket the statement ran in (the first: from its last
-- totals before the window, or zero for a statement first seen in it).
CREATE OR REPLACE FUNCTION optischema._query_buckets(p_ids bigint[], p_from bigint, p_to bigint, p_firsts bigint[],
                                                    p_starts timestamptz[])
RETURNS TABLE (queryid bigint, bucket_start timestamptz, calls bigint, total_ms double precision, rows bigint,
               temp_blks_written bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH q AS (
        SELECT DISTINCT u.queryid FROM unnest(p_ids) u (queryid)
    ), ends AS (
        SELECT x.queryid, p_starts[width_bucket(x.snapshot_id, p_firsts)] AS bucket_start, max(x.calls) AS calls,
               max(x.total_ms) AS total_ms, max(x.rows) AS rows, max(x.temp_blks_written) AS temp_blks_written
        FROM q JOIN optischema.query_stats x ON x.queryid = q.queryid AND x.snapshot_id > p_from AND x.snapshot_id <= p_to
        GROUP BY 1, 2
        UNION ALL
        SELECT b.queryid, '-infinity', b.calls, b.total_ms, b.rows, b.temp_blks_written
        FROM q CROSS JOIN LATERAL (
            SELECT x.* FROM optischema.query_stats x
            WHERE x.queryid = q.queryid AND x.snapshot_id <= p_from
            ORDER BY x.snapshot_id DESC LIMIT 1) b
    ), d AS (
        SELECT e.queryid, e.bucket_start,
               e.calls - lag(e.calls, 1, 0::bigint) OVER p AS calls,
               e.total_ms - lag(e.total_ms, 1, 0::double precision) OVER p AS total_ms,
               e.rows - lag(e.rows, 1, 0::bigint) OVER p AS rows,
               e.temp_blks_written - lag(e.temp_blks_written, 1, 0::bigint) OVER p AS temp_blks_written
        FROM ends e
        WINDOW p AS (PARTITION BY e.queryid ORDER BY e.bucket_start)
    )
    SELECT * FROM d WHERE d.bucket_start > '-infinity'
$$;

-- Statements over time: calls, time, rows and temp blocks per bucket, for the
-- n heaviest statements of the window (heaviest first, as top_queries()
-- orders them) or for the one statement query_id.
CREATE OR REPLACE FUNCTION optischema.query_history(since interval DEFAULT '1 day', n integer DEFAULT 5,
                                                   query_id bigint DEFAULT NULL, bucket interval DEFAULT NULL)
RETURNS TABLE (bucket_start timestamptz, bucket_end timestamptz, queryid bigint, calls bigint, total_ms numeric,
               mean_ms numeric, rows bigint, temp_blks_written bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    ex  text := 'optischema.query_history(''1 day'', 5)';
    w   record;
    ids bigint[];
BEGIN
    PERFORM optischema._check_count(n, 1, 'statements', ex);
    w := optischema._history_window(optischema._history_since(since, ex), now(), bucket, ex);
    IF query_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM optischema._query_state s WHERE s.queryid = query_id) THEN
        RAISE EXCEPTION 'statement % is not in OptiSchema''s history', query_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'SELECT queryid, query FROM optischema.top_queries(''1 day''); lists the statements of a window.';
    END IF;
    IF w.from_id IS NULL THEN
        RETURN;
    END IF;
    ids := CASE WHEN query_id IS NOT NULL THEN ARRAY[query_id]
                ELSE ARRAY(SELECT x.queryid FROM optischema._query_window(w.from_id, w.to_id) x
                           ORDER BY x.total_ms DESC, x.queryid LIMIT n) END;

    RETURN QUERY
    SELECT grid.bucket_start, grid.bucket_start + w.step, q.queryid,
           CASE WHEN grid.snapshots > 0 THEN coalesce(d.calls, 0) END,
           CASE WHEN grid.snapshots > 0 THEN round(coalesce(d.total_ms, 0)::numeric, 3) END,
           round((d.total_ms / nullif(d.calls, 0))::numeric, 3),
           CASE WHEN grid.snapshots > 0 THEN coalesce(d.rows, 0) END,
           CASE WHEN grid.snapshots > 0 THEN coalesce(d.temp_blks_written, 0) END
    FROM unnest(ids) WITH ORDINALITY q (queryid, rank)
    CROSS JOIN unnest(w.buckets, w.counts) grid (bucket_start, snapshots)
    LEFT JOIN optischema._query_buckets(ids, w.from_id, w.to_id, w.firsts, w.starts) d
           ON d.queryid = q.queryid AND d.bucket_start = grid.bucket_start
    ORDER BY q.rank, grid.bucket_start;
END
$$;

-- One table's or one index's history, and a change's index, read without
-- scanning every table's or index's rows of the window.
CREATE INDEX IF NOT EXISTS table_stats_relid_idx ON optischema.table_stats (relid, snapshot_id);
CREATE INDEX IF NOT EXISTS index_stats_indexrelid_idx ON optischema.index_stats (indexrelid, snapshot_id);

-- Raises a clear error unless p_rel is a table (p_index: or an index) whose
-- activity snapshot() records.
CREATE OR REPLACE FUNCTION optischema._check_history_relation(p_rel regclass, p_index boolean, p_example text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_rel IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pg_stat_user_tables t WHERE t.relid = p_rel AND t.schemaname <> 'optischema')
       AND NOT (p_index AND EXISTS (SELECT 1 FROM pg_stat_user_indexes i
                                    WHERE i.indexrelid = p_rel AND i.schemaname <> 'optischema')) THEN
        RAISE EXCEPTION '% is not a % whose activity OptiSchema records', p_rel,
                        CASE WHEN p_index THEN 'table or index' ELSE 'table' END
            USING ERRCODE = 'wrong_object_type', HINT = 'For example: ' || p_example || '.';
    END IF;
END
$$;

-- Tables over time: scans and rows written per bucket, and the live and dead
-- rows at the end of each bucket, for the n busiest tables of the window
-- (most scans and rows written first) or for one table (relation). The
-- busiest are ranked in one plain pass over the window's rows (a month of a
-- busy database is a few hundred thousand); only theirs are then bucketed,
-- by hashing (work_mem keeps the planner from sorting them instead).
CREATE OR REPLACE FUNCTION optischema.table_history(since interval DEFAULT '1 day', n integer DEFAULT 5,
                                                   relation regclass DEFAULT NULL, bucket interval DEFAULT NULL)
RETURNS TABLE (bucket_start timestamptz, bucket_end timestamptz, table_name text, seq_scan bigint, idx_scan bigint,
               n_tup_ins bigint, n_tup_upd bigint, n_tup_del bigint, n_tup_hot_upd bigint,
               n_live_tup bigint, n_dead_tup bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET work_mem = '16MB'
AS $$
#variable_conflict use_column
DECLARE
    ex  text := 'optischema.table_history(''1 day'', 5)';
    w   record;
    ids oid[];
BEGIN
    PERFORM optischema._check_count(n, 1, 'tables', ex);
    w := optischema._history_window(optischema._history_since(since, ex), now(), bucket, ex);
    PERFORM optischema._check_history_relation(relation, false, 'optischema.table_history(''1 day'', relation => ''public.orders'')');
    IF w.from_id IS NULL THEN
        RETURN;
    END IF;
    ids := CASE WHEN relation IS NOT NULL THEN ARRAY[relation::oid]
                ELSE ARRAY(SELECT x.relid FROM optischema.table_stats x
                           WHERE x.snapshot_id > w.from_id AND x.snapshot_id <= w.to_id
                           GROUP BY x.relid
                           ORDER BY sum(x.seq_scan + x.idx_scan + x.n_tup_ins + x.n_tup_upd + x.n_tup_del) DESC, x.relid
                           LIMIT n) END;

    RETURN QUERY
    WITH agg AS (
        SELECT x.relid, w.starts[width_bucket(x.snapshot_id, w.firsts)] AS bucket_start, sum(x.seq_scan) AS seq_scan,
               sum(x.idx_scan) AS idx_scan, sum(x.n_tup_ins) AS ins, sum(x.n_tup_upd) AS upd, sum(x.n_tup_del) AS del,
               sum(x.n_tup_hot_upd) AS hot, max(x.snapshot_id) AS last_id
        FROM optischema.table_stats x
        WHERE x.relid = ANY (ids) AND x.snapshot_id > w.from_id AND x.snapshot_id <= w.to_id
        GROUP BY 1, 2
    ), g AS (
        -- Live and dead rows are levels, not deltas: those of the bucket's last
        -- row for the table, else of the last row before (grp counts them).
        SELECT t.rank, t.relid, grid.bucket_start, grid.snapshots, agg.seq_scan, agg.idx_scan, agg.ins, agg.upd,
               agg.del, agg.hot, lv.n_live_tup, lv.n_dead_tup,
               count(agg.last_id) OVER (PARTITION BY t.relid ORDER BY grid.bucket_start) AS grp
        FROM unnest(ids) WITH ORDINALITY t (relid, rank)
        CROSS JOIN unnest(w.buckets, w.counts) grid (bucket_start, snapshots)
        LEFT JOIN agg ON agg.relid = t.relid AND agg.bucket_start = grid.bucket_start
        LEFT JOIN LATERAL (
            SELECT x.n_live_tup, x.n_dead_tup FROM optischema.table_stats x
            WHERE x.snapshot_id = agg.last_id AND x.relid = t.relid) lv ON true
    ), l AS (
        SELECT g.*, first_value(g.n_live_tup) OVER (PARTITION BY g.relid, g.grp ORDER BY g.bucket_start) AS live,
               first_value(g.n_dead_tup) OVER (PARTITION BY g.relid, g.grp ORDER BY g.bucket_start) AS dead
        FROM g
    )
    SELECT l.bucket_start, l.bucket_start + w.step,
           coalesce(quote_ident(ns.nspname) || '.' || quote_ident(c.relname), l.relid::text),
           CASE WHEN l.snapshots > 0 THEN coalesce(l.seq_scan, 0) END::bigint,
           CASE WHEN l.snapshots > 0 THEN coalesce(l.idx_scan, 0) END::bigint,
           CASE WHEN l.snapshots > 0 THEN coalesce(l.ins, 0) END::bigint,
           CASE WHEN l.snapshots > 0 THEN coalesce(l.upd, 0) END::bigint,
           CASE WHEN l.snapshots > 0 THEN coalesce(l.del, 0) END::bigint,
           CASE WHEN l.snapshots > 0 THEN coalesce(l.hot, 0) END::bigint,
           CASE WHEN l.grp > 0 THEN l.live ELSE p.n_live_tup END,
           CASE WHEN l.grp > 0 THEN l.dead ELSE p.n_dead_tup END
    FROM l
    LEFT JOIN LATERAL (
        SELECT x.n_live_tup, x.n_dead_tup FROM optischema.table_stats x
        WHERE x.relid = l.relid AND x.snapshot_id <= w.from_id AND l.grp = 0
        ORDER BY x.snapshot_id DESC LIMIT 1) p ON true
    LEFT JOIN pg_class c ON c.oid = l.relid
    LEFT JOIN pg_namespace ns ON ns.oid = c.relnamespace
    ORDER BY l.rank, l.bucket_start;
END
$$;

-- Indexes over time: scans per bucket for the n most scanned indexes of the
-- window, for every index of one table, or for one index (relation). Before
-- snapshot() first saw an index its scans are NULL (it may not have existed
-- yet): an index that stopped being used shows zeros, a new one starts where
-- it began. Ranked and bucketed as table_history() does.
CREATE OR REPLACE FUNCTION optischema.index_history(since interval DEFAULT '1 day', n integer DEFAULT 10,
                                                   relation regclass DEFAULT NULL, bucket interval DEFAULT NULL)
RETURNS TABLE (bucket_start timestamptz, bucket_end timestamptz, index_name text, table_name text, idx_scan bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET work_mem = '16MB'
AS $$
#variable_conflict use_column
DECLARE
    ex  text := 'optischema.index_history(''1 day'', 10)';
    w   record;
    ids oid[];
BEGIN
    PERFORM optischema._check_count(n, 1, 'indexes', ex);
    w := optischema._history_window(optischema._history_since(since, ex), now(), bucket, ex);
    PERFORM optischema._check_history_relation(relation, true, 'optischema.index_history(''1 day'', relation => ''public.orders'')');
    IF w.from_id IS NULL THEN
        RETURN;
    END IF;
    ids := CASE WHEN relation IS NOT NULL
                THEN ARRAY(SELECT i.indexrelid FROM pg_stat_user_indexes i
                           WHERE i.indexrelid = relation OR i.relid = relation ORDER BY i.indexrelname)
                ELSE ARRAY(SELECT x.indexrelid FROM optischema.index_stats x
                           WHERE x.snapshot_id > w.from_id AND x.snapshot_id <= w.to_id
                           GROUP BY x.indexrelid ORDER BY sum(x.idx_scan) DESC, x.indexrelid LIMIT n) END;

    RETURN QUERY
    WITH agg AS (
        SELECT x.indexrelid, w.starts[width_bucket(x.snapshot_id, w.firsts)] AS bucket_start, sum(x.idx_scan) AS scans
        FROM optischema.index_stats x
        WHERE x.indexrelid = ANY (ids) AND x.snapshot_id > w.from_id AND x.snapshot_id <= w.to_id
        GROUP BY 1, 2
    ), grid AS (
        -- the bucket's last snapshot: the first of the next one that has any, less one
        SELECT g.bucket_start, g.snapshots,
               coalesce(w.firsts[width_bucket(g.bucket_start, w.starts) + 1] - 1, w.to_id) AS last_id
        FROM unnest(w.buckets, w.counts) g (bucket_start, snapshots)
    )
    SELECT grid.bucket_start, grid.bucket_start + w.step,
           coalesce(quote_ident(ni.nspname) || '.' || quote_ident(ci.relname), i.indexrelid::text),
           coalesce(quote_ident(nt.nspname) || '.' || quote_ident(ct.relname),
                    (SELECT x.relid::text FROM optischema.index_stats x WHERE x.indexrelid = i.indexrelid LIMIT 1)),
           CASE WHEN grid.snapshots > 0 AND grid.last_id >= st.first_seen THEN coalesce(agg.scans, 0) END::bigint
    FROM unnest(ids) WITH ORDINALITY i (indexrelid, rank)
    CROSS JOIN grid
    LEFT JOIN agg ON agg.indexrelid = i.indexrelid AND agg.bucket_start = grid.bucket_start
    LEFT JOIN optischema._index_state st ON st.indexrelid = i.indexrelid
    LEFT JOIN pg_class ci ON ci.oid = i.indexrelid
    LEFT JOIN pg_namespace ni ON ni.oid = ci.relnamespace
    LEFT JOIN pg_index ix ON ix.indexrelid = i.indexrelid
    LEFT JOIN pg_class ct ON ct.oid = ix.indrelid
    LEFT JOIN pg_namespace nt ON nt.oid = ct.relnamespace
    ORDER BY i.rank, grid.bucket_start;
END
$$;

-- Capture over time: snapshots taken per bucket (none: a gap), statements
-- that ran, resets of pg_stat_statements, entries it evicted, and how long
-- snapshots took.
CREATE OR REPLACE FUNCTION optischema.snapshot_history(since interval DEFAULT '1 day', bucket interval DEFAULT NULL)
RETURNS TABLE (bucket_start timestamptz, bucket_end timestamptz, snapshots integer, statements_changed bigint,
               resets integer, evicted bigint, mean_duration_ms numeric, max_duration_ms numeric)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    ex text := 'optischema.snapshot_history(''1 day'')';
    w  record;
BEGIN
    w := optischema._history_window(optischema._history_since(since, ex), now(), bucket, ex);
    IF w.from_id IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT bk.bucket_start, bk.bucket_start + w.step, count(s.id)::integer,
           CASE WHEN count(s.id) > 0 THEN coalesce(sum(s.changed), 0) END::bigint,
           count(s.id) FILTER (WHERE s.reset_detected)::integer,
           CASE WHEN count(s.id) > 0 THEN sum(s.evicted) END::bigint,
           round(avg(s.duration_ms)::numeric, 3), round(max(s.duration_ms)::numeric, 3)
    FROM optischema._history_buckets(w.from_id, w.to_id, w.start_at, w.end_at, w.step, w.origin) bk
    LEFT JOIN optischema.snapshots s ON s.id = bk.snapshot_id
    GROUP BY bk.bucket_start
    ORDER BY bk.bucket_start;
END
$$;

-- A change's before and after: the statements of its recommendation, all
-- together, per bucket from verify_window before the change was requested
-- to verify_window after it finished (or now), and the scans of its index
-- while that exists (NULL before snapshot() first saw it). mean_ms is their
-- time over their calls. phase is
-- 'before' when every snapshot of the bucket was taken before the request,
-- 'after' when every one measures time after the change finished (from the
-- first snapshot once it finished, as verify() counts), else 'during'.
CREATE OR REPLACE FUNCTION optischema.change_history(change_id bigint, bucket interval DEFAULT NULL)
RETURNS TABLE (bucket_start timestamptz, bucket_end timestamptz, phase text, calls bigint, total_ms numeric,
               mean_ms numeric, index_scans bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    c        optischema._changes;
    ids      bigint[];
    v_window interval := optischema.setting('verify_window')::interval;
    v_index  oid;
    v_seen   bigint;
    v_after  bigint;
    w        record;
BEGIN
    SELECT * INTO c FROM optischema._changes x WHERE x.id = change_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'change % does not exist', coalesce(change_id::text, 'NULL')
            USING ERRCODE = 'no_data_found', HINT = 'SELECT id, title, action, outcome FROM optischema.changes ORDER BY id DESC;';
    END IF;
    w := optischema._history_window(c.requested_at - v_window, least(coalesce(c.finished_at, now()) + v_window, now()),
                                    bucket, format('optischema.change_history(%s)', change_id));
    IF w.from_id IS NULL THEN
        RETURN;
    END IF;
    ids := (SELECT r.queryids FROM optischema._recommendations r WHERE r.id = c.recommendation_id);
    -- (a change of a setting names no relation)
    v_index := CASE WHEN c.index_name IS NOT NULL THEN to_regclass(format('%I.%I', c.index_schema, c.index_name)) END;
    v_seen := (SELECT st.first_seen FROM optischema._index_state st WHERE st.indexrelid = v_index);
    v_after := (SELECT min(s.id) FROM optischema.snapshots s WHERE s.taken_at >= c.finished_at);

    RETURN QUERY
    WITH grid AS (
        SELECT bk.bucket_start, count(bk.snapshot_id) AS snapshots, max(bk.snapshot_id) AS last_snapshot,
               bool_and(s.taken_at <= c.requested_at) AS before, bool_and(bk.snapshot_id > v_after) AS after
        FROM optischema._history_buckets(w.from_id, w.to_id, w.start_at, w.end_at, w.step, w.origin) bk
        LEFT JOIN optischema.snapshots s ON s.id = bk.snapshot_id
        GROUP BY bk.bucket_start
    ), d AS (
        SELECT d.bucket_start, sum(d.calls) AS calls, sum(d.total_ms) AS total_ms
        FROM optischema._query_buckets(ids, w.from_id, w.to_id, w.firsts, w.starts) d
        GROUP BY d.bucket_start
    ), i AS (
        SELECT w.starts[width_bucket(x.snapshot_id, w.firsts)] AS bucket_start, sum(x.idx_scan) AS scans
        FROM optischema.index_stats x
        WHERE x.indexrelid = v_index AND x.snapshot_id > w.from_id AND x.snapshot_id <= w.to_id
        GROUP BY 1
    )
    SELECT grid.bucket_start, grid.bucket_start + w.step,
           CASE WHEN grid.snapshots = 0 THEN NULL WHEN grid.before THEN 'before' WHEN grid.after THEN 'after'
                ELSE 'during' END,
           CASE WHEN grid.snapshots > 0 THEN coalesce(d.calls, 0) END::bigint,
           CASE WHEN grid.snapshots > 0 THEN round(coalesce(d.total_ms, 0)::numeric, 3) END,
           round((d.total_ms / nullif(d.calls, 0))::numeric, 3),
           CASE WHEN grid.snapshots > 0 AND grid.last_snapshot >= v_seen THEN coalesce(i.scans, 0) END::bigint
    FROM grid
    LEFT JOIN d ON d.bucket_start = grid.bucket_start
    LEFT JOIN i ON i.bucket_start = grid.bucket_start
    ORDER BY grid.bucket_start;
END
$$;
