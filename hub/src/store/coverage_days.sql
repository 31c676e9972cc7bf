-- evsync hub store, version 7: the coverage figures kept summed by day so
-- that a question over months reads one row per officer-day, not every duty
-- hour, recording and record (issue 6, "Scale"); and the indexes spatial
-- coverage looks cells up in. Applied by store::migrate in one transaction;
-- store::coverage_days explains how the sums are kept and read.

-- The additive figures of one China Standard Time day, unit, domain and
-- officer ('' where a row has none): each counted on the day of the time the
-- raw figure is windowed by — a duty's start, a duty hour's start, a
-- recording's end, a record's time.
CREATE TABLE IF NOT EXISTS coverage_days (
    day                          TEXT NOT NULL,
    unit_code                    TEXT NOT NULL,
    domain                       TEXT NOT NULL,
    officer_id                   TEXT NOT NULL,
    -- Personnel: duties started, and of them those a recorder of the officer was heard from in.
    duties                       INTEGER NOT NULL,
    duties_heard                 INTEGER NOT NULL,
    -- Time: duty hours' length, the milliseconds of it recorded, and the
    -- hours without any recording by cause.
    on_duty_ms                   INTEGER NOT NULL,
    recorded_ms                  INTEGER NOT NULL,
    hours_clock_problem          INTEGER NOT NULL,
    hours_no_recorder_assigned   INTEGER NOT NULL,
    hours_media_not_arrived      INTEGER NOT NULL,
    hours_not_linked             INTEGER NOT NULL,
    hours_nothing_recorded       INTEGER NOT NULL,
    -- Timeliness of recordings whose bytes have arrived (the others are
    -- counted from the recordings: whether they are late depends on the time).
    arrived_on_time              INTEGER NOT NULL,
    arrived_late                 INTEGER NOT NULL,
    -- Integrity: records.
    records                      INTEGER NOT NULL,
    PRIMARY KEY (day, unit_code, domain, officer_id)
) WITHOUT ROWID;

-- Days whose sums no longer match the rows they are summed from: every
-- change to those rows names its day here (the triggers below), the
-- figures count these days from the rows themselves, and the coverage
-- sweeper sums them again.
CREATE TABLE IF NOT EXISTS coverage_stale_days (
    day  TEXT PRIMARY KEY
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS duties_stale_ins AFTER INSERT ON duties WHEN NEW.start_ms IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO coverage_stale_days VALUES (date(NEW.start_ms / 1000 + 28800, 'unixepoch'));
END;
CREATE TRIGGER IF NOT EXISTS duties_stale_del AFTER DELETE ON duties WHEN OLD.start_ms IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO coverage_stale_days VALUES (date(OLD.start_ms / 1000 + 28800, 'unixepoch'));
END;
CREATE TRIGGER IF NOT EXISTS duties_stale_upd
    AFTER UPDATE OF start_ms, officer_id, unit_code, domain, heard_ms ON duties
BEGIN
    INSERT OR IGNORE INTO coverage_stale_days
        SELECT date(NEW.start_ms / 1000 + 28800, 'unixepoch') WHERE NEW.start_ms IS NOT NULL
        UNION SELECT date(OLD.start_ms / 1000 + 28800, 'unixepoch') WHERE OLD.start_ms IS NOT NULL;
END;

CREATE TRIGGER IF NOT EXISTS duty_hours_stale_ins AFTER INSERT ON duty_hours
BEGIN
    INSERT OR IGNORE INTO coverage_stale_days VALUES (date(NEW.start_ms / 1000 + 28800, 'unixepoch'));
END;
CREATE TRIGGER IF NOT EXISTS duty_hours_stale_del AFTER DELETE ON duty_hours
BEGIN
    INSERT OR IGNORE INTO coverage_stale_days VALUES (date(OLD.start_ms / 1000 + 28800, 'unixepoch'));
END;
CREATE TRIGGER IF NOT EXISTS duty_hours_stale_upd AFTER UPDATE ON duty_hours
BEGIN
    INSERT OR IGNORE INTO coverage_stale_days
        VALUES (date(NEW.start_ms / 1000 + 28800, 'unixepoch')), (date(OLD.start_ms / 1000 + 28800, 'unixepoch'));
END;

CREATE TRIGGER IF NOT EXISTS recordings_stale_ins AFTER INSERT ON recordings
BEGIN
    INSERT OR IGNORE INTO coverage_stale_days VALUES (date(NEW.end_ms / 1000 + 28800, 'unixepoch'));
END;
CREATE TRIGGER IF NOT EXISTS recordings_stale_del AFTER DELETE ON recordings
BEGIN
    INSERT OR IGNORE INTO coverage_stale_days VALUES (date(OLD.end_ms / 1000 + 28800, 'unixepoch'));
END;
CREATE TRIGGER IF NOT EXISTS recordings_stale_upd
    AFTER UPDATE OF end_ms, officer_id, unit_code, domain, arrived_ms, duty_end_ms ON recordings
BEGIN
    INSERT OR IGNORE INTO coverage_stale_days
        VALUES (date(NEW.end_ms / 1000 + 28800, 'unixepoch')), (date(OLD.end_ms / 1000 + 28800, 'unixepoch'));
END;

CREATE TRIGGER IF NOT EXISTS records_stale_ins AFTER INSERT ON records
BEGIN
    INSERT OR IGNORE INTO coverage_stale_days VALUES (date(NEW.occurred_at, '+8 hours'));
END;
CREATE TRIGGER IF NOT EXISTS records_stale_del AFTER DELETE ON records
BEGIN
    INSERT OR IGNORE INTO coverage_stale_days VALUES (date(OLD.occurred_at, '+8 hours'));
END;
CREATE TRIGGER IF NOT EXISTS records_stale_upd
    AFTER UPDATE OF occurred_at, officer_id, unit_code, domain ON records
BEGIN
    INSERT OR IGNORE INTO coverage_stale_days
        VALUES (date(NEW.occurred_at, '+8 hours')), (date(OLD.occurred_at, '+8 hours'));
END;

-- A recording's domain: its record's, else (as recorders do not know it)
-- its officer's in the officers list.
UPDATE recordings SET domain = (SELECT o.domain FROM officers o WHERE o.officer_id = recordings.officer_id)
    WHERE domain IS NULL AND officer_id IS NOT NULL;
UPDATE geo_points SET domain = (SELECT o.domain FROM officers o WHERE o.officer_id = geo_points.officer_id)
    WHERE kind = 'recording' AND domain IS NULL AND officer_id IS NOT NULL;

-- Every day the store holds anything of is summed for the first time.
INSERT OR IGNORE INTO coverage_stale_days
    SELECT DISTINCT date(start_ms / 1000 + 28800, 'unixepoch') FROM duty_hours
    UNION SELECT DISTINCT date(start_ms / 1000 + 28800, 'unixepoch') FROM duties WHERE start_ms IS NOT NULL
    UNION SELECT DISTINCT date(end_ms / 1000 + 28800, 'unixepoch') FROM recordings
    UNION SELECT DISTINCT date(occurred_at, '+8 hours') FROM records;

-- Recordings whose bytes have not arrived (timeliness counts them from here).
CREATE INDEX IF NOT EXISTS recordings_pending
    ON recordings (end_ms, unit_code, domain, officer_id, duty_end_ms) WHERE arrived_ms IS NULL;

-- Spatial coverage: an action's cells are read by time; whether a
-- recording of the same group lies in a cell is looked up by cell.
DROP INDEX IF EXISTS geo_points_by_time;
CREATE INDEX IF NOT EXISTS geo_points_by_time
    ON geo_points (kind, at_ms, unit_code, domain, officer_id, cell);
CREATE INDEX IF NOT EXISTS geo_points_by_cell ON geo_points (kind, cell, at_ms);
CREATE INDEX IF NOT EXISTS geo_points_by_cell_unit ON geo_points (kind, cell, unit_code, at_ms);
CREATE INDEX IF NOT EXISTS geo_points_by_cell_domain ON geo_points (kind, cell, domain, at_ms);
CREATE INDEX IF NOT EXISTS geo_points_by_cell_officer ON geo_points (kind, cell, officer_id, at_ms);
