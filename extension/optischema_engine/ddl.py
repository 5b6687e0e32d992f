"""Index DDL from catalog-resolved names: quoting, deterministic names, create/drop statements."""
from __future__ import annotations

import hashlib
import re

MAX_IDENT = 63
# Keywords that must be quoted as column/index names (reserved in PostgreSQL 15)
_RESERVED = frozenset("""all analyse analyze and any array as asc asymmetric authorization binary both case cast
check collate collation column concurrently constraint create cross current_catalog current_date current_role
current_schema current_time current_timestamp current_user default deferrable desc distinct do else end except
false fetch for foreign freeze from full grant group having ilike in initially inner intersect into is isnull join
lateral leading left like limit localtime localtimestamp natural not notnull null offset on only or order outer
overlaps placing primary references returning right select session_user similar some symmetric table tablesample
then to trailing true union unique user using variadic verbose when where window with""".split())


def quote_ident(name: str) -> str:
    """Quote an identifier only when PostgreSQL needs it (like quote_ident())."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) and name not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def _truncate_bytes(text: str, limit: int) -> str:
    raw = text.encode("utf-8")[:limit]
    return raw.decode("utf-8", errors="ignore")


def index_name(table: str, parts: list[str], identity: str, taken: set[str] = frozenset()) -> str:
    """`<table>_<parts>_idx`, at most 63 bytes. A short hash of `identity` (the full
    definition) is appended when the plain name would be truncated or is already taken,
    so the same candidate always gets the same name."""
    words = [re.sub(r"[^a-z0-9_]+", "_", p.lower()).strip("_") for p in [table, *parts]]
    plain = "_".join(w for w in words if w) + "_idx"
    if len(plain.encode()) <= MAX_IDENT and plain not in taken:
        return plain
    digest = hashlib.sha1(identity.encode()).hexdigest()[:8]
    return _truncate_bytes(plain[:-4], MAX_IDENT - len(digest) - 6).rstrip("_") + f"_{digest}_idx"


def create_index(name: str | None, schema: str, table: str, key_sql: list[str], include: list[str],
                 predicate: str | None, concurrently: bool = True) -> str:
    sql = (f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}{quote_ident(name) + ' ' if name else ''}ON "
           f"{qualified(schema, table)} USING btree ({', '.join(key_sql)})")
    if include:
        sql += f" INCLUDE ({', '.join(include)})"
    if predicate:
        sql += f" WHERE {predicate}"
    return sql


def drop_index(schema: str, name: str) -> str:
    return f"DROP INDEX CONCURRENTLY IF EXISTS {qualified(schema, name)}"


def concurrent_indexdef(indexdef: str) -> str:
    """pg_get_indexdef output ('CREATE [UNIQUE] INDEX name ON ...') made CONCURRENTLY."""
    return re.sub(r"^CREATE (UNIQUE )?INDEX ", lambda m: f"CREATE {m.group(1) or ''}INDEX CONCURRENTLY ",
                  indexdef, count=1)
