//! `list-plans`, `list-registries`, `list-probes`, `list-profiles`, `describe-probe`,
//! `describe-profile`: aligned, sorted tables (or key/value blocks) on stdout; with
//! `--json`, arrays and objects on stdout.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

use super::args::{DescribeArgs, ListPlansArgs, RegistrySelect};
use super::{Ctx, Io};
use crate::lint::catalog::{self, Entry};
use crate::lint::format::shown;
use crate::model::registry::{Driver, Fixture, Handle, Landlock, Limits, Probe, Profile};
use crate::report::table::Table;
use crate::{Error, Result, exit_code};

/// A header and rows through the one table renderer: columns padded to their widest cell,
/// the last column not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut all: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_string()).collect()];
    all.extend(rows.iter().cloned());
    Table::left(header.len()).render(&all)
}

fn write_json<T: Serialize>(io: &mut Io<'_>, v: &T) -> Result<i32> {
    let bytes = crate::util::json::to_sorted_pretty(v)?;
    io.out_json(&bytes)?;
    Ok(exit_code::OK)
}

fn dash(s: Option<String>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or_else(|| "-".into())
}

pub fn list_plans(ctx: &Ctx, io: &mut Io<'_>, a: &ListPlansArgs) -> Result<i32> {
    let paths = if a.paths.is_empty() {
        let d = ctx.root.join("plans");
        if !d.is_dir() {
            return Err(Error::usage(format!("no plans directory at {}", shown(&d, &ctx.cwd)))
                .with_hint("pass directories to search, or run from a project with a plans/ directory (or use --root)"));
        }
        vec![d]
    } else {
        a.paths.clone()
    };
    let plans = catalog::plans(&paths)?;
    if ctx.json {
        let rows: Vec<Value> = plans
            .iter()
            .map(|(_, r)| {
                let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
                v["path"] = Value::String(shown(&r.path, &ctx.cwd));
                v
            })
            .collect();
        return write_json(io, &rows);
    }
    if plans.is_empty() {
        io.errln("no plans found")?;
        return Ok(exit_code::OK);
    }
    let rows: Vec<Vec<String>> = plans
        .iter()
        .map(|(_, r)| {
            vec![
                dash(r.plan_id.clone()),
                r.kind.map_or_else(
                    || "invalid".into(),
                    |k| {
                        serde_json::to_value(k)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    },
                ),
                dash(r.registry_id.clone()),
                if r.error.is_some() {
                    "-".into()
                } else {
                    r.profiles.to_string()
                },
                if r.error.is_some() {
                    "-".into()
                } else if r.tasks > 0 {
                    format!("{} + {} tasks", r.scenarios, r.tasks)
                } else {
                    r.scenarios.to_string()
                },
                shown(&r.path, &ctx.cwd),
            ]
        })
        .collect();
    let mut out = table(
        &["PLAN", "KIND", "REGISTRY", "PROFILES", "SCENARIOS", "PATH"],
        &rows,
    );
    let broken = plans.iter().filter(|(_, r)| r.error.is_some()).count();
    if broken > 0 {
        let _ = writeln!(
            out,
            "\n{broken} plan(s) do not load; `nexusmon plan-lint` lists every problem"
        );
    }
    io.out_bytes(out.as_bytes())?;
    Ok(exit_code::OK)
}

pub fn list_registries(ctx: &Ctx, io: &mut Io<'_>) -> Result<i32> {
    let regs = catalog::registries(&ctx.root)?;
    if ctx.json {
        let rows: Vec<Value> = regs
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
                v["path"] = Value::String(shown(&r.path, &ctx.cwd));
                v
            })
            .collect();
        return write_json(io, &rows);
    }
    if regs.is_empty() {
        io.errln(format!(
            "no registries under {}",
            shown(&ctx.root.join("registry"), &ctx.cwd)
        ))?;
        return Ok(exit_code::OK);
    }
    let rows: Vec<Vec<String>> = regs
        .iter()
        .map(|r| {
            vec![
                r.registry_id.clone(),
                r.probes.map_or_else(|| "-".into(), |n| n.to_string()),
                r.profiles.map_or_else(|| "-".into(), |n| n.to_string()),
                shown(&r.path, &ctx.cwd),
                if r.error.is_some() {
                    "does not load; run `nexusmon registry-lint`".into()
                } else {
                    dash(r.description.clone())
                },
            ]
        })
        .collect();
    io.out_bytes(
        table(
            &["REGISTRY", "PROBES", "PROFILES", "PATH", "DESCRIPTION"],
            &rows,
        )
        .as_bytes(),
    )?;
    Ok(exit_code::OK)
}

fn word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub fn list_probes(ctx: &Ctx, io: &mut Io<'_>, a: &RegistrySelect) -> Result<i32> {
    let reg = catalog::select_registry(&ctx.root, a.registry.as_deref())?;
    let id = reg.probes.registry_id.to_string();
    if ctx.json {
        let rows: Vec<Value> = reg
            .probes
            .probes
            .iter()
            .map(|(pid, p)| json!({ "registry_id": id, "probe_id": pid, "probe": p }))
            .collect();
        return write_json(io, &rows);
    }
    let rows: Vec<Vec<String>> = reg
        .probes
        .probes
        .iter()
        .map(|(pid, p)| {
            vec![
                pid.to_string(),
                p.operation.as_str().to_string(),
                word(&p.driver),
                probe_target(p),
                dash(Some(p.tags.join(","))),
            ]
        })
        .collect();
    io.out_bytes(table(&["PROBE", "OPERATION", "DRIVER", "TARGET", "TAGS"], &rows).as_bytes())?;
    Ok(exit_code::OK)
}

fn probe_target(p: &Probe) -> String {
    let mut t = match (&p.target, &p.argv) {
        (Some(t), _) => t.clone(),
        (None, Some(argv)) => argv.first().cloned().unwrap_or_default(),
        (None, None) => "-".into(),
    };
    if let Some(d) = &p.destination {
        let _ = write!(t, " -> {d}");
    }
    t
}

fn fs_summary(ll: &Landlock) -> String {
    let Some(fs) = &ll.fs else { return "-".into() };
    let handle = match &fs.handle {
        Handle::All => "all".to_string(),
        Handle::List(l) => l.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(","),
    };
    format!("{handle} ({} rules)", fs.allow.len())
}

fn ports(v: &[u16]) -> String {
    format!(
        "[{}]",
        v.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
    )
}

fn net_summary(profile: &Profile) -> String {
    let mut parts = Vec::new();
    if let Some(net) = profile.landlock.as_ref().and_then(|l| l.net.as_ref()) {
        for (k, v) in [
            ("connect", &net.tcp_connect),
            ("bind", &net.tcp_bind),
            ("udp-connect", &net.udp_connect),
            ("udp-bind", &net.udp_bind),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}{}", ports(v)));
            }
        }
        if net.udp.is_some() {
            parts.push("udp:deny".into());
        }
    }
    if let Some(s) = &profile.seccomp {
        for g in &s.deny_groups {
            parts.push(format!("seccomp:{}", word(g)));
        }
    }
    dash(Some(parts.join(" ")))
}

fn limits_summary(l: &Limits) -> String {
    let mut parts = Vec::new();
    if let Some(v) = l.cpu_seconds {
        parts.push(format!("cpu={v}s"));
    }
    if let Some(v) = l.address_space_bytes {
        parts.push(format!("as={}", bytes(v)));
    }
    if let Some(v) = l.open_files {
        parts.push(format!("nofile={v}"));
    }
    if let Some(v) = l.file_size_bytes {
        parts.push(format!("fsize={}", bytes(v)));
    }
    if let Some(v) = l.processes {
        parts.push(format!("nproc={v}"));
    }
    if let Some(v) = l.wall_timeout_ms {
        parts.push(format!("wall={v}ms"));
    }
    if let Some(v) = l.kill_grace_ms {
        parts.push(format!("grace={v}ms"));
    }
    dash(Some(parts.join(" ")))
}

fn bytes(v: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if v >= MIB && v.is_multiple_of(MIB) {
        format!("{}MiB", v / MIB)
    } else {
        format!("{v}B")
    }
}

pub fn list_profiles(ctx: &Ctx, io: &mut Io<'_>, a: &RegistrySelect) -> Result<i32> {
    let reg = catalog::select_registry(&ctx.root, a.registry.as_deref())?;
    let id = reg.profiles.registry_id.to_string();
    if ctx.json {
        let rows: Vec<Value> = reg
            .profiles
            .profiles
            .iter()
            .map(|(pid, p)| json!({ "registry_id": id, "profile_id": pid, "profile": p }))
            .collect();
        return write_json(io, &rows);
    }
    let rows: Vec<Vec<String>> = reg
        .profiles
        .profiles
        .iter()
        .map(|(pid, p)| {
            let ll = p.landlock.as_ref();
            vec![
                pid.to_string(),
                ll.map_or_else(|| "-".into(), |l| word(&l.compat)),
                ll.map_or_else(|| "-".into(), |l| l.abi.to_string()),
                ll.map_or_else(|| "-".into(), fs_summary),
                net_summary(p),
                ll.map_or_else(
                    || "-".into(),
                    |l| dash(Some(l.scope.iter().map(word).collect::<Vec<_>>().join(","))),
                ),
                limits_summary(&p.limits),
            ]
        })
        .collect();
    io.out_bytes(
        table(
            &["PROFILE", "COMPAT", "ABI", "FS", "NET", "SCOPE", "LIMITS"],
            &rows,
        )
        .as_bytes(),
    )?;
    Ok(exit_code::OK)
}

/// Key/value lines, keys padded; a multi-line value continues beneath its first line.
fn block(pairs: &[(String, String)]) -> String {
    let mut rows: Vec<[String; 2]> = Vec::new();
    for (k, v) in pairs {
        let mut lines = v.lines();
        rows.push([k.clone(), lines.next().unwrap_or("").to_string()]);
        rows.extend(lines.map(|l| [String::new(), l.to_string()]));
    }
    Table::left(2).keep_trailing().render(&rows)
}

fn users_text(users: &[catalog::User], base: &Path) -> String {
    if users.is_empty() {
        return "no plan under plans/".into();
    }
    users
        .iter()
        .map(|u| format!("{} ({})", u.plan_id, shown(&u.path, base)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn users_json(users: &[catalog::User], base: &Path) -> Value {
    Value::Array(
        users
            .iter()
            .map(|u| json!({"plan_id": u.plan_id, "path": shown(&u.path, base)}))
            .collect(),
    )
}

pub fn describe_probe(ctx: &Ctx, io: &mut Io<'_>, a: &DescribeArgs) -> Result<i32> {
    let reg = catalog::select_registry(&ctx.root, a.registry.as_deref())?;
    let rid = reg.probes.registry_id.to_string();
    let Some((id, p)) = reg.probes.probes.iter().find(|(k, _)| k.as_str() == a.id) else {
        return Err(catalog::unknown_entry(
            "probe",
            &a.id,
            &rid,
            reg.probes.probes.keys().map(crate::model::Id::as_str),
        ));
    };
    let users = catalog::users(&ctx.root, &rid, Entry::Probe, id.as_str())?;
    let file = shown(&reg.probes_path, &ctx.cwd);
    if ctx.json {
        return write_json(
            io,
            &json!({
                "registry_id": rid,
                "probe_id": id,
                "path": file,
                "probe": p,
                "used_by": users_json(&users, &ctx.cwd),
            }),
        );
    }
    let mut pairs: Vec<(String, String)> = vec![
        ("probe".into(), id.to_string()),
        ("registry".into(), format!("{rid} ({file})")),
        ("operation".into(), p.operation.as_str().into()),
        ("driver".into(), word(&p.driver)),
    ];
    if p.operation.is_control() {
        pairs.push((
            "control".into(),
            "yes: Landlock does not govern this operation; the oracle predicts `not-enforceable`"
                .into(),
        ));
    }
    if let Some(t) = &p.target {
        pairs.push(("target".into(), t.clone()));
    }
    if let Some(d) = &p.destination {
        pairs.push(("destination".into(), d.clone()));
    }
    if p.driver == Driver::Exec {
        if let Some(argv) = &p.argv {
            pairs.push((
                "argv".into(),
                serde_json::to_string(argv).unwrap_or_default(),
            ));
        }
        pairs.push((
            "allow exit codes".into(),
            p.allow_exit_codes
                .as_ref()
                .map_or_else(|| "[0] (default)".into(), |v| codes(v)),
        ));
        pairs.push((
            "deny exit codes".into(),
            p.deny_exit_codes.as_ref().map_or_else(
                || "none (a non-allow exit is an error)".into(),
                |v| codes(v),
            ),
        ));
    }
    pairs.push((
        "timeout".into(),
        p.timeout_ms.map_or_else(
            || "not set (the profile's, the plan's or the runner default applies)".into(),
            |t| format!("{t} ms"),
        ),
    ));
    if !p.fixtures.is_empty() {
        let lines: Vec<String> = p
            .fixtures
            .iter()
            .map(|f| match f {
                Fixture::File { path, mode, .. } => {
                    format!(
                        "file {path}{}",
                        mode.as_ref()
                            .map(|m| format!(" (mode {m})"))
                            .unwrap_or_default()
                    )
                }
                Fixture::Dir { path } => format!("dir {path}"),
                Fixture::Symlink { path, to } => format!("symlink {path} -> {to}"),
                Fixture::TcpListener { variable, port, .. } => match port {
                    Some(p) => format!("tcp listener on 127.0.0.1:{p}, port in ${{{variable}}}"),
                    None => format!("tcp listener on 127.0.0.1, port in ${{{variable}}}"),
                },
                Fixture::UnixAbstractListener { name } => format!("abstract unix listener @{name}"),
            })
            .collect();
        pairs.push(("fixtures".into(), lines.join("\n")));
    }
    pairs.push(("tags".into(), dash(Some(p.tags.join(", ")))));
    pairs.push(("notes".into(), dash(p.notes.clone())));
    pairs.push(("used by".into(), users_text(&users, &ctx.cwd)));
    io.out_bytes(block(&pairs).as_bytes())?;
    Ok(exit_code::OK)
}

pub fn describe_profile(ctx: &Ctx, io: &mut Io<'_>, a: &DescribeArgs) -> Result<i32> {
    let reg = catalog::select_registry(&ctx.root, a.registry.as_deref())?;
    let rid = reg.profiles.registry_id.to_string();
    let Some((id, p)) = reg
        .profiles
        .profiles
        .iter()
        .find(|(k, _)| k.as_str() == a.id)
    else {
        return Err(catalog::unknown_entry(
            "profile",
            &a.id,
            &rid,
            reg.profiles.profiles.keys().map(crate::model::Id::as_str),
        ));
    };
    let users = catalog::users(&ctx.root, &rid, Entry::Profile, id.as_str())?;
    let file = shown(&reg.profiles_path, &ctx.cwd);
    let compiled = crate::sandbox::describe::describe(id.as_str(), p, &reg.profiles_path);
    if ctx.json {
        return write_json(
            io,
            &json!({
                "registry_id": rid,
                "profile_id": id,
                "path": file,
                "profile": p,
                "compiled": compiled,
                "used_by": users_json(&users, &ctx.cwd),
            }),
        );
    }
    let mut pairs: Vec<(String, String)> = vec![
        ("profile".into(), id.to_string()),
        ("registry".into(), format!("{rid} ({file})")),
        ("description".into(), dash(p.description.clone())),
    ];
    match &p.landlock {
        None => pairs.push(("landlock".into(), "none".into())),
        Some(ll) => {
            pairs.push(("compat".into(), word(&ll.compat)));
            pairs.push(("abi".into(), ll.abi.to_string()));
            if let Some(fs) = &ll.fs {
                let handle = match &fs.handle {
                    Handle::All => format!("all rights of ABI {}", ll.abi),
                    Handle::List(l) => l.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", "),
                };
                pairs.push(("fs handled".into(), handle));
                let rules: Vec<String> = fs
                    .allow
                    .iter()
                    .map(|r| {
                        format!(
                            "{}: {}",
                            r.path,
                            r.access
                                .iter()
                                .map(|a| a.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
                    .collect();
                pairs.push(("fs allow".into(), dash(Some(rules.join("\n")))));
                pairs.push(("missing paths".into(), word(&fs.missing_paths)));
            } else {
                pairs.push(("fs".into(), "not handled (filesystem unrestricted)".into()));
            }
            pairs.push(("net".into(), net_summary(p)));
            pairs.push((
                "scope".into(),
                dash(Some(
                    ll.scope.iter().map(word).collect::<Vec<_>>().join(", "),
                )),
            ));
        }
    }
    if p.landlock.is_none() && p.seccomp.is_some() {
        pairs.push(("seccomp".into(), net_summary(p)));
    }
    pairs.push(("limits".into(), limits_summary(&p.limits)));
    let env = &p.env;
    let mut env_parts = Vec::new();
    if env.clear {
        env_parts.push("clear".to_string());
    }
    if !env.pass.is_empty() {
        env_parts.push(format!("pass {}", env.pass.join(",")));
    }
    let set: BTreeMap<&String, &String> = env.set.iter().collect();
    for (k, v) in set {
        env_parts.push(format!("set {k}={v}"));
    }
    pairs.push(("env".into(), dash(Some(env_parts.join("\n")))));
    if !p.capabilities.is_empty() {
        pairs.push((
            "capabilities".into(),
            p.capabilities
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    if let Some(i) = &p.identity {
        pairs.push(("identity".into(), format!("uid {}, gid {}", i.uid, i.gid)));
    }
    pairs.push(("tags".into(), dash(Some(p.tags.join(", ")))));
    pairs.push(("used by".into(), users_text(&users, &ctx.cwd)));
    let mut compiled_block = Vec::new();
    compiled_pairs(&compiled, &mut compiled_block);
    io.out_bytes(block(&pairs).as_bytes())?;
    io.out_bytes(b"\ncompiled for this kernel and runner (clean channel):\n")?;
    io.out_bytes(block(&compiled_block).as_bytes())?;
    Ok(exit_code::OK)
}

/// The compiled part of `describe-profile`: status, the ruleset as the kernel gets it,
/// every right with its mechanism, the child, and what this kernel drops.
fn compiled_pairs(
    d: &crate::sandbox::describe::ProfileDescription,
    pairs: &mut Vec<(String, String)>,
) {
    let abi = d.kernel_abi.map_or_else(
        || "no Landlock".to_string(),
        |a| format!("Landlock ABI {a}"),
    );
    let Some(c) = &d.compiled else {
        pairs.push((
            "status".into(),
            format!(
                "{abi}; cannot be compiled outside a plan: {}",
                d.error.as_deref().unwrap_or("unknown error")
            ),
        ));
        return;
    };
    pairs.push((
        "status".into(),
        match &c.apply_error {
            None => format!("{abi}; applies"),
            Some(e) => format!("{abi}; does NOT apply: {e}"),
        },
    ));
    if let Some(ll) = &c.landlock {
        let rules: Vec<String> = ll
            .rules
            .iter()
            .map(|r| {
                if r.skipped && r.path.contains("${") {
                    format!("{}: per child (resolved in each child's scratch)", r.path)
                } else if r.skipped {
                    format!("{}: skipped (does not exist)", r.expanded)
                } else {
                    let shown = if r.resolved == r.expanded {
                        r.resolved.clone()
                    } else {
                        format!("{} -> {}", r.expanded, r.resolved)
                    };
                    format!("{shown}: {}", r.rights_names.join(", "))
                }
            })
            .collect();
        pairs.push(("ruleset".into(), dash(Some(rules.join("\n")))));
        pairs.push((
            "handled rights".into(),
            dash(Some(ll.fs_handled_names.join(", "))),
        ));
        let ports = |l: &Option<Vec<u16>>| {
            l.as_ref().map_or_else(
                || "not handled".to_string(),
                |v| {
                    if v.is_empty() {
                        "none".into()
                    } else {
                        v.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                },
            )
        };
        pairs.push((
            "net ports".into(),
            format!(
                "tcp connect: {}; tcp bind: {}",
                ports(&ll.tcp_connect),
                ports(&ll.tcp_bind)
            ),
        ));
    }
    let rights: Vec<String> = d
        .rights
        .iter()
        .map(|r| format!("{} {}: {}", r.kind, r.right, r.enforced_by))
        .collect();
    pairs.push(("enforced by".into(), rights.join("\n")));
    let drops: Vec<String> = d
        .dropped
        .iter()
        .map(|u| format!("dropped {}: {}", u.item, u.reason))
        .chain(
            d.unenforceable
                .iter()
                .map(|u| format!("unenforceable {}: {}", u.item, u.reason)),
        )
        .collect();
    pairs.push((
        "this kernel drops".into(),
        if drops.is_empty() {
            "nothing".into()
        } else {
            drops.join("\n")
        },
    ));
}

/// Exit codes as `[0, 2]`.
fn codes(v: &[i32]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )
}
