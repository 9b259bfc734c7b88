//! The periodic purge of ended sessions, started with the server and stopped with it.

use std::rc::Rc;
use std::time::Duration;

use authd_application::use_cases::PurgeSessions;

use crate::periodic::periodically;

/// How often the purge runs.
pub(crate) const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Sessions deleted per statement: each `DELETE` holds its row locks only briefly, and a
/// backlog is worked off batch after batch within the same run.
pub(crate) const PURGE_BATCH: u32 = 500;

/// Runs `purge` now and then every `every`, on the current (actix) runtime, until the returned
/// handle is aborted. A failed run is logged and the next one tries again.
pub(crate) fn spawn(purge: PurgeSessions, every: Duration) -> actix_web::rt::task::JoinHandle<()> {
    let purge = Rc::new(purge);
    periodically(every, move || {
        let purge = Rc::clone(&purge);
        async move { run_once(&purge).await }
    })
}

async fn run_once(purge: &PurgeSessions) {
    match purge.execute().await {
        Ok(purged) => {
            count(purged);
            tracing::debug!(purged, "purged ended sessions");
        }
        Err(failure) => {
            count(failure.purged);
            tracing::warn!(
                error = %failure.error,
                purged = failure.purged,
                "purging ended sessions failed; the next run tries again"
            );
        }
    }
}

/// `authd_sessions_purged_total`: sessions deleted by the purge. Counted (by 0 too) on every
/// run, so the series exists from the first run on.
fn count(purged: u64) {
    metrics::counter!("authd_sessions_purged_total").increment(purged);
}
