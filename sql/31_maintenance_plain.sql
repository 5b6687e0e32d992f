-- The maintenance advice in a plain install: the sidecar plans what
-- _maintenance_targets() lists (optischema_sidecar.refresh) and keeps it with
-- _keep_result('maintenance', ...) for _record_maintenance().

CREATE OR REPLACE FUNCTION optischema._maintenance_plans(p_from bigint, p_to bigint) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._load_engine();
    RETURN NULL;
END
$$;
