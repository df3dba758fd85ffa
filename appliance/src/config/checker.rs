//! The diagnostics collector the semantic checks share ([`Checker`]): every problem with
//! its TOML path and position, and the helpers that read values through it (files,
//! names, durations), under the [`LoadOptions`] that say how to treat the outside world.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::ImDocument;

use super::diag::{find_span, Diagnostic, LineCol};
use super::host::{check_pem, HostInfo, PemKind};
use super::types::{parse_duration, Fqdn};

/// How the checker treats the outside world.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Read certificate, key and CA files and check they hold PEM data, and check that
    /// media realm addresses are this host's. `check-config --no-files` turns this off to
    /// check a file on another machine.
    pub check_files: bool,
    /// CPUs to check `media.cores` against.
    pub host: HostInfo,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            check_files: true,
            host: HostInfo::detect(),
        }
    }
}

/// Collects diagnostics while converting.
pub(super) struct Checker<'a> {
    src: &'a str,
    doc: Option<ImDocument<&'a str>>,
    base_dir: &'a Path,
    pub(super) opts: &'a LoadOptions,
    pub(super) diags: Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    pub(super) fn new(src: &'a str, base_dir: &'a Path, opts: &'a LoadOptions) -> Self {
        let doc = ImDocument::parse(src).ok();
        Self {
            src,
            doc,
            base_dir,
            opts,
            diags: Vec::new(),
        }
    }

    /// Records a problem at `path`.
    pub(super) fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let location = self
            .doc
            .as_ref()
            .and_then(|d| find_span(d, &path))
            .map(|s| LineCol::from_offset(self.src, s.start));
        self.diags.push(Diagnostic {
            path,
            location,
            message: message.into(),
        });
    }

    /// Records a problem `offset` bytes into the string value at `path` (a
    /// position inside a template): the value's position moved past its
    /// opening quote and `offset` characters (exact for strings without
    /// escapes).
    pub(super) fn err_in_value(&mut self, path: &str, offset: usize, message: impl Into<String>) {
        let location = self.doc.as_ref().and_then(|d| find_span(d, path)).map(|s| {
            let mut l = LineCol::from_offset(self.src, s.start);
            l.col += 1 + offset;
            l
        });
        self.diags.push(Diagnostic {
            path: path.to_owned(),
            location,
            message: message.into(),
        });
    }

    /// Records `r`'s error at `path` and returns its value.
    pub(super) fn ok<T>(&mut self, path: &str, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.err(path, e);
                None
            }
        }
    }

    pub(super) fn duration(&mut self, path: &str, s: &str, min: Duration) -> Option<Duration> {
        let d = self.ok(path, parse_duration(s))?;
        if d < min {
            self.err(path, format!("{s:?} is shorter than the minimum {min:?}"));
            return None;
        }
        Some(d)
    }

    pub(super) fn ip(&mut self, path: &str, s: &str) -> Option<IpAddr> {
        self.ok(
            path,
            s.parse().map_err(|_| format!("{s:?} is not an IP address")),
        )
    }

    pub(super) fn sockaddr(&mut self, path: &str, s: &str) -> Option<SocketAddr> {
        let a: SocketAddr = self.ok(
            path,
            s.parse()
                .map_err(|_| format!("{s:?} is not ip:port (IPv6 as [addr]:port)")),
        )?;
        if a.port() == 0 {
            self.err(path, "port 0 is not allowed");
            return None;
        }
        Some(a)
    }

    /// Resolves a path against the config file directory.
    pub(super) fn resolve_path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// A required PEM file: present in the file, and readable with the right content.
    pub(super) fn pem(
        &mut self,
        path: &str,
        value: Option<&str>,
        kind: PemKind,
        why: &str,
    ) -> Option<PathBuf> {
        let Some(v) = value else {
            self.err(path, format!("missing: {why}"));
            return None;
        };
        if v.is_empty() {
            self.err(path, "the file name is empty");
            return None;
        }
        let p = self.resolve_path(v);
        if self.opts.check_files {
            let r = check_pem(&p, kind);
            self.ok(path, r)?;
        }
        Some(p)
    }

    pub(super) fn fqdn(&mut self, path: &str, s: &str, min_labels: usize) -> Option<Fqdn> {
        let f = self.ok(path, Fqdn::parse(s))?;
        if f.label_count() < min_labels {
            self.err(
                path,
                format!("{s:?} must be a fully qualified name like sbc.example.com"),
            );
            return None;
        }
        Some(f)
    }
}
