//! The schema migrations, embedded in the binary and run at start-up (or by `authd migrate`).

use anyhow::Context as _;
use diesel::RunQueryDsl as _;
use diesel::sql_types::BigInt;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness as _, embed_migrations};

/// The migrations of `migrations/` at the workspace root.
const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Key of the session-level advisory lock that serialises migrations across instances (any
/// constant works as long as nothing else in the database uses it; this one spells "authdmig").
const MIGRATION_LOCK: i64 = 0x6175_7468_646d_6967;

/// Applies the pending migrations and returns the versions it applied (empty when the schema
/// was up to date).
///
/// Safe to call from any tokio runtime, including a current-thread one (actix's, or a plain
/// `#[tokio::test]`): diesel's migration harness is synchronous, so it runs on the blocking pool
/// over a sync wrapper of the async connection. Instances starting together take turns on a
/// Postgres advisory lock, so the second finds the schema applied instead of failing halfway.
pub async fn run_migrations(url: &str) -> anyhow::Result<Vec<String>> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || migrate(&url))
        .await
        .context("the migration task did not finish")?
}

fn migrate(url: &str) -> anyhow::Result<Vec<String>> {
    // Spelled out: `establish` also exists on `diesel_async::AsyncConnection`.
    let mut conn =
        <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(url)
            .context("cannot connect to Postgres to migrate")?;
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK)
        .execute(&mut conn)
        .context("cannot take the migration lock")?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        // The versions borrow the connection, which is used again below.
        .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
        .map_err(|error| anyhow::anyhow!(error).context("migration failed"));
    // Closing the connection releases the lock too; unlocking first just does it sooner.
    if let Err(error) = diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK)
        .execute(&mut conn)
    {
        tracing::debug!(%error, "could not release the migration lock; closing releases it");
    }
    let applied = applied?;
    if !applied.is_empty() {
        tracing::info!(versions = ?applied, "applied migrations");
    }
    Ok(applied)
}
