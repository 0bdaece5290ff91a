-- Fresh minutes (issue 15), version 18. Valid on SQLite and PostgreSQL alike.
--
-- rollup_fresh: per account scope, minute, node and point, the sums of the seconds of that
-- minute not yet downsampled (rollup_seconds rows with rolled = 0), so that a series with a
-- step of whole minutes reads one row per node and minute for the last minutes instead of
-- every second (1,000 nodes: a few thousand rows instead of 200,000-300,000 fat ones).
-- Kept by the rollup writer (added in the transaction that inserts the seconds) and by the
-- downsampling job (subtracted in the transaction that marks them taken, the row deleted
-- when no second is left): always the sum of its seconds with rolled = 0.
-- `scope` is '' for whole-node rows (account_id NULL in the seconds), else the account id:
-- a key column, and NULL is never equal to itself in a unique key on either database.
-- `t` is the unix second the minute starts at. No heavy-hitter lists: those are still read
-- from the seconds.
CREATE TABLE rollup_fresh (
    scope TEXT NOT NULL,
    t BIGINT NOT NULL,
    node TEXT NOT NULL,
    point TEXT NOT NULL,
    seconds BIGINT NOT NULL,
    packets BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    tcp BIGINT NOT NULL,
    udp BIGINT NOT NULL,
    icmp BIGINT NOT NULL,
    other BIGINT NOT NULL,
    PRIMARY KEY (scope, t, node, point)
);

-- The seconds not yet downsampled when this version is applied.
INSERT INTO rollup_fresh (scope, t, node, point, seconds, packets, bytes, tcp, udp, icmp, other)
SELECT COALESCE(account_id, ''), t - t % 60, node, point, COUNT(*), CAST(SUM(packets) AS BIGINT),
    CAST(SUM(bytes) AS BIGINT), CAST(SUM(tcp) AS BIGINT), CAST(SUM(udp) AS BIGINT),
    CAST(SUM(icmp) AS BIGINT), CAST(SUM(other) AS BIGINT)
FROM rollup_seconds WHERE rolled = 0
GROUP BY COALESCE(account_id, ''), t - t % 60, node, point
