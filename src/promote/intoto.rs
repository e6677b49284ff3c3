//! The in-toto Statement v1 written beside a packet (`<packet stem>.intoto.json`), so
//! standard tooling can sign and check it.
//!
//! - `_type` `https://in-toto.io/Statement/v1`.
//! - `subject`: the bundle's `artifact_index.json` (when it has one), every artifact the
//!   packet points to (named by their path inside the bundle), and the packet itself (named
//!   by its file name); every digest set holds `blake3` and `sha256` (`blake3` is not an
//!   in-toto registered name, so `sha256` is always beside it for standard consumers;
//!   matching is by digest).
//! - `predicateType` [`PACKET_PREDICATE_TYPE`]; the predicate carries what a consumer needs
//!   to decide without reading the packet: run, plan (id, kind, digest), promotability
//!   (verdict and reasons), the bundle pointer and the packet's own digest.
//!
//! The Statement is unsigned; `cosign attest-blob --statement` or any DSSE signer can wrap
//! it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::packet::{
    ArtifactPointer, EmittedBy, PACKET_PREDICATE_TYPE, PacketPlan, PointerBase, PromotionPacket,
    Reason,
};
use crate::util::digest;

pub use crate::model::attest::{STATEMENT_TYPE, Subject};

/// The promotability verdict as the predicate carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PredicatePromotability {
    /// The verdict.
    pub promotable: bool,
    /// The reasons, sorted.
    pub reasons: Vec<Reason>,
}

/// The bundle as the predicate carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PredicateBundle {
    /// The bundle directory relative to the pointer base.
    pub pointer: String,
    /// What pointers are relative to.
    pub pointer_base: PointerBase,
    /// Every file was verified against the seal.
    pub verified: bool,
}

/// The packet file as the predicate names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PredicatePacket {
    /// Its file name.
    pub name: String,
    /// blake3 and sha256 of its bytes.
    pub digest: BTreeMap<String, String>,
    /// Its layout version.
    pub packet_version: u32,
}

/// The predicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PacketPredicate {
    /// The run.
    pub run_id: String,
    /// The plan.
    pub plan: PacketPlan,
    /// The verdict.
    pub promotability: PredicatePromotability,
    /// The bundle.
    pub bundle: PredicateBundle,
    /// The packet.
    pub packet: PredicatePacket,
    /// The emitting tool.
    pub emitted_by: EmittedBy,
}

/// An in-toto Statement v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// What the statement is about.
    pub subject: Vec<Subject>,
    /// [`PACKET_PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The predicate.
    pub predicate: PacketPredicate,
}

fn both(blake3: &str, sha256: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("blake3".to_string(), blake3.to_string()),
        ("sha256".to_string(), sha256.to_string()),
    ])
}

fn subject_of(a: &ArtifactPointer) -> Subject {
    Subject {
        name: a.member.clone(),
        digest: both(&a.blake3, &a.sha256),
    }
}

/// The Statement for `packet`, whose serialized bytes are `packet_bytes`, written as
/// `packet_name`. Subjects are sorted by name.
pub fn statement(packet: &PromotionPacket, packet_bytes: &[u8], packet_name: &str) -> Statement {
    let packet_digest = both(
        &digest::blake3_hex(packet_bytes),
        &digest::sha256_hex(packet_bytes),
    );
    let mut subject: Vec<Subject> = packet
        .bundle
        .artifact_index
        .iter()
        .chain(&packet.artifacts)
        .map(subject_of)
        .collect();
    subject.push(Subject {
        name: packet_name.to_string(),
        digest: packet_digest.clone(),
    });
    subject.sort_by(|a, b| a.name.cmp(&b.name));
    Statement {
        statement_type: STATEMENT_TYPE.into(),
        subject,
        predicate_type: PACKET_PREDICATE_TYPE.into(),
        predicate: PacketPredicate {
            run_id: packet.run_id.clone(),
            plan: packet.plan.clone(),
            promotability: PredicatePromotability {
                promotable: packet.promotability.promotable,
                reasons: packet.promotability.reasons.clone(),
            },
            bundle: PredicateBundle {
                pointer: packet.bundle.pointer.clone(),
                pointer_base: packet.bundle.pointer_base,
                verified: packet.bundle.verified,
            },
            packet: PredicatePacket {
                name: packet_name.to_string(),
                digest: packet_digest,
                packet_version: packet.packet_version,
            },
            emitted_by: packet.emitted_by.clone(),
        },
    }
}

/// Where the Statement for a packet at `packet_name` goes: `<stem>.intoto.json`
/// (`promotion_packet.json` → `promotion_packet.intoto.json`).
pub fn statement_name(packet_name: &str) -> String {
    let stem = packet_name.strip_suffix(".json").unwrap_or(packet_name);
    format!("{stem}.intoto.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_names_replace_the_json_extension() {
        assert_eq!(
            statement_name("promotion_packet.json"),
            "promotion_packet.intoto.json"
        );
        assert_eq!(statement_name("p"), "p.intoto.json");
        assert_eq!(statement_name("a.b.json"), "a.b.intoto.json");
    }
}
