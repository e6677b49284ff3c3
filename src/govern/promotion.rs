//! Governed promotion: `emit-promotion` and `promote` with the audit log. The promote
//! layer derives, verifies and writes; this module anchors the audit head in the packet and
//! appends the `promotion` entries, so `promote` never imports `govern`.
//!
//! The state directory is `--state-dir` when given, else the nearest `.nexusmon/` at or
//! above the project root; without one (and without `--trust`) both are exactly the
//! ungoverned [`promote::emit()`] and [`promote::promote`]. With one, every bundle's
//! signature is checked against the trust file (`--trust FILE`, else the state
//! directory's) and its index against the audit log ([`super::attest::GovAttestor`]): a
//! forged, swapped or wrongly signed bundle is never promotable.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::Governance;
use super::attest::GovAttestor;
use super::audit::AuditKind;
use crate::Result;
use crate::promote::{self, EmitOutcome, EmitSettings, PromoteOutcome, PromoteSettings};

/// `emit-promotion`: derive the packet of `s.bundle`; with a state directory, anchor the
/// audit head as it stands before emission in the packet, write it, and append a
/// `promotion` entry (`packet-emitted`) recording its digests.
pub fn emit_and_record(
    s: &EmitSettings,
    explicit: Option<&Path>,
    trust: Option<&Path>,
) -> Result<EmitOutcome> {
    let gov = match state_dir(explicit, &s.root) {
        Some(d) => Some(Governance::open(&d)?),
        None => None,
    };
    let attestor = GovAttestor::with(trust, gov.as_ref())?;
    let mut prepared = promote::emit::prepare(s, &attestor)?;
    if let Some(g) = &gov {
        prepared.anchor(g.audit_head()?);
    }
    let mut out = promote::emit::write(prepared)?;
    if out.written
        && let Some(g) = &gov
    {
        let p = &out.packet;
        out.audit_head = Some(g.audit().append(
            AuditKind::Promotion,
            json!({
                "action": "packet-emitted",
                "run_id": p.run_id,
                "plan_id": p.plan.plan_id,
                "packet": out.packet_path.display().to_string(),
                "packet_blake3": out.packet_blake3,
                "packet_digest": out.packet_digest,
                "statement_blake3": out.statement_blake3,
                "artifact_index_blake3": p.bundle.artifact_index.as_ref().map(|a| a.blake3.clone()),
                "promotable": p.promotability.promotable,
                "reasons": p.promotability.reasons,
                "anchored_head": p.audit_head,
            }),
        )?);
    }
    Ok(out)
}

/// `promote`: merge the packets into the mappings; with a state directory, append a
/// `promotion` entry (`mappings-updated`) when a file changed, while the mappings lock is
/// still held.
pub fn promote_and_record(
    s: &PromoteSettings,
    explicit: Option<&Path>,
    trust: Option<&Path>,
) -> Result<PromoteOutcome> {
    let Some(dir) = state_dir(explicit, &s.root) else {
        let attestor = GovAttestor::with(trust, None)?;
        return promote::promote_with(s, &attestor, |_| Ok(None));
    };
    let attestor = GovAttestor::with(trust, Some(&Governance::open(&dir)?))?;
    promote::promote_with(s, &attestor, |change| {
        let gov = Governance::open(&dir)?;
        gov.audit()
            .append(
                AuditKind::Promotion,
                json!({
                    "action": "mappings-updated",
                    "mappings": change.out.display().to_string(),
                    "added": change.added,
                    "consumed": change.consumed,
                    "conflicts": change.conflicts,
                    "files_blake3": change.files_blake3,
                }),
            )
            .map(Some)
    })
}

/// `explicit` (`--state-dir`), else the nearest `.nexusmon/` at or above `root`.
fn state_dir(explicit: Option<&Path>, root: &Path) -> Option<PathBuf> {
    match explicit {
        Some(d) => Some(d.to_path_buf()),
        None => super::state::find(root),
    }
}
