"""Workload-wide choice of new indexes: every index that pays for itself, ranked. An index
is judged against the statements it serves (the plan cost it saves them) net of its own
upkeep on writes and its size, never against the size of the rest of the workload: adding
unrelated tables to a workload does not change the advice for a table. Pure logic over
costs measured with single hypothetical indexes; the advisor re-validates the chosen set
together."""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import NamedTuple

# An INSERT's entry in an index led by a key of random position (a customer id, a uuid)
# lands on any leaf page, to be read, dirtied and split; one led by an ever-growing key
# (a serial, an insertion time) goes onto the last page, already in memory. A non-HOT
# UPDATE's entries go where the row's old ones are: anywhere.
RANDOM_ENTRY_FACTOR = 2.0


class IndexWrites(NamedTuple):
    """What one index costs the writes of its table."""
    columns: frozenset[str]       # every column it mentions: an UPDATE of one is not HOT
    share: float                  # fraction of the table's rows it holds (a partial index less)
    appends: bool = True          # its leading key grows with each INSERT


@dataclass(frozen=True)
class WriteStmt:
    op: str                       # 'Insert' | 'Update' | 'Delete'
    calls: int
    rows_per_call: float
    set_columns: frozenset[str]   # UPDATE: assigned columns (HOT is lost if an index mentions one)


@dataclass
class TableWrites:
    existing: list[IndexWrites] = field(default_factory=list)
    stmts: list[WriteStmt] = field(default_factory=list)


def upkeep(tw: TableWrites, new: list[IndexWrites], write_cost: float) -> float:
    """Index entries written per window x cost per entry. INSERT writes one entry per index
    (a partial index: its share of rows), at RANDOM_ENTRY_FACTOR the cost where the key
    does not append; an UPDATE writes into every index unless it can be HOT (no index
    mentions an assigned column), each entry at RANDOM_ENTRY_FACTOR; DELETE writes none
    (VACUUM cleans up later)."""
    indexes = [IndexWrites(*ix) for ix in tw.existing + new]
    entries = sum(ix.share for ix in indexes) * RANDOM_ENTRY_FACTOR
    inserted = sum(ix.share * (1.0 if ix.appends else RANDOM_ENTRY_FACTOR) for ix in indexes)
    total = 0.0
    for s in tw.stmts:
        if s.op == "Insert":
            total += s.calls * s.rows_per_call * inserted * write_cost
        elif s.op == "Update" and any(s.set_columns & ix.columns for ix in indexes):
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
    appends: bool = True          # its leading key grows with each INSERT (IndexWrites)

    def writes(self) -> IndexWrites:
        return IndexWrites(self.columns, self.share, self.appends)


@dataclass
class Problem:
    calls: dict[str, int]          # query key -> calls in the window
    base: dict[str, float]         # query key -> cost now
    writes: dict[str, TableWrites]
    write_cost: float
    size_cost_per_mb: float
    max_per_table: int             # a safety net: new indexes per table at most
    min_gain: float                # fraction of the cost of the statements it serves an index must save
    budget_bytes: float | None = None    # total size of new indexes at most (None: no budget)


def upkeep_delta(p: Problem, table: str, before: list[Option], after: list[Option]) -> float:
    """Extra upkeep of `table`'s new indexes `after` over `before`."""
    tw = p.writes.get(table)
    if tw is None:
        return 0.0
    return upkeep(tw, [o.writes() for o in after], p.write_cost) - \
        upkeep(tw, [o.writes() for o in before], p.write_cost)


def objective(p: Problem, options: dict[str, Option], chosen: list[str]) -> float:
    """The workload's estimated cost with `chosen`: calls x best plan cost of every
    statement, plus the new indexes' upkeep and size charge."""
    best = dict(p.base)
    by_table: dict[str, list[Option]] = {}
    total = 0.0
    for ident in chosen:
        o = options[ident]
        for q, c in o.costs.items():
            if q in best and c < best[q]:
                best[q] = c
        by_table.setdefault(o.table, []).append(o)
        total += p.size_cost_per_mb * o.size_bytes / 2**20
    total += sum(p.calls[q] * c for q, c in best.items())
    return total + sum(upkeep_delta(p, t, [], new) for t, new in by_table.items())


@dataclass
class Move:
    gain: float                   # what the workload's cost falls by
    added_bytes: int
    replaced: list[str]           # chosen indexes it widens (and so replaces)


class _State:
    """The chosen set, with what each statement's best cost is under it."""

    def __init__(self, p: Problem, options: dict[str, Option]):
        self.p, self.options = p, options
        self.chosen: list[str] = []
        self.on_table: dict[str, list[str]] = {}
        self.serving: dict[str, set[str]] = {}      # query key -> chosen idents that serve it
        self.bytes = 0

    @classmethod
    def of(cls, p: Problem, options: dict[str, Option], chosen: list[str]) -> _State:
        """The state with `chosen` taken, in that order."""
        st = cls(p, options)
        for ident in chosen:
            st.take(ident, Move(0.0, options[ident].size_bytes, []))
        return st

    def best(self, q: str, without: set[str] = frozenset(), plus: Option | None = None) -> float:
        cost = self.p.base[q]
        for i in self.serving.get(q, ()):
            if i not in without:
                cost = min(cost, self.options[i].costs[q])
        if plus is not None and q in plus.costs:
            cost = min(cost, plus.costs[q])
        return cost

    def move(self, ident: str, room: bool = True) -> Move | None:
        """Adding `ident` (replacing the chosen indexes it widens), if it pays for itself:
        saves more than its upkeep and size, and at least min_gain of what the statements it
        serves cost now; and if there is room for it (the budget, max_per_table), unless
        `room` is False."""
        p, o = self.p, self.options[ident]
        mine = self.on_table.get(o.table, [])
        if any(ident in self.options[x].extends for x in mine):
            return None              # a chosen index has its key as a prefix, and its columns: redundant
        replaced = [x for x in mine if x in o.extends]
        if room and not replaced and len(mine) >= p.max_per_table:
            return None
        added = o.size_bytes - sum(self.options[x].size_bytes for x in replaced)
        if room and p.budget_bytes is not None and self.bytes + added > p.budget_bytes:
            return None
        queries = set(o.costs).union(*(self.options[x].costs for x in replaced))
        queries &= p.calls.keys()
        gone = set(replaced)
        now = sum(p.calls[q] * self.best(q) for q in queries)
        then = sum(p.calls[q] * self.best(q, gone, o) for q in queries)
        before = [self.options[x] for x in mine]
        after = [self.options[x] for x in mine if x not in gone] + [o]
        gain = now - then - upkeep_delta(p, o.table, before, after) - p.size_cost_per_mb * added / 2**20
        if gain <= 0 or gain < p.min_gain * now:
            return None
        return Move(gain, added, replaced)

    def take(self, ident: str, m: Move) -> None:
        o = self.options[ident]
        for x in m.replaced:
            self.chosen.remove(x)
            self.on_table[o.table].remove(x)
            for q in self.options[x].costs:
                self.serving.get(q, set()).discard(x)
        self.chosen.append(ident)
        self.on_table.setdefault(o.table, []).append(ident)
        for q in o.costs:
            self.serving.setdefault(q, set()).add(ident)
        self.bytes += m.added_bytes


def greedy(p: Problem, options: dict[str, Option], taken: list[tuple[str, float]] = ()) -> list[tuple[str, float]]:
    """Add (or widen) one index at a time, the move that saves the most per byte of new index
    first, while any move pays for itself (_State.move), from the indexes `taken` already
    (as greedy() returned them). A move changes only the value of the moves on its table and
    on the statements it serves: only those are re-evaluated. Under a budget, then swap
    (_swap) while a swap lowers the workload's cost, filling what it frees. Returns [(ident,
    gain at the step it was taken)], in the order taken."""
    st = _State.of(p, options, [ident for ident, _ in taken])
    gains = dict(taken)
    _fill(st, sorted(options), gains)
    while p.budget_bytes is not None and (swap := _swap(st)) is not None:
        out, into, m = swap
        st = _State.of(p, options, [x for x in st.chosen if x != out])
        st.take(into, m)
        gains.pop(out, None)
        gains[into] = m.gain + sum(gains.pop(x, 0.0) for x in m.replaced)
        _fill(st, sorted(options), gains)
    return [(x, gains[x]) for x in st.chosen]


def _fill(st: _State, idents: list[str], gains: dict[str, float]) -> None:
    """The greedy's moves on `st`, best per byte first, while any pays for itself."""
    p, options = st.p, st.options
    on_table: dict[str, list[str]] = {}
    on_query: dict[str, list[str]] = {}
    for ident in idents:
        o = options[ident]
        on_table.setdefault(o.table, []).append(ident)
        for q in o.costs:
            on_query.setdefault(q, []).append(ident)
    heap: list[tuple[float, str, int]] = []
    version: dict[str, int] = {}
    moves: dict[str, Move] = {}

    def push(ident: str) -> None:
        version[ident] = version.get(ident, 0) + 1
        m = st.move(ident) if ident not in st.chosen else None
        if m is None:
            moves.pop(ident, None)
            return
        moves[ident] = m
        # per byte: a 0.2 MB partial index that does 95% of what a 30 MB one does wins
        heapq.heappush(heap, (-m.gain / max(m.added_bytes, 8192), ident, version[ident]))

    for ident in idents:
        push(ident)
    while heap:
        _, ident, v = heapq.heappop(heap)
        if v != version[ident] or ident not in moves:
            continue
        m = moves.pop(ident)
        if p.budget_bytes is not None and st.bytes + m.added_bytes > p.budget_bytes:
            continue                 # the budget only fills up: this move will not fit again
        st.take(ident, m)
        gains[ident] = m.gain + sum(gains.pop(x, 0.0) for x in m.replaced)
        touched = set(on_table[options[ident].table])
        for q in set(options[ident].costs).union(*(options[x].costs for x in m.replaced)):
            touched.update(on_query.get(q, ()))
        for other in sorted(touched):
            push(other)


def _swap(st: _State) -> tuple[str, str, Move] | None:
    """The chosen index and the move with no room (the budget, max_per_table) to take
    instead that lower the workload's cost the most, if any does. Per byte, the greedy can
    spend a budget on small indexes and leave no room for the one that saves most: TPC-H's
    set left 100 MB of 1.3 GB unused. Without `out`, the workload costs what its removal
    adds; a move on that set saves its gain (objective() falls by the gains greedy() adds
    up), which is its gain on the whole set where `out` serves none of its statements and is
    on another table. Only an `out` that makes the room a move lacks is tried for it."""
    p, options = st.p, st.options
    now = objective(p, options, st.chosen)
    limit = now * (1 - 1e-9)
    moves = {i: m for i in sorted(options)
             if i not in st.chosen and st.move(i) is None and (m := st.move(i, room=False)) is not None}
    best: tuple[float, str, str] | None = None
    rests: dict[str, _State] = {}
    for out in st.chosen:
        o = options[out]
        lacking = [i for i, m in moves.items() if st.bytes + m.added_bytes - o.size_bytes <= p.budget_bytes
                   and (options[i].table == o.table or m.replaced
                        or len(st.on_table.get(options[i].table, [])) < p.max_per_table)]
        if not lacking:
            continue
        mates = [options[x] for x in st.on_table[o.table] if x != out]
        without = now + sum(p.calls[q] * (st.best(q, {out}) - st.best(q)) for q in o.costs if q in p.calls) \
            - upkeep_delta(p, o.table, mates, mates + [o]) - p.size_cost_per_mb * o.size_bytes / 2**20
        for into in lacking:
            i = options[into]
            if i.table != o.table and not (i.costs.keys() & o.costs.keys()):
                m = moves[into]
            else:
                m = _without(st, out, rests).move(into)
            if m is not None and without - m.gain < (best[0] if best else limit):
                best = (without - m.gain, out, into)
    if best is None:
        return None
    _, out, into = best
    return out, into, _without(st, out, rests).move(into)


def _without(st: _State, out: str, made: dict[str, _State]) -> _State:
    """The chosen set of `st` but `out` (kept in `made`)."""
    if out not in made:
        made[out] = _State.of(st.p, st.options, [x for x in st.chosen if x != out])
    return made[out]
