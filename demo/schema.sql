-- The demo's own workload: a help-desk application. Most secondary indexes
-- are missing on purpose; OptiSchema has to find which ones pay off.
CREATE TABLE accounts (
    id          bigint PRIMARY KEY,
    email       text NOT NULL,
    plan        text NOT NULL,
    country     text NOT NULL,
    created_at  timestamptz NOT NULL,
    last_seen   timestamptz
);

CREATE TABLE agents (
    id      int PRIMARY KEY,
    name    text NOT NULL,
    team    text NOT NULL
);

CREATE TABLE tickets (
    id          bigint PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts (id),
    agent_id    int REFERENCES agents (id),
    status      text NOT NULL,
    priority    int NOT NULL,
    subject     text NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE ticket_events (
    id          bigserial PRIMARY KEY,
    ticket_id   bigint NOT NULL,
    kind        text NOT NULL,
    created_at  timestamptz NOT NULL,
    body        text
);

-- An index nobody uses, and one whose key is the prefix of another.
CREATE INDEX accounts_plan_idx ON accounts (plan);
CREATE INDEX accounts_email_idx ON accounts (email);
CREATE INDEX accounts_email_created_idx ON accounts (email, created_at);
