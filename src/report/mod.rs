//! Reports derived from results and findings: summary.md, JSON, JUnit, SARIF, GitHub annotations.
