-- The health a connected node's agent last reported in its heartbeats (JSON
-- `{ready, problems}`); NULL while the node is away or its agent does not report one.
ALTER TABLE nodes ADD COLUMN health TEXT;
