"""The demo workload: the queries of a help-desk application, by weight.

Statements are sent with server-side parameters, as drivers do, so that
pg_stat_statements sees one normalized statement per template."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable

import psycopg
from psycopg.types.numeric import Int8


@dataclass(frozen=True)
class Template:
    name: str
    weight: int
    sql: str
    params: Callable[[random.Random], tuple]


def _account(r: random.Random) -> int:
    return 1 + int(60000 * r.random() ** 3)


TEMPLATES = [
    # Served by primary keys already: nothing to add.
    Template("ticket_by_id", 30, "SELECT * FROM tickets WHERE id = %s", lambda r: (r.randint(1, 250000),)),
    Template("account_by_id", 20, "SELECT id, email, plan FROM accounts WHERE id = %s", lambda r: (_account(r),)),
    # Missing indexes.
    Template("login_by_email", 15, "SELECT id, plan FROM accounts WHERE lower(email) = lower(%s)",
             lambda r: (f"User{r.randint(1, 60000)}@example.com",)),
    Template("account_tickets", 20,
             "SELECT id, status, subject, created_at FROM tickets WHERE account_id = %s ORDER BY created_at DESC LIMIT 20",
             lambda r: (_account(r),)),
    Template("open_queue", 8,
             "SELECT id, account_id, priority FROM tickets WHERE status = 'open' AND priority >= %s ORDER BY created_at LIMIT 50",
             lambda r: (r.randint(1, 4),)),
    Template("ticket_history", 12, "SELECT kind, created_at FROM ticket_events WHERE ticket_id = %s ORDER BY created_at",
             lambda r: (r.randint(1, 250000),)),
    Template("country_signups", 2,
             "SELECT count(*) FROM accounts WHERE country = %s AND created_at >= now() - %s::interval",
             lambda r: (r.choice(["DE", "FR", "US", "GB"]), "30 days")),
    # Reports no index helps.
    Template("status_report", 1, "SELECT status, count(*) FROM tickets GROUP BY status", lambda r: ()),
    # Writes: the events table is insert-heavy, tickets are updated.
    Template("log_event", 40,
             "INSERT INTO ticket_events (ticket_id, kind, created_at, body) VALUES (%s, 'view', now(), NULL)",
             lambda r: (r.randint(1, 250000),)),
    Template("close_ticket", 5, "UPDATE tickets SET status = 'closed', updated_at = now() WHERE id = %s",
             lambda r: (r.randint(1, 250000),)),
]


def _typed(params: tuple) -> tuple:
    """psycopg sends a Python int as int2, int4 or int8 by its value, and each
    type makes a statement of its own in pg_stat_statements: pin int8."""
    return tuple(Int8(p) if isinstance(p, int) else p for p in params)


def run(dsn: str, seconds: float, seed: int = 7) -> int:
    """Replays the templates by weight until `seconds` have passed; returns the statements run."""
    rng = random.Random(seed)
    names = [t for t in TEMPLATES for _ in range(t.weight)]
    done = 0
    deadline = time.monotonic() + seconds
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as conn:
        while time.monotonic() < deadline:
            for template in rng.sample(names, len(names)):
                conn.execute(template.sql, _typed(template.params(rng)))
                done += 1
    return done
