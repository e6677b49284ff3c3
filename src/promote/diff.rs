//! `nexusmon diff A B`: what changed between two runs ([`RunDiff`]), from their bundles
//! (read through [`super::view`], so a tampered side is said to be unverified).
//!
//! Compared: the scenarios (added, removed); per scenario the expectation, each lane's
//! decision (scenario lane with errno, baseline, oracle), the oracle/kernel agreement and
//! the mismatch kinds; per profile the apply preflight (enforcement, dropped rights, apply
//! failures); the definitions of the profiles and probes the plans resolved, field by
//! field; the plan itself; the host facts that bear on enforcement (kernel, Landlock ABI).
//!
//! Run-specific values never count as changes: the run id, times, durations, the scratch
//! root (`/dev/shm/nexusmon-<run_id>/…`) and the values of run-scoped variables (listener
//! ports, the runner's pid) are normalised away before anything is compared, so two runs of
//! the same plan on the same machine diff empty.
//!
//! Severities ([`Severity`]): an expected-deny scenario whose scenario lane now allows is
//! `critical` (a policy hole opened); allow → deny in the scenario lane is `breaking` (for a
//! scenario that expects allow), as are the oracle losing agreement with the kernel, a
//! profile enforced less than before and an apply failure appearing; other decision
//! changes are `changed`; definition and host differences are `info` unless they come
//! with no decision change at all, in which case they are `changed` (an edit whose effect
//! the run did not see is still worth a look).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use super::source::BundleSource;
use super::view;
use crate::Result;
use crate::bundle::{NORMALIZED_ROWS, lines};
use crate::error::ErrorKind;
use crate::model::diff::{Change, DIFF_SCHEMA, DiffSide, RunDiff, Severity};
use crate::model::plan::Expectation;
use crate::model::results::{NormalizedRow, Outcome, PreflightRecord};
use crate::model::view::{Integrity, RunView};
use crate::util::jsondiff;

mod lean;

/// Diff the runs at `a` and `b` (bundles, out roots, packets). What the runs did is
/// compared, not who vouches for them: signatures are checked against the key each carries
/// ([`super::Unattested`]) and no audit log is consulted.
///
/// The two runs' rows are walked side by side (a merge join of their sorted
/// `runtime_events.normalized.jsonl`), a row of each at a time: memory is the changes
/// found, not the scenarios. Rows out of order (or repeated) on either side, which the
/// runner never writes, are diffed as before, every row read first.
///
/// The manifests are read without their per-scenario parts when both are laid out as the
/// runner writes them ([`lean`]: the selection skipped, the plans' matrices compared from
/// sorted runs on disk in a private temporary directory); otherwise whole, as before.
pub fn diff_paths(a: &Path, b: &Path, root: &Path) -> Result<RunDiff> {
    let sa = BundleSource::open(&view::bundle_dir_of(a, root)?)?;
    let sb = BundleSource::open(&view::bundle_dir_of(b, root)?)?;
    let (source_a, source_b) = (a.display().to_string(), b.display().to_string());
    let tmp = tempfile::Builder::new()
        .prefix(".nexusmon-diff-")
        .tempdir()
        .map_err(|e| {
            crate::Error::io("create a temporary directory in", std::env::temp_dir(), e)
        })?;
    let leans = match lean::read(&sa, tmp.path(), "a")? {
        Some(la) => lean::read(&sb, tmp.path(), "b")?.map(|lb| (la, lb)),
        None => None,
    };
    let (mut va, mut vb, plan_fields) = match leans {
        Some((la, lb)) => {
            let fields = lean::plan_fields(&la, &lb)?;
            (
                view::head_with_manifest(&sa, &super::Unattested, la.manifest)?,
                view::head_with_manifest(&sb, &super::Unattested, lb.manifest)?,
                Some(fields),
            )
        }
        None => (
            view::head_of(&sa, &super::Unattested)?,
            view::head_of(&sb, &super::Unattested)?,
            None,
        ),
    };
    // The selection (a line per scenario) is not compared: the rows are.
    for v in [&mut va, &mut vb] {
        if let Some(m) = v.manifest.as_mut() {
            m.selected = Vec::new();
        }
    }
    let mut out = not_verified(&va, &vb, &source_a, &source_b);
    let (mut ra, mut rb) = (RowStream::open(&sa)?, RowStream::open(&sb)?);
    let (na, nb) = (Normalizer::of(&va), Normalizer::of(&vb));
    if merge_rows(&mut || ra.next(), &mut || rb.next(), &na, &nb, &mut out)? {
        ra.finish()?;
        rb.finish()?;
        return Ok(finish(&va, &vb, &source_a, &source_b, out, plan_fields));
    }
    let va = view::of_source(&sa, root, &super::Unattested)?;
    let vb = view::of_source(&sb, root, &super::Unattested)?;
    Ok(diff(&va, &vb, &source_a, &source_b))
}

/// The normalized rows of a run, a row at a time, read as the review view reads them: a
/// line that is not a row is skipped; a file that is missing is empty; a file that does
/// not read ends there when the bundle did not verify (strict, it is an error); strict, the
/// file is checked against the index at [`RowStream::finish`].
struct RowStream {
    lines: Option<lines::LineReader<std::fs::File>>,
    shared: lines::SharedValues,
    strict: bool,
}

impl RowStream {
    fn open(src: &BundleSource) -> Result<Self> {
        let shared = src.shared_values()?.unwrap_or_default();
        Ok(Self {
            lines: src.line_reader(NORMALIZED_ROWS)?,
            shared,
            strict: src.verified(),
        })
    }

    fn next(&mut self) -> Result<Option<NormalizedRow>> {
        loop {
            let Some(l) = &mut self.lines else {
                return Ok(None);
            };
            match l.next_item::<serde_json::Value>(&self.shared) {
                Ok(Some(v)) => {
                    if let Ok(r) = serde_json::from_value(v) {
                        return Ok(Some(r));
                    }
                }
                Ok(None) => return Ok(None),
                Err(e) if e.kind() == ErrorKind::Findings && !self.strict => {
                    self.lines = None;
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Strict: the file's digests against the index (what was read may be used only then).
    fn finish(self) -> Result<()> {
        match self.lines {
            Some(l) if self.strict => l.finish().map(|_| ()),
            _ => Ok(()),
        }
    }
}

/// Walk two runs' rows in scenario order side by side, pushing the changes
/// [`diff`] finds in them. `false` (and whatever was pushed must be thrown away) when a
/// side's scenario ids are not strictly increasing.
fn merge_rows(
    next_a: &mut dyn FnMut() -> Result<Option<NormalizedRow>>,
    next_b: &mut dyn FnMut() -> Result<Option<NormalizedRow>>,
    na: &Normalizer,
    nb: &Normalizer,
    out: &mut Vec<Change>,
) -> Result<bool> {
    /// The next row, or `Unsorted` when its id is not above the previous one.
    enum Pulled {
        Row(Option<Box<NormalizedRow>>),
        Unsorted,
    }
    fn pull(
        next: &mut dyn FnMut() -> Result<Option<NormalizedRow>>,
        last: &mut Option<String>,
    ) -> Result<Pulled> {
        let r = next()?;
        if let Some(r) = &r {
            if last.as_deref().is_some_and(|l| l >= r.scenario_id.as_str()) {
                return Ok(Pulled::Unsorted);
            }
            *last = Some(r.scenario_id.clone());
        }
        Ok(Pulled::Row(r.map(Box::new)))
    }
    let (mut la, mut lb) = (None, None);
    let Pulled::Row(mut x) = pull(next_a, &mut la)? else {
        return Ok(false);
    };
    let Pulled::Row(mut y) = pull(next_b, &mut lb)? else {
        return Ok(false);
    };
    loop {
        let (adv_a, adv_b) = match (&x, &y) {
            (None, None) => return Ok(true),
            (Some(r), None) => {
                removed(r, out);
                (true, false)
            }
            (None, Some(r)) => {
                added(r, out);
                (false, true)
            }
            (Some(p), Some(q)) => match p.scenario_id.cmp(&q.scenario_id) {
                std::cmp::Ordering::Less => {
                    removed(p, out);
                    (true, false)
                }
                std::cmp::Ordering::Greater => {
                    added(q, out);
                    (false, true)
                }
                std::cmp::Ordering::Equal => {
                    compare_rows(p, q, out);
                    oracle_changed(p, q, na, nb, out);
                    (true, true)
                }
            },
        };
        if adv_a {
            let Pulled::Row(r) = pull(next_a, &mut la)? else {
                return Ok(false);
            };
            x = r;
        }
        if adv_b {
            let Pulled::Row(r) = pull(next_b, &mut lb)? else {
                return Ok(false);
            };
            y = r;
        }
    }
}

fn removed(r: &NormalizedRow, out: &mut Vec<Change>) {
    let id = r.scenario_id.as_str();
    out.push(change(
        Severity::Changed,
        "scenario-removed",
        id,
        None,
        outcome_text(r.scenario.as_ref()),
        None,
        format!("`{id}` is no longer run"),
    ));
}

fn added(r: &NormalizedRow, out: &mut Vec<Change>) {
    let id = r.scenario_id.as_str();
    out.push(change(
        Severity::Changed,
        "scenario-added",
        id,
        None,
        None,
        outcome_text(r.scenario.as_ref()),
        format!("`{id}` is new (expected {})", r.expected.as_str()),
    ));
}

/// Oracle reasons: only when the decision did not change (that is already reported), and
/// after normalising run-specific values.
fn oracle_changed(
    x: &NormalizedRow,
    r: &NormalizedRow,
    na: &Normalizer,
    nb: &Normalizer,
    out: &mut Vec<Change>,
) {
    let id = r.scenario_id.as_str();
    if let (Some(oa), Some(ob)) = (&x.oracle, &r.oracle)
        && oa.decision == ob.decision
    {
        let (ta, tb) = (na.text(&oa.reason), nb.text(&ob.reason));
        if ta != tb {
            out.push(change(
                Severity::Changed,
                "oracle-changed",
                id,
                Some("oracle"),
                Some(ta),
                Some(tb),
                format!("the oracle decides `{id}` by another rule"),
            ));
        }
    }
}

/// Replaces run-specific values in texts.
struct Normalizer {
    pairs: Vec<(String, String)>,
}

impl Normalizer {
    fn of(v: &RunView) -> Self {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(m) = &v.manifest {
            if !m.scratch.is_empty() {
                pairs.push((m.scratch.clone(), "<scratch>".into()));
            }
            // Run-scoped variables: the runner's pid and what run-wide fixtures publish.
            let scoped: BTreeSet<&str> = m
                .listeners
                .iter()
                .filter_map(|l| l.split("${").nth(1).and_then(|r| r.split('}').next()))
                .chain(std::iter::once("RUNNER_PID"))
                .collect();
            for (k, val) in &m.variables {
                if scoped.contains(k.as_str()) && !val.is_empty() {
                    pairs.push((val.clone(), format!("${{{k}}}")));
                }
            }
        }
        if !v.run_id.is_empty() {
            pairs.push((v.run_id.clone(), "<run_id>".into()));
        }
        // Longest first, so a path is replaced before a value inside it.
        pairs.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        Self { pairs }
    }

    fn text(&self, s: &str) -> String {
        let mut out = s.to_string();
        for (from, to) in &self.pairs {
            out = replace_token(&out, from, to);
        }
        out
    }
}

/// Replace whole-token occurrences of `from` (not inside a longer run of letters/digits).
fn replace_token(s: &str, from: &str, to: &str) -> String {
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(from) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + from.len()..].chars().next();
        let numeric = from.chars().all(|c| c.is_ascii_digit());
        if numeric && (is_word(before) || is_word(after)) {
            out.push_str(&rest[..at + from.len()]);
        } else {
            out.push_str(&rest[..at]);
            out.push_str(to);
        }
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

fn side(v: &RunView, source: &str) -> DiffSide {
    let m = v.manifest.as_ref();
    DiffSide {
        source: source.to_string(),
        run_id: v.run_id.clone(),
        plan_id: m.map(|m| m.plan_id.clone()),
        plan_digest: m.map(|m| m.plan_digest.blake3.clone()),
        kernel: m.map(|m| m.host.kernel_release.clone()),
        landlock_abi: m.and_then(|m| m.landlock_abi),
        verified: v.verdict.integrity == Integrity::Valid,
    }
}

fn outcome_text(c: Option<&crate::model::results::LaneCell>) -> Option<String> {
    c.map(|c| match &c.errno_name {
        Some(e) if c.outcome != Outcome::Allow => format!("{} ({e})", c.outcome.as_str()),
        _ => c.outcome.as_str().to_string(),
    })
}

fn change(
    severity: Severity,
    kind: &str,
    subject: &str,
    lane: Option<&str>,
    before: Option<String>,
    after: Option<String>,
    message: String,
) -> Change {
    Change {
        severity,
        kind: kind.to_string(),
        subject: subject.to_string(),
        lane: lane.map(str::to_string),
        before,
        after,
        message,
        fields: Vec::new(),
    }
}

/// Whether the oracle and the scenario lane agree on allow/deny (absent: not comparable).
fn agrees(r: &NormalizedRow) -> Option<bool> {
    let o = r.oracle.as_ref()?.decision.as_str();
    let s = r.scenario.as_ref()?.outcome;
    match (o, s) {
        ("allow", Outcome::Allow) | ("deny", Outcome::Deny) => Some(true),
        ("allow", Outcome::Deny) | ("deny", Outcome::Allow) => Some(false),
        _ => None,
    }
}

/// The scenario-lane change of one scenario, with its severity.
fn scenario_lane(a: &NormalizedRow, b: &NormalizedRow, out: &mut Vec<Change>) {
    let (sa, sb) = (
        outcome_text(a.scenario.as_ref()),
        outcome_text(b.scenario.as_ref()),
    );
    if sa == sb {
        return;
    }
    let oa = a.scenario.as_ref().map(|c| c.outcome);
    let ob = b.scenario.as_ref().map(|c| c.outcome);
    let id = &b.scenario_id;
    let (severity, message) = match (oa, ob) {
        (Some(x), Some(Outcome::Allow))
            if x != Outcome::Allow && b.expected == Expectation::Deny =>
        {
            (
                Severity::Critical,
                format!(
                    "policy hole: `{id}` is expected to be denied and the kernel now allows it"
                ),
            )
        }
        (Some(Outcome::Allow), Some(Outcome::Deny)) if b.expected != Expectation::Deny => (
            Severity::Breaking,
            format!("`{id}` was allowed and is now denied by the kernel"),
        ),
        (_, Some(Outcome::ApplyFailed)) => (
            Severity::Breaking,
            format!("the profile of `{id}` could not be applied"),
        ),
        _ => (
            Severity::Changed,
            format!(
                "the scenario lane of `{id}` changed from {} to {}",
                sa.as_deref().unwrap_or("-"),
                sb.as_deref().unwrap_or("-")
            ),
        ),
    };
    out.push(change(
        severity,
        "decision-changed",
        id,
        Some("scenario"),
        sa,
        sb,
        message,
    ));
}

fn compare_rows(a: &NormalizedRow, b: &NormalizedRow, out: &mut Vec<Change>) {
    let id = &b.scenario_id;
    if a.expected != b.expected {
        out.push(change(
            Severity::Changed,
            "expectation-changed",
            id,
            None,
            Some(a.expected.as_str().into()),
            Some(b.expected.as_str().into()),
            format!("the plan now expects `{id}` to {}", b.expected.as_str()),
        ));
    }
    scenario_lane(a, b, out);
    let (ba, bb) = (
        outcome_text(a.baseline.as_ref()),
        outcome_text(b.baseline.as_ref()),
    );
    if ba != bb {
        out.push(change(
            Severity::Changed,
            "baseline-changed",
            id,
            Some("baseline"),
            ba.clone(),
            bb.clone(),
            format!(
                "without the profile, `{id}` changed from {} to {} (the host, not the policy)",
                ba.as_deref().unwrap_or("-"),
                bb.as_deref().unwrap_or("-")
            ),
        ));
    }
    let (oa, ob) = (
        a.oracle.as_ref().map(|o| o.decision.as_str().to_string()),
        b.oracle.as_ref().map(|o| o.decision.as_str().to_string()),
    );
    if oa != ob {
        out.push(change(
            Severity::Changed,
            "oracle-changed",
            id,
            Some("oracle"),
            oa,
            ob,
            format!("the oracle's prediction for `{id}` changed"),
        ));
    }
    match (agrees(a), agrees(b)) {
        (Some(true), Some(false)) => out.push(change(
            Severity::Breaking,
            "agreement-lost",
            id,
            None,
            Some("agree".into()),
            Some("disagree".into()),
            format!("the oracle no longer predicts what the kernel decides for `{id}`"),
        )),
        (Some(false), Some(true)) => out.push(change(
            Severity::Changed,
            "agreement-regained",
            id,
            None,
            Some("disagree".into()),
            Some("agree".into()),
            format!("the oracle agrees with the kernel on `{id}` again"),
        )),
        _ => {}
    }
    let kinds = |r: &NormalizedRow| {
        let mut k: Vec<&str> = r.mismatches.iter().map(|m| m.as_str()).collect();
        if r.flaky {
            k.push("flaky");
        }
        k.join(", ")
    };
    let (ka, kb) = (kinds(a), kinds(b));
    if ka != kb {
        out.push(change(
            Severity::Changed,
            "mismatches-changed",
            id,
            None,
            Some(if ka.is_empty() { "none".into() } else { ka }),
            Some(if kb.is_empty() { "none".into() } else { kb }),
            format!("the mismatches of `{id}` changed"),
        ));
    }
}

fn preflight_rank(p: &PreflightRecord) -> u8 {
    if !p.apply_ok {
        return 0;
    }
    match p
        .ruleset_status
        .map(crate::model::results::RulesetStatus::as_str)
    {
        Some("fully-enforced") | None => 3,
        Some("partially-enforced") => 2,
        _ => 1,
    }
}

fn preflight_text(p: &PreflightRecord) -> String {
    let mut s = if p.apply_ok {
        p.ruleset_status
            .map_or("no Landlock rules", |r| r.as_str())
            .to_string()
    } else {
        "apply-failed".to_string()
    };
    if let Some(abi) = p.abi_requested {
        let _ = write!(s, " (ABI {abi})");
    }
    if !p.dropped_rights.is_empty() {
        let d: Vec<&str> = p.dropped_rights.iter().map(|d| d.item.as_str()).collect();
        let _ = write!(s, "; dropped {}", d.join(", "));
    }
    s
}

fn compare_preflight(a: &RunView, b: &RunView, out: &mut Vec<Change>) {
    let pa: BTreeMap<&str, &PreflightRecord> = a
        .preflight
        .iter()
        .map(|p| (p.profile.as_str(), p))
        .collect();
    for p in &b.preflight {
        let Some(q) = pa.get(p.profile.as_str()) else {
            continue;
        };
        let (ta, tb) = (preflight_text(q), preflight_text(p));
        if ta == tb {
            continue;
        }
        let subject = format!("profile:{}", p.profile);
        let (kind, severity) = match (q.apply_ok, p.apply_ok) {
            (true, false) => ("apply-failed", Severity::Breaking),
            (false, true) => ("apply-recovered", Severity::Changed),
            _ if preflight_rank(p) < preflight_rank(q)
                || p.dropped_rights.len() > q.dropped_rights.len() =>
            {
                ("enforcement-changed", Severity::Breaking)
            }
            _ => ("enforcement-changed", Severity::Changed),
        };
        out.push(change(
            severity,
            kind,
            &subject,
            None,
            Some(ta),
            Some(tb),
            format!(
                "the kernel's enforcement of profile `{}` changed",
                p.profile
            ),
        ));
    }
}

fn definitions(
    kind: &str,
    label: &str,
    a: &BTreeMap<String, serde_json::Value>,
    b: &BTreeMap<String, serde_json::Value>,
    out: &mut Vec<Change>,
) {
    for (id, vb) in b {
        let Some(va) = a.get(id) else { continue };
        let fields = jsondiff::diff(va, vb);
        if fields.is_empty() {
            continue;
        }
        let names: Vec<String> = fields.iter().map(|f| f.path.clone()).collect();
        out.push(Change {
            severity: Severity::Info,
            kind: kind.to_string(),
            subject: format!("{label}:{id}"),
            lane: None,
            before: None,
            after: None,
            message: format!(
                "the definition of {label} `{id}` changed: {}",
                names.join(", ")
            ),
            fields,
        });
    }
}

/// The diff of two runs. `source_a`/`source_b` name them as the user did.
pub fn diff(a: &RunView, b: &RunView, source_a: &str, source_b: &str) -> RunDiff {
    let mut out = not_verified(a, b, source_a, source_b);
    let (na, nb) = (Normalizer::of(a), Normalizer::of(b));
    let ra: BTreeMap<&str, &NormalizedRow> =
        a.rows.iter().map(|r| (r.scenario_id.as_str(), r)).collect();
    let rb: BTreeMap<&str, &NormalizedRow> =
        b.rows.iter().map(|r| (r.scenario_id.as_str(), r)).collect();
    for (id, r) in &ra {
        if !rb.contains_key(id) {
            removed(r, &mut out);
        }
    }
    for (id, r) in &rb {
        match ra.get(id) {
            None => added(r, &mut out),
            Some(x) => compare_rows(x, r, &mut out),
        }
    }
    for (id, r) in &rb {
        if let Some(x) = ra.get(id) {
            oracle_changed(x, r, &na, &nb, &mut out);
        }
    }
    finish(a, b, source_a, source_b, out, None)
}

/// A change for each side whose bundle does not verify.
fn not_verified(a: &RunView, b: &RunView, source_a: &str, source_b: &str) -> Vec<Change> {
    let mut out = Vec::new();
    for (v, s) in [(a, source_a), (b, source_b)] {
        if v.verdict.integrity != Integrity::Valid {
            out.push(change(
                Severity::Breaking,
                "bundle-not-verified",
                s,
                None,
                None,
                None,
                format!(
                    "the bundle of run {} does not verify against its seal ({} problem(s)); its side of the diff is not evidence",
                    v.run_id,
                    v.verdict.problems.len()
                ),
            ));
        }
    }
    out
}

/// The rest of the diff once the rows' changes are in `out`: preflight, definitions, the
/// plan (`plan_fields` when the plans were compared already), the host; sorted, counted.
fn finish(
    a: &RunView,
    b: &RunView,
    source_a: &str,
    source_b: &str,
    mut out: Vec<Change>,
    plan_fields: Option<Vec<jsondiff::FieldChange>>,
) -> RunDiff {
    compare_preflight(a, b, &mut out);
    let decisions_changed = out.iter().any(|c| c.severity > Severity::Info);
    let mut defs = Vec::new();
    if let (Some(ma), Some(mb)) = (&a.manifest, &b.manifest) {
        definitions(
            "profile-changed",
            "profile",
            &ma.profile_definitions,
            &mb.profile_definitions,
            &mut defs,
        );
        let probes =
            |m: &crate::model::results::RunManifest| -> BTreeMap<String, serde_json::Value> {
                m.probes
                    .iter()
                    .map(|(k, p)| {
                        (
                            k.clone(),
                            serde_json::to_value(&p.probe).unwrap_or(serde_json::Value::Null),
                        )
                    })
                    .collect()
            };
        definitions(
            "probe-changed",
            "probe",
            &probes(ma),
            &probes(mb),
            &mut defs,
        );
        let strip = |v: &serde_json::Value| {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("$schema");
            }
            v
        };
        let fields =
            plan_fields.unwrap_or_else(|| jsondiff::diff(&strip(&ma.plan), &strip(&mb.plan)));
        if !fields.is_empty() {
            let names: Vec<String> = fields.iter().map(|f| f.path.clone()).collect();
            defs.push(Change {
                severity: Severity::Info,
                kind: "plan-changed".into(),
                subject: "plan".into(),
                lane: None,
                before: None,
                after: None,
                message: format!("the plan changed: {}", names.join(", ")),
                fields,
            });
        }
        let (ha, hb) = (&ma.host, &mb.host);
        if ha.kernel_release != hb.kernel_release {
            defs.push(change(
                Severity::Info,
                "host-changed",
                "host",
                None,
                Some(ha.kernel_release.clone()),
                Some(hb.kernel_release.clone()),
                "the kernel release changed".into(),
            ));
        }
        if ma.landlock_abi != mb.landlock_abi {
            let show = |x: Option<u8>| x.map_or("none".to_string(), |a| a.to_string());
            defs.push(change(
                Severity::Breaking.min(if mb.landlock_abi < ma.landlock_abi {
                    Severity::Breaking
                } else {
                    Severity::Changed
                }),
                "host-changed",
                "host",
                None,
                Some(format!("Landlock ABI {}", show(ma.landlock_abi))),
                Some(format!("Landlock ABI {}", show(mb.landlock_abi))),
                "the kernel's Landlock ABI changed".into(),
            ));
        }
    }
    if !decisions_changed {
        // A definition changed and no decision did: still worth a look.
        for c in &mut defs {
            if c.severity == Severity::Info && c.kind != "host-changed" {
                c.severity = Severity::Changed;
            }
        }
    }
    out.extend(defs);
    out.sort_by(|x, y| {
        y.severity
            .cmp(&x.severity)
            .then_with(|| x.subject.cmp(&y.subject))
            .then_with(|| x.kind.cmp(&y.kind))
    });
    let mut counts: BTreeMap<String, u64> = Severity::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
    for c in &out {
        *counts.entry(c.severity.as_str().to_string()).or_default() += 1;
    }
    RunDiff {
        schema: DIFF_SCHEMA.to_string(),
        a: side(a, source_a),
        b: side(b, source_b),
        highest: out.iter().map(|c| c.severity).max(),
        changes: out,
        counts,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::model::registry::Operation;
    use crate::model::results::{LaneCell, OracleCell, OracleDecision, Stage};
    use crate::model::view::{AnchorState, SignatureState, Verdict};

    fn cell(o: Outcome) -> LaneCell {
        LaneCell {
            outcome: o,
            stage: Stage::Operation,
            errno_name: (o == Outcome::Deny).then(|| "EACCES".to_string()),
        }
    }

    fn row(
        id: &str,
        expected: Expectation,
        scenario: Outcome,
        oracle: OracleDecision,
    ) -> NormalizedRow {
        NormalizedRow {
            scenario_id: id.to_string(),
            profile_id: id.split(':').next().unwrap_or_default().to_string(),
            probe_id: id.split(':').nth(1).unwrap_or_default().to_string(),
            operation: Operation::FileRead,
            target: None,
            expected,
            control: false,
            baseline: Some(cell(Outcome::Allow)),
            scenario: Some(cell(scenario)),
            oracle: Some(OracleCell {
                decision: oracle,
                reason: "r".into(),
            }),
            attribution: None,
            mismatches: Vec::new(),
            flaky: false,
            task_id: None,
            depends_on: Vec::new(),
            skipped_because: None,
        }
    }

    fn view(rows: Vec<NormalizedRow>) -> RunView {
        RunView {
            bundle_dir: PathBuf::from("/b"),
            run_id: "r".into(),
            manifest: None,
            summary: None,
            rows,
            mismatches: Vec::new(),
            mismatch_count: 0,
            preflight: Vec::new(),
            oracle: Vec::new(),
            details: BTreeMap::new(),
            packet: None,
            verdict: Verdict {
                integrity: Integrity::Valid,
                problems: Vec::new(),
                bundle_status: Some("complete".into()),
                signature: SignatureState::Unsigned,
                anchor: AnchorState::NotRecorded,
            },
            unreadable: Vec::new(),
        }
    }

    /// The merge join of two runs' sorted rows gives the diff of reading every row first:
    /// generated pairs of runs over overlapping scenario sets (added, removed, changed,
    /// oracle reasons with run-specific values), and rows out of order are refused (the
    /// caller then reads every row).
    #[test]
    #[allow(clippy::cast_possible_truncation)]
    fn the_merge_join_of_sorted_rows_is_the_diff_of_all_rows() {
        let outcomes = [Outcome::Allow, Outcome::Deny, Outcome::Error];
        let decisions = [OracleDecision::Allow, OracleDecision::Deny];
        let mut seed: u64 = 0x0bad_cafe_1357_2468;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut changed = 0;
        for _ in 0..600 {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for i in 0..next(12) {
                let id = format!("p{}:s{i:02}", next(3));
                let e = [Expectation::Allow, Expectation::Deny][next(2)];
                let mut ra = row(&id, e, outcomes[next(3)], decisions[next(2)]);
                let mut rb = row(&id, e, outcomes[next(3)], decisions[next(2)]);
                for r in [&mut ra, &mut rb] {
                    if let Some(o) = &mut r.oracle {
                        o.reason = ["r", "rule 2", "under r"][next(3)].into();
                    }
                }
                match next(4) {
                    0 => a.push(ra),
                    1 => b.push(rb),
                    _ => {
                        a.push(ra);
                        b.push(rb);
                    }
                }
            }
            a.sort_by(|x, y| x.scenario_id.cmp(&y.scenario_id));
            b.sort_by(|x, y| x.scenario_id.cmp(&y.scenario_id));
            a.dedup_by(|x, y| x.scenario_id == y.scenario_id);
            b.dedup_by(|x, y| x.scenario_id == y.scenario_id);
            let (va, vb) = (view(a.clone()), view(b.clone()));
            let whole = diff(&va, &vb, "a", "b");
            let (na, nb) = (Normalizer::of(&va), Normalizer::of(&vb));
            let mut out = Vec::new();
            let (mut ia, mut ib) = (a.into_iter(), b.into_iter());
            let sorted = merge_rows(
                &mut || Ok(ia.next()),
                &mut || Ok(ib.next()),
                &na,
                &nb,
                &mut out,
            )
            .unwrap();
            assert!(sorted);
            let merged = finish(&va, &vb, "a", "b", out, None);
            assert_eq!(
                serde_json::to_value(&merged).unwrap(),
                serde_json::to_value(&whole).unwrap()
            );
            changed += usize::from(!whole.changes.is_empty());
        }
        assert!(changed > 100, "{changed}");
        // Out of order, or repeated: refused.
        for ids in [["p:b", "p:a"], ["p:a", "p:a"]] {
            let rows: Vec<NormalizedRow> = ids
                .iter()
                .map(|id| {
                    row(
                        id,
                        Expectation::Allow,
                        Outcome::Allow,
                        OracleDecision::Allow,
                    )
                })
                .collect();
            let v = view(Vec::new());
            let (n1, n2) = (Normalizer::of(&v), Normalizer::of(&v));
            let mut it = rows.into_iter();
            let ok = merge_rows(
                &mut || Ok(it.next()),
                &mut || Ok(None),
                &n1,
                &n2,
                &mut Vec::new(),
            )
            .unwrap();
            assert!(!ok, "{ids:?}");
        }
    }

    /// Generated pairs of runs over the same scenarios: a run never differs from itself,
    /// and the diff is critical exactly when some scenario expected to be denied went from
    /// not allowed to allowed in the scenario lane, breaking when (short of that) one
    /// expected to be allowed went from allow to deny, an apply failure appeared, or the
    /// oracle stopped agreeing with the kernel.
    #[test]
    #[allow(clippy::cast_possible_truncation)]
    fn severities_follow_the_decision_changes_of_generated_runs() {
        let outcomes = [
            Outcome::Allow,
            Outcome::Deny,
            Outcome::Error,
            Outcome::ApplyFailed,
        ];
        let decisions = [OracleDecision::Allow, OracleDecision::Deny];
        let mut seed: u64 = 0xdead_beef_1234_5678;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..400 {
            let n = 1 + next(5);
            let mut a = Vec::new();
            let mut b = Vec::new();
            for i in 0..n {
                let id = format!("p:s{i}");
                let e = if next(2) == 0 {
                    Expectation::Allow
                } else {
                    Expectation::Deny
                };
                a.push(row(&id, e, outcomes[next(4)], decisions[next(2)]));
                b.push(row(&id, e, outcomes[next(4)], decisions[next(2)]));
            }
            let (va, vb) = (view(a.clone()), view(b.clone()));
            assert!(diff(&va, &va, "a", "a").changes.is_empty());
            let d = diff(&va, &vb, "a", "b");
            let out = |r: &NormalizedRow| r.scenario.as_ref().map(|c| c.outcome);
            let critical = a.iter().zip(&b).any(|(x, y)| {
                y.expected == Expectation::Deny
                    && out(y) == Some(Outcome::Allow)
                    && out(x) != Some(Outcome::Allow)
            });
            let breaking = a.iter().zip(&b).any(|(x, y)| {
                (out(x) == Some(Outcome::Allow)
                    && out(y) == Some(Outcome::Deny)
                    && y.expected != Expectation::Deny)
                    || (out(x) != out(y) && out(y) == Some(Outcome::ApplyFailed))
                    || (agrees(x) == Some(true) && agrees(y) == Some(false))
            });
            let want = if critical {
                Some(Severity::Critical)
            } else if breaking {
                Some(Severity::Breaking)
            } else if d.changes.is_empty() {
                None
            } else {
                Some(Severity::Changed)
            };
            assert_eq!(d.highest, want, "{a:#?}\n{b:#?}\n{:#?}", d.changes);
            if critical {
                assert!(d.reaches(Severity::Breaking));
            }
        }
    }

    #[test]
    fn run_specific_values_are_normalised_as_whole_tokens() {
        assert_eq!(
            replace_token("port 46145 and 146145", "46145", "${P}"),
            "port ${P} and 146145"
        );
        assert_eq!(
            replace_token(
                "/dev/shm/nexusmon-x/a/b",
                "/dev/shm/nexusmon-x",
                "<scratch>"
            ),
            "<scratch>/a/b"
        );
    }
}
