//! Seeded random `extends` graphs: every resolution is compared with the union computed
//! independently (reachability by a fixpoint, then sets), and every profile that reaches a
//! cycle is reported as one.

#![allow(
    clippy::unwrap_used,
    // Small random numbers, far below any target's usize or u16.
    clippy::cast_possible_truncation,
    clippy::many_single_char_names
)]

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::model::registry::{
    Compat, Identity, LinuxCapability, MissingPaths, ScopeWord, SeccompGroup,
};

use crate::util::testrng::Rng;

fn id(i: usize) -> Id {
    Id::new(format!("p{i}")).unwrap()
}

const PATHS: [&str; 5] = ["/usr", "/etc", "/tmp/ws", "/opt", "/usr/lib"];

/// A random profile: every field that resolution combines is set now and then. `edges`
/// picks the ids it extends.
fn random_profile(rng: &mut Rng, n: usize, i: usize, acyclic: bool) -> Profile {
    let mut p = Profile::default();
    let k = rng.below(4);
    for _ in 0..k {
        let j = if acyclic {
            if i == 0 {
                break;
            }
            rng.below(i as u64) as usize
        } else {
            rng.below(n as u64) as usize
        };
        if !p.extends.contains(&id(j)) {
            p.extends.push(id(j));
        }
    }
    if rng.chance(70) {
        let fs = rng.chance(80).then(|| FsRules {
            handle: if rng.chance(30) {
                Handle::All
            } else {
                Handle::List(
                    Access::ALL
                        .iter()
                        .copied()
                        .filter(|_| rng.chance(30))
                        .collect(),
                )
            },
            allow: (0..rng.below(3))
                .map(|_| FsRule {
                    path: PATHS[rng.below(PATHS.len() as u64) as usize].to_string(),
                    access: Access::ALL
                        .iter()
                        .copied()
                        .filter(|_| rng.chance(25))
                        .collect(),
                    allow_lint: Vec::new(),
                })
                .collect(),
            missing_paths: if rng.chance(50) {
                MissingPaths::Skip
            } else {
                MissingPaths::Error
            },
        });
        let ports = |rng: &mut Rng| {
            rng.chance(50)
                .then(|| (0..rng.below(3)).map(|_| 440 + rng.below(6_u16)).collect())
        };
        let net = rng.chance(50).then(|| NetRules {
            tcp_connect: ports(rng),
            tcp_bind: ports(rng),
            udp: None,
            udp_connect: None,
            udp_bind: None,
        });
        p.landlock = Some(Landlock {
            compat: if rng.chance(20) {
                Compat::BestEffort
            } else {
                Compat::Hard
            },
            abi: 1 + rng.below(7_u8),
            fs,
            net,
            scope: [ScopeWord::Signal, ScopeWord::AbstractUnixSocket]
                .into_iter()
                .filter(|_| rng.chance(30))
                .collect(),
        });
    }
    if rng.chance(30) {
        p.seccomp = Some(Seccomp {
            deny_groups: [SeccompGroup::Udp, SeccompGroup::Ptrace]
                .into_iter()
                .filter(|_| rng.chance(50))
                .collect(),
        });
    }
    if rng.chance(40) {
        p.limits.cpu_seconds = Some(1 + rng.below(5));
    }
    if rng.chance(40) {
        p.limits.open_files = Some(10 + rng.below(5));
    }
    p.env.clear = rng.chance(20);
    if rng.chance(40) {
        p.env
            .pass
            .push(["PATH", "HOME", "LANG"][rng.below(3_usize)].to_string());
    }
    if rng.chance(30) {
        // Few values, so bases often agree and sometimes conflict.
        p.env
            .set
            .insert("LANG".into(), ["C", "C.UTF-8"][rng.below(2_usize)].into());
    }
    if rng.chance(20) {
        p.capabilities
            .push([LinuxCapability::NetRaw, LinuxCapability::Chown][rng.below(2_usize)]);
    }
    if rng.chance(15) {
        let u = 1000 + rng.below(2_u32);
        p.identity = Some(Identity { uid: u, gid: u });
    }
    p
}

/// Every id `start` reaches through `extends` (itself included), by a fixpoint.
fn reach(profiles: &BTreeMap<Id, Profile>, start: &Id) -> BTreeSet<Id> {
    let mut seen: BTreeSet<Id> = BTreeSet::from([start.clone()]);
    loop {
        let next: BTreeSet<Id> = seen
            .iter()
            .flat_map(|i| profiles[i].extends.iter().cloned())
            .collect();
        let before = seen.len();
        seen.extend(next);
        if seen.len() == before {
            return seen;
        }
    }
}

/// The rights on each path the layers grant, as sets.
fn grants(p: &Profile) -> BTreeSet<(String, Access)> {
    p.landlock
        .iter()
        .flat_map(|l| l.fs.iter())
        .flat_map(|f| f.allow.iter())
        .flat_map(|r| r.access.iter().map(|a| (r.path.clone(), *a)))
        .collect()
}

fn handled(p: &Profile, abi: u8) -> BTreeSet<Access> {
    match p
        .landlock
        .as_ref()
        .and_then(|l| l.fs.as_ref())
        .map(|f| &f.handle)
    {
        None => BTreeSet::new(),
        Some(Handle::All) => Access::ALL
            .iter()
            .copied()
            .filter(|a| a.min_abi() <= abi)
            .collect(),
        Some(Handle::List(l)) => l.iter().copied().collect(),
    }
}

fn connect(p: &Profile) -> Option<BTreeSet<u16>> {
    p.landlock
        .as_ref()
        .and_then(|l| l.net.as_ref())
        .and_then(|n| n.tcp_connect.as_ref())
        .map(|v| v.iter().copied().collect())
}

fn check_against_union(profiles: &BTreeMap<Id, Profile>, pid: &Id, r: &Resolved, seed: u64) {
    let layers = reach(profiles, pid);
    let ctx = format!("seed {seed}, profile {pid}, layers {layers:?}");
    let got = &r.profile;
    assert!(got.extends.is_empty(), "{ctx}");
    assert_eq!(
        r.layers.iter().cloned().collect::<BTreeSet<_>>(),
        layers,
        "{ctx}"
    );
    assert_eq!(
        r.layers.last(),
        Some(pid),
        "{ctx}: the profile is the last layer"
    );
    // Every base comes before whatever extends it.
    for (i, l) in r.layers.iter().enumerate() {
        for b in &profiles[l].extends {
            let j = r.layers.iter().position(|x| x == b).unwrap();
            assert!(j < i, "{ctx}: {b} after {l}");
        }
    }
    let ps: Vec<&Profile> = layers.iter().map(|l| &profiles[l]).collect();
    // Grants: the union of every layer's grants, nothing more.
    let want: BTreeSet<_> = ps.iter().flat_map(|p| grants(p)).collect();
    assert_eq!(grants(got), want, "{ctx}: fs grants");
    assert_eq!(
        r.rule_origins.len(),
        got.landlock
            .as_ref()
            .and_then(|l| l.fs.as_ref())
            .map_or(0, |f| f.allow.len()),
        "{ctx}"
    );
    let abi = ps
        .iter()
        .filter_map(|p| p.landlock.as_ref().map(|l| l.abi))
        .max();
    assert_eq!(got.landlock.as_ref().map(|l| l.abi), abi, "{ctx}: abi");
    if let Some(abi) = abi {
        let want: BTreeSet<_> = ps.iter().flat_map(|p| handled(p, abi)).collect();
        assert_eq!(handled(got, abi), want, "{ctx}: handled");
        let any_hard = ps.iter().any(|p| {
            p.landlock
                .as_ref()
                .is_some_and(|l| l.compat == Compat::Hard)
        });
        assert_eq!(
            got.landlock.as_ref().unwrap().compat == Compat::Hard,
            any_hard,
            "{ctx}"
        );
        let scopes: BTreeSet<_> = ps
            .iter()
            .flat_map(|p| p.landlock.iter().flat_map(|l| l.scope.iter().copied()))
            .collect();
        assert_eq!(
            got.landlock
                .as_ref()
                .unwrap()
                .scope
                .iter()
                .copied()
                .collect::<BTreeSet<_>>(),
            scopes,
            "{ctx}"
        );
    }
    // Ports: handled if any layer handles the key, the union of the lists.
    let sets: Vec<BTreeSet<u16>> = ps.iter().filter_map(|p| connect(p)).collect();
    let want = (!sets.is_empty()).then(|| sets.into_iter().flatten().collect());
    assert_eq!(connect(got), want, "{ctx}: tcp_connect");
    // Limits: the lowest.
    assert_eq!(
        got.limits.cpu_seconds,
        ps.iter().filter_map(|p| p.limits.cpu_seconds).min(),
        "{ctx}"
    );
    assert_eq!(
        got.limits.open_files,
        ps.iter().filter_map(|p| p.limits.open_files).min(),
        "{ctx}"
    );
    let groups: BTreeSet<_> = ps
        .iter()
        .flat_map(|p| p.seccomp.iter().flat_map(|s| s.deny_groups.iter().copied()))
        .collect();
    assert_eq!(
        got.seccomp
            .iter()
            .flat_map(|s| s.deny_groups.iter().copied())
            .collect::<BTreeSet<_>>(),
        groups,
        "{ctx}"
    );
    assert_eq!(got.env.clear, ps.iter().any(|p| p.env.clear), "{ctx}");
    let pass: BTreeSet<_> = ps.iter().flat_map(|p| p.env.pass.iter().cloned()).collect();
    assert_eq!(
        got.env.pass.iter().cloned().collect::<BTreeSet<_>>(),
        pass,
        "{ctx}"
    );
    let caps: BTreeSet<_> = ps
        .iter()
        .flat_map(|p| p.capabilities.iter().copied())
        .collect();
    assert_eq!(
        got.capabilities.iter().copied().collect::<BTreeSet<_>>(),
        caps,
        "{ctx}"
    );
    // Settled fields: the profile's own value, else the one every base agrees on.
    let own = &profiles[pid];
    let bases_lang: BTreeSet<&String> = ps.iter().filter_map(|p| p.env.set.get("LANG")).collect();
    match own.env.set.get("LANG") {
        Some(v) => assert_eq!(got.env.set.get("LANG"), Some(v), "{ctx}"),
        None => assert_eq!(
            got.env.set.get("LANG"),
            bases_lang.iter().next().copied(),
            "{ctx}"
        ),
    }
    assert_eq!(got.description, own.description, "{ctx}");
}

#[test]
fn resolution_equals_the_independent_union_on_random_graphs() {
    let mut checked = 0;
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let n = 2 + rng.below(9_usize);
        let acyclic = rng.chance(75);
        let profiles: BTreeMap<Id, Profile> = (0..n)
            .map(|i| (id(i), random_profile(&mut rng, n, i, acyclic)))
            .collect();
        for pid in profiles.keys() {
            // `pid` reaches some `x` that reaches itself through at least one edge.
            let on_cycle_path = reach(&profiles, pid).iter().any(|x| {
                profiles[x]
                    .extends
                    .iter()
                    .any(|b| reach(&profiles, b).contains(x))
            });
            match resolve(&profiles, pid) {
                Ok(r) => {
                    assert!(
                        !on_cycle_path,
                        "seed {seed}: {pid} reaches a cycle but resolved"
                    );
                    check_against_union(&profiles, pid, &r, seed);
                    checked += 1;
                }
                Err(ExtendsError::Cycle { cycle }) => {
                    assert!(
                        on_cycle_path,
                        "seed {seed}: {pid}: a cycle {cycle:?} reported where there is none"
                    );
                    // The reported cycle is real: each extends the next.
                    for (i, c) in cycle.iter().enumerate() {
                        let next = &cycle[(i + 1) % cycle.len()];
                        assert!(profiles[c].extends.contains(next), "seed {seed}: {cycle:?}");
                    }
                }
                Err(ExtendsError::Conflict { field, values, .. }) => {
                    assert!(!on_cycle_path, "seed {seed}: {pid}: cycle not reported");
                    // A real conflict: the profile does not set the field, two layers do,
                    // with different values.
                    let distinct: BTreeSet<&String> = values.iter().map(|(_, v)| v).collect();
                    assert!(distinct.len() > 1, "seed {seed}: {field} {values:?}");
                    let own = &profiles[pid];
                    match field.as_str() {
                        "identity" => assert!(own.identity.is_none()),
                        f => assert!(!own.env.set.contains_key(&f["env.set.".len()..])),
                    }
                }
                Err(e) => panic!("seed {seed}: {e:?}"),
            }
        }
    }
    assert!(checked > 500, "only {checked} resolutions checked");
}

#[test]
fn unknown_bases_are_reported_with_their_place() {
    let mut profiles = BTreeMap::new();
    profiles.insert(
        id(0),
        Profile {
            extends: vec![id(1), id(7)],
            ..Profile::default()
        },
    );
    profiles.insert(id(1), Profile::default());
    let e = resolve(&profiles, &id(0)).unwrap_err();
    assert_eq!(
        e,
        ExtendsError::Unknown {
            profile: id(0),
            index: 1,
            missing: id(7)
        }
    );
    assert!(e.message().contains("`p7`"), "{}", e.message());
}

#[test]
fn a_profile_without_extends_resolves_to_itself() {
    let mut rng = Rng(42);
    for i in 0..50 {
        let mut p = random_profile(&mut rng, 1, i, true);
        p.extends.clear();
        let profiles = BTreeMap::from([(id(0), p.clone())]);
        assert_eq!(resolve(&profiles, &id(0)).unwrap().profile, p);
    }
}

#[test]
fn a_chain_deeper_than_the_limit_is_refused_not_recursed() {
    // p0 extends p1 extends … p{n-1}: at the limit resolves, one more is refused.
    for (n, ok) in [
        (limits::MAX_EXTENDS_DEPTH, true),
        (limits::MAX_EXTENDS_DEPTH + 1, false),
        (100_000, false),
    ] {
        let profiles: BTreeMap<Id, Profile> = (0..n)
            .map(|i| {
                let mut p = Profile::default();
                if i + 1 < n {
                    p.extends.push(id(i + 1));
                }
                p.limits.open_files = Some(10 + i as u64);
                (id(i), p)
            })
            .collect();
        match resolve(&profiles, &id(0)) {
            Ok(r) => {
                assert!(ok, "{n}");
                assert_eq!(r.layers.len(), n);
                assert_eq!(r.profile.limits.open_files, Some(10));
            }
            Err(ExtendsError::TooDeep { chain }) => {
                assert!(!ok, "{n}");
                assert_eq!(chain.len(), limits::MAX_EXTENDS_DEPTH + 1);
            }
            Err(e) => panic!("{n}: {e:?}"),
        }
    }
}
