//! `emit-promotion`: derive a bundle's packet and write it with its in-toto Statement.
//!
//! Writes are atomic (temp file, fsync, rename, fsync of the directory), the packet first,
//! then the Statement. An existing packet or Statement is never replaced unless
//! `overwrite` is set. With `require_promotable`, a packet that is not promotable is not
//! written at all. When a governance state directory exists, the packet carries the audit
//! head as it stood before emission (`audit_head`, an anchor `audit verify` checks), and a
//! `promotion` entry recording the packet's digests is appended after it is written.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::derive::derive_packet;
use super::intoto;
use super::pointers::PointerContext;
use super::source::BundleSource;
use super::verify::packet_digest;
use crate::govern::Governance;
use crate::govern::audit::AuditKind;
use crate::model::index::AuditHead;
use crate::model::packet::PromotionPacket;
use crate::util::{digest, fsx, json};
use crate::{Error, Result};

/// What `emit-promotion` was asked to do.
#[derive(Debug, Clone)]
pub struct EmitSettings {
    /// The bundle directory, staging directory or out root.
    pub bundle: PathBuf,
    /// Where the packet goes (absolute).
    pub out: PathBuf,
    /// The project root (pointers are relative to it when the bundle lies beneath it).
    pub root: PathBuf,
    /// Write nothing unless the packet is promotable.
    pub require_promotable: bool,
    /// Replace an existing packet and Statement.
    pub overwrite: bool,
    /// The governance state directory, if there is one.
    pub state_dir: Option<PathBuf>,
}

/// What `emit-promotion` did.
#[derive(Debug, Clone)]
pub struct EmitOutcome {
    /// The packet (written or not).
    pub packet: PromotionPacket,
    /// Where it was (or would have been) written.
    pub packet_path: PathBuf,
    /// The Statement beside it.
    pub statement_path: PathBuf,
    /// False when `require_promotable` refused a packet that is not promotable.
    pub written: bool,
    /// blake3 of the packet file's bytes.
    pub packet_blake3: String,
    /// blake3 of the packet's canonical JSON (its identity in mappings and evolution).
    pub packet_digest: String,
    /// The audit head after the `promotion` entry, when one was recorded.
    pub audit_head: Option<AuditHead>,
}

/// Emit the packet of `s.bundle`.
pub fn emit(s: &EmitSettings) -> Result<EmitOutcome> {
    let name = s
        .out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .ok_or_else(|| {
            Error::usage(format!("--out {} does not name a file", s.out.display()))
                .with_hint("e.g. --out promotion_packet.json")
        })?;
    let statement_path = s.out.with_file_name(intoto::statement_name(&name));
    if statement_path == s.out {
        return Err(Error::usage(format!(
            "--out {} would be its own in-toto Statement",
            s.out.display()
        ))
        .with_hint("name the packet `<name>.json`, e.g. promotion_packet.json"));
    }
    if !s.overwrite {
        for p in [&s.out, &statement_path] {
            if std::fs::symlink_metadata(p).is_ok() {
                return Err(Error::input(p, "already exists; nothing was written")
                    .with_hint("pass --overwrite to replace it, or choose another --out"));
            }
        }
    }
    let src = BundleSource::open(&s.bundle)?;
    let dir = s
        .out
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    if let (Ok(b), Some(d)) = (std::fs::canonicalize(&src.dir), nearest_existing(&dir))
        && d.starts_with(&b)
    {
        return Err(Error::usage(format!(
            "--out {} lies inside the bundle {}: a file added after the seal would make the bundle invalid",
            s.out.display(),
            src.dir.display()
        ))
        .with_hint("write the packet outside the bundle, e.g. --out promotion/promotion_packet.json"));
    }
    fsx::create_dir_all(&dir)?;
    let ctx = PointerContext::for_emit(&src.dir, &s.root, &dir)?;
    let mut packet = derive_packet(&src, &ctx)?;
    if packet.artifacts.iter().any(|a| a.member == name) || name == crate::bundle::INDEX_FILE {
        return Err(Error::usage(format!(
            "--out {}: the packet's name collides with the bundle file `{name}` (both would be subjects of the in-toto Statement)",
            s.out.display()
        ))
        .with_hint("e.g. --out promotion_packet.json"));
    }
    let gov = match &s.state_dir {
        Some(d) => Some(Governance::open(d)?),
        None => None,
    };
    if let Some(g) = &gov {
        packet.audit_head = Some(g.audit_head()?);
    }
    let bytes = json::to_sorted_pretty(&packet)?;
    let mut out = EmitOutcome {
        packet_blake3: digest::blake3_hex(&bytes),
        packet_digest: packet_digest(&packet)?,
        packet,
        packet_path: s.out.clone(),
        statement_path,
        written: false,
        audit_head: None,
    };
    if s.require_promotable && !out.packet.promotability.promotable {
        return Ok(out);
    }
    let statement = intoto::statement(&out.packet, &bytes, &name);
    let statement_bytes = json::to_sorted_pretty(&statement)?;
    fsx::write_atomic(&out.packet_path, &bytes)?;
    fsx::write_atomic(&out.statement_path, &statement_bytes)?;
    out.written = true;
    if let Some(g) = &gov {
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
                "statement_blake3": digest::blake3_hex(&statement_bytes),
                "artifact_index_blake3": p.bundle.artifact_index.as_ref().map(|a| a.blake3.clone()),
                "promotable": p.promotability.promotable,
                "reasons": p.promotability.reasons,
                "anchored_head": p.audit_head,
            }),
        )?);
    }
    Ok(out)
}

/// `dir` if it exists, else its nearest existing ancestor, with symlinks resolved.
fn nearest_existing(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().find_map(|a| std::fs::canonicalize(a).ok())
}
