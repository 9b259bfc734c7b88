//! The one place the connection pool is built.

use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use authd_application::{Dependency, PortError};
use deadpool::Runtime;
use deadpool::managed::{Manager, Metrics, Object, RecycleResult};
use diesel::IntoSql;
use diesel::sql_types::Integer;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolError as SetupError, RecyclingMethod,
};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::errors::DbError;

/// A pool of Postgres connections, shared by every adapter of this crate.
pub type PgPool = deadpool::managed::Pool<PgManager>;

/// A [`PgPool`] that does not keep it alive (`upgrade` it while it lives).
pub type WeakPgPool = deadpool::managed::WeakPool<PgManager>;

/// A connection lent by a [`PgPool`].
pub(crate) type PooledConnection = Object<PgManager>;

/// How the pool behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections open at once.
    pub max_size: usize,
    /// How long a caller waits for a free connection before the database counts as unavailable.
    pub wait_timeout: Duration,
    /// How long opening a connection may take before the database counts as unavailable.
    pub create_timeout: Duration,
    /// Longest a statement may run (Postgres `statement_timeout`, and `lock_timeout` as well, so
    /// a statement waiting on a row lock gives up no later): past it the statement is cancelled
    /// and the database counts as unavailable. Whole milliseconds, at least one.
    pub statement_timeout: Duration,
}

impl Default for PoolSettings {
    /// 16 connections; 2 s to get one, 2 s to open one and 2 s per statement, so an outage or
    /// a stuck database answers quickly.
    fn default() -> Self {
        Self {
            max_size: 16,
            wait_timeout: Duration::from_secs(2),
            create_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(2),
        }
    }
}

/// The pool's connection manager: diesel-async's, plus the pool's memory of statement
/// timeouts, which the readiness probe reads. Kept per pool (several servers may share a
/// process, each with its own pool).
pub struct PgManager {
    inner: AsyncDieselConnectionManager<AsyncPgConnection>,
    timeouts: TimeoutMemory,
}

impl std::fmt::Debug for PgManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgManager").finish_non_exhaustive()
    }
}

impl Manager for PgManager {
    type Type = AsyncPgConnection;
    type Error = SetupError;

    async fn create(&self) -> Result<AsyncPgConnection, SetupError> {
        self.inner.create().await
    }

    async fn recycle(
        &self,
        conn: &mut AsyncPgConnection,
        metrics: &Metrics,
    ) -> RecycleResult<SetupError> {
        self.inner.recycle(conn, metrics).await
    }
}

/// When the pool last saw a statement cancelled by a timeout, and how long that keeps the
/// database reported unavailable.
#[derive(Debug)]
struct TimeoutMemory {
    last: Mutex<Option<Instant>>,
    unhealthy_for: Duration,
}

impl TimeoutMemory {
    fn new(statement_timeout: Duration) -> Self {
        Self {
            last: Mutex::new(None),
            // Long enough that a probe between two timed-out requests still sees it; short
            // enough that readiness comes back soon after the database does.
            unhealthy_for: (statement_timeout * 2).max(Duration::from_secs(1)),
        }
    }

    fn record(&self) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    fn recent(&self) -> bool {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|last| last.elapsed() < self.unhealthy_for)
    }
}

/// Remembers, in the pool `conn` came from, that a statement on it was cancelled by a timeout.
pub(crate) fn record_timeout(conn: &PooledConnection) {
    if let Some(pool) = Object::pool(conn) {
        pool.manager().timeouts.record();
    }
}

/// `SET` statements run on every new connection: its statement and lock timeouts.
fn session_setup(statement_timeout: Duration) -> String {
    // 0 would mean "no timeout" to Postgres: at least one millisecond.
    let ms = statement_timeout.as_millis().clamp(1, i32::MAX as u128);
    format!("SET statement_timeout = {ms}; SET lock_timeout = {ms}")
}

/// Builds the pool. No connection is opened here: they are made on first use, so the server
/// can start while Postgres is down and answer 503 until it comes back. A connection's I/O
/// task runs on the runtime of the call that opened it.
///
/// Idle connections are handed out without a test query (Fast recycling): a dead one fails its
/// first query, which reports the database unavailable, and the pool then discards it.
///
/// Every connection gets `statement_timeout` and `lock_timeout` (both
/// [`PoolSettings::statement_timeout`]) when it is opened, so no statement can hold a request
/// (or a connection) longer than that; a cancelled statement is reported as the database being
/// unavailable, and [`ping`] reports the same for a short while after.
pub fn connect(url: &str, settings: PoolSettings) -> anyhow::Result<PgPool> {
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    let setup = session_setup(settings.statement_timeout);
    config.custom_setup = Box::new(move |url| {
        let setup = setup.clone();
        Box::pin(async move {
            let mut conn = AsyncPgConnection::establish(url).await?;
            // Session-level settings, outside any transaction: they last as long as the
            // connection. One round trip, once per connection.
            conn.batch_execute(&setup)
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        })
    });
    let manager = PgManager {
        inner: AsyncDieselConnectionManager::new_with_config(url, config),
        timeouts: TimeoutMemory::new(settings.statement_timeout),
    };
    let pool = PgPool::builder(manager)
        .max_size(settings.max_size)
        .wait_timeout(Some(settings.wait_timeout))
        .create_timeout(Some(settings.create_timeout))
        // The timeouts are enforced with this runtime's timers; without it the build fails.
        .runtime(Runtime::Tokio1)
        .build()?;
    Ok(pool)
}

/// Checks that a connection can be had and answers a trivial query (the readiness probe).
///
/// `Unavailable(Database)` when it cannot, including when the query outlasts the pool's create
/// timeout (a server that accepts connections but does not answer), and for a short while
/// after a statement of this pool was cancelled by its statement or lock timeout (a database
/// that answers `SELECT 1` but not the queries that matter is not ready).
pub async fn ping(pool: &PgPool) -> Result<(), PortError> {
    if pool.manager().timeouts.recent() {
        tracing::debug!(
            "Postgres statements timed out recently: reporting the database unavailable"
        );
        return Err(PortError::Unavailable(Dependency::Database));
    }
    let limit = pool.timeouts().create.unwrap_or(Duration::from_secs(2));
    let probe = async {
        let mut conn = pool.get().await.map_err(DbError::from_pool)?;
        diesel::select(1.into_sql::<Integer>())
            .get_result::<i32>(&mut conn)
            .await
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok::<_, DbError>(())
    };
    match tokio::time::timeout(limit, probe).await {
        Ok(result) => result.map_err(PortError::from),
        Err(_elapsed) => {
            tracing::warn!(?limit, "Postgres did not answer the ping in time");
            Err(PortError::Unavailable(Dependency::Database))
        }
    }
}

/// [`authd_application::ports::Probe`] of the database: [`ping`] through the pool.
#[derive(Clone)]
pub struct PgProbe {
    pool: PgPool,
}

impl PgProbe {
    /// A probe drawing its connection from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl authd_application::ports::Probe for PgProbe {
    async fn ping(&self) -> Result<(), PortError> {
        ping(&self.pool).await
    }
}

/// Runs one batch statement (a purge, a clearing) on a connection from `pool` and returns how
/// many rows it touched, with the errors translated as everywhere else.
pub(crate) async fn execute_batch<Q>(pool: &PgPool, statement: Q) -> Result<u64, PortError>
where
    Q: diesel_async::methods::ExecuteDsl<AsyncPgConnection> + Send,
{
    let mut conn = pool.get().await.map_err(DbError::from_pool)?;
    let touched = statement
        .execute(&mut conn)
        .await
        .map_err(|error| DbError::from_query(error, &mut conn))?;
    Ok(touched as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_remembered_for_twice_the_timeout_and_at_least_a_second() {
        assert_eq!(
            TimeoutMemory::new(Duration::from_millis(200)).unhealthy_for,
            Duration::from_secs(1)
        );
        assert_eq!(
            TimeoutMemory::new(Duration::from_secs(2)).unhealthy_for,
            Duration::from_secs(4)
        );

        let memory = TimeoutMemory::new(Duration::from_secs(2));
        assert!(!memory.recent());
        memory.record();
        assert!(memory.recent());
        let long_ago = Instant::now().checked_sub(Duration::from_secs(5));
        *memory.last.lock().unwrap() = long_ago;
        assert!(!memory.recent());
    }

    #[test]
    fn every_connection_gets_both_timeouts_in_whole_milliseconds() {
        assert_eq!(
            session_setup(Duration::from_secs(2)),
            "SET statement_timeout = 2000; SET lock_timeout = 2000"
        );
        // Never 0, which Postgres reads as "no timeout".
        assert_eq!(
            session_setup(Duration::from_micros(10)),
            "SET statement_timeout = 1; SET lock_timeout = 1"
        );
    }
}
