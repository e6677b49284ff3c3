//! Reading a packet back, for `summarize-ops --packet` and `promote`.
//!
//! - [`read_packet`]: the file parses strictly as a packet of a known `packet_version`
//!   (exit 2 otherwise: it is not a packet this build can read).
//! - [`check_pointers`]: every pointer resolves (relative to the project root or the
//!   packet's directory, as the packet records) to a regular file of the recorded size,
//!   blake3 and sha256. A bundle that changed since the packet was emitted fails here.
//! - [`check_packet`]: its pointers check out, and deriving the packet again from its
//!   bundle gives the same packet (only the emission's `audit_head` and `emitted_by` may
//!   differ): an edited packet, or a bundle that changed, is refused with what differs.
//!   The signature and anchor facts are decided again now by the caller's [`Attestor`]
//!   (governance: the trust file and the audit log as they stand), so a bundle re-signed
//!   or swapped since emission, or one the log no longer anchors, is refused too.
//! - [`verify_packet`] (promotion): the packet must be promotable (its recorded verdict, and
//!   the verdict its own gating inputs give), then [`check_packet`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::attest::Attestor;
use super::derive::derive_packet;
use super::pointers::PointerContext;
use super::promotability;
use super::source::BundleSource;
use crate::bundle::{INDEX_FILE, STATUS_FILE};
use crate::error::ErrorKind;
use crate::model::packet::{ArtifactPointer, PACKET_VERSION, PointerBase, PromotionPacket, Reason};
use crate::util::{digest, fsx, json, limits};
use crate::{Error, Result};

/// blake3 (hex) of the packet's canonical JSON (RFC 8785): the packet's identity in
/// mappings and evolution (re-formatting a packet does not make it another packet).
pub fn packet_digest(packet: &PromotionPacket) -> Result<String> {
    Ok(digest::blake3_hex(&json::canonical(packet)?))
}

/// Read and parse the packet at `path` strictly.
pub fn read_packet(path: &Path) -> Result<(PromotionPacket, Vec<u8>)> {
    let bytes = fsx::read_limited(path, limits::MAX_PACKET_BYTES, "a promotion packet", None)?;
    let hint = "pass a promotion_packet.json written by `nexusmon emit-promotion`";
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::input(path, "is not JSON")
            .with_source(e)
            .with_hint(hint)
    })?;
    match value
        .get("packet_version")
        .and_then(serde_json::Value::as_u64)
    {
        Some(v) if v == u64::from(PACKET_VERSION) => {}
        Some(v) => {
            return Err(Error::input(
                path,
                format!("is a version {v} packet; this build reads version {PACKET_VERSION}"),
            )
            .with_hint("emit the packet again with this build"));
        }
        None => {
            return Err(
                Error::input(path, "is not a promotion packet (no `packet_version`)")
                    .with_hint(hint),
            );
        }
    }
    let packet: PromotionPacket = serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        Error::input(path, format!("is not a valid promotion packet (at `{at}`)"))
            .with_source(e.into_inner())
            .with_hint(hint)
    })?;
    Ok((packet, bytes))
}

/// The pointer context a packet at `path` records, resolved for `root`.
pub fn context_of(packet: &PromotionPacket, path: &Path, root: &Path) -> Result<PointerContext> {
    PointerContext::for_read(
        packet.bundle.pointer_base,
        &packet.bundle.pointer,
        root,
        path,
    )
}

/// Every pointer of `packet` that does not resolve to the bytes it records, as sentences.
/// A pointer must name a member *inside the bundle* (`<bundle pointer>/<member>`, the member
/// a plain relative path), is opened beneath the bundle directory without following any
/// symlink ([`crate::util::nofollow::open_beneath`]), and each member is listed and hashed
/// once: a packet cannot make the reader open, hash or describe any other file.
pub fn check_pointers(packet: &PromotionPacket, ctx: &PointerContext, path: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let dir = match open_bundle_dir(ctx) {
        Ok(d) if is_bundle(&d) => Some(d),
        Ok(_) => {
            // The bundle pointer itself may name any directory: nothing in one that is not
            // a bundle is opened, hashed or described.
            problems.push(format!(
                "`{}` is not a nexusmon bundle (neither {INDEX_FILE} nor {STATUS_FILE} is in it): none of its files were read",
                ctx.bundle_dir().display()
            ));
            None
        }
        Err(e) => {
            problems.push(format!(
                "{}: cannot open the bundle ({e})",
                ctx.bundle_dir().display()
            ));
            None
        }
    };
    // With an index: it is checked first, and only the members it lists are read after it.
    let mut listed: Option<BTreeSet<String>> = None;
    let mut index_failed = false;
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let index = packet.bundle.artifact_index.iter().map(|a| (true, a));
    let all = index.chain(packet.artifacts.iter().map(|a| (false, a)));
    for (is_index, a) in all {
        if let Err(e) = super::pointers::check_pointer(ctx.base, &a.path, path) {
            problems.push(e.message().to_string());
            index_failed |= is_index;
            continue;
        }
        if let Err(why) = inside_bundle(a, ctx) {
            problems.push(why);
            index_failed |= is_index;
            continue;
        }
        if !seen.insert(a.member.as_str()) {
            problems.push(format!(
                "`{}` is listed more than once (a packet written by emit-promotion lists each member once)",
                a.member
            ));
            continue;
        }
        let Some(d) = &dir else { continue };
        if index_failed {
            continue;
        }
        if let Some(l) = &listed
            && !l.contains(&a.member)
        {
            problems.push(format!(
                "`{}` is not listed in the bundle's {INDEX_FILE}: not read",
                a.member
            ));
            continue;
        }
        // Only the index is kept (its listing is needed); every other member is hashed as
        // it streams past.
        let checked = if is_index {
            read_checked(a, d, ctx)
        } else {
            scan_checked(a, d, ctx, &mut |_| ()).map(|()| Vec::new())
        };
        match checked {
            Ok(bytes) if is_index => {
                match serde_json::from_slice::<crate::model::index::ArtifactIndex>(&bytes) {
                    Ok(ix) => listed = Some(ix.entries.into_iter().map(|e| e.path).collect()),
                    Err(e) => {
                        problems.push(format!(
                            "{}: not an artifact index ({e})",
                            ctx.resolve(&a.path).display()
                        ));
                        index_failed = true;
                    }
                }
            }
            Ok(_) => {}
            Err(p) => {
                problems.push(p);
                index_failed |= is_index;
            }
        }
    }
    if index_failed && dir.is_some() && !packet.artifacts.is_empty() {
        problems.push(format!(
            "the bundle's other files were not read: its {INDEX_FILE} is not the one the packet records"
        ));
    }
    problems
}

/// Whether the open directory `d` holds a bundle's index or run status (a regular file,
/// beneath it, no symlink): the least a directory must show before a packet's pointers
/// make nexusmon read anything in it.
fn is_bundle(d: &std::fs::File) -> bool {
    [INDEX_FILE, STATUS_FILE].iter().any(|f| {
        crate::util::nofollow::open_beneath(d, f)
            .and_then(|f| f.metadata())
            .is_ok_and(|m| m.is_file())
    })
}

/// `a` names a member inside the bundle: a plain relative path (no `..`, `.`, empty or
/// absolute component) whose pointer is the bundle's pointer joined with it.
fn inside_bundle(a: &ArtifactPointer, ctx: &PointerContext) -> std::result::Result<(), String> {
    let plain = !a.member.is_empty()
        && !a.member.chars().any(char::is_control)
        && a.member
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if !plain || a.path != ctx.member(&a.member) {
        return Err(format!(
            "pointer `{}` (member `{}`) does not name a file inside the bundle `{}`: only the bundle's own files are read",
            a.path, a.member, ctx.bundle_pointer
        ));
    }
    Ok(())
}

fn open_bundle_dir(ctx: &PointerContext) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(ctx.bundle_dir())
}

/// Open `a`'s member beneath the bundle, check its size (before reading) and digests;
/// returns its bytes.
fn read_checked(
    a: &ArtifactPointer,
    dir: &std::fs::File,
    ctx: &PointerContext,
) -> std::result::Result<Vec<u8>, String> {
    scan_checked(a, dir, ctx, &mut |r| {
        let mut bytes = Vec::with_capacity(usize::try_from(a.size).unwrap_or(0));
        r.read_to_end(&mut bytes).map(|_| bytes)
    })?
    .map_err(|e| format!("{}: cannot read ({e})", ctx.resolve(&a.path).display()))
}

/// Open `a`'s member beneath the bundle, check its size (before reading), read it once
/// through `read` (which takes what it needs from the stream) and check its digests at the
/// end: what `read` returned, or why the member is not the one the packet records (then
/// whatever `read` returned is dropped). Memory is what `read` keeps.
fn scan_checked<R>(
    a: &ArtifactPointer,
    dir: &std::fs::File,
    ctx: &PointerContext,
    read: &mut dyn FnMut(&mut dyn std::io::BufRead) -> R,
) -> std::result::Result<R, String> {
    use std::io::Read;
    let shown = ctx.resolve(&a.path);
    let f = crate::util::nofollow::open_beneath(dir, &a.member).map_err(|e| {
        format!(
            "{}: cannot open it inside the bundle without following a symlink ({e})",
            shown.display()
        )
    })?;
    let m = f
        .metadata()
        .map_err(|e| format!("{}: cannot read ({e})", shown.display()))?;
    if !m.is_file() {
        return Err(format!("{}: not a regular file", shown.display()));
    }
    if m.len() != a.size {
        return Err(format!(
            "{}: {} bytes, the packet says {}",
            shown.display(),
            m.len(),
            a.size
        ));
    }
    let (d, got) = crate::bundle::lines::scan_with(f.take(a.size.saturating_add(1)), &shown, read)
        .map_err(|e| format!("{}: cannot read ({})", shown.display(), e.message()))?;
    if d.size != a.size || d.blake3 != a.blake3 || d.sha256 != a.sha256 {
        return Err(format!(
            "{}: its digest is not the one the packet records",
            shown.display()
        ));
    }
    Ok(got)
}

/// A packet that passed [`verify_packet`].
#[derive(Debug, Clone)]
pub struct VerifiedPacket {
    /// Where it was read from.
    pub path: PathBuf,
    /// The packet.
    pub packet: PromotionPacket,
    /// [`packet_digest`].
    pub digest: String,
    /// How its pointers resolve.
    pub ctx: PointerContext,
}

impl VerifiedPacket {
    /// Read the bundle member `member` through the packet's pointer, checked against the
    /// digest the packet records.
    pub fn read_member(&self, member: &str) -> Result<Vec<u8>> {
        read_pointer(self.pointer(member)?, &self.ctx)
    }

    /// Read the bundle member `member` once through `read` (see [`scan_pointer`]).
    pub fn scan_member<R>(
        &self,
        member: &str,
        read: &mut dyn FnMut(&mut dyn std::io::BufRead) -> R,
    ) -> Result<R> {
        scan_pointer(self.pointer(member)?, &self.ctx, read)
    }

    fn pointer(&self, member: &str) -> Result<&ArtifactPointer> {
        self.packet.artifact(member).ok_or_else(|| {
            Error::new(
                ErrorKind::Findings,
                format!("the packet does not point to `{member}`"),
            )
            .with_path(&self.path)
        })
    }
}

/// Read `a` (inside the bundle, beneath it, as [`check_pointers`] does) and check it
/// against its recorded size and digests (exit 1 when it changed).
pub fn read_pointer(a: &ArtifactPointer, ctx: &PointerContext) -> Result<Vec<u8>> {
    scan_pointer(a, ctx, &mut |r| {
        let mut bytes = Vec::new();
        r.read_to_end(&mut bytes).map(|_| bytes)
    })?
    .map_err(|e| Error::io("read", ctx.resolve(&a.path), e))
}

/// Read `a` as [`read_pointer`] does, once, through `read` (which takes what it needs
/// from the stream), checking its size and digests at the end: what `read` returned
/// (exit 1 when the member changed; then nothing `read` gathered may be used). Memory is
/// what `read` keeps, whatever the member's size.
pub fn scan_pointer<R>(
    a: &ArtifactPointer,
    ctx: &PointerContext,
    read: &mut dyn FnMut(&mut dyn std::io::BufRead) -> R,
) -> Result<R> {
    let file = ctx.resolve(&a.path);
    let changed = |why: String| {
        Error::new(
            ErrorKind::Findings,
            format!("changed since the packet was emitted: {why}"),
        )
        .with_path(&file)
    };
    inside_bundle(a, ctx).map_err(changed)?;
    let dir = open_bundle_dir(ctx).map_err(|e| Error::io_input("open", ctx.bundle_dir(), e))?;
    if !is_bundle(&dir) {
        return Err(changed(format!(
            "`{}` is no longer a nexusmon bundle",
            ctx.bundle_dir().display()
        )));
    }
    scan_checked(a, &dir, ctx, read).map_err(changed)
}

/// Why a packet is refused for promotion: one heading and the details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The packet.
    pub path: PathBuf,
    /// What is wrong, one line.
    pub what: String,
    /// The details (reasons with their explanation, changed files, differing fields).
    pub details: Vec<String>,
}

/// Verify the packet at `path` for promotion (see the module docs). `Err` for a file that
/// is not a readable packet (exit 2); `Ok(Err(refusal))` for a packet that is refused.
pub fn verify_packet(
    path: &Path,
    root: &Path,
    attestor: &dyn Attestor,
) -> Result<std::result::Result<VerifiedPacket, Refusal>> {
    let (packet, _) = read_packet(path)?;
    let refuse = |what: String, details: Vec<String>| {
        Ok(Err(Refusal {
            path: path.to_path_buf(),
            what,
            details,
        }))
    };
    let g = &packet.promotability.gating_inputs;
    if !packet.promotability.promotable || !packet.promotability.reasons.is_empty() {
        let details = packet
            .promotability
            .reasons
            .iter()
            .map(|r| format!("{r}: {}", promotability::explain(*r, g)))
            .collect();
        return refuse("the packet is not promotable".into(), details);
    }
    // The recorded verdict must be what its own inputs give (an edited verdict is refused
    // before anything else is read).
    if !promotability::reasons(g).is_empty() {
        return refuse(
            "the packet says promotable, but its own gating inputs say otherwise".into(),
            promotability::reasons(g)
                .iter()
                .map(|r| r.as_str().to_string())
                .collect(),
        );
    }
    check_against_bundle(path, packet, root, attestor)
}

/// Check the packet at `path` against its bundle, promotable or not: its pointers resolve
/// to the bytes it records, and deriving it again from the bundle gives the same packet
/// (only `audit_head` and `emitted_by` may differ). For consumers that must not trust a
/// packet's content blindly but also read non-promotable packets (e.g. evolution, where a
/// violation costs XP whatever the packet's promotability).
pub fn check_packet(
    path: &Path,
    root: &Path,
    attestor: &dyn Attestor,
) -> Result<std::result::Result<VerifiedPacket, Refusal>> {
    let (packet, _) = read_packet(path)?;
    check_against_bundle(path, packet, root, attestor)
}

fn check_against_bundle(
    path: &Path,
    packet: PromotionPacket,
    root: &Path,
    attestor: &dyn Attestor,
) -> Result<std::result::Result<VerifiedPacket, Refusal>> {
    let refuse = |what: String, details: Vec<String>| {
        Ok(Err(Refusal {
            path: path.to_path_buf(),
            what,
            details,
        }))
    };
    let ctx = context_of(&packet, path, root)?;
    let mut problems = check_pointers(&packet, &ctx, path);
    if !problems.is_empty() {
        problems.push(match ctx.base {
            PointerBase::ProjectRoot => format!(
                "(pointers are relative to the project root, here {}: run from the project the packet was emitted in, or pass --root)",
                ctx.base_dir.display()
            ),
            PointerBase::PacketDir => {
                "(pointers are relative to the packet's directory: keep the packet where it was emitted)".into()
            }
        });
        return refuse(
            "the bundle changed since the packet was emitted (or the packet was moved)".into(),
            problems,
        );
    }
    let src = BundleSource::open(&ctx.bundle_dir())?;
    let mut again = derive_packet(&src, &ctx, attestor)?;
    // The signature and the anchor are checked again now, against the trust file and the
    // audit log as they stand: a bundle that does not check out is refused whatever the
    // packet recorded. Where they check out (or nothing can be checked here: no trust
    // file, another state directory), the packet's own record of them stands.
    let now: Vec<Reason> = promotability::reasons(&again.promotability.gating_inputs)
        .into_iter()
        .filter(|r| {
            matches!(
                r,
                Reason::BundleSignatureInvalid | Reason::BundleUnsigned | Reason::IndexNotAnchored
            )
        })
        .collect();
    if !now.is_empty() {
        let g = &again.promotability.gating_inputs;
        return refuse(
            "its bundle does not check out against the trust file or the audit log".into(),
            now.iter()
                .map(|r| format!("{r}: {}", promotability::explain(*r, g)))
                .collect(),
        );
    }
    {
        let recorded = &packet.promotability.gating_inputs;
        let g = &mut again.promotability.gating_inputs;
        g.signature.clone_from(&recorded.signature);
        g.anchor.clone_from(&recorded.anchor);
        let reasons = promotability::reasons(g);
        again.promotability.promotable = reasons.is_empty();
        again.promotability.reasons = reasons;
    }
    again.audit_head.clone_from(&packet.audit_head);
    again.emitted_by.clone_from(&packet.emitted_by);
    if again != packet {
        let a = serde_json::to_value(&packet).unwrap_or_default();
        let b = serde_json::to_value(&again).unwrap_or_default();
        let mut diffs = Vec::new();
        diff("", &a, &b, &mut diffs);
        let what = if packet.promotability.promotable && !again.promotability.promotable {
            "its bundle is no longer promotable (or the packet was edited)"
        } else {
            "the packet does not match its bundle (it was edited after it was emitted)"
        };
        let mut details: Vec<String> = again
            .promotability
            .reasons
            .iter()
            .map(|r| {
                format!(
                    "{r}: {}",
                    promotability::explain(*r, &again.promotability.gating_inputs)
                )
            })
            .collect();
        details.extend(
            diffs
                .into_iter()
                .take(12)
                .map(|p| format!("differs at {p}")),
        );
        return refuse(what.into(), details);
    }
    Ok(Ok(VerifiedPacket {
        path: path.to_path_buf(),
        digest: packet_digest(&packet)?,
        packet,
        ctx,
    }))
}

/// JSON pointers where `a` and `b` differ.
#[allow(clippy::many_single_char_names)]
fn diff(at: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = format!("{at}/{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => diff(&p, u, v, out),
                    _ => out.push(p),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                diff(&format!("{at}/{i}"), u, v, out);
            }
        }
        _ if a != b => out.push(if at.is_empty() { "/".into() } else { at.into() }),
        _ => {}
    }
}
/// The packet files `paths` name: a file is itself, a directory every `*.json` in it (not
/// recursive), sorted; in-toto Statements (`*.intoto.json`, written beside each packet) are
/// skipped either way, so `promotion/` and `promotion/*.json` both name the packets. Returns
/// the packets and the Statements skipped. A path that does not exist is an input error.
pub fn packet_paths(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let is_statement = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".intoto.json"))
    };
    let mut packets = Vec::new();
    let mut skipped = Vec::new();
    for p in paths {
        if p.is_dir() {
            for f in fsx::read_dir_sorted(p)? {
                let json = f.extension().is_some_and(|e| e == "json");
                if !f.is_file() || !json {
                    continue;
                }
                if is_statement(&f) {
                    skipped.push(f);
                } else {
                    packets.push(f);
                }
            }
        } else if p.is_file() {
            if is_statement(p) {
                skipped.push(p.clone());
            } else {
                packets.push(p.clone());
            }
        } else {
            return Err(Error::input(p, "not found")
                .with_hint("pass promotion packets, or directories holding them"));
        }
    }
    packets.dedup();
    if packets.is_empty() {
        return Err(Error::new(
            crate::error::ErrorKind::NothingSelected,
            "no promotion packet found in the paths given",
        )
        .with_hint("write one with `nexusmon emit-promotion --bundle out --out promotion/promotion_packet.json`"));
    }
    Ok((packets, skipped))
}
