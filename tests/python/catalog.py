"""The catalog of schema optischema as one comparable set of lines: what an
upgraded database must share with a fresh install. Names only, never OIDs;
column order counts (a column an upgrade adds must be the last one in
sql/ too), function bodies count (a function the upgrade forgot to replace
shows up), ACLs and the registrations for pg_dump count."""
from __future__ import annotations

import psycopg

# Every row: (kind, name, definition). Each part reads pg_catalog only.
CATALOG_SQL = r"""
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = 'optischema'),
ext AS (SELECT oid, extconfig, extcondition FROM pg_extension WHERE extname = 'optischema')
SELECT 'schema', 'optischema', concat_ws(' ', pg_get_userbyid(n.nspowner), n.nspacl::text)
FROM pg_namespace n WHERE n.oid = (SELECT oid FROM ns)
UNION ALL
SELECT 'relation', c.relname,
       concat_ws(' | ', c.relkind::text, c.relpersistence::text, pg_get_userbyid(c.relowner), c.reloptions::text,
                 CASE WHEN c.relrowsecurity THEN 'row security' END, CASE WHEN c.relforcerowsecurity THEN 'forced' END,
                 (SELECT string_agg(a.grantee::regrole::text || ':' || a.privilege_type, ',' ORDER BY 1)
                  FROM aclexplode(c.relacl) a))
FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind <> 'i'
UNION ALL
SELECT 'column', c.relname || '.' || a.attname,
       concat_ws(' | ', row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
                 format_type(a.atttypid, a.atttypmod), CASE WHEN a.attnotnull THEN 'not null' END,
                 pg_get_expr(d.adbin, d.adrelid), nullif(a.attidentity, ''), nullif(a.attgenerated, ''),
                 CASE WHEN a.attcollation <> 0 THEN a.attcollation::regcollation::text END,
                 (SELECT string_agg(x.grantee::regrole::text || ':' || x.privilege_type, ',' ORDER BY 1)
                  FROM aclexplode(a.attacl) x))
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint', c.relname || '.' || k.conname, k.contype::text || ' ' || pg_get_constraintdef(k.oid)
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
WHERE c.relnamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'index', c.relname, pg_get_indexdef(c.oid)
FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind = 'i'
UNION ALL
SELECT 'view', c.relname, pg_get_viewdef(c.oid)
FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('v', 'm')
UNION ALL
SELECT 'sequence', c.relname,
       concat_ws(' | ', format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcycle,
                 (SELECT d.refobjid::regclass::text || '.' || a.attname
                  FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
FROM pg_class c JOIN pg_sequence s ON s.seqrelid = c.oid WHERE c.relnamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'routine', p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       concat_ws(' | ', p.prokind::text, pg_get_function_result(p.oid), pg_get_function_arguments(p.oid),
                 (SELECT l.lanname FROM pg_language l WHERE l.oid = p.prolang),
                 p.provolatile::text, CASE WHEN p.prosecdef THEN 'security definer' END,
                 CASE WHEN p.proisstrict THEN 'strict' END, p.proparallel::text, p.proleakproof::text,
                 p.proconfig::text, pg_get_userbyid(p.proowner),
                 (SELECT string_agg(a.grantee::regrole::text || ':' || a.privilege_type, ',' ORDER BY 1)
                  FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a),
                 'body md5 ' || md5(p.prosrc))
FROM pg_proc p WHERE p.pronamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'policy', c.relname || '.' || p.polname,
       concat_ws(' | ', p.polcmd::text, p.polpermissive::text, p.polroles::regrole[]::text,
                 pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'trigger', c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid)
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE c.relnamespace = (SELECT oid FROM ns) AND NOT t.tgisinternal
UNION ALL
SELECT 'type', t.typname, t.typtype::text
FROM pg_type t WHERE t.typnamespace = (SELECT oid FROM ns) AND t.typtype NOT IN ('c', 'b')
   OR (t.typnamespace = (SELECT oid FROM ns) AND t.typtype = 'c'
       AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
UNION ALL
SELECT 'comment', pg_describe_object(d.classoid, d.objoid, d.objsubid), md5(d.description)
FROM pg_description d
WHERE d.classoid = 'pg_class'::regclass AND d.objoid IN (SELECT c.oid FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns))
   OR d.classoid = 'pg_proc'::regclass AND d.objoid IN (SELECT p.oid FROM pg_proc p WHERE p.pronamespace = (SELECT oid FROM ns))
UNION ALL
SELECT 'dumped', x.t::regclass::text, coalesce(ext.extcondition[x.i], '')
FROM ext, unnest(ext.extconfig) WITH ORDINALITY x(t, i)
UNION ALL
SELECT 'member', pg_describe_object(d.classid, d.objid, d.objsubid), ''
FROM pg_depend d, ext WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
"""


def catalog(conn: psycopg.Connection) -> set[tuple[str, str, str]]:
    return {tuple(r) for r in conn.execute(CATALOG_SQL).fetchall()}


def difference(upgraded: set[tuple[str, str, str]], fresh: set[tuple[str, str, str]]) -> list[str]:
    """What differs, one readable line per object (empty when both are the same)."""
    lines = [f"only after the upgrade: {k} {n}: {d}" for k, n, d in sorted(upgraded - fresh)]
    lines += [f"only in a fresh install: {k} {n}: {d}" for k, n, d in sorted(fresh - upgraded)]
    return lines
