-- evsync hub store, version 9: recorder configuration as policy. Layers of
-- overrides (fleet, unit, device class, device) resolve into one effective
-- configuration per recorder; each one the hub assigns is signed and kept,
-- and every recorder's standing (assigned, delivered, applied, failed) and
-- the configuration its dock last read from it are tracked. Firmware
-- images ride on the same signed assignments.

-- A recorder's class (a model or a batch), set by operators, is the layer
-- between unit and device: devices.device_class, added by
-- recorder_config::add_device_class (SQLite cannot add a column only if it
-- is missing).

-- One layer of overrides, as the operator wrote it (TOML, validated).
CREATE TABLE IF NOT EXISTS config_layers (
    scope      TEXT NOT NULL CHECK (scope IN ('fleet', 'unit', 'class', 'device')),
    key        TEXT NOT NULL,
    overrides  TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    by_whom    TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);

-- Every assignment issued. A version is the larger of the last one + 1
-- and the issuing time in milliseconds since 1970, so it only ever grows,
-- also after the store is restored from a backup.
CREATE TABLE IF NOT EXISTS config_assignments (
    version     INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id   TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    config      TEXT NOT NULL,
    message     BLOB NOT NULL,
    issued_at   TEXT NOT NULL,
    by_whom     TEXT NOT NULL,
    rollout     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS config_assignments_device ON config_assignments (device_id, version);

-- Where each recorder stands against its current assignment.
-- `published_at` NULL: the hub's publisher has yet to put it on the
-- recorder's config topic. `running_*`: what a dock last read from it.
-- `applied_*`: the last assignment a dock applied and read back;
-- `first_applied_at`: when one was first (before it, a recorder runs what
-- it came with, which is no drift).
-- `reported_at`: when (by the reporting dock's clock, never later than the
-- hub's) the newest report taken into account was made: older ones, resent
-- late, still raise their alerts but do not move the standing back.
CREATE TABLE IF NOT EXISTS config_status (
    device_id    TEXT PRIMARY KEY,
    version      INTEGER NOT NULL,
    config_hash  TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('assigned', 'delivered', 'applied', 'failed')),
    reason       TEXT,
    state_at     TEXT NOT NULL,
    published_at TEXT,
    running_hash TEXT,
    running_at   TEXT,
    reported_by  TEXT,
    reported_at  TEXT,
    applied_hash TEXT,
    applied_at   TEXT,
    first_applied_at TEXT,
    -- The firmware image the current assignment names (its manifest as
    -- JSON), and how its installation went: 'assigned', 'installed' or
    -- 'failed'.
    firmware_image   TEXT,
    firmware_state   TEXT CHECK (firmware_state IN ('assigned', 'installed', 'failed')),
    firmware_reason  TEXT,
    firmware_at      TEXT
);

-- Firmware images operators registered. The bytes are in the blob store
-- (content-addressed by SHA-256), served to docks at /firmware/<sha256>.
CREATE TABLE IF NOT EXISTS firmware_images (
    version  TEXT PRIMARY KEY,
    sha256   TEXT NOT NULL,
    size     INTEGER NOT NULL,
    added_at TEXT NOT NULL,
    by_whom  TEXT NOT NULL
);

-- The firmware each recorder is to run, set by firmware rollouts.
CREATE TABLE IF NOT EXISTS firmware_targets (
    device_id TEXT PRIMARY KEY,
    version   TEXT NOT NULL REFERENCES firmware_images (version),
    set_at    TEXT NOT NULL,
    by_whom   TEXT NOT NULL
);
