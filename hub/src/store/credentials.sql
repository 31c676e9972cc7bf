-- evsync hub store, version 10: per-device broker credentials. Only a
-- salted hash of each secret is kept, in the form Mosquitto's password file
-- takes (PBKDF2-SHA512); the secret is shown once, when it is issued.
CREATE TABLE IF NOT EXISTS device_credentials (
    device_id     TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    issued_at     TEXT NOT NULL,
    by_whom       TEXT NOT NULL
);
