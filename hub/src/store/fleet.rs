//! Units (执法主体), officers (执法人员) and who had which device when.
//!
//! Assignments are history, not a field: "who had recorder X on date D"
//! must be answerable for evidence long after X changed hands. Each
//! assignment opens when made (by an operator, a dock's check-out, or an
//! agent announcing another officer) and closes when the next one opens.

use super::db::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use super::{now, Store};

/// An enforcement unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// Unit number, 12 characters; the first six are its district's division code.
    pub unit_code: String,
    /// Name, e.g. 渝北区市场监督管理局.
    pub name: String,
    /// District division code (GB/T 2260), e.g. 500112.
    #[serde(default)]
    pub district_code: Option<String>,
    /// Enforcement domain code (执法领域), e.g. 01.
    #[serde(default)]
    pub domain: Option<String>,
    /// Parent unit, if any.
    #[serde(default)]
    pub parent_code: Option<String>,
}

/// An enforcement officer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Officer {
    /// Officer number (警号 / 执法证号), 6 digits.
    pub officer_id: String,
    /// Name.
    pub name: String,
    /// Unit the officer belongs to.
    #[serde(default)]
    pub unit_code: Option<String>,
    /// Enforcement domain code.
    #[serde(default)]
    pub domain: Option<String>,
    /// Whether the officer is in service.
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// One assignment of a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assignment {
    /// The device.
    pub device_id: String,
    /// Officer, if assigned to one.
    pub officer_id: Option<String>,
    /// Unit, if assigned to one.
    pub unit_code: Option<String>,
    /// Enforcement domain, if set.
    pub domain: Option<String>,
    /// Start (RFC 3339).
    pub from: String,
    /// End, `None` while it lasts.
    pub to: Option<String>,
    /// `operator`, `check_out`, `check_in`, `announce`, or `recorder` (what a
    /// docked recorder's own identity said, as its dock reported it).
    pub source: String,
    /// Who made it: the API token's name, or the agent that reported it.
    pub by: String,
}

/// What an operator assigns a device to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAssignment {
    /// Officer (6 digits), or none.
    #[serde(default)]
    pub officer_id: Option<String>,
    /// Unit (12 characters), or none.
    #[serde(default)]
    pub unit_code: Option<String>,
    /// Enforcement domain (2 digits), or none.
    #[serde(default)]
    pub domain: Option<String>,
}

fn digits(field: &str, value: &str, n: usize, problems: &mut Vec<String>) {
    if value.len() != n || !value.bytes().all(|b| b.is_ascii_digit()) {
        problems.push(format!("{field} = {value:?}: expected {n} digits"));
    }
}

fn unit_code_ok(field: &str, value: &str, problems: &mut Vec<String>) {
    if value.len() != 12 || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        problems.push(format!(
            "{field} = {value:?}: expected 12 letters or digits (the district's 6-digit code first)"
        ));
    }
}

impl NewAssignment {
    /// Every problem, each naming the field.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Some(o) = &self.officer_id {
            digits("officer_id", o, 6, &mut p);
        }
        if let Some(u) = &self.unit_code {
            unit_code_ok("unit_code", u, &mut p);
        }
        if let Some(d) = &self.domain {
            digits("domain", d, 2, &mut p);
        }
        p
    }
}

impl Unit {
    /// Every problem, each naming the field.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        unit_code_ok("unit_code", &self.unit_code, &mut p);
        if self.name.trim().is_empty() {
            p.push("name is empty: expected the unit's name".into());
        }
        if let Some(d) = &self.district_code {
            digits("district_code", d, 6, &mut p);
        }
        if let Some(d) = &self.domain {
            digits("domain", d, 2, &mut p);
        }
        if let Some(c) = &self.parent_code {
            unit_code_ok("parent_code", c, &mut p);
        }
        p
    }
}

impl Officer {
    /// Every problem, each naming the field.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        digits("officer_id", &self.officer_id, 6, &mut p);
        if self.name.trim().is_empty() {
            p.push("name is empty: expected the officer's name".into());
        }
        if let Some(u) = &self.unit_code {
            unit_code_ok("unit_code", u, &mut p);
        }
        if let Some(d) = &self.domain {
            digits("domain", d, 2, &mut p);
        }
        p
    }
}

/// Reads units from CSV with a header row naming at least `unit_code` and
/// `name` (also `district_code`, `domain`, `parent_code`; other columns are
/// ignored). Every bad row is reported, each with its line number.
pub fn parse_units_csv(text: &str) -> Result<Vec<Unit>, Vec<String>> {
    parse_csv(text, Unit::problems)
}

/// Reads officers from CSV with a header row naming at least `officer_id`
/// and `name` (also `unit_code`, `domain`, `active`).
pub fn parse_officers_csv(text: &str) -> Result<Vec<Officer>, Vec<String>> {
    parse_csv(text, Officer::problems)
}

pub(crate) fn parse_csv<T: serde::de::DeserializeOwned>(
    text: &str,
    problems_of: impl Fn(&T) -> Vec<String>,
) -> Result<Vec<T>, Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, row) in reader.deserialize::<T>().enumerate() {
        let line = i + 2; // the header is line 1
        match row {
            Ok(item) => {
                let p = problems_of(&item);
                if p.is_empty() {
                    out.push(item);
                } else {
                    problems.extend(p.into_iter().map(|p| format!("line {line}: {p}")));
                }
            }
            Err(e) => problems.push(format!("line {line}: {e}")),
        }
    }
    if out.is_empty() && problems.is_empty() {
        problems.push("no rows: expected a header line and at least one row".into());
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Units and officers alike: kept one by one or imported from CSV, all
/// rows or none.
pub trait Roster: serde::de::DeserializeOwned + Serialize + Clone + Send + 'static {
    /// `officer` or `unit`, for audit actions and messages.
    const KIND: &'static str;
    /// Its key: the officer's or unit's number.
    fn key(&self) -> &str;
    /// Every problem, each naming the field.
    fn problems(&self) -> Vec<String>;
    /// Rows from CSV text with a header line; every bad row named.
    fn parse_csv(text: &str) -> Result<Vec<Self>, Vec<String>>;
    /// Adds or replaces `rows` in one transaction; returns how many.
    fn upsert(store: &mut Store, rows: &[Self]) -> anyhow::Result<usize>;
}

impl Roster for Officer {
    const KIND: &'static str = "officer";
    fn key(&self) -> &str {
        &self.officer_id
    }
    fn problems(&self) -> Vec<String> {
        Officer::problems(self)
    }
    fn parse_csv(text: &str) -> Result<Vec<Self>, Vec<String>> {
        parse_officers_csv(text)
    }
    fn upsert(store: &mut Store, rows: &[Self]) -> anyhow::Result<usize> {
        store.upsert_officers(rows)
    }
}

impl Roster for Unit {
    const KIND: &'static str = "unit";
    fn key(&self) -> &str {
        &self.unit_code
    }
    fn problems(&self) -> Vec<String> {
        Unit::problems(self)
    }
    fn parse_csv(text: &str) -> Result<Vec<Self>, Vec<String>> {
        parse_units_csv(text)
    }
    fn upsert(store: &mut Store, rows: &[Self]) -> anyhow::Result<usize> {
        store.upsert_units(rows)
    }
}

const ASSIGNMENT_COLUMNS: &str =
    "device_id, officer_id, unit_code, domain, from_at, to_at, source, by_whom";

fn assignment(r: &super::db::Row) -> super::db::Result<Assignment> {
    Ok(Assignment {
        device_id: r.get(0)?,
        officer_id: r.get(1)?,
        unit_code: r.get(2)?,
        domain: r.get(3)?,
        from: r.get(4)?,
        to: r.get(5)?,
        source: r.get(6)?,
        by: r.get(7)?,
    })
}

/// The device's assignment in force now.
pub(crate) fn open_assignment(
    conn: &super::db::Connection,
    device_id: &str,
) -> anyhow::Result<Option<Assignment>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE device_id = ?1 AND to_at IS NULL ORDER BY id DESC LIMIT 1"
        ))?
        .query_row([device_id], assignment)
        .optional()?)
}

/// Closes the device's open assignment at `at` and opens `new` from `at`,
/// and keeps the device row's current officer, unit and domain in step. A
/// late report — `at` before the latest assignment's start, as when a dock
/// that was offline syncs a check-out after an operator's change — is put
/// into the history where it belongs (ending where the next one starts),
/// and what is in force now stays.
pub(crate) fn assign_in(
    tx: &Transaction<'_>,
    device_id: &str,
    new: &NewAssignment,
    at: &str,
    source: &str,
    by: &str,
) -> anyhow::Result<()> {
    let next: Option<String> = tx
        .prepare_cached(
            "SELECT MIN(from_at) FROM assignments WHERE device_id = ?1 AND from_at > ?2",
        )?
        .query_row(params![device_id, at], |r| r.get(0))?;
    if let Some(next) = next {
        tx.prepare_cached(
            "UPDATE assignments SET to_at = ?2 WHERE device_id = ?1 AND from_at <= ?2 AND (to_at IS NULL OR to_at > ?2)",
        )?
        .execute(params![device_id, at])?;
        tx.prepare_cached(
            "INSERT INTO assignments (device_id, officer_id, unit_code, domain, from_at, to_at, source, by_whom)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            device_id,
            new.officer_id,
            new.unit_code,
            new.domain,
            at,
            next,
            source,
            by
        ])?;
        return Ok(());
    }
    tx.prepare_cached("UPDATE assignments SET to_at = ?2 WHERE device_id = ?1 AND to_at IS NULL")?
        .execute(params![device_id, at])?;
    tx.prepare_cached(
        "INSERT INTO assignments (device_id, officer_id, unit_code, domain, from_at, source, by_whom)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        device_id,
        new.officer_id,
        new.unit_code,
        new.domain,
        at,
        source,
        by
    ])?;
    tx.prepare_cached(
        "UPDATE devices SET officer_id = ?2, unit_code = ?3, domain = ?4 WHERE device_id = ?1",
    )?
    .execute(params![
        device_id,
        new.officer_id,
        new.unit_code,
        new.domain
    ])?;
    Ok(())
}

impl Store {
    /// Assigns a device (operator action by `by`). Errors name an unknown device or a bad field.
    pub fn assign(&mut self, device_id: &str, new: &NewAssignment, by: &str) -> anyhow::Result<()> {
        let p = new.problems();
        if !p.is_empty() {
            anyhow::bail!("{}", p.join("; "));
        }
        if self.device(device_id)?.is_none() {
            anyhow::bail!("no device {device_id:?} (see `evsync-hub devices list`)");
        }
        self.in_transaction(|tx| assign_in(tx, device_id, new, &now(), "operator", by))
    }

    /// A device's assignments, oldest first.
    pub fn assignments(&self, device_id: &str) -> anyhow::Result<Vec<Assignment>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE device_id = ?1 ORDER BY from_at, id"
        ))?;
        let rows = stmt
            .query_map([device_id], assignment)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Who had the device at `at` (RFC 3339, as stored): the assignment in force then.
    pub fn assignment_at(&self, device_id: &str, at: &str) -> anyhow::Result<Option<Assignment>> {
        Ok(self
            .conn()
            .prepare_cached(&format!(
                "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE device_id = ?1 AND from_at <= ?2
                 AND (to_at IS NULL OR to_at > ?2) ORDER BY from_at DESC, id DESC LIMIT 1"
            ))?
            .query_row(params![device_id, at], assignment)
            .optional()?)
    }

    /// Adds or replaces units, all in one transaction. Returns how many.
    pub fn upsert_units(&mut self, units: &[Unit]) -> anyhow::Result<usize> {
        let t = now();
        self.in_transaction(|tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO units (unit_code, name, district_code, domain, parent_code, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (unit_code) DO UPDATE SET name = ?2, district_code = ?3, domain = ?4,
                     parent_code = ?5, updated_at = ?6",
            )?;
            for u in units {
                stmt.execute(params![
                    u.unit_code,
                    u.name,
                    u.district_code,
                    u.domain,
                    u.parent_code,
                    t
                ])?;
            }
            Ok(units.len())
        })
    }

    /// All units by code.
    pub fn units(&self) -> anyhow::Result<Vec<Unit>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT unit_code, name, district_code, domain, parent_code FROM units ORDER BY unit_code",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Unit {
                    unit_code: r.get(0)?,
                    name: r.get(1)?,
                    district_code: r.get(2)?,
                    domain: r.get(3)?,
                    parent_code: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Adds or replaces officers, all in one transaction. Returns how many.
    pub fn upsert_officers(&mut self, officers: &[Officer]) -> anyhow::Result<usize> {
        let t = now();
        self.in_transaction(|tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO officers (officer_id, name, unit_code, domain, active, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (officer_id) DO UPDATE SET name = ?2, unit_code = ?3, domain = ?4,
                     active = ?5, updated_at = ?6",
            )?;
            for o in officers {
                stmt.execute(params![
                    o.officer_id,
                    o.name,
                    o.unit_code,
                    o.domain,
                    o.active,
                    t
                ])?;
            }
            Ok(officers.len())
        })
    }

    /// All officers by number; only those of `unit` when given.
    pub fn officers(&self, unit: Option<&str>) -> anyhow::Result<Vec<Officer>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT officer_id, name, unit_code, domain, active FROM officers
             WHERE CAST(?1 AS TEXT) IS NULL OR unit_code = ?1 ORDER BY officer_id",
        )?;
        let rows = stmt
            .query_map([unit], |r| {
                Ok(Officer {
                    officer_id: r.get(0)?,
                    name: r.get(1)?,
                    unit_code: r.get(2)?,
                    domain: r.get(3)?,
                    active: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_units_csv_with_bad_rows_names_every_line_and_field() {
        let text = "unit_code,name,district_code,domain\n\
                    500112000001,渝北区市场监督管理局,500112,01\n\
                    50011,短,500112,01\n\
                    500103000002,,5001,1\n";
        let err = parse_units_csv(text).unwrap_err();
        assert_eq!(err.len(), 4, "{err:?}");
        assert!(
            err[0].starts_with("line 3: unit_code = \"50011\""),
            "{err:?}"
        );
        assert!(err[1].starts_with("line 4: name is empty"), "{err:?}");
        assert!(
            err[2].starts_with("line 4: district_code = \"5001\""),
            "{err:?}"
        );
        assert!(err[3].starts_with("line 4: domain = \"1\""), "{err:?}");
        let ok = parse_units_csv("unit_code,name\n500112000001,渝北区市场监督管理局\n").unwrap();
        assert_eq!(ok[0].name, "渝北区市场监督管理局");
    }

    #[test]
    fn an_officers_csv_row_with_a_bad_active_flag_is_refused_with_its_line() {
        let err = parse_officers_csv("officer_id,name,active\n200001,王伟,maybe\n").unwrap_err();
        assert!(err[0].starts_with("line 2:"), "{err:?}");
        let ok =
            parse_officers_csv("officer_id,name,unit_code\n200001,王伟,500109000001\n").unwrap();
        assert!(ok[0].active);
    }

    #[test]
    fn who_had_a_device_on_a_date_is_answered_from_its_history() {
        for e in super::super::tests::engines() {
            let (_dir, mut s) = super::super::tests::store_on(&e);
            s.register_recorder("ZFY0001").unwrap();
            let set = |s: &mut Store, officer: &str, at: &str| {
                s.in_transaction(|tx| {
                    assign_in(
                        tx,
                        "ZFY0001",
                        &NewAssignment {
                            officer_id: Some(officer.into()),
                            unit_code: Some("500109000001".into()),
                            domain: Some("01".into()),
                        },
                        at,
                        "operator",
                        "ops",
                    )
                })
                .unwrap()
            };
            set(&mut s, "200001", "2026-11-01T00:00:00.000Z");
            set(&mut s, "200002", "2026-11-15T08:00:00.000Z");
            let on = |s: &Store, at: &str| {
                s.assignment_at("ZFY0001", at)
                    .unwrap()
                    .and_then(|a| a.officer_id)
            };
            assert_eq!(on(&s, "2026-10-31T23:59:59.000Z"), None);
            assert_eq!(
                on(&s, "2026-11-10T12:00:00.000Z").as_deref(),
                Some("200001")
            );
            assert_eq!(
                on(&s, "2026-11-15T08:00:00.000Z").as_deref(),
                Some("200002")
            );
            let history = s.assignments("ZFY0001").unwrap();
            assert_eq!(history.len(), 2);
            assert_eq!(history[0].to.as_deref(), Some("2026-11-15T08:00:00.000Z"));
            assert_eq!(history[1].to, None);
            let d = s.device("ZFY0001").unwrap().unwrap();
            assert_eq!(d.officer_id.as_deref(), Some("200002"));
            assert_eq!(d.domain.as_deref(), Some("01"));

            // A check-out at 11-10 synced late (after the 11-15 change) slots in
            // between: 200001 until 11-10, 200003 until 11-15, 200002 now.
            set(&mut s, "200003", "2026-11-10T09:30:00.000Z");
            let history = s.assignments("ZFY0001").unwrap();
            let spans: Vec<(Option<&str>, &str, Option<&str>)> = history
                .iter()
                .map(|a| (a.officer_id.as_deref(), a.from.as_str(), a.to.as_deref()))
                .collect();
            assert_eq!(
                spans,
                vec![
                    (
                        Some("200001"),
                        "2026-11-01T00:00:00.000Z",
                        Some("2026-11-10T09:30:00.000Z")
                    ),
                    (
                        Some("200003"),
                        "2026-11-10T09:30:00.000Z",
                        Some("2026-11-15T08:00:00.000Z")
                    ),
                    (Some("200002"), "2026-11-15T08:00:00.000Z", None),
                ]
            );
            assert_eq!(
                on(&s, "2026-11-12T00:00:00.000Z").as_deref(),
                Some("200003")
            );
            assert_eq!(
                on(&s, "2026-11-20T00:00:00.000Z").as_deref(),
                Some("200002")
            );
            let d = s.device("ZFY0001").unwrap().unwrap();
            assert_eq!(
                d.officer_id.as_deref(),
                Some("200002"),
                "what is in force stays"
            );
        }
    }
}
