//! Promotion: the boundary between evidence (bundles) and knowledge
//! (mappings, evolution).
//!
//! - [`derive`]: a bundle → its [`PromotionPacket`]: pointers with digests to the decision
//!   artifacts, the summary, the governance slot and `promotability`, derived from the bundle
//!   alone through [`source::BundleSource`] (the strict reader when the bundle verifies, the
//!   unverified one otherwise: an in-progress or tampered bundle still gets a packet, which
//!   is never promotable).
//! - [`promotability`]: the reasons, a pure function of the consulted inputs. Every reason
//!   holds unless the bundle gives positive evidence against it, so a missing or unreadable
//!   input can only make a packet less promotable (the in-toto monotonic principle).
//! - [`emit`]: `emit-promotion`: write the packet and the in-toto Statement v1 beside it
//!   ([`intoto`]) atomically, refuse to overwrite. Recording it in the audit log is
//!   governance's ([`crate::govern::promotion`]): promote never imports `govern`.
//! - [`verify`]: read a packet back: strict parse, pointers resolved and every digest
//!   checked, and (for promotion) the packet derived again from its bundle and compared, so
//!   an edited packet or a changed bundle is refused.
//! - [`ops`]: op-level counts (`summarize-ops`).
//! - [`view`]: one run (a bundle, an out root or a packet's bundle) read for the review
//!   surfaces (`report`, `diff`, `review`), tampered bundles included, shown as not valid.
//! - [`diff`]: `diff A B`: what changed between two runs, each change with a severity.
//! - [`mapping`]: `promote`: merge verified, promotable packets into the mapping files, a
//!   pure function of the set of packets consumed.

pub mod attest;
pub mod derive;
pub mod diff;
pub mod emit;
pub mod facts;
pub mod intoto;
pub mod mapping;
pub mod merge;
pub mod ops;
pub mod pointers;
pub mod promotability;
pub mod source;
pub mod verify;
pub mod view;

pub use attest::{Attestation, Attestor, Unattested};
pub use derive::derive_packet;
pub use emit::{EmitOutcome, EmitSettings, Prepared, emit};
pub use mapping::{MappingsChange, PromoteOutcome, PromoteSettings, promote, promote_with};
pub use ops::{summarize_bundle, summarize_packet};
pub use pointers::PointerContext;
pub use verify::{VerifiedPacket, check_packet, packet_digest, read_packet, verify_packet};

pub use crate::model::packet::PromotionPacket;
