-- What is missing or wrong, and the exact statement or config line that
-- fixes it. Works when nothing else does (pg_stat_statements not loaded).

-- A fix that needs ALTER SYSTEM or postgresql.conf, and, where the schema's
-- owner is no superuser (a managed service: the provider decides), where the
-- setting is changed instead. p_add: the value joins a list (shared_preload_libraries).
CREATE OR REPLACE FUNCTION optischema._console_fix(p_fix text, p_setting text, p_value text, p_add boolean) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN (SELECT a.rolsuper FROM pg_catalog.pg_roles a JOIN pg_catalog.pg_namespace n ON n.nspowner = a.oid
                      WHERE n.nspname = 'optischema') THEN p_fix
                ELSE p_fix || format('  On a managed service, where the provider decides: %s in its console (Amazon RDS/Aurora: the DB parameter group; '
                                     'Google Cloud SQL: database flags; Azure: server parameters; README, Managed databases)%s.',
                                     CASE WHEN p_add THEN format('add %s to %s', p_value, p_setting)
                                          ELSE format('set %s = %s', p_setting, p_value) END,
                                     CASE WHEN p_add THEN ', then restart' ELSE '' END) END
$$;

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
    v_preload   text := optischema._preload_libraries();
    v_owner     name := (SELECT n.nspowner::regrole::text FROM pg_catalog.pg_namespace n WHERE n.nspname = 'optischema');
    v_plain     boolean := optischema._plain_install();
    v_other     text;
    v_cut       bigint;
    v_longest   bigint;
    v_size      bigint;
BEGIN
    SELECT * INTO v_last FROM optischema.snapshots s ORDER BY s.id DESC LIMIT 1;

    "check" := 'pg_stat_statements preloaded'; ok := v_preloaded;
    detail := coalesce('shared_preload_libraries = ''' || v_preload || '''',
                       'pg_stat_statements is ' || CASE WHEN ok THEN '' ELSE 'not ' END || 'loaded (shared_preload_libraries is not readable by '
                       || v_owner || ' without pg_read_all_settings)');
    fix := CASE WHEN NOT ok THEN optischema._console_fix(format('postgresql.conf: shared_preload_libraries = ''%s'' then restart PostgreSQL',
        concat_ws(',', coalesce(nullif(v_preload, ''), CASE WHEN v_preload IS NULL THEN '<the libraries listed now>' END), 'pg_stat_statements')), 'shared_preload_libraries', 'pg_stat_statements', true) END;
    RETURN NEXT;

    "check" := 'pg_stat_statements created'; ok := v_pgss IS NOT NULL;
    detail := CASE WHEN ok THEN 'in schema ' || v_pgss ELSE 'not installed in ' || current_database() END;
    fix := CASE WHEN NOT ok THEN 'CREATE EXTENSION pg_stat_statements;' END;
    RETURN NEXT;

    "check" := 'compute_query_id'; detail := 'compute_query_id = ' || current_setting('compute_query_id');
    ok := current_setting('compute_query_id') = 'on'
          OR (current_setting('compute_query_id') = 'auto' AND v_preloaded);
    fix := CASE WHEN NOT ok THEN optischema._console_fix('ALTER SYSTEM SET compute_query_id = ''on''; SELECT pg_reload_conf();',
                                                          'compute_query_id', 'on', false) END;
    RETURN NEXT;

    "check" := 'pg_stat_statements.track';
    detail := 'pg_stat_statements.track = ' || coalesce(current_setting('pg_stat_statements.track', true), 'unknown (not loaded)');
    ok := coalesce(current_setting('pg_stat_statements.track', true), 'none') IN ('top', 'all');
    fix := CASE WHEN NOT ok THEN optischema._console_fix('ALTER SYSTEM SET pg_stat_statements.track = ''top''; SELECT pg_reload_conf();',
                                                          'pg_stat_statements.track', 'top', false) END;
    RETURN NEXT;

    "check" := 'track_io_timing'; ok := current_setting('track_io_timing')::boolean;
    detail := 'track_io_timing = ' || current_setting('track_io_timing') || ' (I/O time per statement)';
    fix := CASE WHEN NOT ok THEN optischema._console_fix('ALTER SYSTEM SET track_io_timing = on; SELECT pg_reload_conf();',
                                                          'track_io_timing', 'on', false) END;
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
                WHEN v_plain THEN 'not offered on this server: choose a provider or version that offers hypopg (README, Managed databases); without it recommend() proposes no indexes'
                ELSE 'apt-get install postgresql-15-hypopg, then CREATE EXTENSION hypopg;' END;
    RETURN NEXT;

    -- pg_stat_statements replaces the constants of a statement's text with $n:
    -- without pg_qualstats, `status = 'pending'` is `status = $1`, and no
    -- partial index can be proposed for it (recommend() falls back to pg_stats).
    "check" := 'pg_qualstats';
    ok := NOT optischema.setting('use_pg_qualstats')::boolean
          OR (optischema._preloaded('pg_qualstats') AND EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_qualstats'));
    detail := CASE WHEN NOT optischema.setting('use_pg_qualstats')::boolean THEN 'not used (setting use_pg_qualstats is off)'
                   WHEN ok THEN 'installed: recommend() costs statements with the constants they ran with, and proposes partial indexes for them'
                   WHEN NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_qualstats') THEN 'not installed on this server'
                   WHEN NOT optischema._preloaded('pg_qualstats') THEN 'not in shared_preload_libraries'
                   ELSE 'loaded, not created in ' || current_database() END
              || CASE WHEN ok THEN '' ELSE ': recommend() guesses parameters from pg_stats, and proposes no partial index for a constant pg_stat_statements replaced with $n' END;
    fix := CASE WHEN ok THEN NULL
                WHEN NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_qualstats') THEN
                    CASE WHEN v_plain THEN 'not offered on this server: choose a provider or version that offers pg_qualstats (README, Managed databases), or SELECT optischema.set_setting(''use_pg_qualstats'', ''false'');'
                         ELSE 'apt-get install postgresql-15-pg-qualstats; postgresql.conf: add pg_qualstats to shared_preload_libraries, then restart PostgreSQL; then CREATE EXTENSION pg_qualstats;' END
                WHEN NOT optischema._preloaded('pg_qualstats') THEN
                    optischema._console_fix(format('postgresql.conf: shared_preload_libraries = ''%s'' then restart PostgreSQL; then CREATE EXTENSION pg_qualstats;',
                        concat_ws(',', coalesce(nullif(v_preload, ''), CASE WHEN v_preload IS NULL THEN '<the libraries listed now>' END),
                                  CASE WHEN NOT v_preloaded THEN 'pg_stat_statements' END, 'pg_qualstats')),
                        'shared_preload_libraries', 'pg_qualstats', true)
                ELSE 'CREATE EXTENSION pg_qualstats;' END;
    RETURN NEXT;

    "check" := 'plpython3u';
    ok := v_plain OR EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'plpython3u');
    detail := CASE WHEN v_plain THEN 'not needed: a plain install, the advisor runs in the sidecar (CALL optischema.refresh())'
                   WHEN ok THEN 'installed: the advisor runs inside the database' ELSE 'not installed' END;
    fix := CASE WHEN NOT ok THEN 'CREATE EXTENSION plpython3u;  (Debian/Ubuntu package: postgresql-plpython3-15)' END;
    RETURN NEXT;

    -- Without it, snapshot() sees only the statements of the schema's owner.
    "check" := 'pg_read_all_stats';
    ok := pg_catalog.pg_has_role(v_owner, 'pg_read_all_stats', 'USAGE');
    detail := v_owner || CASE WHEN ok THEN ' reads every role''s statements in pg_stat_statements'
                              ELSE ' sees only its own statements in pg_stat_statements: the workload of other roles is missing' END;
    fix := CASE WHEN NOT ok THEN format('GRANT pg_read_all_stats TO %I;  (or pg_monitor; as a superuser, or on a managed service as its admin user)', v_owner) END;
    RETURN NEXT;

    -- An index is built by a member of its table's owner with CREATE on the
    -- table's schema; ANALYZE and VACUUM are run by a member of the owner (the
    -- sidecar logs in as the schema's owner, or a member of it).
    "check" := 'table owners';
    WITH t AS (
        SELECT c.relowner, n.oid AS nsp, n.nspname
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'optischema')
          AND n.nspname NOT LIKE 'pg\_%'
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                          WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')),
    missing AS (
        SELECT format('the tables of %s (%s tables)', t.relowner::regrole, count(*)) AS what,
               format('GRANT %I TO %I;', t.relowner::regrole::text, v_owner) AS grant_sql
        FROM t WHERE NOT pg_catalog.pg_has_role(v_owner, t.relowner, 'MEMBER') GROUP BY t.relowner
        UNION ALL
        SELECT format('schema %I (CREATE, for indexes)', t.nspname), format('GRANT CREATE ON SCHEMA %I TO %I;', t.nspname, v_owner)
        FROM t WHERE NOT pg_catalog.has_schema_privilege(v_owner, t.nsp, 'CREATE') GROUP BY t.nspname)
    SELECT string_agg(m.what, ', ' ORDER BY m.grant_sql), string_agg(m.grant_sql, ' ' ORDER BY m.grant_sql)
    INTO detail, fix
    FROM missing m;
    ok := detail IS NULL;
    detail := CASE WHEN ok THEN v_owner || ' may index, analyze and vacuum every table'
                   ELSE v_owner || ' cannot index, analyze or vacuum: ' || detail END;
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
    detail := CASE WHEN ok THEN 'preloaded; jobs live in database '
                                || CASE WHEN pg_catalog.pg_has_role('pg_read_all_settings', 'USAGE')
                                        THEN coalesce(current_setting('cron.database_name', true), 'postgres')
                                        ELSE 'cron.database_name (only readable with pg_read_all_settings)' END
                   ELSE 'not preloaded (optional: the sidecar schedules snapshots instead)' END;
    fix := CASE WHEN NOT ok THEN optischema._console_fix(format('postgresql.conf: shared_preload_libraries = ''%s'' and cron.database_name = ''postgres'', restart, then in that database: CREATE EXTENSION pg_cron;',
                                        concat_ws(',', coalesce(nullif(v_preload, ''), CASE WHEN v_preload IS NULL THEN '<the libraries listed now>' END), 'pg_cron')), 'shared_preload_libraries', 'pg_cron', true) END;
    RETURN NEXT;
END
$$;
