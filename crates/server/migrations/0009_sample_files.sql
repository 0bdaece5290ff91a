-- The files of look-back (`type: simple`) captures: header-only samples (at most 160 bytes
-- per packet), sealed with the server's secrets key (context `samples:<capture id>`), one in
-- each format; deleted once `expires` (RFC 3339) has passed.
CREATE TABLE sample_files (
    capture_id TEXT PRIMARY KEY REFERENCES captures (id) ON DELETE CASCADE,
    pcapng TEXT NOT NULL,
    pcap TEXT NOT NULL,
    expires TEXT NOT NULL
);
CREATE INDEX sample_files_by_expiry ON sample_files (expires);
