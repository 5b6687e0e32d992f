"""The engine's descriptions of indexes (optischema_engine.indexspec), against a real
catalog: what the SQL side builds from them (optischema._index_ddl) is the index the
candidate means, and an existing index described for a drop is built again exactly."""
from __future__ import annotations

import uuid

import psycopg
import pytest
from optischema_engine.candidates import Candidate, KeyPart
from optischema_engine.catalog import Catalog
from optischema_engine.db import PsycopgDatabase
from optischema_engine.indexspec import Unbuildable, existing
from psycopg.types.json import Jsonb


@pytest.fixture
def db(conn: psycopg.Connection) -> PsycopgDatabase:
    conn.execute("CREATE TYPE public.mood AS ENUM ('sad', 'ok')")
    conn.execute('CREATE TABLE public."t;x" (a int, v varchar(20), m public.mood, "s--$" text, n numeric)')
    return PsycopgDatabase(conn)


def _built(conn: psycopg.Connection, spec: dict) -> str:
    """Builds the index the description defines (not concurrently: this is a test) and returns
    its definition as PostgreSQL shows it."""
    ddl = conn.execute("SELECT optischema._index_ddl('create', %s, NULL, false)", (Jsonb(spec),)).fetchone()[0]
    conn.execute(ddl)
    return conn.execute("SELECT pg_get_indexdef(%s::regclass)", (f'public."{spec["name"]}"',)).fetchone()[0]


def test_a_candidate_is_built_as_the_index_it_means(conn: psycopg.Connection, db: PsycopgDatabase) -> None:
    t = Catalog(db).table("public", "t;x")
    c = Candidate("public", "t;x", (KeyPart("v", func="lower"), KeyPart("s--$", opclass="text_pattern_ops")),
                  predicate=("m", "=", "ok"), include=("a",))
    assert _built(conn, c.spec(db, t, "i;1")) == (
        'CREATE INDEX "i;1" ON public."t;x" USING btree (lower((v)::text), "s--$" text_pattern_ops) INCLUDE (a)'
        " WHERE (m = 'ok'::mood)")
    numeric = Candidate("public", "t;x", (KeyPart("a"),), predicate=("n", "=", "1.50"))
    assert _built(conn, numeric.spec(db, t, "i;2")).endswith("USING btree (a) WHERE (n = 1.50)")
    # `<>`: the negator of the type's btree equality (for an enum too)
    for name, pred, shown in (("i;3", ("m", "<>", "sad"), "WHERE (m <> 'sad'::mood)"),
                              ("i;4", ("v", "<>", "x"), "WHERE ((v)::text <> 'x'::text)")):
        c = Candidate("public", "t;x", (KeyPart("a"),), predicate=pred)
        assert _built(conn, c.spec(db, t, name)).endswith(f"USING btree (a) {shown}")
    with pytest.raises(Unbuildable, match="no operator < for"):
        Candidate("public", "t;x", (KeyPart("a"),), predicate=("n", "<", "1")).spec(db, t, "i;5")


def test_a_function_of_another_role_is_not_described(conn: psycopg.Connection, db: PsycopgDatabase) -> None:
    conn.execute("CREATE FUNCTION public.shout(text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT upper($1)'")
    t = Catalog(db).table("public", "t;x")
    assert Candidate("public", "t;x", (KeyPart("s--$", func="shout"),)).spec(db, t, "i")["keys"][0]["expr"]["func"]
    other = f"adm_spec_{uuid.uuid4().hex[:8]}"
    conn.execute(f"CREATE ROLE {other}")
    try:
        conn.execute(f"ALTER FUNCTION public.shout(text) OWNER TO {other}")
        with pytest.raises(Unbuildable, match="built in or owned by the owner"):
            Candidate("public", "t;x", (KeyPart("s--$", func="shout"),)).spec(db, t, "i")
        with pytest.raises(Unbuildable, match="no IMMUTABLE function"):
            Candidate("public", "t;x", (KeyPart("a", func="lower"),)).spec(db, t, "i")     # no lower(integer)
    finally:
        conn.execute("DROP FUNCTION public.shout(text)")
        conn.execute(f"DROP ROLE {other}")


def test_an_existing_index_is_described_to_be_built_again(conn: psycopg.Connection, db: PsycopgDatabase) -> None:
    conn.execute('CREATE INDEX "old;1" ON public."t;x" (v COLLATE "C" DESC NULLS LAST, "s--$" text_pattern_ops, a NULLS FIRST)'
                 " INCLUDE (n) WITH (fillfactor = 70)")
    before = conn.execute("SELECT pg_get_indexdef('public.\"old;1\"'::regclass)").fetchone()[0]
    spec = existing(db, conn.execute("SELECT 'public.\"old;1\"'::regclass::oid").fetchone()[0])
    assert spec["keys"][0] == {"column": "v", "attnum": 2, "collation": spec["keys"][0]["collation"], "desc": True,
                               "nulls_first": False}
    assert conn.execute("SELECT optischema._index_ddl('drop', %s)", (Jsonb(spec),)).fetchone()[0] == \
        'DROP INDEX CONCURRENTLY IF EXISTS public."old;1"'
    conn.execute('DROP INDEX public."old;1"')
    assert _built(conn, {k: v for k, v in spec.items() if k != "index"}) == before

    conn.execute('CREATE INDEX "old;2" ON public."t;x" (lower("s--$")) WHERE a > 0')
    partial = existing(db, conn.execute("SELECT 'public.\"old;2\"'::regclass::oid").fetchone()[0])
    assert "keys" not in partial, "an index OptiSchema cannot build again is described for its drop only"
