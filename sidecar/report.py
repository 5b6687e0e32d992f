"""GET /report on the sidecar's metrics port: the HTML report of a database it
serves, read with optischema.report_data() as the sidecar's role and drawn by
the engine's renderer, the same module optischema.report() runs in PL/Python.

    http://127.0.0.1:9187/report?since=1%20day[&database=app@db1:5432]

The page shows what the sidecar's role may read, statement texts included,
to whoever reaches the port: it is served only when that port listens on a
loopback address."""
from __future__ import annotations

import ipaddress
import socket
from html import escape
from urllib.parse import parse_qs, quote

import psycopg

from optischema_engine.report import render
from optischema_sidecar import db
from optischema_sidecar.config import Settings

HTML, TEXT = "text/html; charset=utf-8", "text/plain; charset=utf-8"
Response = tuple[int, str, bytes]


def is_loopback(host: str) -> bool:
    """Every address host resolves to is a loopback address."""
    try:
        return all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None))
    except (OSError, ValueError):
        return False


class Reports:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._dsns = {db.describe(d): d for d in settings.dsn}

    def page(self, query: str) -> Response:
        """The response to GET /report?<query>: the report of the one database
        served (or of ?database=<name>), or a list of links to each."""
        params = parse_qs(query)
        since = params.get("since", ["1 day"])[-1]
        name = params.get("database", [next(iter(self._dsns)) if len(self._dsns) == 1 else ""])[-1]
        if not name:
            links = "".join(f'<li><a href="/report?database={quote(n)}">{escape(n)}</a></li>' for n in self._dsns)
            return 200, HTML, f'<!DOCTYPE html><meta charset="utf-8"><title>OptiSchema reports</title><ul>{links}</ul>'.encode()
        dsn = self._dsns.get(name)
        if dsn is None:
            return 404, TEXT, f"this sidecar serves no database {name}: /report lists those it serves\n".encode()
        try:
            with db.connect(dsn, self._settings, "report") as conn:
                data = conn.execute("SELECT optischema.report_data(%s::interval)", (since,)).fetchone()[0]
        except psycopg.DataError as e:       # a bad ?since=
            return 400, TEXT, f"{db.error_text(e)}\n".encode()
        except psycopg.Error as e:
            return 503, TEXT, f"{name}: {db.error_text(e)}\n".encode()
        return 200, HTML, render(data).encode()
