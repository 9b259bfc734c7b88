//! The `LinkTokenRepository` contract, with the emails its operations (and the user
//! repository's signup and password changes) queue in the outbox.

use std::time::Duration;

use authd_application::PortError;
use authd_application::ports::{CreateUserError, LinkRequest, OutboxStats, UserChanges};
use authd_domain::{EmailKind, LinkPurpose, PasswordHash, User, UserId};
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::join_all;

use crate::Store;
use crate::fixtures::{
    MixedSessions, at, digest, email, limit, link, link_email, no_limit, notice, old_hash,
    reset_link, session_ids, sorted, t0, verify_link,
};

fn new_hash() -> PasswordHash {
    PasswordHash::new("$argon2id$new")
}

fn seconds(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

/// A user created inactive with a verification link made from `label`: the one way an inactive
/// user holds an unspent token, since a deactivation spends them all.
async fn dormant(store: Store<'_>, address: &str, label: &str) -> User {
    let role = store.members().await;
    let user = User {
        is_active: false,
        ..User::register(email(address), None, role.to_ref(), t0())
    };
    store
        .users
        .create(&user, &old_hash(), Some(&verify_link(label)))
        .await
        .unwrap();
    user
}

/// Sets `is_active` without revoking anything, at `now`; returns the user as stored.
async fn set_active(
    store: Store<'_>,
    user: &User,
    active: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> User {
    let changes = UserChanges {
        is_active: Some(active),
        ..UserChanges::default()
    };
    let (user, _) = store
        .users
        .update(user.id, &changes, false, now)
        .await
        .unwrap()
        .unwrap();
    user
}

/// A signup with a verification link stores the user unverified, the token for verification
/// only, and queues exactly one verification email with the sealed token, to the address as
/// typed; a user created without a link queues nothing.
pub async fn links_signup_queues_one_verification_email_with_the_sealed_token(store: Store<'_>) {
    let user = store.signup("Ada.Lovelace@Example.com", "signup").await;
    store.user("grace@example.com").await;

    assert_eq!(
        store.outbox.stats().await.unwrap(),
        OutboxStats {
            depth: 1,
            oldest: Some(t0())
        }
    );
    assert_eq!(
        store.waiting().await,
        vec![link_email(
            EmailKind::VerifyEmail,
            "Ada.Lovelace@Example.com",
            "signup"
        )]
    );
    assert_eq!(
        store.users.find_by_id(user.id).await.unwrap(),
        Some(user.clone())
    );
    assert!(!user.is_verified);
    let verification = verify_link("signup");
    assert_eq!(
        store
            .links
            .holder(LinkPurpose::VerifyEmail, &verification.digest, t0())
            .await
            .unwrap(),
        Some(user)
    );
    assert_eq!(
        store
            .links
            .holder(LinkPurpose::ResetPassword, &verification.digest, t0())
            .await
            .unwrap(),
        None
    );
}

/// A signup whose email is taken is `EmailTaken` and leaves nothing: no user, no token, no
/// email.
pub async fn links_signup_with_a_taken_email_stores_and_queues_nothing(store: Store<'_>) {
    let role = store.members().await;
    let owner = store.user("Zoë@Example.org").await;
    let twin = User::register(email("ZOË@example.ORG"), None, role.to_ref(), t0());
    let verification = verify_link("twin");

    let created = store
        .users
        .create(&twin, &new_hash(), Some(&verification))
        .await;

    assert!(
        matches!(created, Err(CreateUserError::EmailTaken)),
        "{created:?}"
    );
    assert_eq!(store.users.find_by_id(twin.id).await.unwrap(), None);
    assert_eq!(store.depth().await, 0);
    assert_eq!(store.waiting().await, vec![]);
    assert_eq!(store.holder(&verification, t0()).await, None);
    assert_eq!(
        store
            .links
            .verify_email(&verification.digest, t0())
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.users.find_by_id(owner.id).await.unwrap(), Some(owner));
}

/// A signup whose link has the digest of a stored token (the store's key) fails as a store
/// error, not as a taken email, and leaves nothing: no user, and only the first email.
pub async fn links_signup_with_a_stored_digest_stores_and_queues_nothing(store: Store<'_>) {
    let first = store.signup("ada@example.com", "same").await;
    let role = store.members().await;
    let second = User::register(email("bob@example.com"), None, role.to_ref(), t0());

    let created = store
        .users
        .create(&second, &new_hash(), Some(&verify_link("same")))
        .await;

    assert!(
        matches!(
            created,
            Err(CreateUserError::Port(PortError::Unexpected(_)))
        ),
        "{created:?}"
    );
    assert_eq!(store.users.find_by_id(second.id).await.unwrap(), None);
    assert_eq!(store.depth().await, 1);
    assert_eq!(
        store.holder(&verify_link("same"), t0()).await,
        Some(first.id)
    );
}

/// Deleting a user takes its link tokens along and leaves every other user's working.
pub async fn links_deleting_a_user_keeps_the_links_of_others(store: Store<'_>) {
    let ada = store.signup("ada@example.com", "ada").await;
    let bob = store.signup("bob@example.com", "bob").await;

    assert_eq!(
        store.users.delete(ada.id, t0()).await.unwrap(),
        Some(vec![])
    );

    assert_eq!(store.holder(&verify_link("ada"), t0()).await, None);
    assert_eq!(store.holder(&verify_link("bob"), t0()).await, Some(bob.id));
    assert_eq!(
        store
            .links
            .verify_email(&verify_link("bob").digest, t0())
            .await
            .unwrap(),
        Some(bob.id)
    );
    // Ada's token went with her: past both expiries, only Bob's is left to purge.
    assert_eq!(
        store
            .links
            .purge(t0() + TimeDelta::days(2), 100)
            .await
            .unwrap(),
        1
    );
}

/// A reset request for an address without an account, or with an inactive one, is
/// `NoAccount`: no token, no email.
pub async fn links_reset_request_without_an_active_account_changes_nothing(store: Store<'_>) {
    let role = store.members().await;
    let inactive = store
        .member("gone@example.com", None, &role, TimeDelta::zero(), false)
        .await;

    for (address, label) in [
        ("nobody@example.com", "nobody"),
        ("GONE@example.com", "gone"),
    ] {
        let link = reset_link(label);
        let requested = store
            .links
            .request_reset(&email(address), &link, &limit(), t0())
            .await
            .unwrap();
        assert_eq!(requested, LinkRequest::NoAccount, "{address}");
        assert_eq!(store.holder(&link, t0()).await, None);
    }
    assert_eq!(store.depth().await, 0);
    // Active again, the account has no token from its inactive time.
    set_active(store, &inactive, true, at(1)).await;
    assert_eq!(store.holder(&reset_link("gone"), at(1)).await, None);
    assert_eq!(store.waiting().await, vec![]);
}

/// A reset request finds the account by its email in any case and form, stores the token for
/// resets only, and queues the reset email with the sealed token to the address as stored;
/// nothing else of the account changes.
pub async fn links_reset_request_queues_the_email_to_the_address_as_stored(store: Store<'_>) {
    let user = store.user("Ada.Lovelace@Example.com").await;
    let (session, _) = store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let reset = reset_link("reset");

    let requested = store
        .links
        .request_reset(
            &email("  ada.lovelace@EXAMPLE.COM "),
            &reset,
            &limit(),
            at(1),
        )
        .await
        .unwrap();

    assert_eq!(requested, LinkRequest::Queued);
    assert_eq!(
        store.outbox.stats().await.unwrap(),
        OutboxStats {
            depth: 1,
            oldest: Some(at(1))
        }
    );
    assert_eq!(
        store
            .links
            .holder(LinkPurpose::ResetPassword, &reset.digest, at(1))
            .await
            .unwrap(),
        Some(user.clone())
    );
    assert_eq!(
        store
            .links
            .holder(LinkPurpose::VerifyEmail, &reset.digest, at(1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.users.find_by_id(user.id).await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(
        store.users.password_hash(user.id).await.unwrap(),
        Some(old_hash())
    );
    assert_eq!(store.version(&user).await, 0);
    assert_eq!(store.live_ids(&user).await, vec![session.id]);
    assert_eq!(
        store.waiting().await,
        vec![link_email(
            EmailKind::ResetPassword,
            "Ada.Lovelace@Example.com",
            "reset"
        )]
    );
}

/// An account gets at most one reset email a minute and five an hour: a refused request is
/// `Limited` with the wait and changes nothing (no token, no email, the older token still
/// works); other accounts are not held back.
pub async fn links_reset_requests_are_limited_per_account(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let other = store.user("grace@example.com").await;
    let first = store.reset_requested(&user, "r0", t0()).await;

    for (label, now, wait) in [
        ("again", t0(), 60),
        ("soon", t0() + TimeDelta::seconds(20), 40),
    ] {
        let refused = reset_link(label);
        let requested = store
            .links
            .request_reset(&user.email, &refused, &limit(), now)
            .await
            .unwrap();
        assert_eq!(
            requested,
            LinkRequest::Limited {
                retry_after: seconds(wait)
            },
            "{label}"
        );
        assert_eq!(store.holder(&refused, now).await, None);
    }
    assert_eq!(store.depth().await, 1);
    assert_eq!(store.holder(&first, t0()).await, Some(user.id));
    store.reset_requested(&other, "other", t0()).await;

    // A minute apart, five fit in the hour; the sixth waits for the first to leave it.
    for minute in 1..5 {
        store
            .reset_requested(&user, &format!("r{minute}"), at(minute))
            .await;
    }
    let sixth = reset_link("r5");
    let requested = store
        .links
        .request_reset(&user.email, &sixth, &limit(), at(5))
        .await
        .unwrap();
    assert_eq!(
        requested,
        LinkRequest::Limited {
            retry_after: seconds(55 * 60)
        }
    );
    assert_eq!(store.holder(&sixth, at(5)).await, None);
    assert_eq!(store.holder(&reset_link("r4"), at(5)).await, Some(user.id));
    store.reset_requested(&user, "r60", at(60)).await;
    assert_eq!(store.depth().await, 7);
}

/// A new reset request spends the account's older token: only the newest link works.
pub async fn links_a_new_reset_request_spends_the_older_token(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let old = store.reset_requested(&user, "old", t0()).await;
    let new = store.reset_requested(&user, "new", at(2)).await;

    assert_eq!(store.holder(&old, at(2)).await, None);
    assert_eq!(store.holder(&new, at(2)).await, Some(user.id));
    assert_eq!(
        store
            .links
            .reset_password(&old.digest, &new_hash(), at(3))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.users.password_hash(user.id).await.unwrap(),
        Some(old_hash())
    );
    assert!(
        store
            .links
            .reset_password(&new.digest, &new_hash(), at(3))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.waiting().await,
        sorted(vec![
            link_email(EmailKind::ResetPassword, "ada@example.com", "old"),
            link_email(EmailKind::ResetPassword, "ada@example.com", "new"),
            notice("ada@example.com"),
        ])
    );
}

/// Of ten reset requests at once for one account, the limit lets exactly one through: the
/// requests of an account are serialised.
pub async fn links_of_concurrent_reset_requests_the_limit_lets_one_through(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let links: Vec<_> = (0..10).map(|n| reset_link(&format!("r{n}"))).collect();
    let limit = limit();

    let requested = join_all(
        links
            .iter()
            .map(|link| store.links.request_reset(&user.email, link, &limit, t0())),
    )
    .await;

    let requested: Vec<LinkRequest> = requested.into_iter().map(Result::unwrap).collect();
    let queued: Vec<usize> = (0..links.len())
        .filter(|n| requested[*n] == LinkRequest::Queued)
        .collect();
    assert_eq!(queued.len(), 1, "{requested:?}");
    assert!(
        requested
            .iter()
            .all(|request| *request == LinkRequest::Queued
                || *request
                    == LinkRequest::Limited {
                        retry_after: seconds(60)
                    }),
        "{requested:?}"
    );
    assert_eq!(store.depth().await, 1);
    for (n, link) in links.iter().enumerate() {
        let expected = (n == queued[0]).then_some(user.id);
        assert_eq!(store.holder(link, t0()).await, expected, "r{n}");
    }
}

/// A token holds its user only for its purpose, before its expiry (at `expires_at` it is
/// expired), while unspent, and while the user is active.
pub async fn links_holder_respects_purpose_expiry_spending_and_activity(store: Store<'_>) {
    let user = store.signup("ada@example.com", "verify").await;
    let verification = verify_link("verify");
    let reset = store.reset_requested(&user, "reset", t0()).await;

    // Purpose.
    assert_eq!(
        store
            .links
            .holder(LinkPurpose::VerifyEmail, &reset.digest, t0())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .links
            .holder(LinkPurpose::ResetPassword, &verification.digest, t0())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .links
            .holder(LinkPurpose::ResetPassword, &digest("unknown"), t0())
            .await
            .unwrap(),
        None
    );
    // Expiry.
    let just_before = reset.expires_at - TimeDelta::seconds(1);
    assert_eq!(store.holder(&reset, just_before).await, Some(user.id));
    assert_eq!(store.holder(&reset, reset.expires_at).await, None);
    assert_eq!(
        store
            .holder(&reset, reset.expires_at + TimeDelta::seconds(1))
            .await,
        None
    );
    // Activity: the token of an inactive user (one created inactive: a deactivation spends
    // the tokens) holds nothing until the user is activated.
    let dormant = dormant(store, "dormant@example.com", "dormant").await;
    let dormant_link = verify_link("dormant");
    assert_eq!(store.holder(&dormant_link, at(1)).await, None);
    let dormant = set_active(store, &dormant, true, at(2)).await;
    assert_eq!(
        store
            .links
            .holder(LinkPurpose::VerifyEmail, &dormant_link.digest, at(2))
            .await
            .unwrap(),
        Some(dormant)
    );
    assert_eq!(
        store
            .links
            .holder(LinkPurpose::ResetPassword, &reset.digest, at(2))
            .await
            .unwrap(),
        Some(user.clone())
    );
    // Spent.
    assert_eq!(
        store
            .links
            .verify_email(&verification.digest, at(3))
            .await
            .unwrap(),
        Some(user.id)
    );
    assert_eq!(store.holder(&verification, at(3)).await, None);
    assert_eq!(store.holder(&reset, at(3)).await, Some(user.id));
}

/// A reset spends the token and, at once: sets the hash, marks the address verified, bumps the
/// credentials version, revokes exactly the live sessions (their sealed pairs cleared) and
/// queues the notice. The same token again is `None` and changes nothing.
pub async fn links_reset_sets_the_password_and_ends_every_session(store: Store<'_>) {
    let user = store.user("Ada@Example.com").await;
    let other = store.user("grace@example.com").await;
    let MixedSessions {
        live_a,
        live_b,
        expired,
        others,
    } = store.mixed_sessions(&user, &other).await;
    let rotated = store.rotated_session(&user, t0()).await;
    let reset = store.reset_requested(&user, "reset", t0()).await;
    let others_reset = store.reset_requested(&other, "other", t0()).await;

    let now = t0() + TimeDelta::seconds(5);
    let (stored, revoked) = store
        .links
        .reset_password(&reset.digest, &new_hash(), now)
        .await
        .unwrap()
        .unwrap();

    let expected = User {
        is_verified: true,
        updated_at: now,
        ..user.clone()
    };
    assert_eq!(stored, expected);
    assert_eq!(
        store.users.find_by_id(user.id).await.unwrap(),
        Some(expected)
    );
    assert_eq!(
        sorted(session_ids(&revoked)),
        sorted(vec![live_a.id, live_b.id, rotated])
    );
    assert!(
        revoked
            .iter()
            .all(|session| session.revoked_at == Some(now) && session.user_id == user.id)
    );
    assert_eq!(
        store.users.password_hash(user.id).await.unwrap(),
        Some(new_hash())
    );
    assert_eq!(store.version(&user).await, 1);
    assert_eq!(store.version(&other).await, 0);
    assert!(store.live_ids(&user).await.is_empty());
    assert_eq!(store.live_ids(&other).await, vec![others.id]);
    assert_eq!(store.sealed(rotated).await, None);
    let expired = store.sessions.find(expired.id).await.unwrap().unwrap();
    assert_eq!(expired.session.revoked_at, None);
    assert_eq!(store.holder(&reset, now).await, None);
    assert_eq!(store.holder(&others_reset, now).await, Some(other.id));
    let emails = sorted(vec![
        link_email(EmailKind::ResetPassword, "Ada@Example.com", "reset"),
        link_email(EmailKind::ResetPassword, "grace@example.com", "other"),
        notice("Ada@Example.com"),
    ]);
    assert_eq!(store.waiting().await, emails);

    // Once only.
    let again = store
        .links
        .reset_password(&reset.digest, &PasswordHash::new("$argon2id$again"), at(1))
        .await
        .unwrap();
    assert_eq!(again, None);
    assert_eq!(
        store.users.password_hash(user.id).await.unwrap(),
        Some(new_hash())
    );
    assert_eq!(store.version(&user).await, 1);
    assert_eq!(store.waiting().await, emails);
}

/// A reset with an expired token (at its expiry or after), an unknown one, or for an inactive
/// user is `None` and changes nothing: hash, verification, sessions, version, token, outbox.
pub async fn links_reset_of_an_expired_token_or_an_inactive_user_changes_nothing(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let (session, _) = store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let reset = store.reset_requested(&user, "reset", t0()).await;
    let unchanged = async |expected: &User, depth: u64| {
        assert_eq!(
            store.users.find_by_id(user.id).await.unwrap().as_ref(),
            Some(expected)
        );
        assert_eq!(
            store.users.password_hash(user.id).await.unwrap(),
            Some(old_hash())
        );
        assert_eq!(store.version(&user).await, 0);
        assert_eq!(store.live_ids(&user).await, vec![session.id]);
        assert_eq!(store.depth().await, depth);
    };

    let inactive = set_active(store, &user, false, at(1)).await;
    let reset_done = store
        .links
        .reset_password(&reset.digest, &new_hash(), at(2))
        .await
        .unwrap();
    assert_eq!(reset_done, None);
    unchanged(&inactive, 1).await;
    // Active again, the token stays dead: the deactivation spent it.
    let active = set_active(store, &user, true, at(3)).await;
    let reset_done = store
        .links
        .reset_password(&reset.digest, &new_hash(), at(3))
        .await
        .unwrap();
    assert_eq!(reset_done, None);
    unchanged(&active, 1).await;

    let fresh = store.reset_requested(&user, "fresh", at(3)).await;
    for now in [fresh.expires_at, fresh.expires_at + TimeDelta::minutes(1)] {
        let reset_done = store
            .links
            .reset_password(&fresh.digest, &new_hash(), now)
            .await
            .unwrap();
        assert_eq!(reset_done, None, "{now}");
        unchanged(&active, 2).await;
    }
    let unknown = store
        .links
        .reset_password(&digest("unknown"), &new_hash(), at(4))
        .await
        .unwrap();
    assert_eq!(unknown, None);
    unchanged(&active, 2).await;
    // The fresh token was never spent: it still works before its expiry.
    assert_eq!(store.holder(&fresh, at(4)).await, Some(user.id));
}

/// Of ten resets at once with one token, exactly one succeeds: one hash set, one version bump,
/// one notice.
pub async fn links_of_concurrent_resets_with_one_token_exactly_one_wins(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let reset = store.reset_requested(&user, "reset", t0()).await;
    let hashes: Vec<PasswordHash> = (0..10)
        .map(|n| PasswordHash::new(format!("$argon2id${n}")))
        .collect();

    let resets = join_all(
        hashes
            .iter()
            .map(|hash| store.links.reset_password(&reset.digest, hash, at(1))),
    )
    .await;

    let won: Vec<usize> = resets
        .into_iter()
        .enumerate()
        .filter_map(|(n, reset)| reset.unwrap().map(|_| n))
        .collect();
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!(
        store.users.password_hash(user.id).await.unwrap(),
        Some(hashes[won[0]].clone())
    );
    assert_eq!(store.version(&user).await, 1);
    assert_eq!(
        store.waiting().await,
        sorted(vec![
            link_email(EmailKind::ResetPassword, "ada@example.com", "reset"),
            notice("ada@example.com"),
        ])
    );
}

/// A verification token marks its user verified (and `updated_at`), once; tokens work for
/// their purpose only, and a verification queues nothing.
pub async fn links_verify_email_marks_the_user_verified_once(store: Store<'_>) {
    let user = store.signup("ada@example.com", "verify").await;
    let other = store.signup("grace@example.com", "other").await;
    let verification = verify_link("verify");

    let verified = store
        .links
        .verify_email(&verification.digest, at(1))
        .await
        .unwrap();
    assert_eq!(verified, Some(user.id));
    let expected = User {
        is_verified: true,
        updated_at: at(1),
        ..user.clone()
    };
    assert_eq!(
        store.users.find_by_id(user.id).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store
            .links
            .verify_email(&verification.digest, at(2))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.users.find_by_id(user.id).await.unwrap(),
        Some(expected)
    );
    assert_eq!(store.holder(&verification, at(2)).await, None);
    assert_eq!(
        store.users.find_by_id(other.id).await.unwrap(),
        Some(other.clone())
    );

    // A reset token verifies nothing, and a verification token resets nothing; neither is
    // spent by the attempt.
    let reset = store.reset_requested(&user, "reset", at(3)).await;
    assert_eq!(
        store
            .links
            .verify_email(&reset.digest, at(4))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.holder(&reset, at(4)).await, Some(user.id));
    let others = verify_link("other");
    assert_eq!(
        store
            .links
            .reset_password(&others.digest, &new_hash(), at(4))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.users.password_hash(other.id).await.unwrap(),
        Some(old_hash())
    );
    assert_eq!(store.holder(&others, at(4)).await, Some(other.id));
    assert_eq!(
        store
            .links
            .verify_email(&digest("unknown"), at(4))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.depth().await, 3);
}

/// A verification with an expired token (at its expiry or after) or for an inactive user is
/// `None` and changes nothing.
pub async fn links_verify_email_of_an_expired_token_or_an_inactive_user_changes_nothing(
    store: Store<'_>,
) {
    let user = store.signup("ada@example.com", "verify").await;
    let verification = verify_link("verify");

    // Inactive with an unspent token: refused, and the token is not spent by the attempt.
    let dormant = dormant(store, "dormant@example.com", "dormant").await;
    let dormant_link = verify_link("dormant");
    assert_eq!(
        store
            .links
            .verify_email(&dormant_link.digest, at(1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.users.find_by_id(dormant.id).await.unwrap().as_ref(),
        Some(&dormant)
    );
    set_active(store, &dormant, true, at(2)).await;
    assert_eq!(store.holder(&dormant_link, at(2)).await, Some(dormant.id));

    // Deactivated: refused; active again, the token stays dead (the deactivation spent it).
    let inactive = set_active(store, &user, false, at(1)).await;
    assert_eq!(
        store
            .links
            .verify_email(&verification.digest, at(2))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.users.find_by_id(user.id).await.unwrap(),
        Some(inactive)
    );
    let active = set_active(store, &user, true, at(3)).await;
    assert_eq!(
        store
            .links
            .verify_email(&verification.digest, at(3))
            .await
            .unwrap(),
        None
    );

    let fresh = verify_link("fresh");
    let requested = store
        .links
        .request_verification(user.id, &fresh, &limit(), at(3))
        .await
        .unwrap();
    assert_eq!(requested, LinkRequest::Queued);
    for now in [fresh.expires_at, fresh.expires_at + TimeDelta::minutes(1)] {
        assert_eq!(
            store.links.verify_email(&fresh.digest, now).await.unwrap(),
            None,
            "{now}"
        );
        assert_eq!(
            store.users.find_by_id(user.id).await.unwrap().as_ref(),
            Some(&active)
        );
    }
    assert!(!active.is_verified);
}

/// A verification request is `NoAccount` for a missing or inactive user, `AlreadyVerified`
/// for a verified one (nothing stored or queued either way), and otherwise stores the token and
/// queues the email with its sealed token to the address as stored.
pub async fn links_verification_requests_say_why_not(store: Store<'_>) {
    let role = store.members().await;
    let inactive = store
        .member("gone@example.com", None, &role, TimeDelta::zero(), false)
        .await;
    let verified = store.user("verified@example.com").await;
    let mark = UserChanges {
        is_verified: Some(true),
        ..UserChanges::default()
    };
    store
        .users
        .update(verified.id, &mark, false, t0())
        .await
        .unwrap();

    for (user, label, expected) in [
        (UserId::generate(), "ghost", LinkRequest::NoAccount),
        (inactive.id, "gone", LinkRequest::NoAccount),
        (verified.id, "verified", LinkRequest::AlreadyVerified),
    ] {
        let link = verify_link(label);
        let requested = store
            .links
            .request_verification(user, &link, &limit(), t0())
            .await
            .unwrap();
        assert_eq!(requested, expected, "{label}");
        assert_eq!(store.holder(&link, t0()).await, None, "{label}");
    }
    assert_eq!(store.depth().await, 0);

    let user = store.user("Ada@Example.com").await;
    let link = verify_link("v1");
    let requested = store
        .links
        .request_verification(user.id, &link, &limit(), at(1))
        .await
        .unwrap();
    assert_eq!(requested, LinkRequest::Queued);
    assert_eq!(store.holder(&link, at(1)).await, Some(user.id));
    assert_eq!(
        store.outbox.stats().await.unwrap(),
        OutboxStats {
            depth: 1,
            oldest: Some(at(1))
        }
    );
    assert_eq!(
        store.waiting().await,
        vec![link_email(EmailKind::VerifyEmail, "Ada@Example.com", "v1")]
    );
    assert_eq!(store.users.find_by_id(user.id).await.unwrap(), Some(user));
}

/// Verification emails are limited like reset emails, the signup's email counting; a new
/// verification link leaves the older ones working.
pub async fn links_verification_requests_are_limited_counting_the_signup(store: Store<'_>) {
    let user = store.signup("ada@example.com", "signup").await;
    let signup = verify_link("signup");

    let refused = verify_link("refused");
    let requested = store
        .links
        .request_verification(user.id, &refused, &limit(), t0() + TimeDelta::seconds(30))
        .await
        .unwrap();
    assert_eq!(
        requested,
        LinkRequest::Limited {
            retry_after: seconds(30)
        }
    );
    assert_eq!(store.holder(&refused, at(1)).await, None);
    assert_eq!(store.depth().await, 1);

    for minute in 1..5 {
        let link = verify_link(&format!("v{minute}"));
        let requested = store
            .links
            .request_verification(user.id, &link, &limit(), at(minute))
            .await
            .unwrap();
        assert_eq!(requested, LinkRequest::Queued, "minute {minute}");
    }
    let sixth = verify_link("v5");
    let requested = store
        .links
        .request_verification(user.id, &sixth, &limit(), at(5))
        .await
        .unwrap();
    assert_eq!(
        requested,
        LinkRequest::Limited {
            retry_after: seconds(55 * 60)
        }
    );
    assert_eq!(store.depth().await, 5);
    // Every earlier link still works; the first one used verifies the address.
    assert_eq!(store.holder(&signup, at(5)).await, Some(user.id));
    assert_eq!(store.holder(&verify_link("v4"), at(5)).await, Some(user.id));
    assert_eq!(
        store
            .links
            .verify_email(&signup.digest, at(6))
            .await
            .unwrap(),
        Some(user.id)
    );
    let requested = store
        .links
        .request_verification(user.id, &verify_link("v6"), &limit(), at(70))
        .await
        .unwrap();
    assert_eq!(requested, LinkRequest::AlreadyVerified);
}

/// A password replaced, or set by an update (revoking or not), spends the user's reset token
/// and queues the notice: to the address as stored after the change.
pub async fn links_password_changes_spend_reset_tokens_and_queue_the_notice(store: Store<'_>) {
    let user = store.user("Ada@Example.com").await;

    let first = store.reset_requested(&user, "first", t0()).await;
    store
        .users
        .replace_password(user.id, 0, &PasswordHash::new("$argon2id$replaced"), at(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.holder(&first, at(1)).await, None);
    assert_eq!(
        store
            .links
            .reset_password(&first.digest, &new_hash(), at(1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.users.password_hash(user.id).await.unwrap(),
        Some(PasswordHash::new("$argon2id$replaced"))
    );

    let second = store.reset_requested(&user, "second", at(2)).await;
    let moved = UserChanges {
        email: Some(email("Ada.L@Example.org")),
        password_hash: Some(PasswordHash::new("$argon2id$updated")),
        ..UserChanges::default()
    };
    let (user, _) = store
        .users
        .update(user.id, &moved, true, at(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.holder(&second, at(3)).await, None);

    let third = store.reset_requested(&user, "third", at(4)).await;
    let password_only = UserChanges {
        password_hash: Some(PasswordHash::new("$argon2id$set")),
        ..UserChanges::default()
    };
    store
        .users
        .update(user.id, &password_only, false, at(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.holder(&third, at(5)).await, None);

    // Nobody's password: nothing queued.
    let nobody = store
        .users
        .replace_password(UserId::generate(), 0, &new_hash(), at(6))
        .await
        .unwrap();
    assert_eq!(nobody, None);
    assert_eq!(
        store.waiting().await,
        sorted(vec![
            link_email(EmailKind::ResetPassword, "Ada@Example.com", "first"),
            notice("Ada@Example.com"),
            link_email(EmailKind::ResetPassword, "Ada@Example.com", "second"),
            notice("Ada.L@Example.org"),
            link_email(EmailKind::ResetPassword, "Ada.L@Example.org", "third"),
            notice("Ada.L@Example.org"),
        ])
    );
}

/// Changes that set no password queue nothing and leave the reset token working: an update of
/// other fields (revoking or not; the email only in another case), a revoke-all, a rehash, and
/// an update refused for a taken email even with a password.
pub async fn links_changes_without_a_new_password_queue_nothing(store: Store<'_>) {
    let owner = store.user("zoe@example.org").await;
    let user = store.user("ada@example.com").await;
    let reset = store.reset_requested(&user, "reset", t0()).await;
    let still_works = async |now| {
        assert_eq!(store.holder(&reset, now).await, Some(user.id));
        assert_eq!(store.depth().await, 1);
    };

    let others = UserChanges {
        email: Some(email("ADA@Example.COM")),
        name: Some(None),
        is_verified: Some(true),
        ..UserChanges::default()
    };
    store
        .users
        .update(user.id, &others, true, at(1))
        .await
        .unwrap()
        .unwrap();
    still_works(at(1)).await;
    store.sessions.revoke_all(user.id, at(2)).await.unwrap();
    still_works(at(2)).await;
    assert!(
        store
            .users
            .update_password_hash(
                user.id,
                &old_hash(),
                &PasswordHash::new("$argon2id$rehash"),
                at(3)
            )
            .await
            .unwrap()
    );
    still_works(at(3)).await;
    let taken = UserChanges {
        email: Some(owner.email.clone()),
        password_hash: Some(new_hash()),
        ..UserChanges::default()
    };
    let result = store.users.update(user.id, &taken, true, at(4)).await;
    assert!(
        matches!(result, Err(CreateUserError::EmailTaken)),
        "{result:?}"
    );
    still_works(at(4)).await;
}

/// A user verified by an update, holding an unspent verification token (its signup's, made
/// from `label`) and a reset token made from `label-reset`, with a live session.
async fn verified_with_links(store: Store<'_>, address: &str, label: &str) -> User {
    let user = store.signup(address, label).await;
    store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    store
        .reset_requested(&user, &format!("{label}-reset"), t0())
        .await;
    let mark = UserChanges {
        is_verified: Some(true),
        ..UserChanges::default()
    };
    let (user, _) = store
        .users
        .update(user.id, &mark, false, t0())
        .await
        .unwrap()
        .unwrap();
    assert!(user.is_verified);
    user
}

/// The links made from `label` by [`verified_with_links`]: both work for `user` at `now`
/// (`true`), or neither does and neither changes anything when used (`false`).
async fn links_work(store: Store<'_>, user: &User, label: &str, now: DateTime<Utc>) -> bool {
    let verification = verify_link(label);
    let reset = reset_link(&format!("{label}-reset"));
    let held = (
        store.holder(&verification, now).await,
        store.holder(&reset, now).await,
    );
    if held == (Some(user.id), Some(user.id)) {
        return true;
    }
    assert_eq!(held, (None, None), "{label}");
    let before = store.users.find_by_id(user.id).await.unwrap();
    let version = store.version(user).await;
    let verified = store
        .links
        .verify_email(&verification.digest, now)
        .await
        .unwrap();
    assert_eq!(verified, None, "{label}");
    let reset = store
        .links
        .reset_password(&reset.digest, &new_hash(), now)
        .await
        .unwrap();
    assert_eq!(reset, None, "{label}");
    assert_eq!(store.users.find_by_id(user.id).await.unwrap(), before);
    assert_eq!(store.version(user).await, version);
    false
}

/// An update to an address of another normalised form spends every unspent link token of the
/// user, verification and reset alike (they went to the old address), and marks the new
/// address unverified; nothing else of the user's, and no other user's token, changes. New
/// links for the new address work.
pub async fn links_an_email_change_spends_every_link_and_unverifies(store: Store<'_>) {
    let user = verified_with_links(store, "Ada@Example.com", "ada").await;
    let other = verified_with_links(store, "grace@example.com", "grace").await;
    let live = store.live_ids(&user).await;
    let depth = store.depth().await;

    let moved = UserChanges {
        email: Some(email("Ada.Lovelace@Example.org")),
        ..UserChanges::default()
    };
    let (stored, revoked) = store
        .users
        .update(user.id, &moved, false, at(1))
        .await
        .unwrap()
        .unwrap();

    let expected = User {
        email: email("Ada.Lovelace@Example.org"),
        is_verified: false,
        updated_at: at(1),
        ..user.clone()
    };
    assert_eq!(stored, expected);
    assert_eq!(
        store.users.find_by_id(user.id).await.unwrap(),
        Some(expected.clone())
    );
    assert!(revoked.is_empty());
    assert_eq!(store.live_ids(&user).await, live);
    assert_eq!(store.version(&expected).await, 0);
    assert!(!links_work(store, &expected, "ada", at(2)).await);
    assert_eq!(
        store.users.password_hash(user.id).await.unwrap(),
        Some(old_hash())
    );
    assert_eq!(store.depth().await, depth);
    assert!(links_work(store, &other, "grace", at(2)).await);

    // The new address gets links of its own, and they work.
    let reset = store.reset_requested(&expected, "new-reset", at(2)).await;
    assert_eq!(store.holder(&reset, at(2)).await, Some(user.id));
    let verification = verify_link("new-verify");
    let requested = store
        .links
        .request_verification(user.id, &verification, &limit(), at(2))
        .await
        .unwrap();
    assert_eq!(requested, LinkRequest::Queued);
    assert_eq!(
        store
            .links
            .verify_email(&verification.digest, at(3))
            .await
            .unwrap(),
        Some(user.id)
    );
}

/// An email change that sets the verification mark itself keeps the mark as given, and still
/// spends the links of the old address; revoking or not makes no difference to the links.
pub async fn links_an_email_change_keeps_the_mark_it_sets(store: Store<'_>) {
    let ada = verified_with_links(store, "ada@example.com", "ada").await;
    let bob = verified_with_links(store, "bob@example.com", "bob").await;

    let still_verified = UserChanges {
        email: Some(email("ada@example.org")),
        is_verified: Some(true),
        ..UserChanges::default()
    };
    let (ada, _) = store
        .users
        .update(ada.id, &still_verified, false, at(1))
        .await
        .unwrap()
        .unwrap();
    assert!(ada.is_verified);
    assert!(
        store
            .users
            .find_by_id(ada.id)
            .await
            .unwrap()
            .unwrap()
            .is_verified
    );
    assert!(!links_work(store, &ada, "ada", at(2)).await);

    let unverified = UserChanges {
        email: Some(email("bob@example.org")),
        is_verified: Some(false),
        ..UserChanges::default()
    };
    let (bob, revoked) = store
        .users
        .update(bob.id, &unverified, true, at(1))
        .await
        .unwrap()
        .unwrap();
    assert!(!bob.is_verified);
    assert_eq!(revoked.len(), 1);
    assert!(!links_work(store, &bob, "bob", at(2)).await);
}

/// An update to the same address (as it is, or in another case: the same normalised form)
/// spends nothing and keeps the verification mark, with or without other changes.
pub async fn links_an_update_to_the_same_address_spends_nothing(store: Store<'_>) {
    let user = verified_with_links(store, "Ada@Example.com", "ada").await;

    for (n, address) in ["Ada@Example.com", "ADA@example.COM", " ada@example.com "]
        .into_iter()
        .enumerate()
    {
        let minute = i64::try_from(n).unwrap() + 1;
        let same = UserChanges {
            email: Some(email(address)),
            name: Some(None),
            ..UserChanges::default()
        };
        let (stored, _) = store
            .users
            .update(user.id, &same, false, at(minute))
            .await
            .unwrap()
            .unwrap();
        assert!(stored.is_verified, "{address}");
        assert!(
            links_work(store, &stored, "ada", at(minute)).await,
            "{address}"
        );
    }
    let stored = store.users.find_by_id(user.id).await.unwrap().unwrap();
    assert!(stored.is_verified);
    assert_eq!(stored.email.as_str(), "ada@example.com");
}

/// A deactivation spends every unspent link token of the user, revoking or not: a
/// reactivation revives none of them, and new links work again. Activating an active user, or
/// other changes, spend nothing.
pub async fn links_a_deactivation_spends_every_link_for_good(store: Store<'_>) {
    let ada = verified_with_links(store, "ada@example.com", "ada").await;
    let bob = verified_with_links(store, "bob@example.com", "bob").await;
    let grace = verified_with_links(store, "grace@example.com", "grace").await;

    let active = set_active(store, &grace, true, at(1)).await;
    assert!(links_work(store, &active, "grace", at(1)).await);

    let ada = set_active(store, &ada, false, at(1)).await;
    assert!(!links_work(store, &ada, "ada", at(1)).await);
    let deactivate = UserChanges {
        is_active: Some(false),
        ..UserChanges::default()
    };
    let (bob, revoked) = store
        .users
        .update(bob.id, &deactivate, true, at(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.len(), 1);
    assert!(!links_work(store, &bob, "bob", at(1)).await);

    // Reactivated: the old links stay dead; the verification mark is kept.
    let ada = set_active(store, &ada, true, at(2)).await;
    let bob = set_active(store, &bob, true, at(2)).await;
    assert!(ada.is_verified && bob.is_verified);
    assert!(!links_work(store, &ada, "ada", at(3)).await);
    assert!(!links_work(store, &bob, "bob", at(3)).await);
    assert!(links_work(store, &grace, "grace", at(3)).await);

    let reset = store.reset_requested(&ada, "ada-again", at(3)).await;
    assert_eq!(store.holder(&reset, at(3)).await, Some(ada.id));
    assert!(
        store
            .links
            .reset_password(&reset.digest, &new_hash(), at(4))
            .await
            .unwrap()
            .is_some()
    );
}

/// The purge deletes the tokens expired before the cut (and made before it), and no others;
/// it says how many, and leaves the outbox alone.
pub async fn links_purge_deletes_only_tokens_expired_and_made_before_the_cut(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let other = store.user("grace@example.com").await;
    let verify = async |label: &str, made: i64, expires: i64| {
        let link = link(LinkPurpose::VerifyEmail, label, at(expires));
        let requested = store
            .links
            .request_verification(user.id, &link, &no_limit(), at(made))
            .await
            .unwrap();
        assert_eq!(requested, LinkRequest::Queued, "{label}");
        link
    };
    verify("expired", 0, 10).await;
    let at_the_cut = verify("at-the-cut", 1, 120).await;
    let live = verify("live", 2, 200).await;
    // Long expired, but made at the cut: it still counts towards the email limit, so it stays.
    verify("made-at-the-cut", 120, 60).await;
    store.reset_requested(&other, "reset", t0()).await;

    assert_eq!(store.links.purge(at(120), 100).await.unwrap(), 2);
    assert_eq!(store.links.purge(at(120), 100).await.unwrap(), 0);
    assert_eq!(store.holder(&live, at(119)).await, Some(user.id));
    assert_eq!(store.holder(&at_the_cut, at(119)).await, Some(user.id));
    assert_eq!(store.links.purge(at(121), 100).await.unwrap(), 2);
    assert_eq!(store.holder(&live, at(121)).await, Some(user.id));
    assert_eq!(store.depth().await, 5);
}

/// The purge deletes at most a batch at a time.
pub async fn links_purge_deletes_at_most_a_batch(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    for n in 0..5 {
        let link = link(LinkPurpose::VerifyEmail, &format!("v{n}"), at(10));
        let requested = store
            .links
            .request_verification(user.id, &link, &no_limit(), t0())
            .await
            .unwrap();
        assert_eq!(requested, LinkRequest::Queued);
    }
    let mut batches = Vec::new();
    for _ in 0..4 {
        batches.push(store.links.purge(at(120), 2).await.unwrap());
    }
    assert_eq!(batches, [2, 2, 1, 0]);
}
