//! The narrowest rule for one kernel denial (pure: no I/O; the caller checks the object
//! on the host first and passes what it found as [`Denied::problem`]).
//!
//! | blocker | where | rule |
//! |---|---|---|
//! | any `fs.*` but device creation | beneath the workspace | the right's access word on the workspace directory (what the command creates there does not exist when the profile is compiled, so the directory is the narrowest object Landlock can name) |
//! | `fs.read_file`, `fs.execute` | beneath a `--widen-to` directory | `read` / `exec` on that directory (the deepest one) |
//! | `fs.read_file`, `fs.execute` | elsewhere | `read` / `exec` on the file itself |
//! | `fs.read_dir` | beneath a `--widen-to` directory | `read` on that directory |
//! | `fs.read_dir` | elsewhere | refused: a directory rule covers everything beneath it, so only the user may widen |
//! | `fs.write_file`, `fs.truncate`, `fs.ioctl_dev` | a character device outside the workspace (`/dev/null`, a tty) | `write` / `ioctl-dev` on the device |
//! | `fs.write_file`, `fs.truncate` | any other file outside the workspace | refused (writes belong in the workspace) |
//! | `fs.make_*`, `fs.remove_*`, `fs.refer` | outside the workspace | refused |
//! | `fs.make_char`, `fs.make_block` | anywhere | refused |
//! | `net.connect_tcp`, `net.bind_tcp` | the port | that port, one by one |
//! | `scope.*`, anything else | — | refused: Landlock has no rule that grants an exception to a scope |
//!
//! Whatever the table says, no rule is ever on `/`, on a `--never` path or on a directory
//! that contains one, and a denial whose object could not be checked (a path that is not
//! the object the kernel named, not valid UTF-8, through a symlink) is refused.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::registry::Access;

/// The variable-form path of the workspace in every learned file.
pub const WORKSPACE: &str = "${SCRATCH}/ws";

/// What the user allowed.
#[derive(Debug, Clone, Default)]
pub struct Bounds {
    /// The workspace (variable form, e.g. [`WORKSPACE`]), if any.
    pub workspace: Option<String>,
    /// `--widen-to` directories (absolute, resolved).
    pub widen: Vec<String>,
    /// `--never` paths (absolute, resolved).
    pub never: Vec<String>,
}

/// One denied access, as the caller mapped it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Denied {
    /// The kernel's blocker, e.g. `fs.read_file`.
    pub blocker: String,
    /// The object's path: absolute on the host, or beneath `${SCRATCH}`.
    pub path: Option<String>,
    /// The port (`net.*`).
    pub port: Option<u16>,
    /// The object is a character device (host paths only).
    pub char_device: bool,
    /// Why the object cannot be granted whatever the blocker (set by the caller's check).
    pub problem: Option<String>,
}

/// A rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grant {
    /// An access word on a path.
    Fs {
        /// The rule's path.
        path: String,
        /// The access word.
        access: Access,
    },
    /// A TCP port `connect` may reach.
    Connect(u16),
    /// A TCP port `bind` may use.
    Bind(u16),
}

impl Grant {
    /// The rule in words, e.g. `read on /etc/os-release`, `tcp_connect 8080`.
    pub fn describe(&self) -> String {
        match self {
            Grant::Fs { path, access } => format!("{} on {path}", access.as_str()),
            Grant::Connect(p) => format!("tcp_connect {p}"),
            Grant::Bind(p) => format!("tcp_bind {p}"),
        }
    }
}

/// What to do about one denial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Add this rule, because…
    Grant(Grant, String),
    /// Learn refuses, because…
    Refuse(String),
}

/// The rules learned so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Path → access words.
    pub fs: BTreeMap<String, BTreeSet<Access>>,
    /// TCP connect ports.
    pub connect: BTreeSet<u16>,
    /// TCP bind ports.
    pub bind: BTreeSet<u16>,
}

impl Policy {
    /// Add `g`; false if it was there.
    pub fn add(&mut self, g: &Grant) -> bool {
        match g {
            Grant::Fs { path, access } => self.fs.entry(path.clone()).or_default().insert(*access),
            Grant::Connect(p) => self.connect.insert(*p),
            Grant::Bind(p) => self.bind.insert(*p),
        }
    }

    /// Remove `g`; false if it was not there.
    pub fn remove(&mut self, g: &Grant) -> bool {
        match g {
            Grant::Fs { path, access } => {
                let Some(set) = self.fs.get_mut(path) else {
                    return false;
                };
                let removed = set.remove(access);
                if set.is_empty() {
                    self.fs.remove(path);
                }
                removed
            }
            Grant::Connect(p) => self.connect.remove(p),
            Grant::Bind(p) => self.bind.remove(p),
        }
    }

    /// Every rule, one grant each, sorted.
    pub fn grants(&self) -> Vec<Grant> {
        let mut v: Vec<Grant> = self
            .fs
            .iter()
            .flat_map(|(path, set)| {
                set.iter().map(|a| Grant::Fs {
                    path: path.clone(),
                    access: *a,
                })
            })
            .collect();
        v.extend(self.connect.iter().map(|p| Grant::Connect(*p)));
        v.extend(self.bind.iter().map(|p| Grant::Bind(*p)));
        v.sort();
        v
    }

    /// True if `g` is already a rule.
    pub fn has(&self, g: &Grant) -> bool {
        match g {
            Grant::Fs { path, access } => self.fs.get(path).is_some_and(|a| a.contains(access)),
            Grant::Connect(p) => self.connect.contains(p),
            Grant::Bind(p) => self.bind.contains(p),
        }
    }
}

/// `path` is `root` or beneath it (both absolute, normalized; `/` contains everything).
pub fn beneath(path: &str, root: &str) -> bool {
    root == "/"
        || path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The access word standing for a blocker's right, if the blocker is a filesystem right.
pub fn access_of(blocker: &str) -> Option<Access> {
    Some(match blocker {
        "fs.read_file" | "fs.read_dir" => Access::Read,
        "fs.execute" => Access::Exec,
        "fs.write_file" | "fs.truncate" => Access::Write,
        "fs.make_reg" | "fs.make_dir" | "fs.make_sym" | "fs.make_sock" | "fs.make_fifo" => {
            Access::Create
        }
        "fs.make_char" | "fs.make_block" => Access::CreateDev,
        "fs.remove_file" | "fs.remove_dir" => Access::Remove,
        "fs.refer" => Access::Rename,
        "fs.ioctl_dev" => Access::IoctlDev,
        "fs.resolve_unix" => Access::UnixConnect,
        _ => return None,
    })
}

/// The narrowest rule for `d` within `b` (see the module doc).
pub fn decide(d: &Denied, b: &Bounds) -> Decision {
    let blocker = d.blocker.as_str();
    if let Some(kind) = blocker.strip_prefix("net.") {
        let Some(port) = d.port else {
            return Decision::Refuse(format!("the kernel's `{blocker}` record names no port"));
        };
        return match kind {
            "connect_tcp" => Decision::Grant(
                Grant::Connect(port),
                format!("the command connected to TCP port {port}"),
            ),
            "bind_tcp" => Decision::Grant(
                Grant::Bind(port),
                format!("the command bound TCP port {port}"),
            ),
            _ => Decision::Refuse(format!(
                "`{blocker}`: learn grants TCP ports only; this right has no per-port rule it can add"
            )),
        };
    }
    if blocker.starts_with("scope.") {
        return Decision::Refuse(format!(
            "`{blocker}`: a Landlock scope has no rule that grants an exception (the command signals or connects to an abstract socket outside its sandbox); this cannot be learned"
        ));
    }
    let Some(access) = access_of(blocker) else {
        return Decision::Refuse(format!(
            "`{blocker}` is not a right learn knows how to grant"
        ));
    };
    let Some(path) = d.path.as_deref() else {
        return Decision::Refuse(format!("the kernel's `{blocker}` record names no path"));
    };
    if let Some(p) = &d.problem {
        return Decision::Refuse(format!("`{blocker}` on {path}: {p}"));
    }
    let grant = |rule: &str, why: String| -> Decision {
        if rule == "/" {
            return Decision::Refuse(format!(
                "`{blocker}` on {path} would need a rule on `/`, which learn never writes"
            ));
        }
        if let Some(n) = b
            .never
            .iter()
            .find(|n| beneath(n, rule) || beneath(rule, n))
        {
            return Decision::Refuse(format!(
                "`{blocker}` on {path} would need `{}` on {rule}, which {} the --never path {n}",
                access.as_str(),
                if beneath(rule, n) {
                    "is beneath"
                } else {
                    "contains"
                }
            ));
        }
        Decision::Grant(
            Grant::Fs {
                path: rule.to_string(),
                access,
            },
            why,
        )
    };
    if matches!(access, Access::CreateDev) {
        return Decision::Refuse(format!(
            "`{blocker}` on {path}: learn never grants creating device files"
        ));
    }
    if let Some(ws) = b.workspace.as_deref().filter(|ws| beneath(path, ws)) {
        return grant(
            ws,
            format!("`{blocker}` on {path}, within the workspace: granted on the workspace"),
        );
    }
    let widen = b
        .widen
        .iter()
        .filter(|w| beneath(path, w))
        .max_by_key(|w| w.len());
    match blocker {
        "fs.read_file" | "fs.execute" | "fs.read_dir" if widen.is_some() => {
            let w = widen.map(String::as_str).unwrap_or_default();
            grant(
                w,
                format!("`{blocker}` on {path}, beneath --widen-to {w}: granted on {w}"),
            )
        }
        "fs.read_file" | "fs.execute" => grant(
            path,
            format!("`{blocker}` on {path}: granted on that file only"),
        ),
        "fs.read_dir" => Decision::Refuse(format!(
            "`fs.read_dir` on {path}: listing a directory needs a rule on it, and a directory rule covers everything beneath it; learn widens only where told (--widen-to {path} or a parent)"
        )),
        "fs.write_file" | "fs.truncate" | "fs.ioctl_dev" if d.char_device => grant(
            path,
            format!("`{blocker}` on the character device {path}: granted on that device only"),
        ),
        "fs.write_file" | "fs.truncate" => Decision::Refuse(format!(
            "`{blocker}` on {path}: a write outside the workspace{}",
            workspace_hint(b)
        )),
        _ => Decision::Refuse(format!(
            "`{blocker}` on {path}: creating, removing or renaming outside the workspace{}",
            workspace_hint(b)
        )),
    }
}

fn workspace_hint(b: &Bounds) -> String {
    match &b.workspace {
        Some(ws) => format!(" ({ws}); learn grants those only within it"),
        None => "; learn grants those only within a --workspace DIR named in the command".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::util::testrng::Rng;

    const BLOCKERS: &[&str] = &[
        "fs.read_file",
        "fs.read_dir",
        "fs.execute",
        "fs.write_file",
        "fs.truncate",
        "fs.make_reg",
        "fs.make_dir",
        "fs.make_sym",
        "fs.make_char",
        "fs.remove_file",
        "fs.refer",
        "fs.ioctl_dev",
        "net.connect_tcp",
        "net.bind_tcp",
        "scope.signal",
        "scope.abstract_unix_socket",
        "fs.unknown_right",
    ];
    const DIRS: &[&str] = &[
        "/",
        "/etc",
        "/etc/ssl",
        "/usr",
        "/usr/lib",
        "/home/u",
        "${SCRATCH}",
    ];
    const NAMES: &[&str] = &["a", "passwd", "ssl", "lib", "ws", "x y", "n\nl"];

    fn path(r: &mut Rng) -> String {
        let d = *r.pick(DIRS);
        let n = r.pick(NAMES);
        let p = if d == "/" {
            format!("/{n}")
        } else {
            format!("{d}/{n}")
        };
        if r.next().is_multiple_of(5) {
            format!("{p}/{}", r.pick(NAMES))
        } else {
            p
        }
    }

    /// Random denial sets under random bounds: every rule covers its denial and is never
    /// wider than the table allows — a directory rule only on the workspace or a
    /// `--widen-to` directory, never `/`, never on or above a `--never` path; writes and
    /// creations only in the workspace (or on a character device); refusals always say why.
    #[test]
    fn generated_denials_never_get_a_rule_wider_than_needed() {
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut bounds = Bounds::default();
            if rng.next().is_multiple_of(2) {
                bounds.workspace = Some(WORKSPACE.into());
            }
            for _ in 0..rng.next() % 3 {
                bounds.widen.push(rng.pick(DIRS).to_string());
            }
            bounds.widen.retain(|w| w.starts_with('/'));
            for _ in 0..rng.next() % 3 {
                bounds.never.push(path(&mut rng));
            }
            if rng.next().is_multiple_of(3) {
                bounds.never.push(rng.pick(DIRS).to_string());
            }
            let mut policy = Policy::default();
            for _ in 0..20 {
                let denied = Denied {
                    blocker: rng.pick(BLOCKERS).to_string(),
                    path: Some(if rng.next().is_multiple_of(4) {
                        format!("{WORKSPACE}/{}", rng.pick(NAMES))
                    } else {
                        path(&mut rng)
                    }),
                    port: u16::try_from(rng.next() % 70000).ok(),
                    char_device: rng.next().is_multiple_of(4),
                    problem: (rng.next().is_multiple_of(10)).then(|| "not the object".to_string()),
                };
                let decision = decide(&denied, &bounds);
                let dp = denied.path.clone().unwrap_or_default();
                match &decision {
                    Decision::Refuse(why) => assert!(!why.is_empty()),
                    Decision::Grant(g, why) => {
                        assert!(!why.is_empty());
                        assert!(
                            denied.problem.is_none() || denied.blocker.starts_with("net."),
                            "{denied:?}"
                        );
                        policy.add(g);
                        match g {
                            Grant::Connect(p) => {
                                assert_eq!(denied.blocker, "net.connect_tcp");
                                assert_eq!(Some(*p), denied.port);
                            }
                            Grant::Bind(p) => {
                                assert_eq!(denied.blocker, "net.bind_tcp");
                                assert_eq!(Some(*p), denied.port);
                            }
                            Grant::Fs { path: rule, access } => {
                                assert_ne!(rule, "/", "{denied:?} {bounds:?}");
                                assert!(beneath(&dp, rule), "the rule covers the denial");
                                assert_eq!(Some(*access), access_of(&denied.blocker));
                                for n in &bounds.never {
                                    assert!(
                                        !beneath(n, rule) && !beneath(rule, n),
                                        "{rule} vs never {n}"
                                    );
                                }
                                let in_ws = bounds.workspace.as_deref() == Some(rule.as_str());
                                let widened = bounds.widen.contains(rule);
                                if rule != &dp {
                                    assert!(
                                        in_ws || widened,
                                        "a directory rule {rule} for {denied:?}"
                                    );
                                }
                                if !in_ws {
                                    match access {
                                        Access::Read | Access::Exec => {}
                                        Access::Write | Access::IoctlDev => {
                                            assert!(denied.char_device && rule == &dp);
                                        }
                                        other => {
                                            panic!("{other:?} outside the workspace: {denied:?}")
                                        }
                                    }
                                }
                                if denied.blocker == "fs.read_dir" {
                                    assert!(in_ws || widened);
                                }
                            }
                        }
                    }
                }
            }
            for p in policy.fs.keys() {
                assert_ne!(p, "/");
            }
        }
    }

    #[test]
    fn a_scope_an_unknown_right_and_a_never_path_are_refused_with_the_reason() {
        let b = Bounds {
            workspace: None,
            widen: vec!["/etc".into()],
            never: vec!["/etc/shadow".into()],
        };
        let d = |blocker: &str, path: &str| Denied {
            blocker: blocker.into(),
            path: Some(path.into()),
            port: None,
            char_device: false,
            problem: None,
        };
        let Decision::Refuse(why) = decide(&d("fs.read_file", "/etc/hostname"), &b) else {
            panic!("widening /etc contains the never path /etc/shadow");
        };
        assert!(why.contains("--never path /etc/shadow"), "{why}");
        assert!(
            matches!(decide(&d("scope.signal", "/x"), &b), Decision::Refuse(w) if w.contains("scope"))
        );
        assert!(
            matches!(decide(&d("fs.read_dir", "/usr/lib"), &b), Decision::Refuse(w) if w.contains("--widen-to /usr/lib"))
        );
        assert!(
            matches!(decide(&d("fs.read_dir", "/"), &Bounds { widen: vec!["/".into()], ..Bounds::default() }), Decision::Refuse(w) if w.contains("`/`"))
        );
        assert_eq!(
            decide(&d("fs.read_file", "/usr/lib/x.so"), &b),
            Decision::Grant(
                Grant::Fs {
                    path: "/usr/lib/x.so".into(),
                    access: Access::Read
                },
                "`fs.read_file` on /usr/lib/x.so: granted on that file only".into()
            )
        );
    }
}
