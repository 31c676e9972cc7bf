//! The PostgreSQL backend: one `tokio-postgres` connection per store
//! handle. The connections' I/O runs on a small runtime of its own, so a
//! store call blocks only its caller — from a plain thread, a blocking task
//! or a command-line `main` alike — and never needs the caller's runtime.
//!
//! Values are converted to whatever type the server inferred for each
//! placeholder (an integer bound where the column is `DOUBLE PRECISION` is
//! sent as a double), and results are read back into the five storage
//! classes of [`Value`], `NUMERIC` (what `SUM` of a `BIGINT` gives) included.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{FromSql as PgFromSql, IsNull, ToSql as PgToSql, Type};
use tokio_postgres::{Client, NoTls, Statement};

use super::placeholders::{self, Rewritten};
use super::{Error, Result, Value};

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// The runtime the connections' I/O runs on.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("evsync-postgres")
                .enable_all()
                .build()
                .map_err(|e| format!("starting the PostgreSQL I/O thread: {e}"))
        })
        .as_ref()
        .map_err(|e| Error::Connect(e.clone()))
}

/// Key of the advisory lock taken while creating the store's schema.
const SCHEMA_LOCK: i64 = 0x6576_7379_6e63_0001;

/// A prepared query and the names behind its placeholders.
#[derive(Clone)]
pub(super) struct Prepared {
    pub(super) statement: Statement,
    pub(super) names: Vec<String>,
}

/// One connection.
pub(super) struct Postgres {
    client: Client,
    cache: RefCell<HashMap<String, Prepared>>,
}

impl Postgres {
    /// Connects to `url` and, if given, works in `schema` (created if missing).
    pub(super) fn connect(url: &str, schema: Option<&str>, password: Option<&str>) -> Result<Self> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| Error::Connect(format!("{}: {e}", redact(url))))?;
        if let Some(p) = password {
            config.password(p);
        }
        if config.get_application_name().is_none() {
            config.application_name("evsync-hub");
        }
        let rt = runtime()?;
        let (client, connection) =
            futures_executor::block_on(rt.spawn(async move { config.connect(NoTls).await }))
                .map_err(|e| Error::Connect(format!("connecting: {e}")))?
                .map_err(|e| Error::Connect(format!("{}: {e}", redact(url))))?;
        rt.spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "PostgreSQL connection closed");
            }
        });
        let pg = Self {
            client,
            cache: RefCell::new(HashMap::new()),
        };
        if let Some(schema) = schema {
            check_schema_name(schema)?;
            // CREATE SCHEMA IF NOT EXISTS races with itself: hubs starting
            // together take turns.
            pg.batch(&format!(
                "SELECT pg_advisory_lock({SCHEMA_LOCK});
                 CREATE SCHEMA IF NOT EXISTS \"{schema}\";
                 SELECT pg_advisory_unlock({SCHEMA_LOCK});
                 SET search_path TO \"{schema}\""
            ))?;
        }
        Ok(pg)
    }

    /// Runs statements without parameters.
    pub(super) fn batch(&self, sql: &str) -> Result<()> {
        futures_executor::block_on(self.client.batch_execute(sql)).map_err(pg_error)
    }

    /// Prepares (once per connection) the SQLite-style `sql`.
    pub(super) fn prepare(&self, sql: &str) -> Result<Prepared> {
        if let Some(p) = self.cache.borrow().get(sql) {
            return Ok(p.clone());
        }
        let Rewritten { sql: text, names } = placeholders::rewrite(sql)?;
        let statement = futures_executor::block_on(self.client.prepare(&text))
            .map_err(|e| Error::Prepare(format!("{}: {sql}", pg_message(&e))))?;
        let p = Prepared { statement, names };
        self.cache.borrow_mut().insert(sql.to_owned(), p.clone());
        Ok(p)
    }

    /// Runs a prepared query, returning its column names and rows.
    pub(super) fn query(
        &self,
        p: &Prepared,
        args: &[Value],
    ) -> Result<(Vec<String>, Vec<Vec<Value>>)> {
        let params: Vec<&(dyn PgToSql + Sync)> =
            args.iter().map(|v| v as &(dyn PgToSql + Sync)).collect();
        let rows = futures_executor::block_on(self.client.query(&p.statement, &params))
            .map_err(pg_error)?;
        let names = p
            .statement
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut values = Vec::with_capacity(row.len());
            for i in 0..row.len() {
                let cell: Cell = row.try_get(i).map_err(|e| Error::Conversion {
                    column: format!("{i} ({})", row.columns()[i].name()),
                    why: e.to_string(),
                })?;
                values.push(cell.0);
            }
            out.push(values);
        }
        Ok((names, out))
    }

    /// Runs a prepared statement, returning the rows it changed.
    pub(super) fn execute(&self, p: &Prepared, args: &[Value]) -> Result<usize> {
        let params: Vec<&(dyn PgToSql + Sync)> =
            args.iter().map(|v| v as &(dyn PgToSql + Sync)).collect();
        let n = futures_executor::block_on(self.client.execute(&p.statement, &params))
            .map_err(pg_error)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

/// A schema name the store may create: letters, digits and `_`.
fn check_schema_name(schema: &str) -> Result<()> {
    if schema.is_empty()
        || schema.len() > 63
        || !schema
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(Error::Connect(format!(
            "schema = {schema:?}: expected 1 to 63 letters, digits or underscores"
        )));
    }
    Ok(())
}

/// The URL with any password replaced, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url
            .split_whitespace()
            .map(|kv| {
                if kv.starts_with("password=") {
                    "password=***"
                } else {
                    kv
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

fn pg_error(e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) if db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION => {
            Error::Constraint(pg_message(&e))
        }
        Some(db) if db.code().code().starts_with("23") => Error::Constraint(pg_message(&e)),
        _ => Error::Engine(pg_message(&e)),
    }
}

impl PgToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => integer_to_sql(*i, ty, out),
            Value::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN => {
                    f.to_string().as_str().to_sql(ty, out)
                }
                _ => Err(format!("cannot send a real as {ty}").into()),
            },
            Value::Text(s) => match *ty {
                Type::JSONB => {
                    out.put_u8(1);
                    out.put_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                Type::JSON
                | Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::UNKNOWN => {
                    out.put_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                Type::INT8 | Type::INT4 | Type::INT2 => match s.parse::<i64>() {
                    Ok(i) => integer_to_sql(i, ty, out),
                    Err(_) => Err(format!("cannot send text {s:?} as {ty}").into()),
                },
                _ => Err(format!("cannot send text as {ty}").into()),
            },
            Value::Blob(b) => match *ty {
                Type::BYTEA => {
                    out.put_slice(b);
                    Ok(IsNull::No)
                }
                _ => Err(format!("cannot send a blob as {ty}").into()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

fn integer_to_sql(i: i64, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
    match *ty {
        Type::INT8 => i.to_sql(ty, out),
        Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
        Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
        Type::FLOAT8 => (i as f64).to_sql(ty, out),
        Type::FLOAT4 => (i as f32).to_sql(ty, out),
        Type::BOOL => (i != 0).to_sql(ty, out),
        Type::NUMERIC => {
            numeric_from_i64(i, out);
            Ok(IsNull::No)
        }
        Type::TEXT | Type::VARCHAR | Type::UNKNOWN => i.to_string().as_str().to_sql(ty, out),
        _ => Err(format!("cannot send an integer as {ty}").into()),
    }
}

/// `NUMERIC`'s binary form of an integer: base-10000 digits, most
/// significant first.
fn numeric_from_i64(i: i64, out: &mut BytesMut) {
    let mut n = i.unsigned_abs();
    let mut digits = Vec::new();
    while n > 0 {
        digits.push((n % 10_000) as i16);
        n /= 10_000;
    }
    digits.reverse();
    let count = digits.len() as i16;
    out.put_i16(count);
    out.put_i16(count - 1);
    out.put_u16(if i < 0 { 0x4000 } else { 0 });
    out.put_u16(0);
    for d in digits {
        out.put_i16(d);
    }
}

/// `NUMERIC`'s binary form read back: an integer when it has no fraction
/// and fits, otherwise a double.
fn numeric_to_value(raw: &[u8]) -> std::result::Result<Value, BoxError> {
    let word = |k: usize| -> std::result::Result<u16, BoxError> {
        raw.get(k..k + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated NUMERIC".into())
    };
    let count = word(0)? as usize;
    let weight = word(2)? as i16 as i32;
    let sign = word(4)?;
    let scale = word(6)?;
    if sign == 0xC000 {
        return Ok(Value::Real(f64::NAN));
    }
    let mut digits = Vec::with_capacity(count);
    for k in 0..count {
        digits.push(word(8 + 2 * k)? as i64);
    }
    let negative = sign == 0x4000;
    let integral = digits
        .iter()
        .enumerate()
        .all(|(k, d)| *d == 0 || weight - k as i32 >= 0);
    if integral && scale == 0 {
        let mut acc: Option<i64> = Some(0);
        for (k, d) in digits.iter().enumerate() {
            let power = weight - k as i32;
            acc = acc.and_then(|a| {
                10_000i64
                    .checked_pow(power as u32)
                    .and_then(|p| d.checked_mul(p))
                    .and_then(|v| a.checked_add(v))
            });
        }
        if let Some(a) = acc {
            return Ok(Value::Integer(if negative { -a } else { a }));
        }
    }
    let mut f = 0.0f64;
    for (k, d) in digits.iter().enumerate() {
        f += *d as f64 * 10_000f64.powi(weight - k as i32);
    }
    Ok(Value::Real(if negative { -f } else { f }))
}

/// One result cell in a storage class.
struct Cell(Value);

impl<'a> PgFromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxError> {
        let v = match *ty {
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Integer(i16::from_sql(ty, raw)?.into()),
            Type::OID => Value::Integer(u32::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Integer(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)?.into()),
            Type::NUMERIC => numeric_to_value(raw)?,
            Type::BYTEA => Value::Blob(raw.to_vec()),
            Type::JSONB => {
                Value::Text(std::str::from_utf8(raw.get(1..).unwrap_or_default())?.to_owned())
            }
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::UNKNOWN => {
                Value::Text(std::str::from_utf8(raw)?.to_owned())
            }
            _ => return Err(format!("unsupported column type {ty}").into()),
        };
        Ok(Cell(v))
    }

    fn from_sql_null(_: &Type) -> std::result::Result<Self, BoxError> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_round_trip_and_passwords_are_redacted() {
        for i in [
            0i64,
            1,
            -1,
            9_999,
            10_000,
            123_456_789,
            -987_654_321_000,
            i64::MAX,
        ] {
            let mut buf = BytesMut::new();
            numeric_from_i64(i, &mut buf);
            assert_eq!(numeric_to_value(&buf).unwrap(), Value::Integer(i), "{i}");
        }
        // 12.5: one digit before the point (weight 0), 5000 after, scale 1.
        let raw = [0, 2, 0, 0, 0, 0, 0, 1, 0, 12, 0x13, 0x88];
        assert_eq!(numeric_to_value(&raw).unwrap(), Value::Real(12.5));
        assert_eq!(
            redact("postgres://hub:s3cret@db:5432/evsync"),
            "postgres://hub:***@db:5432/evsync"
        );
        assert_eq!(
            redact("host=db user=hub password=s3cret"),
            "host=db user=hub password=***"
        );
        assert!(check_schema_name("hub_1").is_ok());
        assert!(check_schema_name("a\"; DROP").is_err());
    }
}
