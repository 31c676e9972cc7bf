//! What makes an offered firmware version acceptable: one rule, shared by
//! the recorder (which refuses `FirmwareBegin` by it) and the dock (which
//! can tell beforehand whether a recorder will take an image).
//!
//! A version is an optional product prefix ending in `-` (ASCII letters,
//! digits, `_` and `-`), then numbers separated by `.`: `SIM-2.4.1`,
//! `2.5`, `ZFY_H6-10.0.3`. An image replaces the running firmware only if
//! it has the same prefix (the same product line) and a higher number;
//! missing trailing numbers count as 0, so `2.5` and `2.5.0` are the same
//! version and neither replaces the other.

use std::cmp::Ordering;

/// Longest version accepted, bytes (it names the image's file on a recorder).
pub const MAX_VERSION_LEN: usize = 64;

/// Why a version string is not a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "firmware version {version:?} cannot be parsed: {problem}; expected an optional prefix of \
     ASCII letters, digits or '_' ending in '-', then numbers separated by '.', \
     at most 64 bytes, such as \"SIM-2.5.0\""
)]
pub struct ParseError {
    /// The string given.
    pub version: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

/// A parsed firmware version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareVersion {
    prefix: String,
    numbers: Vec<u64>,
}

impl FirmwareVersion {
    /// Parses `SIM-2.4.1`-style versions.
    pub fn parse(version: &str) -> Result<Self, ParseError> {
        let fail = |problem| ParseError {
            version: version.to_owned(),
            problem,
        };
        if version.len() > MAX_VERSION_LEN {
            return Err(fail("it is longer than 64 bytes"));
        }
        let (prefix, dotted) = match version.rfind('-') {
            Some(at) => version.split_at(at + 1),
            None => ("", version),
        };
        if prefix == "-" {
            return Err(fail("the prefix before '-' is empty"));
        }
        if !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(fail(
                "the prefix holds a character other than ASCII letters, digits, '_' and '-'",
            ));
        }
        let mut numbers = Vec::new();
        for part in dotted.split('.') {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(fail("a part after the prefix is not a number"));
            }
            numbers.push(
                part.parse::<u64>()
                    .map_err(|_| fail("a number is too large"))?,
            );
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            numbers,
        })
    }

    /// The product prefix with its final `-`, empty if none.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The numbers, most significant first.
    pub fn numbers(&self) -> &[u64] {
        &self.numbers
    }

    /// Compares the numbers only (trailing zeros do not count); meaningful
    /// for versions with the same prefix.
    pub fn cmp_numbers(&self, other: &Self) -> Ordering {
        let n = self.numbers.len().max(other.numbers.len());
        let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
        (0..n)
            .map(|i| at(&self.numbers, i).cmp(&at(&other.numbers, i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

/// Why an offered image may not replace the running firmware.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    /// The offered version does not parse.
    #[error("offered {0}")]
    Offered(ParseError),
    /// The running version does not parse, so nothing can be compared with it.
    #[error("running {0}; no image can be checked against it")]
    Running(ParseError),
    /// Another product line.
    #[error(
        "firmware {offered} is for another product line than the running {running}; \
         expected a version starting with {prefix:?}"
    )]
    OtherProduct {
        /// Offered version.
        offered: String,
        /// Running version.
        running: String,
        /// The running version's prefix.
        prefix: String,
    },
    /// Not higher than the running version.
    #[error(
        "firmware {offered} is not newer than the running {running}; expected a version \
         above {running} (no downgrade, no re-install)"
    )]
    NotNewer {
        /// Offered version.
        offered: String,
        /// Running version.
        running: String,
    },
}

/// Whether firmware `offered` may replace firmware `running`.
pub fn check_upgrade(running: &str, offered: &str) -> Result<(), UpgradeError> {
    let new = FirmwareVersion::parse(offered).map_err(UpgradeError::Offered)?;
    let old = FirmwareVersion::parse(running).map_err(UpgradeError::Running)?;
    if new.prefix != old.prefix {
        return Err(UpgradeError::OtherProduct {
            offered: offered.to_owned(),
            running: running.to_owned(),
            prefix: old.prefix,
        });
    }
    if new.cmp_numbers(&old) != Ordering::Greater {
        return Err(UpgradeError::NotNewer {
            offered: offered.to_owned(),
            running: running.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_higher_version_of_the_same_product_replaces_the_running_one() {
        assert_eq!(check_upgrade("SIM-2.4.1", "SIM-2.5.0"), Ok(()));
        assert_eq!(check_upgrade("SIM-2.4.1", "SIM-2.4.10"), Ok(()));
        assert_eq!(check_upgrade("SIM-2.4.1", "SIM-3"), Ok(()));
        assert_eq!(check_upgrade("1.9", "1.10"), Ok(()));
        assert_eq!(check_upgrade("EV-SIM-1.0", "EV-SIM-1.0.1"), Ok(()));
        let err = check_upgrade("SIM-2.4.1", "SIM-2.4.0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "firmware SIM-2.4.0 is not newer than the running SIM-2.4.1; expected a version \
             above SIM-2.4.1 (no downgrade, no re-install)"
        );
        assert!(matches!(
            check_upgrade("SIM-2.4.1", "SIM-2.4.1"),
            Err(UpgradeError::NotNewer { .. })
        ));
        assert!(
            matches!(
                check_upgrade("SIM-2.5", "SIM-2.5.0"),
                Err(UpgradeError::NotNewer { .. })
            ),
            "trailing zeros do not make a version newer"
        );
        let err = check_upgrade("SIM-2.4.1", "ACME-9.0").unwrap_err();
        assert!(err
            .to_string()
            .contains("expected a version starting with \"SIM-\""));
        assert!(matches!(
            check_upgrade("SIM-2.4.1", "2.5.0"),
            Err(UpgradeError::OtherProduct { .. })
        ));
    }

    #[test]
    fn versions_that_do_not_parse_are_refused_with_what_was_expected() {
        for bad in [
            "",
            "SIM-",
            "SIM-2..1",
            "SIM-2.4.1-rc1",
            "SIM-+2",
            "-2.4",
            "../../x-1.0",
            "SIM 2-1.0",
            "SIM-99999999999999999999",
            &format!("{}-1.0", "A".repeat(64)),
        ] {
            let err = check_upgrade("SIM-2.4.1", bad).unwrap_err();
            assert!(matches!(err, UpgradeError::Offered(_)), "{bad:?}: {err}");
            assert!(err.to_string().contains("such as \"SIM-2.5.0\""), "{err}");
        }
        assert!(matches!(
            check_upgrade("weird", "SIM-2.5.0"),
            Err(UpgradeError::Running(_))
        ));
        let v = FirmwareVersion::parse("ZFY_H6-10.0.3").unwrap();
        assert_eq!((v.prefix(), v.numbers()), ("ZFY_H6-", &[10, 0, 3][..]));
    }
}
