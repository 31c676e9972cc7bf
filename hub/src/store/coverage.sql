-- evsync hub store, version 5: what sensing coverage is computed from
-- (issue 6). Applied by store::migrate in one transaction; rows for records
-- already held are filled in by store::coverage::backfill right after.

-- Each recording as a span of real time: the MP4's start and duration by the
-- recorder's clock (device_*), and moved by the measured clock offset.
-- Re-copies of a recording another dock already delivered are left out.
CREATE TABLE IF NOT EXISTS recordings (
    record_id        TEXT PRIMARY KEY,
    device_id        TEXT NOT NULL,
    officer_id       TEXT,
    unit_code        TEXT,
    start_ms         INTEGER NOT NULL,
    end_ms           INTEGER NOT NULL,
    device_start_ms  INTEGER NOT NULL,
    device_end_ms    INTEGER NOT NULL,
    clock_offset_ms  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS recordings_by_officer ON recordings (officer_id, start_ms);
CREATE INDEX IF NOT EXISTS recordings_by_device ON recordings (device_id, start_ms);

-- Enforcement actions from their action_started / action_ended events (key:
-- "<device>/<action_id>"), with each one's verdict cached: covered
-- milliseconds, covered or not, and why not (docs/coverage.md).
CREATE TABLE IF NOT EXISTS actions (
    action_key   TEXT PRIMARY KEY,
    action_id    TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    unit_code    TEXT,
    domain       TEXT,
    case_number  TEXT,
    start_ms     INTEGER,
    end_ms       INTEGER,
    span_ms      INTEGER,
    covered_ms   INTEGER,
    covered      INTEGER,
    cause        TEXT,
    judged_at    TEXT
);
CREATE INDEX IF NOT EXISTS actions_by_start ON actions (start_ms);
CREATE TABLE IF NOT EXISTS action_officers (
    officer_id  TEXT NOT NULL,
    action_key  TEXT NOT NULL,
    PRIMARY KEY (officer_id, action_key)
) WITHOUT ROWID;
