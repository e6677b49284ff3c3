//! Execution: scheduling, lanes, child control, and the builtin probe helper.

pub mod helper;
