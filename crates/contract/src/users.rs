//! The `UserRepository` contract (with the sessions and roles it touches).

use authd_application::PortError;
use authd_application::ports::{CreateUserError, Credentials, LinkRequest, UserChanges, UserQuery};
use authd_domain::{DisplayName, EmailKind, PasswordHash, RoleId, User, UserId};
use chrono::TimeDelta;
use futures_util::future::join_all;

use crate::Store;
use crate::fixtures::MixedSessions;
use crate::fixtures::{
    at, display_name, email, ids, link_email, no_limit, notice, old_hash, page, reset_link,
    role_name, search, session_ids, slug, sorted, t0,
};

/// A created user is found by id, and by its email in any case and with any surrounding
/// space, with its role, hash and credentials version 0.
pub async fn users_create_and_find(store: Store<'_>) {
    let user = store.user("Ada.Lovelace@Example.com").await;

    let found = store.users.find_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(found, user);
    assert_eq!(found.email.as_str(), "Ada.Lovelace@Example.com");
    assert_eq!(found.name.as_ref().map(DisplayName::as_str), Some("Ada"));
    assert_eq!(found.role.slug.as_str(), "members");
    assert_eq!(found.role.name.as_str(), "Members");
    assert_eq!((found.created_at, found.updated_at), (t0(), t0()));
    assert!(found.is_active && !found.is_superuser && !found.is_verified);
    assert!(!found.is_primary_admin);

    let lookup = email("  ada.lovelace@EXAMPLE.COM ");
    let Credentials {
        user: by_email,
        hash,
        version,
    } = store
        .users
        .find_credentials(&lookup)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_email, user);
    assert_eq!(by_email.email.as_str(), "Ada.Lovelace@Example.com");
    assert_eq!(hash, old_hash());
    assert_eq!(version, 0);
    assert_eq!(
        store.users.password_hash(user.id).await.unwrap(),
        Some(old_hash())
    );

    let nobody = email("nobody@example.com");
    assert_eq!(store.users.find_credentials(&nobody).await.unwrap(), None);
    assert_eq!(
        store.users.find_by_id(UserId::generate()).await.unwrap(),
        None
    );
    assert_eq!(
        store.users.password_hash(UserId::generate()).await.unwrap(),
        None
    );
}

/// An email taken in another case is refused with `EmailTaken`, and nothing is stored.
pub async fn users_email_taken_in_any_case_stores_nothing(store: Store<'_>) {
    let role = store.members().await;
    let first = store.user("Zoë@Example.org").await;
    let twin = User::register(email("ZOË@example.ORG"), None, role.to_ref(), t0());

    let result = store
        .users
        .create(&twin, &PasswordHash::new("$argon2id$twin"), None)
        .await;

    assert!(
        matches!(result, Err(CreateUserError::EmailTaken)),
        "{result:?}"
    );
    assert_eq!(store.users.find_by_id(twin.id).await.unwrap(), None);
    let Credentials {
        user: owner, hash, ..
    } = store
        .users
        .find_credentials(&email("zoë@example.org"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(owner.id, first.id);
    assert_eq!(hash, old_hash());
    assert_eq!(store.listed(page(1, 20)).await, (vec![first.id], 1));
}

/// Emails are one identity in their NFC form: a decomposed spelling finds the user, is taken,
/// and a decomposed search text matches.
pub async fn users_are_found_by_their_nfc_email(store: Store<'_>) {
    let role = store.members().await;
    let user = store.user("\u{c9}lodie@example.fr").await;
    let decomposed = email("E\u{301}LODIE@example.fr");

    let Credentials { user: found, .. } = store
        .users
        .find_credentials(&decomposed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, user.id);
    assert_eq!(found.email.as_str(), "\u{c9}lodie@example.fr");

    let twin = User::register(decomposed, None, role.to_ref(), t0());
    let result = store
        .users
        .create(&twin, &PasswordHash::new("$argon2id$x"), None)
        .await;
    assert!(
        matches!(result, Err(CreateUserError::EmailTaken)),
        "{result:?}"
    );
    assert_eq!(store.listed(search("E\u{301}lo")).await, (vec![user.id], 1));
    assert_eq!(store.listed(search("\u{e9}LO")).await, (vec![user.id], 1));
}

/// Users are listed by creation time then id, whole (with their role), a page at a time, and
/// every page carries the total.
pub async fn users_list_by_creation_time_then_id_a_page_at_a_time(store: Store<'_>) {
    let role = store.members().await;
    // Stored out of order, with two pairs created at the same instant.
    let mut stored = Vec::new();
    for (i, minutes) in [30, -10, 5, 5, 0, 60, 60].into_iter().enumerate() {
        let address = format!("user{i}@example.com");
        let user = store
            .member(&address, None, &role, TimeDelta::minutes(minutes), true)
            .await;
        stored.push(user);
    }
    stored.sort_by_key(|user| (user.created_at, user.id));

    let all = store.users.list(&page(1, 100)).await.unwrap();
    assert_eq!(all.items, stored, "whole users, with their role");
    assert_eq!(all.total, 7);

    assert_eq!(store.listed(page(1, 3)).await, (ids(&stored[0..3]), 7));
    assert_eq!(store.listed(page(2, 3)).await, (ids(&stored[3..6]), 7));
    // The last page is partial; past the end is empty, with the same total.
    assert_eq!(store.listed(page(3, 3)).await, (ids(&stored[6..]), 7));
    assert_eq!(store.listed(page(4, 3)).await, (vec![], 7));
    assert_eq!(store.listed(page(u32::MAX, 100)).await, (vec![], 7));
    assert_eq!(store.listed(page(7, 1)).await, (ids(&stored[6..]), 7));
    assert_eq!(store.listed(page(2, 6)).await, (ids(&stored[6..]), 7));
    assert_eq!(store.listed(page(1, 7)).await, (ids(&stored), 7));
    assert_eq!(store.listed(page(1, 1)).await, (ids(&stored[..1]), 7));
}

/// An empty store lists nothing, on any page.
pub async fn users_list_of_an_empty_store(store: Store<'_>) {
    assert_eq!(store.listed(page(1, 20)).await, (vec![], 0));
    assert_eq!(store.listed(page(2, 20)).await, (vec![], 0));
}

/// The search matches a substring of the email or of the name, in any case, literally (`%`,
/// `_` and `\` are no wildcards), and pages and counts like any listing.
pub async fn users_search_matches_email_or_name_in_any_case_and_literally(store: Store<'_>) {
    let role = store.members().await;
    let member = |address: &'static str, name: Option<&'static str>, minutes: i64| {
        let role = role.clone();
        async move {
            store
                .member(address, name, &role, TimeDelta::minutes(minutes), true)
                .await
        }
    };
    let ada = member("ada@example.com", Some("Ada Lovelace"), 0).await;
    let grace = member("Grace@Navy.example.org", Some("Grace Hopper"), 1).await;
    let nameless = member("nobody@example.net", None, 2).await;
    let percent = member("p1@example.com", Some("50% off"), 3).await;
    let fifty = member("p2@example.com", Some("500 off"), 4).await;
    let underscore = member("a_b@example.com", None, 5).await;
    let axb = member("axb@example.com", Some("AXB"), 6).await;
    let backslash = member("b1@example.com", Some(r"back\slash"), 7).await;

    // Case-insensitive, on the email or the name.
    assert_eq!(store.listed(search("LOVELACE")).await, (vec![ada.id], 1));
    assert_eq!(
        store.listed(search("navy.EXAMPLE")).await,
        (vec![grace.id], 1)
    );
    assert_eq!(store.listed(search("grace")).await, (vec![grace.id], 1));
    assert_eq!(
        store.listed(search("Hopper@")).await,
        (vec![], 0),
        "email and name are matched apart"
    );
    // A user without a name is found by its email, and not lost by the others.
    assert_eq!(store.listed(search("NOBODY")).await, (vec![nameless.id], 1));
    assert_eq!(store.listed(search(".net")).await, (vec![nameless.id], 1));
    // `%`, `_` and `\` are themselves, not wildcards or escapes.
    assert_eq!(store.listed(search("50%")).await, (vec![percent.id], 1));
    assert_eq!(store.listed(search("a_b")).await, (vec![underscore.id], 1));
    assert_eq!(store.listed(search("%")).await, (vec![percent.id], 1));
    assert_eq!(store.listed(search("_")).await, (vec![underscore.id], 1));
    assert_eq!(store.listed(search(r"k\s")).await, (vec![backslash.id], 1));
    assert_eq!(store.listed(search(r"\")).await, (vec![backslash.id], 1));
    assert_eq!(store.listed(search("0 off")).await, (vec![fifty.id], 1));
    assert_eq!(store.listed(search("AX")).await, (vec![axb.id], 1));
    // The search pages and counts like any listing.
    let everyone = vec![
        ada.id,
        grace.id,
        nameless.id,
        percent.id,
        fifty.id,
        underscore.id,
        axb.id,
        backslash.id,
    ];
    assert_eq!(store.listed(search("@")).await, (everyone.clone(), 8));
    let second = UserQuery {
        q: Some("EXAMPLE.COM".into()),
        ..page(2, 2)
    };
    assert_eq!(
        store.listed(second).await,
        (vec![fifty.id, underscore.id], 6)
    );
    assert_eq!(store.listed(search("")).await, (everyone, 8));
    assert_eq!(store.listed(search("zzz")).await, (vec![], 0));
}

/// The role filter matches the role's slug; an unknown slug matches nobody.
pub async fn users_role_filter_matches_the_slug(store: Store<'_>) {
    let members = store.members().await;
    let editors = store.role("editors", t0()).await;
    let member = store
        .member("m@example.com", None, &members, TimeDelta::zero(), true)
        .await;
    let editor = store
        .member("e@example.com", None, &editors, TimeDelta::minutes(1), true)
        .await;
    let other_editor = store
        .member(
            "e2@example.com",
            None,
            &editors,
            TimeDelta::minutes(2),
            false,
        )
        .await;
    let by_role = |slug_text: &str| UserQuery {
        role: Some(slug(slug_text)),
        ..page(1, 20)
    };

    let listed = store.users.list(&by_role("editors")).await.unwrap();
    assert_eq!(listed.items, vec![editor.clone(), other_editor.clone()]);
    assert_eq!(listed.total, 2);
    assert!(
        listed
            .items
            .iter()
            .all(|user| user.role == editors.to_ref())
    );
    assert_eq!(store.listed(by_role("members")).await, (vec![member.id], 1));
    assert_eq!(store.listed(by_role("nobody-has-it")).await, (vec![], 0));
    let unknown = UserQuery {
        page: 3,
        ..by_role("nobody-has-it")
    };
    assert_eq!(store.listed(unknown).await, (vec![], 0));
}

/// The search, role and active filters combine, and the total counts every match.
pub async fn users_filters_combine(store: Store<'_>) {
    let members = store.members().await;
    let editors = store.role("editors", t0()).await;
    let m = TimeDelta::minutes;
    let ada = store
        .member("ada@example.com", Some("Ada"), &members, m(0), true)
        .await;
    let ada_old = store
        .member("ada.old@example.com", Some("Ada"), &members, m(1), false)
        .await;
    let ada_editor = store
        .member("ada.ed@example.com", Some("Ada"), &editors, m(2), true)
        .await;
    let ada_editor_old = store
        .member("x@example.com", Some("ADA"), &editors, m(3), false)
        .await;
    let grace = store
        .member("grace@example.com", None, &editors, m(4), true)
        .await;
    let query = |q: Option<&str>, role: Option<&str>, is_active: Option<bool>| UserQuery {
        q: q.map(str::to_owned),
        role: role.map(slug),
        is_active,
        ..page(1, 20)
    };

    assert_eq!(
        store.listed(query(None, None, Some(true))).await,
        (vec![ada.id, ada_editor.id, grace.id], 3)
    );
    assert_eq!(
        store.listed(query(None, None, Some(false))).await,
        (vec![ada_old.id, ada_editor_old.id], 2)
    );
    assert_eq!(
        store
            .listed(query(Some("ada"), Some("editors"), None))
            .await,
        (vec![ada_editor.id, ada_editor_old.id], 2)
    );
    assert_eq!(
        store
            .listed(query(Some("ada"), Some("editors"), Some(false)))
            .await,
        (vec![ada_editor_old.id], 1)
    );
    assert_eq!(
        store.listed(query(Some("ada"), None, Some(true))).await,
        (vec![ada.id, ada_editor.id], 2)
    );
    assert_eq!(
        store.listed(query(None, Some("editors"), Some(true))).await,
        (vec![ada_editor.id, grace.id], 2)
    );
    assert_eq!(
        store
            .listed(query(Some("grace"), Some("members"), None))
            .await,
        (vec![], 0)
    );
    // Paged: the total still counts every match.
    let paged = UserQuery {
        per_page: 1,
        page: 2,
        ..query(None, Some("editors"), None)
    };
    assert_eq!(store.listed(paged).await, (vec![ada_editor_old.id], 3));
}

/// A user's role is read as it is now: a renamed role shows renamed in every lookup.
pub async fn users_lookups_show_the_role_as_it_is_now(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let members = store.members().await;
    let renamed = store
        .roles
        .update(
            members.id,
            &authd_application::ports::RoleChanges {
                name: Some(role_name("Readers")),
                description: None,
            },
            at(1),
        )
        .await
        .unwrap()
        .unwrap();
    let expected = User {
        role: renamed.to_ref(),
        ..user.clone()
    };
    assert_eq!(expected.role.name.as_str(), "Readers");

    assert_eq!(
        store.users.find_by_id(user.id).await.unwrap(),
        Some(expected.clone())
    );
    let credentials = store
        .users
        .find_credentials(&user.email)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credentials.user, expected);
    assert_eq!(
        store.users.list(&page(1, 20)).await.unwrap().items,
        vec![expected.clone()]
    );
    let (updated, _) = store
        .users
        .update(user.id, &UserChanges::default(), false, at(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        updated,
        User {
            updated_at: at(2),
            ..expected
        }
    );
}

/// An update sets the given fields and `updated_at`, nothing else.
pub async fn users_update_sets_only_the_given_fields_and_the_time(store: Store<'_>) {
    let editors = store.role("editors", t0()).await;
    let user = store.user("Ada@Example.com").await;
    let bystander = store.user("grace@example.com").await;
    let (session, _) = store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;

    // The name alone, cleared.
    let cleared = UserChanges {
        name: Some(None),
        ..UserChanges::default()
    };
    let (updated, revoked) = store
        .users
        .update(user.id, &cleared, false, at(1))
        .await
        .unwrap()
        .unwrap();
    let expected = User {
        name: None,
        updated_at: at(1),
        ..user.clone()
    };
    assert_eq!(updated, expected);
    assert!(revoked.is_empty());
    assert_eq!(
        store.users.find_by_id(user.id).await.unwrap(),
        Some(expected)
    );
    assert_eq!(
        store.users.password_hash(user.id).await.unwrap(),
        Some(old_hash())
    );

    // Nothing: only the time moves.
    let (touched, _) = store
        .users
        .update(user.id, &UserChanges::default(), false, at(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        touched,
        User {
            updated_at: at(2),
            ..updated.clone()
        }
    );

    // A name set again.
    let named = UserChanges {
        name: Some(Some(display_name("Countess"))),
        ..UserChanges::default()
    };
    let (named, _) = store
        .users
        .update(user.id, &named, false, at(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        named.name.as_ref().map(DisplayName::as_str),
        Some("Countess")
    );

    // Everything else at once.
    let new_email = email("Ada.Lovelace@Example.org");
    let everything = UserChanges {
        email: Some(new_email.clone()),
        name: None,
        role: Some(editors.id),
        is_active: Some(false),
        is_superuser: Some(true),
        is_verified: Some(true),
        password_hash: Some(PasswordHash::new("$argon2id$new")),
    };
    let (changed, revoked) = store
        .users
        .update(user.id, &everything, false, at(4))
        .await
        .unwrap()
        .unwrap();
    let expected = User {
        id: user.id,
        email: new_email.clone(),
        name: Some(display_name("Countess")),
        is_active: false,
        is_superuser: true,
        is_verified: true,
        is_primary_admin: false,
        role: editors.to_ref(),
        created_at: user.created_at,
        updated_at: at(4),
    };
    assert_eq!(changed, expected);
    assert_eq!(changed.email.as_str(), "Ada.Lovelace@Example.org");
    assert!(revoked.is_empty());
    assert_eq!(
        store.users.find_by_id(user.id).await.unwrap(),
        Some(expected.clone())
    );
    // The email lookup follows the new address, in any case, with the new hash; the
    // credentials version moves only when sessions are revoked.
    let lookup = email("ada.lovelace@EXAMPLE.ORG");
    let Credentials {
        user: found,
        hash,
        version,
    } = store
        .users
        .find_credentials(&lookup)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, expected);
    assert_eq!(hash, PasswordHash::new("$argon2id$new"));
    assert_eq!(version, 0);
    assert_eq!(
        store.users.find_credentials(&user.email).await.unwrap(),
        None
    );
    // The old address is free again.
    let reused = store.user("ada@example.com").await;
    assert_ne!(reused.id, user.id);
    // Without `revoke_sessions` the sessions stay; other users are untouched.
    assert_eq!(store.live_ids(&user).await, vec![session.id]);
    assert_eq!(
        store.users.find_by_id(bystander.id).await.unwrap(),
        Some(bystander)
    );

    // Flags back, one at a time.
    let flags = UserChanges {
        is_active: Some(true),
        is_superuser: Some(false),
        is_verified: Some(false),
        ..UserChanges::default()
    };
    let (back, _) = store
        .users
        .update(user.id, &flags, false, at(5))
        .await
        .unwrap()
        .unwrap();
    assert!(back.is_active && !back.is_superuser && !back.is_verified);

    // The user's own email in another case is no conflict.
    let recased = UserChanges {
        email: Some(email("ADA.LOVELACE@example.org")),
        ..UserChanges::default()
    };
    let (recased, _) = store
        .users
        .update(user.id, &recased, false, at(6))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recased.email.as_str(), "ADA.LOVELACE@example.org");
}

/// An update keeps the primary admin mark, whatever it changes.
pub async fn users_update_keeps_the_primary_admin_mark(store: Store<'_>) {
    let admin = store.admin("root@example.com").await;
    assert!(
        store
            .users
            .create_primary_admin(&admin, &PasswordHash::new("$argon2id$admin"))
            .await
            .unwrap()
    );

    let changes = UserChanges {
        email: Some(email("new-root@example.com")),
        is_superuser: Some(false),
        ..UserChanges::default()
    };
    let (updated, _) = store
        .users
        .update(admin.id, &changes, true, at(60))
        .await
        .unwrap()
        .unwrap();

    assert!(updated.is_primary_admin);
    assert!(!updated.is_superuser);
    let stored = store.users.find_by_id(admin.id).await.unwrap().unwrap();
    assert!(stored.is_primary_admin);
    // Still the one primary admin: another cannot be made.
    let other = store.admin("other-root@example.com").await;
    assert!(
        !store
            .users
            .create_primary_admin(&other, &PasswordHash::new("$argon2id$other"))
            .await
            .unwrap()
    );
}

/// An update to an email another user has (in any case) is `EmailTaken` and changes nothing,
/// revokes nothing and bumps no version.
pub async fn users_update_to_a_taken_email_changes_nothing(store: Store<'_>) {
    let owner = store.user("Zoë@Example.org").await;
    let user = store.user("ada@example.com").await;
    let (session, _) = store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let changes = UserChanges {
        email: Some(email("ZOË@example.ORG")),
        name: Some(Some(display_name("Thief"))),
        is_active: Some(false),
        password_hash: Some(PasswordHash::new("$argon2id$new")),
        ..UserChanges::default()
    };

    let result = store.users.update(user.id, &changes, true, at(1)).await;

    assert!(
        matches!(result, Err(CreateUserError::EmailTaken)),
        "{result:?}"
    );
    assert_eq!(
        store.users.find_by_id(user.id).await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(
        store.users.password_hash(user.id).await.unwrap(),
        Some(old_hash())
    );
    assert_eq!(store.live_ids(&user).await, vec![session.id]);
    assert_eq!(store.version(&user).await, 0);
    let Credentials { user: found, .. } = store
        .users
        .find_credentials(&owner.email)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, owner);
}

/// An update of an unknown user is `None`, and touches nobody else.
pub async fn users_update_of_an_unknown_user_is_none(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let (session, _) = store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let changes = UserChanges {
        email: Some(email("ghost@example.com")),
        is_active: Some(false),
        ..UserChanges::default()
    };

    let updated = store
        .users
        .update(UserId::generate(), &changes, true, t0())
        .await
        .unwrap();

    assert_eq!(updated, None);
    assert_eq!(store.live_ids(&user).await, vec![session.id]);
    assert_eq!(store.users.find_by_id(user.id).await.unwrap(), Some(user));
    assert_eq!(store.listed(page(1, 20)).await.1, 1);
    assert_eq!(
        store
            .users
            .find_credentials(&email("ghost@example.com"))
            .await
            .unwrap(),
        None
    );
}

/// A role that does not exist is refused (the store's foreign key decides): an update to it
/// fails and changes nothing, a user holding it is not created.
pub async fn users_an_unknown_role_is_refused_and_nothing_changes(store: Store<'_>) {
    let members = store.members().await;
    let mut stray = User::register(email("stray@example.com"), None, members.to_ref(), t0());
    stray.role.id = RoleId::generate();
    let created = store.users.create(&stray, &old_hash(), None).await;
    assert!(
        matches!(
            created,
            Err(CreateUserError::Port(PortError::Unexpected(_)))
        ),
        "{created:?}"
    );
    assert_eq!(store.users.find_by_id(stray.id).await.unwrap(), None);
    assert_eq!(
        store.users.find_credentials(&stray.email).await.unwrap(),
        None
    );

    let user = store.user("ada@example.com").await;
    let (session, _) = store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let changes = UserChanges {
        role: Some(RoleId::generate()),
        name: Some(None),
        ..UserChanges::default()
    };

    let result = store.users.update(user.id, &changes, true, at(1)).await;

    assert!(
        matches!(result, Err(CreateUserError::Port(PortError::Unexpected(_)))),
        "{result:?}"
    );
    assert_eq!(
        store.users.find_by_id(user.id).await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(store.live_ids(&user).await, vec![session.id]);
    assert_eq!(store.version(&user).await, 0);
}

/// An update that revokes sessions revokes exactly the user's live ones, at `now`, and bumps
/// the credentials version; sessions already over keep their state.
pub async fn users_update_revoking_sessions_returns_exactly_the_live_ones(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let other = store.user("grace@example.com").await;
    let MixedSessions {
        live_a,
        live_b,
        expired,
        others,
    } = store.mixed_sessions(&user, &other).await;
    let earlier = at(-30);
    let revoked = store.revoked_session(&user, earlier).await;
    let deactivate = UserChanges {
        is_active: Some(false),
        ..UserChanges::default()
    };

    let now = t0() + TimeDelta::seconds(5);
    let (updated, revoked_now) = store
        .users
        .update(user.id, &deactivate, true, now)
        .await
        .unwrap()
        .unwrap();

    assert!(!updated.is_active);
    assert_eq!(updated.updated_at, now);
    assert_eq!(
        sorted(session_ids(&revoked_now)),
        sorted(vec![live_a.id, live_b.id])
    );
    for session in &revoked_now {
        let before = if session.id == live_a.id {
            &live_a
        } else {
            &live_b
        };
        assert_eq!(
            session,
            &authd_domain::Session {
                revoked_at: Some(now),
                ..before.clone()
            }
        );
    }
    assert_eq!(store.version(&user).await, 1);
    assert_eq!(store.version(&other).await, 0);
    assert!(store.live_ids(&user).await.is_empty());
    assert_eq!(store.live_ids(&other).await, vec![others.id]);
    let expired = store.sessions.find(expired.id).await.unwrap().unwrap();
    assert_eq!(expired.session.revoked_at, None);
    let revoked = store.sessions.find(revoked.id).await.unwrap().unwrap();
    assert_eq!(revoked.session.revoked_at, Some(earlier));

    // Again: nothing left to revoke, but the version moves all the same.
    let (_, none_left) = store
        .users
        .update(user.id, &UserChanges::default(), true, now)
        .await
        .unwrap()
        .unwrap();
    assert!(none_left.is_empty());
    assert_eq!(store.version(&user).await, 2);
}

/// An update without revoking leaves the sessions live and the version alone, even when it
/// sets the password hash.
pub async fn users_update_without_revoking_leaves_the_sessions_live(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let (a, _) = store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let (b, _) = store
        .session(&user, TimeDelta::seconds(1), TimeDelta::days(1))
        .await;
    let changes = UserChanges {
        password_hash: Some(PasswordHash::new("$argon2id$new")),
        ..UserChanges::default()
    };

    let (_, revoked) = store
        .users
        .update(user.id, &changes, false, t0())
        .await
        .unwrap()
        .unwrap();

    assert!(revoked.is_empty());
    assert_eq!(store.live_ids(&user).await, vec![b.id, a.id]);
    assert_eq!(
        store.users.password_hash(user.id).await.unwrap(),
        Some(PasswordHash::new("$argon2id$new"))
    );
    assert_eq!(store.version(&user).await, 0);
}

/// Deleting a user returns its sessions that were live (as they were), deletes every one of
/// its sessions, and frees its email; a second delete finds nothing.
pub async fn users_delete_returns_the_live_sessions_and_frees_the_email(store: Store<'_>) {
    let user = store.user("Ada@Example.com").await;
    let other = store.user("grace@example.com").await;
    let MixedSessions {
        live_a,
        live_b,
        expired,
        others,
    } = store.mixed_sessions(&user, &other).await;
    let revoked = store.revoked_session(&user, at(-1)).await;

    let mut live = store.users.delete(user.id, t0()).await.unwrap().unwrap();

    // The live sessions, as they were (not marked revoked).
    live.sort_by_key(|session| session.id);
    let mut expected = vec![live_a.clone(), live_b.clone()];
    expected.sort_by_key(|session| session.id);
    assert_eq!(live, expected);
    // The user and every one of its sessions are gone; others stay.
    assert_eq!(store.users.find_by_id(user.id).await.unwrap(), None);
    assert_eq!(store.users.password_hash(user.id).await.unwrap(), None);
    for gone in [live_a.id, live_b.id, expired.id, revoked.id] {
        assert_eq!(store.sessions.find(gone).await.unwrap(), None);
    }
    assert!(store.live_ids(&user).await.is_empty());
    assert_eq!(store.live_ids(&other).await, vec![others.id]);
    assert!(store.users.find_by_id(other.id).await.unwrap().is_some());
    assert_eq!(
        store.users.find_credentials(&user.email).await.unwrap(),
        None
    );
    assert_eq!(store.listed(page(1, 20)).await, (vec![other.id], 1));
    // The email can be used again, in any case, by a user starting at version 0.
    let again = store.user("ada@EXAMPLE.com").await;
    assert_eq!(
        store.users.find_by_id(again.id).await.unwrap(),
        Some(again.clone())
    );
    assert_eq!(store.version(&again).await, 0);
    // A second delete finds nothing.
    assert_eq!(store.users.delete(user.id, t0()).await.unwrap(), None);
}

/// A user without live sessions is deleted with none of them returned; an unknown user is
/// `None` and nobody else is touched.
pub async fn users_delete_without_live_sessions_or_of_nobody(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let bystander = store.user("grace@example.com").await;
    let (expired, _) = store
        .session(&user, -TimeDelta::days(2), -TimeDelta::days(1))
        .await;

    assert_eq!(
        store.users.delete(UserId::generate(), t0()).await.unwrap(),
        None
    );
    assert_eq!(store.listed(page(1, 20)).await.1, 2);
    assert_eq!(
        store.users.delete(user.id, t0()).await.unwrap(),
        Some(vec![])
    );
    assert_eq!(store.users.find_by_id(user.id).await.unwrap(), None);
    assert_eq!(store.sessions.find(expired.id).await.unwrap(), None);
    assert_eq!(
        store.users.find_by_id(bystander.id).await.unwrap(),
        Some(bystander)
    );
}

/// The primary admin is created once; later calls (another email, or the same one) return
/// `false` and never modify it.
pub async fn users_primary_admin_is_created_once_and_never_overwritten(store: Store<'_>) {
    let admin = store.admin("Root@Example.com").await;

    let created = store
        .users
        .create_primary_admin(&admin, &PasswordHash::new("$argon2id$admin"))
        .await
        .unwrap();
    assert!(created);

    let mut other = store.admin("other-root@example.com").await;
    other.name = Some(display_name("Other"));
    other.created_at = at(60);
    other.updated_at = other.created_at;
    let again = store
        .users
        .create_primary_admin(&other, &PasswordHash::new("$argon2id$other"))
        .await
        .unwrap();
    assert!(!again);
    let same_email = store.admin("root@example.com").await;
    let again = store
        .users
        .create_primary_admin(&same_email, &PasswordHash::new("$argon2id$same"))
        .await
        .unwrap();
    assert!(!again);

    let stored = store.users.find_by_id(admin.id).await.unwrap().unwrap();
    assert_eq!(stored, admin);
    assert_eq!(stored.email.as_str(), "Root@Example.com");
    assert!(stored.is_primary_admin && stored.is_superuser && stored.is_verified);
    assert_eq!(
        store.users.password_hash(admin.id).await.unwrap(),
        Some(PasswordHash::new("$argon2id$admin"))
    );
    assert_eq!(store.users.find_by_id(other.id).await.unwrap(), None);
    assert_eq!(store.users.find_by_id(same_email.id).await.unwrap(), None);
    assert_eq!(
        store.users.find_credentials(&other.email).await.unwrap(),
        None
    );
    assert_eq!(store.listed(page(1, 20)).await, (vec![admin.id], 1));
}

/// A primary admin whose email a normal user has is `EmailTaken`, nothing is stored, and one
/// with a free email can still be made.
pub async fn users_primary_admin_with_a_taken_email_is_refused(store: Store<'_>) {
    let user = store.user("Ada@Example.com").await;
    let admin = store.admin("ada@example.COM").await;

    let result = store
        .users
        .create_primary_admin(&admin, &PasswordHash::new("$argon2id$admin"))
        .await;

    assert!(
        matches!(result, Err(CreateUserError::EmailTaken)),
        "{result:?}"
    );
    assert_eq!(store.users.find_by_id(admin.id).await.unwrap(), None);
    let stored = store.users.find_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(stored, user);
    assert!(!stored.is_primary_admin);
    assert_eq!(store.listed(page(1, 20)).await, (vec![user.id], 1));
    let admin = store.admin("root@example.com").await;
    assert!(
        store
            .users
            .create_primary_admin(&admin, &PasswordHash::new("$argon2id$admin"))
            .await
            .unwrap()
    );
    assert!(
        store
            .users
            .find_by_id(admin.id)
            .await
            .unwrap()
            .unwrap()
            .is_primary_admin
    );
}

/// Every lookup reads the primary admin mark back, and only on the primary admin; the
/// admin is stored marked even when the value handed in is not.
pub async fn users_primary_admin_mark_is_read_back_by_every_lookup(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let admin = store.admin("root@example.com").await;
    let unmarked = User {
        is_primary_admin: false,
        ..admin.clone()
    };
    assert!(
        store
            .users
            .create_primary_admin(&unmarked, &PasswordHash::new("$argon2id$admin"))
            .await
            .unwrap()
    );

    let by_id = store.users.find_by_id(admin.id).await.unwrap().unwrap();
    assert!(by_id.is_primary_admin);
    let Credentials {
        user: by_email,
        hash,
        version,
    } = store
        .users
        .find_credentials(&admin.email)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_email, admin);
    assert!(by_email.is_primary_admin);
    assert_eq!(hash, PasswordHash::new("$argon2id$admin"));
    assert_eq!(version, 0);
    let listed = store.users.list(&page(1, 20)).await.unwrap().items;
    assert_eq!(
        listed
            .iter()
            .map(|user| (user.id, user.is_primary_admin))
            .collect::<Vec<_>>(),
        sorted_pairs(vec![(user.id, false), (admin.id, true)])
    );

    assert!(
        !store
            .users
            .find_by_id(user.id)
            .await
            .unwrap()
            .unwrap()
            .is_primary_admin
    );
    let Credentials { user: by_email, .. } = store
        .users
        .find_credentials(&user.email)
        .await
        .unwrap()
        .unwrap();
    assert!(!by_email.is_primary_admin);
}

/// Both users were created at `t0`: listed by id.
fn sorted_pairs(mut pairs: Vec<(UserId, bool)>) -> Vec<(UserId, bool)> {
    pairs.sort();
    pairs
}

/// At most one primary admin ever exists: `create` of a user marked primary admin fails while
/// one exists, and stores nothing.
pub async fn users_create_never_makes_a_second_primary_admin(store: Store<'_>) {
    let admin = store.admin("root@example.com").await;
    assert!(
        store
            .users
            .create_primary_admin(&admin, &PasswordHash::new("$argon2id$admin"))
            .await
            .unwrap()
    );
    let second = store.admin("second-root@example.com").await;

    let created = store
        .users
        .create(&second, &PasswordHash::new("$argon2id$second"), None)
        .await;

    assert!(
        matches!(
            created,
            Err(CreateUserError::Port(PortError::Unexpected(_)))
        ),
        "{created:?}"
    );
    assert_eq!(store.users.find_by_id(second.id).await.unwrap(), None);
    assert_eq!(store.listed(page(1, 20)).await, (vec![admin.id], 1));
    // Other accounts are created as ever.
    let member = store.user("member@example.com").await;
    assert_eq!(
        store.users.find_by_id(member.id).await.unwrap(),
        Some(member)
    );
}

/// Of two primary admin creations at once (other emails, or the same one), exactly one wins.
pub async fn users_of_concurrent_primary_admin_creations_exactly_one_wins(store: Store<'_>) {
    for round in 0..20 {
        let contenders = [
            store.admin(&format!("root-a-{round}@example.com")).await,
            if round % 2 == 0 {
                store.admin(&format!("root-b-{round}@example.com")).await
            } else {
                store.admin(&format!("root-a-{round}@example.com")).await
            },
        ];
        let hash = PasswordHash::new("$argon2id$admin");
        let wins: Vec<bool> = join_all(
            contenders
                .iter()
                .map(|admin| store.users.create_primary_admin(admin, &hash)),
        )
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

        assert_eq!(wins.iter().filter(|won| **won).count(), 1, "{wins:?}");
        let winner = &contenders[wins.iter().position(|won| *won).unwrap()];
        let loser = &contenders[wins.iter().position(|won| !*won).unwrap()];
        let stored = store.users.find_by_id(winner.id).await.unwrap().unwrap();
        assert!(stored.is_primary_admin);
        assert_eq!(store.users.find_by_id(loser.id).await.unwrap(), None);
        assert_eq!(store.listed(page(1, 20)).await, (vec![winner.id], 1));
        // The next round starts without a primary admin.
        assert_eq!(
            store.users.delete(winner.id, t0()).await.unwrap(),
            Some(vec![])
        );
    }
}

/// Replacing the password sets the hash and `updated_at`, bumps the credentials version and
/// revokes exactly the user's live sessions, at `now`.
pub async fn users_replace_password_revokes_exactly_the_live_sessions(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let other = store.user("grace@example.com").await;
    let MixedSessions {
        live_a,
        live_b,
        expired,
        others,
    } = store.mixed_sessions(&user, &other).await;
    let earlier = at(-30);
    let revoked = store.revoked_session(&user, earlier).await;

    let now = t0() + TimeDelta::seconds(5);
    let revoked_now = store
        .users
        .replace_password(user.id, 0, &PasswordHash::new("$argon2id$new"), now)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(
        sorted(session_ids(&revoked_now)),
        sorted(vec![live_a.id, live_b.id])
    );
    assert!(
        revoked_now
            .iter()
            .all(|session| session.revoked_at == Some(now) && session.user_id == user.id)
    );
    assert_eq!(
        store.users.password_hash(user.id).await.unwrap(),
        Some(PasswordHash::new("$argon2id$new"))
    );
    let stored = store.users.find_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(
        stored,
        User {
            updated_at: now,
            ..user.clone()
        }
    );
    assert_eq!(store.version(&user).await, 1);
    assert_eq!(store.version(&other).await, 0);
    assert!(store.live_ids(&user).await.is_empty());
    assert_eq!(store.live_ids(&other).await, vec![others.id]);
    // Sessions that were already over keep their state.
    let expired = store.sessions.find(expired.id).await.unwrap().unwrap();
    assert_eq!(expired.session.revoked_at, None);
    let revoked = store.sessions.find(revoked.id).await.unwrap().unwrap();
    assert_eq!(revoked.session.revoked_at, Some(earlier));
    for session in [live_a.id, live_b.id] {
        let record = store.sessions.find(session).await.unwrap().unwrap();
        assert_eq!(record.session.revoked_at, Some(now));
    }
}

/// Replacing the password of an unknown user is `None` and revokes nothing.
pub async fn users_replace_password_of_nobody_revokes_nothing(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let (session, _) = store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let revoked = store
        .users
        .replace_password(
            UserId::generate(),
            0,
            &PasswordHash::new("$argon2id$new"),
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(revoked, None);
    assert_eq!(store.live_ids(&user).await, vec![session.id]);
    assert_eq!(store.version(&user).await, 0);
    assert_eq!(
        store.users.password_hash(user.id).await.unwrap(),
        Some(old_hash())
    );
}

/// Replacing the password is a compare-and-set on the credentials version: at a version that
/// is not the user's (older or newer) it is `None` and changes nothing (hash, `updated_at`,
/// version, sessions, reset token, outbox); at the user's version it applies, after which that
/// version is stale.
pub async fn users_replace_password_is_a_compare_and_set_on_the_version(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    store.sessions.revoke_all(user.id, t0()).await.unwrap();
    assert_eq!(store.version(&user).await, 1);
    let (session, _) = store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let reset = store.reset_requested(&user, "reset", t0()).await;
    let emails = vec![link_email(
        EmailKind::ResetPassword,
        "ada@example.com",
        "reset",
    )];

    for stale in [0, 2, -1] {
        let replaced = store
            .users
            .replace_password(user.id, stale, &PasswordHash::new("$argon2id$stale"), at(1))
            .await
            .unwrap();
        assert_eq!(replaced, None, "version {stale}");
        assert_eq!(
            store.users.password_hash(user.id).await.unwrap(),
            Some(old_hash())
        );
        assert_eq!(
            store.users.find_by_id(user.id).await.unwrap(),
            Some(user.clone())
        );
        assert_eq!(store.version(&user).await, 1);
        assert_eq!(store.live_ids(&user).await, vec![session.id]);
        assert_eq!(store.holder(&reset, at(1)).await, Some(user.id));
        assert_eq!(store.waiting().await, emails);
    }

    let new = PasswordHash::new("$argon2id$new");
    let revoked = store
        .users
        .replace_password(user.id, 1, &new, at(2))
        .await
        .unwrap();
    assert_eq!(revoked.as_deref().map(session_ids), Some(vec![session.id]));
    assert_eq!(
        store.users.password_hash(user.id).await.unwrap(),
        Some(new.clone())
    );
    assert_eq!(store.version(&user).await, 2);
    assert_eq!(store.holder(&reset, at(2)).await, None);

    // The version it was checked at is stale now.
    let again = store
        .users
        .replace_password(user.id, 1, &PasswordHash::new("$argon2id$again"), at(3))
        .await
        .unwrap();
    assert_eq!(again, None);
    assert_eq!(store.users.password_hash(user.id).await.unwrap(), Some(new));
    assert_eq!(store.version(&user).await, 2);
    assert_eq!(
        store.waiting().await,
        sorted(vec![
            link_email(EmailKind::ResetPassword, "ada@example.com", "reset"),
            notice("ada@example.com"),
        ])
    );
}

/// Of ten password changes at once checked at one version, exactly one applies: one hash set,
/// one version bump, one notice.
pub async fn users_of_concurrent_password_changes_at_one_version_exactly_one_wins(
    store: Store<'_>,
) {
    let user = store.user("ada@example.com").await;
    let hashes: Vec<PasswordHash> = (0..10)
        .map(|n| PasswordHash::new(format!("$argon2id${n}")))
        .collect();

    let changes = join_all(
        hashes
            .iter()
            .map(|hash| store.users.replace_password(user.id, 0, hash, at(1))),
    )
    .await;

    let won: Vec<usize> = changes
        .into_iter()
        .enumerate()
        .filter_map(|(n, change)| change.unwrap().map(|_| n))
        .collect();
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!(
        store.users.password_hash(user.id).await.unwrap(),
        Some(hashes[won[0]].clone())
    );
    assert_eq!(store.version(&user).await, 1);
    assert_eq!(store.waiting().await, vec![notice("ada@example.com")]);
}

/// However a password change checked at the current version interleaves with a reset whose
/// link was sent before it, exactly one of them applies and the other changes nothing: a
/// change never overwrites a completed reset (the version moved), and a completed change
/// leaves the reset link dead (it spends the reset tokens).
pub async fn users_a_password_change_never_overwrites_a_completed_reset(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    for round in 0..20 {
        let checked = store.version(&user).await;
        let link = reset_link(&format!("reset-{round}"));
        let requested = store
            .links
            .request_reset(&user.email, &link, &no_limit(), t0())
            .await
            .unwrap();
        assert_eq!(requested, LinkRequest::Queued, "round {round}");
        let reset_hash = PasswordHash::new(format!("$argon2id$reset-{round}"));
        let changed_hash = PasswordHash::new(format!("$argon2id$changed-{round}"));

        let change = store
            .users
            .replace_password(user.id, checked, &changed_hash, t0());
        let reset = store.links.reset_password(&link.digest, &reset_hash, t0());
        // Both orders: on odd rounds the reset is polled first.
        let (change, reset) = if round % 2 == 0 {
            futures_util::future::join(change, reset).await
        } else {
            let (reset, change) = futures_util::future::join(reset, change).await;
            (change, reset)
        };

        let (changed, reset) = (change.unwrap().is_some(), reset.unwrap().is_some());
        assert!(
            changed != reset,
            "round {round}: change {changed}, reset {reset}"
        );
        let winner = if reset { reset_hash } else { changed_hash };
        assert_eq!(
            store.users.password_hash(user.id).await.unwrap(),
            Some(winner),
            "round {round}"
        );
        assert_eq!(store.version(&user).await, checked + 1, "round {round}");
    }
}

/// A rehash replaces the hash alone, only while the stored hash is still the old one: no
/// version bump, no revocation; a stale one changes nothing.
pub async fn users_rehash_is_a_compare_and_set_on_the_old_hash(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let (session, _) = store
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;

    let stale = store
        .users
        .update_password_hash(
            user.id,
            &PasswordHash::new("$argon2id$stale"),
            &PasswordHash::new("$argon2id$rehash"),
            at(1),
        )
        .await
        .unwrap();
    assert!(!stale);
    assert_eq!(
        store.users.password_hash(user.id).await.unwrap(),
        Some(old_hash())
    );
    assert_eq!(
        store.users.find_by_id(user.id).await.unwrap(),
        Some(user.clone()),
        "a refused rehash does not move updated_at"
    );

    let replaced = store
        .users
        .update_password_hash(
            user.id,
            &old_hash(),
            &PasswordHash::new("$argon2id$rehash"),
            at(5),
        )
        .await
        .unwrap();
    assert!(replaced);
    assert_eq!(
        store.users.password_hash(user.id).await.unwrap(),
        Some(PasswordHash::new("$argon2id$rehash"))
    );
    assert_eq!(
        store.users.find_by_id(user.id).await.unwrap(),
        Some(User {
            updated_at: at(5),
            ..user.clone()
        })
    );
    assert_eq!(store.live_ids(&user).await, vec![session.id]);
    assert_eq!(store.version(&user).await, 0);

    // The old hash is stale now.
    let again = store
        .users
        .update_password_hash(
            user.id,
            &old_hash(),
            &PasswordHash::new("$argon2id$other"),
            at(6),
        )
        .await
        .unwrap();
    assert!(!again);
    assert_eq!(
        store.users.password_hash(user.id).await.unwrap(),
        Some(PasswordHash::new("$argon2id$rehash"))
    );
    // An unknown user has no hash to replace.
    assert!(
        !store
            .users
            .update_password_hash(
                UserId::generate(),
                &old_hash(),
                &PasswordHash::new("$argon2id$x"),
                at(7)
            )
            .await
            .unwrap()
    );
}

/// Every credentials change (password replaced, revoke-all, an update that revokes) bumps the
/// version by one; an update that does not revoke leaves it.
pub async fn users_every_credentials_change_bumps_the_version(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    assert_eq!(store.version(&user).await, 0);

    store
        .users
        .replace_password(user.id, 0, &PasswordHash::new("$argon2id$new"), t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.version(&user).await, 1);
    store.sessions.revoke_all(user.id, t0()).await.unwrap();
    assert_eq!(store.version(&user).await, 2);
    let password_set = UserChanges {
        password_hash: Some(PasswordHash::new("$argon2id$admin")),
        ..UserChanges::default()
    };
    store
        .users
        .update(user.id, &password_set, true, t0())
        .await
        .unwrap();
    assert_eq!(store.version(&user).await, 3);
    let rename = UserChanges {
        name: Some(Some(display_name("Ada L."))),
        ..UserChanges::default()
    };
    store
        .users
        .update(user.id, &rename, false, t0())
        .await
        .unwrap();
    assert_eq!(store.version(&user).await, 3);
    assert!(
        store
            .users
            .update_password_hash(
                user.id,
                &PasswordHash::new("$argon2id$admin"),
                &PasswordHash::new("$argon2id$rehash"),
                t0()
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.version(&user).await,
        3,
        "a rehash is no credentials change"
    );
}
