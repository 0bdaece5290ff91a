-- Events (issue 14), version 14: one row per anomaly a trigger saw, whatever the number of
-- nodes that fired for it. Times in unix seconds as the agents measured them (their 1 s
-- rollups); `event_key` is the destination address that fired, or '' for the whole scope;
-- `last_at` the latest second any node fired or held (the window that joins a firing to an
-- event); `signature` the attack signature (JSON) of its capture once ended. An account keeps
-- its events 30 days, at most 10,000 (hub/firings.rs).
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    trigger_id TEXT NOT NULL,
    trigger_name TEXT,
    event_key TEXT NOT NULL,
    started BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    peak DOUBLE PRECISION NOT NULL,
    signature TEXT,
    created TEXT NOT NULL
);
CREATE INDEX events_by_account ON events (account_id, started);
CREATE INDEX events_by_trigger ON events (trigger_id, event_key, last_at);
-- Each node of an event: when its run of holding seconds started and ended (NULL: still
-- holding), and its highest rate.
CREATE TABLE event_nodes (
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    node TEXT NOT NULL,
    started BIGINT NOT NULL,
    ended BIGINT,
    peak DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (event_id, node)
);
-- Each firing of an event: the capture it started (recorded in `captures`), or why none
-- (`refused`: the agent's reason, or the server's hourly budget). `at` is the server's clock
-- at receipt: the hourly budget counts these per trigger, across nodes and replicas.
CREATE TABLE event_firings (
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    trigger_id TEXT NOT NULL,
    node TEXT NOT NULL,
    at BIGINT NOT NULL,
    capture_id TEXT,
    refused TEXT
);
CREATE INDEX event_firings_by_trigger ON event_firings (trigger_id, at);
CREATE INDEX event_firings_by_event ON event_firings (event_id)
