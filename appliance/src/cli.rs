//! The `portcullis` command line.
//!
//! Output conventions: results go to stdout; configuration errors go to stderr, one per line
//! as `FILE:LINE:COL: path: message`; exit status 1 on any error, 2 on usage errors (clap).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{
    Config, ConfigError, LoadOptions, DEFAULT_TOML, EMBEDDED_ORIGIN, EXAMPLE_TOKEN_PLACEHOLDER,
    EXAMPLE_TOML,
};
use crate::runtime::ConfigSource;

/// Portcullis session border controller.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the appliance (without --config: the embedded loopback default).
    Run {
        /// Configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run a media node: the data plane and rtpengine's ng control protocol (`[ng]`), no
    /// SIP, so Kamailio's rtpengine module drives it as it would drive rtpengine.
    MediaNode {
        /// Configuration file (needs `[ng]`; SIP listeners, trunks and routes are not used).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a configuration file and report every problem.
    CheckConfig {
        /// Configuration file.
        file: PathBuf,
        /// Do not read certificate, key and CA files (check a file meant for another machine).
        #[arg(long)]
        no_files: bool,
    },
    /// Print a commented example configuration covering every section (with a fresh
    /// random admin token).
    GenerateConfig,
    /// Print a fresh admin bearer token (32 bytes from the OS random number generator, hex).
    GenerateToken,
    /// Print the embedded default configuration used by `run` without --config.
    DefaultConfig,
    /// Print the version.
    Version,
    /// Show readiness, live calls and trunks of a running appliance (admin API client).
    Status {
        /// Admin API address (default: $PORTCULLIS_ADMIN, else 127.0.0.1:8080).
        #[arg(long)]
        admin: Option<String>,
        /// Bearer token (default: $PORTCULLIS_ADMIN_TOKEN).
        #[arg(long)]
        token: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the log filter of a running appliance, or set it (admin API client).
    LogLevel {
        /// New filter: a level (error, warn, info, debug, trace, off) or directives such
        /// as `info,portcullis_net=debug`. Without it, print the filter in force.
        level: Option<String>,
        /// Admin API address (default: $PORTCULLIS_ADMIN, else 127.0.0.1:8080).
        #[arg(long)]
        admin: Option<String>,
        /// Bearer token (default: $PORTCULLIS_ADMIN_TOKEN).
        #[arg(long)]
        token: Option<String>,
    },
    /// List the live calls of a running appliance (admin API client).
    Calls {
        /// Admin API address (default: $PORTCULLIS_ADMIN, else 127.0.0.1:8080).
        #[arg(long)]
        admin: Option<String>,
        /// Bearer token (default: $PORTCULLIS_ADMIN_TOKEN).
        #[arg(long)]
        token: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = dispatch(cli.command);
    // Buffered log lines first, so the error below comes last.
    crate::logging::flush();
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "portcullis: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cmd: Command) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        Command::Run { config } => {
            let opts = LoadOptions::default();
            let (cfg, origin) = match &config {
                Some(path) => (Config::load(path, &opts), path.display().to_string()),
                None => (Config::embedded_default(&opts), EMBEDDED_ORIGIN.to_owned()),
            };
            match cfg {
                Ok(cfg) => {
                    writeln!(out, "portcullis: using config {origin} ({})", summary(&cfg))?;
                    let source = config.map_or(ConfigSource::Embedded, ConfigSource::File);
                    cmd_run(cfg, source)?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => report(&e),
            }
        }
        Command::MediaNode { config } => match Config::load(&config, &LoadOptions::default()) {
            Ok(cfg) if cfg.ng.is_none() => {
                let mut err = std::io::stderr().lock();
                writeln!(
                    err,
                    "{}: ng: a media node needs an [ng] section with its listen address",
                    config.display()
                )?;
                Ok(ExitCode::FAILURE)
            }
            Ok(cfg) => {
                writeln!(
                    out,
                    "portcullis: media node with config {} ({})",
                    config.display(),
                    summary(&cfg)
                )?;
                drop(out);
                crate::ng::node::run(&cfg)?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => report(&e),
        },
        Command::CheckConfig { file, no_files } => {
            let opts = LoadOptions {
                check_files: !no_files,
                ..LoadOptions::default()
            };
            match Config::load(&file, &opts) {
                Ok(cfg) => {
                    writeln!(out, "{}: ok ({})", file.display(), summary(&cfg))?;
                    for w in cfg.warnings() {
                        writeln!(out, "{}: warning: {w}", file.display())?;
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => report(&e),
            }
        }
        Command::GenerateConfig => {
            let token = crate::entropy::admin_token()?;
            out.write_all(
                EXAMPLE_TOML
                    .replacen(EXAMPLE_TOKEN_PLACEHOLDER, &token, 1)
                    .as_bytes(),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::GenerateToken => {
            writeln!(out, "{}", crate::entropy::admin_token()?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::DefaultConfig => {
            out.write_all(DEFAULT_TOML.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            writeln!(out, "portcullis {}", env!("CARGO_PKG_VERSION"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { admin, token, json } => {
            let opts = crate::admin::client::ClientOptions::from_args(admin, token);
            let ready = crate::admin::client::cmd_status(&opts, json, &mut out)?;
            Ok(if ready {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::LogLevel {
            level,
            admin,
            token,
        } => {
            let opts = crate::admin::client::ClientOptions::from_args(admin, token);
            crate::admin::client::cmd_log_level(&opts, level.as_deref(), &mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Calls { admin, token, json } => {
            let opts = crate::admin::client::ClientOptions::from_args(admin, token);
            crate::admin::client::cmd_calls(&opts, json, &mut out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints a load error (every diagnostic on its own line) and returns the failure status.
fn report(e: &ConfigError) -> anyhow::Result<ExitCode> {
    let mut err = std::io::stderr().lock();
    writeln!(err, "{e}")?;
    if let ConfigError::Invalid { diagnostics, .. } = e {
        writeln!(err, "{} error(s)", diagnostics.len())?;
    }
    Ok(ExitCode::FAILURE)
}

/// One-line description of a loaded configuration.
pub fn summary(cfg: &Config) -> String {
    format!(
        "{} listener(s), {} trunk(s), {} route(s), {} dataplane core(s) {:?}, media {}:{}, teams {}, ng {}",
        cfg.sip.listeners.len(),
        cfg.trunks.len(),
        cfg.routes.len(),
        cfg.media.cores.len(),
        cfg.media.cores.as_slice(),
        cfg.media.advertised_ip,
        cfg.media.ports,
        if cfg.teams.is_some() { "on" } else { "off" },
        cfg.ng
            .as_ref()
            .map_or_else(|| "off".to_owned(), |n| n.listen.to_string()),
    )
}

/// Runs the appliance with a checked configuration until SIGTERM (see
/// [`crate::runtime`]) with the admin HTTP API ([`crate::admin`]); SIGHUP reloads from
/// `source`.
pub fn cmd_run(config: Config, source: ConfigSource) -> anyhow::Result<()> {
    let admin = crate::admin::backend::extension(&config.admin);
    crate::runtime::run_with(config, source, vec![admin])
}
