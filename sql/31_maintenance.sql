-- Maintenance and configuration advice from the evidence (kinds 'maintenance'
-- and 'config', source 'advisor'): stale statistics, dead rows and bloat,
-- transaction ID wraparound, work_mem for statements that spill to disk,
-- checkpoints, and settings that need a restart. Each finding names the
-- object and the setting, cites the figures it rests on (evidence), carries a
-- description its statement is built from (action_spec, sql/12_actions.sql)
-- and goes through apply -> verify -> rollback like an index.
--
-- recommend() refreshes them after the index advice: _maintenance_plans()
-- plans the statements involved as their senders with the caller's rights
-- (PL/Python, like _advise()), _record_maintenance() records the findings from
-- the statistics and those plans. A finding keeps its row (key) while its
-- evidence lasts and is superseded when it is gone; one-off maintenance
-- (ANALYZE, VACUUM, REINDEX) that was applied opens again when the evidence
-- comes back, and when the same table goes stale again soon after an
-- OptiSchema ANALYZE or VACUUM, the finding becomes a per-table autovacuum setting.

INSERT INTO optischema.setting_defs (key, type, default_value, min_value, max_value, allowed, description) VALUES
('misestimate_factor', 'numeric', '10', 1.5, 1000000, NULL,
 'A statement misestimates its rows when its plan''s estimate and its measured rows per call differ by this factor (stale statistics).'),
('maintenance_min_rows', 'integer', '1000', 0, 1000000000, NULL,
 'Tables with fewer changed or dead rows than this get no ANALYZE or VACUUM advice.'),
('wraparound_warn_fraction', 'numeric', '0.8', 0.1, 1, NULL,
 'A table whose transaction ID age reaches this fraction of autovacuum_freeze_max_age gets a VACUUM (FREEZE) recommendation.'),
('bloat_min_mb', 'integer', '100', 0, 1000000000, NULL,
 'Table or index bloat is reported only when it wastes at least this many MB.'),
('server_memory_mb', 'integer', '0', 0, 1000000000, NULL,
 'The server''s RAM in MB, for the memory budget of work_mem and for shared_buffers advice (0: unknown; four times shared_buffers is assumed).')
ON CONFLICT (key) DO UPDATE SET (type, default_value, min_value, max_value, allowed, description)
    = (EXCLUDED.type, EXCLUDED.default_value, EXCLUDED.min_value, EXCLUDED.max_value, EXCLUDED.allowed, EXCLUDED.description);

-- A table's autovacuum parameter: its storage parameter (ALTER TABLE ... SET)
-- when it has one, else the server's setting; and which of the two.
CREATE OR REPLACE FUNCTION optischema._av_param(p_reloptions text[], p_name text, OUT value numeric, OUT source text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(t.v, pg_catalog.current_setting(p_name)::numeric),
           CASE WHEN t.v IS NOT NULL THEN 'table' ELSE 'server' END
    FROM (SELECT (SELECT substr(o, strpos(o, '=') + 1)::numeric FROM unnest(p_reloptions) o
                  WHERE split_part(o, '=', 1) = p_name) AS v) t
$$;

-- How urgent a table's transaction ID age is: 'critical' past 1.5 billion
-- (PostgreSQL stops assigning transaction IDs about 2.1 billion), 'high' past
-- autovacuum_freeze_max_age (autovacuum should be freezing it already: something
-- holds it back), 'moderate' past p_warn of it; NULL below.
CREATE OR REPLACE FUNCTION optischema._wraparound_urgency(p_age bigint, p_max_age bigint, p_warn numeric) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_age >= 1500000000 THEN 'critical'
                WHEN p_age >= p_max_age THEN 'high'
                WHEN p_age >= p_warn * p_max_age THEN 'moderate' END
$$;

-- The largest work_mem (kB) role p_role may get (NULL: the whole server)
-- while connections x work_mem x hash_mem_multiplier of every connection fit
-- in the memory beside shared_buffers (server_memory_mb, or four times
-- shared_buffers when unknown); the budget's figures, for the evidence.
CREATE OR REPLACE FUNCTION optischema._work_mem_budget(p_role oid, OUT max_kb numeric, OUT budget jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_sb_kb    numeric := (SELECT s.setting::numeric * 8 FROM pg_catalog.pg_settings s WHERE s.name = 'shared_buffers');
    v_ram_mb   numeric := optischema.setting('server_memory_mb')::numeric;
    v_ram_kb   numeric;
    v_hmm      numeric := pg_catalog.current_setting('hash_mem_multiplier')::numeric;
    v_conns    numeric := pg_catalog.current_setting('max_connections')::numeric;
    v_role     numeric;
    v_server   numeric := (optischema._setting_value('work_mem', (optischema._setting_effective('work_mem')).value)).own;
BEGIN
    v_ram_kb := CASE WHEN v_ram_mb > 0 THEN v_ram_mb * 1024 ELSE 4 * v_sb_kb END;
    v_role := CASE WHEN p_role IS NULL THEN v_conns
                   ELSE (SELECT CASE WHEN a.rolconnlimit >= 0 THEN least(a.rolconnlimit, v_conns) ELSE v_conns END
                         FROM pg_catalog.pg_roles a WHERE a.oid = p_role) END;
    max_kb := floor(((v_ram_kb - v_sb_kb) / v_hmm - (v_conns - v_role) * v_server) / greatest(v_role, 1));
    budget := jsonb_build_object(
        'server_memory', optischema._setting_text('work_mem', v_ram_kb),
        'server_memory_source', CASE WHEN v_ram_mb > 0 THEN 'setting server_memory_mb'
                                     ELSE 'assumed: four times shared_buffers (set server_memory_mb)' END,
        'shared_buffers', optischema._setting_text('work_mem', v_sb_kb),
        'max_connections', v_conns, 'connections_of_role', CASE WHEN p_role IS NOT NULL THEN v_role END,
        'hash_mem_multiplier', v_hmm, 'server_work_mem', optischema._setting_text('work_mem', v_server),
        'rule', 'connections x work_mem x hash_mem_multiplier <= server_memory - shared_buffers');
END
$$;

-- What the advice needs planned, with the caller's rights: the statements of
-- the window when a table has stale statistics or dead rows (which tables they
-- read, how many rows they expect), and the statements that write temporary
-- files with the work_mem that would keep them in memory, for the role that
-- sent them (the most recent sender the caller may act as).
CREATE OR REPLACE FUNCTION optischema._maintenance_targets(p_from bigint, p_to bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_min_calls bigint := optischema.setting('min_calls')::bigint;
    v_min_rows  bigint := optischema.setting('maintenance_min_rows')::bigint;
    v_tables    boolean;
    v_stmts     jsonb;
    v_work_mem  jsonb := '[]';
    r           record;
    v_cur       numeric;
    v_need      numeric;
    v_prop      numeric;
    v_budget    record;
BEGIN
    -- Any table past what autovacuum tolerates: then the statements are planned.
    SELECT EXISTS (
        SELECT 1 FROM pg_catalog.pg_stat_user_tables s JOIN pg_catalog.pg_class c ON c.oid = s.relid
        WHERE s.schemaname NOT IN ('optischema', 'pg_toast')
          AND ((s.n_mod_since_analyze >= v_min_rows
                AND s.n_mod_since_analyze > (optischema._av_param(c.reloptions, 'autovacuum_analyze_threshold')).value
                    + (optischema._av_param(c.reloptions, 'autovacuum_analyze_scale_factor')).value * greatest(c.reltuples, 0))
            OR (s.n_dead_tup >= v_min_rows
                AND s.n_dead_tup > (optischema._av_param(c.reloptions, 'autovacuum_vacuum_threshold')).value
                    + (optischema._av_param(c.reloptions, 'autovacuum_vacuum_scale_factor')).value * greatest(c.reltuples, 0))))
    INTO v_tables;
    SELECT coalesce(jsonb_agg(jsonb_build_object('queryid', w.queryid::text, 'query', q.query) ORDER BY w.total_ms DESC), '[]')
    INTO v_stmts
    FROM (SELECT w.* FROM optischema._query_window(p_from, p_to) w
          JOIN optischema.queries q ON q.queryid = w.queryid AND NOT q.own AND NOT optischema._is_utility(q.query)
          WHERE v_tables AND w.calls >= v_min_calls
          ORDER BY w.total_ms DESC LIMIT optischema.setting('max_queries')::integer) w
    JOIN optischema.queries q ON q.queryid = w.queryid;

    FOR r IN
        SELECT w.queryid, q.query, w.temp_blks_written::numeric * current_setting('block_size')::numeric / 1024 / w.calls AS spill_kb,
               (SELECT s FROM optischema._senders(w.queryid) s WHERE pg_catalog.pg_has_role(s, 'MEMBER') LIMIT 1) AS role
        FROM optischema._query_window(p_from, p_to) w
        JOIN optischema.queries q ON q.queryid = w.queryid AND NOT q.own AND NOT optischema._is_utility(q.query)
        WHERE w.temp_blks_written > 0 AND w.calls >= v_min_calls
        ORDER BY w.temp_blks_written DESC
        LIMIT optischema.setting('max_queries')::integer
    LOOP
        CONTINUE WHEN r.role IS NULL;
        v_cur := (optischema._setting_value('work_mem', (optischema._setting_effective('work_mem', r.role)).value)).own;
        -- a sort or hash kept in memory takes about twice what it writes to disk;
        -- proposed in whole powers of two of a MB, within the allow-list and the budget
        v_need := 1024 * power(2, ceil(log(2, greatest(2 * r.spill_kb, 1024) / 1024)));
        v_budget := optischema._work_mem_budget(r.role);
        v_prop := least(v_need, 1048576,
                        1024 * power(2, floor(log(2, greatest(v_budget.max_kb, 1024) / 1024))));
        CONTINUE WHEN v_prop <= v_cur OR v_budget.max_kb < 1024;
        v_work_mem := v_work_mem || jsonb_build_object(
            'queryid', r.queryid::text, 'query', r.query, 'role', r.role::bigint,
            'current', optischema._setting_text('work_mem', v_cur), 'proposed', optischema._setting_text('work_mem', v_prop),
            'need', optischema._setting_text('work_mem', v_need), 'spill_kb_per_call', round(r.spill_kb, 1),
            'budget', v_budget.budget || jsonb_build_object('max_work_mem', optischema._setting_text('work_mem', v_budget.max_kb)));
    END LOOP;
    RETURN jsonb_build_object('statements', v_stmts, 'work_mem', v_work_mem);
END
$$;

-- A table's figures as the findings and their verification read them.
CREATE OR REPLACE FUNCTION optischema._table_facts(p_relid oid) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object(
        'table', format('%I.%I', n.nspname, c.relname), 'reltuples', greatest(c.reltuples, 0)::bigint,
        'n_live_tup', s.n_live_tup, 'n_dead_tup', s.n_dead_tup, 'n_mod_since_analyze', s.n_mod_since_analyze,
        'last_analyze', s.last_analyze, 'last_autoanalyze', s.last_autoanalyze,
        'last_vacuum', s.last_vacuum, 'last_autovacuum', s.last_autovacuum,
        'size_bytes', pg_catalog.pg_relation_size(c.oid),
        'xid_age', greatest(pg_catalog.age(c.relfrozenxid), pg_catalog.age(t.relfrozenxid)),
        'mxid_age', greatest(pg_catalog.mxid_age(c.relminmxid), pg_catalog.mxid_age(t.relminmxid)),
        'autovacuum', pg_catalog.current_setting('autovacuum')::boolean
                      AND coalesce((SELECT split_part(o, '=', 2)::boolean FROM unnest(c.reloptions) o
                                    WHERE split_part(o, '=', 1) = 'autovacuum_enabled'), true),
        'analyze_threshold', round((optischema._av_param(c.reloptions, 'autovacuum_analyze_threshold')).value
                                   + (optischema._av_param(c.reloptions, 'autovacuum_analyze_scale_factor')).value * greatest(c.reltuples, 0)),
        'vacuum_threshold', round((optischema._av_param(c.reloptions, 'autovacuum_vacuum_threshold')).value
                                  + (optischema._av_param(c.reloptions, 'autovacuum_vacuum_scale_factor')).value * greatest(c.reltuples, 0)),
        'autovacuum_analyze_scale_factor', to_jsonb(optischema._av_param(c.reloptions, 'autovacuum_analyze_scale_factor')),
        'autovacuum_analyze_threshold', to_jsonb(optischema._av_param(c.reloptions, 'autovacuum_analyze_threshold')),
        'autovacuum_vacuum_scale_factor', to_jsonb(optischema._av_param(c.reloptions, 'autovacuum_vacuum_scale_factor')),
        'autovacuum_vacuum_threshold', to_jsonb(optischema._av_param(c.reloptions, 'autovacuum_vacuum_threshold')),
        'autovacuum_freeze_max_age', least(pg_catalog.current_setting('autovacuum_freeze_max_age')::bigint,
            coalesce((SELECT split_part(o, '=', 2)::bigint FROM unnest(c.reloptions) o
                      WHERE split_part(o, '=', 1) = 'autovacuum_freeze_max_age'), 2000000000)))
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_catalog.pg_stat_all_tables s ON s.relid = c.oid
    LEFT JOIN pg_catalog.pg_class t ON t.oid = c.reltoastrelid
    WHERE c.oid = p_relid
$$;

-- The estimated bloat of a table or index: the standard estimate (expected
-- size from the row count and the average row or key width of pg_stats, at
-- the fillfactor), measured with pgstattuple when that extension is installed
-- in this database and the estimate (or its absence) leaves the question open:
-- pgstatindex reads the whole index, so a clearly healthy one is not read.
-- wasted_bytes, fraction and how it was found.
CREATE OR REPLACE FUNCTION optischema._bloat(p_relid oid) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c       pg_catalog.pg_class;
    v_pgst  name := (SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
                     WHERE e.extname = 'pgstattuple');
    v_size  numeric := pg_catalog.pg_relation_size(p_relid);
    v_free  numeric;
    v_width numeric;
    v_fill  numeric;
    v_exp   numeric;
    v_est   jsonb;
BEGIN
    SELECT * INTO c FROM pg_catalog.pg_class x WHERE x.oid = p_relid;
    IF NOT FOUND OR v_size < 8192 * 2 OR c.relkind NOT IN ('r', 'm', 'i')
       OR (c.relkind = 'i' AND c.relam <> (SELECT a.oid FROM pg_catalog.pg_am a WHERE a.amname = 'btree')) THEN
        RETURN NULL;      -- only tables and btree indexes are estimated
    END IF;
    v_fill := coalesce((SELECT split_part(o, '=', 2)::numeric FROM unnest(c.reloptions) o WHERE split_part(o, '=', 1) = 'fillfactor'),
                       CASE WHEN c.relkind = 'i' THEN 90 ELSE 100 END) / 100;
    IF c.relkind = 'i' THEN
        -- a btree entry: an 8-byte tuple header and the key, 8-byte aligned, and a 4-byte line pointer
        SELECT 8 * ceil((8 + sum(st.avg_width)) / 8.0) + 4 INTO v_width
        FROM pg_catalog.pg_index i
        JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
        JOIN pg_catalog.pg_namespace n ON n.oid = (SELECT t.relnamespace FROM pg_catalog.pg_class t WHERE t.oid = i.indrelid)
        JOIN pg_catalog.pg_stats st ON st.schemaname = n.nspname AND st.attname = a.attname
             AND st.tablename = (SELECT t.relname FROM pg_catalog.pg_class t WHERE t.oid = i.indrelid)
        WHERE i.indexrelid = p_relid AND NOT (0 = ANY (i.indkey)) AND c.relam = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'btree')
        HAVING count(*) = (SELECT i2.indnatts FROM pg_catalog.pg_index i2 WHERE i2.indexrelid = p_relid);
    ELSE
        -- a heap row: a 24-byte header, the columns, 8-byte aligned, and a 4-byte line pointer
        SELECT 8 * ceil((24 + sum(st.avg_width)) / 8.0) + 4 INTO v_width
        FROM pg_catalog.pg_stats st JOIN pg_catalog.pg_namespace n ON n.nspname = st.schemaname
        WHERE n.oid = c.relnamespace AND st.tablename = c.relname;
    END IF;
    IF v_width IS NOT NULL AND c.reltuples >= 0 THEN
        v_exp := 8192 * ceil(c.reltuples * v_width / (8168 * v_fill)) + CASE WHEN c.relkind = 'i' THEN 8192 ELSE 0 END;
        v_est := jsonb_build_object('method', 'estimate from pg_stats (install pgstattuple for a measurement)',
                                    'size_bytes', v_size, 'expected_bytes', v_exp,
                                    'wasted_bytes', greatest(v_size - v_exp, 0), 'fraction', round(greatest(v_size - v_exp, 0) / v_size, 3));
    END IF;
    IF v_pgst IS NULL OR (v_est ->> 'fraction')::numeric < 0.3 THEN
        RETURN v_est;
    END IF;
    IF c.relkind = 'i' THEN
        EXECUTE format('SELECT (1 - avg_leaf_density / 90.0) * %s FROM %I.pgstatindex(%s::regclass) WHERE leaf_pages > 0',
                       v_size, v_pgst, p_relid) INTO v_free;
    ELSE
        EXECUTE format('SELECT (approx_free_percent + dead_tuple_percent) / 100.0 * %s FROM %I.pgstattuple_approx(%s::regclass)',
                       v_size, v_pgst, p_relid) INTO v_free;
    END IF;
    RETURN jsonb_build_object('method', CASE WHEN c.relkind = 'i' THEN 'pgstatindex' ELSE 'pgstattuple_approx' END,
                              'size_bytes', v_size, 'wasted_bytes', round(greatest(v_free, 0)),
                              'fraction', round(greatest(v_free, 0) / v_size, 3));
END
$$;

-- What holds back the removal of dead rows in this database: the oldest
-- transaction still running (or prepared, or held by a replication slot).
-- Only what every role sees of other sessions: pid and role, no query or state.
CREATE OR REPLACE FUNCTION optischema._xmin_horizon() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('oldest_xmin_age', h.age, 'held_by', h.what)
    FROM (SELECT pg_catalog.age(a.backend_xmin) AS age,
                 format('backend %s (%s)', a.pid, coalesce(a.usename::text, a.backend_type)) AS what
          FROM pg_catalog.pg_stat_activity a WHERE a.backend_xmin IS NOT NULL AND a.pid <> pg_catalog.pg_backend_pid()
          UNION ALL
          SELECT pg_catalog.age(p.transaction), format('prepared transaction %L', p.gid) FROM pg_catalog.pg_prepared_xacts p
          UNION ALL
          SELECT pg_catalog.age(coalesce(s.xmin, s.catalog_xmin)), format('replication slot %L', s.slot_name)
          FROM pg_catalog.pg_replication_slots s WHERE coalesce(s.xmin, s.catalog_xmin) IS NOT NULL
          ORDER BY 1 DESC LIMIT 1) h
$$;

-- One finding, in the shape _record_maintenance() stores.
CREATE OR REPLACE FUNCTION optischema._finding(p_key text, p_kind text, p_title text, p_spec jsonb, p_evidence jsonb,
    p_queryids bigint[] DEFAULT '{}', p_score double precision DEFAULT 0, p_table text DEFAULT NULL,
    p_index text DEFAULT NULL, p_explanation text DEFAULT NULL, p_benefit jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('key', p_key, 'kind', p_kind, 'title', p_title, 'action_spec', p_spec, 'evidence', p_evidence,
                              'queryids', to_jsonb(coalesce(p_queryids, '{}')), 'score', p_score, 'table', p_table,
                              'index_name', p_index, 'explanation', p_explanation, 'benefit', p_benefit)
$$;

-- A number for a title: 1234567 -> '1,234,567'.
CREATE OR REPLACE FUNCTION optischema._n(p numeric) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p IS NULL THEN '?' WHEN abs(p) >= 1000 THEN ltrim(to_char(round(p), 'FM999,999,999,999,999'), ',')
                ELSE trim_scale(round(p, 2))::text END
$$;

-- '1 statement', '2 statements'.
CREATE OR REPLACE FUNCTION optischema._count(p numeric, p_noun text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT optischema._n(p) || ' ' || p_noun || CASE WHEN p = 1 THEN '' ELSE 's' END
$$;

-- Every finding of the window, from the statistics now and the plans of
-- _maintenance_plans() (p_plans), as a JSON array of _finding()s.
CREATE OR REPLACE FUNCTION optischema._maintenance_findings(p_from bigint, p_to bigint, p_plans jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_out       jsonb := '[]';
    v_min_rows  bigint := optischema.setting('maintenance_min_rows')::bigint;
    v_factor    numeric := optischema.setting('misestimate_factor')::numeric;
    v_warn      numeric := optischema.setting('wraparound_warn_fraction')::numeric;
    v_bloat_min numeric := optischema.setting('bloat_min_mb')::numeric * 1048576;
    v_since     timestamptz := now() - optischema.setting('analysis_window')::interval;
    v_repack    boolean := EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_repack');
    v_horizon   jsonb := optischema._xmin_horizon();
    t           record;
    f           jsonb;
    v_stmts     jsonb;
    v_reads     jsonb;
    v_size      bigint;
    v_qids      bigint[];
    v_ms        double precision;
    v_prev      record;
    v_sf        record;
    v_new       numeric;
    v_bloat     jsonb;
    v_urgency   text;
    v_stale     integer := 0;
    v_dead      integer := 0;
    v_av_off    text[] := '{}';
    v_x         record;
    v_is_dead   boolean;
    v_misest    jsonb;
BEGIN
    -- Which statements of the window read which table, with their estimate and measured rows per call.
    SELECT coalesce(jsonb_agg(jsonb_build_object('relid', c.oid, 'queryid', w.queryid, 'est', (p.value ->> 'rows')::double precision,
                                                 'per_call', w.rows::double precision / nullif(w.calls, 0), 'total_ms', w.total_ms)), '[]')
    INTO v_reads
    FROM jsonb_each(coalesce(p_plans -> 'plans', '{}')) p
    CROSS JOIN LATERAL jsonb_array_elements(p.value -> 'relations') r
    JOIN pg_catalog.pg_namespace n ON n.nspname = r.value ->> 0
    JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = r.value ->> 1
    JOIN optischema._query_window(p_from, p_to) w ON w.queryid = p.key::bigint
    WHERE p.value ? 'relations';

    FOR t IN
        SELECT s.relid, optischema._table_facts(s.relid) AS x, format('%I.%I', s.schemaname, s.relname) AS name,
               c.reloptions, c.reltuples
        FROM pg_catalog.pg_stat_user_tables s JOIN pg_catalog.pg_class c ON c.oid = s.relid
        WHERE s.schemaname NOT IN ('optischema', 'pg_toast')
        ORDER BY s.schemaname, s.relname
    LOOP
        v_is_dead := (t.x ->> 'n_dead_tup')::bigint >= v_min_rows AND (t.x ->> 'n_dead_tup')::bigint > (t.x ->> 'vacuum_threshold')::numeric;
        v_misest := NULL;
        v_size := pg_catalog.pg_relation_size(t.relid);
        v_bloat := CASE WHEN v_size >= greatest(v_bloat_min, 8192 * 2) THEN optischema._bloat(t.relid) END;
        SELECT coalesce(array_agg(r.queryid ORDER BY r.queryid), '{}'), coalesce(sum(r.total_ms), 0)
        INTO v_qids, v_ms FROM jsonb_to_recordset(v_reads) AS r(relid oid, queryid bigint, est double precision, per_call double precision, total_ms double precision) WHERE r.relid = t.relid;

        -- 1. Stale statistics: more changed rows than autovacuum tolerates, and statements that misestimate.
        IF (t.x ->> 'n_mod_since_analyze')::bigint >= v_min_rows
           AND (t.x ->> 'n_mod_since_analyze')::bigint > (t.x ->> 'analyze_threshold')::numeric THEN
            SELECT jsonb_agg(jsonb_build_object('queryid', r.queryid::text, 'plan_rows', r.est, 'rows_per_call', round(r.per_call::numeric, 2),
                                                'factor', round((greatest(r.est, r.per_call) + 1) / (least(r.est, r.per_call) + 1))::numeric)
                             ORDER BY r.total_ms DESC),
                   array_agg(r.queryid ORDER BY r.queryid), sum(r.total_ms)
            INTO v_stmts, v_qids, v_ms
            FROM jsonb_to_recordset(v_reads) AS r(relid oid, queryid bigint, est double precision, per_call double precision, total_ms double precision)
            WHERE r.relid = t.relid AND (greatest(r.est, r.per_call) + 1) / (least(r.est, r.per_call) + 1) >= v_factor;
            IF v_stmts IS NOT NULL THEN
                -- what autovacuum, were it on, or its server setting, would have prevented
                IF NOT (t.x ->> 'autovacuum')::boolean THEN
                    v_av_off := v_av_off || t.name;
                ELSE
                    v_stale := v_stale + 1;
                END IF;
                -- Stale again after an ANALYZE of OptiSchema's within the window: analyse it more often.
                SELECT c.id, c.finished_at INTO v_prev
                FROM optischema._changes c JOIN optischema._recommendations x ON x.id = c.recommendation_id
                WHERE x.kind = 'maintenance' AND x.action_spec ->> 'action' IN ('analyze', 'vacuum')
                  AND optischema._index_oid(x.action_spec -> 'table') = t.relid
                  AND c.action = 'apply' AND c.status = 'succeeded' AND c.finished_at > v_since
                ORDER BY c.id DESC LIMIT 1;
                v_sf := optischema._av_param(t.reloptions, 'autovacuum_analyze_scale_factor');
                v_new := greatest(0.001, round(v_sf.value / 4, 4));
                f := t.x || jsonb_build_object('statements', v_stmts, 'misestimate_factor', v_factor);
                IF v_prev.id IS NOT NULL AND (t.x ->> 'autovacuum')::boolean AND v_new < v_sf.value THEN
                    v_out := v_out || optischema._finding(
                        'maintenance:autovacuum_analyze:' || t.name, 'maintenance',
                        format('Analyse %s more often: autovacuum_analyze_scale_factor %s -> %s (stale again since OptiSchema''s ANALYZE of change %s at %s: %s changed, rows misestimated by %s)',
                               t.name, trim_scale(v_sf.value), trim_scale(v_new), v_prev.id, to_char(v_prev.finished_at, 'YYYY-MM-DD HH24:MI'),
                               optischema._count((t.x ->> 'n_mod_since_analyze')::numeric, 'row'), optischema._count(jsonb_array_length(v_stmts), 'statement')),
                        jsonb_build_object('action', 'set_reloptions', 'table', t.relid::bigint,
                                           'options', jsonb_build_object('autovacuum_analyze_scale_factor', trim_scale(v_new)::text)),
                        f || jsonb_build_object('previous_change', v_prev.id, 'previous_change_at', v_prev.finished_at,
                                                'current_scale_factor', to_jsonb(v_sf), 'proposed_scale_factor', v_new),
                        v_qids, v_ms, t.name, NULL,
                        format('Autovacuum analyses %s after %s of its rows change; at %s it analyses after %s rows, a quarter as many, so the planner''s estimates stay close between analyses.',
                               t.name, trim_scale(v_sf.value), trim_scale(v_new),
                               optischema._n(((t.x -> 'autovacuum_analyze_threshold' ->> 'value')::numeric + v_new * greatest(t.reltuples, 0))::numeric)));
                ELSIF v_is_dead THEN
                    -- VACUUM (ANALYZE) below analyses it too: one finding, with this evidence
                    v_misest := v_stmts;
                ELSE
                    v_out := v_out || optischema._finding(
                        'maintenance:analyze:' || t.name, 'maintenance',
                        format('ANALYZE %s: %s changed since its last analyze (autovacuum would analyse after %s); rows misestimated up to %sx by %s',
                               t.name, optischema._count((t.x ->> 'n_mod_since_analyze')::numeric, 'row'), optischema._n((t.x ->> 'analyze_threshold')::numeric),
                               optischema._n((SELECT max((e ->> 'factor')::numeric) FROM jsonb_array_elements(v_stmts) e)),
                               optischema._count(jsonb_array_length(v_stmts), 'statement')),
                        jsonb_build_object('action', 'analyze', 'table', t.relid::bigint), f, v_qids, v_ms, t.name, NULL,
                        CASE WHEN NOT (t.x ->> 'autovacuum')::boolean
                             THEN format('Autovacuum is off for %s: its statistics go stale again after the next bulk change.', t.name) END);
                END IF;
            END IF;
        END IF;

        -- 2. Dead rows: more than autovacuum tolerates.
        SELECT coalesce(array_agg(r.queryid ORDER BY r.queryid), '{}'), coalesce(sum(r.total_ms), 0)
        INTO v_qids, v_ms FROM jsonb_to_recordset(v_reads) AS r(relid oid, queryid bigint, est double precision, per_call double precision, total_ms double precision) WHERE r.relid = t.relid;
        IF v_is_dead THEN
            IF NOT (t.x ->> 'autovacuum')::boolean THEN
                v_av_off := CASE WHEN t.name = ANY (v_av_off) THEN v_av_off ELSE v_av_off || t.name END;
            ELSE
                v_dead := v_dead + 1;
            END IF;
            SELECT c.id, c.finished_at INTO v_prev
            FROM optischema._changes c JOIN optischema._recommendations x ON x.id = c.recommendation_id
            WHERE x.kind = 'maintenance' AND x.action_spec ->> 'action' IN ('vacuum', 'vacuum_freeze')
              AND optischema._index_oid(x.action_spec -> 'table') = t.relid
              AND c.action = 'apply' AND c.status = 'succeeded' AND c.finished_at > v_since
            ORDER BY c.id DESC LIMIT 1;
            v_sf := optischema._av_param(t.reloptions, 'autovacuum_vacuum_scale_factor');
            v_new := greatest(0.001, round(v_sf.value / 4, 4));
            f := t.x || jsonb_build_object('dead_fraction', round((t.x ->> 'n_dead_tup')::numeric
                                                / greatest((t.x ->> 'n_dead_tup')::numeric + (t.x ->> 'n_live_tup')::numeric, 1), 3),
                                           'bloat', v_bloat, 'xmin_horizon', v_horizon,
                                           'churn', (SELECT jsonb_build_object('updates', sum(ts.n_tup_upd), 'deletes', sum(ts.n_tup_del),
                                                                                'inserts', sum(ts.n_tup_ins))
                                                     FROM optischema.table_stats ts
                                                     WHERE ts.relid = t.relid AND ts.snapshot_id > coalesce(p_from, 0) AND ts.snapshot_id <= p_to))
                 || CASE WHEN v_misest IS NOT NULL THEN jsonb_build_object('statements', v_misest, 'misestimate_factor', v_factor) ELSE '{}' END;
            IF v_prev.id IS NOT NULL AND (t.x ->> 'autovacuum')::boolean AND v_new < v_sf.value THEN
                v_out := v_out || optischema._finding(
                    'maintenance:autovacuum_vacuum:' || t.name, 'maintenance',
                    format('Vacuum %s more often: autovacuum_vacuum_scale_factor %s -> %s (%s dead rows again since OptiSchema''s VACUUM of change %s at %s)',
                           t.name, trim_scale(v_sf.value), trim_scale(v_new), optischema._n((t.x ->> 'n_dead_tup')::numeric),
                           v_prev.id, to_char(v_prev.finished_at, 'YYYY-MM-DD HH24:MI')),
                    jsonb_build_object('action', 'set_reloptions', 'table', t.relid::bigint,
                                       'options', jsonb_build_object('autovacuum_vacuum_scale_factor', trim_scale(v_new)::text)),
                    f || jsonb_build_object('previous_change', v_prev.id, 'previous_change_at', v_prev.finished_at,
                                            'current_scale_factor', to_jsonb(v_sf), 'proposed_scale_factor', v_new),
                    v_qids, v_ms, t.name, NULL,
                    format('A high-churn table: autovacuum vacuums %s after %s of its rows are dead; at %s it vacuums after %s, a quarter as many, before they pile up.',
                           t.name, trim_scale(v_sf.value), trim_scale(v_new),
                           optischema._n(((t.x -> 'autovacuum_vacuum_threshold' ->> 'value')::numeric + v_new * greatest(t.reltuples, 0))::numeric)));
            ELSE
                v_out := v_out || optischema._finding(
                    'maintenance:vacuum:' || t.name, 'maintenance',
                    format('VACUUM (ANALYZE) %s: %s dead rows (%s%% of its rows; autovacuum would vacuum after %s); last vacuum %s%s',
                           t.name, optischema._n((t.x ->> 'n_dead_tup')::numeric), round(100 * (f ->> 'dead_fraction')::numeric),
                           optischema._n((t.x ->> 'vacuum_threshold')::numeric),
                           coalesce(to_char(greatest((t.x ->> 'last_vacuum')::timestamptz, (t.x ->> 'last_autovacuum')::timestamptz),
                                            'YYYY-MM-DD HH24:MI'), 'never'),
                           CASE WHEN v_misest IS NOT NULL
                                THEN format('; rows misestimated up to %sx by %s', optischema._n((SELECT max((e ->> 'factor')::numeric) FROM jsonb_array_elements(v_misest) e)),
                                            optischema._count(jsonb_array_length(v_misest), 'statement')) ELSE '' END),
                    jsonb_build_object('action', 'vacuum', 'table', t.relid::bigint), f, v_qids, v_ms, t.name, NULL,
                    concat_ws(' ',
                        CASE WHEN NOT (t.x ->> 'autovacuum')::boolean THEN format('Autovacuum is off for %s.', t.name) END,
                        CASE WHEN v_horizon IS NOT NULL
                             THEN format('VACUUM cannot remove rows that the oldest open transaction, %s, may still see: if it runs long, end it first.',
                                         v_horizon ->> 'held_by') END));
            END IF;
        END IF;

        -- Severe table bloat: what reclaims it, and at what lock cost. OptiSchema never rewrites a table.
        IF (v_bloat ->> 'wasted_bytes')::numeric >= greatest(v_bloat_min, 1) AND (v_bloat ->> 'fraction')::numeric >= 0.5 THEN
            v_out := v_out || optischema._finding(
                'maintenance:bloat:' || t.name, 'maintenance',
                format('%s wastes %s of its %s (%s%%): VACUUM FULL or pg_repack returns it to the disk (advice only)', t.name,
                       pg_catalog.pg_size_pretty((v_bloat ->> 'wasted_bytes')::bigint), pg_catalog.pg_size_pretty((v_bloat ->> 'size_bytes')::bigint),
                       round(100 * (v_bloat ->> 'fraction')::numeric)),
                NULL, t.x || jsonb_build_object('bloat', v_bloat, 'advice_only', true, 'pg_repack_installed', v_repack),
                v_qids, v_ms, t.name, NULL,
                format('VACUUM makes the space reusable by new rows but does not give it back. VACUUM FULL %s gives it back by rewriting the table: '
                       'it holds an ACCESS EXCLUSIVE lock for the whole rewrite (no reads, no writes) and needs free disk for a full copy. %s '
                       'OptiSchema runs neither: choose a maintenance window.', t.name,
                       CASE WHEN v_repack THEN format('pg_repack (installed) rewrites it online, locking only briefly at the start and end: pg_repack --table=%s.', t.name)
                            ELSE 'pg_repack (an extension, not installed here) rewrites it online, locking only briefly.' END));
        END IF;

        -- 3. Transaction ID wraparound.
        v_urgency := optischema._wraparound_urgency((t.x ->> 'xid_age')::bigint, (t.x ->> 'autovacuum_freeze_max_age')::bigint, v_warn);
        IF v_urgency IS NOT NULL THEN
            v_out := v_out || optischema._finding(
                'maintenance:vacuum_freeze:' || t.name, 'maintenance',
                format('VACUUM (FREEZE) %s, urgency %s: transaction ID age %s is %s%% of autovacuum_freeze_max_age %s (%s transaction IDs before PostgreSQL stops writes)',
                       t.name, v_urgency, optischema._n((t.x ->> 'xid_age')::numeric),
                       round(100 * (t.x ->> 'xid_age')::numeric / (t.x ->> 'autovacuum_freeze_max_age')::numeric),
                       optischema._n((t.x ->> 'autovacuum_freeze_max_age')::numeric),
                       optischema._n(2147483647 - 3000000 - (t.x ->> 'xid_age')::numeric)),
                jsonb_build_object('action', 'vacuum_freeze', 'table', t.relid::bigint),
                t.x || jsonb_build_object('urgency', v_urgency, 'warn_fraction', v_warn, 'xmin_horizon', v_horizon,
                                          'database_xid_age', (SELECT pg_catalog.age(d.datfrozenxid) FROM pg_catalog.pg_database d
                                                               WHERE d.datname = pg_catalog.current_database())),
                v_qids,
                -- wraparound comes first: high and critical above any statement's time
                CASE v_urgency WHEN 'critical' THEN 1e15 WHEN 'high' THEN 1e12 ELSE v_ms END + (t.x ->> 'xid_age')::numeric,
                t.name, NULL,
                CASE v_urgency
                    WHEN 'moderate' THEN 'Autovacuum will force an anti-wraparound VACUUM of this table once its age reaches autovacuum_freeze_max_age, at a time it chooses; VACUUM (FREEZE) now, at a time you choose, resets the age.'
                    ELSE 'Autovacuum should be freezing this table already: something holds it back (a long-running transaction, a lock, or its cost limits). VACUUM (FREEZE) now.' END);
        END IF;
    END LOOP;

    -- Bloated indexes: REINDEX INDEX CONCURRENTLY rebuilds one without blocking writes.
    FOR v_x IN
        SELECT i.indexrelid, format('%I.%I', n.nspname, ci.relname) AS name, format('%I.%I', n.nspname, ct.relname) AS tname,
               optischema._bloat(i.indexrelid) AS b
        FROM pg_catalog.pg_index i
        JOIN pg_catalog.pg_class ci ON ci.oid = i.indexrelid
        JOIN pg_catalog.pg_class ct ON ct.oid = i.indrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = ci.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'optischema', 'pg_toast') AND n.nspname NOT LIKE 'pg\_temp\_%'
          AND i.indisvalid AND ct.relkind IN ('r', 'm') AND ci.relpersistence <> 't'
          AND pg_catalog.pg_relation_size(i.indexrelid) >= greatest(v_bloat_min, 8192 * 2)
        ORDER BY 2
    LOOP
        CONTINUE WHEN coalesce((v_x.b ->> 'fraction')::numeric, 0) < 0.5
                   OR (v_x.b ->> 'wasted_bytes')::numeric < greatest(v_bloat_min, 1);
        v_out := v_out || optischema._finding(
            'maintenance:reindex:' || v_x.name, 'maintenance',
            format('REINDEX INDEX CONCURRENTLY %s: about %s of its %s is empty space (%s%%)', v_x.name,
                   pg_catalog.pg_size_pretty((v_x.b ->> 'wasted_bytes')::bigint), pg_catalog.pg_size_pretty((v_x.b ->> 'size_bytes')::bigint),
                   round(100 * (v_x.b ->> 'fraction')::numeric)),
            jsonb_build_object('action', 'reindex', 'index', v_x.indexrelid::bigint),
            jsonb_build_object('index', v_x.name, 'table', v_x.tname, 'bloat', v_x.b),
            '{}', (v_x.b ->> 'wasted_bytes')::numeric / 1048576, v_x.tname, v_x.name,
            'REINDEX CONCURRENTLY builds a new copy of the index beside the old one and swaps them, without blocking reads or writes; it needs the disk space of the new copy while it runs.');
    END LOOP;

    v_out := v_out || optischema._config_findings(p_from, p_to, p_plans, v_stale, v_dead, v_av_off);
    RETURN v_out;
END
$$;

-- The configuration findings: work_mem of the statements that write
-- temporary files, max_wal_size when checkpoints are requested rather than
-- timed, autovacuum when it is off or when many tables need vacuuming, and
-- settings that need a restart, as advice.
CREATE OR REPLACE FUNCTION optischema._config_findings(p_from bigint, p_to bigint, p_plans jsonb,
                                                       p_stale integer, p_dead integer, p_av_off text[]) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_out    jsonb := '[]';
    v_roles  record;
    v_p      record;
    v_spec   jsonb;
    v_w      record;
    v_cur    record;
    v_need   numeric;
    v_prop   numeric;
    v_tables integer := 3;      -- tables with the same problem before it is the server's
BEGIN
    -- 4. work_mem: statements that spill, checked by the what-if, grouped by the role that sends them.
    FOR v_roles IN
        -- one proposal per role: the value its heaviest spill needs
        SELECT (t ->> 'role')::oid AS role,
               (array_agg(t ->> 'proposed' ORDER BY (t ->> 'spill_kb_per_call')::numeric DESC))[1] AS proposed,
               jsonb_agg(t - 'query' || (p_plans -> 'work_mem' -> (t ->> 'queryid')) ORDER BY (t ->> 'spill_kb_per_call')::numeric DESC) AS stmts,
               array_agg((t ->> 'queryid')::bigint ORDER BY (t ->> 'queryid')::bigint) AS qids,
               max((t ->> 'spill_kb_per_call')::numeric) AS spill
        FROM jsonb_array_elements(coalesce(p_plans -> 'targets' -> 'work_mem', '[]')) t
        -- the what-if must show the plan or its cost change
        WHERE (p_plans -> 'work_mem' -> (t ->> 'queryid') ->> 'plan_changed')::boolean
           OR (p_plans -> 'work_mem' -> (t ->> 'queryid') ->> 'cost_proposed')::numeric
              < (p_plans -> 'work_mem' -> (t ->> 'queryid') ->> 'cost_current')::numeric
        GROUP BY 1
    LOOP
        v_spec := jsonb_build_object('setting', 'work_mem', 'value', v_roles.proposed, 'scope', 'role', 'role', v_roles.role::bigint);
        BEGIN
            v_p := optischema._setting_proposal('work_mem', v_roles.proposed, 'role', v_roles.role);
        EXCEPTION WHEN invalid_parameter_value THEN
            CONTINUE;
        END;
        v_out := v_out || optischema._finding(
            'config:role:' || quote_ident((SELECT a.rolname FROM pg_catalog.pg_roles a WHERE a.oid = v_roles.role)) || ':work_mem', 'config',
            format('Set work_mem = %s for role %s in this database (now %s, from %s): %s up to %s of temporary files per call',
                   v_p.value, (SELECT quote_ident(a.rolname) FROM pg_catalog.pg_roles a WHERE a.oid = v_roles.role), v_p.current,
                   v_p.current_source, optischema._count(jsonb_array_length(v_roles.stmts), 'statement') || ' write'
                   || CASE WHEN jsonb_array_length(v_roles.stmts) = 1 THEN 's' ELSE '' END,
                   pg_catalog.pg_size_pretty((v_roles.spill * 1024)::bigint)),
            v_spec,
            jsonb_build_object('setting', 'work_mem', 'current', v_p.current, 'current_source', v_p.current_source, 'proposed', v_p.value,
                               'scope', 'role', 'role', (SELECT a.rolname FROM pg_catalog.pg_roles a WHERE a.oid = v_roles.role),
                               'context', v_p.context, 'proposable', v_p.proposable, 'advice_only', false,
                               'statements', v_roles.stmts, 'budget', v_roles.stmts -> 0 -> 'budget'),
            v_roles.qids,
            (SELECT sum(w.total_ms) FROM optischema._query_window(p_from, p_to) w WHERE w.queryid = ANY (v_roles.qids)),
            NULL, NULL,
            'A sort or hash that does not fit in work_mem spills to temporary files; the value is twice what the heaviest statement writes per call, '
            || 'within the memory budget in the evidence. Only new sessions of the role get it.',
            jsonb_build_object('what_if', (SELECT jsonb_agg(jsonb_build_object('queryid', s ->> 'queryid', 'cost_current', s -> 'cost_current',
                                                                               'cost_proposed', s -> 'cost_proposed', 'plan_changed', s -> 'plan_changed'))
                                           FROM jsonb_array_elements(v_roles.stmts) s)));
    END LOOP;

    -- 5. Checkpoints requested by WAL volume rather than timed: max_wal_size.
    SELECT (b.checkpoints_req - a.checkpoints_req) AS req, (b.checkpoints_timed - a.checkpoints_timed) AS timed,
           (b.wal_lsn - a.wal_lsn) AS wal, extract(epoch FROM b.taken_at - a.taken_at) AS seconds, a.taken_at AS since
    INTO v_w
    FROM optischema.snapshots b, optischema.snapshots a
    WHERE b.id = p_to AND a.id = coalesce(p_from, (SELECT min(s.id) FROM optischema.snapshots s WHERE s.checkpoints_req IS NOT NULL));
    IF v_w.req >= 3 AND v_w.req > v_w.timed AND v_w.wal > 0 THEN
        -- WAL of one checkpoint_timeout cycle (the window's, when shorter), with room for the spread of a checkpoint
        v_need := v_w.wal * extract(epoch FROM current_setting('checkpoint_timeout')::interval)
                  / greatest(v_w.seconds, extract(epoch FROM current_setting('checkpoint_timeout')::interval))
                  * (1 + current_setting('checkpoint_completion_target')::numeric);
        v_prop := least(greatest(ceil(v_need / 1073741824), 1), 64);
        v_cur := optischema._setting_effective('max_wal_size');
        IF v_prop * 1024 > (optischema._setting_value('max_wal_size', v_cur.value)).own THEN
            BEGIN
                v_p := optischema._setting_proposal('max_wal_size', v_prop || 'GB', 'system');
                v_out := v_out || optischema._finding(
                    'config:system:max_wal_size', 'config',
                    format('Set max_wal_size = %s (now %s): %s of the window''s %s checkpoints were requested by WAL volume, not timed; %s of WAL in %s',
                           v_p.value, v_p.current, v_w.req, v_w.req + v_w.timed, pg_catalog.pg_size_pretty(v_w.wal),
                           justify_interval(make_interval(secs => round(v_w.seconds)))),
                    jsonb_build_object('setting', 'max_wal_size', 'value', v_p.value, 'scope', 'system'),
                    jsonb_build_object('setting', 'max_wal_size', 'current', v_p.current, 'current_source', v_p.current_source,
                                       'proposed', v_p.value, 'scope', 'system', 'context', v_p.context, 'proposable', v_p.proposable,
                                       'advice_only', false, 'checkpoints_requested', v_w.req, 'checkpoints_timed', v_w.timed,
                                       'wal_bytes', v_w.wal, 'window_seconds', round(v_w.seconds), 'window_since', v_w.since,
                                       'checkpoint_timeout', current_setting('checkpoint_timeout'),
                                       'checkpoint_completion_target', current_setting('checkpoint_completion_target'),
                                       'wal_per_cycle_needed', round(v_need)),
                    '{}', v_w.req, NULL, NULL,
                    'A checkpoint requested because WAL reached max_wal_size writes every dirty buffer early and makes the next writes full-page writes; '
                    || 'with room for a checkpoint_timeout of WAL, checkpoints come on time. The WAL directory needs that much disk.');
            EXCEPTION WHEN invalid_parameter_value THEN
                NULL;
            END;
        END IF;
    END IF;

    -- 6. Autovacuum, server-wide: off, or behind on several tables at once.
    IF cardinality(p_av_off) > 0 AND NOT current_setting('autovacuum')::boolean THEN
        v_p := optischema._setting_proposal('autovacuum', 'on', 'system');
        v_out := v_out || optischema._finding('config:system:autovacuum', 'config',
            format('Set autovacuum = on (now off): %s with stale statistics or dead rows (%s)', optischema._count(cardinality(p_av_off), 'table'),
                   array_to_string(p_av_off[1:5], ', ')),
            jsonb_build_object('setting', 'autovacuum', 'value', 'on', 'scope', 'system'),
            jsonb_build_object('setting', 'autovacuum', 'current', v_p.current, 'current_source', v_p.current_source, 'proposed', 'on',
                               'scope', 'system', 'context', v_p.context, 'advice_only', false, 'tables', to_jsonb(p_av_off)),
            '{}', 1e9, NULL, NULL, 'Without autovacuum, statistics go stale, dead rows pile up and transaction ID wraparound stops the database.');
    ELSIF current_setting('autovacuum')::boolean THEN
        FOR v_w IN
            SELECT * FROM (VALUES ('autovacuum_vacuum_scale_factor', p_dead, 'dead rows past what autovacuum tolerates'),
                                  ('autovacuum_analyze_scale_factor', p_stale, 'stale statistics and misestimated statements'))
                          x (name, tables, what)
            WHERE x.tables >= v_tables
        LOOP
            v_cur := optischema._setting_effective(v_w.name);
            v_prop := greatest(0.001, round((optischema._setting_value(v_w.name, v_cur.value)).own / 2, 4));
            BEGIN
                v_p := optischema._setting_proposal(v_w.name, trim_scale(v_prop)::text, 'system');
            EXCEPTION WHEN invalid_parameter_value THEN
                CONTINUE;
            END;
            v_out := v_out || optischema._finding('config:system:' || v_w.name, 'config',
                format('Set %s = %s (now %s): %s tables have %s', v_w.name, v_p.value, v_p.current, v_w.tables, v_w.what),
                jsonb_build_object('setting', v_w.name, 'value', v_p.value, 'scope', 'system'),
                jsonb_build_object('setting', v_w.name, 'current', v_p.current, 'current_source', v_p.current_source, 'proposed', v_p.value,
                                   'scope', 'system', 'context', v_p.context, 'proposable', v_p.proposable, 'advice_only', false,
                                   'tables', v_w.tables),
                '{}', v_w.tables, NULL, NULL,
                format('When %s tables need the same maintenance, the server''s autovacuum threshold is too lax for this workload: half of it lets autovacuum act twice as early on every table.', v_w.tables));
        END LOOP;
    END IF;

    -- shared_buffers: needs a restart, so advice only; only with a known server memory
    -- and a cache hit ratio under 99% over the window.
    IF optischema.setting('server_memory_mb')::numeric > 0 THEN
        SELECT sum(w.blks_hit)::numeric AS hit, sum(w.blks_read)::numeric AS reads INTO v_w
        FROM optischema._query_window(p_from, p_to) w;
        v_cur := optischema._setting_effective('shared_buffers');
        v_prop := least(floor(optischema.setting('server_memory_mb')::numeric / 4), 262144);
        IF v_w.reads > 0 AND v_w.hit / (v_w.hit + v_w.reads) < 0.99
           AND v_prop * 128 > (optischema._setting_value('shared_buffers', v_cur.value)).own * 1.25 THEN
            BEGIN
                v_p := optischema._setting_proposal('shared_buffers', v_prop || 'MB', 'system');
                v_out := v_out || optischema._finding('config:system:shared_buffers', 'config',
                    format('Set shared_buffers = %s (now %s; needs restart: advice only, never applied by OptiSchema): %s%% of the window''s reads were cache hits',
                           optischema._setting_text('shared_buffers', v_p.own), v_p.current, round(100 * v_w.hit / (v_w.hit + v_w.reads), 1)),
                    jsonb_build_object('setting', 'shared_buffers', 'value', optischema._setting_text('shared_buffers', v_p.own), 'scope', 'system'),
                    jsonb_build_object('setting', 'shared_buffers', 'current', v_p.current, 'current_source', v_p.current_source,
                                       'proposed', optischema._setting_text('shared_buffers', v_p.own), 'scope', 'system', 'context', v_p.context,
                                       'restart_required', true, 'advice_only', true, 'blks_hit', v_w.hit, 'blks_read', v_w.reads,
                                       'server_memory_mb', optischema.setting('server_memory_mb')::numeric),
                    '{}', 0, NULL, NULL,
                    'A quarter of the server''s memory is the usual size of shared_buffers; the operating system''s cache uses the rest. It takes effect at the next restart.');
            EXCEPTION WHEN invalid_parameter_value THEN
                NULL;
            END;
        END IF;
    END IF;
    RETURN v_out;
END
$$;

-- Records the findings of this transaction's _maintenance_plans(): the same
-- advice keeps its row; open rows whose evidence is gone are superseded;
-- applied one-off maintenance opens again when its evidence is back. Returns
-- the number of findings.
CREATE OR REPLACE FUNCTION optischema._record_maintenance() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_from  bigint;
    v_to    bigint;
    v_plans jsonb;
    v_found jsonb;
BEGIN
    PERFORM optischema._xact_lock('recommend');
    SELECT a.p_from, a.p_to, a.result INTO v_from, v_to, v_plans FROM optischema._take_result('maintenance') a;
    v_found := optischema._maintenance_findings(v_from, v_to, v_plans);

    INSERT INTO optischema._recommendations AS r
        (key, kind, source, title, ddl, rollback_ddl, table_name, index_name, queryids, benefit, evidence, score,
         explanation, action_spec)
    SELECT x.key, x.kind, 'advisor', x.title,
           coalesce(t.ddl, CASE WHEN x.action_spec IS NULL THEN '-- advice only: ' || x.explanation END), t.rollback_ddl,
           x."table", x.index_name, ARRAY(SELECT jsonb_array_elements_text(x.queryids)::bigint), x.benefit, x.evidence,
           x.score, x.explanation, x.action_spec
    FROM jsonb_to_recordset(v_found) AS x(key text, kind text, title text, "table" text, index_name text, queryids jsonb,
                                          benefit jsonb, evidence jsonb, score double precision, explanation text, action_spec jsonb)
    LEFT JOIN LATERAL optischema._action_texts(x.kind, x.action_spec) t ON x.action_spec IS NOT NULL
    ON CONFLICT (key) DO UPDATE
    SET title = EXCLUDED.title, ddl = EXCLUDED.ddl, rollback_ddl = EXCLUDED.rollback_ddl, action_spec = EXCLUDED.action_spec,
        table_name = EXCLUDED.table_name, index_name = EXCLUDED.index_name, queryids = EXCLUDED.queryids,
        benefit = EXCLUDED.benefit, evidence = EXCLUDED.evidence, score = EXCLUDED.score,
        -- the model's prose on the same setting stays; the advisor's finding takes its place
        explanation = coalesce(EXCLUDED.explanation, r.explanation), source = 'advisor', updated_at = now(),
        status = 'open',
        status_changed_at = CASE WHEN r.status = 'open' THEN r.status_changed_at ELSE now() END
    WHERE r.status IN ('open', 'superseded')
       -- one-off maintenance has nothing to keep applied: its evidence is back
       OR (r.status = 'applied' AND r.kind = 'maintenance' AND r.action_spec ->> 'action' IN ('analyze', 'vacuum', 'vacuum_freeze', 'reindex'));

    PERFORM optischema._supersede_gone(ARRAY['maintenance', 'config'], v_found);

    -- What could not be planned is recorded with the analysis of this refresh, like the index advisor's.
    UPDATE optischema.analyses a
    SET stats = a.stats || jsonb_build_object('maintenance_findings', jsonb_array_length(v_found)),
        skipped = a.skipped || coalesce((
            SELECT jsonb_agg(jsonb_build_object('queryid', x.key::bigint, 'reason', x.value ->> 'skipped'))
            FROM (SELECT p.key, p.value FROM jsonb_each(coalesce(v_plans -> 'plans', '{}')) p
                  UNION ALL SELECT w.key, w.value FROM jsonb_each(coalesce(v_plans -> 'work_mem', '{}')) w) x
            WHERE x.value ? 'skipped'
              AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(a.skipped) e
                              WHERE e ->> 'queryid' = x.key AND e ->> 'reason' = x.value ->> 'skipped')), '[]')
    WHERE a.id = (SELECT max(x.id) FROM optischema.analyses x WHERE x.to_snapshot = v_to);
    RETURN jsonb_array_length(v_found);
END
$$;

-- The evidence of the maintenance or config recommendation change p_change
-- applied, measured now: the table's figures, the index's size and bloat (by
-- its name: REINDEX CONCURRENTLY swaps in a new index), the setting at its
-- scope; for max_wal_size, the checkpoints since the change.
CREATE OR REPLACE FUNCTION optischema._action_measure(p_change bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ch      optischema._changes;
    p_kind  text;
    p_spec  jsonb;
    p_since timestamptz;
    v_rel   oid;
    v_at    record;
    v_req   bigint;
    v_timed bigint;
BEGIN
    SELECT * INTO ch FROM optischema._changes x WHERE x.id = p_change;
    SELECT r.kind, r.action_spec INTO p_kind, p_spec FROM optischema._recommendations r WHERE r.id = ch.recommendation_id;
    p_since := ch.finished_at;
    IF p_spec IS NULL THEN
        RETURN NULL;
    ELSIF p_kind = 'config' THEN
        v_at := optischema._setting_at(p_spec ->> 'setting', p_spec ->> 'scope', optischema._index_oid(p_spec -> 'role'));
        IF p_spec ->> 'setting' = 'max_wal_size' AND p_since IS NOT NULL THEN
            SELECT b.checkpoints_req - a.checkpoints_req, b.checkpoints_timed - a.checkpoints_timed INTO v_req, v_timed
            FROM optischema.snapshots a, optischema.snapshots b
            WHERE a.id = optischema._snapshot_before(p_since) AND b.id = (SELECT max(s.id) FROM optischema.snapshots s);
        END IF;
        RETURN jsonb_build_object('setting', p_spec ->> 'setting', 'scope', p_spec ->> 'scope', 'set', v_at.is_set, 'value', v_at.value,
                                  'in_effect', p_spec ->> 'scope' <> 'system' OR EXISTS (
                                      SELECT 1 FROM pg_catalog.pg_settings s WHERE s.name = p_spec ->> 'setting' AND NOT s.pending_restart
                                        AND optischema._setting_same(s.name, s.setting, p_spec ->> 'value')),
                                  'checkpoints_requested_since', v_req, 'checkpoints_timed_since', v_timed);
    ELSIF p_spec ->> 'action' = 'reindex' THEN
        v_rel := pg_catalog.to_regclass(format('%I.%I', ch.index_schema, ch.index_name));
        RETURN jsonb_build_object('size_bytes', pg_catalog.pg_relation_size(v_rel), 'bloat', optischema._bloat(v_rel));
    END IF;
    v_rel := optischema._index_oid(p_spec -> 'table');
    RETURN optischema._table_facts(v_rel) || jsonb_build_object('reloptions', (SELECT to_jsonb(c.reloptions) FROM pg_catalog.pg_class c WHERE c.oid = v_rel));
END
$$;

-- Right after a maintenance or config change: is its effect there? Records
-- plan_check 'verified' (the evidence moved as it should: statistics fresh and
-- estimates close, dead rows gone, age down, index smaller, setting in place)
-- or 'unchanged' (it ran, and the evidence did not move: the reason is in
-- plan_evidence), with the figures before and now. p_plans: the estimates
-- now of the statements that misestimated, planned as their senders by the
-- sidecar ([{queryid, plan_rows}]); without them an ANALYZE stays 'pending'
-- for the sidecar's verify job.
CREATE OR REPLACE FUNCTION optischema._record_effect(p_change bigint, p_plans jsonb) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c         optischema._changes;
    r         optischema._recommendations;
    v_now     jsonb;
    v_before  jsonb;
    v_act     text;
    v_ok      boolean;
    v_why     text;
    v_stmts   jsonb;
    v_factor  numeric := optischema.setting('misestimate_factor')::numeric;
    v_note    text;
BEGIN
    SELECT * INTO c FROM optischema._changes x WHERE x.id = p_change;
    SELECT * INTO r FROM optischema._recommendations x WHERE x.id = c.recommendation_id;
    IF NOT FOUND OR r.kind NOT IN ('maintenance', 'config') OR c.action <> 'apply' OR c.status <> 'succeeded' THEN
        RAISE EXCEPTION 'change % is no succeeded apply of a maintenance or config recommendation', coalesce(p_change::text, 'NULL')
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    v_now := optischema._action_measure(p_change);
    v_before := r.evidence;
    v_act := coalesce(r.action_spec ->> 'action', 'config');
    IF r.kind = 'maintenance' AND v_before ? 'statements' AND p_plans IS NOT NULL THEN
        SELECT jsonb_agg(s || jsonb_build_object('plan_rows_now', p.value -> 'plan_rows', 'skipped', p.value -> 'skipped',
                             'factor_now', round((greatest((p.value ->> 'plan_rows')::numeric, (s ->> 'rows_per_call')::numeric) + 1)
                                                 / (least((p.value ->> 'plan_rows')::numeric, (s ->> 'rows_per_call')::numeric) + 1), 1))),
               bool_and((greatest((p.value ->> 'plan_rows')::numeric, (s ->> 'rows_per_call')::numeric) + 1)
                        / (least((p.value ->> 'plan_rows')::numeric, (s ->> 'rows_per_call')::numeric) + 1) < v_factor)
                   FILTER (WHERE p.value ? 'plan_rows')
        INTO v_stmts, v_ok
        FROM jsonb_array_elements(v_before -> 'statements') s
        LEFT JOIN LATERAL (SELECT e AS value FROM jsonb_array_elements(p_plans) e WHERE e ->> 'queryid' = s ->> 'queryid') p ON true;
        v_why := CASE WHEN v_ok IS NULL THEN 'no statement could be planned again' WHEN NOT v_ok THEN 'the estimates still miss by the misestimate factor' END;
        v_ok := coalesce(v_ok, false);
    END IF;
    -- Only an ANALYZE rests on the estimates; a VACUUM (ANALYZE) rests on its dead rows, and
    -- estimates that still miss after it are reported, not held against it (skew a generic
    -- plan cannot see is no stale statistics).
    IF v_act <> 'analyze' AND v_stmts IS NOT NULL THEN
        v_note := CASE WHEN NOT v_ok THEN v_why || ': fresh statistics do not explain them' END;
        v_ok := NULL;
        v_why := NULL;
    END IF;
    IF v_act = 'analyze' THEN
        IF p_plans IS NULL THEN
            UPDATE optischema._changes SET plan_evidence = jsonb_build_object('now', v_now, 'note', 'estimates not re-planned yet: the sidecar''s verify job does')
            WHERE id = p_change;
            RETURN 'pending';
        END IF;
    ELSIF v_act IN ('vacuum', 'vacuum_freeze') THEN
        v_ok := CASE WHEN v_act = 'vacuum' THEN (v_now ->> 'n_dead_tup')::numeric <= (v_now ->> 'vacuum_threshold')::numeric
                                              ELSE (v_now ->> 'xid_age')::numeric < (v_before ->> 'xid_age')::numeric END;
        v_why := CASE WHEN NOT v_ok THEN format('VACUUM could not remove or freeze rows that %s may still see (transaction ID age %s)',
                                                optischema._xmin_horizon() ->> 'held_by', optischema._xmin_horizon() ->> 'oldest_xmin_age') END;
    ELSIF v_act = 'reindex' THEN
        v_ok := (v_now ->> 'size_bytes')::numeric < (v_before -> 'bloat' ->> 'size_bytes')::numeric;
        v_why := CASE WHEN NOT v_ok THEN 'the rebuilt index is no smaller' END;
    ELSIF v_act = 'set_reloptions' THEN
        v_ok := optischema._action_done(r.kind, r.action_spec, 'apply', c.prior_state);
        v_why := CASE WHEN NOT v_ok THEN 'the table''s storage parameters are not as set' END;
    ELSE
        v_ok := optischema._action_done(r.kind, r.action_spec, 'apply', c.prior_state);
        v_why := CASE WHEN NOT v_ok THEN 'the setting is not in place' END;
    END IF;
    UPDATE optischema._changes
    SET plan_check = CASE WHEN v_ok THEN 'verified' ELSE 'unchanged' END, verified_at = now(),
        plan_evidence = jsonb_strip_nulls(jsonb_build_object('before', v_before, 'now', v_now, 'statements', v_stmts, 'why', v_why,
                                                             'note', v_note))
    WHERE id = p_change;
    RETURN CASE WHEN v_ok THEN 'verified' ELSE 'unchanged' END;
END
$$;
