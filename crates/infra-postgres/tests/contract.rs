//! The store contract suite against the Postgres adapters (`TEST_DATABASE_URL`, default the
//! local server), each test on a fresh database of its own.

// clippy allows these in test functions only; the fixtures here are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authd_contract::Store;
use authd_postgres::testing::fresh_database;
use authd_postgres::{
    PgLinkTokenRepository, PgOutbox, PgRoleRepository, PgSessionRepository, PgUserRepository,
};

async fn with_store(test: impl AsyncFnOnce(Store<'_>)) {
    let db = fresh_database().await.unwrap();
    let pool = db.pool().await.unwrap();
    let users = PgUserRepository::new(pool.clone());
    let roles = PgRoleRepository::new(pool.clone());
    let sessions = PgSessionRepository::new(pool.clone());
    let links = PgLinkTokenRepository::new(pool.clone());
    let outbox = PgOutbox::new(pool);
    test(Store {
        users: &users,
        roles: &roles,
        sessions: &sessions,
        links: &links,
        outbox: &outbox,
    })
    .await;
    // `db` drops its database here.
}

authd_contract::store_suite!(with_store);
