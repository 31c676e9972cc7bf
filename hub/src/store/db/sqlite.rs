//! The SQLite backend: rusqlite, with the store's values bound as they are.

use rusqlite::types::{ToSqlOutput, ValueRef};

use super::{Args, Error, Result, Value};

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Integer(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => Error::NoRows,
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Error::Constraint(e.to_string())
            }
            e => Error::Engine(e.to_string()),
        }
    }
}

fn value(v: ValueRef<'_>) -> Result<Value> {
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(
            std::str::from_utf8(t)
                .map_err(|e| Error::Engine(format!("stored text is not UTF-8: {e}")))?
                .to_owned(),
        ),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    })
}

/// Runs `stmt` with `args`, returning its column names and rows.
pub(super) fn query(
    stmt: &mut rusqlite::CachedStatement<'_>,
    args: Args,
) -> Result<(Vec<String>, Vec<Vec<Value>>)> {
    let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    let width = names.len();
    let mut out = Vec::new();
    let mut read = |mut rows: rusqlite::Rows<'_>| -> Result<()> {
        while let Some(r) = rows.next()? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(value(r.get_ref(i)?)?);
            }
            out.push(values);
        }
        Ok(())
    };
    match args {
        Args::Positional(values) => read(stmt.query(rusqlite::params_from_iter(values.iter()))?)?,
        Args::Named(pairs) => {
            let named: Vec<(&str, &dyn rusqlite::ToSql)> = pairs
                .iter()
                .map(|(n, v)| (n.as_str(), v as &dyn rusqlite::ToSql))
                .collect();
            read(stmt.query(named.as_slice())?)?
        }
    }
    Ok((names, out))
}

/// Runs `stmt` with `args`, returning the rows it changed.
pub(super) fn execute(stmt: &mut rusqlite::CachedStatement<'_>, args: Args) -> Result<usize> {
    Ok(match args {
        Args::Positional(values) => stmt.execute(rusqlite::params_from_iter(values.iter()))?,
        Args::Named(pairs) => {
            let named: Vec<(&str, &dyn rusqlite::ToSql)> = pairs
                .iter()
                .map(|(n, v)| (n.as_str(), v as &dyn rusqlite::ToSql))
                .collect();
            stmt.execute(named.as_slice())?
        }
    })
}
