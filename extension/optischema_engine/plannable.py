"""Normalized text made plannable.

pg_stat_statements replaces constants with `$n` wherever they stand, which leaves text
PostgreSQL cannot prepare: `date $1`, `timestamp with time zone $2` and `interval $3 day`
(typed literals, where its grammar takes only a string), `extract($4 from x)` (a field
name), `$5 + $6` and `sum(case when .. then $7 else $8 end)` (constants whose type came
from their spelling: "operator is not unique: unknown + unknown", "function sum(text) does
not exist"). libpg_query (pglast) parses normalized text (it accepts `$n` where a constant
goes), so the text is understood with PostgreSQL's own grammar and lexer; the edits are
made at the parser's locations in the captured text, which is otherwise left as it was:
same parameters, same numbers, same comments (but one inside a typed literal).

- `<type> $n` -> `$n::<type>` (an interval's field qualifier stays after it: `$3::interval day`)
- `extract($n from x)` -> `pg_catalog.extract($n::text, x)`, the function EXTRACT is; its
  field, and date_part's and date_trunc's, gets a value when the plan needs one (`given`)
- arithmetic between constants only, and CASE results that are all constants under
  arithmetic or sum()/avg(): each constant `::integer`. The spelled type is lost; integer
  keeps every comparison indexable (a numeric column compares with it through an implicit
  cast of the constant, an integer column of any width with a cross-type operator), which
  numeric would not (an integer column would be cast), and no value is bound to it.
- if that does not prepare either, every constant under arithmetic and in an ARRAY[...]
  `::integer` (variants(), plannable(numbers=True)).

The result is planned as the role that sent the text, like the text itself (senders.py):
the edits move a typed literal's own type name into a cast and add nothing but `::integer`,
`::text` and the schema-qualified built-in pg_catalog.extract.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pglast import ast, parse_sql
from pglast.enums import A_Expr_Kind, CoercionForm
from pglast.parser import ParseError, scan

_ARITHMETIC = {"+", "-", "*", "/", "%", "^"}
_NUMERIC_AGGREGATES = {"sum", "avg"}
# A value valid for every type the function takes (extract(epoch ...) works for date, time,
# timestamp and interval; date_trunc takes no date): any value plans alike, the field only
# changes the result's value.
_FIELD_VALUES = {"extract": "epoch", "date_part": "epoch", "date_trunc": "day"}


@dataclass(frozen=True)
class Plannable:
    text: str                                   # what is PREPAREd
    rewrites: tuple[str, ...] = ()              # what was changed, by kind (no text, no constant)
    given: dict[int, str] = field(default_factory=dict)   # parameter -> a value it can take

    @property
    def rewritten(self) -> bool:
        return bool(self.rewrites)


@dataclass
class _Edit:
    start: int          # character offsets in the text
    end: int
    replacement: str


def variants(text: str) -> list[Plannable]:
    """The texts to try to prepare, in order: plannable(text), then, if different,
    plannable(text, numbers=True)."""
    first = plannable(text)
    second = plannable(text, numbers=True)
    return [first] if second.text == first.text else [first, second]


def plannable(text: str, numbers: bool = False) -> Plannable:
    """`text` as PostgreSQL can prepare it (itself when it can already, or when the parser
    cannot read it: PREPARE then says why).

    numbers: also type as integer each constant that is an operand of arithmetic or an
    element of an ARRAY[...]. For when the text without it does not prepare: a constant
    spelled as a string is unknown to PostgreSQL in the normalized text as it was in the
    original, so both resolve alike; when they do not (`d > current_date - $1`: date - date
    is taken, an integer; `id = any(array[$1, $2])`: text[]), the constant was a number."""
    try:
        stmts = parse_sql(text)
        toks = scan(text)
    except ParseError:
        return Plannable(text)
    if len(stmts) != 1:
        return Plannable(text)
    params = {t.start: t.end + 1 for t in toks if t.name == "PARAM"}
    if not params:
        return Plannable(text)
    r = _Rewriter(text, toks, params, numbers)
    r.visit(stmts[0].stmt)
    if not r.edits:
        return Plannable(text, (), r.given)
    out = text
    for e in sorted(r.edits, key=lambda e: -e.start):
        out = out[:e.start] + e.replacement + out[e.end:]
    try:
        if len(parse_sql(out)) != 1:
            return Plannable(text, (), r.given)
    except ParseError:
        return Plannable(text, (), r.given)
    return Plannable(out, tuple(sorted(set(r.kinds))), r.given)


def _name(names) -> str:
    """Last part of a qualified name, if it is a plain built-in one (unqualified or pg_catalog)."""
    parts = [getattr(n, "sval", None) for n in names or ()]
    if len(parts) == 2 and parts[0] == "pg_catalog" or len(parts) == 1:
        return parts[-1] or ""
    return ""


class _Rewriter:
    def __init__(self, text: str, toks, params: dict[int, int], numbers: bool):
        self.text = text
        self.numbers = numbers
        self.toks = toks
        self.params = params                     # start -> end (exclusive) of each $n
        self.edits: list[_Edit] = []
        self.kinds: list[str] = []
        self.given: dict[int, str] = {}
        self.typed: set[int] = set()             # parameters given a type, by location

    # -- walking ----------------------------------------------------------------------
    def visit(self, node) -> None:
        if isinstance(node, tuple):
            for n in node:
                self.visit(n)
            return
        if not isinstance(node, ast.Node):
            return
        if isinstance(node, ast.TypeCast) and self._typed_literal(node):
            return
        if isinstance(node, ast.FuncCall):
            self._field(node)
            if _name(node.funcname) in _NUMERIC_AGGREGATES and node.args and len(node.args) == 1 \
                    and self._untyped(node.args[0]):
                self._integer(node.args[0], "integer constants under an aggregate")
        if isinstance(node, ast.A_Expr) and self._arithmetic(node):
            if self._untyped(node.rexpr) and (node.lexpr is None or self._untyped(node.lexpr)):
                self._integer(node, "integer arithmetic between constants")
            for side in (node.lexpr, node.rexpr):
                if isinstance(side, ast.CaseExpr) and self._untyped(side) or \
                        self.numbers and isinstance(side, ast.ParamRef):
                    self._integer(side, "integer constants under arithmetic")
        if self.numbers and isinstance(node, ast.A_ArrayExpr):
            for e in node.elements or ():
                if isinstance(e, ast.ParamRef):
                    self._integer(e, "integer array elements")
        for name in type(node).__slots__:
            self.visit(getattr(node, name, None))

    # -- typed literals -------------------------------------------------------------
    def _typed_literal(self, node: ast.TypeCast) -> bool:
        """`<type> $n` (the type is written before the constant; `$n::type` and CAST have it
        after) -> `$n::<type>`."""
        p, tn = node.arg, node.typeName
        if not isinstance(p, ast.ParamRef) or tn is None or tn.location is None or p.location is None \
                or not 0 <= tn.location < p.location or p.location not in self.params:
            return False
        spelled = self._without_comments(tn.location, p.location).strip()
        end = self.params[p.location]
        self.edits.append(_Edit(tn.location, end, f"{self.text[p.location:end]}::{spelled}"))
        self.kinds.append("typed literal as a cast")
        return True

    def _without_comments(self, start: int, end: int) -> str:
        """text[start:end] with each comment a space (a `--` comment would otherwise swallow
        what follows once moved)."""
        out = list(self.text[start:end])
        for t in self.toks:
            if t.name in ("SQL_COMMENT", "C_COMMENT") and start <= t.start < end:
                for k in range(t.start, min(t.end + 1, end)):
                    out[k - start] = " "
        return "".join(out)

    # -- extract / date_part / date_trunc -------------------------------------------------
    def _field(self, node: ast.FuncCall) -> None:
        name = _name(node.funcname)
        if name not in _FIELD_VALUES or not node.args or len(node.args) != 2 \
                or not isinstance(node.args[0], ast.ParamRef):
            return
        p = node.args[0]
        self.given[p.number] = _FIELD_VALUES[name]
        if name == "extract" and node.funcformat == CoercionForm.COERCE_SQL_SYNTAX and p.location in self.params:
            # EXTRACT ( $n FROM ...: the keyword through FROM become the function's call
            after = next((t for t in self.toks if t.start >= self.params[p.location]), None)
            if after is None or after.name != "FROM" or node.location is None:
                return
            self.edits.append(_Edit(node.location, after.end + 1,
                                    f"pg_catalog.extract({self.text[p.location:self.params[p.location]]}::text,"))
            self.kinds.append("extract field as a parameter")

    # -- constants whose type came from their spelling -------------------------------------
    @staticmethod
    def _arithmetic(node: ast.A_Expr) -> bool:
        return node.kind == A_Expr_Kind.AEXPR_OP and len(node.name or ()) == 1 and \
            getattr(node.name[0], "sval", None) in _ARITHMETIC

    def _untyped(self, node) -> bool:
        """Is the node's type left to its constants alone (unknown to PostgreSQL)?"""
        if isinstance(node, ast.ParamRef):
            return node.location in self.params
        if isinstance(node, ast.A_Const):
            return bool(node.isnull)
        if isinstance(node, ast.CaseExpr):
            results = [w.result for w in node.args or ()] + ([node.defresult] if node.defresult is not None else [])
            return all(self._untyped(r) for r in results) and any(self._leaves(r) for r in results)
        if isinstance(node, ast.A_Expr) and self._arithmetic(node):
            return self._untyped(node.rexpr) and (node.lexpr is None or self._untyped(node.lexpr))
        return False

    def _leaves(self, node) -> list[ast.ParamRef]:
        if isinstance(node, ast.ParamRef):
            return [node] if node.location in self.params else []
        if isinstance(node, ast.CaseExpr):
            results = [w.result for w in node.args or ()] + [node.defresult]
            return [p for r in results for p in self._leaves(r)]
        if isinstance(node, ast.A_Expr):
            return self._leaves(node.lexpr) + self._leaves(node.rexpr)
        return []

    def _integer(self, node, kind: str) -> None:
        leaves = [p for p in self._leaves(node) if p.location not in self.typed]
        for p in leaves:
            self.typed.add(p.location)
            end = self.params[p.location]
            self.edits.append(_Edit(end, end, "::integer"))
        if leaves:
            self.kinds.append(kind)
