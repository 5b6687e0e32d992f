-- The what-if advisor: the optischema_engine package, run in this backend
-- by PL/Python, over the analysis window. Each run is recorded in
-- optischema.analyses with the statements it skipped and why; recommend()
-- (sql/30_recommend.sql) keeps its results.

-- The advisor's knobs; the engine's Settings dataclass has the same names and
-- defaults (an interval key reaches it as <key>_s, in seconds; a size in bytes).
INSERT INTO optischema.setting_defs (key, type, default_value, min_value, max_value, allowed, description) VALUES
('statement_coverage', 'numeric', '0.999', 0, 1, NULL,
 'Read statements are analysed heaviest first until they cover this fraction of the window''s read statement time.'),
('min_calls', 'integer', '1', 1, 1000000000, NULL,
 'Calls a statement needs in the window to be analysed. 1: a statement run once is part of the workload, weighed by its time like any other.'),
('min_write_calls', 'integer', '2', 1, 1000000000, NULL,
 'Executions a write needs in the window to be charged as index upkeep (a data load run once is not the workload).'),
('max_queries', 'integer', '2000', 1, 100000, NULL,
 'Analyse at most this many read statements, heaviest first (a ceiling on the work).'),
('min_cost_reduction', 'numeric', '0.1', 0, 1, NULL,
 'An index counts for a query only if the query''s estimated cost falls by this fraction.'),
('min_index_gain', 'numeric', '0.05', 0, 1, NULL,
 'An index is proposed only if it saves the statements it serves more than its upkeep and size, and at least this fraction of their cost.'),
('write_cost_per_entry', 'numeric', '2.0', 0, 1000, NULL,
 'Planner cost units charged per index entry written by an INSERT or a non-HOT UPDATE.'),
('size_cost_per_mb', 'numeric', '0', 0, 1000000, NULL,
 'Cost units per workload round charged per MB of new index (0: size only breaks ties).'),
('index_budget', 'size', '0', NULL, NULL, NULL,
 'Total size of the new indexes proposed at most: a size (''2GB''), a share of the database (''20%''), or 0 for no limit.'),
('max_indexes_per_table', 'integer', '6', 0, 100, NULL,
 'New indexes proposed per table at most (a safety net: the total is not limited).'),
('max_key_columns', 'integer', '3', 1, 32, NULL,
 'Key columns of a proposed index at most (INCLUDE columns not counted).'),
('param_samples', 'integer', '3', 0, 20, NULL,
 'Representative parameter sets (from pg_stats, used locally) a query is also costed with.'),
('partial_max_fraction', 'numeric', '0.5', 0, 1, NULL,
 'A comparison with one constant every time (= or <>) becomes a partial-index predicate only if it keeps at most this fraction of rows.'),
('time_budget', 'interval', '60 seconds', NULL, NULL, NULL,
 'recommend() evaluates no further candidates after this long; the best set so far is kept.'),
('drop_unused_min_window', 'interval', '7 days', NULL, NULL, NULL,
 'An index with no scans is proposed for dropping only if the window observed is at least this long.'),
('use_pg_qualstats', 'boolean', 'true', NULL, NULL, NULL,
 'Use constants observed by pg_qualstats, when installed, as representative parameters and partial-index predicates.')
ON CONFLICT (key) DO UPDATE SET (type, default_value, min_value, max_value, allowed, description)
    = (EXCLUDED.type, EXCLUDED.default_value, EXCLUDED.min_value, EXCLUDED.max_value, EXCLUDED.allowed, EXCLUDED.description);

CREATE TABLE IF NOT EXISTS optischema.analyses (
    id           bigserial PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    finished_at  timestamptz,
    from_snapshot bigint,
    to_snapshot  bigint NOT NULL,
    recommendations integer,
    stats        jsonb NOT NULL DEFAULT '{}',
    skipped      jsonb NOT NULL DEFAULT '[]'     -- [{queryid, reason}]: what the advisor could not use
);
SELECT pg_catalog.pg_extension_config_dump('optischema.analyses', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.analyses_id_seq', '');

-- The workload window every analysis reads (recommend(), the LLM's context
-- and queue): from the snapshot before now - analysis_window to the latest,
-- and how long that is (without a snapshot before it, since the first one).
CREATE OR REPLACE FUNCTION optischema._analysis_window(OUT p_from bigint, OUT p_to bigint, OUT seconds double precision)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH w AS (
        SELECT optischema._snapshot_before(pg_catalog.now() - optischema.setting('analysis_window')::interval) AS f,
               (SELECT max(s.id) FROM optischema.snapshots s) AS t
    )
    SELECT w.f, w.t,
           extract(epoch FROM (SELECT s.taken_at FROM optischema.snapshots s WHERE s.id = w.t)
                            - coalesce((SELECT s.taken_at FROM optischema.snapshots s WHERE s.id = w.f),
                                       (SELECT min(s.taken_at) FROM optischema.snapshots s)))::double precision
    FROM w
$$;

-- The engine's settings: every setting, typed (intervals as <key>_s seconds).
CREATE OR REPLACE FUNCTION optischema._engine_settings() RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_object_agg(CASE WHEN s.type = 'interval' THEN s.key || '_s' ELSE s.key END,
                            CASE s.type
                                WHEN 'boolean'  THEN to_jsonb(s.value::boolean)
                                WHEN 'integer'  THEN to_jsonb(s.value::bigint)
                                WHEN 'numeric'  THEN to_jsonb(s.value::numeric)
                                WHEN 'interval' THEN to_jsonb(extract(epoch FROM s.value::interval))
                                WHEN 'size'     THEN to_jsonb(optischema._size_bytes(s.value))
                                ELSE to_jsonb(s.value) END)
    FROM optischema.settings s
$$;

-- Table and index activity over the window, in the engine's Activity shape.
-- An index counts as unused only over a window it existed for all along.
CREATE OR REPLACE FUNCTION optischema._activity(p_from bigint, p_to bigint) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH w AS (
        SELECT coalesce(p_from, (SELECT min(id) FROM optischema.snapshots)) AS first_id,
               -- without a snapshot before the window, the first one's figures go back to the stats reset
               coalesce((SELECT taken_at FROM optischema.snapshots WHERE id = p_from),
                        (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()),
                        (SELECT min(taken_at) FROM optischema.snapshots)) AS since,
               (SELECT taken_at FROM optischema.snapshots WHERE id = p_to) AS until
    )
    SELECT jsonb_build_object(
        'window_seconds', extract(epoch FROM w.until - w.since),
        'first_snapshot_at', w.since,
        'tables', coalesce((
            SELECT jsonb_object_agg(t.relid::bigint::text, jsonb_build_object(
                'seq_scan', t.seq_scan, 'idx_scan', t.idx_scan, 'n_tup_ins', t.ins, 'n_tup_upd', t.upd,
                'n_tup_del', t.del, 'n_tup_hot_upd', t.hot, 'n_live_tup', t.live))
            FROM (SELECT ts.relid, sum(ts.seq_scan) AS seq_scan, sum(ts.idx_scan) AS idx_scan,
                         sum(ts.n_tup_ins) AS ins, sum(ts.n_tup_upd) AS upd, sum(ts.n_tup_del) AS del,
                         sum(ts.n_tup_hot_upd) AS hot,
                         (array_agg(ts.n_live_tup ORDER BY ts.snapshot_id DESC))[1] AS live
                  FROM optischema.table_stats ts
                  WHERE ts.snapshot_id > coalesce(p_from, 0) AND ts.snapshot_id <= p_to
                  GROUP BY ts.relid) t), '{}'),
        'indexes', coalesce((
            SELECT jsonb_object_agg(i.indexrelid::bigint::text, jsonb_build_object('idx_scan', coalesce(
                (SELECT sum(x.idx_scan) FROM optischema.index_stats x
                 WHERE x.indexrelid = i.indexrelid AND x.snapshot_id > coalesce(p_from, 0) AND x.snapshot_id <= p_to), 0)))
            FROM optischema._index_state i
            WHERE i.first_seen <= w.first_id), '{}'))
    FROM w
$$;
