//! `loadgen`: drives a running authd with K concurrent clients, each with its own user and
//! session, through the benchmark scenarios, and prints one table with the targets checked.
//! `make bench` starts the server and calls this; see BENCHMARKS.md.

mod argon;
mod client;
mod report;
mod scenario;
mod server;
mod smtp;
mod stats;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

use crate::report::{Instance, Report, Row};
use crate::scenario::{Client, LOGOUT_EVERY, Scenario, Window};
use crate::stats::Recorder;

#[derive(Debug, Parser)]
#[command(about = "Load generator for authd: prints req/s, latency percentiles and statuses")]
struct Cli {
    /// host:port of the server under test.
    #[arg(long, default_value = "127.0.0.1:8000")]
    address: String,
    /// Concurrent clients, each with its own user and session.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds of load before each measured window.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Seconds of each measured window.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Scenarios to run, in order (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// The server's pid, to report its memory and CPU use.
    #[arg(long)]
    server_pid: Option<u32>,
    /// host:port of a second server on the same Postgres and Redis, for `two-instances`.
    #[arg(long)]
    second_address: Option<String>,
    /// The second server's pid.
    #[arg(long)]
    second_server_pid: Option<u32>,
    /// In `two-instances`, about one step in this many is a logout, its check on the other
    /// server, and a new login (one Argon2 hash: keep it rare).
    #[arg(long, default_value_t = LOGOUT_EVERY)]
    logout_every: u64,
    /// host:port to take the server's emails on (its `AUTHD_SMTP_URL`), for `recovery`.
    #[arg(long)]
    smtp_listen: Option<String>,
    /// Accounts each client signs up beforehand for `recovery`: one per reset. The run ends
    /// with an error if they run out (about 60 resets a second fit one core).
    #[arg(long, default_value_t = 16)]
    recovery_accounts: usize,
    /// Argon2id memory cost of the server, for the one-core hash-rate baseline.
    #[arg(long, env = "AUTHD_ARGON2_MEMORY_KIB", default_value_t = 19456)]
    argon2_memory_kib: u32,
    /// Argon2id time cost.
    #[arg(long, env = "AUTHD_ARGON2_ITERATIONS", default_value_t = 2)]
    argon2_iterations: u32,
    /// Argon2id lanes.
    #[arg(long, env = "AUTHD_ARGON2_PARALLELISM", default_value_t = 1)]
    argon2_parallelism: u32,
    /// Also write the table, as Markdown, to this file.
    #[arg(long)]
    markdown: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("loadgen: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(report) if report.all_met() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(error) => {
            eprintln!("loadgen: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<Report> {
    let scenarios = if cli.scenarios.is_empty() {
        Scenario::value_variants().to_vec()
    } else {
        cli.scenarios.clone()
    };
    // Fail before any load rather than after minutes of it.
    anyhow::ensure!(
        !scenarios.contains(&Scenario::TwoInstances) || cli.second_address.is_some(),
        "two-instances needs a second server: pass --second-address (bench/run.sh starts one), \
         or leave the scenario out with --scenarios"
    );
    anyhow::ensure!(
        !scenarios.contains(&Scenario::Recovery) || cli.smtp_listen.is_some(),
        "recovery reads the reset emails: pass --smtp-listen with the server's AUTHD_SMTP_URL \
         address (bench/run.sh does), or leave the scenario out with --scenarios"
    );
    // Up before any sign-up, so no email waits for a retry.
    let mailbox = match &cli.smtp_listen {
        Some(address) => Some(smtp::start(address).await?),
        None => None,
    };
    let mut report = Report::new(cli.clients, cli.warmup, cli.duration);
    report.idle_rss = cli.server_pid.and_then(server::memory).map(|(rss, _)| rss);

    let run_id = format!("{}-{}", std::process::id(), unix_seconds());
    eprintln!("enrolling {} clients (signup + login each)", cli.clients);
    let mut clients = Vec::with_capacity(cli.clients);
    let enrolments: Vec<_> = (0..cli.clients)
        .map(|index| {
            let (address, run_id) = (cli.address.clone(), run_id.clone());
            tokio::spawn(async move { Client::enrol(&address, &run_id, index).await })
        })
        .collect();
    for enrolment in enrolments {
        let mut client = enrolment.await??;
        if let Some(second) = &cli.second_address {
            client.add_instance(second);
        }
        clients.push(client);
    }
    report.enrolled_rss = cli.server_pid.and_then(server::memory).map(|(rss, _)| rss);
    if let (true, Some(mailbox)) = (scenarios.contains(&Scenario::Recovery), &mailbox) {
        eprintln!(
            "enrolling {} spare accounts per client for recovery",
            cli.recovery_accounts
        );
        let enrolments: Vec<_> = clients
            .into_iter()
            .map(|mut client| {
                let (count, mailbox) = (cli.recovery_accounts, mailbox.clone());
                tokio::spawn(
                    async move { client.enrol_spares(count, mailbox).await.map(|()| client) },
                )
            })
            .collect();
        clients = Vec::with_capacity(enrolments.len());
        for enrolment in enrolments {
            clients.push(enrolment.await??);
        }
    }

    for scenario in scenarios {
        if scenario == Scenario::Login {
            eprintln!("measuring the one-core Argon2id hash rate");
            report.argon2_per_second = Some(argon::hashes_per_second(
                cli.argon2_memory_kib,
                cli.argon2_iterations,
                cli.argon2_parallelism,
                Duration::from_secs(cli.duration.min(5)),
            )?);
        }
        eprintln!("running {}", scenario.name());
        let (back, row) = measure(scenario, clients, &cli).await?;
        clients = back;
        if let (Scenario::Recovery, Some((median, longest, count))) = (
            scenario,
            mailbox.as_ref().and_then(|mailbox| mailbox.waits()),
        ) {
            eprintln!(
                "recovery: {count} reset emails arrived {median:.1?} (median) to {longest:.1?} after their requests were answered"
            );
        }
        report.rows.push(row);
    }

    if let Some((rss, peak)) = cli.server_pid.and_then(server::memory) {
        report.final_rss = Some(rss);
        report.peak_rss = Some(peak);
    }
    let table = report.render();
    println!("{table}");
    if let Some(path) = &cli.markdown {
        std::fs::write(path, &table)?;
    }
    Ok(report)
}

/// Runs one scenario with every client: warm-up, then the measured window.
async fn measure(
    scenario: Scenario,
    clients: Vec<Client>,
    cli: &Cli,
) -> anyhow::Result<(Vec<Client>, Row)> {
    let window = Duration::from_secs(cli.duration);
    let measure_from = Instant::now() + Duration::from_secs(cli.warmup);
    let end = measure_from + window;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let window = Window {
                from: measure_from,
                end,
            };
            tokio::spawn(client.run(scenario, cli.logout_every, window))
        })
        .collect();

    let pids = server_pids(scenario, cli);
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_before: Vec<_> = pids
        .iter()
        .map(|pid| pid.and_then(server::cpu_time))
        .collect();
    tokio::time::sleep_until(end.into()).await;
    let cpu_after: Vec<_> = pids
        .iter()
        .map(|pid| pid.and_then(server::cpu_time))
        .collect();

    let mut recorder = Recorder::default();
    let mut clients = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (client, recorded) = task.await?;
        clients.push(client);
        recorder.merge(recorded);
    }
    let mut summary = recorder.summarize(window);
    let cpu: Vec<Option<Duration>> = cpu_before
        .iter()
        .zip(&cpu_after)
        .map(|(before, after)| Some(after.as_ref()?.saturating_sub(*before.as_ref()?)))
        .collect();
    // The total only when every server's is known: half of it would pass for all.
    summary.server_cpu = cpu.iter().copied().sum();
    let rss: Vec<Option<u64>> = pids
        .iter()
        .map(|pid| pid.and_then(server::memory).map(|(rss, _)| rss))
        .collect();
    let instances = if scenario == Scenario::TwoInstances {
        (0..pids.len())
            .map(|at| Instance {
                requests: summary.per_instance[at.min(1)],
                server_cpu: cpu[at],
                rss_after: rss[at],
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok((
        clients,
        Row {
            scenario,
            summary,
            rss_after: rss[0],
            instances,
        },
    ))
}

/// The servers a scenario loads: both in `two-instances`, else the first.
fn server_pids(scenario: Scenario, cli: &Cli) -> Vec<Option<u32>> {
    if scenario == Scenario::TwoInstances {
        vec![cli.server_pid, cli.second_server_pid]
    } else {
        vec![cli.server_pid]
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
