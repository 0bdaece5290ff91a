-- Look-back (`type: simple`) requests per minute, version 10 (Cloudflare: one per minute per
-- account). Valid on SQLite and PostgreSQL alike.
--
-- `account_quotas.simple_per_minute` overrides the default (edgecap_server::quota::Quotas);
-- NULL keeps it. `simple_requests` holds one row per simple request the account was granted
-- in the last minute (`at`: fixed-width RFC 3339 UTC, so text order is time order); the
-- check-and-insert is one transaction serialised per account (quota::admit_simple), and rows
-- older than the minute are deleted by the next request of the account.
ALTER TABLE account_quotas ADD COLUMN simple_per_minute BIGINT;
CREATE TABLE simple_requests (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    at TEXT NOT NULL
);
CREATE INDEX simple_requests_by_account ON simple_requests (account_id, at)
