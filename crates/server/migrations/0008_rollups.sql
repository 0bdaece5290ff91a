-- Traffic rollups (issue 12), version 8. Valid on SQLite and PostgreSQL alike.
--
-- rollup_seconds: one row per node, point, account scope and second, as agents send them
-- (AgentMsg::Rollups). rollup_minutes: the same per minute, made by the downsampling job from
-- the seconds (sums; heavy hitters merged with space-saving semantics). `account_id` NULL is
-- the whole node (what the observer measures today); an account's own rollups (its prefixes'
-- traffic, from the agent) carry its id. `t` is the unix second of the row's start.
-- Heavy hitters are JSON: {"floor":F,"keys":[[key,count,error],...]} where F bounds the weight
-- of any key not listed. `lengths` is the JSON array of the 8 length buckets.
-- Minute rows with node '*' are the fleet's (every node's minute of a point added together,
-- made by the same job), so a query over all nodes reads one row per minute and point.
-- `rolled` (seconds only) is 0 until the downsampling job took the row into a minute; then the
-- id of that job's batch (so concurrent replicas never take a row twice).

CREATE TABLE rollup_seconds (
    node TEXT NOT NULL,
    point TEXT NOT NULL,
    account_id TEXT,
    t BIGINT NOT NULL,
    packets BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    exact BIGINT NOT NULL,
    samples BIGINT NOT NULL,
    one_in BIGINT NOT NULL,
    ipv4 BIGINT NOT NULL,
    ipv6 BIGINT NOT NULL,
    tcp BIGINT NOT NULL,
    udp BIGINT NOT NULL,
    icmp BIGINT NOT NULL,
    other BIGINT NOT NULL,
    syn BIGINT NOT NULL,
    rst BIGINT NOT NULL,
    lengths TEXT NOT NULL,
    top_dst TEXT NOT NULL,
    top_src TEXT NOT NULL,
    top_dport TEXT NOT NULL,
    rolled BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX rollup_seconds_time ON rollup_seconds (account_id, t, node, point, packets, bytes);

CREATE INDEX rollup_seconds_rolled ON rollup_seconds (rolled, t);

CREATE TABLE rollup_minutes (
    node TEXT NOT NULL,
    point TEXT NOT NULL,
    account_id TEXT,
    t BIGINT NOT NULL,
    seconds BIGINT NOT NULL,
    packets BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    exact BIGINT NOT NULL,
    samples BIGINT NOT NULL,
    one_in BIGINT NOT NULL,
    ipv4 BIGINT NOT NULL,
    ipv6 BIGINT NOT NULL,
    tcp BIGINT NOT NULL,
    udp BIGINT NOT NULL,
    icmp BIGINT NOT NULL,
    other BIGINT NOT NULL,
    syn BIGINT NOT NULL,
    rst BIGINT NOT NULL,
    lengths TEXT NOT NULL,
    top_dst TEXT NOT NULL,
    top_src TEXT NOT NULL,
    top_dport TEXT NOT NULL
);

CREATE INDEX rollup_minutes_time ON rollup_minutes (account_id, node, t, point, packets, bytes)
