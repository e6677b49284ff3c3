//! Promotion packets, promotability, mappings, op summaries (`DESIGN.md` §7).
