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
    Template("agent_by_id", 10, "SELECT name, team FROM agents WHERE id = %s", lambda r: (r.randint(1, 200),)),
    Template("ticket_with_account", 8,
             "SELECT t.id, t.subject, a.email FROM tickets t JOIN accounts a ON a.id = t.account_id WHERE t.id = %s",
             lambda r: (r.randint(1, 250000),)),
    # Missing indexes.
    Template("login_by_email", 15, "SELECT id, plan FROM accounts WHERE lower(email) = lower(%s)",
             lambda r: (f"User{r.randint(1, 60000)}@example.com",)),
    Template("account_tickets", 20,
             "SELECT id, status, subject, created_at FROM tickets WHERE account_id = %s ORDER BY created_at DESC LIMIT 20",
             lambda r: (_account(r),)),
    Template("account_open_count", 5, "SELECT count(*) FROM tickets WHERE account_id = %s AND status <> 'closed'",
             lambda r: (_account(r),)),
    Template("open_queue", 8,
             "SELECT id, account_id, priority FROM tickets WHERE status = 'open' AND priority >= %s ORDER BY created_at LIMIT 50",
             lambda r: (r.randint(1, 4),)),
    Template("agent_queue", 6,
             "SELECT id, priority, created_at FROM tickets WHERE agent_id = %s AND status = 'pending'"
             " ORDER BY priority DESC, created_at LIMIT 20",
             lambda r: (r.randint(1, 200),)),
    Template("ticket_history", 12, "SELECT kind, created_at FROM ticket_events WHERE ticket_id = %s ORDER BY created_at",
             lambda r: (r.randint(1, 250000),)),
    Template("ticket_comment_count", 4,
             "SELECT count(*) FROM ticket_events WHERE ticket_id = %s AND kind = 'comment'",
             lambda r: (r.randint(1, 250000),)),
    Template("subject_search", 3, "SELECT id, subject FROM tickets WHERE subject LIKE %s ORDER BY id LIMIT 20",
             lambda r: (f"subject {r.randint(1000, 9999)}%",)),
    Template("email_prefix", 4, "SELECT id, email FROM accounts WHERE email LIKE %s LIMIT 20",
             lambda r: (f"user{r.randint(100, 999)}%",)),
    Template("country_signups", 2,
             "SELECT count(*) FROM accounts WHERE country = %s AND created_at >= now() - %s::interval",
             lambda r: (r.choice(["DE", "FR", "US", "GB"]), "30 days")),
    Template("events_by_kind", 2,
             "SELECT ticket_id, created_at FROM ticket_events WHERE kind = %s AND created_at > now() - %s::interval"
             " ORDER BY created_at DESC LIMIT 50",
             lambda r: (r.choice(["comment", "status", "assign"]), "7 days")),
    Template("stale_accounts", 1,
             "SELECT id, email FROM accounts WHERE last_seen < now() - %s::interval ORDER BY last_seen LIMIT 100",
             lambda r: ("80 days",)),
    # Reports no index helps much.
    Template("status_report", 1, "SELECT status, count(*) FROM tickets GROUP BY status", lambda r: ()),
    Template("team_load", 1,
             "SELECT a.team, count(*) FROM tickets t JOIN agents a ON a.id = t.agent_id WHERE t.status = 'open'"
             " GROUP BY a.team", lambda r: ()),
    Template("plan_country_count", 1, "SELECT count(*) FROM accounts WHERE plan = %s AND country = %s",
             lambda r: (r.choice(["free", "pro", "enterprise"]), r.choice(["DE", "US", "IN"]))),
    Template("priority_breakdown", 1,
             "SELECT priority, count(*) FROM tickets WHERE created_at >= now() - %s::interval GROUP BY priority",
             lambda r: ("90 days",)),
    # Writes: the events table is insert-heavy, tickets and accounts are updated
    # (an index on accounts.last_seen would cost every touch its HOT update).
    Template("log_event", 40,
             "INSERT INTO ticket_events (ticket_id, kind, created_at, body) VALUES (%s, 'view', now(), NULL)",
             lambda r: (r.randint(1, 250000),)),
    Template("touch_account", 10, "UPDATE accounts SET last_seen = now() WHERE id = %s", lambda r: (_account(r),)),
    Template("new_ticket", 3,
             "INSERT INTO tickets (account_id, status, priority, subject, created_at, updated_at)"
             " VALUES (%s, 'open', %s, %s, now(), now())",
             lambda r: (_account(r), r.randint(1, 5), f"subject new {r.randint(1, 10**6)}")),
    Template("assign_ticket", 3, "UPDATE tickets SET agent_id = %s, status = 'pending', updated_at = now() WHERE id = %s",
             lambda r: (r.randint(1, 200), r.randint(1, 250000))),
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
