//! What each HTTP worker opens for itself: its own Postgres pool and its own Redis connection.
//!
//! A connection's I/O task runs on the runtime that opened it. Shared connections opened at
//! start-up ran on the main thread, so every query of a request crossed threads twice, and the
//! wake-ups cost more than the query's own parsing (`me` spent 29 % of its CPU on the main
//! thread). Each actix worker is a single-threaded runtime: connections it opens itself are
//! driven by the thread that awaits them. The background jobs (session purge, outbox) keep the
//! connections made at start-up.

use std::sync::{Arc, Mutex, PoisonError};

use authd_application::ports::{CachePorts, Ports};
use authd_domain::{IpCap, LoginBackoff};

/// Connections the background jobs keep, beside the workers' (the purge and the outbox each
/// use one at a time).
pub(crate) const BACKGROUND_DB_CONNECTIONS: usize = 2;

/// How a worker makes its own store and cache ports; `None` where the backend is memory,
/// which every worker shares.
#[derive(Clone)]
pub(crate) struct WorkerConnections {
    pub postgres: Option<Postgres>,
    pub redis: Option<Redis>,
}

#[derive(Clone)]
pub(crate) struct Postgres {
    pub url: String,
    /// One worker's pool: its share of `AUTHD_DB_POOL_SIZE`.
    pub pool: authd_postgres::PoolSettings,
    pub registry: PoolRegistry,
}

#[derive(Clone)]
pub(crate) struct Redis {
    pub settings: authd_redis::RedisSettings,
    pub backoff: LoginBackoff,
    pub ip_cap: IpCap,
}

/// One worker's ports, and its Redis client to open before it serves.
pub(crate) struct WorkerPorts {
    pub ports: Ports,
    pub redis: Option<(authd_redis::RedisClient, authd_redis::RedisSettings)>,
}

impl WorkerConnections {
    /// The calling worker's ports: `shared`, with a Postgres store and a Redis cache of the
    /// worker's own. Called on the worker's thread; nothing is opened yet (the pool opens
    /// connections on first use, the Redis client in [`open`]).
    pub fn for_this_worker(&self, shared: &Ports) -> WorkerPorts {
        let mut ports = shared.clone();
        if let Some(postgres) = &self.postgres {
            match authd_postgres::connect(&postgres.url, postgres.pool) {
                Ok(pool) => {
                    postgres.registry.add(&pool);
                    ports.store = authd_postgres::store_ports(&pool);
                }
                // Not expected: the same settings built the background pool. The shared
                // store still works, through the main thread.
                Err(error) => {
                    tracing::error!(error = %error, "a worker's Postgres pool could not be built; it shares the background pool")
                }
            }
        }
        let redis = self.redis.as_ref().and_then(|redis| {
            match authd_redis::build(&redis.settings) {
                Ok(client) => {
                    ports.cache = cache_ports(&client, redis);
                    Some((client, redis.settings.clone()))
                }
                Err(error) => {
                    tracing::error!(error = %error, "a worker's Redis client could not be built; it shares the background client");
                    None
                }
            }
        });
        WorkerPorts { ports, redis }
    }
}

fn cache_ports(client: &authd_redis::RedisClient, redis: &Redis) -> CachePorts {
    authd_redis::cache_ports(client, &redis.settings.prefix, redis.backoff, redis.ip_cap)
}

/// The worker's app data that says [`open`] ran (actix builds it before the worker serves).
pub(crate) struct Opened;

/// The longest a worker waits for its Redis connection before it serves. actix starts the
/// workers one after another and blocks the main thread meanwhile, so with Redis silent the
/// start would otherwise take the 2 s connect timeout per worker. Past it, the connection goes
/// on in the background, and the worker's requests fail fast with 503 until it is up.
const WORKER_REDIS_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// Connects the worker's Redis client on the worker's runtime; the worker serves once it is
/// up, or after [`WORKER_REDIS_WAIT`].
pub(crate) async fn open(redis: Option<(authd_redis::RedisClient, authd_redis::RedisSettings)>) {
    if let Some((client, settings)) = redis {
        // The start-up client has already said whether Redis answers; this worker's own
        // refusal (`maxclients`, say) is only worth a debug line, since a Redis that is down
        // refuses every worker too.
        let opened =
            tokio::time::timeout(WORKER_REDIS_WAIT, authd_redis::open(&client, &settings)).await;
        if let Ok(authd_redis::Opened::Refused(error)) = opened {
            tracing::debug!(
                error = %error,
                "a worker's Redis connection was refused; it keeps trying in the background"
            );
        }
    }
}

/// Every Postgres pool of one server that is still alive, for the pool gauges.
#[derive(Clone, Default)]
pub(crate) struct PoolRegistry {
    pools: Arc<Mutex<Vec<authd_postgres::WeakPgPool>>>,
}

/// The sum of the registered pools' statuses.
#[derive(Default)]
pub(crate) struct PoolsStatus {
    pub size: usize,
    pub max_size: usize,
    pub in_use: usize,
    pub waiting: usize,
}

impl PoolRegistry {
    pub fn add(&self, pool: &authd_postgres::PgPool) {
        self.lock().push(pool.weak());
    }

    /// `None` when no pool was ever registered (the store is memory).
    pub fn status(&self) -> Option<PoolsStatus> {
        let mut pools = self.lock();
        if pools.is_empty() {
            return None;
        }
        let mut total = PoolsStatus::default();
        // A worker that stopped dropped its pool: forget it.
        pools.retain(|pool| {
            let Some(pool) = pool.upgrade() else {
                return false;
            };
            let status = pool.status();
            total.size += status.size;
            total.max_size += status.max_size;
            total.in_use += status.size.saturating_sub(status.available);
            total.waiting += status.waiting;
            true
        });
        Some(total)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<authd_postgres::WeakPgPool>> {
        self.pools.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Each worker's share of `total` connections, once the background jobs' are taken out: the
/// process stays within `total`, unless that is fewer than one per worker plus theirs.
pub(crate) fn per_worker(total: usize, workers: usize) -> usize {
    (total.saturating_sub(BACKGROUND_DB_CONNECTIONS) / workers.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_size_is_split_among_the_workers_once_the_background_has_its_share() {
        // With the background jobs' 2: 16 in all.
        assert_eq!(per_worker(16, 1), 14);
        assert_eq!(per_worker(16, 2), 7);
        // 2 + 3 × 4 = 14: the remainder is not handed out.
        assert_eq!(per_worker(16, 3), 4);
        // Fewer than one each: one each anyway.
        assert_eq!(per_worker(4, 4), 1);
        assert_eq!(per_worker(1, 1), 1);
        assert_eq!(per_worker(16, 0), 14);
        // Whenever every worker can have one, the process stays within the total.
        for total in 3..64 {
            for workers in 1..=total - BACKGROUND_DB_CONNECTIONS {
                let opened = per_worker(total, workers) * workers + BACKGROUND_DB_CONNECTIONS;
                assert!(opened <= total, "{total} over {workers} workers: {opened}");
            }
        }
    }
}
