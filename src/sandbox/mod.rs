//! Profile compilation into one intermediate form shared by the scenario lane and the
//! oracle ([`compile`]); Landlock, seccomp and rlimit application ([`apply`]); the oracle's
//! rule matcher ([`oracle`]); path normalization ([`paths`], which lives in `util` so lint
//! can compare rule paths the same way); ELF facts for exec
//! predictions ([`elf`]); per-child pids cgroups ([`cgroup`]); variables ([`vars`]); host
//! facts ([`host`]); the kernel's Landlock audit records of the runner's children
//! ([`audit`]); who a child is and what it sees ([`privilege`]); what a profile
//! compiles to on this host, for `describe-profile` ([`describe`]).

pub mod apply;
pub mod audit;
pub mod cgroup;
pub mod compile;
pub mod describe;
pub mod elf;
pub mod host;
pub mod oracle;
pub mod privilege;
pub mod rights;
pub mod vars;

pub use crate::util::paths;
pub use compile::{ApplySpec, CompileContext, CompiledProfile, compile};
pub use oracle::{OracleInput, predict};
