-- evsync hub store, version 6: the rest of what sensing coverage is computed
-- from (issue 6): duty shifts and their hours, recordings devices said they
-- made, imported actions, days each device was heard from, geotagged
-- places, the policy verdicts were judged under, and alerts about officers
-- and actions. Applied by store::migrate in one transaction; rows for
-- records already held are filled in by store::coverage::backfill.

-- The thresholds the cached verdicts were judged with (one row). A hub
-- started with other thresholds judges everything again.
CREATE TABLE IF NOT EXISTS coverage_policy (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    share_permille    INTEGER NOT NULL,
    drift_ms          INTEGER NOT NULL,
    timeliness_hours  INTEGER NOT NULL
);
INSERT OR IGNORE INTO coverage_policy VALUES (1, 900, 60000, 24);

-- Recordings: their domain, when their bytes arrived, the end of the duty
-- they were made in (their upload deadline counts from it), and whether a
-- late upload was alerted.
ALTER TABLE recordings ADD COLUMN domain TEXT;
ALTER TABLE recordings ADD COLUMN arrived_ms INTEGER;
ALTER TABLE recordings ADD COLUMN duty_end_ms INTEGER;
ALTER TABLE recordings ADD COLUMN late_alerted INTEGER NOT NULL DEFAULT 0;
-- The figures read these indexes alone (every column they count is in them).
CREATE INDEX IF NOT EXISTS recordings_by_end
    ON recordings (end_ms, unit_code, domain, officer_id, arrived_ms, duty_end_ms);
CREATE INDEX IF NOT EXISTS recordings_awaited ON recordings (end_ms) WHERE arrived_ms IS NULL AND late_alerted = 0;

-- An action's officers (the primary key leads with the officer).
CREATE INDEX IF NOT EXISTS action_officers_by_action ON action_officers (action_key, officer_id);

-- Who had which devices, by officer; recordings by the recorder's own
-- clock (the clock_problem cause looks there).
CREATE INDEX IF NOT EXISTS assignments_by_officer ON assignments (officer_id, from_at);
CREATE INDEX IF NOT EXISTS recordings_by_officer_raw ON recordings (officer_id, device_start_ms);

-- Actions: who made them (an event, or an import), where, and whether an
-- alert said they were not covered.
ALTER TABLE actions ADD COLUMN source TEXT NOT NULL DEFAULT 'event';
ALTER TABLE actions ADD COLUMN place TEXT;
ALTER TABLE actions ADD COLUMN cell TEXT;
ALTER TABLE actions ADD COLUMN alerted INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS actions_to_alert ON actions (end_ms) WHERE covered = 0 AND alerted = 0;
DROP INDEX IF EXISTS actions_by_start;
CREATE INDEX IF NOT EXISTS actions_by_start
    ON actions (start_ms, unit_code, domain, covered, cause, span_ms);

-- Duty shifts, from duty_started / duty_ended events (key
-- "<device>/<officer>/<start ms>") or a roster import ("import/<officer>/<start ms>").
-- `heard_ms`: when a recorder of the officer was first heard from in it.
CREATE TABLE IF NOT EXISTS duties (
    duty_key     TEXT PRIMARY KEY,
    officer_id   TEXT NOT NULL,
    unit_code    TEXT,
    domain       TEXT,
    device_id    TEXT,
    start_ms     INTEGER,
    end_ms       INTEGER,
    source       TEXT NOT NULL,
    heard_ms     INTEGER,
    alerted      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS duties_by_officer ON duties (officer_id, start_ms);
CREATE INDEX IF NOT EXISTS duties_by_start
    ON duties (start_ms, unit_code, domain, officer_id, heard_ms);
CREATE INDEX IF NOT EXISTS duties_unheard ON duties (start_ms) WHERE heard_ms IS NULL AND alerted = 0;

-- Each clock hour of a finished duty (the first and last partial), with the
-- milliseconds of it its officer's arrived recordings cover, and the cause
-- when they cover none of it.
CREATE TABLE IF NOT EXISTS duty_hours (
    duty_key     TEXT NOT NULL,
    start_ms     INTEGER NOT NULL,
    end_ms       INTEGER NOT NULL,
    officer_id   TEXT NOT NULL,
    unit_code    TEXT,
    domain       TEXT,
    recorded_ms  INTEGER NOT NULL,
    cause        TEXT,
    PRIMARY KEY (duty_key, start_ms)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS duty_hours_by_start
    ON duty_hours (start_ms, unit_code, domain, officer_id, cause, recorded_ms, end_ms);
CREATE INDEX IF NOT EXISTS duty_hours_by_officer ON duty_hours (officer_id, start_ms);

-- Recordings devices said they made (recording_started / recording_stopped
-- events), whether or not their media arrived.
CREATE TABLE IF NOT EXISTS recording_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id    TEXT NOT NULL,
    officer_id   TEXT,
    start_ms     INTEGER NOT NULL,
    end_ms       INTEGER
);
CREATE INDEX IF NOT EXISTS recording_events_by_device ON recording_events (device_id, start_ms);
CREATE INDEX IF NOT EXISTS recording_events_by_officer ON recording_events (officer_id, start_ms);

-- The days (China Standard Time) each device was heard from: a record it
-- made or a status it sent.
CREATE TABLE IF NOT EXISTS device_days (
    day        TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    PRIMARY KEY (day, device_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS device_days_by_device ON device_days (device_id, day);

-- Geotagged places: where an action started, where a recording was made
-- (geohash of 6 characters, about 1.2 km × 0.6 km).
CREATE TABLE IF NOT EXISTS geo_points (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms       INTEGER NOT NULL,
    cell        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('action', 'recording')),
    officer_id  TEXT,
    unit_code   TEXT,
    domain      TEXT
);
CREATE INDEX IF NOT EXISTS geo_points_by_time
    ON geo_points (at_ms, unit_code, domain, officer_id, kind, cell);

-- Alerts about an officer or an action, not a chain.
ALTER TABLE alerts ADD COLUMN officer_id TEXT;
ALTER TABLE alerts ADD COLUMN subject TEXT;
CREATE INDEX IF NOT EXISTS alerts_by_subject ON alerts (subject) WHERE subject IS NOT NULL;

-- Records by officer and time (when an officer was heard from in a duty),
-- and by time with the group columns (integrity figures read the index alone).
CREATE INDEX IF NOT EXISTS records_by_officer_time ON records (officer_id, occurred_at);
DROP INDEX IF EXISTS records_by_time;
CREATE INDEX IF NOT EXISTS records_by_time ON records (occurred_at, unit_code, domain, officer_id);
