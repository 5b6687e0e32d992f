"""What-if costing: PREPAREd normalized text explained (never executed) under
hypothetical indexes. Leaves the session as found: only its own prepared statements and
hypothetical indexes are created, and exactly those are removed."""
from __future__ import annotations

import uuid

from .db import Database
from .plans import index_names, root


class Unplannable(Exception):
    """The text cannot be re-planned (the reason is recorded, advise() goes on)."""


class WhatIf:
    def __init__(self, db: Database):
        self.db = db
        self.run = uuid.uuid4().hex[:8]
        self.explain_calls = 0
        self.hypo_created = 0
        self._prepared: list[str] = []
        self._hypo: dict[str, tuple[int, str, int]] = {}     # identity -> (oid, name, size)
        self._active: set[str] = set()
        self._cache: dict[tuple, tuple[float, list[dict]]] = {}
        self._used: dict[tuple, frozenset[str]] = {}
        self.last_used: frozenset[str] = frozenset()
        self._mode: str | None = None
        rows = db.query("SELECT pg_catalog.current_setting('plan_cache_mode') AS m")
        self._saved_mode = rows[0]["m"]
        self._hypopg_schema: str | None = None

    # -- prepared statements -------------------------------------------------------
    def prepare(self, text: str) -> tuple[str, list[str]]:
        """PREPARE under a unique name; returns (name, parameter types)."""
        name = f"optischema_{self.run}_{len(self._prepared)}"
        try:
            with self.db.subtransaction():
                self.db.query(f"PREPARE {name} AS {text}")
        except Exception as e:  # noqa: BLE001 - any planner/parser error means: skip this text
            raise Unplannable(_first_line(e)) from None
        self._prepared.append(name)
        # schema-qualified type names without typmods: `character` would mean char(1) and
        # truncate the values we cast to it
        rows = self.db.query(
            "SELECT ARRAY(SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(t.typname) "
            "FROM unnest(p.parameter_types) WITH ORDINALITY u(typ, k) "
            "JOIN pg_catalog.pg_type t ON t.oid = u.typ JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace "
            "ORDER BY u.k) AS t FROM pg_catalog.pg_prepared_statements p WHERE p.name = $1", [name])
        types = list(rows[0]["t"] or [])
        if "pg_catalog.unknown" in types:
            raise Unplannable("parameter of undetermined type")
        return name, types

    def _set_mode(self, mode: str) -> None:
        if mode != self._mode:
            self.db.query("SELECT pg_catalog.set_config('plan_cache_mode', $1, true)", [mode])
            self._mode = mode

    def _explain(self, name: str, args: list[str] | None, nparams: int) -> dict:
        self.explain_calls += 1
        if args is None:
            # a generic plan cached in the prepared statement does not see new hypothetical
            # indexes, so re-plan: custom mode with NULLs would fold comparisons to false
            self._set_mode("force_generic_plan")
            arglist = ", ".join(["NULL"] * nparams)
        else:
            self._set_mode("force_custom_plan")
            arglist = ", ".join(args)
        sql = f"EXPLAIN (FORMAT JSON, VERBOSE) EXECUTE {name}" + (f"({arglist})" if nparams else "")
        try:
            with self.db.subtransaction():
                rows = self.db.query(sql)
        except Exception as e:  # noqa: BLE001
            raise Unplannable(_first_line(e)) from None
        return root(next(iter(rows[0].values())))

    def cost(self, name: str, text: str, samples: list[list[str]], nparams: int) -> tuple[float, list[dict]]:
        """Mean total cost over the parameter samples (generic plan if none), with the
        currently active hypothetical indexes; cached per (statement, parameter samples,
        hypothetical set)."""
        key = (name, tuple(tuple(args) for args in samples), frozenset(self._active))
        if key not in self._cache:
            if samples:
                plans = [self._explain(name, args, nparams) for args in samples]
            else:
                self.db.query(f"DEALLOCATE {name}")
                self.db.query(f"PREPARE {name} AS {text}")
                plans = [self._explain(name, None, nparams)]
            # hypopg names carry the oid, which changes when an index is re-created: record
            # which hypothetical indexes the plans use by identity, now
            used_names = set().union(*(index_names(p) for p in plans))
            self._used[key] = frozenset(i for i in self._active if self._hypo[i][1] in used_names)
            self._cache[key] = (sum(p["Total Cost"] for p in plans) / len(plans), plans)
        self.last_used = self._used[key]
        return self._cache[key]

    # -- hypothetical indexes --------------------------------------------------------
    @property
    def _hypopg(self) -> str:
        """HypoPG's schema, quoted. Calls are schema-qualified: the workload's texts are
        planned under the application's search_path, where another function of the same
        name could come first. Plain generic plans (the sidecar's plan check) need no HypoPG."""
        if self._hypopg_schema is None:
            rows = self.db.query("SELECT pg_catalog.quote_ident(n.nspname) AS h FROM pg_catalog.pg_extension e"
                                 " JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'hypopg'")
            if not rows:
                raise RuntimeError("extension hypopg is not installed in this database: CREATE EXTENSION hypopg")
            self._hypopg_schema = rows[0]["h"]
        return self._hypopg_schema

    def activate(self, identities: dict[str, str]) -> None:
        """Make exactly these hypothetical indexes (identity -> hypopg DDL) active."""
        for ident in list(self._active):
            if ident not in identities:
                self.db.query(f"SELECT {self._hypopg}.hypopg_drop_index($1::oid)", [self._hypo[ident][0]])
                self._active.discard(ident)
                del self._hypo[ident]
        for ident, sql in identities.items():
            if ident not in self._active:
                try:
                    with self.db.subtransaction():
                        row = self.db.query("SELECT indexrelid::bigint AS oid, indexname AS name "
                                            f"FROM {self._hypopg}.hypopg_create_index($1)", [sql])[0]
                except Exception as e:  # noqa: BLE001 - e.g. an operator class the column type lacks
                    raise Unplannable(_first_line(e)) from None
                size = self.db.query(f"SELECT {self._hypopg}.hypopg_relation_size($1::oid)::bigint AS s",
                                     [row["oid"]])[0]["s"]
                self._hypo[ident] = (int(row["oid"]), row["name"], int(size))
                self._active.add(ident)
                self.hypo_created += 1

    def size(self, ident: str) -> int:
        return self._hypo[ident][2]

    def uses(self, ident: str) -> bool:
        """Did the plans of the last cost() call use this hypothetical index?"""
        return ident in self.last_used

    def close(self) -> None:
        for ident in list(self._active):
            self.db.query(f"SELECT {self._hypopg}.hypopg_drop_index($1::oid)", [self._hypo[ident][0]])
        self._active.clear()
        for name in self._prepared:
            self.db.query(f"DEALLOCATE {name}")
        self._prepared.clear()
        self.db.query("SELECT pg_catalog.set_config('plan_cache_mode', $1, true)", [self._saved_mode])


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
