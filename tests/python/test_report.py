"""The HTML report end to end: a database with history (a workload over two
hours of snapshots, a recommendation left open, a change applied with its
measured before and after, a statement of another role), its report from SQL
and from the sidecar's loopback port, opened in headless Chromium at desktop
and phone width: no network request, no console error, every section with
its chart, nothing a reader may not read. And the renderer on its own."""
from __future__ import annotations

import base64
import json
import re
import shutil
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from conftest import _create_db, _drop_db
from optischema_engine.report import ReportDataError, Series, line_chart, render
from optischema_sidecar import config, metrics, report
from psycopg import sql

SECTIONS = ["statements", "recommendations", "changes", "activity", "health"]
HOSTILE = '</code><script>alert("rep")</script><img src="http://127.0.0.1:9/rep.png">'
MCV = "rep-mcv-zebra"          # the commonest value of rep_orders.status: in pg_stats, never in the report
APP_MARKER = "rep_app_only"    # in a statement only its sender (and readers of all statistics) may read
ORDERS = "SELECT * FROM rep_orders WHERE customer_id = %s"
TICKETS = "SELECT * FROM rep_tickets WHERE agent_id = %s"


def _round(conn: psycopg.Connection, n: int) -> None:
    for i in range(12):
        conn.execute(ORDERS, (n * 12 + i,))
        conn.execute(TICKETS, (n * 12 + i,))
    conn.execute("UPDATE rep_orders SET note = %s WHERE id = %s", (f"n{n}", n + 1))
    for _ in range(2):
        conn.execute(sql.SQL("SELECT count(*) AS {} FROM rep_orders").format(sql.Identifier(HOSTILE)))
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT optischema.snapshot()")


def _make_history(conn: psycopg.Connection, app_role: str) -> None:
    conn.execute("CREATE TABLE rep_orders (id bigint PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL, note text)")
    conn.execute("INSERT INTO rep_orders SELECT g, g %% 3000, CASE WHEN g %% 10 < 9 THEN %s ELSE 'open' END, md5(g::text)"
                 " FROM generate_series(1, 60000) g", (MCV,))
    conn.execute("CREATE TABLE rep_tickets (id bigint PRIMARY KEY, agent_id int NOT NULL, body text)")
    conn.execute("INSERT INTO rep_tickets SELECT g, g % 500, md5(g::text) FROM generate_series(1, 40000) g")
    conn.execute("ANALYZE rep_orders")
    conn.execute("ANALYZE rep_tickets")
    conn.execute(sql.SQL("GRANT SELECT ON rep_orders TO {}").format(sql.Identifier(app_role)))
    conn.execute("SELECT optischema.set_setting('top_queries_refresh', '0')")
    conn.execute("SELECT optischema.snapshot()")
    for n in range(6):
        _round(conn, n)
    # Another role's statement, heavy enough to be among the heaviest.
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(app_role)))
    for i in range(20):
        conn.execute(f"SELECT count(*) AS {APP_MARKER} FROM rep_orders WHERE note = %s", (str(i),))
    conn.execute("RESET ROLE")
    _round(conn, 6)

    recs = conn.execute("SELECT id, table_name FROM optischema.recommend() WHERE kind = 'create_index'").fetchall()
    chosen = next(r for r, table in recs if table.endswith("rep_orders"))
    assert any(table.endswith("rep_tickets") for _, table in recs), recs      # stays open for the report
    before = conn.execute("SELECT max(id) FROM optischema.snapshots").fetchone()[0]
    change = conn.execute("SELECT optischema.apply(%s, via => 'psql')", (chosen,)).fetchone()[0]
    conn.execute(conn.execute("SELECT ddl FROM optischema.changes WHERE id = %s", (change,)).fetchone()[0])
    assert conn.execute("SELECT optischema.applied(%s)", (change,)).fetchone()[0] == "succeeded"
    conn.execute("SELECT optischema.snapshot()")
    for n in range(7, 11):
        _round(conn, n)

    # Spread the snapshots over the last hour or so, 5 minutes apart, with the
    # change between the last one before it and the first one after it.
    conn.execute("UPDATE optischema.snapshots s SET taken_at = now() - (m.max - s.id) * interval '5 minutes'"
                 " FROM (SELECT max(id) FROM optischema.snapshots) m")
    conn.execute("""UPDATE optischema._changes c
                    SET requested_at = b.taken_at + interval '1 minute', started_at = b.taken_at + interval '1 minute',
                        finished_at = b.taken_at + interval '2 minutes'
                    FROM optischema.snapshots b WHERE b.id = %s AND c.id = %s""", (before, change))
    verdict = conn.execute("SELECT verdict FROM optischema.verify(%s) WHERE queryid IS NULL", (chosen,)).fetchone()[0]
    assert verdict == "improved"


@pytest.fixture(scope="module")
def roles(server_dsn: str) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    app, reader = f"rep_app_{suffix}", f"rep_reader_{suffix}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        for role in (app, reader):
            conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
    try:
        yield app, reader
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            for role in (app, reader):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture(scope="module")
def history_dsn(server_dsn: str, roles: tuple[str, str]) -> Iterator[str]:
    dsn = _create_db(server_dsn, ("hypopg", "optischema"))
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            _make_history(conn, roles[0])
            conn.execute("SELECT optischema.grant_usage(%s)", (roles[1],))
        yield dsn
    finally:
        _drop_db(server_dsn, dsn)


@pytest.fixture(scope="module")
def page(history_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report as `psql -At -c "SELECT optischema.report(...)" > report.html` writes it."""
    path = tmp_path_factory.mktemp("report") / "report.html"
    with psycopg.connect(history_dsn, autocommit=True) as conn:
        path.write_text(conn.execute("SELECT optischema.report(since => '1 day')").fetchone()[0])
    return path


def test_report_has_every_section_and_shows_nothing_it_must_not(page: Path) -> None:
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    for section in SECTIONS:
        assert f'<section id="{section}">' in html
    assert "SELECT * FROM rep_orders WHERE customer_id = $1" in html, "statement texts are shown to their reader"
    assert "improved" in html, "the change's measured verdict"
    # Statement texts are escaped; the page has no script, image or external reference.
    assert "&lt;/code&gt;&lt;script&gt;alert(" in html
    assert not re.search(r"<(script|img|iframe|object|link)\b", html, re.I)
    assert not re.search(r"\b(src|href)=\"(?!#|/report)", html)
    assert MCV not in html, "no value from pg_stats"
    assert APP_MARKER in html, "the statement of another role is shown to a superuser"


def test_a_reader_sees_only_what_pg_stat_statements_shows_it(history_dsn: str, roles: tuple[str, str]) -> None:
    with psycopg.connect(history_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(roles[1])))
        html = conn.execute("SELECT optischema.report('1 day')").fetchone()[0]
        data = conn.execute("SELECT optischema.report_data('1 day')").fetchone()[0]
    assert '<section id="statements">' in html and "SELECT * FROM rep_orders WHERE customer_id" not in html
    assert APP_MARKER not in html and APP_MARKER not in json.dumps(data)
    assert "&lt;insufficient privilege&gt;" in html
    assert data["role"] == roles[1]


def test_what_the_llm_wrote_stays_out(db_dsn: str) -> None:
    """Model output may quote data values (pg_stats, with llm_share_values on): the report names the proposal only."""
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("SELECT optischema.snapshot()")
        conn.execute("""INSERT INTO optischema._recommendations (key, kind, source, title, ddl, explanation, score)
                        VALUES ('rep:llm', 'rewrite', 'llm', %s, %s, %s, 1)""",
                     (f"Filter on status = '{MCV}' first", f"SELECT 1 WHERE '{MCV}' = $1", f"{MCV} is most common"))
        html = conn.execute("SELECT optischema.report('1 day')").fetchone()[0]
    assert MCV not in html
    assert "rewrite proposed by the LLM" in html


def test_dead_rows_are_captured_and_a_vacuum_alone_is_recorded(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE rep_dead (id int PRIMARY KEY) WITH (autovacuum_enabled = off)")
    conn.execute("INSERT INTO rep_dead SELECT generate_series(1, 1000)")
    conn.execute("DELETE FROM rep_dead WHERE id <= 400")
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT optischema.snapshot()")
    conn.execute("VACUUM rep_dead")
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT optischema.snapshot()")
    dead = conn.execute("SELECT n_dead_tup FROM optischema.table_stats WHERE relid = 'rep_dead'::regclass"
                        " ORDER BY snapshot_id").fetchall()
    assert dead == [(400,), (0,)]
    levels = conn.execute("SELECT n_live_tup, n_dead_tup FROM optischema.table_history('1 hour', relation => 'rep_dead')"
                          " ORDER BY bucket_start DESC LIMIT 1").fetchone()
    assert levels == (600, 0)


def test_history_functions_agree_with_top_queries(history_dsn: str) -> None:
    with psycopg.connect(history_dsn, autocommit=True) as conn:
        # Both windows start at the snapshot taken an hour ago.
        top = dict(conn.execute("SELECT queryid, calls FROM optischema.top_queries('1 hour', 5)").fetchall())
        hist = dict(conn.execute("SELECT queryid, sum(calls) FROM optischema.query_history('1 hour', 5)"
                                 " GROUP BY queryid").fetchall())
        assert hist == top
        steps = conn.execute("SELECT DISTINCT bucket_end - bucket_start FROM optischema.query_history('1 hour', 5)"
                             ).fetchall()
        assert [str(s[0]) for s in steps] == ["0:10:00"]
        index = conn.execute("SELECT index_schema || '.' || index_name FROM optischema._changes").fetchone()[0]
        scans = conn.execute("SELECT sum(idx_scan) FROM optischema.index_history('1 day', relation => 'rep_orders')"
                             " WHERE index_name = %s", (index,)).fetchone()[0]
        assert scans >= 48, "the applied index serves the 4 rounds after it"
        writes = conn.execute("SELECT sum(n_tup_upd) FROM optischema.table_history('1 day', relation => 'rep_orders')"
                              ).fetchone()[0]
        assert writes == 11, "one row updated per round"


def _chromium(profile: Path):  # -> selenium WebDriver
    from selenium import webdriver
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "Debian's chromium and chromium-driver are missing: make deps installs them"
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=driver))


def _requests(browser) -> list[str]:
    """URLs the page asked for since the last call (the performance log)."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _screenshot(browser, path: Path, width: int, mobile: bool) -> int:
    """A full-page PNG at this width; returns the page's scroll width."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": mobile})
    height = browser.execute_script("return document.documentElement.scrollHeight")
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))
    return browser.execute_script("return document.documentElement.scrollWidth")


def test_the_page_in_headless_chromium(page: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    browser = _chromium(tmp_path / "profile")
    try:
        # The probe sees requests: a page with an image asks for it.
        control = tmp_path / "control.html"
        control.write_text('<!DOCTYPE html><img src="http://127.0.0.1:9/probe.png">')
        browser.get(control.as_uri())
        assert "http://127.0.0.1:9/probe.png" in _requests(browser)
        browser.get_log("browser")

        browser.get(page.as_uri())
        assert _requests(browser) == [page.as_uri()], "the report asks for nothing but itself"
        errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
        assert errors == []
        assert browser.find_elements(By.TAG_NAME, "script") == [] and browser.find_elements(By.TAG_NAME, "img") == []
        for section in SECTIONS:
            charts = browser.find_elements(By.CSS_SELECTOR, f"section#{section} figure.chart svg")
            assert charts, f"section {section} has a chart"
            assert all(c.size["width"] > 200 and c.size["height"] > 50 for c in charts)
        lines = browser.find_elements(By.CSS_SELECTOR, "section#statements figure.chart svg path")
        assert len(lines) >= 2, "the statements' trend is drawn"
        assert '</code><script>alert(""rep"")' in browser.find_element(By.ID, "statements").text, \
            "a hostile statement text is shown as text"

        desktop = _screenshot(browser, tmp_path / "report-1280.png", 1280, False)
        phone = _screenshot(browser, tmp_path / "report-390.png", 390, True)
        assert desktop <= 1280 and phone <= 390, "no sideways scrolling on a phone"
        assert (tmp_path / "report-1280.png").stat().st_size > 20000
        assert (tmp_path / "report-390.png").stat().st_size > 20000
        assert _requests(browser) == []
    finally:
        browser.quit()


def test_the_sidecar_serves_the_same_page_on_loopback(history_dsn: str, page: Path) -> None:
    settings = config.load({"dsn": [history_dsn]})
    server = metrics.serve("127.0.0.1", 0, metrics.Health(30), report.Reports(settings))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/report?since=1%20day", timeout=30) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
            served = r.read().decode()
        # One renderer: the same page as optischema.report(), up to when it was made.
        made = re.compile(r"generated [^<]*? for role|\([^()<]* ago")     # when it was made, and how long ago that is
        assert made.sub("", served) == made.sub("", page.read_text())
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{base}/report?since=-1%20hour", timeout=30)
        assert e.value.code == 400 and b"since must be a positive interval" in e.value.read()
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{base}/report?database=nope", timeout=30)
        assert e.value.code == 404
        with urllib.request.urlopen(f"{base}/metrics", timeout=30) as r:
            assert r.status == 200
    finally:
        server.shutdown()
    assert report.is_loopback("127.0.0.1") and report.is_loopback("localhost") and report.is_loopback("::1")
    assert not report.is_loopback("0.0.0.0") and not report.is_loopback("192.0.2.1")


# ---- the renderer alone

def test_render_refuses_what_is_not_report_data() -> None:
    for bad in (None, [], "x", {"format": 2}, {"format": 1, "statements": {}}, {"format": 1, "texts": []}):
        with pytest.raises(ReportDataError):
            render(bad)


def test_render_escapes_and_tolerates_odd_values() -> None:
    data = {"format": 1, "database": "<db>", "since": "1 day", "role": "r&d",
            "statements": [{"queryid": 1, "query": "SELECT '<b>'", "calls": "many", "total_ms": None,
                            "history": [{"t": "2024-01-01T00:00:00+00:00", "total_ms": "NaN"}, {"t": "bad"},
                                        {"t": "2024-01-01T01:00:00", "total_ms": 3}, {"t": 5}, "x"]}],
            "health": [{"check": "c", "ok": False, "detail": "<i>", "fix": "x < y"}]}
    html = render(data)
    assert "&lt;db&gt;" in html and "r&amp;d" in html and "SELECT &#x27;&lt;b&gt;&#x27;" in html
    assert "<i>" not in html and "x &lt; y" in html
    empty = render({"format": 1})
    assert all(f'<section id="{s}">' in empty for s in SECTIONS)


def test_a_gap_breaks_the_line() -> None:
    start = datetime.fromisoformat("2024-01-01T00:00:00+00:00")
    series = Series("s", "#000", [(start + timedelta(hours=h), v) for h, v in enumerate([1.0, 2.0, None, 3.0, 4.0])])
    svg = line_chart("t", [series], timedelta(hours=1), str).svg
    assert svg.count("<path") == 2, "one line before the gap, one after"
