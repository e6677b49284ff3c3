//! The signed attestation of a bundle: `artifact_index.sig` (an SSHSIG over the exact bytes
//! of `artifact_index.json`, namespace [`BUNDLE_NAMESPACE`]) and `bundle.intoto.json` (a
//! DSSE envelope of an in-toto Statement v1 whose subject is the index), both written beside
//! the index at seal time by `run --sign-with KEY` and not themselves indexed (they sign
//! the index, which lists everything else).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::host::HostFacts;
use super::index::{AuditHead, BundleStatus};
use crate::util::digest::Digest;

/// The SSHSIG namespace of bundle signatures (`ssh-keygen -Y verify -n nexusmon-bundle-v1`).
pub const BUNDLE_NAMESPACE: &str = "nexusmon-bundle-v1";

/// The in-toto Statement type URI.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// The predicate type of the bundle's Statement.
pub const BUNDLE_PREDICATE_TYPE: &str = "https://nexusmon.dev/bundle/v1";

/// The DSSE payload type of an in-toto Statement.
pub const DSSE_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A subject: a name and a digest set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// The file's name (bundle-relative for bundle members, the file name for a packet).
    pub name: String,
    /// `{"blake3": …, "sha256": …}`.
    pub digest: BTreeMap<String, String>,
}

/// The tool that ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Runner {
    /// `nexusmon`.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// What the bundle's Statement says about the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundlePredicate {
    /// The run.
    pub run_id: String,
    /// The bundle's status (the index's).
    pub status: BundleStatus,
    /// `plan_digest` of the plan that ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<Digest>,
    /// The tool that ran it.
    pub runner: Runner,
    /// The host it ran on (the manifest's host facts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostFacts>,
    /// The audit-log head anchored in the index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<AuditHead>,
}

/// The in-toto Statement v1 of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon bundle statement")]
pub struct BundleStatement {
    /// [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// `artifact_index.json` with its blake3 and sha256.
    pub subject: Vec<Subject>,
    /// [`BUNDLE_PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The predicate.
    pub predicate: BundlePredicate,
}

/// One DSSE signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// The signing key's `SHA256:…` fingerprint (a hint, never trusted by itself).
    pub keyid: String,
    /// The signature over the PAE, base64 (see `sign::dsse` for the scheme per key type).
    pub sig: String,
}

/// A DSSE envelope (`bundle.intoto.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon DSSE envelope")]
pub struct Envelope {
    /// The Statement's bytes, base64.
    pub payload: String,
    /// [`DSSE_PAYLOAD_TYPE`].
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// The signatures.
    pub signatures: Vec<EnvelopeSignature>,
}
