"""What-if costing: normalized text PREPAREd and explained (never executed) under
hypothetical indexes, always as the role that sent it (senders.py): parsing and planning
run code of that role's choosing. A prepared statement lives for one call only (PREPARE,
the EXPLAINs, DEALLOCATE), so no other role's code can replace it between two calls.
Leaves the session as found: exactly the hypothetical indexes it created are removed."""
from __future__ import annotations

from .db import Database
from .plannable import Plannable, variants
from .plans import HYPOTHETICAL, root, walk
from .senders import Failed, Planning, Sender, first_line, planning, resolve_one, statement_name
from .sqltext import quote_literal, single_statement, strip_semicolon

# The parameter types of prepared statement {name}, schema-qualified, without typmods:
# `character` would mean char(1) and truncate the values cast to it.
_TYPES_SQL = (
    "SELECT ARRAY(SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) "
    "pg_catalog.quote_ident(t.typname) FROM pg_catalog.unnest(p.parameter_types) WITH ORDINALITY u(typ, k) "
    "JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) u.typ "
    "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace ORDER BY u.k) AS t "
    "FROM pg_catalog.pg_prepared_statements p WHERE p.name OPERATOR(pg_catalog.=) {name}")


class Unplannable(Exception):
    """The text cannot be re-planned (the reason is recorded, advise() goes on)."""


CHUNK = 200     # statements in one call at most: bounds the memory a call's results take


class WhatIf:
    """Inside a `senders.planning()` block."""

    def __init__(self, db: Database, planning: Planning):
        self.db = db
        self.planning = planning
        self.explain_calls = 0
        self.cache_hits = 0
        self.hypo_created = 0
        self._stmts: dict[str, tuple[str, Sender, int]] = {}    # key -> (text, sender, parameters)
        self._planned: dict[str, Plannable] = {}
        self._hypo: dict[str, tuple[int, str]] = {}          # identity -> (oid, name) while active
        self._sizes: dict[str, int] = {}                     # identity -> HypoPG's size, once created
        self._active: set[str] = set()
        # A hypothetical index can change only the plans of statements that read its table:
        # a statement's costs are cached per the active indexes on the tables it reads.
        self._scope: dict[str, frozenset[str]] = {}          # key -> tables it reads
        self._table: dict[str, str] = {}                     # identity -> its table
        self._cache: dict[tuple, tuple[float, list[dict], frozenset[str]]] = {}
        self.last_used: frozenset[str] = frozenset()
        self._hypopg_schema: str | None = None

    @staticmethod
    def _group(text: str, statements: list[tuple[str, bool]]) -> tuple[list[tuple[str, bool]], str]:
        """PREPARE text under a fresh name, `statements` ({name} in them), DEALLOCATE."""
        name = statement_name()
        return ([(f"PREPARE {name} AS {text}", False)] + [(s.replace("{name}", name), rows) for s, rows in statements]
                + [(f"DEALLOCATE {name}", False)]), name

    def _run(self, sender: Sender, groups: list[tuple[list[tuple[str, bool]], str]]) -> list[list[list[dict]] | str]:
        """One call as sender; per group the rows of its own statements, or why it failed."""
        try:
            results = self.planning.run_groups(sender, [g for g, _ in groups], [[name] for _, name in groups])
        except Exception as e:  # noqa: BLE001 - Refused, or the whole call failed (e.g. statement_timeout)
            return [first_line(e)] * len(groups)
        return [first_line(r) if isinstance(r, Failed) else r[1:-1] for r in results]

    # -- statements --------------------------------------------------------------------
    def prepare(self, text: str, sender: Sender) -> tuple[str, list[str]]:
        """Checks that `text` prepares as `sender`; returns (key for cost(), parameter types)."""
        result = self.prepare_many([(text, sender)])[0]
        if isinstance(result, Unplannable):
            raise result
        return result

    def prepare_many(self, items: list[tuple[str, Sender]]) -> list[tuple[str, list[str]] | Unplannable]:
        """prepare() of several texts: one call per sender (and CHUNK texts). Each text is
        first made plannable (plannable.py), its variants tried in order: what is prepared
        is planned(key).text. A text that does not prepare reports the first variant's error."""
        out: list[tuple[str, list[str]] | Unplannable] = [Unplannable("not prepared")] * len(items)
        todo = {n: variants(text) for n, (text, _) in enumerate(items)}
        first = True
        while todo:
            by_sender: dict[int, list[int]] = {}
            for n in todo:
                by_sender.setdefault(items[n][1].oid, []).append(n)
            for ns in by_sender.values():
                for chunk in _chunks(ns):
                    sender = items[chunk[0]][1]
                    groups = [self._group(todo[n][0].text, [(_TYPES_SQL.format(name="'{name}'"), True)])
                              for n in chunk]
                    for n, result in zip(chunk, self._run(sender, groups)):
                        p = todo[n][0]
                        if isinstance(result, str):
                            if first:
                                out[n] = Unplannable(result + (f" (text rewritten: {', '.join(p.rewrites)})"
                                                               if p.rewritten else ""))
                            continue
                        rows = result[0]
                        types = [str(t) for t in (rows[0]["t"] or [])] if rows else []
                        if "pg_catalog.unknown" in types:
                            if first:
                                out[n] = Unplannable("parameter of undetermined type")
                            continue
                        key = statement_name()
                        self._stmts[key] = (p.text, sender, len(types))
                        self._planned[key] = p
                        out[n] = (key, types)
            todo = {n: v[1:] for n, v in todo.items() if isinstance(out[n], Unplannable) and len(v) > 1}
            first = False
        return out

    def set_scope(self, key: str, tables: set[str]) -> None:
        """The tables statement `key` reads (as activate()'s `tables` name them): its costs
        are then cached per the active indexes on those tables only."""
        self._scope[key] = frozenset(tables)

    def _relevant(self, key: str) -> frozenset[str]:
        scope = self._scope.get(key)
        if scope is None:
            return frozenset(self._active)
        return frozenset(i for i in self._active if self._table.get(i, "") in scope or i not in self._table)

    def sender(self, key: str) -> Sender:
        return self._stmts[key][1]

    def planned(self, key: str) -> Plannable:
        """The text prepared for statement `key`: the normalized one, or rewritten."""
        return self._planned[key]

    def cost(self, key: str, samples: list[list[str]]) -> tuple[float, list[dict]]:
        """Mean total cost over the parameter samples (generic plan if none), with the
        currently active hypothetical indexes; cached per (statement, parameter samples,
        hypothetical set)."""
        result = self.costs([(key, samples)])[key]
        if isinstance(result, Unplannable):
            raise result
        self.last_used = result[2]
        return result[0], result[1]

    def costs(self, items: list[tuple[str, list[list[str]]]]) \
            -> dict[str, tuple[float, list[dict], frozenset[str]] | Unplannable]:
        """cost() of several statements: (cost, plans, the active hypothetical indexes the
        plans use) or Unplannable, per key. One call per sender, whatever the number of
        statements and EXPLAINs."""
        out: dict[str, tuple[float, list[dict], frozenset[str]] | Unplannable] = {}
        todo: dict[int, list[tuple[str, tuple]]] = {}
        for key, samples in items:
            ck = (key, tuple(tuple(args) for args in samples), self._relevant(key))
            if ck in self._cache:
                self.cache_hits += 1
                out[key] = self._cache[ck]
            else:
                todo.setdefault(self._stmts[key][1].oid, []).append((key, ck))
        for batch in (c for b in todo.values() for c in _chunks(b)):
            sender = self._stmts[batch[0][0]][1]
            groups = [self._group(self._stmts[key][0], self._explains(key, [list(a) for a in ck[1]]))
                      for key, ck in batch]
            for (key, ck), result in zip(batch, self._run(sender, groups)):
                if isinstance(result, str):
                    out[key] = Unplannable(result)
                    continue
                plans = [root(rows[0]["QUERY PLAN"]) for rows in result[1:]]
                # hypopg names carry the oid, which changes when an index is re-created: mark
                # which hypothetical index a node scans by identity, now
                names = {self._hypo[i][1]: i for i in ck[2]}
                scans = [n for p in plans for n in walk(p) if n.get("Index Name") in names]
                for node in scans:
                    node[HYPOTHETICAL] = names[node["Index Name"]]
                used = frozenset(n[HYPOTHETICAL] for n in scans)
                self._cache[ck] = out[key] = (sum(p["Total Cost"] for p in plans) / len(plans), plans, used)
        return out

    def _explains(self, key: str, samples: list[list[str]]) -> list[tuple[str, bool]]:
        """The statements of one cost() after PREPARE: the plan cache mode, then one EXPLAIN
        per parameter sample (a generic plan with NULLs if none: custom plans would fold
        comparisons with NULL to false)."""
        nparams = self._stmts[key][2]
        mode = "force_custom_plan" if samples else "force_generic_plan"
        arglists = [", ".join(args) for args in samples] or [", ".join(["NULL"] * nparams)]
        self.explain_calls += len(arglists)
        return [(f"SET LOCAL plan_cache_mode = {mode}", False)] + \
            [("EXPLAIN (FORMAT JSON, VERBOSE) EXECUTE {name}" + (f"({a})" if nparams else ""), True) for a in arglists]

    # -- hypothetical indexes --------------------------------------------------------
    @property
    def _hypopg(self) -> str:
        """HypoPG's schema, quoted. Calls are schema-qualified: they run under the
        sender's search_path, where another function of the same name could come first."""
        if self._hypopg_schema is None:
            rows = self.db.query("SELECT pg_catalog.quote_ident(n.nspname) AS h FROM pg_catalog.pg_extension e"
                                 " JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'hypopg'")
            if not rows:
                raise RuntimeError("extension hypopg is not installed in this database: CREATE EXTENSION hypopg")
            self._hypopg_schema = rows[0]["h"]
        return self._hypopg_schema

    def activate(self, identities: dict[str, tuple[str, Sender]], tables: dict[str, str] | None = None) \
            -> dict[str, str]:
        """Make exactly these hypothetical indexes (identity -> (hypopg DDL, the role whose
        statement it is for)) active; `tables`: identity -> its table, for set_scope().
        Each is created as that role: the DDL's expressions and predicate come from its
        statement, and resolving them can run its code. Returns {identity: why it could
        not be created} (e.g. an operator class the column type lacks); the others are active."""
        for ident in list(self._active):
            if ident not in identities:
                self.db.query(f"SELECT {self._hypopg}.hypopg_drop_index($1::oid)", [self._hypo[ident][0]])
                self._active.discard(ident)
                del self._hypo[ident]
        self._table.update(tables or {})
        todo: dict[int, list[tuple[str, str, Sender]]] = {}       # one call per role
        for ident, (sql, sender) in identities.items():
            if ident not in self._active:
                todo.setdefault(sender.oid, []).append((ident, sql, sender))
        failed: dict[str, str] = {}
        for batch in (c for b in todo.values() for c in _chunks(b)):
            groups = [[(f"SELECT h.indexrelid::bigint AS oid, h.indexname AS name, "
                        f"{self._hypopg}.hypopg_relation_size(h.indexrelid)::bigint AS size "
                        f"FROM {self._hypopg}.hypopg_create_index({quote_literal(sql)}) h", True)]
                      for _, sql, _ in batch]
            try:
                results = self.planning.run_groups(batch[0][2], groups)
            except Exception as e:  # noqa: BLE001 - Refused, or the whole call failed
                failed.update((ident, first_line(e)) for ident, _, _ in batch)
                continue
            for (ident, _, _), result in zip(batch, results):
                if isinstance(result, Failed):
                    failed[ident] = first_line(result)
                    continue
                row = result[0][0]
                self._hypo[ident] = (int(row["oid"]), row["name"])
                self._sizes[ident] = int(row["size"])
                self._active.add(ident)
                self.hypo_created += 1
        return failed

    def size(self, ident: str) -> int:
        """HypoPG's size of a hypothetical index created in this run (active or not since)."""
        return self._sizes[ident]

    def measure(self, ddls: list[str], sender: Sender) -> int:
        """The estimated size of these hypothetical indexes together, each created as
        `sender` and dropped again (those that cannot be created count 0)."""
        groups = [[(f"SELECT h.indexrelid::bigint AS oid, {self._hypopg}.hypopg_relation_size(h.indexrelid)::bigint AS size "
                    f"FROM {self._hypopg}.hypopg_create_index({quote_literal(sql)}) h", True)] for sql in ddls]
        total = 0
        for batch in _chunks(groups):
            try:
                results = self.planning.run_groups(sender, batch)
            except Exception:  # noqa: BLE001 - Refused, or the whole call failed: nothing was created
                continue
            for result in results:
                if not isinstance(result, Failed):
                    row = result[0][0]
                    total += int(row["size"])
                    self.db.query(f"SELECT {self._hypopg}.hypopg_drop_index($1::oid)", [int(row["oid"])])
        return total

    def uses(self, ident: str) -> bool:
        """Did the plans of the last cost() call use this hypothetical index?"""
        return ident in self.last_used

    def close(self) -> None:
        for ident in list(self._active):
            self.db.query(f"SELECT {self._hypopg}.hypopg_drop_index($1::oid)", [self._hypo[ident][0]])
        self._active.clear()


def _chunks(items: list) -> list[list]:
    return [items[k:k + CHUNK] for k in range(0, len(items), CHUNK)]


def generic_plan(db: Database, queryid: int, text: str) -> tuple[dict | None, str | None]:
    """(top node of the generic plan of statement `queryid`'s text, None), or (None, why it
    could not be planned): as the most recent of its senders the caller may act as, in a
    block that is rolled back. The plan check after a change and optischema.context()."""
    reason = single_statement(text)
    if reason is not None:
        return None, reason
    who = resolve_one(db, [queryid])
    if who.sender is None:
        return None, f"not planned: {who.reason}"
    with planning(db) as p:
        wi = WhatIf(db, p)
        try:
            key, _ = wi.prepare(strip_semicolon(text), who.sender)
            return wi.cost(key, [])[1][0], None
        except Unplannable as e:
            return None, str(e)
        finally:
            wi.close()
