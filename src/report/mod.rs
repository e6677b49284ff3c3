//! Reports derived from a run's results, behind one small trait ([`Report`]), one file per
//! format: [`markdown`] (`summary.md` in the bundle) and [`table`] (the scenario × lane table
//! on the terminal). JUnit, SARIF and HTML views belong here too, as further formats.

pub mod markdown;
pub mod table;

use crate::Result;
use crate::model::results::{
    MismatchPacket, NormalizedRow, OracleVerdict, PreflightRecord, Summary,
};

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
