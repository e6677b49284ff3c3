//! Profiles that extend others (`extends: [ids]`): the one resolver every reader uses
//! (`load_plan` for the run and the digest, lint, `describe-profile`), so a profile means
//! the same thing everywhere.
//!
//! A profile's ancestors are linearized depth-first, bases before what extends them, each
//! once (a diamond contributes its shared base once), the profile itself last. The resolved
//! profile is what one Landlock ruleset holding every layer's rules would enforce:
//!
//! | field | resolved as |
//! |---|---|
//! | `landlock.fs.allow`, `net` port lists, `env.pass`, `capabilities` | unioned (a right any layer grants is granted) |
//! | `landlock.fs.handle`, `net` keys present, `scope`, `seccomp.deny_groups`, `udp: deny` | unioned (a right any layer handles is handled: restricted to what the rules grant) |
//! | `landlock.abi` | the highest; `handle: all` then means every right of it |
//! | `landlock.compat` | `hard` if any layer is `hard` |
//! | `landlock.fs.missing_paths` | `error` if any layer with `fs` says `error` |
//! | each `limits` field | the lowest value any layer sets (no layer can lift a limit) |
//! | `env.clear` | true if any layer clears |
//! | `env.set` values, `identity` | the profile's own value if it sets one; else the bases must agree (a conflict is an error) |
//! | `description`, `tags`, `allow_lint` | the profile's own (never inherited: a base's acknowledgement of a warning does not silence a finding about what extends it) |
//!
//! A profile without `extends` resolves to itself, unchanged (so its digest is unchanged).
//! Every error here (an unknown id, a cycle, a conflict) is also a lint finding
//! (`NX320`–`NX322`), reported with all the others by `registry-lint` and `plan-lint`.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::Id;
use crate::model::registry::{
    Access, Env, FsRule, FsRules, Handle, Landlock, Limits, NetRules, Profile, Seccomp,
};
use crate::util::limits;

/// Why a profile cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtendsError {
    /// `profile` extends `missing`, which the registry does not define.
    Unknown {
        /// The profile whose `extends` names it.
        profile: Id,
        /// Its index in that `extends` list.
        index: usize,
        /// The id that is not defined.
        missing: Id,
    },
    /// A cycle: each profile extends the next, the last extends the first.
    Cycle {
        /// The profiles on the cycle, starting where it was entered.
        cycle: Vec<Id>,
    },
    /// A chain of profiles extending one another longer than
    /// [`limits::MAX_EXTENDS_DEPTH`].
    TooDeep {
        /// The chain, from the profile being resolved.
        chain: Vec<Id>,
    },
    /// Two layers set different values of a field and the profile does not settle it.
    Conflict {
        /// The profile being resolved.
        profile: Id,
        /// The field, as a path (`identity`, `env.set.LANG`).
        field: String,
        /// The layers and the value each sets.
        values: Vec<(Id, String)>,
    },
}

impl ExtendsError {
    /// One sentence for an error or a finding.
    pub fn message(&self) -> String {
        match self {
            ExtendsError::Unknown {
                profile, missing, ..
            } => format!(
                "profile `{profile}` extends `{missing}`, which the registry does not define"
            ),
            ExtendsError::Cycle { cycle } => {
                let mut names: Vec<String> = cycle.iter().map(|c| format!("`{c}`")).collect();
                if let Some(first) = names.first().cloned() {
                    names.push(first);
                }
                format!(
                    "profiles extend each other in a cycle: {}",
                    names.join(" → ")
                )
            }
            ExtendsError::TooDeep { chain } => format!(
                "profiles extend one another more than {} deep: {}",
                limits::MAX_EXTENDS_DEPTH,
                chain
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
            ExtendsError::Conflict {
                profile,
                field,
                values,
            } => format!(
                "profile `{profile}` inherits conflicting `{field}`: {}",
                values
                    .iter()
                    .map(|(id, v)| format!("{v} from `{id}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            ExtendsError::Unknown { .. } => {
                "define the profile in this registry's profiles file, or fix the id".into()
            }
            ExtendsError::Cycle { cycle } => format!(
                "remove one of the `extends` entries on the cycle (e.g. `{}` from `{}`)",
                cycle.get(1).or(cycle.first()).map_or("", Id::as_str),
                cycle.first().map_or("", Id::as_str)
            ),
            ExtendsError::TooDeep { .. } => {
                "extend the bases' bases directly (a flatter `extends` list resolves the same)"
                    .into()
            }
            ExtendsError::Conflict { field, .. } => {
                format!("set `{field}` in the profile itself to say which value it runs with")
            }
        }
    }
}

/// A resolved profile and where its parts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The profile as every layer together defines it (`extends` empty).
    pub profile: Profile,
    /// Every layer, bases first, the profile itself last.
    pub layers: Vec<Id>,
    /// For each rule of `profile.landlock.fs.allow`, the layer it comes from.
    pub rule_origins: Vec<Id>,
}

impl Resolved {
    /// How many allow rules came from a layer other than the profile itself (what
    /// [`limits::MAX_INHERITED_RULES`] charges).
    pub fn inherited_rules(&self) -> usize {
        self.layers.last().map_or(0, |own| {
            self.rule_origins.iter().filter(|o| *o != own).count()
        })
    }
}

/// The layers of `id`: its ancestors depth-first, bases first, each once, `id` last.
pub fn layers(profiles: &BTreeMap<Id, Profile>, id: &Id) -> Result<Vec<Id>, ExtendsError> {
    fn visit(
        profiles: &BTreeMap<Id, Profile>,
        id: &Id,
        stack: &mut Vec<Id>,
        done: &mut BTreeSet<Id>,
        out: &mut Vec<Id>,
    ) -> Result<(), ExtendsError> {
        if done.contains(id) {
            return Ok(());
        }
        if let Some(pos) = stack.iter().position(|s| s == id) {
            return Err(ExtendsError::Cycle {
                cycle: stack[pos..].to_vec(),
            });
        }
        if stack.len() >= limits::MAX_EXTENDS_DEPTH {
            let mut chain = stack.clone();
            chain.push(id.clone());
            return Err(ExtendsError::TooDeep { chain });
        }
        let Some(p) = profiles.get(id) else {
            // The caller checked `id` itself; a base is checked below with its index.
            return Ok(());
        };
        stack.push(id.clone());
        for (index, base) in p.extends.iter().enumerate() {
            if !profiles.contains_key(base) {
                return Err(ExtendsError::Unknown {
                    profile: id.clone(),
                    index,
                    missing: base.clone(),
                });
            }
            visit(profiles, base, stack, done, out)?;
        }
        stack.pop();
        done.insert(id.clone());
        out.push(id.clone());
        Ok(())
    }
    let mut out = Vec::new();
    visit(
        profiles,
        id,
        &mut Vec::new(),
        &mut BTreeSet::new(),
        &mut out,
    )?;
    Ok(out)
}

/// Resolve profile `id` of `profiles` (which must define it).
pub fn resolve(profiles: &BTreeMap<Id, Profile>, id: &Id) -> Result<Resolved, ExtendsError> {
    let Some(own) = profiles.get(id) else {
        return Err(ExtendsError::Unknown {
            profile: id.clone(),
            index: 0,
            missing: id.clone(),
        });
    };
    if own.extends.is_empty() {
        let n = own
            .landlock
            .as_ref()
            .and_then(|l| l.fs.as_ref())
            .map_or(0, |f| f.allow.len());
        return Ok(Resolved {
            profile: own.clone(),
            layers: vec![id.clone()],
            rule_origins: vec![id.clone(); n],
        });
    }
    let layers = layers(profiles, id)?;
    let all: Vec<(&Id, &Profile)> = layers
        .iter()
        .filter_map(|l| profiles.get(l).map(|p| (l, p)))
        .collect();
    let bases = &all[..all.len().saturating_sub(1)];

    let mut out = Profile {
        description: own.description.clone(),
        tags: own.tags.clone(),
        allow_lint: own.allow_lint.clone(),
        ..Profile::default()
    };
    let mut rule_origins = Vec::new();

    // Landlock.
    let lls: Vec<(&Id, &Landlock)> = all
        .iter()
        .filter_map(|(i, p)| p.landlock.as_ref().map(|l| (*i, l)))
        .collect();
    if !lls.is_empty() {
        let abi = lls.iter().map(|(_, l)| l.abi).max().unwrap_or(1);
        let compat = if lls
            .iter()
            .any(|(_, l)| l.compat == crate::model::registry::Compat::Hard)
        {
            crate::model::registry::Compat::Hard
        } else {
            crate::model::registry::Compat::BestEffort
        };
        let fss: Vec<(&Id, &FsRules)> = lls
            .iter()
            .filter_map(|(i, l)| l.fs.as_ref().map(|f| (*i, f)))
            .collect();
        let fs = (!fss.is_empty()).then(|| {
            // `all` of the resolved ABI, unless a list names a right beyond it (a lint
            // error of that layer, NX301, but the union must still hold it).
            let all_of_abi: BTreeSet<Access> = Access::ALL
                .iter()
                .copied()
                .filter(|a| a.min_abi() <= abi)
                .collect();
            let any_all = fss.iter().any(|(_, f)| f.handle == Handle::All);
            let mut set: BTreeSet<Access> = if any_all {
                all_of_abi.clone()
            } else {
                BTreeSet::new()
            };
            for (_, f) in &fss {
                if let Handle::List(l) = &f.handle {
                    set.extend(l.iter().copied());
                }
            }
            let handle = if any_all && set == all_of_abi {
                Handle::All
            } else {
                Handle::List(set.into_iter().collect())
            };
            let mut allow: Vec<FsRule> = Vec::new();
            // (path, rights) → index in `allow`: linear, however many rules the layers have.
            let mut seen: std::collections::HashMap<(&str, BTreeSet<Access>), usize> =
                std::collections::HashMap::new();
            for (origin, f) in &fss {
                for r in &f.allow {
                    let key = (r.path.as_str(), r.access.iter().copied().collect());
                    if let Some(&i) = seen.get(&key) {
                        // The same grant twice: one rule, acknowledgements joined.
                        for c in &r.allow_lint {
                            if !allow[i].allow_lint.contains(c) {
                                allow[i].allow_lint.push(c.clone());
                            }
                        }
                        continue;
                    }
                    seen.insert(key, allow.len());
                    allow.push(r.clone());
                    rule_origins.push((*origin).clone());
                }
            }
            let missing_paths = if fss
                .iter()
                .any(|(_, f)| f.missing_paths == crate::model::registry::MissingPaths::Error)
            {
                crate::model::registry::MissingPaths::Error
            } else {
                crate::model::registry::MissingPaths::Skip
            };
            FsRules {
                handle,
                allow,
                missing_paths,
            }
        });
        let nets: Vec<&NetRules> = lls.iter().filter_map(|(_, l)| l.net.as_ref()).collect();
        let net = (!nets.is_empty()).then(|| {
            let ports = |get: fn(&NetRules) -> Option<&Vec<u16>>| -> Option<Vec<u16>> {
                let present: Vec<&Vec<u16>> = nets.iter().filter_map(|n| get(n)).collect();
                (!present.is_empty()).then(|| {
                    present
                        .into_iter()
                        .flatten()
                        .copied()
                        .collect::<BTreeSet<u16>>()
                        .into_iter()
                        .collect()
                })
            };
            NetRules {
                tcp_connect: ports(|n| n.tcp_connect.as_ref()),
                tcp_bind: ports(|n| n.tcp_bind.as_ref()),
                udp: nets.iter().find_map(|n| n.udp),
                udp_connect: ports(|n| n.udp_connect.as_ref()),
                udp_bind: ports(|n| n.udp_bind.as_ref()),
            }
        });
        let scope: BTreeSet<_> = lls
            .iter()
            .flat_map(|(_, l)| l.scope.iter().copied())
            .collect();
        out.landlock = Some(Landlock {
            compat,
            abi,
            fs,
            net,
            scope: scope.into_iter().collect(),
        });
    }

    // Seccomp: every group any layer denies.
    let groups: BTreeSet<_> = all
        .iter()
        .filter_map(|(_, p)| p.seccomp.as_ref())
        .flat_map(|s| s.deny_groups.iter().copied())
        .collect();
    if all.iter().any(|(_, p)| p.seccomp.is_some()) {
        out.seccomp = Some(Seccomp {
            deny_groups: groups.into_iter().collect(),
        });
    }

    // Limits: the lowest value any layer sets.
    let min =
        |get: fn(&Limits) -> Option<u64>| all.iter().filter_map(|(_, p)| get(&p.limits)).min();
    out.limits = Limits {
        cpu_seconds: min(|l| l.cpu_seconds),
        address_space_bytes: min(|l| l.address_space_bytes),
        open_files: min(|l| l.open_files),
        file_size_bytes: min(|l| l.file_size_bytes),
        processes: min(|l| l.processes),
        wall_timeout_ms: min(|l| l.wall_timeout_ms),
        kill_grace_ms: min(|l| l.kill_grace_ms),
    };

    // Environment.
    let mut env = Env {
        clear: all.iter().any(|(_, p)| p.env.clear),
        ..Env::default()
    };
    for (_, p) in &all {
        for n in &p.env.pass {
            if !env.pass.contains(n) {
                env.pass.push(n.clone());
            }
        }
    }
    let keys: BTreeSet<&String> = all.iter().flat_map(|(_, p)| p.env.set.keys()).collect();
    for k in keys {
        let v = settle(
            id,
            &format!("env.set.{k}"),
            own.env.set.get(k).cloned(),
            bases
                .iter()
                .filter_map(|(i, p)| p.env.set.get(k).map(|v| (*i, v.clone()))),
            |v| format!("`{v}`"),
        )?;
        env.set.insert(k.clone(), v);
    }
    out.env = env;

    // Capabilities: every one any layer keeps.
    let caps: BTreeSet<_> = all
        .iter()
        .flat_map(|(_, p)| p.capabilities.iter().copied())
        .collect();
    out.capabilities = caps.into_iter().collect();

    // Identity: the profile's own, else the bases' (which must agree).
    if own.identity.is_some() || bases.iter().any(|(_, p)| p.identity.is_some()) {
        out.identity = Some(settle(
            id,
            "identity",
            own.identity,
            bases
                .iter()
                .filter_map(|(i, p)| p.identity.map(|v| (*i, v))),
            |v| format!("uid {}, gid {}", v.uid, v.gid),
        )?);
    }

    Ok(Resolved {
        profile: out,
        layers,
        rule_origins,
    })
}

/// The profile's own value, else the one value every base that sets it agrees on.
fn settle<'a, T: PartialEq + Clone>(
    id: &Id,
    field: &str,
    own: Option<T>,
    inherited: impl Iterator<Item = (&'a Id, T)>,
    show: impl Fn(&T) -> String,
) -> Result<T, ExtendsError> {
    let inherited: Vec<(&Id, T)> = inherited.collect();
    if let Some(v) = own {
        return Ok(v);
    }
    let Some((_, first)) = inherited.first() else {
        return Err(ExtendsError::Conflict {
            profile: id.clone(),
            field: field.to_string(),
            values: Vec::new(),
        });
    };
    if inherited.iter().all(|(_, v)| v == first) {
        return Ok(first.clone());
    }
    Err(ExtendsError::Conflict {
        profile: id.clone(),
        field: field.to_string(),
        values: inherited
            .iter()
            .map(|(i, v)| ((*i).clone(), show(v)))
            .collect(),
    })
}

#[cfg(test)]
mod tests;
