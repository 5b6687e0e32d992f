-- What is missing or wrong, and the exact statement or config line that
-- fixes it. Works when nothing else does (pg_stat_statements not loaded).

CREATE OR REPLACE FUNCTION optischema.health()
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
    v_rounds    bigint;
    v_interval  interval := optischema.setting('snapshot_interval')::interval;
    v_timeout   interval := optischema.setting('sidecar_timeout')::interval;
    v_max       text := current_setting('pg_stat_statements.max', true);
    v_sidecar   optischema.sidecars;
    v_preload   text := current_setting('shared_preload_libraries');
    v_other     text;
    v_cut       bigint;
    v_longest   bigint;
    v_size      bigint;
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

    -- pg_stat_activity keeps the first track_activity_query_size - 1 bytes of
    -- a text: a statement that never finishes is known only from there, and a
    -- cut text cannot be planned. Texts with their constants are longer than
    -- the normalized ones pg_stat_statements keeps: twice the longest is asked for.
    "check" := 'track_activity_query_size';
    SELECT count(*) FILTER (WHERE r.truncated) INTO v_cut FROM optischema.running_statements r;
    v_longest := (SELECT max(pg_catalog.octet_length(q.query)) FROM optischema.queries q WHERE NOT q.own);
    v_size := (SELECT s.setting::bigint FROM pg_catalog.pg_settings s WHERE s.name = 'track_activity_query_size');
    ok := v_cut = 0 AND coalesce(v_longest, 0) < v_size;
    detail := format('track_activity_query_size = %s', pg_catalog.pg_size_pretty(v_size))
        || CASE WHEN v_cut > 0 THEN format('; %s statement(s) seen running were cut there and cannot be planned', v_cut) ELSE '' END
        || CASE WHEN v_longest IS NOT NULL THEN format('; the longest captured text is %s bytes without its constants', v_longest) ELSE '' END;
    fix := CASE WHEN NOT ok THEN format('ALTER SYSTEM SET track_activity_query_size = %s; then restart PostgreSQL (bytes)',
        pg_catalog.power(2, pg_catalog.ceil(pg_catalog.log(2,
            greatest(2 * coalesce(v_longest, 0), CASE WHEN v_cut > 0 THEN 2 * v_size ELSE 0 END, 1024)::numeric)))::bigint) END;
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
    -- dealloc counts rounds of eviction, each of which drops the least-used
    -- 5% of the entries (at least 10): pg_stat_statements' entry_dealloc().
    ok := coalesce(v_last.evicted, 0) = 0 AND v_dealloc IS NOT DISTINCT FROM coalesce(v_last.pgss_dealloc, v_dealloc);
    v_rounds := greatest(coalesce(v_last.evicted, 0), coalesce(v_dealloc - v_last.pgss_dealloc, 0));
    detail := CASE WHEN ok THEN 'no statements evicted since the last snapshot (pg_stat_statements.max = ' || coalesce(v_max, '?') || ')'
                   ELSE format('pg_stat_statements ran out of room %s times, each time evicting its least-used 5%% of entries '
                               '(about %s statements in all): pg_stat_statements.max = %s is too small, the workload is not fully seen',
                               v_rounds, coalesce((v_rounds * greatest(v_max::integer / 20, 10))::text, '?'), coalesce(v_max, '?')) END;
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

    "check" := 'sidecar version';
    SELECT string_agg(format('%s (%s on %s)', s.worker_id, s.version, s.host), ', ' ORDER BY s.worker_id),
           min(s.version)
    INTO detail, v_other
    FROM optischema.sidecars s
    WHERE s.last_seen > now() - v_timeout AND NOT optischema._sidecar_serves(s.version);
    ok := detail IS NULL;
    detail := CASE WHEN ok THEN 'every sidecar seen serves this schema (@EXTVERSION@)'
                   ELSE 'sidecars of another version get no jobs: ' || detail END;
    fix := CASE WHEN NOT ok THEN optischema._sidecar_fix(v_other) END;
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
