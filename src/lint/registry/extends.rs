//! Registry lint of `extends`: unknown bases (NX320), cycles (NX321, once per cycle, every
//! cycle at once), conflicting inherited values (NX322), and what only the resolved profile
//! shows (NX309 for a profile that extends others and still restricts nothing). Profiles
//! that resolve replace their declarations in [`super::RegistryLint::profiles`], so the plan
//! lint and the worker checks see what a run enforces; those that cannot are removed (the
//! plan lint then treats the registry as incomplete for them).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::super::codes::Code;
use super::super::finding::{At, Sink, did_you_mean, pointer};
use super::RegistryLint;
use crate::load::extends::{self, ExtendsError};
use crate::model::Id;
use crate::model::registry::Profile;
use crate::util::limits;

/// The strongly connected components of the `extends` graph that hold a cycle (two or
/// more profiles, or one that extends itself), each sorted, in order of their first id.
/// Kosaraju's algorithm, iterative, so a long chain cannot overflow the stack.
pub(super) fn cyclic_components(graph: &BTreeMap<&str, Vec<&str>>) -> Vec<Vec<String>> {
    let nodes: Vec<&str> = graph.keys().copied().collect();
    let index: BTreeMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let succ: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            graph[n]
                .iter()
                .filter_map(|m| index.get(m).copied())
                .collect()
        })
        .collect();
    let mut pred: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, ss) in succ.iter().enumerate() {
        for &j in ss {
            pred[j].push(i);
        }
    }
    // First pass: finishing order.
    let mut seen = vec![false; nodes.len()];
    let mut order = Vec::with_capacity(nodes.len());
    for start in 0..nodes.len() {
        if seen[start] {
            continue;
        }
        seen[start] = true;
        let mut stack = vec![(start, 0usize)];
        while let Some((v, k)) = stack.pop() {
            if let Some(&w) = succ[v].get(k) {
                stack.push((v, k + 1));
                if !seen[w] {
                    seen[w] = true;
                    stack.push((w, 0));
                }
            } else {
                order.push(v);
            }
        }
    }
    // Second pass on the reversed graph, in reverse finishing order.
    let mut comp = vec![usize::MAX; nodes.len()];
    let mut comps: Vec<Vec<usize>> = Vec::new();
    for &start in order.iter().rev() {
        if comp[start] != usize::MAX {
            continue;
        }
        let c = comps.len();
        comp[start] = c;
        let mut members = vec![start];
        let mut stack = vec![start];
        while let Some(v) = stack.pop() {
            for &w in &pred[v] {
                if comp[w] == usize::MAX {
                    comp[w] = c;
                    members.push(w);
                    stack.push(w);
                }
            }
        }
        comps.push(members);
    }
    let mut out: Vec<Vec<String>> = comps
        .into_iter()
        .filter(|m| m.len() > 1 || succ[m[0]].contains(&m[0]))
        .map(|m| {
            let mut names: Vec<String> = m.iter().map(|&i| nodes[i].to_string()).collect();
            names.sort();
            names
        })
        .collect();
    out.sort();
    out
}

/// A cycle through `first` inside `members` (breadth-first, so the shortest one).
fn cycle_through(
    graph: &BTreeMap<&str, Vec<&str>>,
    members: &[String],
    first: &str,
) -> Vec<String> {
    let inside: BTreeSet<&str> = members.iter().map(String::as_str).collect();
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([first]);
    while let Some(v) = queue.pop_front() {
        for &w in graph.get(v).map_or(&[][..], Vec::as_slice) {
            if !inside.contains(w) {
                continue;
            }
            if w == first {
                let mut path = vec![v.to_string()];
                let mut at = v;
                while at != first {
                    at = parent[at];
                    path.push(at.to_string());
                }
                path.reverse();
                return path;
            }
            if !parent.contains_key(w) {
                parent.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    vec![first.to_string()]
}

/// NX323 for `profile` (at `base`): capabilities it keeps and an identity it runs as that
/// only its layers declare. Cheap (no rules are copied), so it runs inside the per-profile
/// checks, where the profile's `allow_lint` can acknowledge it.
pub(super) fn inherited_privileges(
    sink: &mut Sink<'_>,
    base: &str,
    id: &str,
    profile: &Profile,
    all: &BTreeMap<Id, Profile>,
) {
    if profile.extends.is_empty() {
        return;
    }
    let Ok(me) = Id::new(id) else { return };
    let Ok(layers) = extends::layers(all, &me) else {
        return;
    };
    let mut from: Vec<String> = Vec::new();
    for l in layers.iter().filter(|l| **l != me) {
        let p = &all[l];
        let caps: Vec<&str> = p
            .capabilities
            .iter()
            .filter(|c| !profile.capabilities.contains(c))
            .map(|c| c.as_str())
            .collect();
        if !caps.is_empty() {
            from.push(format!("capabilities {} from `{l}`", caps.join(", ")));
        }
        if let (None, Some(who)) = (profile.identity, p.identity) {
            from.push(format!("uid {} gid {} from `{l}`", who.uid, who.gid));
        }
    }
    if !from.is_empty() {
        sink.push_hint(
            Code::InheritedPrivilege,
            &format!("{base}/extends"),
            At::Key,
            format!(
                "profile `{id}` gets privileges it does not declare itself: {}",
                from.join("; ")
            ),
            Some(
                "list them in the profile itself, or acknowledge with `allow_lint: [\"NX323\"]`"
                    .into(),
            ),
        );
    }
}

/// Lint every profile's `extends` and replace the valid profiles by their resolution.
pub(super) fn lint_extends(
    sink: &mut Sink<'_>,
    reg: &mut RegistryLint,
    valid: &BTreeMap<Id, Profile>,
) {
    if reg.profiles.values().all(|p| p.extends.is_empty()) {
        return;
    }
    // NX320: bases the file does not define at all.
    for (id, p) in &reg.profiles {
        for (i, base) in p.extends.iter().enumerate() {
            if !reg.profile_ids.contains(base.as_str()) {
                sink.push_hint(
                    Code::UnknownBaseProfile,
                    &pointer(["profiles", id.as_str(), "extends", &i.to_string()]),
                    At::Value,
                    format!("profile `{id}` extends `{base}`, which this registry does not define"),
                    did_you_mean(
                        base.as_str(),
                        reg.profile_ids
                            .iter()
                            .map(String::as_str)
                            .filter(|p| p != id),
                    )
                    .or_else(|| {
                        Some("define it in this profiles file, or remove it from `extends`".into())
                    }),
                );
            }
        }
    }
    // NX321: one finding per cycle, at the first profile on it.
    let graph: BTreeMap<&str, Vec<&str>> = reg
        .profiles
        .iter()
        .map(|(id, p)| (id.as_str(), p.extends.iter().map(Id::as_str).collect()))
        .collect();
    let components = cyclic_components(&graph);
    for members in &components {
        let first = &members[0];
        let cycle = cycle_through(&graph, members, first);
        let next = cycle.get(1).unwrap_or(first);
        let i = reg.profiles[first]
            .extends
            .iter()
            .position(|b| b.as_str() == next)
            .unwrap_or(0);
        let e = ExtendsError::Cycle {
            cycle: cycle
                .iter()
                .filter_map(|c| Id::new(c.clone()).ok())
                .collect(),
        };
        let mut message = e.message();
        if members.len() > cycle.len() {
            let _ = write!(
                message,
                " (profiles on cycles with it: {})",
                members
                    .iter()
                    .filter(|m| !cycle.contains(m))
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        sink.push_hint(
            Code::ExtendsCycle,
            &pointer(["profiles", first.as_str(), "extends", &i.to_string()]),
            At::Value,
            message,
            Some(e.hint()),
        );
    }
    // Resolve what extends others (the rest resolve to themselves and stay as they are);
    // NX322 for conflicts. A profile that cannot be resolved is removed: the plan lint then
    // treats the registry as incomplete for it.
    let mut inherited = 0usize;
    let mut over_budget = false;
    for id in valid
        .iter()
        .filter(|(_, p)| !p.extends.is_empty())
        .map(|(id, _)| id)
    {
        let key = id.as_str();
        if over_budget {
            reg.profiles.remove(key);
            continue;
        }
        match extends::layers(valid, id) {
            Ok(_) => {}
            Err(e @ ExtendsError::TooDeep { .. }) => {
                sink.push_hint(
                    Code::InputLimit,
                    &pointer(["profiles", key, "extends"]),
                    At::Key,
                    e.message(),
                    Some(e.hint()),
                );
                reg.profiles.remove(key);
                continue;
            }
            // Reported above: a cycle, or a base not defined (NX320) or not valid (its
            // schema findings).
            Err(_) => {
                reg.profiles.remove(key);
                continue;
            }
        }
        match extends::resolve(valid, id) {
            Ok(r) => {
                inherited += r.inherited_rules();
                if inherited > limits::MAX_INHERITED_RULES {
                    sink.push_hint(
                        Code::InputLimit,
                        &pointer(["profiles", key, "extends"]),
                        At::Key,
                        format!(
                            "resolving `extends` up to profile `{id}` copies more than {} rules from bases",
                            limits::MAX_INHERITED_RULES
                        ),
                        Some("fewer profiles extending a large base, or a smaller base: every profile that extends a base holds a copy of its rules".into()),
                    );
                    over_budget = true;
                    reg.profiles.remove(key);
                    continue;
                }
                if super::profile::restricts_nothing(&r.profile) {
                    super::profile::empty_profile(sink, &pointer(["profiles", key]));
                }
                reg.profiles.insert(key.to_string(), r.profile);
            }
            Err(e) => {
                sink.push_hint(
                    Code::ExtendsConflict,
                    &pointer(["profiles", key, "extends"]),
                    At::Key,
                    e.message(),
                    Some(e.hint()),
                );
                reg.profiles.remove(key);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small random numbers
mod tests {
    use super::*;

    use crate::util::testrng::Rng;

    /// On random graphs, a profile is in a reported component exactly when it reaches
    /// itself (computed by a fixpoint), and each reported cycle is a real cycle.
    #[test]
    fn every_cycle_is_reported_on_random_graphs() {
        for seed in 1..=400u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let n = 1 + rng.below(12_usize);
            let names: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
            let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for name in &names {
                let mut out = Vec::new();
                for _ in 0..rng.below(3) {
                    let j = rng.below(n as u64) as usize;
                    if !out.contains(&names[j].as_str()) {
                        out.push(names[j].as_str());
                    }
                }
                graph.insert(name.as_str(), out);
            }
            let reach = |from: &str| {
                let mut seen: BTreeSet<&str> = BTreeSet::new();
                let mut todo: Vec<&str> = graph[from].clone();
                while let Some(v) = todo.pop() {
                    if seen.insert(v) {
                        todo.extend(graph[v].iter().copied());
                    }
                }
                seen
            };
            let comps = cyclic_components(&graph);
            for name in &names {
                let on_cycle = reach(name).contains(name.as_str());
                let reported = comps.iter().any(|c| c.contains(name));
                assert_eq!(on_cycle, reported, "seed {seed}: {name} in {graph:?}");
            }
            for c in &comps {
                let cycle = cycle_through(&graph, c, &c[0]);
                for (i, v) in cycle.iter().enumerate() {
                    let w = &cycle[(i + 1) % cycle.len()];
                    assert!(
                        graph[v.as_str()].contains(&w.as_str()),
                        "seed {seed}: {cycle:?}"
                    );
                }
            }
        }
    }
}
