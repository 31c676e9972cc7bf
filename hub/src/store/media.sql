-- evsync hub store, version 2: the media data plane. Applied by store::migrate.

-- What the hub expects and holds for each media record. A row is created in
-- the transaction that stores the record; its state moves from awaiting to
-- stored once the uploaded bytes verify against sha256, or to failed after
-- repeated mismatches (with an alert).
CREATE TABLE IF NOT EXISTS media (
    record_id   TEXT PRIMARY KEY,
    agent_id    TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    mime        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('awaiting', 'stored', 'failed')),
    mismatches  INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    stored_at   TEXT,
    detail      TEXT
);
CREATE INDEX IF NOT EXISTS media_by_sha ON media (sha256);
CREATE INDEX IF NOT EXISTS media_awaiting ON media (state) WHERE state = 'awaiting';

-- Verified content in <data>/blobs/ab/cd/<sha256>, stored once whatever
-- number of records name it.
CREATE TABLE IF NOT EXISTS blobs (
    sha256     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    stored_at  TEXT NOT NULL
);

-- Media records stored before version 2 await their bytes.
INSERT OR IGNORE INTO media (record_id, agent_id, device_id, sha256, size, mime, state, created_at)
SELECT id, agent_id, device_id,
       json_extract(CAST(body AS TEXT), '$.media.sha256'),
       json_extract(CAST(body AS TEXT), '$.media.size'),
       json_extract(CAST(body AS TEXT), '$.media.mime'),
       'awaiting', received_at
FROM records WHERE kind = 'media';
