//! Governance (`DESIGN.md` §8): the gate, approvals, the audit log, omens, evolution.
