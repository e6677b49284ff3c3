//! Reports derived from a run's results, behind one small trait ([`Report`]), one file per
//! format: [`markdown`] (`summary.md` in the bundle, `report --format markdown`, the GitHub
//! step summary), [`table`] (the scenario × lane table on the terminal), [`html`] (the
//! self-contained review page of `report`), [`junit`] (JUnit XML for CI test reporters) and
//! [`github`] (workflow-command annotations). [`diff`] renders `diff A B`. Every renderer
//! writes model values to a [`Sink`] a piece at a time, walking the per-scenario data of
//! a [`RowSource`] once per part (a part in another order than the files', such as
//! mismatches first or groups per profile, is another walk with a filter), so a report of
//! a bundle holds one row at a time; callers do the I/O ([`Report::render`] collects the
//! pieces into a string).

pub mod diff;
pub mod github;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod table;
#[cfg(test)]
pub(crate) mod testgen;

use std::collections::BTreeMap;

use crate::Result;
use crate::model::results::{
    MismatchPacket, NormalizedRow, OracleVerdict, PreflightRecord, Summary,
};
use crate::model::view::{GovernanceView, RunView, ScenarioDetail};

/// One scenario as a report shows it: its row, the oracle's verdict and its executing
/// lanes' details (when the report is made from a bundle).
#[derive(Debug, Clone, Copy)]
pub struct RowItem<'a> {
    /// The row (`runtime_events.normalized.jsonl`).
    pub row: &'a NormalizedRow,
    /// The oracle's verdict for the scenario (for the cited rule).
    pub oracle: Option<&'a OracleVerdict>,
    /// The executing lanes (timings, attempts, log paths).
    pub details: Option<&'a ScenarioDetail>,
    /// The scenario's mismatch packets, in order.
    pub packets: &'a [&'a MismatchPacket],
}

/// Where a report's per-scenario data comes from: walked once per pass, in the files'
/// order (scenario id), so a renderer keeps only what one row needs, and a section in
/// another order (mismatches first, grouped by profile) is made by walking again with a
/// filter. A bundle's source (`promote::view::BundleRows`) reads the sealed line files
/// again on every walk, re-verified as they are read; [`Slices`] walks rows in memory.
pub trait RowSource {
    /// Hand every row, in order, to `each`.
    fn rows(&self, each: &mut dyn FnMut(RowItem<'_>) -> Result<()>) -> Result<()>;
    /// Hand every mismatch packet, in order, to `each`.
    fn mismatches(&self, each: &mut dyn FnMut(&MismatchPacket) -> Result<()>) -> Result<()>;
}

/// Rows, packets and (optionally) oracle verdicts and lane details held in memory: what
/// a run writes into its bundle (`summary.md`) and what the cockpit keeps per run.
#[derive(Debug, Clone, Copy)]
pub struct Slices<'a> {
    /// The rows.
    pub rows: &'a [NormalizedRow],
    /// The mismatch packets.
    pub mismatches: &'a [MismatchPacket],
    /// Oracle verdicts (for cited rules).
    pub oracle: &'a [OracleVerdict],
    /// Lane details by scenario id.
    pub details: Option<&'a BTreeMap<String, ScenarioDetail>>,
}

impl RowSource for Slices<'_> {
    fn rows(&self, each: &mut dyn FnMut(RowItem<'_>) -> Result<()>) -> Result<()> {
        let oracle: BTreeMap<&str, &OracleVerdict> = self
            .oracle
            .iter()
            .map(|v| (v.scenario_id.as_str(), v))
            .collect();
        let mut packets: BTreeMap<&str, Vec<&MismatchPacket>> = BTreeMap::new();
        for p in self.mismatches {
            packets.entry(p.scenario_id.as_str()).or_default().push(p);
        }
        for row in self.rows {
            each(RowItem {
                row,
                oracle: oracle.get(row.scenario_id.as_str()).copied(),
                details: self.details.and_then(|d| d.get(&row.scenario_id)),
                packets: packets
                    .get(row.scenario_id.as_str())
                    .map_or(&[], Vec::as_slice),
            })?;
        }
        Ok(())
    }

    fn mismatches(&self, each: &mut dyn FnMut(&MismatchPacket) -> Result<()>) -> Result<()> {
        self.mismatches.iter().try_for_each(each)
    }
}

impl RowSource for RunView {
    fn rows(&self, each: &mut dyn FnMut(RowItem<'_>) -> Result<()>) -> Result<()> {
        Slices {
            rows: &self.rows,
            mismatches: &self.mismatches,
            oracle: &self.oracle,
            details: Some(&self.details),
        }
        .rows(each)
    }

    fn mismatches(&self, each: &mut dyn FnMut(&MismatchPacket) -> Result<()>) -> Result<()> {
        self.mismatches.iter().try_for_each(each)
    }
}

/// Where a renderer writes: text in pieces (a section, a row), in order.
pub trait Sink {
    /// Append `s`.
    fn put(&mut self, s: &str) -> Result<()>;
}

impl Sink for String {
    fn put(&mut self, s: &str) -> Result<()> {
        self.push_str(s);
        Ok(())
    }
}

/// Everything a report may show about one run.
#[derive(Clone, Copy)]
pub struct RunReport<'a> {
    /// `summary.json`.
    pub summary: &'a Summary,
    /// The rows, mismatch packets, oracle verdicts and lane details, walked per pass.
    pub rows: &'a dyn RowSource,
    /// The apply preflight.
    pub preflight: &'a [PreflightRecord],
    /// The governance record, when the run was governed.
    pub governance: Option<&'a GovernanceView>,
    /// Everything else a review shows (verdict, derived packet), when the report is made
    /// from a sealed bundle rather than while writing it.
    pub view: Option<&'a RunView>,
    /// The bundle directory relative to where the report is written (`/`-separated, empty
    /// or ending in `/`): the prefix of every link to a bundle file.
    pub links: &'a str,
}

impl std::fmt::Debug for RunReport<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunReport")
            .field("run_id", &self.summary.run_id)
            .field("links", &self.links)
            .finish_non_exhaustive()
    }
}

impl<'a> RunReport<'a> {
    /// The report of `view` (its rows in memory), whose summary is `summary` (the view's
    /// own, or a placeholder when the bundle's could not be read), with links prefixed by
    /// `links`.
    pub fn of_view(
        view: &'a RunView,
        summary: &'a Summary,
        governance: Option<&'a GovernanceView>,
        links: &'a str,
    ) -> Self {
        Self {
            summary,
            rows: view,
            preflight: &view.preflight,
            governance,
            view: Some(view),
            links,
        }
    }
}

/// One output format.
pub trait Report {
    /// The format's name, e.g. `markdown`.
    fn name(&self) -> &'static str;
    /// Write the report to `out`, a piece at a time (memory: what one row needs, beside
    /// whatever the row source keeps).
    fn write(&self, r: &RunReport<'_>, out: &mut dyn Sink) -> Result<()>;
    /// Render the report into one string.
    fn render(&self, r: &RunReport<'_>) -> Result<String> {
        let mut s = String::new();
        self.write(r, &mut s)?;
        Ok(s)
    }
}

/// Render `report` as bytes.
pub fn render(report: &dyn Report, r: &RunReport<'_>) -> Result<Vec<u8>> {
    report.render(r).map(String::into_bytes)
}

/// A microsecond count as a short human duration (`1.234 s`, `56.7 ms`, `890 µs`).
pub fn human_us(us: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let f = us as f64;
    if us >= 1_000_000 {
        format!("{:.3} s", f / 1e6)
    } else if us >= 1_000 {
        format!("{:.1} ms", f / 1e3)
    } else {
        format!("{us} µs")
    }
}
