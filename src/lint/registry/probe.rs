//! Registry lint of one probe: its strings' variables, driver and `argv`, exit codes,
//! `destination`, target (by the operation's target kind) and fixtures.

use super::super::codes::Code;
use super::super::finding::{At, Sink};
use super::super::vars::{self, BUILTINS, Lead, Scope};
use super::{PathUse, check_string_vars, fixture_path, machine_path_check, path_checks};
use crate::model::registry::{Driver, Fixture, Operation, Probe, TargetKind};

/// Every string of a probe that may hold variables, with its pointer relative to the probe.
pub fn probe_strings(probe: &Probe) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    if let Some(t) = &probe.target {
        out.push(("/target".to_string(), t.as_str()));
    }
    if let Some(d) = &probe.destination {
        out.push(("/destination".to_string(), d.as_str()));
    }
    for (i, a) in probe.argv.iter().flatten().enumerate() {
        out.push((format!("/argv/{i}"), a.as_str()));
    }
    for (i, r) in probe.reads.iter().enumerate() {
        out.push((format!("/reads/{i}"), r.as_str()));
    }
    for (i, f) in probe.fixtures.iter().enumerate() {
        match f {
            Fixture::File { path, .. } | Fixture::Dir { path } => {
                out.push((format!("/fixtures/{i}/path"), path.as_str()));
            }
            Fixture::Symlink { path, to } => {
                out.push((format!("/fixtures/{i}/path"), path.as_str()));
                out.push((format!("/fixtures/{i}/to"), to.as_str()));
            }
            Fixture::UnixAbstractListener { name } => {
                out.push((format!("/fixtures/{i}/name"), name.as_str()));
            }
            Fixture::TcpListener { .. } => {}
        }
    }
    out
}

/// The variables a probe's own fixtures publish (`tcp-listener`).
pub fn fixture_vars(probe: &Probe) -> Vec<&str> {
    probe
        .fixtures
        .iter()
        .filter_map(|f| match f {
            Fixture::TcpListener { variable, .. } => Some(variable.as_str()),
            _ => None,
        })
        .collect()
}

/// The scope of a probe's strings in registry-lint: builtins plus its listener variables,
/// and its scratch directory as its fixtures make it.
fn probe_scope(probe: &Probe) -> Scope {
    let mut scope = Scope::builtins();
    for v in fixture_vars(probe) {
        scope.add_number(v);
    }
    scope.scratch = super::super::scratch::ScratchTree::of(&probe.fixtures, &|p| scope.place(p));
    scope
}

pub(super) fn check_probe(sink: &mut Sink<'_>, base: &str, probe: &Probe) {
    let scope = probe_scope(probe);
    let at = |rel: &str| format!("{base}{rel}");
    for (rel, s) in probe_strings(probe) {
        check_string_vars(sink, &at(&rel), s, &scope);
    }
    check_driver(sink, base, probe, &scope);
    super::argv::check_argv(sink, base, probe, &scope);
    check_destination(sink, base, probe, &scope);
    check_target(sink, base, probe, &scope);
    check_fixtures(sink, base, probe, &scope);
}

/// Driver, argv, exit codes.
fn check_driver(sink: &mut Sink<'_>, base: &str, probe: &Probe, scope: &Scope) {
    let at = |rel: &str| format!("{base}{rel}");
    let op = probe.operation;
    if op == Operation::Exec && probe.driver == Driver::Builtin {
        sink.push_hint(
            Code::ExecDriverMismatch,
            &at("/operation"),
            At::Value,
            "`operation: exec` runs a program, but the probe's driver is `builtin`",
            Some("set \"driver\": \"exec\" and give `argv`".into()),
        );
    }
    match probe.driver {
        Driver::Builtin => {
            for key in ["argv", "allow_exit_codes", "deny_exit_codes"] {
                let present = match key {
                    "argv" => probe.argv.is_some(),
                    "allow_exit_codes" => probe.allow_exit_codes.is_some(),
                    _ => probe.deny_exit_codes.is_some(),
                };
                if present {
                    sink.push_hint(
                        Code::ArgvOnBuiltin,
                        &at(&format!("/{key}")),
                        At::Key,
                        format!("`{key}` on a builtin probe has no effect"),
                        Some("remove it, or set \"driver\": \"exec\"".into()),
                    );
                }
            }
            if probe.target.is_none() && op != Operation::Exec {
                sink.push_hint(
                    Code::MissingTarget,
                    base,
                    At::Key,
                    format!("builtin probe has no `target` for `{op}`"),
                    Some(target_example(op.target_kind()).into()),
                );
            }
        }
        Driver::Exec => match &probe.argv {
            None => sink.push_hint(
                Code::BadArgv,
                base,
                At::Key,
                "exec probe has no `argv`",
                Some(
                    "add \"argv\": [\"/usr/bin/program\", \"arg\"]; it runs without a shell".into(),
                ),
            ),
            Some(argv) if argv.is_empty() => sink.push_hint(
                Code::BadArgv,
                &at("/argv"),
                At::Value,
                "`argv` is empty",
                Some("the first element is the program to run, as an absolute path".into()),
            ),
            Some(argv) => {
                if scope.lead(&argv[0]) == Some(Lead::Relative) {
                    sink.push_hint(
                        Code::BadArgv,
                        &at("/argv/0"),
                        At::Value,
                        format!("program `{}` is not an absolute path", argv[0]),
                        Some(format!(
                            "exec probes never search PATH; write the full path, e.g. `/usr/bin/{}`",
                            argv[0].rsplit('/').next().unwrap_or_default()
                        )),
                    );
                }
                if probe.target.is_none() && op != Operation::Exec {
                    sink.push_hint(
                        Code::MissingTarget,
                        base,
                        At::Key,
                        format!(
                            "exec probe declares operation `{op}` but no `target`, so the oracle cannot tell what the program acts on"
                        ),
                        Some(format!("add the {} the program acts on as `target`", target_noun(op.target_kind()))),
                    );
                }
            }
        },
    }
    if let (Some(allow), Some(deny)) = (&probe.allow_exit_codes, &probe.deny_exit_codes) {
        for (i, code) in deny.iter().enumerate() {
            if allow.contains(code) {
                sink.push(
                    Code::ExitCodeOverlap,
                    &at(&format!("/deny_exit_codes/{i}")),
                    At::Value,
                    format!("exit code {code} is listed in both `allow_exit_codes` and `deny_exit_codes`"),
                );
            }
        }
    }
}

/// `destination`: required by `file-rename`, refused elsewhere.
fn check_destination(sink: &mut Sink<'_>, base: &str, probe: &Probe, scope: &Scope) {
    let at = |rel: &str| format!("{base}{rel}");
    let op = probe.operation;
    match (op, &probe.destination) {
        (Operation::FileRename, None) => sink.push_hint(
            Code::BadDestination,
            base,
            At::Key,
            "`file-rename` probe has no `destination`",
            Some("add \"destination\": \"${SCRATCH}/...\": the new name".into()),
        ),
        (Operation::FileRename, Some(d)) => path_checks(
            sink,
            &at("/destination"),
            d,
            scope,
            PathUse::Write {
                follow_final: false,
            },
        ),
        (_, Some(_)) => sink.push_hint(
            Code::BadDestination,
            &at("/destination"),
            At::Key,
            format!("`destination` only applies to `file-rename`, not `{op}`"),
            Some("remove it".into()),
        ),
        (_, None) => {}
    }
}

/// The target for the operation's target kind, and the paths in `argv`.
fn check_target(sink: &mut Sink<'_>, base: &str, probe: &Probe, scope: &Scope) {
    let at = |rel: &str| format!("{base}{rel}");
    let op = probe.operation;
    if let Some(t) = &probe.target {
        let ptr = at("/target");
        match op.target_kind() {
            TargetKind::Path => path_checks(sink, &ptr, t, scope, PathUse::of(op)),
            TargetKind::Program => path_checks(sink, &ptr, t, scope, PathUse::Read),
            TargetKind::HostPort => host_port_checks(sink, &ptr, t, op),
            TargetKind::Pid => {
                let ok = is_whole_var(t) || t.parse::<u32>().is_ok_and(|p| p > 0);
                if !ok {
                    sink.push_hint(
                        Code::BadTarget,
                        &ptr,
                        At::Value,
                        format!("`{t}` is not a process id"),
                        Some(target_example(TargetKind::Pid).into()),
                    );
                }
            }
            TargetKind::AbstractSocket => {
                if !t.starts_with('@') || t.len() < 2 {
                    sink.push_hint(
                        Code::BadTarget,
                        &ptr,
                        At::Value,
                        format!("`{t}` is not an abstract socket name"),
                        Some(target_example(TargetKind::AbstractSocket).into()),
                    );
                }
            }
        }
    }
    if let Some(argv) = &probe.argv {
        for (i, a) in argv.iter().enumerate() {
            machine_path_check(sink, &at(&format!("/argv/{i}")), a);
        }
    }
}

/// Fixtures: paths, modes, listener names and variables.
fn check_fixtures(sink: &mut Sink<'_>, base: &str, probe: &Probe, scope: &Scope) {
    let at = |rel: &str| format!("{base}{rel}");
    for (i, f) in probe.fixtures.iter().enumerate() {
        let fp = at(&format!("/fixtures/{i}"));
        match f {
            Fixture::File { path, mode, .. } => {
                fixture_path(sink, &format!("{fp}/path"), path, scope);
                if let Some(m) = mode
                    && (m.is_empty()
                        || m.len() > 4
                        || !m.bytes().all(|c| (b'0'..=b'7').contains(&c)))
                {
                    sink.push_hint(
                        Code::SchemaViolation,
                        &format!("{fp}/mode"),
                        At::Value,
                        format!("`{m}` is not an octal file mode"),
                        Some("write the mode as an octal string, e.g. \"0644\" or \"0755\"".into()),
                    );
                }
            }
            Fixture::Dir { path } => fixture_path(sink, &format!("{fp}/path"), path, scope),
            Fixture::Symlink { path, to } => {
                fixture_path(sink, &format!("{fp}/path"), path, scope);
                machine_path_check(sink, &format!("{fp}/to"), to);
            }
            Fixture::TcpListener { variable, .. } => {
                if BUILTINS.contains(&variable.as_str()) {
                    sink.push_hint(
                        Code::VariableConflict,
                        &format!("{fp}/variable"),
                        At::Value,
                        format!("listener variable `{variable}` is a builtin variable"),
                        Some("choose another name, e.g. `LISTEN_PORT`".into()),
                    );
                }
            }
            Fixture::UnixAbstractListener { name } => {
                if name.starts_with('@') || name.is_empty() {
                    sink.push_hint(
                        Code::BadTarget,
                        &format!("{fp}/name"),
                        At::Value,
                        format!("`{name}` is not a listener name"),
                        Some("write the abstract name without the leading `@` (the probe's target has it)".into()),
                    );
                }
            }
        }
    }
}

fn target_example(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Path => {
            "give an absolute path, e.g. \"/etc/hostname\" or \"${SCRATCH}/file.txt\""
        }
        TargetKind::HostPort => {
            "write `host:port`, e.g. \"127.0.0.1:443\", \"[::1]:443\" or \"127.0.0.1:${LISTEN_PORT}\" with a tcp-listener fixture"
        }
        TargetKind::Pid => "write a process id or \"${RUNNER_PID}\"",
        TargetKind::AbstractSocket => "write `@name`, e.g. \"@nexusmon-${RUNNER_PID}\"",
        TargetKind::Program => "give the program's absolute path",
    }
}

fn target_noun(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Path => "path",
        TargetKind::HostPort => "`host:port`",
        TargetKind::Pid => "process id",
        TargetKind::AbstractSocket => "`@name`",
        TargetKind::Program => "program",
    }
}

/// True if `s` is exactly one `${NAME}`.
fn is_whole_var(s: &str) -> bool {
    s.strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .is_some_and(vars::is_var_name)
}

fn host_port_checks(sink: &mut Sink<'_>, ptr: &str, t: &str, op: Operation) {
    let Some((host, port)) = vars::split_host_port(t) else {
        sink.push_hint(
            Code::BadTarget,
            ptr,
            At::Value,
            format!("`{op}` needs `host:port`, found `{t}`"),
            Some(target_example(TargetKind::HostPort).into()),
        );
        return;
    };
    if host.is_empty() {
        sink.push_hint(
            Code::BadTarget,
            ptr,
            At::Value,
            format!("`{t}` has no host"),
            Some("e.g. \"127.0.0.1:443\"".into()),
        );
    }
    if is_whole_var(port) {
        return;
    }
    let min = u32::from(op != Operation::TcpBind);
    match port.parse::<u32>() {
        Ok(p) if p >= min && p <= 65535 => {}
        _ => sink.push_hint(
            Code::BadTarget,
            ptr,
            At::Value,
            format!("port `{port}` in `{t}` is not a number from {min} to 65535"),
            Some(target_example(TargetKind::HostPort).into()),
        ),
    }
}
