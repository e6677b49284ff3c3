//! `${NAME}` expansion for probe targets, argv, fixtures and profile rule paths.
//!
//! Builtin variables: `SCRATCH` (the child's private scratch directory; in profile rules the
//! run's scratch root, which contains every child's directory), `HOME` (the child's home:
//! its scratch directory on the clean channel, the runner's `$HOME` on the direct channel;
//! in profile rules on the clean channel, the scratch root), `RUNNER_PID`, for the children
//! of mission worker tasks `OUTPUT` (the worker's output directory) and `WORKER_BIN` (the
//! directory holding the checked copy of its executable), plus the plan's `variables` and
//! the ports published by `tcp-listener` fixtures.

use std::collections::BTreeMap;

/// What `${OUTPUT}` and `${WORKER_BIN}` name for a child that is not a worker task's: a path
/// that never exists, so a profile rule on them is skipped for that child (it has no
/// output directory and no worker executable).
pub const NO_WORKER_DIR: &str = "/proc/nonexistent/nexusmon-not-a-worker-task";

/// A set of variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    map: BTreeMap<String, String>,
}

/// An expansion failure: the variable that is not defined, or a malformed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    /// What went wrong, e.g. "undefined variable `${FOO}`".
    pub message: String,
    /// The variable name, if the problem is an undefined one.
    pub name: Option<String>,
}

impl Vars {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set `name` to `value`.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.map.insert(name.into(), value.into());
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// Every variable, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A copy with `overrides` applied.
    #[must_use]
    pub fn with(&self, overrides: &[(&str, &str)]) -> Self {
        let mut v = self.clone();
        for (k, val) in overrides {
            v.set(*k, *val);
        }
        v
    }

    /// Expand, once, the values that reference other variables (plan variables may use
    /// `${SCRATCH}`, `${HOME}`, `${RUNNER_PID}` or listener ports). Values that cannot be
    /// expanded are left as they are (the reference is reported where it is used).
    #[must_use]
    pub fn nested(mut self) -> Self {
        let keys: Vec<String> = self
            .map
            .iter()
            .filter(|(_, v)| v.contains("${"))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            if let Some(v) = self.map.get(&k).cloned()
                && let Ok(x) = self.expand(&v)
            {
                self.map.insert(k, x);
            }
        }
        self
    }

    /// Expand every `${NAME}` in `s`. `$` not followed by `{` is kept literally; `$${` is a
    /// literal `${`.
    pub fn expand(&self, s: &str) -> Result<String, ExpandError> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(lit) = after.strip_prefix("${") {
                out.push_str("${");
                rest = lit;
                continue;
            }
            let Some(body) = after.strip_prefix('{') else {
                out.push('$');
                rest = after;
                continue;
            };
            let Some(end) = body.find('}') else {
                return Err(ExpandError {
                    message: format!("unterminated variable reference in `{s}`"),
                    name: None,
                });
            };
            let name = &body[..end];
            match self.map.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    return Err(ExpandError {
                        message: format!("undefined variable `${{{name}}}` in `{s}`"),
                        name: Some(name.to_string()),
                    });
                }
            }
            rest = &body[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The names of the variables `s` references (for lint-like checks).
    pub fn references(s: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = s;
        while let Some(pos) = rest.find("${") {
            if pos > 0 && rest.as_bytes()[pos - 1] == b'$' {
                rest = &rest[pos + 2..];
                continue;
            }
            let body = &rest[pos + 2..];
            match body.find('}') {
                Some(end) => {
                    out.push(body[..end].to_string());
                    rest = &body[end + 1..];
                }
                None => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_and_reports_undefined_names() {
        let mut v = Vars::new();
        v.set("SCRATCH", "/tmp/s");
        v.set("PORT", "8080");
        assert_eq!(v.expand("${SCRATCH}/a").unwrap(), "/tmp/s/a");
        assert_eq!(v.expand("127.0.0.1:${PORT}").unwrap(), "127.0.0.1:8080");
        assert_eq!(v.expand("cost $5 $${X}").unwrap(), "cost $5 ${X}");
        let e = v.expand("${NOPE}/x").unwrap_err();
        assert_eq!(e.name.as_deref(), Some("NOPE"));
        assert!(v.expand("${OPEN").is_err());
        assert_eq!(Vars::references("${A}/${B}"), ["A", "B"]);
    }
}
