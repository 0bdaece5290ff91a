-- Split epochs (issue 14), version 17. Valid on SQLite and PostgreSQL alike.
--
-- Half of a trigger's `captures_per_hour` is split among the nodes in its scope (each spends
-- its share without asking). When that split changes (a node seen for the first time, one
-- relabelled in or out of scope, one forgotten), the hub records an epoch: the new split,
-- `shares` as JSON {"node": captures, ...} (nodes with a positive share only), numbered
-- `seq` per trigger, made at `created` (server clock, unix seconds). A node's effective
-- share is the minimum of its share in the last settled epoch and in every later one; the
-- latest epoch settles (`settled`, unix seconds) one hour after every node with a share in
-- it, an unsettled one or the last settled one has heard its effective share
-- (hub/splits.rs). Epochs before the last settled one are deleted.
CREATE TABLE trigger_epochs (
    trigger_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    created BIGINT NOT NULL,
    shares TEXT NOT NULL,
    settled BIGINT,
    PRIMARY KEY (trigger_id, seq)
);
-- When each node last heard (was sent on a live connection, or confirmed on one) its
-- effective share of a trigger as of epoch `seq`: `at`, unix seconds, server clock. `gone`:
-- the node was forgotten then (`edgecap admin node forget`); it counts as having heard every
-- epoch at that time.
CREATE TABLE trigger_heard (
    trigger_id TEXT NOT NULL,
    node TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    gone BIGINT,
    PRIMARY KEY (trigger_id, node)
);
-- The captures of the nodes' own shares of the last hour, read at every refresh of the
-- trigger lists (an agent that restarted counts them against its share again).
CREATE INDEX event_firings_by_time ON event_firings (at);
