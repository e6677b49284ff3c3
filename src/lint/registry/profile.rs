//! Registry lint of one profile: its strings' variables, the Landlock block (ABI, handled
//! rights, allow rules and how they overlap, network keys, scopes), limits and environment.

use std::collections::BTreeSet;

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
    let comps: Vec<Option<Vec<&str>>> = fs
        .allow
        .iter()
        .map(|r| match scope.lead(&r.path) {
            Some(Lead::Relative) => None,
            _ => Some(vars::components(&r.path)),
        })
        .collect();
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
        }
        if rule.access.is_empty() {
            sink.push_hint(
                Code::ExceptionRule,
                &format!("{rp}/access"),
                At::Value,
                format!("rule for `{}` grants nothing: Landlock rules are allow-only and cannot deny a path", rule.path),
                Some("remove the rule; to keep a sub-path out, narrow the rule of its parent to the sub-paths that should be allowed".into()),
            );
            continue;
        }
        for (k, a) in rule.access.iter().enumerate() {
            let ap = format!("{rp}/access/{k}");
            if a.min_abi() > abi {
                above(sink, &ap, format!("`{}`", a.as_str()), a.min_abi());
            } else if !handled.contains(a) {
                sink.push_hint(
                    Code::UnhandledRight,
                    &ap,
                    At::Value,
                    format!("granting `{}` has no effect: it is not handled, so it is allowed everywhere", a.as_str()),
                    Some(format!("add `{}` to `handle`, or remove it from this rule", a.as_str())),
                );
            }
        }
        let Some(mine) = &comps[i] else { continue };
        // Same path as an earlier rule.
        if let Some(j) = (0..i).find(|&j| comps[j].as_ref() == Some(mine)) {
            sink.push_hint(
                Code::RedundantRule,
                &format!("{rp}/path"),
                At::Value,
                format!(
                    "rule {i} repeats the path `{}` of rule {j}; their rights are unioned",
                    rule.path
                ),
                Some("merge the two rules".into()),
            );
            continue;
        }
        // Strictly beneath earlier or later rules: compare with the union of ancestors.
        let ancestors: Vec<usize> = (0..fs.allow.len())
            .filter(|&j| j != i)
            .filter(|&j| {
                comps[j]
                    .as_ref()
                    .is_some_and(|c| c.len() < mine.len() && mine.starts_with(c))
            })
            .collect();
        if ancestors.is_empty() {
            continue;
        }
        let union: BTreeSet<Access> = ancestors
            .iter()
            .flat_map(|&j| fs.allow[j].access.iter().copied())
            .collect();
        if rule.access.iter().all(|a| union.contains(a)) {
            let anc = &fs.allow[ancestors[0]].path;
            sink.push_hint(
                Code::ExceptionRule,
                &format!("{rp}/path"),
                At::Value,
                format!(
                    "rule for `{}` grants nothing beyond `{anc}` (rule {}): Landlock rules are allow-only, so a sub-path cannot be restricted below what `{anc}` grants",
                    rule.path, ancestors[0]
                ),
                Some(format!(
                    "to keep `{}` out, replace the `{anc}` rule with rules for the sub-paths that should be allowed",
                    rule.path
                )),
            );
        }
    }
    !handled.is_empty()
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
