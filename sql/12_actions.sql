-- Maintenance and configuration changes (kinds 'maintenance' and 'config'),
-- built from a structured description at the moment they run: the
-- counterpart of sql/09_index_ddl.sql. A recommendation carries action_spec
-- (sql/07_recommendations.sql), made by OptiSchema from catalog facts; stored
-- text is never executed. _action_statement() checks the description against
-- the catalog and the allow-list optischema.tunable_settings each time a
-- statement is needed (the sidecar's run, apply(via => 'psql'), the ddl
-- shown) and renders it with format('%I'/'%L') and catalog names.
--
-- The description (OIDs as JSON numbers):
--   maintenance: {"action": "analyze" | "vacuum" | "vacuum_freeze", "table": <pg_class oid>}
--                {"action": "reindex", "index": <pg_class oid>}
--                {"action": "set_reloptions", "table": <oid>, "options": {<autovacuum setting>: <text>, ...}}
--   config:      {"setting": <name>, "value": <text>, "scope": "system" | "database" | "role",
--                 "role": <pg_authid oid, for scope role>}
--
-- What a rollback restores is what apply found, recorded in the change log
-- when the apply was requested (_changes.prior_state, from _action_state()):
-- ALTER SYSTEM RESET when the setting was not in postgresql.auto.conf, its
-- old value otherwise; a role's or database's setting likewise; a table's
-- storage parameters as they were. ANALYZE, VACUUM and REINDEX have no
-- rollback (nothing to undo). A setting that needs a restart (pg_settings.context
-- 'postmaster') is advice only: shown, never applied.

-- Units a numeric setting may be written in, as postgresql.conf takes them.
CREATE OR REPLACE FUNCTION optischema._setting_units(p_unit text) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN (regexp_match(p_unit, '^[0-9]*(\w+)$'))[1] IN ('B', 'kB', 'MB', 'GB', 'TB')
                THEN '{"B": 1, "kB": 1024, "MB": 1048576, "GB": 1073741824, "TB": 1099511627776}'::jsonb
                ELSE '{"us": 0.001, "ms": 1, "s": 1000, "min": 60000, "h": 3600000, "d": 86400000}'::jsonb END
$$;

-- A value of setting p_name read as PostgreSQL reads it: its canonical text
-- and, for a number, its value in the setting's own unit (pg_settings.unit).
-- Raises with the reason for a value PostgreSQL would not accept.
CREATE OR REPLACE FUNCTION optischema._setting_value(p_name text, p_text text, OUT value text, OUT own numeric)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s      pg_catalog.pg_settings;
    m      text[];
    units  jsonb;
    size   numeric;
BEGIN
    SELECT * INTO s FROM pg_catalog.pg_settings x WHERE x.name = p_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION '% is not a PostgreSQL setting (pg_settings)', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_text IS NULL THEN
        RAISE EXCEPTION 'a value of % cannot be NULL', p_name USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF s.vartype = 'bool' THEN
        value := CASE WHEN lower(btrim(p_text)) IN ('on', 'true', 'yes', '1') THEN 'on'
                      WHEN lower(btrim(p_text)) IN ('off', 'false', 'no', '0') THEN 'off' END;
        IF value IS NULL THEN
            RAISE EXCEPTION '% is not a boolean', quote_literal(p_text) USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RETURN;
    ELSIF s.vartype = 'enum' THEN
        value := lower(btrim(p_text));
        IF NOT value = ANY (s.enumvals) THEN
            RAISE EXCEPTION '% is not one of %', quote_literal(p_text), array_to_string(s.enumvals, ', ')
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RETURN;
    ELSIF s.vartype = 'string' THEN
        RAISE EXCEPTION '% is a text setting: OptiSchema proposes none', p_name USING ERRCODE = 'invalid_parameter_value';
    END IF;
    m := regexp_match(p_text, '^\s*(-?\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$');
    IF m IS NULL THEN
        RAISE EXCEPTION '% is not a number with an optional unit', quote_literal(p_text) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    own := m[1]::numeric;
    IF s.unit IS NOT NULL THEN
        units := optischema._setting_units(s.unit);
        -- '8kB': the setting counts in 8 kB pages
        size := coalesce(nullif((regexp_match(s.unit, '^([0-9]*)'))[1], '')::numeric, 1)
                * (units ->> (regexp_match(s.unit, '^[0-9]*(\w+)$'))[1])::numeric;
        IF m[2] <> '' AND NOT units ? m[2] THEN
            RAISE EXCEPTION 'unit % does not fit % (unit %); use one of %', quote_literal(m[2]), p_name, s.unit,
                (SELECT string_agg(k, ', ' ORDER BY (units ->> k)::numeric) FROM jsonb_object_keys(units) k)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        own := own * CASE WHEN m[2] = '' THEN size ELSE (units ->> m[2])::numeric END / size;
    ELSIF m[2] <> '' THEN
        RAISE EXCEPTION '% takes no unit', p_name USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF s.vartype = 'integer' AND abs(own - round(own)) > 1e-9 THEN
        RAISE EXCEPTION '% is not a whole number of %', quote_literal(p_text), coalesce(s.unit, 'units')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF own < s.min_val::numeric OR own > s.max_val::numeric THEN
        RAISE EXCEPTION '%', rtrim(format('%s is out of range for %s: %s to %s %s', quote_literal(p_text), p_name,
                                          s.min_val, s.max_val, coalesce(s.unit, '')))
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    value := m[1] || m[2];
    own := trim_scale(own);
END
$$;

-- A value in the setting's own unit, written with the largest unit that
-- keeps it whole ('64MB' for 65536 kB): how proposals are shown.
CREATE OR REPLACE FUNCTION optischema._setting_text(p_name text, p_own numeric) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s     pg_catalog.pg_settings;
    units jsonb;
    base  numeric;
    k     text;
BEGIN
    SELECT * INTO s FROM pg_catalog.pg_settings x WHERE x.name = p_name;
    IF s.unit IS NULL OR p_own IS NULL THEN
        RETURN CASE WHEN s.vartype = 'integer' THEN round(p_own)::text ELSE trim_scale(p_own)::text END;
    END IF;
    units := optischema._setting_units(s.unit);
    base := p_own * coalesce(nullif((regexp_match(s.unit, '^([0-9]*)'))[1], '')::numeric, 1)
            * (units ->> (regexp_match(s.unit, '^[0-9]*(\w+)$'))[1])::numeric;
    FOR k IN SELECT x FROM jsonb_object_keys(units) x ORDER BY (units ->> x)::numeric DESC LOOP
        IF base >= (units ->> k)::numeric AND base % (units ->> k)::numeric = 0 THEN
            RETURN (base / (units ->> k)::numeric)::bigint || k;
        END IF;
    END LOOP;
    RETURN trim_scale(p_own)::text;
END
$$;

-- Where setting p_name stands at a scope, as OptiSchema changes it: for
-- 'system', its entry in postgresql.auto.conf (what ALTER SYSTEM writes); for
-- 'database' and 'role' (in this database), its pg_db_role_setting entry.
-- is_set false: no entry. Only allow-listed settings: SECURITY DEFINER (the
-- configuration files are the superuser's to read), so it reveals nothing
-- else (a primary_conninfo with its password, say).
CREATE OR REPLACE FUNCTION optischema._setting_at(p_name text, p_scope text, p_role oid DEFAULT NULL,
                                                  OUT is_set boolean, OUT value text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_db  oid := (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
    v_cfg text;
BEGIN
    PERFORM optischema._tunable(p_name);
    IF p_scope = 'system' THEN
        SELECT f.setting INTO value FROM pg_catalog.pg_file_settings f
        WHERE f.name = p_name AND f.sourcefile = pg_catalog.current_setting('data_directory') || '/postgresql.auto.conf'
        ORDER BY f.seqno DESC LIMIT 1;
        is_set := FOUND;
    ELSIF p_scope IN ('database', 'role') THEN
        SELECT c INTO v_cfg
        FROM pg_catalog.pg_db_role_setting d CROSS JOIN LATERAL unnest(d.setconfig) c
        WHERE d.setdatabase = v_db AND d.setrole = CASE WHEN p_scope = 'role' THEN p_role ELSE 0 END
          AND split_part(c, '=', 1) = p_name;
        is_set := FOUND;
        value := substr(v_cfg, strpos(v_cfg, '=') + 1);
    ELSE
        RAISE EXCEPTION 'scope must be system, database or role, got %', coalesce(quote_literal(p_scope), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- The value of setting p_name that sessions get (of role p_role in this
-- database, when given), and where it comes from: a role's or database's
-- setting, the configuration files, or the built-in default. A session's own
-- SET is not the server's value, so pg_settings of this session is not read.
CREATE OR REPLACE FUNCTION optischema._setting_effective(p_name text, p_role oid DEFAULT NULL,
                                                         OUT value text, OUT source text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_db  oid := (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
    v_cfg text;
BEGIN
    PERFORM optischema._tunable(p_name);
    -- the order PostgreSQL applies them in at connection: role in database, role, database
    SELECT c, CASE WHEN d.setrole <> 0 AND d.setdatabase <> 0 THEN 'role in database'
                   WHEN d.setrole <> 0 THEN 'role' ELSE 'database' END
    INTO v_cfg, source
    FROM pg_catalog.pg_db_role_setting d CROSS JOIN LATERAL unnest(d.setconfig) c
    WHERE split_part(c, '=', 1) = p_name
      AND ((d.setrole = p_role AND d.setdatabase IN (v_db, 0)) OR (d.setrole = 0 AND d.setdatabase = v_db))
    ORDER BY d.setrole = 0, d.setdatabase = 0
    LIMIT 1;
    IF FOUND THEN
        value := substr(v_cfg, strpos(v_cfg, '=') + 1);
        RETURN;
    END IF;
    -- The configuration files are readable only with pg_show_all_file_settings()
    -- (a superuser's). Without it (a plain install's owner on a managed service):
    -- the value this session started with when it came from the server's configuration.
    IF pg_catalog.has_function_privilege('pg_catalog.pg_show_all_file_settings()', 'EXECUTE') THEN
        SELECT f.setting, 'configuration file ' || f.sourcefile INTO value, source
        FROM pg_catalog.pg_file_settings f
        WHERE f.name = p_name AND f.applied AND f.error IS NULL
        ORDER BY f.seqno DESC LIMIT 1;
    ELSE
        SELECT CASE WHEN s.vartype IN ('integer', 'real') THEN optischema._setting_text(s.name, s.reset_val::numeric)
                    ELSE s.reset_val END, 'server configuration'
        INTO value, source
        FROM pg_catalog.pg_settings s WHERE s.name = p_name AND s.source = 'configuration file';
    END IF;
    IF NOT FOUND THEN
        SELECT CASE WHEN s.vartype IN ('integer', 'real') THEN optischema._setting_text(s.name, s.boot_val::numeric)
                    ELSE s.boot_val END, 'default'
        INTO value, source
        FROM pg_catalog.pg_settings s WHERE s.name = p_name;
    END IF;
END
$$;

-- Checks that OptiSchema may propose setting p_name = p_value at p_scope (for
-- role p_role) and describes it; raises invalid_parameter_value with the
-- reason otherwise. The one check of a setting: the advisor's findings, the
-- LLM's proposals (sidecar/llm/check_config.py) and the builder below, when a
-- change is requested and again when it runs.
CREATE OR REPLACE FUNCTION optischema._setting_proposal(p_name text, p_value text, p_scope text, p_role oid DEFAULT NULL,
    OUT name text, OUT value text, OUT own numeric, OUT unit text, OUT context text, OUT vartype text,
    OUT category text, OUT min_val text, OUT max_val text, OUT proposable text[], OUT why text,
    OUT current text, OUT current_source text, OUT is_current boolean, OUT advice_only boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s   pg_catalog.pg_settings;
    t   optischema.tunable_settings;
    v   record;
    cur record;
    lo  numeric;
    hi  numeric;
BEGIN
    SELECT * INTO s FROM pg_catalog.pg_settings x WHERE x.name = lower(btrim(p_name));
    IF NOT FOUND THEN
        RAISE EXCEPTION '% is not a PostgreSQL setting (pg_settings)', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    t := optischema._tunable(s.name);
    IF p_scope IS NULL OR p_scope NOT IN ('system', 'database', 'role') THEN
        RAISE EXCEPTION 'scope must be system, database or role, got %', coalesce(quote_literal(p_scope), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_scope <> 'system' AND s.context IN ('postmaster', 'sighup', 'internal') THEN
        RAISE EXCEPTION '% (context %) can only be set for the whole server (scope system)', s.name, s.context
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_scope = 'role' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles a WHERE a.oid = p_role) THEN
        RAISE EXCEPTION 'role % does not exist (any more)', coalesce(p_role::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    v := optischema._setting_value(s.name, p_value);
    IF t.allowed IS NOT NULL THEN
        IF NOT v.value = ANY (t.allowed) THEN
            RAISE EXCEPTION '% = % is not proposed by OptiSchema (only %): %', s.name, v.value, array_to_string(t.allowed, ', '), t.why
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    ELSE
        lo := (optischema._setting_value(s.name, t.min_value)).own;
        hi := (optischema._setting_value(s.name, t.max_value)).own;
        IF v.own < lo OR v.own > hi THEN
            RAISE EXCEPTION '% = % is outside the range OptiSchema proposes, % to %: %', s.name, v.value, t.min_value, t.max_value, t.why
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    cur := optischema._setting_effective(s.name, CASE WHEN p_scope = 'role' THEN p_role END);
    name := s.name;
    value := v.value;
    own := v.own;
    unit := s.unit;
    context := s.context;
    vartype := s.vartype;
    category := s.category;
    min_val := s.min_val;
    max_val := s.max_val;
    proposable := coalesce(t.allowed, ARRAY[t.min_value, t.max_value]);
    why := t.why;
    current := cur.value;
    current_source := cur.source;
    is_current := optischema._setting_same(s.name, cur.value, v.value);
    advice_only := s.context = 'postmaster';
END
$$;

-- Is value text a of setting p_name the same value as text b ('64MB', '65536kB')?
CREATE OR REPLACE FUNCTION optischema._setting_same(p_name text, a text, b text) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    x record;
    y record;
BEGIN
    IF a IS NULL OR b IS NULL THEN
        RETURN a IS NULL AND b IS NULL;
    END IF;
    x := optischema._setting_value(p_name, a);
    y := optischema._setting_value(p_name, b);
    RETURN coalesce(x.own = y.own, x.value = y.value);
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN a = b;
END
$$;

-- Raised for a description that cannot be built, saying what is wrong.
CREATE OR REPLACE FUNCTION optischema._action_refuse(p_what text, p_code text DEFAULT 'invalid_parameter_value')
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'refusing to build the statement: %', p_what
        USING ERRCODE = p_code,
              HINT = 'OptiSchema runs only maintenance of tables and indexes that check out in the catalog, and only settings of optischema.tunable_settings within its bounds; refresh with SELECT * FROM optischema.recommend();';
END
$$;

-- The table (or index) a maintenance description names, checked: it exists,
-- is of a kind the action applies to, and is no system or OptiSchema object.
CREATE OR REPLACE FUNCTION optischema._action_relation(p_oid jsonb, p_kinds text, OUT relid oid, OUT nsp name, OUT rel name)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c pg_catalog.pg_class;
BEGIN
    SELECT * INTO c FROM pg_catalog.pg_class x WHERE x.oid = optischema._index_oid(p_oid);
    IF NOT FOUND THEN
        PERFORM optischema._action_refuse(format('relation %s does not exist (any more)', coalesce(p_oid::text, 'null')), 'undefined_table');
    END IF;
    nsp := (SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.oid = c.relnamespace);
    IF strpos(p_kinds, c.relkind::text) = 0 OR c.relpersistence = 't' THEN
        PERFORM optischema._action_refuse(format('%s is not %s', c.oid::regclass,
            CASE WHEN p_kinds = 'i' THEN 'an index' ELSE 'a table' END), 'wrong_object_type');
    END IF;
    IF nsp IN ('pg_catalog', 'information_schema', 'optischema', 'pg_toast') OR nsp LIKE 'pg\_temp\_%' OR nsp LIKE 'pg\_toast\_temp\_%' THEN
        PERFORM optischema._action_refuse(format('%s belongs to the system or to OptiSchema', c.oid::regclass), 'insufficient_privilege');
    END IF;
    relid := c.oid;
    rel := c.relname;
END
$$;

-- The per-table autovacuum storage parameters OptiSchema sets: each is
-- checked against the allow-list entry of the server setting of the same name.
CREATE OR REPLACE FUNCTION optischema._reloption_names() RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY['autovacuum_vacuum_scale_factor', 'autovacuum_vacuum_threshold',
                 'autovacuum_vacuum_insert_scale_factor', 'autovacuum_vacuum_insert_threshold',
                 'autovacuum_analyze_scale_factor', 'autovacuum_analyze_threshold',
                 'autovacuum_vacuum_cost_limit', 'autovacuum_vacuum_cost_delay']
$$;

-- The storage parameters of a set_reloptions description, checked: names of
-- _reloption_names(), values inside the allow-list; in the setting's own unit.
CREATE OR REPLACE FUNCTION optischema._action_reloptions(p_options jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o   record;
    p   record;
    out jsonb := '{}';
BEGIN
    IF jsonb_typeof(p_options) IS DISTINCT FROM 'object' OR p_options = '{}' THEN
        PERFORM optischema._action_refuse('options must map storage parameters to values');
    END IF;
    FOR o IN SELECT * FROM jsonb_each(p_options) LOOP
        IF NOT o.key = ANY (optischema._reloption_names()) THEN
            PERFORM optischema._action_refuse(format('%s is not a storage parameter OptiSchema sets (only %s)',
                quote_ident(o.key), array_to_string(optischema._reloption_names(), ', ')));
        END IF;
        IF jsonb_typeof(o.value) <> 'string' THEN
            PERFORM optischema._action_refuse(format('the value of %s must be a JSON string', o.key));
        END IF;
        p := optischema._setting_proposal(o.key, o.value #>> '{}', 'system');
        out := out || jsonb_build_object(o.key, trim_scale(p.own)::text);
    END LOOP;
    RETURN out;
END
$$;

-- Checks a description's shape: an object with exactly the fields its kind
-- and action take.
CREATE OR REPLACE FUNCTION optischema._action_check(p_kind text, p_spec jsonb) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_fields text[];
BEGIN
    IF jsonb_typeof(p_spec) IS DISTINCT FROM 'object' THEN
        PERFORM optischema._action_refuse('the recommendation has no description of what to run', 'object_not_in_prerequisite_state');
    END IF;
    IF p_kind = 'maintenance' THEN
        v_fields := CASE p_spec ->> 'action'
            WHEN 'analyze' THEN '{action,table}' WHEN 'vacuum' THEN '{action,table}' WHEN 'vacuum_freeze' THEN '{action,table}'
            WHEN 'reindex' THEN '{action,index}' WHEN 'set_reloptions' THEN '{action,table,options}' END;
        IF v_fields IS NULL THEN
            PERFORM optischema._action_refuse(format('action %s is not one of analyze, vacuum, vacuum_freeze, reindex, set_reloptions',
                                                     coalesce(p_spec -> 'action', 'null')));
        END IF;
    ELSIF p_kind = 'config' THEN
        v_fields := CASE WHEN p_spec ->> 'scope' = 'role' THEN '{setting,value,scope,role}' ELSE '{setting,value,scope}' END;
        IF jsonb_typeof(p_spec -> 'setting') IS DISTINCT FROM 'string' OR jsonb_typeof(p_spec -> 'value') IS DISTINCT FROM 'string' THEN
            PERFORM optischema._action_refuse('setting and value must be JSON strings');
        END IF;
    ELSE
        PERFORM optischema._action_refuse(format('kind %s has no action description', coalesce(quote_literal(p_kind), 'NULL')));
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_object_keys(p_spec) k WHERE NOT k = ANY (v_fields))
       OR EXISTS (SELECT 1 FROM unnest(v_fields) f WHERE NOT p_spec ? f) THEN
        PERFORM optischema._action_refuse(format('%s takes exactly the fields %s', p_spec, array_to_string(v_fields, ', ')));
    END IF;
END
$$;

-- Why a description cannot be applied by OptiSchema at all; NULL when it can.
CREATE OR REPLACE FUNCTION optischema._action_advice_only(p_kind text, p_spec jsonb) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_kind = 'config' AND s.context = 'postmaster'
                THEN format('%s needs a server restart (pg_settings.context postmaster): advice only, never applied by OptiSchema', s.name) END
    FROM (SELECT 1) x LEFT JOIN pg_catalog.pg_settings s ON s.name = p_spec ->> 'setting'
$$;

-- What applying a description would change, as it stands now: a setting at
-- its scope ({"set", "value"}), a table's storage parameters ({"options":
-- {name: value or null}}), an index's file (reindex), a table's vacuum and
-- analyze counters. Recorded when an apply is requested: its rollback
-- restores it, and applied() compares against it.
CREATE OR REPLACE FUNCTION optischema._action_state(p_kind text, p_spec jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rel  record;
    v_at   record;
    v_opts text[];
BEGIN
    PERFORM optischema._action_check(p_kind, p_spec);
    IF p_kind = 'config' THEN
        v_at := optischema._setting_at(p_spec ->> 'setting', p_spec ->> 'scope', optischema._index_oid(p_spec -> 'role'));
        RETURN jsonb_build_object('set', v_at.is_set, 'value', v_at.value);
    ELSIF p_spec ->> 'action' = 'reindex' THEN
        v_rel := optischema._action_relation(p_spec -> 'index', 'i');
        RETURN jsonb_build_object('relfilenode', (SELECT c.relfilenode::bigint FROM pg_catalog.pg_class c WHERE c.oid = v_rel.relid),
                                  'schema', v_rel.nsp, 'name', v_rel.rel);
    END IF;
    v_rel := optischema._action_relation(p_spec -> 'table', CASE WHEN p_spec ->> 'action' = 'set_reloptions' THEN 'rm' ELSE 'rmp' END);
    IF p_spec ->> 'action' = 'set_reloptions' THEN
        v_opts := (SELECT c.reloptions FROM pg_catalog.pg_class c WHERE c.oid = v_rel.relid);
        RETURN jsonb_build_object('options', (
            SELECT jsonb_object_agg(k, (SELECT substr(o, strpos(o, '=') + 1) FROM unnest(v_opts) o WHERE split_part(o, '=', 1) = k))
            FROM jsonb_object_keys(p_spec -> 'options') k));
    END IF;
    RETURN (SELECT jsonb_build_object('analyze_count', coalesce(s.analyze_count, 0), 'vacuum_count', coalesce(s.vacuum_count, 0),
                                      'last_analyze', s.last_analyze, 'last_vacuum', s.last_vacuum)
            FROM (SELECT 1) x LEFT JOIN pg_catalog.pg_stat_all_tables s ON s.relid = v_rel.relid);
END
$$;

-- The statement for a description: p_action 'apply' runs it, 'rollback'
-- restores p_prior (what _action_state() found when the apply was requested).
-- op 'run' (run it at top level) or 'reload' (run it, then pg_reload_conf()).
-- target_schema/target_name: the table or index it acts on (NULL for a setting).
CREATE OR REPLACE FUNCTION optischema._action_statement(p_kind text, p_spec jsonb, p_action text DEFAULT 'apply',
    p_prior jsonb DEFAULT NULL, OUT op text, OUT ddl text, OUT target_schema name, OUT target_name name)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_action text := p_spec ->> 'action';
    v_rel    record;
    v_set    record;
    v_role   name;
    v_opts   jsonb;
    v_old    jsonb;
    v_head   text;
BEGIN
    PERFORM optischema._action_check(p_kind, p_spec);
    IF p_action IS NULL OR p_action NOT IN ('apply', 'rollback') THEN
        RAISE EXCEPTION 'unknown action %', coalesce(quote_literal(p_action), 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    op := 'run';
    IF p_kind = 'config' THEN
        v_set := optischema._setting_proposal(p_spec ->> 'setting', p_spec ->> 'value', p_spec ->> 'scope', optischema._index_oid(p_spec -> 'role'));
        v_head := CASE p_spec ->> 'scope'
            WHEN 'system' THEN 'ALTER SYSTEM'
            WHEN 'database' THEN format('ALTER DATABASE %I', pg_catalog.current_database())
            ELSE format('ALTER ROLE %I IN DATABASE %I',
                        (SELECT a.rolname FROM pg_catalog.pg_roles a WHERE a.oid = optischema._index_oid(p_spec -> 'role')),
                        pg_catalog.current_database()) END;
        IF p_spec ->> 'scope' = 'system' THEN
            op := 'reload';
        END IF;
        IF p_action = 'apply' THEN
            ddl := format('%s SET %I = %L', v_head, v_set.name, v_set.value);
        ELSIF jsonb_typeof(p_prior -> 'set') IS DISTINCT FROM 'boolean' THEN
            RAISE EXCEPTION 'no record of %''s value before the change: nothing to restore', v_set.name
                USING ERRCODE = 'object_not_in_prerequisite_state';
        ELSIF (p_prior ->> 'set')::boolean THEN
            ddl := format('%s SET %I = %L', v_head, v_set.name, p_prior ->> 'value');
        ELSE
            ddl := format('%s RESET %I', v_head, v_set.name);
        END IF;
        RETURN;
    END IF;

    IF v_action = 'reindex' THEN
        v_rel := optischema._action_relation(p_spec -> 'index', 'i');
    ELSE
        v_rel := optischema._action_relation(p_spec -> 'table', CASE WHEN v_action = 'set_reloptions' THEN 'rm' ELSE 'rmp' END);
    END IF;
    target_schema := v_rel.nsp;
    target_name := v_rel.rel;
    IF v_action = 'set_reloptions' THEN
        v_opts := optischema._action_reloptions(p_spec -> 'options');
        IF p_action = 'apply' THEN
            ddl := format('ALTER TABLE %I.%I SET (%s)', v_rel.nsp, v_rel.rel,
                          (SELECT string_agg(format('%I = %L', o.key, o.value), ', ' ORDER BY o.key) FROM jsonb_each_text(v_opts) o));
            RETURN;
        END IF;
        v_old := p_prior -> 'options';
        IF jsonb_typeof(v_old) IS DISTINCT FROM 'object' OR EXISTS (SELECT 1 FROM jsonb_object_keys(v_opts) k WHERE NOT v_old ? k) THEN
            RAISE EXCEPTION 'no record of the storage parameters of %.% before the change: nothing to restore', v_rel.nsp, v_rel.rel
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        ddl := format('ALTER TABLE %I.%I ', v_rel.nsp, v_rel.rel) || concat_ws(', ',
            (SELECT 'SET (' || string_agg(format('%I = %L', k, v_old ->> k), ', ' ORDER BY k) || ')'
             FROM jsonb_object_keys(v_opts) k WHERE jsonb_typeof(v_old -> k) = 'string'),
            (SELECT 'RESET (' || string_agg(quote_ident(k), ', ' ORDER BY k) || ')'
             FROM jsonb_object_keys(v_opts) k WHERE jsonb_typeof(v_old -> k) IS DISTINCT FROM 'string'));
        RETURN;
    END IF;
    IF p_action = 'rollback' THEN
        RAISE EXCEPTION '% has no rollback: %', upper(replace(v_action, '_freeze', ' (FREEZE)')),
            CASE v_action WHEN 'analyze' THEN 'it only refreshed the planner''s statistics'
                          WHEN 'reindex' THEN 'the rebuilt index is the same index, only smaller'
                          ELSE 'it only removed dead rows and froze old ones; nothing is lost by leaving it' END
            USING ERRCODE = 'feature_not_supported', HINT = 'Nothing to undo; the recommendation stays applied.';
    END IF;
    ddl := CASE v_action
        WHEN 'analyze' THEN format('ANALYZE %I.%I', v_rel.nsp, v_rel.rel)
        WHEN 'vacuum' THEN format('VACUUM (ANALYZE) %I.%I', v_rel.nsp, v_rel.rel)
        WHEN 'vacuum_freeze' THEN format('VACUUM (FREEZE) %I.%I', v_rel.nsp, v_rel.rel)
        ELSE format('REINDEX INDEX CONCURRENTLY %I.%I', v_rel.nsp, v_rel.rel) END;
END
$$;

-- Does the catalog show the change done: p_action 'apply' of the description
-- (the setting or storage parameters as described, the statistics or vacuum
-- counters or the index's file past p_prior), or 'rollback' (back to p_prior)?
CREATE OR REPLACE FUNCTION optischema._action_done(p_kind text, p_spec jsonb, p_action text, p_prior jsonb) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now  jsonb;
    v_act  text := p_spec ->> 'action';
    v_idx  oid;
BEGIN
    IF v_act = 'reindex' THEN
        -- REINDEX CONCURRENTLY swaps in a new index under the old name: a new file under that name
        v_idx := pg_catalog.to_regclass(format('%I.%I', p_prior ->> 'schema', p_prior ->> 'name'));
        RETURN (SELECT c.relfilenode::bigint FROM pg_catalog.pg_class c WHERE c.oid = v_idx) IS DISTINCT FROM (p_prior ->> 'relfilenode')::bigint
               AND v_idx IS NOT NULL;
    END IF;
    -- this session's statistics snapshot may predate the statement (stats_fetch_consistency)
    PERFORM pg_catalog.pg_stat_clear_snapshot();
    v_now := optischema._action_state(p_kind, p_spec);
    IF p_kind = 'config' THEN
        IF p_action = 'rollback' THEN
            RETURN (v_now ->> 'set')::boolean = (p_prior ->> 'set')::boolean
                   AND optischema._setting_same(p_spec ->> 'setting', v_now ->> 'value', p_prior ->> 'value');
        END IF;
        RETURN (v_now ->> 'set')::boolean AND optischema._setting_same(p_spec ->> 'setting', v_now ->> 'value', p_spec ->> 'value');
    ELSIF v_act = 'set_reloptions' THEN
        IF p_action = 'rollback' THEN
            RETURN NOT EXISTS (SELECT 1 FROM jsonb_each(p_prior -> 'options') o
                               WHERE (v_now -> 'options' -> o.key) IS DISTINCT FROM o.value);
        END IF;
        RETURN NOT EXISTS (SELECT 1 FROM jsonb_each_text(optischema._action_reloptions(p_spec -> 'options')) o
                           WHERE (v_now -> 'options' ->> o.key)::numeric IS DISTINCT FROM o.value::numeric);
    ELSIF v_act = 'analyze' THEN
        RETURN (v_now ->> 'analyze_count')::bigint > coalesce((p_prior ->> 'analyze_count')::bigint, 0);
    END IF;
    RETURN (v_now ->> 'vacuum_count')::bigint > coalesce((p_prior ->> 'vacuum_count')::bigint, 0);
END
$$;

-- Why role p_requester may not have setting p_spec changed; NULL when it
-- may. The sidecar's role runs the statement, with rights a DBA granted it
-- (ALTER SYSTEM ON PARAMETER, CREATEROLE, a database's ownership): a change
-- is made only for a requester that could make it itself, so asking the
-- sidecar gives no role a right it lacks.
CREATE OR REPLACE FUNCTION optischema._setting_refusal(p_requester text, p_spec jsonb) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_role   pg_catalog.pg_roles;
    v_target pg_catalog.pg_roles;
    v_name   text := p_spec ->> 'setting';
BEGIN
    SELECT * INTO v_role FROM pg_catalog.pg_roles a WHERE a.rolname = p_requester;
    IF NOT FOUND THEN
        RETURN format('role %s does not exist', coalesce(quote_ident(p_requester), 'NULL'));
    ELSIF v_role.rolsuper THEN
        RETURN NULL;
    ELSIF p_spec ->> 'scope' = 'system' THEN
        RETURN CASE WHEN NOT pg_catalog.has_parameter_privilege(v_role.oid, v_name, 'ALTER SYSTEM')
                    THEN format('role %I may not ALTER SYSTEM SET %s itself', p_requester, v_name) END;
    ELSIF p_spec ->> 'scope' = 'database' THEN
        RETURN CASE WHEN NOT pg_catalog.pg_has_role(v_role.oid, (SELECT d.datdba FROM pg_catalog.pg_database d
                                                                 WHERE d.datname = pg_catalog.current_database()), 'USAGE')
                    THEN format('role %I does not own database %I, so it may not set %s for it', p_requester, pg_catalog.current_database(), v_name) END;
    END IF;
    SELECT * INTO v_target FROM pg_catalog.pg_roles a WHERE a.oid = optischema._index_oid(p_spec -> 'role');
    RETURN CASE WHEN v_target.oid = v_role.oid OR (v_role.rolcreaterole AND NOT v_target.rolsuper) THEN NULL
                ELSE format('role %I may not set %s for role %I itself (that takes CREATEROLE, or being that role)',
                            p_requester, v_name, v_target.rolname) END;
END
$$;

-- The ddl and rollback_ddl a recommendation shows, from its description; the
-- rollback as it would be if applied now. NULLs for a description that does
-- not build (apply() then says why).
CREATE OR REPLACE FUNCTION optischema._action_texts(p_kind text, p_spec jsonb, OUT ddl text, OUT rollback_ddl text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    ddl := (optischema._action_statement(p_kind, p_spec)).ddl;
    IF p_kind = 'config' OR p_spec ->> 'action' = 'set_reloptions' THEN
        rollback_ddl := (optischema._action_statement(p_kind, p_spec, 'rollback', optischema._action_state(p_kind, p_spec))).ddl;
    ELSE
        rollback_ddl := format('-- none: %s only %s; there is nothing to undo', split_part(ddl, ' ', 1),
            CASE p_spec ->> 'action' WHEN 'analyze' THEN 'refreshes the planner''s statistics'
                                     WHEN 'reindex' THEN 'rebuilds the index it names'
                                     ELSE 'removes dead rows and freezes old ones' END);
    END IF;
EXCEPTION WHEN OTHERS THEN
    ddl := NULL;
    rollback_ddl := NULL;
END
$$;
