-- The advisor's PL/Python functions (the extension only; a plain install,
-- where the engine runs in the sidecar, has sql/08_advisor_plain.sql instead).

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
from optischema_engine.analysis import advise_window
from optischema_engine.db import PlpyDatabase

result = json.dumps(advise_window(PlpyDatabase(plpy), p_from, p_to))
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
