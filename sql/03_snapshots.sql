-- Workload capture. snapshot() reads pg_stat_statements and the table and
-- index statistics of this database and stores only what changed.
--
-- Statements are stored as running totals (OptiSchema's own counters, which
-- never go backwards: resets and evictions of pg_stat_statements are folded
-- in), one row per statement and snapshot, and only when the statement ran
-- since the previous snapshot. Any window's figures are then the difference
-- of two rows per statement (_query_window), so reading a day of 5-minute
-- snapshots costs two index probes per statement, not a scan of the day.

CREATE TABLE IF NOT EXISTS optischema.snapshots (
    id              bigserial PRIMARY KEY,
    taken_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
    duration_ms     double precision,
    statements      integer,            -- statements of this database in pg_stat_statements
    changed         integer,            -- of which ran since the previous snapshot (rows stored)
    new_statements  integer,            -- first seen in this snapshot (texts stored)
    pgss_reset      timestamptz,        -- pg_stat_statements_info.stats_reset
    pgss_dealloc    bigint,             -- pg_stat_statements_info.dealloc
    reset_detected  boolean NOT NULL DEFAULT false,
    evicted         bigint NOT NULL DEFAULT 0,  -- eviction rounds of pg_stat_statements since the previous snapshot
    -- the cluster's checkpoints (pg_stat_bgwriter) and WAL position: the checkpoint advice's evidence
    checkpoints_timed bigint,
    checkpoints_req   bigint,
    wal_lsn           pg_lsn                -- NULL on a standby
);
CREATE INDEX IF NOT EXISTS snapshots_taken_at_idx ON optischema.snapshots (taken_at);

-- Normalized text of each statement, stored once.
CREATE TABLE IF NOT EXISTS optischema.queries (
    queryid     bigint PRIMARY KEY,
    query       text NOT NULL,
    own         boolean NOT NULL,       -- OptiSchema's own statements: counted nowhere
    first_seen  bigint NOT NULL
);

-- The roles that sent each statement (pg_stat_statements keeps one entry per
-- user): a statement is planned as, and its text shown only to, one of them
-- (or a reader of all statistics). first_seen and last_seen are snapshot ids.
-- A role counts only while its OID still has the name recorded: after a
-- restore into another cluster, an OID may belong to an unrelated role.
CREATE TABLE IF NOT EXISTS optischema.query_roles (
    queryid     bigint NOT NULL,
    userid      oid NOT NULL,
    rolname     name NOT NULL,
    first_seen  bigint NOT NULL,
    last_seen   bigint NOT NULL,
    PRIMARY KEY (queryid, userid)
);

-- Running totals; the narrow row (88 bytes + its index entry) is the point.
CREATE TABLE IF NOT EXISTS optischema.query_stats (
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
CREATE TABLE IF NOT EXISTS optischema._query_state (
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
    temp_blks_written bigint NOT NULL,
    senders           oid[],            -- its roles in pg_stat_statements (NULL: not recorded yet)
    roles_seen        bigint            -- when query_roles was last written for it
) WITH (fillfactor = 50);   -- room for HOT updates: every snapshot rewrites the rows that ran

-- Table and index activity, as deltas since the previous snapshot (few rows:
-- one per table or index that changed).
CREATE TABLE IF NOT EXISTS optischema.table_stats (
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
    n_dead_tup          bigint,             -- current value, not a delta (NULL: taken before 0.2.0)
    PRIMARY KEY (snapshot_id, relid)
);

CREATE TABLE IF NOT EXISTS optischema._table_state (
    relid         oid PRIMARY KEY,
    seq_scan      bigint NOT NULL,
    idx_scan      bigint NOT NULL,
    n_tup_ins     bigint NOT NULL,
    n_tup_upd     bigint NOT NULL,
    n_tup_del     bigint NOT NULL,
    n_tup_hot_upd bigint NOT NULL,
    n_dead_tup    bigint            -- a change alone (a vacuum) is worth a row
);

CREATE TABLE IF NOT EXISTS optischema.index_stats (
    snapshot_id  bigint NOT NULL,
    indexrelid   oid NOT NULL,
    relid        oid NOT NULL,
    idx_scan     bigint NOT NULL,
    PRIMARY KEY (snapshot_id, indexrelid)
);

CREATE TABLE IF NOT EXISTS optischema._index_state (
    indexrelid  oid PRIMARY KEY,
    idx_scan    bigint NOT NULL,
    first_seen  bigint NOT NULL     -- an index is "unused" only over windows it existed for
);

-- Statements seen running for longer than running_min_duration (snapshot()
-- samples pg_stat_activity), one row per execution. One that times out or is
-- cancelled never reaches pg_stat_statements: this is all there is of it.
-- The text is the one sent, its constants included (utility statements and
-- texts of several statements redacted, comments removed): it stays in the
-- database, shown only as pg_stat_activity would show it (row security
-- below, query_texts' rule), and planned only as its sender.
CREATE TABLE IF NOT EXISTS optischema.running_statements (
    pid          integer NOT NULL,
    query_start  timestamptz NOT NULL,
    queryid      bigint NOT NULL,
    userid       oid NOT NULL,
    rolname      name NOT NULL,
    query        text NOT NULL,
    truncated    boolean NOT NULL,           -- cut at track_activity_query_size
    first_seen   bigint NOT NULL,            -- snapshot ids
    last_seen    bigint NOT NULL,
    duration_ms  double precision NOT NULL,  -- how long it had run when last seen
    finished     boolean,                    -- NULL: running when last seen; then whether pg_stat_statements counted it
    PRIMARY KEY (pid, query_start)
);
CREATE INDEX IF NOT EXISTS running_statements_last_seen_idx ON optischema.running_statements (last_seen);
ALTER TABLE optischema.running_statements ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS running_visible ON optischema.running_statements;
CREATE POLICY running_visible ON optischema.running_statements FOR SELECT
    USING (pg_catalog.pg_has_role(CURRENT_USER, 'pg_read_all_stats', 'MEMBER')
           OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles a WHERE a.oid = userid AND a.rolname = rolname
                      AND pg_catalog.pg_has_role(CURRENT_USER, a.oid, 'MEMBER')));

INSERT INTO optischema.setting_defs (key, type, default_value, min_value, max_value, allowed, description) VALUES
('running_min_duration', 'interval', '5 seconds', NULL, NULL, NULL,
 'snapshot() records statements of this database running longer than this (pg_stat_activity): the slowest may never finish, and never reach pg_stat_statements.')
ON CONFLICT (key) DO UPDATE SET (type, default_value, min_value, max_value, allowed, description)
    = (EXCLUDED.type, EXCLUDED.default_value, EXCLUDED.min_value, EXCLUDED.max_value, EXCLUDED.allowed, EXCLUDED.description);

SELECT pg_catalog.pg_extension_config_dump('optischema.snapshots', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.snapshots_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.queries', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.query_roles', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.query_stats', '');
SELECT pg_catalog.pg_extension_config_dump('optischema._query_state', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.table_stats', '');
SELECT pg_catalog.pg_extension_config_dump('optischema._table_state', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.index_stats', '');
SELECT pg_catalog.pg_extension_config_dump('optischema._index_state', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.running_statements', '');

-- The planner believes pg_stat_statements() returns a couple of rows; for
-- thousands, index probes per row and sort-based grouping cost twice what
-- hashing does, hence the two planner settings.
-- work_mem: the planner puts each statement's array_agg() of senders (an
-- internal transition state) at 8 kB, so the hash aggregate over
-- pg_stat_statements, at the default 4 MB, spills to disk from its 1,000th
-- statement on (670 kB of temporary files, about 1 ms of a snapshot of 5,000).
-- At 64 MB it does not up to 16,000; what it uses is about 1 kB a statement.
CREATE OR REPLACE FUNCTION optischema.snapshot() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_nestloop = off
SET enable_sort = off
SET work_mem = '64MB'
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

    INSERT INTO optischema.snapshots (pgss_reset, pgss_dealloc, reset_detected, evicted, checkpoints_timed, checkpoints_req, wal_lsn)
    SELECT v_reset, v_dealloc, v_restart,
           CASE WHEN prev.id IS NULL THEN 0
                WHEN v_restart THEN v_dealloc
                ELSE greatest(v_dealloc - prev.pgss_dealloc, 0) END,
           b.checkpoints_timed, b.checkpoints_req,
           CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_current_wal_lsn() END
    FROM pg_catalog.pg_stat_bgwriter b
    RETURNING id INTO v_id;

    -- One pass over pg_stat_statements: reading it is most of a snapshot's
    -- cost. Texts are read only when a statement was never seen before
    -- (the one-time filter on "texts" skips pg_stat_statements(true), which
    -- reads every text and is several times slower than the counters).
    -- After a reset, or when an entry was evicted and came back (fewer calls
    -- than last time), its counters restarted from zero: all of it is new.
    -- Every sender of a statement that ran is recorded (query_roles).
    EXECUTE format($q$
        WITH cur AS (
            SELECT p.queryid,
                   sum(p.calls)::bigint             AS calls,
                   sum(p.total_exec_time)           AS total_ms,
                   sum(p.rows)::bigint              AS rows,
                   sum(p.shared_blks_hit)::bigint   AS blks_hit,
                   sum(p.shared_blks_read)::bigint  AS blks_read,
                   sum(p.temp_blks_written)::bigint AS temp_blks,
                   array_agg(p.userid)              AS senders
            FROM %1$I.pg_stat_statements(false) p
            WHERE p.dbid = $1 AND p.toplevel AND p.queryid IS NOT NULL
            GROUP BY p.queryid
        ), j AS (
            SELECT c.*, s.queryid IS NOT NULL AS known,
                   -- a new sender, or last_seen older than an hour ($4): query_roles is written
                   (s.senders IS NULL OR NOT c.senders <@ s.senders OR s.roles_seen <= $4) AS w_roles,
                   s.roles_seen,
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
            SELECT queryid, optischema._redact(query), own, $3 FROM texts
            ON CONFLICT (queryid) DO NOTHING
        ), d AS (
            SELECT j.* FROM j WHERE j.known AND (j.calls <> j.pgss_calls OR $2)
            UNION ALL
            -- no text (the entry went between the two reads): wait for the next snapshot
            SELECT j.* FROM j JOIN unknown u ON u.queryid = j.queryid LEFT JOIN texts t ON t.queryid = j.queryid
            WHERE NOT coalesce(u.own, t.own, true)
        ), n AS (
            SELECT d.queryid, d.known, d.senders, d.w_roles, d.roles_seen,
                   d.calls, d.total_ms, d.rows, d.blks_hit, d.blks_read, d.temp_blks,
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
                blks_read = n.t_blks_read, temp_blks_written = n.t_temp_blks, senders = n.senders,
                roles_seen = CASE WHEN n.w_roles THEN $3 ELSE n.roles_seen END
            FROM n WHERE n.known AND s.queryid = n.queryid
        ), ins_state AS (
            INSERT INTO optischema._query_state
            SELECT n.queryid, $3, n.calls, n.total_ms, n.rows, n.blks_hit, n.blks_read, n.temp_blks,
                   n.t_calls, n.t_total_ms, n.t_rows, n.t_blks_hit, n.t_blks_read, n.t_temp_blks, n.senders, $3
            FROM n WHERE NOT n.known
        ), ins_roles AS (
            -- Only for a new sender, and hourly: a write per statement and
            -- snapshot would double the cost of a snapshot.
            INSERT INTO optischema.query_roles AS r (queryid, userid, rolname, first_seen, last_seen)
            SELECT n.queryid, u.userid, a.rolname, $3, $3
            FROM n CROSS JOIN LATERAL unnest(n.senders) u (userid)
            JOIN pg_catalog.pg_roles a ON a.oid = u.userid
            WHERE n.w_roles
            ON CONFLICT (queryid, userid) DO UPDATE SET last_seen = EXCLUDED.last_seen, rolname = EXCLUDED.rolname
        ), ins AS (
            INSERT INTO optischema.query_stats
                (queryid, calls, total_ms, rows, blks_hit, blks_read, temp_blks_written, snapshot_id)
            SELECT n.queryid, n.t_calls, n.t_total_ms, n.t_rows, n.t_blks_hit, n.t_blks_read, n.t_temp_blks, $3
            FROM n
            ORDER BY n.queryid      -- in index order: each leaf page is visited once
        )
        SELECT (SELECT count(*)::integer FROM cur), (SELECT count(*)::integer FROM n),
               (SELECT count(*)::integer FROM texts)$q$, pgss)
        INTO v_seen, v_changed, v_new
        USING v_db, v_restart, v_id,
              coalesce((SELECT max(x.id) FROM optischema.snapshots x WHERE x.taken_at <= now() - interval '1 hour'), 0);

    -- Tables and indexes: a counter that went backwards was reset (pg_stat_reset): take it whole.
    WITH cur AS (
        SELECT t.relid, t.seq_scan, coalesce(t.idx_scan, 0) AS idx_scan, t.n_tup_ins, t.n_tup_upd,
               t.n_tup_del, t.n_tup_hot_upd, t.n_live_tup, t.n_mod_since_analyze, t.n_dead_tup
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
        WHERE s.relid IS NULL OR (c.seq_scan, c.idx_scan, c.n_tup_ins, c.n_tup_upd, c.n_tup_del, c.n_dead_tup)
                                 IS DISTINCT FROM (s.seq_scan, s.idx_scan, s.n_tup_ins, s.n_tup_upd, s.n_tup_del, s.n_dead_tup)
    ), st AS (
        INSERT INTO optischema._table_state AS s
        SELECT relid, seq_scan, idx_scan, n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd, n_dead_tup FROM d
        ON CONFLICT (relid) DO UPDATE SET seq_scan = EXCLUDED.seq_scan, idx_scan = EXCLUDED.idx_scan,
            n_tup_ins = EXCLUDED.n_tup_ins, n_tup_upd = EXCLUDED.n_tup_upd,
            n_tup_del = EXCLUDED.n_tup_del, n_tup_hot_upd = EXCLUDED.n_tup_hot_upd,
            n_dead_tup = EXCLUDED.n_dead_tup
    )
    INSERT INTO optischema.table_stats
    SELECT v_id, relid, seq_scan - k * s_seq, idx_scan - k * s_idx, n_tup_ins - k * s_ins,
           n_tup_upd - k * s_upd, n_tup_del - k * s_del, greatest(n_tup_hot_upd - k * s_hot, 0),
           n_live_tup, n_mod_since_analyze, n_dead_tup
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

    PERFORM optischema._sample_running(v_id);

    UPDATE optischema.snapshots
    SET duration_ms = 1000 * extract(epoch FROM clock_timestamp() - t0),
        statements = v_seen, changed = v_changed, new_statements = v_new
    WHERE id = v_id;
    RETURN v_id;
END
$$;

-- The text kept of a statement seen running: a utility statement, or a text
-- of several statements (a password may follow the first), redacted like
-- every captured utility text; else the statement without its comments
-- (constants kept: they make it plannable).
CREATE OR REPLACE FUNCTION optischema._running_text(p_sql text) RETURNS text
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN optischema._is_utility(p_sql)
                     OR coalesce(pg_catalog.strpos(optischema._scrub(p_sql, true), ';') > 0, true)
                THEN optischema._redact(p_sql)
                ELSE optischema._strip_comments(p_sql) END
$$;

-- A sample of pg_stat_activity: this database's statements running longer
-- than running_min_duration (not OptiSchema's own), each execution one row.
-- snapshot() takes one (p_snapshot: its id); sample_running() takes them in
-- between (p_snapshot NULL), as often as a statement timeout requires: a
-- statement cancelled at 30 seconds is never seen by snapshots 10 minutes
-- apart. Executions first seen in between wait (snapshot ids 0) for the next
-- snapshot, whose window they belong to. An execution gone at a snapshot is finished if
-- pg_stat_statements counted its statement in that window, else it never
-- finished (cancelled, timed out, its session ended). Its sender is recorded
-- like pg_stat_statements' (query_roles): the one it is planned as.
CREATE OR REPLACE FUNCTION optischema._sample_running(p_snapshot bigint) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- pg_stat_activity keeps at most track_activity_query_size - 1 bytes of a
    -- text, cut at a character boundary (up to 3 bytes less)
    v_cut  integer := (SELECT s.setting::integer FROM pg_catalog.pg_settings s
                       WHERE s.name = 'track_activity_query_size') - 4;
    v_seen integer;
    -- query_roles orders senders by snapshot: one seen in between is as recent as the latest
    v_role bigint := coalesce(p_snapshot, (SELECT max(s.id) FROM optischema.snapshots s), 0);
BEGIN
    WITH cur AS (
        SELECT a.pid, a.query_start, a.query_id, a.usesysid, r.rolname, a.query,
               1000 * extract(epoch FROM clock_timestamp() - a.query_start) AS ms
        FROM pg_catalog.pg_stat_activity a
        JOIN pg_catalog.pg_roles r ON r.oid = a.usesysid
        WHERE a.datname = pg_catalog.current_database() AND a.state = 'active'
          AND a.backend_type = 'client backend' AND a.pid <> pg_catalog.pg_backend_pid()
          AND a.query_id IS NOT NULL AND a.query_id <> 0
          AND a.query_start < clock_timestamp() - optischema.setting('running_min_duration')::interval
          AND a.query !~* '\moptischema(\s*\.|_[0-9a-f]{8}_[0-9]+\M)'
    ), seen AS (
        INSERT INTO optischema.running_statements AS x
            (pid, query_start, queryid, userid, rolname, query, truncated, first_seen, last_seen, duration_ms)
        SELECT c.pid, c.query_start, c.query_id, c.usesysid, c.rolname, optischema._running_text(c.query),
               pg_catalog.octet_length(c.query) >= v_cut, coalesce(p_snapshot, 0), coalesce(p_snapshot, 0), c.ms
        FROM cur c
        ON CONFLICT (pid, query_start) DO UPDATE
            SET last_seen = greatest(x.last_seen, EXCLUDED.last_seen), duration_ms = EXCLUDED.duration_ms
        RETURNING 1
    ), roles AS (
        INSERT INTO optischema.query_roles AS q (queryid, userid, rolname, first_seen, last_seen)
        SELECT DISTINCT c.query_id, c.usesysid, c.rolname, v_role, v_role FROM cur c
        ON CONFLICT (queryid, userid) DO UPDATE SET last_seen = EXCLUDED.last_seen, rolname = EXCLUDED.rolname
    )
    SELECT count(*) INTO v_seen FROM seen;

    IF p_snapshot IS NOT NULL THEN
        UPDATE optischema.running_statements x
        SET finished = CASE WHEN x.last_seen = p_snapshot THEN NULL
                            ELSE EXISTS (SELECT 1 FROM optischema.query_stats s
                                         WHERE s.queryid = x.queryid AND s.snapshot_id = p_snapshot) END,
            first_seen = CASE WHEN x.first_seen = 0 THEN p_snapshot ELSE x.first_seen END,
            last_seen = CASE WHEN x.last_seen = 0 THEN p_snapshot ELSE x.last_seen END
        WHERE (x.finished IS NULL AND x.last_seen < p_snapshot) OR x.first_seen = 0;
    END IF;
    RETURN v_seen;
END
$$;

-- Statements running now for longer than running_min_duration, recorded for
-- the next snapshot's window (see _sample_running): the sidecar calls it
-- every sample_interval seconds, cron_commands() every minute. Returns how
-- many executions it saw.
CREATE OR REPLACE FUNCTION optischema.sample_running() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._xact_lock('snapshot');
    RETURN optischema._sample_running(NULL);
END
$$;

-- The roles that sent statement p_queryid and still exist, the one seen most
-- recently first: whom to plan it as.
CREATE OR REPLACE FUNCTION optischema._senders(p_queryid bigint) RETURNS SETOF oid
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.userid FROM optischema.query_roles r
    WHERE r.queryid = p_queryid
      AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles a WHERE a.oid = r.userid AND a.rolname = r.rolname)
    ORDER BY r.last_seen DESC, r.first_seen DESC, r.userid
$$;

-- Takes a snapshot unless one is younger than top_queries_refresh. Right
-- after install, or with no scheduler running, readers of the workload would
-- otherwise see old or no data: the earlier product's empty dashboard.
CREATE OR REPLACE FUNCTION optischema._refresh_snapshot() RETURNS bigint
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
CREATE OR REPLACE FUNCTION optischema._query_window(p_from bigint, p_to bigint)
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

-- Per statement, its executions seen running after snapshot p_from up to
-- p_to that pg_stat_statements has not counted: still running, or never
-- finished. Their figures (how long they had run when last seen), and the
-- latest one's key: its text is read by the caller, under row security.
-- Definer's rights for the figures, which are everyone's (as _query_window's).
CREATE OR REPLACE FUNCTION optischema._unfinished_window(p_from bigint, p_to bigint)
RETURNS TABLE (queryid bigint, executions bigint, total_ms double precision, running boolean,
               pid integer, query_start timestamptz, truncated boolean)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT x.queryid, count(*), sum(x.duration_ms), bool_or(x.finished IS NULL),
           (array_agg(x.pid ORDER BY x.last_seen DESC, x.query_start DESC))[1],
           (array_agg(x.query_start ORDER BY x.last_seen DESC, x.query_start DESC))[1],
           (array_agg(x.truncated ORDER BY x.last_seen DESC, x.query_start DESC))[1]
    FROM optischema.running_statements x
    WHERE x.finished IS NOT TRUE AND x.last_seen > coalesce(p_from, 0) AND x.last_seen <= p_to
    GROUP BY x.queryid
$$;

