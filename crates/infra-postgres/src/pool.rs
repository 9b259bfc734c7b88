//! The one place the connection pool is built.

use std::time::Duration;

use application::{Dependency, PortError};
use deadpool::Runtime;
use diesel::IntoSql;
use diesel::sql_types::Integer;
use diesel_async::AsyncPgConnection;
use diesel_async::RunQueryDsl;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};

use crate::errors::DbError;

/// A pool of Postgres connections, shared by every adapter of this crate.
pub type PgPool = Pool<AsyncPgConnection>;

/// How the pool behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections open at once.
    pub max_size: usize,
    /// How long a caller waits for a free connection before the database counts as unavailable.
    pub wait_timeout: Duration,
    /// How long opening a connection may take before the database counts as unavailable.
    pub create_timeout: Duration,
}

impl Default for PoolSettings {
    /// 16 connections; 2 s to get one and 2 s to open one, so an outage answers quickly.
    fn default() -> Self {
        Self {
            max_size: 16,
            wait_timeout: Duration::from_secs(2),
            create_timeout: Duration::from_secs(2),
        }
    }
}

/// Builds the pool. No connection is opened here: they are made on first use, so the server
/// can start while Postgres is down and answer 503 until it comes back.
///
/// Idle connections are handed out without a test query (Fast recycling): a dead one fails its
/// first query, which reports the database unavailable, and the pool then discards it.
pub async fn connect(url: &str, settings: PoolSettings) -> anyhow::Result<PgPool> {
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    let pool = Pool::builder(manager)
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
/// timeout (a server that accepts connections but does not answer).
pub async fn ping(pool: &PgPool) -> Result<(), PortError> {
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

/// [`application::ports::Probe`] of the database: [`ping`] through the pool.
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
impl application::ports::Probe for PgProbe {
    async fn ping(&self) -> Result<(), PortError> {
        ping(&self.pool).await
    }
}
