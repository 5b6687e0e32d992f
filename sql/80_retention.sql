-- Retention, in one function so that the sidecar's purge job and a pg_cron
-- line are the same single call. Separate from snapshot() so that capture
-- stays fast. The change log (_changes) is the audit trail and is never purged.
CREATE OR REPLACE FUNCTION optischema.purge() RETURNS bigint
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
        DELETE FROM optischema.running_statements WHERE last_seen < v_cutoff;
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
