use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use authd_application::PortError;
use authd_application::ports::{LoginThrottle, ThrottleKey, ThrottleVerdict};
use authd_domain::{Admission, ClientNetwork, IpCap, LoginBackoff};

/// The login throttle of one process: the same rules as the shared Redis throttle (the
/// arithmetic is the domain's), for development mode and as its fallback while Redis is down.
///
/// Every decision is made under one lock, so admission is atomic. The table is bounded: entries
/// that decide nothing any more are swept, and past `capacity` the entries that matter least
/// (no lock, oldest first) are dropped, so a stream of random emails cannot grow it without
/// limit. Dropping an unlocked counter only forgets failures below the back-off.
#[derive(Debug)]
pub struct InMemoryLoginThrottle {
    backoff: LoginBackoff,
    ip_cap: IpCap,
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Accounts and device cookies.
    accounts: HashMap<ThrottleKey, Counter>,
    networks: HashMap<ClientNetwork, Counter>,
}

/// Failures, and until when they hold: the lock's end for an account (`None` until it reaches
/// the back-off), the window's end for a network.
#[derive(Debug, Clone, Copy)]
struct Counter {
    failures: u32,
    until: Option<Instant>,
    touched: Instant,
}

/// Account counters untouched for this long are dropped, as the Redis throttle's expire.
const IDLE: Duration = Duration::from_secs(24 * 60 * 60);

impl InMemoryLoginThrottle {
    /// Entries kept by default: about 30 MB with ordinary emails, at most about 100 MB when
    /// every key is as long as an email can be.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// Back-off per account, a cap per network, at most `capacity` counters (at least 2).
    pub fn new(backoff: LoginBackoff, ip_cap: IpCap, capacity: usize) -> Self {
        Self {
            backoff,
            ip_cap,
            capacity: capacity.max(2),
            state: Mutex::new(State::default()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State, Instant) -> T) -> T {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let answer = f(&mut state, now);
        if state.accounts.len() + state.networks.len() > self.capacity {
            self.shrink(&mut state, now);
        }
        answer
    }

    /// Sweeps what decides nothing any more; if that is not enough, drops the counters that
    /// matter least down to three quarters of the capacity (so the sweep runs once per many
    /// insertions, not on each): those below their threshold before those at or past it (a
    /// back-off, whose doubling must survive the lock's end), then fewer failures before more,
    /// then the least recently touched. Junk below the threshold, however much of it, goes
    /// before any account in back-off.
    fn shrink(&self, state: &mut State, now: Instant) {
        let locked = |counter: &Counter| counter.until.is_some_and(|until| until > now);
        state
            .accounts
            .retain(|_, counter| locked(counter) || now.duration_since(counter.touched) < IDLE);
        state.networks.retain(|_, counter| locked(counter));
        let target = self.capacity / 4 * 3;
        let rank = |threshold: u32| {
            move |counter: &Counter| {
                (
                    counter.failures >= threshold,
                    counter.failures,
                    counter.touched,
                )
            }
        };
        let excess = (state.accounts.len() + state.networks.len()).saturating_sub(target);
        evict(
            &mut state.accounts,
            excess,
            rank(self.backoff.max_failures()),
        );
        let excess = (state.accounts.len() + state.networks.len()).saturating_sub(target);
        evict(&mut state.networks, excess, rank(self.ip_cap.limit()));
    }

    /// Stores the network's count after an admission, opening its window at the first one.
    fn count_network(
        &self,
        state: &mut State,
        network: ClientNetwork,
        failures: u32,
        now: Instant,
    ) {
        let entry = state.networks.entry(network).or_insert(Counter {
            failures: 0,
            until: None,
            touched: now,
        });
        if failures == 1 {
            entry.until = Some(now + self.ip_cap.window());
        }
        entry.failures = failures;
        entry.touched = now;
    }
}

/// Removes the `excess` entries of `map` that rank lowest.
fn evict<K: Clone + Eq + std::hash::Hash + Ord>(
    map: &mut HashMap<K, Counter>,
    excess: usize,
    rank: impl Fn(&Counter) -> (bool, u32, Instant),
) {
    if excess == 0 {
        return;
    }
    let mut ranked: Vec<((bool, u32, Instant), K)> = map
        .iter()
        .map(|(key, counter)| (rank(counter), key.clone()))
        .collect();
    ranked.sort_unstable();
    for (_, key) in ranked.into_iter().take(excess) {
        map.remove(&key);
    }
}

/// How long `counter` still holds at `now` (`None` when it does not).
fn left(counter: Option<&Counter>, now: Instant) -> Option<Duration> {
    counter
        .and_then(|counter| counter.until)
        .and_then(|until| until.checked_duration_since(now))
}

#[async_trait]
impl LoginThrottle for InMemoryLoginThrottle {
    async fn admit(
        &self,
        account: &ThrottleKey,
        ip: Option<IpAddr>,
    ) -> Result<ThrottleVerdict, PortError> {
        let network = ip.map(ClientNetwork::of);
        Ok(self.with(|state, now| {
            let current = state.accounts.get(account);
            let by_account = self.backoff.admit(
                current.map_or(0, |counter| counter.failures),
                left(current, now),
            );
            let by_network = network.map(|network| {
                let current = state.networks.get(&network);
                self.ip_cap.admit(
                    current.map_or(0, |counter| counter.failures),
                    left(current, now),
                )
            });
            let refusals = [Some(by_account), by_network]
                .into_iter()
                .flatten()
                .filter_map(|admission| match admission {
                    Admission::Refuse { retry_after } => Some(retry_after),
                    Admission::Admit { .. } => None,
                });
            if let Some(retry_after) = refusals.max() {
                return ThrottleVerdict::Deny { retry_after };
            }
            if let Admission::Admit { failures, lock } = by_account {
                state.accounts.insert(
                    account.clone(),
                    Counter {
                        failures,
                        until: lock.map(|lock| now + lock),
                        touched: now,
                    },
                );
            }
            if let (Some(network), Some(Admission::Admit { failures, .. })) = (network, by_network)
            {
                self.count_network(state, network, failures, now);
            }
            ThrottleVerdict::Allow
        }))
    }

    async fn admit_network(&self, ip: IpAddr) -> Result<ThrottleVerdict, PortError> {
        let network = ClientNetwork::of(ip);
        Ok(self.with(|state, now| {
            let current = state.networks.get(&network);
            match self.ip_cap.admit(
                current.map_or(0, |counter| counter.failures),
                left(current, now),
            ) {
                Admission::Refuse { retry_after } => ThrottleVerdict::Deny { retry_after },
                Admission::Admit { failures, .. } => {
                    self.count_network(state, network, failures, now);
                    ThrottleVerdict::Allow
                }
            }
        }))
    }

    async fn succeeded(&self, account: &ThrottleKey, ip: Option<IpAddr>) -> Result<(), PortError> {
        self.with(|state, _| {
            state.accounts.remove(account);
            give_back(state, ip);
        });
        Ok(())
    }

    async fn withdraw(&self, account: &ThrottleKey, ip: Option<IpAddr>) -> Result<(), PortError> {
        self.with(|state, _| {
            if let Some(counter) = state.accounts.get_mut(account) {
                counter.failures = counter.failures.saturating_sub(1);
                if self.backoff.lock_after(counter.failures).is_none() {
                    counter.until = None;
                }
            }
            give_back(state, ip);
        });
        Ok(())
    }
}

/// Gives the network's count of one attempt back.
fn give_back(state: &mut State, ip: Option<IpAddr>) {
    if let Some(counter) = ip.and_then(|ip| state.networks.get_mut(&ClientNetwork::of(ip))) {
        counter.failures = counter.failures.saturating_sub(1);
    }
}

// The throttle's rules (back-off steps, network cap, devices, success and withdrawal,
// concurrency) are the port contract suite's, in `crates/contract`; here only what is this
// adapter's own: the bounded table.
#[cfg(test)]
mod tests {
    use super::*;

    fn ada() -> ThrottleKey {
        account("ada@example.com")
    }

    fn account(email: &str) -> ThrottleKey {
        ThrottleKey::Account(email.to_owned())
    }

    fn deny(seconds: u64) -> ThrottleVerdict {
        ThrottleVerdict::Deny {
            retry_after: Duration::from_secs(seconds),
        }
    }

    #[tokio::test]
    async fn the_table_never_outgrows_its_capacity() {
        let throttle = InMemoryLoginThrottle::new(
            LoginBackoff::new(1),
            IpCap::new(100, Duration::from_secs(300)),
            100,
        );
        throttle.admit(&ada(), None).await.unwrap();
        for n in 0..1_000 {
            throttle
                .admit(&account(&format!("random{n}@example.com")), None)
                .await
                .unwrap();
            let size = {
                let state = throttle.state.lock().unwrap();
                state.accounts.len() + state.networks.len()
            };
            assert!(size <= 100, "{size} entries");
        }
        // Every random account is locked (one failure allowed): the ones ending first went.
        let state = throttle.state.lock().unwrap();
        assert!(
            state
                .accounts
                .contains_key(&account("random999@example.com"))
        );
        assert!(!state.accounts.contains_key(&account("random0@example.com")));
    }

    #[tokio::test]
    async fn a_flood_of_junk_never_erases_a_back_off() {
        let throttle = InMemoryLoginThrottle::new(
            LoginBackoff::new(5),
            IpCap::new(100, Duration::from_secs(300)),
            50,
        );
        for _ in 0..5 {
            throttle.admit(&ada(), None).await.unwrap();
        }
        // Ada's lock runs out; her count must not.
        tokio::time::sleep(Duration::from_millis(1_050)).await;
        for n in 0..500 {
            throttle
                .admit(&account(&format!("junk{n}@example.com")), None)
                .await
                .unwrap();
        }
        assert_eq!(throttle.state.lock().unwrap().accounts[&ada()].failures, 5);
    }

    #[tokio::test]
    async fn unlocked_counters_go_first_when_the_table_is_full() {
        let throttle = InMemoryLoginThrottle::new(
            LoginBackoff::new(2),
            IpCap::new(100, Duration::from_secs(300)),
            8,
        );
        throttle.admit(&ada(), None).await.unwrap();
        throttle.admit(&ada(), None).await.unwrap();
        for n in 0..20 {
            throttle
                .admit(&account(&format!("random{n}@example.com")), None)
                .await
                .unwrap();
        }
        assert_eq!(throttle.admit(&ada(), None).await.unwrap(), deny(1));
        assert!(throttle.state.lock().unwrap().accounts.len() <= 8);
    }

    fn size(throttle: &InMemoryLoginThrottle) -> usize {
        let state = throttle.state.lock().unwrap();
        state.accounts.len() + state.networks.len()
    }

    #[tokio::test]
    async fn the_table_is_shrunk_only_past_its_capacity_and_to_three_quarters_of_it() {
        let throttle = InMemoryLoginThrottle::new(
            LoginBackoff::new(100),
            IpCap::new(100, Duration::from_secs(300)),
            8,
        );
        for n in 0..8 {
            throttle
                .admit(&account(&format!("user{n}@example.com")), None)
                .await
                .unwrap();
            assert_eq!(size(&throttle), n + 1, "shrunk at {}", n + 1);
        }
        throttle.admit(&ada(), None).await.unwrap();
        assert_eq!(size(&throttle), 6);
    }

    #[tokio::test]
    async fn a_shrink_keeps_the_count_of_a_network_whose_window_is_open() {
        let throttle = InMemoryLoginThrottle::new(
            LoginBackoff::new(100),
            IpCap::new(2, Duration::from_secs(300)),
            8,
        );
        let ip = Some(IpAddr::from([192, 0, 2, 7]));
        assert_eq!(
            throttle.admit(&ada(), ip).await.unwrap(),
            ThrottleVerdict::Allow
        );
        // Enough other accounts to shrink the table several times over.
        for n in 0..40 {
            throttle
                .admit(&account(&format!("user{n}@example.com")), None)
                .await
                .unwrap();
        }
        assert_eq!(
            throttle.admit(&ada(), ip).await.unwrap(),
            ThrottleVerdict::Allow
        );
        assert!(matches!(
            throttle.admit(&ada(), ip).await.unwrap(),
            ThrottleVerdict::Deny { .. }
        ));
    }

    #[tokio::test]
    async fn idle_accounts_are_dropped_after_a_day_as_the_redis_keys_expire() {
        assert_eq!(IDLE, Duration::from_secs(86_400));
        let throttle = InMemoryLoginThrottle::new(
            LoginBackoff::new(100),
            IpCap::new(100, Duration::from_secs(300)),
            8,
        );
        throttle.admit(&ada(), None).await.unwrap();
        let mut state = throttle.state.lock().unwrap();
        let touched = state.accounts[&ada()].touched;
        throttle.shrink(&mut state, touched + IDLE - Duration::from_secs(1));
        assert!(state.accounts.contains_key(&ada()), "dropped before a day");
        throttle.shrink(&mut state, touched + IDLE);
        assert!(!state.accounts.contains_key(&ada()), "kept after a day");
    }

    #[tokio::test]
    async fn a_shrink_counts_accounts_and_networks_together_and_evicts_accounts_first() {
        let throttle = InMemoryLoginThrottle::new(
            LoginBackoff::new(100),
            IpCap::new(100, Duration::from_secs(300)),
            8,
        );
        for last in 1..=4 {
            let ip = Some(IpAddr::from([192, 0, 2, last]));
            throttle.admit(&ada(), ip).await.unwrap();
        }
        for n in 0..4 {
            throttle
                .admit(&account(&format!("user{n}@example.com")), None)
                .await
                .unwrap();
        }
        // Nine entries (five accounts, four networks) shrink to six: three accounts with one
        // failure go, Ada (four) and every network (windows open, below their cap) stay.
        let state = throttle.state.lock().unwrap();
        assert_eq!((state.accounts.len(), state.networks.len()), (2, 4));
        assert_eq!(state.accounts[&ada()].failures, 4);
    }
}
