-- The report's PL/Python function (the extension only; a plain install has
-- sql/44_report_plain.sql instead). Before 45_report.sql: report() calls it.

-- Draws report_data()'s JSON as the HTML page. Definer's rights only to load
-- the engine: it reads nothing but its argument.
CREATE OR REPLACE FUNCTION optischema.render_report(data jsonb) RETURNS text
LANGUAGE plpython3u SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
import json
plpy.execute("SELECT optischema._load_engine()")
from optischema_engine.report import ReportDataError, render
try:
    return render(json.loads(data) if data is not None else None)
except ReportDataError as e:
    plpy.error(str(e), hint="Pass what optischema.report_data() returns, or call optischema.report(since => '1 day').",
               sqlstate="22023")
$$;
