//! Where a path beneath `${SCRATCH}` really goes, decided without the host: when a probe
//! runs, its scratch directory holds exactly its fixtures, so a path is resolved the way the
//! kernel walks it through a model of them: `..` goes up (above `${SCRATCH}` is outside),
//! a fixture symlink is followed (not as the final component of an operation on the final
//! name), its `to` resolved from the link's directory, from `${SCRATCH}`, or — an absolute
//! host path — outside. NX211 uses it: a writing probe may use `..` and symlinks as long as
//! what it writes stays inside `${SCRATCH}` (`${SCRATCH}/a/s0/../e1` does), and is refused
//! when a fixture symlink would take the write onto the host.

use std::collections::{BTreeMap, VecDeque};

use crate::model::registry::Fixture;

/// Where a path string begins once its variables are expanded (what
/// [`super::vars::Scope::place`] says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Beneath `${SCRATCH}`: what follows it.
    Scratch(String),
    /// Some other absolute path (a host path).
    Host,
    /// Not absolute.
    Relative,
    /// It depends on a variable lint cannot see.
    Unknown,
}

/// Maximum symlinks followed in one resolution (the kernel's limit is 40; past it the
/// operation fails with ELOOP and writes nothing).
const MAX_LINKS: u32 = 40;

/// A model of a probe's scratch directory: the entries its fixtures create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScratchTree {
    /// Entries by their components beneath `${SCRATCH}`: `None` a directory or file,
    /// `Some(to)` a symlink to `to` (as written).
    entries: BTreeMap<Vec<String>, Option<String>>,
}

/// Where a path beneath `${SCRATCH}` resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Where {
    /// Inside `${SCRATCH}` (components beneath it).
    Inside(Vec<String>),
    /// Outside, and why.
    Outside(String),
    /// It depends on a variable lint cannot see (a plan variable in a symlink's `to`).
    Unknown,
}

fn components(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
}

impl ScratchTree {
    /// The tree the fixtures create (fixtures not beneath `${SCRATCH}` are NX212 errors and
    /// are left out).
    pub fn of(fixtures: &[Fixture], place: &dyn Fn(&str) -> Place) -> Self {
        let mut t = Self::default();
        for f in fixtures {
            let (path, to) = match f {
                Fixture::File { path, .. } | Fixture::Dir { path } => (path, None),
                Fixture::Symlink { path, to } => (path, Some(to.clone())),
                Fixture::TcpListener { .. } | Fixture::UnixAbstractListener { .. } => continue,
            };
            let Place::Scratch(rest) = place(path) else {
                continue;
            };
            let comps: Vec<String> = components(&rest).collect();
            for i in 1..comps.len() {
                t.entries.entry(comps[..i].to_vec()).or_insert(None);
            }
            if !comps.is_empty() {
                t.entries.insert(comps, to);
            }
        }
        t
    }

    /// Resolve `rest` (what follows `${SCRATCH}`); with `follow_final`, a final symlink is
    /// followed too.
    pub fn resolve(&self, rest: &str, follow_final: bool, place: &dyn Fn(&str) -> Place) -> Where {
        let mut cur: Vec<String> = Vec::new();
        let mut todo: VecDeque<String> = components(rest).collect();
        // `..` components are kept (they matter); `components` drops only empty and `.`.
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            let last = todo.is_empty();
            if c == ".." {
                if cur.pop().is_none() {
                    return Where::Outside("`..` goes above `${SCRATCH}`".into());
                }
                continue;
            }
            let mut next = cur.clone();
            next.push(c);
            match self.entries.get(&next) {
                Some(Some(to)) if !last || follow_final => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Where::Inside(next);
                    }
                    let shown = format!("${{SCRATCH}}/{}", next.join("/"));
                    let mut then: VecDeque<String> = match place(to) {
                        Place::Scratch(rest) => {
                            cur.clear();
                            components(&rest).collect()
                        }
                        Place::Relative => components(to).collect(),
                        Place::Host => {
                            return Where::Outside(format!(
                                "the fixture symlink `{shown}` points to `{to}`, outside `${{SCRATCH}}`"
                            ));
                        }
                        Place::Unknown => return Where::Unknown,
                    };
                    then.extend(todo);
                    todo = then;
                }
                _ => cur = next,
            }
        }
        Where::Inside(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::vars::Scope;

    fn tree() -> ScratchTree {
        let f = |json: &str| -> Fixture { serde_json::from_str(json).unwrap() };
        ScratchTree::of(
            &[
                f(r#"{"kind": "dir", "path": "${SCRATCH}/a/s0"}"#),
                f(r#"{"kind": "symlink", "path": "${SCRATCH}/in", "to": "a/s0"}"#),
                f(r#"{"kind": "symlink", "path": "${SCRATCH}/abs", "to": "${SCRATCH}/a"}"#),
                f(r#"{"kind": "symlink", "path": "${SCRATCH}/out", "to": "/usr/bin"}"#),
                f(r#"{"kind": "symlink", "path": "${SCRATCH}/a/up", "to": "../.."}"#),
            ],
            &|p| Scope::builtins().place(p),
        )
    }

    #[test]
    fn writes_resolve_through_dot_dot_and_fixture_symlinks() {
        let t = tree();
        let scope = Scope::builtins();
        let s = |p: &str| scope.place(p);
        let inside = |rest: &str, follow| match t.resolve(rest, follow, &s) {
            Where::Inside(c) => Some(c.join("/")),
            _ => None,
        };
        assert_eq!(inside("/a/s0/../e1", true).as_deref(), Some("a/e1"));
        assert_eq!(inside("/in/x", true).as_deref(), Some("a/s0/x"));
        assert_eq!(inside("/abs//s0/./y", true).as_deref(), Some("a/s0/y"));
        // The link itself, not its target, for an operation on the final name.
        assert_eq!(inside("/out", false).as_deref(), Some("out"));
        assert!(matches!(t.resolve("/out", true, &s), Where::Outside(m) if m.contains("/usr/bin")));
        assert!(matches!(t.resolve("/out/x", false, &s), Where::Outside(_)));
        assert!(matches!(
            t.resolve("/a/../../x", false, &s),
            Where::Outside(_)
        ));
        assert!(matches!(t.resolve("/a/up/x", false, &s), Where::Outside(_)));
        assert_eq!(inside("", false).as_deref(), Some(""));
    }
}
