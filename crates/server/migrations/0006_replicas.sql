-- Several `edgecap server` processes (replicas) on one PostgreSQL behave as one
-- (docs/operations.md, "Several replicas"). SQLite, single-process, leaves these tables empty.
-- Timestamps as elsewhere: fixed-width RFC 3339 UTC text, so text order is time order.

-- One row per running replica: its lease, renewed every second. A replica whose lease has
-- passed is dead, and so are the sessions it held.
CREATE TABLE replicas (
    id TEXT PRIMARY KEY,
    started TEXT NOT NULL,
    heartbeat TEXT NOT NULL,
    lease_until TEXT NOT NULL
);

-- Which replica holds each connected node's session, and what the node said in its hello
-- (labels, points, version, the features this server knows; node selection on any replica
-- reads it). A session lives as long as its replica's lease:
-- one renewal per replica, not one per node.
CREATE TABLE node_sessions (
    node TEXT PRIMARY KEY,
    replica_id TEXT NOT NULL,
    conn BIGINT NOT NULL,
    labels TEXT NOT NULL,
    points TEXT NOT NULL,
    version TEXT NOT NULL,
    features TEXT NOT NULL,
    connected TEXT NOT NULL,
    last_seen TEXT NOT NULL
);
CREATE INDEX node_sessions_by_replica ON node_sessions (replica_id);

-- Work that exactly one replica may do at a time (the timers' sweep, one capture's merge):
-- held by `replica_id` until `lease_until`, then free for any replica to take.
CREATE TABLE claims (
    name TEXT PRIMARY KEY,
    replica_id TEXT NOT NULL,
    lease_until TEXT NOT NULL
)
