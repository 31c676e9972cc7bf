//! Recorder firmware: images operators registered, the image each recorder
//! is to run, and what docks reported of installing it.
//!
//! An image's manifest (version, SHA-256, size, where to download it) is
//! carried in the recorder's signed configuration assignment
//! ([`super::recorder_config`]), so it is signed, versioned and rolled out
//! by the same mechanism; a firmware rollout sets recorders' targets and
//! issues them new assignments.

use super::db::{params, OptionalExtension, Transaction};
use anyhow::Context as _;
use evsync_protocol::assignment::FirmwareImage;
use evsync_protocol::record::{Event, RecordBody};
use evsync_recorder_protocol::firmware::FirmwareVersion;
use serde::Serialize;

use super::alerts::{raise, AlertKind, Subject};
use super::{now, Store};

/// A registered firmware image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirmwareRow {
    /// Version it installs.
    pub version: String,
    /// SHA-256 (hex) of the image.
    pub sha256: String,
    /// Size, bytes.
    pub size: u64,
    /// When it was registered.
    pub added_at: String,
    /// Who registered it.
    pub by_whom: String,
}

/// The path under the hub's HTTP address where docks download image `sha256`.
pub fn download_path(sha256: &str) -> String {
    format!("/firmware/{sha256}")
}

impl Store {
    /// Registers an image whose bytes are in the blob store. The same
    /// version again is refused unless it is the same image.
    pub fn add_firmware(
        &mut self,
        version: &str,
        sha256: &str,
        size: u64,
        by: &str,
    ) -> anyhow::Result<bool> {
        FirmwareVersion::parse(version)?;
        if let Some(known) = self.firmware(version)? {
            anyhow::ensure!(
                known.sha256 == sha256,
                "firmware {version} is registered already with SHA-256 {}; a different image needs a new version",
                known.sha256
            );
            return Ok(false);
        }
        self.conn().execute(
            "INSERT INTO firmware_images (version, sha256, size, added_at, by_whom)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![version, sha256, size as i64, now(), by],
        )?;
        Ok(true)
    }

    /// One registered image.
    pub fn firmware(&self, version: &str) -> anyhow::Result<Option<FirmwareRow>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT version, sha256, size, added_at, by_whom FROM firmware_images WHERE version = ?1",
                [version],
                firmware_row,
            )
            .optional()?)
    }

    /// Whether `sha256` is a registered image (the only blobs served to docks).
    pub fn is_firmware(&self, sha256: &str) -> anyhow::Result<bool> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM firmware_images WHERE sha256 = ?1",
                [sha256],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Every registered image, by when it was added.
    pub fn firmware_images(&self) -> anyhow::Result<Vec<FirmwareRow>> {
        let mut stmt = self.conn().prepare(
            "SELECT version, sha256, size, added_at, by_whom FROM firmware_images ORDER BY added_at, version",
        )?;
        let rows = stmt.query_map([], firmware_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Makes `version` the firmware each of `devices` is to run (their next
    /// assignments name it): all or none, refused when a recorder's
    /// configuration does not allow that version.
    pub fn set_firmware_targets(
        &mut self,
        devices: &[String],
        version: &str,
        by: &str,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.firmware(version)?.is_some(),
            "no firmware {version} registered (see `evsync-hub firmware list`)"
        );
        let mut refused = Vec::new();
        for id in devices {
            if let Err(e) = self.config_effective(id)?.config.firmware_allowed(version) {
                refused.push(format!("{id}: {e}"));
            }
        }
        anyhow::ensure!(
            refused.is_empty(),
            "firmware {version} is not allowed on {} recorder(s), nothing changed:\n  {}",
            refused.len(),
            refused.join("\n  ")
        );
        let at = now();
        self.in_transaction(|tx| {
            for id in devices {
                tx.execute(
                    "INSERT INTO firmware_targets (device_id, version, set_at, by_whom) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (device_id) DO UPDATE SET version = ?2, set_at = ?3, by_whom = ?4",
                    params![id, version, at, by],
                )?;
            }
            Ok(())
        })
    }

    /// The image `device_id` is to run, as its assignment names it (`base_url`:
    /// the hub's HTTP address as docks reach it).
    pub fn firmware_target(
        &self,
        device_id: &str,
        base_url: &str,
    ) -> anyhow::Result<Option<FirmwareImage>> {
        self.conn()
            .query_row(
                "SELECT i.version, i.sha256, i.size FROM firmware_targets t
                 JOIN firmware_images i ON i.version = t.version WHERE t.device_id = ?1",
                [device_id],
                |r| {
                    let sha256: String = r.get(1)?;
                    Ok(FirmwareImage {
                        version: r.get(0)?,
                        url: format!(
                            "{}{}",
                            base_url.trim_end_matches('/'),
                            download_path(&sha256)
                        ),
                        sha256,
                        size: r.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .optional()
            .context("reading the firmware target")
    }
}

fn firmware_row(r: &super::db::Row) -> super::db::Result<FirmwareRow> {
    Ok(FirmwareRow {
        version: r.get(0)?,
        sha256: r.get(1)?,
        size: r.get::<_, i64>(2)? as u64,
        added_at: r.get(3)?,
        by_whom: r.get(4)?,
    })
}

/// What a report of installing firmware changes, inside the ingest
/// transaction: the recorder's firmware standing, its firmware, and an
/// alert on failure.
pub(super) fn on_event(tx: &Transaction<'_>, b: &RecordBody) -> anyhow::Result<()> {
    let device = b.device_id.as_str();
    let target: Option<String> = match &b.event {
        Some(Event::FirmwareInstalled { .. } | Event::FirmwareFailed { .. }) => tx
            .query_row(
                "SELECT json_extract(firmware_image, '$.version') FROM config_status WHERE device_id = ?1",
                [device],
                |r| r.get(0),
            )
            .optional()?
            .flatten(),
        _ => return Ok(()),
    };
    let at = super::stamp(b.device_time - chrono::Duration::milliseconds(b.clock_offset_ms));
    match &b.event {
        Some(Event::FirmwareInstalled { version, .. }) => {
            // A late report of an older install does not turn the clock back.
            let running: Option<String> = tx
                .query_row(
                    "SELECT firmware FROM devices WHERE device_id = ?1",
                    [device],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            let older = running.as_deref().is_some_and(|r| {
                matches!(
                    (FirmwareVersion::parse(r), FirmwareVersion::parse(version)),
                    (Ok(r), Ok(v)) if r.prefix() == v.prefix() && v.cmp_numbers(&r).is_lt()
                )
            });
            if !older {
                tx.execute(
                    "UPDATE devices SET firmware = ?2 WHERE device_id = ?1",
                    params![device, version],
                )?;
            }
            if target.as_deref() == Some(version) {
                tx.execute(
                    "UPDATE config_status SET firmware_state = 'installed', firmware_reason = NULL, firmware_at = ?2
                     WHERE device_id = ?1",
                    params![device, at],
                )?;
            }
        }
        Some(Event::FirmwareFailed { version, reason }) => {
            // A late failure from one dock does not undo an install at another.
            if target.as_deref() == Some(version) {
                tx.execute(
                    "UPDATE config_status SET firmware_state = 'failed', firmware_reason = ?2, firmware_at = ?3
                     WHERE device_id = ?1 AND firmware_state IS DISTINCT FROM 'installed'",
                    params![device, reason, at],
                )?;
            }
            // The same image refused again at a later docking is the same
            // open alert, not a new one.
            let prefix = format!("firmware {version} was not installed on recorder {device} ");
            let open: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM alerts WHERE kind = 'firmware_failed' AND device_id = ?1
                                    AND resolved_at IS NULL AND substr(detail, 1, length(?2)) = ?2)",
                )?
                .query_row(params![device, prefix], |r| r.get(0))?;
            if open {
                return Ok(());
            }
            raise(
                tx,
                AlertKind::FirmwareFailed,
                Subject::source(device, &b.agent_id, Some((b.seq, b.seq))),
                &format!(
                    "firmware {version} was not installed on recorder {device} (reported by {}): {reason}",
                    b.agent_id
                ),
                std::time::Duration::ZERO,
            )?;
        }
        _ => {}
    }
    Ok(())
}
