"""The structured description of an index that OptiSchema's SQL side builds its statements
from (sql/09_index_ddl.sql, optischema._index_ddl): the table and every function, operator
and operator class by OID, columns by name and number, constants with their type. The
engine and the LLM check only describe; the SQL side checks the description in the catalog
and renders the statement each time one runs, so no text made here is ever executed."""
from __future__ import annotations

import json

from .catalog import Table
from .db import Database


class Unbuildable(Exception):
    """The candidate has no description the SQL side would build (say, its expression calls
    a function that is neither built in nor owned by the table's owner)."""


# A one-argument IMMUTABLE function of that name visible on the search path, taking the
# column's type as is or binary-coercibly, built in or owned by the table's owner: what
# the SQL side accepts. The exact argument type first.
_FUNC_SQL = """
SELECT p.oid::bigint AS oid
FROM pg_catalog.pg_proc p, pg_catalog.pg_class t
WHERE t.oid = $3::oid AND p.proname = $1 AND p.pronargs = 1 AND p.prokind = 'f' AND NOT p.proretset
  AND p.provolatile = 'i' AND pg_catalog.pg_function_is_visible(p.oid)
  AND ((p.oid < 16384 AND p.pronamespace = 'pg_catalog'::regnamespace) OR p.proowner = t.relowner)
  AND (p.proargtypes[0] = $2::oid
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_cast k
                  WHERE k.castsource = $2::oid AND k.casttarget = p.proargtypes[0] AND k.castmethod = 'b'))
ORDER BY p.proargtypes[0] = $2::oid DESC, p.oid
LIMIT 1"""

# The equality of the column type's default btree operator class (what `column = constant`
# means in a query), its negator (`<>`), and the type its constant is read as.
_EQUALS_SQL = """
SELECT ao.amopopr::bigint AS op, o.oprnegate::bigint AS negator,
       (CASE WHEN ty.typtype = 'p' THEN $1::oid ELSE oc.opcintype END)::bigint AS type
FROM pg_catalog.pg_opclass oc
JOIN pg_catalog.pg_am am ON am.oid = oc.opcmethod AND am.amname = 'btree'
JOIN pg_catalog.pg_type ty ON ty.oid = oc.opcintype
JOIN pg_catalog.pg_amop ao ON ao.amopfamily = oc.opcfamily AND ao.amopstrategy = 3
     AND ao.amoplefttype = oc.opcintype AND ao.amoprighttype = oc.opcintype
JOIN pg_catalog.pg_operator o ON o.oid = ao.amopopr
WHERE oc.opcdefault
  AND (oc.opcintype = $1::oid
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_cast k
                  WHERE k.castsource = $1::oid AND k.casttarget = oc.opcintype AND k.castmethod = 'b')
       OR (oc.opcintype = 'anyenum'::regtype
           AND EXISTS (SELECT 1 FROM pg_catalog.pg_type c WHERE c.oid = $1::oid AND c.typtype = 'e')))
ORDER BY oc.opcintype = $1::oid DESC
LIMIT 1"""

_OPCLASS_SQL = """
SELECT oc.oid::bigint AS oid FROM pg_catalog.pg_opclass oc JOIN pg_catalog.pg_am am ON am.oid = oc.opcmethod
WHERE am.amname = 'btree' AND oc.opcname = $1 AND oc.opcnamespace = 'pg_catalog'::regnamespace"""

# An existing index (to be dropped) described so that a rollback can build it again:
# columns with their operator class, collation and order, INCLUDE columns, storage
# parameters. Indexes with expressions or a predicate get no "keys": OptiSchema cannot
# restore them, so it does not drop them (apply() says so).
_EXISTING_SQL = """
SELECT pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
    'index', i.indexrelid::bigint, 'table', i.indrelid::bigint, 'name', ic.relname, 'method', am.amname,
    'keys', CASE WHEN i.indexprs IS NULL AND i.indpred IS NULL THEN (
        SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                   'column', a.attname, 'attnum', a.attnum,
                   'opclass', CASE WHEN NOT oc.opcdefault THEN oc.oid::bigint END,
                   'collation', CASE WHEN k.coll <> 0 AND k.coll <> a.attcollation THEN k.coll::bigint END,
                   'desc', CASE WHEN k.opt & 1 = 1 THEN true END,
                   'nulls_first', CASE WHEN (k.opt & 2 = 2) <> (k.opt & 1 = 1) THEN k.opt & 2 = 2 END)) ORDER BY k.n)
        FROM unnest(i.indkey::int2[], i.indclass::oid[], i.indcollation::oid[], i.indoption::int2[])
             WITH ORDINALITY k(attnum, opc, coll, opt, n)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        JOIN pg_catalog.pg_opclass oc ON oc.oid = k.opc
        WHERE k.n <= i.indnkeyatts) END,
    'include', CASE WHEN i.indexprs IS NULL AND i.indpred IS NULL AND i.indnatts > i.indnkeyatts THEN (
        SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('column', a.attname, 'attnum', a.attnum) ORDER BY k.n)
        FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE k.n > i.indnkeyatts) END,
    'with', (SELECT pg_catalog.jsonb_object_agg(pg_catalog.split_part(o, '=', 1), pg_catalog.substr(o, pg_catalog.strpos(o, '=') + 1))
             FROM unnest(ic.reloptions) o))) AS spec
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_am am ON am.oid = ic.relam
WHERE i.indexrelid = $1::oid"""


def _one(db: Database, sql: str, params: list) -> dict | None:
    rows = db.query(sql, params)
    return rows[0] if rows else None


def column(t: Table, name: str) -> dict:
    c = t.columns.get(name)
    if c is None:
        raise Unbuildable(f"column {name!r} is not in {t.schema}.{t.name}")
    return {"column": c.name, "attnum": c.attnum}


def function_call(db: Database, t: Table, func: str, col: str) -> dict:
    """func(col), the function resolved in the catalog."""
    arg = column(t, col)
    row = _one(db, _FUNC_SQL, [func, t.columns[col].typid, t.oid])
    if row is None:
        raise Unbuildable(f"no IMMUTABLE function {func}({t.columns[col].type}) that is built in or owned by "
                          f"the owner of {t.schema}.{t.name}")
    return {"func": int(row["oid"]), "args": [arg]}


def compares(db: Database, t: Table, col: str, op: str, value: str) -> dict:
    """`col = 'value'` (op '=') with the equality of the column type's default btree operator
    class, or `col <> 'value'` (op '<>') with its negator."""
    arg = column(t, col)
    row = _one(db, _EQUALS_SQL, [t.columns[col].typid])
    if row is None:
        raise Unbuildable(f"type {t.columns[col].type} of {col!r} has no default btree equality")
    oid = row["op"] if op == "=" else row["negator"] if op == "<>" else None
    if not oid:
        raise Unbuildable(f"no operator {op} for type {t.columns[col].type} of {col!r}")
    return {"op": int(oid), "args": [arg, {"const": value, "type": int(row["type"])}]}


def opclass(db: Database, name: str) -> int:
    row = _one(db, _OPCLASS_SQL, [name])
    if row is None:
        raise Unbuildable(f"no btree operator class {name}")
    return int(row["oid"])


def existing(db: Database, index_oid: int) -> dict:
    """An existing index by OID, for its drop and for building it again on rollback."""
    row = _one(db, _EXISTING_SQL, [index_oid])
    if row is None:
        raise Unbuildable(f"index {index_oid} does not exist")
    spec = row["spec"]
    return spec if isinstance(spec, dict) else json.loads(spec)
