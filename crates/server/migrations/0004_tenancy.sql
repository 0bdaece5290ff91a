-- Tenancy, version 4: which traffic and which nodes an account may capture. Valid on SQLite
-- and PostgreSQL alike.
--
-- `unrestricted` (1) lets the account capture anything on every node, as every account could
-- before this version: existing accounts keep it, so an upgrade changes nothing. A restricted
-- account (0) captures only packets whose source or destination is under one of its prefixes
-- (the agents AND it into the kernel rule) and only on nodes of its node set; without prefixes
-- it may not capture at all. The rules live in crates/server/src/tenancy.rs.

ALTER TABLE accounts ADD COLUMN unrestricted BIGINT NOT NULL DEFAULT 1;

-- An account's prefixes, normalised by edgecap_filter::Boundary (`198.18.1.0/24`,
-- `2001:db8:a::/64`).
CREATE TABLE account_prefixes (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    prefix TEXT NOT NULL,
    PRIMARY KEY (account_id, prefix)
);

-- An account's node set: node names or `key=value` label selectors, ORed. None: every node.
CREATE TABLE account_nodes (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    selector TEXT NOT NULL,
    PRIMARY KEY (account_id, selector)
)
