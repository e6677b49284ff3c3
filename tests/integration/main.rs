//! The one integration-test binary: modules per theme, sharing the harness in `util`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

mod util;

mod cli;
mod run;
mod run_children;
