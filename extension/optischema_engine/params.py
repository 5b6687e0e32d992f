"""Representative parameter values, so that normalized text is costed with custom plans
the way the application runs it. Values come from pg_qualstats (constants the workload
really used, when that extension is installed) or else from pg_stats (histogram bounds,
most common values). They are used locally, inside EXPLAIN, and never leave the database.
They reach the code of the role a statement is planned as (a function the statement
applies to a parameter sees them), so that role gets only constants it sent itself and
statistics of columns it may read."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from . import ddl
from .db import Database
from .plans import PlanFacts, Relation
from .sqltext import quote_literal

_QUALSTATS_SCHEMA_SQL = """
SELECT n.nspname AS schema FROM pg_catalog.pg_extension e
JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_qualstats'"""
# {schema} is the catalog-resolved, quoted schema of pg_qualstats
_QUALSTATS_SQL = """
SELECT q.queryid::text AS queryid, q.userid::bigint AS userid, q.lrelid::bigint AS relid, a.attname AS column,
       o.oprname AS op, q.constvalue AS value, sum(q.occurences)::float8 AS n
FROM {schema}.pg_qualstats() q
JOIN pg_catalog.pg_attribute a ON a.attrelid = q.lrelid AND a.attnum = q.lattnum
JOIN pg_catalog.pg_operator o ON o.oid = q.opno
WHERE q.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
  AND q.constvalue IS NOT NULL AND q.queryid = ANY ($1::bigint[])
GROUP BY 1, 2, 3, 4, 5, 6"""
# Every column of a table at once (one query per table, not per column).
_STATS_SQL = """
SELECT s.attname AS column, s.most_common_vals::text::text[] AS mcv, s.most_common_freqs::float8[] AS freqs,
       s.histogram_bounds::text::text[] AS hist, s.n_distinct::float8 AS n_distinct,
       s.correlation::float8 AS correlation, s.null_frac::float8 AS null_frac, s.avg_width::float8 AS avg_width
FROM pg_catalog.pg_stats s WHERE s.schemaname = $1 AND s.tablename = $2"""
# ... and only the columns whose rows role $3 may read (its privileges, row security)
_READER_SQL = """
 AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_catalog.pg_roles r ON r.oid = $3::oid
             WHERE n.nspname = $1 AND c.relname = $2
               AND pg_catalog.has_column_privilege(r.oid, c.oid, s.attname, 'SELECT')
               AND (NOT c.relrowsecurity OR r.rolsuper OR r.rolbypassrls
                    OR (NOT c.relforcerowsecurity AND pg_catalog.pg_has_role(r.oid, c.relowner, 'USAGE'))))"""
_NUMBERS = {f"pg_catalog.{t}" for t in ("int2", "int4", "int8", "numeric", "float4", "float8")}
_TIMES = {f"pg_catalog.{t}" for t in ("date", "timestamp", "timestamptz")}
_CONSTVALUE = re.compile(r"^'((?:[^']|'')*)'::[\w .\"\[\]]+$|^(-?[\d.]+(?:e[+-]?\d+)?)(?:::[\w .\"]+)?$", re.S)


def parse_constvalue(text: str) -> list[str]:
    """The value(s) of a pg_qualstats constant: `'pending'::text` -> ['pending'], `42::integer`
    -> ['42'], an IN list `'{todo,review}'::text[]` -> ['todo', 'review']; [] if not understood."""
    m = _CONSTVALUE.match(text.strip())
    if not m:
        return []
    if m.group(1) is None:
        return [m.group(2)]
    value = m.group(1).replace("''", "'")
    if text.rstrip().endswith("[]"):
        return _array_elements(value)
    return [value]


def _array_elements(literal: str) -> list[str]:
    """Elements of a one-dimensional array literal `{a,"b c",d}` (NULLs left out)."""
    if not (literal.startswith("{") and literal.endswith("}")):
        return []
    out = []
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"|([^,]+)', literal[1:-1]):
        if m.group(1) is not None:
            out.append(re.sub(r"\\(.)", r"\1", m.group(1)))
        elif m.group(2).strip().upper() != "NULL":
            out.append(m.group(2).strip())
    return out


@dataclass
class ColumnStats:
    mcv: list[str] = field(default_factory=list)
    freqs: list[float] = field(default_factory=list)
    hist: list[str] = field(default_factory=list)
    n_distinct: float = 0.0          # pg_stats: a count, or minus a fraction of the rows; 0 unknown
    correlation: float | None = None
    null_frac: float = 0.0
    avg_width: float = 0.0           # bytes a value takes in a row (pg_stats); 0 unknown

    def mean_fraction(self, reltuples: float) -> float | None:
        """The share of the rows an equality with a value drawn like the rows' own matches
        (the sum of the squared frequencies): 0.5 for a boolean, 0.4 for a status whose
        commonest value is 60% of the rows; None if unknown."""
        distinct = self.n_distinct if self.n_distinct > 0 else -self.n_distinct * reltuples
        if distinct <= 0:
            return None
        rest = max(0.0, 1.0 - sum(self.freqs))
        others = distinct - len(self.freqs)
        return sum(f * f for f in self.freqs) + (rest * rest / others if others >= 1 else rest * rest)


class ValueSource:
    """Observed (pg_qualstats) and statistical (pg_stats) values per column."""

    def __init__(self, db: Database, queryids: list[int], use_qualstats: bool):
        self.db = db
        self._stats: dict[tuple[str, str, int | None], dict[str, ColumnStats]] = {}   # (schema, table, reader)
        # (queryid, userid, relid, column, op) -> [(value, occurrences)] most used first
        self.observed: dict[tuple[int, int, int, str, str], list[tuple[str, float]]] = {}
        self.qualstats = False
        if use_qualstats:
            self._load_qualstats(queryids)

    def _load_qualstats(self, queryids: list[int]) -> None:
        rows = self.db.query(_QUALSTATS_SCHEMA_SQL)
        if not rows or not queryids:
            return
        self.qualstats = True
        sql = _QUALSTATS_SQL.format(schema=ddl.quote_ident(rows[0]["schema"]))
        array = "{" + ",".join(str(q) for q in queryids) + "}"
        for r in self.db.query(sql, [array]):
            key = (int(r["queryid"]), int(r["userid"]), int(r["relid"]), r["column"], r["op"])
            for value in parse_constvalue(r["value"]):
                self.observed.setdefault(key, []).append((value, float(r["n"])))

    def stats(self, rel: Relation, column: str, reader: int | None = None) -> ColumnStats | None:
        """The column's statistics; with a reader, only if that role may read the column."""
        key = (rel.schema, rel.name, reader)
        if key not in self._stats:
            args = [rel.schema, rel.name]
            rows = self.db.query(_STATS_SQL + _READER_SQL, args + [reader]) if reader is not None \
                else self.db.query(_STATS_SQL, args)
            self._stats[key] = {}
            for r in rows:
                self._stats[key].setdefault(r["column"], ColumnStats(
                    list(r["mcv"] or []), list(r["freqs"] or []), list(r["hist"] or []),
                    float(r["n_distinct"] or 0.0), r["correlation"], float(r["null_frac"] or 0.0),
                    float(r["avg_width"] or 0.0)))
        return self._stats[key].get(column)

    def seen(self, queryids: list[int], relid: int, column: str, op: str, userid: int) -> list[tuple[str, float]]:
        """Constants role `userid` used in these statements."""
        merged: dict[str, float] = {}
        for q in queryids:
            for v, n in self.observed.get((q, userid, relid, column, op), []):
                merged[v] = merged.get(v, 0.0) + n
        return sorted(merged.items(), key=lambda v: (-v[1], v[0]))


@dataclass
class ParamPlan:
    """How a query's parameters get values: per-sample argument lists (SQL literals with
    casts) for custom plans, or none (then the generic plan is used)."""
    samples: list[list[str]]
    # parameters that always had the same value, compared with = or <>: (operator, value),
    # partial-index predicates
    fixed: dict[int, tuple[str, str]]
    source: dict[int, str]        # per parameter: 'qualstats', 'pg_stats', 'rows_per_call', 'null', 'assumed: ...'


def _stats_value(st: ColumnStats | None, op: str, k: int, n: int) -> str | None:
    if st is None:
        return None
    if op == "=":
        if st.hist:
            return st.hist[min(len(st.hist) - 1, (k + 1) * len(st.hist) // (n + 1))]
        return st.mcv[-1 - k % len(st.mcv)] if st.mcv else None
    if op == "~~" and (st.hist or st.mcv):
        src = st.hist or st.mcv
        text = src[min(len(src) - 1, (k + 1) * len(src) // (n + 1))]
        prefix = text[:max(3, len(text) // 2)]
        return re.sub(r"([%_\\])", r"\\\1", prefix) + "%"
    return None


def plan_params(types: list[str], facts: PlanFacts, relids: dict[str, int], limit_params: set[int],
                rows_per_call: float, values: ValueSource, queryids: list[int], samples: int,
                reader: int, given: dict[int, str] | None = None) -> ParamPlan:
    """Values for every parameter, or no samples (generic plan) if a compared parameter has
    none. `reader`: the role the statement is planned as. `given`: parameters whose value
    any valid one stands for (plannable.py: an extract() field), NULL would fold away."""
    # parameter -> (relation, relid, column, operator, position in an IN list)
    bound: dict[int, tuple[Relation, int, str, str, int]] = {}
    single = next(iter(facts.relations)) if len(facts.relations) == 1 else None
    for c in facts.conds:
        alias = c.left.alias or single
        if c.left.kind not in ("column", "expr") or alias not in facts.relations or alias not in relids:
            continue
        # an expression's parameter (lower(email) = lower($1)) takes values of the column itself
        op = "=" if c.op == "= ANY" else c.op
        params = c.right.params if c.right.kind == "array" else (c.right.param,) if c.right.kind == "param" else ()
        for pos, n in enumerate(params):
            bound.setdefault(n, (facts.relations[alias], relids[alias], c.left.column, op, pos))
    per_param: dict[int, list[str]] = {}
    source: dict[int, str] = {}
    fixed: dict[int, tuple[str, str]] = {}
    missing = False
    for n in range(1, len(types) + 1):
        if given and n in given:
            per_param[n], source[n] = [given[n]], "given"
        elif n in limit_params:
            per_param[n] = [str(max(1, min(1000, math.ceil(rows_per_call))))]
            source[n] = "rows_per_call"
        elif n in bound:
            rel, relid, column, op, pos = bound[n]
            seen = values.seen(queryids, relid, column, op, reader)
            if seen:
                # the k-th parameter of an IN list starts k values further, so that one
                # sample's list holds distinct values as the application's lists do
                at = by_weight(seen, min(samples, len(seen)))
                per_param[n] = [seen[(i + pos) % len(seen)][0] for i in at]
                source[n] = "qualstats"
                if len(seen) == 1 and seen[0][1] >= 2 and op in ("=", "<>"):
                    fixed[n] = (op, seen[0][0])
            else:
                vals = [_stats_value(values.stats(rel, column, reader), op, k, samples) for k in range(samples)]
                vals = [v for v in vals if v is not None]
                if not vals:
                    missing = True
                per_param[n] = vals
                source[n] = "pg_stats"
        elif n in facts.cond_params:
            missing = True             # compared in a way we cannot give a value to: generic plan
            per_param[n], source[n] = [], "generic"
        else:
            per_param[n] = []          # NULL: select-list, VALUES and SET parameters do not shape the plan
            source[n] = "null"
    if missing:
        return ParamPlan([], fixed, source)
    _pair_ranges(bound, per_param, source, values, queryids, reader)
    k = max([len(v) for v in per_param.values()] + [1])
    out = []
    for i in range(k):
        args = []
        for n in range(1, len(types) + 1):
            vals = per_param[n]
            args.append(f"{quote_literal(vals[i % len(vals)])}::{types[n - 1]}" if vals else f"NULL::{types[n - 1]}")
        out.append(_assume(args, types, source))
    return ParamPlan(out, fixed, source)


def _assume(args: list[str], types: list[str], source: dict[int, str]) -> list[str]:
    """A parameter set with the NULLs of parameters that had no value replaced where a value
    can be assumed: NULL folds the expression it is in away (`l_extendedprice * ($2 -
    l_discount)` needs no column then, and the plan reads an index alone where no execution
    does), and makes a rewrite's results and the original's empty or NULL, equal whatever
    the rewrite does. A number taken out of an expression (`0.2 * avg(x)`) -> 1; an interval -> 1 year;
    a date or timestamp -> the value of another parameter of the same type in the set (the
    end of a range its start). What is assumed is named in the sources."""
    out = list(args)
    for n, t in enumerate(types, 1):
        if not (source.get(n) == "null" or source.get(n, "").startswith("assumed")):
            continue
        bare = t.replace('"', "")
        if bare in _NUMBERS:
            out[n - 1], source[n] = f"'1'::{t}", "assumed: 1"
        elif bare == "pg_catalog.interval":
            out[n - 1], source[n] = f"'1 year'::{t}", "assumed: 1 year"
        elif bare in _TIMES:
            same = next((k for k, (a, u) in enumerate(zip(args, types), 1)
                         if k != n and u == t and not a.startswith("NULL")), None)
            if same is not None:
                out[n - 1], source[n] = args[same - 1], f"assumed: the value of ${same}"
    return out


def by_weight(seen: list[tuple[str, float]], k: int) -> list[int]:
    """Positions of k values standing each for an equal share of the executions (the middle
    of each k-th of them, the values in `seen`'s order, most used first; a value used in
    most executions comes more than once): the executions' costs are averaged, not the
    heaviest few's. With a skewed parameter (one customer in 20 of the calls, and the
    biggest) the most used values alone would all be the outliers."""
    total = sum(n for _, n in seen)
    out: list[int] = []
    acc, j = 0.0, 0
    for i in range(k):
        target = (i + 0.5) * total / k
        while j < len(seen) - 1 and acc + seen[j][1] <= target:
            acc += seen[j][1]
            j += 1
        out.append(j)
    return out


def _order_key(value: str):
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)       # ISO dates and timestamps sort as text


def _pair_ranges(bound, per_param: dict[int, list[str]], source: dict[int, str], values: ValueSource,
                 queryids: list[int], reader: int) -> None:
    """pg_qualstats keeps the bounds of `col >= $2 AND col < $3` as separate constants; drawn
    independently they make empty or huge ranges. Pair by rank: when each execution used a
    window of about the same width (last 90 days, this month), the k-th smallest lower bound
    went with the k-th smallest upper bound. Pairing each lower bound with the nearest upper
    bound above it instead would mostly take another execution's end: far narrower ranges
    than the workload's, which favour indexes it would never use."""
    by_column: dict[tuple[int, str], dict[str, int]] = {}
    for n, (_, relid, column, op, _) in bound.items():
        if source.get(n) == "qualstats" and op in ("<", "<=", ">", ">="):
            by_column.setdefault((relid, column), {})["low" if op[0] == ">" else "high"] = n
    for (relid, column), ends in by_column.items():
        if set(ends) != {"low", "high"}:
            continue
        low, high = ends["low"], ends["high"]
        lows = pair_by_rank(
            [v for op in (">", ">=") for v, _ in values.seen(queryids, relid, column, op, reader)],
            [v for op in ("<", "<=") for v, _ in values.seen(queryids, relid, column, op, reader)])
        paired = [lows[lo] for lo in per_param[low] if lo in lows]
        if len(paired) == len(per_param[low]):
            per_param[high] = paired


def pair_by_rank(lows: list[str], highs: list[str]) -> dict[str, str]:
    """Each observed lower bound -> the upper bound of the same rank (proportionally, when
    the counts differ), or the nearest one above it when that rank's is not above it."""
    lows = sorted(set(lows), key=_order_key)
    highs = sorted(set(highs), key=_order_key)
    out: dict[str, str] = {}
    if not highs:
        return out
    for k, lo in enumerate(lows):
        h = highs[round(k * (len(highs) - 1) / max(len(lows) - 1, 1))]
        if _order_key(h) <= _order_key(lo):
            above = [x for x in highs if _order_key(x) > _order_key(lo)]
            if not above:
                continue
            h = above[0]
        out[lo] = h
    return out
