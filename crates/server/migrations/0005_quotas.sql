-- Quotas, version 5. Valid on SQLite and PostgreSQL alike.
--
-- `account_quotas` holds an account's overrides of the server's default quotas
-- (edgecap_server::quota::Quotas); a NULL column keeps the default.
-- `captures.rules` is what the capture holds on each of its nodes while it runs (compiled
-- conjunctions times the hooks of its points); `captures.quota_bytes` is what it reserved of
-- the account's bytes per day (its byte_limit, or the account's maximum without one).
-- Captures made before this version count 0 of both.

CREATE TABLE account_quotas (
    account_id TEXT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    running BIGINT,
    per_hour BIGINT,
    rules_per_node BIGINT,
    bytes_per_day BIGINT
);
ALTER TABLE captures ADD COLUMN rules BIGINT NOT NULL DEFAULT 0;
ALTER TABLE captures ADD COLUMN quota_bytes BIGINT NOT NULL DEFAULT 0
