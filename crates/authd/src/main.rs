//! `authd`: see `authd --help`.

use std::process::ExitCode;

use authd::cli::{Cli, Command, KeysCommand};
use authd::{Application, Settings};

fn main() -> ExitCode {
    let cli = match Cli::parse_with_config(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            // --help or --version.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            // One line naming the bad setting, not clap's usage block.
            let message = error.render().to_string();
            let line = message.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "authd: configuration error: {}",
                line.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::try_from(cli.settings) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("authd: configuration error: {error:#}");
            return ExitCode::from(2);
        }
    };
    let logs = match authd::cli::init_logging(settings.log_format) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("authd: cannot start logging: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Migrate => migrate(&settings),
        Command::Keys(KeysCommand::Generate { algorithm, out }) => generate_key(&algorithm, &out),
    };
    // Every queued log line is out before the final word.
    drop(logs);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("authd: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let application = Application::build(settings).await?;
        application.run_until_signalled().await?;
        tracing::info!("authd stopped");
        Ok(())
    })
}

fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let url = settings
        .database_url
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL is not set: nothing to migrate"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Named like the start-up's own error, never with the URL (it may hold a password).
    let applied = runtime
        .block_on(authd_postgres::run_migrations(url.expose()))
        .map_err(|error| error.context("DATABASE_URL: cannot run the migrations"))?;
    println!(
        "applied {} migration(s){}",
        applied.len(),
        if applied.is_empty() {
            String::new()
        } else {
            format!(": {}", applied.join(", "))
        }
    );
    Ok(())
}

fn generate_key(algorithm: &str, out: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    let algorithm: authd_crypto::Algorithm = algorithm.parse()?;
    let jwk = authd_crypto::generate_key(algorithm)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(out)
        .map_err(|error| anyhow::anyhow!("--out {}: {error}", out.display()))?;
    file.write_all(jwk.as_bytes())?;
    println!("wrote a new {algorithm} signing key to {}", out.display());
    Ok(())
}
