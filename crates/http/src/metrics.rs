//! The metrics authd records, through the `metrics` facade (the binary installs the Prometheus
//! recorder). Names and labels are part of the operator contract: see the README's list.

use std::sync::Arc;

use authd_domain::EmailKind;

/// Renders the Prometheus text exposition of every metric, refreshing gauges first.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

pub(crate) fn request(route: &str, method: &str, status: u16, seconds: f64) {
    // Owned values go into the labels as they are; a slice of pairs would be copied again.
    metrics::counter!(
        "authd_http_requests_total",
        "route" => route.to_owned(),
        "method" => method.to_owned(),
        "status" => status.to_string(),
    )
    .increment(1);
    metrics::histogram!(
        "authd_http_request_duration_seconds",
        "route" => route.to_owned(),
        "method" => method.to_owned(),
    )
    .record(seconds);
}

/// `success`, `failure` (bad credentials), `throttled`, `inactive` or `error`.
pub(crate) fn login(outcome: &'static str) {
    metrics::counter!("authd_logins_total", "outcome" => outcome).increment(1);
}

/// `success`, `failure` or `error`; reuse is counted on its own as well.
pub(crate) fn refresh(outcome: &'static str) {
    metrics::counter!("authd_refreshes_total", "outcome" => outcome).increment(1);
}

pub(crate) fn refresh_reuse_detected() {
    metrics::counter!("authd_refresh_reuse_detected_total").increment(1);
}

/// Why sessions were revoked: `logout`, `session`, `logout_all`, `password`, `password_reset`,
/// `admin`, `reuse`.
pub(crate) fn sessions_revoked(reason: &'static str) {
    metrics::counter!("authd_session_revocations_total", "reason" => reason).increment(1);
}

/// An email written to the outbox, by `kind`: `verify_email`, `reset_password`,
/// `password_changed` (queued, not yet sent: delivery counts its own).
pub(crate) fn emails_queued(kind: EmailKind) {
    metrics::counter!("authd_emails_queued_total", "kind" => kind.as_str()).increment(1);
}

/// A password-reset request answered `503`: too many were in progress.
pub(crate) fn password_reset_busy() {
    metrics::counter!("authd_password_reset_requests_busy_total").increment(1);
}
