//! What one scenario measured: latencies, statuses, and the server's CPU time.

use std::collections::BTreeMap;
use std::time::Duration;

/// Status code recorded for a request that got no HTTP response at all (connection error).
pub const NO_RESPONSE: u16 = 0;

/// The status a revocation check must get: the revoked token refused.
pub const REFUSED: u16 = 401;

/// One client's measurements; merged into the scenario's after the run.
#[derive(Debug, Default)]
pub struct Recorder {
    latencies_us: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    /// The revocation checks' statuses (`two-instances`), apart: their success is a 401.
    checks: BTreeMap<u16, u64>,
    /// Requests per server instance, checks included (all on the first but in `two-instances`).
    per_instance: [u64; 2],
}

impl Recorder {
    /// An ordinary request to the first instance (the scenarios name the instance).
    #[cfg(test)]
    pub fn record(&mut self, status: u16, latency: Duration) {
        self.record_on(0, status, latency);
    }

    /// An ordinary request to instance `at` (0 or 1).
    pub fn record_on(&mut self, at: usize, status: u16, latency: Duration) {
        self.count(at, latency);
        *self.statuses.entry(status).or_default() += 1;
    }

    /// A revocation check: `me` on instance `at` with an access token just logged out on the
    /// other. It is a request like any (latency, throughput), but its status is kept apart.
    pub fn record_check(&mut self, at: usize, status: u16, latency: Duration) {
        self.count(at, latency);
        *self.checks.entry(status).or_default() += 1;
    }

    fn count(&mut self, at: usize, latency: Duration) {
        let micros = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.latencies_us.push(micros);
        self.per_instance[at.min(1)] += 1;
    }

    pub fn merge(&mut self, other: Recorder) {
        self.latencies_us.extend(other.latencies_us);
        add(&mut self.statuses, other.statuses);
        add(&mut self.checks, other.checks);
        for (mine, theirs) in self.per_instance.iter_mut().zip(other.per_instance) {
            *mine += theirs;
        }
    }

    /// The summary over a measured window of `window`.
    pub fn summarize(mut self, window: Duration) -> Summary {
        self.latencies_us.sort_unstable();
        let count = self.latencies_us.len();
        // A check that got neither answer (a 5xx, no response) checked nothing: an error.
        let failed_checks: u64 = self
            .checks
            .iter()
            .filter(|(status, _)| !is_success(**status) && **status != REFUSED)
            .map(|(_, count)| count)
            .sum();
        let errors = self
            .statuses
            .iter()
            .filter(|(status, _)| !is_success(**status))
            .map(|(_, count)| count)
            .sum::<u64>()
            + failed_checks;
        Summary {
            requests: count as u64,
            per_second: count as f64 / window.as_secs_f64(),
            p50: percentile(&self.latencies_us, 50.0),
            p90: percentile(&self.latencies_us, 90.0),
            p99: percentile(&self.latencies_us, 99.0),
            max: self.latencies_us.last().copied().map_or(0.0, millis),
            errors,
            statuses: self.statuses,
            checks: self.checks,
            per_instance: self.per_instance,
            window,
            server_cpu: None,
        }
    }
}

fn add(into: &mut BTreeMap<u16, u64>, from: BTreeMap<u16, u64>) {
    for (status, count) in from {
        *into.entry(status).or_default() += count;
    }
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// Nearest-rank percentile in milliseconds of sorted microsecond latencies.
fn percentile(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    millis(sorted_us[rank.clamp(1, sorted_us.len()) - 1])
}

fn millis(micros: u32) -> f64 {
    f64::from(micros) / 1000.0
}

/// A scenario's result. Latencies are in milliseconds.
#[derive(Debug)]
pub struct Summary {
    pub requests: u64,
    pub per_second: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    /// Responses that were not 2xx, including requests that got no response, and checks that
    /// got neither a 2xx nor a 401.
    pub errors: u64,
    /// The statuses of every request but the checks.
    pub statuses: BTreeMap<u16, u64>,
    /// The revocation checks' statuses (`two-instances`; empty otherwise).
    pub checks: BTreeMap<u16, u64>,
    /// Requests completed on each instance, checks included.
    pub per_instance: [u64; 2],
    /// The measured window.
    pub window: Duration,
    /// CPU time (user + system) the server used during the window, when its pid is known.
    pub server_cpu: Option<Duration>,
}

impl Summary {
    /// Share of one core the server used during the window (1.0 = one core).
    pub fn cpu_share(&self) -> Option<f64> {
        self.server_cpu
            .map(|cpu| cpu.as_secs_f64() / self.window.as_secs_f64())
    }

    /// Server CPU time per completed request, in µs: steadier than req/s on a machine whose
    /// speed varies, and what the CPU targets are written in.
    pub fn cpu_us_per_request(&self) -> Option<f64> {
        self.server_cpu
            .filter(|_| self.requests > 0)
            .map(|cpu| cpu.as_secs_f64() * 1e6 / self.requests as f64)
    }

    /// Revocation checks made in the window.
    pub fn checks_made(&self) -> u64 {
        self.checks.values().sum()
    }

    /// Revocation checks the other instance answered with a 2xx: a revoked token accepted.
    pub fn revoked_accepted(&self) -> u64 {
        self.checks
            .iter()
            .filter(|(status, _)| is_success(**status))
            .map(|(_, count)| count)
            .sum()
    }

    /// `204×1200 401×3` or `no-response×2`.
    pub fn statuses_text(&self) -> String {
        text(&self.statuses)
    }

    /// The checks' statuses, in the same form.
    pub fn checks_text(&self) -> String {
        text(&self.checks)
    }
}

fn text(statuses: &BTreeMap<u16, u64>) -> String {
    statuses
        .iter()
        .map(|(status, count)| match *status {
            NO_RESPONSE => format!("no-response×{count}"),
            status => format!("{status}×{count}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut recorder = Recorder::default();
        for micros in (1..=100).rev() {
            recorder.record(200, Duration::from_micros(micros * 1000));
        }
        recorder.record(503, Duration::from_micros(500_000));
        let summary = recorder.summarize(Duration::from_secs(2));
        assert_eq!(summary.requests, 101);
        assert!((summary.per_second - 50.5).abs() < 1e-9);
        assert_eq!(summary.p50, 51.0);
        assert_eq!(summary.p99, 100.0);
        assert_eq!(summary.max, 500.0);
        assert_eq!(summary.errors, 1);
        assert_eq!(summary.statuses_text(), "200×100 503×1");
    }

    #[test]
    fn merged_recorders_add_up_and_missing_responses_are_errors() {
        let mut one = Recorder::default();
        one.record(200, Duration::from_millis(1));
        one.record(NO_RESPONSE, Duration::from_millis(9));
        let mut other = Recorder::default();
        other.record(200, Duration::from_millis(3));
        one.merge(other);
        let summary = one.summarize(Duration::from_secs(1));
        assert_eq!((summary.requests, summary.errors), (3, 1));
        assert_eq!((summary.p50, summary.p90, summary.max), (3.0, 9.0, 9.0));
        assert_eq!(summary.statuses_text(), "no-response×1 200×2");
    }

    #[test]
    fn checks_count_as_requests_but_their_401_is_no_error_and_their_2xx_is_counted_apart() {
        let mut first = Recorder::default();
        first.record_on(0, 200, Duration::from_millis(1));
        first.record_on(0, 204, Duration::from_millis(1));
        first.record_check(1, 401, Duration::from_millis(2));
        let mut second = Recorder::default();
        second.record_on(1, 200, Duration::from_millis(1));
        second.record_check(0, 200, Duration::from_millis(2));
        second.record_check(1, NO_RESPONSE, Duration::from_millis(3));
        second.record_on(1, 401, Duration::from_millis(1));
        first.merge(second);
        let summary = first.summarize(Duration::from_secs(1));
        assert_eq!(summary.requests, 7);
        assert_eq!(summary.per_instance, [3, 4]);
        assert_eq!((summary.checks_made(), summary.revoked_accepted()), (3, 1));
        // The ordinary 401 and the check without a response; not the check's 401 or 200.
        assert_eq!(summary.errors, 2);
        assert_eq!(summary.statuses_text(), "200×2 204×1 401×1");
        assert_eq!(summary.checks_text(), "no-response×1 200×1 401×1");
    }

    #[test]
    fn an_empty_window_has_no_latencies() {
        let mut summary = Recorder::default().summarize(Duration::from_secs(1));
        assert_eq!((summary.requests, summary.p99, summary.max), (0, 0.0, 0.0));
        summary.server_cpu = Some(Duration::from_millis(10));
        assert_eq!(summary.cpu_us_per_request(), None);
    }

    #[test]
    fn server_cpu_is_read_per_request_and_as_a_share_of_the_window() {
        let mut recorder = Recorder::default();
        for _ in 0..4_000 {
            recorder.record(200, Duration::from_millis(1));
        }
        let mut summary = recorder.summarize(Duration::from_secs(2));
        assert_eq!(
            (summary.cpu_share(), summary.cpu_us_per_request()),
            (None, None)
        );
        summary.server_cpu = Some(Duration::from_millis(1_500));
        assert_eq!(summary.cpu_share(), Some(0.75));
        assert_eq!(summary.cpu_us_per_request(), Some(375.0));
    }
}
