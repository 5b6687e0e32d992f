"""Inputs, settings and results of advise(); every result is JSON-serialisable via to_dict()."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class WorkloadQuery:
    """One pg_stat_statements entry of the analysis window (deltas, not cumulative totals)."""
    queryid: int
    query: str          # normalized text with $n parameters, as pg_stat_statements stores it
    calls: int
    total_ms: float
    rows: int
    sampled: bool = False
    """Known only from executions seen running (running.py): `query` is the text one of them
    was sent with, constants included."""


@dataclass
class TableActivity:
    seq_scan: int = 0
    idx_scan: int = 0
    n_tup_ins: int = 0
    n_tup_upd: int = 0
    n_tup_del: int = 0
    n_tup_hot_upd: int = 0
    n_live_tup: int = 0


@dataclass
class IndexActivity:
    idx_scan: int = 0


@dataclass
class Activity:
    """pg_stat_user_tables / pg_stat_user_indexes deltas over the analysis window."""
    window_seconds: float
    tables: dict[int, TableActivity] = field(default_factory=dict)     # by table oid
    indexes: dict[int, IndexActivity] = field(default_factory=dict)    # by indexrelid
    first_snapshot_at: str | None = None


@dataclass
class Settings:
    """Knobs of the advisor. The SQL side mirrors them as settings keys with the same names."""
    statement_coverage: float = 0.999
    """Read statements are analysed heaviest first until they cover this fraction of the
    window's read statement time (the rest is recorded as left out)."""
    min_calls: int = 1
    """Calls a query needs in the window to be analysed. 1: a statement run once (a 20-second
    report) is part of the workload; statements are selected by the time they take."""
    min_write_calls: int = 2
    """Executions a write needs in the window to be charged as index upkeep: one run once (a
    data load, a migration) says nothing of what the workload writes."""
    max_queries: int = 2000
    """Analyse at most this many read statements, heaviest first (a ceiling on the work)."""
    min_cost_reduction: float = 0.1
    """An index counts for a query only if the query's estimated cost falls by this fraction."""
    min_index_gain: float = 0.05
    """An index is added (and kept) only if it saves the statements it serves more than its
    upkeep and size, and at least this fraction of what those statements cost with the indexes
    chosen before it. Judged on its own statements only: unrelated tables change nothing."""
    write_cost_per_entry: float = 2.0
    """Planner cost units charged per index entry written by an INSERT or a non-HOT UPDATE."""
    size_cost_per_mb: float = 0.0
    """Cost units per round charged per MB of new index (0: size only breaks ties)."""
    index_budget: float = 0.0
    """Total size in bytes of the new indexes proposed at most (0: no limit). The SQL setting
    also takes a share of the database ('20%'), in bytes by the time it gets here."""
    max_indexes_per_table: int = 6
    """New indexes proposed per table at most (a safety net: there is no limit on the total)."""
    max_key_columns: int = 3
    """Key columns of a candidate at most (INCLUDE columns not counted)."""
    param_samples: int = 3
    """Representative parameter sets a query is costed with (custom plans; mean cost taken)."""
    partial_max_fraction: float = 0.5
    """A comparison with one constant every time (`=` or `<>`) becomes a partial-index
    predicate only if it keeps at most this fraction of the table's rows."""
    time_budget_s: float = 60.0
    """Stop evaluating further candidates after this many seconds (the best set so far is kept)."""
    drop_unused_min_window_s: float = 7 * 86400.0
    """Advise dropping an index with no scans only if the window is at least this long:
    month-end reports must have had their chance to use it."""
    use_pg_qualstats: bool = True
    """Read observed constants from pg_qualstats (if installed) for representative parameters."""

    @classmethod
    def from_dict(cls, values: dict) -> "Settings":
        known = cls.__dataclass_fields__
        out = cls()
        for name, value in values.items():
            if name in known:
                setattr(out, name, type(getattr(out, name))(value))
        return out


@dataclass
class Recommendation:
    kind: str                   # 'create_index' | 'drop_index'
    key: str                    # stable identity across runs
    title: str
    ddl: str
    rollback_ddl: str
    table: str                  # schema.table
    index_name: str
    queryids: list[int]
    benefit: dict
    estimated_size_bytes: int
    write_overhead: dict
    evidence: dict
    score: float
    index_spec: dict            # what the SQL side builds the statements from (sql/09_index_ddl.sql)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Skipped:
    queryid: int
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AdviceResult:
    recommendations: list[Recommendation]
    skipped: list[Skipped]
    stats: dict

    def to_dict(self) -> dict:
        return {"recommendations": [r.to_dict() for r in self.recommendations],
                "skipped": [s.to_dict() for s in self.skipped], "stats": dict(self.stats)}
