"""Names the model wrote, resolved in the catalog. Unquoted names fold to lower case as in
PostgreSQL; anything but a plain (optionally schema-qualified) name is refused."""
from __future__ import annotations

from optischema_engine.catalog import Catalog, Table
from optischema_engine.db import Database
from optischema_engine.sqltext import tokens

from .verdict import Rejected

# Schemas a proposal may never touch.
SYSTEM_SCHEMAS = "{pg_catalog,information_schema,optischema,pg_toast}"
_TABLES_SQL = """
SELECT n.nspname AS schema, c.relname AS name
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND c.relname = $1
  AND ($2::text IS NULL OR n.nspname = $2) AND n.nspname <> ALL ($3::text[])
ORDER BY 1"""


def _parts(text: str) -> list[str] | None:
    """['schema', 'name'] or ['name'] from `a.b` / `"A".b` / `b`; None if it is anything else."""
    toks = tokens(text)
    names = toks[0::2]
    dots = toks[1::2]
    if not names or len(names) > 2 or len(dots) != len(names) - 1 or any(d.text != "." for d in dots):
        return None
    if any(t.kind not in ("word", "ident") for t in names):
        return None
    return [t.text[1:-1].replace('""', '"') if t.kind == "ident" else t.text.lower() for t in names]


def column_name(text: str) -> str:
    parts = _parts(text)
    if parts is None or len(parts) != 1:
        raise Rejected(f"{text!r} is not a plain column name (expressions and qualifiers are not accepted)")
    return parts[0]


def table(db: Database, catalog: Catalog, text: str) -> Table:
    parts = _parts(text)
    if parts is None:
        raise Rejected(f"{text!r} is not a table name")
    schema, name = (parts if len(parts) == 2 else (None, parts[0]))
    rows = db.query(_TABLES_SQL, [name, schema, SYSTEM_SCHEMAS])
    if not rows:
        raise Rejected(f"table {text!r} does not exist (hallucinated or not a user table)")
    if len(rows) > 1:
        raise Rejected(f"table {text!r} is ambiguous: " + ", ".join(f"{r['schema']}.{r['name']}" for r in rows))
    found = catalog.table(rows[0]["schema"], rows[0]["name"])
    if found is None:
        raise Rejected(f"table {text!r} vanished while it was checked")
    return found


def columns(t: Table, texts: list[str]) -> list[str]:
    out: list[str] = []
    for text in texts:
        col = column_name(text)
        if col not in t.columns:
            raise Rejected(f"column {text!r} does not exist in {t.schema}.{t.name} (hallucinated); "
                           f"its columns are: {', '.join(t.columns)}")
        if col in out:
            raise Rejected(f"column {col!r} is named twice")
        out.append(col)
    return out
