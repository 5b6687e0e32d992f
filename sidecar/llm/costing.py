"""Costing a statement the way the advisor does: custom plans for representative parameter
values (the engine's plan_params: pg_qualstats, else pg_stats), the generic plan when there
are none; also under a changed setting. Costs are planner estimates of PREPAREd text:
nothing is executed. Every text is planned as a role that sent it (optischema_engine.senders),
never as the sidecar's role."""
from __future__ import annotations

from dataclasses import dataclass

import psycopg
from optischema_engine import senders
from optischema_engine.db import PsycopgDatabase
from optischema_engine.proof import Statement, parameter_sets
from optischema_engine.sqltext import single_statement
from optischema_engine.whatif import Unplannable, WhatIf

from ..db import own_prepared_statements
from .context import Target


@dataclass(frozen=True)
class Prepared:
    name: str                       # WhatIf's key of the statement to cost
    types: list[str]                # its parameter types
    samples: list[list[str]]        # argument lists (SQL literals); empty: generic plan
    sources: dict[int, str]         # where each parameter's values came from

    def cost(self, wi: WhatIf) -> tuple[float, list[dict]]:
        return wi.cost(self.name, self.samples)


def prepare(db: PsycopgDatabase, wi: WhatIf, target: Target) -> Prepared:
    """Raises Unplannable when the text cannot be planned, or not as a role that sent it."""
    who = senders.resolve_one(db, [target.queryid])
    if who.sender is None:
        raise Unplannable(f"not planned: {who.reason}")
    name, types = wi.prepare(target.query, who.sender)
    samples, sources = parameter_sets(db, wi, name, types, Statement(target.queryid, target.query,
                                                                     target.rows_per_call), who.sender)
    return Prepared(name, types, samples, sources)


def plan_costs(conn: psycopg.Connection, targets: list[Target], setting: tuple[str, str] | None) -> dict[int, float]:
    """Cost of each plannable target, with a setting (name, value) changed for this
    transaction only: the transaction is always rolled back."""
    costs: dict[int, float] = {}
    db = PsycopgDatabase(conn)
    with own_prepared_statements(conn), conn.transaction(force_rollback=True):
        if setting:
            conn.execute("SELECT pg_catalog.set_config(%s, %s, true)", setting)
        with senders.planning(db) as planning:
            wi = WhatIf(db, planning)
            try:
                for t in targets:
                    if single_statement(t.query):
                        continue
                    try:
                        costs[t.queryid] = prepare(db, wi, t).cost(wi)[0]
                    except Unplannable:
                        continue
            finally:
                wi.close()
    return costs
