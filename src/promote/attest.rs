//! What a packet records about its bundle that the bundle alone cannot prove: whether its
//! signature is by a trusted key (the trust file) and whether its index is the one the audit
//! log sealed. Governance knows both and passes an [`Attestor`] down (promote never imports
//! `govern`); without one, [`Unattested`] records the signature as the bundle shows it and
//! nothing anchored.

use super::source::BundleSource;
use crate::Result;
use std::path::Path;

use crate::bundle::{ProblemKind, Report, SIG_FILE};
use crate::model::packet::{AnchorInput, SignatureInput, SignatureState};

/// The signature and anchor facts of one bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attestation {
    /// The signature against the trust policy.
    pub signature: SignatureInput,
    /// The index against the audit log.
    pub anchor: AnchorInput,
}

/// Decides a bundle's [`Attestation`] (implemented by governance).
pub trait Attestor {
    /// The facts for the bundle `src`.
    fn attest(&self, src: &BundleSource) -> Result<Attestation>;
}

/// No trust file and no audit log: the signature as the bundle alone shows it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unattested;

impl Attestor for Unattested {
    fn attest(&self, src: &BundleSource) -> Result<Attestation> {
        Ok(Attestation {
            signature: self_signature(src),
            anchor: AnchorInput::default(),
        })
    }
}

/// The signature as the bundle alone shows it: `signed` (verifies with the key it carries),
/// `invalid`, `unsigned`, or `unchecked` when the bundle has no readable index.
pub fn self_signature(src: &BundleSource) -> SignatureInput {
    signature_of(&src.report, src.index.is_some(), &src.dir)
}

/// [`self_signature`] from a bundle check `r` of the bundle at `dir`.
pub fn signature_of(r: &Report, has_index: bool, dir: &Path) -> SignatureInput {
    if let Some(fp) = &r.signed_by {
        return SignatureInput {
            state: SignatureState::Signed,
            required: false,
            signer: Some(fp.clone()),
            problem: None,
        };
    }
    if let Some(p) = r
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::BundleSignatureInvalid)
    {
        return SignatureInput {
            state: SignatureState::Invalid,
            required: false,
            signer: None,
            problem: Some(p.detail.clone()),
        };
    }
    let state = if !has_index {
        SignatureState::Unchecked
    } else if std::fs::symlink_metadata(dir.join(SIG_FILE)).is_ok() {
        // There, but the check could not get to it (an index problem stopped it).
        SignatureState::Invalid
    } else {
        SignatureState::Unsigned
    };
    SignatureInput {
        state,
        required: false,
        signer: None,
        problem: (state == SignatureState::Invalid)
            .then(|| "the bundle's check did not reach its signature".to_string()),
    }
}
