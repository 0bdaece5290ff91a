-- The bytes pool (issue 14), version 19. Valid on SQLite and PostgreSQL alike.
--
-- Half of a trigger's `bytes_per_day` is split among the nodes in its scope like the local
-- half of `captures_per_hour`, with the same split epochs (migration 0017): `bytes` holds an
-- epoch's split of the local bytes as JSON {"node": bytes, ...} (positive shares only), and
-- `bytes_settled` when it settled for bytes: a DAY after every node with a bytes share in
-- it, an unsettled one or the last one settled for bytes heard it (hub/splits.rs). Epochs
-- recorded before this version have no `bytes` (NULL: nobody's bytes share counts there,
-- so every node's is 0 until the next epoch settles for bytes; the pool serves them).
ALTER TABLE trigger_epochs ADD COLUMN bytes TEXT;
ALTER TABLE trigger_epochs ADD COLUMN bytes_settled BIGINT;
-- The other half is a pool the server grants from under the trigger's row lock
-- (hub/firings.rs): each row is one grant of `bytes` to the capture `capture_id` of `node`
-- at `at` (server clock, unix seconds). The pool counts the rows of the last day, whatever
-- the capture wrote; rows are deleted two days after they were granted.
CREATE TABLE trigger_byte_grants (
    trigger_id TEXT NOT NULL,
    capture_id TEXT NOT NULL,
    node TEXT NOT NULL,
    at BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    PRIMARY KEY (trigger_id, capture_id)
);
CREATE INDEX trigger_byte_grants_by_time ON trigger_byte_grants (trigger_id, at);
