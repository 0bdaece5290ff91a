-- Hourly sums (issue 12 item 4, issue 15), version 20. Valid on SQLite and PostgreSQL alike.
--
-- rollup_hours: per account scope, node (`*` for the fleet), hour and point, the sums of the
-- minute rows of that hour (packets, bytes, protocol estimates; no heavy-hitter lists), so
-- that a series whose step is a whole number of hours (a day's chart: 3-hour steps) reads 24
-- rows per node and day instead of 1,440 minutes. Kept by whatever inserts minute rows, in
-- the same transaction (`db::rollups::insert`: the downsampling job; late seconds make a
-- second minute row of their minute, added here too), and deleted once every minute of the
-- hour has expired. `scope` is '' for whole-node rows (account_id NULL in the minutes), else
-- the account id. `t` is the unix second the hour starts at.
CREATE TABLE rollup_hours (
    scope TEXT NOT NULL,
    node TEXT NOT NULL,
    t BIGINT NOT NULL,
    point TEXT NOT NULL,
    minutes BIGINT NOT NULL,
    packets BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    tcp BIGINT NOT NULL,
    udp BIGINT NOT NULL,
    icmp BIGINT NOT NULL,
    other BIGINT NOT NULL,
    PRIMARY KEY (scope, node, t, point)
);

-- The minutes stored when this version is applied.
INSERT INTO rollup_hours (scope, node, t, point, minutes, packets, bytes, tcp, udp, icmp, other)
SELECT COALESCE(account_id, ''), node, t - t % 3600, point, COUNT(*),
    CAST(SUM(packets) AS BIGINT), CAST(SUM(bytes) AS BIGINT), CAST(SUM(tcp) AS BIGINT),
    CAST(SUM(udp) AS BIGINT), CAST(SUM(icmp) AS BIGINT), CAST(SUM(other) AS BIGINT)
FROM rollup_minutes
GROUP BY COALESCE(account_id, ''), node, t - t % 3600, point;
