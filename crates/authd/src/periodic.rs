//! The loop of every periodic task of the server (the session purge, the outbox's delivery and
//! its purge).

use std::time::Duration;

/// Runs `run` now and then every `period`, on the current (actix) runtime, until the returned
/// handle is aborted: the loop of every periodic task of the server.
pub(crate) fn periodically<F, Run>(
    period: Duration,
    mut run: F,
) -> actix_web::rt::task::JoinHandle<()>
where
    F: FnMut() -> Run + 'static,
    Run: Future<Output = ()> + 'static,
{
    actix_web::rt::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        // After a slow run, wait a whole period rather than catching up in a burst.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            run().await;
        }
    })
}
