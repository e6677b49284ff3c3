//! Variables in targets, argv, fixtures and rule paths (`${NAME}`), and what lint can tell
//! about a string without the host: is it an absolute path after expansion, does it lie under
//! `${SCRATCH}`, is it a machine path where a variable is meant.

use std::collections::BTreeMap;

/// Variables the runner defines for every run (`OUTPUT`, the worker's output directory
/// beneath the mission workspace, and `WORKER_BIN`, the directory holding the checked copy of
/// its executable, only for the children of worker tasks).
pub const BUILTINS: [&str; 5] = ["HOME", "OUTPUT", "RUNNER_PID", "SCRATCH", "WORKER_BIN"];

/// The builtins that mean something only in a worker's profile rules: never suggested as
/// the fix of a misspelt name (`${WORKDIR}` is not a typo of `${WORKER_BIN}`).
pub const WORKER_ONLY: [&str; 2] = ["OUTPUT", "WORKER_BIN"];

/// One `${...}` problem in a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarIssue {
    /// `${` without a closing `}`.
    Unclosed,
    /// `${name}` where the name is not `[A-Z][A-Z0-9_]*`.
    BadName(String),
    /// `$NAME` without braces.
    Unbraced(String),
}

impl VarIssue {
    /// The code, message and hint of a finding about this issue in the string `s`.
    pub fn finding(&self, s: &str) -> (super::Code, String, String) {
        use super::Code;
        match self {
            VarIssue::Unclosed => (
                Code::BadVariableSyntax,
                format!("`${{` without a closing `}}` in `{s}`"),
                "write variables as `${NAME}`".into(),
            ),
            VarIssue::BadName(n) => {
                let upper = n.to_ascii_uppercase();
                let hint = if is_var_name(&upper) {
                    format!("variable names are uppercase: `${{{upper}}}`")
                } else {
                    "variable names are uppercase letters, digits and `_`".to_string()
                };
                (
                    Code::BadVariableSyntax,
                    format!("`${{{n}}}` is not a valid variable reference"),
                    hint,
                )
            }
            VarIssue::Unbraced(n) => (
                Code::UnbracedVariable,
                format!("`${n}` is not expanded (only `${{{n}}}` is)"),
                format!("write `${{{n}}}`"),
            ),
        }
    }
}

/// The variable names a string uses (in order, with repeats) and its syntax problems.
pub fn scan(s: &str) -> (Vec<String>, Vec<VarIssue>) {
    let mut names = Vec::new();
    let mut issues = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&b'{') {
            let Some(rel) = s[i + 2..].find('}') else {
                issues.push(VarIssue::Unclosed);
                break;
            };
            let name = &s[i + 2..i + 2 + rel];
            if is_var_name(name) {
                names.push(name.to_string());
            } else {
                issues.push(VarIssue::BadName(name.to_string()));
            }
            i = i + 2 + rel + 1;
        } else {
            let rest = &s[i + 1..];
            let len = rest
                .bytes()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
                .count();
            if len > 0 && rest.as_bytes()[0].is_ascii_uppercase() {
                issues.push(VarIssue::Unbraced(rest[..len].to_string()));
            }
            i += 1 + len;
        }
    }
    (names, issues)
}

/// True if `s` is a variable name (`^[A-Z][A-Z0-9_]{0,63}$`).
pub fn is_var_name(s: &str) -> bool {
    crate::model::VarName::new(s).is_ok()
}

/// What a variable is known to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarValue {
    /// An absolute directory (`SCRATCH`, `HOME`); `scratch` if it is the scratch dir.
    Dir {
        /// True for `SCRATCH`.
        scratch: bool,
    },
    /// A number (`RUNNER_PID`, a listener port).
    Number,
    /// A plan variable with this value (which may itself use variables).
    Text(String),
}

/// The variables in scope for one string.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Name → value.
    pub vars: BTreeMap<String, VarValue>,
    /// True when plan variables are known (plan-lint); false in registry-lint, where a
    /// non-builtin variable may be defined by the plans that use the probe.
    pub plan_known: bool,
    /// The probe's scratch directory as its fixtures make it (empty outside a probe).
    pub scratch: super::scratch::ScratchTree,
}

impl Scope {
    /// The builtins only (registry-lint).
    pub fn builtins() -> Self {
        let mut vars = BTreeMap::new();
        vars.insert("SCRATCH".into(), VarValue::Dir { scratch: true });
        vars.insert("HOME".into(), VarValue::Dir { scratch: false });
        vars.insert("RUNNER_PID".into(), VarValue::Number);
        vars.insert("OUTPUT".into(), VarValue::Dir { scratch: true });
        vars.insert("WORKER_BIN".into(), VarValue::Dir { scratch: false });
        Self {
            vars,
            plan_known: false,
            scratch: super::scratch::ScratchTree::default(),
        }
    }

    /// Builtins plus plan variables (plan-lint).
    pub fn with_plan<'a>(plan_vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut s = Self::builtins();
        for (k, v) in plan_vars {
            s.vars
                .entry(k.to_string())
                .or_insert_with(|| VarValue::Text(v.to_string()));
        }
        s.plan_known = true;
        s
    }

    /// Where `s` begins, for [`super::scratch`].
    pub fn place(&self, s: &str) -> super::scratch::Place {
        use super::scratch::Place;
        match self.lead(s) {
            Some(Lead::Scratch { rest }) => Place::Scratch(rest),
            Some(Lead::Root) => Place::Host,
            Some(Lead::Relative) => Place::Relative,
            None => Place::Unknown,
        }
    }

    /// Add a listener-port variable (a `tcp-listener` fixture).
    pub fn add_number(&mut self, name: &str) {
        self.vars
            .entry(name.to_string())
            .or_insert(VarValue::Number);
    }

    /// What `s` starts with, after following plan variables: `Some(Lead)` or `None` when it
    /// starts with a variable whose value is unknown.
    pub fn lead(&self, s: &str) -> Option<Lead> {
        self.lead_depth(s, 0)
    }

    fn lead_depth(&self, s: &str, depth: u32) -> Option<Lead> {
        if depth > 16 {
            return None;
        }
        let Some(rest) = s.strip_prefix("${") else {
            return Some(if s.starts_with('/') {
                Lead::Root
            } else {
                Lead::Relative
            });
        };
        let end = rest.find('}')?;
        let name = &rest[..end];
        let after = &rest[end + 1..];
        match self.vars.get(name)? {
            VarValue::Dir { scratch } => Some(if after.is_empty() || after.starts_with('/') {
                if *scratch {
                    Lead::Scratch {
                        rest: after.to_string(),
                    }
                } else {
                    Lead::Root
                }
            } else {
                // `${HOME}x` is still absolute, but no longer the directory itself.
                Lead::Root
            }),
            VarValue::Number => Some(Lead::Relative),
            VarValue::Text(v) => {
                let inner = self.lead_depth(v, depth + 1)?;
                Some(match inner {
                    Lead::Scratch { rest } => Lead::Scratch {
                        rest: format!("{rest}{after}"),
                    },
                    other => other,
                })
            }
        }
    }
}

/// How a path string begins once variables are expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lead {
    /// Inside the run's scratch dir; `rest` follows `${SCRATCH}` (`""` or `/...`).
    Scratch {
        /// What follows the scratch dir.
        rest: String,
    },
    /// Some other absolute path.
    Root,
    /// Not absolute.
    Relative,
}

/// True if any path component of `s` is `..`.
pub fn has_dot_dot(s: &str) -> bool {
    s.split('/').any(|c| c == "..")
}

/// If `s` is a literal absolute path tied to one machine or user, the variable to use
/// instead.
pub fn machine_path(s: &str) -> Option<&'static str> {
    let comps: Vec<&str> = s.split('/').collect();
    if comps.first() != Some(&"") || comps.len() < 2 {
        return None;
    }
    let second = comps.get(2).copied().unwrap_or("");
    match comps[1] {
        "home" | "Users" if !second.is_empty() => Some("${HOME}"),
        "root" => Some("${HOME}"),
        "tmp" if !second.is_empty() => Some("${SCRATCH}"),
        "var" if second == "tmp" && comps.get(3).is_some_and(|c| !c.is_empty()) => {
            Some("${SCRATCH}")
        }
        "run" if second == "user" => Some("${HOME}"),
        _ => None,
    }
}

/// Split `host:port` (`[v6]:port`); `None` if there is no port separator.
pub fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let close = rest.find(']')?;
        let host = &rest[..close];
        let port = rest[close + 1..].strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host, port))
}

/// If the literal absolute path `s` goes through a per-process place the runner cannot
/// resolve for the child, why (for a message that follows the path). Targets may use
/// `/proc/self/<file>`, `/proc/self/cwd` and `/proc/self/root` (the oracle resolves them
/// as the child sees them), not the descriptors, executable, namespaces or memory maps
/// behind `/proc/self/{fd,exe,ns,map_files,task}`, `/dev/fd` or `/dev/std*`; a rule may
/// not be beneath `/proc/self` or `/proc/thread-self` at all (`rule`), since the runner
/// opens rule paths.
pub fn per_process(s: &str, rule: bool) -> Option<String> {
    if !s.starts_with('/') {
        return None;
    }
    let mut comps: Vec<&str> = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                comps.pop();
            }
            c => comps.push(c),
        }
    }
    match comps.as_slice() {
        ["dev", d @ ("fd" | "stdin" | "stdout" | "stderr"), ..] => Some(format!(
            "goes through `/dev/{d}`, which names the open descriptors of whichever process reads it: the oracle cannot resolve it for the child"
        )),
        ["proc", p @ ("self" | "thread-self"), ..] if rule => Some(format!(
            "is beneath `/proc/{p}`: the runner opens rule paths, so the rule would attach to the runner's own process, never the child's"
        )),
        [
            "proc",
            p @ ("self" | "thread-self"),
            l @ ("fd" | "exe" | "ns" | "map_files" | "task"),
            ..,
        ] => Some(format!(
            "goes through `/proc/{p}/{l}`, a per-process link the oracle cannot resolve before the child runs"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_names_and_problems() {
        let (n, i) = scan("${SCRATCH}/a/${X_1}");
        assert_eq!(n, vec!["SCRATCH", "X_1"]);
        assert!(i.is_empty());
        let (_, i) = scan("${SCRATCH/a");
        assert_eq!(i, vec![VarIssue::Unclosed]);
        let (_, i) = scan("${scratch}/a");
        assert_eq!(i, vec![VarIssue::BadName("scratch".into())]);
        let (n, i) = scan("$HOME/a and $5 and $");
        assert!(n.is_empty());
        assert_eq!(i, vec![VarIssue::Unbraced("HOME".into())]);
    }

    #[test]
    fn leads_follow_plan_variables() {
        let s = Scope::with_plan([("WS", "${SCRATCH}/ws"), ("ETC", "/etc"), ("REL", "x")]);
        assert_eq!(
            s.lead("${WS}/a"),
            Some(Lead::Scratch {
                rest: "/ws/a".into()
            })
        );
        assert_eq!(s.lead("${ETC}/hostname"), Some(Lead::Root));
        assert_eq!(s.lead("${REL}/a"), Some(Lead::Relative));
        assert_eq!(s.lead("${RUNNER_PID}"), Some(Lead::Relative));
        assert_eq!(s.lead("${NOPE}/a"), None);
        assert_eq!(s.lead("/etc"), Some(Lead::Root));
        assert_eq!(s.lead("etc"), Some(Lead::Relative));
        let cyclic = Scope::with_plan([("A", "${B}"), ("B", "${A}")]);
        assert_eq!(cyclic.lead("${A}"), None);
    }

    #[test]
    fn per_process_paths() {
        assert!(per_process("/proc/self/status", false).is_none());
        assert!(per_process("/proc/self/cwd/x", false).is_none());
        assert!(per_process("/proc/self/fd/0", false).is_some());
        assert!(per_process("/proc/thread-self/exe", false).is_some());
        assert!(per_process("/dev/stdin", false).is_some());
        assert!(per_process("/dev//fd/3", false).is_some());
        assert!(per_process("/dev/null", false).is_none());
        assert!(per_process("/proc/self", true).is_some());
        assert!(per_process("/proc/1/status", true).is_none());
        assert!(per_process("${SCRATCH}/proc/self/fd", false).is_none());
    }

    #[test]
    fn machine_paths() {
        assert_eq!(machine_path("/home/alice/x"), Some("${HOME}"));
        assert_eq!(machine_path("/home"), None);
        assert_eq!(machine_path("/tmp/x"), Some("${SCRATCH}"));
        assert_eq!(machine_path("/tmp"), None);
        assert_eq!(machine_path("/root/.ssh"), Some("${HOME}"));
        assert_eq!(machine_path("/etc/hostname"), None);
        assert_eq!(machine_path("${SCRATCH}/tmp/x"), None);
    }

    #[test]
    fn host_ports() {
        assert_eq!(split_host_port("127.0.0.1:80"), Some(("127.0.0.1", "80")));
        assert_eq!(split_host_port("[::1]:443"), Some(("::1", "443")));
        assert_eq!(split_host_port("localhost"), None);
        assert_eq!(split_host_port("::1:80"), None);
    }
}
