//! The `LoginThrottle` contract: admission, back-off steps as numbers, the per-network cap
//! (shared with the network-only admission of reset requests), success and withdrawal,
//! devices, and exact outcomes under concurrency.
//!
//! Not here: what the throttle does while its server is down (only Redis has an outage: it
//! answers unavailable), counters shared by several instances (the memory throttle belongs to
//! one process), and the memory throttle's bounded table; those are the adapters' own tests.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use authd_application::ports::{LoginThrottle, ThrottleKey, ThrottleVerdict};
use authd_domain::{IpCap, LoginBackoff, TokenId};
use futures_util::future::join_all;
use tokio::time::sleep;

/// Failures an account (or a device) may have before its first lock.
pub const MAX_FAILURES: u32 = 5;
/// Failures a network may have in a window.
pub const IP_LIMIT: u32 = 10;
/// The network window.
pub const IP_WINDOW: Duration = Duration::from_secs(300);

/// The back-off a throttle under test is built with.
pub fn backoff() -> LoginBackoff {
    LoginBackoff::new(MAX_FAILURES)
}

/// The network cap a throttle under test is built with.
pub fn ip_cap() -> IpCap {
    IpCap::new(IP_LIMIT, IP_WINDOW)
}

const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
const OTHER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));

/// Past a lock of this long.
fn past(lock: Duration) -> Duration {
    lock + Duration::from_millis(100)
}

fn account(email: &str) -> ThrottleKey {
    ThrottleKey::Account(email.to_owned())
}

fn ada() -> ThrottleKey {
    account("ada@example.com")
}

fn deny(seconds: u64) -> ThrottleVerdict {
    ThrottleVerdict::Deny {
        retry_after: Duration::from_secs(seconds),
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

async fn admit(
    throttle: &dyn LoginThrottle,
    key: &ThrottleKey,
    ip: Option<IpAddr>,
) -> ThrottleVerdict {
    throttle.admit(key, ip).await.unwrap()
}

/// Admits `n` attempts of `key`, asserting each is allowed.
async fn allow_n(throttle: &dyn LoginThrottle, key: &ThrottleKey, ip: Option<IpAddr>, n: u32) {
    for attempt in 1..=n {
        assert_eq!(
            admit(throttle, key, ip).await,
            ThrottleVerdict::Allow,
            "attempt {attempt} of {key:?}"
        );
    }
}

/// Fills the network of `ip` to its cap with attempts on fresh accounts named after `tag`.
async fn fill_network(throttle: &dyn LoginThrottle, ip: IpAddr, tag: &str) {
    for n in 0..IP_LIMIT {
        let key = account(&format!("{tag}{n}@example.com"));
        allow_n(throttle, &key, Some(ip), 1).await;
    }
}

/// Asserts a refusal by a network whose window opened moments ago.
fn assert_network_refusal(verdict: ThrottleVerdict) {
    match verdict {
        ThrottleVerdict::Deny { retry_after } => assert!(
            retry_after >= IP_WINDOW - Duration::from_secs(1) && retry_after <= IP_WINDOW,
            "{retry_after:?}"
        ),
        ThrottleVerdict::Allow => panic!("admitted past the network's cap"),
    }
}

/// An account's first `MAX_FAILURES` attempts are admitted, the last of them locking it for
/// a second: refused then from any IP or none; other accounts are untouched.
pub async fn throttle_admits_the_failures_allowed_then_locks(throttle: &dyn LoginThrottle) {
    allow_n(throttle, &ada(), Some(IP), MAX_FAILURES).await;
    assert_eq!(admit(throttle, &ada(), Some(IP)).await, deny(1));
    assert_eq!(admit(throttle, &ada(), None).await, deny(1));
    assert_eq!(admit(throttle, &ada(), Some(OTHER_IP)).await, deny(1));
    // The email as given is the key: the caller normalises it.
    allow_n(throttle, &account("bob@example.com"), Some(OTHER_IP), 1).await;
    allow_n(throttle, &account("ADA@example.com"), None, 1).await;
}

/// Past a lock, one more attempt is admitted and locks twice as long: 1 s, 2 s, 4 s.
pub async fn throttle_each_attempt_past_a_lock_doubles_it(throttle: &dyn LoginThrottle) {
    allow_n(throttle, &ada(), None, MAX_FAILURES).await;
    assert_eq!(admit(throttle, &ada(), None).await, deny(1));

    sleep(past(Duration::from_secs(1))).await;
    allow_n(throttle, &ada(), None, 1).await;
    assert_eq!(admit(throttle, &ada(), None).await, deny(2));

    sleep(past(Duration::from_secs(2))).await;
    allow_n(throttle, &ada(), None, 1).await;
    assert_eq!(admit(throttle, &ada(), None).await, deny(4));
}

/// A success resets the account's failures and lifts its lock.
pub async fn throttle_success_resets_the_account(throttle: &dyn LoginThrottle) {
    allow_n(throttle, &ada(), None, MAX_FAILURES - 1).await;
    throttle.succeeded(&ada(), None).await.unwrap();
    allow_n(throttle, &ada(), None, MAX_FAILURES).await;
    assert_eq!(admit(throttle, &ada(), None).await, deny(1));

    throttle.succeeded(&ada(), None).await.unwrap();
    allow_n(throttle, &ada(), None, MAX_FAILURES).await;
    assert_eq!(admit(throttle, &ada(), None).await, deny(1));

    // A success of an account never seen counts nothing.
    let fresh = account("fresh@example.com");
    throttle.succeeded(&fresh, None).await.unwrap();
    allow_n(throttle, &fresh, None, MAX_FAILURES).await;
    assert_eq!(admit(throttle, &fresh, None).await, deny(1));
}

/// A withdrawn attempt gives its count back, lifting the lock it set; a withdrawal of nothing
/// gives nothing.
pub async fn throttle_withdraw_gives_the_count_back(throttle: &dyn LoginThrottle) {
    allow_n(throttle, &ada(), None, MAX_FAILURES).await;
    throttle.withdraw(&ada(), None).await.unwrap();
    allow_n(throttle, &ada(), None, 1).await;
    assert_eq!(admit(throttle, &ada(), None).await, deny(1));

    // Two withdrawn of three: two more fit before the lock.
    let bob = account("bob@example.com");
    allow_n(throttle, &bob, None, 3).await;
    throttle.withdraw(&bob, None).await.unwrap();
    throttle.withdraw(&bob, None).await.unwrap();
    allow_n(throttle, &bob, None, MAX_FAILURES - 1).await;
    assert_eq!(admit(throttle, &bob, None).await, deny(1));

    // Nothing to give back: the count does not go below zero.
    let fresh = account("fresh@example.com");
    throttle.withdraw(&fresh, None).await.unwrap();
    throttle.withdraw(&fresh, None).await.unwrap();
    allow_n(throttle, &fresh, None, MAX_FAILURES).await;
    assert_eq!(admit(throttle, &fresh, None).await, deny(1));
}

/// A device cookie counts against itself alone, with the same thresholds: neither the
/// account's lock nor its success touches the device, nor the other way round.
pub async fn throttle_devices_count_apart_from_accounts(throttle: &dyn LoginThrottle) {
    let device = ThrottleKey::Device(TokenId::generate());
    let other_device = ThrottleKey::Device(TokenId::generate());
    allow_n(throttle, &ada(), None, MAX_FAILURES).await;
    assert_eq!(admit(throttle, &ada(), None).await, deny(1));

    allow_n(throttle, &device, None, MAX_FAILURES).await;
    assert_eq!(admit(throttle, &device, None).await, deny(1));
    allow_n(throttle, &other_device, None, 1).await;

    throttle.succeeded(&device, None).await.unwrap();
    allow_n(throttle, &device, None, 1).await;
    assert_eq!(
        admit(throttle, &ada(), None).await,
        deny(1),
        "the device's success did not reset the account"
    );

    throttle.succeeded(&ada(), None).await.unwrap();
    allow_n(throttle, &ada(), None, 1).await;
    allow_n(throttle, &device, None, MAX_FAILURES - 1).await;
    assert_eq!(
        admit(throttle, &device, None).await,
        deny(1),
        "the account's success did not reset the device"
    );
}

/// A network (an IPv4 address, also IPv4-mapped; an IPv6 /64) is capped across accounts:
/// refused for the rest of its window; other networks, and attempts without an IP, are not.
pub async fn throttle_caps_attempts_per_network(throttle: &dyn LoginThrottle) {
    // Ten addresses of one /64, ten accounts.
    for n in 0..IP_LIMIT {
        let key = account(&format!("six{n}@example.com"));
        allow_n(throttle, &key, Some(ip(&format!("2001:db8:1:2::{n:x}"))), 1).await;
    }
    let neighbour = ip("2001:db8:1:2:ffff::9");
    assert_network_refusal(admit(throttle, &account("late@example.com"), Some(neighbour)).await);
    allow_n(
        throttle,
        &account("late@example.com"),
        Some(ip("2001:db8:1:3::4")),
        1,
    )
    .await;

    // IPv4: the address and its IPv4-mapped form are one network.
    let v4 = ip("192.0.2.1");
    let mapped = ip("::ffff:192.0.2.1");
    for n in 0..IP_LIMIT {
        let key = account(&format!("four{n}@example.com"));
        let from = if n % 2 == 0 { v4 } else { mapped };
        allow_n(throttle, &key, Some(from), 1).await;
    }
    assert_network_refusal(admit(throttle, &account("x@example.com"), Some(mapped)).await);
    assert_network_refusal(admit(throttle, &account("x@example.com"), Some(v4)).await);
    allow_n(
        throttle,
        &account("x@example.com"),
        Some(ip("192.0.2.2")),
        1,
    )
    .await;

    // Without an IP, only the account counts.
    for n in 0..2 * IP_LIMIT {
        allow_n(throttle, &account(&format!("none{n}@example.com")), None, 1).await;
    }
}

/// A success or a withdrawal gives the network the attempt back (the cap counts failures);
/// giving back to a network that counted nothing gives nothing.
pub async fn throttle_success_and_withdraw_give_the_network_its_attempt_back(
    throttle: &dyn LoginThrottle,
) {
    fill_network(throttle, IP, "a").await;
    assert_network_refusal(admit(throttle, &account("b@example.com"), Some(IP)).await);

    throttle
        .succeeded(&account("a0@example.com"), Some(IP))
        .await
        .unwrap();
    allow_n(throttle, &account("b@example.com"), Some(IP), 1).await;
    assert_network_refusal(admit(throttle, &account("c@example.com"), Some(IP)).await);

    throttle
        .withdraw(&account("a1@example.com"), Some(IP))
        .await
        .unwrap();
    allow_n(throttle, &account("c@example.com"), Some(IP), 1).await;
    assert_network_refusal(admit(throttle, &account("d@example.com"), Some(IP)).await);

    // A network that counted nothing: nothing to give back.
    throttle
        .succeeded(&account("e@example.com"), Some(OTHER_IP))
        .await
        .unwrap();
    throttle
        .withdraw(&account("e@example.com"), Some(OTHER_IP))
        .await
        .unwrap();
    fill_network(throttle, OTHER_IP, "f").await;
    assert_network_refusal(admit(throttle, &account("g@example.com"), Some(OTHER_IP)).await);
}

/// A refused attempt counts nothing: not against its account when the network refuses it
/// (not even a lock step), not against its network when the account refuses it.
pub async fn throttle_a_refused_attempt_counts_nothing(throttle: &dyn LoginThrottle) {
    // Refused by the network: the account keeps all its attempts.
    fill_network(throttle, IP, "a").await;
    let victim = account("victim@example.com");
    for _ in 0..3 {
        assert_network_refusal(admit(throttle, &victim, Some(IP)).await);
    }
    allow_n(throttle, &victim, None, MAX_FAILURES).await;
    assert_eq!(admit(throttle, &victim, None).await, deny(1));

    // Refused by the account: the network keeps all its attempts.
    allow_n(throttle, &ada(), None, MAX_FAILURES).await;
    for _ in 0..2 * IP_LIMIT {
        assert_eq!(admit(throttle, &ada(), Some(OTHER_IP)).await, deny(1));
    }
    fill_network(throttle, OTHER_IP, "b").await;
    assert_network_refusal(admit(throttle, &account("c@example.com"), Some(OTHER_IP)).await);

    // Past its lock, an account refused by a full network is not locked further by that
    // attempt: its next attempt without the network is admitted.
    let third = ip("192.0.2.99");
    let late = account("late@example.com");
    allow_n(throttle, &late, None, MAX_FAILURES).await;
    fill_network(throttle, third, "d").await;
    sleep(past(Duration::from_secs(1))).await;
    assert_network_refusal(admit(throttle, &late, Some(third)).await);
    allow_n(throttle, &late, None, 1).await;
    assert_eq!(admit(throttle, &late, None).await, deny(2));
}

/// Of thirty attempts at once on an account with one failure, exactly the four failures left
/// are admitted; the others are refused for the lock the last admitted one set.
pub async fn throttle_of_thirty_concurrent_attempts_exactly_the_failures_left_pass(
    throttle: &dyn LoginThrottle,
) {
    allow_n(throttle, &ada(), None, 1).await;
    let key = ada();
    // Each from its own address, so only the account can refuse.
    let addresses: Vec<IpAddr> = (0..30u8)
        .map(|n| IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10 + n)))
        .collect();

    let verdicts = join_all(
        addresses
            .iter()
            .map(|address| throttle.admit(&key, Some(*address))),
    )
    .await;

    let verdicts: Vec<ThrottleVerdict> = verdicts.into_iter().map(Result::unwrap).collect();
    let admitted = verdicts
        .iter()
        .filter(|verdict| **verdict == ThrottleVerdict::Allow)
        .count();
    assert_eq!(admitted, (MAX_FAILURES - 1) as usize, "{verdicts:?}");
    assert!(
        verdicts
            .iter()
            .all(|verdict| *verdict == ThrottleVerdict::Allow || *verdict == deny(1)),
        "{verdicts:?}"
    );
    assert_eq!(admit(throttle, &ada(), None).await, deny(1));
}

/// Of forty attempts at once from one network on forty accounts, exactly the cap is admitted,
/// and the refused attempts counted nothing against their accounts.
pub async fn throttle_of_concurrent_attempts_from_one_network_exactly_the_cap_passes(
    throttle: &dyn LoginThrottle,
) {
    let keys: Vec<ThrottleKey> = (0..40)
        .map(|n| account(&format!("user{n}@example.com")))
        .collect();
    // Forty addresses of one /64.
    let addresses: Vec<IpAddr> = (0..40)
        .map(|n| ip(&format!("2001:db8:5:6::{n:x}")))
        .collect();

    let verdicts = join_all(
        keys.iter()
            .zip(&addresses)
            .map(|(key, address)| throttle.admit(key, Some(*address))),
    )
    .await;

    let verdicts: Vec<ThrottleVerdict> = verdicts.into_iter().map(Result::unwrap).collect();
    let admitted: Vec<bool> = verdicts
        .iter()
        .map(|verdict| *verdict == ThrottleVerdict::Allow)
        .collect();
    assert_eq!(
        admitted.iter().filter(|allowed| **allowed).count(),
        IP_LIMIT as usize
    );
    for verdict in verdicts
        .iter()
        .filter(|verdict| **verdict != ThrottleVerdict::Allow)
    {
        assert_network_refusal(*verdict);
    }
    // Only the admitted accounts have one failure fewer left.
    for (key, was_admitted) in keys.iter().zip(admitted) {
        let left = if was_admitted {
            MAX_FAILURES - 1
        } else {
            MAX_FAILURES
        };
        allow_n(throttle, key, None, left).await;
        assert_eq!(admit(throttle, key, None).await, deny(1), "{key:?}");
    }
}

/// A network-only admission (a reset request) counts against the network's cap, the one
/// logins count against: up to the cap it is admitted, then refused for the rest of the
/// window, and a login from that network is refused too (one without an IP is not). Other
/// networks are not touched, and a login's failures fill the same cap.
pub async fn throttle_admit_network_counts_against_the_network_cap(throttle: &dyn LoginThrottle) {
    // Addresses of one /64 are one network.
    for n in 0..IP_LIMIT {
        let from = ip(&format!("2001:db8:7:8::{n:x}"));
        assert_eq!(
            throttle.admit_network(from).await.unwrap(),
            ThrottleVerdict::Allow,
            "request {n}"
        );
    }
    let neighbour = ip("2001:db8:7:8:ffff::1");
    assert_network_refusal(throttle.admit_network(neighbour).await.unwrap());
    assert_network_refusal(admit(throttle, &ada(), Some(neighbour)).await);
    allow_n(throttle, &ada(), None, 1).await;
    assert_eq!(
        throttle.admit_network(OTHER_IP).await.unwrap(),
        ThrottleVerdict::Allow
    );

    // Half the cap by logins, half by requests: the next of either is refused.
    let half = IP_LIMIT / 2;
    for n in 0..half {
        allow_n(
            throttle,
            &account(&format!("mixed{n}@example.com")),
            Some(IP),
            1,
        )
        .await;
    }
    for n in half..IP_LIMIT {
        assert_eq!(
            throttle.admit_network(IP).await.unwrap(),
            ThrottleVerdict::Allow,
            "request {n}"
        );
    }
    assert_network_refusal(throttle.admit_network(IP).await.unwrap());
    assert_network_refusal(admit(throttle, &account("late@example.com"), Some(IP)).await);
}

/// Of forty network-only admissions at once from one network, exactly the cap passes.
pub async fn throttle_of_concurrent_network_admissions_exactly_the_cap_passes(
    throttle: &dyn LoginThrottle,
) {
    let verdicts = join_all((0..40).map(|_| throttle.admit_network(IP))).await;

    let verdicts: Vec<ThrottleVerdict> = verdicts.into_iter().map(Result::unwrap).collect();
    let admitted = verdicts
        .iter()
        .filter(|verdict| **verdict == ThrottleVerdict::Allow)
        .count();
    assert_eq!(admitted, IP_LIMIT as usize, "{verdicts:?}");
    for verdict in verdicts
        .iter()
        .filter(|verdict| **verdict != ThrottleVerdict::Allow)
    {
        assert_network_refusal(*verdict);
    }
    // Another address is another network.
    assert_eq!(
        throttle.admit_network(OTHER_IP).await.unwrap(),
        ThrottleVerdict::Allow
    );
}
