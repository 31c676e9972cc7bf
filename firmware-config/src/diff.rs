//! What changes between two configurations, setting by setting: what the hub
//! shows an operator before a new configuration is pushed.

use serde::Serialize;

use crate::fields::{self, FIELDS};
use crate::RecorderConfig;

/// One setting that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Dotted field path, e.g. `video.bitrate_kbps`.
    pub field: String,
    /// The older value as TOML writes it.
    pub from: String,
    /// The newer value as TOML writes it.
    pub to: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} → {}", self.field, self.from, self.to)
    }
}

impl RecorderConfig {
    /// One [`Change`] per setting that differs from `self` to `newer`, in
    /// field order; empty if they are equal.
    pub fn diff(&self, newer: &Self) -> Vec<Change> {
        let (old, new) = (fields::flatten(self), fields::flatten(newer));
        FIELDS
            .iter()
            .filter_map(|f| {
                let (from, to) = (old.get(f.path)?, new.get(f.path)?);
                (from != to).then(|| Change {
                    field: f.path.to_owned(),
                    from: fields::show(from),
                    to: fields::show(to),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::arbitrary::valid_config;

    #[test]
    fn a_change_reads_path_old_arrow_new() {
        let old = RecorderConfig::default();
        let mut new = old.clone();
        new.video.bitrate_kbps = 6000;
        new.identity.officer_id = "123456".to_owned();
        let changes: Vec<String> = old.diff(&new).iter().map(ToString::to_string).collect();
        assert_eq!(
            changes,
            [
                "video.bitrate_kbps: 4000 → 6000",
                "identity.officer_id: \"\" → \"123456\""
            ]
        );
    }

    proptest! {
        #[test]
        fn a_config_does_not_differ_from_itself(config in valid_config()) {
            prop_assert!(config.diff(&config.clone()).is_empty());
        }

        #[test]
        fn the_diff_lists_exactly_the_differing_paths_in_field_order(
            a in valid_config(),
            b in valid_config(),
        ) {
            let (fa, fb) = (fields::flatten(&a), fields::flatten(&b));
            let expected: Vec<&str> = FIELDS
                .iter()
                .map(|f| f.path)
                .filter(|p| fa[*p] != fb[*p])
                .collect();
            let changes = a.diff(&b);
            let named: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
            prop_assert_eq!(named, expected);
            for c in &changes {
                prop_assert_eq!(&c.from, &fields::show(&fa[&c.field]));
                prop_assert_eq!(&c.to, &fields::show(&fb[&c.field]));
            }
            prop_assert_eq!(b.diff(&a).len(), changes.len());
        }
    }
}
