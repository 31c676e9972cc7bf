//! What each setting allows, checked over the flat leaves so that every
//! problem is found in one pass, including values the structs cannot hold
//! (a negative number written in TOML).

use toml::Value;

use crate::fields::{self, Allowed, Flat, Kind, TextRule, FIELDS};
use crate::{version, Invalid, Problem, RecorderConfig};

impl RecorderConfig {
    /// Checks every setting; the error lists every problem, each with its
    /// field path, its value and what is allowed.
    pub fn validate(&self) -> Result<(), Invalid> {
        let problems = problems(&fields::flatten(self));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Invalid(problems))
        }
    }
}

/// Every problem in a complete set of leaves, in field order.
pub(crate) fn problems(values: &Flat) -> Vec<Problem> {
    let mut found = Vec::new();
    for field in &FIELDS {
        match values.get(field.path) {
            Some(value) if accepts(field.kind, value) => {}
            Some(value) => found.push(Problem {
                field: field.path.to_owned(),
                value: fields::show(value),
                expected: field.kind.allowed(),
            }),
            None => found.push(Problem {
                field: field.path.to_owned(),
                value: "(nothing)".to_owned(),
                expected: field.kind.allowed(),
            }),
        }
    }
    let text = |path: &str| values.get(path).and_then(Value::as_str).unwrap_or("");
    found.extend(version::bounds_problem(
        text("firmware.min_version"),
        text("firmware.max_version"),
    ));
    found
}

fn accepts(kind: Kind, value: &Value) -> bool {
    match (kind, value) {
        (Kind::Bool, Value::Boolean(_)) => true,
        (Kind::Choice(names), Value::String(s)) => names.contains(&s.as_str()),
        (Kind::U32(allowed) | Kind::I16(allowed), Value::Integer(n)) => allowed.contains(*n),
        (Kind::Text(rule), Value::String(s)) => rule.accepts(s),
        _ => false,
    }
}

impl Kind {
    /// What is allowed, for messages: `15, 25 or 30`.
    pub(crate) fn allowed(self) -> String {
        match self {
            Kind::Bool => "true or false".to_owned(),
            Kind::Choice(names) => {
                let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
                or_list(&quoted)
            }
            Kind::U32(allowed) | Kind::I16(allowed) => allowed.describe(),
            Kind::Text(rule) => rule.describe().to_owned(),
        }
    }

    /// The TOML type, then what is allowed: `an integer (15, 25 or 30)`.
    pub(crate) fn expects(self) -> String {
        match self {
            Kind::Bool => "true or false".to_owned(),
            Kind::U32(_) | Kind::I16(_) => format!("an integer ({})", self.allowed()),
            Kind::Choice(_) | Kind::Text(_) => format!("a string ({})", self.allowed()),
        }
    }
}

impl Allowed {
    fn contains(self, n: i64) -> bool {
        match self {
            Allowed::Range(min, max) => (min..=max).contains(&n),
            Allowed::Steps(min, max, step) => (min..=max).contains(&n) && n % step == 0,
            Allowed::OffOr(min, max) => n == 0 || (min..=max).contains(&n),
            Allowed::OneOf(these) => these.contains(&n),
        }
    }

    fn describe(self) -> String {
        match self {
            Allowed::Range(min, max) => format!("{min} to {max}"),
            Allowed::Steps(min, max, step) => format!("a multiple of {step} from {min} to {max}"),
            Allowed::OffOr(min, max) => format!("0 (off) or {min} to {max}"),
            Allowed::OneOf(these) => {
                let these: Vec<String> = these.iter().map(ToString::to_string).collect();
                or_list(&these)
            }
        }
    }
}

impl TextRule {
    fn accepts(self, s: &str) -> bool {
        let digits = |n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        match self {
            TextRule::DeviceId => {
                (1..=64).contains(&s.len())
                    && !s.starts_with('.')
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            }
            TextRule::UnitCode => s.is_empty() || digits(12),
            TextRule::OfficerId => s.is_empty() || digits(6),
            TextRule::Version => s.is_empty() || version::parse(s).is_ok(),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            TextRule::DeviceId => "1 to 64 of A-Z a-z 0-9 . _ -, not starting with '.'",
            TextRule::UnitCode => "empty or 12 digits",
            TextRule::OfficerId => "empty or 6 digits",
            TextRule::Version => "empty (any) or a version such as \"2.4.1\" or \"SIM-2.4.1\"",
        }
    }
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arbitrary::valid;

    #[test]
    fn the_defaults_are_valid_once_the_device_id_is_set() {
        assert_eq!(valid().validate(), Ok(()));
        let err = RecorderConfig::default().validate().unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert_eq!(err.0[0].field, "identity.device_id");
    }

    #[test]
    fn every_problem_is_reported_at_once_with_field_value_and_what_is_allowed() {
        let mut config = valid();
        config.video.frame_rate = 24;
        config.recording.segment_minutes = 0;
        config.recording.triggers.speed_kmh = 5;
        config.time.utc_offset_min = 470;
        config.identity.device_id = ".hidden".to_owned();
        config.identity.unit_code = "5001".to_owned();
        let text = config.validate().unwrap_err().to_string();
        assert_eq!(
            text,
            "6 problem(s) in the recorder configuration:\n  \
             video.frame_rate = 24: expected 15, 25 or 30\n  \
             recording.segment_minutes = 0: expected 1 to 60\n  \
             recording.triggers.speed_kmh = 5: expected 0 (off) or 10 to 200\n  \
             time.utc_offset_min = 470: expected a multiple of 15 from -720 to 840\n  \
             identity.device_id = \".hidden\": expected 1 to 64 of A-Z a-z 0-9 . _ -, \
             not starting with '.'\n  \
             identity.unit_code = \"5001\": expected empty or 12 digits"
        );
    }

    #[test]
    fn identity_strings_follow_their_rules() {
        let ok = |rule: TextRule, s: &str| rule.accepts(s);
        assert!(ok(TextRule::DeviceId, "ZFY-X1_0001.a"));
        assert!(ok(TextRule::DeviceId, &"a".repeat(64)));
        assert!(!ok(TextRule::DeviceId, &"a".repeat(65)));
        assert!(!ok(TextRule::DeviceId, ""));
        assert!(!ok(TextRule::DeviceId, "ZFY 1"));
        assert!(!ok(TextRule::DeviceId, "../x"));
        assert!(!ok(TextRule::DeviceId, "摄像机"));
        assert!(ok(TextRule::UnitCode, ""));
        assert!(ok(TextRule::UnitCode, "500101000001"));
        assert!(!ok(TextRule::UnitCode, "50010100000"));
        assert!(!ok(TextRule::UnitCode, "５00101000001"));
        assert!(ok(TextRule::OfficerId, "123456"));
        assert!(!ok(TextRule::OfficerId, "12345a"));
        assert!(ok(TextRule::Version, "SIM-2.4.1"));
        assert!(!ok(TextRule::Version, "2..4"));
    }
}
