-- OptiSchema 0.1.0 -> 0.2.0: the steps that re-running sql/ cannot do. The
-- build puts every file of sql/ at the @SOURCES@ line (scripts/build-sql.sh);
-- tests/python/test_upgrade.py checks that the result equals a fresh install.
--
-- Before the sources: what CREATE OR REPLACE and IF NOT EXISTS cannot change
-- (new columns of existing tables, changed constraints, functions whose
-- signature or result changed, views whose columns changed).

-- Dead tuples in the table history (NULL in rows taken before 0.2.0).
ALTER TABLE optischema.table_stats ADD COLUMN IF NOT EXISTS n_dead_tup bigint;
ALTER TABLE optischema._table_state ADD COLUMN IF NOT EXISTS n_dead_tup bigint;

-- Index recommendations carry the description their DDL is built from (sql/09_index_ddl.sql);
-- NULL in 0.1.0 rows: apply() refuses those until recommend() refreshes them (never built from their stored text).
ALTER TABLE optischema._recommendations ADD COLUMN IF NOT EXISTS index_spec jsonb;
-- The prefix check of stored DDL is gone: DDL is built from index_spec when it runs.
DROP FUNCTION IF EXISTS optischema._check_index_ddl(text);
-- grant_usage() takes a level ('reader', 'admin', 'sidecar') instead of admin boolean.
DROP FUNCTION IF EXISTS optischema.grant_usage(name, boolean);
-- _llm_recommend() takes the index description (p_index_spec) and a setting's (p_action_spec).
DROP FUNCTION IF EXISTS optischema._llm_recommend(text, text, text, text, text, text, text, bigint[], jsonb, jsonb,
                                                  bigint, double precision, text);
-- Each statement's senders as the last snapshot saw them, and when query_roles was written for it
-- (NULL in 0.1.0 rows: the next snapshot in which the statement runs records them).
ALTER TABLE optischema._query_state ADD COLUMN IF NOT EXISTS senders oid[];
ALTER TABLE optischema._query_state ADD COLUMN IF NOT EXISTS roles_seen bigint;

-- Maintenance and config recommendations carry the description their statement is built from (sql/12_actions.sql).
ALTER TABLE optischema._recommendations ADD COLUMN IF NOT EXISTS action_spec jsonb;
-- A change of a setting acts on no index (index_schema/index_name NULL), records what its apply found
-- (prior_state, restored by its rollback), and its effect check may find the evidence unchanged.
ALTER TABLE optischema._changes ALTER COLUMN index_schema DROP NOT NULL, ALTER COLUMN index_name DROP NOT NULL;
ALTER TABLE optischema._changes ADD COLUMN IF NOT EXISTS prior_state jsonb;
ALTER TABLE optischema._changes DROP CONSTRAINT IF EXISTS _changes_plan_check_check;
ALTER TABLE optischema._changes ADD CONSTRAINT _changes_plan_check_check
    CHECK (plan_check IN ('pending', 'verified', 'not_used', 'skipped', 'unchanged'));
-- Checkpoints and WAL position in each snapshot (NULL in rows taken before 0.2.0).
ALTER TABLE optischema.snapshots ADD COLUMN IF NOT EXISTS checkpoints_timed bigint;
ALTER TABLE optischema.snapshots ADD COLUMN IF NOT EXISTS checkpoints_req bigint;
ALTER TABLE optischema.snapshots ADD COLUMN IF NOT EXISTS wal_lsn pg_lsn;
-- cancel_job() of a running job records who asked; its sidecar stops it.
ALTER TABLE optischema.jobs ADD COLUMN IF NOT EXISTS cancel_requested_by text;
-- Thresholds relative to the whole workload and the global index cap are gone (statement_coverage, min_index_gain).
DELETE FROM optischema.settings_set WHERE key IN ('min_query_share', 'min_workload_gain', 'max_new_indexes');
DELETE FROM optischema.setting_defs WHERE key IN ('min_query_share', 'min_workload_gain', 'max_new_indexes');
-- Settings of a new type: 'size' (index_budget: a size or a share of the database).
ALTER TABLE optischema.setting_defs DROP CONSTRAINT IF EXISTS setting_defs_type_check;
ALTER TABLE optischema.setting_defs ADD CONSTRAINT setting_defs_type_check
    CHECK (type IN ('interval', 'integer', 'numeric', 'boolean', 'text', 'size'));
-- top_queries() says whether a statement finished (state): executions seen running are counted.
DROP FUNCTION IF EXISTS optischema.top_queries(interval, integer);
DROP FUNCTION IF EXISTS optischema._top_queries(interval, integer);

-- @SOURCES@

-- After the sources: data that needs the new functions.

-- 0.1.0 stored texts as pg_stat_statements keeps them, utility statements'
-- passwords included: redacted like every text captured from now on.
UPDATE optischema.queries q SET query = optischema._redact(q.query)
WHERE q.query IS DISTINCT FROM optischema._redact(q.query);

-- The senders of the statements 0.1.0 captured, from pg_stat_statements as
-- it is now (when it is loaded and created); later snapshots add the rest.
DO $senders$
DECLARE
    s name := (SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
               WHERE e.extname = 'pg_stat_statements');
BEGIN
    IF s IS NOT NULL AND optischema._preloaded('pg_stat_statements') THEN
        EXECUTE pg_catalog.format($q$
            INSERT INTO optischema.query_roles (queryid, userid, rolname, first_seen, last_seen)
            SELECT DISTINCT p.queryid, p.userid, a.rolname, x.id, x.id
            FROM %I.pg_stat_statements(false) p
            JOIN pg_catalog.pg_roles a ON a.oid = p.userid
            JOIN optischema.queries q ON q.queryid = p.queryid AND NOT q.own
            CROSS JOIN (SELECT coalesce(max(id), 0) AS id FROM optischema.snapshots) x
            WHERE p.toplevel AND p.dbid = (SELECT d.oid FROM pg_catalog.pg_database d
                                           WHERE d.datname = pg_catalog.current_database())
            ON CONFLICT (queryid, userid) DO NOTHING$q$, s);
    END IF;
END
$senders$;

-- 0.1.0 gave its admins EXECUTE on every routine, the internal ones included:
-- each role with access gets its level again, exactly (grant_usage() revokes
-- first). 0.1.0 had no sidecar level: a sidecar's role, an admin there, needs
-- grant_usage(role, 'sidecar') now, as the warning says.
DO $upgrade$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT (SELECT o.rolname FROM pg_catalog.pg_roles o WHERE o.oid = a.grantee) AS role,
               CASE WHEN pg_catalog.has_function_privilege(a.grantee, 'optischema._request_change(bigint, text, text)', 'EXECUTE')
                    THEN 'admin' ELSE 'reader' END AS level
        FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a
        WHERE n.nspname = 'optischema' AND a.privilege_type = 'USAGE' AND a.grantee NOT IN (0, n.nspowner)
        ORDER BY 1
    LOOP
        PERFORM optischema.grant_usage(r.role, r.level);
        IF r.level = 'admin' THEN
            RAISE WARNING 'role % is an OptiSchema admin: internal functions are no longer an admin''s', r.role
                USING HINT = format('If optischema-sidecar logs in as %1$s, give it the sidecar level: SELECT optischema.grant_usage(%1$L, ''sidecar'');', r.role);
        END IF;
    END LOOP;
END
$upgrade$;
-- A GRANT in an extension script is recorded as the object's initial
-- privilege, which pg_dump leaves out: the roles' grants made just above are
-- not initial, and must survive a dump and restore.
UPDATE pg_catalog.pg_init_privs i
SET initprivs = ARRAY(SELECT x FROM unnest(i.initprivs) x
                      WHERE EXISTS (SELECT 1 FROM pg_catalog.aclexplode(ARRAY[x]) e WHERE e.grantee IN (0, e.grantor)))
WHERE (i.classoid, i.objoid) IN (SELECT d.classid, d.objid FROM pg_catalog.pg_depend d
                                 WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e'
                                   AND d.refobjid = (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'optischema'))
   OR (i.classoid = 'pg_catalog.pg_namespace'::regclass AND i.objoid = 'optischema'::regnamespace);
