-- Dashboard sessions, version 13. Valid on SQLite and PostgreSQL alike.
--
-- A browser logs in with an API token; the server answers a random session id in an
-- HttpOnly, SameSite=Strict cookie and keeps only its SHA-256 here, bound to the token's row.
-- The session acts with that token's account and scopes, so revoking or deleting the token
-- ends its sessions (ON DELETE CASCADE; the lookup joins the token too). Kept in the
-- database, not in process memory, so every replica behind a load balancer knows a session.
-- `expires` is RFC 3339 UTC (text order is time order): at most the dashboard's session
-- lifetime and never after the token's own expiry.
CREATE TABLE dashboard_sessions (
    hash TEXT PRIMARY KEY,
    token_id TEXT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    created TEXT NOT NULL,
    expires TEXT NOT NULL
);
CREATE INDEX dashboard_sessions_expires ON dashboard_sessions (expires);
