//! # firmware-config: what a recorder is configured to do
//!
//! In: recorder settings as TOML written by a hub operator, either whole or
//! as policy layers (fleet, unit, device class, device). Out: a validated,
//! typed [`RecorderConfig`], its compact form for the recorder serial
//! protocol (`SetConfig` format 1) and its content hash, which the hub signs
//! and distributes and the agent applies to the recorder.
//!
//! - [`RecorderConfig`] and its sections: the settings, units in the names.
//! - [`RecorderConfig::from_toml`] / [`RecorderConfig::to_toml`]: the form
//!   for people. [`RecorderConfig::to_compact`] /
//!   [`RecorderConfig::from_compact`]: the form for firmware, specified in
//!   [`compact`].
//! - [`RecorderConfig::diff`]: what a push would change, setting by setting.
//! - [`layers`] ([`resolve`], [`Overrides`], [`Policy`], [`Target`],
//!   [`Effective`]): a recorder's configuration from policy layers, with the
//!   layer each setting came from.
//! - [`RecorderConfig::firmware_allowed`]: whether a firmware version is one
//!   the configuration is meant for.
//!
//! ```
//! use firmware_config::RecorderConfig;
//!
//! let text = "[identity]\ndevice_id = \"ZFY0001\"\n[video]\nbitrate_kbps = 6000\n";
//! let config = RecorderConfig::from_toml(text)?;
//! assert_eq!(RecorderConfig::from_compact(&config.to_compact())?, config);
//!
//! let err = RecorderConfig::from_toml(&text.replace("bitrate_kbps = 6000", "frame_rate = 24"));
//! assert_eq!(
//!     err.unwrap_err().to_string(),
//!     "1 problem(s) in the recorder configuration:\n  \
//!      video.frame_rate = 24: expected 15, 25 or 30"
//! );
//! # Ok::<(), firmware_config::ConfigError>(())
//! ```
//!
//! Guarantees:
//! - validation reports every problem at once, each with the dotted field
//!   path, the bad value and what is allowed; unknown fields and wrong types
//!   are named by path too;
//! - a storage policy that would overwrite unsynced recordings cannot be
//!   expressed;
//! - equal configurations have equal TOML text, equal compact bytes and so
//!   an equal content hash; every valid configuration survives both forms
//!   unchanged;
//! - decoding compact bytes never panics: bad input gets an error with the
//!   byte offset and the field;
//! - identity (device, unit, officer) comes only from the device's
//!   assignment, never from a policy layer.

pub mod compact;
mod diff;
mod error;
mod fields;
pub mod layers;
mod schema;
mod text;
mod validate;
mod version;

#[cfg(test)]
mod arbitrary;

/// `format` codes of the recorder serial protocol's `SetConfig` and `GetConfig`.
pub mod serial_format {
    /// TOML text.
    pub const TOML: u8 = 0;
    /// The compact form ([`crate::compact`]).
    pub const COMPACT: u8 = 1;
}

impl RecorderConfig {
    /// Reads a configuration as the recorder serial protocol carries it:
    /// `data` in `format` ([`serial_format`]), validated.
    pub fn from_serial(format: u8, data: &[u8]) -> Result<Self, ConfigError> {
        match format {
            serial_format::TOML => {
                let text = std::str::from_utf8(data).map_err(|_| {
                    ConfigError::Syntax("the TOML recorder configuration is not UTF-8".into())
                })?;
                Self::from_toml(text)
            }
            serial_format::COMPACT => Self::from_compact(data),
            other => Err(ConfigError::Format(other)),
        }
    }
}

pub use diff::Change;
pub use error::{ConfigError, Invalid, Problem};
pub use layers::{resolve, Effective, Layer, Overrides, Policy, Target};
pub use schema::{
    FirmwarePolicy, Gps, Identity, NightMode, RecorderConfig, Recording, ReleaseAfter, Resolution,
    Storage, StorageFull, TimePolicy, TimeSync, Triggers, Upload, UploadWhen, Video, Watermark,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serial_formats_read_the_same_configuration() {
        let config = arbitrary::valid();
        let toml = config.to_toml();
        assert_eq!(
            RecorderConfig::from_serial(serial_format::TOML, toml.as_bytes()).unwrap(),
            config
        );
        assert_eq!(
            RecorderConfig::from_serial(serial_format::COMPACT, &config.to_compact()).unwrap(),
            config
        );
        assert_eq!(
            RecorderConfig::from_serial(7, b"").unwrap_err().to_string(),
            "configuration format 7: expected 0 (TOML text) or 1 (compact)"
        );
        assert!(
            RecorderConfig::from_serial(serial_format::TOML, &[0xff, 0xfe])
                .unwrap_err()
                .to_string()
                .contains("not UTF-8")
        );
    }
}
