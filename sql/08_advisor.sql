-- The what-if advisor: the optischema_engine package, run in this backend
-- by PL/Python, over the analysis window. Each run is recorded in
-- optischema.analyses with the statements it skipped and why; recommend()
-- (sql/30_recommend.sql) keeps its results.

-- The advisor's knobs; the engine's Settings dataclass has the same names and
-- defaults (an interval key reaches it as <key>_s, in seconds; a size in bytes).
INSERT INTO optischema.setting_defs (key, type, default_value, min_value, max_value, allowed, description) VALUES
('statement_coverage', 'numeric', '0.999', 0, 1, NULL,
 'Read statements are analysed heaviest first until they cover this fraction of the window''s read statement time.'),
('min_calls', 'integer', '1', 1, 1000000000, NULL,
 'Calls a statement needs in the window to be analysed. 1: a statement run once is part of the workload, weighed by its time like any other.'),
('min_write_calls', 'integer', '2', 1, 1000000000, NULL,
 'Executions a write needs in the window to be charged as index upkeep (a data load run once is not the workload).'),
('max_queries', 'integer', '2000', 1, 100000, NULL,
 'Analyse at most this many read statements, heaviest first (a ceiling on the work).'),
('min_cost_reduction', 'numeric', '0.1', 0, 1, NULL,
 'An index counts for a query only if the query''s estimated cost falls by this fraction.'),
('min_index_gain', 'numeric', '0.05', 0, 1, NULL,
 'An index is proposed only if it saves the statements it serves more than its upkeep and size, and at least this fraction of their cost.'),
('write_cost_per_entry', 'numeric', '2.0', 0, 1000, NULL,
 'Planner cost units charged per index entry written by an INSERT or a non-HOT UPDATE.'),
('size_cost_per_mb', 'numeric', '0', 0, 1000000, NULL,
 'Cost units per workload round charged per MB of new index (0: size only breaks ties).'),
('index_budget', 'size', '0', NULL, NULL, NULL,
 'Total size of the new indexes proposed at most: a size (''2GB''), a share of the database (''20%''), or 0 for no limit.'),
('max_indexes_per_table', 'integer', '6', 0, 100, NULL,
 'New indexes proposed per table at most (a safety net: the total is not limited).'),
('max_key_columns', 'integer', '3', 1, 32, NULL,
 'Key columns of a proposed index at most (INCLUDE columns not counted).'),
('param_samples', 'integer', '3', 0, 20, NULL,
 'Representative parameter sets (from pg_stats, used locally) a query is also costed with.'),
('partial_max_fraction', 'numeric', '0.2', 0, 1, NULL,
 'A constant equality becomes a partial-index predicate only if it keeps at most this fraction of rows.'),
('time_budget', 'interval', '60 seconds', NULL, NULL, NULL,
 'recommend() evaluates no further candidates after this long; the best set so far is kept.'),
('drop_unused_min_window', 'interval', '7 days', NULL, NULL, NULL,
 'An index with no scans is proposed for dropping only if the window observed is at least this long.'),
('use_pg_qualstats', 'boolean', 'true', NULL, NULL, NULL,
 'Use constants observed by pg_qualstats, when installed, as representative parameters.')
ON CONFLICT (key) DO UPDATE SET (type, default_value, min_value, max_value, allowed, description)
    = (EXCLUDED.type, EXCLUDED.default_value, EXCLUDED.min_value, EXCLUDED.max_value, EXCLUDED.allowed, EXCLUDED.description);

CREATE TABLE IF NOT EXISTS optischema.analyses (
    id           bigserial PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    finished_at  timestamptz,
    from_snapshot bigint,
    to_snapshot  bigint NOT NULL,
    recommendations integer,
    stats        jsonb NOT NULL DEFAULT '{}',
    skipped      jsonb NOT NULL DEFAULT '[]'     -- [{queryid, reason}]: what the advisor could not use
);
SELECT pg_catalog.pg_extension_config_dump('optischema.analyses', '');
SELECT pg_catalog.pg_extension_config_dump('optischema.analyses_id_seq', '');

-- The workload window every analysis reads (recommend(), the LLM's context
-- and queue): from the snapshot before now - analysis_window to the latest,
-- and how long that is (without a snapshot before it, since the first one).
CREATE OR REPLACE FUNCTION optischema._analysis_window(OUT p_from bigint, OUT p_to bigint, OUT seconds double precision)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH w AS (
        SELECT optischema._snapshot_before(pg_catalog.now() - optischema.setting('analysis_window')::interval) AS f,
               (SELECT max(s.id) FROM optischema.snapshots s) AS t
    )
    SELECT w.f, w.t,
           extract(epoch FROM (SELECT s.taken_at FROM optischema.snapshots s WHERE s.id = w.t)
                            - coalesce((SELECT s.taken_at FROM optischema.snapshots s WHERE s.id = w.f),
                                       (SELECT min(s.taken_at) FROM optischema.snapshots s)))::double precision
    FROM w
$$;

-- The engine's settings: every setting, typed (intervals as <key>_s seconds).
CREATE OR REPLACE FUNCTION optischema._engine_settings() RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_object_agg(CASE WHEN s.type = 'interval' THEN s.key || '_s' ELSE s.key END,
                            CASE s.type
                                WHEN 'boolean'  THEN to_jsonb(s.value::boolean)
                                WHEN 'integer'  THEN to_jsonb(s.value::bigint)
                                WHEN 'numeric'  THEN to_jsonb(s.value::numeric)
                                WHEN 'interval' THEN to_jsonb(extract(epoch FROM s.value::interval))
                                WHEN 'size'     THEN to_jsonb(optischema._size_bytes(s.value))
                                ELSE to_jsonb(s.value) END)
    FROM optischema.settings s
$$;

-- Table and index activity over the window, in the engine's Activity shape.
-- An index counts as unused only over a window it existed for all along.
CREATE OR REPLACE FUNCTION optischema._activity(p_from bigint, p_to bigint) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH w AS (
        SELECT coalesce(p_from, (SELECT min(id) FROM optischema.snapshots)) AS first_id,
               -- without a snapshot before the window, the first one's figures go back to the stats reset
               coalesce((SELECT taken_at FROM optischema.snapshots WHERE id = p_from),
                        (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()),
                        (SELECT min(taken_at) FROM optischema.snapshots)) AS since,
               (SELECT taken_at FROM optischema.snapshots WHERE id = p_to) AS until
    )
    SELECT jsonb_build_object(
        'window_seconds', extract(epoch FROM w.until - w.since),
        'first_snapshot_at', w.since,
        'tables', coalesce((
            SELECT jsonb_object_agg(t.relid::bigint::text, jsonb_build_object(
                'seq_scan', t.seq_scan, 'idx_scan', t.idx_scan, 'n_tup_ins', t.ins, 'n_tup_upd', t.upd,
                'n_tup_del', t.del, 'n_tup_hot_upd', t.hot, 'n_live_tup', t.live))
            FROM (SELECT ts.relid, sum(ts.seq_scan) AS seq_scan, sum(ts.idx_scan) AS idx_scan,
                         sum(ts.n_tup_ins) AS ins, sum(ts.n_tup_upd) AS upd, sum(ts.n_tup_del) AS del,
                         sum(ts.n_tup_hot_upd) AS hot,
                         (array_agg(ts.n_live_tup ORDER BY ts.snapshot_id DESC))[1] AS live
                  FROM optischema.table_stats ts
                  WHERE ts.snapshot_id > coalesce(p_from, 0) AND ts.snapshot_id <= p_to
                  GROUP BY ts.relid) t), '{}'),
        'indexes', coalesce((
            SELECT jsonb_object_agg(i.indexrelid::bigint::text, jsonb_build_object('idx_scan', coalesce(
                (SELECT sum(x.idx_scan) FROM optischema.index_stats x
                 WHERE x.indexrelid = i.indexrelid AND x.snapshot_id > coalesce(p_from, 0) AND x.snapshot_id <= p_to), 0)))
            FROM optischema._index_state i
            WHERE i.first_seen <= w.first_id), '{}'))
    FROM w
$$;

-- Imports the engine of this version of the SQL (make install puts each
-- version's in its own directory) and returns its version. A backend that ran
-- another version's SQL before ALTER EXTENSION UPDATE still holds that
-- version's modules: they are dropped first, so the SQL of one version never
-- runs with the engine of another. Every PL/Python function calls this first.
CREATE OR REPLACE FUNCTION optischema._load_engine() RETURNS text
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
import os
import sys
want, where = '@EXTVERSION@', '@ENGINE_DIR@/@EXTVERSION@'
if 'pglast' not in sys.modules:
    # libpg_query, under pglast, holds its own copy of PostgreSQL's parser
    # (raw_parser, palloc, ...): loaded into a backend the usual way, its calls
    # bind to the server's functions of the same names and crash the backend.
    # RTLD_DEEPBIND makes it use its own.
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
    try:
        import pglast.parser
    except ImportError as e:
        plpy.error(f"the engine needs pglast (libpg_query) in the server's Python: {e}",
                   hint="Install the Debian/Ubuntu package python3-pglast, then retry.", sqlstate="58P01")
    finally:
        sys.setdlopenflags(flags)
engine = sys.modules.get('optischema_engine')
if getattr(engine, '__version__', None) != want:
    for name in [n for n in sys.modules if n == 'optischema_engine' or n.startswith('optischema_engine.')]:
        del sys.modules[name]
    while where in sys.path:
        sys.path.remove(where)
    sys.path.insert(0, where)
    try:
        import optischema_engine as engine
    except ImportError as e:
        plpy.error(f"the OptiSchema engine {want} is not installed: {e}",
                   hint="Run make install from the OptiSchema source of version " + want + ", then retry.",
                   sqlstate="58P01")
if getattr(engine, '__version__', None) != want:
    plpy.error(f"the OptiSchema engine in {where} is version {getattr(engine, '__version__', 'unknown')}, this database's SQL is {want}",
               hint="Run make install from the OptiSchema source of version " + want + ", then retry.",
               sqlstate="55000")
return engine.__version__
$$;

-- Runs the engine in this backend, with the caller's rights: it plans each
-- statement as a role that sent it, which the caller must be able to become
-- (optischema_engine.senders; SET ROLE and the like are refused in SECURITY
-- DEFINER functions, and so is handing a function to another role there).
-- plan_cache_mode is set (and so restored on exit) for generic plans; the
-- engine removes exactly the hypothetical indexes it made. The result is
-- returned and kept for _record_advice() in this transaction: GD is PL/Python's,
-- which only a superuser can write to, so what gets recorded is the engine's.
CREATE OR REPLACE FUNCTION optischema._advise(p_from bigint, p_to bigint) RETURNS jsonb
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
import json
plpy.execute("SELECT optischema._load_engine()")
from optischema_engine import (Activity, IndexActivity, Settings, Skipped, TableActivity, WorkloadQuery, advise,
                               running, senders)
from optischema_engine.db import PlpyDatabase

# The caller reads only the texts it may read in pg_stat_statements (row
# security of optischema.queries); it could not plan the others as their
# senders either: they are skipped, saying why.
rows = plpy.execute(plpy.prepare(
    "SELECT w.queryid, q.query, w.calls, w.total_ms, w.rows"
    " FROM optischema._query_window($1, $2) w LEFT JOIN optischema.queries q ON q.queryid = w.queryid",
    ["bigint", "bigint"]), [p_from, p_to])
workload = [WorkloadQuery(r["queryid"], r["query"], r["calls"], r["total_ms"], r["rows"]) for r in rows
            if r["query"] is not None]
# Executions seen running that pg_stat_statements never counted (cancelled,
# timed out, still running): weighed by the time they had run; a statement
# known only from them is planned from the text it was sent with.
unfinished = [running.Unfinished(r["queryid"], r["query"], r["executions"], r["total_ms"], r["truncated"])
              for r in plpy.execute(plpy.prepare(
                  "SELECT u.queryid, r.query, u.executions, u.total_ms, u.truncated"
                  " FROM optischema._unfinished_window($1, $2) u LEFT JOIN optischema.running_statements r"
                  " ON r.pid = u.pid AND r.query_start = u.query_start", ["bigint", "bigint"]), [p_from, p_to])]
workload, cut, unreadable = running.merge(workload, unfinished, {r["queryid"] for r in rows if r["query"] is None})
hidden = [Skipped(q, "not planned: " + (senders.resolve_one(PlpyDatabase(plpy), [q]).reason
                                        or "its text is not readable by this role"))
          for q in [r["queryid"] for r in rows if r["query"] is None] + [u.queryid for u in unreadable]] + cut
act = json.loads(plpy.execute(plpy.prepare("SELECT optischema._activity($1, $2) AS a", ["bigint", "bigint"]),
                              [p_from, p_to])[0]["a"])
activity = Activity(
    window_seconds=float(act["window_seconds"] or 0),
    tables={int(k): TableActivity(**v) for k, v in act["tables"].items()},
    indexes={int(k): IndexActivity(**v) for k, v in act["indexes"].items()},
    first_snapshot_at=act["first_snapshot_at"])
settings = Settings.from_dict(json.loads(plpy.execute("SELECT optischema._engine_settings() AS s")[0]["s"]))
advice = advise(PlpyDatabase(plpy), workload, activity, settings)
advice.skipped += hidden
result = json.dumps(advice.to_dict())
xid = plpy.execute("SELECT pg_catalog.pg_current_xact_id()::text AS x")[0]["x"]
GD["optischema_advice"] = (xid, p_from, p_to, result)
return result
$$;

-- The result a PL/Python analysis of this transaction kept in GD under
-- optischema_<p_what> (_advise(): 'advice', _maintenance_plans():
-- 'maintenance'), taken (once) by the definer function that records it.
CREATE OR REPLACE FUNCTION optischema._take_result(p_what text, OUT p_from bigint, OUT p_to bigint, OUT result jsonb)
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
entry = GD.pop("optischema_" + p_what, None)
xid = plpy.execute("SELECT pg_catalog.pg_current_xact_id()::text AS x")[0]["x"]
if entry is None or entry[0] != xid:
    plpy.error(f"no {p_what} was computed in this transaction", hint="Run SELECT * FROM optischema.recommend();",
               sqlstate="55000")
return entry[1:]
$$;

-- The generic plan of statement p_queryid's text p_text (its top node), or
-- why there is none: planned as a role that sent it, with the caller's rights
-- (the caller must be able to become that role), like the advisor plans.
CREATE OR REPLACE FUNCTION optischema._generic_plan(p_queryid bigint, p_text text, OUT plan jsonb, OUT reason text)
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
import json
plpy.execute("SELECT optischema._load_engine()")
from optischema_engine.db import PlpyDatabase
from optischema_engine.whatif import generic_plan
found, why = generic_plan(PlpyDatabase(plpy), p_queryid, p_text)
return (None if found is None else json.dumps(found), why)
$$;
