-- The report in a plain install: the engine draws it in the sidecar (GET
-- /report on its loopback port); report_data() is the same in both.

CREATE OR REPLACE FUNCTION optischema.render_report(data jsonb) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'this is a plain install of OptiSchema (no PL/Python): the HTML report is drawn by the sidecar'
        USING ERRCODE = 'feature_not_supported',
              HINT = 'Open http://127.0.0.1:9187/report on the sidecar''s host, or draw SELECT optischema.report_data() yourself.';
END
$$;
