"""Reading EXPLAIN (FORMAT JSON, VERBOSE) plans: nodes, relations, and the conditions,
sort and group keys that say which columns of which relation a query filters, joins,
orders and groups by."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Iterator

_IDENT = r'(?:[A-Za-z_][A-Za-z_0-9$]*|"(?:[^"]|"")+")'
_COLREF = re.compile(rf"^(?:({_IDENT})\.)?({_IDENT})$")
_FUNC = re.compile(rf"^({_IDENT})\((.*)\)$", re.S)
_CAST = re.compile(r"::(?:\"?[A-Za-z_][\w ]*\"?(?:\(\d+(?:,\d+)?\))?(?:\[\])*)$")
_OPS = (" = ANY ", " <> ANY ", " ~~* ", " !~~ ", " ~~ ", " <= ", " >= ", " <> ", " = ", " < ", " > ")
COND_KEYS = ("Index Cond", "Recheck Cond", "Filter", "Join Filter", "Hash Cond", "Merge Cond")
SCAN_TYPES = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Bitmap Index Scan",
              "Tid Scan", "Sample Scan")


# The key WhatIf adds to a plan node scanning a hypothetical index: the index's identity
# (HypoPG's name for it changes each time it is created).
HYPOTHETICAL = "Hypothetical Index"


def walk(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from walk(child)


def root(explain_json) -> dict:
    """The top plan node of an EXPLAIN (FORMAT JSON) result, as returned by the server."""
    doc = explain_json
    if isinstance(doc, str):
        import json
        doc = json.loads(doc)
    return doc[0]["Plan"]


def unquote_ident(ident: str) -> str:
    return ident[1:-1].replace('""', '"') if ident.startswith('"') else ident


def _depth_scan(text: str):
    """(index, char, depth) outside string literals."""
    depth, quote = 0, False
    for i, ch in enumerate(text):
        if ch == "'":
            quote = not quote
        elif not quote:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
        yield i, ch, depth, quote


def strip_parens(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        closes_at = None
        for i, ch, depth, quote in _depth_scan(text):
            if not quote and depth == 0:
                closes_at = i
                break
        if closes_at != len(text) - 1:
            break
        text = text[1:-1].strip()
    return text


def strip_casts(text: str) -> str:
    text = strip_parens(text)
    while True:
        m = _CAST.search(text)
        if not m:
            return text
        head = text[:m.start()]
        # only a cast of the whole operand, not of its last part: `(a)::t`, `$1::t`, `'x'::t`, `a.b::t`
        if head.endswith(")") and strip_parens(head) != head or re.fullmatch(r"\$\d+|'(?:[^']|'')*'|[\w.\"]+", head):
            text = strip_parens(head)
        else:
            return text


def split_top(text: str, sep: str) -> list[str]:
    parts, last = [], 0
    for i, ch, depth, quote in _depth_scan(text):
        if depth == 0 and not quote and text.startswith(sep, i) and i >= last:
            parts.append(text[last:i])
            last = i + len(sep)
    parts.append(text[last:])
    return [p.strip() for p in parts]


@dataclass(frozen=True)
class Operand:
    kind: str                   # 'column', 'expr' (func(column)), 'param', 'const', 'array', 'other'
    alias: str | None = None
    column: str | None = None
    func: str | None = None
    param: int | None = None
    value: str | None = None    # constant text, unquoted
    params: tuple[int, ...] = ()   # 'array': ARRAY[$2, $3] of an IN list


def operand(text: str) -> Operand:
    t = strip_casts(text)
    if re.fullmatch(r"\$\d+", t):
        return Operand("param", param=int(t[1:]))
    m = re.fullmatch(r"ARRAY\[(.*)\]", t, re.S)
    if m:
        items = [operand(x) for x in split_top(m.group(1), ",")]
        if items and all(i.kind == "param" for i in items):
            return Operand("array", params=tuple(i.param for i in items))
        return Operand("other")
    if re.fullmatch(r"'(?:[^']|'')*'", t):
        return Operand("const", value=t[1:-1].replace("''", "'"))
    if re.fullmatch(r"-?\d+(?:\.\d+)?", t):
        return Operand("const", value=t)
    m = _COLREF.match(t)
    if m:
        return Operand("column", alias=unquote_ident(m.group(1)) if m.group(1) else None,
                       column=unquote_ident(m.group(2)))
    m = _FUNC.match(t)
    if m:
        inner = operand(m.group(2))
        if inner.kind == "column":
            return Operand("expr", alias=inner.alias, column=inner.column, func=unquote_ident(m.group(1)))
        if inner.kind in ("param", "const"):   # lower($1): still the same parameter or constant
            return inner
    return Operand("other")


@dataclass(frozen=True)
class Condition:
    left: Operand
    op: str                     # '=', '<', '<=', '>', '>=', '<>', '~~', '~~*', '= ANY', ...
    right: Operand


def conditions(expr: str) -> list[Condition]:
    """Atomic comparisons of an AND-tree (ORs and other shapes are not indexable here)."""
    return list(_conditions(expr))


@functools.lru_cache(maxsize=4096)
def _conditions(expr: str) -> tuple[Condition, ...]:
    """conditions(), read once per text: the pricing of what-if plans reads the same Index
    Conds thousands of times (TPC-H: 13,000 reads of a few hundred texts, a third of the
    advisor's Python time)."""
    out: list[Condition] = []
    body = strip_parens(expr)
    parts = split_top(body, " AND ")
    if len(parts) > 1:
        for p in parts:
            out.extend(_conditions(p))
        return tuple(out)
    if re.fullmatch(rf"(?:{_IDENT}\.)?{_IDENT}", body):      # bare boolean column: `products.active`
        left = operand(body)
        return (Condition(left, "=", Operand("const", value="true")),) if left.kind == "column" else ()
    for op in _OPS:
        halves = split_top(body, op)
        if len(halves) == 2:
            left, right = operand(halves[0]), operand(halves[1])
            if left.kind in ("param", "const") and right.kind in ("column", "expr"):
                left, right, op = right, left, {" < ": " > ", " > ": " < ", " <= ": " >= ", " >= ": " <= "}.get(op, op)
            return (Condition(left, op.strip(), right),)
    return tuple(out)


def _sort_column(key: str) -> tuple[Operand, bool]:
    desc = bool(re.search(r"\s+DESC(\s+NULLS\s+(FIRST|LAST))?$", key))
    key = re.sub(r"\s+(ASC|DESC)?(\s*NULLS\s+(FIRST|LAST))?$", "", key)
    return operand(key), desc


@dataclass
class Relation:
    schema: str
    name: str


@dataclass
class PlanFacts:
    """What one plan says about the columns a query uses, by alias."""
    relations: dict[str, Relation] = field(default_factory=dict)        # alias -> relation
    conds: list[Condition] = field(default_factory=list)
    sort_keys: list[tuple[Operand, bool]] = field(default_factory=list)  # first Sort below a Limit
    group_keys: list[Operand] = field(default_factory=list)
    outputs: dict[str, set[str]] = field(default_factory=dict)           # alias -> columns read
    # Names the nodes above the scans compute with, by alias (None: unqualified). A scan that
    # returns the whole row (the planner's "physical tlist") says nothing of what is used;
    # these do.
    above: dict[str | None, set[str]] = field(default_factory=dict)
    write: tuple[str, Relation] | None = None                             # (operation, target)
    cond_params: set[int] = field(default_factory=set)                    # parameters inside conditions
    total_cost: float = 0.0


def facts(plan: dict) -> PlanFacts:
    f = PlanFacts(total_cost=float(plan.get("Total Cost", 0.0)))
    if plan.get("Node Type") == "ModifyTable":
        f.write = (plan["Operation"], Relation(plan.get("Schema", "public"), plan["Relation Name"]))
    under_limit = False
    for node in walk(plan):
        if "Relation Name" in node and node.get("Node Type") != "ModifyTable":
            alias = node.get("Alias", node["Relation Name"])
            f.relations[alias] = Relation(node.get("Schema", "public"), node["Relation Name"])
            cols = f.outputs.setdefault(alias, set())
            for out in node.get("Output", []):
                for m in re.finditer(rf"(?:^|[^\w.\"])(?:{re.escape(alias)}\.)?({_IDENT})(?=$|[^\w(.])", out):
                    cols.add(unquote_ident(m.group(1)))
        else:
            for item in node.get("Output", []) + node.get("Sort Key", []) + node.get("Group Key", []):
                for m in re.finditer(rf"(?:({_IDENT})\.)?({_IDENT})(?![\w(])", re.sub(r"'(?:[^']|'')*'", "", item)):
                    f.above.setdefault(unquote_ident(m.group(1)) if m.group(1) else None, set()).add(
                        unquote_ident(m.group(2)))
        for key in COND_KEYS:
            if key in node:
                f.conds.extend(conditions(node[key]))
                f.cond_params.update(int(m) for m in re.findall(r"\$(\d+)", re.sub(r"'(?:[^']|'')*'", "", node[key])))
        nt = node.get("Node Type")
        if nt == "Limit":
            under_limit = True
        if nt in ("Sort", "Incremental Sort") and not f.sort_keys:
            f.sort_keys = [_sort_column(k) for k in node.get("Sort Key", [])] if under_limit else []
        if nt in ("Aggregate", "Group") and "Group Key" in node and not f.group_keys:
            f.group_keys = [operand(k) for k in node["Group Key"]]
    return f


def summary(plan: dict) -> list[dict]:
    """Compact evidence: scan and join nodes with relation, index and cost."""
    out = []
    for node in walk(plan):
        if node.get("Node Type") in SCAN_TYPES or "Join" in node.get("Node Type", "") or node is plan:
            item = {"node": node.get("Node Type"), "total_cost": node.get("Total Cost"), "rows": node.get("Plan Rows")}
            for src, dst in (("Relation Name", "relation"), ("Index Name", "index")):
                if src in node:
                    item[dst] = node[src]
            out.append(item)
    return out


def index_names(plan: dict) -> set[str]:
    return {n["Index Name"] for n in walk(plan) if "Index Name" in n}
