//! The `RoleRepository` contract.

use authd_application::ports::{CreateRoleError, RoleChanges, RoleDeletion};
use authd_domain::{Role, RoleId};
use chrono::TimeDelta;
use futures_util::future::join_all;

use crate::Store;
use crate::fixtures::{at, description, new_role, role_name, slug, t0};

/// `ensure` creates the role once (name as given, no description, at `now`) and returns the
/// stored one ever after, whatever name it is given then.
pub async fn roles_ensure_is_idempotent(store: Store<'_>) {
    let wanted = slug("application-access");

    let first = store
        .roles
        .ensure(&wanted, &role_name("Application access"), t0())
        .await
        .unwrap();
    let again = store
        .roles
        .ensure(&wanted, &role_name("Another name"), at(60))
        .await
        .unwrap();

    assert_eq!(again, first);
    assert_eq!(first.slug, wanted);
    assert_eq!(first.name.as_str(), "Application access");
    assert_eq!(first.description, None);
    assert_eq!((first.created_at, first.updated_at), (t0(), t0()));
    assert_eq!(first.id.as_uuid().get_version_num(), 7);
    assert_eq!(
        store.roles.find_by_slug(&wanted).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.roles.find(first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.roles.list().await.unwrap(), vec![first.clone()]);
    assert_eq!(store.roles.find_by_slug(&slug("nope")).await.unwrap(), None);
    // An existing role created otherwise is returned as it is.
    let made = store.role("editors", at(-5)).await;
    assert_eq!(
        store
            .roles
            .ensure(&made.slug, &role_name("Editors"), t0())
            .await
            .unwrap(),
        made
    );
}

/// Eight `ensure` calls at once create one role, and all return it.
pub async fn roles_concurrent_ensures_create_one_role(store: Store<'_>) {
    let wanted = slug("racers");
    let names: Vec<_> = (0..8).map(|i| role_name(&format!("Racer {i}"))).collect();

    let ensured = join_all(
        names
            .iter()
            .map(|name| store.roles.ensure(&wanted, name, t0())),
    )
    .await;

    let stored = store.roles.find_by_slug(&wanted).await.unwrap().unwrap();
    for role in ensured {
        assert_eq!(role.unwrap(), stored);
    }
    assert_eq!(store.roles.list().await.unwrap(), vec![stored]);
}

/// Roles are listed by creation time, then id.
pub async fn roles_are_listed_by_creation_time_then_id(store: Store<'_>) {
    let members = store.members().await;
    let late = store.role("late", t0() + TimeDelta::hours(2)).await;
    let early = store.role("early", t0() - TimeDelta::hours(1)).await;
    let tie_a = store.role("tie-a", t0() + TimeDelta::hours(1)).await;
    let tie_b = store.role("tie-b", t0() + TimeDelta::hours(1)).await;
    let (tie_low, tie_high) = if tie_a.id < tie_b.id {
        (tie_a, tie_b)
    } else {
        (tie_b, tie_a)
    };

    let listed = store.roles.list().await.unwrap();

    assert_eq!(listed, vec![early, members, tie_low, tie_high, late]);
}

/// A created role is found by id and by slug, whole; a taken slug is `SlugTaken` and stores
/// nothing.
pub async fn roles_create_find_and_slug_taken(store: Store<'_>) {
    let role = new_role("editors", t0());

    store.roles.create(&role).await.unwrap();

    assert_eq!(store.roles.find(role.id).await.unwrap(), Some(role.clone()));
    assert_eq!(
        store.roles.find_by_slug(&role.slug).await.unwrap(),
        Some(role.clone())
    );
    assert_eq!(store.roles.find(RoleId::generate()).await.unwrap(), None);

    let twin = Role {
        name: role_name("Other editors"),
        description: None,
        ..new_role("editors", at(60))
    };
    let result = store.roles.create(&twin).await;
    assert!(
        matches!(result, Err(CreateRoleError::SlugTaken)),
        "{result:?}"
    );
    assert_eq!(store.roles.find(twin.id).await.unwrap(), None);
    assert_eq!(store.roles.find(role.id).await.unwrap(), Some(role.clone()));
    assert_eq!(store.roles.list().await.unwrap(), vec![role.clone()]);

    // A role without a description.
    let bare = Role {
        description: None,
        ..new_role("viewers", at(1))
    };
    store.roles.create(&bare).await.unwrap();
    assert_eq!(store.roles.find(bare.id).await.unwrap(), Some(bare.clone()));
    assert_eq!(store.roles.list().await.unwrap(), vec![role, bare]);
}

/// An update sets the given fields and `updated_at`, returns the role as stored; an unknown
/// role is `None`.
pub async fn roles_update_sets_only_the_given_fields_and_the_time(store: Store<'_>) {
    let members = store.members().await;
    let role = store.role("editors", t0()).await;

    let renamed = store
        .roles
        .update(
            role.id,
            &RoleChanges {
                name: Some(role_name("Writers")),
                description: None,
            },
            at(1),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        renamed,
        Role {
            name: role_name("Writers"),
            updated_at: at(1),
            ..role.clone()
        }
    );

    let described = store
        .roles
        .update(
            role.id,
            &RoleChanges {
                name: None,
                description: Some(Some(description("Write articles"))),
            },
            at(2),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        described,
        Role {
            description: Some(description("Write articles")),
            updated_at: at(2),
            ..renamed
        }
    );

    let cleared = store
        .roles
        .update(
            role.id,
            &RoleChanges {
                name: None,
                description: Some(None),
            },
            at(3),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        cleared,
        Role {
            description: None,
            updated_at: at(3),
            ..described
        }
    );

    // No field: only the time moves, and the row comes back.
    let touched = store
        .roles
        .update(role.id, &RoleChanges::default(), at(4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        touched,
        Role {
            updated_at: at(4),
            ..cleared
        }
    );
    assert_eq!(touched.created_at, t0());
    assert_eq!(touched.slug, role.slug);
    assert_eq!(
        store.roles.find(role.id).await.unwrap(),
        Some(touched.clone())
    );
    assert_eq!(
        store.roles.find_by_slug(&role.slug).await.unwrap(),
        Some(touched)
    );

    let unknown = store
        .roles
        .update(
            RoleId::generate(),
            &RoleChanges {
                name: Some(role_name("Ghosts")),
                description: Some(None),
            },
            at(5),
        )
        .await
        .unwrap();
    assert_eq!(unknown, None);
    // Other roles are untouched.
    assert_eq!(store.roles.find(members.id).await.unwrap(), Some(members));
}

/// A role is deleted once; never while a user holds it; an unknown role is `NotFound`.
pub async fn roles_delete_once_and_never_while_held(store: Store<'_>) {
    let user = store.user("ada@example.com").await;
    let members = store.members().await;
    let unused = store.role("editors", t0()).await;

    assert_eq!(
        store.roles.delete(unused.id).await.unwrap(),
        RoleDeletion::Deleted
    );
    assert_eq!(store.roles.find(unused.id).await.unwrap(), None);
    assert_eq!(store.roles.find_by_slug(&unused.slug).await.unwrap(), None);
    assert_eq!(
        store.roles.delete(unused.id).await.unwrap(),
        RoleDeletion::NotFound
    );
    assert_eq!(
        store.roles.delete(RoleId::generate()).await.unwrap(),
        RoleDeletion::NotFound
    );

    assert_eq!(
        store.roles.delete(members.id).await.unwrap(),
        RoleDeletion::InUse
    );
    assert_eq!(
        store.roles.find(members.id).await.unwrap(),
        Some(members.clone())
    );
    let holder = store.users.find_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(holder.role, members.to_ref());
    assert_eq!(store.roles.list().await.unwrap(), vec![members.clone()]);

    // Once nobody holds it, it goes; its slug is free again.
    store.users.delete(user.id, t0()).await.unwrap();
    assert_eq!(
        store.roles.delete(members.id).await.unwrap(),
        RoleDeletion::Deleted
    );
    assert_eq!(store.roles.list().await.unwrap(), vec![]);
    let again = store.role("editors", at(1)).await;
    assert_eq!(
        store.roles.find_by_slug(&again.slug).await.unwrap(),
        Some(again)
    );
}
