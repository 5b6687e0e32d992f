"""Workload-wide choice of new indexes: the set that saves the most plan cost (calls x
cost saved) net of index upkeep on writes and of size. Pure logic over costs measured
with single hypothetical indexes; the advisor re-validates the chosen set together."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class WriteStmt:
    op: str                       # 'Insert' | 'Update' | 'Delete'
    calls: int
    rows_per_call: float
    set_columns: frozenset[str]   # UPDATE: assigned columns (HOT is lost if an index mentions one)


@dataclass
class TableWrites:
    existing: list[tuple[frozenset[str], float]] = field(default_factory=list)  # (columns, share of rows)
    stmts: list[WriteStmt] = field(default_factory=list)


def upkeep(tw: TableWrites, new: list[tuple[frozenset[str], float]], write_cost: float) -> float:
    """Index entries written per window x cost per entry. INSERT writes one entry per index
    (a partial index: its share of rows); an UPDATE writes into every index unless it can be
    HOT (no index mentions an assigned column); DELETE writes none (VACUUM cleans up later)."""
    indexes = tw.existing + new
    entries = sum(share for _, share in indexes)
    total = 0.0
    for s in tw.stmts:
        if s.op == "Insert" or (s.op == "Update" and any(s.set_columns & cols for cols, _ in indexes)):
            total += s.calls * s.rows_per_call * entries * write_cost
    return total


@dataclass
class Option:
    ident: str
    table: str
    columns: frozenset[str]
    share: float                  # fraction of the table's rows the index holds
    size_bytes: int
    costs: dict[str, float]       # query key -> cost with this index, only where it serves the query
    extends: frozenset[str] = frozenset()   # idents of options whose key is a prefix of this one's


@dataclass
class Problem:
    calls: dict[str, int]          # query key -> calls in the window
    base: dict[str, float]         # query key -> cost now
    writes: dict[str, TableWrites]
    write_cost: float
    size_cost_per_mb: float
    max_per_table: int
    max_total: int
    min_gain: float                # fraction of the current objective a step must save


def objective(p: Problem, options: dict[str, Option], chosen: list[str]) -> float:
    total = 0.0
    for q, calls in p.calls.items():
        best = p.base[q]
        for ident in chosen:
            best = min(best, options[ident].costs.get(q, best))
        total += calls * best
    by_table: dict[str, list[tuple[frozenset[str], float]]] = {}
    for ident in chosen:
        o = options[ident]
        by_table.setdefault(o.table, []).append((o.columns, o.share))
        total += p.size_cost_per_mb * o.size_bytes / 2**20
    for table, new in by_table.items():
        if table in p.writes:
            total += upkeep(p.writes[table], new, p.write_cost) - upkeep(p.writes[table], [], p.write_cost)
    return total


def greedy(p: Problem, options: dict[str, Option]) -> list[tuple[str, float]]:
    """Add (or widen) one index at a time: among the moves that save at least min_gain of the
    current objective, the one that saves the most per byte of new index. Returns [(ident, gain at the step it was taken)]."""
    chosen: list[str] = []
    gains: dict[str, float] = {}
    current = objective(p, options, chosen)
    while True:
        best = None
        for ident, o in sorted(options.items()):
            if ident in chosen:
                continue
            replaced = [x for x in chosen if x in o.extends]
            if not replaced:
                if len(chosen) >= p.max_total or \
                        sum(options[x].table == o.table for x in chosen) >= p.max_per_table:
                    continue
            trial = [x for x in chosen if x not in replaced] + [ident]
            value = objective(p, options, trial)
            gain = current - value
            if gain < p.min_gain * current or gain <= 0:
                continue
            # per byte: a 0.2 MB partial index that does 95% of what a 30 MB one does wins, and
            # the index budget goes to many cheap wins before one marginally bigger one
            added = max(o.size_bytes - sum(options[x].size_bytes for x in replaced), 8192)
            if best is None or gain / added > best[0]:
                best = (gain / added, trial, ident, gain, replaced)
        if best is None:
            return [(x, gains[x]) for x in chosen]
        _, chosen, ident, gain, replaced = best
        gains[ident] = gain + sum(gains.pop(x, 0.0) for x in replaced)
        current -= gain
