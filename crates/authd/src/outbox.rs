//! The outbox deliverer, started with the server and stopped with it: every instance runs one.

use std::rc::Rc;
use std::time::Duration;

use authd_application::use_cases::{DeliverEmails, DeliveryReport};
use authd_domain::EmailKind;
use chrono::Utc;

use crate::periodic::periodically;
use crate::purge::{PURGE_BATCH, PURGE_EVERY};

/// Sent and dead emails, and link tokens past their use, are kept this long (for an operator
/// who asks "did it go out?"), then purged.
pub(crate) const RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The most emails one run sends (each is claimed on its own, so a long run keeps no other
/// instance waiting).
pub(crate) const BATCH: u32 = 50;

/// Runs `deliver` every `poll`, and its retention purge as often and in batches as large as the
/// session purge's, in a task of its own (so a large purge never holds up delivery), on the
/// current (actix) runtime until the returned handles are aborted. A run that fails (the store
/// is down) is logged and the next one tries again: the emails stay in the outbox.
pub(crate) fn spawn(
    deliver: DeliverEmails,
    poll: Duration,
) -> [actix_web::rt::task::JoinHandle<()>; 2] {
    let deliver = Rc::new(deliver);
    let purging = Rc::clone(&deliver);
    let purge = periodically(PURGE_EVERY, move || {
        let purging = Rc::clone(&purging);
        async move {
            match purging.purge(PURGE_BATCH).await {
                Ok(purged) => tracing::debug!(purged, "purged delivered emails and spent tokens"),
                Err(error) => {
                    tracing::warn!(%error, "purging the outbox failed; the next run tries again")
                }
            }
        }
    });
    // The series exist from the start, so a dashboard shows 0 rather than nothing.
    for kind in EmailKind::ALL {
        for outcome in ["sent", "failed", "dead"] {
            metrics::counter!(counter_name(outcome), "kind" => kind.as_str()).increment(0);
        }
    }
    let delivery = periodically(poll, move || {
        let deliver = Rc::clone(&deliver);
        async move { deliver_once(&deliver).await }
    });
    [delivery, purge]
}

async fn deliver_once(deliver: &DeliverEmails) {
    match deliver.execute().await {
        Ok(report) => count(&report),
        Err(error) => {
            tracing::warn!(%error, "delivering the outbox failed; the next run tries again")
        }
    }
    match deliver.stats().await {
        Ok(stats) => {
            metrics::gauge!("authd_outbox_depth").set(stats.depth as f64);
            let age = stats.oldest.map_or(0.0, |oldest| {
                (Utc::now() - oldest).as_seconds_f64().max(0.0)
            });
            metrics::gauge!("authd_outbox_oldest_age_seconds").set(age);
        }
        Err(error) => tracing::debug!(%error, "could not read the outbox's depth"),
    }
}

fn counter_name(outcome: &str) -> &'static str {
    match outcome {
        "sent" => "authd_emails_sent_total",
        "failed" => "authd_emails_failed_total",
        _ => "authd_emails_dead_total",
    }
}

/// `authd_emails_{sent,failed,dead}_total{kind}`.
fn count(report: &DeliveryReport) {
    for (outcome, kinds) in [
        ("sent", &report.sent),
        ("failed", &report.failed),
        ("dead", &report.dead),
    ] {
        for kind in kinds {
            metrics::counter!(counter_name(outcome), "kind" => kind.as_str()).increment(1);
        }
    }
}
