"""Rewrites the advisor proposes without an LLM: patterns that make a statement slow by how
it is written, recognised in its parse tree (libpg_query, through pglast) with the columns
resolved in the catalog as its sender resolves them, and rewritten in that tree (the SQL is
deparsed from it, never pasted together). Nothing here is shown before proof.prove() has
shown the rewrite cheaper and returning the same rows.

- a cast or function over a column in an equality (`created_at::date = $1`, `date(col) =
  $1`, `date_trunc('day', col) = $1`, timestamp or timestamptz columns): a range on the
  column itself, which an index on it serves. `col >= $1::date AND col < $1::date + 1` and
  `col::date` both read the date in the session's time zone, whatever it is, and a day is
  a calendar day (23 or 25 hours across a daylight saving change), never 24 hours;
- extract(year from col) or date_part('year', col) = v, an index leading with col: the
  condition kept, within a range that holds every row it is true of (Jan 1 of year v to Dec
  31, the whole range where v is no whole year of the type: no cast error);
- a no-op over a column an index leads with (`col + 0`, `col * 1`, `col || ''`), where it
  leaves the column's value and type: the column itself;
- coalesce(col, x) compared with v, an index leading with col: `col = v OR (col IS NULL AND
  the original)`, a BitmapOr of two index scans;
- a correlated scalar subquery of an aggregate that is NULL over no rows (avg, sum, min,
  max), run once per outer row (TPC-H Q17, Q20): a LEFT JOIN with the subquery grouped by
  its correlation columns, run once;
- `x NOT IN (SELECT y ...)`: `NOT EXISTS (... AND y = x)` only where neither side can be
  NULL (both plain columns declared NOT NULL, of tables no outer join makes nullable): with
  a NULL the two differ, so otherwise it is never proposed;
- an integer column compared with a numeric (`id = $1::numeric`: PostgreSQL compares
  `id::numeric = $1`, which no index on `id` serves): the column compared with the value
  cast to the column's type, where the value is a whole number in the type's range, else
  with NULL (no row, as before: an integer never equals a fraction); a CASE, so the cast
  is never evaluated for a value it would reject. A range the same way: `col > v` is
  `col >= floor(v) + 1`, `col >= v` is `col >= ceil(v)`, `col < v` is `col <= ceil(v) - 1`,
  `col <= v` is `col <= floor(v)`, the bound clamped to the type's range, NULL where no
  value of the type passes (NaN and Infinity are above every number, as in numeric). A
  float8 is not taken (a bigint read as float8 loses digits: the original matches values
  the rewrite would not);
- a deep `OFFSET m LIMIT k` (constants: m at least ten pages of k) under an ORDER BY of NOT
  NULL columns of the one relation read that hold a unique key, all one direction: keyset
  pagination, `(a, b) > ($n, $n+1)` (`<` descending) for the previous page's last key, new
  parameters after the statement's own; the proof derives their values from row m of the
  original order (Candidate.derive). Not where the order could have ties or NULLs (rows
  would be skipped or repeated), nor where a window or set-returning function counts rows."""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

from pglast import ast, parse_sql
from pglast.enums import (A_Expr_Kind, BoolExprType, CoercionForm, JoinType, LimitOption, MinMaxOp, NullTestType,
                          SortByDir, SubLinkType)
from pglast.parser import ParseError
from pglast.stream import RawStream

from .senders import Planning, Sender, first_line
from .sqltext import quote_literal

_TIMESTAMPS = ("timestamp without time zone", "timestamp with time zone")
_NULL_ON_EMPTY = {"avg", "sum", "min", "max"}
_ARITHMETIC = {"+", "-", "*", "/"}
# an integer type: its name for a cast, and [low, high) of its range
_INTEGERS = {"smallint": ("int2", -2 ** 15, 2 ** 15), "integer": ("int4", -2 ** 31, 2 ** 31),
             "bigint": ("int8", -2 ** 63, 2 ** 63)}
_MIRRORED = {"=": "=", "<": ">", ">": "<", "<=": ">=", ">=": "<="}
# col OP v, an integer col: (its operator then, the condition on v for any value of the
# type to pass, the bound's function of v, what is added to it, the clamp to the range)
_RANGES = {">": (">=", ("<", "max"), "floor", 1, (MinMaxOp.IS_GREATEST, "min")),
           ">=": (">=", ("<=", "max"), "ceil", 0, (MinMaxOp.IS_GREATEST, "min")),
           "<": ("<=", (">", "min"), "ceil", -1, (MinMaxOp.IS_LEAST, "max")),
           "<=": ("<=", (">=", "min"), "floor", 0, (MinMaxOp.IS_LEAST, "max"))}
_COLUMNS_SQL = ("SELECT a.attname::pg_catalog.text AS name, pg_catalog.format_type(a.atttypid, NULL) AS type, "
                "a.attnotnull AS notnull, EXISTS (SELECT 1 FROM pg_catalog.pg_index i "
                "JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid "
                "JOIN pg_catalog.pg_am m ON m.oid OPERATOR(pg_catalog.=) c.relam "
                "WHERE i.indrelid OPERATOR(pg_catalog.=) a.attrelid AND i.indkey[0] OPERATOR(pg_catalog.=) a.attnum "
                "AND i.indisvalid AND m.amname OPERATOR(pg_catalog.=) 'btree') AS indexed "
                "FROM pg_catalog.pg_attribute a "
                "WHERE a.attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass({name}) "
                "AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped")
# The key columns of each unique index that makes rows unique whatever the statement reads:
# valid, immediate (a deferred one allows duplicates until commit), over plain columns, not
# partial, each key column's collation the column's own (equal under the column's collation
# is then equal under the index's), of a table no other inherits from (an index of a parent
# holds none of its children's rows; a partitioned table's unique index holds all of them)
_UNIQUE_SQL = ("SELECT pg_catalog.array_agg(a.attname::pg_catalog.text) AS cols FROM pg_catalog.pg_index i "
               "JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indrelid "
               "CROSS JOIN LATERAL pg_catalog.generate_series(0, i.indnkeyatts OPERATOR(pg_catalog.-) 1) k "
               "JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid "
               "AND a.attnum OPERATOR(pg_catalog.=) i.indkey[k] "
               "WHERE i.indrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass({name}) AND i.indisunique "
               "AND i.indisvalid AND i.indimmediate AND i.indpred IS NULL AND i.indexprs IS NULL "
               "AND (c.relkind OPERATOR(pg_catalog.=) 'p' OR NOT c.relhassubclass) "
               "GROUP BY i.indexrelid "
               "HAVING pg_catalog.bool_and(i.indcollation[k] OPERATOR(pg_catalog.=) a.attcollation)")
# Whether a function of one of these names, in any schema, returns a set
_SETS_SQL = ("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.proretset "
             "AND p.proname OPERATOR(pg_catalog.=) ANY (ARRAY[{names}]::pg_catalog.name[])) AS sets")


@dataclass(frozen=True)
class Candidate:
    pattern: str            # cast_over_column | correlated_subquery | not_in | type_mismatch |
                            # no_op_over_column | coalesce_over_column | keyset_pagination
    sql: str                # the whole statement, rewritten
    explanation: str
    # Where the rewrite takes parameters the original does not (after the original's): a
    # SELECT of the original's parameters whose one row is their values as text, for
    # proof.prove() to compare the two on the same rows
    derive: str | None = None


@dataclass(frozen=True)
class Column:
    type: str
    notnull: bool
    indexed: bool = False       # the first key of a valid btree index


@dataclass
class _Item:
    """A relation of a FROM list: the name it goes by, its columns, and whether an outer
    join can give it NULL rows."""
    name: str
    columns: dict[str, Column]
    node: ast.RangeVar
    nullable: bool


class _Scope:
    """The relations one SELECT's FROM list names (None where it has anything else: then
    unqualified names cannot be resolved with certainty)."""

    def __init__(self, items: list[_Item] | None):
        self.items = items

    def resolve(self, ref: ast.Node) -> tuple[_Item, str, Column] | None:
        if self.items is None or not isinstance(ref, ast.ColumnRef):
            return None
        names = [f.sval for f in ref.fields if isinstance(f, ast.String)]
        if len(names) != len(ref.fields) or len(names) not in (1, 2):
            return None
        hits = [(i, names[-1], i.columns[names[-1]]) for i in self.items
                if names[-1] in i.columns and (len(names) == 1 or i.name == names[0])]
        return hits[0] if len(hits) == 1 else None

    def names(self) -> set[str]:
        return {i.name for i in self.items or []}


class _Catalog:
    """Columns of the relations a text names, as its sender resolves the names (its
    search_path)."""

    def __init__(self, planning: Planning, who: Sender):
        self.planning, self.who = planning, who
        self._cache: dict[str, dict[str, Column]] = {}

    def columns(self, rv: ast.RangeVar) -> dict[str, Column]:
        name = ".".join(_quote(p) for p in (rv.schemaname, rv.relname) if p)
        if name not in self._cache:
            rows = self.planning.query(self.who, _COLUMNS_SQL.format(name=quote_literal(name)))
            self._cache[name] = {r["name"]: Column(r["type"], bool(r["notnull"]), bool(r["indexed"])) for r in rows}
        return self._cache[name]

    def unique_keys(self, rv: ast.RangeVar) -> list[frozenset[str]]:
        """The column sets no two rows of the relation share (_UNIQUE_SQL)."""
        name = ".".join(_quote(p) for p in (rv.schemaname, rv.relname) if p)
        rows = self.planning.query(self.who, _UNIQUE_SQL.format(name=quote_literal(name)))
        return [frozenset(r["cols"]) for r in rows]

    def returns_sets(self, names: set[str]) -> bool:
        """Whether a function of one of these names may return a set (a row per element)."""
        if not names:
            return False
        rows = self.planning.query(self.who, _SETS_SQL.format(names=", ".join(quote_literal(n) for n in sorted(names))))
        return bool(rows[0]["sets"])

    def scope(self, select: ast.SelectStmt, ctes: set[str]) -> _Scope:
        items: list[_Item] = []

        def add(node, nullable: bool) -> bool:
            if isinstance(node, ast.RangeVar):
                if node.schemaname is None and node.relname in ctes:
                    return False
                cols = self.columns(node)
                if not cols:
                    return False
                items.append(_Item(node.alias.aliasname if node.alias else node.relname, cols, node, nullable))
                return True
            if isinstance(node, ast.JoinExpr) and not node.isNatural and not node.usingClause:
                jt = node.jointype
                return add(node.larg, nullable or jt in (JoinType.JOIN_RIGHT, JoinType.JOIN_FULL)) and \
                    add(node.rarg, nullable or jt in (JoinType.JOIN_LEFT, JoinType.JOIN_FULL))
            return False

        ok = all(add(n, False) for n in select.fromClause or ())
        return _Scope(items if ok else None)


def _quote(name: str) -> str:
    return name if name.isidentifier() and name == name.lower() else '"' + name.replace('"', '""') + '"'


def _col(*names: str) -> ast.ColumnRef:
    return ast.ColumnRef(fields=tuple(ast.String(sval=n) for n in names))


def _op(name: str, left, right) -> ast.A_Expr:
    return ast.A_Expr(kind=A_Expr_Kind.AEXPR_OP, name=(ast.String(sval=name),), lexpr=left, rexpr=right)


def _number(n: int) -> ast.A_Const:
    # the parse tree's Integer is 32 bits: a larger constant is a numeric one (Float), as parsed
    return ast.A_Const(val=ast.Integer(ival=n) if -2 ** 31 <= n < 2 ** 31 else ast.Float(fval=str(n)))


def _call(name: str, *args) -> ast.FuncCall:
    return ast.FuncCall(funcname=(ast.String(sval="pg_catalog"), ast.String(sval=name)), args=args)


def _cast(arg, *names: str) -> ast.TypeCast:
    return ast.TypeCast(arg=arg, typeName=ast.TypeName(names=tuple(ast.String(sval=n) for n in names)))


def _and(args: list) -> ast.Node | None:
    if not args:
        return None
    return args[0] if len(args) == 1 else ast.BoolExpr(boolop=BoolExprType.AND_EXPR, args=tuple(args))


def _conjuncts(where) -> list:
    if isinstance(where, ast.BoolExpr) and where.boolop == BoolExprType.AND_EXPR:
        return [c for a in where.args for c in _conjuncts(a)]
    return [] if where is None else [where]


def _is_eq(node) -> bool:
    return isinstance(node, ast.A_Expr) and node.kind == A_Expr_Kind.AEXPR_OP and \
        [n.sval for n in node.name] == ["="]


def _nodes(node):
    """Every node under `node` (itself included)."""
    if isinstance(node, ast.Node):
        yield node
        for name in node:
            yield from _nodes(getattr(node, name))
    elif isinstance(node, (list, tuple)):
        for x in node:
            yield from _nodes(x)


def _has(node, kinds) -> bool:
    return any(isinstance(n, kinds) for n in _nodes(node))


def _selects(node):
    """Every SELECT of the tree with its CTE names (a CTE can shadow a table's name)."""
    ctes = {c.ctename for n in _nodes(node) if isinstance(n, ast.WithClause) for c in n.ctes}
    return [(n, ctes) for n in _nodes(node) if isinstance(n, ast.SelectStmt) and n.op == 0 and n.fromClause]


def _top_replace(select: ast.SelectStmt, old, new) -> None:
    """Replace a conjunct of select's WHERE (which may sit inside nested ANDs)."""
    def walk(node):
        if node is old:
            return new
        if isinstance(node, ast.BoolExpr) and node.boolop == BoolExprType.AND_EXPR:
            node.args = tuple(walk(a) for a in node.args)
        return node
    select.whereClause = walk(select.whereClause)


# -- a cast or function over a column ------------------------------------------------------
def _day_of(node, scope: _Scope) -> tuple[ast.Node, str, str] | None:
    """(column, how, its type) when `node` is col::date, date(col) or date_trunc('day', col)
    of a timestamp column."""
    col, how = None, None
    if _is_date_cast(node):
        col, how = node.arg, "cast"
    elif isinstance(node, ast.FuncCall) and node.args and not node.agg_star and node.over is None:
        fname = [n.sval for n in node.funcname]
        if fname in (["date"], ["pg_catalog", "date"]) and len(node.args) == 1:
            col, how = node.args[0], "cast"
        elif fname in (["date_trunc"], ["pg_catalog", "date_trunc"]) and len(node.args) == 2 \
                and isinstance(node.args[0], ast.A_Const) and getattr(node.args[0].val, "sval", "") == "day":
            col, how = node.args[1], "trunc"
    hit = scope.resolve(col) if col is not None else None
    if hit is None or hit[2].type not in _TIMESTAMPS:
        return None
    return col, how, hit[2].type


def _is_date_cast(node) -> bool:
    return isinstance(node, ast.TypeCast) and [n.sval for n in node.typeName.names][-1] == "date" \
        and not node.typeName.arrayBounds


def _comparisons(tree, cat: _Catalog, pattern: str, rewrite) -> list[Candidate]:
    """Candidates of `pattern`: each WHERE conjunct that compares (=, <, <=, >, >=) a side
    with a value (neither a column nor a subquery in it) for which rewrite(conjunct, op,
    side, value, scope) gives (what replaces the conjunct, why it is the same)."""
    out = []
    for select, ctes in _selects(tree):
        scope = None
        for conj in _conjuncts(select.whereClause):
            if not (isinstance(conj, ast.A_Expr) and conj.kind == A_Expr_Kind.AEXPR_OP and len(conj.name) == 1
                    and conj.name[0].sval in _MIRRORED):
                continue
            scope = scope or cat.scope(select, ctes)
            for side, value in ((conj.lexpr, conj.rexpr), (conj.rexpr, conj.lexpr)):
                found = None if _has(value, (ast.ColumnRef, ast.SubLink)) else \
                    rewrite(conj, conj.name[0].sval, side, value, scope)
                if found is not None:
                    out.append((select, conj, *found))
                    break
    return [_candidate(tree, pattern, s, old, new, why) for s, old, new, why in out]


def _function_ranges(tree, cat: _Catalog) -> list[Candidate]:
    return _comparisons(tree, cat, "cast_over_column", _function_range)


def _function_range(conj, op: str, side, value, scope: _Scope) -> tuple[ast.Node, str] | None:
    return None if op != "=" else _day_range(side, value, scope) or _year_range(conj, side, value, scope)


def _day_range(side, value, scope: _Scope) -> tuple[ast.Node, str] | None:
    found = _day_of(side, scope)
    if found is None:
        return None
    col, how, typ = found
    v = lambda: copy.deepcopy(value)   # noqa: E731
    c = lambda: copy.deepcopy(col)     # noqa: E731
    if how == "cast":
        day = v if _is_date_cast(value) else lambda: _cast(v(), "date")  # noqa: E731
        new = _and([_op(">=", c(), day()), _op("<", c(), _op("+", day(), ast.A_Const(val=ast.Integer(ival=1))))])
        what = f"{RawStream()(side)} = v -> a range of the column: v::date <= column < v::date + 1"
    else:
        iv = _cast(ast.A_Const(val=ast.String(sval="1 day")), "interval")
        trunc = _call("date_trunc", ast.A_Const(val=ast.String(sval="day")), v())
        new = _and([_op(">=", c(), v()), _op("<", c(), _op("+", v(), iv)), _op("=", v(), trunc)])
        what = f"{RawStream()(side)} = v -> a range of the column: v <= column < v + interval '1 day'"
    return new, (f"{what} ({typ}; the same day boundaries in every time zone: both sides read it in the "
                 f"session's), which an index on the column serves")


def _year_of(node, scope: _Scope) -> tuple[ast.Node, str] | None:
    """(column, its type) when `node` is extract(year from col) or date_part('year', col) of
    a date or timestamp column an index leads with."""
    if not (isinstance(node, ast.FuncCall) and len(node.args or ()) == 2 and not node.agg_star and node.over is None
            and [n.sval for n in node.funcname] in (["pg_catalog", "extract"], ["date_part"],
                                                    ["pg_catalog", "date_part"])
            and isinstance(node.args[0], ast.A_Const) and isinstance(node.args[0].val, ast.String)
            and node.args[0].val.sval.lower() == "year"):
        return None
    hit = scope.resolve(node.args[1])
    if hit is None or not hit[2].indexed or hit[2].type not in ("date",) + _TIMESTAMPS:
        return None
    return node.args[1], hit[2].type


def _year_range(conj, side, value, scope: _Scope) -> tuple[ast.Node, str] | None:
    """The original condition and, before it is evaluated, a range that holds every row it
    can be true of: from make_date(v, 1, 1) to make_date(v, 12, 31) (+ 1 day for a
    timestamp) where v is a whole year those calls and casts take (not 0: there is no year
    0), else the whole range (-infinity to infinity: a fraction, NaN, NULL, +-Infinity or a
    year at the end of the type's range, which the original then decides alone)."""
    found = _year_of(side, scope)
    if found is None:
        return None
    col, typ = found
    n = lambda: _cast(copy.deepcopy(value), "pg_catalog", "numeric")   # noqa: E731
    # the last year whose bound converts to the column's type (the next Jan 1 for a timestamp)
    last = 5874897 if typ == "date" else 294275

    def bound(month: int, day: int, otherwise: str):
        date = _call("make_date", _cast(n(), "pg_catalog", "int4"), _number(month), _number(day))
        if typ != "date" and month == 12:
            date = _op("+", date, _number(1))
        whole = _and([_op("=", n(), _call("trunc", n())), _op(">=", n(), _number(-4713)),
                      _op("<=", n(), _number(last)), _op("<>", n(), _number(0))])
        return ast.CaseExpr(args=(ast.CaseWhen(expr=whole, result=date),),
                            defresult=_cast(ast.A_Const(val=ast.String(sval=otherwise)), "pg_catalog", "date"))
    # the original first: its value's type is the parameter's (numeric for extract, float8 for date_part)
    new = _and([copy.deepcopy(conj), _op(">=", copy.deepcopy(col), bound(1, 1, "-infinity")),
                _op("<=", copy.deepcopy(col), bound(12, 31, "infinity"))])
    end = "make_date(v, 12, 31)" + (" + 1" if typ != "date" else "")
    return new, (f"{RawStream()(side)} = v -> the same condition within a range of the column that holds every row "
                 f"it is true of: make_date(v, 1, 1) <= column <= {end} where v is a whole year (not 0), else the "
                 f"whole range, so no cast error and no row for a fraction ({typ}; both sides read the year in the "
                 f"session's time zone), which an index on the column serves")


# -- a no-op or coalesce() over a column an index leads with ---------------------------------
_SAME_TYPE = ("integer", "bigint", "numeric", "double precision")
# operator -> (its identity, the column types for which the result is of the column's type
# and compares as the column's value does, whether the identity may come first). Not smallint
# (smallint + 0 is an integer: a parameter compared with it changes type), not real (real + 0
# is a double precision), not varchar or char (|| gives text; char's trailing spaces go).
# A double precision's -0 + 0 is 0, which compares equal to -0; NaN and Infinity stay as they are.
_NO_OPS = {"+": (0, _SAME_TYPE + ("date",), True), "-": (0, _SAME_TYPE + ("date",), False),
           "*": (1, _SAME_TYPE, True), "||": ("", ("text",), True)}
# coalesce(col, x) is of col's type for these with x an untyped literal or a parameter used
# nowhere else; with an integer literal for the numbers but smallint, a numeric one for two
_COALESCED = {ast.String: ("smallint", "text", "character varying", "date", "uuid", "boolean") + _SAME_TYPE
              + _TIMESTAMPS,
              ast.Integer: _SAME_TYPE, ast.Float: ("numeric", "double precision")}


def _no_ops(tree, cat: _Catalog) -> list[Candidate]:
    return _comparisons(tree, cat, "no_op_over_column", _no_op)


def _no_op(conj, op: str, side, value, scope: _Scope) -> tuple[ast.Node, str] | None:
    if not (isinstance(side, ast.A_Expr) and side.kind == A_Expr_Kind.AEXPR_OP and len(side.name) == 1
            and side.name[0].sval in _NO_OPS):
        return None
    unit, types, either = _NO_OPS[side.name[0].sval]
    for col, other in ((side.lexpr, side.rexpr), (side.rexpr, side.lexpr))[:2 if either else 1]:
        hit = scope.resolve(col)
        if hit is None or not hit[2].indexed or hit[2].type not in types or not isinstance(other, ast.A_Const) \
                or other.isnull or type(other.val) is not (ast.String if unit == "" else ast.Integer) \
                or getattr(other.val, "sval" if unit == "" else "ival") != unit:
            continue
        return _compared(conj, side, copy.deepcopy(col)), (
            f"{RawStream()(side)} {op} v -> {hit[1]} {op} v: for every value of the column ({hit[2].type}) it is "
            f"the column's own value, of its type, but hides the column from its index, which then serves it")
    return None


def _coalesces(tree, cat: _Catalog) -> list[Candidate]:
    return _comparisons(tree, cat, "coalesce_over_column", functools.partial(_coalesce, tree))


def _coalesce(tree, conj, op: str, side, value, scope: _Scope) -> tuple[ast.Node, str] | None:
    """`col op v OR (col IS NULL AND the original)` for coalesce(col, x) op v, x a constant
    or parameter that leaves coalesce() of the column's type; v is evaluated twice, so it
    calls no function."""
    if not (isinstance(side, ast.CoalesceExpr) and len(side.args) == 2) or _has(value, ast.FuncCall):
        return None
    col, x = side.args
    hit = scope.resolve(col)
    if hit is None or not hit[2].indexed:
        return None
    if isinstance(x, ast.ParamRef):
        ok = hit[2].type in _COALESCED[ast.String] and \
            sum(isinstance(p, ast.ParamRef) and p.number == x.number for p in _nodes(tree)) == 1
    else:
        ok = isinstance(x, ast.A_Const) and not x.isnull and hit[2].type in _COALESCED.get(type(x.val), ())
    if not ok:
        return None
    null = ast.NullTest(arg=copy.deepcopy(col), nulltesttype=NullTestType.IS_NULL)
    new = ast.BoolExpr(boolop=BoolExprType.OR_EXPR, args=(
        _compared(conj, side, copy.deepcopy(col)), _and([null, copy.deepcopy(conj)])))
    return new, (f"{RawStream()(side)} {op} v -> {hit[1]} {op} v OR ({hit[1]} IS NULL AND the original): where "
                 f"the column is not NULL, coalesce() is its value, of its type ({hit[2].type}); where it is NULL "
                 f"the original decides. An index on the column serves both (a BitmapOr)")


def _compared(conj: ast.A_Expr, side, new) -> ast.A_Expr:
    """Comparison `conj` with operand `side` replaced by `new`."""
    return ast.A_Expr(kind=conj.kind, name=conj.name,
                      lexpr=new if conj.lexpr is side else copy.deepcopy(conj.lexpr),
                      rexpr=new if conj.rexpr is side else copy.deepcopy(conj.rexpr))


# -- a correlated scalar subquery ------------------------------------------------------
def _scalar_target(select: ast.SelectStmt) -> ast.Node | None:
    """The one target of a subquery when it is arithmetic over aggregates that are NULL
    over no rows (so the value is NULL where no row matches, as the subquery's is)."""
    if len(select.targetList or ()) != 1:
        return None
    expr = select.targetList[0].val
    aggs = 0

    def ok(node) -> bool:
        nonlocal aggs
        if isinstance(node, ast.FuncCall):
            name = [n.sval for n in node.funcname]
            if name[-1] not in _NULL_ON_EMPTY or len(name) > 1 and name[0] != "pg_catalog" or node.over is not None \
                    or node.agg_filter is not None or node.agg_star or _has(node.args, (ast.FuncCall, ast.SubLink)):
                return False
            aggs += 1
            return True
        if isinstance(node, ast.A_Expr):
            return node.kind == A_Expr_Kind.AEXPR_OP and [n.sval for n in node.name][-1] in _ARITHMETIC and \
                (node.lexpr is None or ok(node.lexpr)) and ok(node.rexpr)
        if isinstance(node, ast.TypeCast):
            return ok(node.arg)
        return isinstance(node, ast.ParamRef) or isinstance(node, ast.A_Const) and not node.isnull
    return expr if ok(expr) and aggs else None


def _plain(select: ast.SelectStmt) -> bool:
    return select.op == 0 and not (select.withClause or select.groupClause or select.havingClause or
                                   select.distinctClause or select.sortClause or select.limitCount or
                                   select.limitOffset or select.windowClause or select.lockingClause or
                                   select.intoClause)


def _correlated(tree, cat: _Catalog) -> list[Candidate]:
    out = []
    n = 0
    for select, ctes in _selects(tree):
        outer = None
        for conj in _conjuncts(select.whereClause):
            for link in (x for x in _nodes(conj) if isinstance(x, ast.SubLink)):
                if link.subLinkType != SubLinkType.EXPR_SUBLINK or not isinstance(link.subselect, ast.SelectStmt):
                    continue
                sub = link.subselect
                target = _scalar_target(sub) if _plain(sub) else None
                if target is None or not all(isinstance(f, ast.RangeVar) for f in sub.fromClause or ()):
                    continue
                outer = outer or cat.scope(select, ctes)
                inner = cat.scope(sub, ctes)
                if outer.items is None or inner.items is None:
                    continue
                keys, filters, owner, bad = [], [], None, False
                for c in _conjuncts(sub.whereClause):
                    refs = [r for r in _nodes(c) if isinstance(r, ast.ColumnRef)]
                    if _has(c, ast.SubLink):
                        bad = True
                    elif all(inner.resolve(r) for r in refs):
                        filters.append(c)
                    elif _is_eq(c) and isinstance(c.lexpr, ast.ColumnRef) and isinstance(c.rexpr, ast.ColumnRef):
                        i, o = (c.lexpr, c.rexpr) if inner.resolve(c.lexpr) else (c.rexpr, c.lexpr)
                        hit = outer.resolve(o) if inner.resolve(i) and not inner.resolve(o) else None
                        if hit is None or owner not in (None, hit[0].name) or \
                                not any(x is hit[0].node for x in select.fromClause):
                            bad = True
                        else:
                            owner = hit[0].name
                            keys.append((i, o, hit, c.lexpr is i))
                    else:
                        bad = True
                if bad or not keys or any(not inner.resolve(r) for r in _nodes(target) if isinstance(r, ast.ColumnRef)):
                    continue
                n += 1
                alias = f"optischema_s{n}"
                grouped = ast.SelectStmt(
                    targetList=tuple([ast.ResTarget(name=f"optischema_k{k}", val=copy.deepcopy(i))
                                      for k, (i, _, _, _) in enumerate(keys, 1)]
                                     + [ast.ResTarget(name="optischema_v", val=copy.deepcopy(target))]),
                    fromClause=copy.deepcopy(sub.fromClause), whereClause=copy.deepcopy(_and(filters)),
                    groupClause=tuple(copy.deepcopy(i) for i, _, _, _ in keys), op=0)
                on = _and([_op("=", _col(alias, f"optischema_k{k}"), _col(hit[0].name, hit[1])) if inner_left
                           else _op("=", _col(hit[0].name, hit[1]), _col(alias, f"optischema_k{k}"))
                           for k, (_, _, hit, inner_left) in enumerate(keys, 1)])
                rel = keys[0][2][0].node
                out.append((select, rel, link, ast.JoinExpr(
                    jointype=JoinType.JOIN_LEFT, larg=rel,
                    rarg=ast.RangeSubselect(lateral=False, subquery=grouped, alias=ast.Alias(aliasname=alias)),
                    quals=on), alias, len(keys)))
    if not out:
        return []
    results = []
    for select, rel, link, join, alias, nkeys in out:
        tree2 = copy.deepcopy(tree)
        # the same nodes in the copy, found by their place in a walk of the tree
        index = {id(x): k for k, x in enumerate(_nodes(tree))}
        copied = list(_nodes(tree2))
        s2, r2, l2 = (copied[index[id(x)]] for x in (select, rel, link))
        join2 = copy.deepcopy(join)
        join2.larg = r2
        s2.fromClause = tuple(join2 if x is r2 else x for x in s2.fromClause)
        _swap(s2, l2, _col(alias, "optischema_v"))
        results.append(Candidate(
            "correlated_subquery", RawStream()(tree2),
            f"a scalar subquery correlated on {nkeys} column{'s' if nkeys > 1 else ''} runs once per outer row: "
            f"it is computed once, grouped by {'those columns' if nkeys > 1 else 'that column'}, and LEFT JOINed "
            f"({alias}; NULL where no row matches, as the subquery's value is)"))
    return results


def _swap(root, old, new) -> None:
    """Replace node `old` (by identity) wherever it is referenced under `root`."""
    for node in list(_nodes(root)):
        for name in node:
            value = getattr(node, name)
            if value is old:
                setattr(node, name, new)
            elif isinstance(value, tuple) and any(v is old for v in value):
                setattr(node, name, tuple(new if v is old else v for v in value))


# -- NOT IN ------------------------------------------------------------------------------
def _not_in(tree, cat: _Catalog) -> list[Candidate]:
    out = []
    for select, ctes in _selects(tree):
        outer = None
        for conj in _conjuncts(select.whereClause):
            if not (isinstance(conj, ast.BoolExpr) and conj.boolop == BoolExprType.NOT_EXPR and len(conj.args) == 1):
                continue
            link = conj.args[0]
            if not (isinstance(link, ast.SubLink) and link.subLinkType == SubLinkType.ANY_SUBLINK
                    and not link.operName and isinstance(link.testexpr, ast.ColumnRef)):
                continue
            sub = link.subselect
            if not (_plain(sub) and len(sub.targetList or ()) == 1 and isinstance(sub.targetList[0].val, ast.ColumnRef)
                    and all(isinstance(f, ast.RangeVar) for f in sub.fromClause or ())):
                continue
            outer = outer or cat.scope(select, ctes)
            inner = cat.scope(sub, ctes)
            x, y = outer.resolve(link.testexpr), inner.resolve(sub.targetList[0].val)
            # NULL on either side makes NOT IN and NOT EXISTS differ: both must be impossible
            if x is None or y is None or not (x[2].notnull and y[2].notnull) or x[0].nullable or y[0].nullable \
                    or outer.names() & inner.names():
                continue
            exists = copy.deepcopy(sub)
            exists.targetList = (ast.ResTarget(val=ast.A_Const(val=ast.Integer(ival=1))),)
            exists.sortClause = None
            exists.whereClause = _and(_conjuncts(exists.whereClause) +
                                      [_op("=", _col(x[0].name, x[1]), copy.deepcopy(sub.targetList[0].val))])
            new = ast.BoolExpr(boolop=BoolExprType.NOT_EXPR, args=(
                ast.SubLink(subLinkType=SubLinkType.EXISTS_SUBLINK, subselect=exists),))
            out.append(_candidate(tree, "not_in", select, conj, new,
                                  f"{x[0].name}.{x[1]} NOT IN (SELECT {y[1]} ...) -> NOT EXISTS: both columns are "
                                  "NOT NULL (a NULL on either side would make them differ), and NOT EXISTS "
                                  "plans as an anti-join"))
    return out


# -- an integer column compared with a numeric ---------------------------------------------
def _is_numeric(node) -> bool:
    """A parameter or constant cast to numeric (a number the parse tree gives its type)."""
    return isinstance(node, ast.TypeCast) and [n.sval for n in node.typeName.names] == ["pg_catalog", "numeric"] \
        and not node.typeName.arrayBounds and (isinstance(node.arg, ast.ParamRef) or
                                               isinstance(node.arg, ast.A_Const) and not node.arg.isnull)


def _as_integer(op: str, value, typ: str) -> tuple[str, ast.CaseExpr]:
    """(operator, bound) such that `col operator bound` is `col op value` for every value
    of an integer column of type typ: CASE WHEN some value of typ can pass THEN the bound
    as typ END (the cast evaluated only where it cannot fail)."""
    name, low, high = _INTEGERS[typ]
    v = lambda: copy.deepcopy(value)   # noqa: E731
    if op == "=":
        new, bound = "=", v()
        when = _and([_op("=", v(), _call("trunc", v())), _op(">=", v(), _number(low)), _op("<", v(), _number(high))])
    else:
        limit = {"min": low, "max": high - 1}
        new, (guard, edge), f, add, (clamp, end) = _RANGES[op]
        bound = _call(f, v()) if not add else _op("+" if add > 0 else "-", _call(f, v()), _number(abs(add)))
        bound = ast.MinMaxExpr(op=clamp, args=(bound, _number(limit[end])))
        when = _op(guard, v(), _number(limit[edge]))
    return new, ast.CaseExpr(args=(ast.CaseWhen(expr=when, result=_cast(bound, "pg_catalog", name)),))


def _type_mismatch(tree, cat: _Catalog) -> list[Candidate]:
    return _comparisons(tree, cat, "type_mismatch", _as_its_type)


def _as_its_type(conj, op: str, side, value, scope: _Scope) -> tuple[ast.Node, str] | None:
    hit = scope.resolve(side) if _is_numeric(value) else None
    if hit is None or hit[2].type not in _INTEGERS:
        return None
    typ = hit[2].type
    how, bound = _as_integer(op if side is conj.lexpr else _MIRRORED[op], value, typ)
    return _op(how, copy.deepcopy(side), bound), (
        f"{RawStream()(conj)}: the {typ} column is compared as numeric ({hit[1]}::numeric), which no "
        f"index on it serves -> the column compared with the value as a {typ} (" +
        ("when it is a whole number in the type's range, else NULL: an integer never equals a fraction"
         if op == "=" else "rounded to the whole number that keeps the same rows, within the type's "
         "range, else NULL where no value of the type passes") +
        f"). Better: bind the parameter as {typ} in the application")


def _candidate(tree, pattern: str, select, old, new, why: str) -> Candidate:
    """The whole statement with `old` (a WHERE conjunct of `select`) replaced by `new`,
    deparsed; the tree itself is left as it was."""
    saved = select.whereClause
    try:
        _top_replace(select, old, new)
        sql = RawStream()(tree)
    finally:
        select.whereClause = saved
        # _top_replace rebuilt the AND lists in place: put the conjunct back
        _top_replace(select, new, old)
    return Candidate(pattern, sql, why)


# -- a deep OFFSET ------------------------------------------------------------------------
# Deep: OFFSET m >= _DEEP_PAGES * LIMIT k, ten pages in or further: the statement reads at
# least 11 times the rows it returns and throws more than 90% of what it reads away. Keyset
# pagination changes the application's interface (it passes the last row's key, not a page
# number): worth it where it saves most of what a call reads, not for the first pages.
_DEEP_PAGES = 10
# Select-list expressions FigureColname names "?column?" (no column of a table is)
_UNNAMED = (ast.A_Const, ast.BoolExpr, ast.NullTest, ast.BooleanTest)


def _whole(node) -> int | None:
    """The value of a whole-number constant (a large one is a Float in the parse tree)."""
    if isinstance(node, ast.A_Const) and not node.isnull:
        if isinstance(node.val, ast.Integer):
            return node.val.ival
        if isinstance(node.val, ast.Float) and node.val.fval.isdigit():
            return int(node.val.fval)
    return None


def _output_names(target: ast.ResTarget) -> set[str] | None:
    """The name(s) PostgreSQL may give a select-list item (FigureColname), None where not
    worked out here: an ORDER BY of a bare name sorts by the output column of that name
    before the table's column (`SELECT id::text ... ORDER BY id` sorts text)."""
    if target.name is not None:
        return {target.name}

    def names(node) -> set[str] | None:
        if isinstance(node, ast.ColumnRef):
            return {f.sval for f in node.fields[-1:] if isinstance(f, ast.String)}
        if isinstance(node, ast.TypeCast):
            inner = names(node.arg)
            return None if inner is None else inner | {node.typeName.names[-1].sval}
        if isinstance(node, ast.FuncCall):
            return {node.funcname[-1].sval}
        if isinstance(node, ast.A_Expr):
            return {"nullif" if node.kind == A_Expr_Kind.AEXPR_NULLIF else "?column?"}
        return {"?column?"} if isinstance(node, _UNNAMED) else None
    return names(target.val)


def _keyset(tree, cat: _Catalog) -> list[Candidate]:
    """`ORDER BY key LIMIT k OFFSET m`, m a deep constant, the key plain NOT NULL columns of
    the one relation read that hold a unique key, all ascending or all descending: the page
    after the previous page's last row, `key > (that row's key)`, which an index on the key
    finds without reading the m rows before it."""
    s = tree
    m, k = _whole(s.limitOffset), _whole(s.limitCount)
    if not (s.op == 0 and s.sortClause and m is not None and k is not None and 1 <= k and m >= _DEEP_PAGES * k
            and s.limitOption != LimitOption.LIMIT_OPTION_WITH_TIES and len(s.fromClause or ()) == 1
            and isinstance(s.fromClause[0], ast.RangeVar)) or \
            s.withClause or s.distinctClause or s.groupClause or s.havingClause or s.windowClause or \
            s.lockingClause or s.intoClause:
        return []
    # a window function or a set-returning function counts rows the key does not
    calls = [n for n in _nodes(s.targetList) if isinstance(n, ast.FuncCall)]
    if any(c.over is not None for c in calls):
        return []
    scope = cat.scope(s, set())
    if scope.items is None:
        return []
    sorts = []
    for b in s.sortClause:
        hit = scope.resolve(b.node) if b.useOp is None and b.sortby_dir != SortByDir.SORTBY_USING else None
        if hit is None or not hit[2].notnull:
            return []
        sorts.append((b, hit[1]))
    columns = [name for _, name in sorts]
    desc = {b.sortby_dir == SortByDir.SORTBY_DESC for b, _ in sorts}
    if len(desc) != 1 or len(set(columns)) != len(columns):
        return []
    bare = {name for b, name in sorts if len(b.node.fields) == 1}
    for t in s.targetList:
        itself = scope.resolve(t.val)
        if itself is not None and t.name in (None, itself[1]) or \
                isinstance(t.val, ast.ColumnRef) and isinstance(t.val.fields[-1], ast.A_Star):
            continue
        found = _output_names(t)
        if found is None or found & bare:
            return []
    keys = [key for key in cat.unique_keys(scope.items[0].node) if key <= set(columns)]
    if not keys or cat.returns_sets({c.funcname[-1].sval for c in calls}):
        return []
    first = max((p.number for p in _nodes(s) if isinstance(p, ast.ParamRef)), default=0) + 1
    params = [ast.ParamRef(number=first + i) for i in range(len(sorts))]
    cols = [copy.deepcopy(b.node) for b, _ in sorts]
    op = "<" if desc == {True} else ">"
    pred = _op(op, cols[0], params[0]) if len(cols) == 1 else \
        _op(op, ast.RowExpr(args=tuple(cols), row_format=CoercionForm.COERCE_IMPLICIT_CAST),
            ast.RowExpr(args=tuple(params), row_format=CoercionForm.COERCE_IMPLICIT_CAST))
    rewrite = copy.deepcopy(s)
    rewrite.limitOffset = None
    rewrite.whereClause = _and(_conjuncts(rewrite.whereClause) + [pred])
    # row m of the original order, its key as text; the ORDER BY qualified, so that it names
    # the table's columns and not these outputs
    alias = scope.items[0].name
    probe = copy.deepcopy(s)
    probe.targetList = tuple(ast.ResTarget(name=f"optischema_k{i}", val=_cast(_col(alias, c), "pg_catalog", "text"))
                             for i, c in enumerate(columns, 1))
    probe.sortClause = tuple(ast.SortBy(node=_col(alias, c), sortby_dir=b.sortby_dir, sortby_nulls=b.sortby_nulls)
                             for b, c in sorts)
    probe.limitCount, probe.limitOffset = _number(1), _number(m - 1)
    new = ", ".join(f"${p.number}" for p in params)
    key = sorted(min(keys, key=len))
    return [Candidate(
        "keyset_pagination", RawStream()(rewrite),
        f"OFFSET {m} reads the {m} rows before the page and throws them away to return {k} ({m + k} rows read per "
        f"call) -> keyset pagination on the ORDER BY key ({', '.join(columns)}): {new} "
        f"{'is' if len(params) == 1 else 'are'} the {', '.join(columns)} of the previous page's last row (row {m} "
        f"of the order here), and the first page is the statement without `{RawStream()(pred)}`. The key is "
        f"NOT NULL and holds a unique key ({', '.join(key)}), so the order is total and no row is skipped or "
        f"repeated; a btree index on ({', '.join(columns)}) finds the page without reading the rows before it",
        RawStream()(probe))]


def candidates(planning: Planning, who: Sender, text: str) -> tuple[list[Candidate], str | None]:
    """The rewrites of statement `text` worth proving, or why it was not looked at (one
    SELECT only); columns resolved as `who` (in a planning() block)."""
    try:
        stmts = parse_sql(text)
    except ParseError as e:
        return [], f"does not parse: {first_line(e)}"
    if len(stmts) != 1 or not isinstance(stmts[0].stmt, ast.SelectStmt):
        return [], "not a single SELECT"
    cat = _Catalog(planning, who)
    out: list[Candidate] = []
    tree = stmts[0].stmt
    for find in (_function_ranges, _correlated, _not_in, _type_mismatch, _no_ops, _coalesces, _keyset):
        out += find(tree, cat)
    return out, None
