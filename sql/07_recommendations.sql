-- Recommendations: what recommend() found (source 'advisor') or the LLM
-- proposed and OptiSchema verified (source 'llm'). One row per distinct
-- piece of advice (key): re-running the analysis updates it in place.

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
    status_changed_at    timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX IF NOT EXISTS _recommendations_status_idx ON optischema._recommendations (status, score DESC);
SELECT pg_catalog.pg_extension_config_dump('optischema._recommendations', '');
SELECT pg_catalog.pg_extension_config_dump('optischema._recommendations_id_seq', '');

CREATE OR REPLACE VIEW optischema.recommendations AS
SELECT id, kind, source, status, title, ddl, rollback_ddl, table_name, index_name, queryids,
       benefit, evidence, estimated_size_bytes, write_overhead, score, explanation,
       dismissed_reason, created_at, updated_at, status_changed_at
FROM optischema._recommendations;
