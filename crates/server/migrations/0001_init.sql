-- edgecap control-plane schema, version 1. Valid on SQLite and PostgreSQL alike: TEXT ids,
-- RFC 3339 UTC timestamps as fixed-width TEXT (text order is time order), BIGINT counters and
-- flags, JSON documents as TEXT. Packet bytes are never stored here.

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    max_time_limit BIGINT NOT NULL DEFAULT 300,
    max_packet_limit BIGINT NOT NULL DEFAULT 10000,
    max_byte_limit BIGINT NOT NULL DEFAULT 1000000000,
    created TEXT NOT NULL
);

-- Only the SHA-256 of a token's secret is stored. Agent tokens belong to no account.
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    account_id TEXT REFERENCES accounts (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('api', 'agent')),
    hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created TEXT NOT NULL,
    CHECK (kind = 'agent' OR account_id IS NOT NULL)
);

CREATE TABLE nodes (
    name TEXT PRIMARY KEY,
    labels TEXT NOT NULL,
    points TEXT NOT NULL,
    version TEXT NOT NULL,
    connected BIGINT NOT NULL DEFAULT 0,
    last_seen TEXT NOT NULL
);

-- `request` holds the validated create request (filter, points, limits, destination);
-- `deadline` is when parts that have not reported become "no result from node";
-- `revision` is bumped by every state change and serialises them per capture.
CREATE TABLE captures (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    submitted TEXT NOT NULL,
    deadline TEXT NOT NULL,
    stop_requested TEXT,
    finished TEXT,
    error_message TEXT,
    packets_captured BIGINT NOT NULL DEFAULT 0,
    bytes_captured BIGINT NOT NULL DEFAULT 0,
    packets_lost BIGINT NOT NULL DEFAULT 0,
    revision BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX captures_by_account ON captures (account_id, submitted);
CREATE INDEX captures_open ON captures (status, deadline);

-- One row per selected node: its share of the limits and how its part went.
CREATE TABLE capture_nodes (
    capture_id TEXT NOT NULL REFERENCES captures (id) ON DELETE CASCADE,
    node TEXT NOT NULL,
    position BIGINT NOT NULL,
    status TEXT NOT NULL,
    packets BIGINT NOT NULL DEFAULT 0,
    bytes BIGINT NOT NULL DEFAULT 0,
    lost BIGINT NOT NULL DEFAULT 0,
    packet_limit BIGINT,
    byte_limit BIGINT,
    file TEXT,
    error_message TEXT,
    stop_reason TEXT,
    acked_at TEXT,
    finished_at TEXT,
    PRIMARY KEY (capture_id, node)
);
CREATE INDEX capture_nodes_by_node ON capture_nodes (node, status);

-- Bucket ownership challenges (Cloudflare's /pcaps/ownership). Only the SHA-256 of the
-- challenge token is kept.
CREATE TABLE ownerships (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    destination_conf TEXT NOT NULL,
    filename TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    submitted TEXT NOT NULL,
    validated TEXT,
    UNIQUE (account_id, destination_conf)
);
