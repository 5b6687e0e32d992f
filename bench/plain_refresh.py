"""The sidecar's refresh of a plain install, once, for the workplace benchmark's
ADVISOR_CMD (README, "Benchmarks"): what `CALL optischema.refresh()` has a running
sidecar do, without the daemon. The database is BENCH_DSN (or the first argument)."""
from __future__ import annotations

import os
import sys

import psycopg

from optischema_sidecar import refresh


def main() -> None:
    dsn = sys.argv[1] if len(sys.argv) > 1 else os.environ["BENCH_DSN"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        result = refresh.run(conn)
    print(f"plain install refreshed: analysis {result['analysis_id']}, "
          f"{result['open_recommendations']} open recommendations", file=sys.stderr)


if __name__ == "__main__":
    main()
