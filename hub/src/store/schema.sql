-- evsync hub metadata store, SQLite. Applied by store::migrate, version 1.
CREATE TABLE IF NOT EXISTS devices (
    device_id   TEXT PRIMARY KEY,
    public_key  TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'revoked')),
    role        TEXT,
    officer_id  TEXT,
    unit_code   TEXT,
    software    TEXT,
    first_seen  TEXT NOT NULL,
    changed_at  TEXT NOT NULL,
    last_seen   TEXT,
    online      INTEGER NOT NULL DEFAULT 0,
    status      TEXT
);

-- Every verified record, in hub order (hub_seq), with the exact signed bytes.
CREATE TABLE IF NOT EXISTS records (
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
    UNIQUE (device_id, seq)
);

-- Problems the supervision platform must see: gaps, breaks, conflicts.
-- A sequence gap becomes visible only after a grace period (visible_after):
-- records that merely arrive out of order (resends after a reconnect) fill
-- it before then, and the alert is dropped unseen.
CREATE TABLE IF NOT EXISTS alerts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,
    device_id     TEXT,
    seq_from      INTEGER,
    seq_to        INTEGER,
    detail        TEXT NOT NULL,
    raised_at     TEXT NOT NULL,
    visible_after TEXT NOT NULL,
    resolved_at   TEXT
);
CREATE INDEX IF NOT EXISTS alerts_open ON alerts (device_id, kind) WHERE resolved_at IS NULL;

-- Every refused message, with its reason (also counted in /metrics).
CREATE TABLE IF NOT EXISTS rejects (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    topic       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL
);
