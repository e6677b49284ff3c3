//! The learned files: the profile, the command's exec probe, the negative controls and the
//! plan, written into `--out` as a project (with `$schema`s pointing at this build's
//! schemas in `<out>/schemas/`, as `plan-build` writes them for a tree without any).

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::synth::{Bounds, Policy, beneath};
use super::{Ending, LearnRequest, LearnedIds, Spec};
use crate::util::fsx;
use crate::{Error, Result};

/// The wall timeout of each negative control.
const CONTROL_TIMEOUT_MS: u64 = 10_000;

/// The profile for `policy`: every right of `abi` handled.
pub(super) fn profile_json(policy: &Policy, abi: u8, workspace: bool, spec: &Spec) -> Value {
    let allow: Vec<Value> = policy
        .fs
        .iter()
        .map(|(path, access)| json!({"path": path, "access": access}))
        .collect();
    let mut fs = json!({"handle": "all", "allow": allow});
    if workspace {
        // The workspace exists only where the probe's fixture makes it (not under
        // `sandbox`): that one rule is then skipped and listed, not an error.
        fs["missing_paths"] = "skip".into();
    }
    json!({
        "description": format!(
            "Learned by `nexusmon learn` from the kernel's denials of `{}`: every right of Landlock ABI {abi} handled, only what the command was denied granted.",
            spec.argv.join(" ")
        ),
        "landlock": {
            "abi": abi,
            "fs": fs,
            "net": {"tcp_connect": policy.connect, "tcp_bind": policy.bind},
            "scope": ["abstract-unix-socket", "signal"],
        },
        "tags": ["learned"],
    })
}

pub(super) fn rules_in_words(policy: &Policy) -> Vec<String> {
    let mut v: Vec<String> = policy
        .fs
        .iter()
        .map(|(p, a)| {
            let words: Vec<&str> = a.iter().map(|x| x.as_str()).collect();
            format!("{} on {p}", words.join(","))
        })
        .collect();
    v.extend(policy.connect.iter().map(|p| format!("tcp_connect {p}")));
    v.extend(policy.bind.iter().map(|p| format!("tcp_bind {p}")));
    v.sort();
    v
}

pub(super) fn probe_json(spec: &Spec, allow_exit: Option<i32>) -> Value {
    let mut p = json!({
        "operation": "exec",
        "driver": "exec",
        "argv": spec.argv,
        "timeout_ms": spec.timeout_ms,
        "notes": "The command `nexusmon learn` learned the profile for.",
    });
    if let Some(c) = allow_exit {
        p["allow_exit_codes"] = json!([c]);
    }
    if !spec.fixtures.is_empty() {
        p["fixtures"] = serde_json::to_value(&spec.fixtures).unwrap_or(Value::Null);
    }
    if !spec.reads.is_empty() {
        p["reads"] = json!(spec.reads);
    }
    p
}

/// A sibling of `path` for a negative control: a regular file in the same directory that
/// exists, opens for reading, is not `path`, is covered by no rule (by path, nor by inode:
/// a hard link of a granted file is granted too) and is not a `--never` path (the first by
/// name of at most [`SIBLING_SCAN`] entries).
fn sibling(path: &str, policy: &Policy, never: &[String]) -> Option<String> {
    let parent = Path::new(path).parent()?;
    let granted: BTreeSet<(u64, u64)> = policy
        .fs
        .keys()
        .filter_map(|r| std::fs::metadata(r).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    let mut names: Vec<PathBuf> = std::fs::read_dir(parent)
        .ok()?
        .take(SIBLING_SCAN)
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    names.into_iter().find_map(|p| {
        let s = p.to_str()?.to_string();
        let meta = std::fs::symlink_metadata(&p).ok()?;
        let covered =
            policy.fs.keys().any(|r| beneath(&s, r)) || granted.contains(&(meta.dev(), meta.ino()));
        (meta.file_type().is_file()
            && s != path
            && !covered
            && !never.iter().any(|n| beneath(&s, n))
            && std::fs::File::open(&p).is_ok()
            && s.chars().all(|c| !c.is_control()))
        .then_some(s)
    })
}

/// The most directory entries looked at for a sibling.
const SIBLING_SCAN: usize = 16_384;

/// Write the learned project into `--out`: registry, plan (the log is written by the caller).
pub(super) fn write_project(
    req: &LearnRequest,
    spec: &Spec,
    ids: &LearnedIds,
    policy: &Policy,
    abi: u8,
    bounds: &Bounds,
    base: &Ending,
) -> Result<Vec<PathBuf>> {
    let mut probes = serde_json::Map::new();
    probes.insert(ids.probe.clone(), probe_json(spec, base.exit_code));
    let mut expect = serde_json::Map::new();
    expect.insert(ids.probe.clone(), "allow".into());
    let mut control = |id: String, mut p: Value| {
        p["timeout_ms"] = CONTROL_TIMEOUT_MS.into();
        expect.insert(id.clone(), "deny".into());
        probes.insert(id, p);
    };
    let ws_fixture = bounds
        .workspace
        .as_ref()
        .map(|ws| json!({"kind": "dir", "path": ws}));
    // A read of an existing, readable sibling of every rule's path.
    let mut parents = BTreeSet::new();
    let mut n = 0;
    for rule in policy.fs.keys() {
        if rule.starts_with("${") {
            continue;
        }
        let parent = Path::new(rule).parent().map(Path::to_path_buf);
        if !parents.insert(parent) {
            continue;
        }
        if let Some(s) = sibling(rule, policy, &bounds.never) {
            n += 1;
            control(
                format!("control-read-sibling-{n}"),
                json!({
                    "operation": "file-read",
                    "target": s,
                    "notes": format!("A file beside the learned rule on {rule}: readable without the policy, denied with it."),
                }),
            );
        }
    }
    let mut fixtures: Vec<Value> = ws_fixture.iter().cloned().collect();
    if bounds.workspace.is_some() {
        fixtures.push(json!({"kind": "file", "path": "${SCRATCH}/beside-workspace.txt", "content": "control\n"}));
        control(
            "control-read-beside-workspace".into(),
            json!({
                "operation": "file-read",
                "target": "${SCRATCH}/beside-workspace.txt",
                "fixtures": fixtures,
                "notes": "A file beside the workspace: the workspace rule does not reach it.",
            }),
        );
    }
    let mut write_fixtures: Vec<Value> = ws_fixture.iter().cloned().collect();
    write_fixtures.sort_by_key(ToString::to_string);
    let mut write_probe = json!({
        "operation": "file-create",
        "target": "${SCRATCH}/outside-workspace.txt",
        "notes": "A file created outside the workspace.",
    });
    if !write_fixtures.is_empty() {
        write_probe["fixtures"] = Value::Array(write_fixtures);
    }
    control("control-write-outside-workspace".into(), write_probe);
    control(
        "control-connect-ungranted-port".into(),
        json!({
            "operation": "tcp-connect",
            "target": "127.0.0.1:${CONTROL_PORT}",
            "fixtures": [{"kind": "tcp-listener", "variable": "CONTROL_PORT"}],
            "notes": "A loopback listener on a port the learned profile does not grant.",
        }),
    );
    let mut profiles_map = serde_json::Map::new();
    profiles_map.insert(
        ids.profile.clone(),
        profile_json(policy, abi, bounds.workspace.is_some(), spec),
    );
    let profiles = json!({
        "schema_version": 1,
        "registry_id": ids.registry,
        "profiles": profiles_map,
    });
    let probes_doc = json!({
        "schema_version": 1,
        "registry_id": ids.registry,
        "probes": probes,
    });
    let mut scenarios = serde_json::Map::new();
    scenarios.insert(ids.profile.clone(), Value::Object(expect));
    let plan = json!({
        "schema_version": 1,
        "plan_id": ids.plan,
        "kind": "experiment",
        "description": format!(
            "The proof of the profile `nexusmon learn` learned for `{}`: the command is allowed and every negative control is denied.",
            spec.argv.join(" ")
        ),
        "registry_id": ids.registry,
        "profiles": [ids.profile],
        "scenarios": scenarios,
        "lanes": {"baseline": true, "scenario": true, "oracle": true},
        "execution": {"retries": 0},
    });
    let reg_dir = req.out.join("registry").join(&ids.registry);
    let plan_dir = req.out.join("plans").join(&ids.plan);
    let files = vec![
        (reg_dir.join("profiles.json"), profiles),
        (reg_dir.join("probes.json"), probes_doc),
        (plan_dir.join("plan.json"), plan),
    ];
    for (p, _) in &files {
        crate::util::nofollow::check_dir_path(fsx::parent_of(p))?;
    }
    // `$schema` as `plan-build` writes it when the out dir has no schemas: this build's
    // schemas in `<out>/schemas/`, referred to relatively.
    let mut written = Vec::new();
    let mut refs = std::collections::BTreeMap::new();
    for name in ["plan", "probes", "profiles"] {
        let spec = crate::lint::schema::spec(name)
            .ok_or_else(|| Error::runner(format!("internal error: no schema `{name}`")))?;
        let p = req.out.join("schemas").join(spec.file_name);
        crate::util::nofollow::check_dir_path(fsx::parent_of(&p))?;
        fsx::create_dir_all(fsx::parent_of(&p))?;
        let bytes = crate::lint::schema::render(spec)?;
        if fsx::read(&p).ok().as_deref() != Some(bytes.as_slice()) {
            fsx::write_atomic(&p, &bytes)?;
        }
        refs.insert(name, format!("../../schemas/{}", spec.file_name));
        written.push(p);
    }
    for (p, v) in files {
        fsx::create_dir_all(fsx::parent_of(&p))?;
        let mut v = v;
        let kind = if p.ends_with("plan.json") {
            "plan"
        } else if p.ends_with("profiles.json") {
            "profiles"
        } else {
            "probes"
        };
        if let (Some(o), Some(r)) = (v.as_object_mut(), refs.get(kind)) {
            o.insert("$schema".into(), r.clone().into());
        }
        fsx::write_new(&p, &crate::util::json::to_sorted_pretty(&v)?)?;
        written.push(p);
    }
    Ok(written)
}
