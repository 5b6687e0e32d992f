"""The size of a new B-tree (indexsize.py) against what CREATE INDEX builds on the test
cluster: deduplicated keys, INCLUDE columns, char(n), partial indexes; HypoPG's estimate
is the fallback only where pg_stats says nothing."""
from __future__ import annotations

import sys
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "extension"))
from optischema_engine.candidates import Candidate, KeyPart  # noqa: E402
from optischema_engine.catalog import Catalog  # noqa: E402
from optischema_engine.db import PsycopgDatabase  # noqa: E402
from optischema_engine.indexsize import btree_bytes, estimate  # noqa: E402
from optischema_engine.params import ValueSource  # noqa: E402


def test_duplicates_share_posting_lists_unless_a_column_is_included() -> None:
    """200,000 rows of 1,000 values: deduplicated, a fifth of the plain size; an INCLUDE
    column turns deduplication off (each row its own tuple again)."""
    plain = btree_bytes(200_000, 4, 0, None)
    dedup = btree_bytes(200_000, 4, 0, 1000)
    assert dedup < plain / 3
    assert btree_bytes(200_000, 4, 8, 1000) > plain
    assert btree_bytes(200_000, 4, 0, 200_000) == plain, "unique values: nothing to share"


@pytest.fixture
def sized(conn: psycopg.Connection) -> psycopg.Connection:
    conn.execute("CREATE TABLE sz (id int, grp int, price numeric(12,2), code char(8), tag varchar(20),"
                 " state text, never_analyzed int, day date, disc numeric(4,2), amount numeric(14,2))")
    conn.execute("INSERT INTO sz SELECT g, g % 500, (g % 9973) * 1.25, 'c' || (g % 7), 't' || (g % 40),"
                 " CASE WHEN g % 20 = 0 THEN 'open' ELSE 'closed' END, g, date '2020-01-01' + g % 2000,"
                 " (g % 11) / 100.0, (g % 99991) * 123.45 FROM generate_series(1, 200000) g")
    conn.execute("ANALYZE sz (id, grp, price, code, tag, state, day, disc, amount)")
    return conn


def _model_and_built(conn: psycopg.Connection, c: Candidate, share: float = 1.0) -> tuple[int | None, int]:
    db = PsycopgDatabase(conn)
    t = Catalog(db).table("public", "sz")
    model = estimate(c, t, ValueSource(db, [], False), share)
    conn.execute(c.hypo_ddl().replace("CREATE INDEX ON", "CREATE INDEX sz_built ON"))
    built = conn.execute("SELECT pg_relation_size('sz_built')").fetchone()[0]
    conn.execute("DROP INDEX sz_built")
    return model, built


@pytest.mark.parametrize("keys, include, predicate, share", [
    (("grp",), (), None, 1.0),                       # 400 rows a value: deduplicated
    (("id",), (), None, 1.0),                        # unique
    (("grp", "id"), ("price",), None, 1.0),          # INCLUDE a numeric: no deduplication
    (("code",), (), None, 1.0),                      # char(n): never deduplicated
    (("tag",), (), None, 1.0),                       # varchar: text's operator class, deduplicated
    (("id",), (), ("state", "=", "open"), 0.05),     # partial: a twentieth of the rows
])
def test_the_model_is_within_a_fifth_of_the_built_index(sized: psycopg.Connection, keys, include, predicate,
                                                          share) -> None:
    c = Candidate("public", "sz", tuple(KeyPart(k) for k in keys), predicate=predicate, include=include)
    model, built = _model_and_built(sized, c, share)
    assert model is not None
    assert abs(model - built) <= 0.2 * built, f"{c.hypo_ddl()}: model {model}, built {built}"


@pytest.mark.parametrize("keys, include", [
    (("day", "grp"), ("disc", "amount", "id")),      # TPC-H's (l_shipdate, l_suppkey) INCLUDE (l_discount, ...)
    (("id",), ("amount", "grp")),
    (("day", "grp"), ("amount",)),
])
def test_values_are_aligned_as_the_tuple_lays_them_out(sized: psycopg.Connection, keys, include) -> None:
    """An int4 after numerics starts at a multiple of 4, and pg_stats rounds a numeric's
    width down: most of these tuples take 8 bytes more than the widths sum to (the sum
    alone is a fifth under the built size)."""
    c = Candidate("public", "sz", tuple(KeyPart(k) for k in keys), include=include)
    model, built = _model_and_built(sized, c)
    assert model is not None
    assert abs(model - built) <= 0.05 * built, f"{c.hypo_ddl()}: model {model}, built {built}"


def test_no_statistics_no_model(sized: psycopg.Connection) -> None:
    """A column ANALYZE never saw: the caller falls back to HypoPG's estimate."""
    db = PsycopgDatabase(sized)
    t = Catalog(db).table("public", "sz")
    c = Candidate("public", "sz", (KeyPart("never_analyzed"),))
    assert estimate(c, t, ValueSource(db, [], False)) is None
