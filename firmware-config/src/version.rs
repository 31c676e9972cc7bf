//! Which recorder firmware a configuration is meant for.
//!
//! Versions are read by the recorder protocol's own rule
//! ([`evsync_recorder_protocol::firmware`]), so dock, recorder and hub agree
//! on what a version is: numbers separated by `.`, optionally after a product
//! prefix ending in `-` (`SIM-2.4.1`); missing trailing numbers count as 0.
//! A bound without a prefix (`2.4.0`) applies to every product line; a bound
//! with one (`SIM-2.4`) admits only firmware of that product line.

use std::cmp::Ordering;

use evsync_recorder_protocol::firmware::{FirmwareVersion, ParseError};

use crate::{Problem, RecorderConfig};

/// Parses a version by the recorder protocol's rule.
pub(crate) fn parse(version: &str) -> Result<FirmwareVersion, ParseError> {
    FirmwareVersion::parse(version)
}

impl RecorderConfig {
    /// Whether recorder firmware `version` lies within `firmware.min_version`
    /// and `firmware.max_version` (an empty bound admits any). The error names
    /// the bound that refuses it, or says why `version` is not a version.
    pub fn firmware_allowed(&self, version: &str) -> Result<(), String> {
        let firmware = parse(version).map_err(|e| e.to_string())?;
        let bounds = [
            (
                "firmware.min_version",
                &self.firmware.min_version,
                Ordering::Less,
                "older",
            ),
            (
                "firmware.max_version",
                &self.firmware.max_version,
                Ordering::Greater,
                "newer",
            ),
        ];
        for (field, bound, refused, word) in bounds {
            if bound.is_empty() {
                continue;
            }
            let limit = parse(bound).map_err(|e| {
                format!("{field} = {bound:?} is not a version, so nothing can be checked: {e}")
            })?;
            if !limit.prefix().is_empty() && limit.prefix() != firmware.prefix() {
                return Err(format!(
                    "firmware {version} is for another product line than {field} = {bound}; \
                     expected a version starting with {:?}",
                    limit.prefix()
                ));
            }
            if firmware.cmp_numbers(&limit) == refused {
                return Err(format!(
                    "firmware {version} is {word} than {field} = {bound}"
                ));
            }
        }
        Ok(())
    }
}

/// The problem with a pair of bounds that no firmware can satisfy, if any.
/// Bounds that do not parse are reported by the per-field check instead.
pub(crate) fn bounds_problem(min: &str, max: &str) -> Option<Problem> {
    let (Ok(low), Ok(high)) = (parse(min), parse(max)) else {
        return None;
    };
    let expected =
        if !low.prefix().is_empty() && !high.prefix().is_empty() && low.prefix() != high.prefix() {
            format!(
                "a version starting with {:?}, like firmware.min_version ({min})",
                low.prefix()
            )
        } else if low.cmp_numbers(&high) == Ordering::Greater {
            format!("a version not below firmware.min_version ({min})")
        } else {
            return None;
        };
    Some(Problem {
        field: "firmware.max_version".to_owned(),
        value: format!("{max:?}"),
        expected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_bounds(min: &str, max: &str) -> RecorderConfig {
        let mut config = RecorderConfig::default();
        config.identity.device_id = "ZFY0001".to_owned();
        config.firmware.min_version = min.to_owned();
        config.firmware.max_version = max.to_owned();
        config
    }

    #[test]
    fn firmware_inside_the_bounds_is_allowed_whatever_its_prefix() {
        assert_eq!(
            with_bounds("2.4.0", "").firmware_allowed("SIM-2.4.1"),
            Ok(())
        );
        assert_eq!(
            with_bounds("2.4", "2.4.1").firmware_allowed("SIM-2.4.1"),
            Ok(())
        );
        assert_eq!(with_bounds("", "").firmware_allowed("0.1"), Ok(()));
        assert_eq!(with_bounds("2.4.0", "3").firmware_allowed("3.0.0"), Ok(()));
    }

    #[test]
    fn firmware_below_the_minimum_is_refused_naming_min_version() {
        let err = with_bounds("2.5", "")
            .firmware_allowed("SIM-2.4.1")
            .unwrap_err();
        assert_eq!(
            err,
            "firmware SIM-2.4.1 is older than firmware.min_version = 2.5"
        );
    }

    #[test]
    fn firmware_above_the_maximum_is_refused_naming_max_version() {
        let err = with_bounds("2.4", "2.4.9")
            .firmware_allowed("SIM-2.5")
            .unwrap_err();
        assert_eq!(
            err,
            "firmware SIM-2.5 is newer than firmware.max_version = 2.4.9"
        );
    }

    #[test]
    fn a_bound_with_a_prefix_admits_only_its_product_line() {
        assert_eq!(
            with_bounds("SIM-2", "").firmware_allowed("SIM-2.4.1"),
            Ok(())
        );
        let err = with_bounds("SIM-2", "")
            .firmware_allowed("ACME-9")
            .unwrap_err();
        assert!(
            err.contains("another product line than firmware.min_version = SIM-2"),
            "{err}"
        );
        assert!(err.contains("\"SIM-\""), "{err}");
    }

    #[test]
    fn an_unparseable_firmware_version_is_refused_with_what_a_version_looks_like() {
        let err = with_bounds("2.4", "")
            .firmware_allowed("v2.4-beta")
            .unwrap_err();
        assert!(err.contains("\"v2.4-beta\" cannot be parsed"), "{err}");
        assert!(err.contains("such as \"SIM-2.5.0\""), "{err}");
        let err = with_bounds("", "").firmware_allowed("").unwrap_err();
        assert!(err.contains("cannot be parsed"), "{err}");
    }

    #[test]
    fn an_unparseable_bound_is_named() {
        let err = with_bounds("latest", "")
            .firmware_allowed("2.4")
            .unwrap_err();
        assert!(
            err.starts_with("firmware.min_version = \"latest\" is not a version"),
            "{err}"
        );
    }

    #[test]
    fn bounds_no_firmware_can_meet_are_a_validation_problem() {
        let err = with_bounds("2.5", "2.4.9").validate().unwrap_err();
        assert_eq!(
            err.0[0].to_string(),
            "firmware.max_version = \"2.4.9\": expected a version not below \
             firmware.min_version (2.5)"
        );
        let err = with_bounds("SIM-2", "ACME-3").validate().unwrap_err();
        assert!(err.0[0].expected.contains("starting with \"SIM-\""));
        assert_eq!(with_bounds("2.5", "2.5.0").validate(), Ok(()));
        assert_eq!(with_bounds("SIM-2.5", "3").validate(), Ok(()));
        let err = with_bounds("2.x", "").validate().unwrap_err();
        assert_eq!(err.0[0].field, "firmware.min_version");
    }
}
