"""Config proposals: a setting of OptiSchema's allow-list (optischema.tunable_settings) with a
value inside the bounds listed there, which PostgreSQL would also accept (type, unit, range,
enum), at a scope the setting allows. A setting that needs a restart (pg_settings.context
'postmaster') is advice only: recorded with that mark, never applied. The statement is built
by OptiSchema from the catalog's name and the re-formatted value."""
from __future__ import annotations

import re

import psycopg
from psycopg.rows import dict_row
from optischema_engine.ddl import quote_ident
from optischema_engine.sqltext import quote_literal

from . import costing
from .context import Target
from .models import ConfigProposal
from .verdict import Draft, Rejected, Verdict, rejected

# Settings whose effect on plans a session can preview (SET LOCAL, rolled back).
PREVIEWABLE_CATEGORIES = ("Query Tuning", "Resource Usage / Memory")
_MEMORY = {"B": 1, "kB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}
_TIME = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
_BOOL = {"on": "on", "true": "on", "yes": "on", "1": "on", "off": "off", "false": "off", "no": "off", "0": "off"}
_SETTING_SQL = """
SELECT s.name, s.setting, s.unit, s.category, s.context, s.vartype, s.min_val, s.max_val, s.enumvals,
       pg_catalog.current_setting(s.name) AS shown, t.name IS NOT NULL AS listed, t.min_value, t.max_value, t.allowed, t.why
FROM pg_catalog.pg_settings s LEFT JOIN optischema.tunable_settings t ON t.name = s.name
WHERE s.name = %s"""


def _unit_factor(unit: str) -> tuple[dict[str, float], float]:
    """The unit table a setting's unit belongs to and the setting unit's size in it ('8kB' included)."""
    m = re.fullmatch(r"(\d*)(\w+)", unit)
    mult, base = int(m.group(1) or 1), m.group(2)
    table = _MEMORY if base in _MEMORY else _TIME
    return table, mult * table[base]


def _value(s: dict, text: str) -> tuple[str, float | None]:
    """(canonical value text, value in the setting's own unit for numbers)."""
    vartype = s["vartype"]
    if vartype == "bool":
        if text.strip().lower() not in _BOOL:
            raise Rejected(f"{text!r} is not a boolean")
        return _BOOL[text.strip().lower()], None
    if vartype == "enum":
        if text.strip().lower() not in s["enumvals"]:
            raise Rejected(f"{text!r} is not one of {', '.join(s['enumvals'])}")
        return text.strip().lower(), None
    m = _NUMBER.match(text)
    if not m:
        raise Rejected(f"{text!r} is not a number with an optional unit")
    number, unit = float(m.group(1)), m.group(2)
    own = number
    if s["unit"]:
        table, setting_unit = _unit_factor(s["unit"])
        if unit and unit not in table:
            raise Rejected(f"unit {unit!r} does not fit {s['name']} (unit {s['unit']}); use one of {', '.join(table)}")
        own = number * (table[unit] if unit else setting_unit) / setting_unit
    elif unit:
        raise Rejected(f"{s['name']} takes no unit")
    if vartype == "integer" and abs(own - round(own)) > 1e-9:
        raise Rejected(f"{text!r} is not a whole number of {s['unit'] or 'units'}")
    lo, hi = float(s["min_val"]), float(s["max_val"])
    if not lo <= own <= hi:
        raise Rejected(f"{text!r} is out of range for {s['name']}: {s['min_val']} to {s['max_val']} {s['unit'] or ''}".rstrip())
    return f"{m.group(1)}{unit}", own


def _ddl(conn: psycopg.Connection, name: str, value: str, scope: str) -> tuple[str, str]:
    if scope == "system":
        return (f"ALTER SYSTEM SET {quote_ident(name)} = {quote_literal(value)}",
                f"ALTER SYSTEM RESET {quote_ident(name)}")
    db = quote_ident(conn.info.dbname)
    return (f"ALTER DATABASE {db} SET {quote_ident(name)} = {quote_literal(value)}",
            f"ALTER DATABASE {db} RESET {quote_ident(name)}")


def _preview(conn: psycopg.Connection, s: dict, value: str, targets: list[Target]) -> list[dict]:
    """The planner's estimates before and after, for settings a session may change. They are
    evidence, not a gate: cost constants such as random_page_cost change the scale itself."""
    if s["context"] != "user" or not s["category"].startswith(PREVIEWABLE_CATEGORIES):
        return []
    before = costing.plan_costs(conn, targets, None)
    after = costing.plan_costs(conn, targets, (s["name"], value))
    return [{"queryid": q, "cost_before": round(before[q], 2), "cost_after": round(after[q], 2)}
            for q in before if q in after]


def _allowed(s: dict, value: str, own: float | None) -> None:
    """Rejected unless the value is inside the allow-list's bounds for this setting."""
    if s["allowed"] is not None:
        if value not in s["allowed"]:
            raise Rejected(f"{s['name']} = {value} is not proposed by OptiSchema (only {', '.join(s['allowed'])}): "
                           f"{s['why']}")
        return
    lo, hi = (_value(s, bound)[1] for bound in (s["min_value"], s["max_value"]))
    if not lo <= own <= hi:
        raise Rejected(f"{s['name']} = {value} is outside the range OptiSchema proposes, {s['min_value']} to "
                       f"{s['max_value']}: {s['why']}")


def check(conn: psycopg.Connection, p: ConfigProposal, targets: list[Target]) -> Verdict:
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(_SETTING_SQL, (p.name.strip().lower(),))
            s = cur.fetchone()
        if s is None:
            raise Rejected(f"{p.name!r} is not a PostgreSQL setting (pg_settings)")
        if not s["listed"]:
            raise Rejected(f"{s['name']} is not a setting OptiSchema proposes (see optischema.tunable_settings)")
        if p.scope in ("role", "session"):
            raise Rejected(f"scope {p.scope!r}: OptiSchema proposes system or database settings only")
        if p.scope == "database" and s["context"] in ("postmaster", "sighup"):
            raise Rejected(f"{s['name']} (context {s['context']}) can only be set for the whole server (scope system)")
        value, own = _value(s, p.value)
        _allowed(s, value, own)
        current = float(s["setting"]) if own is not None else s["setting"]
        if (own if own is not None else value) == current:
            raise Rejected(f"{s['name']} is already {s['shown']}")
    except Rejected as e:
        return rejected(e)
    restart = s["context"] == "postmaster"
    ddl, rollback = _ddl(conn, s["name"], value, p.scope)
    evidence = {"setting": s["name"], "current": s["shown"], "proposed": value, "unit": s["unit"],
                "range": [s["min_val"], s["max_val"]] if s["min_val"] is not None else None,
                "proposable": s["allowed"] or [s["min_value"], s["max_value"]],
                "context": s["context"], "restart_required": restart, "advice_only": restart, "scope": p.scope,
                "category": s["category"]}
    title = (f"Set {s['name']} = {value} ({'server' if p.scope == 'system' else 'database ' + conn.info.dbname}"
             f"; now {s['shown']}{'; needs restart: advice only, never applied by OptiSchema' if restart else ''})")
    estimates = _preview(conn, s, value, targets)
    benefit = {"planner_estimates": estimates,
               "note": "planner cost estimates of the analysed statements with the new value (SET LOCAL, rolled "
                       "back); a setting changes every plan, so measure after applying" if estimates
                       else "not previewed: this setting cannot be changed for one session"}
    draft = Draft(kind="config", key=f"config:{p.scope}:{s['name']}", title=title, ddl=ddl, rollback_ddl=rollback,
                  queryids=[t.queryid for t in targets], benefit=benefit, evidence=evidence, score=0.0)
    return Verdict(True, f"valid {s['vartype']} value for {s['name']} (context {s['context']})"
                   + ("; needs a server restart: advice only" if restart else ""), evidence, draft)
