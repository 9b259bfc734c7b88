//! The `SessionRepository` contract (with the users' credentials versions it checks).

use std::time::Duration;

use authd_application::AccessProfile;
use authd_application::ports::{Rotation, SessionRecord, UserChanges};
use authd_domain::{PasswordHash, RotationState, Session, SessionId, TokenId, UserId};
use chrono::TimeDelta;
use futures_util::future::join_all;

use crate::Store;
use crate::fixtures::MixedSessions;
use crate::fixtures::{at, email, new_session, rotation, session_ids, sorted, t0};

/// The grace of revoked sessions in the purge tests: 16 minutes.
const GRACE: Duration = Duration::from_secs(960);

/// A stored session is found whole, with its first refresh token current, no previous one and
/// no sealed pair; revoked, it is still found; an unknown one is `None`.
pub async fn sessions_create_and_find_with_the_rotation_state(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let mut session = new_session(&user, TimeDelta::zero(), TimeDelta::days(1));
    session.user_agent = None;
    session.ip = None;
    let jti = TokenId::generate();
    assert!(store.sessions.create(&session, jti, 0).await.unwrap());
    let (full, full_jti) = store
        .session(&user, TimeDelta::seconds(1), TimeDelta::days(2))
        .await;

    let record = store.sessions.find(session.id).await.unwrap().unwrap();
    assert_eq!(
        record,
        SessionRecord {
            session: session.clone(),
            rotation: RotationState {
                current: jti,
                previous: None,
                rotated_at: None,
            },
            sealed_successor: None,
            signed_profile: None,
        }
    );
    let record = store.sessions.find(full.id).await.unwrap().unwrap();
    assert_eq!(record.session, full);
    assert_eq!(record.session.user_agent.as_deref(), Some("test-agent/1.0"));
    assert_eq!(record.session.ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(record.rotation.current, full_jti);

    store
        .sessions
        .revoke(session.id, at(1))
        .await
        .unwrap()
        .unwrap();
    let record = store.sessions.find(session.id).await.unwrap().unwrap();
    assert_eq!(
        record.session,
        Session {
            revoked_at: Some(at(1)),
            ..session
        }
    );
    assert_eq!(record.rotation.current, jti);
    assert_eq!(
        store.sessions.find(SessionId::generate()).await.unwrap(),
        None
    );
}

/// A session is stored only for an active user whose credentials are still at the version
/// the login checked: a stale version, an inactive user or an unknown one stores nothing.
pub async fn sessions_create_refuses_a_stale_version_or_an_inactive_user(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let (_, stored) = store.open(&user, 0).await;
    assert!(stored);
    store
        .users
        .replace_password(user.id, 0, &PasswordHash::new("$argon2id$new"), t0())
        .await
        .unwrap()
        .unwrap();
    store.sessions.revoke_all(user.id, t0()).await.unwrap();
    assert_eq!(store.version(&user).await, 2);

    for stale in [0, 1, 3, -1] {
        let (refused, stored) = store.open(&user, stale).await;
        assert!(!stored, "version {stale}");
        assert_eq!(store.sessions.find(refused.id).await.unwrap(), None);
    }
    let (current, stored) = store.open(&user, 2).await;
    assert!(stored);
    assert_eq!(store.live_ids(&user).await, vec![current.id]);

    let deactivate = UserChanges {
        is_active: Some(false),
        ..UserChanges::default()
    };
    store
        .users
        .update(user.id, &deactivate, true, t0())
        .await
        .unwrap()
        .unwrap();
    assert!(store.live_ids(&user).await.is_empty());
    assert_eq!(store.version(&user).await, 3);
    // Inactive: no session even at the current version.
    let (refused, stored) = store.open(&user, 3).await;
    assert!(!stored);
    assert_eq!(store.sessions.find(refused.id).await.unwrap(), None);
    // Active again; then deactivated without revoking (version 3 still): refused.
    let reactivate = UserChanges {
        is_active: Some(true),
        ..UserChanges::default()
    };
    store
        .users
        .update(user.id, &reactivate, false, t0())
        .await
        .unwrap();
    let (_, stored) = store.open(&user, 3).await;
    assert!(stored, "active again, at the current version");
    store
        .users
        .update(user.id, &deactivate, false, t0())
        .await
        .unwrap();
    let (_, stored) = store.open(&user, 3).await;
    assert!(!stored, "inactive, at the current version");

    // A user that does not exist has no sessions.
    let mut ghost = user.clone();
    ghost.id = UserId::generate();
    let (refused, stored) = store.open(&ghost, 0).await;
    assert!(!stored);
    assert_eq!(store.sessions.find(refused.id).await.unwrap(), None);
}

/// However a login interleaves with a password change or a revoke-all, no session it opened
/// against the old version stays live.
pub async fn sessions_no_login_racing_a_credentials_change_stays_live(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    for round in 0..40 {
        let checked = store.version(&user).await;
        let session = new_session(&user, TimeDelta::zero(), TimeDelta::days(1));
        let login = store
            .sessions
            .create(&session, TokenId::generate(), checked);
        let change = async {
            if round % 2 == 0 {
                store
                    .users
                    .replace_password(user.id, checked, &PasswordHash::new("$argon2id$new"), t0())
                    .await
                    .unwrap()
                    .unwrap();
            } else {
                store.sessions.revoke_all(user.id, t0()).await.unwrap();
            }
        };
        let (login, ()) = futures_util::future::join(login, change).await;
        login.unwrap();
        assert_eq!(store.live_ids(&user).await, vec![], "round {round}");
        assert_eq!(store.version(&user).await, checked + 1, "round {round}");
    }
}

/// The live sessions of a user are listed newest first (the larger id first at the same
/// instant), without the expired (at `now` too), the revoked, or other users' ones.
pub async fn sessions_list_live_newest_first(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let other = store.user("grace@example.com").await;
    let (oldest, _) = store
        .session(&user, -TimeDelta::hours(2), TimeDelta::days(1))
        .await;
    let (newest, _) = store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let (tie_a, _) = store
        .session(&user, -TimeDelta::hours(1), TimeDelta::days(1))
        .await;
    let (tie_b, _) = store
        .session(&user, -TimeDelta::hours(1), TimeDelta::days(1))
        .await;
    let (tie_high, tie_low) = if tie_a.id > tie_b.id {
        (tie_a, tie_b)
    } else {
        (tie_b, tie_a)
    };
    let (expiring_now, _) = store
        .session(&user, -TimeDelta::days(2), TimeDelta::zero())
        .await;
    let (expiring_later, _) = store
        .session(&user, -TimeDelta::days(2), TimeDelta::seconds(1))
        .await;
    store.revoked_session(&user, t0()).await;
    store
        .session(&other, TimeDelta::zero(), TimeDelta::days(1))
        .await;

    let live = store.sessions.list_live(user.id, t0()).await.unwrap();

    assert_eq!(
        session_ids(&live),
        vec![
            newest.id,
            tie_high.id,
            tie_low.id,
            oldest.id,
            expiring_later.id
        ]
    );
    assert_eq!(live[0], newest);
    assert_eq!(live[3], oldest);
    // A second later, the one expiring then is gone too; the one expiring at t0 was never in.
    let later = store
        .sessions
        .list_live(user.id, t0() + TimeDelta::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        session_ids(&later),
        vec![newest.id, tie_high.id, tie_low.id, oldest.id]
    );
    assert!(!session_ids(&later).contains(&expiring_now.id));
    assert_eq!(
        store
            .sessions
            .list_live(UserId::generate(), t0())
            .await
            .unwrap(),
        vec![]
    );
}

/// Revoking returns the session (revoked at `now`) only while it is live; a second revoke,
/// an expired or an unknown session is `None` and changes nothing.
pub async fn sessions_revoke_returns_the_session_only_while_live(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let (session, _) = store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let (sibling, _) = store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let (expired, _) = store
        .session(&user, -TimeDelta::days(2), -TimeDelta::days(1))
        .await;
    let (expiring, _) = store
        .session(&user, -TimeDelta::days(2), TimeDelta::minutes(1))
        .await;

    let now = at(1);
    let revoked = store.sessions.revoke(session.id, now).await.unwrap();
    assert_eq!(
        revoked,
        Some(Session {
            revoked_at: Some(now),
            ..session.clone()
        })
    );

    assert_eq!(
        store.sessions.revoke(session.id, at(2)).await.unwrap(),
        None
    );
    let record = store.sessions.find(session.id).await.unwrap().unwrap();
    assert_eq!(
        record.session.revoked_at,
        Some(now),
        "a second revoke changes nothing"
    );
    assert_eq!(store.sessions.revoke(expired.id, now).await.unwrap(), None);
    // Expiring at `now` is over.
    assert_eq!(store.sessions.revoke(expiring.id, now).await.unwrap(), None);
    let record = store.sessions.find(expiring.id).await.unwrap().unwrap();
    assert_eq!(record.session.revoked_at, None);
    assert_eq!(
        store
            .sessions
            .revoke(SessionId::generate(), now)
            .await
            .unwrap(),
        None
    );
    // One session alone: the others are as they were, and the version did not move.
    assert_eq!(store.live_ids(&user).await, vec![sibling.id, expiring.id]);
    assert_eq!(store.version(&user).await, 0);
}

/// Revoke-all revokes exactly the user's live sessions, at `now`, returns them, and bumps the
/// credentials version (each time, even with nothing left to revoke).
pub async fn sessions_revoke_all_revokes_the_live_ones_and_bumps_the_version(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let other = store.user("grace@example.com").await;
    let MixedSessions {
        live_a: a,
        live_b: b,
        expired,
        others,
    } = store.mixed_sessions(&user, &other).await;

    let now = at(1);
    let revoked = store.sessions.revoke_all(user.id, now).await.unwrap();

    assert_eq!(sorted(session_ids(&revoked)), sorted(vec![a.id, b.id]));
    for session in &revoked {
        let before = if session.id == a.id { &a } else { &b };
        assert_eq!(
            session,
            &Session {
                revoked_at: Some(now),
                ..before.clone()
            }
        );
    }
    assert!(store.live_ids(&user).await.is_empty());
    assert_eq!(store.live_ids(&other).await, vec![others.id]);
    let expired = store.sessions.find(expired.id).await.unwrap().unwrap();
    assert_eq!(expired.session.revoked_at, None);
    assert_eq!(store.version(&user).await, 1);
    assert_eq!(store.version(&other).await, 0);
    assert!(
        store
            .sessions
            .revoke_all(user.id, now)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.version(&user).await, 2);
    assert_eq!(
        store
            .sessions
            .revoke_all(UserId::generate(), now)
            .await
            .unwrap(),
        vec![]
    );
}

/// A refresh token is exchanged once: the rotation applies only while the presented token is
/// current and the session live, sets every field it names, and answers with the new expiry and
/// the user as stored.
pub async fn sessions_rotate_is_a_compare_and_set(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let (session, first) = store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let now = at(10);
    let exchange = rotation(&session, first, now);

    let rotated = store.sessions.rotate(&exchange).await.unwrap().unwrap();
    assert_eq!(rotated.expires_at, now + TimeDelta::days(7));
    assert_eq!(
        Some(rotated.user),
        store.users.find_by_id(user.id).await.unwrap()
    );

    let record = store.sessions.find(session.id).await.unwrap().unwrap();
    assert_eq!(
        record,
        SessionRecord {
            session: Session {
                last_used_at: now,
                expires_at: now + TimeDelta::days(7),
                ..session.clone()
            },
            rotation: RotationState {
                current: exchange.successor,
                previous: Some(first),
                rotated_at: Some(now),
            },
            sealed_successor: Some(exchange.sealed_successor.clone()),
            signed_profile: Some(AccessProfile::from(&user)),
        }
    );

    // The same token again (another successor): refused, and nothing changes.
    let replay = rotation(&session, first, now + TimeDelta::seconds(1));
    assert_eq!(store.sessions.rotate(&replay).await.unwrap(), None);
    assert_eq!(
        store.sessions.find(session.id).await.unwrap().unwrap(),
        record
    );
    // A token the session never had: refused.
    let forged = rotation(&session, TokenId::generate(), now);
    assert_eq!(store.sessions.rotate(&forged).await.unwrap(), None);
    assert_eq!(
        store.sessions.find(session.id).await.unwrap().unwrap(),
        record
    );

    // The successor is the one that can be exchanged now.
    let next = rotation(&session, exchange.successor, at(11));
    let rotated = store.sessions.rotate(&next).await.unwrap().unwrap();
    assert_eq!(rotated.expires_at, at(11) + TimeDelta::days(7));
    let record = store.sessions.find(session.id).await.unwrap().unwrap();
    assert_eq!(record.rotation.previous, Some(exchange.successor));
    assert_eq!(record.rotation.current, next.successor);
    assert_eq!(record.rotation.rotated_at, Some(at(11)));
    assert_eq!(record.session.expires_at, at(11) + TimeDelta::days(7));
    assert_eq!(record.sealed_successor, Some(next.sealed_successor));
    assert_eq!(record.session.created_at, session.created_at);
}

/// The successor lives a refresh token's lifetime, but never past the session's absolute end
/// (30 days after login), and in whole seconds, as its `exp` claim: a rotation 29 days after a
/// login at .4 s past a second ends the session a day later, at the whole second.
pub async fn sessions_a_rotation_stops_at_the_sessions_end_in_whole_seconds(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let created = -TimeDelta::days(29) + TimeDelta::milliseconds(400);
    let (session, first) = store.session(&user, created, TimeDelta::days(1)).await;
    let exchange = rotation(&session, first, t0() + TimeDelta::milliseconds(250));
    let rotated = store.sessions.rotate(&exchange).await.unwrap().unwrap();
    assert_eq!(rotated.expires_at, t0() + TimeDelta::days(1));
    let record = store.sessions.find(session.id).await.unwrap().unwrap();
    assert_eq!(record.session.expires_at, t0() + TimeDelta::days(1));
    assert_eq!(record.rotation.rotated_at, Some(exchange.now));
}

/// A rotation returns its user whole, each flag and time in its place: checked on a superuser
/// whose address is not verified and on a verified member, both changed after they were made.
pub async fn sessions_a_rotation_returns_its_user_as_stored(store: Store<'_>) {
    for (address, superuser) in [("ada@example.com", true), ("bob@example.com", false)] {
        let user = store.user(address).await;
        let changes = UserChanges {
            is_superuser: Some(superuser),
            is_verified: Some(!superuser),
            ..UserChanges::default()
        };
        let (changed, _) = store
            .users
            .update(user.id, &changes, false, at(5))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                changed.is_superuser,
                changed.is_verified,
                changed.updated_at
            ),
            (superuser, !superuser, at(5))
        );
        let (session, first) = store
            .session(&changed, TimeDelta::minutes(6), TimeDelta::days(1))
            .await;
        let rotated = store
            .sessions
            .rotate(&rotation(&session, first, at(10)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rotated.user, changed);
        assert_eq!(
            Some(rotated.user),
            store.users.find_by_id(user.id).await.unwrap()
        );
    }
}

/// A rotation keeps the user's fields it signed (email, role, superuser) as they were when it
/// read them: a change to the user afterwards leaves them, and the next rotation keeps the new
/// ones.
pub async fn sessions_a_rotation_keeps_the_profile_it_read(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let (session, first) = store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let exchange = rotation(&session, first, at(1));
    let rotated = store.sessions.rotate(&exchange).await.unwrap().unwrap();
    let before = AccessProfile::from(&rotated.user);
    assert_eq!(
        before,
        AccessProfile {
            email: "ada@example.com".into(),
            role: "members".into(),
            is_superuser: false,
        }
    );

    let admins = store.role("admins", at(2)).await;
    let changes = UserChanges {
        email: Some(email("ada@new.example")),
        role: Some(admins.id),
        is_superuser: Some(true),
        ..UserChanges::default()
    };
    store
        .users
        .update(user.id, &changes, false, at(3))
        .await
        .unwrap()
        .unwrap();
    let record = store.sessions.find(session.id).await.unwrap().unwrap();
    assert_eq!(record.signed_profile, Some(before));

    let next = rotation(&session, exchange.successor, at(4));
    let rotated = store.sessions.rotate(&next).await.unwrap().unwrap();
    let after = AccessProfile {
        email: "ada@new.example".into(),
        role: "admins".into(),
        is_superuser: true,
    };
    assert_eq!(AccessProfile::from(&rotated.user), after);
    let record = store.sessions.find(session.id).await.unwrap().unwrap();
    assert_eq!(record.signed_profile, Some(after));
}

/// Only the session's own user rotates it, and only while active: a token naming another user
/// or the session of a deactivated user changes nothing.
pub async fn sessions_a_rotation_needs_the_sessions_own_active_user(store: Store<'_>) {
    let ada = store.user("ada@example.com").await;
    let bob = store.user("bob@example.com").await;
    let (session, first) = store
        .session(&ada, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let before = store.sessions.find(session.id).await.unwrap().unwrap();
    let by_bob = Rotation {
        user_id: bob.id,
        ..rotation(&session, first, at(1))
    };
    assert_eq!(store.sessions.rotate(&by_bob).await.unwrap(), None);
    assert_eq!(
        store.sessions.find(session.id).await.unwrap().unwrap(),
        before
    );

    let deactivate = UserChanges {
        is_active: Some(false),
        ..UserChanges::default()
    };
    // Without revoking: the session stays live, so only the user's state can refuse it.
    store
        .users
        .update(ada.id, &deactivate, false, at(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.live_ids(&ada).await, vec![session.id]);
    let after_deactivation = store.sessions.find(session.id).await.unwrap().unwrap();
    assert_eq!(
        store
            .sessions
            .rotate(&rotation(&session, first, at(2)))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.sessions.find(session.id).await.unwrap().unwrap(),
        after_deactivation
    );
}

/// Of four exchanges of one token at once, exactly one wins, and its successor is stored.
pub async fn sessions_of_concurrent_rotations_exactly_one_wins(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    for _ in 0..10 {
        let (session, first) = store
            .session(&user, TimeDelta::zero(), TimeDelta::days(1))
            .await;
        let contenders: Vec<_> = (0..4).map(|_| rotation(&session, first, t0())).collect();

        let wins: Vec<bool> = join_all(
            contenders
                .iter()
                .map(|exchange| store.sessions.rotate(exchange)),
        )
        .await
        .into_iter()
        .map(|rotated| rotated.unwrap().is_some())
        .collect();

        assert_eq!(wins.iter().filter(|won| **won).count(), 1, "{wins:?}");
        let winner = &contenders[wins.iter().position(|won| *won).unwrap()];
        let record = store.sessions.find(session.id).await.unwrap().unwrap();
        assert_eq!(record.rotation.current, winner.successor);
        assert_eq!(
            record.sealed_successor.as_ref(),
            Some(&winner.sealed_successor)
        );
    }
}

/// A revoked, expired (at `now` too) or unknown session does not rotate, and keeps its state.
pub async fn sessions_revoked_or_expired_cannot_rotate(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let (revoked, revoked_jti) = store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    store
        .sessions
        .revoke(revoked.id, t0())
        .await
        .unwrap()
        .unwrap();
    let (expired, expired_jti) = store
        .session(&user, -TimeDelta::days(2), TimeDelta::zero())
        .await;

    for (session, jti) in [(&revoked, revoked_jti), (&expired, expired_jti)] {
        let exchange = rotation(session, jti, t0());
        assert_eq!(store.sessions.rotate(&exchange).await.unwrap(), None);
    }
    let unknown = Rotation {
        session_id: SessionId::generate(),
        ..rotation(&revoked, TokenId::generate(), t0())
    };
    assert_eq!(store.sessions.rotate(&unknown).await.unwrap(), None);
    assert_eq!(store.sessions.find(unknown.session_id).await.unwrap(), None);
    for (id, jti) in [(revoked.id, revoked_jti), (expired.id, expired_jti)] {
        let record = store.sessions.find(id).await.unwrap().unwrap();
        assert_eq!(
            record.rotation,
            RotationState {
                current: jti,
                previous: None,
                rotated_at: None,
            }
        );
        assert_eq!(record.sealed_successor, None);
    }
    // Just before it expires, the expiring one still rotates.
    let in_time = rotation(&expired, expired_jti, t0() - TimeDelta::seconds(1));
    assert!(store.sessions.rotate(&in_time).await.unwrap().is_some());
}

/// The purge deletes the sessions expired at `now` and those revoked more than the grace
/// before it, and nothing else.
pub async fn sessions_purge_deletes_expired_and_long_revoked_only(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let (live, _) = store
        .session(&user, -TimeDelta::hours(1), TimeDelta::days(1))
        .await;
    let (expired, _) = store
        .session(&user, -TimeDelta::days(2), -TimeDelta::seconds(1))
        .await;
    let (expiring_now, _) = store
        .session(&user, -TimeDelta::days(1), TimeDelta::zero())
        .await;
    let (expiring_later, _) = store
        .session(&user, -TimeDelta::days(1), TimeDelta::seconds(1))
        .await;
    let long_revoked = store
        .revoked_session(&user, t0() - TimeDelta::seconds(961))
        .await;
    let revoked_at_the_grace = store
        .revoked_session(&user, t0() - TimeDelta::seconds(960))
        .await;
    let recently_revoked = store
        .revoked_session(&user, t0() - TimeDelta::seconds(959))
        .await;

    assert_eq!(
        store.sessions.purge_ended(t0(), GRACE, 500).await.unwrap(),
        3
    );

    for (session, kept) in [
        (live.id, true),
        (expiring_later.id, true),
        (recently_revoked.id, true),
        (revoked_at_the_grace.id, true),
        (expired.id, false),
        (expiring_now.id, false),
        (long_revoked.id, false),
    ] {
        let found = store.sessions.find(session).await.unwrap();
        assert_eq!(found.is_some(), kept, "{session:?}");
    }
    assert_eq!(
        store.sessions.purge_ended(t0(), GRACE, 500).await.unwrap(),
        0
    );
    // A grace too long to subtract keeps every revoked session.
    assert_eq!(
        store
            .sessions
            .purge_ended(t0(), Duration::MAX, 500)
            .await
            .unwrap(),
        0
    );
    // No grace: every revoked session is ended.
    assert_eq!(
        store
            .sessions
            .purge_ended(t0(), Duration::ZERO, 500)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store.live_ids(&user).await,
        vec![live.id, expiring_later.id]
    );
}

/// The purge deletes at most a batch at a time.
pub async fn sessions_purge_deletes_at_most_a_batch(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    for _ in 0..5 {
        store
            .session(&user, -TimeDelta::days(2), -TimeDelta::days(1))
            .await;
    }
    let (live, _) = store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let mut batches = Vec::new();
    for _ in 0..4 {
        batches.push(store.sessions.purge_ended(t0(), GRACE, 2).await.unwrap());
    }
    assert_eq!(batches, [2, 2, 1, 0]);
    assert_eq!(store.sessions.purge_ended(t0(), GRACE, 0).await.unwrap(), 0);
    assert_eq!(store.live_ids(&user).await, vec![live.id]);
}

/// Purges running at once delete each ended session once, and all of them.
pub async fn sessions_concurrent_purges_delete_each_session_once(store: Store<'_>) {
    const ENDED: u64 = 200;
    let user = store.user("ada@example.com").await;
    for _ in 0..ENDED {
        store
            .session(&user, -TimeDelta::days(2), -TimeDelta::days(1))
            .await;
    }
    let (live, _) = store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;

    // Each purger runs batches until one comes back short, as the periodic task does.
    let purger = || async {
        let mut deleted = 0;
        loop {
            let batch = store.sessions.purge_ended(t0(), GRACE, 25).await.unwrap();
            deleted += batch;
            if batch < 25 {
                return deleted;
            }
        }
    };
    let deleted: u64 = join_all((0..4).map(|_| purger())).await.into_iter().sum();

    // Rows skipped while another purger held them are that purger's to delete, so nothing is
    // left and nothing is counted twice.
    let leftover = store.sessions.purge_ended(t0(), GRACE, 500).await.unwrap();
    assert_eq!((deleted, leftover), (ENDED, 0));
    assert_eq!(store.live_ids(&user).await, vec![live.id]);
}

/// The sealed pairs of sessions rotated before the cutoff are cleared, a batch at a time; the
/// sessions live on, and a pair rotated at the cutoff stays.
pub async fn sessions_sealed_pairs_are_cleared_past_the_window_a_batch_at_a_time(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let cutoff = t0() - TimeDelta::seconds(10);
    let mut past = Vec::new();
    for _ in 0..3 {
        past.push(
            store
                .rotated_session(&user, t0() - TimeDelta::seconds(11))
                .await,
        );
    }
    // Rotated at the cutoff: still inside its window.
    let inside = store.rotated_session(&user, cutoff).await;
    let (never_rotated, _) = store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;

    let mut batches = Vec::new();
    for _ in 0..3 {
        batches.push(
            store
                .sessions
                .clear_sealed_successors(cutoff, 2)
                .await
                .unwrap(),
        );
    }
    assert_eq!(batches, [2, 1, 0]);
    assert_eq!(
        store
            .sessions
            .clear_sealed_successors(cutoff, 0)
            .await
            .unwrap(),
        0
    );
    let live = store.live_ids(&user).await;
    for id in past {
        assert_eq!(store.sealed(id).await, None);
        // Only the pair goes: the session and its rotation state live on.
        assert!(live.contains(&id));
        let record = store.sessions.find(id).await.unwrap().unwrap();
        assert_eq!(
            record.rotation.rotated_at,
            Some(t0() - TimeDelta::seconds(11))
        );
        assert!(record.rotation.previous.is_some());
    }
    assert!(store.sealed(inside).await.is_some());
    assert_eq!(store.sealed(never_rotated.id).await, None);
    // A second later, the one rotated at the old cutoff goes too.
    assert_eq!(
        store
            .sessions
            .clear_sealed_successors(cutoff + TimeDelta::seconds(1), 500)
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.sealed(inside).await, None);
}

/// Clearings running at once clear each pair once, and all of them.
pub async fn sessions_concurrent_clearings_clear_each_pair_once(store: Store<'_>) {
    const SEALED: u64 = 100;
    let user = store.user("ada@example.com").await;
    for _ in 0..SEALED {
        store.rotated_session(&user, at(-1)).await;
    }
    let clearer = || async {
        let mut cleared = 0;
        // One clearer may get every full batch, then a short one: a store that keeps answering
        // full batches fails here instead of looping.
        for _ in 0..SEALED / 10 + 2 {
            let batch = store
                .sessions
                .clear_sealed_successors(t0(), 10)
                .await
                .unwrap();
            cleared += batch;
            if batch < 10 {
                return cleared;
            }
        }
        panic!("the clearings never ran out ({cleared} cleared)");
    };
    let cleared: u64 = join_all((0..4).map(|_| clearer())).await.into_iter().sum();
    let leftover = store
        .sessions
        .clear_sealed_successors(t0(), 500)
        .await
        .unwrap();
    assert_eq!((cleared, leftover), (SEALED, 0));
}

/// Every way of revoking a session clears its sealed pair: one, all, a password change, an
/// update that revokes.
pub async fn sessions_every_revocation_clears_the_sealed_pair(store: Store<'_>) {
    let ada = store.user("ada@example.com").await;
    let bob = store.user("bob@example.com").await;
    let eve = store.user("eve@example.com").await;
    let one = store.rotated_session(&ada, t0()).await;
    let other = store.rotated_session(&ada, t0()).await;
    let by_password = store.rotated_session(&bob, t0()).await;
    let by_deactivation = store.rotated_session(&eve, t0()).await;
    let eves_other = store.rotated_session(&eve, t0()).await;

    store.sessions.revoke(one, t0()).await.unwrap().unwrap();
    assert_eq!(store.sealed(one).await, None);
    assert!(store.sealed(other).await.is_some());
    store.sessions.revoke_all(ada.id, t0()).await.unwrap();
    assert_eq!(store.sealed(other).await, None);

    store
        .users
        .replace_password(bob.id, 0, &PasswordHash::new("$argon2id$new"), t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.sealed(by_password).await, None);
    // An update that revokes nothing keeps the pairs.
    let rename = UserChanges {
        name: Some(None),
        ..UserChanges::default()
    };
    store
        .users
        .update(eve.id, &rename, false, t0())
        .await
        .unwrap()
        .unwrap();
    assert!(store.sealed(by_deactivation).await.is_some());
    let deactivate = UserChanges {
        is_active: Some(false),
        ..UserChanges::default()
    };
    store
        .users
        .update(eve.id, &deactivate, true, t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.sealed(by_deactivation).await, None);
    assert_eq!(store.sealed(eves_other).await, None);
    // Nothing sealed is left to clear.
    assert_eq!(
        store
            .sessions
            .clear_sealed_successors(at(60), 500)
            .await
            .unwrap(),
        0
    );
}
