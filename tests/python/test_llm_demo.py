"""The demo entry point: real queue functions, real client, scripted server."""
from __future__ import annotations

import psycopg
import pytest
from fake_llm import FakeLLM, answer, fake_llm  # noqa: F401 - fake_llm is a fixture
from test_llm_analysis import seed_workload

from optischema_sidecar.llm.demo import run_once


def test_run_once_analyses_through_the_queue(conn: psycopg.Connection, db_dsn: str, fake_llm: FakeLLM,
                                            capsys: pytest.CaptureFixture) -> None:
    seed_workload(conn)
    fake_llm.script(answer({"proposals": [{"kind": "explanation", "explanation": "Reads every order."}]}),
                    answer({"proposals": []}))
    results = run_once(db_dsn, 1)

    assert [r["status"] for r in results] == ["ok", "ok"]
    assert conn.execute("SELECT count(*) FROM optischema.jobs WHERE kind = 'llm_analysis' AND status = 'done'"
                        ).fetchone()[0] == 2
    out = capsys.readouterr().out
    assert "enqueued 2 LLM analyses" in out and "explanation accepted: explanation recorded" in out


def test_run_once_without_an_endpoint_says_how_to_enable_it(db_dsn: str, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert run_once(db_dsn) == []
    assert capsys.readouterr().out.strip() == "skipped: set OPENAI_API_KEY or OPENAI_BASE_URL"
