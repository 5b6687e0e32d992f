-- Built from sql/*.sql by make; edit those, not this file.
\echo Use "CREATE EXTENSION optischema CASCADE" to load this file. \quit

-- sql/01_settings.sql
-- Settings: one documented list of keys (setting_defs, shipped by the
-- extension) and the values a DBA changed (settings_set, dumped by pg_dump).
-- The view optischema.settings shows both; optischema.set_setting() writes,
-- validating key and value, so a typo is an error and not a silent no-op.

CREATE TABLE optischema.setting_defs (
    key         text PRIMARY KEY,
    type        text NOT NULL CHECK (type IN ('interval', 'integer', 'numeric', 'boolean', 'text')),
    default_value text NOT NULL,
    min_value   numeric,
    max_value   numeric,
    allowed     text[],
    description text NOT NULL
);

CREATE TABLE optischema.settings_set (
    key     text PRIMARY KEY REFERENCES optischema.setting_defs (key),
    value   text NOT NULL,
    set_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    set_by  name NOT NULL DEFAULT CURRENT_USER
);
SELECT pg_catalog.pg_extension_config_dump('optischema.settings_set', '');

INSERT INTO optischema.setting_defs (key, type, default_value, min_value, max_value, allowed, description) VALUES
('retention', 'interval', '7 days', NULL, NULL, NULL,
 'How long snapshot data is kept; optischema.purge() removes older rows.'),
('top_queries_refresh', 'interval', '1 minute', NULL, NULL, NULL,
 'top_queries() takes a snapshot first when the latest one is older than this (0 turns it off).'),
('snapshot_interval', 'interval', '5 minutes', NULL, NULL, NULL,
 'How often the sidecar takes a snapshot; health() calls snapshots older than twice this stale.'),
('recommend_interval', 'interval', '1 hour', NULL, NULL, NULL,
 'How often the sidecar refreshes recommendations.'),
('analysis_window', 'interval', '7 days', NULL, NULL, NULL,
 'Workload window recommend() analyses.');

-- Raises a clear error unless value is valid for key; returns the value in its canonical text form.
CREATE FUNCTION optischema._check_setting(p_key text, p_value text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d optischema.setting_defs;
    n numeric;
BEGIN
    SELECT * INTO d FROM optischema.setting_defs WHERE key = p_key;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown setting "%"', p_key
            USING ERRCODE = 'undefined_object',
                  HINT = 'Known settings: ' || (SELECT string_agg(key, ', ' ORDER BY key) FROM optischema.setting_defs) || '.';
    END IF;
    IF p_value IS NULL THEN
        RAISE EXCEPTION 'setting "%" cannot be NULL', p_key
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Use optischema.reset_setting(''' || p_key || ''') to restore the default.';
    END IF;
    BEGIN
        CASE d.type
        WHEN 'interval' THEN
            IF p_value::interval < interval '0' THEN RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value'; END IF;
            RETURN p_value::interval::text;
        WHEN 'boolean' THEN
            RETURN p_value::boolean::text;
        WHEN 'integer', 'numeric' THEN
            n := CASE d.type WHEN 'integer' THEN p_value::bigint ELSE p_value::numeric END;
            IF n < d.min_value OR n > d.max_value THEN RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value'; END IF;
            RETURN n::text;
        ELSE
            IF d.allowed IS NOT NULL AND NOT p_value = ANY (d.allowed) THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value';
            END IF;
            RETURN p_value;
        END CASE;
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION 'invalid value "%" for setting "%"', p_value, p_key
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = d.description,
                  HINT = 'Expected ' || CASE
                      WHEN d.allowed IS NOT NULL THEN 'one of ' || array_to_string(d.allowed, ', ')
                      WHEN d.type = 'interval' THEN 'a non-negative interval such as ''' || d.default_value || ''''
                      WHEN d.min_value IS NOT NULL THEN format('%s %s to %s', CASE d.type WHEN 'integer' THEN 'an integer' ELSE 'a number' END, d.min_value, d.max_value)
                      ELSE 'a ' || d.type END || '.';
    END;
END
$$;

CREATE VIEW optischema.settings AS
SELECT d.key, coalesce(s.value, d.default_value) AS value, d.default_value, d.type,
       d.description, s.set_at, s.set_by
FROM optischema.setting_defs d
LEFT JOIN optischema.settings_set s USING (key);

-- The effective value of a setting (errors on an unknown key).
CREATE FUNCTION optischema.setting(p_key text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN d.key IS NULL THEN optischema._check_setting(p_key, NULL)
                ELSE coalesce(s.value, d.default_value) END
    FROM (SELECT p_key AS key) k
    LEFT JOIN optischema.setting_defs d USING (key)
    LEFT JOIN optischema.settings_set s USING (key)
$$;

CREATE FUNCTION optischema.set_setting(p_key text, p_value text) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v text := optischema._check_setting(p_key, p_value);
BEGIN
    INSERT INTO optischema.settings_set (key, value) VALUES (p_key, v)
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, set_at = EXCLUDED.set_at, set_by = EXCLUDED.set_by;
    RETURN v;
END
$$;

CREATE FUNCTION optischema.reset_setting(p_key text) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._check_setting(p_key, (SELECT default_value FROM optischema.setting_defs WHERE key = p_key));
    DELETE FROM optischema.settings_set WHERE key = p_key;
    RETURN optischema.setting(p_key);
END
$$;

-- sql/02_prerequisites.sql
-- pg_stat_statements can be created in any schema and works only when it is
-- preloaded. Every reader goes through _pgss_schema(), which fails with the
-- exact fix instead of pg_stat_statements' own less helpful message.

CREATE FUNCTION optischema._preloaded(p_library text) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p_library = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
$$;

CREATE FUNCTION optischema._pgss_schema() RETURNS name
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s name;
BEGIN
    IF NOT optischema._preloaded('pg_stat_statements') THEN
        RAISE EXCEPTION 'pg_stat_statements is not loaded: OptiSchema cannot see the workload'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add to postgresql.conf: shared_preload_libraries = ''pg_stat_statements'' (keep any libraries already listed), then restart PostgreSQL.';
    END IF;
    SELECT n.nspname INTO s FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_stat_statements';
    IF s IS NULL THEN
        RAISE EXCEPTION 'extension pg_stat_statements is not installed in database %', current_database()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run: CREATE EXTENSION pg_stat_statements;';
    END IF;
    RETURN s;
END
$$;

-- Where HypoPG lives, or a clear error; recommend() needs it.
CREATE FUNCTION optischema._hypopg_schema() RETURNS name
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s name;
BEGIN
    SELECT n.nspname INTO s FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'hypopg';
    IF s IS NULL THEN
        RAISE EXCEPTION 'extension hypopg is not installed in database %: recommend() needs it for what-if plans', current_database()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run: CREATE EXTENSION hypopg;  (Debian/Ubuntu package: postgresql-15-hypopg)';
    END IF;
    RETURN s;
END
$$;

-- Serializes work that must not overlap across sessions and sidecars (a
-- database lock: no process-local state), released at transaction end.
CREATE FUNCTION optischema._xact_lock(p_name text) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_advisory_xact_lock(hashtextextended('optischema.' || p_name, 0))
$$;

-- The one check of every "how many rows" argument: a clear error, with an example.
CREATE FUNCTION optischema._check_count(p_n integer, p_min integer, p_what text, p_example text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_n IS NULL OR p_n < p_min THEN
        RAISE EXCEPTION 'n must be % number of %, got %',
                        CASE WHEN p_min > 0 THEN 'a positive' ELSE 'zero or a positive' END, p_what, coalesce(p_n::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example: ' || p_example || '.';
    END IF;
END
$$;

-- sql/03_snapshots.sql
-- Workload capture. snapshot() reads pg_stat_statements and the table and
-- index statistics of this database and stores only what changed.
--
-- Statements are stored as running totals (OptiSchema's own counters, which
-- never go backwards: resets and evictions of pg_stat_statements are folded
-- in), one row per statement and snapshot, and only when the statement ran
-- since the previous snapshot. Any window's figures are then the difference
-- of two rows per statement (_query_window), so reading a day of 5-minute
-- snapshots costs two index probes per statement, not a scan of the day.

CREATE TABLE optischema.snapshots (
    id              bigserial PRIMARY KEY,
    taken_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
    duration_ms     double precision,
    statements      integer,            -- statements of this database in pg_stat_statements
    changed         integer,            -- of which ran since the previous snapshot (rows stored)
    new_statements  integer,            -- first seen in this snapshot (texts stored)
    pgss_reset      timestamptz,        -- pg_stat_statements_info.stats_reset
    pgss_dealloc    bigint,             -- pg_stat_statements_info.dealloc
    reset_detected  boolean NOT NULL DEFAULT false,
    evicted         bigint NOT NULL DEFAULT 0   -- entries pg_stat_statements evicted since the previous snapshot
);
CREATE INDEX snapshots_taken_at_idx ON optischema.snapshots (taken_at);

-- Normalized text of each statement, stored once.
CREATE TABLE optischema.queries (
    queryid     bigint PRIMARY KEY,
    query       text NOT NULL,
    own         boolean NOT NULL,       -- OptiSchema's own statements: counted nowhere
    first_seen  bigint NOT NULL
);

-- Running totals; the narrow row (88 bytes + its index entry) is the point.
CREATE TABLE optischema.query_stats (
    queryid           bigint NOT NULL,
    calls             bigint NOT NULL,
    total_ms          double precision NOT NULL,
    rows              bigint NOT NULL,
    blks_hit          bigint NOT NULL,
    blks_read         bigint NOT NULL,
    temp_blks_written bigint NOT NULL,
    snapshot_id       integer NOT NULL,
    PRIMARY KEY (queryid, snapshot_id)
);

-- Per statement: pg_stat_statements' counters at the last snapshot (the next
-- delta is taken against them) and the running totals they led to.
CREATE TABLE optischema._query_state (
    queryid           bigint PRIMARY KEY,
    last_snapshot_id  integer NOT NULL,
    pgss_calls        bigint NOT NULL,
    pgss_total_ms     double precision NOT NULL,
    pgss_rows         bigint NOT NULL,
    pgss_blks_hit     bigint NOT NULL,
    pgss_blks_read    bigint NOT NULL,
    pgss_temp_blks    bigint NOT NULL,
    calls             bigint NOT NULL,
    total_ms          double precision NOT NULL,
    rows              bigint NOT NULL,
    blks_hit          bigint NOT NULL,
    blks_read         bigint NOT NULL,
    temp_blks_written bigint NOT NULL
) WITH (fillfactor = 50);   -- room for HOT updates: every snapshot rewrites the rows that ran

-- Table and index activity, as deltas since the previous snapshot (few rows:
-- one per table or index that changed).
CREATE TABLE optischema.table_stats (
    snapshot_id         bigint NOT NULL,
    relid               oid NOT NULL,
    seq_scan            bigint NOT NULL,
    idx_scan            bigint NOT NULL,
    n_tup_ins           bigint NOT NULL,
    n_tup_upd           bigint NOT NULL,
    n_tup_del           bigint NOT NULL,
    n_tup_hot_upd       bigint NOT NULL,
    n_live_tup          bigint NOT NULL,    -- current value, not a delta
    n_mod_since_analyze bigint NOT NULL,    -- current value, not a delta
    PRIMARY KEY (snapshot_id, relid)
);

CREATE TABLE optischema._table_state (
    relid         oid PRIMARY KEY,
    seq_scan      bigint NOT NULL,
    idx_scan      bigint NOT NULL,
    n_tup_ins     bigint NOT NULL,
    n_tup_upd     bigint NOT NULL,
    n_tup_del     bigint NOT NULL,
    n_tup_hot_upd bigint NOT NULL
);

CREATE TABLE optischema.index_stats (
    snapshot_id  bigint NOT NULL,
    indexrelid   oid NOT NULL,
    relid        oid NOT NULL,
    idx_scan     bigint NOT NULL,
    PRIMARY KEY (snapshot_id, indexrelid)
);

CREATE TABLE optischema._index_state (
    indexrelid  oid PRIMARY KEY,
    idx_scan    bigint NOT NULL,
    first_seen  bigint NOT NULL     -- an index is "unused" only over windows it existed for
);

SELECT pg_catalog.pg_extension_config_dump('optischema.snapshots', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.snapshots_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.queries', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.query_stats', '');
SELECT pg_catalog.pg_extension_config_dump('optischema._query_state', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.table_stats', '');
SELECT pg_catalog.pg_extension_config_dump('optischema._table_state', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.index_stats', '');
SELECT pg_catalog.pg_extension_config_dump('optischema._index_state', '');

-- The planner believes pg_stat_statements() returns a couple of rows; for
-- thousands, index probes per row and sort-based grouping cost twice what
-- hashing does, hence the two planner settings.
CREATE FUNCTION optischema.snapshot() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_nestloop = off
SET enable_sort = off
AS $$
DECLARE
    t0        timestamptz := clock_timestamp();
    pgss      name := optischema._pgss_schema();
    v_db      oid := (SELECT oid FROM pg_database WHERE datname = current_database());
    prev      optischema.snapshots;
    v_id      bigint;
    v_reset   timestamptz;
    v_dealloc bigint;
    v_restart boolean;
    v_new     integer;
    v_seen    integer;
    v_changed integer;
BEGIN
    -- Deltas are taken against the previous snapshot: one at a time.
    PERFORM optischema._xact_lock('snapshot');

    EXECUTE format('SELECT stats_reset, dealloc FROM %I.pg_stat_statements_info', pgss)
        INTO v_reset, v_dealloc;
    SELECT * INTO prev FROM optischema.snapshots ORDER BY id DESC LIMIT 1;
    v_restart := prev.id IS NOT NULL AND prev.pgss_reset IS DISTINCT FROM v_reset;

    INSERT INTO optischema.snapshots (pgss_reset, pgss_dealloc, reset_detected, evicted)
    VALUES (v_reset, v_dealloc, v_restart,
            CASE WHEN prev.id IS NULL THEN 0
                 WHEN v_restart THEN v_dealloc
                 ELSE greatest(v_dealloc - prev.pgss_dealloc, 0) END)
    RETURNING id INTO v_id;

    -- One pass over pg_stat_statements: reading it is most of a snapshot's
    -- cost. Texts are read only when a statement was never seen before
    -- (the one-time filter on "texts" skips pg_stat_statements(true), which
    -- reads every text and is several times slower than the counters).
    -- After a reset, or when an entry was evicted and came back (fewer calls
    -- than last time), its counters restarted from zero: all of it is new.
    EXECUTE format($q$
        WITH cur AS (
            SELECT p.queryid,
                   sum(p.calls)::bigint             AS calls,
                   sum(p.total_exec_time)           AS total_ms,
                   sum(p.rows)::bigint              AS rows,
                   sum(p.shared_blks_hit)::bigint   AS blks_hit,
                   sum(p.shared_blks_read)::bigint  AS blks_read,
                   sum(p.temp_blks_written)::bigint AS temp_blks
            FROM %1$I.pg_stat_statements(false) p
            WHERE p.dbid = $1 AND p.toplevel AND p.queryid IS NOT NULL
            GROUP BY p.queryid
        ), j AS (
            SELECT c.*, s.queryid IS NOT NULL AS known,
                   CASE WHEN s.queryid IS NULL OR $2 OR c.calls < s.pgss_calls THEN 0 ELSE 1 END AS k,
                   coalesce(s.pgss_calls, 0) AS pgss_calls, coalesce(s.pgss_total_ms, 0) AS pgss_total_ms,
                   coalesce(s.pgss_rows, 0) AS pgss_rows, coalesce(s.pgss_blks_hit, 0) AS pgss_blks_hit,
                   coalesce(s.pgss_blks_read, 0) AS pgss_blks_read, coalesce(s.pgss_temp_blks, 0) AS pgss_temp_blks,
                   coalesce(s.calls, 0) AS r_calls, coalesce(s.total_ms, 0) AS r_total_ms,
                   coalesce(s.rows, 0) AS r_rows, coalesce(s.blks_hit, 0) AS r_blks_hit,
                   coalesce(s.blks_read, 0) AS r_blks_read, coalesce(s.temp_blks_written, 0) AS r_temp_blks
            FROM cur c
            LEFT JOIN optischema._query_state s ON s.queryid = c.queryid
        ), unknown AS (
            -- Not in the state: never seen, OptiSchema's own (never in the state), or new again.
            SELECT j.queryid, q.queryid IS NULL AS is_new, q.own
            FROM j LEFT JOIN optischema.queries q ON q.queryid = j.queryid
            WHERE NOT j.known
        ), texts AS (
            -- OptiSchema's own: calls of its functions, and the what-if statements
            -- its engine prepares (optischema_<run>_<n>) when run from the sidecar.
            SELECT DISTINCT ON (p.queryid) p.queryid, p.query,
                   p.query ~* '\moptischema(\s*\.|_[0-9a-f]{8}_[0-9]+\M)' AS own
            FROM %1$I.pg_stat_statements(true) p
            WHERE EXISTS (SELECT 1 FROM unknown u WHERE u.is_new)
              AND p.dbid = $1 AND p.toplevel AND p.queryid IN (SELECT u.queryid FROM unknown u WHERE u.is_new)
            ORDER BY p.queryid
        ), ins_texts AS (
            INSERT INTO optischema.queries (queryid, query, own, first_seen)
            SELECT queryid, query, own, $3 FROM texts
            ON CONFLICT (queryid) DO NOTHING
        ), d AS (
            SELECT j.* FROM j WHERE j.known AND (j.calls <> j.pgss_calls OR $2)
            UNION ALL
            -- no text (the entry went between the two reads): wait for the next snapshot
            SELECT j.* FROM j JOIN unknown u ON u.queryid = j.queryid LEFT JOIN texts t ON t.queryid = j.queryid
            WHERE NOT coalesce(u.own, t.own, true)
        ), n AS (
            SELECT d.queryid, d.known, d.calls, d.total_ms, d.rows, d.blks_hit, d.blks_read, d.temp_blks,
                   d.r_calls     + d.calls     - d.k * d.pgss_calls     AS t_calls,
                   d.r_total_ms  + d.total_ms  - d.k * d.pgss_total_ms  AS t_total_ms,
                   d.r_rows      + d.rows      - d.k * d.pgss_rows      AS t_rows,
                   d.r_blks_hit  + d.blks_hit  - d.k * d.pgss_blks_hit  AS t_blks_hit,
                   d.r_blks_read + d.blks_read - d.k * d.pgss_blks_read AS t_blks_read,
                   d.r_temp_blks + d.temp_blks - d.k * d.pgss_temp_blks AS t_temp_blks
            FROM d
            WHERE d.calls > d.k * d.pgss_calls
        ), upd AS (
            UPDATE optischema._query_state s
            SET last_snapshot_id = $3, pgss_calls = n.calls, pgss_total_ms = n.total_ms, pgss_rows = n.rows,
                pgss_blks_hit = n.blks_hit, pgss_blks_read = n.blks_read, pgss_temp_blks = n.temp_blks,
                calls = n.t_calls, total_ms = n.t_total_ms, rows = n.t_rows, blks_hit = n.t_blks_hit,
                blks_read = n.t_blks_read, temp_blks_written = n.t_temp_blks
            FROM n WHERE n.known AND s.queryid = n.queryid
        ), ins_state AS (
            INSERT INTO optischema._query_state
            SELECT n.queryid, $3, n.calls, n.total_ms, n.rows, n.blks_hit, n.blks_read, n.temp_blks,
                   n.t_calls, n.t_total_ms, n.t_rows, n.t_blks_hit, n.t_blks_read, n.t_temp_blks
            FROM n WHERE NOT n.known
        ), ins AS (
            INSERT INTO optischema.query_stats
                (queryid, calls, total_ms, rows, blks_hit, blks_read, temp_blks_written, snapshot_id)
            SELECT n.queryid, n.t_calls, n.t_total_ms, n.t_rows, n.t_blks_hit, n.t_blks_read, n.t_temp_blks, $3
            FROM n
            ORDER BY n.queryid      -- in index order: each leaf page is visited once
        )
        SELECT (SELECT count(*)::integer FROM cur), (SELECT count(*)::integer FROM n),
               (SELECT count(*)::integer FROM texts)$q$, pgss)
        INTO v_seen, v_changed, v_new USING v_db, v_restart, v_id;

    -- Tables and indexes: a counter that went backwards was reset (pg_stat_reset): take it whole.
    WITH cur AS (
        SELECT t.relid, t.seq_scan, coalesce(t.idx_scan, 0) AS idx_scan, t.n_tup_ins, t.n_tup_upd,
               t.n_tup_del, t.n_tup_hot_upd, t.n_live_tup, t.n_mod_since_analyze
        FROM pg_stat_user_tables t
        WHERE t.schemaname <> 'optischema'
    ), d AS (
        SELECT c.*, s.relid IS NOT NULL AS known,
               CASE WHEN s.relid IS NULL OR c.seq_scan < s.seq_scan OR c.idx_scan < s.idx_scan
                         OR c.n_tup_ins < s.n_tup_ins OR c.n_tup_upd < s.n_tup_upd OR c.n_tup_del < s.n_tup_del
                    THEN 0 ELSE 1 END AS k,
               coalesce(s.seq_scan, 0) AS s_seq, coalesce(s.idx_scan, 0) AS s_idx,
               coalesce(s.n_tup_ins, 0) AS s_ins, coalesce(s.n_tup_upd, 0) AS s_upd,
               coalesce(s.n_tup_del, 0) AS s_del, coalesce(s.n_tup_hot_upd, 0) AS s_hot
        FROM cur c LEFT JOIN optischema._table_state s ON s.relid = c.relid
        WHERE s.relid IS NULL OR (c.seq_scan, c.idx_scan, c.n_tup_ins, c.n_tup_upd, c.n_tup_del)
                                 IS DISTINCT FROM (s.seq_scan, s.idx_scan, s.n_tup_ins, s.n_tup_upd, s.n_tup_del)
    ), st AS (
        INSERT INTO optischema._table_state AS s
        SELECT relid, seq_scan, idx_scan, n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd FROM d
        ON CONFLICT (relid) DO UPDATE SET seq_scan = EXCLUDED.seq_scan, idx_scan = EXCLUDED.idx_scan,
            n_tup_ins = EXCLUDED.n_tup_ins, n_tup_upd = EXCLUDED.n_tup_upd,
            n_tup_del = EXCLUDED.n_tup_del, n_tup_hot_upd = EXCLUDED.n_tup_hot_upd
    )
    INSERT INTO optischema.table_stats
    SELECT v_id, relid, seq_scan - k * s_seq, idx_scan - k * s_idx, n_tup_ins - k * s_ins,
           n_tup_upd - k * s_upd, n_tup_del - k * s_del, greatest(n_tup_hot_upd - k * s_hot, 0),
           n_live_tup, n_mod_since_analyze
    FROM d;

    WITH cur AS (
        SELECT i.indexrelid, i.relid, coalesce(i.idx_scan, 0) AS idx_scan
        FROM pg_stat_user_indexes i
        WHERE i.schemaname <> 'optischema'
    ), d AS (
        SELECT c.*, CASE WHEN s.indexrelid IS NULL OR c.idx_scan < s.idx_scan THEN 0 ELSE coalesce(s.idx_scan, 0) END AS base
        FROM cur c LEFT JOIN optischema._index_state s ON s.indexrelid = c.indexrelid
        WHERE s.indexrelid IS NULL OR c.idx_scan <> s.idx_scan
    ), st AS (
        INSERT INTO optischema._index_state AS s (indexrelid, idx_scan, first_seen)
        SELECT indexrelid, idx_scan, v_id FROM d
        ON CONFLICT (indexrelid) DO UPDATE SET idx_scan = EXCLUDED.idx_scan
    )
    INSERT INTO optischema.index_stats
    SELECT v_id, indexrelid, relid, idx_scan - base FROM d WHERE idx_scan > base;

    UPDATE optischema.snapshots
    SET duration_ms = 1000 * extract(epoch FROM clock_timestamp() - t0),
        statements = v_seen, changed = v_changed, new_statements = v_new
    WHERE id = v_id;
    RETURN v_id;
END
$$;

-- Takes a snapshot unless one is younger than top_queries_refresh. Right
-- after install, or with no scheduler running, readers of the workload would
-- otherwise see old or no data: the earlier product's empty dashboard.
CREATE FUNCTION optischema._refresh_snapshot() RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_refresh interval := optischema.setting('top_queries_refresh')::interval;
BEGIN
    PERFORM optischema._pgss_schema();
    IF v_refresh > interval '0' AND NOT EXISTS (
            SELECT 1 FROM optischema.snapshots s WHERE s.taken_at > now() - v_refresh) THEN
        RETURN optischema.snapshot();
    END IF;
    RETURN (SELECT max(s.id) FROM optischema.snapshots s);
END
$$;

-- Per statement, what ran after snapshot p_from up to snapshot p_to
-- (p_from NULL: since the first snapshot, whose figures are pg_stat_statements'
-- whole history at that time). The one reader of query_stats: top_queries(),
-- the advisor's workload and the before/after checks all use it.
CREATE FUNCTION optischema._query_window(p_from bigint, p_to bigint)
RETURNS TABLE (queryid bigint, calls bigint, total_ms double precision, rows bigint,
               blks_hit bigint, blks_read bigint, temp_blks_written bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.queryid, t.calls - coalesce(b.calls, 0), t.total_ms - coalesce(b.total_ms, 0),
           t.rows - coalesce(b.rows, 0), t.blks_hit - coalesce(b.blks_hit, 0),
           t.blks_read - coalesce(b.blks_read, 0), t.temp_blks_written - coalesce(b.temp_blks_written, 0)
    FROM optischema._query_state s
    CROSS JOIN LATERAL (
        SELECT x.* FROM optischema.query_stats x
        WHERE x.queryid = s.queryid AND x.snapshot_id <= p_to
        ORDER BY x.snapshot_id DESC LIMIT 1) t
    LEFT JOIN LATERAL (
        SELECT x.* FROM optischema.query_stats x
        WHERE x.queryid = s.queryid AND x.snapshot_id <= p_from
        ORDER BY x.snapshot_id DESC LIMIT 1) b ON true
    WHERE s.last_snapshot_id > coalesce(p_from, 0)
      AND t.snapshot_id > coalesce(p_from, 0)
$$;

-- sql/04_top_queries.sql
-- The workload "dashboard", in SQL. Every statement that ran in the window
-- is there, single-call ones included: no thresholds hide anything.

-- The snapshot a window starting at p_since begins after (NULL: the window
-- reaches back past the first snapshot).
CREATE FUNCTION optischema._snapshot_before(p_since timestamptz) RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT max(id) FROM optischema.snapshots WHERE taken_at <= p_since
$$;

CREATE FUNCTION optischema.top_queries(since interval DEFAULT '1 hour', n integer DEFAULT 20)
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

-- sql/05_sidecars.sql
-- Sidecars announce themselves here; health() reads the heartbeat.
CREATE TABLE optischema.sidecars (
    worker_id   text PRIMARY KEY,
    host        text NOT NULL,
    pid         integer NOT NULL,
    version     text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_seen   timestamptz NOT NULL DEFAULT pg_catalog.now()
);

INSERT INTO optischema.setting_defs (key, type, default_value, min_value, max_value, allowed, description) VALUES
('sidecar_timeout', 'interval', '2 minutes', NULL, NULL, NULL,
 'A sidecar not seen for this long is considered gone; its jobs are taken over when their lease expires.');

-- sql/06_health.sql
-- What is missing or wrong, and the exact statement or config line that
-- fixes it. Works when nothing else does (pg_stat_statements not loaded).

CREATE FUNCTION optischema.health()
RETURNS TABLE ("check" text, ok boolean, detail text, fix text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_preloaded boolean := optischema._preloaded('pg_stat_statements');
    v_pgss      name := (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                         WHERE e.extname = 'pg_stat_statements');
    v_last      optischema.snapshots;
    v_dealloc   bigint;
    v_interval  interval := optischema.setting('snapshot_interval')::interval;
    v_timeout   interval := optischema.setting('sidecar_timeout')::interval;
    v_max       text := current_setting('pg_stat_statements.max', true);
    v_sidecar   optischema.sidecars;
    v_preload   text := current_setting('shared_preload_libraries');
BEGIN
    SELECT * INTO v_last FROM optischema.snapshots s ORDER BY s.id DESC LIMIT 1;

    "check" := 'pg_stat_statements preloaded'; ok := v_preloaded;
    detail := 'shared_preload_libraries = ''' || v_preload || '''';
    fix := CASE WHEN NOT ok THEN format('postgresql.conf: shared_preload_libraries = ''%s'' then restart PostgreSQL',
        concat_ws(',', nullif(v_preload, ''), 'pg_stat_statements')) END;
    RETURN NEXT;

    "check" := 'pg_stat_statements created'; ok := v_pgss IS NOT NULL;
    detail := CASE WHEN ok THEN 'in schema ' || v_pgss ELSE 'not installed in ' || current_database() END;
    fix := CASE WHEN NOT ok THEN 'CREATE EXTENSION pg_stat_statements;' END;
    RETURN NEXT;

    "check" := 'compute_query_id'; detail := 'compute_query_id = ' || current_setting('compute_query_id');
    ok := current_setting('compute_query_id') = 'on'
          OR (current_setting('compute_query_id') = 'auto' AND v_preloaded);
    fix := CASE WHEN NOT ok THEN 'ALTER SYSTEM SET compute_query_id = ''on''; SELECT pg_reload_conf();' END;
    RETURN NEXT;

    "check" := 'pg_stat_statements.track';
    detail := 'pg_stat_statements.track = ' || coalesce(current_setting('pg_stat_statements.track', true), 'unknown (not loaded)');
    ok := coalesce(current_setting('pg_stat_statements.track', true), 'none') IN ('top', 'all');
    fix := CASE WHEN NOT ok THEN 'ALTER SYSTEM SET pg_stat_statements.track = ''top''; SELECT pg_reload_conf();' END;
    RETURN NEXT;

    "check" := 'track_io_timing'; ok := current_setting('track_io_timing')::boolean;
    detail := 'track_io_timing = ' || current_setting('track_io_timing') || ' (I/O time per statement)';
    fix := CASE WHEN NOT ok THEN 'ALTER SYSTEM SET track_io_timing = on; SELECT pg_reload_conf();' END;
    RETURN NEXT;

    "check" := 'hypopg';
    ok := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'hypopg');
    detail := CASE WHEN ok THEN 'installed: what-if plans for recommend()'
                   WHEN EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg') THEN 'available, not created in ' || current_database()
                   ELSE 'not installed on this server' END;
    fix := CASE WHEN ok THEN NULL
                WHEN EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg') THEN 'CREATE EXTENSION hypopg;'
                ELSE 'apt-get install postgresql-15-hypopg, then CREATE EXTENSION hypopg;' END;
    RETURN NEXT;

    "check" := 'plpython3u';
    ok := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'plpython3u');
    detail := CASE WHEN ok THEN 'installed: the advisor runs inside the database' ELSE 'not installed' END;
    fix := CASE WHEN NOT ok THEN 'CREATE EXTENSION plpython3u;  (Debian/Ubuntu package: postgresql-plpython3-15)' END;
    RETURN NEXT;

    "check" := 'pg_stat_statements evictions';
    IF v_pgss IS NOT NULL AND v_preloaded THEN
        EXECUTE format('SELECT dealloc FROM %I.pg_stat_statements_info', v_pgss) INTO v_dealloc;
    END IF;
    -- Evictions since the previous snapshot, or since the last one up to now.
    ok := coalesce(v_last.evicted, 0) = 0 AND v_dealloc IS NOT DISTINCT FROM coalesce(v_last.pgss_dealloc, v_dealloc);
    detail := CASE WHEN ok THEN 'no statements evicted since the last snapshot (pg_stat_statements.max = ' || coalesce(v_max, '?') || ')'
                   ELSE format('%s statements evicted: pg_stat_statements.max = %s is too small, the workload is not fully seen',
                               greatest(coalesce(v_last.evicted, 0), coalesce(v_dealloc - v_last.pgss_dealloc, 0)), coalesce(v_max, '?')) END;
    fix := CASE WHEN NOT ok THEN format('postgresql.conf: pg_stat_statements.max = %s then restart PostgreSQL',
                                        coalesce(v_max::integer * 2, 10000)) END;
    RETURN NEXT;

    "check" := 'snapshot freshness';
    ok := v_last.id IS NOT NULL AND v_last.taken_at > now() - 2 * v_interval;
    detail := CASE WHEN v_last.id IS NULL THEN 'no snapshot taken yet'
                   ELSE format('last snapshot %s at %s (%s ago, expected every %s)', v_last.id,
                               v_last.taken_at, date_trunc('second', now() - v_last.taken_at), v_interval) END;
    fix := CASE WHEN NOT ok THEN 'SELECT optischema.snapshot();  and schedule it: run optischema-sidecar, or see README "Scheduling with pg_cron"' END;
    RETURN NEXT;

    "check" := 'sidecar heartbeat';
    SELECT * INTO v_sidecar FROM optischema.sidecars s ORDER BY s.last_seen DESC LIMIT 1;
    ok := v_sidecar.worker_id IS NOT NULL AND v_sidecar.last_seen > now() - v_timeout;
    detail := CASE WHEN v_sidecar.worker_id IS NULL THEN 'no sidecar seen'
                   ELSE format('sidecar %s on %s last seen %s ago', v_sidecar.worker_id, v_sidecar.host,
                               date_trunc('second', now() - v_sidecar.last_seen)) END;
    fix := CASE WHEN NOT ok THEN 'optischema-sidecar --dsn "dbname=' || current_database() || '"  (see README "The sidecar")' END;
    RETURN NEXT;

    "check" := 'pg_cron';
    ok := optischema._preloaded('pg_cron');
    detail := CASE WHEN ok THEN 'preloaded; jobs live in database ' || coalesce(current_setting('cron.database_name', true), 'postgres')
                   ELSE 'not preloaded (optional: the sidecar schedules snapshots instead)' END;
    fix := CASE WHEN NOT ok THEN format('postgresql.conf: shared_preload_libraries = ''%s'' and cron.database_name = ''postgres'', restart, then in that database: CREATE EXTENSION pg_cron;',
                                        concat_ws(',', nullif(v_preload, ''), 'pg_cron')) END;
    RETURN NEXT;
END
$$;

-- sql/07_recommendations.sql
-- Recommendations: what recommend() found (source 'advisor') or the LLM
-- proposed and OptiSchema verified (source 'llm'). One row per distinct
-- piece of advice (key): re-running the analysis updates it in place.

CREATE TABLE optischema._recommendations (
    id                   bigserial PRIMARY KEY,
    key                  text NOT NULL UNIQUE,
    kind                 text NOT NULL CHECK (kind IN ('create_index', 'drop_index', 'rewrite', 'config', 'maintenance')),
    source               text NOT NULL CHECK (source IN ('advisor', 'llm')),
    status               text NOT NULL DEFAULT 'open'
                         CHECK (status IN ('open', 'applying', 'applied', 'failed', 'rolling_back',
                                           'rolled_back', 'dismissed', 'superseded')),
    title                text NOT NULL,
    ddl                  text,
    rollback_ddl         text,
    table_name           text,
    index_name           text,
    queryids             bigint[] NOT NULL DEFAULT '{}',
    benefit              jsonb NOT NULL DEFAULT '{}',
    evidence             jsonb NOT NULL DEFAULT '{}',
    estimated_size_bytes bigint,
    write_overhead       jsonb NOT NULL DEFAULT '{}',
    score                double precision NOT NULL DEFAULT 0,
    explanation          text,
    dismissed_reason     text,
    created_at           timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at           timestamptz NOT NULL DEFAULT pg_catalog.now(),
    status_changed_at    timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX _recommendations_status_idx ON optischema._recommendations (status, score DESC);
SELECT pg_catalog.pg_extension_config_dump('optischema._recommendations', '');
SELECT pg_catalog.pg_extension_config_dump('optischema._recommendations_id_seq', '');

CREATE VIEW optischema.recommendations AS
SELECT id, kind, source, status, title, ddl, rollback_ddl, table_name, index_name, queryids,
       benefit, evidence, estimated_size_bytes, write_overhead, score, explanation,
       dismissed_reason, created_at, updated_at, status_changed_at
FROM optischema._recommendations;

-- sql/08_advisor.sql
-- The what-if advisor: the optischema_engine package, run in this backend
-- by PL/Python, over the analysis window. Each run is recorded in
-- optischema.analyses with the statements it skipped and why; recommend()
-- (sql/30_recommend.sql) keeps its results.

-- The advisor's knobs; the engine's Settings dataclass has the same names and
-- defaults (an interval key reaches it as <key>_s, in seconds).
INSERT INTO optischema.setting_defs (key, type, default_value, min_value, max_value, allowed, description) VALUES
('min_query_share', 'numeric', '0.001', 0, 1, NULL,
 'Fraction of the window''s statement time a read query needs to be analysed.'),
('min_calls', 'integer', '2', 1, 1000000000, NULL,
 'Calls a statement needs in the window to be analysed (one-off reports are not a workload).'),
('max_queries', 'integer', '50', 1, 10000, NULL,
 'Analyse at most this many read queries, heaviest first (bounds the EXPLAIN calls).'),
('min_cost_reduction', 'numeric', '0.1', 0, 1, NULL,
 'An index counts for a query only if the query''s estimated cost falls by this fraction.'),
('min_workload_gain', 'numeric', '0.01', 0, 1, NULL,
 'An index is proposed only if it lowers the workload''s estimated cost, write upkeep included, by this fraction.'),
('write_cost_per_entry', 'numeric', '2.0', 0, 1000, NULL,
 'Planner cost units charged per index entry written by an INSERT or a non-HOT UPDATE.'),
('size_cost_per_mb', 'numeric', '0', 0, 1000000, NULL,
 'Cost units per workload round charged per MB of new index (0: size only breaks ties).'),
('max_indexes_per_table', 'integer', '6', 0, 100, NULL,
 'New indexes proposed per table at most.'),
('max_new_indexes', 'integer', '12', 0, 1000, NULL,
 'New indexes proposed in one run at most.'),
('max_key_columns', 'integer', '3', 1, 32, NULL,
 'Key columns of a proposed index at most (INCLUDE columns not counted).'),
('param_samples', 'integer', '3', 0, 20, NULL,
 'Representative parameter sets (from pg_stats, used locally) a query is also costed with.'),
('partial_max_fraction', 'numeric', '0.2', 0, 1, NULL,
 'A constant equality becomes a partial-index predicate only if it keeps at most this fraction of rows.'),
('time_budget', 'interval', '20 seconds', NULL, NULL, NULL,
 'recommend() evaluates no further candidates after this long; the best set so far is kept.'),
('drop_unused_min_window', 'interval', '7 days', NULL, NULL, NULL,
 'An index with no scans is proposed for dropping only if the window observed is at least this long.'),
('use_pg_qualstats', 'boolean', 'true', NULL, NULL, NULL,
 'Use constants observed by pg_qualstats, when installed, as representative parameters.');

CREATE TABLE optischema.analyses (
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
CREATE FUNCTION optischema._analysis_window(OUT p_from bigint, OUT p_to bigint, OUT seconds double precision)
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
CREATE FUNCTION optischema._engine_settings() RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_object_agg(CASE WHEN s.type = 'interval' THEN s.key || '_s' ELSE s.key END,
                            CASE s.type
                                WHEN 'boolean'  THEN to_jsonb(s.value::boolean)
                                WHEN 'integer'  THEN to_jsonb(s.value::bigint)
                                WHEN 'numeric'  THEN to_jsonb(s.value::numeric)
                                WHEN 'interval' THEN to_jsonb(extract(epoch FROM s.value::interval))
                                ELSE to_jsonb(s.value) END)
    FROM optischema.settings s
$$;

-- Table and index activity over the window, in the engine's Activity shape.
-- An index counts as unused only over a window it existed for all along.
CREATE FUNCTION optischema._activity(p_from bigint, p_to bigint) RETURNS jsonb
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

-- Runs the engine in this backend. plan_cache_mode is set (and so restored
-- on exit) for generic plans; the engine removes exactly the hypothetical
-- indexes and prepared statements it made.
CREATE FUNCTION optischema._advise(p_from bigint, p_to bigint) RETURNS jsonb
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
import json
import sys
if '@ENGINE_DIR@' not in sys.path:
    sys.path.insert(0, '@ENGINE_DIR@')
from optischema_engine import (Activity, IndexActivity, Settings, TableActivity, WorkloadQuery, advise)
from optischema_engine.db import PlpyDatabase

rows = plpy.execute(plpy.prepare(
    "SELECT w.queryid, q.query, w.calls, w.total_ms, w.rows"
    " FROM optischema._query_window($1, $2) w JOIN optischema.queries q ON q.queryid = w.queryid",
    ["bigint", "bigint"]), [p_from, p_to])
workload = [WorkloadQuery(r["queryid"], r["query"], r["calls"], r["total_ms"], r["rows"]) for r in rows]
act = json.loads(plpy.execute(plpy.prepare("SELECT optischema._activity($1, $2) AS a", ["bigint", "bigint"]),
                              [p_from, p_to])[0]["a"])
activity = Activity(
    window_seconds=float(act["window_seconds"] or 0),
    tables={int(k): TableActivity(**v) for k, v in act["tables"].items()},
    indexes={int(k): IndexActivity(**v) for k, v in act["indexes"].items()},
    first_snapshot_at=act["first_snapshot_at"])
settings = Settings.from_dict(json.loads(plpy.execute("SELECT optischema._engine_settings() AS s")[0]["s"]))
# The workload's texts name tables the way the application sees them: plan
# them under the session's default search_path (the function's own SET
# clause puts pg_catalog, pg_temp back on exit). pg_temp stays last.
plpy.execute("SELECT pg_catalog.set_config('search_path', setting, true) FROM ("
             " SELECT reset_val || ', pg_temp' AS setting FROM pg_catalog.pg_settings WHERE name = 'search_path') s")
return json.dumps(advise(PlpyDatabase(plpy), workload, activity, settings).to_dict())
$$;

-- sql/10_jobs.sql
-- The job queue: work the database records and a sidecar runs (top-level DDL,
-- LLM calls, scheduled snapshots). Every state is a row here, so a sidecar may
-- crash at any moment and another one picks the work up: a running job holds
-- a lease, renewed by its sidecar's heartbeat; a job whose lease expired is
-- claimable again. Claims use FOR UPDATE SKIP LOCKED, so sidecars racing for
-- the same queue never run one job twice.

CREATE TABLE optischema.jobs (
    id               bigserial PRIMARY KEY,
    kind             text NOT NULL,
    payload          jsonb NOT NULL DEFAULT '{}',
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'done', 'failed', 'cancelled')),
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL DEFAULT 5,
    run_after        timestamptz NOT NULL DEFAULT pg_catalog.now(),
    lease_expires_at timestamptz,
    worker_id        text,
    result           jsonb,
    error            text,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    started_at       timestamptz,
    finished_at      timestamptz
);
-- Claims look only at claimable rows; the queue's history stays out of the way.
CREATE INDEX jobs_pending_idx ON optischema.jobs (run_after, id) WHERE status = 'pending';
CREATE INDEX jobs_running_idx ON optischema.jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_kind_created_idx ON optischema.jobs (kind, created_at);
SELECT pg_catalog.pg_extension_config_dump('optischema.jobs', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.jobs_id_seq', '');

-- The kinds a sidecar knows how to run; enqueue() rejects anything else.
-- Other parts of the extension add their kinds with an INSERT.
CREATE TABLE optischema.job_kinds (
    kind        text PRIMARY KEY,
    description text NOT NULL
);
INSERT INTO optischema.job_kinds (kind, description) VALUES
('apply',        'Run a change''s CREATE/DROP INDEX CONCURRENTLY at top level (payload: change_id); written by optischema.apply().'),
('rollback',     'Undo an applied change (payload: change_id); written by optischema.rollback().'),
('verify',       'Check that the plans of the affected queries use the new index and compare timings (payload: change_id).'),
('snapshot',     'optischema.snapshot(), then the timing check of recently applied changes.'),
('recommend',    'Refresh recommendations: SELECT count(*) FROM optischema.recommend().'),
('purge',        'optischema.purge(): snapshot data, finished jobs and the LLM audit past their retention.'),
('llm_analysis', 'LLM enrichment of recommendations (optischema_sidecar.llm.analysis).'),
('noop',         'Does nothing: for tests, benchmarks and checking that a sidecar answers.');

INSERT INTO optischema.setting_defs (key, type, default_value, min_value, max_value, allowed, description) VALUES
('purge_interval', 'interval', '1 hour', NULL, NULL, NULL,
 'How often the sidecar runs retention (optischema.purge()); 0 turns it off.'),
('job_backoff', 'interval', '10 seconds', NULL, NULL, NULL,
 'Delay before a failed job''s first retry; doubles with every attempt, up to one hour.'),
('job_retention', 'interval', '30 days', NULL, NULL, NULL,
 'purge() removes finished jobs, the LLM audit and analyses older than this (the change log is never purged).');

-- Validates kind and payload, queues the job and wakes the sidecars. The
-- notification, like the row, is only seen once the caller commits.
CREATE FUNCTION optischema.enqueue(kind text, payload jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    IF kind IS NULL OR NOT EXISTS (SELECT 1 FROM optischema.job_kinds k WHERE k.kind = enqueue.kind) THEN
        RAISE EXCEPTION 'unknown job kind "%"', coalesce(kind, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Known kinds: ' || (SELECT string_agg(k.kind, ', ' ORDER BY k.kind) FROM optischema.job_kinds k) || '.';
    END IF;
    IF payload IS NULL OR jsonb_typeof(payload) <> 'object' THEN
        RAISE EXCEPTION 'job payload must be a JSON object, got %', coalesce(jsonb_typeof(payload), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example: optischema.enqueue(''snapshot'', ''{}'').';
    END IF;
    INSERT INTO optischema.jobs (kind, payload) VALUES (kind, payload) RETURNING id INTO v_id;
    PERFORM pg_notify('optischema_jobs', kind);
    RETURN v_id;
END
$$;

-- Cancels a job that has not started; a running job cannot be taken back.
-- Cancelling an apply or rollback job cancels its change (sql/11_changes.sql)
-- and gives the recommendation its status back.
CREATE FUNCTION optischema.cancel_job(id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_status text;
    v_job    optischema.jobs;
BEGIN
    SELECT * INTO v_job FROM optischema.jobs j WHERE j.id = cancel_job.id FOR UPDATE;
    v_status := v_job.status;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % does not exist', coalesce(id::text, 'NULL')
            USING ERRCODE = 'no_data_found', HINT = 'See SELECT * FROM optischema.jobs ORDER BY id DESC;';
    END IF;
    IF v_status <> 'pending' THEN
        RAISE EXCEPTION 'job % is %, only a pending job can be cancelled', id, v_status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE optischema.jobs j SET status = 'cancelled', finished_at = now() WHERE j.id = cancel_job.id;
    PERFORM optischema._job_ended(v_job, 'cancelled');
END
$$;

-- Takes the oldest claimable job of the given kinds (NULL: any kind) for
-- worker: pending and due, or running under an expired lease (its sidecar
-- died). A job whose lease expired after its last allowed attempt fails
-- instead: a job that kills its sidecar must not kill them all.
CREATE FUNCTION optischema._claim_job(worker text, kinds text[], lease interval)
RETURNS SETOF optischema.jobs
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n bigint;
BEGIN
    IF worker IS NULL OR lease IS NULL OR lease <= interval '0' THEN
        RAISE EXCEPTION 'worker and a positive lease are required'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH gone AS (
        UPDATE optischema.jobs j
        SET status = 'failed', finished_at = now(), lease_expires_at = NULL,
            error = format('lease expired on attempt %s of %s (sidecar %s stopped while running it)',
                           j.attempts, j.max_attempts, j.worker_id)
        WHERE j.status = 'running' AND j.lease_expires_at < now() AND j.attempts >= j.max_attempts
        RETURNING j.*)
    SELECT count(optischema._job_ended(g, 'failed')) INTO STRICT v_n FROM gone g;

    RETURN QUERY
    WITH c AS (
        SELECT j.id FROM optischema.jobs j
        WHERE (kinds IS NULL OR j.kind = ANY (kinds))
          AND ((j.status = 'pending' AND j.run_after <= now())
               OR (j.status = 'running' AND j.lease_expires_at < now()))
        ORDER BY j.run_after, j.id
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    )
    UPDATE optischema.jobs j
    SET status = 'running', attempts = j.attempts + 1, worker_id = worker,
        lease_expires_at = now() + lease, started_at = now(), finished_at = NULL
    FROM c WHERE j.id = c.id
    RETURNING j.*;
END
$$;

-- Marks worker's job done. False when the job is no longer this worker's
-- (its lease expired and another sidecar took it): the result is dropped.
CREATE FUNCTION optischema._complete_job(id bigint, worker text, result jsonb DEFAULT '{}') RETURNS boolean
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH u AS (
        UPDATE optischema.jobs j
        SET status = 'done', result = _complete_job.result, error = NULL, finished_at = now(), lease_expires_at = NULL
        WHERE j.id = _complete_job.id AND j.worker_id = worker AND j.status = 'running'
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM u)
$$;

-- Records a failed attempt. While attempts remain (and retry), the job goes
-- back to pending after an exponential backoff; otherwise it fails for good.
-- Returns the job's new status, or NULL when it is no longer this worker's.
CREATE FUNCTION optischema._fail_job(id bigint, worker text, error text, retry boolean DEFAULT true) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j optischema.jobs;
BEGIN
    UPDATE optischema.jobs x
    SET status = CASE WHEN retry AND x.attempts < x.max_attempts THEN 'pending' ELSE 'failed' END,
        run_after = now() + least(optischema.setting('job_backoff')::interval * power(2, greatest(x.attempts - 1, 0)),
                                  interval '1 hour'),
        finished_at = CASE WHEN retry AND x.attempts < x.max_attempts THEN NULL ELSE now() END,
        error = _fail_job.error, lease_expires_at = NULL
    WHERE x.id = _fail_job.id AND x.worker_id = worker AND x.status = 'running'
    RETURNING x.* INTO j;
    IF j.status = 'failed' THEN
        PERFORM optischema._job_ended(j, 'failed');
    END IF;
    RETURN j.status;
END
$$;

-- Gives a job back untouched (the sidecar is shutting down): the attempt does not count.
CREATE FUNCTION optischema._release_job(id bigint, worker text) RETURNS boolean
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH u AS (
        UPDATE optischema.jobs j
        SET status = 'pending', attempts = greatest(j.attempts - 1, 0), run_after = now(),
            lease_expires_at = NULL, started_at = NULL
        WHERE j.id = _release_job.id AND j.worker_id = worker AND j.status = 'running'
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM u)
$$;

-- The sidecar's heartbeat: announces it (health() reads sidecars) and renews
-- the lease of every job it is running. Returns the number of leases renewed.
CREATE FUNCTION optischema._heartbeat(worker text, host text, pid integer, version text, lease interval)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    INSERT INTO optischema.sidecars AS s (worker_id, host, pid, version)
    VALUES (worker, host, pid, version)
    ON CONFLICT (worker_id) DO UPDATE SET last_seen = now(), host = EXCLUDED.host, pid = EXCLUDED.pid;
    UPDATE optischema.jobs j SET lease_expires_at = now() + lease
    WHERE j.worker_id = worker AND j.status = 'running';
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- A sidecar that stops cleanly says so; one that crashed ages out of health().
CREATE FUNCTION optischema._sign_off(worker text) RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    DELETE FROM optischema.sidecars WHERE worker_id = worker
$$;

-- Called by every sidecar's scheduler: queues the periodic jobs that are due.
-- A kind is due when no job of it is pending or running and none was created
-- within its interval, so any number of sidecars produce one job per interval.
CREATE FUNCTION optischema._schedule_due() RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    PERFORM optischema._xact_lock('schedule');
    FOR r IN
        SELECT s.kind, optischema.setting(s.key)::interval AS every
        FROM (VALUES ('snapshot', 'snapshot_interval'), ('recommend', 'recommend_interval'),
                     ('purge', 'purge_interval')) s (kind, key)
    LOOP
        CONTINUE WHEN r.every <= interval '0';
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM optischema.jobs j
            WHERE j.kind = r.kind
              AND (j.status IN ('pending', 'running') OR j.created_at > now() - r.every));
        RETURN NEXT optischema.enqueue(r.kind, jsonb_build_object('scheduled', true));
    END LOOP;
END
$$;

-- A pg_cron schedule for an interval: the cron expression that fires every
-- interval, rounded to what cron can say (minutes dividing an hour, hours
-- dividing a day, else daily). Under a minute is every minute: pg_cron before
-- 1.5 (Debian 12 ships 1.4) has no seconds.
CREATE FUNCTION optischema._cron_schedule(p_every interval) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m bigint := greatest(round(extract(epoch FROM p_every) / 60.0)::bigint, 1);
    h bigint := greatest(round(extract(epoch FROM p_every) / 3600.0)::bigint, 1);
BEGIN
    IF m < 60 THEN
        RETURN CASE WHEN m = 1 THEN '* * * * *' ELSE format('*/%s * * * *', (SELECT max(d) FROM generate_series(1, m) d WHERE 60 % d = 0)) END;
    ELSIF h < 24 THEN
        RETURN CASE WHEN h = 1 THEN '0 * * * *' ELSE format('0 */%s * * *', (SELECT max(d) FROM generate_series(1, h) d WHERE 24 % d = 0)) END;
    END IF;
    RETURN '0 0 * * *';
END
$$;

-- Scheduling with pg_cron instead of the sidecar: the exact statements to
-- run in pg_cron's database (cron.database_name), following this database's
-- interval settings. OptiSchema never schedules anything by itself.
-- Run the sidecar with --no-schedule then; it is still needed for apply
-- jobs and LLM analyses (or use apply(id, via => 'psql')).
CREATE FUNCTION optischema.cron_commands() RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('SELECT cron.schedule_in_database(%L, %L, %L, %L);',
                  'optischema-' || s.kind || '-' || current_database(),
                  optischema._cron_schedule(optischema.setting(s.key)::interval), s.command, current_database())
    FROM (VALUES (1, 'snapshot', 'snapshot_interval', 'SELECT optischema.snapshot(); SELECT optischema._verify_recent();'),
                 (2, 'recommend', 'recommend_interval', 'SELECT count(*) FROM optischema.recommend();'),
                 (3, 'purge', 'purge_interval', 'SELECT optischema.purge()')) s (n, kind, key, command)
    WHERE optischema.setting(s.key)::interval > interval '0'
    ORDER BY s.n
$$;

-- sql/11_changes.sql
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
 'Calls of a query needed after a change before its timing is judged.');

CREATE TABLE optischema._changes (
    id                bigserial PRIMARY KEY,
    recommendation_id bigint NOT NULL REFERENCES optischema._recommendations (id),
    action            text NOT NULL CHECK (action IN ('apply', 'rollback')),
    via               text NOT NULL CHECK (via IN ('sidecar', 'psql')),
    ddl               text NOT NULL,        -- exactly what is run
    index_schema      name NOT NULL,
    index_name        name NOT NULL,
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
    plan_check        text CHECK (plan_check IN ('pending', 'verified', 'not_used', 'skipped')),
    plan_evidence     jsonb,
    timing_verdict    text CHECK (timing_verdict IN ('improved', 'neutral', 'regressed', 'insufficient_data')),
    timing            jsonb,
    verified_at       timestamptz
);
CREATE INDEX _changes_recommendation_idx ON optischema._changes (recommendation_id, id);
SELECT pg_catalog.pg_extension_config_dump('optischema._changes', '');
SELECT pg_catalog.pg_extension_config_dump('optischema._changes_id_seq', '');

CREATE VIEW optischema.changes AS
SELECT c.id, c.recommendation_id, r.title, c.action, c.via, c.ddl, c.status AS outcome,
       c.requested_by, c.requested_at, c.started_at, c.finished_at, c.duration_ms, c.executed_by,
       c.error, c.plan_check, c.timing_verdict, c.verified_at, c.job_id, c.detail, c.plan_evidence, c.timing
FROM optischema._changes c
JOIN optischema._recommendations r ON r.id = c.recommendation_id;

-- Who asked: inside SECURITY DEFINER current_user is the owner, so take the
-- role the session acts as.
CREATE FUNCTION optischema._caller() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN current_setting('role') <> 'none' THEN current_setting('role') ELSE session_user::text END
$$;

-- Raises a clear error unless the calling role may act (apply, roll back,
-- dismiss, verify): that is, it was given optischema.grant_usage(role, admin => true).
CREATE FUNCTION optischema._require_admin(p_action text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT has_function_privilege('optischema._request_change(bigint, text, text)', 'EXECUTE') THEN
        RAISE EXCEPTION 'role % may not % OptiSchema recommendations', current_user, p_action
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('A superuser grants it with: SELECT optischema.grant_usage(%L, admin => true);', current_user);
    END IF;
END
$$;

-- The stored DDL must be one CREATE/DROP INDEX CONCURRENTLY statement and
-- nothing else (defence in depth: the sidecar checks again before running it).
CREATE FUNCTION optischema._check_index_ddl(p_ddl text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v text := regexp_replace(coalesce(p_ddl, ''), '\s*;\s*$', '');
BEGIN
    IF v ~* '^\s*CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY\s' AND position(';' IN v) = 0 AND v !~ '(--|/\*|\$)' THEN
        RETURN 'create';
    ELSIF v ~* '^\s*DROP\s+INDEX\s+CONCURRENTLY\s' AND position(';' IN v) = 0 AND v !~ '(--|/\*|\$)' THEN
        RETURN 'drop';
    END IF;
    RAISE EXCEPTION 'refusing to run %: not a single CREATE INDEX CONCURRENTLY or DROP INDEX CONCURRENTLY statement',
        coalesce(quote_literal(p_ddl), 'NULL')
        USING ERRCODE = 'data_exception',
              HINT = 'Only index changes built by OptiSchema are applied; run other advice yourself after review.';
END
$$;

-- Records the request to apply or roll back recommendation p_id and, via the
-- sidecar, queues the job that runs it. Returns the change id.
CREATE FUNCTION optischema._request_change(p_id bigint, p_action text, p_via text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r        optischema._recommendations;
    v_ddl    text;
    v_schema name;
    v_index  name;
    v_parts  text[];
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
    IF r.kind NOT IN ('create_index', 'drop_index') THEN
        RAISE EXCEPTION 'recommendation % is a % recommendation: OptiSchema only applies index changes', p_id, r.kind
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Review its ddl and explanation and run it yourself; then optischema.dismiss(' || p_id || ', reason) hides it.';
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
        v_ddl := r.ddl;
    ELSIF p_action = 'rollback' THEN
        IF r.status <> 'applied' THEN
            RAISE EXCEPTION 'recommendation % is %: only an applied recommendation can be rolled back', p_id, r.status
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'SELECT * FROM optischema.changes WHERE recommendation_id = ' || p_id || ' shows what happened to it.';
        END IF;
        v_ddl := r.rollback_ddl;
    ELSE
        RAISE EXCEPTION 'unknown action %', coalesce(quote_literal(p_action), 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM optischema._check_index_ddl(v_ddl);

    -- Where the index lives: index_name may be qualified; otherwise it is in its table's schema.
    v_parts := CASE WHEN coalesce(r.index_name, '') <> '' THEN parse_ident(r.index_name, false) END;
    IF cardinality(v_parts) = 2 THEN
        v_schema := v_parts[1]; v_index := v_parts[2];
    ELSE
        v_index := v_parts[1];
        SELECT n.nspname INTO v_schema FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = to_regclass(r.table_name);
    END IF;
    IF v_index IS NULL OR v_index = '' OR v_schema IS NULL THEN
        RAISE EXCEPTION 'recommendation % names no resolvable index (index_name %, table_name %)', p_id,
            coalesce(quote_literal(r.index_name), 'NULL'), coalesce(quote_literal(r.table_name), 'NULL')
            USING ERRCODE = 'undefined_table', HINT = 'The table may have been dropped or renamed: refresh with SELECT * FROM optischema.recommend();';
    END IF;

    INSERT INTO optischema._changes (recommendation_id, action, via, ddl, index_schema, index_name, prior_status, requested_by)
    VALUES (p_id, p_action, p_via, v_ddl, v_schema, v_index, r.status, optischema._caller())
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
CREATE FUNCTION optischema._announce(p_change bigint) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c optischema._changes;
BEGIN
    SELECT * INTO c FROM optischema._changes WHERE id = p_change;
    IF c.via = 'psql' THEN
        RAISE NOTICE 'change % recorded: run this at top level (autocommit), then SELECT optischema.applied(%);', p_change, p_change
            USING DETAIL = c.ddl;
    ELSE
        RAISE NOTICE 'change % queued as job %: a sidecar runs it once this transaction commits; CALL optischema.wait(%); waits for the outcome', p_change, c.job_id, p_change;
    END IF;
    RETURN p_change;
END
$$;

CREATE FUNCTION optischema.apply(id bigint, via text DEFAULT 'sidecar') RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._require_admin('apply');
    RETURN optischema._announce(optischema._request_change(id, 'apply', via));
END
$$;

CREATE FUNCTION optischema.rollback(id bigint, via text DEFAULT 'sidecar') RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._require_admin('roll back');
    RETURN optischema._announce(optischema._request_change(id, 'rollback', via));
END
$$;

-- Sets a change's outcome and moves its recommendation on. Only a change that
-- is still pending or running can finish: a second report is an error.
CREATE FUNCTION optischema._finish_change(p_change bigint, p_status text, p_error text DEFAULT NULL,
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
        -- A new index is checked against the plans of the queries it was made for.
        plan_check = CASE WHEN p_status = 'succeeded' AND c.action = 'apply' AND v_kind = 'create_index'
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
CREATE FUNCTION optischema._job_ended(p_job optischema.jobs, p_status text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_change bigint := CASE WHEN p_job.payload->>'change_id' ~ '^[0-9]{1,18}$' THEN (p_job.payload->>'change_id')::bigint END;
BEGIN
    IF p_job.kind IN ('apply', 'rollback') AND EXISTS (
            SELECT 1 FROM optischema._changes c WHERE c.id = v_change AND c.status IN ('pending', 'running')) THEN
        PERFORM optischema._finish_change(v_change, p_status,
            CASE p_status WHEN 'cancelled' THEN format('job %s was cancelled by %s', p_job.id, optischema._caller())
                          ELSE format('job %s failed: %s', p_job.id, p_job.error) END);
    END IF;
END
$$;

-- The sidecar's executor starts (or, after a crash, resumes) a change.
-- Returns the change as it is; a finished change is returned unchanged.
CREATE FUNCTION optischema._start_change(p_change bigint, p_worker text) RETURNS optischema._changes
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
CREATE FUNCTION optischema._record_plan_check(p_change bigint, p_verdict text, p_evidence jsonb) RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE optischema._changes SET plan_check = p_verdict, plan_evidence = p_evidence, verified_at = now()
    WHERE id = p_change
$$;

-- Without a sidecar: after running a change's statement from psql, this
-- records the outcome by looking at the catalog, the same way the sidecar does.
CREATE FUNCTION optischema._applied(p_change bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c       optischema._changes;
    v_valid boolean;
    v_op    text;
    v_ok    boolean;
    v_error text;
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
    v_op := optischema._check_index_ddl(c.ddl);
    SELECT i.indisvalid INTO v_valid
    FROM pg_class x JOIN pg_namespace n ON n.oid = x.relnamespace JOIN pg_index i ON i.indexrelid = x.oid
    WHERE n.nspname = c.index_schema AND x.relname = c.index_name;
    IF v_op = 'create' THEN
        v_ok := coalesce(v_valid, false);
        v_error := CASE WHEN v_valid IS NULL THEN format('index %I.%I does not exist: the statement was not run or failed', c.index_schema, c.index_name)
                        WHEN NOT v_valid THEN format('index %I.%I is INVALID (its build failed): run DROP INDEX CONCURRENTLY IF EXISTS %I.%I; then apply again',
                                                     c.index_schema, c.index_name, c.index_schema, c.index_name) END;
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

CREATE FUNCTION optischema.applied(change_id bigint) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._require_admin('record changes to');
    RETURN optischema._applied(change_id);
END
$$;

CREATE FUNCTION optischema._dismiss(p_id bigint, p_reason text) RETURNS void
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

CREATE FUNCTION optischema.dismiss(id bigint, reason text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._require_admin('dismiss');
    PERFORM optischema._dismiss(id, reason);
END
$$;

-- Measured timing of the affected queries before and after the latest applied
-- change of recommendation p_id, from the snapshots. One row per query and a
-- last row (queryid NULL) for all of them, weighted by calls after. The
-- verdict lands in the change log; a regression beyond regression_threshold is
-- rolled back when auto_rollback is on.
CREATE FUNCTION optischema._verify(p_id bigint)
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
    b AS (SELECT w.queryid, w.calls, w.total_ms FROM optischema._query_window(v_b_from, v_b_to) w),
    a AS (SELECT w.queryid, w.calls, w.total_ms FROM optischema._query_window(v_a_from, v_a_to) w
          WHERE v_a_from < v_a_to),
    m AS (
        SELECT q.queryid, coalesce(b.calls, 0) AS cb, b.total_ms / nullif(b.calls, 0) AS mb,
               coalesce(a.calls, 0) AS ca, a.total_ms / nullif(a.calls, 0) AS ma
        FROM q LEFT JOIN b USING (queryid) LEFT JOIN a USING (queryid)
    ), v AS (
        SELECT m.*, CASE WHEN m.cb > 0 AND m.ca >= v_min_calls AND m.mb > 0
                         THEN round((100 * (m.ma - m.mb) / m.mb)::numeric, 2) END AS pct
        FROM m
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'queryid', v.queryid, 'calls_before', v.cb, 'mean_ms_before', round(v.mb::numeric, 3),
               'calls_after', v.ca, 'mean_ms_after', round(v.ma::numeric, 3), 'change_pct', v.pct,
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

CREATE FUNCTION optischema.verify(id bigint)
RETURNS TABLE (queryid bigint, calls_before bigint, mean_ms_before numeric, calls_after bigint,
               mean_ms_after numeric, change_pct numeric, verdict text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._require_admin('verify');
    RETURN QUERY SELECT * FROM optischema._verify(id);
END
$$;

-- After each scheduled snapshot: the timing check of every change applied
-- within verify_window. Returns how many were checked.
CREATE FUNCTION optischema._verify_recent() RETURNS integer
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
CREATE PROCEDURE optischema.wait(change_id bigint, timeout interval DEFAULT '5 minutes', INOUT outcome text DEFAULT NULL)
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

-- sql/20_llm.sql
-- LLM analyses: what the sidecar may send to a model (context()), which
-- analyses are due (enqueue_llm_analyses()), and the audit of every call
-- (llm_calls) and of every proposal with its verdict (llm_proposals).
--
-- Privacy: the context holds statistics, never data. Comments are stripped
-- (they are a prompt-injection channel), utility statements never appear
-- (CREATE ROLE ... PASSWORD is kept verbatim by pg_stat_statements), and
-- pg_stats values (most_common_vals, histogram_bounds) only with
-- llm_share_values on.

INSERT INTO optischema.setting_defs (key, type, default_value, min_value, max_value, allowed, description) VALUES
('llm_enabled', 'boolean', 'true', NULL, NULL, NULL,
 'LLM analyses run at all. Even when on, the sidecar only calls a model when OPENAI_API_KEY or OPENAI_BASE_URL is set in its environment.'),
('llm_model', 'text', 'gpt-4o-mini', NULL, NULL, NULL,
 'Model name sent to the OpenAI-compatible endpoint (a deployment name on Azure OpenAI).'),
('llm_share_values', 'boolean', 'false', NULL, NULL, NULL,
 'Include pg_stats most_common_vals and histogram_bounds (real data values) in the context sent to the model.'),
('llm_max_concurrent', 'integer', '2', 1, 64, NULL,
 'LLM calls in flight at once across every sidecar of this database.'),
('llm_tokens_per_hour', 'integer', '200000', 0, 1000000000, NULL,
 'Tokens (in + out, from optischema.llm_calls) all sidecars may spend in any hour; 0 stops all calls.'),
('llm_timeout', 'interval', '60 seconds', NULL, NULL, NULL,
 'Timeout of one HTTP request to the model.'),
('llm_max_retries', 'integer', '3', 0, 10, NULL,
 'Retries of a failed request (timeouts, 429 honouring Retry-After, 5xx), with exponential backoff.'),
('llm_reanalyze_after', 'interval', '7 days', NULL, NULL, NULL,
 'enqueue_llm_analyses() skips a query (or the workload) analysed successfully more recently than this.'),
('llm_check_timeout', 'interval', '5 seconds', NULL, NULL, NULL,
 'statement_timeout of each run of a proposed rewrite and of the original during the equivalence check.');

-- One row per HTTP request to a model (retries included), or per call refused
-- before any request (budget). The token budget is counted from here, so it
-- holds across sidecars and restarts.
CREATE TABLE optischema.llm_calls (
    id              bigserial PRIMARY KEY,
    job_id          bigint,
    scope           text NOT NULL CHECK (scope IN ('query', 'workload')),
    queryid         bigint,
    model           text NOT NULL,
    attempt         integer NOT NULL DEFAULT 1,
    payload_sha256  text,
    payload_bytes   integer,
    tokens_in       integer NOT NULL DEFAULT 0,
    tokens_out      integer NOT NULL DEFAULT 0,
    latency_ms      double precision,
    outcome         text NOT NULL CHECK (outcome IN ('ok', 'invalid_answer', 'timeout', 'rate_limited',
                                                     'http_error', 'connection_error', 'budget_exceeded')),
    http_status     integer,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX llm_calls_created_at_idx ON optischema.llm_calls (created_at);
CREATE INDEX llm_calls_queryid_idx ON optischema.llm_calls (queryid, created_at);

-- Every proposal of a valid answer and what OptiSchema made of it.
CREATE TABLE optischema.llm_proposals (
    id                 bigserial PRIMARY KEY,
    call_id            bigint NOT NULL REFERENCES optischema.llm_calls (id) ON DELETE CASCADE,
    queryid            bigint,
    kind               text NOT NULL CHECK (kind IN ('index', 'rewrite', 'config', 'explanation')),
    proposal           jsonb NOT NULL,
    accepted           boolean NOT NULL,
    reason             text NOT NULL,
    evidence           jsonb NOT NULL DEFAULT '{}',
    recommendation_id  bigint,
    created_at         timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX llm_proposals_call_id_idx ON optischema.llm_proposals (call_id);

SELECT pg_catalog.pg_extension_config_dump('optischema.llm_calls', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.llm_calls_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.llm_proposals', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.llm_proposals_id_seq', '');

-- Query text without -- and /* */ comments (nested, as PostgreSQL nests
-- them); string literals, quoted identifiers and dollar quotes are copied
-- untouched so a comment marker inside them is not mistaken for one.
CREATE FUNCTION optischema._strip_comments(p_sql text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n     integer := length(p_sql);
    i     integer := 1;
    j     integer;
    depth integer;
    c     text;
    tag   text;
    parts text[] := '{}';
BEGIN
    WHILE i <= n LOOP
        -- copy the run of ordinary characters up to the next special one at once
        j := i + coalesce(length(substring(substr(p_sql, i) FROM '^[^-/''"$]+')), 0);
        IF j > i THEN
            parts := parts || substr(p_sql, i, j - i);
            i := j;
            CONTINUE;
        END IF;
        c := substr(p_sql, i, 1);
        IF substr(p_sql, i, 2) = '--' THEN
            j := strpos(substr(p_sql, i), E'\n');
            i := CASE WHEN j = 0 THEN n + 1 ELSE i + j - 1 END;
            parts := parts || ' '::text;
        ELSIF substr(p_sql, i, 2) = '/*' THEN
            depth := 1;
            i := i + 2;
            WHILE i <= n AND depth > 0 LOOP
                IF substr(p_sql, i, 2) = '/*' THEN depth := depth + 1; i := i + 2;
                ELSIF substr(p_sql, i, 2) = '*/' THEN depth := depth - 1; i := i + 2;
                ELSE i := i + 1;
                END IF;
            END LOOP;
            parts := parts || ' '::text;
        ELSIF c IN ('''', '"') THEN
            j := i + 1;
            LOOP
                EXIT WHEN j > n;
                -- E'...' strings escape with backslashes
                IF c = '''' AND substr(p_sql, j, 1) = '\' AND i > 1 AND lower(substr(p_sql, i - 1, 1)) = 'e' THEN
                    j := j + 2;
                ELSIF substr(p_sql, j, 2) = c || c THEN
                    j := j + 2;
                ELSIF substr(p_sql, j, 1) = c THEN
                    EXIT;
                ELSE
                    j := j + 1;
                END IF;
            END LOOP;
            parts := parts || substr(p_sql, i, j - i + 1);
            i := j + 1;
        ELSIF c = '$' THEN
            -- inside an identifier (a$b$c) a dollar opens no quote
            tag := CASE WHEN i = 1 OR substr(p_sql, i - 1, 1) !~ '[A-Za-z0-9_$]'
                        THEN substring(substr(p_sql, i) FROM '^\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$') END;
            IF tag IS NULL THEN                  -- a $n parameter, a lone dollar, part of a name
                parts := parts || c;
                i := i + 1;
            ELSE
                j := strpos(substr(p_sql, i + length(tag)), tag);
                j := CASE WHEN j = 0 THEN n + 1 ELSE i + length(tag) + j - 1 + length(tag) END;
                parts := parts || substr(p_sql, i, j - i);
                i := j;
            END IF;
        ELSE                                     -- a lone - or /
            parts := parts || c;
            i := i + 1;
        END IF;
    END LOOP;
    RETURN btrim(array_to_string(parts, ''), E' \t\r\n;');
END
$$;

-- Utility statements (CREATE ROLE ... PASSWORD, COPY, SET, ...) cannot be
-- planned and may hold secrets: they are never part of a context.
CREATE FUNCTION optischema._is_utility(p_sql text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(lower(substring(optischema._strip_comments(p_sql) FROM '^[\s(]*([A-Za-z]+)')), '')
           NOT IN ('select', 'insert', 'update', 'delete', 'with', 'values', 'table', 'merge')
$$;

-- Planner-relevant settings, as the server shows them (with units).
CREATE FUNCTION optischema._llm_settings() RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_object_agg(s.name, current_setting(s.name) ORDER BY s.name)
           || jsonb_build_object('server_version', current_setting('server_version'))
    FROM pg_catalog.pg_settings s
    WHERE s.name IN ('work_mem', 'maintenance_work_mem', 'shared_buffers', 'effective_cache_size',
                     'random_page_cost', 'seq_page_cost', 'cpu_tuple_cost', 'cpu_index_tuple_cost',
                     'cpu_operator_cost', 'effective_io_concurrency', 'default_statistics_target',
                     'max_parallel_workers_per_gather', 'jit', 'hash_mem_multiplier',
                     'from_collapse_limit', 'join_collapse_limit', 'max_connections')
       OR (s.name LIKE 'enable\_%' AND s.setting = 'off')    -- only planner methods someone turned off
$$;

-- Everything about one table a model needs to reason about access paths:
-- columns with their statistics, size, existing indexes with their use, and
-- write rates over the analysis window.
CREATE FUNCTION optischema._llm_table_context(p_relid oid, p_from bigint, p_seconds double precision,
                                              p_share_values boolean) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object(
        'table', format('%I.%I', n.nspname, c.relname),
        'estimated_rows', greatest(c.reltuples, 0)::bigint,
        'live_rows', st.n_live_tup,
        'table_bytes', pg_catalog.pg_relation_size(c.oid),
        'total_bytes', pg_catalog.pg_total_relation_size(c.oid),
        'seq_scans', st.seq_scan,
        'idx_scans', st.idx_scan,
        'columns', (
            SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                       'name', a.attname,
                       'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
                       'not_null', a.attnotnull,
                       'null_frac', s.null_frac,
                       'n_distinct', s.n_distinct,
                       'correlation', s.correlation,
                       'avg_width', s.avg_width))
                   || CASE WHEN p_share_values THEN jsonb_strip_nulls(jsonb_build_object(
                       'most_common_vals', s.most_common_vals::text,
                       'most_common_freqs', s.most_common_freqs,
                       'histogram_bounds', s.histogram_bounds::text)) ELSE '{}' END
                   ORDER BY a.attnum)
            FROM pg_catalog.pg_attribute a
            LEFT JOIN pg_catalog.pg_stats s
                   ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname
                  AND NOT s.inherited
            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
        'indexes', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'name', ic.relname,
                       'definition', pg_catalog.pg_get_indexdef(i.indexrelid),
                       'valid', i.indisvalid,
                       'bytes', pg_catalog.pg_relation_size(i.indexrelid),
                       'scans', si.idx_scan) ORDER BY ic.relname)
            FROM pg_catalog.pg_index i
            JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
            LEFT JOIN pg_catalog.pg_stat_all_indexes si ON si.indexrelid = i.indexrelid
            WHERE i.indrelid = c.oid), '[]'),
        'writes', (
            SELECT jsonb_build_object(
                       'window_seconds', round(p_seconds::numeric),
                       'inserted', coalesce(sum(t.n_tup_ins), 0),
                       'updated', coalesce(sum(t.n_tup_upd), 0),
                       'hot_updated', coalesce(sum(t.n_tup_hot_upd), 0),
                       'deleted', coalesce(sum(t.n_tup_del), 0),
                       'rows_written_per_hour',
                       round((3600 * coalesce(sum(t.n_tup_ins + t.n_tup_upd + t.n_tup_del), 0)
                              / nullif(p_seconds, 0))::numeric, 1))
            FROM optischema.table_stats t
            WHERE t.relid = c.oid AND t.snapshot_id > coalesce(p_from, 0)))
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_catalog.pg_stat_all_tables st ON st.relid = c.oid
    WHERE c.oid = p_relid
$$;

-- The catalog-grounded context of one statement: what the sidecar sends to a
-- model for it. Runs with the caller's privileges (PREPARE needs access to the
-- tables; pg_stats shows only columns the caller may read).
CREATE FUNCTION optischema.context(queryid bigint) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_qid    bigint := $1;
    q        optischema.queries;
    v_text   text;
    v_stmt   text := 'optischema_context_' || replace($1::text, '-', 'm');
    v_types  regtype[];
    v_plan   jsonb;
    v_reason text;
    w        record;
    v_stats  jsonb;
    v_relids oid[];
BEGIN
    IF v_qid IS NULL THEN
        RAISE EXCEPTION 'queryid must not be NULL'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Pick one from optischema.top_queries().';
    END IF;
    SELECT * INTO q FROM optischema.queries WHERE queryid = v_qid;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown queryid %', v_qid
            USING ERRCODE = 'no_data_found',
                  HINT = 'Only statements captured by optischema.snapshot() have a context; see optischema.top_queries().';
    END IF;
    IF optischema._is_utility(q.query) THEN
        -- the text is not repeated in the message: it may hold a password
        RAISE EXCEPTION 'queryid % is a utility statement: it has no plan and its text is never shared', v_qid
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF q.own THEN
        RAISE EXCEPTION 'queryid % is one of OptiSchema''s own statements', v_qid
            USING ERRCODE = 'wrong_object_type';
    END IF;
    v_text := optischema._strip_comments(q.query);

    -- The generic plan: the text is only PREPAREd and EXPLAINed, never executed,
    -- under the session's own search_path (the one the application's names
    -- resolve with), not this function's. Prepared statements outlive a
    -- rolled-back subtransaction: deallocate on every path.
    BEGIN
        PERFORM pg_catalog.set_config('search_path',
            (SELECT s.reset_val FROM pg_catalog.pg_settings s WHERE s.name = 'search_path'), true);
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_statements p WHERE p.name = v_stmt) THEN
            EXECUTE format('DEALLOCATE %I', v_stmt);
        END IF;
        EXECUTE format('PREPARE %I AS %s', v_stmt, v_text);
        SELECT p.parameter_types INTO v_types FROM pg_catalog.pg_prepared_statements p WHERE p.name = v_stmt;
        IF 'unknown'::regtype = ANY (v_types) THEN
            v_reason := 'a parameter has an undetermined type';
        ELSE
            EXECUTE format('EXPLAIN (FORMAT JSON, VERBOSE) EXECUTE %I%s', v_stmt,
                           CASE WHEN cardinality(v_types) > 0
                                THEN '(' || array_to_string(array_fill('NULL'::text, ARRAY[cardinality(v_types)]), ', ') || ')'
                                ELSE '' END)
                INTO v_plan;
            v_plan := v_plan -> 0 -> 'Plan';
        END IF;
        EXECUTE format('DEALLOCATE %I', v_stmt);
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    EXCEPTION WHEN OTHERS THEN
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        v_reason := SQLERRM;
        v_plan := NULL;
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_statements p WHERE p.name = v_stmt) THEN
            EXECUTE format('DEALLOCATE %I', v_stmt);
        END IF;
    END;

    -- Tables: from the plan; without one, user tables whose name appears in the text.
    IF v_plan IS NOT NULL THEN
        SELECT array_agg(DISTINCT c.oid) INTO v_relids
        FROM jsonb_path_query(v_plan, 'strict $.**') node
        JOIN pg_catalog.pg_namespace n ON n.nspname = node ->> 'Schema'
        JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = node ->> 'Relation Name'
        WHERE jsonb_typeof(node) = 'object' AND node ? 'Relation Name';
    ELSE
        SELECT array_agg(DISTINCT c.oid) INTO v_relids
        FROM regexp_matches(v_text, '"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z_0-9$]*)', 'g') m
        JOIN pg_catalog.pg_class c ON c.relname = coalesce(replace(m[1], '""', '"'), lower(m[2]))
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'm')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'optischema', 'pg_toast');
    END IF;

    SELECT * INTO w FROM optischema._analysis_window();
    SELECT jsonb_build_object(
               'window_seconds', round(w.seconds::numeric),
               'calls', x.calls,
               'total_ms', round(x.total_ms::numeric, 3),
               'mean_ms', round((x.total_ms / nullif(x.calls, 0))::numeric, 3),
               'rows', x.rows,
               'share_of_db_time_pct', round((100 * x.total_ms / nullif(x.all_ms, 0))::numeric, 2),
               'cache_hit_pct', round((100.0 * x.blks_hit / nullif(x.blks_hit + x.blks_read, 0))::numeric, 2),
               'shared_blks_read', x.blks_read,
               'temp_blks_written', x.temp_blks_written)
    INTO v_stats
    FROM (SELECT qw.*, sum(qw.total_ms) OVER () AS all_ms
          FROM optischema._query_window(w.p_from, w.p_to) qw) x
    WHERE x.queryid = v_qid;

    RETURN jsonb_build_object(
        'queryid', v_qid,
        'query', v_text,
        'plan', v_plan,
        'plan_unavailable_reason', v_reason,
        'statistics', v_stats,
        'tables', coalesce((SELECT jsonb_agg(optischema._llm_table_context(r, w.p_from, w.seconds,
                                                 optischema.setting('llm_share_values')::boolean))
                            FROM unnest(v_relids) r), '[]'),
        'settings', optischema._llm_settings());
END
$$;

-- The context of the workload as a whole (temp spills, cache hit ratio, the
-- heaviest statements), for advice that no single statement shows.
CREATE FUNCTION optischema.workload_context(n integer DEFAULT 10) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w record;
BEGIN
    PERFORM optischema._check_count(n, 1, 'statements', 'optischema.workload_context(10)');
    SELECT * INTO w FROM optischema._analysis_window();
    RETURN (
        WITH qw AS (
            SELECT x.*, q.query, x.calls >= optischema.setting('min_calls')::bigint AS repeated
            FROM optischema._query_window(w.p_from, w.p_to) x
            JOIN optischema.queries q ON q.queryid = x.queryid
            WHERE NOT q.own AND NOT optischema._is_utility(q.query)
        ), tot AS (
            SELECT sum(total_ms) AS ms, sum(calls) AS calls, sum(temp_blks_written) AS temp,
                   sum(blks_hit) AS hit, sum(blks_read) AS rd
            FROM qw
        )
        SELECT jsonb_build_object(
            'window_seconds', round(w.seconds::numeric),
            'database_bytes', pg_catalog.pg_database_size(current_database()),
            'totals', jsonb_build_object(
                'statements', (SELECT count(*) FROM qw),
                'calls', tot.calls,
                'total_ms', round(tot.ms::numeric, 3),
                'temp_blks_written', tot.temp,
                'cache_hit_pct', round((100.0 * tot.hit / nullif(tot.hit + tot.rd, 0))::numeric, 2)),
            'heaviest_statements', coalesce((
                SELECT jsonb_agg(jsonb_build_object(
                           'queryid', h.queryid,
                           'query', optischema._strip_comments(h.query),
                           'calls', h.calls,
                           'total_ms', round(h.total_ms::numeric, 3),
                           'mean_ms', round((h.total_ms / nullif(h.calls, 0))::numeric, 3),
                           'share_of_db_time_pct', round((100 * h.total_ms / nullif(tot.ms, 0))::numeric, 2),
                           'rows', h.rows,
                           'temp_blks_written', h.temp_blks_written,
                           'cache_hit_pct', round((100.0 * h.blks_hit / nullif(h.blks_hit + h.blks_read, 0))::numeric, 2))
                       ORDER BY h.total_ms DESC)
                -- one-off statements (data loads, reports) are not the workload to tune
                FROM (SELECT * FROM qw WHERE qw.repeated ORDER BY qw.total_ms DESC, qw.queryid LIMIT n) h), '[]'),
            'settings', optischema._llm_settings())
        FROM tot);
END
$$;

-- Tokens spent (in + out) by every sidecar since p_since ago.
CREATE FUNCTION optischema.llm_tokens_used(p_since interval DEFAULT '1 hour') RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(sum(c.tokens_in + c.tokens_out), 0)::bigint
    FROM optischema.llm_calls c WHERE c.created_at > pg_catalog.now() - p_since
$$;

-- Enqueues 'llm_analysis' jobs: the n heaviest statements of the analysis
-- window run at least min_calls times, those no open advisor recommendation
-- covers first, and one for the workload. Skips what is already pending or was analysed within
-- llm_reanalyze_after. Returns the number of jobs enqueued.
CREATE FUNCTION optischema.enqueue_llm_analyses(n integer DEFAULT 5) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w        record;
    v_recent interval := optischema.setting('llm_reanalyze_after')::interval;
    v_count  integer := 0;
    v_qid    bigint;
BEGIN
    PERFORM optischema._check_count(n, 0, 'statements', 'optischema.enqueue_llm_analyses(5)');
    IF NOT optischema.setting('llm_enabled')::boolean THEN
        RETURN 0;
    END IF;
    -- two callers at once (recommend() and the schedule) must not enqueue twice
    PERFORM optischema._xact_lock('enqueue_llm_analyses');
    SELECT * INTO w FROM optischema._analysis_window();

    FOR v_qid IN
        SELECT x.queryid
        FROM optischema._query_window(w.p_from, w.p_to) x
        JOIN optischema.queries q ON q.queryid = x.queryid
        WHERE NOT q.own AND x.total_ms > 0 AND NOT optischema._is_utility(q.query)
          AND x.calls >= optischema.setting('min_calls')::bigint      -- the advisor's bar: one-offs are no workload
          AND NOT EXISTS (SELECT 1 FROM optischema.jobs j
                          WHERE j.kind = 'llm_analysis' AND j.status IN ('pending', 'running')
                            AND j.payload ->> 'queryid' = x.queryid::text)
          AND NOT EXISTS (SELECT 1 FROM optischema.llm_calls c
                          WHERE c.queryid = x.queryid AND c.outcome = 'ok'
                            AND c.created_at > pg_catalog.now() - v_recent)
        ORDER BY EXISTS (SELECT 1 FROM optischema._recommendations r
                         WHERE r.source = 'advisor' AND r.status = 'open' AND x.queryid = ANY (r.queryids)),
                 x.total_ms DESC, x.queryid
        LIMIT n
    LOOP
        PERFORM optischema.enqueue('llm_analysis',
                                   jsonb_build_object('scope', 'query', 'queryid', v_qid::text));
        v_count := v_count + 1;
    END LOOP;

    IF EXISTS (SELECT 1 FROM optischema._query_window(w.p_from, w.p_to))
       AND NOT EXISTS (SELECT 1 FROM optischema.jobs j
                       WHERE j.kind = 'llm_analysis' AND j.status IN ('pending', 'running')
                         AND j.payload ->> 'scope' = 'workload')
       AND NOT EXISTS (SELECT 1 FROM optischema.llm_calls c
                       WHERE c.scope = 'workload' AND c.outcome = 'ok'
                         AND c.created_at > pg_catalog.now() - v_recent) THEN
        PERFORM optischema.enqueue('llm_analysis', jsonb_build_object('scope', 'workload'));
        v_count := v_count + 1;
    END IF;
    RETURN v_count;
END
$$;

-- The sidecar writes through these (its role may only read the tables, like
-- every admin role): the audit of a request, a proposal's verdict, and an
-- accepted proposal as a recommendation.
CREATE FUNCTION optischema._llm_record_call(p_job_id bigint, p_scope text, p_queryid bigint, p_model text,
    p_attempt integer, p_payload_sha256 text, p_payload_bytes integer, p_tokens_in integer, p_tokens_out integer,
    p_latency_ms double precision, p_outcome text, p_http_status integer, p_error text) RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO optischema.llm_calls (job_id, scope, queryid, model, attempt, payload_sha256, payload_bytes,
                                      tokens_in, tokens_out, latency_ms, outcome, http_status, error)
    VALUES (p_job_id, p_scope, p_queryid, p_model, p_attempt, p_payload_sha256, p_payload_bytes,
            p_tokens_in, p_tokens_out, p_latency_ms, p_outcome, p_http_status, left(p_error, 2000))
    RETURNING id
$$;

CREATE FUNCTION optischema._llm_record_proposal(p_call_id bigint, p_queryid bigint, p_kind text, p_proposal jsonb,
    p_accepted boolean, p_reason text, p_evidence jsonb, p_recommendation_id bigint) RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO optischema.llm_proposals (call_id, queryid, kind, proposal, accepted, reason, evidence, recommendation_id)
    VALUES (p_call_id, p_queryid, p_kind, p_proposal, p_accepted, p_reason, p_evidence, p_recommendation_id)
    RETURNING id
$$;

-- Fills the empty explanation of open advisor recommendations for these
-- statements (only the one with key p_key when given); returns their ids.
CREATE FUNCTION optischema._llm_explain_advisor(p_queryids bigint[], p_explanation text, p_key text DEFAULT NULL)
RETURNS bigint[]
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH u AS (
        UPDATE optischema._recommendations r
        SET explanation = p_explanation, updated_at = pg_catalog.now()
        WHERE r.source = 'advisor' AND r.status = 'open' AND coalesce(r.explanation, '') = ''
          AND (p_key IS NULL OR r.key = p_key) AND r.queryids && p_queryids
        RETURNING r.id)
    SELECT coalesce(array_agg(u.id ORDER BY u.id), '{}') FROM u
$$;

-- Writes an accepted proposal as an 'llm' recommendation, or refreshes the
-- open one with the same key. A key held by an advisor row (the same index)
-- or by a row already acted on is left as it is, apart from an empty advisor
-- explanation. Returns the row's id and whether it was written.
CREATE FUNCTION optischema._llm_recommend(p_key text, p_kind text, p_title text, p_ddl text, p_rollback_ddl text,
    p_table_name text, p_index_name text, p_queryids bigint[], p_benefit jsonb, p_evidence jsonb,
    p_estimated_size_bytes bigint, p_score double precision, p_explanation text,
    OUT rec_id bigint, OUT written boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO optischema._recommendations AS r
        (key, kind, source, title, ddl, rollback_ddl, table_name, index_name, queryids, benefit, evidence,
         estimated_size_bytes, score, explanation)
    VALUES (p_key, p_kind, 'llm', p_title, p_ddl, p_rollback_ddl, p_table_name, p_index_name, p_queryids,
            p_benefit, p_evidence, p_estimated_size_bytes, p_score, p_explanation)
    ON CONFLICT (key) DO UPDATE
    SET title = EXCLUDED.title, ddl = EXCLUDED.ddl, rollback_ddl = EXCLUDED.rollback_ddl,
        -- the same advice from another statement's analysis: it serves both
        queryids = ARRAY(SELECT DISTINCT q FROM unnest(r.queryids || EXCLUDED.queryids) q ORDER BY q),
        benefit = EXCLUDED.benefit, evidence = EXCLUDED.evidence,
        estimated_size_bytes = EXCLUDED.estimated_size_bytes, score = EXCLUDED.score,
        explanation = EXCLUDED.explanation, updated_at = pg_catalog.now()
    WHERE r.source = 'llm' AND r.status = 'open'
    RETURNING r.id INTO rec_id;
    written := rec_id IS NOT NULL;
    IF NOT written THEN
        PERFORM optischema._llm_explain_advisor(p_queryids, p_explanation, p_key);
        SELECT r.id INTO rec_id FROM optischema._recommendations r WHERE r.key = p_key;
    END IF;
END
$$;

-- sql/30_recommend.sql
-- recommend(): refreshes the analysis, keeps the advisor's results in
-- _recommendations (one row per distinct piece of advice) and queues LLM
-- analyses for what remains.

CREATE FUNCTION optischema.recommend(n integer DEFAULT 20)
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

-- sql/80_retention.sql
-- Retention, in one function so that the sidecar's purge job and a pg_cron
-- line are the same single call. Separate from snapshot() so that capture
-- stays fast. The change log (_changes) is the audit trail and is never purged.
CREATE FUNCTION optischema.purge() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cutoff bigint;
    v_jobs   timestamptz := now() - optischema.setting('job_retention')::interval;
    v_rows   bigint := 0;
    n        bigint;
BEGIN
    PERFORM optischema._xact_lock('snapshot');
    -- The newest snapshot always stays: the next one takes its deltas against it.
    SELECT max(id) INTO v_cutoff FROM optischema.snapshots
    WHERE taken_at < now() - optischema.setting('retention')::interval
      AND id < (SELECT max(id) FROM optischema.snapshots);
    IF v_cutoff IS NOT NULL THEN
        -- Keep each statement's newest row at or before the cutoff: later windows
        -- take their starting totals from it.
        DELETE FROM optischema.query_stats x
        WHERE x.snapshot_id <= v_cutoff
          AND EXISTS (SELECT 1 FROM optischema.query_stats y
                      WHERE y.queryid = x.queryid AND y.snapshot_id > x.snapshot_id AND y.snapshot_id <= v_cutoff);
        GET DIAGNOSTICS n = ROW_COUNT; v_rows := v_rows + n;
        DELETE FROM optischema.table_stats WHERE snapshot_id < v_cutoff;
        GET DIAGNOSTICS n = ROW_COUNT; v_rows := v_rows + n;
        DELETE FROM optischema.index_stats WHERE snapshot_id < v_cutoff;
        GET DIAGNOSTICS n = ROW_COUNT; v_rows := v_rows + n;
        DELETE FROM optischema.snapshots WHERE id < v_cutoff;
        GET DIAGNOSTICS n = ROW_COUNT; v_rows := v_rows + n;
    END IF;

    DELETE FROM optischema.jobs j
    WHERE j.status IN ('done', 'failed', 'cancelled') AND j.finished_at < v_jobs;
    GET DIAGNOSTICS n = ROW_COUNT; v_rows := v_rows + n;
    DELETE FROM optischema.sidecars s WHERE s.last_seen < v_jobs;
    GET DIAGNOSTICS n = ROW_COUNT; v_rows := v_rows + n;
    -- Proposals go with their call (ON DELETE CASCADE); the token budget reads the last hour only.
    DELETE FROM optischema.llm_calls c WHERE c.created_at < v_jobs;
    GET DIAGNOSTICS n = ROW_COUNT; v_rows := v_rows + n;
    DELETE FROM optischema.analyses a WHERE a.started_at < v_jobs;
    GET DIAGNOSTICS n = ROW_COUNT; v_rows := v_rows + n;
    RETURN v_rows;
END
$$;

-- sql/90_roles.sql
-- Roles. The install script creates none; a superuser gives existing roles
-- one of two levels:
--   reader: sees recommendations, changes, settings, jobs and sidecars, and
--           calls top_queries() and health() (which take a snapshot when the
--           data is stale, as their definer).
--   admin:  everything, including apply(), rollback(), dismiss(), verify(),
--           recommend() and enqueue(). The sidecar's login role is an admin.
-- This file must stay last: it revokes EXECUTE from PUBLIC on every routine
-- the files before it created.

-- What a reader may call. The action wrappers are included so that a reader
-- who tries one is told how to become an admin instead of a bare "permission denied".
CREATE FUNCTION optischema._reader_routines() RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY['FUNCTION optischema.top_queries(interval, integer)',
                 'FUNCTION optischema.health()',
                 'FUNCTION optischema.setting(text)',
                 'FUNCTION optischema._require_admin(text)',
                 'FUNCTION optischema.apply(bigint, text)',
                 'FUNCTION optischema.rollback(bigint, text)',
                 'FUNCTION optischema.dismiss(bigint, text)',
                 'FUNCTION optischema.applied(bigint)',
                 'FUNCTION optischema.verify(bigint)',
                 'PROCEDURE optischema.wait(bigint, interval, text)']
$$;

CREATE FUNCTION optischema._reader_relations() RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY['optischema.recommendations', 'optischema.changes', 'optischema.settings',
                 'optischema.jobs', 'optischema.sidecars']
$$;

-- Raises a clear error unless p_role exists and the caller may grant on the schema.
CREATE FUNCTION optischema._check_grantee(p_role name) RETURNS void
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

-- Gives p_role read access, or (admin) full control of OptiSchema. Returns what was granted.
CREATE FUNCTION optischema.grant_usage(role name, admin boolean DEFAULT false) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    x text;
BEGIN
    PERFORM optischema._check_grantee(role);
    IF admin IS NULL THEN
        RAISE EXCEPTION 'admin must be true or false' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA optischema TO %I', role);
    FOREACH x IN ARRAY optischema._reader_relations() LOOP
        EXECUTE format('GRANT SELECT ON %s TO %I', x, role);
    END LOOP;
    FOREACH x IN ARRAY optischema._reader_routines() LOOP
        EXECUTE format('GRANT EXECUTE ON %s TO %I', x, role);
    END LOOP;
    IF admin THEN
        EXECUTE format('GRANT EXECUTE ON ALL ROUTINES IN SCHEMA optischema TO %I', role);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA optischema TO %I', role);
        RETURN format('%s is an OptiSchema admin: it may read everything, apply, roll back and dismiss', role);
    END IF;
    RETURN format('%s is an OptiSchema reader: recommendations, changes, top_queries() and health()', role);
END
$$;

-- Takes back everything grant_usage() gave.
CREATE FUNCTION optischema.revoke_usage(role name) RETURNS text
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

-- Last: nothing is callable by PUBLIC; grant_usage() hands out what is needed.
REVOKE ALL ON ALL ROUTINES IN SCHEMA optischema FROM PUBLIC;
