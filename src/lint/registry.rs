//! Lint of one registry directory (`registry/<id>/probes.*` and `profiles.*`): the files,
//! every probe (operation, target, driver, argv, fixtures, variables) and every profile
//! (ABI, handled rights, allow rules, ports, limits, environment).
//!
//! Checks here know only the builtin variables; what depends on a plan (its variables) is
//! checked by [`super::plan`] for the entries the plan uses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::codes::Code;
use super::finding::{At, Finding, Sink, pointer};
use super::input::{self, Input};
use super::vars::{self, BUILTINS, Lead, Scope};
use crate::model::SCHEMA_VERSION;
use crate::model::registry::{
    Access, Driver, Fixture, Handle, Landlock, NetRules, Operation, Probe, Profile, TargetKind,
};
use crate::source::deserialize_value;
use crate::{Error, Result};

/// What lint learned about one registry.
#[derive(Debug, Default)]
pub struct RegistryLint {
    /// `registry/<id>/` (absolute).
    pub dir: PathBuf,
    /// The probes file, if there is one.
    pub probes_path: Option<PathBuf>,
    /// The profiles file, if there is one.
    pub profiles_path: Option<PathBuf>,
    /// Every probe id the file defines (valid or not).
    pub probe_ids: BTreeSet<String>,
    /// Every profile id the file defines.
    pub profile_ids: BTreeSet<String>,
    /// The probes that passed the schema, by id.
    pub probes: BTreeMap<String, Probe>,
    /// The profiles that passed the schema, by id.
    pub profiles: BTreeMap<String, Profile>,
    /// Findings about the registry's files.
    pub findings: Vec<Finding>,
    /// Source text of the files read (for excerpts).
    pub sources: Vec<(PathBuf, String)>,
    /// Files read.
    pub files_checked: usize,
}

/// The data files named `stem` (`.json`, `.yaml`, `.yml`) in `dir`, in that order.
pub fn data_files(dir: &Path, stem: &str) -> Vec<PathBuf> {
    ["json", "yaml", "yml"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .filter(|p| p.is_file())
        .collect()
}

/// Lint the registry in `dir` (absolute).
pub fn lint_registry(dir: &Path) -> Result<RegistryLint> {
    let mut reg = RegistryLint {
        dir: dir.to_path_buf(),
        ..RegistryLint::default()
    };
    let dir_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let probes_files = data_files(dir, "probes");
    let profiles_files = data_files(dir, "profiles");
    for extra in probes_files
        .iter()
        .skip(1)
        .chain(profiles_files.iter().skip(1))
    {
        reg.findings.push(
            Finding::file_level(
                Code::AmbiguousFile,
                extra,
                format!(
                    "registry `{dir_name}` has more than one {} file",
                    extra
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ),
            )
            .with_hint("keep one of the .json/.yaml/.yml files; the others would be ignored"),
        );
    }
    let mut ids: Vec<(PathBuf, String)> = Vec::new();
    if let Some(p) = probes_files.first() {
        let mut input = input::read(p, "probes")?;
        reg.files_checked += 1;
        if let Some(v) = input.value.clone() {
            header(&mut input, &v, &dir_name, &mut ids);
            lint_probes(&mut input, &v, &mut reg);
        }
        finish(&mut reg, input);
        reg.probes_path = Some(p.clone());
    }
    if let Some(p) = profiles_files.first() {
        let mut input = input::read(p, "profiles")?;
        reg.files_checked += 1;
        if let Some(v) = input.value.clone() {
            header(&mut input, &v, &dir_name, &mut ids);
            lint_profiles(&mut input, &v, &mut reg);
        }
        finish(&mut reg, input);
        reg.profiles_path = Some(p.clone());
    }
    match (&reg.probes_path, &reg.profiles_path) {
        (Some(have), None) | (None, Some(have)) => {
            let missing = if reg.probes_path.is_none() {
                "probes"
            } else {
                "profiles"
            };
            reg.findings.push(
                Finding::file_level(
                    Code::RegistryIncomplete,
                    have,
                    format!("registry `{dir_name}` has no {missing}.json (or {missing}.yaml)"),
                )
                .with_hint(format!("create `{missing}.json` in the same directory")),
            );
        }
        _ => {}
    }
    if let [(_, a), (path, b)] = ids.as_slice()
        && a != b
    {
        let doc_text = reg
            .sources
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, t)| t.clone());
        if let Some(text) = doc_text
            && let Ok(doc) = crate::source::Document::parse(path, text)
        {
            let mut sink = Sink::new(&doc, path);
            sink.push_hint(
                Code::RegistryIncomplete,
                "/registry_id",
                At::Value,
                format!("`registry_id` is `{b}` here but `{a}` in the probes file"),
                Some("both files of a registry name the same registry".into()),
            );
            reg.findings.append(&mut sink.findings);
        }
    }
    Ok(reg)
}

fn finish(reg: &mut RegistryLint, input: Input) {
    if let Some(t) = input.text {
        reg.sources.push((input.path.clone(), t));
    }
    reg.findings.extend(input.findings);
}

/// `schema_version` and `registry_id` of either file.
fn header(input: &mut Input, v: &Value, dir_name: &str, ids: &mut Vec<(PathBuf, String)>) {
    let Some(mut sink) = input.sink() else {
        return;
    };
    if let Some(ver) = v.get("schema_version").and_then(Value::as_u64)
        && ver != u64::from(SCHEMA_VERSION)
    {
        sink.push_hint(
            Code::UnsupportedVersion,
            "/schema_version",
            At::Value,
            format!(
                "schema_version {ver} is not supported by this build (it reads {SCHEMA_VERSION})"
            ),
            Some(format!("set \"schema_version\": {SCHEMA_VERSION}")),
        );
    }
    if let Some(id) = v.get("registry_id").and_then(Value::as_str) {
        if !dir_name.is_empty() && id != dir_name {
            sink.push_hint(
                Code::RegistryIdMismatch,
                "/registry_id",
                At::Value,
                format!("`registry_id` is `{id}` but the directory is `{dir_name}`"),
                Some(format!(
                    "plans find registries by directory name: set \"registry_id\": \"{dir_name}\" or rename the directory"
                )),
            );
        }
        ids.push((input.path.clone(), id.to_string()));
    }
    input.findings.append(&mut sink.findings);
}

fn lint_probes(input: &mut Input, v: &Value, reg: &mut RegistryLint) {
    let Some(map) = v.get("probes").and_then(Value::as_object) else {
        return;
    };
    let mut failures = Vec::new();
    {
        let Some(mut sink) = input.sink() else {
            return;
        };
        for (id, entry) in map {
            reg.probe_ids.insert(id.clone());
            let base = pointer(["probes", id.as_str()]);
            if input.validated.invalid_under(&base) {
                continue;
            }
            match deserialize_value::<Probe>(entry.clone()) {
                Ok(probe) => {
                    check_probe(&mut sink, &base, &probe);
                    reg.probes.insert(id.clone(), probe);
                }
                Err(e) => failures.push((format!("{base}{}", e.pointer), e.message)),
            }
        }
        input.findings.append(&mut sink.findings);
    }
    for (p, m) in failures {
        input.typed_failure(&p, &m);
    }
}

fn lint_profiles(input: &mut Input, v: &Value, reg: &mut RegistryLint) {
    let Some(map) = v.get("profiles").and_then(Value::as_object) else {
        return;
    };
    let mut failures = Vec::new();
    {
        let Some(mut sink) = input.sink() else {
            return;
        };
        for (id, entry) in map {
            reg.profile_ids.insert(id.clone());
            let base = pointer(["profiles", id.as_str()]);
            if input.validated.invalid_under(&base) {
                continue;
            }
            match deserialize_value::<Profile>(entry.clone()) {
                Ok(profile) => {
                    check_profile(&mut sink, &base, &profile);
                    reg.profiles.insert(id.clone(), profile);
                }
                Err(e) => failures.push((format!("{base}{}", e.pointer), e.message)),
            }
        }
        input.findings.append(&mut sink.findings);
    }
    for (p, m) in failures {
        input.typed_failure(&p, &m);
    }
}

// ---------------------------------------------------------------------------------------
// Probes
// ---------------------------------------------------------------------------------------

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

/// The scope of a probe's strings in registry-lint: builtins plus its listener variables.
fn probe_scope(probe: &Probe) -> Scope {
    let mut scope = Scope::builtins();
    for v in fixture_vars(probe) {
        scope.add_number(v);
    }
    scope
}

fn check_probe(sink: &mut Sink<'_>, base: &str, probe: &Probe) {
    let scope = probe_scope(probe);
    let at = |rel: &str| format!("{base}{rel}");
    let op = probe.operation;

    for (rel, s) in probe_strings(probe) {
        check_string_vars(sink, &at(&rel), s, &scope);
    }

    // Driver, argv, exit codes.
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

    // Destination.
    match (op, &probe.destination) {
        (Operation::FileRename, None) => sink.push_hint(
            Code::BadDestination,
            base,
            At::Key,
            "`file-rename` probe has no `destination`",
            Some("add \"destination\": \"${SCRATCH}/...\": the new name".into()),
        ),
        (Operation::FileRename, Some(d)) => path_checks(sink, &at("/destination"), d, &scope, true),
        (_, Some(_)) => sink.push_hint(
            Code::BadDestination,
            &at("/destination"),
            At::Key,
            format!("`destination` only applies to `file-rename`, not `{op}`"),
            Some("remove it".into()),
        ),
        (_, None) => {}
    }

    // Target.
    if let Some(t) = &probe.target {
        let ptr = at("/target");
        match op.target_kind() {
            TargetKind::Path => path_checks(sink, &ptr, t, &scope, op.writes()),
            TargetKind::Program => path_checks(sink, &ptr, t, &scope, false),
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

    // Fixtures.
    for (i, f) in probe.fixtures.iter().enumerate() {
        let fp = at(&format!("/fixtures/{i}"));
        match f {
            Fixture::File { path, mode, .. } => {
                fixture_path(sink, &format!("{fp}/path"), path, &scope);
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
            Fixture::Dir { path } => fixture_path(sink, &format!("{fp}/path"), path, &scope),
            Fixture::Symlink { path, to } => {
                fixture_path(sink, &format!("{fp}/path"), path, &scope);
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

/// Absolute-path, scratch and machine-path checks of a path string.
fn path_checks(sink: &mut Sink<'_>, ptr: &str, s: &str, scope: &Scope, writes: bool) {
    match scope.lead(s) {
        // None: a plan variable leads the path; plan-lint checks it with the value.
        Some(Lead::Relative) => {
            sink.push_hint(
                Code::RelativePath,
                ptr,
                At::Value,
                format!("`{s}` is not an absolute path"),
                Some("start it with `/` or `${SCRATCH}`".into()),
            );
            return;
        }
        Some(Lead::Root) if writes => {
            sink.push_hint(
                Code::WriteOutsideScratch,
                ptr,
                At::Value,
                format!("this probe modifies `{s}`, which is outside `${{SCRATCH}}`"),
                Some(
                    "the baseline lane runs it without any policy and would really modify the host: use a path under `${SCRATCH}` and create it with a fixture"
                        .into(),
                ),
            );
            return;
        }
        Some(Lead::Scratch { rest }) if writes && vars::has_dot_dot(&rest) => {
            sink.push_hint(
                Code::WriteOutsideScratch,
                ptr,
                At::Value,
                format!("`{s}` uses `..`, which can leave `${{SCRATCH}}`"),
                Some("write the path without `..`".into()),
            );
            return;
        }
        None | Some(_) => {}
    }
    machine_path_check(sink, ptr, s);
}

fn fixture_path(sink: &mut Sink<'_>, ptr: &str, s: &str, scope: &Scope) {
    match scope.lead(s) {
        Some(Lead::Scratch { rest }) if !vars::has_dot_dot(&rest) && !rest.is_empty() => {}
        None => {}
        _ => sink.push_hint(
            Code::FixtureOutsideScratch,
            ptr,
            At::Value,
            format!("fixture path `{s}` is not inside `${{SCRATCH}}`"),
            Some("fixtures are created in the run's scratch directory: write `${SCRATCH}/...` (without `..`)".into()),
        ),
    }
}

fn machine_path_check(sink: &mut Sink<'_>, ptr: &str, s: &str) {
    if let Some(var) = vars::machine_path(s) {
        sink.push_hint(
            Code::MachinePath,
            ptr,
            At::Value,
            format!("`{s}` is a path on one machine"),
            Some(format!("use `{var}` so the plan means the same everywhere")),
        );
    }
}

/// Syntax of `${...}` and, in registry context, whether the names exist.
fn check_string_vars(sink: &mut Sink<'_>, ptr: &str, s: &str, scope: &Scope) {
    let (names, issues) = vars::scan(s);
    for issue in issues {
        let (code, msg, hint) = issue.finding(s);
        sink.push_hint(code, ptr, At::Value, msg, Some(hint));
    }
    for n in names {
        if scope.vars.contains_key(&n) {
            continue;
        }
        // A near miss of a name in scope (`SCRACH`) is a typo; anything else may be a plan
        // variable (`SCRATCH_DIR`), which plan-lint checks with the plan.
        let typo = scope
            .vars
            .keys()
            .filter(|k| strsim::levenshtein(k, &n) <= 2 && n.len() >= 4)
            .min_by_key(|k| strsim::levenshtein(k, &n));
        if let Some(near) = typo
            && !scope.plan_known
        {
            let hint = format!("did you mean `{near}`?");
            sink.push_hint(
                Code::UndefinedVariable,
                ptr,
                At::Value,
                format!("`${{{n}}}` is not defined"),
                Some(hint),
            );
        } else if !scope.plan_known {
            sink.push_hint(
                Code::PlanVariable,
                ptr,
                At::Value,
                format!("`${{{n}}}` is not a builtin variable: every plan using this entry must define it"),
                Some(format!(
                    "builtins are {}; plans define others in `variables`",
                    BUILTINS.iter().map(|b| format!("`${{{b}}}`")).collect::<Vec<_>>().join(", ")
                )),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Profiles
// ---------------------------------------------------------------------------------------

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

fn check_profile(sink: &mut Sink<'_>, base: &str, profile: &Profile) {
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
        sink.push_hint(
            Code::AboveAbi,
            ptr,
            At::Value,
            format!("{what} needs Landlock ABI {need}, but the profile pins `abi: {abi}`"),
            Some(format!(
                "raise `abi` to {need} (the kernel must support it) or remove it"
            )),
        );
    };
    let mut handles_something = false;
    if let Some(fs) = &ll.fs {
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
        handles_something |= !handled.is_empty();
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

/// Error for a path argument that is not a registry file or directory.
pub fn not_a_registry(path: &Path) -> Error {
    Error::input(path, "is not a registry directory or a probes/profiles file")
        .with_hint("pass `registry/<id>/`, a directory containing registries, or a probes.json / profiles.json file")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Document;

    fn lint_probe(json: &str) -> Vec<(Code, String)> {
        let text = format!(r#"{{"probes": {{"p": {json}}}}}"#);
        let doc = Document::parse("probes.json", text).unwrap();
        let probe: Probe = serde_json::from_str(json).unwrap();
        let mut sink = Sink::new(&doc, Path::new("/x/probes.json"));
        check_probe(&mut sink, "/probes/p", &probe);
        sink.findings
            .into_iter()
            .map(|f| (f.code, f.message))
            .collect()
    }

    #[test]
    fn a_near_miss_of_a_builtin_is_a_typo_a_longer_name_a_plan_variable() {
        let f = lint_probe(r#"{"operation": "file-read", "target": "${SCRACH}/a"}"#);
        assert_eq!(f[0].0, Code::UndefinedVariable, "{f:?}");
        let f = lint_probe(r#"{"operation": "file-read", "target": "${SCRATCH_DIR}/a"}"#);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].0, Code::PlanVariable);
    }

    #[test]
    fn host_port_targets() {
        let ok = |t: &str, op: &str| {
            lint_probe(&format!(r#"{{"operation": "{op}", "target": "{t}"}}"#)).is_empty()
        };
        assert!(ok("127.0.0.1:443", "tcp-connect"));
        assert!(ok("[::1]:443", "tcp-connect"));
        assert!(ok("localhost:1", "udp-send"));
        assert!(ok("127.0.0.1:0", "tcp-bind"));
        assert!(!ok("127.0.0.1:0", "tcp-connect"));
        assert!(!ok("127.0.0.1:65536", "tcp-connect"));
        assert!(!ok(":80", "tcp-connect"));
        assert!(!ok("::1:80", "tcp-connect"));
        assert!(!ok("127.0.0.1:http", "tcp-connect"));
    }

    #[test]
    fn writes_must_stay_in_scratch() {
        let codes =
            |json: &str| -> Vec<Code> { lint_probe(json).into_iter().map(|f| f.0).collect() };
        assert!(codes(r#"{"operation": "file-write", "target": "${SCRATCH}/a"}"#).is_empty());
        assert_eq!(
            codes(r#"{"operation": "file-write", "target": "/etc/passwd"}"#),
            vec![Code::WriteOutsideScratch]
        );
        assert_eq!(
            codes(r#"{"operation": "file-chmod", "target": "${HOME}/.bashrc"}"#),
            vec![Code::WriteOutsideScratch]
        );
        assert_eq!(
            codes(
                r#"{"operation": "file-rename", "target": "${SCRATCH}/a", "destination": "${SCRATCH}/../b"}"#
            ),
            vec![Code::WriteOutsideScratch]
        );
        // Reading a host path is fine; a machine path only warns.
        assert!(codes(r#"{"operation": "file-read", "target": "/etc/hostname"}"#).is_empty());
        assert_eq!(
            codes(r#"{"operation": "file-read", "target": "/home/bob/x"}"#),
            vec![Code::MachinePath]
        );
    }
}
