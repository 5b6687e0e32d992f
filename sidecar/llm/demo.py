"""The LLM part of `make demo`: enqueue analyses of the heaviest statements and the workload
(the same optischema.enqueue_llm_analyses() the schedule calls), run them through the job
queue's own functions, and print what was accepted or rejected and why.

    python -m optischema_sidecar.llm.demo "dbname=optischema_demo"
"""
from __future__ import annotations

import socket
import sys

import psycopg

from .. import queue
from ..queue import JobError

from .analysis import SKIP_NO_ENDPOINT, run_analysis
from .config import endpoint_configured

LEASE = 300.0


def _report(result: dict) -> None:
    print(f"  status: {result['status']}" + (f" ({result['reason']})" if result.get("reason") else ""))
    for p in result.get("proposals", []):
        verdict = "accepted" if p["accepted"] else "rejected"
        rec = f" -> recommendation {p['recommendation_id']}" if p["recommendation_id"] else ""
        print(f"  {p['kind']:<11} {verdict}: {p['reason']}{rec}")


def run_once(dsn: str, n: int = 3) -> list[dict]:
    """Runs up to n statement analyses and one workload analysis now; returns their results."""
    if not endpoint_configured():
        print(SKIP_NO_ENDPOINT)
        return []
    worker = f"llm-demo@{socket.gethostname()}"
    results: list[dict] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        queued = conn.execute("SELECT optischema.enqueue_llm_analyses(%s)", (n,)).fetchone()[0]
        print(f"enqueued {queued} LLM analyses")
        queue.heartbeat(conn, worker, LEASE)       # a sidecar announces itself before it claims
        while (job := queue.claim(conn, worker, ["llm_analysis"], LEASE)) is not None:
            print(f"\nanalysis {job['id']}: {job['payload']}")
            try:
                result = run_analysis(conn, job, None)
            except JobError as e:
                queue.fail(conn, job["id"], worker, str(e), e.retry)
                result = {"status": "failed", "reason": str(e)}
            else:
                queue.complete(conn, job["id"], worker, result)
            _report(result)
            results.append(result)
        queue.sign_off(conn, worker)
        for rec in conn.execute("SELECT id, kind, title, ddl FROM optischema.recommendations"
                                " WHERE source = 'llm' AND status = 'open' ORDER BY score DESC, id").fetchall():
            print(f"\nrecommendation {rec[0]} ({rec[1]}): {rec[2]}\n  {rec[3]}")
    return results


if __name__ == "__main__":
    run_once(sys.argv[1] if len(sys.argv) > 1 else "")
