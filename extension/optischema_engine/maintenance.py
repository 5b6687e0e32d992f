"""Plan facts behind the maintenance and configuration findings (sql/31_maintenance.sql):
which tables a statement reads and how many rows its plan expects (stale statistics), and
what its plan costs under another work_mem (the what-if of a work_mem proposal).

Every text is planned as a role that sent it, with the caller's rights (senders.py): as
the most recent sender the caller may act as, or, for a work_mem what-if, as the role
the proposal is for. A setting is changed for the planning block only (rolled back)."""
from __future__ import annotations

from typing import Any

from .db import Database
from .senders import Refused, Sender, planning, resolve_one, sender
from .sqltext import single_statement, strip_semicolon
from .whatif import Unplannable, WhatIf


def plan_as(db: Database, who: Sender, text: str, settings: dict[str, str] | None = None) \
        -> tuple[dict | None, str | None]:
    """(top node of the generic plan of `text` planned as `who`, None), or (None, why not),
    with `settings` in effect for the planning only."""
    reason = single_statement(text)
    if reason is not None:
        return None, reason
    with planning(db) as p:
        for name, value in (settings or {}).items():
            db.query("SELECT pg_catalog.set_config($1, $2, true)", [name, value])
        wi = WhatIf(db, p)
        try:
            key, _ = wi.prepare(strip_semicolon(text), who)
            return wi.cost(key, [])[1][0], None
        except Unplannable as e:
            return None, str(e)
        finally:
            wi.close()


def estimated_rows(plan: dict) -> float:
    """Rows the plan expects a call to return, or to change: a ModifyTable node without
    RETURNING expects none, the scan under it expects the rows it changes."""
    if plan.get("Node Type") == "ModifyTable" and plan.get("Plans"):
        return float(plan["Plans"][0].get("Plan Rows", 0))
    return float(plan.get("Plan Rows", 0))


def relations(plan: dict) -> list[list[str]]:
    """[schema, table] of every relation the plan scans or changes, InitPlans and SubPlans included."""
    found: list[list[str]] = []
    stack = [plan]
    while stack:
        node = stack.pop()
        if "Relation Name" in node and "Schema" in node:
            pair = [node["Schema"], node["Relation Name"]]
            if pair not in found:
                found.append(pair)
        stack.extend(node.get("Plans", []))
    return sorted(found)


def _node_types(plan: dict) -> list[str]:
    out, stack = [], [plan]
    while stack:
        node = stack.pop()
        out.append(node.get("Node Type", ""))
        stack.extend(node.get("Plans", []))
    return out


def plan_facts(db: Database, targets: dict[str, Any]) -> dict[str, Any]:
    """targets (optischema._maintenance_targets()):
         {"statements": [{"queryid", "query"}], "work_mem": [{"queryid", "query", "role", "current", "proposed"}]}
       returns
         {"plans": {queryid: {"rows", "relations"} or {"skipped"}},
          "work_mem": {queryid: {"role", "cost_current", "cost_proposed", "plan_changed", "current", "proposed"} or {"skipped"}}}"""
    plans: dict[str, Any] = {}
    for t in targets.get("statements") or []:
        who = resolve_one(db, [int(t["queryid"])])
        if who.sender is None:
            plans[str(t["queryid"])] = {"skipped": f"not planned: {who.reason}"}
            continue
        plan, why = plan_as(db, who.sender, t["query"])
        plans[str(t["queryid"])] = ({"skipped": why} if plan is None
                                    else {"rows": estimated_rows(plan), "relations": relations(plan)})
    work_mem: dict[str, Any] = {}
    for t in targets.get("work_mem") or []:
        key = str(t["queryid"])
        try:
            who = sender(db, int(t["role"]))
        except Refused as e:
            work_mem[key] = {"skipped": f"not planned: {e}"}
            continue
        before, why = plan_as(db, who, t["query"], {"work_mem": t["current"]})
        after, why_after = (None, None) if before is None else plan_as(db, who, t["query"], {"work_mem": t["proposed"]})
        if before is None or after is None:
            work_mem[key] = {"skipped": why or why_after}
            continue
        work_mem[key] = {"role": who.name, "current": t["current"], "proposed": t["proposed"],
                         "cost_current": round(float(before["Total Cost"]), 2),
                         "cost_proposed": round(float(after["Total Cost"]), 2),
                         "plan_changed": _node_types(before) != _node_types(after)}
    return {"plans": plans, "work_mem": work_mem}
