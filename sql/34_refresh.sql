-- Refreshing recommendations where the engine is not in the database. A plain
-- install (optischema-sidecar install: no extension, no PL/Python) keeps the
-- SQL interface: recommend() returns the current recommendations and queues a
-- refresh for the sidecar when they are older than recommend_interval;
-- CALL optischema.refresh() queues one, commits and waits for the sidecar's
-- result. With the extension, both analyse in the calling backend as before.

-- A plain install is the schema without the extension.
CREATE OR REPLACE FUNCTION optischema._plain_install() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname = 'optischema')
$$;

-- The 'recommend' job waiting or running, else a new one.
CREATE OR REPLACE FUNCTION optischema._refresh_job() RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT j.id FROM optischema.jobs j
                     WHERE j.kind = 'recommend' AND j.status IN ('pending', 'running') ORDER BY j.id LIMIT 1),
                    optischema.enqueue('recommend', '{"reason": "refresh"}'))
$$;

-- For recommend(): false when the engine runs in this backend; in a plain
-- install true, after queueing a refresh (and saying so) when the last analysis
-- is older than recommend_interval (0: only CALL optischema.refresh() refreshes).
CREATE OR REPLACE FUNCTION optischema._refreshed_by_sidecar() RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_every interval := optischema.setting('recommend_interval')::interval;
    v_last  timestamptz := (SELECT max(a.finished_at) FROM optischema.analyses a);
BEGIN
    IF NOT optischema._plain_install() THEN
        RETURN false;
    END IF;
    IF v_every > interval '0' AND (v_last IS NULL OR v_last < pg_catalog.now() - v_every) THEN
        RAISE NOTICE 'recommendations are %: a refresh is queued for the sidecar (job %)',
            coalesce('from ' || v_last::text || ', older than recommend_interval (' || v_every::text || ')', 'not computed yet'),
            optischema._refresh_job()
            USING HINT = 'CALL optischema.refresh(); waits for it.';
    END IF;
    RETURN true;
END
$$;

-- Refreshes the recommendations now: with the extension here; in a plain
-- install by the sidecar, waited for up to timeout. Runs outside a transaction
-- block: it commits the queued job, which the sidecar could not see otherwise.
CREATE OR REPLACE PROCEDURE optischema.refresh(timeout interval DEFAULT '5 minutes')
LANGUAGE plpgsql
AS $$
DECLARE
    v_deadline timestamptz := pg_catalog.clock_timestamp() + coalesce(timeout, interval '5 minutes');
    v_job      bigint;
    v_status   text;
    v_error    text;
    v_open     bigint;
BEGIN
    IF NOT optischema._plain_install() THEN
        SELECT pg_catalog.count(*) INTO v_open FROM optischema.recommend(2147483647);
        RAISE NOTICE 'recommendations refreshed: % open', v_open;
        RETURN;
    END IF;
    -- (for this transaction only: the caller's comes back at the COMMIT below)
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'CALL optischema.refresh() must run outside a transaction block'
            USING ERRCODE = 'active_sql_transaction',
                  HINT = 'The sidecar runs the analysis and cannot see an uncommitted request: COMMIT first.';
    END IF;
    v_job := optischema._refresh_job();
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF NOT EXISTS (SELECT 1 FROM optischema.sidecars s
                   WHERE s.last_seen > pg_catalog.now() - optischema.setting('sidecar_timeout')::interval
                     AND optischema._sidecar_serves(s.version)) THEN
        RAISE WARNING 'no sidecar serving this database has been seen recently: the refresh (job %) waits until one runs', v_job
            USING HINT = format('Start optischema-sidecar --dsn "dbname=%s ..." (README, Managed databases); SELECT * FROM optischema.health();',
                                pg_catalog.current_database());
        RETURN;
    END IF;
    LOOP
        SELECT j.status, j.error INTO v_status, v_error FROM optischema.jobs j WHERE j.id = v_job;
        EXIT WHEN v_status NOT IN ('pending', 'running');
        IF pg_catalog.clock_timestamp() > v_deadline THEN
            RAISE WARNING 'the refresh (job %) is still % after %', v_job, v_status, timeout
                USING HINT = 'It goes on in the background: SELECT * FROM optischema.jobs WHERE id = ' || v_job || ';';
            RETURN;
        END IF;
        COMMIT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        PERFORM pg_catalog.pg_sleep(0.2);
    END LOOP;
    IF v_status <> 'done' THEN
        RAISE EXCEPTION 'the refresh (job %) %: %', v_job, v_status, coalesce(v_error, 'no error recorded')
            USING ERRCODE = 'external_routine_exception',
                  HINT = 'SELECT * FROM optischema.jobs WHERE id = ' || v_job || ';';
    END IF;
    RAISE NOTICE 'recommendations refreshed by the sidecar: % open (job %)',
        (SELECT count(*) FROM optischema.recommendations r WHERE r.status = 'open'), v_job;
END
$$;
