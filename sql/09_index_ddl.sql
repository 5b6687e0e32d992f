-- Index DDL, built from a structured description at the moment it runs.
--
-- A recommendation of kind create_index or drop_index carries index_spec
-- (sql/07_recommendations.sql), a closed JSON description made by the engine
-- or the LLM check from catalog facts. Stored DDL text is never executed:
-- _index_ddl() checks the description against the catalog and renders the
-- statement with format('%I') and catalog names each time one is needed (the
-- sidecar's run, apply(via => 'psql'), the ddl shown in the view). The index
-- is built as the table's owner (the sidecar acts as a member of that role),
-- so every function or operator an expression or predicate calls must be a
-- built-in or the table owner's own, and IMMUTABLE: nobody can get code run
-- with the owner's rights through a description.
--
-- The description (OIDs as JSON numbers):
--   create: {"table": <pg_class oid>, "name": <index name>, "method": "btree",
--            "keys": [<key>, ...], "include": [<column>, ...], "where": <expr>,
--            "with": {<storage parameter>: <text>, ...}}
--     key: <column> or {"expr": <expr>}, each with optional "opclass" (oid),
--          "collation" (oid), "desc" (bool), "nulls_first" (bool)
--   drop:  {"index": <pg_class oid>, "table": <pg_class oid>}
--     (a drop_index recommendation holds both: the drop, and the create that
--     restores the index on rollback)
--   expr: {"column": <name>, "attnum": <n>}   a column of the table
--         {"const": <text or null>, "type": <pg_type oid>}
--         {"func": <pg_proc oid>, "args": [<expr>, ...]}
--         {"op": <pg_operator oid>, "args": [<expr>, <expr>]}  (or one: prefix)
--         {"and": [<expr>, ...]}, {"or": [...]}, {"not": <expr>},
--         {"is_null": <expr>}, {"is_not_null": <expr>}

-- Raised for a description that cannot be built, saying what is wrong.
CREATE OR REPLACE FUNCTION optischema._index_refuse(p_what text, p_code text DEFAULT 'invalid_parameter_value')
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'refusing to build the index: %', p_what
        USING ERRCODE = p_code,
              HINT = 'OptiSchema builds only indexes whose table, columns, operator classes and functions check out in the catalog; refresh with SELECT * FROM optischema.recommend();';
END
$$;

-- An OID given as a JSON number; NULL for anything else.
CREATE OR REPLACE FUNCTION optischema._index_oid(p_value jsonb) RETURNS oid
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN jsonb_typeof(p_value) = 'number' AND p_value::text ~ '^[0-9]{1,10}$'
                THEN CASE WHEN p_value::text::bigint < 4294967296 THEN p_value::text::bigint::oid END END
$$;

-- May a value of type p_actual be passed where p_declared is expected with
-- no conversion that runs code? The same type, a binary-coercible cast, a
-- domain over it, or a polymorphic parameter.
CREATE OR REPLACE FUNCTION optischema._index_arg_fits(p_actual oid, p_declared oid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p_actual = p_declared
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_cast c
                   WHERE c.castsource = p_actual AND c.casttarget = p_declared AND c.castmethod = 'b')
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_type t
                   WHERE t.oid = p_actual AND t.typtype = 'd' AND t.typbasetype = p_declared)
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_type t
                   WHERE t.oid = p_declared AND t.typtype = 'p'
                     AND t.typname IN ('anyelement', 'anynonarray', 'anyarray', 'anyenum', 'anyrange',
                                       'anymultirange', 'anycompatible', 'anycompatiblenonarray',
                                       'anycompatiblearray', 'anycompatiblerange'))
$$;

-- Built in (part of PostgreSQL itself, in pg_catalog) or owned by the table's
-- owner: the only objects whose code an index may run as that owner.
CREATE OR REPLACE FUNCTION optischema._index_trusted(p_oid oid, p_namespace oid, p_owner oid, p_table_owner oid)
RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (p_oid < 16384 AND p_namespace = 11) OR p_owner = p_table_owner   -- 11: pg_catalog
$$;

-- Why function p_func may not be called by an index on a table owned by
-- p_table_owner with p_nargs arguments; NULL when it may.
CREATE OR REPLACE FUNCTION optischema._index_func_refusal(p_func oid, p_nargs integer, p_table_owner oid) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN p.oid IS NULL THEN format('function %s does not exist', p_func)
        WHEN NOT optischema._index_trusted(p.oid, p.pronamespace, p.proowner, p_table_owner)
            THEN format('function %s is neither built in nor owned by the table''s owner %s',
                        p.oid::regprocedure, p_table_owner::regrole)
        WHEN p.provolatile <> 'i' THEN format('function %s is not IMMUTABLE', p.oid::regprocedure)
        WHEN p.prokind <> 'f' OR p.proretset OR p.provariadic <> 0
            THEN format('function %s is not a plain function', p.oid::regprocedure)
        WHEN p.pronargs <> p_nargs
            THEN format('function %s takes %s arguments, not %s', p.oid::regprocedure, p.pronargs, p_nargs)
        END
    FROM (SELECT p_func AS oid) k LEFT JOIN pg_catalog.pg_proc p ON p.oid = k.oid
$$;

-- One expression of a description, checked and rendered: its SQL, its type
-- and the columns it reads.
CREATE OR REPLACE FUNCTION optischema._index_expr(p_table oid, p_e jsonb, p_depth integer DEFAULT 0,
                                                  OUT sql text, OUT type oid, OUT attnums smallint[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_owner  oid := (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = p_table);
    v_kind   text;
    v_args   jsonb;
    v_arg    record;
    v_sql    text[] := '{}';
    v_types  oid[];
    v_why    text;
    a        pg_catalog.pg_attribute;
    p        pg_catalog.pg_proc;
    o        pg_catalog.pg_operator;
    t        pg_catalog.pg_type;
    i        integer;
BEGIN
    attnums := '{}';
    IF p_depth > 8 THEN
        PERFORM optischema._index_refuse('expression nested more than 8 levels deep');
    END IF;
    IF jsonb_typeof(p_e) IS DISTINCT FROM 'object' THEN
        PERFORM optischema._index_refuse(format('expression %s is not a JSON object', coalesce(p_e::text, 'NULL')));
    END IF;
    SELECT k INTO v_kind FROM jsonb_object_keys(p_e) k
    WHERE k IN ('column', 'const', 'func', 'op', 'and', 'or', 'not', 'is_null', 'is_not_null');
    IF v_kind IS NULL OR EXISTS (SELECT 1 FROM jsonb_object_keys(p_e) k
                                 WHERE k NOT IN (v_kind, CASE v_kind WHEN 'column' THEN 'attnum' WHEN 'const' THEN 'type'
                                                                     WHEN 'func' THEN 'args' WHEN 'op' THEN 'args' END)) THEN
        PERFORM optischema._index_refuse(format('expression %s is not one of column, const, func, op, and, or, not, is_null, is_not_null', p_e));
    END IF;

    IF v_kind = 'column' THEN
        SELECT * INTO a FROM pg_catalog.pg_attribute x
        WHERE x.attrelid = p_table AND x.attname = (p_e ->> 'column') AND x.attnum > 0 AND NOT x.attisdropped;
        IF NOT FOUND THEN
            PERFORM optischema._index_refuse(format('column %s does not exist in table %s',
                coalesce(quote_ident(p_e ->> 'column'), 'NULL'), p_table::regclass), 'undefined_column');
        END IF;
        IF p_e ? 'attnum' AND (p_e -> 'attnum') IS DISTINCT FROM to_jsonb(a.attnum::integer) THEN
            PERFORM optischema._index_refuse(format('column %I of table %s is number %s, not %s',
                a.attname, p_table::regclass, a.attnum, p_e -> 'attnum'), 'undefined_column');
        END IF;
        sql := quote_ident(a.attname);
        type := a.atttypid;
        attnums := ARRAY[a.attnum];

    ELSIF v_kind = 'const' THEN
        SELECT * INTO t FROM pg_catalog.pg_type x WHERE x.oid = optischema._index_oid(p_e -> 'type');
        -- Reading the literal runs the type's input function: a built-in one, and no domain CHECK.
        IF NOT FOUND OR t.typtype NOT IN ('b', 'e') OR t.typinput::oid >= 16384 OR NOT t.typisdefined THEN
            PERFORM optischema._index_refuse(format('constant type %s is not a built-in base type or an enum',
                coalesce(p_e ->> 'type', 'NULL')));
        END IF;
        IF jsonb_typeof(p_e -> 'const') NOT IN ('string', 'null') THEN
            PERFORM optischema._index_refuse(format('constant %s is not a JSON string or null', p_e -> 'const'));
        END IF;
        sql := format('%s::%s', coalesce(quote_literal(p_e ->> 'const'), 'NULL'), pg_catalog.format_type(t.oid, NULL));
        type := t.oid;

    ELSIF v_kind IN ('func', 'op') THEN
        v_args := p_e -> 'args';
        IF jsonb_typeof(v_args) IS DISTINCT FROM 'array' OR optischema._index_oid(p_e -> v_kind) IS NULL THEN
            PERFORM optischema._index_refuse(format('%s needs an oid and an array of args: %s', v_kind, p_e));
        END IF;
        IF v_kind = 'func' THEN
            v_why := optischema._index_func_refusal(optischema._index_oid(p_e -> 'func'), jsonb_array_length(v_args), v_owner);
            IF v_why IS NOT NULL THEN
                PERFORM optischema._index_refuse(v_why, 'insufficient_privilege');
            END IF;
            SELECT * INTO p FROM pg_catalog.pg_proc x WHERE x.oid = optischema._index_oid(p_e -> 'func');
            v_types := ARRAY(SELECT unnest(p.proargtypes));     -- oidvector counts from 0
            type := p.prorettype;
        ELSE
            SELECT * INTO o FROM pg_catalog.pg_operator x WHERE x.oid = optischema._index_oid(p_e -> 'op');
            IF NOT FOUND THEN
                PERFORM optischema._index_refuse(format('operator %s does not exist', p_e ->> 'op'));
            END IF;
            IF optischema._index_trusted(o.oid, o.oprnamespace, o.oprowner, v_owner) IS NOT TRUE THEN
                PERFORM optischema._index_refuse(format('operator %s is neither built in nor owned by the table''s owner %s',
                    o.oid::regoperator, v_owner::regrole), 'insufficient_privilege');
            END IF;
            v_why := optischema._index_func_refusal(o.oprcode, CASE o.oprkind WHEN 'b' THEN 2 ELSE 1 END, v_owner);
            IF v_why IS NOT NULL THEN
                PERFORM optischema._index_refuse(format('operator %s: %s', o.oid::regoperator, v_why), 'insufficient_privilege');
            END IF;
            IF jsonb_array_length(v_args) <> (CASE o.oprkind WHEN 'b' THEN 2 ELSE 1 END) THEN
                PERFORM optischema._index_refuse(format('operator %s takes %s operands', o.oid::regoperator,
                                                        CASE o.oprkind WHEN 'b' THEN 2 ELSE 1 END));
            END IF;
            v_types := CASE o.oprkind WHEN 'b' THEN ARRAY[o.oprleft, o.oprright] ELSE ARRAY[o.oprright] END;
            type := o.oprresult;
        END IF;
        FOR i IN 1 .. jsonb_array_length(v_args) LOOP
            v_arg := optischema._index_expr(p_table, v_args -> (i - 1), p_depth + 1);
            IF optischema._index_arg_fits(v_arg.type, v_types[i]) IS NOT TRUE THEN
                PERFORM optischema._index_refuse(format('argument %s of %s is of type %s, not %s', i,
                    CASE v_kind WHEN 'func' THEN p.oid::regprocedure::text ELSE o.oid::regoperator::text END,
                    pg_catalog.format_type(v_arg.type, NULL), pg_catalog.format_type(v_types[i], NULL)));
            END IF;
            -- An explicit relabel keeps the call resolved to exactly this function or operator.
            v_sql := v_sql || CASE WHEN v_arg.type = v_types[i] OR (SELECT x.typtype = 'p' FROM pg_catalog.pg_type x WHERE x.oid = v_types[i])
                                   THEN v_arg.sql
                                   ELSE format('(%s)::%s', v_arg.sql, pg_catalog.format_type(v_types[i], NULL)) END;
            attnums := attnums || v_arg.attnums;
        END LOOP;
        IF v_kind = 'func' THEN
            sql := format('%I.%I(%s)', (SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.oid = p.pronamespace),
                          p.proname, array_to_string(v_sql, ', '));
        ELSE
            -- operator names are made of + - * / < > = ~ ! @ # % ^ & | ` ? only: nothing to quote
            sql := format('(%s OPERATOR(%I.%s) %s)', coalesce(v_sql[cardinality(v_sql) - 1], ''),
                          (SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.oid = o.oprnamespace),
                          o.oprname, v_sql[cardinality(v_sql)]);
        END IF;

    ELSE                                                    -- boolean structure
        v_args := CASE WHEN v_kind IN ('and', 'or') THEN p_e -> v_kind ELSE jsonb_build_array(p_e -> v_kind) END;
        IF jsonb_typeof(v_args) IS DISTINCT FROM 'array' OR jsonb_array_length(v_args) < (CASE WHEN v_kind IN ('and', 'or') THEN 2 ELSE 1 END) THEN
            PERFORM optischema._index_refuse(format('%s needs %s: %s', v_kind,
                CASE WHEN v_kind IN ('and', 'or') THEN 'an array of two or more expressions' ELSE 'one expression' END, p_e));
        END IF;
        FOR i IN 1 .. jsonb_array_length(v_args) LOOP
            v_arg := optischema._index_expr(p_table, v_args -> (i - 1), p_depth + 1);
            IF v_kind IN ('and', 'or', 'not') AND v_arg.type <> 'boolean'::regtype THEN
                PERFORM optischema._index_refuse(format('%s of a %s expression: %s', upper(v_kind),
                    pg_catalog.format_type(v_arg.type, NULL), v_arg.sql));
            END IF;
            v_sql := v_sql || v_arg.sql;
            attnums := attnums || v_arg.attnums;
        END LOOP;
        sql := CASE v_kind
            WHEN 'and' THEN '(' || array_to_string(v_sql, ' AND ') || ')'
            WHEN 'or' THEN '(' || array_to_string(v_sql, ' OR ') || ')'
            WHEN 'not' THEN '(NOT ' || v_sql[1] || ')'
            WHEN 'is_null' THEN '(' || v_sql[1] || ' IS NULL)'
            ELSE '(' || v_sql[1] || ' IS NOT NULL)' END;
        type := 'boolean'::regtype;
    END IF;
END
$$;

-- The statement for one description: 'create' builds the index the
-- description defines, 'drop' drops the index it names by OID. With
-- p_requester (the role that asked for the change), an index is built only
-- over columns that role may read: an error while building (a cast that
-- fails, say) would otherwise show it values it cannot see.
CREATE OR REPLACE FUNCTION optischema._index_ddl(p_op text, p_spec jsonb, p_requester text DEFAULT NULL,
                                                 p_concurrently boolean DEFAULT true)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c        pg_catalog.pg_class;
    x        pg_catalog.pg_index;
    v_nsp    name;
    v_keys   text[] := '{}';
    v_incl   text[] := '{}';
    v_with   text[] := '{}';
    v_cols   smallint[] := '{}';
    v_e      record;
    v_key    jsonb;
    v_item   text;
    v_am     name;
    v_opc    record;
    v_coll   record;
    v_where  text;
    v_col    smallint;
BEGIN
    IF jsonb_typeof(p_spec) IS DISTINCT FROM 'object' THEN
        PERFORM optischema._index_refuse('the recommendation has no index description (made before OptiSchema 0.2.0?)', 'object_not_in_prerequisite_state');
    END IF;

    IF p_op = 'drop' THEN
        SELECT * INTO x FROM pg_catalog.pg_index i WHERE i.indexrelid = optischema._index_oid(p_spec -> 'index');
        IF NOT FOUND THEN
            PERFORM optischema._index_refuse(format('index %s does not exist (any more)', coalesce((p_spec -> 'index')::text, 'null')), 'undefined_object');
        END IF;
        IF p_spec ? 'table' AND (p_spec -> 'table') IS DISTINCT FROM to_jsonb(x.indrelid::bigint) THEN
            PERFORM optischema._index_refuse(format('index %s is not on table %s', x.indexrelid::regclass, p_spec -> 'table'));
        END IF;
        -- What enforces a rule (a key, uniqueness, replica identity) is never dropped by OptiSchema.
        IF x.indisunique OR x.indisprimary OR x.indisexclusion OR x.indisreplident
           OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = x.indexrelid) THEN
            PERFORM optischema._index_refuse(format('index %s enforces a constraint, uniqueness or the replica identity', x.indexrelid::regclass),
                                             'insufficient_privilege');
        END IF;
        SELECT * INTO c FROM pg_catalog.pg_class WHERE oid = x.indexrelid;
        v_nsp := (SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.oid = c.relnamespace);
        IF v_nsp IN ('pg_catalog', 'information_schema', 'optischema', 'pg_toast') THEN
            PERFORM optischema._index_refuse(format('index %s belongs to the system or to OptiSchema', x.indexrelid::regclass), 'insufficient_privilege');
        END IF;
        -- A partition's index goes only with the partitioned index it is attached to.
        IF c.relispartition THEN
            PERFORM optischema._index_refuse(format('index %s is a partition of index %s: only that one can be dropped (with all its partitions)',
                x.indexrelid::regclass, (SELECT h.inhparent::regclass FROM pg_catalog.pg_inherits h WHERE h.inhrelid = x.indexrelid)),
                'dependent_objects_still_exist');
        END IF;
        -- A partitioned index cannot be dropped concurrently: a plain DROP INDEX
        -- (a short ACCESS EXCLUSIVE lock, under ddl_lock_timeout) drops it with its partitions'.
        RETURN format('DROP INDEX %sIF EXISTS %I.%I', CASE WHEN p_concurrently AND c.relkind <> 'I' THEN 'CONCURRENTLY ' ELSE '' END,
                      v_nsp, c.relname);
    ELSIF p_op IS DISTINCT FROM 'create' THEN
        RAISE EXCEPTION 'unknown index operation %', coalesce(quote_literal(p_op), 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- create: the table, by OID
    SELECT * INTO c FROM pg_catalog.pg_class t WHERE t.oid = optischema._index_oid(p_spec -> 'table');
    IF NOT FOUND THEN
        PERFORM optischema._index_refuse(format('table %s does not exist (any more)', coalesce((p_spec -> 'table')::text, 'null')), 'undefined_table');
    END IF;
    v_nsp := (SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.oid = c.relnamespace);
    IF c.relkind NOT IN ('r', 'm', 'p') OR c.relpersistence = 't' THEN
        PERFORM optischema._index_refuse(format('%s is not a table or materialized view OptiSchema can index concurrently', c.oid::regclass), 'wrong_object_type');
    END IF;
    IF v_nsp IN ('pg_catalog', 'information_schema', 'optischema', 'pg_toast') THEN
        PERFORM optischema._index_refuse(format('table %s belongs to the system or to OptiSchema', c.oid::regclass), 'insufficient_privilege');
    END IF;
    IF jsonb_typeof(p_spec -> 'name') IS DISTINCT FROM 'string' OR (p_spec ->> 'name') = ''
       OR octet_length(p_spec ->> 'name') > 63 THEN
        PERFORM optischema._index_refuse(format('index name %s is not a name of 1 to 63 bytes', coalesce(p_spec -> 'name', 'null')));
    END IF;
    SELECT a.amname INTO v_am FROM pg_catalog.pg_am a
    WHERE a.amname = coalesce(p_spec ->> 'method', 'btree') AND a.amtype = 'i' AND a.oid < 16384;
    IF v_am IS NULL THEN
        PERFORM optischema._index_refuse(format('index method %s is not a built-in index access method', p_spec ->> 'method'));
    END IF;
    IF coalesce(p_spec -> 'unique', 'false') <> 'false' THEN
        PERFORM optischema._index_refuse('OptiSchema builds no unique index', 'insufficient_privilege');
    END IF;
    IF jsonb_typeof(p_spec -> 'keys') IS DISTINCT FROM 'array' OR jsonb_array_length(p_spec -> 'keys') NOT BETWEEN 1 AND 32 THEN
        PERFORM optischema._index_refuse('an index needs 1 to 32 keys');
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_object_keys(p_spec) k
               WHERE k NOT IN ('table', 'name', 'method', 'unique', 'keys', 'include', 'where', 'with', 'index')) THEN
        PERFORM optischema._index_refuse(format('unknown fields in %s', p_spec));
    END IF;

    FOR v_key IN SELECT * FROM jsonb_array_elements(p_spec -> 'keys') LOOP
        IF jsonb_typeof(v_key) IS DISTINCT FROM 'object' OR (v_key ? 'expr') = (v_key ? 'column')
           OR EXISTS (SELECT 1 FROM jsonb_object_keys(v_key) k
                      WHERE k NOT IN ('column', 'attnum', 'expr', 'opclass', 'collation', 'desc', 'nulls_first')) THEN
            PERFORM optischema._index_refuse(format('key %s is not {"column": ...} or {"expr": ...} with opclass, collation, desc, nulls_first', v_key));
        END IF;
        IF v_key ? 'expr' THEN
            v_e := optischema._index_expr(c.oid, v_key -> 'expr');
            v_item := '(' || v_e.sql || ')';
        ELSE
            v_e := optischema._index_expr(c.oid, v_key - ARRAY['opclass', 'collation', 'desc', 'nulls_first']);
            v_item := v_e.sql;
        END IF;
        v_cols := v_cols || v_e.attnums;
        IF v_key ? 'collation' THEN
            SELECT n.nspname, k.collname INTO v_coll FROM pg_catalog.pg_collation k JOIN pg_catalog.pg_namespace n ON n.oid = k.collnamespace
            WHERE k.oid = optischema._index_oid(v_key -> 'collation');
            IF NOT FOUND THEN
                PERFORM optischema._index_refuse(format('collation %s does not exist', v_key -> 'collation'));
            END IF;
            v_item := v_item || format(' COLLATE %I.%I', v_coll.nspname, v_coll.collname);
        END IF;
        IF v_key ? 'opclass' THEN
            SELECT o.*, n.nspname INTO v_opc FROM pg_catalog.pg_opclass o JOIN pg_catalog.pg_namespace n ON n.oid = o.opcnamespace
            WHERE o.oid = optischema._index_oid(v_key -> 'opclass');
            IF NOT FOUND OR v_opc.opcmethod <> (SELECT a.oid FROM pg_catalog.pg_am a WHERE a.amname = v_am) THEN
                PERFORM optischema._index_refuse(format('operator class %s does not exist for %s', v_key -> 'opclass', v_am));
            END IF;
            IF optischema._index_trusted(v_opc.oid, v_opc.opcnamespace, v_opc.opcowner, c.relowner) IS NOT TRUE THEN
                PERFORM optischema._index_refuse(format('operator class %I.%I is neither built in nor owned by the table''s owner',
                                                        v_opc.nspname, v_opc.opcname), 'insufficient_privilege');
            END IF;
            v_item := v_item || format(' %I.%I', v_opc.nspname, v_opc.opcname);
        END IF;
        IF coalesce(v_key ->> 'desc', 'false') NOT IN ('true', 'false') OR coalesce(v_key ->> 'nulls_first', 'false') NOT IN ('true', 'false') THEN
            PERFORM optischema._index_refuse(format('desc and nulls_first of key %s must be true or false', v_key));
        END IF;
        IF (v_key ->> 'desc')::boolean THEN
            v_item := v_item || ' DESC' || CASE WHEN (v_key ->> 'nulls_first')::boolean IS FALSE THEN ' NULLS LAST' ELSE '' END;
        ELSIF (v_key ->> 'nulls_first')::boolean THEN
            v_item := v_item || ' NULLS FIRST';
        END IF;
        v_keys := v_keys || v_item;
    END LOOP;

    IF p_spec ? 'include' THEN
        IF jsonb_typeof(p_spec -> 'include') <> 'array' THEN
            PERFORM optischema._index_refuse('include must be an array of columns');
        END IF;
        FOR v_key IN SELECT * FROM jsonb_array_elements(p_spec -> 'include') LOOP
            IF jsonb_typeof(v_key) IS DISTINCT FROM 'object' OR NOT v_key ? 'column' THEN
                PERFORM optischema._index_refuse(format('INCLUDE item %s is not a column', v_key));
            END IF;
            v_e := optischema._index_expr(c.oid, v_key);
            v_incl := v_incl || v_e.sql;
            v_cols := v_cols || v_e.attnums;
        END LOOP;
    END IF;

    IF p_spec ? 'with' THEN
        IF jsonb_typeof(p_spec -> 'with') <> 'object'
           OR EXISTS (SELECT 1 FROM jsonb_each(p_spec -> 'with') w WHERE jsonb_typeof(w.value) <> 'string') THEN
            PERFORM optischema._index_refuse('with must map storage parameters to strings');
        END IF;
        SELECT array_agg(format('%I = %L', w.key, w.value) ORDER BY w.key) INTO v_with FROM jsonb_each_text(p_spec -> 'with') w;
    END IF;

    IF p_spec ? 'where' AND jsonb_typeof(p_spec -> 'where') <> 'null' THEN
        v_e := optischema._index_expr(c.oid, p_spec -> 'where');
        IF v_e.type <> 'boolean'::regtype THEN
            PERFORM optischema._index_refuse(format('the predicate %s is not boolean', v_e.sql));
        END IF;
        v_where := v_e.sql;
        v_cols := v_cols || v_e.attnums;
    END IF;

    IF p_requester IS NOT NULL THEN
        FOREACH v_col IN ARRAY v_cols LOOP
            IF NOT pg_catalog.has_column_privilege(p_requester, c.oid, v_col, 'SELECT') THEN
                PERFORM optischema._index_refuse(format('role %s may not read column %I of %s, which the index reads',
                    p_requester, (SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum = v_col),
                    c.oid::regclass), 'insufficient_privilege');
            END IF;
        END LOOP;
    END IF;

    -- A partitioned table: its own index only (ON ONLY), built on each partition
    -- and attached there (_index_steps()); CONCURRENTLY does not apply to it.
    RETURN format('CREATE INDEX %s%I ON %s%I.%I USING %I (%s)',
                  CASE WHEN p_concurrently AND c.relkind <> 'p' THEN 'CONCURRENTLY ' ELSE '' END,
                  p_spec ->> 'name', CASE WHEN c.relkind = 'p' THEN 'ONLY ' ELSE '' END, v_nsp, c.relname, v_am,
                  array_to_string(v_keys, ', '))
        || CASE WHEN cardinality(v_incl) > 0 THEN format(' INCLUDE (%s)', array_to_string(v_incl, ', ')) ELSE '' END
        || CASE WHEN cardinality(v_with) > 0 THEN format(' WITH (%s)', array_to_string(v_with, ', ')) ELSE '' END
        || CASE WHEN v_where IS NOT NULL THEN ' WHERE ' || v_where ELSE '' END;
END
$$;

-- Partitioned tables. CREATE INDEX CONCURRENTLY does not work on one, and a
-- plain CREATE INDEX on it blocks writes to every partition while it builds. So
-- the index is made the way PostgreSQL allows without blocking writes: ON ONLY
-- the partitioned table (an empty, invalid index), then on each partition (ON
-- ONLY again for a partition that is partitioned itself, CONCURRENTLY for a
-- leaf), each attached to its parent's index with ALTER INDEX ... ATTACH
-- PARTITION; the top index becomes valid when every partition has its index
-- attached. The partitions' index names are made here, from the index's name
-- and the partition's name in the catalog.

-- The name of index p_name's partition on table p_table: <index>_<partition>,
-- or, when that is longer than 63 bytes, cut short and ended by a hash of both,
-- so that two partitions never get the same name and a retry gets the same one.
CREATE OR REPLACE FUNCTION optischema._index_partition_name(p_name text, p_table oid) RETURNS name
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rel  name := (SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid = p_table);
    v_name text := p_name || '_' || v_rel;
BEGIN
    IF v_rel IS NULL OR p_name IS NULL THEN
        RETURN NULL;
    END IF;
    IF octet_length(v_name) <= 63 THEN
        RETURN v_name;
    END IF;
    v_name := left(v_name, 54);
    WHILE octet_length(v_name) > 54 LOOP            -- multibyte characters: cut by bytes
        v_name := left(v_name, -1);
    END LOOP;
    RETURN v_name || '_' || left(md5(p_name || '/' || v_rel), 8);
END
$$;

-- A description with its columns' numbers left out: a partition may number its
-- columns differently from its parent (dropped columns, attached tables); the
-- parent's description was checked with them, a partition's resolves by name.
CREATE OR REPLACE FUNCTION optischema._index_strip_attnums(p_value jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE jsonb_typeof(p_value)
        WHEN 'object' THEN (SELECT coalesce(jsonb_object_agg(e.key, optischema._index_strip_attnums(e.value)), '{}')
                            FROM jsonb_each(p_value) e WHERE e.key <> 'attnum')
        WHEN 'array' THEN (SELECT coalesce(jsonb_agg(optischema._index_strip_attnums(e.value) ORDER BY e.n), '[]')
                           FROM jsonb_array_elements(p_value) WITH ORDINALITY e(value, n))
        ELSE p_value END
$$;

-- The steps that build the index a description defines on a partitioned
-- table, in order: the table's own index first ('parent'), then each
-- partition's, parents before their partitions ('partitioned': ON ONLY, or
-- 'leaf': CONCURRENTLY), each with the statement that attaches it. No rows for
-- a table that is not partitioned. Refuses a partition that cannot have the
-- index (a foreign table), and a partition index name already taken when the
-- build has not started (when the table's own index exists, they are the
-- leftovers of this build, resumed or removed by _index_leftovers()).
CREATE OR REPLACE FUNCTION optischema._index_steps(p_spec jsonb, p_requester text DEFAULT NULL)
RETURNS TABLE (step integer, kind text, table_oid oid, index_schema name, index_name name, create_ddl text, attach_ddl text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_root    oid := optischema._index_oid(p_spec -> 'table');
    v_part    jsonb := optischema._index_strip_attnums(p_spec);
    v_ddl     text;
    v_started boolean;
    p         record;
BEGIN
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = v_root) IS DISTINCT FROM 'p' THEN
        RETURN;
    END IF;
    v_ddl := optischema._index_ddl('create', p_spec, p_requester);      -- checks the whole description
    v_started := EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class x ON x.oid = i.indexrelid
                         WHERE i.indrelid = v_root AND x.relname = p_spec ->> 'name');
    step := 0;
    FOR p IN
        SELECT t.relid, t.parentrelid, t.level, c.relkind, c.relname, n.nspname,
               CASE WHEN t.level = 0 THEN (p_spec ->> 'name')::name
                    ELSE optischema._index_partition_name(p_spec ->> 'name', t.relid) END AS iname,
               CASE WHEN t.level = 1 THEN (p_spec ->> 'name')::name
                    WHEN t.level > 1 THEN optischema._index_partition_name(p_spec ->> 'name', t.parentrelid) END AS parent_iname,
               pn.nspname AS parent_schema
        FROM pg_catalog.pg_partition_tree(v_root) t
        JOIN pg_catalog.pg_class c ON c.oid = t.relid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_catalog.pg_class pc ON pc.oid = t.parentrelid
        LEFT JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
        ORDER BY t.level, n.nspname, c.relname
    LOOP
        IF p.relkind NOT IN ('r', 'p') THEN
            PERFORM optischema._index_refuse(format('partition %s of %s is not a table (a foreign table?): it cannot have the index',
                                                    p.relid::regclass, v_root::regclass), 'wrong_object_type');
        END IF;
        IF p.level > 0 AND NOT v_started AND EXISTS (
                SELECT 1 FROM pg_catalog.pg_class x WHERE x.relnamespace = (SELECT c.relnamespace FROM pg_catalog.pg_class c WHERE c.oid = p.relid)
                                                  AND x.relname = p.iname) THEN
            PERFORM optischema._index_refuse(format('the name %I.%I, for the index on partition %s, is taken', p.nspname, p.iname, p.relid::regclass),
                                             'duplicate_table');
        END IF;
        kind := CASE WHEN p.level = 0 THEN 'parent' WHEN p.relkind = 'p' THEN 'partitioned' ELSE 'leaf' END;
        table_oid := p.relid;
        index_schema := p.nspname;
        index_name := p.iname;
        create_ddl := CASE WHEN p.level = 0 THEN v_ddl
                           ELSE optischema._index_ddl('create', v_part || jsonb_build_object('table', p.relid::bigint, 'name', p.iname)) END;
        attach_ddl := CASE WHEN p.level > 0 THEN format('ALTER INDEX %I.%I ATTACH PARTITION %I.%I', p.parent_schema, p.parent_iname,
                                                        p.nspname, p.iname) END;
        RETURN NEXT;
        step := step + 1;
    END LOOP;
END
$$;

-- The statement(s) that build a description's index: one, or for a partitioned
-- table its steps, one statement a line, each run on its own (CONCURRENTLY).
CREATE OR REPLACE FUNCTION optischema._index_create_script(p_spec jsonb, p_requester text DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT string_agg(s.create_ddl || coalesce(E';\n' || s.attach_ddl, ''), E';\n' ORDER BY s.step)
                     FROM optischema._index_steps(p_spec, p_requester) s),
                    optischema._index_ddl('create', p_spec, p_requester))
$$;

-- What a failed or interrupted build on a partitioned table left behind, as the
-- statements that remove it: partitions' indexes not attached (a failed
-- CONCURRENTLY build's INVALID one, or one built but not attached yet), then the
-- table's own index while it is not valid (which takes the attached ones with
-- it). Nothing once the index is complete, or for a table that is not partitioned.
CREATE OR REPLACE FUNCTION optischema._index_leftovers(p_spec jsonb)
RETURNS TABLE (step integer, ddl text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH root AS (
        SELECT i.indexrelid, i.indisvalid, n.nspname, x.relname
        FROM pg_catalog.pg_class t
        JOIN pg_catalog.pg_index i ON i.indrelid = t.oid
        JOIN pg_catalog.pg_class x ON x.oid = i.indexrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = x.relnamespace
        WHERE t.oid = optischema._index_oid(p_spec -> 'table') AND t.relkind = 'p' AND x.relname = p_spec ->> 'name'
    ), parts AS (
        SELECT x.relkind, n.nspname, x.relname, t.level
        FROM pg_catalog.pg_partition_tree(optischema._index_oid(p_spec -> 'table')) t
        JOIN pg_catalog.pg_index i ON i.indrelid = t.relid
        JOIN pg_catalog.pg_class x ON x.oid = i.indexrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = x.relnamespace
        WHERE t.level > 0 AND x.relname = optischema._index_partition_name(p_spec ->> 'name', t.relid)
          AND NOT x.relispartition
          AND EXISTS (SELECT 1 FROM root WHERE NOT root.indisvalid)
    )
    SELECT (row_number() OVER (ORDER BY level DESC, nspname, relname))::integer,
           format('DROP INDEX %sIF EXISTS %I.%I', CASE WHEN relkind = 'i' THEN 'CONCURRENTLY ' ELSE '' END, nspname, relname)
    FROM parts
    UNION ALL
    SELECT 1000000, format('DROP INDEX IF EXISTS %I.%I', nspname, relname) FROM root WHERE NOT indisvalid
    ORDER BY 1
$$;

-- The ddl and rollback_ddl a recommendation shows, from its description; NULL
-- for a description that does not build (apply() then says why).
CREATE OR REPLACE FUNCTION optischema._index_texts(p_kind text, p_spec jsonb, OUT ddl text, OUT rollback_ddl text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_kind = 'create_index' THEN
        ddl := optischema._index_create_script(p_spec);
        rollback_ddl := format('DROP INDEX %sIF EXISTS %I.%I',
                               CASE WHEN (SELECT t.relkind FROM pg_catalog.pg_class t WHERE t.oid = optischema._index_oid(p_spec -> 'table')) = 'p'
                                    THEN '' ELSE 'CONCURRENTLY ' END,
                               (SELECT n.nspname FROM pg_catalog.pg_class t JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
                                WHERE t.oid = optischema._index_oid(p_spec -> 'table')), p_spec ->> 'name');
    ELSIF p_kind = 'drop_index' THEN
        ddl := optischema._index_ddl('drop', p_spec);
        rollback_ddl := CASE WHEN p_spec ? 'keys' THEN optischema._index_create_script(p_spec - 'index') END;
    END IF;
EXCEPTION WHEN OTHERS THEN
    ddl := NULL;
    rollback_ddl := NULL;
END
$$;
