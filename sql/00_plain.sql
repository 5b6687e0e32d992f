-- The plain install (optischema-sidecar install; no extension, no PL/Python,
-- no superuser): the schema the extension's control file would create, owned
-- by the installing role, and the version installed, which the sidecar checks
-- as it checks an extension's extversion. The extension leaves this file out.

CREATE SCHEMA IF NOT EXISTS optischema;

CREATE TABLE IF NOT EXISTS optischema.installed (
    one          boolean PRIMARY KEY DEFAULT true CHECK (one),
    version      text NOT NULL,
    installed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at   timestamptz NOT NULL DEFAULT pg_catalog.now()
);
INSERT INTO optischema.installed (version) VALUES ('@EXTVERSION@')
ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version, updated_at = pg_catalog.now()
WHERE optischema.installed.version IS DISTINCT FROM EXCLUDED.version;
