-- optischema._index_ddl(): index statements built from a structured
-- description, checked in the catalog (sql/09_index_ddl.sql).
BEGIN;
SET client_min_messages = warning;
SELECT plan(37);

CREATE ROLE adm_tap_owner;
CREATE ROLE adm_tap_other;
CREATE ROLE adm_tap_reader;
CREATE SCHEMA "adm;s";
CREATE TYPE "adm;s".mood AS ENUM ('sad', 'ok');
CREATE DOMAIN "adm;s".short AS text CHECK (length(VALUE) < 5);
CREATE TABLE "adm;s"."t;--$x" (a int, "b;--$c" text, v varchar(20), m "adm;s".mood, d "adm;s".short, u int UNIQUE);
ALTER TABLE "adm;s"."t;--$x" OWNER TO adm_tap_owner;
GRANT SELECT (a) ON "adm;s"."t;--$x" TO adm_tap_reader;
CREATE FUNCTION "adm;s".own(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + 1';
ALTER FUNCTION "adm;s".own(int) OWNER TO adm_tap_owner;
CREATE FUNCTION "adm;s".other(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + 2';
ALTER FUNCTION "adm;s".other(int) OWNER TO adm_tap_other;
CREATE FUNCTION "adm;s".volatile(int) RETURNS int LANGUAGE sql VOLATILE AS 'SELECT $1';
ALTER FUNCTION "adm;s".volatile(int) OWNER TO adm_tap_owner;
CREATE FUNCTION "adm;s".own_eq(int, int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 = $2';
ALTER FUNCTION "adm;s".own_eq(int, int) OWNER TO adm_tap_owner;
CREATE OPERATOR "adm;s".=== (FUNCTION = "adm;s".own_eq, LEFTARG = int, RIGHTARG = int);
ALTER OPERATOR "adm;s".=== (int, int) OWNER TO adm_tap_owner;
-- the table owner's operator, but another role's function behind it
CREATE FUNCTION "adm;s".other_eq(int, int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 = $2';
ALTER FUNCTION "adm;s".other_eq(int, int) OWNER TO adm_tap_other;
CREATE OPERATOR "adm;s".&&& (FUNCTION = "adm;s".other_eq, LEFTARG = int, RIGHTARG = int);
ALTER OPERATOR "adm;s".&&& (int, int) OWNER TO adm_tap_owner;

-- Builds a description: the table, an index name and keys (JSON), and the rest (JSON object).
CREATE FUNCTION pg_temp.d(p_keys jsonb, p_rest jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('table', '"adm;s"."t;--$x"'::regclass::oid::bigint, 'name', 'i;--$1', 'keys', p_keys) || p_rest
$$;
CREATE FUNCTION pg_temp.f(p_func regprocedure, VARIADIC p_args jsonb[] DEFAULT '{}') RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('func', p_func::oid::bigint, 'args', to_jsonb(p_args))
$$;
CREATE FUNCTION pg_temp.o(p_op regoperator, p_left jsonb, p_right jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('op', p_op::oid::bigint, 'args', jsonb_build_array(p_left, p_right))
$$;
CREATE FUNCTION pg_temp.c(p_value text, p_type regtype) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('const', p_value, 'type', p_type::oid::bigint)
$$;

-- What gets built, with every name quoted by format('%I') whatever it holds
SELECT is(optischema._index_ddl('create', pg_temp.d('[{"column": "a", "attnum": 1}, {"column": "b;--$c", "desc": true, "nulls_first": false}]',
                                                    '{"include": [{"column": "v"}], "with": {"fillfactor": "70"}}')),
    'CREATE INDEX CONCURRENTLY "i;--$1" ON "adm;s"."t;--$x" USING btree (a, "b;--$c" DESC NULLS LAST) INCLUDE (v) WITH (fillfactor = ''70'')',
    'columns, order, INCLUDE and storage parameters, with quoted names');
SELECT is(optischema._index_ddl('create', pg_temp.d(jsonb_build_array(
        jsonb_build_object('expr', pg_temp.f('pg_catalog.lower(text)', '{"column": "v"}')),
        jsonb_build_object('column', 'b;--$c', 'opclass', (SELECT oid::bigint FROM pg_opclass WHERE opcname = 'text_pattern_ops' AND opcmethod = 403),
                           'collation', 'pg_catalog."C"'::regcollation::oid::bigint, 'nulls_first', true))), NULL, false),
    'CREATE INDEX "i;--$1" ON "adm;s"."t;--$x" USING btree ((pg_catalog.lower((v)::text)), "b;--$c" COLLATE pg_catalog."C" pg_catalog.text_pattern_ops NULLS FIRST)',
    'a built-in function of a binary-coercible column, an operator class and a collation, not concurrently');
SELECT is(optischema._index_ddl('create', pg_temp.d('[{"column": "a"}]', jsonb_build_object('where', jsonb_build_object('and', jsonb_build_array(
        pg_temp.o('=(integer,integer)', '{"column": "a"}', pg_temp.c('42', 'integer')),
        jsonb_build_object('is_null', '{"column": "b;--$c"}'::jsonb),
        jsonb_build_object('not', jsonb_build_object('is_not_null', '{"column": "v"}'::jsonb)),
        pg_temp.o('=(anyenum,anyenum)', '{"column": "m"}', pg_temp.c('o''k', '"adm;s".mood'))))))),
    'CREATE INDEX CONCURRENTLY "i;--$1" ON "adm;s"."t;--$x" USING btree (a) WHERE ((a OPERATOR(pg_catalog.=) ''42''::integer) AND ("b;--$c" IS NULL) AND (NOT (v IS NOT NULL)) AND (m OPERATOR(pg_catalog.=) ''o''''k''::"adm;s".mood))',
    'a predicate of operators, constants (an enum one too), IS [NOT] NULL, AND and NOT');
SELECT is(optischema._index_ddl('create', pg_temp.d(jsonb_build_array(jsonb_build_object('expr', pg_temp.f('"adm;s".own(int)', '{"column": "a"}'))),
        jsonb_build_object('where', pg_temp.o('"adm;s".===(int,int)', '{"column": "a"}', pg_temp.c('1', 'int'))))),
    'CREATE INDEX CONCURRENTLY "i;--$1" ON "adm;s"."t;--$x" USING btree (("adm;s".own(a))) WHERE (a OPERATOR("adm;s".===) ''1''::integer)',
    'functions and operators the table''s owner owns are fine');
SELECT lives_ok(format('DO $$BEGIN EXECUTE optischema._index_ddl(%L, %L, NULL, false); END$$', 'create',
    pg_temp.d(jsonb_build_array(jsonb_build_object('expr', pg_temp.f('pg_catalog.lower(text)', '{"column": "v"}')), '{"column": "a", "desc": true}'::jsonb),
              jsonb_build_object('where', jsonb_build_object('or', jsonb_build_array(
                  pg_temp.o('"adm;s".===(int,int)', '{"column": "a"}', pg_temp.c('1', 'int')),
                  pg_temp.o('=(anyenum,anyenum)', '{"column": "m"}', pg_temp.c('ok', '"adm;s".mood')))),
                                 'include', '[{"column": "b;--$c"}]'::jsonb))),
    'what is built runs');
SELECT is((SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = '"adm;s"."t;--$x"'::regclass AND NOT i.indisunique),
    'CREATE INDEX "i;--$1" ON "adm;s"."t;--$x" USING btree (lower((v)::text), a DESC) INCLUDE ("b;--$c") WHERE ((a OPERATOR("adm;s".===) 1) OR (m = ''ok''::"adm;s".mood))',
    'and is the index described');
DROP INDEX "adm;s"."i;--$1";

-- Code that would run as the table's owner: only built-in or the owner's own IMMUTABLE functions
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create',
    pg_temp.d(jsonb_build_array(jsonb_build_object('expr', pg_temp.f('"adm;s".other(int)', '{"column": "a"}'))))), '42501',
    'refusing to build the index: function "adm;s".other(integer) is neither built in nor owned by the table''s owner adm_tap_owner',
    'a function of another role is refused');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create',
    pg_temp.d(jsonb_build_array(jsonb_build_object('expr', pg_temp.f('"adm;s".volatile(int)', '{"column": "a"}'))))), '42501',
    'refusing to build the index: function "adm;s".volatile(integer) is not IMMUTABLE', 'a function that is not IMMUTABLE is refused');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create',
    pg_temp.d('[{"column": "a"}]', jsonb_build_object('where', pg_temp.o('"adm;s".&&&(int,int)', '{"column": "a"}', pg_temp.c('1', 'int'))))), '42501',
    'refusing to build the index: operator "adm;s".&&&(integer,integer): function "adm;s".other_eq(integer,integer) is neither built in nor owned by the table''s owner adm_tap_owner',
    'an operator whose function belongs to another role is refused');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create',
    pg_temp.d(jsonb_build_array(jsonb_build_object('expr', pg_temp.f('pg_catalog.now()'))))), '42501',
    'refusing to build the index: function now() is not IMMUTABLE', 'a built-in function that is not IMMUTABLE is refused');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create',
    pg_temp.d(jsonb_build_array(jsonb_build_object('expr', jsonb_build_object('func', 'pg_catalog.lower(text)'::regprocedure::oid::bigint, 'args', '[]'::jsonb))))), '42501',
    'refusing to build the index: function lower(text) takes 1 arguments, not 0', 'a call with the wrong number of arguments is refused');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create',
    pg_temp.d(jsonb_build_array(jsonb_build_object('expr', pg_temp.f('pg_catalog.lower(text)', '{"column": "a"}'))))), '22023',
    'refusing to build the index: argument 1 of lower(text) is of type integer, not text', 'an argument of another type is refused, not cast');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create',
    pg_temp.d('[{"column": "a"}]', jsonb_build_object('where', pg_temp.o('=(text,text)', '{"column": "b;--$c"}', pg_temp.c('x', '"adm;s".short'))))), '22023',
    'refusing to build the index: constant type ' || '"adm;s".short'::regtype::oid || ' is not a built-in base type or an enum',
    'a constant of a domain type (its CHECK would run) is refused');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create',
    pg_temp.d('[{"column": "a"}]', jsonb_build_object('where', '{"column": "a"}'::jsonb))), '22023',
    'refusing to build the index: the predicate a is not boolean', 'a predicate that is not boolean is refused');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create',
    pg_temp.d(jsonb_build_array(jsonb_build_object('expr',
        pg_temp.f('abs(int)', pg_temp.f('abs(int)', pg_temp.f('abs(int)', pg_temp.f('abs(int)', pg_temp.f('abs(int)',
        pg_temp.f('abs(int)', pg_temp.f('abs(int)', pg_temp.f('abs(int)', pg_temp.f('abs(int)', '{"column": "a"}'))))))))))))), '22023',
    'refusing to build the index: expression nested more than 8 levels deep', 'an expression nested too deep is refused');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create',
    pg_temp.d(jsonb_build_array(jsonb_build_object('expr', jsonb_build_object('sql', 'a + 1'))))), '22023', NULL,
    'free text is no expression');

-- The catalog must know what the description names
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create', pg_temp.d('[{"column": "a"}]') || '{"table": 0}'), '42P01',
    'refusing to build the index: table 0 does not exist (any more)', 'an unknown table');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create', pg_temp.d('[{"column": "a"}]') || '{"table": "1259"}'), '42P01',
    'refusing to build the index: table "1259" does not exist (any more)', 'a table given as text, not as an OID');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create', pg_temp.d('[{"column": "a"}]') || '{"table": 1259}'), '42501',
    'refusing to build the index: table pg_class belongs to the system or to OptiSchema', 'a system catalog');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create', pg_temp.d('[{"column": "nosuch"}]')), '42703',
    'refusing to build the index: column nosuch does not exist in table "adm;s"."t;--$x"', 'an unknown column');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create', pg_temp.d('[{"column": "a", "attnum": 2}]')), '42703',
    'refusing to build the index: column a of table "adm;s"."t;--$x" is number 1, not 2', 'a column at another position');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create', pg_temp.d('[{"column": "a", "opclass": 1}]')), '22023',
    'refusing to build the index: operator class 1 does not exist for btree', 'an unknown operator class');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create', pg_temp.d('[{"column": "a", "collation": 1}]')), '22023',
    'refusing to build the index: collation 1 does not exist', 'an unknown collation');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create', pg_temp.d('[]')), '22023',
    'refusing to build the index: an index needs 1 to 32 keys', 'no keys');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create', pg_temp.d('[{"column": "a"}]', '{"unique": true}')), '42501',
    'refusing to build the index: OptiSchema builds no unique index', 'a unique index');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create', pg_temp.d('[{"column": "a"}]', '{"method": "bloom"}')), '22023',
    'refusing to build the index: index method bloom is not a built-in index access method', 'an unknown access method');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create', pg_temp.d('[{"column": "a"}]') || '{"name": ""}'), '22023',
    'refusing to build the index: index name "" is not a name of 1 to 63 bytes', 'an empty index name');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'create', pg_temp.d('[{"column": "a"}]', '{"tablespace": "x"}')), '22023',
    NULL, 'an unknown field');
SELECT throws_ok($$SELECT optischema._index_ddl('create', NULL)$$, '55000',
    'refusing to build the index: the recommendation has no index description (made before OptiSchema 0.2.0?)', 'no description');

-- The role that asks must be able to read what the index reads
SELECT lives_ok(format('SELECT optischema._index_ddl(%L, %L, %L)', 'create', pg_temp.d('[{"column": "a"}]'), 'adm_tap_reader'),
    'a role that may read the column');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L, %L)', 'create',
    pg_temp.d('[{"column": "a"}]', jsonb_build_object('where', jsonb_build_object('is_null', '{"column": "v"}'::jsonb))), 'adm_tap_reader'), '42501',
    'refusing to build the index: role adm_tap_reader may not read column v of "adm;s"."t;--$x", which the index reads',
    'but not one it may not read, even in the predicate');

-- Drops, by OID
CREATE INDEX "i;--$2" ON "adm;s"."t;--$x" (a);
SELECT is(optischema._index_ddl('drop', jsonb_build_object('index', '"adm;s"."i;--$2"'::regclass::oid::bigint,
                                                          'table', '"adm;s"."t;--$x"'::regclass::oid::bigint)),
    'DROP INDEX CONCURRENTLY IF EXISTS "adm;s"."i;--$2"', 'a drop names the index the OID finds now');
ALTER INDEX "adm;s"."i;--$2" RENAME TO "i;--$3";
SELECT is(optischema._index_ddl('drop', jsonb_build_object('index', '"adm;s"."i;--$3"'::regclass::oid::bigint)),
    'DROP INDEX CONCURRENTLY IF EXISTS "adm;s"."i;--$3"', 'even after a rename');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'drop',
    jsonb_build_object('index', '"adm;s"."i;--$3"'::regclass::oid::bigint, 'table', 1259)), '22023', NULL, 'an index of another table');
SELECT throws_ok(format('SELECT optischema._index_ddl(%L, %L)', 'drop', jsonb_build_object('index', '"adm;s"."t;--$x_u_key"'::regclass::oid::bigint)),
    '42501', 'refusing to build the index: index "adm;s"."t;--$x_u_key" enforces a constraint, uniqueness or the replica identity',
    'an index that enforces a constraint is never dropped');

-- What recommendations show: NULL for a description that does not build
SELECT results_eq($$SELECT ddl, rollback_ddl FROM optischema._index_texts('create_index', pg_temp.d('[{"column": "a"}]'))$$,
    $$VALUES ('CREATE INDEX CONCURRENTLY "i;--$1" ON "adm;s"."t;--$x" USING btree (a)', 'DROP INDEX CONCURRENTLY IF EXISTS "adm;s"."i;--$1"')$$,
    'the texts a recommendation shows');
SELECT results_eq($$SELECT ddl, rollback_ddl FROM optischema._index_texts('create_index', pg_temp.d('[{"column": "nosuch"}]'))$$,
    $$VALUES (NULL::text, NULL::text)$$, 'none for a description that does not build');

SELECT * FROM finish();
ROLLBACK;
