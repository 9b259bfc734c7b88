//! Throw-away databases for tests, each cloned from a migrated template.
//!
//! The admin connection comes from `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); that role must be allowed to create and
//! drop databases. Each process migrates its own template once, then every
//! [`fresh_database`] is a `CREATE DATABASE … TEMPLATE`, which is much faster than migrating.
//! Names carry a UUID v7 (so they also say when they were made): parallel tests and parallel
//! test processes never collide, and leftovers more than an hour old (templates cannot be
//! dropped at process exit, and a killed run leaks its databases) are dropped the next time a
//! template is made.

use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{
    AsyncConnection as _, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection as _,
};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::{PgPool, PoolSettings, connect, run_migrations};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const TEMPLATE_PREFIX: &str = "authd_tmpl_";
const TEST_PREFIX: &str = "authd_test_";
/// Older leftovers than this are dropped; no test run is expected to last as long.
const STALE_AFTER: Duration = Duration::from_secs(60 * 60);
/// Bounds the clean-up in `Drop`, which blocks the test that ends.
const DROP_TIMEOUT: Duration = Duration::from_secs(10);

/// This process's migrated template database, made on first use.
static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// A database of its own for one test, dropped (best effort) with this value.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its connection URL.
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDatabase {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A pool on it with the default settings.
    pub async fn pool(&self) -> anyhow::Result<PgPool> {
        connect(&self.url, PoolSettings::default())
    }

    /// Runs one SQL statement, for a test that must set up a state no endpoint can make yet.
    pub async fn execute(&self, sql: &str) -> anyhow::Result<usize> {
        let pool = self.pool().await?;
        let mut connection = pool
            .get()
            .await
            .context("connecting to the test database")?;
        Ok(diesel_async::RunQueryDsl::execute(diesel::sql_query(sql), &mut connection).await?)
    }

    /// Runs a query whose one column is `value` (cast to text), returning its non-null values:
    /// for a test that reads what is stored as a dump would.
    pub async fn texts(&self, sql: &str) -> anyhow::Result<Vec<String>> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
            value: Option<String>,
        }
        let pool = self.pool().await?;
        let mut connection = pool
            .get()
            .await
            .context("connecting to the test database")?;
        let rows: Vec<Row> = diesel::sql_query(sql)
            .load(&mut connection)
            .await
            .with_context(|| format!("running {sql}"))?;
        Ok(rows.into_iter().filter_map(|row| row.value).collect())
    }

    /// Opens a transaction on a connection of its own (outside any pool, so without the pool's
    /// timeouts), runs `sql` in it (`SELECT … FOR UPDATE`, say) and keeps it open until the
    /// returned value is released or dropped: for a test of what waits on its locks.
    pub async fn hold_transaction(&self, sql: &str) -> anyhow::Result<HeldTransaction> {
        let mut connection = admin_connection(&self.url).await?;
        // An explicit BEGIN in a batch leaves the transaction open after it.
        connection
            .batch_execute(&format!("BEGIN; {sql}"))
            .await
            .with_context(|| format!("cannot hold a transaction running {sql}"))?;
        Ok(HeldTransaction { connection })
    }
}

/// A transaction held open by [`TestDatabase::hold_transaction`]. Dropping it closes its
/// connection, which makes Postgres roll it back.
pub struct HeldTransaction {
    connection: AsyncPgConnection,
}

impl HeldTransaction {
    /// Rolls the transaction back now, releasing its locks before this returns.
    pub async fn release(mut self) -> anyhow::Result<()> {
        self.connection
            .batch_execute("ROLLBACK")
            .await
            .context("cannot roll back the held transaction")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = std::mem::take(&mut self.name);
        // `Drop` cannot await, and blocking on the test's own runtime would deadlock a
        // current-thread one: the drop runs on a thread with its own small runtime.
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let dropped = tokio::time::timeout(DROP_TIMEOUT, drop_database(&admin_url, &name));
                if !matches!(dropped.await, Ok(Ok(()))) {
                    tracing::warn!(%name, "could not drop a test database; a later run will");
                }
            });
        });
        // Waiting keeps databases from piling up when the process exits right after the test.
        let _finished = dropper.join();
    }
}

/// A new database with the schema applied, from any tokio runtime (current-thread included).
pub async fn fresh_database() -> anyhow::Result<TestDatabase> {
    let admin_url = admin_url();
    let template = TEMPLATE
        .get_or_try_init(|| make_template(&admin_url))
        .await?;
    create_database(&admin_url, TEST_PREFIX, Some(template)).await
}

/// A new database without any schema (to test the migrations themselves).
pub async fn empty_database() -> anyhow::Result<TestDatabase> {
    create_database(&admin_url(), TEST_PREFIX, None).await
}

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

async fn admin_connection(admin_url: &str) -> anyhow::Result<AsyncPgConnection> {
    AsyncPgConnection::establish(admin_url)
        .await
        .with_context(|| format!("cannot connect to the test Postgres server at {admin_url}"))
}

async fn make_template(admin_url: &str) -> anyhow::Result<String> {
    drop_stale_databases(admin_url).await;
    let template = create_database(admin_url, TEMPLATE_PREFIX, None).await?;
    run_migrations(&template.url)
        .await
        .context("cannot migrate the test template database")?;
    // The template outlives this value (it is dropped as stale by a later run).
    let template = std::mem::ManuallyDrop::new(template);
    Ok(template.name.clone())
}

async fn create_database(
    admin_url: &str,
    prefix: &str,
    template: Option<&str>,
) -> anyhow::Result<TestDatabase> {
    let name = format!("{prefix}{}", Uuid::now_v7().simple());
    let mut admin = admin_connection(admin_url).await?;
    // Names are made here from [a-z0-9_] only, so formatting them into DDL is safe (and DDL
    // takes no bind parameters).
    let sql = match template {
        Some(template) => format!("CREATE DATABASE {name} TEMPLATE {template}"),
        None => format!("CREATE DATABASE {name} TEMPLATE template0"),
    };
    admin
        .batch_execute(&sql)
        .await
        .with_context(|| format!("cannot create the test database {name}"))?;
    Ok(TestDatabase {
        url: with_database(admin_url, &name)?,
        name,
        admin_url: admin_url.to_owned(),
    })
}

async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = admin_connection(admin_url).await?;
    // FORCE: pools of the test may still hold connections to it.
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .with_context(|| format!("cannot drop the test database {name}"))?;
    Ok(())
}

#[derive(QueryableByName)]
struct DatabaseName {
    #[diesel(sql_type = Text)]
    datname: String,
}

/// Drops this crate's databases made more than [`STALE_AFTER`] ago, by any process. Best
/// effort: another process may be dropping the same ones.
async fn drop_stale_databases(admin_url: &str) {
    let names = async {
        let mut admin = admin_connection(admin_url).await?;
        let names = diesel::sql_query(
            "SELECT datname::text AS datname FROM pg_database \
             WHERE datname LIKE 'authd\\_tmpl\\_%' OR datname LIKE 'authd\\_test\\_%'",
        )
        .load::<DatabaseName>(&mut admin)
        .await?;
        anyhow::Ok(names)
    };
    let names = match names.await {
        Ok(names) => names,
        Err(error) => {
            tracing::warn!(%error, "cannot list leftover test databases");
            return;
        }
    };
    for DatabaseName { datname } in names {
        if is_stale(&datname) {
            if let Err(error) = drop_database(admin_url, &datname).await {
                tracing::debug!(%error, "leftover test database not dropped");
            }
        }
    }
}

fn is_stale(name: &str) -> bool {
    let made_at = name
        .strip_prefix(TEMPLATE_PREFIX)
        .or_else(|| name.strip_prefix(TEST_PREFIX))
        .and_then(|suffix| Uuid::try_parse(suffix).ok())
        .and_then(|id| id.get_timestamp())
        .map(|timestamp| {
            let (seconds, nanos) = timestamp.to_unix();
            SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos)
        });
    // Test tooling, not service logic: there is no Clock port to read here.
    #[allow(clippy::disallowed_methods)]
    let now = SystemTime::now();
    made_at.is_some_and(|made_at| {
        now.duration_since(made_at)
            .is_ok_and(|age| age > STALE_AFTER)
    })
}

/// `admin_url` with its database replaced by `name`, keeping any query parameters.
fn with_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let authority_start = base
        .find("://")
        .map(|at| at + 3)
        .context("TEST_DATABASE_URL must be a postgres:// URL")?;
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |at| authority_start + at);
    let mut url = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_database_of_the_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "db").unwrap(),
            "postgres://postgres@127.0.0.1:5432/db"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/x?sslmode=disable", "db").unwrap(),
            "postgresql://u:p@h/db?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:1", "db").unwrap(),
            "postgres://h:1/db"
        );
        assert!(with_database("host=localhost", "db").is_err());
    }

    #[test]
    fn only_old_databases_of_ours_are_stale() {
        let fresh = format!("{TEST_PREFIX}{}", Uuid::now_v7().simple());
        assert!(!is_stale(&fresh));
        let old = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            1_000_000_000,
            0,
        ));
        assert!(is_stale(&format!("{TEMPLATE_PREFIX}{}", old.simple())));
        assert!(!is_stale("postgres"));
        assert!(!is_stale(&format!("someone_else_{}", old.simple())));
    }
}
