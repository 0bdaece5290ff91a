-- Bucket destinations, version 2. Credentials given through the API are stored only sealed
-- (edgecap_store::SecretsKey: XChaCha20-Poly1305 with the row's id as associated data); the
-- key is a file outside the database. `merged_file` is the merged timeline's key once the
-- server has written it (merge: true).

ALTER TABLE ownerships ADD COLUMN credentials TEXT;
ALTER TABLE captures ADD COLUMN credentials TEXT;
ALTER TABLE captures ADD COLUMN merged_file TEXT
