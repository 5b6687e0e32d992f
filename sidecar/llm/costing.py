"""Costing a statement the way the advisor does: custom plans for representative parameter
values (the engine's plan_params: pg_qualstats, else pg_stats), the generic plan when there
are none; also under a changed setting. Costs are planner estimates of PREPAREd text:
nothing is executed."""
from __future__ import annotations

from dataclasses import dataclass

import psycopg
from optischema_engine.catalog import Catalog
from optischema_engine.db import PsycopgDatabase
from optischema_engine.params import ValueSource, plan_params
from optischema_engine.plans import facts
from optischema_engine.sqltext import limit_params, single_statement
from optischema_engine.whatif import Unplannable, WhatIf

from .context import Target

PARAMETER_SETS = 3


@dataclass(frozen=True)
class Prepared:
    name: str                       # prepared statement to cost (WhatIf.cost)
    types: list[str]                # its parameter types
    samples: list[list[str]]        # argument lists (SQL literals); empty: generic plan
    sources: dict[int, str]         # where each parameter's values came from

    def cost(self, wi: WhatIf, text: str) -> tuple[float, list[dict]]:
        return wi.cost(self.name, text, self.samples, len(self.types))


def prepare(db: PsycopgDatabase, wi: WhatIf, target: Target) -> Prepared:
    """Raises Unplannable when the text cannot be planned."""
    # The generic plan says which column each parameter is compared with.
    name, types = wi.prepare(target.query)
    _, generic = wi.cost(name, target.query, [], len(types))
    f = facts(generic[0])
    catalog = Catalog(db)
    relids = {alias: t.oid for alias, rel in f.relations.items()
              if (t := catalog.table(rel.schema, rel.name)) is not None}
    pp = plan_params(types, f, relids, limit_params(target.query), target.rows_per_call,
                     ValueSource(db, [target.queryid], True), [target.queryid], PARAMETER_SETS)
    return Prepared(name, types, pp.samples, pp.source)


def plan_costs(conn: psycopg.Connection, targets: list[Target], setting: tuple[str, str] | None) -> dict[int, float]:
    """Cost of each plannable target, with a setting (name, value) changed for this
    transaction only: the transaction is always rolled back."""
    costs: dict[int, float] = {}
    with conn.transaction(force_rollback=True):
        if setting:
            conn.execute("SELECT pg_catalog.set_config(%s, %s, true)", setting)
        db = PsycopgDatabase(conn)
        wi = WhatIf(db)
        try:
            for t in targets:
                if single_statement(t.query):
                    continue
                try:
                    costs[t.queryid] = prepare(db, wi, t).cost(wi, t.query)[0]
                except Unplannable:
                    continue
        finally:
            wi.close()
    return costs
