"""The executor's last line of defence (no database needed): only one
CREATE INDEX CONCURRENTLY or DROP INDEX CONCURRENTLY statement is ever run."""
from __future__ import annotations

import pytest

from optischema_sidecar.executor import check_index_ddl


@pytest.mark.parametrize(("ddl", "op"), [
    ("CREATE INDEX CONCURRENTLY t_a_idx ON public.t USING btree (a)", "create"),
    ("create unique index concurrently t_a_idx on public.t using btree (a);", "create"),
    ('CREATE INDEX CONCURRENTLY "odd;name" ON public."t--x" USING btree ("a/*b")', "create"),
    ("CREATE INDEX CONCURRENTLY t_a_idx ON public.t USING btree (a) WHERE (b = 'x;y''z')", "create"),
    ("DROP INDEX CONCURRENTLY IF EXISTS public.t_a_idx", "drop"),
])
def test_accepts_one_index_statement(ddl: str, op: str) -> None:
    assert check_index_ddl(ddl) == op


@pytest.mark.parametrize("ddl", [
    "CREATE INDEX CONCURRENTLY x ON public.t (a); DROP TABLE public.t",
    "CREATE INDEX CONCURRENTLY x ON public.t (a) -- comment",
    "CREATE INDEX CONCURRENTLY x ON public.t (a) /* comment */",
    "CREATE INDEX CONCURRENTLY x ON public.t (a) WHERE b = $$x$$",
    "CREATE INDEX x ON public.t (a)",
    "DROP TABLE public.t",
    "DROP INDEX public.t_a_idx",
    "CREATE INDEX CONCURRENTLY x ON public.t (a) WHERE b = 'unterminated",
    "ALTER SYSTEM SET work_mem = '1GB'",
    "",
])
def test_refuses_anything_else(ddl: str) -> None:
    with pytest.raises(ValueError, match="refusing to run"):
        check_index_ddl(ddl)
