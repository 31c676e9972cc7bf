//! One way to talk to the store's engine, SQLite (embedded, the default) or
//! PostgreSQL (several hubs sharing one database). The interface follows
//! rusqlite's — `prepare_cached`, `query_row`, `query_map`, `params!`,
//! `optional()` — so the store's queries read the same whichever engine runs
//! them. Queries are written once, in the SQL both engines accept, with
//! SQLite's placeholders (rewritten for PostgreSQL by [`placeholders`]);
//! where the engines differ, [`Connection::dialect`] tells the query which
//! form to use.

mod placeholders;
mod postgres;
mod sqlite;
mod value;

use std::sync::Arc;

pub use self::postgres::redact;
pub use value::{FromSql, ToSql, Value};

/// What went wrong talking to the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A query that must return a row returned none.
    #[error("the query returned no rows")]
    NoRows,
    /// A column held something the caller could not take.
    #[error("column {column}: {why}")]
    Conversion {
        /// Index and name of the column.
        column: String,
        /// What was expected and found.
        why: String,
    },
    /// A unique, foreign-key, not-null or check constraint refused a change.
    #[error("constraint violated: {0}")]
    Constraint(String),
    /// The engine refused to prepare a query.
    #[error("preparing a query: {0}")]
    Prepare(String),
    /// A query was malformed before it reached the engine.
    #[error("{0}")]
    Query(String),
    /// The connection could not be made.
    #[error("connecting to the store: {0}")]
    Connect(String),
    /// Anything else the engine said.
    #[error("{0}")]
    Engine(String),
}

impl Error {
    /// A conversion error for a value read by hand (e.g. an unknown state name).
    pub fn conversion(column: usize, why: impl Into<String>) -> Self {
        Error::Conversion {
            column: column.to_string(),
            why: why.into(),
        }
    }
}

/// The store's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Which engine a connection talks to, for the few queries that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Dialect {
    /// `INDEXED BY <index>` on SQLite, whose planner keeps no statistics
    /// and must be told; nothing on PostgreSQL, whose planner has them.
    pub fn indexed_by(self, index: &str) -> String {
        match self {
            Dialect::Sqlite => format!("INDEXED BY {index}"),
            Dialect::Postgres => String::new(),
        }
    }
}

/// Arguments for one run of a statement.
pub enum Args {
    /// `?N` placeholders, in order.
    Positional(Vec<Value>),
    /// `:name` placeholders.
    Named(Vec<(String, Value)>),
}

/// What can be bound to a statement's placeholders.
pub trait Params {
    /// The values to bind.
    fn args(self) -> Args;
}

impl Params for [&dyn ToSql; 0] {
    fn args(self) -> Args {
        Args::Positional(Vec::new())
    }
}

impl Params for () {
    fn args(self) -> Args {
        Args::Positional(Vec::new())
    }
}

impl Params for &[&dyn ToSql] {
    fn args(self) -> Args {
        Args::Positional(self.iter().map(|v| v.to_value()).collect())
    }
}

impl Params for &[(&str, &dyn ToSql)] {
    fn args(self) -> Args {
        Args::Named(
            self.iter()
                .map(|(n, v)| ((*n).to_owned(), v.to_value()))
                .collect(),
        )
    }
}

impl Params for Vec<Value> {
    fn args(self) -> Args {
        Args::Positional(self)
    }
}

macro_rules! tuple_params {
    ($(($($t:ident $i:tt),+))+) => {$(
        impl<$($t: ToSql),+> Params for ($($t,)+) {
            fn args(self) -> Args {
                Args::Positional(vec![$(self.$i.to_value()),+])
            }
        }
    )+};
}
tuple_params! {
    (A 0)
    (A 0, B 1)
    (A 0, B 1, C 2)
    (A 0, B 1, C 2, D 3)
    (A 0, B 1, C 2, D 3, E 4)
    (A 0, B 1, C 2, D 3, E 4, F 5)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11)
}

macro_rules! array_params {
    ($($n:literal)+) => {$(
        impl<T: ToSql> Params for [T; $n] {
            fn args(self) -> Args {
                Args::Positional(self.iter().map(ToSql::to_value).collect())
            }
        }
    )+};
}
array_params!(1 2 3 4 5 6 7 8);

/// Positional arguments, as `&[&dyn ToSql]`.
macro_rules! params {
    () => {
        &[] as &[&dyn $crate::store::db::ToSql]
    };
    ($($param:expr),+ $(,)?) => {
        &[$(&$param as &dyn $crate::store::db::ToSql),+] as &[&dyn $crate::store::db::ToSql]
    };
}
pub(crate) use params;

/// Named arguments, as `&[(&str, &dyn ToSql)]`.
macro_rules! named_params {
    ($($name:literal: $value:expr),+ $(,)?) => {
        &[$(($name, &$value as &dyn $crate::store::db::ToSql)),+]
            as &[(&str, &dyn $crate::store::db::ToSql)]
    };
}
pub(crate) use named_params;

/// A column of a row, by position or by name.
pub trait RowIndex {
    /// The position in `names`, if there is such a column.
    fn position(&self, names: &[String]) -> Option<usize>;
}

impl RowIndex for usize {
    fn position(&self, names: &[String]) -> Option<usize> {
        (*self < names.len()).then_some(*self)
    }
}

impl RowIndex for &str {
    fn position(&self, names: &[String]) -> Option<usize> {
        names.iter().position(|n| n.eq_ignore_ascii_case(self))
    }
}

/// One row of a result.
#[derive(Debug, Clone)]
pub struct Row {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    /// The value of a column, converted.
    pub fn get<I: RowIndex, T: FromSql>(&self, idx: I) -> Result<T> {
        let i = idx.position(&self.names).ok_or_else(|| Error::Conversion {
            column: format!("{:?}", self.names),
            why: "no such column in the result".into(),
        })?;
        value::convert(&self.values[i], i, &self.names[i])
    }
}

/// The rows of a result, one at a time.
pub struct Rows {
    rows: std::vec::IntoIter<Row>,
    current: Option<Row>,
}

impl Rows {
    /// The next row, if any.
    pub fn next(&mut self) -> Result<Option<&Row>> {
        self.current = self.rows.next();
        Ok(self.current.as_ref())
    }
}

fn rows(names: Vec<String>, values: Vec<Vec<Value>>) -> Vec<Row> {
    let names: Arc<[String]> = names.into();
    values
        .into_iter()
        .map(|values| Row {
            names: names.clone(),
            values,
        })
        .collect()
}

/// Key of the PostgreSQL advisory lock every writing transaction holds.
pub const WRITER_LOCK: i64 = 0x6576_7379_6e63_0002;

enum Backend {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Postgres),
}

/// A connection to the store's engine.
pub struct Connection {
    backend: Backend,
}

enum Prepared<'c> {
    Sqlite(rusqlite::CachedStatement<'c>),
    Postgres(&'c postgres::Postgres, postgres::Prepared),
}

/// A prepared query (cached per connection).
pub struct Statement<'c> {
    inner: Prepared<'c>,
}

impl Statement<'_> {
    fn run(&mut self, params: impl Params) -> Result<Vec<Row>> {
        let (names, values) = match &mut self.inner {
            Prepared::Sqlite(s) => sqlite::query(s, params.args())?,
            Prepared::Postgres(pg, p) => pg.query(p, &pg_args(p, params.args())?)?,
        };
        Ok(rows(names, values))
    }

    /// Runs the statement, returning the number of rows changed.
    pub fn execute(&mut self, params: impl Params) -> Result<usize> {
        match &mut self.inner {
            Prepared::Sqlite(s) => sqlite::execute(s, params.args()),
            Prepared::Postgres(pg, p) => pg.execute(p, &pg_args(p, params.args())?),
        }
    }

    /// Runs the query; its rows one at a time.
    pub fn query(&mut self, params: impl Params) -> Result<Rows> {
        Ok(Rows {
            rows: self.run(params)?.into_iter(),
            current: None,
        })
    }

    /// The first row, mapped; [`Error::NoRows`] if there is none.
    pub fn query_row<T>(
        &mut self,
        params: impl Params,
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        match self.run(params)?.first() {
            Some(r) => f(r),
            None => Err(Error::NoRows),
        }
    }

    /// Every row, mapped.
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let mapped: Vec<Result<T>> = self.run(params)?.iter().map(f).collect();
        Ok(mapped.into_iter())
    }

    /// Whether the query returns any row.
    pub fn exists(&mut self, params: impl Params) -> Result<bool> {
        Ok(!self.run(params)?.is_empty())
    }
}

/// Arguments in the order of the PostgreSQL statement's `$N`.
fn pg_args(p: &postgres::Prepared, args: Args) -> Result<Vec<Value>> {
    match args {
        Args::Positional(v) => Ok(v),
        Args::Named(mut pairs) => p
            .names
            .iter()
            .map(|name| {
                let k = pairs.iter().position(|(n, _)| n == name).ok_or_else(|| {
                    Error::Query(format!("no value given for the placeholder {name}"))
                })?;
                Ok(std::mem::replace(&mut pairs[k].1, Value::Null))
            })
            .collect(),
    }
}

impl Connection {
    /// Opens (creating) the SQLite database at `path`: WAL, full sync,
    /// foreign keys on, waiting up to 10 s for another writer.
    pub fn open_sqlite(path: &std::path::Path) -> Result<Self> {
        let conn = rusqlite::Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(Self {
            backend: Backend::Sqlite(conn),
        })
    }

    /// Connects to PostgreSQL at `url` (with `password` if the URL has
    /// none), working in `schema` if given.
    pub fn open_postgres(url: &str, schema: Option<&str>, password: Option<&str>) -> Result<Self> {
        Ok(Self {
            backend: Backend::Postgres(postgres::Postgres::connect(url, schema, password)?),
        })
    }

    /// Which engine this is.
    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The SQLite connection, for what only SQLite has (pragmas).
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.backend {
            Backend::Sqlite(c) => Some(c),
            Backend::Postgres(_) => None,
        }
    }

    /// Prepares `sql` (once per connection).
    pub fn prepare_cached(&self, sql: &str) -> Result<Statement<'_>> {
        let inner = match &self.backend {
            Backend::Sqlite(c) => Prepared::Sqlite(c.prepare_cached(sql)?),
            Backend::Postgres(pg) => Prepared::Postgres(pg, pg.prepare(sql)?),
        };
        Ok(Statement { inner })
    }

    /// Prepares `sql`; the same as [`Self::prepare_cached`].
    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        self.prepare_cached(sql)
    }

    /// Runs one statement, returning the number of rows changed.
    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    /// The first row of a query, mapped.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// Runs statements without parameters, separated by `;`.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Backend::Postgres(pg) => pg.batch(sql),
        }
    }

    /// Starts a transaction that writes. Writers take turns, whichever
    /// engine and however many hubs: SQLite's `BEGIN IMMEDIATE` takes the
    /// database's write lock now; on PostgreSQL every writing transaction
    /// first takes one advisory lock ([`WRITER_LOCK`]). So the feed's
    /// positions (`hub_seq`) become visible in the order they were handed
    /// out, and a reader that has seen position N never later finds a new
    /// record below N — the feed cursor stays exactly-once across hubs.
    pub fn transaction(&mut self) -> Result<Transaction<'_>> {
        match &self.backend {
            Backend::Sqlite(c) => c.execute_batch("BEGIN IMMEDIATE")?,
            Backend::Postgres(pg) => pg.batch(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK})"
            ))?,
        }
        Ok(Transaction {
            conn: self,
            open: true,
        })
    }
}

impl Connection {
    /// Starts a read-only transaction: every query in it sees the store as
    /// of one moment.
    pub fn read_transaction(&self) -> Result<ReadTransaction<'_>> {
        self.execute_batch(match self.dialect() {
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        })?;
        Ok(ReadTransaction {
            conn: self,
            open: true,
        })
    }
}

/// A read-only transaction; ended on [`Self::finish`] or when dropped.
pub struct ReadTransaction<'c> {
    conn: &'c Connection,
    open: bool,
}

impl ReadTransaction<'_> {
    /// Ends it.
    pub fn finish(mut self) -> Result<()> {
        self.open = false;
        self.conn.execute_batch("COMMIT")
    }
}

impl std::ops::Deref for ReadTransaction<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for ReadTransaction<'_> {
    fn drop(&mut self) {
        if self.open {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "ending a read transaction failed");
            }
        }
    }
}

/// An open transaction; rolled back when dropped without [`Self::commit`].
pub struct Transaction<'c> {
    conn: &'c mut Connection,
    open: bool,
}

impl Transaction<'_> {
    /// Commits it.
    pub fn commit(mut self) -> Result<()> {
        // A commit that fails (SQLite: busy) leaves the transaction to be
        // rolled back on drop.
        self.conn.execute_batch("COMMIT")?;
        self.open = false;
        Ok(())
    }
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rolling back a transaction failed");
            }
        }
    }
}

/// `optional()` on a query's result: no row is `None`, not an error.
pub trait OptionalExtension<T> {
    /// `Ok(None)` for [`Error::NoRows`].
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
