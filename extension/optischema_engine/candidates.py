"""Index candidates from one query's own plan: equality columns first, then one range,
sort or group column; LIKE prefix columns with text_pattern_ops; expressions; partial
indexes for `=` and `<>` predicates whose value never changes; INCLUDE of the few other
columns a query reads, for an index-only scan. No index is led by a column of few values
(a boolean, a status): a selective constant of one is a partial index's predicate instead
(`status = 'blocked'`, or `status <> 'done'` where most rows are done). The one exception
is an aggregate's key in group order (`GROUP BY type`), which is read whole, not searched."""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from . import ddl, indexspec
from .catalog import Table
from .db import Database
from .plans import Condition, PlanFacts
from .sqltext import quote_literal

RANGE_OPS = {"<", "<=", ">", ">="}
MAX_INCLUDE = 5          # beyond this an INCLUDE copy of the table rarely pays its size; TPC-H Q9
                         # reads five columns of lineitem besides the part key it probes by
LIKE_OPS = {"~~"}
# A column whose values each match this share of the rows on average (ColumnStats.mean_fraction)
# leads no index: a boolean 0.5, a status of 3 to 5 values 0.2 to 0.4. Fourteen countries,
# one a fifth of the rows, are 0.1: (country, created_at) still narrows to a country's week.
FEW_VALUES_FRACTION = 0.2


@dataclass(frozen=True)
class KeyPart:
    column: str
    func: str | None = None        # expression index: func(column)
    opclass: str | None = None

    def sql(self) -> str:
        col = ddl.quote_ident(self.column)
        text = f"{ddl.quote_ident(self.func)}({col})" if self.func else col
        return f"{text} {self.opclass}" if self.opclass else text

    def name_part(self) -> str:
        return "_".join(p for p in (self.func, self.column, "pattern" if self.opclass else None) if p)


@dataclass(frozen=True)
class Candidate:
    schema: str
    table: str
    keys: tuple[KeyPart, ...]
    predicate: tuple[str, str, str] | None = None     # (column, '=' or '<>', value): WHERE column op 'value'
    include: tuple[str, ...] = ()

    def predicate_sql(self) -> str | None:
        if not self.predicate:
            return None
        col, op, value = self.predicate
        return f"{ddl.quote_ident(col)} {op} {quote_literal(value)}"

    def key_sql(self) -> list[str]:
        return [k.sql() for k in self.keys]

    def identity(self) -> str:
        """Stable text identity (part of the recommendation key)."""
        out = f"{self.schema}.{self.table}:{','.join(self.key_sql())}"
        if self.include:
            out += f":include={','.join(self.include)}"
        if self.predicate:
            out += f":where={self.predicate_sql()}"
        return out

    def hypo_ddl(self) -> str:
        """Statement for hypopg_create_index (no name, no CONCURRENTLY)."""
        return ddl.create_index(None, self.schema, self.table, self.key_sql(),
                                [ddl.quote_ident(c) for c in self.include], self.predicate_sql(), concurrently=False)

    def name_parts(self) -> list[str]:
        """The words of its index name (ddl.index_name)."""
        parts = [k.name_part() for k in self.keys]
        if self.predicate:
            col, op, value = self.predicate
            parts += ["where", col] + (["not"] if op == "<>" else []) + [value]
        return parts

    def columns(self) -> set[str]:
        cols = {k.column for k in self.keys} | set(self.include)
        return cols | {self.predicate[0]} if self.predicate else cols

    def spec(self, db: Database, t: Table, name: str) -> dict:
        """The description the SQL side builds this index from (sql/09_index_ddl.sql), its
        functions, operators and operator classes resolved in the catalog. Raises
        indexspec.Unbuildable when there is none it would build."""
        keys = []
        for k in self.keys:
            key = {"expr": indexspec.function_call(db, t, k.func, k.column)} if k.func else indexspec.column(t, k.column)
            if k.opclass:
                key["opclass"] = indexspec.opclass(db, k.opclass)
            keys.append(key)
        out = {"table": t.oid, "name": name, "method": "btree", "keys": keys,
               "include": [indexspec.column(t, c) for c in self.include]}
        if self.predicate:
            out["where"] = indexspec.compares(db, t, *self.predicate)
        return out

    def extends(self, other: "Candidate") -> bool:
        """other's key is a prefix of ours and we hold its INCLUDE columns too, same table and
        predicate, and we are not it: we serve its queries."""
        return (self.schema, self.table, self.predicate) == (other.schema, other.table, other.predicate) \
            and self != other and len(other.keys) <= len(self.keys) and self.keys[:len(other.keys)] == other.keys \
            and set(other.include) <= {k.column for k in self.keys if k.func is None} | set(self.include)


@dataclass
class Usage:
    eq: list[str] = field(default_factory=list)
    in_list: list[str] = field(default_factory=list)     # equality through IN (...) / = ANY
    ordered: list[str] = field(default_factory=list)     # range, sort, group columns, in plan order
    ranged: list[str] = field(default_factory=list)      # compared with <, <=, >, >=
    group: list[str] = field(default_factory=list)       # GROUP BY columns, in order
    like: list[str] = field(default_factory=list)
    exprs: list[tuple[str, str]] = field(default_factory=list)
    fixed: list[tuple[str, str, str]] = field(default_factory=list)   # (column, '=' or '<>', constant value)
    reads: set[str] = field(default_factory=set)                 # columns the scan returns
    filtered: set[str] = field(default_factory=set)              # columns compared, in any way
    above: set[str] = field(default_factory=set)                 # names the plan computes with above the scan


def _add(lst: list, item) -> None:
    if item not in lst:
        lst.append(item)


def usage_by_alias(f: PlanFacts, fixed_params: dict[int, tuple[str, str]], constants_fixed: bool = True) \
        -> dict[str, Usage]:
    """fixed_params: parameters that always had the same value (params.ParamPlan.fixed).
    constants_fixed: a constant written in the text is the statement's every time (a
    partial-index predicate may rely on it); not so in the text of one execution."""
    single = next(iter(f.relations)) if len(f.relations) == 1 else None
    out: dict[str, Usage] = {}

    def alias_of(op) -> str | None:
        a = op.alias or single
        return a if a in f.relations else None

    def fixed(u: Usage, c: Condition) -> None:
        """A comparison with one value, every time: a partial index's predicate."""
        right = c.right
        if right.kind == "param" and fixed_params.get(right.param, (None,))[0] == c.op:
            _add(u.fixed, (c.left.column, c.op, fixed_params[right.param][1]))
        elif right.kind == "const" and constants_fixed:        # a constant written in the text
            _add(u.fixed, (c.left.column, c.op, right.value))

    def note(c: Condition) -> None:
        left, right = c.left, c.right
        a = alias_of(left) if left.kind in ("column", "expr") else None
        if a is None:
            return
        u = out.setdefault(a, Usage())
        u.filtered.add(left.column)           # an index-only scan needs it too
        if left.kind == "expr":
            if c.op == "=":
                _add(u.exprs, (left.func, left.column))
            return
        if c.op in ("=", "= ANY"):
            if right.kind == "column" and alias_of(right) not in (None, a):     # join key, both sides
                _add(out.setdefault(alias_of(right), Usage()).eq, right.column)
            if right.kind == "const" and right.value == "true":
                return                                                          # bare boolean: not a key
            _add(u.eq, left.column)
            if c.op == "= ANY":
                _add(u.in_list, left.column)
            if c.op == "=":
                fixed(u, c)
        elif c.op == "<>":
            fixed(u, c)
        elif c.op in RANGE_OPS and right.kind in ("param", "const"):
            _add(u.ordered, left.column)
            _add(u.ranged, left.column)
        elif c.op in LIKE_OPS and right.kind in ("param", "const"):
            _add(u.like, left.column)

    for alias, cols in f.outputs.items():
        u = out.setdefault(alias, Usage())
        u.reads |= cols
        u.above |= f.above.get(alias, set()) | (f.above.get(None, set()) if alias == single else set())
    for c in f.conds:
        note(c)
    sort_aliases = {alias_of(k) for k, _ in f.sort_keys}
    if f.sort_keys and len(sort_aliases) == 1 and None not in sort_aliases \
            and all(k.kind == "column" for k, _ in f.sort_keys):
        u = out.setdefault(sort_aliases.pop(), Usage())
        for k, _ in f.sort_keys:
            _add(u.ordered, k.column)
    for g in f.group_keys:
        if g.kind == "column" and alias_of(g):
            _add(out.setdefault(alias_of(g), Usage()).ordered, g.column)
            _add(out[alias_of(g)].group, g.column)
    return out


def for_table(table: Table, u: Usage, max_keys: int, fixed_max_fraction_ok, few_values=lambda column: False) \
        -> set[Candidate]:
    """Candidates for one table from one query's usage. fixed_max_fraction_ok(column, op, value)
    says whether `column op value` keeps few enough rows to become a partial-index predicate;
    few_values(column) whether a column has too few distinct values to lead an index."""
    cols = table.columns
    # a scan returning every column may be the planner's whole row: what is used is above it
    reads = u.above if set(cols) <= u.reads else u.reads
    # equality columns in a canonical order (plain '=' before IN lists, which break index
    # order, columns of few values last); subsets keep that order rather than trying every
    # permutation
    eq = [c for c in u.eq if c in cols and c not in u.in_list] + [c for c in u.in_list if c in cols]
    eq = [c for c in eq if not few_values(c)] + [c for c in eq if few_values(c)]
    ordered = [c for c in u.ordered if c in cols and c not in eq]
    keys: set[tuple[KeyPart, ...]] = set()
    for c in eq + ordered:
        keys.add((KeyPart(c),))
    for c in u.like:
        if c in cols:
            keys.add((KeyPart(c, opclass=None if cols[c].c_collation else "text_pattern_ops"),))
    for func, c in u.exprs:
        if c in cols:
            keys.add((KeyPart(c, func=func),))
    for n in range(2, min(max_keys, len(eq)) + 1):
        for perm in itertools.combinations(eq, n):
            keys.add(tuple(KeyPart(c) for c in perm))
    for n in range(1, min(max_keys - 1, len(eq)) + 1):
        for perm in itertools.combinations(eq, n):
            for o in ordered:
                keys.add(tuple(KeyPart(c) for c in perm) + (KeyPart(o),))
            if len(ordered) > 1 and n + len(ordered) <= max_keys:     # equality prefix + full sort key
                keys.add(tuple(KeyPart(c) for c in perm + tuple(ordered)))
    # An aggregate over much of the table: a key of the equality columns, the group columns,
    # then everything else the query reads (ranges last) is scanned index-only in group order,
    # with no sort, and with DISTINCT columns already ordered within each group.
    # Led by a GROUP BY column of few values, it is read whole in group order, not searched:
    # what few_values() guards against (a key that selects nothing) does not apply.
    group = [c for c in u.group if c in cols and c not in eq]
    in_group_order = None
    if group:
        rest = sorted((reads | set(u.ranged)) - set(eq) - set(group))
        rest = [c for c in rest if c in cols and c not in u.ranged] + [c for c in rest if c in cols and c in u.ranged]
        if len(eq) + len(group) + len(rest) <= max_keys:
            aggregate = tuple(KeyPart(c) for c in eq + group + rest)
            keys.add(aggregate)
            if not eq:
                in_group_order = aggregate
    out = {Candidate(table.schema, table.name, k) for k in keys}
    # INCLUDE the few other columns the query reads or compares, so that the equality key,
    # it with one range or sort column, the widest key, or any key of one or two columns is
    # an index-only scan: an aggregate or a lookup of a few columns over many rows reads no
    # table page, and neither does a join that probes by one key per outer row (a nested
    # loop whose every probe visits the table costs, for real, more than the model says)
    needed = {c for c in reads | u.filtered if c in cols}
    covering = {tuple((eq + ordered)[:max_keys]), tuple(eq)} | {tuple(eq[:max_keys - 1] + [o]) for o in ordered} \
        | {tuple(p.column for p in k) for k in keys
           if len(k) <= 2 and all(p.func is None and p.opclass is None for p in k)}
    for names in sorted(covering):
        extra = tuple(sorted(needed - set(names)))
        if names and 0 < len(extra) <= MAX_INCLUDE:
            out.add(Candidate(table.schema, table.name, tuple(KeyPart(c) for c in names), include=extra))
    pk = next((ix.keys[0] for ix in table.indexes if ix.primary and ix.keys and ix.keys[0] in cols), None)
    for col, op, value in u.fixed:
        if col not in cols or not fixed_max_fraction_ok(col, op, value):
            continue
        others = [k for k in keys if all(p.column != col for p in k) and len(k) <= 2]
        if not others and pk not in (None, col):
            others = [(KeyPart(pk),)]          # the constant is all the query selects by: any small key will do
        for k in others:
            out.add(Candidate(table.schema, table.name, k, predicate=(col, op, value)))
    return {c for c in out
            if not covered_by_existing(c, table) and not led_by_unique_key(c, table)
            and not (c.keys[0].func is None and few_values(c.keys[0].column) and c.keys != in_group_order)}


def merged(cands: list[Candidate]) -> dict[Candidate, Candidate]:
    """Across statements: where one candidate's key is a prefix of another's on the same
    table and predicate, and one of them INCLUDEs columns, the longer key INCLUDing both
    sets of columns (at most MAX_INCLUDE): {merged: the candidate whose key it has}. It
    extends both: one index instead of two that differ by a column or two (the selection
    takes it where it saves as much per byte)."""
    out: dict[Candidate, Candidate] = {}
    by_lead: dict[tuple, list[Candidate]] = {}
    for c in cands:
        by_lead.setdefault((c.schema, c.table, c.predicate, c.keys[0]), []).append(c)
    for group in by_lead.values():
        for a in group:
            for b in group:
                if a is b or not (a.include or b.include) or len(b.keys) > len(a.keys) \
                        or a.keys[:len(b.keys)] != b.keys:
                    continue
                keycols = {k.column for k in a.keys if k.func is None}
                include = tuple(sorted((set(a.include) | set(b.include)) - keycols))
                if len(include) <= MAX_INCLUDE and include != a.include:
                    out.setdefault(Candidate(a.schema, a.table, a.keys, a.predicate, include), a)
    return out


def covered_by_existing(c: Candidate, table: Table) -> bool:
    """An existing valid btree with the same predicate whose key starts with c's key."""
    want = [s.replace('"', "") for s in c.key_sql()]
    pred = c.predicate_sql()
    for ix in table.indexes:
        if not ix.valid or ix.am != "btree":
            continue
        if (ix.predicate is None) != (pred is None):
            continue
        if pred is not None and _bare(ix.predicate) != _bare(pred):
            continue
        have = [k.replace('"', "") for k in ix.keys]
        if len(have) >= len(want) and have[:len(want)] == want:
            return True
    return False


def led_by_unique_key(c: Candidate, table: Table) -> bool:
    """c (no predicate) is led by the columns of a valid unique btree, in any order: a lookup
    on them finds one row through that index already, and all c would add is reading that
    row from itself rather than from the table: one page, mostly cached, bought with a copy
    of the key for every row. (A partial index keyed by a unique column is another matter:
    it lists the rows its predicate keeps.)"""
    if c.predicate:
        return False
    for ix in table.indexes:
        if not (ix.unique and ix.valid and ix.am == "btree" and ix.predicate is None and ix.keys):
            continue
        lead = c.keys[:len(ix.keys)]
        if len(lead) == len(ix.keys) and all(k.func is None and k.opclass is None for k in lead) \
                and {k.column for k in lead} == {k.replace('"', "") for k in ix.keys}:
            return True
    return False


def _bare(expr: str) -> str:
    """Predicate text without casts, quotes of identifiers, parentheses and spaces."""
    return re.sub(r"::[a-z ]+|[\"()\s]", "", expr)
