-- Anomaly triggers (issue 14), version 11. `definition` is the validated trigger as JSON
-- (edgecap_model::trigger::Trigger; its destination_conf canonical and secret-free);
-- `credentials` the bucket's credentials for the captures it starts, sealed with the server's
-- secrets key (context `trigger:<id>`), like a capture's.
CREATE TABLE triggers (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    definition TEXT NOT NULL,
    credentials TEXT,
    created TEXT NOT NULL
);
CREATE INDEX triggers_by_account ON triggers (account_id, created)
