"""The proof a rewrite needs before anyone sees it: the advisor's (rewrites.py) and a
model's (the sidecar's LLM check) go through this one path.

1. Both texts are one SELECT each, read by PostgreSQL's parser (safe_select.parse); what
   runs is the text re-written from that tree.
2. Everything runs as a role that sent the statement (senders.py: a SECURITY DEFINER sandbox
   owned by that role, with its search_path, in savepoints that are rolled back).
3. Before anything is planned, the server resolves what both texts use (safe_select): only
   side-effect-free built-ins, and the rewrite reads no relation the original does not.
4. The rewrite must take the original's parameters and return the same rows for each of
   several representative parameter sets (where it takes more, keyset pagination's last
   key, their values come from the original's rows by a query of the candidate's, checked
   and run like the two texts): both run READ ONLY, bounded by statement_timeout,
   compared as multisets (in order when the original has an ORDER BY) by a digest that is
   kept nowhere; only row counts, times and equal/not equal are. And it must cost less with
   the same parameter sets (what-if: planner estimates), or, where the planner's estimate
   is wrong (a correlated subquery in a join filter), have run in at most half the time.

statement_timeout bounds a statement the client sends, not one a function runs (SPI):
prove() is called on a client connection (PsycopgDatabase), in a transaction that the
caller rolls back, never inside PL/Python."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from . import safe_select, senders
from .catalog import Catalog
from .db import Database
from .params import ValueSource, plan_params
from .plans import facts, summary, walk
from .safe_select import Rejected, Select, Uses
from .senders import Failed, Planning, Sender
from .sqltext import limit_params, quote_literal
from .whatif import Unplannable, WhatIf

PARAMETER_SETS = 3

# {q} is a SELECT; the whole row, qualified (a bare alias would name an output column of the
# same name); every name qualified too (it runs under the sender's search_path). The rows
# sorted by their text (a multiset), or numbered in the order they came.
_DIGEST = ("SELECT pg_catalog.count(*) AS n, pg_catalog.md5(COALESCE(pg_catalog.string_agg(optischema_t.t, E'\\n' "
           "ORDER BY optischema_t.{by}), '')) AS h FROM (SELECT ROW(optischema_r.*)::pg_catalog.text AS t{k} "
           "FROM ({q}) optischema_r) optischema_t")
_CLOCK = ("SELECT pg_catalog.clock_timestamp() AS t", True)
# Faster by measurement when the planner's estimate says otherwise (it charges a correlated
# subquery in a join filter far less than it runs): at most this share of the original's
# time, over all parameter sets, and the original took at least MIN_MEASURED_MS.
MEASURED_SHARE = 0.5
MIN_MEASURED_MS = 20.0


def digest_sql(q: str, ordered: bool) -> str:
    """Row count and a digest of the rows of SELECT `q`."""
    return _DIGEST.format(q=q, by="k" if ordered else "t",
                          k=", pg_catalog.row_number() OVER () AS k" if ordered else "")


@dataclass(frozen=True)
class Statement:
    """The captured statement a rewrite replaces."""
    queryid: int
    text: str
    rows_per_call: float = 1.0      # sizes LIMIT parameters


@dataclass
class Proof:
    sender: str
    original: str                   # both as re-written from their trees
    rewrite: str
    cost_before: float
    cost_after: float
    runs: list[dict] = field(default_factory=list)          # per parameter set: parameters, rows, same
    sources: dict[str, str] = field(default_factory=dict)   # where each parameter's values came from
    plan_before: list[dict] = field(default_factory=list)
    plan_after: list[dict] = field(default_factory=list)
    measured: dict[str, float] | None = None    # faster by the clock where the estimate says otherwise

    @property
    def reduction(self) -> float:
        """The share of the original's cost the rewrite saves: by the estimates, or where it
        was taken on time, by the times."""
        if self.measured:
            return 1 - self.measured["rewrite"] / self.measured["original"]
        return 1 - self.cost_after / self.cost_before if self.cost_before else 0.0

    def evidence(self) -> dict:
        return {"original": self.original, "run_as": self.sender, "cost_before": round(self.cost_before, 2),
                "cost_after": round(self.cost_after, 2), "parameter_sources": self.sources, "runs": self.runs,
                "plan_before": self.plan_before, "plan_after": self.plan_after,
                **({"faster_measured_ms": self.measured} if self.measured else {})}


def parameter_sets(db: Database, wi: WhatIf, key: str, types: list[str], st: Statement,
                   who: Sender) -> tuple[list[list[str]], dict[int, str]]:
    """Representative parameter sets of prepared statement `key` (the advisor's: pg_qualstats,
    else pg_stats of columns `who` may read), from which column each parameter is compared
    with in the generic plan; none when it has no parameters."""
    _, generic = wi.cost(key, [])
    f = facts(generic[0])
    catalog = Catalog(db)
    relids = {alias: t.oid for alias, rel in f.relations.items()
              if (t := catalog.table(rel.schema, rel.name)) is not None}

    def plan():
        return plan_params(types, f, relids, limit_params(st.text), st.rows_per_call,
                           ValueSource(db, [st.queryid], True), [st.queryid], PARAMETER_SETS, who.oid)
    pp = plan()
    # A parameter compared in a way no statistic gives a value to (`d < $4::date + $5::interval
    # year`) leaves no parameter set at all: it gets an assumed value below instead.
    unknown = {n for n, how in pp.source.items() if how == "generic"}
    if not pp.samples and unknown:
        f.cond_params -= unknown
        pp = plan()
    return pp.samples, pp.source


def _prepare(wi: WhatIf, select: Select, who: Sender, what: str) -> tuple[str, list[str]]:
    """(WhatIf key, parameter types) of `select` as `who`: PREPARE is parse analysis only."""
    try:
        return wi.prepare(select.text, who)
    except Unplannable as e:
        raise Rejected(f"{what} cannot be prepared: {e}") from None


def _uses(db: Database, planning: Planning, who: Sender, select: Select, types: list[str], what: str) -> Uses:
    """What `select` uses as `who` resolves it, refused unless all of it passes the allow rule."""
    try:
        uses = safe_select.resolve(planning, who, select, types)
    except (Rejected, senders.Refused) as e:
        raise Rejected(f"{what} {getattr(e, 'reason', e)}") from None
    why = safe_select.refusals(db, uses)
    if why:
        raise Rejected(f"{what} {'; '.join(why)}: OptiSchema runs only SELECTs of side-effect-free built-ins")
    return uses


def _cost(wi: WhatIf, key: str, samples: list[list[str]], what: str) -> tuple[float, list[dict]]:
    try:
        return wi.cost(key, samples)
    except Unplannable as e:
        raise Rejected(f"{what} does not plan: {e}") from None


def _ms(a: dict, b: dict) -> float:
    """Milliseconds between two _CLOCK rows."""
    t = [datetime.fromisoformat(x["t"]) for x in (a, b)]
    return (t[1] - t[0]).total_seconds() * 1000


@contextmanager
def _bounded(db: Database, timeout_ms: int, evidence: dict, what: str):
    """Runs as the sender (planning's calls, READ ONLY), each bounded by statement_timeout, in
    a savepoint; a failure is Rejected with its SQLSTATE only: an error message can quote the
    data that caused it."""
    try:
        with db.subtransaction():
            db.query(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            yield
    except Failed as e:
        raise Rejected(f"{what} failed with SQLSTATE {e.sqlstate}", evidence) from None
    except Rejected:
        raise
    except Exception as e:  # noqa: BLE001 - the whole call was cancelled (statement_timeout) or failed
        state = getattr(e, "sqlstate", None)
        if state == "57014":
            raise Rejected(f"{what} exceeded statement_timeout ({timeout_ms} ms)", evidence) from None
        raise Rejected(f"{what} failed with SQLSTATE {state} ({type(e).__name__})", evidence) from None


def _derived(db: Database, planning: Planning, who: Sender, types: list[str], rtypes: list[str], derive: str,
             samples: list[list[str]], timeout_ms: int, evidence: dict) -> list[list[str]]:
    """Per parameter set of the original, the rewrite's: the original's values, then the
    ones `derive` gives (its one row, as text; NULL where it gives none), as literals of the
    rewrite's types."""
    typelist = f"({', '.join(types)})" if types else ""
    more = rtypes[len(types):]
    out = []
    with _bounded(db, timeout_ms, evidence, "deriving the rewrite's parameters"):
        for args in samples:
            name = senders.statement_name()
            rows = planning.run(who, [(f"PREPARE {name}{typelist} AS {derive}", False),
                                      (f"EXECUTE {name}" + (f"({', '.join(args)})" if args else ""), True),
                                      (f"DEALLOCATE {name}", False)], deallocate=[name])[1]
            values = list(rows[0].values()) if rows else [None] * len(more)
            if len(rows) > 1 or len(values) != len(more) or any(not isinstance(v, (str, type(None))) for v in values):
                raise Rejected(f"the query deriving the rewrite's parameters gives no single row of {len(more)} "
                               "text values", evidence)
            out.append(args + [f"{quote_literal(v)}::{t}" if v is not None else f"NULL::{t}"
                               for v, t in zip(values, more)])
    return out


def _same_results(db: Database, planning: Planning, who: Sender, types: tuple[list[str], list[str]],
                  texts: tuple[str, str], samples: list[tuple[list[str], list[str]]], ordered: bool, timeout_ms: int,
                  evidence: dict) -> list[dict]:
    """Both texts (original, rewrite, with their parameter types) run per pair of parameter
    sets as `who`, READ ONLY (planning's calls), each bounded by statement_timeout, timed.
    The digests are compared here and kept nowhere."""
    runs: list[dict] = []
    evidence["runs"] = runs
    typelists = [f"({', '.join(t)})" if t else "" for t in types]
    with _bounded(db, timeout_ms, evidence, "the equivalence check"):
        for n, sets in enumerate(samples, 1):
            got, ms = {}, {}
            # one call per side: each is one statement, bounded by statement_timeout on its own
            for side, text, typelist, args in zip(("original", "rewrite"), texts, typelists, sets):
                arglist = f"({', '.join(args)})" if args else ""
                name = senders.statement_name()
                rows = planning.run(who, [(f"PREPARE {name}{typelist} AS {digest_sql(text, ordered)}", False),
                                          _CLOCK, (f"EXECUTE {name}{arglist}", True), _CLOCK,
                                          (f"DEALLOCATE {name}", False)], deallocate=[name])
                got[side], ms[side] = rows[2][0], round(_ms(rows[1][0], rows[3][0]), 2)
            same = got["original"] == got["rewrite"]
            runs.append({"parameters": sets[0], **({"rewrite_parameters": sets[1]} if sets[1] != sets[0] else {}),
                         "rows": {k: int(v["n"]) for k, v in got.items()}, "same": same, "ms": ms})
            if not same:
                raise Rejected(f"different results for parameter set {n} of {len(samples)}: original "
                               f"{got['original']['n']} rows, rewrite {got['rewrite']['n']} rows", evidence)
    return runs


def prove(db: Database, st: Statement, rewrite_sql: str, timeout_ms: int,
          extra_sets: list[list[str]] | None = None, derive: str | None = None) -> Proof:
    """The proof that `rewrite_sql` may replace statement `st`, or Rejected with the reason
    (and what was measured up to then in its evidence). `extra_sets`: parameter sets (SQL
    literals) to compare on besides the representative ones. `derive`: where the rewrite
    takes parameters after the original's, a SELECT of the original's parameters whose one
    row is their values as text (rewrites.Candidate.derive). Runs in savepoints of the
    caller's transaction; the caller rolls it back."""
    original = safe_select.parse(st.text, "the original")
    rewrite = safe_select.parse(rewrite_sql, "the rewrite")
    deriving = safe_select.parse(derive, "the query deriving the rewrite's parameters") if derive else None
    found = senders.resolve_one(db, [st.queryid])
    if found.sender is None:
        raise Rejected(f"not checked: {found.reason}")
    who = found.sender
    # resolving creates a temporary function, refused in a READ ONLY call: a block of its own
    with senders.planning(db, read_only=False) as planning:
        wi = WhatIf(db, planning)
        _, types = _prepare(wi, original, who, "the original")
        _, rtypes = _prepare(wi, rewrite, who, "the rewrite")
        reads = _uses(db, planning, who, original, types, "the original").relations
        extra = _uses(db, planning, who, rewrite, rtypes, "the rewrite").relations - reads
        if deriving:
            extra |= _uses(db, planning, who, deriving, types, "the query deriving the rewrite's parameters"
                           ).relations - reads
    if rtypes[:len(types)] != types or (len(rtypes) > len(types)) != bool(deriving):
        raise Rejected(f"the rewrite's parameters {rtypes} differ from the original's {types}"
                       + (" and the ones derived after them" if deriving else ""))
    if extra:
        names = db.query("SELECT pg_catalog.string_agg(x::pg_catalog.regclass::text, ', ' ORDER BY x) AS n"
                         " FROM pg_catalog.unnest($1::oid[]) x", ["{" + ",".join(map(str, sorted(extra))) + "}"])
        raise Rejected(f"the rewrite reads {names[0]['n']}, which the original does not")
    with senders.planning(db) as planning:
        wi = WhatIf(db, planning)
        okey, _ = _prepare(wi, original, who, "the original")
        rkey, _ = _prepare(wi, rewrite, who, "the rewrite")
        try:
            samples, sources = parameter_sets(db, wi, okey, types, st, who)
        except Unplannable as e:
            raise Rejected(f"the original cannot be planned: {e}") from None
        if types and not samples and not extra_sets:
            raise Rejected("no representative parameter values to compare results with (no statistics)")
        # no parameters: one run without; with some, only sets of values
        base = samples or ([] if types else [[]])
        sets = base + (extra_sets or [])
        rsets = sets
        if deriving:
            sources.update({n: "derived: from the original's rows, as its sender"
                            for n in range(len(types) + 1, len(rtypes) + 1)})
            rsets = _derived(db, planning, who, types, rtypes, deriving.text, sets, timeout_ms,
                             {"parameter_sources": {str(k): v for k, v in sources.items()}})
        before, plans_before = _cost(wi, okey, samples, "the original")
        after, plans_after = _cost(wi, rkey, rsets[:len(base)] if deriving else samples, "the rewrite")
        if any(node.get("Node Type") == "ModifyTable" for p in plans_after for node in walk(p)):
            raise Rejected("the rewrite modifies data")
        proof = Proof(who.name, original.text, rewrite.text, before, after,
                      sources={str(k): v for k, v in sources.items()},
                      plan_before=summary(plans_before[0]), plan_after=summary(plans_after[0]))
        evidence = proof.evidence()
        # what WhatIf prepared: the texts made plannable the same way (plannable.py)
        proof.runs = _same_results(db, planning, who, (types, rtypes),
                                   (wi.planned(okey).text, wi.planned(rkey).text), list(zip(sets, rsets)),
                                   bool(original.tree.stmt.sortClause), timeout_ms, evidence)
    if after >= before:
        ms = {k: sum(r["ms"][k] for r in proof.runs) for k in ("original", "rewrite")}
        if ms["original"] < MIN_MEASURED_MS or ms["rewrite"] > MEASURED_SHARE * ms["original"]:
            raise Rejected(f"the rewrite does not cost less (original {before:g}, rewrite {after:g}) and is not "
                           f"measurably faster ({ms['rewrite']:.1f} ms against {ms['original']:.1f} ms)", proof.evidence())
        proof.measured = ms
    return proof
