//! The PostgreSQL end-to-end tests may use (`EVSYNC_TEST_POSTGRES`, which
//! `.ci/run` sets when one answers on 127.0.0.1:5432), and schemas made
//! for one test and dropped after it.

/// Environment variable naming the test database (`postgres://…`).
pub const POSTGRES_ENV: &str = "EVSYNC_TEST_POSTGRES";

/// The PostgreSQL URL to test against, or `None` (with the reason printed) to skip.
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "SKIPPED: {POSTGRES_ENV} is not set, so no PostgreSQL is used (.ci/run sets it)"
            );
            None
        }
    }
}

/// A schema name of its own for one test; the hub creates the schema on
/// first start, and it is dropped (with everything in it) when this is.
pub struct PgSchema {
    url: String,
    /// The schema's name.
    pub name: String,
}

impl PgSchema {
    /// A fresh name starting with `prefix` in the database at `url`.
    pub fn new(url: &str, prefix: &str) -> Self {
        Self {
            url: url.to_owned(),
            name: format!("{prefix}_{:08x}", fastrand::u32(..)),
        }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // A runtime of its own: Drop may run inside a test's runtime.
        let dropped = std::thread::spawn(move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .await?;
                Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("dropping test schema {}: {e:#}", self.name),
            Err(_) => eprintln!("dropping test schema {}: the thread panicked", self.name),
        }
    }
}
