//! The adapters against a real Postgres (`TEST_DATABASE_URL`, default the local server), each
//! test on a fresh database of its own.

// clippy's allow-unwrap-in-tests covers `#[test]` functions, not the fixtures they share.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use authd_application::ports::Probe as _;
use authd_application::ports::{
    CreateUserError, Credentials, IssuedLink, LinkRequest, LinkTokenRepository, Outbox,
    RoleRepository, Rotation, SessionRepository, TokenDigest, UserChanges, UserQuery,
    UserRepository,
};
use authd_application::{AccessProfile, Dependency, PortError};
use authd_domain::{
    DisplayName, Email, EmailKind, EmailRateLimit, LinkPurpose, PasswordHash, Role, RoleName,
    RoleSlug, Session, SessionId, SessionLifetime, TokenId, User, UserId,
};
use authd_postgres::testing::{TestDatabase, empty_database, fresh_database};
use authd_postgres::{
    PgLinkTokenRepository, PgOutbox, PgPool, PgProbe, PgRoleRepository, PgSessionRepository,
    PgUserRepository, PoolSettings, connect, ping, run_migrations,
};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

/// A fixed clock: nothing in the adapters reads the database's own time.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
}

struct Fixture {
    _db: TestDatabase,
    pool: PgPool,
    users: PgUserRepository,
    sessions: PgSessionRepository,
    links: PgLinkTokenRepository,
    outbox: PgOutbox,
    role: Role,
}

async fn fixture() -> Fixture {
    fixture_with(PoolSettings::default()).await
}

/// [`fixture`] on a pool with these settings.
async fn fixture_with(settings: PoolSettings) -> Fixture {
    let db = fresh_database().await.unwrap();
    let pool = connect(&db.url, settings).unwrap();
    let roles = PgRoleRepository::new(pool.clone());
    let role = roles
        .ensure(
            &RoleSlug::parse("members").unwrap(),
            &RoleName::parse("Members").unwrap(),
            t0(),
        )
        .await
        .unwrap();
    Fixture {
        users: PgUserRepository::new(pool.clone()),
        sessions: PgSessionRepository::new(pool.clone()),
        links: PgLinkTokenRepository::new(pool.clone()),
        outbox: PgOutbox::new(pool.clone()),
        role,
        pool,
        _db: db,
    }
}

impl Fixture {
    async fn user(&self, email: &str) -> User {
        let user = User::register(
            Email::parse(email).unwrap(),
            DisplayName::parse("Ada").unwrap(),
            self.role.to_ref(),
            t0(),
        );
        self.users
            .create(&user, &PasswordHash::new("$argon2id$old"), None)
            .await
            .unwrap();
        user
    }

    /// The ids of one page of users matching `query`, and the total.
    async fn listed(&self, query: UserQuery) -> (Vec<UserId>, u64) {
        let page = self.users.list(&query).await.unwrap();
        (ids(&page.items), page.total)
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
        assert!(self.sessions.create(&session, jti, 0).await.unwrap());
        (session, jti)
    }

    async fn live_ids(&self, user: &User) -> Vec<SessionId> {
        let live = self.sessions.list_live(user.id, t0()).await.unwrap();
        live.iter().map(|session| session.id).collect()
    }

    /// A primary admin (not stored) with this email.
    fn admin(&self, email: &str) -> User {
        User::primary_admin(Email::parse(email).unwrap(), self.role.to_ref(), t0())
    }

    /// The number of rows `sql` (a `SELECT count(*) AS count …`) counts.
    async fn count(&self, sql: &str) -> i64 {
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            count: i64,
        }
        let mut conn = AsyncPgConnection::establish(&self._db.url).await.unwrap();
        diesel::sql_query(sql)
            .get_result::<Count>(&mut conn)
            .await
            .unwrap()
            .count
    }

    async fn primary_admins(&self) -> i64 {
        self.count("SELECT count(*) AS count FROM users WHERE is_primary_admin")
            .await
    }
}

fn rotation(session: &Session, presented: TokenId, now: DateTime<Utc>) -> Rotation {
    Rotation {
        session_id: session.id,
        user_id: session.user_id,
        presented,
        successor: TokenId::generate(),
        lifetime: SessionLifetime::new(TimeDelta::days(7), TimeDelta::days(30)),
        sealed_successor: format!("sealed-{}", TokenId::generate()),
        now,
    }
}

fn ids(users: &[User]) -> Vec<UserId> {
    users.iter().map(|user| user.id).collect()
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
        .replace_password(user.id, 0, &PasswordHash::new("$argon2id$new"), t0())
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
    assert_eq!(f.count("SELECT count(*) AS count FROM outbox").await, 0);
}

#[tokio::test]
async fn an_update_that_fails_midway_changes_nothing() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    let (session, _) = f
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    // Make the second step (revoking the sessions) fail, after the user was updated.
    let mut conn = AsyncPgConnection::establish(&f._db.url).await.unwrap();
    conn.batch_execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused'; END $$; \
         CREATE TRIGGER refuse BEFORE UPDATE ON sessions FOR EACH ROW EXECUTE FUNCTION refuse();",
    )
    .await
    .unwrap();
    let changes = UserChanges {
        is_active: Some(false),
        password_hash: Some(PasswordHash::new("$argon2id$new")),
        ..UserChanges::default()
    };

    let result = f.users.update(user.id, &changes, true, t0()).await;

    assert!(
        matches!(result, Err(CreateUserError::Port(PortError::Unexpected(_)))),
        "{result:?}"
    );
    assert_eq!(
        f.users.find_by_id(user.id).await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(
        f.users.password_hash(user.id).await.unwrap(),
        Some(PasswordHash::new("$argon2id$old"))
    );
    assert_eq!(f.live_ids(&user).await, vec![session.id]);
}

/// A stored name or description that does not make its value object (a hand-edited row) is
/// corrupt data, as an unparsable stored email or slug is: `Unexpected`, never a different value.
#[tokio::test]
async fn a_stored_name_or_description_that_does_not_parse_is_corrupt() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    let roles = PgRoleRepository::new(f.pool.clone());
    let mut conn = AsyncPgConnection::establish(&f._db.url).await.unwrap();

    // A blank name: no name is NULL, never a blank one.
    conn.batch_execute("UPDATE users SET name = '  '")
        .await
        .unwrap();
    let found = f.users.find_by_id(user.id).await;
    assert!(matches!(found, Err(PortError::Unexpected(_))), "{found:?}");
    conn.batch_execute("UPDATE users SET name = 'Ada'")
        .await
        .unwrap();

    // A role name too long: the role and every user holding it are corrupt.
    conn.batch_execute("UPDATE roles SET name = repeat('x', 101)")
        .await
        .unwrap();
    let found = roles.find(f.role.id).await;
    assert!(matches!(found, Err(PortError::Unexpected(_))), "{found:?}");
    let found = f.users.find_by_id(user.id).await;
    assert!(matches!(found, Err(PortError::Unexpected(_))), "{found:?}");
    conn.batch_execute("UPDATE roles SET name = 'Members'")
        .await
        .unwrap();

    // A blank description: no description is NULL.
    conn.batch_execute("UPDATE roles SET description = ''")
        .await
        .unwrap();
    let listed = roles.list().await;
    assert!(
        matches!(listed, Err(PortError::Unexpected(_))),
        "{listed:?}"
    );
    conn.batch_execute("UPDATE roles SET description = NULL")
        .await
        .unwrap();

    assert_eq!(roles.find(f.role.id).await.unwrap(), Some(f.role.clone()));
    assert_eq!(f.users.find_by_id(user.id).await.unwrap(), Some(user));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_committed_while_its_user_is_deleted_is_reported() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    // A login's session insert, not yet committed: its foreign-key check holds a share lock on
    // the user's row.
    let mut login = AsyncPgConnection::establish(&f._db.url).await.unwrap();
    let session = SessionId::generate();
    login
        .batch_execute(&format!(
            "BEGIN; INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, \
             current_refresh_jti) VALUES ('{}', '{}', '{}', '{}', '{}', '{}')",
            session.as_uuid(),
            user.id.as_uuid(),
            t0().to_rfc3339(),
            t0().to_rfc3339(),
            (t0() + TimeDelta::days(1)).to_rfc3339(),
            TokenId::generate().as_uuid(),
        ))
        .await
        .unwrap();

    let users = f.users.clone();
    let id = user.id;
    let delete = tokio::spawn(async move { users.delete(id, t0()).await });
    // The delete waits for the login's lock...
    let waiting = "SELECT count(*) AS count FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let started = Instant::now();
    while f.count(waiting).await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the delete never waited"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    login.batch_execute("COMMIT").await.unwrap();

    // ...then sees the session the cascade removes, and reports it.
    let live = delete.await.unwrap().unwrap().unwrap();
    assert_eq!(
        live.iter().map(|session| session.id).collect::<Vec<_>>(),
        vec![session]
    );
    assert!(f.sessions.find(session).await.unwrap().is_none());
    assert!(f.users.find_by_id(user.id).await.unwrap().is_none());
}

#[tokio::test]
async fn the_database_itself_refuses_a_second_primary_admin() {
    let f = fixture().await;
    let admin = f.admin("root@example.com");
    f.users
        .create_primary_admin(&admin, &PasswordHash::new("$argon2id$admin"))
        .await
        .unwrap();
    let user = f.user("ada@example.com").await;
    let mut conn = AsyncPgConnection::establish(&f._db.url).await.unwrap();

    // Not through the adapter: by hand, by an UPDATE, or by `create` with the mark set.
    let promoted = conn
        .batch_execute(&format!(
            "UPDATE users SET is_primary_admin = true WHERE id = '{}'",
            user.id.as_uuid()
        ))
        .await;
    let refused = promoted.unwrap_err().to_string();
    assert!(refused.contains("users_one_primary_admin"), "{refused}");
    let mut second = f.admin("second-root@example.com");
    second.is_primary_admin = true;
    let created = f
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

    assert_eq!(f.primary_admins().await, 1);
    assert!(
        f.users
            .find_by_id(admin.id)
            .await
            .unwrap()
            .unwrap()
            .is_primary_admin
    );
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
    let name = RoleName::parse("Members").unwrap();
    roles.ensure(&slug, &name, t0()).await.unwrap();
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
        authd_domain::RoleRef {
            id: authd_domain::RoleId::generate(),
            slug: RoleSlug::parse("members").unwrap(),
            name: RoleName::parse("Members").unwrap(),
        },
        t0(),
    );
    let created = PgUserRepository::new(pool)
        .create(&user, &PasswordHash::new("h"), None)
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

/// A pool of one connection (so the test sees what becomes of it) with a short statement
/// timeout.
fn one_connection_timing_out_after(timeout: Duration) -> PoolSettings {
    PoolSettings {
        max_size: 1,
        statement_timeout: timeout,
        ..PoolSettings::default()
    }
}

#[tokio::test]
async fn a_statement_blocked_by_a_row_lock_is_unavailable_and_the_connection_recovers() {
    let timeout = Duration::from_millis(200);
    let f = fixture_with(one_connection_timing_out_after(timeout)).await;
    let user = f.user("ada@example.com").await;
    let (session, _) = f
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    ping(&f.pool).await.unwrap();
    let lock = f
        ._db
        .hold_transaction(&format!(
            "SELECT id FROM sessions WHERE id = '{}' FOR UPDATE",
            session.id.as_uuid()
        ))
        .await
        .unwrap();

    let started = Instant::now();
    let revoked = f.sessions.revoke(session.id, t0()).await;
    let waited = started.elapsed();
    assert!(
        matches!(revoked, Err(PortError::Unavailable(Dependency::Database))),
        "{revoked:?}"
    );
    assert!(waited < timeout * 10, "waited {waited:?}");
    // The same (only) connection answers the next query, and nothing was revoked.
    let found = f.sessions.find(session.id).await.unwrap().unwrap();
    assert!(found.session.is_live(t0()));

    // A transaction that times out midway is rolled back and leaves the connection usable:
    // revoking everything bumps the user's row, then waits on the locked session.
    let started = Instant::now();
    let revoked_all = f.sessions.revoke_all(user.id, t0()).await;
    assert!(
        matches!(
            revoked_all,
            Err(PortError::Unavailable(Dependency::Database))
        ),
        "{revoked_all:?}"
    );
    assert!(
        started.elapsed() < timeout * 10,
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(f.live_ids(&user).await, vec![session.id]);

    lock.release().await.unwrap();
    assert_eq!(
        f.sessions
            .revoke(session.id, t0())
            .await
            .unwrap()
            .map(|s| s.id),
        Some(session.id)
    );
}

#[tokio::test]
async fn readiness_reports_the_database_unavailable_for_a_while_after_a_timeout() {
    let timeout = Duration::from_millis(200);
    let f = fixture_with(one_connection_timing_out_after(timeout)).await;
    let user = f.user("ada@example.com").await;
    let (session, _) = f
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let probe = PgProbe::new(f.pool.clone());
    probe.ping().await.unwrap();
    let lock = f
        ._db
        .hold_transaction("SELECT id FROM sessions FOR UPDATE")
        .await
        .unwrap();
    assert!(matches!(
        f.sessions.revoke(session.id, t0()).await,
        Err(PortError::Unavailable(Dependency::Database))
    ));
    lock.release().await.unwrap();

    // Right after: unavailable, although `SELECT 1` would pass.
    let probed = probe.ping().await;
    assert!(
        matches!(probed, Err(PortError::Unavailable(Dependency::Database))),
        "{probed:?}"
    );
    // Then ready again (after max(2 x timeout, 1 s)); another pool never was affected.
    let other = f._db.pool().await.unwrap();
    ping(&other).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while probe.ping().await.is_err() {
        assert!(Instant::now() < deadline, "still unavailable");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_purge_deletes_expired_and_long_revoked_sessions_and_nothing_else() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    let grace = Duration::from_secs(960);
    let (live, _) = f
        .session(&user, -TimeDelta::hours(1), TimeDelta::days(1))
        .await;
    let (expired, _) = f
        .session(&user, -TimeDelta::days(2), -TimeDelta::seconds(1))
        .await;
    let (expiring_now, _) = f
        .session(&user, -TimeDelta::days(1), TimeDelta::zero())
        .await;
    let (long_revoked, _) = f
        .session(&user, -TimeDelta::hours(1), TimeDelta::days(1))
        .await;
    let (recently_revoked, _) = f
        .session(&user, -TimeDelta::hours(1), TimeDelta::days(1))
        .await;
    let revoke = async |session: &Session, ago: i64| {
        let at = t0() - TimeDelta::seconds(ago);
        assert!(f.sessions.revoke(session.id, at).await.unwrap().is_some());
    };
    revoke(&long_revoked, 961).await;
    revoke(&recently_revoked, 959).await;

    assert_eq!(f.sessions.purge_ended(t0(), grace, 500).await.unwrap(), 3);

    for (session, kept) in [
        (&live, true),
        (&recently_revoked, true),
        (&expired, false),
        (&expiring_now, false),
        (&long_revoked, false),
    ] {
        let found = f.sessions.find(session.id).await.unwrap();
        assert_eq!(found.is_some(), kept, "{:?}", session.id);
    }
    assert_eq!(f.sessions.purge_ended(t0(), grace, 500).await.unwrap(), 0);
}

#[tokio::test]
async fn a_purge_deletes_at_most_a_batch() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    for _ in 0..5 {
        f.session(&user, -TimeDelta::days(2), -TimeDelta::days(1))
            .await;
    }
    let (live, _) = f
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let grace = Duration::from_secs(960);
    let mut batches = Vec::new();
    for _ in 0..4 {
        batches.push(f.sessions.purge_ended(t0(), grace, 2).await.unwrap());
    }
    assert_eq!(batches, [2, 2, 1, 0]);
    assert_eq!(f.live_ids(&user).await, vec![live.id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_purges_delete_each_ended_session_once() {
    const ENDED: u64 = 400;
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    for _ in 0..ENDED {
        f.session(&user, -TimeDelta::days(2), -TimeDelta::days(1))
            .await;
    }
    let (live, _) = f
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let grace = Duration::from_secs(960);

    // Each purger runs batches until one comes back short, as the periodic task does.
    let purgers = (0..4).map(|_| {
        let sessions = f.sessions.clone();
        tokio::spawn(async move {
            let mut deleted = 0;
            loop {
                let batch = sessions.purge_ended(t0(), grace, 25).await.unwrap();
                deleted += batch;
                if batch < 25 {
                    return deleted;
                }
            }
        })
    });
    let mut deleted = 0;
    for purger in purgers.collect::<Vec<_>>() {
        deleted += purger.await.unwrap();
    }
    // Rows skipped while another purger held them are that purger's to delete, so nothing
    // is left (a last pass would find any leftover) and nothing is counted twice.
    let leftover = f.sessions.purge_ended(t0(), grace, 500).await.unwrap();
    assert_eq!((deleted, leftover), (ENDED, 0));
    assert_eq!(f.count("SELECT count(*) AS count FROM sessions").await, 1);
    assert_eq!(f.live_ids(&user).await, vec![live.id]);
}

/// A live session of `user` whose first refresh token was exchanged at `t0 + rotated`, so it
/// holds a sealed successor pair.
async fn rotated_session(f: &Fixture, user: &User, rotated: TimeDelta) -> SessionId {
    let (session, jti) = f
        .session(user, -TimeDelta::hours(1), TimeDelta::days(1))
        .await;
    let at = t0() + rotated;
    let rotated = f.sessions.rotate(&rotation(&session, jti, at)).await;
    assert!(rotated.unwrap().is_some());
    session.id
}

/// The session's sealed successor pair, as stored.
async fn sealed(f: &Fixture, session: SessionId) -> Option<String> {
    f.sessions
        .find(session)
        .await
        .unwrap()
        .unwrap()
        .sealed_successor
}

/// An older authd rotates without writing the signed profile (a rolling deploy): the profile
/// the rotation before stored is for a token no longer current, and does not count.
#[tokio::test]
async fn a_profile_stored_for_an_earlier_rotation_does_not_count() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    let (session, first) = f
        .session(&user, -TimeDelta::hours(1), TimeDelta::days(1))
        .await;
    let rotated = f.sessions.rotate(&rotation(&session, first, t0())).await;
    assert!(rotated.unwrap().is_some());
    let signed = f.sessions.find(session.id).await.unwrap().unwrap();
    assert_eq!(signed.signed_profile, Some(AccessProfile::from(&user)));

    // What an older authd's rotation statement writes.
    let older = TokenId::generate();
    let sql = format!(
        "UPDATE sessions SET previous_refresh_jti = current_refresh_jti, \
         current_refresh_jti = '{older}', sealed_successor = 'sealed-older' WHERE id = '{}'",
        session.id
    );
    assert_eq!(f._db.execute(&sql).await.unwrap(), 1);
    let record = f.sessions.find(session.id).await.unwrap().unwrap();
    assert_eq!(record.rotation.current, older);
    assert_eq!(record.sealed_successor.as_deref(), Some("sealed-older"));
    assert_eq!(record.signed_profile, None);

    // The next rotation of this authd stores its own.
    let next = rotation(&session, older, t0() + TimeDelta::seconds(1));
    assert!(f.sessions.rotate(&next).await.unwrap().is_some());
    let record = f.sessions.find(session.id).await.unwrap().unwrap();
    assert_eq!(record.signed_profile, signed.signed_profile);
}

#[tokio::test]
async fn sealed_pairs_are_cleared_past_the_grace_window_a_batch_at_a_time() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    let cutoff = t0() - TimeDelta::seconds(10);
    let mut past = Vec::new();
    for _ in 0..3 {
        past.push(rotated_session(&f, &user, -TimeDelta::seconds(11)).await);
    }
    // Rotated at the cutoff: `now <= rotated_at + grace` still replays it.
    let inside = rotated_session(&f, &user, -TimeDelta::seconds(10)).await;
    let (never_rotated, _) = f
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;

    let mut batches = Vec::new();
    for _ in 0..3 {
        batches.push(f.sessions.clear_sealed_successors(cutoff, 2).await.unwrap());
    }
    assert_eq!(batches, [2, 1, 0]);
    for id in past {
        assert_eq!(sealed(&f, id).await, None);
        // Only the pair goes: the session lives on.
        assert!(f.live_ids(&user).await.contains(&id));
    }
    assert!(sealed(&f, inside).await.is_some());
    assert_eq!(sealed(&f, never_rotated.id).await, None);
}

#[tokio::test]
async fn every_revocation_clears_the_sealed_pair() {
    let f = fixture().await;
    let ada = f.user("ada@example.com").await;
    let bob = f.user("bob@example.com").await;
    let eve = f.user("eve@example.com").await;
    let one = rotated_session(&f, &ada, TimeDelta::zero()).await;
    let other = rotated_session(&f, &ada, TimeDelta::zero()).await;
    let by_password = rotated_session(&f, &bob, TimeDelta::zero()).await;
    let by_deactivation = rotated_session(&f, &eve, TimeDelta::zero()).await;

    f.sessions.revoke(one, t0()).await.unwrap().unwrap();
    assert_eq!(sealed(&f, one).await, None);
    assert!(sealed(&f, other).await.is_some());
    f.sessions.revoke_all(ada.id, t0()).await.unwrap();
    assert_eq!(sealed(&f, other).await, None);

    f.users
        .replace_password(bob.id, 0, &PasswordHash::new("$argon2id$new"), t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sealed(&f, by_password).await, None);
    let deactivate = UserChanges {
        is_active: Some(false),
        ..UserChanges::default()
    };
    f.users
        .update(eve.id, &deactivate, true, t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sealed(&f, by_deactivation).await, None);
    assert_eq!(
        f.count("SELECT count(*) AS count FROM sessions WHERE sealed_successor IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn clearing_skips_a_session_being_written_instead_of_waiting() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    let held = rotated_session(&f, &user, -TimeDelta::minutes(1)).await;
    let free = rotated_session(&f, &user, -TimeDelta::minutes(1)).await;
    let lock = f
        ._db
        .hold_transaction(&format!(
            "SELECT id FROM sessions WHERE id = '{}' FOR UPDATE",
            held.as_uuid()
        ))
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(
        f.sessions.clear_sealed_successors(t0(), 500).await.unwrap(),
        1
    );
    assert!(started.elapsed() < Duration::from_secs(1), "it waited");
    assert!(sealed(&f, held).await.is_some());
    assert_eq!(sealed(&f, free).await, None);
    lock.release().await.unwrap();
    assert_eq!(
        f.sessions.clear_sealed_successors(t0(), 500).await.unwrap(),
        1
    );
    assert_eq!(sealed(&f, held).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clearings_clear_each_pair_once() {
    const SEALED: u64 = 200;
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    for _ in 0..SEALED {
        rotated_session(&f, &user, -TimeDelta::minutes(1)).await;
    }
    let clearers = (0..4).map(|_| {
        let sessions = f.sessions.clone();
        tokio::spawn(async move {
            let mut cleared = 0;
            loop {
                let batch = sessions.clear_sealed_successors(t0(), 25).await.unwrap();
                cleared += batch;
                if batch < 25 {
                    return cleared;
                }
            }
        })
    });
    let mut cleared = 0;
    for clearer in clearers.collect::<Vec<_>>() {
        cleared += clearer.await.unwrap();
    }
    let leftover = f.sessions.clear_sealed_successors(t0(), 500).await.unwrap();
    assert_eq!((cleared, leftover), (SEALED, 0));
    assert_eq!(
        f.count("SELECT count(*) AS count FROM sessions WHERE sealed_successor IS NOT NULL")
            .await,
        0
    );
}

/// The user's credentials version, as a login reads it.
async fn version(f: &Fixture, user: &User) -> i64 {
    f.users
        .find_credentials(&user.email)
        .await
        .unwrap()
        .unwrap()
        .version
}

/// A new session of `user`, not stored.
fn new_session(user: &User) -> Session {
    Session {
        id: SessionId::generate(),
        user_id: user.id,
        created_at: t0(),
        last_used_at: t0(),
        expires_at: t0() + TimeDelta::days(1),
        user_agent: None,
        ip: None,
        revoked_at: None,
    }
}

/// A session of `user` as a login opens it, against credentials `version`.
async fn open(f: &Fixture, user: &User, version: i64) -> (Session, bool) {
    let session = new_session(user);
    let stored = f
        .sessions
        .create(&session, TokenId::generate(), version)
        .await
        .unwrap();
    (session, stored)
}

#[tokio::test]
async fn a_rehash_is_a_compare_and_set_on_the_old_hash() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    let replaced = f
        .users
        .update_password_hash(
            user.id,
            &PasswordHash::new("$argon2id$stale"),
            &PasswordHash::new("$argon2id$rehash"),
            t0(),
        )
        .await
        .unwrap();
    assert!(!replaced);
    assert_eq!(
        f.users.password_hash(user.id).await.unwrap(),
        Some(PasswordHash::new("$argon2id$old"))
    );
}

#[tokio::test]
async fn every_credentials_change_bumps_the_version_and_refuses_older_logins() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    assert_eq!(version(&f, &user).await, 0);
    let (_, stored) = open(&f, &user, 0).await;
    assert!(stored);

    f.users
        .replace_password(user.id, 0, &PasswordHash::new("$argon2id$new"), t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(version(&f, &user).await, 1);
    f.sessions.revoke_all(user.id, t0()).await.unwrap();
    assert_eq!(version(&f, &user).await, 2);
    let password_set = UserChanges {
        password_hash: Some(PasswordHash::new("$argon2id$admin")),
        ..UserChanges::default()
    };
    f.users
        .update(user.id, &password_set, true, t0())
        .await
        .unwrap();
    assert_eq!(version(&f, &user).await, 3);
    // A change that revokes nothing (a rename) leaves the version alone.
    let rename = UserChanges {
        name: Some(DisplayName::parse("Ada L.").unwrap()),
        ..UserChanges::default()
    };
    f.users.update(user.id, &rename, false, t0()).await.unwrap();
    assert_eq!(version(&f, &user).await, 3);

    let (refused, stored) = open(&f, &user, 2).await;
    assert!(!stored);
    assert!(f.sessions.find(refused.id).await.unwrap().is_none());
    let (_, stored) = open(&f, &user, 3).await;
    assert!(stored);

    let deactivate = UserChanges {
        is_active: Some(false),
        ..UserChanges::default()
    };
    f.users
        .update(user.id, &deactivate, true, t0())
        .await
        .unwrap();
    assert!(f.live_ids(&user).await.is_empty());
    // Inactive: no session even at the current version.
    let (_, stored) = open(&f, &user, 4).await;
    assert!(!stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_login_racing_a_credentials_change_leaves_a_live_session() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    for round in 0..40 {
        let checked = version(&f, &user).await;
        let login = {
            let sessions = f.sessions.clone();
            let session = new_session(&user);
            tokio::spawn(async move {
                sessions
                    .create(&session, TokenId::generate(), checked)
                    .await
                    .unwrap()
            })
        };
        let change = {
            let users = f.users.clone();
            let sessions = f.sessions.clone();
            let id = user.id;
            tokio::spawn(async move {
                if round % 2 == 0 {
                    users
                        .replace_password(id, checked, &PasswordHash::new("$argon2id$new"), t0())
                        .await
                        .unwrap()
                        .unwrap();
                } else {
                    sessions.revoke_all(id, t0()).await.unwrap();
                }
            })
        };
        login.await.unwrap();
        change.await.unwrap();
        assert_eq!(f.live_ids(&user).await, vec![], "round {round}");
    }
}

#[tokio::test]
async fn emails_are_found_by_their_nfc_form() {
    let f = fixture().await;
    let user = f.user("\u{c9}lodie@example.fr").await;
    let decomposed = Email::parse("E\u{301}LODIE@example.fr").unwrap();
    let Credentials { user: found, .. } = f
        .users
        .find_credentials(&decomposed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, user.id);
    let twin = User::register(decomposed, None, f.role.to_ref(), t0());
    assert!(matches!(
        f.users
            .create(&twin, &PasswordHash::new("$argon2id$x"), None)
            .await,
        Err(CreateUserError::EmailTaken)
    ));
    let query = UserQuery {
        page: 1,
        per_page: 20,
        q: Some("E\u{301}lo".into()),
        role: None,
        is_active: None,
    };
    assert_eq!(f.listed(query).await, (vec![user.id], 1));
}

const NFC_MIGRATION: &str = include_str!("../../../migrations/2026-12-06-000002_nfc_emails/up.sql");

#[tokio::test]
async fn the_nfc_migration_normalises_rows_and_stops_on_a_clash() {
    let f = fixture().await;
    let composed = f.user("\u{e9}lodie@example.fr").await;
    let other = f.user("zoe@example.org").await;
    let mut conn = AsyncPgConnection::establish(&f._db.url).await.unwrap();
    // A row written before the migration: lowercased, but decomposed.
    conn.batch_execute(&format!(
        "UPDATE users SET email = 'Zoe\u{308}@example.org', \
         email_normalized = 'zoe\u{308}@example.org' WHERE id = '{}'",
        other.id.as_uuid()
    ))
    .await
    .unwrap();
    conn.batch_execute(NFC_MIGRATION).await.unwrap();
    assert_eq!(
        f.count(
            "SELECT count(*) AS count FROM users WHERE email_normalized = 'zo\u{eb}@example.org'"
        )
        .await,
        1
    );

    // Two rows that become one identity: the migration refuses and changes nothing.
    conn.batch_execute(&format!(
        "UPDATE users SET email = 'E\u{301}lodie@example.fr', \
         email_normalized = 'e\u{301}lodie@example.fr' WHERE id = '{}'",
        other.id.as_uuid()
    ))
    .await
    .unwrap();
    let error = conn.batch_execute(NFC_MIGRATION).await.unwrap_err();
    assert!(
        error.to_string().contains("cannot normalise emails"),
        "{error}"
    );
    assert_eq!(
        f.count("SELECT count(*) AS count FROM users WHERE email_normalized = 'e\u{301}lodie@example.fr'")
            .await,
        1
    );
    assert!(composed.email.normalized().starts_with('\u{e9}'));
}

/// A digest made from `label` (at most 32 bytes).
fn digest(label: &str) -> TokenDigest {
    let mut bytes = [0u8; 32];
    bytes[..label.len()].copy_from_slice(label.as_bytes());
    TokenDigest(bytes)
}

/// A link of `purpose` whose digest is made from `label`, sealed as `sealed-<label>`, expiring
/// in an hour.
fn link(purpose: LinkPurpose, label: &str) -> IssuedLink {
    IssuedLink {
        purpose,
        digest: digest(label),
        sealed: format!("sealed-{label}"),
        expires_at: t0() + TimeDelta::hours(1),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Makes every INSERT into `table` fail, as a full disk or a bug would, midway through a
/// transaction.
async fn refuse_inserts_into(f: &Fixture, table: &str) {
    let mut conn = AsyncPgConnection::establish(&f._db.url).await.unwrap();
    conn.batch_execute(&format!(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused'; END $$; \
         CREATE TRIGGER refuse BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse();"
    ))
    .await
    .unwrap();
}

/// Only the digest of a link token is stored, and the outbox holds exactly the sealed token it
/// was given: no column anywhere holds anything else of the token.
#[tokio::test]
async fn a_link_token_is_stored_as_its_digest_and_travels_sealed() {
    let f = fixture().await;
    let user = User::register(
        Email::parse("Ada@Example.com").unwrap(),
        None,
        f.role.to_ref(),
        t0(),
    );
    let verification = link(LinkPurpose::VerifyEmail, "signup");
    f.users
        .create(
            &user,
            &PasswordHash::new("$argon2id$old"),
            Some(&verification),
        )
        .await
        .unwrap();
    let reset = link(LinkPurpose::ResetPassword, "reset");
    let requested = f
        .links
        .request_reset(&user.email, &reset, &EmailRateLimit::default(), t0())
        .await
        .unwrap();
    assert_eq!(requested, LinkRequest::Queued);

    let columns = f
        ._db
        .texts(
            "SELECT column_name::text AS value FROM information_schema.columns \
             WHERE table_name = 'link_tokens' ORDER BY ordinal_position",
        )
        .await
        .unwrap();
    assert_eq!(
        columns,
        [
            "digest",
            "user_id",
            "purpose",
            "created_at",
            "expires_at",
            "spent_at"
        ]
    );
    let digests = f
        ._db
        .texts("SELECT encode(digest, 'hex') || ' ' || purpose AS value FROM link_tokens ORDER BY purpose")
        .await
        .unwrap();
    assert_eq!(
        digests,
        [
            format!("{} reset_password", hex(&reset.digest.0)),
            format!("{} verify_email", hex(&verification.digest.0)),
        ]
    );
    let queued = f
        ._db
        .texts(
            "SELECT kind || ' ' || recipient || ' ' || sealed_token AS value FROM outbox \
             ORDER BY kind",
        )
        .await
        .unwrap();
    assert_eq!(
        queued,
        [
            "reset_password Ada@Example.com sealed-reset",
            "verify_email Ada@Example.com sealed-signup",
        ]
    );
}

/// A signup whose email cannot be queued creates nobody: the user, its token and the email
/// are one transaction.
#[tokio::test]
async fn a_signup_whose_email_cannot_be_queued_creates_nobody() {
    let f = fixture().await;
    refuse_inserts_into(&f, "outbox").await;
    let user = User::register(
        Email::parse("ada@example.com").unwrap(),
        None,
        f.role.to_ref(),
        t0(),
    );
    let verification = link(LinkPurpose::VerifyEmail, "signup");

    let created = f
        .users
        .create(
            &user,
            &PasswordHash::new("$argon2id$old"),
            Some(&verification),
        )
        .await;

    assert!(
        matches!(
            created,
            Err(CreateUserError::Port(PortError::Unexpected(_)))
        ),
        "{created:?}"
    );
    assert_eq!(f.users.find_by_id(user.id).await.unwrap(), None);
    assert_eq!(
        f.count("SELECT count(*) AS count FROM link_tokens").await,
        0
    );
}

/// A password change whose notice cannot be queued changes nothing: the hash, the sessions
/// and the reset tokens stay as they were.
#[tokio::test]
async fn a_password_change_whose_notice_cannot_be_queued_changes_nothing() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    let (session, _) = f
        .session(&user, TimeDelta::zero(), TimeDelta::days(1))
        .await;
    let reset = link(LinkPurpose::ResetPassword, "reset");
    let requested = f
        .links
        .request_reset(&user.email, &reset, &EmailRateLimit::default(), t0())
        .await
        .unwrap();
    assert_eq!(requested, LinkRequest::Queued);
    refuse_inserts_into(&f, "outbox").await;

    let replaced = f
        .users
        .replace_password(user.id, 0, &PasswordHash::new("$argon2id$new"), t0())
        .await;
    assert!(
        matches!(replaced, Err(PortError::Unexpected(_))),
        "{replaced:?}"
    );
    let changes = UserChanges {
        password_hash: Some(PasswordHash::new("$argon2id$new")),
        ..UserChanges::default()
    };
    let updated = f.users.update(user.id, &changes, true, t0()).await;
    assert!(
        matches!(
            updated,
            Err(CreateUserError::Port(PortError::Unexpected(_)))
        ),
        "{updated:?}"
    );
    let reset_done = f
        .links
        .reset_password(&reset.digest, &PasswordHash::new("$argon2id$new"), t0())
        .await;
    assert!(
        matches!(reset_done, Err(PortError::Unexpected(_))),
        "{reset_done:?}"
    );

    assert_eq!(
        f.users.password_hash(user.id).await.unwrap(),
        Some(PasswordHash::new("$argon2id$old"))
    );
    assert_eq!(f.live_ids(&user).await, vec![session.id]);
    assert_eq!(version(&f, &user).await, 0);
    let holder = f
        .links
        .holder(LinkPurpose::ResetPassword, &reset.digest, t0())
        .await
        .unwrap();
    assert_eq!(holder.map(|holder| holder.id), Some(user.id));
}

/// An email change or a deactivation whose links cannot be spent changes nothing: the address,
/// the verification mark, the activity and the links stay as they were.
#[tokio::test]
async fn an_update_whose_links_cannot_be_spent_changes_nothing() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    let mark = UserChanges {
        is_verified: Some(true),
        ..UserChanges::default()
    };
    let (user, _) = f
        .users
        .update(user.id, &mark, false, t0())
        .await
        .unwrap()
        .unwrap();
    let reset = link(LinkPurpose::ResetPassword, "reset");
    let requested = f
        .links
        .request_reset(&user.email, &reset, &EmailRateLimit::default(), t0())
        .await
        .unwrap();
    assert_eq!(requested, LinkRequest::Queued);
    let mut conn = AsyncPgConnection::establish(&f._db.url).await.unwrap();
    conn.batch_execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused'; END $$; \
         CREATE TRIGGER refuse BEFORE UPDATE ON link_tokens \
         FOR EACH ROW EXECUTE FUNCTION refuse();",
    )
    .await
    .unwrap();

    for changes in [
        UserChanges {
            email: Some(Email::parse("ada@example.org").unwrap()),
            ..UserChanges::default()
        },
        UserChanges {
            is_active: Some(false),
            ..UserChanges::default()
        },
    ] {
        let updated = f.users.update(user.id, &changes, true, t0()).await;
        assert!(
            matches!(
                updated,
                Err(CreateUserError::Port(PortError::Unexpected(_)))
            ),
            "{changes:?}: {updated:?}"
        );
        assert_eq!(
            f.users.find_by_id(user.id).await.unwrap(),
            Some(user.clone())
        );
        assert_eq!(version(&f, &user).await, 0);
        let holder = f
            .links
            .holder(LinkPurpose::ResetPassword, &reset.digest, t0())
            .await
            .unwrap();
        assert_eq!(holder.map(|holder| holder.id), Some(user.id));
    }
}

/// `rows` emails queued by hand, due one second apart from `t0 - rows s` on.
async fn queue_by_hand(f: &Fixture, rows: u32) {
    let mut conn = AsyncPgConnection::establish(&f._db.url).await.unwrap();
    conn.batch_execute(&format!(
        "INSERT INTO outbox (id, kind, recipient, created_at, next_attempt_at) \
         SELECT gen_random_uuid(), 'password_changed', 'user' || n || '@example.com', \
         '{t0}'::timestamptz - n * interval '1 second', \
         '{t0}'::timestamptz - n * interval '1 second' \
         FROM generate_series(1, {rows}) AS n",
        t0 = t0().to_rfc3339()
    ))
    .await
    .unwrap();
}

/// Instances claiming at once each get their own emails (`SKIP LOCKED`): every email is claimed
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_get_disjoint_emails() {
    const QUEUED: u32 = 200;
    let f = fixture().await;
    queue_by_hand(&f, QUEUED).await;
    // Two instances: two pools of their own.
    let mut claimers = Vec::new();
    for _ in 0..2 {
        let pool = connect(&f._db.url, PoolSettings::default()).unwrap();
        let outbox = PgOutbox::new(pool);
        claimers.push(tokio::spawn(async move {
            let mut claimed = Vec::new();
            loop {
                let batch = outbox
                    .claim(t0(), Duration::from_secs(60), 7)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return claimed;
                }
                claimed.extend(batch.into_iter().map(|email| email.id));
            }
        }));
    }
    let mut claimed = Vec::new();
    let mut per_instance = Vec::new();
    for claimer in claimers {
        let mine = claimer.await.unwrap();
        per_instance.push(mine.len());
        claimed.extend(mine);
    }
    let total = claimed.len();
    claimed.sort();
    claimed.dedup();
    assert_eq!((total, claimed.len()), (QUEUED as usize, QUEUED as usize));
    assert!(per_instance.iter().all(|n| *n > 0), "{per_instance:?}");
    assert_eq!(
        f.count("SELECT count(*) AS count FROM outbox WHERE attempts = 1")
            .await,
        i64::from(QUEUED)
    );
}

/// A claim skips an email another transaction holds instead of waiting for it.
#[tokio::test]
async fn a_claim_skips_an_email_being_written_instead_of_waiting() {
    let f = fixture().await;
    queue_by_hand(&f, 2).await;
    let held = f
        ._db
        .texts("SELECT id::text AS value FROM outbox ORDER BY next_attempt_at LIMIT 1")
        .await
        .unwrap();
    let lock = f
        ._db
        .hold_transaction(&format!(
            "SELECT id FROM outbox WHERE id = '{}' FOR UPDATE",
            held[0]
        ))
        .await
        .unwrap();

    let started = Instant::now();
    let claimed = f
        .outbox
        .claim(t0(), Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1), "it waited");
    assert_eq!(claimed.len(), 1);
    assert_ne!(claimed[0].id.to_string(), held[0]);

    lock.release().await.unwrap();
    let claimed = f
        .outbox
        .claim(t0(), Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|email| email.id.to_string())
            .collect::<Vec<_>>(),
        held
    );
    assert_eq!(claimed[0].kind, EmailKind::PasswordChanged);
}

/// Of twenty resets at once with one token, exactly one succeeds: one password set, one
/// version bump, one notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_twenty_concurrent_resets_with_one_token_exactly_one_wins() {
    let f = fixture_with(PoolSettings {
        max_size: 24,
        ..PoolSettings::default()
    })
    .await;
    let user = f.user("ada@example.com").await;
    let reset = link(LinkPurpose::ResetPassword, "reset");
    let requested = f
        .links
        .request_reset(&user.email, &reset, &EmailRateLimit::default(), t0())
        .await
        .unwrap();
    assert_eq!(requested, LinkRequest::Queued);

    let resets = (0..20).map(|n| {
        let links = f.links.clone();
        let digest = reset.digest;
        tokio::spawn(async move {
            let hash = PasswordHash::new(format!("$argon2id${n}"));
            links
                .reset_password(&digest, &hash, t0())
                .await
                .map(|reset| reset.map(|_| hash))
        })
    });
    let mut winners = Vec::new();
    for reset in resets.collect::<Vec<_>>() {
        if let Some(hash) = reset.await.unwrap().unwrap() {
            winners.push(hash);
        }
    }

    assert_eq!(winners.len(), 1);
    assert_eq!(f.users.password_hash(user.id).await.unwrap(), winners.pop());
    assert_eq!(version(&f, &user).await, 1);
    assert_eq!(
        f.count("SELECT count(*) AS count FROM outbox WHERE kind = 'password_changed'")
            .await,
        1
    );
}

/// A reset and a new reset request for one account, at once and again and again, never
/// deadlock: both lock the user's row before its tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resets_racing_new_requests_never_deadlock() {
    let f = fixture().await;
    let user = f.user("ada@example.com").await;
    // No limit to speak of: every request may go.
    let unlimited = EmailRateLimit::new(Duration::ZERO, 1000, Duration::from_secs(1));
    let mut current = link(LinkPurpose::ResetPassword, "reset-0");
    f.links
        .request_reset(&user.email, &current, &unlimited, t0())
        .await
        .unwrap();
    let hash = PasswordHash::new("$argon2id$new");
    for round in 1..=20 {
        let next = link(LinkPurpose::ResetPassword, &format!("reset-{round}"));
        let now = t0() + TimeDelta::seconds(round);
        let (reset, request) = tokio::join!(
            f.links.reset_password(&current.digest, &hash, now),
            f.links.request_reset(&user.email, &next, &unlimited, now),
        );
        reset.unwrap();
        assert_eq!(request.unwrap(), LinkRequest::Queued);
        current = next;
    }
}
