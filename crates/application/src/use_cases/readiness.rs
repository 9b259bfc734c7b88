use std::sync::Arc;

use crate::ports::Probe;

/// Which dependencies answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The store answered.
    pub database: bool,
    /// The cache answered.
    pub cache: bool,
}

impl Readiness {
    /// Ready when everything answered.
    pub fn is_ready(&self) -> bool {
        self.database && self.cache
    }
}

/// Asks each dependency for a trivial answer (Postgres `SELECT 1`, Redis `PING`), each bounded
/// by its adapter's timeout.
pub struct CheckReadiness {
    pub database: Arc<dyn Probe>,
    pub cache: Arc<dyn Probe>,
}

impl CheckReadiness {
    /// Which dependencies answered; the failures are logged.
    pub async fn execute(&self) -> Readiness {
        let database = self.database.ping().await;
        let cache = self.cache.ping().await;
        for (name, outcome) in [("database", &database), ("cache", &cache)] {
            if let Err(error) = outcome {
                tracing::warn!(dependency = name, %error, "readiness check failed");
            }
        }
        Readiness {
            database: database.is_ok(),
            cache: cache.is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::MockProbe;
    use crate::{Dependency, PortError};

    fn probe(up: bool, dependency: Dependency) -> Arc<dyn Probe> {
        let mut probe = MockProbe::new();
        probe.expect_ping().times(1).returning(move || {
            if up {
                Ok(())
            } else {
                Err(PortError::Unavailable(dependency))
            }
        });
        Arc::new(probe)
    }

    #[tokio::test]
    async fn reports_each_dependency() {
        for (database, cache) in [(true, true), (false, true), (true, false), (false, false)] {
            let check = CheckReadiness {
                database: probe(database, Dependency::Database),
                cache: probe(cache, Dependency::Cache),
            };
            let readiness = check.execute().await;
            assert_eq!(readiness, Readiness { database, cache });
            assert_eq!(readiness.is_ready(), database && cache);
        }
    }
}
