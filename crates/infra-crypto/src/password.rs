use std::sync::Arc;

use anyhow::anyhow;
use application::PortError;
use application::ports::{PasswordCheck, PasswordHasher};
use argon2::password_hash::phc::PasswordHash as Phc;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use domain::{Password, PasswordHash};
use tokio::sync::Semaphore;

/// Argon2id cost parameters. The defaults are OWASP's: 19 MiB, 2 iterations, 1 lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Time cost (iterations).
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Argon2id hashing on tokio's blocking threads, at most `max_concurrent` at a time: a burst of
/// logins queues here instead of stalling the async workers (refreshes and profile reads keep
/// flowing) or taking 19 MiB per concurrent hash without bound.
#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// Verified against when the user does not exist, so that costs what a real check costs.
    dummy: Arc<str>,
}

impl Argon2Hasher {
    /// A hasher with these parameters, running at most `max_concurrent` hashes at once.
    pub fn new(settings: Argon2Settings, max_concurrent: usize) -> anyhow::Result<Self> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|error| anyhow!("invalid Argon2 parameters: {error}"))?;
        let dummy = argon2(&params)
            .hash_password(b"authd dummy password: never matches a login")
            .map_err(|error| anyhow!("hashing the dummy password: {error}"))?
            .to_string();
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            dummy: dummy.into(),
        })
    }

    /// Runs `work` on a blocking thread once a permit is free, keeping the caller's span.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PortError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|error| PortError::Unexpected(error.into()))?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(work))
            .await
            .map_err(|error| PortError::Unexpected(error.into()))
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, PortError> {
        let params = self.params.clone();
        let password = password.clone();
        self.run(move || {
            argon2(&params)
                .hash_password(password.expose().as_bytes())
                .map(|phc| PasswordHash::new(phc.to_string()))
                .map_err(|error| PortError::Unexpected(anyhow!("hashing a password: {error}")))
        })
        .await?
    }

    async fn verify(
        &self,
        password: &Password,
        hash: Option<PasswordHash>,
    ) -> Result<PasswordCheck, PortError> {
        let params = self.params.clone();
        let password = password.clone();
        let (stored, real) = match hash {
            Some(hash) => (hash.as_str().to_owned(), true),
            None => (self.dummy.to_string(), false),
        };
        self.run(move || {
            let Ok(phc) = Phc::new(&stored) else {
                // An unreadable stored hash matches nothing; it is a data problem, not the user's.
                tracing::error!("a stored password hash is not a PHC string");
                return PasswordCheck::Mismatch;
            };
            // The stored hash's own parameters are used to verify, whatever the current ones.
            let matches = argon2(&params)
                .verify_password(password.expose().as_bytes(), &phc)
                .is_ok();
            if !(matches && real) {
                return PasswordCheck::Mismatch;
            }
            let current = Params::try_from(&phc).is_ok_and(|used| {
                used.m_cost() == params.m_cost()
                    && used.t_cost() == params.t_cost()
                    && used.p_cost() == params.p_cost()
            }) && phc.algorithm.as_str() == "argon2id";
            PasswordCheck::Match {
                needs_rehash: !current,
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters keep the tests fast; the behaviour does not depend on the cost.
    fn cheap() -> Argon2Settings {
        Argon2Settings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let hasher = Argon2Hasher::new(cheap(), 2).unwrap();
        let password = Password::normalize("correct horse");
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert_eq!(
            hasher.verify(&password, Some(hash.clone())).await.unwrap(),
            PasswordCheck::Match {
                needs_rehash: false
            }
        );
        let wrong = Password::normalize("wrong horse");
        assert_eq!(
            hasher.verify(&wrong, Some(hash)).await.unwrap(),
            PasswordCheck::Mismatch
        );
    }

    #[tokio::test]
    async fn no_user_never_matches() {
        let hasher = Argon2Hasher::new(cheap(), 1).unwrap();
        let any = Password::normalize("authd dummy password: never matches a login");
        assert_eq!(
            hasher.verify(&any, None).await.unwrap(),
            PasswordCheck::Mismatch
        );
    }

    #[tokio::test]
    async fn hashes_with_old_parameters_ask_for_a_rehash() {
        let old = Argon2Hasher::new(cheap(), 1).unwrap();
        let password = Password::normalize("correct horse");
        let hash = old.hash(&password).await.unwrap();
        let stronger = Argon2Hasher::new(
            Argon2Settings {
                iterations: 2,
                ..cheap()
            },
            1,
        )
        .unwrap();
        assert_eq!(
            stronger.verify(&password, Some(hash)).await.unwrap(),
            PasswordCheck::Match { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn garbage_hash_is_a_mismatch_not_an_error() {
        let hasher = Argon2Hasher::new(cheap(), 1).unwrap();
        let password = Password::normalize("correct horse");
        let check = hasher
            .verify(&password, Some(PasswordHash::new("not a hash")))
            .await
            .unwrap();
        assert_eq!(check, PasswordCheck::Mismatch);
    }

    #[test]
    fn impossible_parameters_are_a_configuration_error() {
        assert!(
            Argon2Hasher::new(
                Argon2Settings {
                    memory_kib: 1,
                    ..cheap()
                },
                1
            )
            .is_err()
        );
    }
}
