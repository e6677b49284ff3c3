//! serde types for every file nexusmon reads or writes.
//!
//! User-written files (plans, registries, templates) are strict: unknown keys are errors,
//! ids are validated, enums use kebab-case words. JSON Schemas in `schemas/` are generated
//! from these types (see `lint::schema`).

pub mod approval;
pub mod attest;
pub mod audit;
pub mod diff;
pub mod evolution;
pub mod gate;
pub mod host;
pub mod id;
pub mod index;
pub mod learn;
pub mod mapping;
pub mod omens;
pub mod packet;
pub mod plan;
pub mod registry;
pub mod results;
pub mod template;
pub mod view;
pub mod worker;

pub use id::{Id, VarName};
pub use plan::{Expectation, Plan, PlanKind};
pub use registry::{Operation, Probe, ProbesFile, Profile, ProfilesFile};

/// The only schema version this build reads and writes for user files.
pub const SCHEMA_VERSION: u32 = 1;
