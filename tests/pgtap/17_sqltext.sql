BEGIN;
SELECT plan(22);

-- _redact(): what snapshot() stores of a statement.
SELECT is(optischema._redact($$CREATE ROLE r PASSWORD 'hunter2'$$), $$CREATE ROLE r PASSWORD '<redacted>'$$,
          'a plain string literal is redacted');
SELECT is(optischema._redact($$ALTER ROLE "it's" PASSWORD E'a\'b''c\\' VALID UNTIL 'infinity';$$),
          $$ALTER ROLE "it's" PASSWORD E'<redacted>' VALID UNTIL '<redacted>'$$,
          'E'''' strings with backslash and doubled quotes; quoted names are kept');
SELECT is(optischema._redact($$CREATE USER MAPPING FOR r SERVER s OPTIONS (user 'u', password $pw$hunter2$pw$)$$),
          $$CREATE USER MAPPING FOR r SERVER s OPTIONS (user '<redacted>', password '<redacted>')$$,
          'dollar-quoted strings are redacted');
SELECT is(optischema._redact($$DO $$ || '$$' || $$ BEGIN RAISE NOTICE 'hunter2'; END $$ || '$$'),
          $$DO '<redacted>'$$, 'a DO block is redacted whole');
SELECT is(optischema._redact($$SET app.key = U&'d\0061t'$$), 'SET <redacted>',
          'a backslash in a string that is not E'''' depends on standard_conforming_strings: only the leading keywords are kept');
SELECT is(optischema._redact($$ALTER ROLE r PASSWORD 'a\'hunter2\'b'$$), 'ALTER ROLE <redacted>',
          'so a password written for standard_conforming_strings = off does not leak');
SELECT is(optischema._redact($$COPY t FROM PROGRAM 'curl x' /* unterminated$$), 'COPY <redacted>',
          'an unterminated comment keeps only the leading keywords');
SELECT is(optischema._redact($$CREATE ROLE r PASSWORD 'unterminated$$), 'CREATE ROLE <redacted>',
          'an unterminated string too');
SELECT is(optischema._redact($$/* hunter2 */ VACUUM t -- hunter3$$), 'VACUUM t', 'comments are removed');
SELECT is(optischema._redact($$SELECT a FROM t WHERE b = $1 AND c = $2$$), $$SELECT a FROM t WHERE b = $1 AND c = $2$$,
          'a normalized statement is kept as it is');
SELECT is(optischema._redact($$SELECT a$b FROM t WHERE "x'y" = $1 -- 'hunter2'$$), $$SELECT a$b FROM t WHERE "x'y" = $1$$,
          'names with dollars or quotes are no literals');
SELECT is(optischema._redact($$SELECT 'hunter2' AS a INTO TEMP t$$), $$SELECT '<redacted>' AS a INTO TEMP t$$,
          'SELECT INTO, kept verbatim by pg_stat_statements, is redacted');
SELECT is(optischema._redact($$/* hunter2$$), '<redacted>', 'nothing left that is surely safe: only the placeholder');
SELECT is(optischema._redact(optischema._redact($$ALTER ROLE r PASSWORD 'x' VALID UNTIL '2030-01-01'$$)),
          optischema._redact($$ALTER ROLE r PASSWORD 'x' VALID UNTIL '2030-01-01'$$), 'redacting twice changes nothing');
SELECT is(optischema._redact(NULL), NULL, 'NULL stays NULL');

-- _scrub(): the one lexer, both ways.
SELECT is(optischema._scrub($$SELECT 'a--b' /* c */ FROM t$$, false), $$SELECT 'a--b'   FROM t$$,
          'without p_literals, literals are copied');
SELECT is(optischema._scrub($$SELECT 'a\b'$$, false), $$SELECT 'a\b'$$, 'and a backslash is no reason to give up');
SELECT is(optischema._scrub($$SELECT 'a\b'$$, true), NULL, 'with p_literals it is');

-- _is_utility()
SELECT ok(optischema._is_utility('CREATE ROLE a') AND optischema._is_utility('/* SELECT */ SET x = 1')
          AND optischema._is_utility('-- x' || chr(10) || 'COPY t TO STDOUT') AND optischema._is_utility(''),
          'utility statements are recognized, after comments too');
SELECT ok(NOT optischema._is_utility('SELECT 1') AND NOT optischema._is_utility('(SELECT 1) UNION SELECT 2')
          AND NOT optischema._is_utility(' /* x */ WITH a AS (SELECT 1) SELECT * FROM a')
          AND NOT optischema._is_utility('values (1)'),
          'optimizable statements are not');
SELECT is(optischema._is_utility(NULL), NULL, 'NULL stays NULL');
SELECT ok(optischema._is_utility(optischema._redact($$CREATE ROLE r PASSWORD 'a\'b'$$)),
          'a redacted utility statement is still one');

SELECT * FROM finish();
ROLLBACK;
