-- The job queue: work the database records and a sidecar runs (top-level DDL,
-- LLM calls, scheduled snapshots). Every state is a row here, so a sidecar may
-- crash at any moment and another one picks the work up: a running job holds
-- a lease, renewed by its sidecar's heartbeat; a job whose lease expired is
-- claimable again. Claims use FOR UPDATE SKIP LOCKED, so sidecars racing for
-- the same queue never run one job twice.

CREATE TABLE IF NOT EXISTS optischema.jobs (
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
    finished_at      timestamptz,
    cancel_requested_by text            -- cancel_job() of a running job: its sidecar stops it
);
-- Claims look only at claimable rows; the queue's history stays out of the way.
CREATE INDEX IF NOT EXISTS jobs_pending_idx ON optischema.jobs (run_after, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS jobs_running_idx ON optischema.jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS jobs_kind_created_idx ON optischema.jobs (kind, created_at);
SELECT pg_catalog.pg_extension_config_dump('optischema.jobs', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.jobs_id_seq', '');

-- The kinds a sidecar knows how to run; enqueue() rejects anything else.
-- Other parts of the extension add their kinds with an INSERT.
CREATE TABLE IF NOT EXISTS optischema.job_kinds (
    kind        text PRIMARY KEY,
    description text NOT NULL
);
INSERT INTO optischema.job_kinds (kind, description) VALUES
('apply',        'Run a change''s statement at top level (CREATE/DROP INDEX CONCURRENTLY, VACUUM, ANALYZE, ALTER SYSTEM, ...; payload: change_id); written by optischema.apply().'),
('rollback',     'Undo an applied change (payload: change_id); written by optischema.rollback().'),
('verify',       'Check that the plans of the affected queries use the new index, or that maintenance or a setting moved its evidence (payload: change_id).'),
('snapshot',     'optischema.snapshot(), then the timing check of recently applied changes.'),
('recommend',    'Refresh recommendations: SELECT count(*) FROM optischema.recommend(); in a plain install (no PL/Python) the sidecar runs the analysis (CALL optischema.refresh()).'),
('purge',        'optischema.purge(): snapshot data, finished jobs and the LLM audit past their retention.'),
('llm_analysis', 'LLM enrichment of recommendations (optischema_sidecar.llm.analysis).'),
('noop',         'Does nothing: for tests, benchmarks and checking that a sidecar answers.')
ON CONFLICT (kind) DO UPDATE SET description = EXCLUDED.description;

INSERT INTO optischema.setting_defs (key, type, default_value, min_value, max_value, allowed, description) VALUES
('purge_interval', 'interval', '1 hour', NULL, NULL, NULL,
 'How often the sidecar runs retention (optischema.purge()); 0 turns it off.'),
('job_backoff', 'interval', '10 seconds', NULL, NULL, NULL,
 'Delay before a failed job''s first retry; doubles with every attempt, up to one hour.'),
('job_retention', 'interval', '30 days', NULL, NULL, NULL,
 'purge() removes finished jobs, the LLM audit and analyses older than this (the change log is never purged).')
ON CONFLICT (key) DO UPDATE SET (type, default_value, min_value, max_value, allowed, description)
    = (EXCLUDED.type, EXCLUDED.default_value, EXCLUDED.min_value, EXCLUDED.max_value, EXCLUDED.allowed, EXCLUDED.description);

-- A job whose payload its sidecar handler (sidecar/handlers.py) cannot use
-- would fail, or be retried, for nothing: what each kind reads is checked
-- here, with what to do instead. Kinds that read nothing take any object.
CREATE OR REPLACE FUNCTION optischema._check_job_payload(p_kind text, p_payload jsonb) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id     text := p_payload ->> CASE WHEN p_kind = 'llm_analysis' THEN 'queryid' ELSE 'change_id' END;
    v_scope  jsonb := coalesce(p_payload -> 'scope', '"query"');
    v_sleep  jsonb := p_payload -> 'sleep';
    v_change record;
    v_query  record;
BEGIN
    IF p_kind IN ('apply', 'rollback', 'verify') THEN
        IF jsonb_typeof(p_payload -> 'change_id') IS DISTINCT FROM 'number' OR v_id !~ '^[0-9]{1,18}$' THEN
            RAISE EXCEPTION '% job payload needs "change_id": the id of a change, got %', p_kind, p_payload
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = CASE WHEN p_kind = 'verify' THEN 'For example: optischema.enqueue(''verify'', ''{"change_id": 12}''); or optischema.verify(recommendation_id).'
                                  ELSE format('optischema.%s(recommendation_id) records the change and queues its job.', p_kind) END;
        END IF;
        SELECT c.action, c.via, c.status INTO v_change FROM optischema._changes c WHERE c.id = v_id::bigint;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'change % does not exist', v_id
                USING ERRCODE = 'invalid_parameter_value', HINT = 'SELECT * FROM optischema.changes ORDER BY id DESC;';
        ELSIF p_kind IN ('apply', 'rollback') AND (v_change.action <> p_kind OR v_change.via <> 'sidecar') THEN
            RAISE EXCEPTION 'change % is % via %: % jobs run only % changes requested with via => ''sidecar''',
                            v_id, v_change.action, v_change.via, p_kind, p_kind
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = format('optischema.%s(recommendation_id) records the change and queues its job.', p_kind);
        ELSIF p_kind = 'verify' AND (v_change.action <> 'apply' OR v_change.status <> 'succeeded') THEN
            RAISE EXCEPTION 'change % is % %: the plan check is for a succeeded apply', v_id, v_change.status, v_change.action
                USING ERRCODE = 'invalid_parameter_value', HINT = 'SELECT * FROM optischema.changes WHERE id = ' || v_id || ';';
        END IF;
    ELSIF p_kind = 'llm_analysis' THEN
        IF v_scope NOT IN ('"query"', '"workload"') THEN
            RAISE EXCEPTION 'llm_analysis job payload "scope" must be "query" or "workload", got %', v_scope
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'optischema.enqueue_llm_analyses() queues the analyses that are due.';
        END IF;
        IF v_scope = '"query"' THEN
            IF coalesce(jsonb_typeof(p_payload -> 'queryid'), 'null') NOT IN ('number', 'string') OR v_id !~ '^-?[0-9]{1,19}$' THEN
                RAISE EXCEPTION 'llm_analysis job payload needs "queryid": the queryid of a captured statement, got %', p_payload
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'For example: optischema.enqueue(''llm_analysis'', ''{"scope": "query", "queryid": "-4242"}''); queryids are in optischema.top_queries().';
            END IF;
            SELECT q.own, optischema._is_utility(q.query) AS utility INTO v_query
            FROM optischema.queries q WHERE q.queryid = v_id::numeric;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'queryid % was never captured', v_id
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'Only statements optischema.snapshot() captured are analysed; see optischema.top_queries().';
            ELSIF v_query.own OR v_query.utility THEN
                RAISE EXCEPTION 'queryid % is %: it is never sent to a model', v_id,
                                CASE WHEN v_query.own THEN 'one of OptiSchema''s own statements' ELSE 'a utility statement' END
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
        END IF;
    ELSIF p_kind = 'noop' AND v_sleep IS NOT NULL
          AND NOT jsonb_path_exists(v_sleep, '$ ? (@.type() == "number" && @ >= 0 && @ <= 3600)') THEN
        RAISE EXCEPTION 'noop job payload "sleep" must be 0 to 3600 seconds, got %', v_sleep
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example: optischema.enqueue(''noop'', ''{"sleep": 2}'').';
    END IF;
END
$$;

-- Validates kind and payload, queues the job and wakes the sidecars. The
-- notification, like the row, is only seen once the caller commits.
CREATE OR REPLACE FUNCTION optischema.enqueue(kind text, payload jsonb DEFAULT '{}') RETURNS bigint
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
    PERFORM optischema._check_job_payload(kind, payload);
    INSERT INTO optischema.jobs (kind, payload) VALUES (kind, payload) RETURNING id INTO v_id;
    PERFORM pg_notify('optischema_jobs', kind);
    RETURN v_id;
END
$$;

-- Cancels a job. A pending one is cancelled at once; a running one is marked,
-- and its sidecar cancels its statement at its next heartbeat (a long VACUUM,
-- say) and records it cancelled, unless it finished first. Cancelling an
-- apply or rollback job cancels its change (sql/11_changes.sql) and gives the
-- recommendation its status back.
CREATE OR REPLACE FUNCTION optischema.cancel_job(id bigint) RETURNS void
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
    IF v_status = 'running' THEN
        UPDATE optischema.jobs j SET cancel_requested_by = optischema._caller() WHERE j.id = cancel_job.id;
        RAISE NOTICE 'job % is running: sidecar % stops it at its next heartbeat (or it finishes first)', id, v_job.worker_id
            USING HINT = 'SELECT status, error FROM optischema.jobs WHERE id = ' || id || ';';
        RETURN;
    END IF;
    IF v_status <> 'pending' THEN
        RAISE EXCEPTION 'job % is %, only a pending or running job can be cancelled', id, v_status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE optischema.jobs j SET status = 'cancelled', finished_at = now() WHERE j.id = cancel_job.id;
    PERFORM optischema._job_ended(v_job, 'cancelled');
END
$$;

-- Claims are refused to a sidecar that has not announced itself with a
-- version this schema serves (_heartbeat() announces it; the sidecar's first
-- heartbeat precedes its first claim).
CREATE OR REPLACE FUNCTION optischema._check_sidecar(p_worker text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v text := (SELECT s.version FROM optischema.sidecars s WHERE s.worker_id = p_worker);
BEGIN
    IF v IS NULL THEN
        RAISE EXCEPTION 'sidecar % has not announced itself: it gets no job before its first heartbeat', p_worker
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'A sidecar calls optischema._heartbeat() when it starts; one older than 0.2.0 does not check its version and must be upgraded.';
    END IF;
    IF NOT optischema._sidecar_serves(v) THEN
        RAISE EXCEPTION 'sidecar % is version %, and this database''s OptiSchema is @EXTVERSION@: it gets no job', p_worker, v
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = optischema._sidecar_fix(v);
    END IF;
END
$$;

-- Takes the oldest claimable job of the given kinds (NULL: any kind) for
-- worker: pending and due, or running under an expired lease (its sidecar
-- died). A job whose lease expired after its last allowed attempt fails
-- instead: a job that kills its sidecar must not kill them all.
CREATE OR REPLACE FUNCTION optischema._claim_job(worker text, kinds text[], lease interval)
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
    PERFORM optischema._check_sidecar(worker);
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
CREATE OR REPLACE FUNCTION optischema._complete_job(id bigint, worker text, result jsonb DEFAULT '{}') RETURNS boolean
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
CREATE OR REPLACE FUNCTION optischema._fail_job(id bigint, worker text, error text, retry boolean DEFAULT true) RETURNS text
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

-- The running jobs of worker that cancel_job() asked to stop (its heartbeat asks).
CREATE OR REPLACE FUNCTION optischema._cancel_requests(worker text) RETURNS SETOF bigint
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT j.id FROM optischema.jobs j
    WHERE j.worker_id = _cancel_requests.worker AND j.status = 'running' AND j.cancel_requested_by IS NOT NULL
$$;

-- worker stopped its running job as cancel_job() asked: the job, and the
-- change it ran, end 'cancelled'. False when the job is no longer this worker's.
CREATE OR REPLACE FUNCTION optischema._job_cancelled(id bigint, worker text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j optischema.jobs;
BEGIN
    UPDATE optischema.jobs x
    SET status = 'cancelled', finished_at = now(), lease_expires_at = NULL,
        error = format('cancelled by %s while it ran', coalesce(x.cancel_requested_by, 'its sidecar'))
    WHERE x.id = _job_cancelled.id AND x.worker_id = worker AND x.status = 'running'
    RETURNING x.* INTO j;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM optischema._job_ended(j, 'cancelled');
    RETURN true;
END
$$;

-- Gives a job back untouched (the sidecar is shutting down): the attempt does not count.
CREATE OR REPLACE FUNCTION optischema._release_job(id bigint, worker text) RETURNS boolean
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
CREATE OR REPLACE FUNCTION optischema._heartbeat(worker text, host text, pid integer, version text, lease interval)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    INSERT INTO optischema.sidecars AS s (worker_id, host, pid, version)
    VALUES (worker, host, pid, version)
    ON CONFLICT (worker_id) DO UPDATE SET last_seen = now(), host = EXCLUDED.host, pid = EXCLUDED.pid,
                                          version = EXCLUDED.version;
    IF NOT optischema._sidecar_serves(version) THEN
        RETURN 0;       -- recorded for health(); _claim_job() gives it no work
    END IF;
    UPDATE optischema.jobs j SET lease_expires_at = now() + lease
    WHERE j.worker_id = worker AND j.status = 'running';
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- A sidecar that stops cleanly says so; one that crashed ages out of health().
CREATE OR REPLACE FUNCTION optischema._sign_off(worker text) RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    DELETE FROM optischema.sidecars WHERE worker_id = worker
$$;

-- Called by every sidecar's scheduler: queues the periodic jobs that are due.
-- A kind is due when no job of it is pending or running and none was created
-- within its interval, so any number of sidecars produce one job per interval.
CREATE OR REPLACE FUNCTION optischema._schedule_due() RETURNS SETOF bigint
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
CREATE OR REPLACE FUNCTION optischema._cron_schedule(p_every interval) RETURNS text
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
CREATE OR REPLACE FUNCTION optischema.cron_commands() RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('SELECT cron.schedule_in_database(%L, %L, %L, %L);',
                  'optischema-' || s.kind || '-' || current_database(),
                  coalesce(s.schedule, optischema._cron_schedule(optischema.setting(s.key)::interval)),
                  s.command, current_database())
    FROM (VALUES (1, 'snapshot', 'snapshot_interval', NULL, 'SELECT optischema.snapshot(); SELECT optischema._verify_recent();'),
                 -- statements running now, between snapshots: as often as cron can
                 (2, 'sample', 'snapshot_interval', '* * * * *', 'SELECT optischema.sample_running()'),
                 (3, 'recommend', 'recommend_interval', NULL, 'SELECT count(*) FROM optischema.recommend();'),
                 (4, 'purge', 'purge_interval', NULL, 'SELECT optischema.purge()')) s (n, kind, key, schedule, command)
    WHERE optischema.setting(s.key)::interval > interval '0'
    ORDER BY s.n
$$;
