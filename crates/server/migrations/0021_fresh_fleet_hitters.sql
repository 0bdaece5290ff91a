-- Fresh fleet heavy hitters (issue 12 item 4, issue 15), version 21. Valid on SQLite and
-- PostgreSQL alike.
--
-- rollup_fresh_top: for the seconds not yet downsampled, per rollup-writer batch, account
-- scope, second and point, the batch's seconds of every node merged: their totals and their
-- three heavy-hitter lists (merged keeping their error bounds, as the fleet's minute rows
-- are). A fleet-wide `/traffic/top` over a range reaching the present reads these (a few
-- rows a second) instead of every node's seconds with their lists (1,000 a second for
-- 1,000 nodes). Written by the rollup writer in the transaction that stores the seconds;
-- deleted by the downsampling job in the transaction that takes their minute (the fleet's
-- minute row then holds them). `scope` is '' for whole-node rows, else the account id.
-- Seconds stored before this version have no rows here: until the job takes them (a
-- minute or two after the upgrade) a fleet-wide query leaves them out.
CREATE TABLE rollup_fresh_top (
    scope TEXT NOT NULL,
    t BIGINT NOT NULL,
    point TEXT NOT NULL,
    packets BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    one_in BIGINT NOT NULL,
    top_dst TEXT NOT NULL,
    top_src TEXT NOT NULL,
    top_dport TEXT NOT NULL
);

CREATE INDEX rollup_fresh_top_time ON rollup_fresh_top (scope, t, point);
