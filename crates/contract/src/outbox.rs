//! The `Outbox` contract: due times, leases, attempts, outcomes, stats and the purge. Emails
//! are queued the way the service queues them, by the store operations that promise them.

use std::time::Duration;

use authd_application::ports::{OutboxEmail, OutboxStats};
use authd_domain::{EmailId, EmailKind};
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::join_all;

use crate::Store;
use crate::fixtures::{at, later, no_limit, reset_link, sealed, t0};

const LEASE: Duration = Duration::from_secs(5 * 60);

fn new_hash() -> authd_domain::PasswordHash {
    authd_domain::PasswordHash::new("$argon2id$new")
}

/// Queues a password-changed notice to a new user `<name>@example.com`, at `t0 + minutes`.
async fn notice_at(store: Store<'_>, name: &str, minutes: i64) {
    let user = store.user(&format!("{name}@example.com")).await;
    store
        .users
        .replace_password(user.id, 0, &new_hash(), at(minutes))
        .await
        .unwrap()
        .unwrap();
}

/// The emails due at `now`, claimed for `LEASE`, at most `batch`.
async fn claim(store: Store<'_>, now: DateTime<Utc>, batch: u32) -> Vec<OutboxEmail> {
    store.outbox.claim(now, LEASE, batch).await.unwrap()
}

/// Who the emails go to, in order.
fn recipients(emails: &[OutboxEmail]) -> Vec<&str> {
    emails
        .iter()
        .map(|email| email.recipient.as_str())
        .collect()
}

fn stats(depth: u64, oldest: Option<DateTime<Utc>>) -> OutboxStats {
    OutboxStats { depth, oldest }
}

/// An email is due from the moment it is queued, and is claimed whole: kind, recipient as
/// stored, sealed token, the attempt it is on, when it was queued.
pub async fn outbox_an_email_is_due_when_queued_and_claimed_with_its_details(store: Store<'_>) {
    store.signup("Ada@Example.com", "signup").await;
    notice_at(store, "grace", 1).await;

    assert_eq!(claim(store, t0() - TimeDelta::seconds(1), 10).await, vec![]);
    let claimed = claim(store, t0(), 10).await;
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    let email = &claimed[0];
    assert_eq!(email.kind, EmailKind::VerifyEmail);
    assert_eq!(email.recipient, "Ada@Example.com");
    assert_eq!(email.sealed_token, Some(sealed("signup")));
    assert_eq!(email.attempts, 1);
    assert_eq!(email.created_at, t0());

    let claimed = claim(store, at(1), 10).await;
    assert_eq!(
        claimed,
        vec![OutboxEmail {
            id: claimed[0].id,
            kind: EmailKind::PasswordChanged,
            recipient: "grace@example.com".into(),
            sealed_token: None,
            attempts: 1,
            created_at: at(1),
        }]
    );
    assert_ne!(claimed[0].id, email.id);
}

/// A claimed email is not claimable again before its lease is over, is from the moment it is
/// over, and each claim counts one more attempt.
pub async fn outbox_claim_leases_the_email_and_counts_the_attempt(store: Store<'_>) {
    notice_at(store, "ada", 1).await;

    let first = claim(store, at(1), 10).await;
    assert_eq!((first.len(), first[0].attempts), (1, 1));
    assert_eq!(claim(store, at(1), 10).await, vec![]);
    assert_eq!(
        claim(store, at(6) - TimeDelta::seconds(1), 10).await,
        vec![]
    );

    let second = claim(store, at(6), 10).await;
    assert_eq!(
        second,
        vec![OutboxEmail {
            attempts: 2,
            ..first[0].clone()
        }]
    );
    let third = claim(store, at(30), 10).await;
    assert_eq!(third.len(), 1);
    assert_eq!((third[0].id, third[0].attempts), (first[0].id, 3));
}

/// Claims take the oldest due emails first, at most a batch, and never one not yet due.
pub async fn outbox_claims_the_oldest_due_first_a_batch_at_a_time(store: Store<'_>) {
    for (name, minutes) in [
        ("c", 3),
        ("a", 1),
        ("b", 2),
        ("e", 5),
        ("d", 4),
        ("late", 20),
    ] {
        notice_at(store, name, minutes).await;
    }

    // Leased for an hour: the emails claimed here are not due again below.
    let mut batches = Vec::new();
    for _ in 0..4 {
        let batch = store
            .outbox
            .claim(at(10), Duration::from_secs(3600), 2)
            .await
            .unwrap();
        batches.push(
            recipients(&batch)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        );
    }

    assert_eq!(
        batches,
        [
            vec!["a@example.com", "b@example.com"],
            vec!["c@example.com", "d@example.com"],
            vec!["e@example.com"],
            vec![],
        ]
    );
    assert_eq!(
        recipients(&claim(store, at(20), 10).await),
        ["late@example.com"]
    );
}

/// Claims take reset and password-changed emails before verification ones, however much
/// older the verification emails are, then the oldest due first; a verification email is
/// claimed once no other is due.
pub async fn outbox_claims_reset_and_notice_emails_before_verification_ones(store: Store<'_>) {
    // A flood of sign-ups at `t0`, then a reset request and a password change.
    for n in 0..3 {
        store
            .signup(&format!("new{n}@example.com"), &format!("v{n}"))
            .await;
    }
    let ada = store.user("ada@example.com").await;
    store
        .links
        .request_reset(&ada.email, &reset_link("reset"), &no_limit(), at(5))
        .await
        .unwrap();
    notice_at(store, "grace", 4).await;

    let mut batches = Vec::new();
    for _ in 0..4 {
        let batch = store
            .outbox
            .claim(at(10), Duration::from_secs(3600), 2)
            .await
            .unwrap();
        batches.push(batch.iter().map(|email| email.kind).collect::<Vec<_>>());
    }

    assert_eq!(
        batches,
        [
            vec![EmailKind::PasswordChanged, EmailKind::ResetPassword],
            vec![EmailKind::VerifyEmail, EmailKind::VerifyEmail],
            vec![EmailKind::VerifyEmail],
            vec![],
        ]
    );

    // Once the first two went out and the leases are over, a reset email queued later than
    // the verification emails were due again still goes first.
    let first = store.outbox.claim(at(70), LEASE, 2).await.unwrap();
    for email in &first {
        store.outbox.sent(email.id, at(70)).await.unwrap();
    }
    store
        .links
        .request_reset(&ada.email, &reset_link("again"), &no_limit(), at(80))
        .await
        .unwrap();
    let claimed = store.outbox.claim(at(80), LEASE, 10).await.unwrap();
    let kinds: Vec<EmailKind> = claimed.iter().map(|email| email.kind).collect();
    assert_eq!(
        kinds,
        [
            EmailKind::ResetPassword,
            EmailKind::VerifyEmail,
            EmailKind::VerifyEmail,
            EmailKind::VerifyEmail,
        ]
    );
    assert_eq!(claimed[0].sealed_token, Some(sealed("again")));
}

/// Claims at once get disjoint emails: each email is claimed once.
pub async fn outbox_concurrent_claims_get_disjoint_emails(store: Store<'_>) {
    for n in 0..20 {
        notice_at(store, &format!("user{n}"), n).await;
    }

    let claims = join_all((0..4).map(|_| store.outbox.claim(at(30), LEASE, 5))).await;

    let mut claimed: Vec<EmailId> = claims
        .into_iter()
        .flat_map(|claim| claim.unwrap())
        .map(|email| email.id)
        .collect();
    claimed.extend(claim(store, at(30), 100).await.iter().map(|email| email.id));
    let total = claimed.len();
    claimed.sort();
    claimed.dedup();
    assert_eq!((total, claimed.len()), (20, 20));
}

/// A sent email is done: it no longer waits, and is never claimed again.
pub async fn outbox_a_sent_email_is_done(store: Store<'_>) {
    store.signup("ada@example.com", "signup").await;
    let claimed = claim(store, t0(), 10).await;
    assert_eq!(claimed.len(), 1);

    store.outbox.sent(claimed[0].id, at(1)).await.unwrap();

    assert_eq!(store.outbox.stats().await.unwrap(), stats(0, None));
    assert_eq!(claim(store, at(6), 10).await, vec![]);
    assert_eq!(claim(store, later(), 10).await, vec![]);
}

/// A failed email is due again at its retry time (even before its lease is over), keeps its
/// token for the next attempt, and still waits; an error of any length is taken.
pub async fn outbox_a_failed_email_is_due_again_at_its_retry_time(store: Store<'_>) {
    store.signup("ada@example.com", "signup").await;
    let first = claim(store, t0(), 10).await;
    assert_eq!(first.len(), 1);
    let id = first[0].id;

    store
        .outbox
        .failed(id, "421 4.7.0 try again later", Some(at(2)), at(1))
        .await
        .unwrap();

    assert_eq!(
        claim(store, at(2) - TimeDelta::seconds(1), 10).await,
        vec![]
    );
    let second = claim(store, at(2), 10).await;
    assert_eq!(
        second,
        vec![OutboxEmail {
            attempts: 2,
            ..first[0].clone()
        }]
    );
    assert_eq!(second[0].sealed_token, Some(sealed("signup")));
    assert_eq!(store.outbox.stats().await.unwrap(), stats(1, Some(t0())));

    let long = "é".repeat(5000);
    store
        .outbox
        .failed(id, &long, Some(at(3)), at(2))
        .await
        .unwrap();
    let third = claim(store, at(3), 10).await;
    assert_eq!((third.len(), third[0].attempts), (1, 3));
}

/// A dead email is given up: it no longer waits, and is never claimed again.
pub async fn outbox_a_dead_email_is_given_up(store: Store<'_>) {
    store.signup("ada@example.com", "signup").await;
    notice_at(store, "grace", 1).await;
    let claimed = claim(store, t0(), 10).await;
    assert_eq!(claimed.len(), 1);

    store
        .outbox
        .failed(claimed[0].id, "550 5.1.1 no such user", None, at(1))
        .await
        .unwrap();

    assert_eq!(store.outbox.stats().await.unwrap(), stats(1, Some(at(1))));
    assert_eq!(
        recipients(&claim(store, later(), 10).await),
        ["grace@example.com"]
    );
}

/// The stats count the emails neither sent nor dead, claimed or not, and say when the oldest
/// of them was queued.
pub async fn outbox_stats_count_what_waits_and_its_oldest(store: Store<'_>) {
    assert_eq!(store.outbox.stats().await.unwrap(), stats(0, None));
    for (name, minutes) in [("b", 2), ("a", 1), ("c", 3)] {
        notice_at(store, name, minutes).await;
    }
    assert_eq!(store.outbox.stats().await.unwrap(), stats(3, Some(at(1))));

    let claimed = claim(store, at(3), 10).await;
    assert_eq!(
        recipients(&claimed),
        ["a@example.com", "b@example.com", "c@example.com"]
    );
    assert_eq!(store.outbox.stats().await.unwrap(), stats(3, Some(at(1))));

    store.outbox.sent(claimed[0].id, at(4)).await.unwrap();
    assert_eq!(store.outbox.stats().await.unwrap(), stats(2, Some(at(2))));
    store
        .outbox
        .failed(claimed[1].id, "550", None, at(4))
        .await
        .unwrap();
    assert_eq!(store.outbox.stats().await.unwrap(), stats(1, Some(at(3))));
    store
        .outbox
        .failed(claimed[2].id, "421", Some(at(10)), at(4))
        .await
        .unwrap();
    assert_eq!(store.outbox.stats().await.unwrap(), stats(1, Some(at(3))));
}

/// The purge deletes the emails sent or dead before the cut, never one that waits, and says
/// how many.
pub async fn outbox_purge_deletes_only_emails_sent_or_dead_before_the_cut(store: Store<'_>) {
    for (name, minutes) in [("sent", 1), ("dead", 2), ("sent-late", 3), ("waiting", 4)] {
        notice_at(store, name, minutes).await;
    }
    let claimed = claim(store, at(5), 10).await;
    assert_eq!(claimed.len(), 4);
    store.outbox.sent(claimed[0].id, at(10)).await.unwrap();
    store
        .outbox
        .failed(claimed[1].id, "550", None, at(20))
        .await
        .unwrap();
    store.outbox.sent(claimed[2].id, at(40)).await.unwrap();
    store
        .outbox
        .failed(claimed[3].id, "421", Some(at(100)), at(20))
        .await
        .unwrap();

    assert_eq!(store.outbox.purge(at(10), 100).await.unwrap(), 0);
    assert_eq!(store.outbox.purge(at(30), 100).await.unwrap(), 2);
    assert_eq!(store.outbox.purge(at(30), 100).await.unwrap(), 0);
    assert_eq!(store.outbox.purge(later(), 100).await.unwrap(), 1);
    assert_eq!(store.outbox.stats().await.unwrap(), stats(1, Some(at(4))));
    assert_eq!(
        recipients(&claim(store, at(100), 10).await),
        ["waiting@example.com"]
    );
}

/// The purge deletes at most a batch at a time.
pub async fn outbox_purge_deletes_at_most_a_batch(store: Store<'_>) {
    for n in 0..5 {
        notice_at(store, &format!("user{n}"), n).await;
    }
    for email in claim(store, at(10), 10).await {
        store.outbox.sent(email.id, at(10)).await.unwrap();
    }
    let mut batches = Vec::new();
    for _ in 0..4 {
        batches.push(store.outbox.purge(at(11), 2).await.unwrap());
    }
    assert_eq!(batches, [2, 2, 1, 0]);
}
