//! Wall-clock time stamps (RFC 3339, UTC) for manifests, audit lines and approvals.

/// Now, as RFC 3339 UTC with second precision, e.g. `2026-11-24T15:08:11Z`.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string())
}

/// Parse an RFC 3339 time stamp.
pub fn parse_rfc3339(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}
