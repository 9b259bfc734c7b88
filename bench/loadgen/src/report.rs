//! The table `make bench` prints, with each target of BENCHMARKS.md checked.

use std::fmt::Write;
use std::time::Duration;

use crate::scenario::{MIX, Scenario};
use crate::stats::Summary;

const MB: f64 = 1_000_000.0;

/// One measured scenario.
pub struct Row {
    pub scenario: Scenario,
    pub summary: Summary,
    /// The server's resident memory at the end of the scenario, in bytes.
    pub rss_after: Option<u64>,
    /// Each server's part (`two-instances` only; empty otherwise).
    pub instances: Vec<Instance>,
}

/// One server's part of a `two-instances` row.
pub struct Instance {
    /// Requests it answered in the window, revocation checks included.
    pub requests: u64,
    /// Its CPU time during the window.
    pub server_cpu: Option<Duration>,
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

    /// Server CPU µs per request of `scenario`, measured in this run.
    fn cpu_us(&self, scenario: Scenario) -> Option<f64> {
        self.rows
            .iter()
            .find(|row| row.scenario == scenario)
            .and_then(|row| row.summary.cpu_us_per_request())
    }

    /// The mix's one-core bound: 1 / the CPU-weighted cost of its parts, each as measured
    /// alone in this run (so only when `me`, `refresh` and `login` ran too).
    pub fn mixed_bound(&self) -> Option<f64> {
        let mut weighted_us = 0.0;
        for (part, percent) in MIX {
            weighted_us += percent / 100.0 * self.cpu_us(part)?;
        }
        Some(1e6 / weighted_us)
    }

    fn verdict(&self, row: &Row) -> Option<Verdict> {
        let s = &row.summary;
        let cpu = s.cpu_us_per_request();
        let throughput = |min: f64, p99_under: f64, cpu_at_most: f64| Verdict {
            target: format!(
                "≤ {cpu_at_most:.0} µs CPU, ≥ {min:.0}/s, p99 < {p99_under} ms, 0 errors"
            ),
            met: cpu.is_some_and(|cpu| cpu <= cpu_at_most)
                && s.per_second >= min
                && s.p99 < p99_under
                && s.errors == 0
                && s.requests > 0,
        };
        match row.scenario {
            Scenario::Me | Scenario::MeCookie => Some(throughput(20_000.0, 5.0, 35.0)),
            Scenario::Refresh => Some(throughput(3_000.0, 10.0, 200.0)),
            Scenario::Mixed => Some(match self.mixed_bound() {
                Some(bound) => Verdict {
                    target: format!("≥ 90 % of its bound {bound:.0}/s, p99 < 10 ms, 0 errors"),
                    met: s.per_second >= 0.9 * bound
                        && s.p99 < 10.0
                        && s.errors == 0
                        && s.requests > 0,
                },
                None => Verdict {
                    target: "a bound (needs me, refresh and login in the same run)".to_owned(),
                    met: false,
                },
            }),
            Scenario::Login => self.argon2_per_second.map(|bound| Verdict {
                target: format!("≥ 95 % of {bound:.1}/s, 0 errors"),
                met: s.per_second >= 0.95 * bound && s.errors == 0,
            }),
            Scenario::Signup | Scenario::Recovery => Some(Verdict {
                target: "0 errors".to_owned(),
                met: s.errors == 0 && s.requests > 0,
            }),
            // A run without a check, or with a server that answered nothing, proved nothing.
            Scenario::TwoInstances => Some(Verdict {
                target: "0 errors, 0 revoked tokens accepted by the other instance".to_owned(),
                met: s.errors == 0
                    && s.revoked_accepted() == 0
                    && s.checks_made() > 0
                    && s.per_instance.iter().all(|&requests| requests > 0),
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
            "| scenario | req/s | CPU µs/req | p50 ms | p90 ms | p99 ms | max ms | server CPU | RSS after | responses | target | met |"
        );
        let _ = writeln!(
            out,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |"
        );
        for row in &self.rows {
            let s = &row.summary;
            let (target, met) = match self.verdict(row) {
                Some(verdict) => (verdict.target, mark(verdict.met)),
                None => ("baseline".to_owned(), ""),
            };
            let cpu = s
                .cpu_share()
                .map_or_else(|| "?".to_owned(), |cpu| format!("{:.0} %", cpu * 100.0));
            let cpu_us = s
                .cpu_us_per_request()
                .map_or_else(|| "?".to_owned(), |us| format!("{us:.0}"));
            let rss = row.rss_after.map_or_else(
                || "?".to_owned(),
                |rss| format!("{:.1} MB", rss as f64 / MB),
            );
            let _ = writeln!(
                out,
                "| {} | {:.0} | {cpu_us} | {:.2} | {:.2} | {:.2} | {:.2} | {cpu} | {rss} | {} | {target} | {met} |",
                row.scenario.name(),
                s.per_second,
                s.p50,
                s.p90,
                s.p99,
                s.max,
                s.statuses_text(),
            );
            render_instances(&mut out, row);
        }
        if let Some(rate) = self.argon2_per_second {
            let _ = writeln!(
                out,
                "| argon2id, one core | {rate:.1} | {:.0} | | | | | | | hashes | baseline | |",
                1e6 / rate
            );
        }
        for (name, value, verdict) in self.memory_verdicts() {
            let _ = writeln!(
                out,
                "| {name} | {value} | | | | | | | | | {} | {} |",
                verdict.target,
                mark(verdict.met)
            );
        }
        if let Some(rss) = self.enrolled_rss {
            let _ = writeln!(
                out,
                "| RSS after enrolling the clients | {:.1} MB | | | | | | | | | | |",
                rss as f64 / MB
            );
        }
        if let Some(rss) = self.final_rss {
            let _ = writeln!(
                out,
                "| RSS after the run | {:.1} MB | | | | | | | | | | |",
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

/// Under a `two-instances` row: each server's req/s and CPU, then the revocation checks.
fn render_instances(out: &mut String, row: &Row) {
    if row.instances.is_empty() {
        return;
    }
    let window = row.summary.window.as_secs_f64();
    for (at, instance) in row.instances.iter().enumerate() {
        let cpu_us = instance
            .server_cpu
            .filter(|_| instance.requests > 0)
            .map_or_else(
                || "?".to_owned(),
                |cpu| format!("{:.0}", cpu.as_secs_f64() * 1e6 / instance.requests as f64),
            );
        let share = instance.server_cpu.map_or_else(
            || "?".to_owned(),
            |cpu| format!("{:.0} %", cpu.as_secs_f64() / window * 100.0),
        );
        let rss = instance.rss_after.map_or_else(
            || "?".to_owned(),
            |rss| format!("{:.1} MB", rss as f64 / MB),
        );
        let _ = writeln!(
            out,
            "| ↳ instance {} | {:.0} | {cpu_us} | | | | | {share} | {rss} | | | |",
            at + 1,
            instance.requests as f64 / window,
        );
    }
    let s = &row.summary;
    let _ = writeln!(
        out,
        "| ↳ logout checks (401 expected) | {} made | | | | | | | | {} | revoked accepted: {} | |",
        s.checks_made(),
        s.checks_text(),
        s.revoked_accepted(),
    );
}

fn mark(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::Recorder;

    /// `count` requests of `status`, each taking `latency`, over one second, the server
    /// spending `cpu_us` µs of CPU on each.
    fn row(scenario: Scenario, count: u32, status: u16, latency: Duration, cpu_us: u64) -> Row {
        let mut recorder = Recorder::default();
        for _ in 0..count {
            recorder.record(status, latency);
        }
        let mut summary = recorder.summarize(Duration::from_secs(1));
        summary.server_cpu = Some(Duration::from_micros(cpu_us * u64::from(count)));
        Row {
            scenario,
            summary,
            rss_after: None,
            instances: Vec::new(),
        }
    }

    /// A `two-instances` row: `count` `me` requests on each server, `checks` checks (one
    /// half on each) answered `check_status`, `cpu_us` µs of each server's CPU per request.
    fn two_instances(count: u32, checks: u32, check_status: u16, cpu_us: u64) -> Row {
        let mut recorder = Recorder::default();
        for at in [0, 1] {
            for _ in 0..count {
                recorder.record_on(at, 200, Duration::from_millis(1));
            }
        }
        for check in 0..checks {
            recorder.record_check(check as usize % 2, check_status, Duration::from_millis(2));
        }
        let mut summary = recorder.summarize(Duration::from_secs(1));
        let instances: Vec<Instance> = summary
            .per_instance
            .iter()
            .map(|&requests| Instance {
                requests,
                server_cpu: Some(Duration::from_micros(cpu_us * requests)),
                rss_after: Some(40_000_000),
            })
            .collect();
        summary.server_cpu = instances.iter().map(|instance| instance.server_cpu).sum();
        Row {
            scenario: Scenario::TwoInstances,
            summary,
            rss_after: Some(40_000_000),
            instances,
        }
    }

    fn report(rows: Vec<Row>) -> Report {
        let mut report = Report::new(64, 1, 1);
        report.rows = rows;
        report
    }

    #[test]
    fn a_scenario_meets_its_target_only_cheap_fast_quick_enough_and_without_errors() {
        let quick = Duration::from_millis(1);
        assert!(report(vec![row(Scenario::Me, 20_000, 200, quick, 35)]).all_met());
        assert!(!report(vec![row(Scenario::Me, 20_000, 200, quick, 36)]).all_met());
        assert!(!report(vec![row(Scenario::Me, 19_999, 200, quick, 35)]).all_met());
        let slow = Duration::from_millis(6);
        assert!(!report(vec![row(Scenario::Me, 20_000, 200, slow, 35)]).all_met());
        let mut with_an_error = row(Scenario::Me, 20_000, 200, quick, 35);
        with_an_error.summary.errors = 1;
        assert!(!report(vec![with_an_error]).all_met());
        let mut unmeasured = row(Scenario::Me, 20_000, 200, quick, 35);
        unmeasured.summary.server_cpu = None;
        assert!(!report(vec![unmeasured]).all_met());

        assert!(report(vec![row(Scenario::Refresh, 3_000, 204, quick, 200)]).all_met());
        assert!(!report(vec![row(Scenario::Refresh, 3_000, 204, quick, 201)]).all_met());
        assert!(!report(vec![row(Scenario::Refresh, 2_999, 204, quick, 200)]).all_met());
        let ten = Duration::from_millis(10);
        assert!(!report(vec![row(Scenario::Refresh, 3_000, 204, ten, 200)]).all_met());

        assert!(!report(vec![row(Scenario::Signup, 0, 201, quick, 0)]).all_met());
        // A baseline has no target.
        assert!(report(vec![row(Scenario::Health, 1, 200, slow, 1)]).all_met());
    }

    #[test]
    fn the_mix_is_judged_against_the_cpu_weighted_cost_of_its_parts() {
        let quick = Duration::from_millis(1);
        // 0.9 × 30 + 0.09 × 200 + 0.01 × 25,000 = 295 µs: a bound of 3,390/s.
        let parts = || {
            vec![
                row(Scenario::Me, 20_000, 200, quick, 30),
                row(Scenario::Refresh, 3_000, 204, quick, 200),
                row(Scenario::Login, 40, 204, quick, 25_000),
            ]
        };
        let mut run = report(parts());
        let bound = run.mixed_bound().unwrap();
        assert!((bound - 1e6 / 295.0).abs() < 1e-6, "{bound}");
        run.rows.push(row(Scenario::Mixed, 3_051, 200, quick, 295));
        assert!(run.all_met(), "{}", run.render());
        let mut run = report(parts());
        run.rows.push(row(Scenario::Mixed, 3_050, 200, quick, 295));
        assert!(!run.all_met());
        let mut run = report(parts());
        run.rows.push(row(
            Scenario::Mixed,
            3_051,
            200,
            Duration::from_millis(10),
            295,
        ));
        assert!(!run.all_met());
        // Without its parts in the same run the mix has no bound and is not met.
        let alone = report(vec![row(Scenario::Mixed, 10_000, 200, quick, 100)]);
        assert_eq!(alone.mixed_bound(), None);
        assert!(!alone.all_met());
    }

    #[test]
    fn login_is_judged_against_the_argon2_bound_and_memory_against_its_limits() {
        let mut run = report(vec![row(
            Scenario::Login,
            95,
            204,
            Duration::from_millis(900),
            10_000,
        )]);
        run.argon2_per_second = Some(100.0);
        assert!(run.all_met());
        run.argon2_per_second = Some(101.0);
        assert!(!run.all_met());
        run.argon2_per_second = Some(100.0);
        run.idle_rss = Some(19_000_000);
        run.peak_rss = Some(99_000_000);
        assert!(run.all_met());
        run.peak_rss = Some(100_000_000);
        assert!(!run.all_met());
        assert!(run.render().contains("TARGETS MISSED"));
    }

    #[test]
    fn two_instances_is_met_only_with_checks_made_all_refused_and_no_errors() {
        assert!(report(vec![two_instances(5_000, 10, 401, 50)]).all_met());
        // A revoked token accepted by the other server.
        let accepted = report(vec![two_instances(5_000, 10, 200, 50)]);
        assert!(!accepted.all_met());
        assert!(accepted.render().contains("revoked accepted: 10"));
        // A check without an answer checked nothing.
        assert!(!report(vec![two_instances(5_000, 10, 500, 50)]).all_met());
        // No check in the window.
        assert!(!report(vec![two_instances(5_000, 0, 401, 50)]).all_met());
        // A server that answered nothing.
        let mut lopsided = two_instances(5_000, 10, 401, 50);
        lopsided.summary.per_instance[1] = 0;
        assert!(!report(vec![lopsided]).all_met());
        let mut with_an_error = two_instances(5_000, 10, 401, 50);
        with_an_error.summary.errors = 1;
        assert!(!report(vec![with_an_error]).all_met());
    }

    #[test]
    fn two_instances_shows_both_throughputs_cpu_summed_and_the_checks() {
        let table = report(vec![two_instances(5_000, 10, 401, 50)]).render();
        // 10,010 requests over both; 50 µs each of CPU, summed over both servers: 50 %.
        assert!(
            table.contains("| two-instances | 10010 | 50 | 1.00 |"),
            "{table}"
        );
        assert!(table.contains("| 50 % | 40.0 MB | 200×10000 |"), "{table}");
        assert!(
            table.contains("| ↳ instance 1 | 5005 | 50 | | | | | 25 % | 40.0 MB |"),
            "{table}"
        );
        assert!(table.contains("| ↳ instance 2 | 5005 | 50 |"), "{table}");
        assert!(
            table.contains("| ↳ logout checks (401 expected) | 10 made |"),
            "{table}"
        );
        assert!(
            table.contains("| 401×10 | revoked accepted: 0 |"),
            "{table}"
        );
        assert!(table.contains("every target met"), "{table}");
    }

    #[test]
    fn the_table_shows_cpu_per_request_and_share() {
        let table = report(vec![row(
            Scenario::Refresh,
            2_000,
            204,
            Duration::from_millis(1),
            250,
        )])
        .render();
        assert!(table.contains("| refresh | 2000 | 250 |"), "{table}");
        assert!(table.contains("| 50 % |"), "{table}");
    }
}
