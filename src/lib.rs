//! nexusmon: run declarative plan files under kernel-enforced profiles and keep sealed,
//! verifiable evidence of what happened.
//!
//! The library never prints and never exits: command handlers in [`cli`] write to the
//! writers they are given ([`cli::Io`]) and return an exit code, which `main.rs` passes to
//! the process. Every other module returns [`Error`] values that carry the path, id or
//! command they are about.
//!
//! Layout:
//! - [`model`]: serde types for the files users write (plans, registries, templates) and the
//!   files the tool writes (results, index, packets, approvals).
//! - [`source`]: JSON and YAML documents with line/column spans, the base of loading and lint.
//! - [`load`]: finding the project, loading a plan with its registry, computing `plan_digest`.
//! - [`lint`], [`exec`], [`sandbox`], [`bundle`], [`promote`], [`govern`], [`report`],
//!   [`template`], [`sign`] (SSHSIG signing), [`serve`] (the cockpit): one concern each.

pub mod bundle;
pub mod cli;
pub mod error;
pub mod exec;
pub mod govern;
pub mod lint;
pub mod load;
pub mod model;
pub mod promote;
pub mod report;
pub mod sandbox;
pub mod serve;
pub mod sign;
pub mod source;
pub mod template;
pub mod util;

pub use error::{Error, Result, exit_code};

/// The tool's version, recorded in manifests and packets.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
