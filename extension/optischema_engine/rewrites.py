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
  the rewrite would not)."""
from __future__ import annotations

import copy
from dataclasses import dataclass

from pglast import ast, parse_sql
from pglast.enums import A_Expr_Kind, BoolExprType, JoinType, MinMaxOp, SubLinkType
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
                "a.attnotnull AS notnull FROM pg_catalog.pg_attribute a "
                "WHERE a.attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass({name}) "
                "AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped")


@dataclass(frozen=True)
class Candidate:
    pattern: str            # cast_over_column | correlated_subquery | not_in | type_mismatch
    sql: str                # the whole statement, rewritten
    explanation: str


@dataclass(frozen=True)
class Column:
    type: str
    notnull: bool


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
            self._cache[name] = {r["name"]: Column(r["type"], bool(r["notnull"])) for r in rows}
        return self._cache[name]

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


def _day_ranges(tree, cat: _Catalog) -> list[Candidate]:
    out = []
    for select, ctes in _selects(tree):
        scope = None
        for conj in _conjuncts(select.whereClause):
            if not _is_eq(conj):
                continue
            scope = scope or cat.scope(select, ctes)
            for side, value in ((conj.lexpr, conj.rexpr), (conj.rexpr, conj.lexpr)):
                found = _day_of(side, scope)
                if found is None or _has(value, (ast.ColumnRef, ast.SubLink)):
                    continue
                col, how, typ = found
                v = lambda: copy.deepcopy(value)   # noqa: E731
                c = lambda: copy.deepcopy(col)     # noqa: E731
                if how == "cast":
                    day = v if _is_date_cast(value) else \
                        lambda: ast.TypeCast(arg=v(), typeName=ast.TypeName(names=(ast.String(sval="date"),)))  # noqa: E731
                    new = _and([_op(">=", c(), day()), _op("<", c(), _op("+", day(), ast.A_Const(val=ast.Integer(ival=1))))])
                    what = f"{RawStream()(side)} = v -> a range of the column: v::date <= column < v::date + 1"
                else:
                    iv = ast.TypeCast(arg=ast.A_Const(val=ast.String(sval="1 day")),
                                      typeName=ast.TypeName(names=(ast.String(sval="interval"),)))
                    trunc = ast.FuncCall(funcname=(ast.String(sval="pg_catalog"), ast.String(sval="date_trunc")),
                                         args=(ast.A_Const(val=ast.String(sval="day")), v()))
                    new = _and([_op(">=", c(), v()), _op("<", c(), _op("+", v(), iv)), _op("=", v(), trunc)])
                    what = f"{RawStream()(side)} = v -> a range of the column: v <= column < v + interval '1 day'"
                out.append((select, conj, new, f"{what} ({typ}; the same day boundaries in every time zone: "
                                                f"both sides read it in the session's), which an index on the column serves"))
                break
    return [_candidate(tree, "cast_over_column", s, old, new, why) for s, old, new, why in out]


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
    # the parse tree's Integer is 32 bits: a larger constant is a numeric one (Float), as parsed
    num = lambda n: ast.A_Const(  # noqa: E731
        val=ast.Integer(ival=n) if -2 ** 31 <= n < 2 ** 31 else ast.Float(fval=str(n)))
    fn = lambda f, *args: ast.FuncCall(funcname=(ast.String(sval="pg_catalog"), ast.String(sval=f)),  # noqa: E731
                                       args=args)
    if op == "=":
        new, bound = "=", v()
        when = _and([_op("=", v(), fn("trunc", v())), _op(">=", v(), num(low)), _op("<", v(), num(high))])
    else:
        limit = {"min": low, "max": high - 1}
        new, (guard, edge), f, add, (clamp, end) = _RANGES[op]
        bound = fn(f, v()) if not add else _op("+" if add > 0 else "-", fn(f, v()), num(abs(add)))
        bound = ast.MinMaxExpr(op=clamp, args=(bound, num(limit[end])))
        when = _op(guard, v(), num(limit[edge]))
    cast = ast.TypeCast(arg=bound, typeName=ast.TypeName(names=(ast.String(sval="pg_catalog"), ast.String(sval=name))))
    return new, ast.CaseExpr(args=(ast.CaseWhen(expr=when, result=cast),))


def _type_mismatch(tree, cat: _Catalog) -> list[Candidate]:
    out = []
    for select, ctes in _selects(tree):
        scope = None
        for conj in _conjuncts(select.whereClause):
            op = [n.sval for n in conj.name] if isinstance(conj, ast.A_Expr) and \
                conj.kind == A_Expr_Kind.AEXPR_OP else None
            if not (op and op[0] in _MIRRORED and len(op) == 1 and
                    (_is_numeric(conj.lexpr) or _is_numeric(conj.rexpr))):
                continue
            scope = scope or cat.scope(select, ctes)
            for side, value, as_is in ((conj.lexpr, conj.rexpr, True), (conj.rexpr, conj.lexpr, False)):
                hit = scope.resolve(side) if _is_numeric(value) else None
                if hit is None or hit[2].type not in _INTEGERS:
                    continue
                typ = hit[2].type
                how, bound = _as_integer(op[0] if as_is else _MIRRORED[op[0]], value, typ)
                new = _op(how, copy.deepcopy(side), bound)
                out.append(_candidate(
                    tree, "type_mismatch", select, conj, new,
                    f"{RawStream()(conj)}: the {typ} column is compared as numeric ({hit[1]}::numeric), which no "
                    f"index on it serves -> the column compared with the value as a {typ} (" +
                    ("when it is a whole number in the type's range, else NULL: an integer never equals a fraction"
                     if op[0] == "=" else "rounded to the whole number that keeps the same rows, within the type's "
                     "range, else NULL where no value of the type passes") +
                    f"). Better: bind the parameter as {typ} in the application"))
                break
    return out


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
    for find in (_day_ranges, _correlated, _not_in, _type_mismatch):
        out += find(stmts[0].stmt, cat)
    return out, None
