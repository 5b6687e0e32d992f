-- Recommendations: what recommend() found (source 'advisor') or the LLM
-- proposed and OptiSchema verified (source 'llm'). One row per distinct
-- piece of advice (key): re-running the analysis updates it in place. An
-- index recommendation's ddl and rollback_ddl are for reading: what runs is
-- built from index_spec by optischema._index_ddl() when it runs.

CREATE TABLE IF NOT EXISTS optischema._recommendations (
    id                   bigserial PRIMARY KEY,
    key                  text NOT NULL UNIQUE,
    kind                 text NOT NULL CHECK (kind IN ('create_index', 'drop_index', 'rewrite', 'config', 'maintenance')),
    source               text NOT NULL CHECK (source IN ('advisor', 'llm')),
    status               text NOT NULL DEFAULT 'open'
                         CHECK (status IN ('open', 'applying', 'applied', 'failed', 'rolling_back',
                                           'rolled_back', 'dismissed', 'superseded')),
    title                text NOT NULL,
    ddl                  text,
    rollback_ddl         text,
    table_name           text,
    index_name           text,
    queryids             bigint[] NOT NULL DEFAULT '{}',
    benefit              jsonb NOT NULL DEFAULT '{}',
    evidence             jsonb NOT NULL DEFAULT '{}',
    estimated_size_bytes bigint,
    write_overhead       jsonb NOT NULL DEFAULT '{}',
    score                double precision NOT NULL DEFAULT 0,
    explanation          text,
    dismissed_reason     text,
    created_at           timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at           timestamptz NOT NULL DEFAULT pg_catalog.now(),
    status_changed_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- create_index/drop_index: what to build or drop, as sql/09_index_ddl.sql
    -- describes it; the statement is built from it whenever one runs.
    index_spec           jsonb,
    -- maintenance/config: what to run or set, as sql/12_actions.sql describes it;
    -- likewise built whenever one runs.
    action_spec          jsonb
);
CREATE INDEX IF NOT EXISTS _recommendations_status_idx ON optischema._recommendations (status, score DESC);
SELECT pg_catalog.pg_extension_config_dump('optischema._recommendations', '');
SELECT pg_catalog.pg_extension_config_dump('optischema._recommendations_id_seq', '');

-- Whether the current user may read the texts of every statement a
-- recommendation serves (see optischema.query_texts). What is made of those
-- texts is shown only then: a rewrite's statement and evidence (which holds
-- the original), the model's explanation, the plans of the plan check. A
-- rewrite of an execution's text (evidence.sampled_text: its constants, one
-- role's) is shown as pg_stat_activity shows that execution, whichever
-- execution query_texts shows now: to members of that role (run_as, its only
-- sender) and of pg_read_all_stats.
CREATE OR REPLACE VIEW optischema._recommendation_texts AS
SELECT r.id, bool_and(coalesce(t.visible, x.queryid IS NULL))
             AND (NOT coalesce(r.evidence ? 'sampled_text', false)
                  OR pg_catalog.pg_has_role(CURRENT_USER, 'pg_read_all_stats', 'MEMBER')
                  OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles a WHERE a.rolname = r.evidence ->> 'run_as'
                                                              AND pg_catalog.pg_has_role(CURRENT_USER, a.oid, 'MEMBER')))
       AS visible
FROM optischema._recommendations r
LEFT JOIN LATERAL unnest(r.queryids) x (queryid) ON true
LEFT JOIN optischema.query_texts t ON t.queryid = x.queryid
GROUP BY r.id;

CREATE OR REPLACE VIEW optischema.recommendations AS
SELECT r.id, r.kind, r.source, r.status, r.title,
       CASE WHEN r.kind = 'rewrite' AND NOT v.visible THEN '<insufficient privilege>' ELSE r.ddl END AS ddl,
       r.rollback_ddl, r.table_name, r.index_name, r.queryids, r.benefit,
       CASE WHEN r.kind = 'rewrite' AND NOT v.visible THEN '"<insufficient privilege>"' ELSE r.evidence END AS evidence,
       r.estimated_size_bytes, r.write_overhead, r.score,
       CASE WHEN NOT v.visible AND r.explanation <> '' THEN '<insufficient privilege>' ELSE r.explanation END AS explanation,
       r.dismissed_reason, r.created_at, r.updated_at, r.status_changed_at, r.index_spec, r.action_spec
FROM optischema._recommendations r
JOIN optischema._recommendation_texts v ON v.id = r.id;
