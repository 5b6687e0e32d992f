"""What validation makes of one proposal: accepted with the recommendation OptiSchema
built from it, or rejected with the reason. Rejections are recorded, never dropped."""
from __future__ import annotations

from dataclasses import dataclass, field

from optischema_engine.safe_select import Rejected   # raised inside a check: a rejected Verdict

__all__ = ["Draft", "Rejected", "Verdict", "rejected"]


@dataclass(frozen=True)
class Draft:
    """A recommendation row, every SQL text in it built by OptiSchema."""
    kind: str                       # create_index | rewrite | config
    key: str
    title: str
    ddl: str
    rollback_ddl: str | None
    queryids: list[int]
    benefit: dict
    evidence: dict
    score: float
    table_name: str | None = None
    index_name: str | None = None
    estimated_size_bytes: int | None = None
    index_spec: dict | None = None      # create_index: what the SQL side builds it from (sql/09_index_ddl.sql)
    action_spec: dict | None = None     # config: what the SQL side builds it from (sql/12_actions.sql)


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str
    evidence: dict = field(default_factory=dict)
    draft: Draft | None = None


def rejected(e: Rejected) -> Verdict:
    return Verdict(False, e.reason, e.evidence)
