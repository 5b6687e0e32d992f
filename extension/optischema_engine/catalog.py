"""Catalog facts the advisor needs, resolved from pg_catalog (never from query text)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .db import Database


@dataclass
class Column:
    name: str
    attnum: int
    type: str
    c_collation: bool        # LIKE 'prefix%' can use a plain btree (collation C/POSIX or none)
    typid: int = 0           # pg_type oid
    dedup: bool = False      # a btree key of it can be deduplicated (its default opclass has equalimage)
    length: int = -1         # pg_attribute.attlen: bytes, or -1 for a varlena
    align: int = 4           # pg_attribute.attalign, in bytes


@dataclass
class ExistingIndex:
    oid: int
    name: str
    definition: str          # pg_get_indexdef
    keys: tuple[str, ...]    # normalized key items: column name or expression text, with opclass if not default
    include: tuple[str, ...]
    predicate: str | None
    unique: bool
    primary: bool
    exclusion: bool
    valid: bool
    constraint: str | None   # backing constraint type: p, u, x
    am: str
    size_bytes: int          # a partitioned index: its partitions' indexes together
    columns: frozenset[str]  # every column it mentions (keys, INCLUDE, expressions, predicate)
    signature: tuple         # equal for exact duplicates: am, keys+opclasses, INCLUDE, predicate, options, collations
    partition: bool = False  # attached to a partitioned index: it goes only with that one


@dataclass
class Table:
    oid: int
    schema: str
    name: str
    reltuples: float
    columns: dict[str, Column] = field(default_factory=dict)
    indexes: list[ExistingIndex] = field(default_factory=list)
    fk_columns: list[tuple[str, ...]] = field(default_factory=list)   # referencing column lists
    partitioned: bool = False
    ancestors: list[tuple[str, str]] = field(default_factory=list)    # a partition's: (schema, name), nearest first
    leaves: list[tuple[str, str]] = field(default_factory=list)       # a partitioned table's leaf partitions
    pages: float = 0.0                                                # pg_class.relpages


_TABLE_SQL = """
SELECT c.oid::bigint AS oid, n.nspname AS schema, c.relname AS name, c.reltuples::float8 AS reltuples,
       c.relpages::float8 AS pages,
       c.relkind = 'p' AS partitioned,
       ARRAY(SELECT pg_catalog.jsonb_build_array(an.nspname, a.relname)::text
             FROM pg_catalog.pg_partition_ancestors(c.oid) WITH ORDINALITY u(relid, k)
             JOIN pg_catalog.pg_class a ON a.oid = u.relid JOIN pg_catalog.pg_namespace an ON an.oid = a.relnamespace
             WHERE c.relispartition AND u.relid <> c.oid ORDER BY u.k) AS ancestors,
       ARRAY(SELECT pg_catalog.jsonb_build_array(ln.nspname, l.relname)::text
             FROM pg_catalog.pg_partition_tree(c.oid) p
             JOIN pg_catalog.pg_class l ON l.oid = p.relid JOIN pg_catalog.pg_namespace ln ON ln.oid = l.relnamespace
             WHERE c.relkind = 'p' AND p.isleaf ORDER BY 1) AS leaves
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'm')"""
_COLUMNS_SQL = """
SELECT a.attname AS name, a.attnum::int AS attnum, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
       a.atttypid::bigint AS typid, a.attlen::int AS length,
       CASE a.attalign WHEN 'c' THEN 1 WHEN 's' THEN 2 WHEN 'i' THEN 4 ELSE 8 END AS align,
       COALESCE(co.collname IN ('C', 'POSIX') OR (co.collname = 'default' AND d.datcollate IN ('C', 'POSIX')),
                a.attcollation = 0) AS c_collation,
       -- char(n) keys are never deduplicated (bt_metap().allequalimage is false, measured on
       -- PostgreSQL 15 under collation "C" too), whatever its operator class says
       coalesce(co.collisdeterministic, true) AND ty.oid <> 'pg_catalog.bpchar'::pg_catalog.regtype AND EXISTS (
           SELECT 1 FROM pg_catalog.pg_opclass oc
           JOIN pg_catalog.pg_am am ON am.oid = oc.opcmethod AND am.amname = 'btree'
           JOIN pg_catalog.pg_amproc p ON p.amprocfamily = oc.opcfamily AND p.amprocnum = 4
                AND p.amproclefttype = oc.opcintype AND p.amprocrighttype = oc.opcintype
           WHERE oc.opcdefault
             AND (oc.opcintype = ty.oid OR EXISTS (SELECT 1 FROM pg_catalog.pg_cast k WHERE k.castsource = ty.oid
                                                   AND k.casttarget = oc.opcintype AND k.castmethod = 'b'))
             AND p.amproc IN ('pg_catalog.btequalimage'::pg_catalog.regproc,
                              'pg_catalog.btvarstrequalimage'::pg_catalog.regproc)) AS dedup
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
CROSS JOIN (SELECT datcollate FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) d
WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped"""
_INDEXES_SQL = """
SELECT i.indexrelid::bigint AS oid, ic.relname AS name, pg_catalog.pg_get_indexdef(i.indexrelid) AS definition,
       i.indisunique AS unique, i.indisprimary AS primary, i.indisexclusion AS exclusion,
       i.indisvalid AND i.indisready AS valid, i.indnkeyatts::int AS nkey, am.amname AS am,
       CASE WHEN ic.relkind = 'I' THEN (SELECT sum(pg_catalog.pg_relation_size(p.relid))::bigint
                                         FROM pg_catalog.pg_partition_tree(i.indexrelid) p)
            ELSE pg_catalog.pg_relation_size(i.indexrelid)::bigint END AS size_bytes, ic.relispartition AS partition,
       pg_catalog.pg_get_expr(i.indpred, i.indrelid) AS predicate,
       (SELECT con.contype::text FROM pg_catalog.pg_constraint con WHERE con.conindid = i.indexrelid
          AND con.contype IN ('p', 'u', 'x') LIMIT 1) AS constraint,
       ARRAY(SELECT pg_catalog.pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnatts) k) AS items,
       ARRAY(SELECT CASE WHEN opc.opcdefault THEN '' ELSE opc.opcname END
             FROM unnest(i.indclass) WITH ORDINALITY u(opc_oid, k)
             JOIN pg_catalog.pg_opclass opc ON opc.oid = u.opc_oid ORDER BY u.k) AS opclasses,
       pg_catalog.array_to_string(i.indoption::int2[], ',') AS options,
       pg_catalog.array_to_string(i.indcollation::oid[], ',') AS collations
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_am am ON am.oid = ic.relam
WHERE i.indrelid = $1::oid
ORDER BY ic.relname"""
_FK_SQL = """
SELECT ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY u(attnum, k)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = u.attnum
             ORDER BY u.k)::text[] AS cols
FROM pg_catalog.pg_constraint con WHERE con.conrelid = $1::oid AND con.contype = 'f'"""


def mentioned_columns(text: str, columns: dict[str, Column]) -> set[str]:
    """Columns of the table named in an index expression or predicate (string literals ignored)."""
    bare = re.sub(r"'(?:[^']|'')*'", "''", text)
    found = set()
    for m in re.finditer(r'"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z_0-9$]*)', bare):
        name = m.group(1).replace('""', '"') if m.group(1) else m.group(2)
        if name in columns:
            found.add(name)
    return found


class Catalog:
    """Per-run cache of tables by (schema, name)."""

    def __init__(self, db: Database):
        self.db = db
        self._tables: dict[tuple[str, str], Table | None] = {}

    def table(self, schema: str, name: str) -> Table | None:
        key = (schema, name)
        if key not in self._tables:
            self._tables[key] = self._load(schema, name)
        return self._tables[key]

    def tables(self) -> list[Table]:
        return [t for t in self._tables.values() if t is not None]

    def _load(self, schema: str, name: str) -> Table | None:
        rows = self.db.query(_TABLE_SQL, [schema, name])
        if not rows:
            return None
        r = rows[0]
        t = Table(int(r["oid"]), r["schema"], r["name"], float(r["reltuples"] or 0.0), partitioned=bool(r["partitioned"]),
                  pages=float(r["pages"] or 0.0),
                  ancestors=[tuple(json.loads(a)) for a in r["ancestors"] or []],
                  leaves=[tuple(json.loads(a)) for a in r["leaves"] or []])
        for c in self.db.query(_COLUMNS_SQL, [t.oid]):
            t.columns[c["name"]] = Column(c["name"], int(c["attnum"]), c["type"], bool(c["c_collation"]), int(c["typid"]),
                                          bool(c["dedup"]), int(c["length"]), int(c["align"]))
        for i in self.db.query(_INDEXES_SQL, [t.oid]):
            items = list(i["items"])
            nkey = int(i["nkey"])
            opcs = list(i["opclasses"])
            keys = tuple(f"{items[k]} {opcs[k]}".strip() if k < len(opcs) else items[k] for k in range(nkey))
            mentioned = set()
            for item in items:
                mentioned |= mentioned_columns(item, t.columns)
            if i["predicate"]:
                mentioned |= mentioned_columns(i["predicate"], t.columns)
            t.indexes.append(ExistingIndex(
                int(i["oid"]), i["name"], i["definition"], keys, tuple(items[nkey:]), i["predicate"],
                bool(i["unique"]), bool(i["primary"]), bool(i["exclusion"]), bool(i["valid"]), i["constraint"],
                i["am"], int(i["size_bytes"] or 0), frozenset(mentioned),
                (i["am"], keys, tuple(items[nkey:]), i["predicate"], i["options"], i["collations"]),
                bool(i["partition"])))
        t.fk_columns = [tuple(r["cols"]) for r in self.db.query(_FK_SQL, [t.oid])]
        return t
