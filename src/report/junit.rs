//! JUnit XML for CI test reporters (`run --junit FILE`, `report --junit FILE`), written
//! with nextest's `quick-junit` crate.
//!
//! One `testsuite` per profile, one `testcase` per scenario named `profile:probe` (unique
//! and stable, so reporters that de-duplicate by name keep every case; `classname` is the
//! profile). A mismatch is a `failure` whose message names the kinds and the sentence,
//! whose type is the first kind and whose text gives the expectation, each lane and the
//! oracle's deciding rule; an apply failure, error or timeout in the scenario lane is an
//! `error`; a task skipped because a dependency failed is `skipped`. A scenario that passed
//! only on retry is a success with one `flakyFailure` per failed attempt, and one that
//! failed every attempt carries `rerunFailure`s (nextest's convention, which the GitLab,
//! GitHub and Jenkins reporters read). `system-out` points at the captured logs (paths, not
//! contents). Every text is capped ([`MAX_TEXT`]), so the file's size is bounded by the
//! number of scenarios.
//!
//! Written a testsuite at a time: `quick-junit` serializes a whole [`JunitReport`] (its
//! `testsuites` element carries the totals, so it needs every suite first), so one walk of
//! the rows counts each suite through `quick-junit`'s own `add_test_case` (the cases are
//! dropped at once), the header is cut from the report of those empty suites, and each
//! suite is then filled, serialized as a one-suite report and cut out of it (the suite's
//! lines are indented alike in both documents, so the bytes are those of the whole
//! report). Memory: the cases of one profile (one suite) at a time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use quick_junit::{
    NonSuccessKind, Report as JunitReport, TestCase, TestCaseStatus, TestRerun, TestSuite,
};

use super::{Report, RowItem, RunReport, Sink};
use crate::model::results::{Lane, NormalizedRow, Outcome};
use crate::model::view::LaneDetail;
use crate::{Error, Result};

/// Longest message or description kept, in bytes (longer texts end with `…`).
pub const MAX_TEXT: usize = 2048;

/// The JUnit XML report.
#[derive(Debug, Clone, Copy, Default)]
pub struct Junit;

fn cap(s: &str) -> String {
    if s.len() <= MAX_TEXT {
        return s.to_string();
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn lane_text(r: &NormalizedRow) -> String {
    let t = super::table::cell_text;
    format!(
        "expected {}; baseline {}; scenario {}; oracle {}; attribution {}",
        r.expected.as_str(),
        t(r.baseline.as_ref()),
        t(r.scenario.as_ref()),
        r.oracle.as_ref().map_or("-", |o| o.decision.as_str()),
        r.attribution.map_or("-", |a| a.as_str())
    )
}

fn reruns(d: Option<&LaneDetail>, passed_last: bool) -> Vec<TestRerun> {
    let Some(d) = d else { return Vec::new() };
    let n = d.attempts.len();
    d.attempts
        .iter()
        .enumerate()
        .filter(|(i, _)| !(passed_last && i + 1 == n))
        .map(|(_, a)| {
            let mut rr = TestRerun::new(NonSuccessKind::Failure);
            rr.set_message(cap(&format!(
                "attempt {}: {}{}{}",
                a.attempt,
                a.outcome.as_str(),
                a.errno_name
                    .as_deref()
                    .map_or(String::new(), |e| format!(" ({e})")),
                if a.detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", a.detail)
                }
            )));
            rr.set_type(a.outcome.as_str());
            rr.set_time(Duration::from_micros(a.wall_us));
            rr
        })
        .collect()
}

fn case(r: &RunReport<'_>, x: &RowItem<'_>) -> TestCase {
    let (row, packets) = (x.row, x.packets);
    let details = x.details;
    let scenario = details.and_then(|d| d.get(&Lane::Scenario));
    let outcome = row.scenario.as_ref().map(|c| c.outcome);
    let status = if row.mismatches.is_empty() {
        if matches!(outcome, Some(Outcome::Skipped)) {
            let mut s = TestCaseStatus::skipped();
            s.set_message(match &row.skipped_because {
                Some(t) => format!("not run: task `{t}` failed"),
                None => "not run".to_string(),
            });
            s
        } else {
            TestCaseStatus::Success {
                flaky_runs: if row.flaky {
                    reruns(scenario, true)
                } else {
                    Vec::new()
                },
            }
        }
    } else {
        let kinds: Vec<&str> = row.mismatches.iter().map(|k| k.as_str()).collect();
        let error = matches!(
            outcome,
            Some(Outcome::Error | Outcome::Timeout | Outcome::ApplyFailed)
        );
        let mut s = TestCaseStatus::non_success(if error {
            NonSuccessKind::Error
        } else {
            NonSuccessKind::Failure
        });
        let sentences: Vec<&str> = packets.iter().map(|p| p.message.as_str()).collect();
        s.set_message(cap(&format!(
            "{}: {}",
            kinds.join(", "),
            sentences.join(" ")
        )));
        s.set_type(kinds.first().copied().unwrap_or("mismatch"));
        let mut desc = lane_text(row);
        for p in packets {
            if let Some(reason) = &p.oracle_reason {
                let _ = write!(desc, "\noracle's deciding rule: {reason}");
                break;
            }
        }
        s.set_description(cap(&desc));
        let runs = reruns(scenario, false);
        if runs.len() > 1 {
            let n = runs.len() - 1;
            s.add_reruns(runs.into_iter().take(n));
        }
        s
    };
    let mut tc = TestCase::new(row.scenario_id.as_str(), status);
    tc.set_classname(row.profile_id.as_str());
    if let Some(d) = scenario {
        tc.set_time(Duration::from_micros(d.wall_us));
    }
    let mut logs: Vec<String> = Vec::new();
    if let Some(d) = details {
        for (lane, l) in d {
            for p in &l.logs {
                logs.push(format!("{} log: {}{p}", lane.as_str(), r.links));
            }
        }
    }
    if !logs.is_empty() {
        tc.set_system_out(cap(&logs.join("\n")));
    }
    tc
}

impl Report for Junit {
    fn name(&self) -> &'static str {
        "junit"
    }

    fn write(&self, r: &RunReport<'_>, out: &mut dyn Sink) -> Result<()> {
        let new_report = || {
            let mut report = JunitReport::new(format!(
                "nexusmon {} {}",
                r.summary.plan_id, r.summary.run_id
            ));
            report.set_time(Duration::from_micros(r.summary.wall_us));
            report
        };
        // Walk 1: each suite's counts (its cases dropped) and where its rows are.
        let mut suites: BTreeMap<String, (TestSuite, Span)> = BTreeMap::new();
        let mut at_row = 0usize;
        r.rows.rows(&mut |x| {
            let p = x.row.profile_id.as_str();
            if !suites.contains_key(p) {
                let span = Span {
                    rows: 0,
                    first: at_row,
                    last: at_row,
                };
                suites.insert(p.to_string(), (TestSuite::new(p), span));
            }
            if let Some((suite, span)) = suites.get_mut(p) {
                suite.add_test_case(case(r, &x));
                suite.test_cases.clear();
                span.rows += 1;
                span.last = at_row;
            }
            at_row += 1;
            Ok(())
        })?;
        let mut report = new_report();
        report.add_test_suites(suites.values().map(|(s, _)| s.clone()));
        let whole = serialize(&report)?;
        let Some(cut) = whole.find(SUITE_START) else {
            // No suite: the report is its header and footer.
            return out.put(&whole);
        };
        out.put(&whole[..cut])?;
        // Suites in profile order; a walk writes a run of them whose rows come in that
        // order in the files (one walk when profile order and scenario order agree).
        let mut walks: Vec<Vec<(&str, Span)>> = Vec::new();
        for (p, (_, span)) in &suites {
            match walks.last_mut() {
                Some(w) if w.last().is_some_and(|(_, prev)| prev.last < span.first) => {
                    w.push((p.as_str(), *span));
                }
                _ => walks.push(vec![(p.as_str(), *span)]),
            }
        }
        for walk in &walks {
            let at: BTreeMap<&str, usize> =
                walk.iter().enumerate().map(|(i, (p, _))| (*p, i)).collect();
            let mut current: Option<(usize, TestSuite)> = None;
            r.rows.rows(&mut |x| {
                let Some(&slot) = at.get(x.row.profile_id.as_str()) else {
                    return Ok(());
                };
                let (p, span) = walk[slot];
                let suite = match &mut current {
                    Some((i, s)) if *i == slot => s,
                    _ => &mut current.insert((slot, TestSuite::new(p))).1,
                };
                suite.add_test_case(case(r, &x));
                if suite.test_cases.len() == span.rows
                    && let Some((_, s)) = current.take()
                {
                    let mut one = new_report();
                    one.add_test_suite(s);
                    let text = serialize(&one)?;
                    out.put(suite_of(&text))?;
                }
                Ok(())
            })?;
        }
        out.put(SUITES_END)
    }
}

/// Where one profile's rows are, as the first walk found them.
#[derive(Debug, Clone, Copy)]
struct Span {
    rows: usize,
    first: usize,
    last: usize,
}

/// Where a suite begins in a serialized report (a newline and one level of indent).
const SUITE_START: &str = "\n    <testsuite";
/// How a serialized report ends after its last suite.
const SUITES_END: &str = "\n</testsuites>\n";

fn serialize(report: &JunitReport) -> Result<String> {
    report
        .to_string()
        .map_err(|e| Error::runner("cannot write JUnit XML").with_source(e))
}

/// The suite of a one-suite report: from its first suite's start to the end of the last.
fn suite_of(text: &str) -> &str {
    let from = text.find(SUITE_START).unwrap_or(0);
    let to = text.rfind(SUITES_END).unwrap_or(text.len());
    &text[from..to.max(from)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::results::MismatchPacket;
    use crate::report::testgen;

    /// JUnit as it was written from a whole view (every suite in one `quick-junit`
    /// report): the reference.
    fn whole_view(r: &RunReport<'_>, g: &testgen::GenRun) -> String {
        let oracle: BTreeMap<&str, &crate::model::results::OracleVerdict> = g
            .oracle
            .iter()
            .map(|v| (v.scenario_id.as_str(), v))
            .collect();
        let mut by_scenario: BTreeMap<&str, Vec<&MismatchPacket>> = BTreeMap::new();
        for p in &g.packets {
            by_scenario
                .entry(p.scenario_id.as_str())
                .or_default()
                .push(p);
        }
        let mut suites: BTreeMap<&str, TestSuite> = BTreeMap::new();
        for row in &g.rows {
            let suite = suites
                .entry(row.profile_id.as_str())
                .or_insert_with(|| TestSuite::new(row.profile_id.as_str()));
            let packets = by_scenario
                .get(row.scenario_id.as_str())
                .cloned()
                .unwrap_or_default();
            let x = RowItem {
                row,
                oracle: oracle.get(row.scenario_id.as_str()).copied(),
                details: g.details.get(&row.scenario_id),
                packets: &packets,
            };
            suite.add_test_case(case(r, &x));
        }
        let mut report = JunitReport::new(format!(
            "nexusmon {} {}",
            r.summary.plan_id, r.summary.run_id
        ));
        report.set_time(Duration::from_micros(r.summary.wall_us));
        report.add_test_suites(suites.into_values());
        report.to_string().unwrap()
    }

    /// Generated runs: the report written a suite at a time is byte for byte the one
    /// `quick-junit` writes from every suite at once (no rows at all included).
    #[test]
    fn junit_written_a_suite_at_a_time_is_the_whole_reports() {
        for seed in 0..24u64 {
            let n = match seed % 8 {
                0 => 600,
                1 => 0,
                _ => 50,
            };
            let g = testgen::run(seed, n, seed % 4 == 0);
            let rows = crate::report::Slices {
                rows: &g.rows,
                mismatches: &g.packets,
                oracle: &g.oracle,
                details: Some(&g.details),
            };
            let r = RunReport {
                summary: &g.summary,
                rows: &rows,
                preflight: &[],
                governance: None,
                view: None,
                links: "../out/run-1/",
            };
            let got = Junit.render(&r).unwrap();
            let want = whole_view(&r, &g);
            assert!(got == want, "seed {seed}:\n{got}\n---\n{want}");
        }
    }
}
