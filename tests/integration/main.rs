//! The one integration-test binary: modules per theme, sharing the harness in `util`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

mod util;

mod bundle;
mod bundle_crash;
mod bundle_lock;
mod bundle_sign;
mod bundle_tamper;
mod cli;
mod differential;
mod digest;
mod extends;
mod govern;
mod govern_audit;
mod govern_evolution;
mod govern_omens;
mod govern_schemas;
mod hostile;
mod kernel_audit;
mod layering;
mod learn;
mod limits;
mod lint;
mod lint_policy;
mod list;
mod mission;
mod promote;
mod promote_govern;
mod promote_mapping;
mod readme;
mod report;
mod run;
mod run_children;
mod run_failure;
mod run_forkserver;
mod run_interrupt;
mod run_isolation;
mod run_views;
mod sandbox;
mod schemas;
mod serve;
mod shard;
mod status;
mod template;
mod template_run;
mod workers;
