//! Registry lint of one profile: its strings' variables, the Landlock block (ABI, handled
//! rights, allow rules and how they overlap, network keys, scopes), limits and environment.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::super::codes::Code;
use super::super::finding::{At, Sink};
use super::super::vars::{self, Lead, Scope};
use super::{check_string_vars, machine_path_check};
use crate::model::registry::{Access, FsRules, Handle, Landlock, NetRules, Profile};

/// Every rule path of a profile, with its pointer relative to the profile.
pub fn profile_strings(profile: &Profile) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    if let Some(fs) = profile.landlock.as_ref().and_then(|l| l.fs.as_ref()) {
        for (i, r) in fs.allow.iter().enumerate() {
            out.push((format!("/landlock/fs/allow/{i}/path"), r.path.as_str()));
        }
    }
    out
}

pub(super) fn check_profile(sink: &mut Sink<'_>, base: &str, profile: &Profile) {
    let at = |rel: &str| format!("{base}{rel}");
    let scope = Scope::builtins();
    for (rel, s) in profile_strings(profile) {
        check_string_vars(sink, &at(&rel), s, &scope);
    }
    if let Some(ll) = &profile.landlock {
        check_landlock(sink, base, ll, &scope);
    }
    let l = &profile.limits;
    if l.cpu_seconds == Some(0) {
        sink.push_hint(
            Code::BadLimit,
            &at("/limits/cpu_seconds"),
            At::Value,
            "`cpu_seconds` 0 kills the child before it runs",
            Some("use at least 1 (the hard limit is one second above it, so the child gets SIGXCPU first)".into()),
        );
    }
    if l.wall_timeout_ms == Some(0) {
        sink.push_hint(
            Code::BadLimit,
            &at("/limits/wall_timeout_ms"),
            At::Value,
            "`wall_timeout_ms` 0 times every child out at once",
            Some(
                "use a positive number of milliseconds, or remove it to use the plan's timeout"
                    .into(),
            ),
        );
    }
    if let Some(b) = l.address_space_bytes
        && b < 16 * 1024 * 1024
    {
        sink.push_hint(
            Code::SuspiciousLimit,
            &at("/limits/address_space_bytes"),
            At::Value,
            format!("`address_space_bytes` {b} is under 16 MiB; most programs cannot even start"),
            Some("the value is in bytes: 268435456 is 256 MiB".into()),
        );
    }
    if l.open_files == Some(0) {
        sink.push_hint(
            Code::SuspiciousLimit,
            &at("/limits/open_files"),
            At::Value,
            "`open_files` 0 lets the child open nothing",
            Some(
                "stdin, stdout and stderr already use 3 descriptors; most programs need a few more"
                    .into(),
            ),
        );
    }
    for (i, name) in profile.env.pass.iter().enumerate() {
        if !is_env_name(name) {
            sink.push(
                Code::BadEnvName,
                &at(&format!("/env/pass/{i}")),
                At::Value,
                format!("`{name}` is not an environment variable name"),
            );
        }
    }
    for name in profile.env.set.keys() {
        if !is_env_name(name) {
            sink.push(
                Code::BadEnvName,
                &at(&format!(
                    "/env/set/{}",
                    crate::source::escape_pointer_token(name)
                )),
                At::Key,
                format!("`{name}` is not an environment variable name"),
            );
        }
    }
    let seccomp_empty = profile
        .seccomp
        .as_ref()
        .is_none_or(|s| s.deny_groups.is_empty());
    if profile.landlock.is_none()
        && seccomp_empty
        && profile.limits == crate::model::registry::Limits::default()
        && profile.env == crate::model::registry::Env::default()
    {
        sink.push_hint(
            Code::EmptyProfile,
            base,
            At::Key,
            "profile restricts nothing: no Landlock rules, seccomp group, limit or environment change",
            Some("scenarios under it behave like the baseline; say so in its description if that is the intent".into()),
        );
    }
}

fn is_env_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn check_landlock(sink: &mut Sink<'_>, base: &str, ll: &Landlock, scope: &Scope) {
    let at = |rel: &str| format!("{base}{rel}");
    let abi = ll.abi;
    if ll.compat == crate::model::registry::Compat::BestEffort {
        sink.push_hint(
            Code::BestEffort,
            &at("/landlock/compat"),
            At::Value,
            "best-effort: the kernel enforces what it can; a downgrade is recorded and makes the run non-promotable",
            Some("use `hard` (the default) for evidence you intend to promote".into()),
        );
    }
    let above = |sink: &mut Sink<'_>, ptr: &str, what: String, need: u8| {
        above_abi(sink, ptr, &what, need, abi);
    };
    let mut handles_something = false;
    if let Some(fs) = &ll.fs {
        handles_something |= check_fs(sink, base, fs, abi, scope);
    }
    if let Some(net) = &ll.net {
        handles_something |= check_net(sink, &at("/landlock/net"), net, abi);
    }
    if !ll.scope.is_empty() {
        handles_something = true;
        if abi < 6 {
            above(sink, &at("/landlock/scope"), "`scope`".into(), 6);
        }
    }
    if !handles_something {
        sink.push_hint(
            Code::NothingHandled,
            &at("/landlock"),
            At::Key,
            "the `landlock` block handles nothing: no filesystem rights, no network key, no scope",
            Some(
                "the kernel refuses an empty ruleset; handle something or remove the block".into(),
            ),
        );
    }
}

/// A finding: `what` needs Landlock ABI `need`, above the pinned `abi`.
fn above_abi(sink: &mut Sink<'_>, ptr: &str, what: &str, need: u8, abi: u8) {
    sink.push_hint(
        Code::AboveAbi,
        ptr,
        At::Value,
        format!("{what} needs Landlock ABI {need}, but the profile pins `abi: {abi}`"),
        Some(format!(
            "raise `abi` to {need} (the kernel must support it) or remove it"
        )),
    );
}

/// `landlock.fs`: handled rights under the pin, then each allow rule (path, rights,
/// repeats, rules that grant nothing beyond an ancestor's). Returns whether anything is
/// handled.
fn check_fs(sink: &mut Sink<'_>, base: &str, fs: &FsRules, abi: u8, scope: &Scope) -> bool {
    let at = |rel: &str| format!("{base}{rel}");
    let above = |sink: &mut Sink<'_>, ptr: &str, what: String, need: u8| {
        above_abi(sink, ptr, &what, need, abi);
    };
    let handled: Vec<Access> = match &fs.handle {
        Handle::All => Access::ALL
            .iter()
            .copied()
            .filter(|a| a.min_abi() <= abi)
            .collect(),
        Handle::List(list) => {
            for (i, a) in list.iter().enumerate() {
                if a.min_abi() > abi {
                    above(
                        sink,
                        &at(&format!("/landlock/fs/handle/{i}")),
                        format!("`{}`", a.as_str()),
                        a.min_abi(),
                    );
                }
            }
            list.clone()
        }
    };
    let attach: Vec<Option<Attach>> = fs
        .allow
        .iter()
        .map(|r| Attach::of(&r.path, scope))
        .collect();
    // Rules by where they attach (in rule order), so each rule's ancestors are looked up
    // per component rather than compared with every rule: linear in the rules.
    let mut at_place: AtPlace<'_> = HashMap::new();
    for (j, a) in attach.iter().enumerate() {
        if let Some(a) = a {
            at_place
                .entry((a.root.as_str(), a.comps.as_slice()))
                .or_default()
                .push((j, a.is_dir));
        }
    }
    for (i, rule) in fs.allow.iter().enumerate() {
        let rp = at(&format!("/landlock/fs/allow/{i}"));
        if scope.lead(&rule.path) == Some(Lead::Relative) {
            sink.push_hint(
                Code::RelativeRulePath,
                &format!("{rp}/path"),
                At::Value,
                format!("rule path `{}` is not absolute", rule.path),
                Some("start it with `/` or `${SCRATCH}`".into()),
            );
        } else {
            machine_path_check(sink, &format!("{rp}/path"), &rule.path);
            per_process_rule(sink, &format!("{rp}/path"), &rule.path);
        }
        if rule.access.is_empty() {
            sink.push_hint(
                Code::ExceptionRule,
                &format!("{rp}/access"),
                At::Value,
                format!("rule for `{}` grants nothing (valid, and it has no effect): Landlock rules only add rights, so a rule cannot deny a path", rule.path),
                Some("remove the rule; to keep a sub-path out, narrow the rule of its parent to the sub-paths that should be allowed (or acknowledge it with `allow_lint: [\"NX303\"]`)".into()),
            );
            continue;
        }
        for (k, a) in rule.access.iter().enumerate() {
            let ap = format!("{rp}/access/{k}");
            if a.min_abi() > abi {
                above(sink, &ap, format!("`{}`", a.as_str()), a.min_abi());
            } else if !handled.contains(a) {
                unhandled_grant(sink, &ap, *a);
            }
        }
        let Some(mine) = &attach[i] else { continue };
        redundancy(
            sink,
            &format!("{rp}/path"),
            i,
            fs,
            &at_place,
            mine,
            &handled,
        );
    }
    !handled.is_empty()
}

/// Rules by where they attach (root, components): their indexes and whether each is a
/// directory.
type AtPlace<'a> = HashMap<(&'a str, &'a [String]), Vec<(usize, bool)>>;

/// Where a rule attaches, as lint can know it without running anything: a host path is
/// resolved the way the kernel opens it when the ruleset is built (symlinks followed, `..`
/// per component: `/lib` is `/usr/lib` on a merged-`/usr` system); a path beneath a
/// variable (`${SCRATCH}`, `${HOME}`, a plan variable) is normalized component by component
/// (`${SCRATCH}/a/s0/../e1` is `${SCRATCH}/a/e1`), what it holds depending on the run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attach {
    /// `/` for a host path, else the leading variable.
    root: String,
    /// Components beneath the root.
    comps: Vec<String>,
    /// It is (or may be) a directory: only a directory rule covers other paths.
    is_dir: bool,
}

impl Attach {
    fn of(path: &str, scope: &Scope) -> Option<Self> {
        let lead = scope.lead(path);
        // A per-process rule path is NX220; where it resolves is the runner's business.
        if lead == Some(Lead::Relative) || vars::per_process(path, true).is_some() {
            return None;
        }
        if let Some(rest) = path.strip_prefix("${") {
            let (name, after) = rest.split_once('}')?;
            let mut comps: Vec<String> = Vec::new();
            for c in after.split('/') {
                match c {
                    "" | "." => {}
                    ".." => {
                        if comps.pop().is_none() {
                            comps.push("..".into());
                        }
                    }
                    c => comps.push(c.to_string()),
                }
            }
            return Some(Self {
                root: name.to_string(),
                comps,
                is_dir: true,
            });
        }
        let r = crate::util::paths::resolve(Path::new(path), Path::new("/"), true);
        let is_dir = std::fs::metadata(&r.canonical).map_or(true, |m| m.is_dir());
        Some(Self {
            root: "/".into(),
            comps: r
                .canonical
                .components()
                .filter_map(|c| match c {
                    std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect(),
            is_dir,
        })
    }

    /// How it is shown when it differs from the text of the rule.
    fn shown(&self) -> String {
        if self.root == "/" {
            format!("/{}", self.comps.join("/"))
        } else if self.comps.is_empty() {
            format!("${{{}}}", self.root)
        } else {
            format!("${{{}}}/{}", self.root, self.comps.join("/"))
        }
    }
}

/// NX303 for a rule that adds nothing: it attaches where an earlier rule does, or every
/// right it grants is granted by rules on directories above it. Valid and harmless (the
/// kernel unions the rules), so a warning; it often means an intended exception, which
/// Landlock cannot express.
fn redundancy(
    sink: &mut Sink<'_>,
    ptr: &str,
    i: usize,
    fs: &FsRules,
    at_place: &AtPlace<'_>,
    mine: &Attach,
    handled: &[Access],
) {
    let rule = &fs.allow[i];
    let resolved = |a: &Attach, text: &str| {
        let shown = a.shown();
        if shown == text.trim_end_matches('/') {
            format!("`{text}`")
        } else {
            format!("`{text}` (which resolves to `{shown}`)")
        }
    };
    let here = at_place
        .get(&(mine.root.as_str(), mine.comps.as_slice()))
        .map_or(&[][..], Vec::as_slice);
    if let Some(&(j, _)) = here.first().filter(|(j, _)| *j < i) {
        sink.push_hint(
            Code::ExceptionRule,
            ptr,
            At::Value,
            format!(
                "rule {i} for {} attaches where rule {j} for `{}` does; their rights are unioned (valid and harmless)",
                resolved(mine, &rule.path),
                fs.allow[j].path
            ),
            Some("merge the two rules (or acknowledge it with `allow_lint: [\"NX303\"]`)".into()),
        );
        return;
    }
    let mut above: Vec<usize> = (0..mine.comps.len())
        .filter_map(|n| at_place.get(&(mine.root.as_str(), &mine.comps[..n])))
        .flatten()
        .filter(|(_, is_dir)| *is_dir)
        .map(|(j, _)| *j)
        .collect();
    above.sort_unstable();
    if above.is_empty() {
        return;
    }
    let union: BTreeSet<Access> = above
        .iter()
        .flat_map(|&j| fs.allow[j].access.iter().copied())
        .collect();
    let granted: Vec<&Access> = rule.access.iter().filter(|a| handled.contains(a)).collect();
    if granted.iter().all(|a| union.contains(a)) {
        let anc = &fs.allow[above[0]].path;
        let words: Vec<&str> = granted.iter().map(|a| a.as_str()).collect();
        sink.push_hint(
            Code::ExceptionRule,
            ptr,
            At::Value,
            format!(
                "rule for {} grants nothing beyond `{anc}` (rule {}): {} is already granted beneath it (valid and harmless; if it was meant to keep the path from getting more, Landlock cannot express that: rules only add rights)",
                resolved(mine, &rule.path),
                above[0],
                if words.is_empty() { "everything it grants".to_string() } else { format!("`{}`", words.join("+")) }
            ),
            Some(format!(
                "remove it, or acknowledge it with `allow_lint: [\"NX303\"]`; to keep `{}` out, replace the `{anc}` rule with rules for the sub-paths that should be allowed",
                rule.path
            )),
        );
    }
}

/// Apply the profile's and its rules' `allow_lint` to the findings the profile's checks
/// added (`sink.findings[start..]`): an acknowledged warning or note is dropped; an entry
/// that is not a code or names an error is NX313; an entry nothing needed is NX314.
pub(super) fn allow_lint(sink: &mut Sink<'_>, start: usize, base: &str, profile: &Profile) {
    // (where the list is, the pointer prefix it covers, the list, whether it covers a
    // rule on a host path: whether NX303 fires there depends on the host's symlinks, e.g.
    // `/lib` is `/usr/lib` only on a merged-`/usr` system, so acknowledging it is never
    // stale)
    let rules = profile
        .landlock
        .as_ref()
        .and_then(|l| l.fs.as_ref())
        .map_or(&[][..], |f| f.allow.as_slice());
    let mut lists: Vec<(String, String, &[String], bool)> = vec![(
        format!("{base}/allow_lint"),
        base.to_string(),
        &profile.allow_lint,
        rules.iter().any(|r| r.path.starts_with('/')),
    )];
    for (i, r) in rules.iter().enumerate() {
        let rp = format!("{base}/landlock/fs/allow/{i}");
        lists.push((
            format!("{rp}/allow_lint"),
            rp,
            &r.allow_lint,
            r.path.starts_with('/'),
        ));
    }
    let mut used: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut ok: Vec<Vec<Option<Code>>> = Vec::new();
    let mut problems = Vec::new();
    for (at_list, _, list, _) in &lists {
        let mut codes = Vec::new();
        for (k, id) in list.iter().enumerate() {
            let code = Code::ALL.iter().copied().find(|c| c.id() == id);
            match code {
                None => problems.push((
                    format!("{at_list}/{k}"),
                    format!("`{id}` is not a lint code"),
                    crate::util::suggest::did_you_mean(id, Code::ALL.iter().map(|c| c.id()))
                        .map_or_else(
                            || "use a code such as `NX303`".to_string(),
                            |c| format!("did you mean `{c}`?"),
                        ),
                )),
                Some(c) if c.severity() == super::super::codes::Severity::Error => problems.push((
                    format!("{at_list}/{k}"),
                    format!(
                        "`{id}` ({}) is an error, which cannot be acknowledged",
                        c.name()
                    ),
                    "fix what it reports: `run` refuses a plan whose lint has errors".to_string(),
                )),
                Some(_) => {}
            }
            codes.push(code.filter(|c| c.severity() != super::super::codes::Severity::Error));
        }
        ok.push(codes);
    }
    // The lists that may acknowledge a finding: its rule's (found from the pointer, not by
    // comparing with every rule) before the profile's.
    let rules_at = format!("{base}/landlock/fs/allow/");
    let in_profile = |ptr: &str| ptr == base || ptr.starts_with(&format!("{base}/"));
    let rule_of = |ptr: &str| -> Option<usize> {
        let rest = ptr.strip_prefix(rules_at.as_str())?;
        rest.split('/').next()?.parse::<usize>().ok()
    };
    let mut kept = Vec::new();
    for f in sink.findings.drain(start..) {
        let candidates = rule_of(&f.pointer)
            .map(|i| i + 1)
            .filter(|l| *l < lists.len())
            .into_iter()
            .chain(in_profile(&f.pointer).then_some(0));
        let by = candidates.into_iter().find_map(|l| {
            ok[l]
                .iter()
                .position(|c| *c == Some(f.code))
                .map(|k| (l, k))
        });
        match by {
            Some(k) => {
                used.insert(k);
            }
            None => kept.push(f),
        }
    }
    sink.findings.extend(kept);
    for (ptr, msg, hint) in problems {
        sink.push_hint(Code::BadAllowLint, &ptr, At::Value, msg, Some(hint));
    }
    for (l, (at_list, _, _, host)) in lists.iter().enumerate() {
        for (k, code) in ok[l].iter().enumerate() {
            if let Some(c) = code
                && !used.contains(&(l, k))
                && !(*host && *c == Code::ExceptionRule)
            {
                sink.push_hint(
                    Code::UnusedAllowLint,
                    &format!("{at_list}/{k}"),
                    At::Value,
                    format!(
                        "`{}` is acknowledged here but not reported for this {}",
                        c.id(),
                        if l == 0 { "profile" } else { "rule" }
                    ),
                    Some("remove the entry so a future finding of this code is seen".into()),
                );
            }
        }
    }
}

/// NX302: a granted word that is not handled.
fn unhandled_grant(sink: &mut Sink<'_>, ptr: &str, a: Access) {
    let (msg, hint) = if a == Access::Rename {
        (
            "granting `rename` has no effect unless `rename` is handled, and refer is the one right any ruleset denies when not handled: every cross-directory rename and link is refused (EXDEV)".to_string(),
            "add `rename` to `handle` so this rule can grant it".to_string(),
        )
    } else {
        (
            format!(
                "granting `{}` has no effect: it is not handled, so it is allowed everywhere",
                a.as_str()
            ),
            format!(
                "add `{}` to `handle`, or remove it from this rule",
                a.as_str()
            ),
        )
    };
    sink.push_hint(Code::UnhandledRight, ptr, At::Value, msg, Some(hint));
}

/// NX220 for a rule path beneath a per-process directory: the runner opens rule paths, so
/// the rule would attach to the runner's own process, never the child's.
fn per_process_rule(sink: &mut Sink<'_>, ptr: &str, path: &str) {
    if let Some(why) = vars::per_process(path, true) {
        sink.push_hint(
            Code::PerProcessPath,
            ptr,
            At::Value,
            format!("rule path `{path}` {why}"),
            Some(
                "name the directory the rule is for (e.g. `/proc` for every process's files)"
                    .into(),
            ),
        );
    }
}

/// Network keys: ABI, duplicate ports. Returns whether anything is handled.
fn check_net(sink: &mut Sink<'_>, base: &str, net: &NetRules, abi: u8) -> bool {
    let mut handled = false;
    let lists = [
        ("tcp_connect", &net.tcp_connect, 4u8),
        ("tcp_bind", &net.tcp_bind, 4),
        ("udp_connect", &net.udp_connect, 10),
        ("udp_bind", &net.udp_bind, 10),
    ];
    for (key, list, need) in lists {
        let Some(ports) = list else { continue };
        handled = true;
        let ptr = format!("{base}/{key}");
        if abi < need {
            sink.push_hint(
                Code::AboveAbi,
                &ptr,
                At::Key,
                format!("`{key}` needs Landlock ABI {need}, but the profile pins `abi: {abi}`"),
                Some(if need == 10 {
                    "below ABI 10 use \"udp\": \"deny\" (enforced with seccomp) or raise `abi`"
                        .to_string()
                } else {
                    format!("raise `abi` to {need} (the kernel must support it) or remove the key")
                }),
            );
        }
        for (i, p) in ports.iter().enumerate() {
            if ports[..i].contains(p) {
                sink.push_hint(
                    Code::DuplicatePort,
                    &format!("{ptr}/{i}"),
                    At::Value,
                    format!("port {p} is listed twice in `{key}`"),
                    Some("remove the duplicate".into()),
                );
            }
        }
    }
    if net.udp.is_some() {
        handled = true;
    }
    handled
}
