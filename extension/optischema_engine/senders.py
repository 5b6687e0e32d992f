"""Running captured statement text as the role that sent it, and as no one else.

Planning runs code (IMMUTABLE functions are folded, casts to domains check them, ...),
and that code is the sender's: it must run with the sender's rights, never the caller's.
`SET ROLE` is no boundary for it: the code can `RESET ROLE` or `SET SESSION AUTHORIZATION`
back to the caller. PostgreSQL refuses both inside a SECURITY DEFINER function, so every
sender gets a sandbox: a temporary SECURITY DEFINER function owned by that role that
runs statements under that role's search_path. Handing the function to the role is the
membership check (`ALTER FUNCTION ... OWNER TO` needs it, except for a superuser).

Two savepoints, both always rolled back:
  - the block's (`planning(db)`): the sandboxes exist only inside it, never committed,
    so no other session ever sees them;
  - each call's: whatever the sender's code changed (settings, its own sandbox's
    definition, rows) is undone before the caller runs anything else.
What survives a rollback is checked when the block ends: prepared statements and
session advisory locks that appeared are removed; a pre-existing prepared statement
(the client's) that was replaced or dropped is removed too, so that the client gets an
error instead of running someone else's statement, and is reported in `findings`.

Statements that refer to each other (PREPARE, EXPLAIN EXECUTE, DEALLOCATE) go in one
call: a prepared statement must not outlive the call, where another sender's code could
replace it. Their names come from `statement_name()`: not guessable, and PREPARE of an
existing name is an error, never a reuse.
"""
from __future__ import annotations

import json
import re
import secrets
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Hashable, Iterator, Mapping, Sequence, TypeVar

from .db import Database

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Sender:
    oid: int
    name: str
    search_path: str      # what that role's sessions in this database start with, pg_temp last


@dataclass(frozen=True)
class Resolution:
    """The sender a statement is run as, or why none may be used."""
    sender: Sender | None
    reason: str | None = None


class Refused(Exception):
    """The caller cannot act as this sender (the reason is for the skip record)."""


class Failed(Exception):
    """A statement run as a sender raised an error."""

    def __init__(self, message: str, sqlstate: str):
        super().__init__(message)
        self.sqlstate = sqlstate


# Senders of each statement, most recent first (optischema.query_roles, filled by
# snapshot() from pg_stat_statements.userid), and whether the caller may act as them.
_SENDERS_SQL = """
SELECT r.queryid::bigint AS queryid, r.userid::bigint AS oid, a.rolname AS name,
       a.oid IS NOT NULL AND pg_catalog.pg_has_role(a.oid, 'MEMBER') AS may
FROM optischema.query_roles r LEFT JOIN pg_catalog.pg_roles a ON a.oid = r.userid AND a.rolname = r.rolname
WHERE r.queryid = ANY ($1::bigint[])
ORDER BY r.last_seen DESC, r.userid"""
# A role's search_path as its sessions in this database get it: role+database, then
# role, then database setting (pg_db_role_setting), else the server's (NULL here).
_PATH_SQL = """
SELECT a.oid::bigint AS oid, a.rolname AS name,
       (SELECT pg_catalog.substr(c.cfg, 13)
        FROM pg_catalog.pg_db_role_setting d CROSS JOIN LATERAL pg_catalog.unnest(d.setconfig) c(cfg)
        WHERE d.setrole IN (a.oid, 0) AND d.setdatabase IN (db.oid, 0)
          AND (d.setrole, d.setdatabase) <> (0::oid, 0::oid) AND c.cfg LIKE 'search\\_path=%'
        ORDER BY (d.setrole = 0), (d.setdatabase = 0) LIMIT 1) AS path
FROM pg_catalog.pg_roles a
CROSS JOIN (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) db
WHERE a.oid = ANY ($1::oid[])"""
_CURRENT_USER_SQL = "SELECT pg_catalog.current_user()::text AS u"

# The sandbox. Runs statements[i] (rows wanted: as json, numbered i) as its owner under
# `path`, READ ONLY if asked (a subtransaction cannot be made read-write again). Statements
# with the same groups[i] are one group: an error skips the rest of its group only and is
# returned as row -i. Its SET clause puts the caller's search_path back when it returns.
_SANDBOX_SQL = """
CREATE FUNCTION pg_temp.{name}(statements text[], want_rows boolean[], groups integer[], path text,
                               read_only boolean)
RETURNS TABLE (k integer, r json)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $sandbox$
DECLARE
    rec record;
    i integer := 1;
    g integer;
    n integer := pg_catalog.cardinality(statements);
BEGIN
    IF read_only THEN
        SET LOCAL transaction_read_only = on;
    END IF;
    PERFORM pg_catalog.set_config('search_path', path, true);
    WHILE i <= n LOOP
        g := groups[i];
        BEGIN
            WHILE i <= n AND groups[i] = g LOOP
                IF want_rows[i] THEN
                    FOR rec IN EXECUTE statements[i] LOOP
                        k := i;
                        r := pg_catalog.to_json(rec);
                        RETURN NEXT;
                    END LOOP;
                ELSE
                    EXECUTE statements[i];
                END IF;
                i := i + 1;
            END LOOP;
        EXCEPTION WHEN OTHERS THEN
            k := -i;
            r := pg_catalog.json_build_object('message', SQLERRM, 'sqlstate', SQLSTATE);
            RETURN NEXT;
            WHILE i <= n AND groups[i] = g LOOP
                i := i + 1;
            END LOOP;
        END;
    END LOOP;
END
$sandbox$"""

# Session state a rollback does not undo.
_STATE_SQL = """
SELECT 'prepared' AS kind, p.name AS key, p.prepare_time::text || ' ' || p.statement AS detail
FROM pg_catalog.pg_prepared_statements p
UNION ALL
SELECT 'lock', l.classid::text || ',' || l.objid::text || ',' || l.objsubid::text, l.mode
FROM pg_catalog.pg_locks l
WHERE l.locktype = 'advisory' AND l.pid = pg_catalog.pg_backend_pid() AND l.granted"""
_LOCK_HELD_SQL = """
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE l.locktype = 'advisory'
               AND l.pid = pg_catalog.pg_backend_pid() AND l.granted AND l.mode = $4
               AND l.classid = $1::oid AND l.objid = $2::oid AND l.objsubid = $3::int2) AS held"""


def statement_name() -> str:
    """A prepared statement name no other role can guess. It keeps the shape
    optischema_<8 hex>_<digits> that snapshot() recognizes as OptiSchema's own."""
    return f"optischema_{secrets.token_hex(4)}_{secrets.randbits(48)}"


# -- who sent a statement ----------------------------------------------------------------
def resolve(db: Database, groups: Mapping[K, Sequence[int]]) -> dict[K, Resolution]:
    """Per group of queryids (one statement text): the most recent sender the caller may
    act as, or the reason there is none."""
    all_ids = sorted({int(q) for ids in groups.values() for q in ids})
    rows = db.query(_SENDERS_SQL, [_array(str(q) for q in all_ids)]) if all_ids else []
    rank = {id(r): n for n, r in enumerate(rows)}
    by_qid: dict[int, list[dict]] = {}
    for r in rows:
        by_qid.setdefault(int(r["queryid"]), []).append(r)
    senders = _senders(db, {int(r["oid"]) for r in rows if r["may"]})
    caller = None
    out: dict[K, Resolution] = {}
    for key, ids in groups.items():
        seen: dict[int, tuple[int, dict]] = {}
        for q in ids:
            for r in by_qid.get(int(q), []):
                seen.setdefault(int(r["oid"]), (rank[id(r)], r))
        ranked = [r for _, r in sorted(seen.values(), key=lambda x: x[0])]
        usable = [r for r in ranked if r["may"]]
        if usable:
            out[key] = Resolution(senders[int(usable[0]["oid"])])
            continue
        if not ranked:
            out[key] = Resolution(None, "its sender is unknown (captured before OptiSchema recorded senders)")
            continue
        if caller is None:
            caller = db.query(_CURRENT_USER_SQL)[0]["u"]
        names = ", ".join(r["name"] if r["name"] is not None else f"dropped role (oid {r['oid']})" for r in ranked)
        gone = all(r["name"] is None for r in ranked)
        out[key] = Resolution(None, f"sent by {names}: " + (
            "no such role exists any more" if gone else
            f"{caller} is not a member of {'it' if len(ranked) == 1 else 'any of them'}, so it cannot plan it as its sender"))
    return out


def resolve_one(db: Database, queryids: Sequence[int]) -> Resolution:
    return resolve(db, {0: queryids})[0]


def sender(db: Database, role: str | int) -> Sender:
    """A role the caller names itself (by name or oid), e.g. a rewrite checked as the
    statement's role. Raises Refused if the caller is not a member of it."""
    rows = db.query("SELECT a.oid::bigint AS oid, pg_catalog.pg_has_role(a.oid, 'MEMBER') AS may "
                    "FROM pg_catalog.pg_roles a WHERE " +
                    ("a.oid = $1::oid" if isinstance(role, int) else "a.rolname = $1"), [role])
    if not rows:
        raise Refused(f"role {role} does not exist")
    if not rows[0]["may"]:
        raise Refused(f"{db.query(_CURRENT_USER_SQL)[0]['u']} is not a member of role {role}")
    oid = int(rows[0]["oid"])
    return _senders(db, {oid})[oid]


def _senders(db: Database, oids: set[int]) -> dict[int, Sender]:
    rows = db.query(_PATH_SQL, [_array(str(o) for o in sorted(oids))]) if oids else []
    default = _server_search_path(db) if any(r["path"] is None for r in rows) else ""
    return {int(r["oid"]): Sender(int(r["oid"]), r["name"], session_path(r["path"] or default)) for r in rows}


def _server_search_path(db: Database) -> str:
    """postgresql.conf / ALTER SYSTEM's value where the caller may read it, else the built-in one."""
    if db.query("SELECT pg_catalog.has_function_privilege('pg_catalog.pg_show_all_file_settings()', "
                "'EXECUTE') AS ok")[0]["ok"]:
        rows = db.query("SELECT f.setting FROM pg_catalog.pg_file_settings f "
                        "WHERE f.name = 'search_path' AND f.applied ORDER BY f.seqno DESC LIMIT 1")
        if rows:
            return rows[0]["setting"]
    return db.query("SELECT boot_val FROM pg_catalog.pg_settings WHERE name = 'search_path'")[0]["boot_val"]


def session_path(path: str) -> str:
    """The path with pg_temp last: in the caller's session pg_temp is the caller's, and
    whatever the sender's code puts there goes with its call's rollback anyway."""
    items = [i for i in _split_path(path) if not re.fullmatch(r'"?pg_temp(_\d+)?"?', i)]
    return ", ".join(items + ["pg_temp"])


def _split_path(path: str) -> list[str]:
    items, cur, quoted = [], "", False
    for ch in path:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            items.append(cur.strip())
            cur = ""
        else:
            cur += ch
    items.append(cur.strip())
    return [i for i in items if i]


# -- acting as a sender ------------------------------------------------------------------
@dataclass
class Planning:
    """Inside a `planning(db)` block: runs statements as their senders."""
    db: Database
    read_only: bool = True          # each call in a READ ONLY savepoint: no writes, no nextval()
    findings: list[str] = field(default_factory=list)    # session state the block had to repair
    calls: int = 0
    _boxes: dict[int, str] = field(default_factory=dict)   # sender oid -> sandbox function

    def run_groups(self, who: Sender, groups: Sequence[Sequence[tuple[str, bool]]],
                   deallocate: Sequence[Sequence[str]] = ()) -> list[list[list[dict]] | Failed]:
        """Run groups of (sql, want_rows) as `who`, in one call whose savepoint is rolled
        back. Per group: the rows of each statement (empty without want_rows), or Failed
        when one of them raised an error (the group's later statements did not run).
        `deallocate[g]`: prepared statements group g makes and must not leave behind,
        even when it fails. An error that ends the whole call (statement_timeout) propagates."""
        box = self._box(who)
        self.calls += 1
        flat = [(n, sql, rows) for n, group in enumerate(groups) for sql, rows in group]
        try:
            rows = _rolled_back(self.db, lambda: self.db.query(
                f"SELECT s.k, s.r::text AS r FROM pg_temp.{box}($1::text[], $2::boolean[], $3::integer[], $4, "
                "$5::boolean) s",
                [_array(sql for _, sql, _ in flat), _array("t" if w else "f" for _, _, w in flat),
                 _array(n for n, _, _ in flat), who.search_path, self.read_only]))
        except Exception:
            for n, names in enumerate(deallocate):
                self._deallocate(names, groups[n])
            raise
        out: list[list[list[dict]] | Failed] = [[[] for _ in group] for group in groups]
        first = [sum(len(g) for g in groups[:n]) for n in range(len(groups))]
        for r in rows:
            k = int(r["k"])
            n = flat[abs(k) - 1][0]
            if k < 0:
                e = json.loads(r["r"])
                out[n] = Failed(e["message"], e["sqlstate"])
                if n < len(deallocate):
                    self._deallocate(deallocate[n], groups[n])
            elif not isinstance(out[n], Failed):
                out[n][k - 1 - first[n]].append(json.loads(r["r"]))
        return out

    def run(self, who: Sender, statements: Sequence[tuple[str, bool]],
            deallocate: Sequence[str] = ()) -> list[list[dict]]:
        """run_groups() of one group; raises Failed if a statement fails."""
        result = self.run_groups(who, [statements], [deallocate])[0]
        if isinstance(result, Failed):
            raise result
        return result

    def _deallocate(self, names: Sequence[str], group: Sequence[tuple[str, bool]]) -> None:
        """After a failed group: its own prepared statements, not one that was there before
        under the same name (its PREPARE is what failed)."""
        ours = {sql for sql, _ in group}
        for name in names:
            rows = self.db.query("SELECT statement FROM pg_catalog.pg_prepared_statements WHERE name = $1", [name])
            if rows and rows[0]["statement"] in ours:
                self.db.query(f"DEALLOCATE {_name(name)}")

    def query(self, who: Sender, sql: str) -> list[dict]:
        """One statement as `who`; its rows."""
        return self.run(who, [(sql, True)])[0]

    def _box(self, who: Sender) -> str:
        if who.oid not in self._boxes:
            name = statement_name()
            try:
                _rolled_back_on_error(self.db, lambda: (
                    self.db.query(_SANDBOX_SQL.format(name=name)),
                    self.db.query(f"ALTER FUNCTION pg_temp.{name}(text[], boolean[], integer[], text, boolean) "
                                  f"OWNER TO "
                                  f"{_ident(who.name)}")))
            except Exception as e:  # noqa: BLE001 - not a member, no TEMP privilege, ...
                raise Refused(f"cannot act as role {who.name}: {first_line(e)}") from None
            self._boxes[who.oid] = name
        return self._boxes[who.oid]


@contextmanager
def planning(db: Database, read_only: bool = True) -> Iterator[Planning]:
    """A block in which statements run as their senders; everything done in it is rolled
    back, and session state that outlives a rollback is put back when it ends."""
    before = _state(db)
    p = Planning(db, read_only)
    try:
        with db.subtransaction():
            # the caller's own queries in the block: built-ins first, never a sender's objects
            db.query("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)")
            yield p
            raise _Rollback
    except _Rollback:
        pass
    finally:
        p.findings += _restore(db, before)


@contextmanager
def acting_as(db: Database, who: Sender, read_only: bool = True) -> Iterator["Acting"]:
    """`planning()` for one sender: `with acting_as(db, s) as a: a.query(sql)`."""
    with planning(db, read_only) as p:
        yield Acting(p, who)


@dataclass
class Acting:
    planning: Planning
    sender: Sender

    def query(self, sql: str) -> list[dict]:
        return self.planning.query(self.sender, sql)

    def run(self, statements: Sequence[tuple[str, bool]], deallocate: Sequence[str] = ()) -> list[list[dict]]:
        return self.planning.run(self.sender, statements, deallocate)


class _Rollback(Exception):
    pass


def _rolled_back(db: Database, fn):
    """fn()'s result; whatever it changed is rolled back (also when it fails)."""
    result = None
    try:
        with db.subtransaction():
            result = fn()
            raise _Rollback
    except _Rollback:
        return result


def _rolled_back_on_error(db: Database, fn) -> None:
    with db.subtransaction():
        fn()


def _state(db: Database) -> dict[tuple[str, str], str]:
    return {(r["kind"], r["key"]): r["detail"] for r in db.query(_STATE_SQL)}


def _restore(db: Database, before: dict[tuple[str, str], str]) -> list[str]:
    """Put back what a rollback does not: returns what had to be repaired."""
    after = _state(db)
    found = []
    for (kind, key), detail in after.items():
        if kind == "prepared" and before.get((kind, key)) != detail:
            db.query(f"DEALLOCATE {_name(key)}")
            found.append(f"prepared statement {key} was {'replaced' if (kind, key) in before else 'left behind'}: "
                         "removed")
        elif kind == "lock" and (kind, key) not in before:
            _unlock(db, key, detail)
            found.append(f"session advisory lock {key} ({detail}) was left behind: released")
    for (kind, key), detail in before.items():
        if (kind, key) in after:
            continue
        if kind == "prepared":
            found.append(f"prepared statement {key} was removed")
        elif not _relock(db, key, detail):
            found.append(f"session advisory lock {key} ({detail}) was released and is held elsewhere now")
        else:
            found.append(f"session advisory lock {key} ({detail}) was released: taken again")
    return found


def _lock_call(key: str, mode: str, verb: str) -> tuple[str, list[str]]:
    classid, objid, subid = key.split(",")
    shared = "_shared" if mode == "ShareLock" else ""
    if subid == "1":     # one bigint key: classid holds its high half
        return (f"SELECT pg_catalog.pg_{verb}{shared}(($1::bigint << 32) | $2::bigint) AS ok", [classid, objid])
    return f"SELECT pg_catalog.pg_{verb}{shared}($1::int4, $2::int4) AS ok", [
        str(int(classid) - 2**32 if int(classid) >= 2**31 else int(classid)),
        str(int(objid) - 2**32 if int(objid) >= 2**31 else int(objid))]


def _unlock(db: Database, key: str, mode: str) -> None:
    sql, args = _lock_call(key, mode, "advisory_unlock")
    classid, objid, subid = key.split(",")
    for _ in range(10000):     # taken n times, held until released n times
        if not db.query(_LOCK_HELD_SQL, [classid, objid, subid, mode])[0]["held"]:
            return
        db.query(sql, args)


def _relock(db: Database, key: str, mode: str) -> bool:
    sql, args = _lock_call(key, mode, "try_advisory_lock")
    return bool(db.query(sql, args)[0]["ok"])


def _array(items) -> str:
    """A text[] literal."""
    return "{" + ",".join('"' + str(i).replace("\\", "\\\\").replace('"', '\\"') + '"' for i in items) + "}"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _name(name: str) -> str:
    """A prepared statement name from pg_prepared_statements, as an identifier."""
    return _ident(name)


def first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
