//! The crate's error type and the exit codes it maps to.
//!
//! Exit codes are an API (README): they are named constants in
//! [`exit_code`], and [`Error::exit_code`] is the one place an error becomes one.

use std::fmt;
use std::path::{Path, PathBuf};

/// Documented process exit codes.
pub mod exit_code {
    /// Success: lint clean, run without mismatches, bundle valid.
    pub const OK: i32 = 0;
    /// The run found mismatches, the lint found errors, or the checked bundle has problems.
    pub const FINDINGS: i32 = 1;
    /// Usage or input error; nothing was written.
    pub const USAGE: i32 = 2;
    /// The runner failed (the bundle, if one was started, is sealed as `failed`), or it could
    /// not start (the out root is locked by another run).
    pub const RUNNER_FAILED: i32 = 3;
    /// Refused by governance: approval missing, composite score FAILING, locked omen.
    pub const REFUSED: i32 = 4;
    /// The kernel could not enforce a `hard` profile.
    pub const NOT_ENFORCEABLE: i32 = 5;
    /// The plan or the filters selected nothing to run.
    pub const NOTHING_SELECTED: i32 = 6;
    /// A run interrupted by SIGHUP (128 + 1): the bundle is sealed as `interrupted`.
    pub const INTERRUPTED_HUP: i32 = 129;
    /// A run interrupted by SIGINT (128 + 2, Ctrl-C): the bundle is sealed as `interrupted`.
    pub const INTERRUPTED_INT: i32 = 130;
    /// A run interrupted by SIGTERM (128 + 15): the bundle is sealed as `interrupted`.
    pub const INTERRUPTED_TERM: i32 = 143;

    /// The exit code of a run interrupted by signal `signo` (128 + the signal's number, as
    /// shells report a process a signal ended; a second signal exits with the same code at
    /// once, leaving the bundle unsealed in `.staging/`).
    pub fn interrupted(signo: i32) -> i32 {
        128 + signo
    }
}

/// What kind of failure an [`Error`] is; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad arguments or bad input files (exit 2).
    Usage,
    /// The runner failed or could not start (exit 3).
    Runner,
    /// Governance refused (exit 4).
    Refused,
    /// A `hard` profile cannot be enforced by this kernel (exit 5).
    NotEnforceable,
    /// Nothing selected (exit 6).
    NothingSelected,
    /// The checked thing has problems (exit 1), e.g. an invalid bundle.
    Findings,
}

/// The crate's error: a kind, a message, an optional path it is about, an optional hint
/// telling the user what to do, and an optional cause.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    path: Option<PathBuf>,
    hint: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            path: None,
            hint: None,
            source: None,
        }
    }

    /// Bad arguments or input (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }

    /// A bad input file: the message is about `path` (exit 2).
    pub fn input(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message).with_path(path)
    }

    /// The runner failed (exit 3).
    pub fn runner(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Runner, message)
    }

    /// An I/O error about `path`; `op` says what was being done ("read", "create", ...).
    /// I/O errors are runner failures unless the path was user input that does not exist,
    /// which callers express with [`Error::io_input`].
    pub fn io(op: &str, path: impl AsRef<Path>, err: std::io::Error) -> Self {
        Self::new(ErrorKind::Runner, format!("cannot {op}"))
            .with_path(path)
            .with_source(err)
    }

    /// An I/O error reading user input (a plan, a registry, a bundle named on the command
    /// line): exit 2.
    pub fn io_input(op: &str, path: impl AsRef<Path>, err: std::io::Error) -> Self {
        Self::new(ErrorKind::Usage, format!("cannot {op}"))
            .with_path(path)
            .with_source(err)
    }

    /// Attach the path the error is about.
    #[must_use]
    pub fn with_path(mut self, path: impl AsRef<Path>) -> Self {
        self.path = Some(path.as_ref().to_path_buf());
        self
    }

    /// Attach a hint: what the user can do about it.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Attach the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Change the kind (and so the exit code).
    #[must_use]
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without path, hint or cause.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The path the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The hint, if any.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// The chain of causes, outermost first, as strings.
    pub fn causes(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = match &self.source {
            Some(s) => Some(s.as_ref()),
            None => None,
        };
        while let Some(e) = cur {
            out.push(e.to_string());
            cur = e.source();
        }
        out
    }

    /// The message with its path and every cause, on one line (`path: message: cause: …`),
    /// for records that outlive the process (a failed bundle's `run_status.json`).
    pub fn full_message(&self) -> String {
        let mut s = self.to_string();
        for c in self.causes() {
            s.push_str(": ");
            s.push_str(&c);
        }
        s
    }

    /// The documented exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::Usage => exit_code::USAGE,
            ErrorKind::Runner => exit_code::RUNNER_FAILED,
            ErrorKind::Refused => exit_code::REFUSED,
            ErrorKind::NotEnforceable => exit_code::NOT_ENFORCEABLE,
            ErrorKind::NothingSelected => exit_code::NOTHING_SELECTED,
            ErrorKind::Findings => exit_code::FINDINGS,
        }
    }

    /// True if the root cause is a broken pipe on an output stream (quiet exit).
    pub fn is_broken_pipe(&self) -> bool {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = match &self.source {
            Some(s) => Some(s.as_ref()),
            None => None,
        };
        while let Some(e) = cur {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return true;
            }
            cur = e.source();
        }
        false
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{}: {}", p.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.source {
            Some(s) => Some(s.as_ref()),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_names_path_and_cause() {
        let e = Error::io(
            "read",
            "/x/y.json",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(e.to_string(), "/x/y.json: cannot read");
        assert_eq!(e.causes(), vec!["entity not found".to_string()]);
        assert_eq!(e.exit_code(), exit_code::RUNNER_FAILED);
    }

    #[test]
    fn broken_pipe_is_detected_through_the_chain() {
        let e = Error::io(
            "write",
            "<stdout>",
            std::io::Error::from(std::io::ErrorKind::BrokenPipe),
        );
        assert!(e.is_broken_pipe());
    }
}
