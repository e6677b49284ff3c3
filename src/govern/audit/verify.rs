//! [`super::AuditLog::verify`]'s checks: one pass over the lines keeps what later lines
//! and the anchors are compared with, then names the first bad line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{Anchor, AuditKind, Problem, ProblemKind, VerifyReport, genesis_header, parse_entry};
use crate::govern::short_hex;
use crate::model::audit::{AUDIT_LOG_FORMAT, AuditEntry};
use crate::model::index::AuditHead;
use crate::util::digest::blake3_hex;

/// Facts about one verified line that later checks need.
#[derive(Debug, Clone)]
struct Prev {
    index: u64,
    seq: Option<u64>,
    digest: String,
}

/// A place where what was recorded about a line differs from the line: between line
/// `after` (0-based; `None` = before the first line) and the next line, or an anchor.
#[derive(Debug, Clone)]
struct Break {
    after: Option<u64>,
    /// The `seq` of line `after` and of the line after it (if known).
    seqs: (Option<u64>, Option<u64>),
    why: String,
}

/// The chain and anchor checks of one pass over the log, line by line.
#[derive(Default)]
pub(super) struct Verifier {
    prev: Option<Prev>,
    log_id: Option<String>,
    head: Option<AuditHead>,
    recovered: u64,
    /// Lines known bad on their own (unparseable): 0-based index → problem.
    definite: BTreeMap<u64, Problem>,
    /// Other problems (seq), by line.
    problems: Vec<Problem>,
    breaks: Vec<Break>,
    seen_anchor_seqs: BTreeSet<u64>,
    pub(super) notes: Vec<String>,
}

impl Verifier {
    pub(super) fn line(&mut self, index: u64, bytes: &[u8], anchors: &BTreeMap<u64, Vec<&Anchor>>) {
        let digest = blake3_hex(bytes);
        let parsed = parse_entry(bytes);
        let seq = parsed.as_ref().ok().map(|e| e.seq);
        match &parsed {
            Err(e) => {
                self.definite.insert(
                    index,
                    Problem {
                        line: index + 1,
                        seq: None,
                        kind: ProblemKind::Unparseable,
                        message: format!("line {} is not a valid audit entry: {e}", index + 1),
                    },
                );
                // Its bytes changed, so the next line's `prev` will not match: that break
                // is explained by this line.
            }
            Ok(entry) => {
                if index == 0 {
                    self.genesis(entry);
                } else if let Some(prev) = self.prev.clone() {
                    if entry.prev != prev.digest {
                        self.link_break(&prev, index, entry.seq);
                    }
                    if let Some(ps) = prev.seq {
                        self.check_seq(index, ps, entry.seq);
                    }
                }
                if entry.kind == AuditKind::Recovered.as_str() {
                    self.recovered += 1;
                }
                if let Some(list) = anchors.get(&entry.seq)
                    && self.seen_anchor_seqs.insert(entry.seq)
                {
                    for a in list {
                        if a.head.blake3 != digest {
                            self.breaks.push(Break {
                                after: Some(index),
                                seqs: (Some(entry.seq), None),
                                why: format!(
                                    "its digest differs from the head anchored in {} (seq {}, blake3 {})",
                                    a.source,
                                    a.head.seq,
                                    short_hex(&a.head.blake3)
                                ),
                            });
                        }
                    }
                }
                self.head = Some(AuditHead {
                    seq: entry.seq,
                    blake3: digest.clone(),
                });
            }
        }
        self.prev = Some(Prev { index, seq, digest });
    }

    fn genesis(&mut self, entry: &AuditEntry) {
        let log = entry.data.get("log").and_then(|v| v.as_str());
        let log_id = entry.data.get("log_id").and_then(|v| v.as_str());
        let problem = if entry.kind != AuditKind::Genesis.as_str() {
            Some(format!(
                "the first line must be the genesis line, found kind `{}`",
                entry.kind
            ))
        } else if entry.seq != 0 {
            Some(format!(
                "the genesis line must have seq 0, found {}",
                entry.seq
            ))
        } else if log != Some(AUDIT_LOG_FORMAT) {
            Some(format!(
                "the genesis line must name the log format `{AUDIT_LOG_FORMAT}`"
            ))
        } else if let Some(id) = log_id {
            self.log_id = Some(id.to_string());
            if entry.prev == blake3_hex(genesis_header(id).as_bytes()) {
                None
            } else {
                // The genesis line's own commitment is broken: it was changed.
                self.breaks.push(Break {
                    after: None,
                    seqs: (None, Some(entry.seq)),
                    why: "its `prev` is not the digest of its own log header".into(),
                });
                None
            }
        } else {
            Some("the genesis line has no `log_id`".into())
        };
        if let Some(message) = problem {
            self.definite.insert(
                0,
                Problem {
                    line: 1,
                    seq: Some(entry.seq),
                    kind: ProblemKind::GenesisInvalid,
                    message: format!("line 1: {message}"),
                },
            );
        }
    }

    fn link_break(&mut self, prev: &Prev, index: u64, seq: u64) {
        // A jump in seq at the same place means lines were removed, not changed: reported
        // by `check_seq`, not attributed to a neighbour.
        let gap = prev.seq.is_some_and(|ps| seq > ps + 1);
        if !gap {
            self.breaks.push(Break {
                after: Some(prev.index),
                seqs: (prev.seq, Some(seq)),
                why: format!(
                    "its digest is not the `prev` recorded by line {} (seq {seq})",
                    index + 1
                ),
            });
        }
    }

    fn check_seq(&mut self, index: u64, prev_seq: u64, seq: u64) {
        if seq == prev_seq + 1 {
            return;
        }
        if seq > prev_seq + 1 {
            let missing = seq - prev_seq - 1;
            self.problems.push(Problem {
                line: index + 1,
                seq: Some(seq),
                kind: ProblemKind::SeqGap,
                message: format!(
                    "line {}: seq jumps from {prev_seq} to {seq}: {missing} line(s) (seq {}..={}) were removed before this line",
                    index + 1,
                    prev_seq + 1,
                    seq - 1
                ),
            });
        } else {
            self.problems.push(Problem {
                line: index + 1,
                seq: Some(seq),
                kind: ProblemKind::SeqOutOfOrder,
                message: format!(
                    "line {}: seq {seq} does not follow {prev_seq}: lines were inserted, duplicated or reordered",
                    index + 1
                ),
            });
        }
    }

    pub(super) fn finish(
        mut self,
        lines: u64,
        anchors: &BTreeMap<u64, Vec<&Anchor>>,
        path: &Path,
    ) -> VerifyReport {
        let last_seq = self.head.as_ref().map(|h| h.seq);
        for (seq, list) in anchors {
            if self.seen_anchor_seqs.contains(seq) {
                continue;
            }
            for a in list {
                let (kind, message) = match last_seq {
                    Some(l) if *seq > l => (
                        ProblemKind::AnchorBeyondEnd,
                        format!(
                            "{} anchors seq {seq} but the log ends at seq {l}: the tail was cut (or the log replaced)",
                            a.source
                        ),
                    ),
                    _ => (
                        ProblemKind::AnchorMissing,
                        format!(
                            "{} anchors seq {seq}, which the log does not contain",
                            a.source
                        ),
                    ),
                };
                self.problems.push(Problem {
                    line: 0,
                    seq: Some(*seq),
                    kind,
                    message,
                });
            }
        }

        // Attribute breaks to lines: each break means one of the two lines around it was
        // changed. A line known bad covers its breaks; otherwise, scanning in order, a
        // break followed by a break on the line's other side is explained by that one line
        // (its bytes and its `prev` changed), else by the earlier line.
        let pos_of = |b: &Break| b.after.map_or(0, |a| a + 1);
        self.breaks.sort_by_key(pos_of);
        // Changed line index → (its seq, why).
        let mut changed: BTreeMap<u64, (Option<u64>, Vec<String>)> = BTreeMap::new();
        for (i, b) in self.breaks.iter().enumerate() {
            // The break sits between line `pos - 1` (`left`) and line `pos`.
            let pos = pos_of(b);
            let left = pos.checked_sub(1);
            let known_bad = |l: u64| self.definite.contains_key(&l) || changed.contains_key(&l);
            if left.is_some_and(known_bad) || known_bad(pos) {
                if let Some(entry) = left.and_then(|l| changed.get_mut(&l)) {
                    entry.1.push(b.why.clone());
                }
                continue;
            }
            let next_also = self.breaks.get(i + 1).is_some_and(|n| pos_of(n) == pos + 1);
            let (culprit, seq) = match left {
                Some(l) if !next_also => (l, b.seqs.0),
                _ => (pos, b.seqs.1),
            };
            changed
                .entry(culprit)
                .or_insert((seq, Vec::new()))
                .1
                .push(b.why.clone());
        }

        let mut problems: Vec<Problem> = self.definite.into_values().collect();
        for (idx, (seq, whys)) in changed {
            let seq_txt = seq.map_or_else(String::new, |s| format!(" (seq {s})"));
            problems.push(Problem {
                line: idx + 1,
                seq,
                kind: ProblemKind::Changed,
                message: format!("line {}{seq_txt} was changed: {}", idx + 1, whys.join("; ")),
            });
        }
        problems.extend(self.problems);
        problems.sort_by(|a, b| {
            let ka = if a.line == 0 { u64::MAX } else { a.line };
            let kb = if b.line == 0 { u64::MAX } else { b.line };
            (ka, a.kind).cmp(&(kb, b.kind))
        });
        let first_bad_line = problems.iter().map(|p| p.line).find(|&l| l > 0);
        VerifyReport {
            path: path.to_path_buf(),
            ok: problems.is_empty(),
            lines,
            log_id: self.log_id,
            head: self.head,
            anchors_checked: 0,
            recovered_entries: self.recovered,
            first_bad_line,
            problems,
            notes: self.notes,
        }
    }
}
