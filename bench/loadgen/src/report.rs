//! The table `make bench` prints, with each target of BENCHMARKS.md checked.

use std::fmt::Write;

use crate::scenario::Scenario;
use crate::stats::Summary;

const MB: f64 = 1_000_000.0;

/// One measured scenario.
pub struct Row {
    pub scenario: Scenario,
    pub summary: Summary,
    /// The server's resident memory at the end of the scenario, in bytes.
    pub rss_after: Option<u64>,
}

/// Everything one run measured.
pub struct Report {
    pub clients: usize,
    pub warmup: u64,
    pub duration: u64,
    pub rows: Vec<Row>,
    pub idle_rss: Option<u64>,
    pub enrolled_rss: Option<u64>,
    pub final_rss: Option<u64>,
    pub peak_rss: Option<u64>,
    pub argon2_per_second: Option<f64>,
}

/// A target and whether it was met.
struct Verdict {
    target: String,
    met: bool,
}

impl Report {
    pub fn new(clients: usize, warmup: u64, duration: u64) -> Self {
        Self {
            clients,
            warmup,
            duration,
            rows: Vec::new(),
            idle_rss: None,
            enrolled_rss: None,
            final_rss: None,
            peak_rss: None,
            argon2_per_second: None,
        }
    }

    fn verdict(&self, row: &Row) -> Option<Verdict> {
        let s = &row.summary;
        let throughput = |min: f64, p99_under: f64| Verdict {
            target: format!("≥ {min:.0}/s, p99 < {p99_under} ms, 0 errors"),
            met: s.per_second >= min && s.p99 < p99_under && s.errors == 0 && s.requests > 0,
        };
        match row.scenario {
            Scenario::Me | Scenario::MeCookie => Some(throughput(15_000.0, 5.0)),
            Scenario::Refresh => Some(throughput(4_000.0, 10.0)),
            Scenario::Mixed => Some(throughput(10_000.0, 10.0)),
            Scenario::Login => self.argon2_per_second.map(|bound| Verdict {
                target: format!("≥ 90 % of {bound:.1}/s, 0 errors"),
                met: s.per_second >= 0.9 * bound && s.errors == 0,
            }),
            Scenario::Signup => Some(Verdict {
                target: "0 errors".to_owned(),
                met: s.errors == 0 && s.requests > 0,
            }),
            Scenario::Health => None,
        }
    }

    fn memory_verdicts(&self) -> Vec<(String, String, Verdict)> {
        let mut verdicts = Vec::new();
        if let Some(idle) = self.idle_rss {
            verdicts.push((
                "idle RSS (after start)".to_owned(),
                format!("{:.1} MB", idle as f64 / MB),
                Verdict {
                    target: "< 20 MB".to_owned(),
                    met: (idle as f64) < 20.0 * MB,
                },
            ));
        }
        if let Some(peak) = self.peak_rss {
            verdicts.push((
                "peak RSS (all scenarios)".to_owned(),
                format!("{:.1} MB", peak as f64 / MB),
                Verdict {
                    target: "< 100 MB".to_owned(),
                    met: (peak as f64) < 100.0 * MB,
                },
            ));
        }
        verdicts
    }

    /// Whether every target was met.
    pub fn all_met(&self) -> bool {
        self.rows
            .iter()
            .filter_map(|row| self.verdict(row))
            .chain(self.memory_verdicts().into_iter().map(|(_, _, v)| v))
            .all(|verdict| verdict.met)
    }

    /// The Markdown table, then the baselines and memory.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} clients, {} s warm-up, {} s measured per scenario\n",
            self.clients, self.warmup, self.duration
        );
        let _ = writeln!(
            out,
            "| scenario | req/s | p50 ms | p90 ms | p99 ms | max ms | server CPU | RSS after | responses | target | met |"
        );
        let _ = writeln!(
            out,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |"
        );
        for row in &self.rows {
            let s = &row.summary;
            let (target, met) = match self.verdict(row) {
                Some(verdict) => (verdict.target, mark(verdict.met)),
                None => ("baseline".to_owned(), ""),
            };
            let cpu = s
                .server_cpu
                .map_or_else(|| "?".to_owned(), |cpu| format!("{:.0} %", cpu * 100.0));
            let rss = row.rss_after.map_or_else(
                || "?".to_owned(),
                |rss| format!("{:.1} MB", rss as f64 / MB),
            );
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {cpu} | {rss} | {} | {target} | {met} |",
                row.scenario.name(),
                s.per_second,
                s.p50,
                s.p90,
                s.p99,
                s.max,
                s.statuses_text(),
            );
        }
        if let Some(rate) = self.argon2_per_second {
            let _ = writeln!(
                out,
                "| argon2id, one core | {rate:.1} | | | | | | | hashes | baseline | |"
            );
        }
        for (name, value, verdict) in self.memory_verdicts() {
            let _ = writeln!(
                out,
                "| {name} | {value} | | | | | | | | {} | {} |",
                verdict.target,
                mark(verdict.met)
            );
        }
        if let Some(rss) = self.enrolled_rss {
            let _ = writeln!(
                out,
                "| RSS after enrolling the clients | {:.1} MB | | | | | | | | | |",
                rss as f64 / MB
            );
        }
        if let Some(rss) = self.final_rss {
            let _ = writeln!(
                out,
                "| RSS after the run | {:.1} MB | | | | | | | | | |",
                rss as f64 / MB
            );
        }
        let _ = writeln!(
            out,
            "\n{}",
            if self.all_met() {
                "every target met"
            } else {
                "TARGETS MISSED: see the rows marked no"
            }
        );
        out
    }
}

fn mark(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::Recorder;

    /// `count` requests of `status`, each taking `latency`, over one second.
    fn row(scenario: Scenario, count: u32, status: u16, latency: Duration) -> Row {
        let mut recorder = Recorder::default();
        for _ in 0..count {
            recorder.record(status, latency);
        }
        Row {
            scenario,
            summary: recorder.summarize(Duration::from_secs(1)),
            rss_after: None,
        }
    }

    fn report(rows: Vec<Row>) -> Report {
        let mut report = Report::new(64, 1, 1);
        report.rows = rows;
        report
    }

    #[test]
    fn a_scenario_meets_its_target_only_fast_enough_quick_enough_and_without_errors() {
        let quick = Duration::from_millis(1);
        assert!(report(vec![row(Scenario::Me, 15_000, 200, quick)]).all_met());
        assert!(!report(vec![row(Scenario::Me, 14_999, 200, quick)]).all_met());
        let slow = Duration::from_millis(6);
        assert!(!report(vec![row(Scenario::Me, 15_000, 200, slow)]).all_met());
        let mut with_an_error = row(Scenario::Me, 15_000, 200, quick);
        with_an_error.summary.errors = 1;
        assert!(!report(vec![with_an_error]).all_met());
        assert!(!report(vec![row(Scenario::Signup, 0, 201, quick)]).all_met());
        // A baseline has no target.
        assert!(report(vec![row(Scenario::Health, 1, 200, slow)]).all_met());
    }

    #[test]
    fn login_is_judged_against_the_argon2_bound_and_memory_against_its_limits() {
        let mut run = report(vec![row(
            Scenario::Login,
            45,
            204,
            Duration::from_millis(900),
        )]);
        run.argon2_per_second = Some(50.0);
        assert!(run.all_met());
        run.argon2_per_second = Some(51.0);
        assert!(!run.all_met());
        run.argon2_per_second = Some(50.0);
        run.idle_rss = Some(19_000_000);
        run.peak_rss = Some(99_000_000);
        assert!(run.all_met());
        run.peak_rss = Some(100_000_000);
        assert!(!run.all_met());
        assert!(run.render().contains("TARGETS MISSED"));
    }
}
