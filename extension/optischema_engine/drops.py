"""Advice to drop indexes that cost upkeep and space for nothing: invalid indexes, exact
duplicates, non-unique prefixes of another index, and (over a long enough window) unused
ones. Indexes backing a primary key, unique or exclusion constraint are never dropped; an
unused index whose leading columns are a foreign key's columns is kept too, because
deletes and key updates on the referenced table need it even if the window saw none.
A partition's index attached to a partitioned index cannot be dropped alone: only the
partitioned index is advised (never as unused: its scans are counted on the partitions)."""
from __future__ import annotations

from dataclasses import dataclass

from .catalog import ExistingIndex, Table


@dataclass
class DropAdvice:
    table: Table
    index: ExistingIndex
    reason: str                   # 'invalid' | 'duplicate' | 'prefix' | 'unused'
    detail: str                   # what makes it redundant


def _protected(ix: ExistingIndex) -> bool:
    """Enforces a rule, or is a partition's index (it goes only with its partitioned index)."""
    return ix.primary or ix.exclusion or ix.constraint is not None or ix.unique or ix.partition


def _serves_fk(t: Table, ix: ExistingIndex) -> bool:
    return any(len(fk) <= len(ix.keys) and tuple(ix.keys[:len(fk)]) == fk for fk in t.fk_columns)


def drop_advice(tables: list[Table], idx_scans: dict[int, int], window_s: float,
                unused_min_window_s: float) -> list[DropAdvice]:
    out: list[DropAdvice] = []
    for t in tables:
        chosen: set[int] = set()
        # The index a duplicate or prefix defers to serves their queries: it must not
        # go as unused in the same breath (a chain of duplicates and prefixes ends in it).
        kept: set[int] = set()

        def add(ix: ExistingIndex, reason: str, detail: str, keep: ExistingIndex | None = None) -> None:
            if ix.oid not in chosen:
                chosen.add(ix.oid)
                out.append(DropAdvice(t, ix, reason, detail))
                if keep is not None:
                    kept.add(keep.oid)

        for ix in t.indexes:
            if not ix.valid and ix.constraint is None and not ix.partition:
                add(ix, "invalid", "index is invalid (a failed CREATE INDEX CONCURRENTLY?) and is never used")
        valid = [ix for ix in t.indexes if ix.valid]
        for ix in valid:
            if _protected(ix):
                continue
            # exact duplicate: keep the constraint-backed one, else the older (lower oid)
            for other in valid:
                if other.oid != ix.oid and other.signature == ix.signature and other.oid not in chosen \
                        and (_protected(other) or other.oid < ix.oid):
                    add(ix, "duplicate", f"same definition as {other.name}", other)
                    break
        for ix in valid:
            if not _protected(ix) and ix.oid not in chosen:
                for other in valid:
                    if other.oid == ix.oid or other.am != ix.am or ix.am != "btree" or other.oid in chosen:
                        continue
                    if ix.predicate != other.predicate or ix.include:
                        continue
                    n = len(ix.keys)
                    if len(other.keys) > n and other.keys[:n] == ix.keys and _same_prefix_options(ix, other):
                        add(ix, "prefix", f"its key is a prefix of {other.name}", other)
                        break
        if window_s >= unused_min_window_s:
            for ix in valid:
                if ix.oid in chosen or ix.oid in kept or _protected(ix) or _serves_fk(t, ix):
                    continue
                if idx_scans.get(ix.oid, None) == 0:
                    add(ix, "unused", f"0 scans in {window_s / 86400:.1f} days")
    return out


def _same_prefix_options(ix: ExistingIndex, other: ExistingIndex) -> bool:
    """Sort options and collations agree on the shared key columns."""
    n = len(ix.keys)
    mine_opt, other_opt = _ints(ix.signature[4]), _ints(other.signature[4])
    mine_col, other_col = _ints(ix.signature[5]), _ints(other.signature[5])
    return mine_opt[:n] == other_opt[:n] and mine_col[:n] == other_col[:n]


def _ints(text: str) -> list[str]:
    """'0,0' (per-column sort options or collation oids) -> ['0', '0']."""
    return [x for x in (text or "").split(",") if x]
