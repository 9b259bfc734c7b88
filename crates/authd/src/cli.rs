//! The command line: `authd [serve]`, `authd migrate`, `authd keys generate`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::settings::{Args, LogFormat};

/// authd: email and password authentication with rotating JWT sessions.
#[derive(Debug, Parser)]
#[command(name = "authd", version)]
pub struct Cli {
    /// TOML file of settings, keyed by their variable names (`AUTHD_LISTEN = "0.0.0.0:8000"`);
    /// environment variables and flags override it.
    #[arg(long, env = "AUTHD_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: Args,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// Key commands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new private signing key (a JWK with its kid and alg).
    Generate {
        /// EdDSA, ES256 or HS256.
        #[arg(long, default_value = "EdDSA")]
        algorithm: String,
        /// File to write (refuses to overwrite).
        #[arg(long)]
        out: PathBuf,
    },
}

impl Cli {
    /// Parses the command line, with the `--config` file's values as defaults.
    pub fn parse_with_config(args: Vec<OsString>) -> Result<Self, clap::Error> {
        let mut command = Self::command_by_variable();
        if let Some(path) = config_path(&args) {
            let values = read_config(&path).map_err(|error| {
                Self::command().error(
                    clap::error::ErrorKind::InvalidValue,
                    format!("--config {}: {error:#}", path.display()),
                )
            })?;
            for (name, value) in values {
                let id = command
                    .get_arguments()
                    .find(|arg| {
                        arg.get_env()
                            .is_some_and(|env| env.eq_ignore_ascii_case(&name))
                    })
                    .map(|arg| arg.get_id().clone());
                let Some(id) = id else {
                    return Err(Self::command().error(
                        clap::error::ErrorKind::UnknownArgument,
                        format!("--config {}: unknown setting {name}", path.display()),
                    ));
                };
                // The file's values can be secrets too: `--help` shows no default for them.
                command =
                    command.mut_arg(id, |arg| arg.default_value(value).hide_default_value(true));
            }
        }
        let matches = command.try_get_matches_from(args)?;
        Self::from_arg_matches(&matches)
    }

    /// The command, with help showing each setting by its variable name, the name operators
    /// know it by, and never its value from the environment (`[env: DATABASE_URL]`, not
    /// `[env: DATABASE_URL=postgres://user:password@…]`): any setting may hold a secret, and a
    /// setting added later is covered without anyone remembering to.
    fn command_by_variable() -> clap::Command {
        Self::command().mut_args(|arg| {
            let arg = arg.hide_env_values(true);
            match arg
                .get_env()
                .and_then(|env| env.to_str())
                .map(str::to_owned)
            {
                Some(env) => arg.value_name(env),
                None => arg,
            }
        })
    }
}

/// `--config FILE`, `--config=FILE` or `AUTHD_CONFIG`, found before clap parses so the file can
/// supply defaults.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let arg = arg.to_string_lossy();
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("AUTHD_CONFIG").map(PathBuf::from)
}

fn read_config(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).context("cannot read the file")?;
    let table: toml::Table = toml::from_str(&text).context("not valid TOML")?;
    table
        .into_iter()
        .map(|(name, value)| {
            let value = match value {
                toml::Value::String(text) => text,
                toml::Value::Integer(number) => number.to_string(),
                toml::Value::Boolean(flag) => flag.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|item| match item {
                        toml::Value::String(text) => text.clone(),
                        other => format!("{other:?}"),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => bail!("{name}: unsupported value {other:?}"),
            };
            Ok((name, value))
        })
        .collect()
}

/// Installs the log subscriber on standard error: `RUST_LOG` (default `info`) in the chosen format.
pub fn init_logging(format: LogFormat) -> std::io::Result<crate::logging::LogGuard> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, never in files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Logs go to standard error, so a command's own output (migrate, keys) stays clean.
    let (writer, guard) = crate::logging::start(std::io::stderr())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_config_file_supplies_defaults_that_flags_override() {
        let dir = std::env::temp_dir().join(format!("authd-cli-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("authd.toml");
        std::fs::write(&file, "AUTHD_ISSUER = \"from-file\"\nAUTHD_ACCESS_TTL_SECONDS = 60\nAUTHD_COOKIE_SECURE = false\n").unwrap();
        let path = file.to_str().unwrap();
        let cli =
            Cli::parse_with_config(args(&["authd", "--config", path, "--issuer", "from-flag"]))
                .unwrap();
        assert_eq!(cli.settings.issuer, "from-flag");
        assert_eq!(cli.settings.access_ttl_seconds, 60);
        assert!(!cli.settings.cookie_secure);
        std::fs::write(&file, "NOT_A_SETTING = 1\n").unwrap();
        let error = Cli::parse_with_config(args(&["authd", "--config", path])).unwrap_err();
        assert!(error.to_string().contains("unknown setting NOT_A_SETTING"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn subcommands_parse() {
        let cli = Cli::parse_with_config(args(&[
            "authd",
            "keys",
            "generate",
            "--algorithm",
            "ES256",
            "--out",
            "k.json",
        ]))
        .unwrap();
        assert!(
            matches!(cli.command, Some(Command::Keys(KeysCommand::Generate { ref algorithm, .. })) if algorithm == "ES256")
        );
        assert!(Cli::parse_with_config(args(&["authd", "migrate"])).is_ok());
    }

    #[test]
    fn help_shows_no_value_from_the_config_file() {
        let dir = std::env::temp_dir().join(format!("authd-cli-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("authd.toml");
        std::fs::write(
            &file,
            "DATABASE_URL = \"postgres://authd:file-db-secret@db.internal/authd\"\n\
             AUTHD_ADMIN_PASSWORD = \"file-admin-secret\"\n\
             AUTHD_ISSUER = \"file-issuer-secret\"\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let help = Cli::parse_with_config(args(&["authd", "--config", path, "--help"]))
            .unwrap_err()
            .render()
            .to_string();
        std::fs::remove_dir_all(dir).unwrap();
        assert!(help.contains("DATABASE_URL"), "{help}");
        for secret in ["file-db-secret", "file-admin-secret", "file-issuer-secret"] {
            assert!(!help.contains(secret), "--help printed {secret}: {help}");
        }
        // Defaults the file does not replace are still documented.
        assert!(help.contains("[default: 127.0.0.1:8000]"), "{help}");
    }

    #[test]
    fn help_documents_every_setting_with_its_variable() {
        let help = Cli::command_by_variable().render_long_help().to_string();
        assert!(help.contains("--listen <AUTHD_LISTEN>"), "{help}");
        for variable in [
            "AUTHD_LISTEN",
            "DATABASE_URL",
            "REDIS_URL",
            "AUTHD_JWT_KEY_FILES",
            "AUTHD_REFRESH_GRACE_SECONDS",
            "AUTHD_LOG_FORMAT",
        ] {
            assert!(help.contains(variable), "{variable} missing from --help");
        }
    }
}
