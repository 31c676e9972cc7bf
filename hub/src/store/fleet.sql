-- evsync hub store, version 4: the fleet (device kinds, live figures,
-- assignment history), units and officers, API tokens with roles, the
-- hash-chained audit log, and indexed filter columns of the records feed.
-- Applied by store::migrate in one transaction.

-- Devices: docks, field devices (both agents, with a key) and recorders
-- (seen through docks or registered by an operator, no key of their own:
-- the dock that ingests their files signs for them). SQLite cannot relax
-- NOT NULL on public_key, so the table is rebuilt with every row.
CREATE TABLE devices_v4 (
    device_id           TEXT PRIMARY KEY,
    kind                TEXT NOT NULL CHECK (kind IN ('field', 'dock', 'recorder')),
    public_key          TEXT,
    state               TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'revoked')),
    role                TEXT,
    officer_id          TEXT,
    unit_code           TEXT,
    domain              TEXT,
    software            TEXT,
    firmware            TEXT,
    config_version      TEXT,
    first_seen          TEXT NOT NULL,
    changed_at          TEXT NOT NULL,
    last_seen           TEXT,
    online              INTEGER NOT NULL DEFAULT 0,
    status              TEXT,
    battery_pct         INTEGER,
    storage_free_bytes  INTEGER,
    storage_total_bytes INTEGER,
    clock_offset_ms     INTEGER,
    backlog_records     INTEGER,
    backlog_bytes       INTEGER,
    docked_in           TEXT
);
INSERT INTO devices_v4 (device_id, kind, public_key, state, role, officer_id, unit_code, software,
                        first_seen, changed_at, last_seen, online, status, backlog_records, backlog_bytes)
SELECT device_id, CASE role WHEN 'dock' THEN 'dock' ELSE 'field' END, public_key, state, role,
       officer_id, unit_code, software, first_seen, changed_at, last_seen, online, status,
       json_extract(status, '$.backlog_records'), json_extract(status, '$.backlog_bytes')
FROM devices;
DROP TABLE devices;
ALTER TABLE devices_v4 RENAME TO devices;
-- Recorders the hub has records of (through a dock) but no row for.
INSERT OR IGNORE INTO devices (device_id, kind, state, first_seen, changed_at, last_seen)
SELECT device_id, 'recorder', 'pending', MIN(received_at), MIN(received_at), MAX(received_at)
FROM records WHERE device_id <> agent_id GROUP BY device_id;

-- Enforcement units (执法主体) and officers (执法人员), imported from CSV or
-- set one by one by operators.
CREATE TABLE IF NOT EXISTS units (
    unit_code     TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    district_code TEXT,
    domain        TEXT,
    parent_code   TEXT,
    updated_at    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS officers (
    officer_id    TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    unit_code     TEXT,
    domain        TEXT,
    active        INTEGER NOT NULL DEFAULT 1,
    updated_at    TEXT NOT NULL
);

-- Who had a device, when: one row per assignment; `to_at` NULL while it
-- lasts. Written by operators and by what devices report (a check-out at a
-- dock, a field device announcing another officer). Never updated but to
-- close it.
CREATE TABLE IF NOT EXISTS assignments (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id   TEXT NOT NULL,
    officer_id  TEXT,
    unit_code   TEXT,
    domain      TEXT,
    from_at     TEXT NOT NULL,
    to_at       TEXT,
    source      TEXT NOT NULL,
    by_whom     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS assignments_by_device ON assignments (device_id, from_at);
INSERT INTO assignments (device_id, officer_id, unit_code, from_at, source, by_whom)
SELECT device_id, officer_id, unit_code, first_seen, 'announce', device_id
FROM devices WHERE officer_id IS NOT NULL OR unit_code IS NOT NULL;

-- API tokens: only the SHA-256 of a token is kept.
CREATE TABLE IF NOT EXISTS api_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'platform', 'auditor')),
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    revoked_at  TEXT
);

-- The audit log: every read of evidence and every operator action, one
-- row each, append-only. Each row's hash covers its content and the
-- previous row's hash; the hub signs each hash, so a changed, removed or
-- inserted row shows when the chain is checked (store::audit).
CREATE TABLE IF NOT EXISTS audit (
    seq         INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    remote      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    first_hub_seq INTEGER,
    last_hub_seq  INTEGER,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    signature   TEXT NOT NULL,
    reads       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_by_target ON audit (target);
-- Which records each read of the feed (or event stream) returned, by hub
-- position: the index behind a record's custody trail. The chained entry
-- itself keeps the range read and the filter (detail).
CREATE TABLE IF NOT EXISTS audit_reads (
    hub_seq     INTEGER NOT NULL,
    audit_seq   INTEGER NOT NULL,
    PRIMARY KEY (hub_seq, audit_seq)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS audit_reads_no_update BEFORE UPDATE ON audit_reads
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_reads_no_delete BEFORE DELETE ON audit_reads
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- Filter columns of the records feed, filled at insert (and here for the
-- records already held): when it happened by the agent's clock (device time
-- corrected by the measured offset), officer, unit, domain, case number.
ALTER TABLE records ADD COLUMN occurred_at TEXT;
ALTER TABLE records ADD COLUMN officer_id TEXT;
ALTER TABLE records ADD COLUMN unit_code TEXT;
ALTER TABLE records ADD COLUMN domain TEXT;
ALTER TABLE records ADD COLUMN case_number TEXT;
UPDATE records SET
    occurred_at = strftime('%Y-%m-%dT%H:%M:%fZ',
        julianday(json_extract(CAST(body AS TEXT), '$.device_time'))
        - json_extract(CAST(body AS TEXT), '$.clock_offset_ms') / 86400000.0),
    officer_id = json_extract(CAST(body AS TEXT), '$.officer_id'),
    unit_code = json_extract(CAST(body AS TEXT), '$.unit_code'),
    domain = json_extract(CAST(body AS TEXT), '$.event.domain'),
    case_number = json_extract(CAST(body AS TEXT), '$.event.case_number');
CREATE INDEX IF NOT EXISTS records_by_device ON records (device_id, hub_seq);
CREATE INDEX IF NOT EXISTS records_by_agent ON records (agent_id, hub_seq);
CREATE INDEX IF NOT EXISTS records_by_officer ON records (officer_id, hub_seq);
CREATE INDEX IF NOT EXISTS records_by_unit ON records (unit_code, hub_seq);
CREATE INDEX IF NOT EXISTS records_by_domain ON records (domain, hub_seq);
CREATE INDEX IF NOT EXISTS records_by_case ON records (case_number, hub_seq) WHERE case_number IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_by_time ON records (occurred_at);
