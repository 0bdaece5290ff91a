-- Node identities, enrolment tokens and scoped API tokens, version 3. Valid on SQLite and
-- PostgreSQL alike.
--
-- API tokens carry scopes (a comma-separated list: read, write, tokens, nodes) and may expire;
-- tokens made before this version keep what they could do (read, write, tokens). Agent tokens
-- are enrolment tokens: they may expire and may be limited to `max_uses` enrolments (`uses`
-- counts them). `expires` is RFC 3339 UTC like every stamp here, so text order is time order.

ALTER TABLE tokens ADD COLUMN scopes TEXT;
ALTER TABLE tokens ADD COLUMN expires TEXT;
ALTER TABLE tokens ADD COLUMN max_uses BIGINT;
ALTER TABLE tokens ADD COLUMN uses BIGINT NOT NULL DEFAULT 0;
UPDATE tokens SET scopes = 'read,write,tokens' WHERE kind = 'api';

-- A node's name is bound to the credential the node made itself at its first connect; only
-- the SHA-256 of that credential is kept. `enrolled_with` is the id of the enrolment token
-- used (kept for the record; the token may be gone). A revoked node keeps its row, so its
-- name stays taken, until an operator forgets it.
CREATE TABLE node_identities (
    name TEXT PRIMARY KEY,
    credential_hash TEXT NOT NULL UNIQUE,
    enrolled TEXT NOT NULL,
    enrolled_with TEXT,
    revoked TEXT
)
