-- Grants (issue 14), version 16. Valid on SQLite and PostgreSQL alike.
--
-- A trigger's `captures_per_hour` is half nodes' local shares (each node spends its own
-- without asking, also while the server is away) and half a pool the server grants from, one
-- capture at a time, to a node that asks beyond its share (hub/firings.rs, under the
-- trigger's row lock, so one decision holds across replicas). Each row is one granted
-- capture: the capture id the agent will start, the node, and the server's clock (unix
-- seconds) when it was granted. The pool counts the rows of the last hour; rows are deleted
-- two hours after they were granted.
CREATE TABLE trigger_grants (
    trigger_id TEXT NOT NULL,
    capture_id TEXT NOT NULL,
    node TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (trigger_id, capture_id)
);
CREATE INDEX trigger_grants_by_time ON trigger_grants (trigger_id, at);
