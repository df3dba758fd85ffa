//! Logging: the global `tracing` subscriber with a filter that can be changed while the
//! appliance runs, and output that journald understands.
//!
//! - The filter starts from `RUST_LOG` when set, else from `[log] level`. It is a
//!   `tracing_subscriber` reload layer: [`set_filter`] swaps it at run time (admin API
//!   `PUT /api/v1/log-level`), and a configuration reload whose `[log] level` differs from
//!   the running file's applies the new level ([`apply_config_level`]).
//! - Lines go to stderr, text or JSON (`[log] format`). Under systemd with stderr connected
//!   to the journal (`JOURNAL_STREAM` names stderr's device and inode, see
//!   systemd.exec(5)), each line starts with its syslog priority (`<3>` error, `<4>` warn,
//!   `<6>` info, `<7>` debug and trace; sd-daemon(3)), which journald strips and stores as
//!   `PRIORITY=`, and the timestamp is left out (the journal stamps every line itself).
//!   `journalctl -p warning -u portcullis` then filters by level.
//! - Lines never block the thread that logs them (the engine task above all): they go
//!   through a bounded buffer of `[log] buffer_lines` lines to a writer thread
//!   (`tracing-appender`'s non-blocking writer, lossy). When stderr stalls (a full pipe
//!   nobody reads, a stuck journald) and the buffer is full, new lines are dropped and
//!   counted ([`lines_dropped`], metric `portcullis_log_lines_dropped_total`);
//!   [`flush`] at exit writes what is buffered (waiting a second at most).
//! - Calls log inside a span `call{call=N a_call_id=.. b_call_id=..}` (see
//!   `runtime::call_log`), so `journalctl -u portcullis | grep CALL-ID` finds every
//!   line of a call.
//!
//! Invariant: the filter is only ever replaced by one that parsed, so a bad request leaves
//! the running filter untouched.

use std::fmt;
use std::sync::{Mutex, OnceLock, PoisonError};

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Format, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::{LogFormat, LogLevel};

/// Longest filter accepted by [`set_filter`].
pub const MAX_FILTER_LEN: usize = 512;

/// Why a filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The text is not a level or a list of `target=level` directives.
    #[error("invalid log filter {0:?}: expected a level (error, warn, info, debug, trace, off) or directives like `info,portcullis_net=debug`")]
    Invalid(String),
    /// Longer than [`MAX_FILTER_LEN`].
    #[error("log filter longer than {MAX_FILTER_LEN} bytes")]
    TooLong,
    /// No subscriber was installed by this process (library use, tests).
    #[error("logging is not initialised in this process")]
    NotInitialised,
    /// The subscriber refused the swap (it is gone).
    #[error("log filter not applied: {0}")]
    Reload(String),
}

struct Control {
    handle: reload::Handle<EnvFilter, Registry>,
    current: Mutex<String>,
}

static CONTROL: OnceLock<Control> = OnceLock::new();

/// The non-blocking output: its writer thread's guard (flushes on drop) and its count
/// of dropped lines.
struct Output {
    guard: Mutex<Option<WorkerGuard>>,
    dropped: ErrorCounter,
}

static OUTPUT: OnceLock<Output> = OnceLock::new();

/// The filter text of a configured level.
#[must_use]
pub fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    }
}

const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// Checks `text` and builds its filter: a comma-separated list whose items are a level or
/// `target=level` (target: Rust module path characters).
///
/// # Errors
/// [`LogError::Invalid`] or [`LogError::TooLong`].
pub fn parse_filter(text: &str) -> Result<EnvFilter, LogError> {
    let text = text.trim();
    if text.len() > MAX_FILTER_LEN {
        return Err(LogError::TooLong);
    }
    let invalid = || LogError::Invalid(text.to_owned());
    if text.is_empty() {
        return Err(invalid());
    }
    for item in text.split(',') {
        let item = item.trim();
        let level = match item.split_once('=') {
            Some((target, level)) => {
                let target_ok = !target.is_empty()
                    && target
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':');
                if !target_ok {
                    return Err(invalid());
                }
                level
            }
            None => item,
        };
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
            return Err(invalid());
        }
    }
    EnvFilter::builder().parse(text).map_err(|_| invalid())
}

/// Installs the global subscriber (see the module docs), buffering at most
/// `buffer_lines` lines for stderr. Returns `false` when a subscriber was already
/// installed (a second call, tests): that one stays.
pub fn init(level: LogLevel, format: LogFormat, buffer_lines: usize) -> bool {
    let (filter, text) = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => match parse_filter(&v) {
            Ok(f) => (f, v.trim().to_owned()),
            // Not one of ours (`RUST_LOG` allows span filters too): take it as given.
            Err(_) => (EnvFilter::new(&v), v.trim().to_owned()),
        },
        _ => (
            EnvFilter::new(level_name(level)),
            level_name(level).to_owned(),
        ),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let journal = stderr_is_journal();
    let ansi = !journal && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(buffer_lines.max(1))
        .thread_name("portcullis-log")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    type Base = tracing_subscriber::layer::Layered<reload::Layer<EnvFilter, Registry>, Registry>;
    let output: Box<dyn Layer<Base> + Send + Sync> = match (format, journal) {
        (LogFormat::Text, false) => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer.clone())
            .boxed(),
        (LogFormat::Text, true) => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(writer.clone())
            .fmt_fields(DefaultFields::new())
            .event_format(Journal(Format::default().without_time()))
            .boxed(),
        (LogFormat::Json, false) => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(writer.clone())
            .boxed(),
        (LogFormat::Json, true) => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(writer.clone())
            .fmt_fields(JsonFields::new())
            .event_format(Journal(Format::default().without_time().json()))
            .boxed(),
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .is_ok();
    if installed {
        let _ = CONTROL.set(Control {
            handle,
            current: Mutex::new(text),
        });
        let _ = OUTPUT.set(Output {
            guard: Mutex::new(Some(guard)),
            dropped,
        });
    }
    installed
}

/// Lines dropped because the output was behind (0 without a subscriber of ours).
#[must_use]
pub fn lines_dropped() -> u64 {
    OUTPUT.get().map_or(0, |o| o.dropped.dropped_lines() as u64)
}

/// Exports the queued call spans (`[otel]`, see [`crate::traces::shutdown`]), then writes
/// the buffered lines and stops the output thread (at exit; later lines are dropped).
/// Waits about a second at most when stderr is stalled.
pub fn flush() {
    crate::traces::shutdown();
    if let Some(o) = OUTPUT.get() {
        let guard = o
            .guard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(guard);
    }
}

/// The filter in force, `None` when this process installed no subscriber.
#[must_use]
pub fn current() -> Option<String> {
    CONTROL.get().map(|c| {
        c.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    })
}

/// Replaces the filter; returns the new filter text.
///
/// # Errors
/// The text does not parse (the running filter stays), or no subscriber is installed.
pub fn set_filter(text: &str) -> Result<String, LogError> {
    let filter = parse_filter(text)?;
    let c = CONTROL.get().ok_or(LogError::NotInitialised)?;
    let text = text.trim();
    let mut current = c.current.lock().unwrap_or_else(PoisonError::into_inner);
    // Logged under the old filter: whoever watched the log sees why it changes.
    tracing::warn!(from = %*current, to = %text, "log filter changed");
    c.handle
        .reload(filter)
        .map_err(|e| LogError::Reload(e.to_string()))?;
    text.clone_into(&mut current);
    Ok(text.to_owned())
}

/// A configuration reload: when `[log] level` changed between the running file and the
/// new one, the new level replaces the filter (whatever set it before). Returns whether
/// the filter changed.
pub fn apply_config_level(old: LogLevel, new: LogLevel) -> bool {
    if old == new {
        return false;
    }
    match set_filter(level_name(new)) {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(error = %e, "log level from the reloaded configuration not applied");
            false
        }
    }
}

/// Whether stderr is the journal stream systemd named in `JOURNAL_STREAM` (`DEV:INODE`).
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.trim().parse::<u64>(), ino.trim().parse::<u64>()) else {
        return false;
    };
    // Follows the fd's link to the open file or socket (no `unsafe` fstat needed).
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// The syslog priority journald reads from a `<N>` line prefix (sd-daemon(3)).
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Prefixes each line of an inner formatter with `<N>`, its syslog priority.
struct Journal<F>(F);

impl<S, N, F> FormatEvent<S, N> for Journal<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked() {
        for ok in [
            "info",
            "DEBUG",
            " warn ",
            "off",
            "info,portcullis_net=debug",
            "portcullis::runtime::engine_task=trace",
        ] {
            assert!(parse_filter(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "verbose",
            "info,",
            "=debug",
            "portcullis net=debug",
            "info,x=loud",
            "x[span]=debug",
        ] {
            assert!(
                matches!(parse_filter(bad), Err(LogError::Invalid(_))),
                "{bad}"
            );
        }
        assert_eq!(
            parse_filter(&"a".repeat(MAX_FILTER_LEN + 1)).err(),
            Some(LogError::TooLong)
        );
    }

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!(priority(Level::ERROR), 3);
        assert_eq!(priority(Level::WARN), 4);
        assert_eq!(priority(Level::INFO), 6);
        assert_eq!(priority(Level::DEBUG), 7);
        assert_eq!(priority(Level::TRACE), 7);
    }
}
