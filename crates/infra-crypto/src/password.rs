use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use anyhow::anyhow;
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash as Phc, Salt};
use argon2::password_hash::{self, PasswordHasher as _};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use async_trait::async_trait;
use authd_application::PortError;
use authd_application::ports::{PasswordCheck, PasswordHasher};
use authd_domain::{Password, PasswordHash};

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

/// Argon2id hashing on `threads` threads of its own: a burst of logins queues here instead of
/// stalling the async workers (refreshes and profile reads keep flowing) or taking 19 MiB per
/// concurrent hash without bound. The threads live as long as the hasher, so each reuses the
/// memory of its previous hash: a pool of short-lived blocking threads would leave a 19 MiB
/// malloc arena behind each one (measured: 400 MB resident after a login burst, and a
/// page fault per 4 KiB of every hash).
///
/// The queue in front of the threads is bounded: past `queue_max` waiting jobs, a job is
/// refused at once with [`PortError::Busy`] instead of waiting behind a burst it cannot beat.
/// New hashes (sign-ups, new passwords) may fill only half of it, so a flood of sign-ups, which
/// nothing throttles per account, cannot turn every login away: password checks keep the
/// other half.
#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    params: Params,
    jobs: mpsc::Sender<Job>,
    /// Hashes sent to the threads and not yet started.
    queued: Arc<AtomicUsize>,
    queue_max: usize,
    /// Verified against when the user does not exist, so that costs what a real check costs.
    dummy: Arc<str>,
}

type Job = Box<dyn FnOnce() + Send>;

impl Argon2Hasher {
    /// Hashes that may wait for a thread by default (`AUTHD_HASH_QUEUE_MAX`).
    pub const DEFAULT_QUEUE_MAX: usize = 256;

    /// A hasher with these parameters, running at most `threads` hashes at once, with up to
    /// [`DEFAULT_QUEUE_MAX`](Self::DEFAULT_QUEUE_MAX) more waiting.
    pub fn new(settings: Argon2Settings, threads: usize) -> anyhow::Result<Self> {
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
            jobs: start_threads(threads.max(1))?,
            queued: Arc::new(AtomicUsize::new(0)),
            queue_max: Self::DEFAULT_QUEUE_MAX,
            dummy: dummy.into(),
        })
    }

    /// The same hasher with at most `queue_max` hashes waiting for a thread.
    #[must_use]
    pub fn with_queue_max(mut self, queue_max: usize) -> Self {
        self.queue_max = queue_max;
        self
    }

    /// Hashes waiting for a thread now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Runs `work` on one of the hasher's threads, keeping the caller's span.
    async fn run<T: Send + 'static>(
        &self,
        queue_max: usize,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PortError> {
        // Reserve a place in the queue, or refuse: the check and the count are one atomic step,
        // so a burst cannot overfill it.
        if self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued < queue_max).then_some(queued + 1)
            })
            .is_err()
        {
            return Err(PortError::Busy);
        }
        let queued = self.queued.clone();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        self.jobs
            .send(Box::new(move || {
                queued.fetch_sub(1, Ordering::AcqRel);
                // A caller that has gone (a closed connection) no longer needs its hash: skip
                // it rather than spend a core on an answer nobody reads.
                if !reply.is_closed() {
                    let _ = reply.send(span.in_scope(work));
                }
            }))
            .map_err(|_| PortError::Unexpected(anyhow!("the Argon2 threads have stopped")))?;
        answer
            .await
            .map_err(|_| PortError::Unexpected(anyhow!("an Argon2 hash panicked")))
    }
}

/// Starts `count` threads taking jobs from one queue; they stop when the sender is dropped.
fn start_threads(count: usize) -> anyhow::Result<mpsc::Sender<Job>> {
    let (sender, receiver) = mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    for index in 0..count {
        let receiver = receiver.clone();
        std::thread::Builder::new()
            .name(format!("argon2-{index}"))
            .spawn(move || {
                loop {
                    let job = match receiver.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    // A panicking hash answers its caller with an error (the reply is
                    // dropped) and must not take the thread with it.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .map_err(|error| anyhow!("starting an Argon2 thread: {error}"))?;
    }
    Ok(sender)
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

thread_local! {
    /// The Argon2 memory of this thread, reused by every hash it makes.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs `hash` on `blocks` blocks of this thread's memory, which is grown on first use to
/// `keep` blocks (the current parameters' cost), so hashes at the current cost, and stored
/// hashes at a smaller one, never allocate. A stored hash with a larger cost gets memory of
/// its own, returned afterwards.
fn with_memory<T>(keep: usize, blocks: usize, hash: impl FnOnce(&mut [Block]) -> T) -> T {
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() < keep {
            *memory = vec![Block::default(); keep];
        }
        match memory.get_mut(..blocks) {
            Some(reused) => hash(reused),
            None => hash(&mut vec![Block::default(); blocks]),
        }
    })
}

/// A PHC string of `password` hashed with `params` and a fresh random salt.
fn hash_phc(params: &Params, password: &[u8]) -> Result<String, password_hash::Error> {
    let salt = password_hash::try_generate_salt()?;
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let blocks = params.block_count();
    with_memory(blocks, blocks, |memory| {
        argon2(params).hash_password_into_with_memory(password, &salt, &mut output, memory)
    })?;
    let phc = Phc {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)?,
        salt: Some(Salt::new(&salt)?),
        hash: Some(Output::new(&output)?),
    };
    Ok(phc.to_string())
}

/// Whether `password` hashes to `phc` with the algorithm, version and parameters `phc` names;
/// `current` are the hasher's own parameters, whose memory the thread keeps.
fn verify_phc(phc: &Phc, password: &[u8], current: &Params) -> Result<bool, password_hash::Error> {
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
        return Ok(false);
    };
    let algorithm = Algorithm::try_from(phc.algorithm.as_str())?;
    let version = phc.version.map(Version::try_from).transpose()?;
    let params = Params::try_from(phc)?;
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version.unwrap_or_default(), params);
    let mut output = vec![0u8; expected.len()];
    with_memory(current.block_count(), blocks, |memory| {
        argon2.hash_password_into_with_memory(password, salt, &mut output, memory)
    })?;
    // `Output` compares in constant time.
    Ok(Output::new(&output)? == *expected)
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, PortError> {
        let params = self.params.clone();
        let password = password.clone();
        self.run((self.queue_max / 2).max(1), move || {
            hash_phc(&params, password.expose().as_bytes())
                .map(PasswordHash::new)
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
        self.run(self.queue_max, move || {
            let Ok(phc) = Phc::new(&stored) else {
                // An unreadable stored hash matches nothing; it is a data problem, not the user's.
                tracing::error!("a stored password hash is not a PHC string");
                return PasswordCheck::Mismatch;
            };
            // The stored hash's own parameters are used to verify, whatever the current ones.
            let matches = verify_phc(&phc, password.expose().as_bytes(), &params).unwrap_or(false);
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

    /// Awaits `future`, failing the test if it has not finished within a few seconds: a queue
    /// that admits a job it should refuse leaves that job waiting behind a held thread, and the
    /// test must then fail rather than hang.
    async fn soon<F: std::future::Future>(future: F) -> F::Output {
        tokio::time::timeout(std::time::Duration::from_secs(5), future)
            .await
            .expect("still waiting after 5 s")
    }

    /// Waits (boundedly) until exactly `count` hashes wait for a thread.
    async fn until_queued(hasher: &Argon2Hasher, count: usize) {
        soon(async {
            while hasher.queued() != count {
                tokio::task::yield_now().await;
            }
        })
        .await;
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
    async fn a_full_queue_refuses_at_once_and_frees_its_places() {
        // One thread, held by a job until released; one place in the queue.
        let hasher = Argon2Hasher::new(cheap(), 1).unwrap().with_queue_max(1);
        let (started, is_running) = tokio::sync::oneshot::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = tokio::spawn({
            let hasher = hasher.clone();
            async move {
                hasher
                    .run(1, move || {
                        let _ = started.send(());
                        let _ = released.recv();
                    })
                    .await
            }
        });
        soon(is_running).await.unwrap();
        assert_eq!(hasher.queued(), 0, "a running hash no longer waits");
        let password = Password::normalize("correct horse");
        let waiting = tokio::spawn({
            let hasher = hasher.clone();
            let password = password.clone();
            async move { hasher.hash(&password).await }
        });
        until_queued(&hasher, 1).await;
        // The queue is full at exactly one waiting hash: the next is refused at once.
        assert!(matches!(
            soon(hasher.verify(&password, None)).await,
            Err(PortError::Busy)
        ));
        assert_eq!(hasher.queued(), 1, "a refused job takes no place");
        release.send(()).unwrap();
        soon(holder).await.unwrap().unwrap();
        assert!(soon(waiting).await.unwrap().is_ok());
        assert_eq!(hasher.queued(), 0);
        assert_eq!(
            soon(hasher.verify(&password, None)).await.unwrap(),
            PasswordCheck::Mismatch
        );
    }

    #[tokio::test]
    async fn new_hashes_fill_half_the_queue_and_checks_the_rest() {
        let hasher = Argon2Hasher::new(cheap(), 1).unwrap().with_queue_max(4);
        let (started, is_running) = tokio::sync::oneshot::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = tokio::spawn({
            let hasher = hasher.clone();
            async move {
                hasher
                    .run(1, move || {
                        let _ = started.send(());
                        let _ = released.recv();
                    })
                    .await
            }
        });
        soon(is_running).await.unwrap();
        let password = Password::normalize("correct horse");
        let spawn = |check: bool| {
            let hasher = hasher.clone();
            let password = password.clone();
            tokio::spawn(async move {
                if check {
                    hasher.verify(&password, None).await.map(drop)
                } else {
                    hasher.hash(&password).await.map(drop)
                }
            })
        };
        // New hashes are admitted up to exactly half the queue (2 of 4), then refused.
        let waiting = [spawn(false), spawn(false)];
        until_queued(&hasher, 2).await;
        assert!(matches!(
            soon(hasher.hash(&password)).await,
            Err(PortError::Busy)
        ));
        // Checks still have the other half, up to exactly the whole queue.
        let checks = [spawn(true), spawn(true)];
        until_queued(&hasher, 4).await;
        assert!(matches!(
            soon(hasher.verify(&password, None)).await,
            Err(PortError::Busy)
        ));
        release.send(()).unwrap();
        soon(holder).await.unwrap().unwrap();
        for task in waiting.into_iter().chain(checks) {
            assert!(soon(task).await.unwrap().is_ok());
        }
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
    fn hashes_agree_with_the_reference_implementation_both_ways() {
        use argon2::password_hash::PasswordVerifier as _;
        let params = Params::new(1024, 1, 1, None).unwrap();
        let ours = hash_phc(&params, b"correct horse").unwrap();
        let parsed = Phc::new(&ours).unwrap();
        assert!(
            argon2(&params)
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        let reference = argon2(&params).hash_password(b"battery staple").unwrap();
        assert!(verify_phc(&reference, b"battery staple", &params).unwrap());
        assert!(!verify_phc(&reference, b"battery stapler", &params).unwrap());
        // A larger memory cost than this thread has used yet still verifies.
        let bigger = argon2(&Params::new(4096, 1, 1, None).unwrap())
            .hash_password(b"battery staple")
            .unwrap();
        assert!(verify_phc(&bigger, b"battery staple", &params).unwrap());
    }

    #[test]
    fn a_thread_keeps_memory_for_the_current_cost_whatever_it_verifies_first() {
        let current = Params::new(2048, 1, 1, None).unwrap();
        let older = argon2(&Params::new(1024, 1, 1, None).unwrap())
            .hash_password(b"battery staple")
            .unwrap();
        let kept = std::thread::spawn(move || {
            assert!(verify_phc(&older, b"battery staple", &current).unwrap());
            MEMORY.with_borrow(Vec::len)
        })
        .join()
        .unwrap();
        assert_eq!(kept, 2048);
    }

    #[test]
    fn hashes_at_the_current_cost_reuse_the_memory_the_thread_keeps() {
        // A fresh thread, so no earlier test has left memory behind on it.
        std::thread::spawn(|| {
            let first = with_memory(8, 8, |memory| (memory.as_ptr(), memory.len()));
            let again = with_memory(8, 8, |memory| (memory.as_ptr(), memory.len()));
            let smaller = with_memory(8, 4, |memory| (memory.as_ptr(), memory.len()));
            assert_eq!(first.1, 8);
            assert_eq!(again, first, "memory of exactly the kept size is reused");
            assert_eq!(smaller, (first.0, 4), "a smaller cost uses the start of it");
            let larger = with_memory(8, 16, |memory| (memory.as_ptr(), memory.len()));
            assert_eq!(larger.1, 16);
            assert_eq!(MEMORY.with_borrow(Vec::len), 8, "a larger cost is not kept");
        })
        .join()
        .unwrap();
    }

    #[tokio::test]
    async fn a_hash_whose_caller_has_gone_is_skipped() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let hasher = Argon2Hasher::new(cheap(), 1).unwrap();
        let busy = tokio::spawn({
            let hasher = hasher.clone();
            async move {
                hasher
                    .run(usize::MAX, || {
                        std::thread::sleep(std::time::Duration::from_millis(100))
                    })
                    .await
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let ran = Arc::new(AtomicBool::new(false));
        let queued = hasher.run(usize::MAX, {
            let ran = ran.clone();
            move || ran.store(true, Ordering::SeqCst)
        });
        // Queued behind the busy job, then abandoned.
        let abandoned = tokio::time::timeout(std::time::Duration::from_millis(10), queued).await;
        assert!(abandoned.is_err());
        busy.await.unwrap().unwrap();
        // One thread, jobs in order: once this one has run, the abandoned one was handled.
        hasher.run(usize::MAX, || ()).await.unwrap();
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn no_more_hashes_run_at_once_than_the_hasher_has_threads() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hasher = Argon2Hasher::new(cheap(), 2).unwrap();
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut jobs = tokio::task::JoinSet::new();
        for _ in 0..6 {
            let (hasher, running, most) = (hasher.clone(), running.clone(), most.clone());
            jobs.spawn(async move {
                hasher
                    .run(usize::MAX, move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
            });
        }
        while let Some(outcome) = jobs.join_next().await {
            outcome.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_panicking_hash_is_an_error_and_the_thread_survives() {
        let hasher = Argon2Hasher::new(cheap(), 1).unwrap();
        #[allow(clippy::panic)]
        let failed = hasher.run(usize::MAX, || panic!("boom")).await;
        assert!(matches!(failed, Err(PortError::Unexpected(_))));
        let password = Password::normalize("still hashing");
        assert!(hasher.hash(&password).await.is_ok());
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
