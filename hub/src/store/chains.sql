-- evsync hub store, version 3: a chain's source is the pair (device_id,
-- agent_id), and a recorder's file indexes are tracked across docks.
-- Applied by store::migrate in one transaction.
--
-- Why: a pooled recorder docked at dock A and later at dock B gets one chain
-- per dock (each dock numbers and chains what it signs). Keyed by device_id
-- alone, dock B's seq 1 collided with dock A's. For a field device both ids
-- are the same, so its chain is unchanged.

-- Records: UNIQUE (device_id, seq) becomes UNIQUE (device_id, agent_id, seq).
-- SQLite cannot drop a table constraint, so the table is rebuilt with every
-- row and its hub_seq (the feed cursor) unchanged. Every pair of rows that
-- was unique before is still unique.
CREATE TABLE records_v3 (
    hub_seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    device_id   TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    agent_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    body        BLOB NOT NULL,
    signature   BLOB NOT NULL,
    signer_key  TEXT NOT NULL,
    received_at TEXT NOT NULL,
    UNIQUE (device_id, agent_id, seq)
);
INSERT INTO records_v3 (hub_seq, id, device_id, seq, agent_id, kind, hash, prev_hash, body, signature, signer_key, received_at)
SELECT hub_seq, id, device_id, seq, agent_id, kind, hash, prev_hash, body, signature, signer_key, received_at
FROM records ORDER BY hub_seq;
-- Keep the AUTOINCREMENT high-water mark, so no hub_seq is ever handed out twice.
CREATE TEMP TABLE hub_seq_high (high INTEGER);
INSERT INTO temp.hub_seq_high SELECT seq FROM sqlite_sequence WHERE name = 'records';
DROP TABLE records;
ALTER TABLE records_v3 RENAME TO records;
INSERT INTO temp.hub_seq_high SELECT seq FROM sqlite_sequence WHERE name IN ('records', 'records_v3');
DELETE FROM sqlite_sequence WHERE name IN ('records', 'records_v3');
INSERT INTO sqlite_sequence (name, seq)
SELECT 'records', MAX(high) FROM temp.hub_seq_high HAVING MAX(high) IS NOT NULL;
DROP TABLE temp.hub_seq_high;

-- Alerts name the source's agent (the dock) beside the device, and the file
-- indexes concerned for recorder alerts.
ALTER TABLE alerts ADD COLUMN agent_id TEXT;
ALTER TABLE alerts ADD COLUMN file_from INTEGER;
ALTER TABLE alerts ADD COLUMN file_to INTEGER;
-- Best effort for alerts raised before version 3: the agent of the record the
-- alert points at (unique by (device_id, seq) until now), or the only agent
-- that ever signed for the device; NULL when that cannot be known.
UPDATE alerts SET agent_id = COALESCE(
    (SELECT r.agent_id FROM records r WHERE r.device_id = alerts.device_id AND r.seq = alerts.seq_to
        AND alerts.kind IN ('chain_break', 'recorder_files_missing', 'clock_drift')),
    (SELECT MIN(r.agent_id) FROM records r WHERE r.device_id = alerts.device_id
        HAVING COUNT(DISTINCT r.agent_id) = 1))
WHERE device_id IS NOT NULL;
UPDATE alerts SET
    file_from = (SELECT json_extract(CAST(r.body AS TEXT), '$.event.from_index') FROM records r
                 WHERE r.device_id = alerts.device_id AND r.agent_id = alerts.agent_id AND r.seq = alerts.seq_from),
    file_to   = (SELECT json_extract(CAST(r.body AS TEXT), '$.event.to_index') FROM records r
                 WHERE r.device_id = alerts.device_id AND r.agent_id = alerts.agent_id AND r.seq = alerts.seq_from)
WHERE kind = 'recorder_files_missing';

-- Media: the recorder's file index, and for a recording a second dock copied
-- again (same recorder, file index and SHA-256), the record that first
-- delivered it. Both records stay (each is a distinct signed record); the
-- bytes are stored once (blobs are content-addressed).
ALTER TABLE media ADD COLUMN file_index INTEGER;
ALTER TABLE media ADD COLUMN recopy_of TEXT;
UPDATE media SET file_index = (
    SELECT json_extract(CAST(r.body AS TEXT), '$.media.file_index') FROM records r WHERE r.id = media.record_id);
CREATE INDEX IF NOT EXISTS media_by_file_index ON media (device_id, file_index) WHERE file_index IS NOT NULL;
UPDATE media SET recopy_of = (
    SELECT m2.record_id FROM media m2 JOIN records r2 ON r2.id = m2.record_id
    WHERE m2.device_id = media.device_id AND m2.file_index = media.file_index AND m2.sha256 = media.sha256
      AND r2.hub_seq < (SELECT r.hub_seq FROM records r WHERE r.id = media.record_id)
    ORDER BY r2.hub_seq LIMIT 1)
WHERE file_index IS NOT NULL;

-- File index ranges a dock reported gone from a recorder (`files_missing`
-- events): the hub raises no gap alert of its own for them.
CREATE TABLE IF NOT EXISTS files_reported_missing (
    record_id   TEXT PRIMARY KEY,
    device_id   TEXT NOT NULL,
    agent_id    TEXT NOT NULL,
    from_index  INTEGER NOT NULL,
    to_index    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS files_reported_missing_by_device ON files_reported_missing (device_id);
INSERT OR IGNORE INTO files_reported_missing (record_id, device_id, agent_id, from_index, to_index)
SELECT id, device_id, agent_id,
       json_extract(CAST(body AS TEXT), '$.event.from_index'),
       json_extract(CAST(body AS TEXT), '$.event.to_index')
FROM records
WHERE kind = 'event' AND json_extract(CAST(body AS TEXT), '$.event.type') = 'files_missing';
