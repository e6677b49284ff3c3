//! `emit-promotion`: derive a bundle's packet and write it with its in-toto Statement.
//!
//! Writes are atomic (temp file, fsync, rename, fsync of the directory), the packet first,
//! then the Statement. An existing packet or Statement is never replaced unless
//! `overwrite` is set. With `require_promotable`, a packet that is not promotable is not
//! written at all. Governance is not this module's business: a governed emission
//! ([`crate::govern::promotion::emit_and_record`]) anchors the audit head in the packet
//! between [`prepare`] and [`write()`] ([`Prepared::anchor`]) and records the packet after it
//! is written.

use std::path::{Path, PathBuf};

use super::attest::{Attestor, Unattested};
use super::derive::derive_packet;
use super::intoto;
use super::pointers::PointerContext;
use super::source::BundleSource;
use super::verify::packet_digest;
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
    /// blake3 of the Statement file's bytes (empty when nothing was written).
    pub statement_blake3: String,
    /// The audit head after the `promotion` entry, when a governed emission recorded one
    /// (never set by this module).
    pub audit_head: Option<AuditHead>,
}

/// A packet derived and checked, not yet written: [`prepare`]'s result, [`write()`]'s input.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The packet.
    pub packet: PromotionPacket,
    /// The packet file's name (the Statement's subject).
    name: String,
    /// Where it goes.
    packet_path: PathBuf,
    /// The Statement beside it.
    statement_path: PathBuf,
    /// Write nothing unless the packet is promotable.
    require_promotable: bool,
}

impl Prepared {
    /// Record the audit head as it stands before emission in the packet (an anchor
    /// `audit verify` checks).
    pub fn anchor(&mut self, head: AuditHead) {
        self.packet.audit_head = Some(head);
    }
}

/// Emit the packet of `s.bundle` (ungoverned: no audit head, no audit entry, no trust).
pub fn emit(s: &EmitSettings) -> Result<EmitOutcome> {
    write(prepare(s, &Unattested)?)
}

/// Check `s`, open the bundle and derive its packet (signature and anchor facts from
/// `attestor`); write nothing.
pub fn prepare(s: &EmitSettings, attestor: &dyn Attestor) -> Result<Prepared> {
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
    let packet = derive_packet(&src, &ctx, attestor)?;
    if packet.artifacts.iter().any(|a| a.member == name) || name == crate::bundle::INDEX_FILE {
        return Err(Error::usage(format!(
            "--out {}: the packet's name collides with the bundle file `{name}` (both would be subjects of the in-toto Statement)",
            s.out.display()
        ))
        .with_hint("e.g. --out promotion_packet.json"));
    }
    Ok(Prepared {
        packet,
        name,
        packet_path: s.out.clone(),
        statement_path,
        require_promotable: s.require_promotable,
    })
}

/// Write a prepared packet and its Statement (nothing when `require_promotable` refuses a
/// packet that is not promotable).
pub fn write(p: Prepared) -> Result<EmitOutcome> {
    let bytes = json::to_sorted_pretty(&p.packet)?;
    let mut out = EmitOutcome {
        packet_blake3: digest::blake3_hex(&bytes),
        packet_digest: packet_digest(&p.packet)?,
        packet: p.packet,
        packet_path: p.packet_path,
        statement_path: p.statement_path,
        written: false,
        statement_blake3: String::new(),
        audit_head: None,
    };
    if p.require_promotable && !out.packet.promotability.promotable {
        return Ok(out);
    }
    let statement = intoto::statement(&out.packet, &bytes, &p.name);
    let statement_bytes = json::to_sorted_pretty(&statement)?;
    fsx::write_atomic(&out.packet_path, &bytes)?;
    fsx::write_atomic(&out.statement_path, &statement_bytes)?;
    out.written = true;
    out.statement_blake3 = digest::blake3_hex(&statement_bytes);
    Ok(out)
}

/// `dir` if it exists, else its nearest existing ancestor, with symlinks resolved.
fn nearest_existing(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().find_map(|a| std::fs::canonicalize(a).ok())
}
