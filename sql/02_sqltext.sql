-- Captured statement texts: the one lexer of SQL text OptiSchema has, for
-- removing comments (a prompt-injection channel), telling utility statements
-- apart, and redacting what pg_stat_statements keeps verbatim.
--
-- pg_stat_statements replaces the constants of optimizable statements with
-- $n but keeps utility statements (CREATE ROLE ... PASSWORD '...', CREATE USER
-- MAPPING ... OPTIONS (password '...'), SET, COPY, DO, SELECT ... INTO) and
-- every comment as they were sent: no text is stored before _redact().

-- Query text without -- and /* */ comments (nested, as PostgreSQL nests
-- them); quoted identifiers are copied untouched. String literals (plain,
-- E'', U&'', B'', X'', dollar-quoted) are copied too, or with p_literals
-- replaced by '<redacted>'. Redacting must not guess: with p_literals the
-- result is NULL when the text does not lex with certainty (an unterminated
-- quote or comment, or a backslash in a plain string, whose meaning depends
-- on standard_conforming_strings in the session that sent it).
CREATE OR REPLACE FUNCTION optischema._scrub(p_sql text, p_literals boolean) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n     integer := length(p_sql);
    i     integer := 1;
    j     integer;
    depth integer;
    c     text;
    tag   text;
    e_str boolean;
    parts text[] := '{}';
BEGIN
    WHILE i <= n LOOP
        -- copy the run of ordinary characters up to the next special one at once
        j := i + coalesce(length(substring(substr(p_sql, i) FROM '^[^-/''"$]+')), 0);
        IF j > i THEN
            parts := parts || substr(p_sql, i, j - i);
            i := j;
            CONTINUE;
        END IF;
        c := substr(p_sql, i, 1);
        IF substr(p_sql, i, 2) = '--' THEN
            j := strpos(substr(p_sql, i), E'\n');
            i := CASE WHEN j = 0 THEN n + 1 ELSE i + j - 1 END;
            parts := parts || ' '::text;
        ELSIF substr(p_sql, i, 2) = '/*' THEN
            depth := 1;
            i := i + 2;
            WHILE i <= n AND depth > 0 LOOP
                IF substr(p_sql, i, 2) = '/*' THEN depth := depth + 1; i := i + 2;
                ELSIF substr(p_sql, i, 2) = '*/' THEN depth := depth - 1; i := i + 2;
                ELSE i := i + 1;
                END IF;
            END LOOP;
            IF depth > 0 AND p_literals THEN
                RETURN NULL;
            END IF;
            parts := parts || ' '::text;
        ELSIF c IN ('''', '"') THEN
            -- E'...' strings escape with backslashes
            e_str := c = '''' AND i > 1 AND lower(substr(p_sql, i - 1, 1)) = 'e';
            j := i + 1;
            LOOP
                EXIT WHEN j > n;
                IF e_str AND substr(p_sql, j, 1) = '\' THEN
                    j := j + 2;
                ELSIF substr(p_sql, j, 2) = c || c THEN
                    j := j + 2;
                ELSIF substr(p_sql, j, 1) = c THEN
                    EXIT;
                ELSIF c = '''' AND p_literals AND substr(p_sql, j, 1) = '\' THEN
                    RETURN NULL;
                ELSE
                    j := j + 1;
                END IF;
            END LOOP;
            IF c = '''' AND p_literals THEN
                IF j > n THEN
                    RETURN NULL;
                END IF;
                parts := parts || '''<redacted>'''::text;
            ELSIF c = '"' AND p_literals AND j > n THEN
                RETURN NULL;
            ELSE
                parts := parts || substr(p_sql, i, j - i + 1);
            END IF;
            i := j + 1;
        ELSIF c = '$' THEN
            -- inside an identifier (a$b$c) a dollar opens no quote
            tag := CASE WHEN i = 1 OR substr(p_sql, i - 1, 1) !~ '[A-Za-z0-9_$]'
                        THEN substring(substr(p_sql, i) FROM '^\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$') END;
            IF tag IS NULL THEN                  -- a $n parameter, a lone dollar, part of a name
                parts := parts || c;
                i := i + 1;
            ELSE
                j := strpos(substr(p_sql, i + length(tag)), tag);
                IF p_literals THEN
                    IF j = 0 THEN
                        RETURN NULL;
                    END IF;
                    parts := parts || '''<redacted>'''::text;
                END IF;
                j := CASE WHEN j = 0 THEN n + 1 ELSE i + length(tag) + j - 1 + length(tag) END;
                IF NOT p_literals THEN
                    parts := parts || substr(p_sql, i, j - i);
                END IF;
                i := j;
            END IF;
        ELSE                                     -- a lone - or /
            parts := parts || c;
            i := i + 1;
        END IF;
    END LOOP;
    RETURN btrim(array_to_string(parts, ''), E' \t\r\n;');
END
$$;

-- Query text without comments (see _scrub).
CREATE OR REPLACE FUNCTION optischema._strip_comments(p_sql text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT optischema._scrub(p_sql, false)
$$;

-- Utility statements (CREATE ROLE ... PASSWORD, COPY, SET, ...) cannot be
-- planned and may have held secrets: they are never part of a context. Only
-- a text that starts with a comment needs the lexer to find its first word.
CREATE OR REPLACE FUNCTION optischema._is_utility(p_sql text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(lower(substring(CASE WHEN p_sql ~ '^[\s(]*[-/]' THEN optischema._strip_comments(p_sql) ELSE p_sql END
                                    FROM '^[\s(]*([A-Za-z]+)')), '')
           NOT IN ('select', 'insert', 'update', 'delete', 'with', 'values', 'table', 'merge')
$$;

-- The text OptiSchema stores for a statement: without comments and with
-- every string literal replaced by '<redacted>'. A text with neither (every
-- normalized optimizable statement without comments) is kept as it is,
-- without lexing: snapshot() calls this for every new statement. When the
-- lexer is unsure, only the leading SQL keywords are kept ("ALTER ROLE
-- <redacted>"): a name or a bare word is never a keyword.
CREATE OR REPLACE FUNCTION optischema._redact(p_sql text) RETURNS text
LANGUAGE plpgsql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v     text;
    w     text;
    words text[] := '{}';
BEGIN
    IF p_sql !~ '''|--|/\*|\$([^0-9]|$)' THEN
        RETURN p_sql;
    END IF;
    v := optischema._scrub(p_sql, true);
    IF v IS NOT NULL THEN
        RETURN v;
    END IF;
    FOREACH w IN ARRAY regexp_split_to_array(ltrim(optischema._strip_comments(p_sql), E' \t\r\n('), '\s+') LOOP
        EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_get_keywords() k WHERE k.word = lower(w));
        words := words || w;
    END LOOP;
    RETURN concat_ws(' ', nullif(array_to_string(words, ' '), ''), '<redacted>');
END
$$;
