//! The adapters against a real Postgres (`TEST_DATABASE_URL`, default the local server), each
//! test on a fresh database of its own.

// clippy's allow-unwrap-in-tests covers `#[test]` functions, not the fixtures they share.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use application::ports::{
    CreateUserError, RoleRepository, Rotation, SessionRepository, UserRepository,
};
use application::{Dependency, PortError};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use domain::{Email, PasswordHash, Role, RoleSlug, Session, SessionId, TokenId, User, UserId};
use infra_postgres::testing::{TestDatabase, empty_database, fresh_database};
use infra_postgres::{
    PgPool, PgRoleRepository, PgSessionRepository, PgUserRepository, PoolSettings, connect, ping,
    run_migrations,
};

/// A fixed clock: nothing in the adapters reads the database's own time.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
}

struct Fixture {
    _db: TestDatabase,
    pool: PgPool,
    users: PgUserRepository,
    roles: PgRoleRepository,
    sessions: PgSessionRepository,
    role: Role,
}

async fn fixture() -> Fixture {
    let db = fresh_database().await.unwrap();
    let pool = db.pool().await.unwrap();
    let roles = PgRoleRepository::new(pool.clone());
    let role = roles
        .ensure(&RoleSlug::parse("members").unwrap(), "Members", t0())
        .await
        .unwrap();
    Fixture {
        users: PgUserRepository::new(pool.clone()),
        sessions: PgSessionRepository::new(pool.clone()),
        roles,
        role,
        pool,
        _db: db,
    }
}

impl Fixture {
    async fn user(&self, email: &str) -> User {
        let user = User::register(
            Email::parse(email).unwrap(),
            Some("Ada".into()),
            self.role.to_ref(),
            t0(),
        );
        self.users
            .create(&user, &PasswordHash::new("$argon2id$old"))
            .await
            .unwrap();
        user
    }

    /// A stored session of `user` created at `t0 + created` and expiring at `t0 + expires`.
    async fn session(
        &self,
        user: &User,
        created: TimeDelta,
        expires: TimeDelta,
    ) -> (Session, TokenId) {
        let session = Session {
            id: SessionId::generate(),
            user_id: user.id,
            created_at: t0() + created,
            last_used_at: t0() + created,
            expires_at: t0() + expires,
            user_agent: Some("test-agent/1.0".into()),
            ip: Some("192.0.2.7".into()),
            revoked_at: None,
        };
        let jti = TokenId::generate();
        self.sessions.create(&session, jti).await.unwrap();
        (session, jti)
    }

    async fn live_ids(&self, user: &User) -> Vec<SessionId> {
        let live = self.sessions.list_live(user.id, t0()).await.unwrap();
        live.iter().map(|session| session.id).collect()
    }
}

fn rotation(session: SessionId, presented: TokenId, now: DateTime<Utc>) -> Rotation {
    Rotation {
        session_id: session,
        presented,
        successor: TokenId::generate(),
        successor_expires_at: now + TimeDelta::days(7),
        sealed_successor: format!("sealed-{}", TokenId::generate()),
        now,
    }
}

fn sorted(mut ids: Vec<SessionId>) -> Vec<SessionId> {
    ids.sort();
    ids
}

#[tokio::test]
async fn a_created_user_is_found_by_id_and_by_email_in_any_case_with_its_role() {
    let f = fixture().await;
    let user = f.user("Ada.Lovelace@Example.com").await;

    let found = f.users.find_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(found, user);
    assert_eq!(found.email.as_str(), "Ada.Lovelace@Example.com");
    assert_eq!(found.role.slug.as_str(), "members");
    assert_eq!(found.role.name, "Members");

    let lookup = Email::parse("  ada.lovelace@EXAMPLE.COM ").unwrap();
    let (by_email, hash) = f.users.find_credentials(&lookup).await.unwrap().unwrap();
    assert_eq!(by_email, user);
    assert_eq!(hash, PasswordHash::new("$argon2id$old"));
    assert_eq!(
        f.users.password_hash(user.id).await.unwrap(),
        Some(PasswordHash::new("$argon2id$old"))
    );

    let nobody = Email::parse("nobody@example.com").unwrap();
    assert!(f.users.find_credentials(&nobody).await.unwrap().is_none());
    assert!(
        f.users
            .find_by_id(UserId::generate())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        f.users
            .password_hash(UserId::generate())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn an_email_taken_in_another_case_is_refused_and_nothing_is_stored() {
    let f = fixture().await;
    let first = f.user("Zoë@Example.org").await;
    let twin = User::register(
        Email::parse("ZOË@example.ORG").unwrap(),
        None,
        f.role.to_ref(),
        t0(),
    );

    let result = f
        .users
        .create(&twin, &PasswordHash::new("$argon2id$twin"))
        .await;

    assert!(
        matches!(result, Err(CreateUserError::EmailTaken)),
        "{result:?}"
    );
    assert!(f.users.find_by_id(twin.id).await.unwrap().is_none());
    let (owner, hash) = f
        .users
        .find_credentials(&Email::parse("zoë@example.org").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(owner.id, first.id);
    assert_eq!(hash, PasswordHash::new("$argon2id$old"));
}

#[tokio::test]
async fn a_rehash_replaces_the_hash_alone() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    let (session, _) = f
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;

    let later = t0() + TimeDelta::minutes(5);
    f.users
        .update_password_hash(user.id, &PasswordHash::new("$argon2id$new"), later)
        .await
        .unwrap();

    assert_eq!(
        f.users.password_hash(user.id).await.unwrap(),
        Some(PasswordHash::new("$argon2id$new"))
    );
    assert_eq!(
        f.users
            .find_by_id(user.id)
            .await
            .unwrap()
            .unwrap()
            .updated_at,
        later
    );
    assert_eq!(f.live_ids(&user).await, vec![session.id]);
}

#[tokio::test]
async fn a_password_change_revokes_exactly_the_users_live_sessions() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    let other = f.user("grace@example.com").await;
    let (live_a, _) = f
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let (live_b, _) = f
        .session(&user, TimeDelta::seconds(1), TimeDelta::days(1))
        .await;
    let (expired, _) = f
        .session(&user, -TimeDelta::days(2), -TimeDelta::days(1))
        .await;
    let (revoked, _) = f
        .session(&user, -TimeDelta::hours(1), TimeDelta::days(1))
        .await;
    let earlier = t0() - TimeDelta::minutes(30);
    f.sessions
        .revoke(revoked.id, earlier)
        .await
        .unwrap()
        .unwrap();
    let (others, _) = f
        .session(&other, TimeDelta::zero(), TimeDelta::days(1))
        .await;

    let now = t0() + TimeDelta::seconds(5);
    let revoked_now = f
        .users
        .replace_password(user.id, &PasswordHash::new("$argon2id$new"), now)
        .await
        .unwrap();

    let ids = sorted(revoked_now.iter().map(|session| session.id).collect());
    assert_eq!(ids, sorted(vec![live_a.id, live_b.id]));
    assert!(
        revoked_now
            .iter()
            .all(|session| session.revoked_at == Some(now))
    );
    assert_eq!(
        f.users.password_hash(user.id).await.unwrap(),
        Some(PasswordHash::new("$argon2id$new"))
    );
    assert_eq!(
        f.users
            .find_by_id(user.id)
            .await
            .unwrap()
            .unwrap()
            .updated_at,
        now
    );
    assert!(f.live_ids(&user).await.is_empty());
    assert_eq!(f.live_ids(&other).await, vec![others.id]);
    // Sessions that were already over keep their state.
    let expired = f.sessions.find(expired.id).await.unwrap().unwrap();
    assert_eq!(expired.session.revoked_at, None);
    let revoked = f.sessions.find(revoked.id).await.unwrap().unwrap();
    assert_eq!(revoked.session.revoked_at, Some(earlier));
}

#[tokio::test]
async fn a_password_change_that_fails_midway_changes_nothing() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    let (session, _) = f
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    // Make the second step (revoking the sessions) fail, after the hash was updated.
    let mut conn = AsyncPgConnection::establish(&f._db.url).await.unwrap();
    conn.batch_execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused'; END $$; \
         CREATE TRIGGER refuse BEFORE UPDATE ON sessions FOR EACH ROW EXECUTE FUNCTION refuse();",
    )
    .await
    .unwrap();

    let result = f
        .users
        .replace_password(user.id, &PasswordHash::new("$argon2id$new"), t0())
        .await;

    assert!(
        matches!(result, Err(PortError::Unexpected(_))),
        "{result:?}"
    );
    assert_eq!(
        f.users.password_hash(user.id).await.unwrap(),
        Some(PasswordHash::new("$argon2id$old"))
    );
    assert_eq!(f.live_ids(&user).await, vec![session.id]);
}

#[tokio::test]
async fn a_password_change_of_an_unknown_user_revokes_nothing() {
    let f = fixture().await;
    let revoked = f
        .users
        .replace_password(
            UserId::generate(),
            &PasswordHash::new("$argon2id$new"),
            t0(),
        )
        .await
        .unwrap();
    assert!(revoked.is_empty());
}

#[tokio::test]
async fn ensuring_a_role_is_idempotent() {
    let f = fixture().await;
    let slug = RoleSlug::parse("application-access").unwrap();

    let first = f
        .roles
        .ensure(&slug, "Application access", t0())
        .await
        .unwrap();
    let again = f
        .roles
        .ensure(&slug, "Another name", t0() + TimeDelta::hours(1))
        .await
        .unwrap();

    assert_eq!(again, first);
    assert_eq!(first.slug, slug);
    assert_eq!(first.name, "Application access");
    assert_eq!(first.description, None);
    assert_eq!((first.created_at, first.updated_at), (t0(), t0()));
    assert_eq!(first.id.as_uuid().get_version_num(), 7);
    assert_eq!(f.roles.find_by_slug(&slug).await.unwrap(), Some(first));
    let unknown = RoleSlug::parse("nope").unwrap();
    assert_eq!(f.roles.find_by_slug(&unknown).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_ensures_create_one_role() {
    let f = fixture().await;
    let slug = RoleSlug::parse("racers").unwrap();

    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let roles = f.roles.clone();
            let slug = slug.clone();
            tokio::spawn(async move { roles.ensure(&slug, &format!("Racer {i}"), t0()).await })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().unwrap().id);
    }

    let stored = f.roles.find_by_slug(&slug).await.unwrap().unwrap();
    assert!(ids.iter().all(|id| *id == stored.id), "{ids:?}");
}

#[tokio::test]
async fn a_session_is_found_with_its_rotation_state_live_or_not() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    let (session, jti) = f
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;

    let record = f.sessions.find(session.id).await.unwrap().unwrap();
    assert_eq!(record.session, session);
    assert_eq!(record.rotation.current, jti);
    assert_eq!(record.rotation.previous, None);
    assert_eq!(record.rotation.rotated_at, None);
    assert_eq!(record.sealed_successor, None);

    f.sessions.revoke(session.id, t0()).await.unwrap().unwrap();
    let record = f.sessions.find(session.id).await.unwrap().unwrap();
    assert_eq!(record.session.revoked_at, Some(t0()));
    assert!(
        f.sessions
            .find(SessionId::generate())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn live_sessions_are_listed_newest_first() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    let other = f.user("grace@example.com").await;
    let (oldest, _) = f
        .session(&user, -TimeDelta::hours(2), TimeDelta::days(1))
        .await;
    let (newest, _) = f
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    // Two sessions created at the same instant: the larger id first.
    let (tie_a, _) = f
        .session(&user, -TimeDelta::hours(1), TimeDelta::days(1))
        .await;
    let (tie_b, _) = f
        .session(&user, -TimeDelta::hours(1), TimeDelta::days(1))
        .await;
    let (tie_high, tie_low) = if tie_a.id > tie_b.id {
        (tie_a, tie_b)
    } else {
        (tie_b, tie_a)
    };
    f.session(&user, -TimeDelta::days(2), TimeDelta::zero())
        .await; // expires at t0
    let (revoked, _) = f
        .session(&user, -TimeDelta::minutes(1), TimeDelta::days(1))
        .await;
    f.sessions.revoke(revoked.id, t0()).await.unwrap().unwrap();
    f.session(&other, TimeDelta::zero(), TimeDelta::days(1))
        .await;

    let live = f.sessions.list_live(user.id, t0()).await.unwrap();

    let ids: Vec<_> = live.iter().map(|session| session.id).collect();
    assert_eq!(ids, vec![newest.id, tie_high.id, tie_low.id, oldest.id]);
    assert_eq!(live[0], newest);
}

#[tokio::test]
async fn revoking_returns_the_session_only_while_it_is_live() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    let (session, _) = f
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let (expired, _) = f
        .session(&user, -TimeDelta::days(2), -TimeDelta::days(1))
        .await;

    let now = t0() + TimeDelta::minutes(1);
    let revoked = f.sessions.revoke(session.id, now).await.unwrap().unwrap();
    assert_eq!(revoked.id, session.id);
    assert_eq!(revoked.revoked_at, Some(now));

    let later = now + TimeDelta::minutes(1);
    assert_eq!(f.sessions.revoke(session.id, later).await.unwrap(), None);
    let record = f.sessions.find(session.id).await.unwrap().unwrap();
    assert_eq!(
        record.session.revoked_at,
        Some(now),
        "a second revoke changes nothing"
    );
    assert_eq!(f.sessions.revoke(expired.id, now).await.unwrap(), None);
    assert_eq!(
        f.sessions.revoke(SessionId::generate(), now).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn revoking_all_returns_the_live_sessions_it_revoked() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    let other = f.user("grace@example.com").await;
    let (a, _) = f
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let (b, _) = f
        .session(&user, TimeDelta::seconds(1), TimeDelta::days(1))
        .await;
    let (expired, _) = f
        .session(&user, -TimeDelta::days(2), -TimeDelta::days(1))
        .await;
    let (others, _) = f
        .session(&other, TimeDelta::zero(), TimeDelta::days(1))
        .await;

    let revoked = f.sessions.revoke_all(user.id, t0()).await.unwrap();

    let ids = sorted(revoked.iter().map(|session| session.id).collect());
    assert_eq!(ids, sorted(vec![a.id, b.id]));
    assert!(f.live_ids(&user).await.is_empty());
    assert_eq!(f.live_ids(&other).await, vec![others.id]);
    let expired = f.sessions.find(expired.id).await.unwrap().unwrap();
    assert_eq!(expired.session.revoked_at, None);
    assert!(
        f.sessions
            .revoke_all(user.id, t0())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_refresh_token_is_exchanged_once() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    let (session, first) = f
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let now = t0() + TimeDelta::minutes(10);
    let exchange = rotation(session.id, first, now);

    assert!(f.sessions.rotate(&exchange).await.unwrap());

    let record = f.sessions.find(session.id).await.unwrap().unwrap();
    assert_eq!(record.rotation.current, exchange.successor);
    assert_eq!(record.rotation.previous, Some(first));
    assert_eq!(record.rotation.rotated_at, Some(now));
    assert_eq!(record.session.last_used_at, now);
    assert_eq!(record.session.expires_at, exchange.successor_expires_at);
    assert_eq!(record.session.created_at, session.created_at);
    assert_eq!(
        record.sealed_successor.as_deref(),
        Some(exchange.sealed_successor.as_str())
    );

    // The same token again (another successor): refused, and nothing changes.
    let replay = rotation(session.id, first, now + TimeDelta::seconds(1));
    assert!(!f.sessions.rotate(&replay).await.unwrap());
    assert_eq!(f.sessions.find(session.id).await.unwrap().unwrap(), record);

    // The successor is the one that can be exchanged now.
    let next = rotation(session.id, exchange.successor, now + TimeDelta::minutes(1));
    assert!(f.sessions.rotate(&next).await.unwrap());
    let record = f.sessions.find(session.id).await.unwrap().unwrap();
    assert_eq!(record.rotation.previous, Some(exchange.successor));
    assert_eq!(record.rotation.current, next.successor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_exchanges_of_one_token_exactly_one_wins() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    for _ in 0..10 {
        let (session, first) = f
            .session(&user, TimeDelta::zero(), TimeDelta::days(1))
            .await;
        let contenders: Vec<_> = (0..4).map(|_| rotation(session.id, first, t0())).collect();

        let tasks: Vec<_> = contenders
            .iter()
            .cloned()
            .map(|exchange| {
                let sessions = f.sessions.clone();
                tokio::spawn(async move { sessions.rotate(&exchange).await })
            })
            .collect();
        let mut wins = Vec::new();
        for task in tasks {
            wins.push(task.await.unwrap().unwrap());
        }

        assert_eq!(wins.iter().filter(|won| **won).count(), 1, "{wins:?}");
        let winner = &contenders[wins.iter().position(|won| *won).unwrap()];
        let record = f.sessions.find(session.id).await.unwrap().unwrap();
        assert_eq!(record.rotation.current, winner.successor);
        assert_eq!(
            record.sealed_successor.as_ref(),
            Some(&winner.sealed_successor)
        );
    }
}

#[tokio::test]
async fn a_revoked_or_expired_session_cannot_rotate() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    let (revoked, revoked_jti) = f
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    f.sessions.revoke(revoked.id, t0()).await.unwrap().unwrap();
    let (expired, expired_jti) = f
        .session(&user, -TimeDelta::days(2), TimeDelta::zero())
        .await;

    assert!(
        !f.sessions
            .rotate(&rotation(revoked.id, revoked_jti, t0()))
            .await
            .unwrap()
    );
    assert!(
        !f.sessions
            .rotate(&rotation(expired.id, expired_jti, t0()))
            .await
            .unwrap()
    );
    let unknown = rotation(SessionId::generate(), TokenId::generate(), t0());
    assert!(!f.sessions.rotate(&unknown).await.unwrap());
    let record = f.sessions.find(revoked.id).await.unwrap().unwrap();
    assert_eq!(record.rotation.current, revoked_jti);
    assert_eq!(record.rotation.previous, None);
}

#[tokio::test]
async fn migrations_apply_once_then_find_nothing_to_do() {
    let db = empty_database().await.unwrap();

    let applied = run_migrations(&db.url).await.unwrap();
    assert!(!applied.is_empty());
    assert!(run_migrations(&db.url).await.unwrap().is_empty());

    // The schema is usable.
    let pool = db.pool().await.unwrap();
    let roles = PgRoleRepository::new(pool);
    let slug = RoleSlug::parse("members").unwrap();
    roles.ensure(&slug, "Members", t0()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_migrating_together_apply_each_migration_once() {
    let db = empty_database().await.unwrap();

    let (a, b) = tokio::join!(
        tokio::spawn(run_migrations_owned(db.url.clone())),
        tokio::spawn(run_migrations_owned(db.url.clone())),
    );
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());

    assert!(a.is_empty() != b.is_empty(), "{a:?} / {b:?}");
    assert!(run_migrations(&db.url).await.unwrap().is_empty());
}

async fn run_migrations_owned(url: String) -> anyhow::Result<Vec<String>> {
    run_migrations(&url).await
}

/// actix-web runs handlers and its `main` on a current-thread runtime inside a `LocalSet`.
#[test]
fn migrations_and_test_databases_work_on_an_actix_like_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let db = empty_database().await.unwrap();
        assert!(!run_migrations(&db.url).await.unwrap().is_empty());
        let fresh = fresh_database().await.unwrap();
        ping(&fresh.pool().await.unwrap()).await.unwrap();
    });
}

#[tokio::test]
async fn a_dropped_test_database_is_gone() {
    let db = fresh_database().await.unwrap();
    let name = db.name().to_owned();
    let admin_url = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let pool = db.pool().await.unwrap();
    ping(&pool).await.unwrap();

    drop(db);

    let mut admin = AsyncPgConnection::establish(&admin_url).await.unwrap();
    let exists: bool = {
        use diesel::sql_types::Text;
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Exists {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            exists: bool,
        }
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<Text, _>(&name)
            .get_result::<Exists>(&mut admin)
            .await
            .unwrap()
            .exists
    };
    assert!(!exists, "{name} still exists");
}

#[tokio::test]
async fn a_closed_port_is_unavailable_quickly() {
    let started = Instant::now();
    let pool = connect(
        "postgres://postgres@127.0.0.1:1/postgres",
        PoolSettings::default(),
    )
    .await
    .unwrap();

    let pinged = ping(&pool).await;
    let found = PgUserRepository::new(pool.clone())
        .find_by_id(UserId::generate())
        .await;
    let listed = PgSessionRepository::new(pool.clone())
        .list_live(UserId::generate(), t0())
        .await;
    let user = User::register(
        Email::parse("ada@example.com").unwrap(),
        None,
        domain::RoleRef {
            id: domain::RoleId::generate(),
            slug: RoleSlug::parse("members").unwrap(),
            name: "Members".into(),
        },
        t0(),
    );
    let created = PgUserRepository::new(pool)
        .create(&user, &PasswordHash::new("h"))
        .await;

    assert!(
        matches!(pinged, Err(PortError::Unavailable(Dependency::Database))),
        "{pinged:?}"
    );
    assert!(
        matches!(found, Err(PortError::Unavailable(Dependency::Database))),
        "{found:?}"
    );
    assert!(
        matches!(listed, Err(PortError::Unavailable(Dependency::Database))),
        "{listed:?}"
    );
    assert!(
        matches!(
            created,
            Err(CreateUserError::Port(PortError::Unavailable(
                Dependency::Database
            )))
        ),
        "{created:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_connection_killed_by_the_server_is_unavailable_then_replaced() {
    let f = fixture().await;
    ping(&f.pool).await.unwrap();
    let mut admin = AsyncPgConnection::establish(&f._db.url).await.unwrap();
    admin
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();

    // The first use of the dead connection may fail, but only as an outage; then it is replaced.
    match f.users.find_by_id(UserId::generate()).await {
        Ok(None) | Err(PortError::Unavailable(Dependency::Database)) => {}
        other => panic!("unexpected outcome: {other:?}"),
    }
    assert_eq!(f.users.find_by_id(UserId::generate()).await.unwrap(), None);
}
