//! Stage 5, preflight: before any lane, every compiled profile is applied once in a
//! throw-away helper (`noop`), started with the isolation the profile's children get, and
//! what the kernel said is recorded (`apply_preflight.json`), with the child privileges
//! and what the helper saw about itself (pid, uid, gid, capabilities, the runner); for profiles with exec probes the ruleset is also prepared in
//! the parent, once. The result is the [`ProfileRuntime`] of every profile, ready for the
//! scenario lane. A plan whose `apply_preflight_profile` cannot be applied runs no lane
//! ([`required_failure`], exit 5).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::child::{self, ChildSpec};
use super::fixtures::Scratch;
use super::helper::{self, HelperRequest};
use super::lanes::Isolated;
use super::lanes::ProfileRuntime;
use super::outcome::errno_name;
use super::seam::SelectedScenarios;
use super::settings::{DEFAULT_KILL_GRACE_MS, EventSink};
use super::setup::RunSetup;
use super::zygote::Zygote;
use crate::load::LoadedPlan;
use crate::model::registry::Driver;
use crate::model::results::{Enforcement, Outcome, PreflightRecord, RunEvent};
use crate::sandbox::apply::Prepared;
use crate::sandbox::compile::{ApplySpec, CompiledProfile};
use crate::sandbox::privilege::ChildRequest;
use crate::{Error, Result};

/// Preflight every compiled profile (in id order), sending one `preflight` event each.
/// Returns the records and the runtimes the scenario lane uses.
pub fn preflight_all(
    setup: &RunSetup,
    loaded: &LoadedPlan,
    scenarios: &SelectedScenarios,
    helper_exe: &Path,
    cgroup_dir: Option<&Path>,
    zygote: std::result::Result<&Arc<Zygote>, &String>,
    sink: &mut dyn EventSink,
) -> Result<(Vec<PreflightRecord>, BTreeMap<String, ProfileRuntime>)> {
    let required = loaded
        .plan
        .apply_preflight_profile
        .as_ref()
        .map(ToString::to_string);
    let needs_exec: BTreeSet<String> = scenarios
        .iter()
        .filter(|s| s.probe.driver == Driver::Exec)
        .map(|s| s.spec.profile_id.to_string())
        .collect();
    let mut runtimes: BTreeMap<String, ProfileRuntime> = BTreeMap::new();
    let mut preflight = Vec::new();
    for (id, c) in &setup.compiled {
        let spec = c.apply_spec();
        let mut rec = preflight_profile(
            helper_exe,
            c,
            &spec,
            setup.clean,
            &setup.scratch,
            cgroup_dir,
            zygote,
        )?;
        rec.required = required.as_deref() == Some(id.as_str());
        if super::interrupt::take_killed() {
            rec.apply_ok = false;
            rec.detail = "not preflighted: the run was interrupted".into();
        }
        let prepared = if needs_exec.contains(id.as_str()) && c.apply_error.is_none() {
            let p = Prepared::new(&spec).map(Arc::new);
            if let Err(f) = &p
                && rec.apply_ok
            {
                rec.apply_ok = false;
                rec.detail = format!("{} failed: {}", f.step.as_str(), f.detail);
                rec.errno = f.errno;
                rec.errno_name = f.errno.map(errno_name);
            }
            Some(p)
        } else {
            None
        };
        let enforcement = rec.ruleset_status.map(|r| Enforcement {
            ruleset: r,
            abi: setup.facts.landlock_abi,
            no_new_privs: true,
            seccomp: !c.seccomp.is_empty(),
            reported_by: "preflight".into(),
        });
        sink.event(&RunEvent::Preflight {
            v: crate::model::results::EVENTS_VERSION,
            record: Box::new(rec.clone()),
        });
        preflight.push(rec);
        runtimes.insert(
            id.clone(),
            ProfileRuntime {
                profile: loaded
                    .profiles
                    .get(id.as_str())
                    .cloned()
                    .unwrap_or_default(),
                profiles_file: loaded.registry.profiles_path.clone(),
                host: setup.host.clone(),
                runner: (setup.runner, setup.clean),
                compiled: c.clone(),
                spec,
                spec_text: std::sync::OnceLock::new(),
                prepared,
                enforcement,
            },
        );
    }
    Ok((preflight, runtimes))
}

/// Why no lane may run: the plan's `apply_preflight_profile` cannot be applied here.
pub fn required_failure(preflight: &[PreflightRecord]) -> Option<String> {
    let r = preflight.iter().find(|r| r.required && !r.apply_ok)?;
    Some(format!(
        "the plan's apply_preflight_profile `{}` cannot be applied on this host ({}); no lane ran",
        r.profile,
        if r.detail.is_empty() {
            "see apply_preflight.json".to_string()
        } else {
            r.detail.clone()
        }
    ))
}

/// Apply a profile in a throw-away helper (`noop`) and record what the kernel said.
fn preflight_profile(
    helper_exe: &Path,
    c: &CompiledProfile,
    spec: &ApplySpec,
    clean: bool,
    scratch: &Scratch,
    cgroup_dir: Option<&Path>,
    zygote: std::result::Result<&Arc<Zygote>, &String>,
) -> Result<PreflightRecord> {
    let dir = scratch.preflight_dir(&c.profile_id)?;
    let cg = match (c.needs_pids_cgroup(), cgroup_dir) {
        (Some((limit, root)), Some(d)) => crate::sandbox::cgroup::ChildCgroup::create(
            d,
            &format!("preflight-{}", c.profile_id),
            Some(limit),
            root.ends_with("/pids"),
        )
        .ok(),
        _ => None,
    };
    // The profile's children's own isolation (no read-only host: that is the baseline's).
    let Isolated {
        isolation,
        record,
        ns_init,
        ..
    } = super::lanes::isolate(
        ChildRequest {
            privileges: &c.child,
            pid_namespace: Ok(()),
            scratch: &dir,
            host_read_only: false,
            read_only_inputs: &[],
        },
        zygote,
    );
    let args = HelperRequest {
        v: helper::HELPER_VERSION,
        op: "noop".into(),
        target: None,
        destination: None,
        apply: Cow::Borrowed(spec),
        clean,
        cgroup_procs: cg
            .as_ref()
            .filter(|_| isolation.is_none())
            .map(|g| g.procs_path().to_string_lossy().into_owned()),
        connect_timeout_ms: 1000,
        observe_runner: Some(std::process::id()),
        runner_pid: Some(std::process::id()),
    }
    .to_args()
    .map_err(|e| Error::runner("cannot serialize an apply spec").with_source(e))?;
    let res = child::run_child(
        &ChildSpec {
            program: helper_exe.to_path_buf(),
            args,
            arg0: Some(helper::HELPER_ARG0.into()),
            env: clean.then(|| {
                let d = dir.to_string_lossy().into_owned();
                vec![("HOME".to_string(), d.clone()), ("TMPDIR".to_string(), d)]
            }),
            cwd: clean.then(|| dir.clone()),
            clean,
            pre_exec: None,
            isolation,
            ns_init,
            timeout: Duration::from_secs(10),
            grace: Duration::from_millis(DEFAULT_KILL_GRACE_MS),
            output_cap: 64 * 1024,
            stdin: None,
            server: None,
        },
        cg.as_ref()
            .map_or(child::Tracking::None, child::Tracking::Child),
    );
    if let Some(g) = cg {
        g.kill_all();
        g.remove();
    }
    let line = helper::parse_line(&res.stdout.kept);
    let ll = c.landlock.as_ref();
    let mut rec = PreflightRecord {
        profile: c.profile_id.clone(),
        compat: match c.compat {
            crate::model::registry::Compat::Hard => "hard".into(),
            crate::model::registry::Compat::BestEffort => "best-effort".into(),
        },
        abi_requested: ll.map(|l| l.abi),
        abi_kernel: c.kernel_abi,
        ruleset_status: None,
        apply_ok: false,
        errno: None,
        errno_name: None,
        detail: String::new(),
        dropped_rights: c.dropped.clone(),
        unenforceable: c.unenforceable.clone(),
        skipped_rules: c.skipped_rules.clone(),
        seccomp_groups: c
            .seccomp
            .iter()
            .map(|g| {
                serde_json::to_value(g)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            })
            .collect(),
        processes_enforced_by: c.processes.as_ref().map(|p| p.enforced_by.clone()),
        required: false,
        child: c.child.clone(),
        child_observed: None,
    };
    // What the preflight child actually got (a PID namespace may have failed to be made).
    rec.child.pid_namespace = record.pid_namespace;
    if !record.pid_namespace {
        rec.child
            .pid_namespace_reason
            .clone_from(&record.pid_namespace_reason);
        rec.child.namespace_init = None;
    }
    match line {
        Some(l) => {
            rec.child_observed.clone_from(&l.child_self);
            rec.ruleset_status = l.enforcement.as_ref().map(|e| e.ruleset);
            rec.errno = l.errno;
            rec.errno_name = l.errno_name.clone();
            if l.outcome == Outcome::ApplyFailed {
                rec.detail = l.detail;
            } else {
                rec.apply_ok = true;
            }
        }
        None => {
            rec.detail = format!(
                "the preflight helper gave no result line ({}, stderr: {})",
                res.ended,
                String::from_utf8_lossy(&res.stderr.kept).trim()
            );
        }
    }
    if let Some(e) = &c.apply_error {
        rec.apply_ok = false;
        if rec.detail.is_empty() {
            rec.detail.clone_from(e);
        } else {
            rec.detail = format!("{e}; {}", rec.detail);
        }
    }
    Ok(rec)
}
