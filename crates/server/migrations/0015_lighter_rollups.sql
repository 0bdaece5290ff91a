-- Lighter traffic rollups (issue 12), version 15. Valid on SQLite and PostgreSQL alike.
--
-- No column changes: from this version a second keeps its heavy-hitter lists only until the
-- downsampling job takes it into its minute (the minute keeps them, merged); the job then
-- rewrites the second without them (empty text: a dropped list). Lists are written as
-- compact text ('~' and base64, crate::rollups::hitters::encode) instead of JSON. Rows
-- written before keep their JSON lists, which are still read, until their retention ends:
-- no row is rewritten here (on a large database that would hold the upgrade for long).
--
-- The time indexes carried packets and bytes, which no query reads from an index alone (the
-- series also sum the protocol columns): without them every row is some 20 bytes lighter.
-- Rebuilding them is the only work this migration does.
DROP INDEX rollup_seconds_time;
CREATE INDEX rollup_seconds_time ON rollup_seconds (account_id, t, node, point);

DROP INDEX rollup_minutes_time;
CREATE INDEX rollup_minutes_time ON rollup_minutes (account_id, node, t, point);
