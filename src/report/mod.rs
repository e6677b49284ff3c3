//! Reports derived from a run's results, behind one small trait ([`Report`]), one file per
//! format: [`markdown`] (`summary.md` in the bundle, `report --format markdown`, the GitHub
//! step summary), [`table`] (the scenario × lane table on the terminal), [`html`] (the
//! self-contained review page of `report`), [`junit`] (JUnit XML for CI test reporters) and
//! [`github`] (workflow-command annotations). [`diff`] renders `diff A B`. Every renderer
//! is a pure function of model values into a string; callers do the I/O.

pub mod diff;
pub mod github;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod table;

use crate::Result;
use crate::model::results::{
    MismatchPacket, NormalizedRow, OracleVerdict, PreflightRecord, Summary,
};
use crate::model::view::{GovernanceView, RunView};

/// Everything a report may show about one run.
#[derive(Debug, Clone, Copy)]
pub struct RunReport<'a> {
    /// `summary.json`.
    pub summary: &'a Summary,
    /// One row per scenario.
    pub rows: &'a [NormalizedRow],
    /// Mismatch packets.
    pub mismatches: &'a [MismatchPacket],
    /// The apply preflight.
    pub preflight: &'a [PreflightRecord],
    /// Oracle verdicts (for cited rules).
    pub oracle: &'a [OracleVerdict],
    /// The governance record, when the run was governed.
    pub governance: Option<&'a GovernanceView>,
    /// Everything else a review shows (verdict, lane details, the derived packet), when the
    /// report is made from a sealed bundle rather than while writing it.
    pub view: Option<&'a RunView>,
    /// The bundle directory relative to where the report is written (`/`-separated, empty
    /// or ending in `/`): the prefix of every link to a bundle file.
    pub links: &'a str,
}

impl<'a> RunReport<'a> {
    /// The report of `view`, whose summary is `summary` (the view's own, or a placeholder
    /// when the bundle's could not be read), with links prefixed by `links`.
    pub fn of_view(
        view: &'a RunView,
        summary: &'a Summary,
        governance: Option<&'a GovernanceView>,
        links: &'a str,
    ) -> Self {
        Self {
            summary,
            rows: &view.rows,
            mismatches: &view.mismatches,
            preflight: &view.preflight,
            oracle: &view.oracle,
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
    /// Render the report.
    fn render(&self, r: &RunReport<'_>) -> Result<String>;
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
