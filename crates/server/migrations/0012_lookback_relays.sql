-- Look-back queries between replicas (PostgreSQL; SQLite, one process, leaves it empty),
-- version 12. A replica asked a look-back question (a simple capture, a size estimate) for
-- nodes whose sessions another replica holds writes one row per such replica: `request` is
-- the query and the node names (JSON, no packet data); it wakes `target` (NOTIFY "query
-- <id>"), which asks its nodes and writes `answer` (JSON of the replies; sealed with the
-- secrets key, context `lookback:<id>`, when it holds samples: `sealed` = 1) and wakes
-- `asker` ("answered <id>"). The asker reads and deletes the row at once; rows left by a
-- replica that died are deleted once `expires` (RFC 3339) is past by the sweep.
CREATE TABLE lookback_relays (
    id TEXT PRIMARY KEY,
    asker TEXT NOT NULL,
    target TEXT NOT NULL,
    request TEXT NOT NULL,
    answer TEXT,
    sealed BIGINT NOT NULL DEFAULT 0,
    expires TEXT NOT NULL
);
CREATE INDEX lookback_relays_by_expiry ON lookback_relays (expires)
