-- The advisor in a plain install: the engine runs in the sidecar
-- (optischema_sidecar.refresh, the 'recommend' job), over psycopg, under the
-- same rule as in the database: a statement is planned as a role that sent it.
-- The names the extension's PL/Python functions have (sql/08_advisor_plpython.sql)
-- exist here too, so that the rest of the SQL and the grants are the same.

-- Results the sidecar computed in this transaction, kept for the recorders
-- (_record_advice(), _record_maintenance()) as _advise() keeps them in GD:
-- written only through _keep_result(), which only the owner and the sidecar's
-- role may call, and taken once in the same transaction.
CREATE TABLE IF NOT EXISTS optischema._sidecar_results (
    xid     text NOT NULL,
    what    text NOT NULL,
    p_from  bigint,
    p_to    bigint NOT NULL,
    result  jsonb NOT NULL,
    PRIMARY KEY (xid, what)
);

CREATE OR REPLACE FUNCTION optischema._keep_result(p_what text, p_from bigint, p_to bigint, p_result jsonb) RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO optischema._sidecar_results (xid, what, p_from, p_to, result)
    VALUES (pg_catalog.pg_current_xact_id()::text, p_what, p_from, p_to, p_result)
    ON CONFLICT (xid, what) DO UPDATE SET (p_from, p_to, result) = (EXCLUDED.p_from, EXCLUDED.p_to, EXCLUDED.result)
$$;

CREATE OR REPLACE FUNCTION optischema._take_result(p_what text, OUT p_from bigint, OUT p_to bigint, OUT result jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM optischema._sidecar_results r
    WHERE r.xid = pg_catalog.pg_current_xact_id()::text AND r.what = p_what
    RETURNING r.p_from, r.p_to, r.result INTO p_from, p_to, result;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no % was computed in this transaction', p_what
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'In a plain install the sidecar computes it: CALL optischema.refresh();';
    END IF;
END
$$;

-- What needs the engine inside the database says where it runs instead.
CREATE OR REPLACE FUNCTION optischema._load_engine() RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'this is a plain install of OptiSchema (no PL/Python): the engine runs in the sidecar'
        USING ERRCODE = 'feature_not_supported',
              HINT = 'CALL optischema.refresh(); queues an analysis for the sidecar and waits for it.';
END
$$;

CREATE OR REPLACE FUNCTION optischema._advise(p_from bigint, p_to bigint) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM optischema._load_engine();
    RETURN NULL;
END
$$;

-- Without PL/Python nothing plans in the database: the plan is missing, saying why
-- (the LLM's context then names the tables from the text).
CREATE OR REPLACE FUNCTION optischema._generic_plan(p_queryid bigint, p_text text, OUT plan jsonb, OUT reason text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT NULL::jsonb, 'not planned: a plain install of OptiSchema (no PL/Python) plans statements only in the sidecar''s analysis'
$$;
