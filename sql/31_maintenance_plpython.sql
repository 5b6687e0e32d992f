-- The maintenance advice's PL/Python function (the extension only; a plain
-- install has sql/31_maintenance_plain.sql instead).

-- Plans what _maintenance_targets() lists, as the statements' senders, with
-- the caller's rights (optischema_engine.maintenance). Kept, like _advise()'s
-- result, for _record_maintenance() in this transaction: GD is PL/Python's,
-- which only a superuser can write to, so what gets recorded is the engine's.
CREATE OR REPLACE FUNCTION optischema._maintenance_plans(p_from bigint, p_to bigint) RETURNS jsonb
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
import json
plpy.execute("SELECT optischema._load_engine()")
from optischema_engine.analysis import maintenance_window
from optischema_engine.db import PlpyDatabase

result = json.dumps(maintenance_window(PlpyDatabase(plpy), p_from, p_to))
xid = plpy.execute("SELECT pg_catalog.pg_current_xact_id()::text AS x")[0]["x"]
GD["optischema_maintenance"] = (xid, p_from, p_to, result)
return result
$$;
