//! Values crossing the store's boundary, in SQLite's five storage classes,
//! and the conversions from and to Rust types. Both engines speak them: the
//! SQLite backend binds them as they are, the PostgreSQL backend converts
//! each to the type the server inferred for its placeholder.

use super::{Error, Result};

/// One value as stored or bound.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit integer (booleans are 0 and 1).
    Integer(i64),
    /// A double.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl Value {
    /// The storage class, for error messages.
    pub fn class(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Integer(_) => "an integer",
            Value::Real(_) => "a real",
            Value::Text(_) => "text",
            Value::Blob(_) => "a blob",
        }
    }
}

/// A Rust value that can be bound to a placeholder.
pub trait ToSql {
    /// The value to bind.
    fn to_value(&self) -> Value;
}

/// A Rust value that can be read from a column.
pub trait FromSql: Sized {
    /// Converts the column's value; `Err` carries what was found.
    fn from_value(v: &Value) -> std::result::Result<Self, String>;
}

impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToSql> ToSql for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}

impl ToSql for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

macro_rules! int_to_sql {
    ($($t:ty)+) => {$(
        impl ToSql for $t {
            fn to_value(&self) -> Value {
                Value::Integer(i64::from(*self))
            }
        }
    )+};
}
int_to_sql!(i64 i32 i16 i8 u32 u16 u8 bool);

impl ToSql for u64 {
    /// Values above `i64::MAX` are stored as the bit pattern, as rusqlite
    /// refuses them; the store never holds such a count.
    fn to_value(&self) -> Value {
        Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToSql for usize {
    fn to_value(&self) -> Value {
        Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToSql for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToSql for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToSql for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToSql for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToSql for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}

impl<const N: usize> ToSql for [u8; N] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl FromSql for Value {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        Ok(v.clone())
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

fn expected(what: &str, v: &Value) -> String {
    format!("expected {what}, found {}", v.class())
}

impl FromSql for i64 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Integer(i) => Ok(*i),
            v => Err(expected("an integer", v)),
        }
    }
}

macro_rules! int_from_sql {
    ($($t:ty)+) => {$(
        impl FromSql for $t {
            fn from_value(v: &Value) -> std::result::Result<Self, String> {
                let i = i64::from_value(v)?;
                <$t>::try_from(i).map_err(|_| format!("{i} is out of range for {}", stringify!($t)))
            }
        }
    )+};
}
int_from_sql!(i32 i16 u64 u32 u16 u8 usize);

impl FromSql for bool {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        Ok(i64::from_value(v)? != 0)
    }
}

impl FromSql for f64 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Real(f) => Ok(*f),
            Value::Integer(i) => Ok(*i as f64),
            v => Err(expected("a number", v)),
        }
    }
}

impl FromSql for String {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            v => Err(expected("text", v)),
        }
    }
}

impl FromSql for Vec<u8> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.as_bytes().to_vec()),
            v => Err(expected("a blob", v)),
        }
    }
}

/// Converts column `idx` of a row, naming the column in the error.
pub(super) fn convert<T: FromSql>(v: &Value, idx: usize, name: &str) -> Result<T> {
    T::from_value(v).map_err(|why| Error::Conversion {
        column: format!("{idx} ({name})"),
        why,
    })
}
