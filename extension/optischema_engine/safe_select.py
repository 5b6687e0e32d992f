"""What a SELECT that OptiSchema runs may be and may call: the rewrite check runs the
original statement and the model's rewrite, both attacker-controlled text.

Two readings, both by PostgreSQL's own parser, never by matching words:
- `parse()`: libpg_query (pglast) reads the text: one SELECT, no INTO, no FOR UPDATE/SHARE,
  no data-modifying statement anywhere; it is re-written from the tree, so what is checked
  and run below is exactly what was read.
- `resolve()`: the server's parse analysis, as the role that will run the text and with its
  search_path, names every function, operator, type and relation the text uses. It creates
  a temporary SQL function with the text as its body (parse analysis only: nothing is
  planned, folded or executed) in a savepoint that is always rolled back, and reads the
  body's stored query tree.

The allow rule (`refusals()`): every function, also behind each operator, is a built-in of
pg_catalog that is immutable or stable and not on the deny-list; every type is built-in,
a row type or an enum (a domain's CHECK could call anything)."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from pglast import ast, parse_sql
from pglast.parser import ParseError
from pglast.stream import RawStream
from pglast.visitors import Visitor

from .db import Database
from .senders import Failed, Planning, Sender

# Built-ins never run, whatever their volatility says, by name prefix. Most are volatile and
# so refused by the allow rule anyway; the list names why, and catches the stable ones that
# run SQL text or assign a transaction id.
DENIED: tuple[tuple[str, str], ...] = (
    ("pg_sleep", "sleeps"),
    ("pg_advisory", "takes advisory locks"), ("pg_try_advisory", "takes advisory locks"),
    ("pg_terminate_backend", "signals other sessions"), ("pg_cancel_backend", "signals other sessions"),
    ("pg_log_backend_memory_contexts", "signals other sessions"),
    ("pg_reload_conf", "signals the server"), ("pg_rotate_logfile", "signals the server"),
    ("pg_promote", "controls the server"), ("pg_switch_wal", "controls the server"),
    ("pg_backup_", "controls the server"), ("pg_start_backup", "controls the server"),
    ("pg_stop_backup", "controls the server"), ("pg_wal_replay_", "controls the server"),
    ("pg_create_", "creates server objects"), ("pg_drop_", "drops server objects"),
    ("pg_copy_", "creates server objects"), ("pg_import_system_collations", "creates server objects"),
    ("pg_logical_", "uses replication"), ("pg_replication_", "uses replication"),
    ("set_config", "changes settings"),
    ("lo_", "uses large objects"), ("loread", "uses large objects"), ("lowrite", "uses large objects"),
    ("pg_read_file", "reads server files"), ("pg_read_binary_file", "reads server files"),
    ("pg_ls_", "reads server directories"), ("pg_stat_file", "reads server files"),
    ("pg_file_", "writes server files"),
    ("nextval", "changes sequences"), ("setval", "changes sequences"), ("currval", "reads session state"),
    ("lastval", "reads session state"),
    ("txid_current", "assigns a transaction ID"), ("pg_current_xact_id", "assigns a transaction ID"),
    ("pg_export_snapshot", "exports a snapshot"), ("pg_notify", "sends notifications"),
    ("pg_stat_reset", "resets statistics"),
    ("dblink", "connects to databases"),
    ("query_to_xml", "runs SQL text"), ("cursor_to_xml", "runs SQL text"), ("table_to_xml", "runs SQL text"),
    ("schema_to_xml", "runs SQL text"), ("database_to_xml", "runs SQL text"), ("ts_stat", "runs SQL text"),
    ("binary_upgrade_", "is for pg_upgrade only"),
)


class Rejected(Exception):
    """A rewrite (the advisor's or a model's) that may not be shown, and why: raised inside a
    check, recorded as its verdict."""

    def __init__(self, reason: str, evidence: dict | None = None):
        super().__init__(reason)
        self.reason = reason
        self.evidence = evidence or {}


_MODIFYING = tuple(getattr(ast, n) for n in ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt") if hasattr(ast, n))


def denied(name: str) -> str | None:
    """Why the built-in function `name` is never run, or None."""
    low = name.lower()
    return next((why for prefix, why in DENIED if low.startswith(prefix)), None)


@dataclass(frozen=True)
class Select:
    text: str                   # the statement re-written from its tree: what is checked and run
    tree: ast.RawStmt


class _Walk(Visitor):
    """Raises Rejected at the first construct a checked SELECT may not contain."""

    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def visit(self, ancestors, node):
        if isinstance(node, _MODIFYING):
            raise Rejected(f"{self.what} contains a data-modifying statement ({_keyword(node)})")
        if isinstance(node, ast.SelectStmt):
            if node.intoClause is not None:
                raise Rejected(f"{self.what} is a SELECT INTO, which creates a table")
            if node.lockingClause:
                raise Rejected(f"{self.what} locks rows (FOR UPDATE/SHARE)")
        if isinstance(node, ast.FuncCall):
            names = [n.sval for n in node.funcname]
            if len(names) > 1 and names[0].lower() != "pg_catalog":
                raise Rejected(f"{self.what} calls {'.'.join(names)}, which is not a built-in function")
            why = denied(names[-1])
            if why:
                raise Rejected(f"{self.what} calls {names[-1]}, which {why}: OptiSchema never runs it")


def _keyword(node: ast.Node) -> str:
    """DropStmt -> DROP, CreateTableAsStmt -> CREATE TABLE AS."""
    return " ".join(re.findall(r"[A-Z][a-z]*", type(node).__name__.removesuffix("Stmt"))).upper()


def parse(sql: str, what: str) -> Select:
    """The one SELECT of `sql`, or Rejected with the reason (`what` names it in reasons)."""
    try:
        stmts = parse_sql(sql)
    except ParseError as e:
        raise Rejected(f"{what} does not parse: {e}") from None
    if len(stmts) != 1:
        raise Rejected(f"{what} is {len(stmts)} statements, not one")
    stmt = stmts[0].stmt
    if not isinstance(stmt, ast.SelectStmt):
        raise Rejected(f"{what} is not a SELECT but {_keyword(stmt)}")
    _Walk(what)(stmts[0])
    return Select(RawStream()(stmts[0]), stmts[0])


# Fields of the stored query tree (nodeToString) that name what the text runs. Reading more
# fields than needed only refuses more: a name in an alias cannot hide one (its spaces are
# escaped).
_FUNCTION_FIELDS = ("funcid", "opfuncid", "aggfnoid", "winfnoid", "hashfuncid", "negfuncid", "tsmhandler",
                    "startInRangeFunc", "endInRangeFunc")
_OPERATOR_FIELDS = ("opno", "eqop", "sortop")
_TYPE_FIELDS = ("consttype", "resulttype", "paramtype", "minmaxtype", "row_typeid", "refcontainertype", "typeId",
                "type", "coltypes", "funccoltypes", "ctecoltypes", "colTypes", "aggargtypes")
_FIELD = re.compile(r":(\w+) (\d+)")
_OID_LIST = re.compile(r":(\w+) \(o ([\d ]+)\)")


@dataclass(frozen=True)
class Uses:
    """What one statement uses, as the server resolved it (OIDs)."""
    functions: frozenset[int]
    operators: frozenset[int]
    types: frozenset[int]
    relations: frozenset[int]
    refusals: tuple[str, ...]          # query-level facts refused on sight (kind, locking)


def _uses(tree: str) -> Uses:
    fields: dict[str, set[int]] = {}
    for name, oid in _FIELD.findall(tree):
        fields.setdefault(name, set()).add(int(oid))
    for name, oids in _OID_LIST.findall(tree):
        fields.setdefault(name, set()).update(int(o) for o in oids.split())

    def pick(names: tuple[str, ...]) -> frozenset[int]:
        return frozenset(o for n in names for o in fields.get(n, ()) if o)

    refusals = []
    if fields.get("commandType", {1}) != {1}:
        refusals.append("is not only SELECT queries")
    if ":hasModifyingCTE true" in tree:
        refusals.append("modifies data in a WITH query")
    if ":hasForUpdate true" in tree or re.search(r":rowMarks \(", tree):
        refusals.append("locks rows")
    return Uses(pick(_FUNCTION_FIELDS), pick(_OPERATOR_FIELDS + ("opnos",)), pick(_TYPE_FIELDS),
                pick(("relid",)), tuple(refusals))


def resolve(planning: Planning, who: Sender, select: Select, types: list[str]) -> Uses:
    """What `select` uses, resolved by the server as `who` with its search_path: the body of
    a temporary SQL function (BEGIN ATOMIC: parsed and analysed when created, its $n typed
    by `types`, catalog-quoted names as WhatIf.prepare gives them), in a call of a
    planning(read_only=False) block whose savepoint is rolled back, so the function is gone
    afterwards. Every name of the query reading it back is qualified."""
    name = f"optischema_check_{uuid.uuid4().hex[:12]}"
    try:
        rows = planning.run(who, [
            (f"CREATE FUNCTION pg_temp.{name}({', '.join(types)}) RETURNS void LANGUAGE sql"
             f" BEGIN ATOMIC {select.text}; END", False),
            ("SELECT p.prosqlbody::pg_catalog.text AS tree FROM pg_catalog.pg_proc p"
             f" WHERE p.proname OPERATOR(pg_catalog.=) '{name}'"
             " AND p.pronamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()", True)])[1]
    except Failed as e:
        raise Rejected(f"does not resolve: {str(e).strip()}") from None
    return _uses(rows[0]["tree"])


# Names are written schema-qualified whatever the session's search_path: they go into reasons.
_FUNCTIONS_SQL = """
SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(p.proname)
       || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')' AS name,
       p.proname::text AS proname, p.provolatile::text AS volatility,
       p.oid < 16384 AND n.nspname = 'pg_catalog' AS builtin
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE p.oid = ANY ($1::oid[]) ORDER BY p.oid"""
_OPERATORS_SQL = """
SELECT pg_catalog.quote_ident(n.nspname) || '.' || o.oprname || '(' || pg_catalog.format_type(o.oprleft, NULL)
       || ', ' || pg_catalog.format_type(o.oprright, NULL) || ')' AS name,
       o.oprcode::oid::bigint AS code, o.oid < 16384 AND n.nspname = 'pg_catalog' AS builtin
FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
WHERE o.oid = ANY ($1::oid[]) ORDER BY o.oid"""
# Arrays are judged by their element type.
_TYPES_SQL = """
SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(t.typname) AS name,
       t.oid < 16384 OR e.typtype IN ('c', 'e') AS allowed
FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
JOIN pg_catalog.pg_type e ON e.oid = CASE WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN t.typelem ELSE t.oid END
WHERE t.oid = ANY ($1::oid[]) ORDER BY t.oid"""
_VOLATILITY = {"v": "volatile", "s": "stable", "i": "immutable"}


def _oids(oids) -> str:
    return "{" + ",".join(str(o) for o in sorted(oids)) + "}"


def refusals(db: Database, uses: Uses) -> list[str]:
    """Why the statement may not run: empty when everything it uses passes the allow rule
    (16384 is FirstNormalObjectId: below it, what initdb created)."""
    out = list(uses.refusals)
    operators = db.query(_OPERATORS_SQL, [_oids(uses.operators)])
    out += [f"uses operator {o['name']}, which is not built in" for o in operators if not o["builtin"]]
    codes = {int(o["code"]) for o in operators if o["builtin"]}
    for f in db.query(_FUNCTIONS_SQL, [_oids(uses.functions | codes)]):
        if not f["builtin"]:
            out.append(f"calls {f['name']}, which is not a built-in function")
        elif denied(f["proname"]):
            out.append(f"calls {f['name']}, which {denied(f['proname'])}")
        elif f["volatility"] not in ("i", "s"):
            out.append(f"calls {f['name']}, which is {_VOLATILITY.get(f['volatility'], f['volatility'])}")
    out += [f"uses type {t['name']}, which is not built in (a domain's checks or a type's functions "
            "could run anything)" for t in db.query(_TYPES_SQL, [_oids(uses.types)]) if not t["allowed"]]
    return list(dict.fromkeys(out))
