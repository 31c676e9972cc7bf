//! Layered policy: the configuration a recorder gets is the defaults,
//! overridden by the fleet, then its unit, then its device class, then the
//! device itself; its identity comes from its assignment. [`resolve`] says
//! for every setting which layer it came from, so an operator can see why a
//! recorder records the way it does.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};
use toml::Value;

use crate::fields::{self, Flat, FIELDS};
use crate::text::{self, Reading};
use crate::{validate, ConfigError, Invalid, Problem, RecorderConfig};

/// The settings one policy layer changes, by dotted leaf path.
///
/// Built only by [`Overrides::from_toml`], so it never holds an unknown path,
/// a value of the wrong type, an out-of-range value or an identity setting.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides(Flat);

impl Overrides {
    /// Reads a partial configuration as nested TOML, e.g.
    /// `"[video]\nbitrate_kbps = 6000"`.
    ///
    /// Unknown paths, values of the wrong type and `identity.*` settings give
    /// [`ConfigError::Syntax`] naming each path; out-of-range values give
    /// [`ConfigError::Invalid`] naming each path. Every problem is listed.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let (given, mut wrong) = text::read(text, Reading::Layer)?;
        let mut values = fields::flatten(&RecorderConfig::default());
        values.extend(given.clone());
        // Identity is not set by layers, so the defaults' empty device id is
        // no problem of this layer's.
        let problems: Vec<Problem> = validate::problems(&values)
            .into_iter()
            .filter(|p| !p.field.starts_with("identity."))
            .collect();
        if !wrong.is_empty() {
            wrong.extend(problems.iter().map(ToString::to_string));
            return Err(ConfigError::syntax(Reading::Layer.what(), &wrong));
        }
        if !problems.is_empty() {
            return Err(Invalid(problems).into());
        }
        Ok(Self(given))
    }

    /// The overrides as nested TOML, in field order; equal overrides give
    /// equal text, which [`Overrides::from_toml`] reads back unchanged.
    pub fn to_toml(&self) -> String {
        text::write(&self.0)
    }

    /// Whether this layer changes nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The dotted paths this layer sets, in field order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        FIELDS
            .iter()
            .map(|f| f.path)
            .filter(move |path| self.0.contains_key(*path))
    }
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The built-in default.
    Default,
    /// The whole fleet's policy.
    Fleet,
    /// The policy of the unit with this code.
    Unit(String),
    /// The policy of this device class (model), e.g. `ZFY-X1`.
    DeviceClass(String),
    /// The policy of this one device.
    Device(String),
    /// The device's assignment (identity settings only).
    Assignment,
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layer::Default => write!(f, "default"),
            Layer::Fleet => write!(f, "fleet"),
            Layer::Unit(code) => write!(f, "unit {code}"),
            Layer::DeviceClass(class) => write!(f, "class {class}"),
            Layer::Device(id) => write!(f, "device {id}"),
            Layer::Assignment => write!(f, "assignment"),
        }
    }
}

/// Serialised as its display text: `"unit 500101000001"`.
impl Serialize for Layer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Every policy layer of a fleet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    /// Applies to every recorder.
    pub fleet: Overrides,
    /// By unit code.
    pub units: BTreeMap<String, Overrides>,
    /// By device class (model).
    pub classes: BTreeMap<String, Overrides>,
    /// By device id.
    pub devices: BTreeMap<String, Overrides>,
}

/// The recorder a configuration is resolved for, as assigned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// Its device id; becomes `identity.device_id`.
    pub device_id: String,
    /// The unit it is assigned to; becomes `identity.unit_code`.
    pub unit_code: Option<String>,
    /// Its device class (model), e.g. `ZFY-X1`.
    pub class: Option<String>,
    /// The officer it is assigned to; becomes `identity.officer_id`.
    pub officer_id: Option<String>,
}

/// A resolved configuration and where each of its settings came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// The validated configuration.
    pub config: RecorderConfig,
    /// Every leaf path → the layer its value came from.
    pub sources: BTreeMap<String, Layer>,
}

impl Effective {
    /// One line per setting, in field order, with its layer aligned:
    /// `video.bitrate_kbps = 6000    (unit 500101000001)`.
    pub fn explain(&self) -> String {
        let values = fields::flatten(&self.config);
        let lines: Vec<(String, String)> = FIELDS
            .iter()
            .filter_map(|f| {
                let setting = format!("{} = {}", f.path, fields::show(values.get(f.path)?));
                let layer = self.sources.get(f.path).unwrap_or(&Layer::Default);
                Some((setting, layer.to_string()))
            })
            .collect();
        let width = lines
            .iter()
            .map(|(s, _)| s.chars().count())
            .max()
            .unwrap_or(0);
        lines
            .iter()
            .map(|(setting, layer)| format!("{setting:<width$}    ({layer})\n"))
            .collect()
    }
}

/// The configuration of `target`: defaults, then the fleet, unit, device
/// class and device layers in that order, then identity from the target.
/// The result is validated; the error lists every problem with its path.
pub fn resolve(policy: &Policy, target: &Target) -> Result<Effective, ConfigError> {
    let mut values = fields::flatten(&RecorderConfig::default());
    let mut sources: BTreeMap<String, Layer> = values
        .keys()
        .map(|path| (path.clone(), Layer::Default))
        .collect();
    let mut set = |path: &str, value: Value, layer: &Layer| {
        values.insert(path.to_owned(), value);
        sources.insert(path.to_owned(), layer.clone());
    };

    let mut layers = vec![(Layer::Fleet, Some(&policy.fleet))];
    if let Some(unit) = &target.unit_code {
        layers.push((Layer::Unit(unit.clone()), policy.units.get(unit)));
    }
    if let Some(class) = &target.class {
        layers.push((Layer::DeviceClass(class.clone()), policy.classes.get(class)));
    }
    let device = &target.device_id;
    layers.push((Layer::Device(device.clone()), policy.devices.get(device)));
    for (layer, overrides) in layers {
        for (path, value) in overrides.map(|o| &o.0).into_iter().flatten() {
            set(path, value.clone(), &layer);
        }
    }

    let identity = [
        ("identity.device_id", Some(device)),
        ("identity.unit_code", target.unit_code.as_ref()),
        ("identity.officer_id", target.officer_id.as_ref()),
    ];
    for (path, value) in identity {
        let value = Value::String(value.cloned().unwrap_or_default());
        set(path, value, &Layer::Assignment);
    }

    let problems = validate::problems(&values);
    if !problems.is_empty() {
        return Err(Invalid(problems).into());
    }
    let config = fields::from_flat(&values)?;
    Ok(Effective { config, sources })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(text: &str) -> Overrides {
        Overrides::from_toml(text).unwrap()
    }

    fn target() -> Target {
        Target {
            device_id: "ZFY0001".to_owned(),
            unit_code: Some("500101000001".to_owned()),
            class: Some("ZFY-X1".to_owned()),
            officer_id: Some("123456".to_owned()),
        }
    }

    fn policy() -> Policy {
        let mut policy = Policy {
            fleet: layer(
                "[video]\nbitrate_kbps = 5000\nframe_rate = 30\n[gps]\ninterval_secs = 5\n",
            ),
            ..Policy::default()
        };
        policy.units.insert(
            "500101000001".to_owned(),
            layer("[video]\nbitrate_kbps = 6000\nframe_rate = 15\n[upload]\nwhen = \"wifi\"\n"),
        );
        policy.classes.insert(
            "ZFY-X1".to_owned(),
            layer("[video]\nframe_rate = 25\nresolution = \"1296p\"\n"),
        );
        policy.devices.insert(
            "ZFY0001".to_owned(),
            layer("[video]\nbitrate_kbps = 8000\n"),
        );
        policy
    }

    #[test]
    fn each_layer_overrides_the_one_before_and_sources_name_it() {
        let effective = resolve(&policy(), &target()).unwrap();
        let c = &effective.config;
        assert_eq!(c.video.bitrate_kbps, 8000);
        assert_eq!(c.video.frame_rate, 25);
        assert_eq!(c.video.resolution, crate::Resolution::Hd1296);
        assert_eq!(c.gps.interval_secs, 5);
        assert_eq!(c.upload.when, crate::UploadWhen::Wifi);
        let source = |path: &str| effective.sources[path].to_string();
        assert_eq!(source("video.bitrate_kbps"), "device ZFY0001");
        assert_eq!(source("video.frame_rate"), "class ZFY-X1");
        assert_eq!(source("video.resolution"), "class ZFY-X1");
        assert_eq!(source("upload.when"), "unit 500101000001");
        assert_eq!(source("gps.interval_secs"), "fleet");
        assert_eq!(source("video.night_mode"), "default");
        assert_eq!(effective.sources.len(), FIELDS.len());
    }

    #[test]
    fn layers_of_other_units_classes_and_devices_do_not_apply() {
        let other = Target {
            device_id: "ZFY0002".to_owned(),
            unit_code: Some("500101000002".to_owned()),
            class: None,
            officer_id: None,
        };
        let effective = resolve(&policy(), &other).unwrap();
        assert_eq!(effective.config.video.bitrate_kbps, 5000);
        assert_eq!(effective.config.video.frame_rate, 30);
        assert_eq!(effective.sources["video.bitrate_kbps"], Layer::Fleet);
    }

    #[test]
    fn identity_comes_from_the_target() {
        let effective = resolve(&policy(), &target()).unwrap();
        let identity = &effective.config.identity;
        assert_eq!(identity.device_id, "ZFY0001");
        assert_eq!(identity.unit_code, "500101000001");
        assert_eq!(identity.officer_id, "123456");
        for path in [
            "identity.device_id",
            "identity.unit_code",
            "identity.officer_id",
        ] {
            assert_eq!(effective.sources[path], Layer::Assignment);
        }
        let bad = Target {
            device_id: String::new(),
            officer_id: Some("12".to_owned()),
            ..target()
        };
        let err = resolve(&Policy::default(), &bad).unwrap_err().to_string();
        assert!(
            err.contains("identity.device_id = \"\": expected 1 to 64"),
            "{err}"
        );
        assert!(
            err.contains("identity.officer_id = \"12\": expected empty or 6 digits"),
            "{err}"
        );
    }

    #[test]
    fn a_layer_setting_identity_is_refused() {
        let err = Overrides::from_toml("[identity]\nofficer_id = \"123456\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "1 problem(s) reading the configuration override:\n  identity.officer_id = \
             \"123456\": identity cannot be set by a policy layer; it comes from the device's \
             assignment"
        );
    }

    #[test]
    fn an_override_pushing_a_value_out_of_range_is_refused_with_its_path() {
        let err = Overrides::from_toml("[video]\nbitrate_kbps = 99999\n").unwrap_err();
        assert_eq!(
            err,
            ConfigError::Invalid(Invalid(vec![Problem {
                field: "video.bitrate_kbps".to_owned(),
                value: "99999".to_owned(),
                expected: "500 to 16000".to_owned(),
            }]))
        );
        let err = Overrides::from_toml("[time]\nutc_offset_min = -100000\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("time.utc_offset_min = -100000: expected"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_path_or_wrong_type_in_an_override_is_named() {
        let err = Overrides::from_toml("[video]\nbitrate = 6000\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("video.bitrate = 6000: unknown field; [video] holds resolution,"),
            "{err}"
        );
        let err = Overrides::from_toml("[video]\nbitrate_kbps = \"6000\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "video.bitrate_kbps = \"6000\": expected an integer (500 to 16000), found a string"
            ),
            "{err}"
        );
    }

    #[test]
    fn layers_that_conflict_only_together_are_refused_by_resolve() {
        let mut policy = Policy {
            fleet: layer("[firmware]\nmin_version = \"2.5\"\n"),
            ..Policy::default()
        };
        policy.devices.insert(
            "ZFY0001".to_owned(),
            layer("[firmware]\nmax_version = \"2.4\"\n"),
        );
        let err = resolve(&policy, &target()).unwrap_err().to_string();
        assert!(
            err.contains("firmware.max_version = \"2.4\": expected a version not below"),
            "{err}"
        );
    }

    #[test]
    fn overrides_write_nested_toml_that_reads_back() {
        let o = layer("gps.interval_secs = 0\n[video]\nnight_mode = \"on\"\nbitrate_kbps = 6000\n");
        assert_eq!(
            o.paths().collect::<Vec<_>>(),
            [
                "video.bitrate_kbps",
                "video.night_mode",
                "gps.interval_secs"
            ]
        );
        let text = o.to_toml();
        assert!(text.starts_with("[video]\nbitrate_kbps = 6000  "), "{text}");
        assert_eq!(Overrides::from_toml(&text).unwrap(), o);
        assert!(layer("").is_empty());
        assert!(layer("[video]\n").is_empty());
        assert_eq!(layer("").to_toml(), "");
    }

    #[test]
    fn explain_lists_every_setting_once_with_its_layer_aligned() {
        let text = resolve(&policy(), &target()).unwrap().explain();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), FIELDS.len());
        for f in &FIELDS {
            let prefix = format!("{} = ", f.path);
            assert_eq!(
                lines.iter().filter(|l| l.starts_with(&prefix)).count(),
                1,
                "{}",
                f.path
            );
        }
        let column: Vec<usize> = lines.iter().map(|l| l.find("    (").unwrap()).collect();
        assert!(column.iter().all(|c| *c == column[0]), "{text}");
        let bitrate = lines
            .iter()
            .find(|l| l.starts_with("video.bitrate_kbps"))
            .unwrap();
        assert!(
            bitrate.starts_with("video.bitrate_kbps = 8000 "),
            "{bitrate}"
        );
        assert!(bitrate.ends_with("    (device ZFY0001)"), "{bitrate}");
    }

    #[test]
    fn layers_display_and_serialise_as_their_names() {
        let names: Vec<String> = [
            Layer::Default,
            Layer::Fleet,
            Layer::Unit("500101000001".to_owned()),
            Layer::DeviceClass("ZFY-X1".to_owned()),
            Layer::Device("ZFY0001".to_owned()),
            Layer::Assignment,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            names,
            [
                "default",
                "fleet",
                "unit 500101000001",
                "class ZFY-X1",
                "device ZFY0001",
                "assignment"
            ]
        );
        let json = serde_json::to_string(&Layer::Unit("500101000001".to_owned())).unwrap();
        assert_eq!(json, "\"unit 500101000001\"");
    }
}
