//! Provisioning: one TOML file → serde structs with `deny_unknown_fields` ([`raw`]) →
//! checked newtypes ([`types`]) → an immutable runtime [`Config`] ([`model`]), meant to be
//! shared as `Arc<Config>` and swapped as a whole on reload.
//!
//! Syntax and type errors stop parsing and are reported with line and column. Semantic checks
//! then run over the whole file and report every problem, each with its TOML path
//! (`route[2].targets[0]`, 0-based indices) and the position of the offending value.
//! The reference of every key is docs/configuration.md.

mod check;
mod check_ha;
mod check_media;
mod check_otel;
mod check_peers;
mod check_policy;
mod check_realms;
mod check_register;
mod check_sip;
mod check_targets;
mod checker;
pub mod diag;
pub mod host;
pub mod model;
pub mod raw;
pub mod raw_ha;
pub mod raw_otel;
pub mod raw_policy;
mod raw_sip;
mod raw_targets;
pub mod types;

use std::path::{Path, PathBuf};

pub use check::MIN_ADMIN_TOKEN_LEN;
pub use check_ha::HA_QUEUE_BOUNDS;
pub use check_media::MIN_STREAMS_PER_CORE;
pub use check_otel::{OTEL_QUEUE_BOUNDS, OTEL_TIMEOUT_BOUNDS};
pub use check_policy::MAX_HEADER_RULES;
pub use checker::LoadOptions;
pub use diag::{Diagnostic, LineCol};
pub use host::HostInfo;
pub use ipnet::IpNet;
pub use model::*;
pub use types::{parse_cidr, CoreList, Fqdn, Host, HostPort, PortRange, TrunkName};

/// The configuration used by `portcullis run` without `--config`: loopback only, two local
/// test trunks routed to each other.
pub const DEFAULT_TOML: &str = include_str!("../default.toml");

/// The commented example printed by `portcullis generate-config`. Lines where `#` is directly
/// followed by a key or a table header are disabled settings (TLS and Teams, which need real
/// certificate files); prose comments start with `# `.
pub const EXAMPLE_TOML: &str = include_str!("example.toml");

/// The admin token placeholder of [`EXAMPLE_TOML`]; `generate-config` replaces it with a
/// fresh token from the OS CSPRNG.
pub const EXAMPLE_TOKEN_PLACEHOLDER: &str = "replace-with-a-long-random-token";

/// Name shown for the embedded default in messages.
pub const EMBEDDED_ORIGIN: &str = "<embedded default>";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file has syntax, type or semantic errors (at least one).
    #[error("{}", render_all(origin, diagnostics))]
    Invalid {
        /// File name (or [`EMBEDDED_ORIGIN`]).
        origin: String,
        /// Every problem found, in file order where positions are known.
        diagnostics: Vec<Diagnostic>,
    },
}

fn render_all(origin: &str, diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| d.render(origin))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Parses and checks `src`. Relative paths in the file (certificates, CDR) are resolved
    /// against `base_dir`. On failure returns every diagnostic, sorted by position.
    pub fn from_toml(
        src: &str,
        base_dir: &Path,
        opts: &LoadOptions,
    ) -> Result<Self, Vec<Diagnostic>> {
        let raw: raw::RawConfig =
            toml::from_str(src).map_err(|e| vec![syntax_diagnostic(src, &e)])?;
        let mut checker = checker::Checker::new(src, base_dir, opts);
        match check::check(&raw, &mut checker) {
            Some(cfg) if checker.diags.is_empty() => Ok(cfg),
            _ => {
                let mut diags = checker.diags;
                if diags.is_empty() {
                    diags.push(Diagnostic {
                        path: String::new(),
                        location: None,
                        message: "configuration rejected".into(),
                    });
                }
                diags.sort_by_key(|d| d.location);
                Err(diags)
            }
        }
    }

    /// Reads and checks a file; relative paths inside resolve against the file's directory.
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Self, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Self::from_toml(&src, base, opts).map_err(|diagnostics| ConfigError::Invalid {
            origin: path.display().to_string(),
            diagnostics,
        })
    }

    /// The embedded default ([`DEFAULT_TOML`]); relative paths resolve against the current
    /// directory.
    pub fn embedded_default(opts: &LoadOptions) -> Result<Self, ConfigError> {
        Self::from_toml(DEFAULT_TOML, Path::new("."), opts).map_err(|diagnostics| {
            ConfigError::Invalid {
                origin: EMBEDDED_ORIGIN.into(),
                diagnostics,
            }
        })
    }
}

/// Turns a toml/serde error into a positioned diagnostic.
fn syntax_diagnostic(src: &str, e: &toml::de::Error) -> Diagnostic {
    let location = e.span().map(|s| LineCol::from_offset(src, s.start));
    // A type error comes from a document that parsed: name the setting it is about.
    let path = match (e.span(), toml_edit::ImDocument::parse(src)) {
        (Some(span), Ok(doc)) => diag::path_at(&doc, span.start),
        _ => String::new(),
    };
    let message = e.message().trim_end().replace('\n', " ");
    Diagnostic {
        path,
        location,
        message,
    }
}
