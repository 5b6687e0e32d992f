"""Config proposals: a setting of OptiSchema's allow-list (optischema.tunable_settings) with a
value inside the bounds listed there, which PostgreSQL would also accept (type, unit, range,
enum), at a scope the setting allows. A setting that needs a restart (pg_settings.context
'postmaster') is advice only: recorded with that mark, never applied. The check and the
statement are the database's own (optischema._setting_proposal(), _action_statement() in
sql/12_actions.sql), the same the advisor's configuration findings and apply() use: the
proposal becomes a description ({"setting", "value", "scope"}) its statement is built from."""
from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from . import costing
from .context import Target
from .models import ConfigProposal
from .verdict import Draft, Rejected, Verdict, rejected

# Settings whose effect on plans a session can preview (SET LOCAL, rolled back).
PREVIEWABLE_CATEGORIES = ("Query Tuning", "Resource Usage / Memory")


def _preview(conn: psycopg.Connection, s: dict, value: str, targets: list[Target]) -> list[dict]:
    """The planner's estimates before and after, for settings a session may change. They are
    evidence, not a gate: cost constants such as random_page_cost change the scale itself."""
    if s["context"] != "user" or not s["category"].startswith(PREVIEWABLE_CATEGORIES):
        return []
    before = costing.plan_costs(conn, targets, None)
    after = costing.plan_costs(conn, targets, (s["name"], value))
    return [{"queryid": q, "cost_before": round(before[q], 2), "cost_after": round(after[q], 2)}
            for q in before if q in after]


def proposal(conn: psycopg.Connection, name: str, value: str, scope: str) -> dict:
    """optischema._setting_proposal(): the setting described, or Rejected with the database's reason."""
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            cur.execute("SELECT * FROM optischema._setting_proposal(%s, %s, %s)", (name, value, scope))
            return cur.fetchone()
    except (psycopg.errors.InvalidParameterValue, psycopg.errors.UndefinedObject) as e:
        raise Rejected(e.diag.message_primary or str(e)) from None


def check(conn: psycopg.Connection, p: ConfigProposal, targets: list[Target]) -> Verdict:
    try:
        if p.scope in ("role", "session"):
            raise Rejected(f"scope {p.scope!r}: OptiSchema proposes system or database settings only")
        s = proposal(conn, p.name, p.value, p.scope)
        if s["is_current"]:
            raise Rejected(f"{s['name']} is already {s['current']}")
    except Rejected as e:
        return rejected(e)
    restart = s["advice_only"]
    value = s["value"]
    evidence = {"setting": s["name"], "current": s["current"], "current_source": s["current_source"], "proposed": value,
                "unit": s["unit"], "range": [s["min_val"], s["max_val"]] if s["min_val"] is not None else None,
                "proposable": s["proposable"], "context": s["context"], "restart_required": restart,
                "advice_only": restart, "scope": p.scope, "category": s["category"]}
    title = (f"Set {s['name']} = {value} ({'server' if p.scope == 'system' else 'database ' + conn.info.dbname}"
             f"; now {s['current']}{'; needs restart: advice only, never applied by OptiSchema' if restart else ''})")
    estimates = _preview(conn, s, value, targets)
    benefit = {"planner_estimates": estimates,
               "note": "planner cost estimates of the analysed statements with the new value (SET LOCAL, rolled "
                       "back); a setting changes every plan, so measure after applying" if estimates
                       else "not previewed: this setting cannot be changed for one session"}
    # ddl and rollback_ddl are built from the description by the database when it records it.
    draft = Draft(kind="config", key=f"config:{p.scope}:{s['name']}", title=title, ddl="", rollback_ddl=None,
                  queryids=[t.queryid for t in targets], benefit=benefit, evidence=evidence, score=0.0,
                  action_spec={"setting": s["name"], "value": value, "scope": p.scope})
    return Verdict(True, f"valid {s['vartype']} value for {s['name']} (context {s['context']})"
                   + ("; needs a server restart: advice only" if restart else ""), evidence, draft)
