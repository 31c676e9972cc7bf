-- evsync hub store, version 8: each day's figures already rolled up per
-- group, so that a question over the whole district reads a row per day
-- and unit (domain, officer) instead of one per officer-day and counting
-- every action (issue 6, "Scale"). Applied by store::migrate in one
-- transaction; store::coverage_days explains how the sums are kept and read.

-- One China Standard Time day's figures for the whole district (grouping
-- 'all', key '') and for each unit, domain and officer (grouping 'unit',
-- 'domain', 'officer'; key '' for none). Rolled up from that day's
-- coverage_days rows and its actions whenever the day is summed.
CREATE TABLE IF NOT EXISTS coverage_day_groups (
    grouping                     TEXT NOT NULL CHECK (grouping IN ('all', 'unit', 'domain', 'officer')),
    day                          TEXT NOT NULL,
    key                          TEXT NOT NULL,
    -- Personnel: officer-days on duty in the group, and of them those heard from.
    officer_days                 INTEGER NOT NULL,
    officer_days_heard           INTEGER NOT NULL,
    -- Time, timeliness of arrived recordings, records: as in coverage_days.
    on_duty_ms                   INTEGER NOT NULL,
    recorded_ms                  INTEGER NOT NULL,
    hours_clock_problem          INTEGER NOT NULL,
    hours_no_recorder_assigned   INTEGER NOT NULL,
    hours_media_not_arrived      INTEGER NOT NULL,
    hours_not_linked             INTEGER NOT NULL,
    hours_nothing_recorded       INTEGER NOT NULL,
    arrived_on_time              INTEGER NOT NULL,
    arrived_late                 INTEGER NOT NULL,
    records                      INTEGER NOT NULL,
    -- Actions judged, started that day: all, covered, and uncovered by cause
    -- (an uncovered action without a cause is in none of these columns).
    actions                      INTEGER NOT NULL,
    actions_covered              INTEGER NOT NULL,
    actions_clock_problem        INTEGER NOT NULL,
    actions_no_recorder_assigned INTEGER NOT NULL,
    actions_media_not_arrived    INTEGER NOT NULL,
    actions_not_linked           INTEGER NOT NULL,
    actions_nothing_recorded     INTEGER NOT NULL,
    PRIMARY KEY (grouping, day, key)
) WITHOUT ROWID;

-- Actions' verdicts and officers are rolled up too: a change names its day.
-- Actions are written by upserts, whose own conflict handling overrides a
-- trigger's OR IGNORE: these insert only a day not yet named instead.
CREATE TRIGGER IF NOT EXISTS actions_stale_ins AFTER INSERT ON actions WHEN NEW.start_ms IS NOT NULL
BEGIN
    INSERT INTO coverage_stale_days SELECT d FROM (SELECT date(NEW.start_ms / 1000 + 28800, 'unixepoch') AS d)
        WHERE d NOT IN (SELECT day FROM coverage_stale_days);
END;
CREATE TRIGGER IF NOT EXISTS actions_stale_del AFTER DELETE ON actions WHEN OLD.start_ms IS NOT NULL
BEGIN
    INSERT INTO coverage_stale_days SELECT d FROM (SELECT date(OLD.start_ms / 1000 + 28800, 'unixepoch') AS d)
        WHERE d NOT IN (SELECT day FROM coverage_stale_days);
END;
CREATE TRIGGER IF NOT EXISTS actions_stale_upd
    AFTER UPDATE OF start_ms, span_ms, covered, cause, unit_code, domain ON actions
BEGIN
    INSERT INTO coverage_stale_days SELECT d FROM (
        SELECT date(NEW.start_ms / 1000 + 28800, 'unixepoch') AS d WHERE NEW.start_ms IS NOT NULL
        UNION SELECT date(OLD.start_ms / 1000 + 28800, 'unixepoch') WHERE OLD.start_ms IS NOT NULL)
        WHERE d NOT IN (SELECT day FROM coverage_stale_days);
END;
CREATE TRIGGER IF NOT EXISTS action_officers_stale_ins AFTER INSERT ON action_officers
BEGIN
    INSERT INTO coverage_stale_days
        SELECT DISTINCT date(a.start_ms / 1000 + 28800, 'unixepoch') AS d FROM actions a
        WHERE a.action_key = NEW.action_key AND a.start_ms IS NOT NULL
          AND d NOT IN (SELECT day FROM coverage_stale_days);
END;
CREATE TRIGGER IF NOT EXISTS action_officers_stale_del AFTER DELETE ON action_officers
BEGIN
    INSERT INTO coverage_stale_days
        SELECT DISTINCT date(a.start_ms / 1000 + 28800, 'unixepoch') AS d FROM actions a
        WHERE a.action_key = OLD.action_key AND a.start_ms IS NOT NULL
          AND d NOT IN (SELECT day FROM coverage_stale_days);
END;

-- Every day is summed again, now with its groups.
INSERT OR IGNORE INTO coverage_stale_days
    SELECT DISTINCT day FROM coverage_days
    UNION SELECT DISTINCT date(start_ms / 1000 + 28800, 'unixepoch') FROM actions WHERE start_ms IS NOT NULL;
