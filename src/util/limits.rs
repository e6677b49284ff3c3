//! The cost budget of user input: every limit a document a user writes (plan, registry,
//! template) must fit, in one place, so that any input — including a hostile one such as a
//! YAML "billion laughs" alias bomb or a 100,000-deep nesting — is read, parsed and linted
//! in bounded time and memory (the target is under 1 s and 64 MiB for `plan-lint`; see
//! `benches/input-bombs.sh`).
//!
//! Who enforces what:
//! - [`MAX_DOCUMENT_BYTES`]: [`crate::util::fsx::read_document`] (it never reads more than
//!   one byte past the limit, so `/dev/zero` or a growing file cannot exhaust memory);
//! - [`MAX_DEPTH`], [`MAX_NODES`], [`MAX_STRING_BYTES`], [`MAX_EXPANDED_BYTES`]: the JSON and
//!   YAML parsers of [`crate::source`], through [`Budget`]; YAML aliases are charged the full
//!   size of the value they copy *before* it is copied, so an alias bomb stops at the first
//!   alias that would exceed the budget, naming its line;
//! - [`MAX_PLAN_BYTES`], [`MAX_PLAN_ENTRIES`]: the same readers for a plan file
//!   ([`crate::source::Document::load_plan`], lint's plan input, `list-plans`, `missions`,
//!   the cockpit), through [`Budget::plan`]: a plan's scenario matrix may be far larger
//!   than the values budget, every other part of it may not;
//! - [`MAX_FINDINGS_PER_FILE`]: lint, so the findings (and their rendering) of one file stay
//!   bounded however many problems a large file has;
//! - [`MAX_EXTENDS_DEPTH`], [`MAX_INHERITED_RULES`]: profile resolution (`extends`), so a
//!   chain or a fan-in of profiles costs no more than the document that declares it.
//! - templates: a template file is a user document like any other (read and parsed within
//!   the limits above, so a YAML alias bomb in `templates/*/template.yaml` is refused by
//!   `list-templates`, `plan-build` and `list-plans` alike); its *expansion* (`$for`, `$if`,
//!   `$merge`) spends the same [`Budget`] for each document it generates
//!   (`template::expand::eval_body`: every value visited and made and every loop iteration,
//!   charged before it is built), so a loop bomb stops at the first value over
//!   [`MAX_NODES`] whatever the nesting; and one build may generate at most
//!   [`MAX_TEMPLATE_SCENARIOS`] scenarios (`template::render`; `plan-build --max-scenarios`
//!   raises it);
//! - [`MAX_PACKET_BYTES`]: every reader of a promotion packet (`promote::verify::read_packet`:
//!   `promote`, `evolve`, `summarize-ops --packet`, `report --packet`, `diff`), from the file's
//!   size before anything is parsed;
//! - [`MAX_RECORD_BYTES`]: the reader of approval records (`govern::sign`), from the
//!   file's size before anything is read;
//! - [`MAX_MAPPING_BYTES`]: the readers of the mapping files (`promote::mapping`), from the
//!   file's size before anything is parsed (`promote --max-mapping-bytes` raises it).
//!
//! A value over a limit is refused with lint code NX014 (`input-limit`) naming the file,
//! line and column and the limit; `run` and the other commands refuse it as an input error
//! (exit 2). The limits are generous for real files: the largest shipped registry or
//! template has under 1,000 values and 16 KiB.

/// Largest user document read, in bytes (4 MiB).
pub const MAX_DOCUMENT_BYTES: u64 = 4 * 1024 * 1024;

/// Largest plan file read, in bytes (64 MiB): a plan's scenario matrix grows with profiles ×
/// probes (100,000 expectations are about 2 MB of JSON), within [`MAX_PLAN_ENTRIES`].
pub const MAX_PLAN_BYTES: u64 = 64 * 1024 * 1024;

/// Most scenario expectations one plan may write (`scenarios: {profile: {probe:
/// expectation}}`): each member of a profile's map whose value is a plain string, charged
/// apart from [`MAX_NODES`] (key and value as one entry; the rest of the plan still fits
/// [`MAX_NODES`]). Only literal text counts here: a YAML alias is charged its full copy to
/// [`MAX_NODES`] and [`MAX_EXPANDED_BYTES`], matrix entries included, so this budget
/// admits no amplification, and the file size bounds it ([`MAX_PLAN_BYTES`]).
pub const MAX_PLAN_ENTRIES: usize = 1_000_000;

/// Deepest nesting of lists and mappings (every nesting level costs a stack frame in the
/// parsers and the typed readers).
pub const MAX_DEPTH: usize = 128;

/// Most values one document may hold — scalars, lists, mappings and mapping keys — counting
/// each YAML alias as the full copy of its anchor's value it expands to.
pub const MAX_NODES: usize = 50_000;

/// Longest single string (a key or a value), in bytes.
pub const MAX_STRING_BYTES: usize = 64 * 1024;

/// Most string bytes (keys and values) one document may hold after YAML aliases expand.
pub const MAX_EXPANDED_BYTES: usize = 8 * 1024 * 1024;

/// Most findings lint keeps per file; the rest are counted in one summary finding.
pub const MAX_FINDINGS_PER_FILE: usize = 1_000;

/// Longest chain of profiles extending one another (`extends`), the profile itself
/// included. Enforced by [`crate::load::extends`]; keeps resolution's recursion shallow.
pub const MAX_EXTENDS_DEPTH: usize = 16;

/// Most allow rules that resolving `extends` may copy from bases into the profiles one
/// command resolves (a registry for lint, a plan's profiles for `run`). Like a YAML alias,
/// an inherited rule is charged as the copy it makes, so a big base extended by thousands
/// of profiles cannot multiply a 4 MiB file into gigabytes. Enforced by the callers of
/// [`crate::load::extends::resolve`] (`load_plan`, registry lint).
pub const MAX_INHERITED_RULES: usize = MAX_NODES;
/// Most scenarios (profile × probe pairs, controls included) one `plan-build` may generate:
/// a template's loops multiply, and a plan far larger than anyone reviews is more likely a
/// mistake than a wish. `plan-build --max-scenarios N` raises it (the generated files must
/// still fit [`MAX_NODES`] each).
pub const MAX_TEMPLATE_SCENARIOS: usize = 1_000;

/// Largest promotion packet read, in bytes (1 MiB). A packet holds a fixed set of pointers,
/// a summary and the governance record (a few KiB, more with many approvals); its size is
/// checked before anything is read or parsed.
pub const MAX_PACKET_BYTES: u64 = 1024 * 1024;

/// Largest mapping file read (`runtime_links.json`, `runtime_signatures.json`,
/// `op_runtime_summary.json`), in bytes (32 MiB). Mappings grow with every packet promoted
/// into them; `promote --max-mapping-bytes N` raises the limit for a directory that
/// legitimately outgrew it.
pub const MAX_MAPPING_BYTES: u64 = 32 * 1024 * 1024;

/// Largest approval record read (`approvals/*.json`, clearances), in bytes (1 MiB). A record
/// is well under a KiB; its size is checked before it is read, so a huge file dropped among
/// the approvals is refused (`record-unreadable`, naming the limit) instead of filling memory.
pub const MAX_RECORD_BYTES: u64 = 1024 * 1024;

/// Largest state file read (`omens.json`, `evolution.json`, recorded plan inputs, a mapping
/// found by the anchors, `LATEST`, `run_status.json`, `audit_head.json`), in bytes (64 MiB):
/// each is written by nexusmon and far smaller; a larger one was put there by someone else.
pub const MAX_STATE_BYTES: u64 = 64 * 1024 * 1024;

/// Largest key, token or trust file read, in bytes (1 MiB). An OpenSSH key is a few KiB, a
/// trust file a line per signer.
pub const MAX_KEY_BYTES: u64 = 1024 * 1024;

/// Largest bundle member read into memory, in bytes (1 GiB). Members are hashed as streams
/// whatever their size; this bounds the ones parsed (result files of a very large run are
/// hundreds of MB).
pub const MAX_MEMBER_BYTES: u64 = 1024 * 1024 * 1024;

/// Longest audit log line read, in bytes (1 MiB). An entry is well under a KiB; the log is
/// read a line at a time, and a longer line (someone else wrote it) is read no further than
/// this: `audit verify` reports it as a line that does not parse, and an append refuses to
/// chain onto it.
pub const MAX_AUDIT_LINE_BYTES: usize = 1024 * 1024;

/// A limit a document exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// More than [`MAX_PLAN_ENTRIES`] scenario expectations in a plan.
    Entries,
    /// Nesting deeper than [`MAX_DEPTH`].
    Depth,
    /// More than [`MAX_NODES`] values.
    Nodes,
    /// A string longer than [`MAX_STRING_BYTES`].
    String,
    /// More than [`MAX_EXPANDED_BYTES`] of strings.
    ExpandedBytes,
}

impl Exceeded {
    /// The limit alone, e.g. `more than 50000 values`.
    pub fn limit(self) -> String {
        match self {
            Exceeded::Entries => format!("more than {MAX_PLAN_ENTRIES} scenario expectations"),
            Exceeded::Depth => format!("nesting deeper than {MAX_DEPTH} levels"),
            Exceeded::Nodes => format!("more than {MAX_NODES} values"),
            Exceeded::String => format!("a string longer than {MAX_STRING_BYTES} bytes"),
            Exceeded::ExpandedBytes => format!("more than {MAX_EXPANDED_BYTES} bytes of strings"),
        }
    }

    /// What was exceeded, for an error message about a parsed document.
    pub fn describe(self) -> String {
        match self {
            Exceeded::Entries => format!(
                "more than {MAX_PLAN_ENTRIES} scenario expectations (profile x probe entries of `scenarios`)"
            ),
            Exceeded::Depth => format!("nesting deeper than {MAX_DEPTH} levels"),
            Exceeded::Nodes => format!(
                "more than {MAX_NODES} values (YAML aliases count as the copies they expand to)"
            ),
            Exceeded::String => format!("a string longer than {MAX_STRING_BYTES} bytes"),
            Exceeded::ExpandedBytes => format!(
                "more than {MAX_EXPANDED_BYTES} bytes of strings (YAML aliases count as the copies they expand to)"
            ),
        }
    }
}

/// What a parser has spent of the budget so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    /// Values built (including alias copies).
    pub nodes: usize,
    /// String bytes built (including alias copies).
    pub bytes: usize,
    /// Scenario expectations written literally in a plan's matrix ([`Budget::charge_entry`]).
    pub entries: usize,
    /// String bytes of those entries (bounded by the file's size, not by
    /// [`MAX_EXPANDED_BYTES`]).
    pub entry_bytes: usize,
    /// How many entries this document may hold: 0 (every document but a plan: matrix
    /// entries are then plain values), or [`MAX_PLAN_ENTRIES`] ([`Budget::plan`]).
    pub max_entries: usize,
}

/// The size of a finished value, to charge again when a YAML alias copies it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// Values in it (itself included).
    pub nodes: usize,
    /// String bytes in it.
    pub bytes: usize,
    /// Its height (1 for a scalar).
    pub height: usize,
}

impl Budget {
    /// The budget of a plan file: the default one, plus [`MAX_PLAN_ENTRIES`] scenario
    /// expectations.
    pub fn plan() -> Self {
        Self {
            max_entries: MAX_PLAN_ENTRIES,
            ..Self::default()
        }
    }

    /// True if this budget admits scenario-matrix entries (a plan's).
    pub fn has_entries(&self) -> bool {
        self.max_entries > 0
    }

    /// Charge one literal scenario expectation: a key and a string value of `key_len` and
    /// `value_len` bytes, written in the file (never an alias copy).
    pub fn charge_entry(&mut self, key_len: usize, value_len: usize) -> Result<(), Exceeded> {
        if key_len > MAX_STRING_BYTES || value_len > MAX_STRING_BYTES {
            return Err(Exceeded::String);
        }
        if self.entries >= self.max_entries {
            return Err(Exceeded::Entries);
        }
        self.entries += 1;
        self.entry_bytes = self.entry_bytes.saturating_add(key_len + value_len);
        Ok(())
    }

    /// Charge one value of `string_len` string bytes (0 for non-strings).
    pub fn charge(&mut self, string_len: usize) -> Result<(), Exceeded> {
        if string_len > MAX_STRING_BYTES {
            return Err(Exceeded::String);
        }
        self.charge_cost(Cost {
            nodes: 1,
            bytes: string_len,
            height: 1,
        })
    }

    /// Charge a copy of a value of cost `c` (a YAML alias), before it is copied.
    pub fn charge_cost(&mut self, c: Cost) -> Result<(), Exceeded> {
        let nodes = self.nodes.saturating_add(c.nodes);
        let bytes = self.bytes.saturating_add(c.bytes);
        if nodes > MAX_NODES {
            return Err(Exceeded::Nodes);
        }
        if bytes > MAX_EXPANDED_BYTES {
            return Err(Exceeded::ExpandedBytes);
        }
        self.nodes = nodes;
        self.bytes = bytes;
        Ok(())
    }

    /// The cost spent since `before` (a snapshot taken when a value started). Matrix
    /// entries count as the two values and the bytes they are, so a copy of them (a YAML
    /// alias) is charged to [`MAX_NODES`] and [`MAX_EXPANDED_BYTES`] like any other value.
    pub fn since(&self, before: Budget, height: usize) -> Cost {
        let entries = self.entries - before.entries;
        Cost {
            nodes: (self.nodes - before.nodes).saturating_add(entries.saturating_mul(2)),
            bytes: (self.bytes - before.bytes)
                .saturating_add(self.entry_bytes - before.entry_bytes),
            height,
        }
    }
}

/// Check a nesting depth (1 for a top-level collection).
pub fn check_depth(depth: usize) -> Result<(), Exceeded> {
    if depth > MAX_DEPTH {
        Err(Exceeded::Depth)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refuses_before_spending() {
        let mut b = Budget::default();
        b.charge(10).unwrap();
        assert_eq!(b.charge(MAX_STRING_BYTES + 1), Err(Exceeded::String));
        let big = Cost {
            nodes: MAX_NODES,
            bytes: 0,
            height: 1,
        };
        assert_eq!(b.charge_cost(big), Err(Exceeded::Nodes));
        assert_eq!(b.nodes, 1, "a refused charge spends nothing");
        let bytes = Cost {
            nodes: 1,
            bytes: MAX_EXPANDED_BYTES,
            height: 1,
        };
        assert_eq!(b.charge_cost(bytes), Err(Exceeded::ExpandedBytes));
        assert!(check_depth(MAX_DEPTH).is_ok());
        assert_eq!(check_depth(MAX_DEPTH + 1), Err(Exceeded::Depth));
        assert!(Exceeded::Nodes.describe().contains("50000"));
    }
}
