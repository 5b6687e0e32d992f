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
 'statement_timeout of each run of a proposed rewrite and of the original during the equivalence check.')
ON CONFLICT (key) DO UPDATE SET (type, default_value, min_value, max_value, allowed, description)
    = (EXCLUDED.type, EXCLUDED.default_value, EXCLUDED.min_value, EXCLUDED.max_value, EXCLUDED.allowed, EXCLUDED.description);

-- One row per HTTP request to a model (retries included), or per call refused
-- before any request (budget). The token budget is counted from here, so it
-- holds across sidecars and restarts.
CREATE TABLE IF NOT EXISTS optischema.llm_calls (
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
CREATE INDEX IF NOT EXISTS llm_calls_created_at_idx ON optischema.llm_calls (created_at);
CREATE INDEX IF NOT EXISTS llm_calls_queryid_idx ON optischema.llm_calls (queryid, created_at);

-- Every proposal of a valid answer and what OptiSchema made of it.
CREATE TABLE IF NOT EXISTS optischema.llm_proposals (
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
CREATE INDEX IF NOT EXISTS llm_proposals_call_id_idx ON optischema.llm_proposals (call_id);

SELECT pg_catalog.pg_extension_config_dump('optischema.llm_calls', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.llm_calls_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.llm_proposals', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.llm_proposals_id_seq', '');

-- Planner-relevant settings, as the server shows them (with units).
CREATE OR REPLACE FUNCTION optischema._llm_settings() RETURNS jsonb
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
CREATE OR REPLACE FUNCTION optischema._llm_table_context(p_relid oid, p_from bigint, p_seconds double precision,
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
-- model for it. Runs with the caller's privileges (planning as the statement's
-- sender needs membership in it; pg_stats shows only columns the caller may read).
CREATE OR REPLACE FUNCTION optischema.context(queryid bigint) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_qid    bigint := $1;
    q        optischema.queries;
    v_text   text;
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
    IF NOT FOUND AND EXISTS (SELECT 1 FROM optischema.query_roles r WHERE r.queryid = v_qid) THEN
        RAISE EXCEPTION 'the text of queryid % is not readable by role %', v_qid, current_user
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'A member of pg_read_all_stats, or of a role that sent the statement, reads it (as in pg_stat_statements).';
    END IF;
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
    -- as a role that sent it (the code planning runs is that role's), under
    -- that role's search_path.
    SELECT g.plan, g.reason INTO v_plan, v_reason FROM optischema._generic_plan(v_qid, v_text) g;

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
CREATE OR REPLACE FUNCTION optischema.workload_context(n integer DEFAULT 10) RETURNS jsonb
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
CREATE OR REPLACE FUNCTION optischema.llm_tokens_used(p_since interval DEFAULT '1 hour') RETURNS bigint
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
CREATE OR REPLACE FUNCTION optischema.enqueue_llm_analyses(n integer DEFAULT 5) RETURNS integer
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
CREATE OR REPLACE FUNCTION optischema._llm_record_call(p_job_id bigint, p_scope text, p_queryid bigint, p_model text,
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

CREATE OR REPLACE FUNCTION optischema._llm_record_proposal(p_call_id bigint, p_queryid bigint, p_kind text, p_proposal jsonb,
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
CREATE OR REPLACE FUNCTION optischema._llm_explain_advisor(p_queryids bigint[], p_explanation text, p_key text DEFAULT NULL)
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
-- explanation. An index proposal comes as its description (p_index_spec,
-- sql/09_index_ddl.sql), a setting as its (p_action_spec, sql/12_actions.sql):
-- their ddl and rollback_ddl are built from that, not taken from the caller.
-- Returns the row's id and whether it was written.
CREATE OR REPLACE FUNCTION optischema._llm_recommend(p_key text, p_kind text, p_title text, p_ddl text, p_rollback_ddl text,
    p_table_name text, p_index_name text, p_queryids bigint[], p_benefit jsonb, p_evidence jsonb,
    p_estimated_size_bytes bigint, p_score double precision, p_explanation text, p_index_spec jsonb,
    p_action_spec jsonb, OUT rec_id bigint, OUT written boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ddl      text := p_ddl;
    v_rollback text := p_rollback_ddl;
BEGIN
    IF p_kind = 'drop_index' OR (p_kind = 'create_index') <> (p_index_spec IS NOT NULL) THEN
        RAISE EXCEPTION 'an LLM % recommendation % an index description', p_kind,
            CASE WHEN p_kind = 'create_index' THEN 'needs' ELSE 'has no' END
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (p_kind = 'config') <> (p_action_spec IS NOT NULL) THEN
        RAISE EXCEPTION 'an LLM % recommendation % a setting''s description', p_kind,
            CASE WHEN p_kind = 'config' THEN 'needs' ELSE 'has no' END
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_kind = 'create_index' THEN
        SELECT t.ddl, t.rollback_ddl INTO v_ddl, v_rollback FROM optischema._index_texts(p_kind, p_index_spec) t;
    ELSIF p_kind = 'config' THEN
        -- checked again against the allow-list: the statement is the one apply() would build
        PERFORM optischema._action_statement('config', p_action_spec);
        SELECT t.ddl, t.rollback_ddl INTO v_ddl, v_rollback FROM optischema._action_texts(p_kind, p_action_spec) t;
    END IF;
    INSERT INTO optischema._recommendations AS r
        (key, kind, source, title, ddl, rollback_ddl, table_name, index_name, queryids, benefit, evidence,
         estimated_size_bytes, score, explanation, index_spec, action_spec)
    VALUES (p_key, p_kind, 'llm', p_title, v_ddl, v_rollback, p_table_name, p_index_name, p_queryids,
            p_benefit, p_evidence, p_estimated_size_bytes, p_score, p_explanation, p_index_spec, p_action_spec)
    ON CONFLICT (key) DO UPDATE
    SET title = EXCLUDED.title, ddl = EXCLUDED.ddl, rollback_ddl = EXCLUDED.rollback_ddl,
        -- the same advice from another statement's analysis: it serves both
        queryids = ARRAY(SELECT DISTINCT q FROM unnest(r.queryids || EXCLUDED.queryids) q ORDER BY q),
        benefit = EXCLUDED.benefit, evidence = EXCLUDED.evidence,
        estimated_size_bytes = EXCLUDED.estimated_size_bytes, score = EXCLUDED.score,
        explanation = EXCLUDED.explanation, index_spec = EXCLUDED.index_spec, action_spec = EXCLUDED.action_spec,
        updated_at = pg_catalog.now()
    WHERE r.source = 'llm' AND r.status = 'open'
    RETURNING r.id INTO rec_id;
    written := rec_id IS NOT NULL;
    IF NOT written THEN
        PERFORM optischema._llm_explain_advisor(p_queryids, p_explanation, p_key);
        SELECT r.id INTO rec_id FROM optischema._recommendations r WHERE r.key = p_key;
    END IF;
END
$$;
