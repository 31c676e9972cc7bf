//! Why a configuration was refused. Every message names the field path, the
//! bad value and what is allowed.

use serde::Serialize;

/// One out-of-range value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Dotted field path, e.g. `video.frame_rate`.
    pub field: String,
    /// The bad value as TOML writes it, e.g. `24` or `"abc"`.
    pub value: String,
    /// What is allowed, e.g. `15, 25 or 30`.
    pub expected: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} = {}: expected {}",
            self.field, self.value, self.expected
        )
    }
}

/// Why a configuration was refused: every out-of-range value found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} problem(s) in the recorder configuration:\n  {}", .0.len(), lines(.0))]
pub struct Invalid(pub Vec<Problem>);

fn lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// A configuration that could not be read or is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not TOML, or TOML that does not fit the settings: unknown fields,
    /// values of the wrong type, identity set in a policy layer. The message
    /// names each field path and what was expected, one per line.
    #[error("{0}")]
    Syntax(String),
    /// The compact form could not be decoded.
    #[error("compact recorder configuration, byte {offset}: {reason}")]
    Compact {
        /// Byte offset of the fault in the input.
        offset: usize,
        /// What is wrong there, naming the field.
        reason: String,
    },
    /// Read, but values are out of range.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A serial-protocol format code other than TOML or compact.
    #[error("configuration format {0}: expected 0 (TOML text) or 1 (compact)")]
    Format(u8),
}

impl ConfigError {
    /// A [`ConfigError::Syntax`] listing every line of `lines`.
    pub(crate) fn syntax(what: &str, lines: &[String]) -> Self {
        Self::Syntax(format!(
            "{} problem(s) reading the {what}:\n  {}",
            lines.len(),
            lines.join("\n  ")
        ))
    }
}
