//! Profile compilation into one intermediate form shared by the scenario lane and the
//! oracle; Landlock, seccomp and rlimit application; preflight; the oracle's rule matcher;
//! host facts.

pub mod host;
