//! Enforcement actions imported from a case system (issue 6), by CSV or
//! JSON through the API: judged like those from field devices' events.

use super::db::{params, Transaction};
use serde::{Deserialize, Serialize};

use super::coverage::judge_action;
use crate::coverage::geohash;
use crate::coverage::span::Span;

/// Officers of an imported action: a JSON array, or in CSV one field with
/// the numbers separated by `;`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Officers {
    /// `["010203", "020304"]`
    List(Vec<String>),
    /// `010203;020304`
    Text(String),
}

impl Officers {
    /// The officer numbers.
    pub fn numbers(&self) -> Vec<String> {
        match self {
            Self::List(v) => v.iter().map(|o| o.trim().to_owned()).collect(),
            Self::Text(t) => t
                .split(';')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// An action as a case system exports it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImportedAction {
    /// The case system's id of the action; the case number when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Case number.
    #[serde(default)]
    pub case_number: Option<String>,
    /// Officer numbers (6 digits each), at least one.
    pub officers: Officers,
    /// Unit (12 digits).
    #[serde(default)]
    pub unit_code: Option<String>,
    /// Enforcement domain code.
    #[serde(default)]
    pub domain: Option<String>,
    /// Start (RFC 3339).
    pub start: String,
    /// End (RFC 3339).
    pub end: String,
    /// Where, as the case system says it.
    #[serde(default)]
    pub place: Option<String>,
    /// Latitude (WGS 84), if known.
    #[serde(default)]
    pub lat: Option<f64>,
    /// Longitude (WGS 84), if known.
    #[serde(default)]
    pub lon: Option<f64>,
}

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

impl ImportedAction {
    /// Its id in the store: `import/<id or case number>`.
    pub fn key(&self) -> Option<String> {
        self.id
            .as_deref()
            .or(self.case_number.as_deref())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| format!("import/{s}"))
    }

    /// Its span, or everything wrong with it.
    pub fn check(&self) -> Result<Span, Vec<String>> {
        let mut problems = Vec::new();
        if self.key().is_none() {
            problems.push("neither id nor case_number: expected one of them".to_owned());
        }
        let officers = self.officers.numbers();
        if officers.is_empty() {
            problems
                .push("officers is empty: expected at least one 6-digit officer number".to_owned());
        }
        for o in officers.iter().filter(|o| !digits(o, 6)) {
            problems.push(format!("officer {o:?}: expected 6 digits"));
        }
        if let Some(u) = self.unit_code.as_deref().filter(|u| !digits(u, 12)) {
            problems.push(format!("unit_code = {u:?}: expected 12 digits"));
        }
        match (self.lat, self.lon) {
            (None, None) => {}
            (Some(lat), Some(lon)) if geohash::encode(lat, lon, 1).is_some() => {}
            (lat, lon) => problems.push(format!(
                "lat = {lat:?}, lon = {lon:?}: expected both, within ±90 and ±180"
            )),
        }
        let start = super::parse_time("start", &self.start);
        let end = super::parse_time("end", &self.end);
        match (start, end) {
            (Ok(s), Ok(e)) if e < s => {
                problems.push(format!("end {} is before start {}", self.end, self.start))
            }
            (Ok(s), Ok(e)) => {
                if problems.is_empty() {
                    return Ok(Span::new(s.timestamp_millis(), e.timestamp_millis()));
                }
            }
            (s, e) => problems.extend(s.err().into_iter().chain(e.err())),
        }
        Err(problems)
    }
}

/// Stores one checked action (replacing one imported before with the same
/// id) and judges it.
fn put(tx: &Transaction<'_>, a: &ImportedAction, span: Span) -> anyhow::Result<()> {
    let Some(key) = a.key() else {
        anyhow::bail!("an imported action without id or case number");
    };
    let cell = match (a.lat, a.lon) {
        (Some(lat), Some(lon)) => geohash::encode(lat, lon, geohash::CELL_CHARS),
        _ => None,
    };
    let officers = a.officers.numbers();
    tx.prepare_cached(
        "INSERT INTO actions (action_key, action_id, device_id, unit_code, domain, case_number, start_ms, end_ms,
                              source, place, cell)
         VALUES (?1, ?2, 'import', ?3, ?4, ?5, ?6, ?7, 'import', ?8, ?9)
         ON CONFLICT (action_key) DO UPDATE SET unit_code = ?3, domain = ?4, case_number = ?5,
             start_ms = ?6, end_ms = ?7, place = ?8, cell = ?9",
    )?
    .execute(params![
        key,
        key.trim_start_matches("import/"),
        a.unit_code,
        a.domain,
        a.case_number,
        span.start,
        span.end,
        a.place,
        cell
    ])?;
    tx.prepare_cached("DELETE FROM action_officers WHERE action_key = ?1")?
        .execute([&key])?;
    for o in &officers {
        tx.prepare_cached(
            "INSERT INTO action_officers (officer_id, action_key) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?
        .execute(params![o, key])?;
    }
    if let Some(cell) = cell {
        tx.prepare_cached(
            "INSERT INTO geo_points (at_ms, cell, kind, officer_id, unit_code, domain) VALUES (?1, ?2, 'action', ?3, ?4, ?5)",
        )?
        .execute(params![span.start, cell, officers.first(), a.unit_code, a.domain])?;
    }
    judge_action(tx, &key)
}

impl super::Store {
    /// Imports checked actions, all or none. Returns how many.
    pub fn import_actions(&mut self, actions: &[(ImportedAction, Span)]) -> anyhow::Result<usize> {
        self.in_transaction(|tx| {
            for (a, span) in actions {
                put(tx, a, *span)?;
            }
            Ok(actions.len())
        })
    }
}

/// A CSV row of actions: like [`ImportedAction`], officers in one field.
/// Other columns of a case system's export are left aside.
#[derive(Debug, Clone, Deserialize)]
struct ActionRow {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    case_number: Option<String>,
    officers: String,
    #[serde(default)]
    unit_code: Option<String>,
    #[serde(default)]
    domain: Option<String>,
    start: String,
    end: String,
    #[serde(default)]
    place: Option<String>,
    #[serde(default)]
    lat: Option<f64>,
    #[serde(default)]
    lon: Option<f64>,
}

impl From<ActionRow> for ImportedAction {
    fn from(r: ActionRow) -> Self {
        let blank = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        Self {
            id: blank(r.id),
            case_number: blank(r.case_number),
            officers: Officers::Text(r.officers),
            unit_code: blank(r.unit_code),
            domain: blank(r.domain),
            start: r.start,
            end: r.end,
            place: blank(r.place),
            lat: r.lat,
            lon: r.lon,
        }
    }
}

/// Reads actions from CSV with a header row naming at least `officers`
/// (numbers separated by `;`), `start`, `end` and `id` or `case_number`
/// (also `unit_code`, `domain`, `place`, `lat`, `lon`; other columns are
/// left aside); every bad row named by line.
pub fn parse_actions_csv(text: &str) -> Result<Vec<(ImportedAction, Span)>, Vec<String>> {
    let rows: Vec<ActionRow> = super::fleet::parse_csv(text, |r: &ActionRow| {
        ImportedAction::from(r.clone())
            .check()
            .err()
            .unwrap_or_default()
    })?;
    checked(rows.into_iter().map(ImportedAction::from).collect())
}

/// Checks actions given as JSON; every bad one named by its place in the list.
pub fn check_actions(
    rows: Vec<ImportedAction>,
) -> Result<Vec<(ImportedAction, Span)>, Vec<String>> {
    let mut problems = Vec::new();
    for (i, a) in rows.iter().enumerate() {
        if let Err(p) = a.check() {
            problems.extend(p.into_iter().map(|p| format!("actions[{i}]: {p}")));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    checked(rows)
}

fn checked(rows: Vec<ImportedAction>) -> Result<Vec<(ImportedAction, Span)>, Vec<String>> {
    if rows.is_empty() {
        return Err(vec!["no actions: expected at least one".into()]);
    }
    rows.into_iter()
        .map(|a| {
            let span = a.check()?;
            Ok((a, span))
        })
        .collect()
}
