//! The newest configuration assignment the dock accepted for each recorder
//! (what makes an older one a rollback), and the firmware it last recorded
//! as installed on it.

use rusqlite::{params, OptionalExtension};

use super::{now, Buffer};

impl Buffer {
    /// The newest assignment accepted for `recorder_id`: `(version, config_hash)`.
    pub fn accepted_config(&self, recorder_id: &str) -> anyhow::Result<Option<(u64, String)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT version, config_hash FROM recorder_configs WHERE recorder_id = ?1",
                [recorder_id],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()?)
    }

    /// Notes that assignment `version` was accepted for `recorder_id`; an
    /// older version never replaces a newer one.
    pub fn accept_config(
        &mut self,
        recorder_id: &str,
        version: u64,
        config_hash: &str,
    ) -> anyhow::Result<()> {
        let version = i64::try_from(version)
            .map_err(|_| anyhow::anyhow!("assignment version {version} is out of range"))?;
        self.conn.execute(
            "INSERT INTO recorder_configs (recorder_id, version, config_hash, accepted_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (recorder_id) DO UPDATE SET version = ?2, config_hash = ?3, accepted_at = ?4
             WHERE ?2 >= version",
            params![recorder_id, version, config_hash, now()],
        )?;
        Ok(())
    }

    /// The firmware version last recorded as installed on `recorder_id`.
    pub fn firmware_reported(&self, recorder_id: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT firmware_reported FROM recorder_configs WHERE recorder_id = ?1",
                [recorder_id],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// Notes that `version` was recorded as installed on `recorder_id`.
    pub fn note_firmware_reported(
        &mut self,
        recorder_id: &str,
        version: &str,
    ) -> anyhow::Result<()> {
        self.conn.execute(
            "UPDATE recorder_configs SET firmware_reported = ?2 WHERE recorder_id = ?1",
            params![recorder_id, version],
        )?;
        Ok(())
    }
}
